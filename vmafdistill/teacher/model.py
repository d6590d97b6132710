"""The VMAF fusion model: a libsvm nu-SVR with an RBF kernel, read from Netflix's model JSON.

Model files are not committed here: the named models are loaded from the JSON files that the
``ffmpeg-quality-metrics`` package ships (``vmaf_v0.6.1``, ``vmaf_v0.6.1neg``,
``vmaf_4k_v0.6.1``); any other JSON in the same layout can be given by path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from ..errors import ModelError
from ..oracle import FLOAT_MODEL_SOURCES, model_files_dir
from ..vmaf_names import MODEL_FEATURES
from .adm import AdmOptions
from .model_v1016 import V1016_MODELS, existing_model_file, is_v1016_document
from .vif import VifOptions

if TYPE_CHECKING:
    from .exact.features import ExactOptions

#: Built-in names: the Netflix files plus libvmaf's ``vmaf_float_*`` spellings, which name the
#: same SVR driven by float features (what this teacher computes).
MODEL_ALIASES: dict[str, str] = {
    **{source: source for source in FLOAT_MODEL_SOURCES.values()},
    **FLOAT_MODEL_SOURCES,
}

_FEATURE_RE = re.compile(r"^VMAF_(?:integer_)?feature_(\w+?)_score$")


def _integer_features(raw_names: Any, path: Path) -> bool:
    """Whether a model JSON's features are libvmaf's integer ones (``VMAF_integer_feature_*``)
    rather than its float ones; a model mixing the two is refused (libvmaf would run each
    feature's own extractor, this teacher scores a model in one mode: 0.03 VMAF off, unsaid)."""
    kinds = {str(raw).startswith("VMAF_integer_feature_") for raw in raw_names}
    if len(kinds) > 1:
        raise ModelError(f"model file {path}: mixes libvmaf's integer features "
                         "(VMAF_integer_feature_*) with float ones (VMAF_feature_*); this "
                         "teacher scores a model with one kind: make them all one kind")
    return kinds <= {True}  # (no feature at all: refused later, by the slope count)


def resolve_model_path(name_or_path: str | Path) -> Path:
    """Map a model name (``vmaf_v0.6.1`` ...) or a JSON path to an existing JSON file."""
    text = str(name_or_path)
    if text in V1016_MODELS:
        raise ModelError(_v1016_refusal(text))
    if text in MODEL_ALIASES:
        path = model_files_dir() / f"{MODEL_ALIASES[text]}.json"
        if not path.is_file():
            raise ModelError(f"model {text!r}: expected file {path} is missing")
        return path
    if not text.strip():
        raise ModelError("model: the name is empty (give a model name or a JSON path)")
    path = Path(text).expanduser()  # "~/m.json": the libvmaf teacher expands it too
    if path.suffix == ".json" or path.exists():
        return existing_model_file(path)
    known = ", ".join([*sorted(MODEL_ALIASES), *sorted(V1016_MODELS)])
    raise ModelError(f"unknown VMAF model {text!r}: use one of {known} or a JSON path")


@dataclass(frozen=True)
class ScoreTransform:
    """libvmaf's score transform: the polynomial ``p0 + p1 y + p2 y^2`` over the coefficients
    present (none: ``y``), then the rectification: ``out_lte_in`` keeps the result at most
    the SVR's score ``y``, ``out_gte_in`` at least (measured against libvmaf: a transform
    that raises the score, with ``out_lte_in``, gives the plain score)."""

    coefficients: dict[str, float] = field(default_factory=dict)
    out_lte_in: bool = False
    out_gte_in: bool = False

    def __call__(self, score: torch.Tensor) -> torch.Tensor:
        out = score
        if self.coefficients:
            out = torch.zeros_like(score)
            if "p0" in self.coefficients:
                out = out + self.coefficients["p0"]
            if "p1" in self.coefficients:
                out = out + self.coefficients["p1"] * score
            if "p2" in self.coefficients:
                out = out + self.coefficients["p2"] * score * score
        if self.out_lte_in:
            out = torch.minimum(out, score)
        if self.out_gte_in:
            out = torch.maximum(out, score)
        return out


def parse_score_transform(md: Mapping[str, Any], path: Path) -> ScoreTransform | None:
    """A model JSON's ``score_transform`` where its ``enabled`` is true (libvmaf applies it
    after the SVR, before the clip), else None. Knots are refused (ModelError)."""
    st = md.get("score_transform", {})
    if not isinstance(st, Mapping):
        raise ModelError(f"model file {path}: score_transform is not an object")
    # as strict as libvmaf, which refuses to load a model whose transform has another type
    # anywhere, enabled or not (a label it cannot reproduce is worse than an error)
    bad = [key for key, ok in (
        ("enabled", isinstance(st.get("enabled", False), bool)),
        *((k, k not in st or _is_number(st[k])) for k in ("p0", "p1", "p2")),
        *((k, isinstance(st.get(k, ""), str)) for k in ("out_lte_in", "out_gte_in")),
        ("knots", "knots" not in st or isinstance(st["knots"], list)),
    ) if not ok]
    if bad:
        raise ModelError(f"model file {path}: score_transform {', '.join(bad)}: not what "
                         "libvmaf reads (enabled a boolean, p0/p1/p2 numbers, out_lte_in/"
                         "out_gte_in strings, knots a list)")
    if not st.get("enabled"):
        return None
    if st.get("knots"):
        raise ModelError(f"model file {path}: a score_transform with knots is not supported")
    coefficients = {k: float(st[k]) for k in ("p0", "p1", "p2") if k in st}
    # libvmaf compares the rectification flags with the string "true", case and all
    return ScoreTransform(coefficients, out_lte_in=st.get("out_lte_in") == "true",
                          out_gte_in=st.get("out_gte_in") == "true")


def _is_number(value: Any) -> bool:
    """A JSON number (not a boolean, which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class VmafModel:
    """A parsed VMAF nu-SVR model with its feature normalisation and options."""

    name: str
    feature_names: list[str]
    slopes: list[float]
    intercepts: list[float]
    support_vectors: torch.Tensor  # (S, F) float64
    coefs: torch.Tensor  # (S,) float64
    gamma: float
    rho: float
    score_clip: tuple[float, float] | None
    vif_options: VifOptions = field(default_factory=VifOptions)
    adm_options: AdmOptions = field(default_factory=AdmOptions)
    #: The JSON names libvmaf's integer extractors (``VMAF_integer_feature_*``) and the name is
    #: not a ``vmaf_float_*`` alias: exact mode is this model's default.
    integer_features: bool = False
    #: libvmaf's score transform where the JSON enables it (:func:`parse_score_transform`)
    transform: ScoreTransform | None = None

    @property
    def default_mode(self) -> str:
        """``"exact"`` for libvmaf's integer models (``vmaf_v0.6.1`` ...), else ``"float"``."""
        return "exact" if self.integer_features else "float"

    @property
    def exact_options(self) -> ExactOptions:
        """The options this model passes to libvmaf's integer extractors."""
        from .exact.features import ExactOptions
        from .exact.integer_adm import IntegerAdmOptions
        from .exact.integer_vif import IntegerVifOptions

        return ExactOptions(
            vif=IntegerVifOptions(enhn_gain_limit=self.vif_options.enhn_gain_limit),
            adm=IntegerAdmOptions(enhn_gain_limit=self.adm_options.enhn_gain_limit),
        )

    @classmethod
    def load(cls, name_or_path: str | Path = "vmaf_v0.6.1") -> VmafModel:
        """Load a model by name or JSON path; raise ModelError naming the file on bad content."""
        path = resolve_model_path(name_or_path)
        try:
            doc = json.loads(path.read_text())
            md = doc["model_dict"]
            raw_names = md["feature_names"]
            model_type = md.get("model_type")
            norm_type = md.get("norm_type")
        except KeyError as exc:
            raise ModelError(f"model file {path}: not a VMAF model JSON "
                             f"(no {exc} key)") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"model file {path}: not a VMAF model JSON ({exc})") from exc
        if is_v1016_document(doc):
            raise ModelError(_v1016_refusal(str(path)))
        if model_type != "LIBSVMNUSVR":
            raise ModelError(f"model file {path}: model_type {model_type!r} is not LIBSVMNUSVR")
        if norm_type != "linear_rescale":
            raise ModelError(f"model file {path}: norm_type {norm_type!r} is not supported")
        names = []
        integer = _integer_features(raw_names, path)
        for raw in raw_names:
            match = _FEATURE_RE.match(raw)
            if not match or match.group(1) not in MODEL_FEATURES:
                raise ModelError(f"model file {path}: feature {raw!r} is not computed here")
            names.append(match.group(1))
        vif_opts, adm_opts = _feature_options(md.get("feature_opts_dicts"), names, path)
        try:
            slopes = [float(v) for v in md["slopes"]]
            intercepts = [float(v) for v in md["intercepts"]]
            sv, coefs, gamma, rho = _parse_libsvm(md["model"], len(names), path)
            clip = md.get("score_clip")
            score_clip = (float(clip[0]), float(clip[1])) if clip else None
            transform = parse_score_transform(md, path)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"model file {path}: not a VMAF model JSON ({exc!r})") from None
        if not len(slopes) == len(intercepts) == len(names) + 1:
            # one for the score, one per feature: found only after every frame was scored
            raise ModelError(f"model file {path}: {len(slopes)} slopes and {len(intercepts)} "
                             f"intercepts for {len(names)} features (needs {len(names) + 1})")
        name = str(name_or_path) if str(name_or_path) in MODEL_ALIASES else path.stem
        return cls(
            name=name,
            feature_names=names,
            slopes=slopes,
            intercepts=intercepts,
            support_vectors=sv,
            coefs=coefs,
            gamma=gamma,
            rho=rho,
            score_clip=score_clip,
            transform=transform,
            vif_options=vif_opts,
            adm_options=adm_opts,
            # libvmaf's vmaf_float_* model names select its float extractors for the same
            # SVR; a JSON file's own name does not (its feature names say which it runs)
            integer_features=integer and not (str(name_or_path) in MODEL_ALIASES
                                              and name.startswith("vmaf_float_")),
        )

    def predict(self, features: dict[str, torch.Tensor], *, clip: bool = True) -> torch.Tensor:
        """VMAF per frame from elementary features (each ``(N,)``), computed in float64.

        ``clip=False`` skips the [0, 100] clip so gradients do not vanish at the ends.
        """
        x = torch.stack([features[n].to(torch.float64) for n in self.feature_names], dim=-1)
        slopes = torch.tensor(self.slopes[1:], dtype=torch.float64, device=x.device)
        intercepts = torch.tensor(self.intercepts[1:], dtype=torch.float64, device=x.device)
        x = x * slopes + intercepts
        sv = self.support_vectors.to(x.device)
        sq_dist = ((x.unsqueeze(-2) - sv) ** 2).sum(dim=-1)
        raw = (torch.exp(-self.gamma * sq_dist) * self.coefs.to(x.device)).sum(dim=-1) - self.rho
        score = (raw - self.intercepts[0]) / self.slopes[0]
        if self.transform is not None:
            score = self.transform(score)
        if clip and self.score_clip is not None:
            score = score.clamp(self.score_clip[0], self.score_clip[1])
        return score


class _SvrModel(Protocol):
    def predict(self, features: dict[str, torch.Tensor], *, clip: bool = True) -> torch.Tensor:
        ...


#: Frames per SVR call in :func:`predict_clip`: its (frames, support vectors, features)
#: float64 temporaries stay ~50 MB however long the clip.
PREDICT_CHUNK = 4096


def predict_clip(model: _SvrModel, features: dict[str, torch.Tensor]) -> np.ndarray:
    """VMAF per frame of a finished clip (CPU features, no gradient): ``model.predict`` on one
    intra-op thread, in chunks of :data:`PREDICT_CHUNK` frames.

    One thread because the scores must not depend on torch's intra-op threads: on a loaded
    2-core machine, after exact mode's torch path, the frames of the second thread's half once
    came out up to 1.4e-5 VMAF off (3 of 26 whole-process runs; features identical; the same
    SVR again in the same process agreed; cause inside torch not found).
    """
    n = len(next(iter(features.values())))
    budget = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            parts = [model.predict({k: v[i : i + PREDICT_CHUNK] for k, v in features.items()})
                     for i in range(0, n, PREDICT_CHUNK)]
    finally:
        torch.set_num_threads(budget)
    return torch.cat(parts).numpy() if parts else np.zeros(0)


def _v1016_refusal(name: str) -> str:
    return (
        f"model {name!r} is a VMAF v1.0.16 model (CAMBI, SpEED chroma, adm3, motion3), not a "
        "v0.6.1-style SVR over VIF/ADM/motion: score it with vmafdistill.teacher.v1016 "
        "(V1016Scorer, score_files_v1016) or `vmafdistill score --model "
        f"{Path(name).name.removesuffix('.json')}`"  # not .stem: vmaf_v1.0
    )


def _feature_options(
    opts_dicts: list[dict] | None, names: list[str], path: Path
) -> tuple[VifOptions, AdmOptions]:
    """Per-feature options of the model (e.g. the NEG models' gain limits of 1). The VIF
    scales are computed together with one set of options: a model giving its scales different
    ones is refused (libvmaf runs an extractor per option set; here one limit took all four
    scales, 3.3 VMAF off for a limit on scale 0 alone)."""
    vif_limits: dict[str, float | None] = {}
    adm_kw: dict[str, float] = {}
    if opts_dicts:
        if not isinstance(opts_dicts, list) or len(opts_dicts) != len(names) \
                or not all(isinstance(o, dict | None) for o in opts_dicts):
            raise ModelError(f"model file {path}: feature_opts_dicts must hold one dict per "
                             f"feature ({len(names)}: {', '.join(names)})")
        for feat, opts in zip(names, opts_dicts, strict=True):
            if feat.startswith("vif"):
                vif_limits[feat] = None
            for key, value in (opts or {}).items():
                if feat.startswith("vif") and key == "vif_enhn_gain_limit":
                    vif_limits[feat] = _gain_limit(value, key, path)
                elif feat == "adm2" and key == "adm_enhn_gain_limit":
                    adm_kw["enhn_gain_limit"] = _gain_limit(value, key, path)
                else:
                    raise ModelError(f"model file {path}: feature option {key!r} not supported "
                                     "(the options read: vif_enhn_gain_limit on the VIF scales, "
                                     "adm_enhn_gain_limit on adm2)")
    if len(set(vif_limits.values())) > 1:
        raise ModelError(f"model file {path}: vif_enhn_gain_limit differs between the VIF "
                         f"scales ({', '.join(f'{k}: {v}' for k, v in vif_limits.items())}); "
                         "only one limit for all scales is supported")
    limit = next(iter(vif_limits.values()), None)
    return VifOptions(**({} if limit is None else {"enhn_gain_limit": limit})), \
        AdmOptions(**adm_kw)


def _gain_limit(value: Any, key: str, path: Path) -> float:
    """An enhancement gain limit within libvmaf's bounds, 1..100 (libvmaf refuses the model
    outside them; float mode scored a limit of 0.5 and exact mode refused it)."""
    try:
        limit = float(value)
    except (TypeError, ValueError):
        limit = math.nan
    if not 1.0 <= limit <= 100.0:
        raise ModelError(f"model file {path}: {key}={value!r} is outside 1..100, the bounds "
                         "libvmaf takes")
    return limit


def _parse_libsvm(
    text: str, n_features: int, path: Path
) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """Support vectors, dual coefficients, gamma and rho from a libsvm model string."""
    header: dict[str, str] = {}
    lines = text.strip().splitlines()
    try:
        sv_start = lines.index("SV") + 1
    except ValueError as exc:
        raise ModelError(f"model file {path}: libsvm model has no SV section") from exc
    for line in lines[: sv_start - 1]:
        key, _, value = line.partition(" ")
        header[key] = value.strip()
    if header.get("kernel_type") != "rbf":
        raise ModelError(f"model file {path}: kernel {header.get('kernel_type')!r} is not rbf")
    rows, coefs = [], []
    for line in lines[sv_start:]:
        parts = line.split()
        if not parts:
            continue
        coefs.append(float(parts[0]))
        row = [0.0] * n_features  # libsvm is sparse: absent indices are 0
        for item in parts[1:]:
            idx, _, value = item.partition(":")
            if not 1 <= int(idx) <= n_features:  # read "not a VMAF model JSON (IndexError)"
                raise ModelError(
                    f"model file {path}: support vector {len(rows) + 1} has feature index "
                    f"{idx}, but feature_names lists {n_features} features")
            row[int(idx) - 1] = float(value)
        rows.append(row)
    return (
        torch.tensor(rows, dtype=torch.float64),
        torch.tensor(coefs, dtype=torch.float64),
        float(header["gamma"]),
        float(header["rho"]),
    )
