"""Which implementation exact mode runs on a tensor: compiled CPU kernels or torch operations."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os

import torch

from ...errors import VmafDistillError

#: ``auto`` (default): compiled kernels for CPU tensors, torch on other devices; ``torch``:
#: torch everywhere (the GPU path, also on CPU); ``compiled``: as ``auto``, but an error when
#: numba is missing instead of the torch path.
ENV_VAR = "VMAFDISTILL_EXACT_KERNELS"


@functools.cache
def _numba_error() -> str | None:
    """Why numba cannot be used here (``None`` when it imports)."""
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed"
    try:
        importlib.import_module("numba")
    except Exception as exc:  # e.g. a numba build older than the installed NumPy
        return f"numba does not import ({type(exc).__name__}: {exc})"
    return None


def use_compiled_kernels(x: torch.Tensor) -> bool:
    """Whether exact mode computes ``x``'s features with :mod:`.cpu_kernels`."""
    choice = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if choice not in ("auto", "torch", "compiled"):
        # a one-line error naming the variable (a ValueError was a traceback mid-decode)
        raise VmafDistillError(f"{ENV_VAR}={choice!r}: expected auto, torch or compiled")
    if choice == "torch" or x.device.type != "cpu":
        return False
    error = _numba_error()
    if error is not None:
        if choice == "compiled":
            raise VmafDistillError(f"{ENV_VAR}=compiled, but {error}")
        return False
    return True
