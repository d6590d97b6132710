"""Per-frame no-reference student features in pure numpy (the torch-free edge runtime).

This module must never import torch: it runs on the edge next to the decoder. The torch twin
(:mod:`vmafdistill.features.frame_torch`) computes the same per-frame *sums* (:class:`RawStats`)
with batched tensor ops and hands them to :func:`finalize` here, so the feature formulas exist
exactly once and both implementations agree by construction.

Everything pixel-level is integer arithmetic on the decoded code values (Sobel, Laplacian,
frame differences, block steps, histograms) with int64 accumulators, so every sum is exact and
independent of summation order. The only floating-point reduction is the sum of Sobel
magnitudes (square roots), done in float64. Features are then expressed on an 8-bit sample
scale (a b-bit code value is divided by ``2**(b-8)``) so 8-bit and 10-bit deliveries of the same
content give comparable numbers. See ``docs/features.md`` for the definitions.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import compiled

__all__ = [
    "FEATURE_NAMES",
    "TEMPORAL_FEATURES",
    "FeatureParams",
    "RawStats",
    "finalize",
    "frame_features",
    "frame_histogram",
    "pool_shot",
    "pool_shots",
    "raw_stats",
    "video_features",
]

#: The 11 pixel features, in the order every table, cache and model uses.
FEATURE_NAMES: tuple[str, ...] = (
    "mean_luma",
    "std_luma",
    "contrast_p95_p05",
    "sobel_mean",
    "spatial_info",
    "edge_density",
    "laplacian_var",
    "entropy",
    "temporal_diff",
    "temporal_std",
    "blockiness",
)

#: The two features of a frame *pair* (``temporal_diff``, ``temporal_std``).
TEMPORAL_FEATURES: tuple[str, ...] = ("temporal_diff", "temporal_std")

#: Bit depths the integer pipeline handles (the decoders deliver any of 8 to 16).
MIN_BIT_DEPTH = 8
#: The smallest picture side the features take: the Sobel and Laplacian need an interior pixel.
MIN_SIDE = 3
MAX_BIT_DEPTH = 16


@dataclass(frozen=True)
class FeatureParams:
    """Tunable constants of the feature definitions (changing one changes the features).

    Attributes:
        edge_threshold: Sobel magnitude, in 8-bit units, above which a pixel counts as an edge.
        pct_low: lower percentile (integer percent) of ``contrast_p95_p05``.
        pct_high: upper percentile (integer percent) of ``contrast_p95_p05``.
        block_size: coding-block grid of ``blockiness`` (8: the transform size all four codecs
            use at least somewhere; the grid starts at pixel 0).
        blockiness_eps: added to the non-boundary mean step (8-bit units) so flat frames do not
            divide by zero.
    """

    edge_threshold: float = 64.0
    pct_low: int = 5
    pct_high: int = 95
    block_size: int = 8
    blockiness_eps: float = 1e-3

    def __post_init__(self) -> None:
        if not (0 < self.pct_low < self.pct_high <= 100):
            raise ValueError(f"need 0 < pct_low < pct_high <= 100, got {self}")
        if isinstance(self.pct_low, bool) or not isinstance(self.pct_low, int):
            raise ValueError("pct_low must be an int (percentiles are compared exactly)")
        if isinstance(self.pct_high, bool) or not isinstance(self.pct_high, int):
            raise ValueError("pct_high must be an int (percentiles are compared exactly)")
        if self.block_size < 2:
            raise ValueError(f"block_size must be >= 2, got {self.block_size}")
        if not self.edge_threshold >= 0:
            raise ValueError(f"edge_threshold must be >= 0, got {self.edge_threshold}")
        if not self.blockiness_eps > 0:
            raise ValueError(f"blockiness_eps must be > 0, got {self.blockiness_eps}")

    def edge_threshold_sq(self, bit_depth: int) -> int:
        """Integer ``T`` with ``gx²+gy² > T`` <=> Sobel magnitude > ``edge_threshold`` (8-bit).

        The squared magnitude is an integer, so comparing it with ``floor(thr_code²)`` is exact
        and avoids a float comparison that torch would do in float32.
        """
        thr_code = self.edge_threshold * (1 << (bit_depth - 8))
        return math.floor(thr_code * thr_code)


DEFAULT_PARAMS = FeatureParams()


@dataclass
class RawStats:
    """Per-frame sums both implementations compute; :func:`finalize` turns them into features.

    All arrays have shape (N,) except ``hist`` (N, 2**bit_depth). Integer sums are exact; sums
    are in *code* units (not yet divided by the 8-bit scale).
    """

    bit_depth: int
    height: int
    width: int
    hist: np.ndarray  # (N, 2**b) int64 counts of every code value
    sobel_sum: np.ndarray  # float64 Σ sqrt(gx²+gy²) over the (H-2)x(W-2) interior
    sobel_sq_sum: np.ndarray  # int64 Σ (gx²+gy²)
    edge_count: np.ndarray  # int64 #{gx²+gy² > T}
    lap_sum: np.ndarray  # int64 Σ L over the interior
    lap_sq_sum: np.ndarray  # int64 Σ L²
    blk_boundary_sum: np.ndarray  # int64 Σ |step| across block boundaries (h + v)
    blk_inner_sum: np.ndarray  # int64 Σ |step| at all other positions (h + v)
    td_abs_sum: np.ndarray  # int64 Σ |Y_t - Y_{t-1}| (0 where has_prev is False)
    td_sum: np.ndarray  # int64 Σ (Y_t - Y_{t-1})
    td_sq_sum: np.ndarray  # int64 Σ (Y_t - Y_{t-1})²
    has_prev: np.ndarray  # bool: frame has a previous frame

    def __len__(self) -> int:
        return int(self.hist.shape[0])


# --------------------------------------------------------------------------------------------
# Input checks shared with the torch twin
# --------------------------------------------------------------------------------------------


def check_bit_depth(bit_depth: int) -> int:
    """Validate ``bit_depth`` (8..16) and return it as an int."""
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer)):
        raise TypeError(f"bit_depth must be an int, got {bit_depth!r}")
    b = int(bit_depth)
    if not MIN_BIT_DEPTH <= b <= MAX_BIT_DEPTH:
        raise ValueError(f"bit_depth must be in {MIN_BIT_DEPTH}..{MAX_BIT_DEPTH}, got {b}")
    return b


def check_shapes(shape: tuple[int, ...], prev_shape: tuple[int, ...] | None) -> None:
    """Validate an (N,H,W) frame stack and an optional (H,W) previous frame."""
    if len(shape) != 3:
        raise ValueError(f"frames must be (N, H, W) or (H, W), got shape {shape}")
    n, h, w = shape
    if n < 1:
        raise ValueError("no frames given")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(f"frames must be at least {MIN_SIDE}x{MIN_SIDE} (Sobel needs an "
                         f"interior), got {w}x{h} (width x height)")
    if prev_shape is not None and tuple(prev_shape) != (h, w):
        raise ValueError(f"prev frame has shape {tuple(prev_shape)}, frames are {h}x{w}")


def work_dtypes(bit_depth: int) -> tuple[str, str]:
    """(difference dtype, square dtype) names that cannot overflow at ``bit_depth``.

    Up to 12 bits a Sobel response (|g| <= 4 * 4095) fits int16 and gx²+gy² fits int32;
    above that they need int32 and int64.
    """
    return ("int16", "int32") if bit_depth <= 12 else ("int32", "int64")


def block_counts(height: int, width: int, block_size: int) -> tuple[int, int]:
    """(#boundary steps, #non-boundary steps) of ``blockiness`` for an HxW frame.

    Horizontal steps are between columns j and j+1 (j = 0..W-2); step j is a block boundary
    when j+1 is a multiple of ``block_size``. Vertical steps likewise on rows.
    """
    hb = len(range(block_size - 1, width - 1, block_size))
    vb = len(range(block_size - 1, height - 1, block_size))
    boundary = height * hb + width * vb
    total = height * (width - 1) + width * (height - 1)
    return boundary, total - boundary


# --------------------------------------------------------------------------------------------
# Pixel pass (numpy)
# --------------------------------------------------------------------------------------------


def _as_int_frames(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer code values, got dtype {arr.dtype}")
    return arr


_I32_MAX = (1 << 31) - 1


def _isum(x: np.ndarray, bound: int) -> int:
    """Exact Σx of a 2-D integer array whose entries satisfy |x| <= ``bound``.

    numpy reduces fastest without widening casts, so the narrowest accumulator that cannot
    overflow is used: int16 column sums over blocks of rows (int16 rows), int32 for the
    whole array or per row or per block of columns (int16/int32 input); int64 otherwise.
    Every partial sum of k entries is bounded by k * ``bound``, whatever the order.
    """
    h, w = x.shape
    if x.dtype.itemsize > 4:  # int64 input: reduce natively
        return int(x.sum(dtype=np.int64))
    bound = max(int(bound), 1)
    if x.dtype.itemsize == 2 and x.dtype.kind == "i" and x.strides[1] == 2:
        k = 32767 // bound
        if k >= 16:
            return sum(
                int(x[i : i + k].sum(axis=0, dtype=np.int16).sum(dtype=np.int64))
                for i in range(0, h, k)
            )
    if bound * h * w <= _I32_MAX:
        return int(x.sum(dtype=np.int32))
    if bound * w <= _I32_MAX:
        return int(x.sum(axis=1, dtype=np.int32).sum(dtype=np.int64))
    step = _I32_MAX // bound
    if step >= 64:
        return sum(
            int(x[:, j : j + step].sum(axis=1, dtype=np.int32).sum(dtype=np.int64))
            for j in range(0, w, step)
        )
    return int(x.sum(dtype=np.int64))


def frame_histogram(y: Any, bit_depth: int) -> np.ndarray:
    """Counts of every code value (int64, ``2**bit_depth`` bins) of one (H,W) integer frame.

    Equal to ``np.bincount(y.ravel(), minlength=2**bit_depth)`` (a value beyond the bit depth
    is an error), computed as :class:`RawStats` ``hist`` is.
    """
    arr = _as_int_frames(y, "frame")
    if arr.ndim != 2:
        raise ValueError(f"frame must be (H, W), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.min(initial=0) < 0:
        raise ValueError("sample values must be non-negative")
    return _histogram(arr, 1 << check_bit_depth(bit_depth))


def _histogram(y: np.ndarray, nbins: int) -> np.ndarray:
    """Counts of every code value of one (H,W) frame, int64 (nbins,).

    For a C-contiguous uint8 frame of even width, two neighbouring pixels are counted at once
    as one uint16 (65536 joint bins, marginalised afterwards): half the elements, and fewer
    stalls on runs of equal values, for the same exact counts.
    """
    if y.dtype == np.uint8 and y.flags.c_contiguous and y.shape[-1] % 2 == 0:
        joint = np.bincount(y.view(np.uint16).ravel(), minlength=1 << 16).reshape(256, 256)
        hist = joint.sum(axis=0)  # first pixel of each pair (low byte, little- or big-endian
        hist += joint.sum(axis=1)  # alike: both bytes are counted)
        if nbins > 256:
            hist = np.concatenate([hist, np.zeros(nbins - 256, dtype=hist.dtype)])
        return hist
    hist = np.bincount(y.ravel(), minlength=nbins)
    if hist.shape[0] > nbins:
        raise ValueError(f"sample value {hist.shape[0] - 1} exceeds the {nbins - 1} maximum")
    return hist


class _Workspace:
    """Preallocated temporaries of the pixel pass for one frame size (reused frame to frame).

    Allocating ~1 MB temporaries per frame makes the C allocator hand pages back to the OS and
    fault them in again every frame, which costs more than the arithmetic; every intermediate
    is written into these flat buffers instead (``out=``).
    """

    def __init__(self, h: int, w: int, dt: str, sq: str) -> None:
        self.h, self.w = h, w
        self.key = (h, w, dt, sq)
        n = h * w
        self.yi = [np.empty(n, dt), np.empty(n, dt)]  # current / previous frame, flat
        self.b = [np.empty(n, dt) for _ in range(4)]
        self.s = [np.empty(n, sq) for _ in range(2)]
        self.f64 = np.empty((h - 2) * w, np.float64)
        self.mask = np.empty((h - 2) * w, bool)


_LOCAL = threading.local()


def _workspace(h: int, w: int, dt: str, sq: str) -> _Workspace:
    """This thread's workspace for (h, w, dt, sq), reused across calls (one cached per thread)."""
    ws = getattr(_LOCAL, "ws", None)
    if ws is None or ws.key != (h, w, dt, sq):
        ws = _LOCAL.ws = _Workspace(h, w, dt, sq)
    return ws


def _frame_pass(
    ws: _Workspace,
    f: np.ndarray,
    pf: np.ndarray | None,
    maxv: int,
    thr_sq: int,
    bs: int,
) -> tuple[float, int, int, int, int, int, int, int, int]:
    """Integer sums of one frame, given flat (H*W,) in the difference dtype; ``pf``: previous.

    Returns (sobel_sum, sobel_sq, edges, lap_sum, lap_sq, blk_boundary, blk_inner, td_abs,
    td_sq); ``td_*`` are 0 when ``pf`` is None.

    Every operation is a contiguous 1-D pass over the flat frame (numpy's fastest loop: a
    shifted 2-D slice such as ``y[:, 1:]`` runs ~2.5x slower, row by row). A neighbour at
    (i, j±1) is flat index p±1 and at (i±1, j) is p±W. Interior results are laid out as an
    (H-2, W) grid whose entry (r, c) is the pixel (r+1, c+1); its last two columns wrap
    around a row end, are bounded like real values (sums of real differences) and are zeroed
    before any reduction, so every sum is exact and covers exactly the interior.
    """
    h, w = ws.h, ws.w
    n = h * w
    m = (h - 2) * w - 2  # interior grid entries up to pixel (H-2, W-2)
    b0, b1, b2, b3 = ws.b
    a = np.subtract(f[1:], f[:-1], out=b0[: n - 1])  # A[p] = y[p+1] - y[p] (horizontal step)
    v = np.subtract(f[w:], f[:-w], out=b1[: n - w])  # V[p] = y[p+W] - y[p] (vertical step)

    # Sobel, separably, (1,2,1) smoothing as two pair sums. gx: D[k] = y[k+2] - y[k]
    # (centre k+1), smoothed over rows k, k+W, k+2W -> centre k+W+1 = grid entry k.
    d = np.add(a[1:], a[:-1], out=b2[: n - 2])
    q = np.add(d[:-w], d[w:], out=b3[: n - 2 - w])
    s = ws.s[0][: m + 2]
    np.add(q[:m], q[w : w + m], out=s[:m])  # gx, widened on the way out (|gx| <= 4 maxv)
    s[:m] *= s[:m]
    # gy: E[k] = y[k+2W] - y[k] (centre k+W), smoothed over k, k+1, k+2 -> grid entry k.
    e = np.add(v[:-w], v[w:], out=b2[: n - 2 * w])
    r = np.add(e[:-1], e[1:], out=b3[: n - 2 * w - 1])
    t = ws.s[1][:m]
    np.add(r[:m], r[1 : m + 1], out=t)  # gy
    t *= t
    s[:m] += t  # exact integer squared magnitude, <= 32 maxv²
    s[m:] = 0
    s2 = s.reshape(h - 2, w)
    s2[:, w - 2 :] = 0  # the wrap-around entries
    sobel_sq = _isum(s2, 32 * maxv * maxv)
    edges = int(np.count_nonzero(np.greater(s, thr_sq, out=ws.mask)))  # thr_sq >= 0: 0 is no edge
    # Widen first, then an in-place float64 sqrt: the same correctly rounded roots of the same
    # exactly converted integers as np.sqrt(s, dtype=float64), whose cast inside the ufunc
    # is slower (best of 30 x 20 calls at 640x360: 0.49 ms instead of 0.65 ms).
    roots = ws.f64[: s.shape[0]]
    np.copyto(roots, s)
    sobel = float(np.sqrt(roots, out=roots).sum())

    # 4-neighbour Laplacian at grid entry k (pixel p = k+W+1) as the sum of the two second
    # differences: (V[p] - V[p-W]) + (A[p] - A[p-1]).
    lap = np.subtract(v[w + 1 : w + 1 + m], v[1 : 1 + m], out=b2[:m])
    lap += a[w + 1 : w + 1 + m]
    lap_f = ws.s[1][: m + 2]
    np.subtract(lap, a[w : w + m], out=lap_f[:m])  # widened on the way out (|L| <= 4 maxv)
    lap_f[m:] = 0
    lap2d = lap_f.reshape(h - 2, w)
    lap2d[:, w - 2 :] = 0
    lap_sum = _isum(lap2d, 4 * maxv)
    lap_f *= lap_f
    lap_sq = _isum(lap2d, 16 * maxv * maxv)

    # Blockiness: absolute steps; boundary steps are every bs-th one from bs-1. The step from
    # the last column of a row to the next row's first is not a step: zeroed.
    a_f = b0
    a_f[n - 1] = 0
    a2d = a_f.reshape(h, w)
    a2d[:, w - 1] = 0
    np.abs(a_f, out=a_f)
    v2d = v.reshape(h - 1, w)
    np.abs(v, out=v)
    b_sum = _isum(a2d[:, bs - 1 :: bs], maxv) + _isum(v2d[bs - 1 :: bs], maxv)
    all_sum = _isum(a2d, maxv) + _isum(v2d, maxv)

    if pf is None:
        td_abs = td_sq = 0
    else:
        diff = np.subtract(f, pf, out=ws.s[0])  # widened on the way out
        diff2d = diff.reshape(h, w)
        td_abs = _isum(np.abs(diff, out=diff).reshape(h, w), maxv)
        diff *= diff  # |d|² = d²
        td_sq = _isum(diff2d, maxv * maxv)
    return (sobel, sobel_sq, edges, lap_sum, lap_sq, b_sum, all_sum - b_sum, td_abs, td_sq)


_FrameSums = Callable[[int], tuple]


def _numpy_frame_sums(arr: np.ndarray, p: np.ndarray | None, dt: str, sq: str, thr_sq: int,
                      bs: int, hist: np.ndarray) -> _FrameSums:
    """Frame ``i``'s sums in numpy (:func:`_frame_pass`'s tuple), its histogram into
    ``hist[i]``; called for i = 0, 1, ... in order (each frame, converted once, is the next
    one's previous frame)."""
    h, w = arr.shape[1:]
    nbins = hist.shape[1]
    ws = _workspace(h, w, dt, sq)
    pi: np.ndarray | None = None
    if p is not None:
        pi = ws.yi[1]
        np.copyto(pi, p.ravel(), casting="unsafe")  # values checked to fit: 0 <= v < 2**b

    def sums(i: int) -> tuple:
        nonlocal pi
        hist[i] = _histogram(arr[i], nbins)  # also rejects values >= 2**b
        yi = ws.yi[i % 2]
        np.copyto(yi, arr[i].ravel(), casting="unsafe")
        out = _frame_pass(ws, yi, pi, nbins - 1, thr_sq, bs)
        pi = yi
        return out

    return sums


def _compiled_frame_sums(arr: np.ndarray, p: np.ndarray | None, bit_depth: int, thr_sq: int,
                         bs: int, hist: np.ndarray) -> _FrameSums:
    """:func:`_numpy_frame_sums` from the compiled kernel (:mod:`.compiled`), one call per
    frame (the GIL is released inside it)."""
    frame_sums = compiled.kernel().frame_sums  # type: ignore[union-attr]
    # Any threshold >= 32 maxv² (the largest squared magnitude) counts no edge; capped so that
    # it fits the kernel's int64.
    thr = min(thr_sq, 1 << 62)
    return lambda i: frame_sums(arr[i], p if i == 0 else arr[i - 1], bit_depth, thr, bs,
                                hist[i])


def raw_stats(
    y: Any, bit_depth: int, prev: Any = None, *, params: FeatureParams | None = None
) -> RawStats:
    """Per-frame integer sums of ``y`` ((N,H,W) or (H,W) integer code values).

    ``prev`` is the (H,W) frame decoded just before ``y[0]`` (None at the start of a video).
    Decoded uint8/uint16 planes go to the compiled kernel when it is built
    (:mod:`~vmafdistill.features.compiled`: the same sums, 3-4x faster); otherwise numpy.
    In numpy, frames are processed one at a time into preallocated buffers (:class:`_Workspace`,
    one per thread, kept for the next call: ~8 MB at 360p): each intermediate is one frame,
    which beats one pass over a whole chunk on a small CPU, and nothing is allocated per frame.
    Calls from different threads run in parallel (both paths release the GIL in the pixel
    loops). Each frame is converted to the difference dtype once and reused as the next frame's
    ``prev``; the signed sum Σ(Y_t - Y_{t-1}) comes exactly from the two frames' code sums.
    """
    params = params or DEFAULT_PARAMS
    b = check_bit_depth(bit_depth)
    arr = _as_int_frames(y, "frames")
    if arr.ndim == 2:
        arr = arr[None]
    p = None if prev is None else _as_int_frames(prev, "prev")
    check_shapes(arr.shape, None if p is None else p.shape)
    # Only signed inputs can hold negatives (an extra pass, skipped for decoded uint8/uint16).
    for a in (arr, p):
        if a is not None and np.issubdtype(a.dtype, np.signedinteger) and a.min(initial=0) < 0:
            raise ValueError("sample values must be non-negative")
    # The frames' values are checked by their histograms; prev's here (narrower dtypes, e.g.
    # uint8 at any bit depth, cannot exceed it), or its differences would wrap in numpy.
    if p is not None and np.iinfo(p.dtype).max >= (1 << b) and p.max(initial=0) >= (1 << b):
        raise ValueError(f"prev: sample value {int(p.max())} exceeds the {(1 << b) - 1} maximum")
    dt, sq = work_dtypes(b)
    thr_sq = params.edge_threshold_sq(b)
    n, h, w = arr.shape
    hist = np.empty((n, 1 << b), dtype=np.int64)
    sobel = np.empty(n, dtype=np.float64)
    ints = np.zeros((9, n), dtype=np.int64)
    if compiled.plane_ok(arr[0], *([] if p is None else [p])):
        sums = _compiled_frame_sums(arr, p, b, thr_sq, params.block_size, hist)
    else:
        sums = _numpy_frame_sums(arr, p, dt, sq, thr_sq, params.block_size, hist)
    codes = np.arange(1 << b, dtype=np.int64)
    p_sum = None if p is None else int(p.sum(dtype=np.int64))
    for i in range(n):
        out = sums(i)
        sobel[i] = out[0]
        ints[:7, i] = out[1:8]
        ints[8, i] = out[8]
        y_sum = int(hist[i] @ codes)
        if p_sum is not None:
            ints[7, i] = y_sum - p_sum  # Σ(Y_t - Y_{t-1}) = ΣY_t - ΣY_{t-1}, exact
        p_sum = y_sum
    has_prev = np.ones(n, dtype=bool)
    has_prev[0] = p is not None
    return RawStats(
        bit_depth=b,
        height=h,
        width=w,
        hist=hist,
        sobel_sum=sobel,
        sobel_sq_sum=ints[0],
        edge_count=ints[1],
        lap_sum=ints[2],
        lap_sq_sum=ints[3],
        blk_boundary_sum=ints[4],
        blk_inner_sum=ints[5],
        td_abs_sum=ints[6],
        td_sum=ints[7],
        td_sq_sum=ints[8],
        has_prev=has_prev,
    )


# --------------------------------------------------------------------------------------------
# Sums -> features (shared by both implementations)
# --------------------------------------------------------------------------------------------


def _exact_var(n: int, s1: int, s2: int) -> float:
    """Population variance from exact integer Σx and Σx², correctly rounded.

    ``(n Σx² - (Σx)²) / n²`` in Python integers has no cancellation error at all (a frame that
    differs from the previous one by a constant gets exactly 0), and int/int true division
    rounds correctly.
    """
    return (n * s2 - s1 * s1) / (n * n)


def temporal_features(
    frames: np.ndarray, prev: np.ndarray | None, bit_depth: int, *, step: int = 1
) -> dict[str, np.ndarray]:
    """``temporal_diff`` and ``temporal_std`` of every frame, from every ``step``-th row and
    column of it and of its previous frame.

    ``frames`` is (n, H, W) integer luma; frame i is compared with frame i-1 and frame 0 with
    ``prev`` (NaN without one). The sums are exact (integer differences summed in float64,
    exact below 2**53) and the formulas those of :func:`finalize`, so ``step=1`` gives exactly
    the values of the full feature pass; a larger step estimates the same frame-pair statistics
    from a regular subsample (the edge's fast path for students whose only pixel inputs are
    temporal, docs/edge.md). One frame at a time through preallocated buffers: ~0.1 ms per
    640x360 frame at step 2 in numpy, ~0.02 ms in the compiled kernel (:mod:`.compiled`).
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    scale = float(1 << (int(bit_depth) - 8))
    sub = frames[:, ::step, ::step]
    n = sub.shape[0]
    out = {k: np.full(n, math.nan) for k in TEMPORAL_FEATURES}
    if n == 0:
        return out
    shape = sub.shape[1:]
    n_pix = shape[0] * shape[1]
    if n_pix == 0:
        raise ValueError(f"frames of {frames.shape[2]}x{frames.shape[1]} have no samples")
    if n_pix * float(1 << (2 * int(bit_depth))) >= 2.0**53:
        raise ValueError(f"{shape[1]}x{shape[0]} samples at {bit_depth} bits: sums not exact")
    kernel_ok = compiled.plane_ok(frames[0], *([] if prev is None else [prev]))
    sums = (_compiled_pair_sums if kernel_ok else _numpy_pair_sums)(frames, prev, step)
    for i in range(n):
        got = sums(i)
        if got is not None:
            s1, s2, s_abs = got
            out["temporal_diff"][i] = s_abs / n_pix / scale
            out["temporal_std"][i] = math.sqrt(max(_exact_var(n_pix, s1, s2), 0.0)) / scale
    return out


_PairSums = Callable[[int], tuple[int, int, int] | None]


def _compiled_pair_sums(frames: np.ndarray, prev: np.ndarray | None, step: int) -> _PairSums:
    """(Σd, Σd², Σ|d|) of d = frame i - the frame before it, from every ``step``-th row and
    column, by the compiled kernel; None for frame 0 without ``prev``."""
    diff_sums = compiled.kernel().diff_sums  # type: ignore[union-attr]

    def sums(i: int) -> tuple[int, int, int] | None:
        before = prev if i == 0 else frames[i - 1]
        return None if before is None else diff_sums(frames[i], before, step)

    return sums


def _numpy_pair_sums(frames: np.ndarray, prev: np.ndarray | None, step: int) -> _PairSums:
    """:func:`_compiled_pair_sums` in numpy, one frame at a time through preallocated buffers
    (exact: integer differences summed in float64 below 2**53); called for i = 0, 1, ... in
    order."""
    sub = frames[:, ::step, ::step]
    shape = sub.shape[1:]
    n_pix = shape[0] * shape[1]
    # holds every difference of two samples of these dtypes, whatever their values
    size = max(frames.dtype.itemsize, 1 if prev is None else prev.dtype.itemsize)
    small = np.int16 if size == 1 else np.int32 if size == 2 else np.int64
    bufs = [np.empty(shape, small), np.empty(shape, small)]  # [current, last]
    d = np.empty(shape, small)
    df, sq = np.empty(n_pix, np.float64), np.empty(n_pix, np.float64)
    have_last = prev is not None
    if have_last:
        np.copyto(bufs[1], prev[::step, ::step], casting="unsafe")

    def sums(i: int) -> tuple[int, int, int] | None:
        nonlocal have_last
        cur, last = bufs
        np.copyto(cur, sub[i], casting="unsafe")
        got = None
        if have_last:
            np.subtract(cur, last, out=d)
            np.copyto(df, d.ravel())
            s1 = int(df.sum())
            np.multiply(df, df, out=sq)  # not df @ df: BLAS threads would fight the decoder
            s2 = int(sq.sum())
            np.abs(df, out=sq)
            got = (s1, s2, int(sq.sum()))
        bufs.reverse()  # this frame is the next one's last
        have_last = True
        return got

    return sums


def finalize(raw: RawStats, params: FeatureParams | None = None) -> dict[str, np.ndarray]:
    """Turn per-frame sums into the 11 pixel features (float64 arrays of shape (N,)).

    This is the single definition of the formulas; see ``docs/features.md``.
    """
    params = params or DEFAULT_PARAMS
    b, h, w = raw.bit_depth, raw.height, raw.width
    scale = float(1 << (b - 8))  # code units per 8-bit unit (exact power of two)
    n_pix = h * w
    n_int = (h - 2) * (w - 2)
    n_blk_b, n_blk_i = block_counts(h, w, params.block_size)
    n = len(raw)
    out = {name: np.empty(n, dtype=np.float64) for name in FEATURE_NAMES}

    codes = np.arange(1 << b, dtype=np.int64)
    # 256 entropy bins on the 8-bit scale: b-bit codes are grouped 2**(b-8) at a time.
    hist8 = raw.hist.reshape(n, 256, -1).sum(axis=2)
    cum = np.cumsum(raw.hist, axis=1)
    # Smallest code whose CDF >= p, compared exactly in integers: 100 * cum >= pct * n_pix.
    # The number of codes with CDF < p is that code's index (the CDF is non-decreasing).
    lo = np.count_nonzero(100 * cum < params.pct_low * n_pix, axis=1)
    hi = np.count_nonzero(100 * cum < params.pct_high * n_pix, axis=1)
    p = hist8 / n_pix
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log2(p), 0.0)
    out["entropy"] = -plogp.sum(axis=1) + 0.0  # + 0.0 turns -0.0 into 0.0

    for i in range(n):
        hi_ = raw.hist[i]
        s1 = int(hi_ @ codes)
        s2 = int(hi_ @ (codes * codes))  # <= 65535² * pixels: no int64 overflow below 2**33 px
        out["mean_luma"][i] = s1 / n_pix / scale
        out["std_luma"][i] = math.sqrt(max(_exact_var(n_pix, s1, s2), 0.0)) / scale
        out["contrast_p95_p05"][i] = int(hi[i] - lo[i]) / scale

        mean_m = float(raw.sobel_sum[i]) / n_int
        out["sobel_mean"][i] = mean_m / scale
        var_m = int(raw.sobel_sq_sum[i]) / n_int - mean_m * mean_m
        out["spatial_info"][i] = math.sqrt(max(var_m, 0.0)) / scale
        out["edge_density"][i] = int(raw.edge_count[i]) / n_int
        var_l = _exact_var(n_int, int(raw.lap_sum[i]), int(raw.lap_sq_sum[i]))
        out["laplacian_var"][i] = var_l / (scale * scale)

        if raw.has_prev[i]:
            out["temporal_diff"][i] = int(raw.td_abs_sum[i]) / n_pix / scale
            var_d = _exact_var(n_pix, int(raw.td_sum[i]), int(raw.td_sq_sum[i]))
            out["temporal_std"][i] = math.sqrt(max(var_d, 0.0)) / scale
        else:
            out["temporal_diff"][i] = math.nan
            out["temporal_std"][i] = math.nan

        if n_blk_b and n_blk_i:
            mb = int(raw.blk_boundary_sum[i]) / n_blk_b / scale
            mi = int(raw.blk_inner_sum[i]) / n_blk_i / scale
            out["blockiness"][i] = mb / (mi + params.blockiness_eps)
        else:  # frame smaller than one block: no boundary to measure
            out["blockiness"][i] = math.nan
    return out


def frame_features(
    y: Any, bit_depth: int, prev: Any = None, *, params: FeatureParams | None = None
) -> dict[str, np.ndarray]:
    """The 11 pixel features of each frame of ``y`` (numpy, torch-free).

    Args:
        y: decoded luma, (N,H,W) or (H,W), integer code values (uint8 / uint16 as decoded).
        bit_depth: bit depth of the samples (8..16); features are on the 8-bit scale.
        prev: the (H,W) frame decoded just before ``y[0]``, or None at the start of a video
            (then frame 0 gets NaN ``temporal_diff`` / ``temporal_std``). Passing the last frame
            of the previous chunk makes chunked results equal to whole-clip results.
        params: feature constants (defaults: :class:`FeatureParams`).

    Returns:
        ``{name: float64 array (N,)}`` for every name in :data:`FEATURE_NAMES`.
    """
    params = params or DEFAULT_PARAMS
    return finalize(raw_stats(y, bit_depth, prev, params=params), params)


def video_features(
    path: str | os.PathLike[str],
    *,
    chunk: int = 16,
    params: FeatureParams | None = None,
    **iter_kw: Any,
) -> dict[str, np.ndarray]:
    """Per-frame features of a whole video, decoded chunk by chunk (memory: one chunk).

    ``iter_kw`` goes to :func:`vmafdistill.io.iter_frames` (e.g. raw ``width``/``height``/
    ``pix_fmt``). Frame 0 has NaN temporal features.
    """
    from ..io import iter_frames  # lazy: keeps this module importable without the io stack

    parts: list[dict[str, np.ndarray]] = []
    prev: np.ndarray | None = None
    for c in iter_frames(path, chunk=chunk, planes="y", **iter_kw):
        parts.append(frame_features(c.y, c.bit_depth, prev, params=params))
        prev = c.y[-1]
    if not parts:
        raise ValueError(f"{os.fspath(path)}: no frames decoded")
    return {k: np.concatenate([p[k] for p in parts]) for k in FEATURE_NAMES}


# --------------------------------------------------------------------------------------------
# Shot pooling
# --------------------------------------------------------------------------------------------


def pool_shot(per_frame: Mapping[str, Any], start: int, stop: int) -> dict[str, float]:
    """Mean of each per-frame feature over frames ``start .. stop-1``, ignoring NaN.

    NaN entries (the first frame's temporal features) are skipped; a feature that is NaN on
    every frame of the shot pools to NaN. Works on any per-frame dict of 1-D arrays.
    """
    if not 0 <= start < stop:
        raise ValueError(f"need 0 <= start < stop, got start={start}, stop={stop}")
    out: dict[str, float] = {}
    for name, values in per_frame.items():
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 1 or stop > v.shape[0]:
            raise ValueError(f"{name}: {v.shape[0]} frames, shot asks for {start}..{stop - 1}")
        seg = v[start:stop]
        finite = ~np.isnan(seg)
        out[name] = float(seg[finite].mean()) if finite.any() else math.nan
    return out


def pool_shots(per_frame: Mapping[str, Any], shots: Iterable[Any]) -> dict[str, np.ndarray]:
    """:func:`pool_shot` for each shot (anything with ``start``/``stop``), as arrays (S,)."""
    pooled = [pool_shot(per_frame, int(s.start), int(s.stop)) for s in shots]
    return {k: np.array([p[k] for p in pooled], dtype=np.float64) for k in per_frame}
