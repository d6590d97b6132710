"""Quality tokens: a predicted VMAF turned into a band and a likely cause (torch-free).

A token is the pilot study's per-shot summary, e.g. ``{"pred_vmaf": 47.6, "band": "red",
"issue": "blockiness"}``. Both parts are deterministic rules whose thresholds live in
``conf/export.yaml``; the exporter copies them into the model card, and ``vmafdistill predict``
reads them from there (command-line flags override).

Band: ``green`` when v >= ``bands.green``, ``amber`` when v >= ``bands.amber``, else ``red``, where
v is the predicted VMAF (``bands.basis: pred``) or the lower end of its conformal interval
(``bands.basis: lower``, the guard mode: a shot reads green only when the interval says it
is at least that good, so a student that reads high on content it never saw does not turn a bad
encode green).

Issue (first rule that fires, only for shots predicted below ``issues.max_vmaf``), over
*standardized* features ``z = (t(x) - center) / scale`` where ``t`` is ``log1p`` for the
heavy-tailed features listed in ``token_stats`` and the center/scale are the median and the
normal-consistent MAD (1.4826 * MAD) of the export corpus (stored in the card):

1. ``blockiness``: z(blockiness) >= ``issues.blockiness_z``;
2. ``detail_loss``: scale_ratio >= ``issues.detail_scale_ratio`` (aggressive scaling) and the
   mean z of the spatial-detail features (``issues.detail_features``) <= ``issues.detail_z``;
3. ``motion_stress``: the mean z of the motion features (``issues.motion_features``) >=
   ``issues.motion_z`` and pred < ``issues.motion_max_vmaf``;
4. otherwise ``none``.

A shot whose features are not all finite gets ``issue = "invalid_features"``, no prediction and
a ``flags`` entry per offending feature (never a silent number), then its training-domain flags
(``unseen_codec:<family>``, ``outside_training:<feature>``).

The whole per-shot record (times, codec, resolution, bitrate, prediction, interval, band, issue,
flags) is :class:`ShotRecord`, defined once here; its :meth:`ShotRecord.to_dict` is the JSON
object ``vmafdistill predict`` prints (schema :data:`TOKEN_VERSION`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

__all__ = [
    "BAND_BASES",
    "DEFAULT_RULES",
    "ISSUES",
    "RECORD_KEYS",
    "TOKEN_VERSION",
    "ShotRecord",
    "band_of",
    "is_finite_number",
    "issue_of",
    "merge_rules",
    "robust_stats",
    "standardize",
]

#: Every issue a token can carry.
ISSUES: tuple[str, ...] = (
    "blockiness", "detail_loss", "motion_stress", "none", "invalid_features",
)

#: Version of the per-shot record schema (:class:`ShotRecord`, its keys and their meaning).
#: Raise it when a key is added, removed, renamed or changes meaning. 2: ``interval`` is null
#: beside a prediction for a student exported without intervals (1: only without one).
TOKEN_VERSION = 2

#: Band and issue of a shot without a prediction (non-finite features, an unreadable rendition).
UNKNOWN_BAND, INVALID_ISSUE = "unknown", "invalid_features"

#: What a band reads: the prediction, or the lower end of its interval (the guard mode).
BAND_BASES: tuple[str, ...] = ("pred", "lower")

#: Fallback rules (the documented defaults of ``conf/export.yaml``).
DEFAULT_RULES: dict[str, Any] = {
    "bands": {"green": 80.0, "amber": 60.0, "basis": "pred"},
    "issues": {
        "max_vmaf": 80.0,
        "blockiness_z": 1.0,
        "detail_scale_ratio": 1.5,
        "detail_features": ["sobel_mean", "edge_density", "laplacian_var"],
        "detail_z": -0.5,
        "motion_features": ["temporal_diff", "temporal_std"],
        "motion_z": 1.0,
        "motion_max_vmaf": 70.0,
    },
}


def merge_rules(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` with ``override``'s non-None values laid over it (two levels deep)."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, val in (override or {}).items():
        if isinstance(val, Mapping):
            out.setdefault(key, {})
            out[key].update({k: v for k, v in val.items() if v is not None})
        elif val is not None:
            out[key] = val
    _check_rule_values(out)
    green, amber = float(out["bands"]["green"]), float(out["bands"]["amber"])
    if not amber <= green:
        raise ValueError(f"band thresholds need amber <= green, got amber={amber}, green={green}")
    basis = out["bands"].setdefault("basis", "pred")
    if basis not in BAND_BASES:
        raise ValueError(f"bands.basis must be one of {', '.join(BAND_BASES)}, got {basis!r}")
    return out


#: The rules' thresholds: each must be a finite number (a NaN switched its rule off unseen).
_RULE_NUMBERS = {"bands": ("green", "amber"),
                 "issues": ("max_vmaf", "blockiness_z", "detail_scale_ratio", "detail_z",
                            "motion_z", "motion_max_vmaf")}


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite number: an int or float, not a bool (a card's ``true``
    read as 1), not text (``"80"`` came back out of a summary as text), not NaN or inf."""
    return isinstance(value, int | float | np.integer | np.floating) \
        and not isinstance(value, bool) and math.isfinite(value)


def is_whole_number(value: Any) -> bool:
    """Whether ``value`` is a whole number as a card holds one: an int, not a bool (``true``
    equals 1 in Python), not text, not 17.0 or 2.5 (int() cut it to 2)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_rule_values(rules: Mapping[str, Any]) -> None:
    """ValueError naming the first threshold that is not a finite number, or a feature list
    that is not a list of names (a hand-edited card, ``--blockiness-z nan``)."""
    for section, keys in _RULE_NUMBERS.items():
        for key in keys:
            value = (rules.get(section) or {}).get(key)
            if not is_finite_number(value):
                raise ValueError(f"{section}.{key}={value!r}: not a finite number")
    for key in ("detail_features", "motion_features"):
        names = (rules.get("issues") or {}).get(key)
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"issues.{key}={names!r}: not a list of feature names")


def robust_stats(
    columns: Mapping[str, Sequence[float] | np.ndarray], log_features: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Per-feature ``{"center", "scale", "log"}``: median and 1.4826*MAD of ``t(x)``.

    ``t`` is ``log1p`` (on ``max(x, 0)``) for names in ``log_features``, identity otherwise.
    NaN values are ignored; a zero MAD falls back to the standard deviation, then to 1.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, values in columns.items():
        use_log = name in log_features
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if use_log:
            v = np.log1p(np.maximum(v, 0.0))
        if v.size == 0:
            out[name] = {"center": 0.0, "scale": 1.0, "log": use_log}
            continue
        center = float(np.median(v))
        scale = 1.4826 * float(np.median(np.abs(v - center)))
        if not scale > 0:
            scale = float(v.std())
        if not scale > 0:
            scale = 1.0
        out[name] = {"center": center, "scale": scale, "log": use_log}
    return out


def standardize(features: Mapping[str, float], stats: Mapping[str, Mapping[str, Any]]) -> dict:
    """z-score of every feature that has stats and a finite value (see :func:`robust_stats`).

    A non-finite value (a shot without measured frames for that feature, e.g. a temporal
    feature when only the shot's first clip frame was sampled) gets no z: the rules that use it
    average the remaining features, or do not fire.
    """
    z: dict[str, float] = {}
    for name, st in stats.items():
        if name not in features:
            continue
        x = float(features[name])
        if not math.isfinite(x):
            continue
        if st.get("log"):
            x = math.log1p(max(x, 0.0))
        z[name] = (x - float(st["center"])) / float(st["scale"])
    return z


def band_of(pred: float, rules: Mapping[str, Any], lower: float | None = None) -> str:
    """``green`` / ``amber`` / ``red`` for a predicted VMAF, or for ``lower`` (the interval's
    lower end) when ``rules["bands"]["basis"]`` is ``"lower"``."""
    bands = rules["bands"]
    value = pred
    if bands.get("basis", "pred") == "lower":
        if lower is None:
            raise ValueError("bands.basis is 'lower' but no interval lower end was given")
        value = lower
    if value >= float(bands["green"]):
        return "green"
    if value >= float(bands["amber"]):
        return "amber"
    return "red"


def _mean_z(z: Mapping[str, float], names: Sequence[str]) -> float | None:
    vals = [z[n] for n in names if n in z]
    return sum(vals) / len(vals) if vals else None


def issue_of(
    pred: float,
    features: Mapping[str, float],
    stats: Mapping[str, Mapping[str, Any]],
    rules: Mapping[str, Any],
) -> str:
    """The issue token of one shot (see the module docstring for the rules)."""
    r = rules["issues"]
    if pred >= float(r["max_vmaf"]):
        return "none"
    z = standardize(features, stats)
    if "blockiness" in z and z["blockiness"] >= float(r["blockiness_z"]):
        return "blockiness"
    detail = _mean_z(z, r["detail_features"])
    scale_ratio = float(features.get("scale_ratio", 1.0))
    if (
        detail is not None
        and scale_ratio >= float(r["detail_scale_ratio"])
        and detail <= float(r["detail_z"])
    ):
        return "detail_loss"
    motion = _mean_z(z, r["motion_features"])
    if motion is not None and motion >= float(r["motion_z"]) and pred < float(r["motion_max_vmaf"]):
        return "motion_stress"
    return "none"


@dataclass(frozen=True, kw_only=True)
class ShotRecord:
    """One shot's quality record (schema :data:`TOKEN_VERSION`); :meth:`to_dict` is its JSON.

    The fields below are in the order of the JSON object's keys (:data:`RECORD_KEYS`).
    """

    shot: int
    """Index of the shot in the video (0-based; across renditions of a recording)."""
    start: float
    """Start time in seconds (3 decimals; from the frames' timestamps where the file has them)."""
    end: float
    """End time in seconds (3 decimals): where the next frame starts."""
    codec: str
    """Canonical codec name, upper case (``"H264"``, ``"H265"``, ``"AV1"``, ``"VP9"``)."""
    res: str
    """Resolution named by the picture's short side (``"360p"``; a 360x640 video is 360p)."""
    bitrate_kbps: float
    """The shot's bitrate from its frames' picture bytes (kbit/s, 1 decimal; the same in
    every container: :mod:`vmafdistill.io.picture_bytes`)."""
    qp: float | None = None
    """The quantizer the student read for the shot (1 decimal): its scene's bits-weighted
    slice QP (``scene_qp``, H.264 QP units; every window of one scene shows the same), not
    the samples table's per-shot ``qp``; only for students that read it (None: the key is
    left out of the JSON)."""
    pred_vmaf: float | None
    """Predicted VMAF (2 decimals), or None when the shot got no prediction (see ``flags``)."""
    interval: tuple[float, float] | None
    """Conformal interval ``(lower, upper)`` clipped to [0, 100] (2 decimals), or None (no
    prediction, or a student exported without intervals)."""
    band: str
    """``green`` / ``amber`` / ``red`` (:func:`band_of` of the rounded ``pred_vmaf``, or of
    the interval's rounded lower end in guard mode), ``unknown`` without a prediction."""
    issue: str
    """Likely cause (:func:`issue_of`, one of :data:`ISSUES`); ``invalid_features`` without a
    prediction."""
    flags: tuple[str, ...] = ()
    """Why to read the record with care (``nan:<feature>``, ``nan:prediction``,
    ``outside_training:<feature>``, ``unseen_codec:<codec>``, ``short_shot:<n>f``,
    ``hidden_frames:<k>``, ``issue_unmeasured``, ``no_block_qp``, ``picture_format:<fmt>``,
    ``frame_rate:<fps>``, ``picture_changed[:WxH]``, ``truncated``)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: keys in field order, ``qp`` only when set, sequences as lists."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "qp" and value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ShotRecord:
        """The record of a :meth:`to_dict` object (or its JSON); unknown keys are an error."""
        unknown = set(d) - set(RECORD_KEYS)
        if unknown:
            raise ValueError(f"not shot-record keys: {sorted(unknown)}")
        kw = dict(d)
        if kw.get("interval") is not None:
            lo, hi = kw["interval"]
            kw["interval"] = (lo, hi)
        kw["flags"] = tuple(kw.get("flags") or ())
        return cls(**kw)

    def invalid(self, flags: Iterable[str]) -> ShotRecord:
        """This record without a prediction (band ``unknown``, issue ``invalid_features``),
        ``flags`` appended to its own."""
        return replace(self, pred_vmaf=None, interval=None, band=UNKNOWN_BAND,
                       issue=INVALID_ISSUE, flags=(*self.flags, *flags))

    def flagged(self, *flags: str) -> ShotRecord:
        """This record with ``flags`` appended."""
        return replace(self, flags=(*self.flags, *flags))


#: The keys a :class:`ShotRecord`'s JSON object can have, in order (``qp`` only when set).
RECORD_KEYS: tuple[str, ...] = tuple(f.name for f in fields(ShotRecord))
