"""Exact mode: libvmaf's integer (fixed-point) VIF, ADM and motion, reproduced bit for bit.

Pure functions on integer-valued tensors ``(N, H, W)`` (decoded samples, 8..16 bits), CPU or
GPU, batched. Integer arithmetic has no rounding order, so the filters run as float64 GEMMs
(:mod:`.intfilter`), which hold every intermediate exactly.
"""

from .integer_vif import IntegerVifOptions, integer_vif

__all__ = ["IntegerVifOptions", "integer_vif"]
