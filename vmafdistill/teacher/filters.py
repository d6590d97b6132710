"""Separable filtering and the db2 wavelet step used by VIF, ADM and motion.

Everything here is a pure function of batched tensors shaped ``(N, H, W)``. Border handling
reproduces libvmaf's float extractors exactly:

* Gaussian/blur filters mirror without repeating the edge sample (``x[-1] -> x[1]``,
  ``x[H] -> x[H-2]``), i.e. ``torch``'s ``reflect`` padding.
* The db2 DWT mirrors the leading edge the same way but repeats the trailing edge sample
  (``x[H] -> x[H-1]``), as libvmaf's ``dwt2_src_indices_filt`` does.

Why the default filter is a plain sequence of multiply-adds on blocks of rows: libvmaf sums
the taps in order without fused multiply-adds, and VIF at coarse scales is sensitive to that
rounding (GEMM- or conv-based filters move VMAF by up to ~1e-3 on real clips; the sequential
form reproduces libvmaf bit for bit). Run on blocks of a few rows, every intermediate stays in
cache, which makes it as fast as the banded-GEMM formulation (also kept, as ``"banded"``)
and ~4x faster than ``conv2d`` on a single-channel 720p frame.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812 - the usual torch spelling

# db2 analysis filters exactly as libvmaf lists them (float32 constants in its float path).
DB2_LO = (0.482962913144690, 0.836516303737469, 0.224143868041857, -0.129409522550921)
DB2_HI = (-0.129409522550921, -0.224143868041857, 0.836516303737469, -0.482962913144690)

#: Motion blur taps (libvmaf ``FILTER_5_s``).
MOTION_FILTER_5 = (0.054488685, 0.244201342, 0.402619947, 0.244201342, 0.054488685)

#: Output rows (or columns) per banded-matrix tile; 64 balances GEMM efficiency and overhead.
DEFAULT_TILE = 64
#: Output rows per block of the exact filter: small enough that a block's intermediates stay
#: in the CPU's L2 cache at 1080p, large enough to keep Python overhead small.
DEFAULT_BLOCK_ROWS = 32
#: Frame width the block height above is tuned for; narrower frames use taller blocks.
DEFAULT_BLOCK_WIDTH = 1280


#: The ways :func:`separable_filter` computes a filter (``exact``: libvmaf's order of sums).
FILTER_METHODS = ("exact", "banded", "conv")


def check_filter_method(method: str) -> None:
    """Raise ValueError for a ``method`` not in :data:`FILTER_METHODS`."""
    if method not in FILTER_METHODS:
        raise ValueError(f"unknown filter method {method!r} (expected "
                         f"{', '.join(FILTER_METHODS)})")

def vif_filter_width(scale: int, kernelscale: float = 1.0) -> int:
    """Width of the VIF Gaussian at ``scale`` (17, 9, 5, 3 for kernelscale 1)."""
    n = (1 << (4 - scale)) + 1
    width = math.ceil(n * kernelscale)
    if width % 2 == 0:
        width += 1
    return max(width, 3)


@functools.lru_cache(maxsize=64)
def vif_gaussian_taps(scale: int, kernelscale: float = 1.0) -> tuple[float, ...]:
    """Normalised 1-D Gaussian taps of VIF ``scale`` (sigma = width / 5), as libvmaf builds them.

    libvmaf evaluates the kernel with a mix of float and double arithmetic and normalises it
    in float32, so its taps sum to 1 only within a few ulps; those ulps shift the local
    variances VIF is built on, so we reproduce the computation step by step.
    """
    f32 = np.float32
    width = vif_filter_width(scale, kernelscale)
    stdev = f32(width / f32(5.0))
    half = (width - 1) // 2
    den = f32(1.0 / (float(stdev) * math.sqrt(2.0 * math.pi)))
    raw = []
    total = f32(0.0)
    for i in range(width):
        x = float(i - half)
        num = f32(math.exp(-0.5 * x / float(stdev) * x / float(stdev)))
        value = f32(num / den)
        raw.append(value)
        total = f32(total + value)
    return tuple(float(f32(v / total)) for v in raw)


def _band_matrix(taps: torch.Tensor, tile: int) -> torch.Tensor:
    """(tile, tile + K - 1) matrix whose row ``i`` holds the taps at columns ``i .. i+K-1``."""
    k = taps.numel()
    band = torch.zeros(tile, tile + k - 1, dtype=taps.dtype, device=taps.device)
    rows = torch.arange(tile, device=taps.device)
    for j in range(k):
        band[rows, rows + j] = taps[j]
    return band


def _filter_rows_banded(x: torch.Tensor, taps: torch.Tensor, tile: int) -> torch.Tensor:
    """Valid 1-D correlation along dim -2 of an already padded ``(B, H + K - 1, W)`` tensor."""
    k = taps.numel()
    b, hp, w = x.shape
    h = hp - (k - 1)
    n_tiles = -(-h // tile)
    extra = n_tiles * tile - h
    if extra:
        x = F.pad(x, (0, 0, 0, extra))  # zero rows feed only discarded outputs
    x = x.contiguous()
    sb, sh, sw = x.stride()
    windows = x.as_strided((b, n_tiles, tile + k - 1, w), (sb, tile * sh, sh, sw))
    out = torch.matmul(_band_matrix(taps, tile), windows)  # (B, n_tiles, tile, W)
    return out.reshape(b, n_tiles * tile, w)[:, :h]


def _filter_cols_banded(x: torch.Tensor, taps: torch.Tensor, tile: int) -> torch.Tensor:
    """Valid 1-D correlation along dim -1 of an already padded ``(B, H, W + K - 1)`` tensor."""
    k = taps.numel()
    b, h, wp = x.shape
    w = wp - (k - 1)
    n_tiles = -(-w // tile)
    extra = n_tiles * tile - w
    if extra:
        x = F.pad(x, (0, extra))
    x = x.contiguous()
    sb, sh, sw = x.stride()
    windows = x.as_strided((b, h, n_tiles, tile + k - 1), (sb, sh, tile * sw, sw))
    out = torch.matmul(windows, _band_matrix(taps, tile).T)  # (B, H, n_tiles, tile)
    return out.reshape(b, h, n_tiles * tile)[:, :, :w]


def reflect_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Mirror-pad ``(N, H, W)`` without repeating edge samples (libvmaf's convolution border)."""
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x.unsqueeze(1), (pad_w, pad_w, pad_h, pad_h), mode="reflect").squeeze(1)


def correlate_sequential(
    p: torch.Tensor, taps: tuple[float, ...], dim: int, *, step: int = 1
) -> torch.Tensor:
    """Valid 1-D correlation of padded ``p`` along ``dim``, summing taps in order.

    Each product is rounded before it is added, first tap first, exactly like libvmaf's float
    convolutions (which are not fused multiply-adds). In float32 this reproduces libvmaf's
    rounding bit for bit, which matters: VIF's local variances are differences of large,
    nearly equal moments, and a different summation order moves coarse-scale VIF by ~1e-5.
    ``step=2`` computes only every other output (filter-then-decimate at half the cost).
    """
    dim = dim % p.dim()
    n_valid = p.shape[dim] - (len(taps) - 1)
    n_out = -(-n_valid // step)
    span = n_out  # step == 1

    if step == 1:

        def tap(k: int) -> torch.Tensor:
            return p.narrow(dim, k, span)

    else:
        # De-interleave once into contiguous phases: every tap then reads unit-stride memory
        # (strided reads along the innermost dimension defeat vectorisation).
        every = (slice(None),) * dim + (slice(None, None, step),)
        phases = [p.narrow(dim, ph, p.shape[dim] - ph)[every].contiguous() for ph in range(step)]

        def tap(k: int) -> torch.Tensor:
            return phases[k % step].narrow(dim, k // step, n_out)

    acc = tap(0) * taps[0]
    inplace = not (torch.is_grad_enabled() and p.requires_grad)
    for k in range(1, len(taps)):
        term = tap(k) * taps[k]
        acc = acc.add_(term) if inplace else acc + term
    return acc


def separable_filter(
    x: torch.Tensor,
    taps: tuple[float, ...],
    *,
    method: str = "exact",
    tile: int = DEFAULT_TILE,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    decimate: bool = False,
) -> torch.Tensor:
    """Filter ``(N, H, W)`` with the same symmetric 1-D taps vertically then horizontally.

    ``decimate=True`` returns only even rows and columns (``floor`` of half the size each),
    computing just those outputs.

    Borders mirror without repeating the edge sample, like libvmaf's float convolutions.
    ``method``:

    * ``"exact"`` (default): libvmaf's summation order (:func:`correlate_sequential`), run on
      blocks of ``block_rows`` output rows so every intermediate stays in cache;
    * ``"banded"``: tiled banded GEMMs (fused multiply-adds: same maths, other rounding);
    * ``"conv"``: ``conv2d``, an independent reference for tests.
    """
    radius = len(taps) // 2
    if min(x.shape[-2:]) <= radius:
        raise ValueError(f"frame {tuple(x.shape[-2:])} is too small for a {len(taps)}-tap filter")
    padded = reflect_pad(x, radius, radius)
    height, width = x.shape[-2:]
    if method == "exact":
        step = 2 if decimate else 1
        block_rows += block_rows % 2  # even block starts keep the decimation grid aligned
        out_h = height // 2 * 2 if decimate else height
        blocks = []
        for start in range(0, out_h, block_rows):
            stop = min(out_h, start + block_rows)
            rows = padded[:, start : stop + 2 * radius - (step - 1)]
            vertical = correlate_sequential(rows, taps, dim=-2, step=step)
            if decimate:
                vertical = vertical[..., : (width // 2) * 2 - 1 + 2 * radius]
            blocks.append(correlate_sequential(vertical, taps, dim=-1, step=step))
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-2)
    if decimate:
        full = separable_filter(x, taps, method=method, tile=tile)
        return full[:, : height // 2 * 2 : 2, : width // 2 * 2 : 2]
    check_filter_method(method)  # "exact" returned above
    t = torch.as_tensor(taps, dtype=x.dtype, device=x.device)
    # conv2d and matmul are ops autocast lowers: under torch.autocast (a mixed-precision
    # training loop) they ran in bfloat16/float16 and moved VMAF by up to 9 points, unsaid
    with torch.autocast(x.device.type, enabled=False):
        if method == "conv":
            k = t.numel()
            y = F.conv2d(padded.unsqueeze(1), t.view(1, 1, k, 1))
            return F.conv2d(y, t.view(1, 1, 1, k)).squeeze(1)
        y = _filter_rows_banded(padded, t, tile)
        return _filter_cols_banded(y, t, tile)


def _dwt_pad(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Pad for libvmaf's ``dwt2_src_indices_filt``: output ``i`` reads rows ``2i-1 .. 2i+2``.

    Row -1 mirrors to row 1; rows past the end repeat the edge (``n -> n-1``, ``n+1 -> n-2``).
    """
    n = x.shape[dim]
    if n < 2:
        raise ValueError(f"cannot take a DWT of a dimension of size {n}")
    parts = [x.narrow(dim, 1, 1), x, x.narrow(dim, n - 1, 1)]
    if n % 2 == 1:  # odd sizes read one more row past the end
        parts.append(x.narrow(dim, n - 2, 1))
    return torch.cat(parts, dim=dim)


def _dwt_1d(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One db2 analysis step with decimation along ``dim``: (low-pass, high-pass).

    Products are summed in libvmaf's order (tap 0 first), so float32 results match its own.
    """
    n_out = (x.shape[dim] + 1) // 2
    p = _dwt_pad(x, dim)
    every_other = (slice(None),) * (dim % p.dim()) + (slice(None, None, 2),)
    taps = [p.narrow(dim, k, 2 * n_out - 1)[every_other] for k in range(4)]
    lo = DB2_LO[0] * taps[0] + DB2_LO[1] * taps[1] + DB2_LO[2] * taps[2] + DB2_LO[3] * taps[3]
    hi = DB2_HI[0] * taps[0] + DB2_HI[1] * taps[1] + DB2_HI[2] * taps[2] + DB2_HI[3] * taps[3]
    return lo, hi


def dwt2_db2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Single-level 2-D db2 DWT of ``(N, H, W)`` as libvmaf's ADM computes it.

    Returns ``(a, v, h, d)`` bands of shape ``(N, ceil(H/2), ceil(W/2))``: ``a`` low/low,
    ``v`` vertical low-pass then horizontal high-pass, ``h`` vertical high-pass then
    horizontal low-pass, ``d`` high/high (libvmaf's naming).
    """
    lo, hi = _dwt_1d(x, dim=-2)
    a, v = _dwt_1d(lo, dim=-1)
    h, d = _dwt_1d(hi, dim=-1)
    return a, v, h, d
