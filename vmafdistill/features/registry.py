"""Named student feature sets, metadata features, and the version tag feature caches key on.

Torch-free (edge runtime). A *feature set* is an ordered list of column names, one
``conf/features/<name>.yaml`` each (:func:`load_feature_sets`); a student model records the set
it was trained on (and its card the column names), and corpus caches record
:data:`FEATURE_SET_VERSION` so a changed definition never silently mixes with old numbers.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..codecs import CODEC_FAMILIES, canonical_codec
from ..vmaf_names import MODEL_FEATURES
from .frame_numpy import FEATURE_NAMES

__all__ = [
    "CODECS",
    "FEATURE_SETS",
    "FEATURE_SET_VERSION",
    "MB_QUANTIZER_FEATURES",
    "METADATA_FEATURES",
    "PIXEL_FEATURES",
    "QUANTIZER_FEATURES",
    "RATE_FEATURES",
    "SCENE_RATE_FEATURES",
    "SHOT_FEATURES",
    "TEACHER_FEATURES",
    "ShotFeature",
    "canonical_codec",
    "feature_set",
    "feature_set_name",
    "inputs_read",
    "known_feature_set",
    "load_feature_sets",
    "metadata_features",
]

# Bump FEATURE_SET_VERSION in vmafdistill.versions when any feature's definition or default
# parameter changes (cache invalidation).
from ..versions import FEATURE_SET_VERSION as FEATURE_SET_VERSION  # re-export

#: Codec families of the one-hot metadata flags (:mod:`vmafdistill.codecs`' table).
CODECS: tuple[str, ...] = CODEC_FAMILIES

#: Stream metadata features: natural log of the shot bitrate in kbps, reference height over
#: delivery height, and a one-hot codec flag (the pilot's ``codec_h265`` generalised).
METADATA_FEATURES: tuple[str, ...] = (
    "log_bitrate",
    "scale_ratio",
    *(f"codec_{c}" for c in CODECS),
)

#: Decoded-pixel features (see ``docs/features.md``).
PIXEL_FEATURES: tuple[str, ...] = FEATURE_NAMES

#: Full-reference teacher (VMAF) elementary features, pooled per shot from teacher outputs;
#: computed by the teacher, listed here so the upper-bound student can name its inputs.
TEACHER_FEATURES: tuple[str, ...] = MODEL_FEATURES

#: Scale-free rate feature: ln(bits per delivered pixel) = ln(bitrate / (width*height*fps)).
#: Unlike ``log_bitrate`` it does not grow with the source's size or frame rate, so a student
#: trained on one resolution transfers to another.
RATE_FEATURES: tuple[str, ...] = ("log_bpp",)

#: Scene-level rate: the bits of the shot's whole *scene* (the windows cut from one scene share
#: it) over the scene's duration. An encoder spends a scene cut's keyframe on the first window
#: only, so per-window bitrates alternate (measured 48/15/43/13 kb/s on one clip at nearly equal
#: VMAF) while the scene rate tracks the quantiser the scene was coded with.
SCENE_RATE_FEATURES: tuple[str, ...] = ("log_scene_bpp", "log_scene_bitrate")

#: The encoder's quantizer, each frame's in H.264 QP units, read from the slice / frame headers
#: without decoding (:mod:`vmafdistill.io.quantizer`; AV1 / VP9 q indices mapped by equal
#: quantiser step): ``qp`` = the mean over the shot's frames, ``scene_qp`` = the scene's frames
#: weighted by their bits (windows of one scene share it, like the scene rate). At equal scale
#: it is what a CRF rate control sets per content: easy content, which the bitrate mistakes
#: for low quality, gets a *lower* QP (docs/results.md, "encoder quantizer").
#: ``scene_mb_qp`` is ``scene_qp`` of the QP the macroblocks were actually coded at (the
#: decoder's per-block QPs, :mod:`vmafdistill.io.mb_quantizer`; H.264 only, the slice QP
#: standing in for other codecs): x264's adaptive quantisation codes flat, hard-edged content
#: 3-5 QP coarser than its slice headers say (docs/research-quantizer.md).
QUANTIZER_FEATURES: tuple[str, ...] = ("qp", "scene_qp", "scene_mb_qp")

#: The quantizer features read from the decoder's macroblock QPs (an in-process decode pass).
MB_QUANTIZER_FEATURES: tuple[str, ...] = ("scene_mb_qp",)

@dataclass(frozen=True)
class ShotFeature:
    """A shot-level feature: ``compute(row)`` over the shot row's columns it ``reads``.

    ``reads`` is what the edge decides its passes from (a column it does not list is not
    handed to ``compute``): a feature that read ``qp`` unsaid was NaN at the edge for a
    student without a quantizer input, and one that read a pooled pixel feature was measured
    there on every 8th frame only, where the corpus measured every frame.
    """

    compute: Callable[[Mapping[str, Any]], float]
    reads: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.reads, str):  # reads="qp" read as ("q", "p")
            raise TypeError(f"ShotFeature reads={self.reads!r}: a tuple of column names, "
                            f"e.g. ({self.reads!r},)")
        object.__setattr__(self, "reads", tuple(self.reads))


#: Shot-level features computed from a finished shot row: name -> :class:`ShotFeature`.
#: :func:`~vmafdistill.features.shot_rows.shot_feature_rows` (the corpus builder's and the edge's
#: one definition of a shot's inputs) adds each to every row, after every built-in column, from
#: the columns it reads (``bitrate_kbps``, ``duration_s``, ``qp``, the pooled pixel features,
#: ...); the samples table carries it (:data:`vmafdistill.corpus.schema.SAMPLE_COLUMNS`) and the
#: edge computes it (:data:`vmafdistill.edge.card.EDGE_FEATURES`), running the passes its reads
#: need (:func:`inputs_read`). Adding one: its function in a module of this package, one line
#: here, its name in a ``conf/features/*.yaml`` (docs/features.md, "Adding a student input
#: feature").
SHOT_FEATURES: dict[str, ShotFeature] = {
}


def inputs_read(feature_names: Iterable[str]) -> list[str]:
    """``feature_names`` and every column a registered shot feature among them reads: what
    the edge must compute for a student with these inputs."""
    out = list(feature_names)
    for name in out:  # grows as it goes: a shot feature reading another one reads its reads
        if name in SHOT_FEATURES:
            out += [c for c in SHOT_FEATURES[name].reads if c not in out]
    return out


@functools.lru_cache(maxsize=8)
def _load_feature_sets(directory: str) -> dict[str, tuple[str, ...]]:
    import yaml  # torch-free; only the training side reads feature-set files

    sets: dict[str, tuple[str, ...]] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        with open(path) as fh:
            data = yaml.safe_load(fh)
        columns = data.get("columns") if isinstance(data, dict) else None
        if not (isinstance(columns, list) and columns
                and all(isinstance(c, str) for c in columns)):
            raise ValueError(f"{path}: a feature set needs `columns:`, a list of column names")
        if data.get("name", path.stem) != path.stem:
            raise ValueError(f"{path}: name {data['name']!r} differs from the file name")
        if len(set(columns)) != len(columns):
            raise ValueError(f"{path}: a column is listed twice")
        sets[path.stem] = tuple(columns)
    return sets


def load_feature_sets(directory: str | os.PathLike[str] | None = None) -> dict[str, list[str]]:
    """Every named feature set: ``conf/features/<name>.yaml`` -> ``{name: [column, ...]}``.

    ``directory`` defaults to ``conf/features`` of :func:`vmafdistill.config.conf_dir` (the
    package's, or ``VMAFDISTILL_CONF``'s). Each file holds ``name`` (its file name) and
    ``columns``, the ordered student input columns; the train app selects one with
    ``features=<name>`` (a Hydra config group). Read with PyYAML (torch-free) once per
    directory and process. The edge install has no PyYAML: there a model card's own
    ``feature_names`` are the inputs (:func:`known_feature_set` returns None).
    """
    if directory is None:
        from ..config import conf_dir

        directory = conf_dir() / "features"
    return {k: list(v) for k, v in _load_feature_sets(str(directory)).items()}


class _FeatureSets(Mapping[str, list[str]]):
    """Read-only ``{name: columns}`` view of :func:`load_feature_sets`, read on first use (so
    importing this module, as the torch- and yaml-free edge does, reads no file)."""

    def _sets(self) -> dict[str, list[str]]:
        return load_feature_sets()

    def __getitem__(self, name: str) -> list[str]:
        return self._sets()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sets())

    def __len__(self) -> int:
        return len(self._sets())

    def __repr__(self) -> str:
        return f"FEATURE_SETS({self._sets()!r})"


#: Feature set name -> ordered column names, from ``conf/features/*.yaml`` (see
#: :func:`load_feature_sets`; each file says what its set is for). ``paper14`` is the pilot
#: study's Table 4, ``scalefree`` / ``rate7`` / ``scene7`` / ``quant6`` / ``quant_ti7`` /
#: ``mbquant_ti7`` the cross-content sets (``mbquant_ti7``: the shipped student's), ``fr6``
#: VMAF's own inputs.
FEATURE_SETS: Mapping[str, list[str]] = _FeatureSets()

def feature_set(name: str) -> list[str]:
    """Column names of feature set ``name`` (a copy); ValueError lists the known sets."""
    sets = load_feature_sets()
    try:
        return list(sets[name])
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown feature set {name!r}; known: {', '.join(sorted(sets))}"
        ) from None


def known_feature_set(name: str) -> list[str] | None:
    """Columns of feature set ``name`` where this install can read ``conf/features/`` (the
    training side), else None: an unknown name, or the edge install (no PyYAML), where a model
    card's own ``feature_names`` are the inputs."""
    from ..errors import VmafDistillError

    try:
        return load_feature_sets().get(name)
    except (ImportError, VmafDistillError):
        return None


def feature_set_name(spec: str | Mapping[str, Any]) -> str:
    """The name of a feature-set choice: a name, or the train config's ``features`` group node
    (``{name, columns}`` of ``conf/features/<name>.yaml``), whose columns must be that file's
    (a new set is a new file). ValueError names the problem."""
    if isinstance(spec, str):
        feature_set(spec)  # known?
        return spec
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"expected a feature-set name or {{name, columns}}, got {spec!r}")
    from ..config import refuse_unknown_keys

    # +features.colums=[...] composed and was ignored
    refuse_unknown_keys("a feature set {name, columns}", spec, ("name", "columns"), ValueError)
    name = str(spec["name"])
    known = feature_set(name)
    if spec.get("columns") is not None and list(spec["columns"]) != known:
        raise ValueError(
            f"features.columns differ from conf/features/{name}.yaml; a new column list is a "
            "new feature set: add conf/features/<new name>.yaml"
        )
    return name


def scene_rate_features(
    scene_kbps: float, delivery_width: int, delivery_height: int, fps: float
) -> dict[str, float]:
    """``log_scene_bitrate`` = ln(scene kbit/s) and ``log_scene_bpp`` = ln(scene bits per
    delivered pixel) of the scene a shot belongs to (see :data:`SCENE_RATE_FEATURES`)."""
    if not (scene_kbps > 0 and math.isfinite(scene_kbps)):
        raise ValueError(f"scene_kbps must be a positive finite number, got {scene_kbps}")
    if delivery_width <= 0 or delivery_height <= 0 or not (fps > 0 and math.isfinite(fps)):
        raise ValueError(
            f"need positive size and fps, got {delivery_width}x{delivery_height} at {fps}"
        )
    return {
        "log_scene_bpp": math.log(scene_kbps * 1000.0 / (delivery_width * delivery_height * fps)),
        "log_scene_bitrate": math.log(scene_kbps),
    }


def metadata_features(
    bitrate_kbps: float,
    ref_height: int,
    delivery_height: int,
    codec: str,
    *,
    delivery_width: int | None = None,
    fps: float | None = None,
) -> dict[str, float]:
    """The metadata features of one shot, keyed by :data:`METADATA_FEATURES`.

    Args:
        bitrate_kbps: the shot's bitrate (bits of its frames / its duration) in kbit/s.
        ref_height: height of the reference (display) resolution, e.g. 720.
        delivery_height: height of the delivered (encoded) stream, e.g. 360.
        codec: codec family or any alias :func:`canonical_codec` knows.
        delivery_width, fps: when both are given, ``log_bpp`` (ln bits per delivered pixel)
            is added.

    Returns:
        ``log_bitrate`` = ln(kbps), ``scale_ratio`` = ref_height / delivery_height (> 1 when
        the delivery is upscaled for display) and the one-hot ``codec_*`` flags (0.0 / 1.0).
    """
    if not (bitrate_kbps > 0 and math.isfinite(bitrate_kbps)):
        raise ValueError(f"bitrate_kbps must be a positive finite number, got {bitrate_kbps}")
    if ref_height <= 0 or delivery_height <= 0:
        raise ValueError(f"heights must be positive, got {ref_height} and {delivery_height}")
    family = canonical_codec(codec)
    out = {
        "log_bitrate": math.log(bitrate_kbps),
        "scale_ratio": ref_height / delivery_height,
    }
    out.update({f"codec_{c}": 1.0 if c == family else 0.0 for c in CODECS})
    if delivery_width is not None and fps is not None:
        if delivery_width <= 0 or not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"need positive width and fps, got {delivery_width} and {fps}")
        out["log_bpp"] = math.log(bitrate_kbps * 1000.0 / (delivery_width * delivery_height * fps))
    return out
