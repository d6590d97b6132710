"""Per-frame no-reference student features with batched torch ops (corpus building).

Same definitions as :mod:`vmafdistill.features.frame_numpy` (the edge runtime): this module only
computes the per-frame integer sums (:class:`~vmafdistill.features.frame_numpy.RawStats`) with
tensor ops over a whole (N,H,W) batch on any device, then calls the shared
:func:`~vmafdistill.features.frame_numpy.finalize`. Every pixel-level step is integer arithmetic
with int64 accumulators, so the sums equal numpy's exactly; only the float64 sum of Sobel
magnitudes depends on the reduction order (relative differences ~1e-15).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .frame_numpy import (
    DEFAULT_PARAMS,
    FEATURE_NAMES,
    FeatureParams,
    RawStats,
    check_bit_depth,
    check_shapes,
    finalize,
    pool_shot,
    pool_shots,
    work_dtypes,
)

__all__ = [
    "FEATURE_NAMES",
    "FeatureParams",
    "frame_features",
    "pool_shot",
    "pool_shots",
    "raw_stats",
    "video_features",
]

_TORCH_DTYPES = {"int16": torch.int16, "int32": torch.int32, "int64": torch.int64}


def _to_int_tensor(x: Any, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    """Integer tensor of ``dtype`` on ``device`` (numpy uint8 is moved first: 2x less traffic)."""
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"frames must hold integer code values, got dtype {x.dtype}")
        t = x
    else:
        arr = np.asarray(x)
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"frames must hold integer code values, got dtype {arr.dtype}")
        if arr.dtype != np.uint8:
            # uint16 tensors support few ops; convert on the numpy side. Values that do not fit
            # wrap to negatives and are caught by the range check.
            arr = arr.astype(str(dtype).removeprefix("torch."), copy=False)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if device is not None:
        t = t.to(device)
    return t.to(dtype)


def _sums(x: torch.Tensor, sq: torch.dtype | None = None) -> torch.Tensor:
    """Per-frame int64 sum over the last two dims (optionally of x² computed in ``sq``)."""
    if sq is not None:
        x = x.to(sq)
        x = x * x
    return x.sum(dim=(-2, -1), dtype=torch.int64)


def _block_sums(
    yi: torch.Tensor, p: torch.Tensor | None, nbins: int, thr_sq: int, bs: int, sq: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hist (n,nbins) int64, int sums (n,9) int64, Sobel magnitude sums (n,) float64)."""
    n = yi.shape[0]
    if n == 1:
        # bincount straight on the small integers: no int64 copy of the frame.
        hist = torch.bincount(yi.view(-1), minlength=nbins).view(1, nbins)
    else:
        # One bincount for the batch: frame i's codes are offset by i * nbins.
        offs = torch.arange(n, device=yi.device, dtype=torch.int64).mul_(nbins).view(n, 1, 1)
        hist = torch.bincount((yi.to(torch.int64) + offs).view(-1), minlength=n * nbins)
        hist = hist.view(n, nbins)

    # Sobel (separable, valid interior): gx = (1,2,1)ᵀ ⊗ (-1,0,1), gy its transpose.
    d = yi[:, :, 2:] - yi[:, :, :-2]
    gx = d[:, :-2] + d[:, 2:]
    gx += d[:, 1:-1]
    gx += d[:, 1:-1]
    d = yi[:, 2:] - yi[:, :-2]
    gy = d[:, :, :-2] + d[:, :, 2:]
    gy += d[:, :, 1:-1]
    gy += d[:, :, 1:-1]
    del d
    s = gx.to(sq)
    s *= s
    t = gy.to(sq)
    t *= t
    s += t
    del gx, gy, t
    # Integer threshold: comparing with a Python float would promote to float32 in torch.
    edges = _sums(s > thr_sq)
    sf = s.to(torch.float64)
    # Up to 12 bits every partial sum of these integers is < 2**53 (even at 8K), so the
    # float64 sum is exact, and cheaper on CPU than torch's int64 reduction.
    exact_in_f64 = sq == torch.int32
    sobel_sq = sf.sum(dim=(-2, -1)).to(torch.int64) if exact_in_f64 else _sums(s)
    del s
    sobel = sf.sqrt_().sum(dim=(-2, -1))
    del sf

    # 4-neighbour Laplacian on the interior.
    c = yi[:, 1:-1, 1:-1]
    lap = yi[:, :-2, 1:-1] + yi[:, 2:, 1:-1]
    lap += yi[:, 1:-1, :-2]
    lap += yi[:, 1:-1, 2:]
    lap -= c
    lap -= c
    lap -= c
    lap -= c
    lap_sum, lap_sq = _sums(lap), _sums(lap, sq)
    del lap

    # Blockiness steps (boundary = every bs-th step starting at bs-1).
    a = (yi[:, :, 1:] - yi[:, :, :-1]).abs_()
    blk_b = _sums(a[:, :, bs - 1 :: bs])
    blk_all = _sums(a)
    a = (yi[:, 1:] - yi[:, :-1]).abs_()
    blk_b += _sums(a[:, bs - 1 :: bs])
    blk_all += _sums(a)
    del a

    # Frame differences: within the block, plus frame 0 against ``p`` when given (else 0).
    zero = torch.zeros(1, dtype=torch.int64, device=yi.device)
    td: list[list[torch.Tensor]] = [[zero], [zero], [zero]]
    if p is not None:
        diff = (yi[0] - p)[None]
        td = [[_sums(diff.abs())], [_sums(diff)], [_sums(diff, sq)]]
    if n > 1:
        diff = yi[1:] - yi[:-1]
        td[0].append(_sums(diff.abs()))
        td[1].append(_sums(diff))
        td[2].append(_sums(diff, sq))
        del diff
    ints = torch.stack(
        [sobel_sq, edges, lap_sum, lap_sq, blk_b, blk_all - blk_b, *(torch.cat(x) for x in td)],
        dim=1,
    )
    return hist, ints, sobel


@torch.inference_mode()
def raw_stats(
    y: Any,
    bit_depth: int,
    prev: Any = None,
    *,
    params: FeatureParams | None = None,
    device: torch.device | str | None = None,
    batch: int | None = None,
) -> RawStats:
    """Per-frame integer sums of ``y`` ((N,H,W) or (H,W)) with batched torch ops.

    ``y``/``prev`` may be numpy arrays or tensors; ``device`` defaults to the tensor's own
    device (CPU for numpy input). ``batch`` is how many frames one set of tensor ops covers:
    default all of them on an accelerator, 1 on CPU (a whole 16-frame 720p chunk at once is
    ~4x slower there: its intermediates fall out of cache). The result lives in numpy.
    """
    params = params or DEFAULT_PARAMS
    b = check_bit_depth(bit_depth)
    dt_name, sq_name = work_dtypes(b)
    dt, sq = _TORCH_DTYPES[dt_name], _TORCH_DTYPES[sq_name]
    yi = _to_int_tensor(y, dt, device)
    if yi.ndim == 2:
        yi = yi[None]
    p = None if prev is None else _to_int_tensor(prev, dt, yi.device)
    check_shapes(tuple(yi.shape), None if p is None else tuple(p.shape))
    n, h, w = yi.shape
    nbins = 1 << b
    lo_hi = torch.stack([yi.min(), yi.max()] + ([p.min(), p.max()] if p is not None else []))
    lo_hi_list = lo_hi.tolist()
    if min(lo_hi_list) < 0 or max(lo_hi_list) >= nbins:
        raise ValueError(f"sample values must be in 0..{nbins - 1} for bit depth {b}")
    if batch is None:
        batch = 1 if yi.device.type == "cpu" else n
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")

    thr_sq = params.edge_threshold_sq(b)
    parts = []
    for i in range(0, n, batch):
        before = p if i == 0 else yi[i - 1]
        parts.append(_block_sums(yi[i : i + batch], before, nbins, thr_sq, params.block_size, sq))
    hist = torch.cat([q[0] for q in parts]).cpu().numpy().astype(np.int64, copy=False)
    ints = torch.cat([q[1] for q in parts]).cpu().numpy()
    sobel = torch.cat([q[2] for q in parts]).cpu().numpy().astype(np.float64, copy=False)
    has_prev = np.ones(n, dtype=bool)
    has_prev[0] = p is not None
    return RawStats(
        bit_depth=b,
        height=int(h),
        width=int(w),
        hist=hist,
        sobel_sum=sobel,
        sobel_sq_sum=ints[:, 0].copy(),
        edge_count=ints[:, 1].copy(),
        lap_sum=ints[:, 2].copy(),
        lap_sq_sum=ints[:, 3].copy(),
        blk_boundary_sum=ints[:, 4].copy(),
        blk_inner_sum=ints[:, 5].copy(),
        td_abs_sum=ints[:, 6].copy(),
        td_sum=ints[:, 7].copy(),
        td_sq_sum=ints[:, 8].copy(),
        has_prev=has_prev,
    )


def frame_features(
    y: Any,
    bit_depth: int,
    prev: Any = None,
    *,
    params: FeatureParams | None = None,
    device: torch.device | str | None = None,
    batch: int | None = None,
) -> dict[str, np.ndarray]:
    """The 11 pixel features of each frame of ``y``, computed with batched torch ops.

    Args:
        y: decoded luma, (N,H,W) or (H,W), integer code values (numpy array or tensor).
        bit_depth: bit depth of the samples (8..16); features are on the 8-bit scale.
        prev: the (H,W) frame decoded just before ``y[0]``, or None at the start of a video
            (frame 0 then gets NaN ``temporal_diff`` / ``temporal_std``).
        params: feature constants (defaults: :class:`FeatureParams`).
        device: where to compute (default: ``y``'s device, CPU for numpy input).
        batch: frames per set of tensor ops (default: 1 on CPU, all elsewhere).

    Returns:
        ``{name: float64 numpy array (N,)}``, equal to
        :func:`vmafdistill.features.frame_numpy.frame_features` up to float64 rounding of one sum.
    """
    params = params or DEFAULT_PARAMS
    raw = raw_stats(y, bit_depth, prev, params=params, device=device, batch=batch)
    return finalize(raw, params)


def video_features(
    path: str | os.PathLike[str],
    *,
    chunk: int = 16,
    params: FeatureParams | None = None,
    device: torch.device | str | None = None,
    prefetch: int = 2,
    **iter_kw: Any,
) -> dict[str, np.ndarray]:
    """Per-frame features of a whole video, decoded chunk by chunk (``prefetch`` chunks ahead
    on a reader thread; 0 = inline), computed with torch on ``device``."""
    from ..io import iter_frames
    from ..io.prefetch import prefetched

    parts: list[dict[str, np.ndarray]] = []
    prev: np.ndarray | None = None
    # the next chunk decodes while this one is computed (on the GPU, or the other CPU core)
    for c in prefetched(iter_frames(path, chunk=chunk, planes="y", **iter_kw), depth=prefetch):
        parts.append(frame_features(c.y, c.bit_depth, prev, params=params, device=device))
        prev = c.y[-1]
    if not parts:
        raise ValueError(f"{os.fspath(path)}: no frames decoded")
    return {k: np.concatenate([p[k] for p in parts]) for k in FEATURE_NAMES}
