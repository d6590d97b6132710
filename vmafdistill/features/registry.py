"""Named student feature sets, metadata features, and the version tag feature caches key on.

Torch-free (edge runtime). A *feature set* is an ordered list of column names; a student model
records the set it was trained on, and corpus caches record :data:`FEATURE_SET_VERSION` so a
changed definition never silently mixes with old numbers.
"""

from __future__ import annotations

import math

from ..vmaf_names import MODEL_FEATURES
from .frame_numpy import FEATURE_NAMES

__all__ = [
    "CODECS",
    "FEATURE_SETS",
    "FEATURE_SET_VERSION",
    "METADATA_FEATURES",
    "PIXEL_FEATURES",
    "QUANTIZER_FEATURES",
    "RATE_FEATURES",
    "SCENE_RATE_FEATURES",
    "TEACHER_FEATURES",
    "canonical_codec",
    "feature_set",
    "metadata_features",
]

# Bump FEATURE_SET_VERSION in vmafdistill.versions when any feature's definition or default
# parameter changes (cache invalidation).
from ..versions import FEATURE_SET_VERSION as FEATURE_SET_VERSION  # re-export

#: Codec families of the one-hot metadata flags (the names :mod:`vmafdistill.encode` uses).
CODECS: tuple[str, ...] = ("h264", "h265", "av1", "vp9")

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
QUANTIZER_FEATURES: tuple[str, ...] = ("qp", "scene_qp")

#: Feature set name -> ordered column names. ``paper14`` is the pilot study's Table 4 (its single
#: H.265 flag widened to four codec flags, so 17 columns); ``scalefree`` swaps its raw bitrate
#: for bits per pixel; ``fr6`` are VMAF's own inputs (the full-reference upper bound).
#: ``rate7`` is stream metadata only (no decoded-pixel feature): bits per delivered pixel, the
#: raw bitrate (with ``log_bpp`` it spans ln(delivered pixels per second): the same bpp buys
#: more quality on large frames, where each pixel carries less scene detail), the scale ratio
#: and the codec flags. Chosen for cross-content transfer: the pixel features identify the
#: training clips, and with 2-3 training sources a student extrapolates them badly
#: (``docs/results.md``, leave-one-source-out). ``quant6`` swaps the rate for the encoder's
#: quantizer (:data:`QUANTIZER_FEATURES`): stream headers only, no decoded pixel; ``quant_ti7``
#: adds ``temporal_std`` (P.910's temporal information of the decoded frames): at equal QP,
#: how much the content moves.
FEATURE_SETS: dict[str, list[str]] = {
    "paper14": [*METADATA_FEATURES, *PIXEL_FEATURES],
    "scalefree": ["log_bpp", *METADATA_FEATURES[1:], *PIXEL_FEATURES],
    "rate7": ["log_bpp", *METADATA_FEATURES],
    "scene7": [*SCENE_RATE_FEATURES, *METADATA_FEATURES[1:]],
    "quant6": ["scene_qp", *METADATA_FEATURES[1:]],
    "quant_ti7": ["scene_qp", "temporal_std", *METADATA_FEATURES[1:]],
    "fr6": list(TEACHER_FEATURES),
}

# Encoder / decoder / container spellings of each codec family.
_CODEC_ALIASES: dict[str, str] = {
    alias: family
    for family, aliases in {
        "h264": ("h264", "avc", "avc1", "x264", "libx264", "h.264"),
        "h265": ("h265", "hevc", "hvc1", "hev1", "x265", "libx265", "h.265"),
        "av1": ("av1", "av01", "libsvtav1", "libaom-av1", "librav1e", "libdav1d", "svtav1"),
        "vp9": ("vp9", "vp09", "libvpx-vp9"),
    }.items()
    for alias in aliases
}


def canonical_codec(codec: str) -> str:
    """Codec family (one of :data:`CODECS`) of an encoder/decoder/codec name, e.g. ``hevc``."""
    family = _CODEC_ALIASES.get(str(codec).strip().lower())
    if family is None:
        raise ValueError(f"unknown codec {codec!r}; known families: {', '.join(CODECS)}")
    return family


def feature_set(name: str) -> list[str]:
    """Column names of feature set ``name`` (a copy); ValueError lists the known sets."""
    try:
        return list(FEATURE_SETS[name])
    except KeyError:
        raise ValueError(
            f"unknown feature set {name!r}; known: {', '.join(sorted(FEATURE_SETS))}"
        ) from None


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
