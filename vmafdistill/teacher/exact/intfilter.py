"""Exact integer FIR filtering in float64: blocked band-matrix GEMMs instead of shifted adds.

libvmaf's fixed-point extractors filter integer samples with integer taps and then shift.
Every product and every partial sum of those filters is an integer below 2^53 here, so float64
arithmetic holds them exactly *in any summation order*: a GEMM (BLAS, blocked, FMA, any thread
split) returns the very integers libvmaf's scalar loops produce. That is what lets exact mode
use matrix products, which run far faster than elementwise shifted adds.

The filtered axis is cut into blocks of ``BLOCK`` outputs; block ``b`` is one GEMM of the input
samples it reads (a plain slice, no padding copy) with a small matrix that holds the taps, the
mirrored borders folded in (sample ``-i`` is sample ``i``, sample ``n - 1 + i`` is
``n - 1 - i``), and optionally only every second output (the decimating passes).

The taps may be scaled by ``2^-shift`` (``shift=`` below): every product and partial sum is
then the same integer times ``2^-shift``, which float64 holds just as exactly (a power-of-two
scaling only moves the exponent), so a following rounding shift ``(x + 2^(shift-1)) >> shift``
costs one ``add_(0.5).floor_()`` (:func:`round_half_up_`) instead of three passes.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

#: Output samples per GEMM block. Larger blocks waste more multiplications on zeros
#: (``block + 2r`` per output instead of ``2r + 1``), smaller ones make the GEMMs too thin.
BLOCK = 64


@functools.lru_cache(maxsize=256)
def _plan(
    taps: tuple[int, ...], n: int, step: int, device: str, shift: int = 0
) -> tuple[tuple[int, int, int, int, torch.Tensor], ...]:
    """Blocks ``(out_lo, out_hi, in_lo, in_hi, matrix (in_hi - in_lo, out_hi - out_lo))``.

    Outputs are the filtered samples ``0, step, 2 step, ...`` (``n // step`` of them when
    ``step == 2``, libvmaf's decimation keeps ``n // 2``), scaled by ``2^-shift``.
    """
    r = len(taps) // 2
    if n <= r:
        raise ValueError(f"a {len(taps)}-tap filter needs more than {r} samples, got {n}")
    n_out = n if step == 1 else n // step
    tap = np.asarray(taps, dtype=np.float64)
    plans = []
    for o_lo in range(0, n_out, BLOCK):
        o_hi = min(o_lo + BLOCK, n_out)
        # rows[j, k]: the input sample output o_lo + j reads with tap k (mirrored).
        idx = (np.arange(o_lo, o_hi)[:, None] * step - r + np.arange(len(taps))[None, :])
        idx = np.where(idx < 0, -idx, idx)
        idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)
        i_lo, i_hi = int(idx.min()), int(idx.max()) + 1
        m = np.zeros((i_hi - i_lo, o_hi - o_lo), dtype=np.float64)
        cols = np.broadcast_to(np.arange(o_hi - o_lo)[:, None], idx.shape)
        np.add.at(m, (idx - i_lo, cols), np.broadcast_to(tap, idx.shape))  # folded borders add
        if shift:
            m *= 2.0**-shift  # exact: integers times a power of two
        plans.append((o_lo, o_hi, i_lo, i_hi, torch.from_numpy(m).to(device)))
    return tuple(plans)


def filter_rows(
    x: torch.Tensor, taps: tuple[int, ...], *, step: int = 1, shift: int = 0
) -> torch.Tensor:
    """Integer FIR along the last axis of ``(..., W)`` float64, mirrored borders.

    ``step=2`` returns only the even outputs (``W // 2`` of them); ``shift`` scales the result
    by ``2^-shift`` (exactly; unrounded).
    """
    lead, w = x.shape[:-1], x.shape[-1]
    x2 = x.reshape(-1, w)
    plans = _plan(taps, w, step, str(x.device), shift)
    out = torch.empty(x2.shape[0], plans[-1][1], dtype=x.dtype, device=x.device)
    for o_lo, o_hi, i_lo, i_hi, m in plans:
        # A column slice is a strided matrix BLAS reads in place.
        out[:, o_lo:o_hi] = x2[:, i_lo:i_hi] @ m
    return out.reshape(*lead, out.shape[-1])


def filter_cols(
    x: torch.Tensor, taps: tuple[int, ...], *, step: int = 1, shift: int = 0
) -> torch.Tensor:
    """Integer FIR along the second-to-last axis of ``(..., H, W)`` float64, mirrored.

    ``step=2`` returns only the even output rows (``H // 2`` of them); ``shift`` scales the
    result by ``2^-shift`` (exactly; unrounded).
    """
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    x3 = x.reshape(-1, h, w)
    plans = _plan(taps, h, step, str(x.device), shift)
    out = torch.empty(x3.shape[0], plans[-1][1], w, dtype=x.dtype, device=x.device)
    for o_lo, o_hi, i_lo, i_hi, m in plans:
        # Rows i_lo..i_hi of every plane are contiguous (K, W) matrices: a batched GEMM.
        out[:, o_lo:o_hi] = torch.matmul(m.T, x3[:, i_lo:i_hi])
    return out.reshape(*lead, out.shape[-2], w)


def round_half_up_(x: torch.Tensor) -> torch.Tensor:
    """``floor(x + 0.5)`` in place: ``(s + 2^(k-1)) >> k`` of an integer ``s`` given as the
    exact float64 ``x = s 2^-k`` (from a filter with ``shift=k``), ``k >= 1``."""
    return x.add_(0.5).floor_()
