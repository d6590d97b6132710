"""Exact integer FIR filtering in float64: blocked band-matrix GEMMs instead of shifted adds.

libvmaf's fixed-point extractors filter integer samples with integer taps and then shift.
Every product and every partial sum of those filters is an integer below 2^53 here, so float64
arithmetic holds them exactly *in any summation order*: a GEMM (BLAS, blocked, FMA, any thread
split) returns the very integers libvmaf's scalar loops produce. That is what lets exact mode
use matrix products, which run an order of magnitude faster than elementwise shifted adds.

A filter along one axis is computed block by block: the padded axis is cut into overlapping
windows of ``block + 2r`` samples (``r`` the radius) with :meth:`torch.Tensor.unfold` and each
window is multiplied by one ``(block + 2r, block)`` band matrix.
"""

from __future__ import annotations

import functools

import torch
from torch.nn import functional as F  # noqa: N812 - the usual torch spelling

#: Output samples per band-matrix block. Larger blocks waste more multiplications on zeros
#: (``block + 2r`` per output instead of ``2r + 1``), smaller ones make the GEMMs too thin.
BLOCK = 64


@functools.lru_cache(maxsize=64)
def _band(taps: tuple[int, ...], block: int, device: str) -> torch.Tensor:
    """``(block + 2r, block)`` float64 matrix: column ``j`` holds the taps at rows ``j..j+2r``."""
    k = len(taps)
    m = torch.zeros(block + k - 1, block, dtype=torch.float64)
    t = torch.tensor(taps, dtype=torch.float64)
    for j in range(block):
        m[j : j + k, j] = t
    return m.to(device)


def reflect_pad(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Mirror ``r`` samples at both ends of ``dim`` without repeating the edge (``-i -> i``)."""
    if r == 0:
        return x
    n = x.shape[dim]
    if n <= r:
        raise ValueError(f"a {2 * r + 1}-tap filter needs more than {r} samples, got {n}")
    idx = torch.cat(
        [
            torch.arange(r, 0, -1),
            torch.arange(n),
            torch.arange(n - 2, n - 2 - r, -1),
        ]
    ).to(x.device)
    return x.index_select(dim, idx)


def filter_rows(x: torch.Tensor, taps: tuple[int, ...], *, padded: bool = False) -> torch.Tensor:
    """Integer FIR along the last axis of ``(..., W)`` float64, mirrored borders, unshifted.

    ``padded=True`` means ``x`` already carries the ``r`` mirrored samples at both ends.
    """
    r = len(taps) // 2
    xp = x if padded else reflect_pad(x, r, -1)
    w = xp.shape[-1] - 2 * r
    block = min(BLOCK, w)
    nb = -(-w // block)
    extra = nb * block - w
    if extra:
        xp = F.pad(xp, (0, extra))
    lead = xp.shape[:-1]
    # One plain 2-D GEMM (a batched matmul over strided windows falls back to a slow kernel).
    win = xp.unfold(-1, block + 2 * r, block).reshape(-1, block + 2 * r)
    out = (win @ _band(taps, block, str(x.device))).reshape(*lead, nb * block)
    return out[..., :w] if extra else out


def filter_cols(x: torch.Tensor, taps: tuple[int, ...]) -> torch.Tensor:
    """Integer FIR along the second-to-last axis of ``(..., H, W)`` float64, mirrored, unshifted."""
    r = len(taps) // 2
    xp = reflect_pad(x, r, -2)
    h = xp.shape[-2] - 2 * r
    block = min(BLOCK, h)
    nb = -(-h // block)
    extra = nb * block - h
    if extra:
        xp = F.pad(xp, (0, 0, 0, extra))
    lead, w = xp.shape[:-2], xp.shape[-1]
    k = block + 2 * r
    # (M, nb, W, k) windows -> (k, nb * M * W): one plain 2-D GEMM with the band on the left.
    win = xp.reshape(-1, *xp.shape[-2:]).unfold(-2, k, block)
    win = win.permute(3, 1, 0, 2).reshape(k, -1)
    out = _band(taps, block, str(x.device)).T @ win  # (block, nb * M * W)
    out = out.reshape(block, nb, -1, w).permute(2, 1, 0, 3).reshape(*lead, nb * block, w)
    return out[..., :h, :] if extra else out


def shift_round(x: torch.Tensor, shift: int, add: int | None = None) -> torch.Tensor:
    """``(x + add) >> shift`` on integer-valued float64 (floor, as C's shift of a signed value).

    ``add`` defaults to ``1 << (shift - 1)``: round half up. Scaling by a power of two and
    ``floor`` are exact in float64.
    """
    if shift == 0:
        return x if not add else x + add
    if add is None:
        add = 1 << (shift - 1)
    return torch.floor((x + add) * (1.0 / (1 << shift)))
