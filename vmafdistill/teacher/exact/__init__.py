"""Exact mode: libvmaf's integer (fixed-point) VIF, ADM and motion, reproduced bit for bit.

Pure functions on integer-valued tensors ``(N, H, W)`` (decoded samples, 8..16 bits), CPU or
GPU, batched. Integer arithmetic has no rounding order, so the filters run as float64 GEMMs
(:mod:`.intfilter`), which hold every intermediate exactly.
"""

from .features import (
    EXACT_METRICS,
    ExactOptions,
    exact_features,
    exact_frame_features,
    finish_motion,
    printed_names,
)
from .integer_adm import IntegerAdmOptions, integer_adm
from .integer_vif import IntegerVifOptions, integer_vif

__all__ = [
    "EXACT_METRICS",
    "ExactOptions",
    "IntegerAdmOptions",
    "IntegerVifOptions",
    "exact_features",
    "exact_frame_features",
    "finish_motion",
    "integer_adm",
    "integer_vif",
    "printed_names",
]
