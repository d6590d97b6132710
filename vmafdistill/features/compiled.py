"""Which implementation computes the per-frame pixel sums: the compiled kernel or numpy.

The compiled kernel (``_pixstats``, built from ``_pixstats.c`` when the package is installed
with a C compiler) computes the same integer sums as the numpy pass in
:mod:`~vmafdistill.features.frame_numpy`, 3-4x faster, and releases the GIL while it works.
It handles 2-D uint8/uint16 planes whose rows are contiguous; anything else, an install
without a compiler, or ``VMAFDISTILL_PIXEL_KERNEL=numpy`` in the environment (for comparisons)
uses numpy. The Sobel magnitudes are the only float sum: the kernel adds the same float64
roots in another order than numpy's pairwise sum (relative difference below 1e-12, the
torch twin's contract); every other sum is an exact integer and identical.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import VmafDistillError

__all__ = ["ENV_VAR", "forced", "kernel", "kernel_name", "plane_ok"]

#: Set to ``numpy`` to use the numpy pass even where the compiled kernel is built.
ENV_VAR = "VMAFDISTILL_PIXEL_KERNEL"


def _import_kernel(why: str) -> ModuleType:
    """The compiled module; ImportError saying ``why`` it was wanted when it is not built."""
    try:
        from . import _pixstats  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ImportError(f"{why} but the compiled kernel is not built ({exc}); reinstall "
                          "vmafdistill where a C compiler is found") from exc
    return _pixstats


def _load() -> ModuleType | None:
    choice = (os.environ.get(ENV_VAR) or "auto").strip().lower()  # empty: unset, as the
    # other VMAFDISTILL_* settings read it
    if choice not in ("auto", "c", "numpy"):
        raise VmafDistillError(f"{ENV_VAR}={choice!r}: expected auto, c or numpy")
    if choice == "numpy":
        return None
    try:
        return _import_kernel(f"{ENV_VAR}=c")
    except ImportError as exc:
        if choice == "c":  # asked for in the environment: a one-line error, not a traceback
            raise VmafDistillError(str(exc)) from None
        return None


_KERNEL = _load()


@contextlib.contextmanager
def forced(name: str) -> Iterator[None]:
    """Within the block, compute the pixel sums with ``name`` (``"c"`` or ``"numpy"``) in this
    process: for side-by-side comparisons and benchmarks. Process-wide, not thread-safe.
    ``"c"`` raises ImportError when the compiled kernel is not built."""
    global _KERNEL
    if name not in ("c", "numpy"):
        raise ValueError(f"kernel must be 'c' or 'numpy', got {name!r}")
    before = _KERNEL
    _KERNEL = None if name == "numpy" else _import_kernel("forced('c')")
    try:
        yield
    finally:
        _KERNEL = before


def kernel() -> ModuleType | None:
    """The compiled module (``frame_sums``, ``histogram``, ``diff_sums``), or None for numpy."""
    return _KERNEL


def kernel_name() -> str:
    """``"c"`` or ``"numpy"``: what computes the pixel sums in this process."""
    return "numpy" if _KERNEL is None else "c"


def plane_ok(*planes: Any) -> bool:
    """Whether the compiled kernel takes these arrays: 2-D uint8 or uint16 (all the same dtype)
    with contiguous rows, and the kernel is loaded."""
    if _KERNEL is None:
        return False
    dtype = None
    for p in planes:
        if not isinstance(p, np.ndarray) or p.ndim != 2 or p.dtype not in (np.uint8, np.uint16):
            return False
        if p.strides[1] != p.itemsize or (dtype is not None and p.dtype != dtype):
            return False
        dtype = p.dtype
    return True
