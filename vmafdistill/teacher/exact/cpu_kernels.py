"""libvmaf's integer VIF and motion as compiled CPU kernels (numba), bit for bit.

:mod:`.integer_vif` and :func:`..motion3.motion_sad_integer` compute libvmaf's fixed-point
features with whole-tensor torch operations (GEMM filters, tens of elementwise passes): right
for batches on a GPU, but on a CPU every pass streams frames through memory, and torch's small
operations in several Python threads contend for the GIL. Here each scale is one fused
row-by-row loop, as libvmaf's C code runs it (``integer_vif.c``: ``vif_statistic_8/16``,
``subsample_rd_8/16``; ``integer_motion.c``), with libvmaf's own integer types (uint32 where it
uses uint32, so the compiler vectorises the same way and every wrap is the same), the line
buffers in cache, and the GIL released: frames run in parallel on threads.

The per-pixel statistic is libvmaf's: its 64-bit products, its ``log2`` table with the bit
length read from the float64 exponent, and the gain ``g`` and ``g * g * sigma1_sq`` as its IEEE
double operations in its order (numba compiles without floating-point contraction, so no fused
multiply-add changes a rounding). Tests hold these kernels to the torch path bit for bit and
both to libvmaf.

The compiled code is cached on disk after the first call of a process (numba's cache, next to
this file or in the user's cache directory); set ``VMAFDISTILL_EXACT_KERNELS=torch`` to use the
torch path on CPU too.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from numba import njit

from .integer_vif import VIF_FILTERS, IntegerVifOptions, log2_table

_TAPS = tuple(np.array(t, dtype=np.uint32) for t in VIF_FILTERS)
# The written-out filters (_fir_sym) fold symmetric pairs and know these four lengths only.
if not all(len(t) in (17, 9, 5, 3) and t == t[::-1] for t in VIF_FILTERS):
    raise RuntimeError("VIF filters must be symmetric with 17, 9, 5 or 3 taps")
_SIGMA_NSQ = 65536 << 1
_U32 = np.uint32
_U64 = np.uint64


@njit(cache=True, nogil=True, inline="always")
def _mirror(i: int, n: int) -> int:
    # libvmaf's padding: row -k is row k, row n-1+k is row n-1-k.
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


@njit(cache=True, nogil=True, inline="always")
def _log2_fixed(x: int, table: np.ndarray, bits: np.ndarray) -> int:
    # libvmaf's log2_32/log2_64: the 16 leading bits through the table, 2048 per further bit.
    # The bit length comes from the exponent of x as float64 (exact: x < 2^53), read through
    # ``bits``, a float64 scratch cell viewed as int64 (``_bit_cell``).
    bits[0] = x
    k = ((bits.view(np.int64)[0] >> 52) - 1023 + 1) - 16
    return table[x >> k] + 2048 * k


@njit(cache=True, nogil=True, inline="always")
def _int32(x: int) -> int:
    # C's (int32_t) of a uint32 difference: wrap to 32 bits, two's complement.
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@njit(cache=True, nogil=True, inline="always")
def _mu_product(a: int, b: int) -> int:
    # (uint32)(((uint64)a * b + 2^31) >> 32) for 0 <= a, b < 2^32: the product fits uint64.
    return np.int64((_U64(a) * _U64(b) + _U64(1 << 31)) >> _U64(32))


@njit(cache=True, nogil=True)
def _row_terms(mu1: np.ndarray, mu2: np.ndarray, xx: np.ndarray, yy: np.ndarray,
               xy: np.ndarray, table: np.ndarray, gain_limit: float, acc: np.ndarray) -> None:
    """The per-pixel statistic of one row of horizontally filtered sums, added to ``acc``
    (num_log, den_log, num_non_log, den_non_log), exactly as ``vif_statistic_8/16``."""
    eps = 65536 * 1.0e-10
    bits = np.empty(1, np.float64)
    num_log = 0
    den_log = 0
    num_non_log = 0
    den_non_log = 0
    for j in range(mu1.shape[0]):
        m1 = np.int64(mu1[j])
        m2 = np.int64(mu2[j])
        xx_f = np.int64((xx[j] + _U64(32768)) >> _U64(16))
        yy_f = np.int64((yy[j] + _U64(32768)) >> _U64(16))
        xy_f = np.int64((xy[j] + _U64(32768)) >> _U64(16))
        sigma1_sq = _int32(xx_f - _mu_product(m1, m1))
        sigma2_sq = _int32(yy_f - _mu_product(m2, m2))
        sigma12 = _int32(xy_f - _mu_product(m1, m2))
        if sigma2_sq < 0:
            sigma2_sq = 0
        if sigma1_sq >= _SIGMA_NSQ:
            den_log += _log2_fixed(_SIGMA_NSQ + sigma1_sq, table, bits) - 2048 * 17
            if sigma12 > 0 and sigma2_sq > 0:
                # libvmaf's double operations in its order (no fused multiply-add).
                g = sigma12 / (sigma1_sq + eps)
                sv_sq = np.int64(sigma2_sq - g * sigma12)  # C's (int32_t) truncation
                if sv_sq < 0:
                    sv_sq = 0
                if g > gain_limit:
                    g = gain_limit
                numer1 = sv_sq + _SIGMA_NSQ
                numer1_tmp = np.int64(g * g * sigma1_sq) + numer1
                num_log += (_log2_fixed(numer1_tmp, table, bits)
                            - _log2_fixed(numer1, table, bits))
        else:
            num_non_log += sigma2_sq
            den_non_log += 1
    acc[0] += num_log
    acc[1] += den_log
    acc[2] += num_non_log
    acc[3] += den_non_log


@njit(cache=True, nogil=True, inline="always")
def _pad_line(line: np.ndarray, half: int, w: int) -> None:
    for f in range(1, half + 1):
        line[half - f] = line[half + f]
        line[half + w - 1 + f] = line[half + w - 1 - f]


@njit(cache=True, nogil=True, inline="always")
def _sym17(s: np.ndarray, j: int, c0: int, c1: int, c2: int, c3: int, c4: int, c5: int,
           c6: int, c7: int, c8: int) -> int:
    # One output of a symmetric 17-tap filter (c8 the centre) at s[j:j+17], in c's type.
    return (c0 * (s[j] + s[j + 16]) + c1 * (s[j + 1] + s[j + 15]) + c2 * (s[j + 2] + s[j + 14])
            + c3 * (s[j + 3] + s[j + 13]) + c4 * (s[j + 4] + s[j + 12])
            + c5 * (s[j + 5] + s[j + 11]) + c6 * (s[j + 6] + s[j + 10])
            + c7 * (s[j + 7] + s[j + 9]) + c8 * s[j + 8])


@njit(cache=True, nogil=True, inline="always")
def _sym9(s: np.ndarray, j: int, c0: int, c1: int, c2: int, c3: int, c4: int) -> int:
    return (c0 * (s[j] + s[j + 8]) + c1 * (s[j + 1] + s[j + 7]) + c2 * (s[j + 2] + s[j + 6])
            + c3 * (s[j + 3] + s[j + 5]) + c4 * s[j + 4])


@njit(cache=True, nogil=True, inline="always")
def _sym5(s: np.ndarray, j: int, c0: int, c1: int, c2: int) -> int:
    return c0 * (s[j] + s[j + 4]) + c1 * (s[j + 1] + s[j + 3]) + c2 * s[j + 2]


@njit(cache=True, nogil=True, inline="always")
def _sym3(s: np.ndarray, j: int, c0: int, c1: int) -> int:
    return c0 * (s[j] + s[j + 2]) + c1 * s[j + 1]


@njit(cache=True, nogil=True, inline="always")
def _fir_sym(src: np.ndarray, dst: np.ndarray, n: int, stride: int, c0: int, c1: int, c2: int,
             c3: int, c4: int, c5: int, c6: int, c7: int, c8: int) -> None:
    """``dst[j] = sum_k taps[k] * src[stride * j + k]`` for a symmetric filter of ``n`` = 17,
    9, 5 or 3 taps (VIF's four) whose first half, centre included, is ``c0, c1, ...`` (the rest
    unused), summed in the coefficients' type."""
    # Each length is written out (folded pairs, coefficients in registers) so that the
    # compiler vectorises across columns; a loop over taps with the row in the inner loop runs
    # ~2x slower (it stores each partial sum back to memory).
    w = dst.shape[0]
    if n == 17:
        for j in range(w):
            dst[j] = _sym17(src, stride * j, c0, c1, c2, c3, c4, c5, c6, c7, c8)
    elif n == 9:
        for j in range(w):
            dst[j] = _sym9(src, stride * j, c0, c1, c2, c3, c4)
    elif n == 5:
        for j in range(w):
            dst[j] = _sym5(src, stride * j, c0, c1, c2)
    else:
        for j in range(w):
            dst[j] = _sym3(src, stride * j, c0, c1)


@njit(cache=True, nogil=True, inline="always")
def _tap(taps: np.ndarray, k: int) -> int:
    # Tap k of the first half (centre included) of a symmetric filter; 0 past it.
    return taps[k] if 2 * k < taps.shape[0] else 0


@njit(cache=True, nogil=True, inline="always")
def _fir_row_u32(src: np.ndarray, dst: np.ndarray, taps: np.ndarray, stride: int = 1) -> None:
    # The means: uint32 as libvmaf. No sum wraps (taps sum to 65536, means are < 2^16), so
    # the order is free.
    n = taps.shape[0]
    _fir_sym(src, dst, n, stride, _U32(_tap(taps, 0)), _U32(_tap(taps, 1)), _U32(_tap(taps, 2)),
             _U32(_tap(taps, 3)), _U32(_tap(taps, 4)), _U32(_tap(taps, 5)), _U32(_tap(taps, 6)),
             _U32(_tap(taps, 7)), _U32(_tap(taps, 8)))


@njit(cache=True, nogil=True, inline="always")
def _fir_row_f64(src: np.ndarray, dst: np.ndarray, taps: np.ndarray) -> None:
    # The squares (< 2^32) from a float64 row: every product and sum is an integer below
    # 2^48, exact in float64, whose vector multiplies every x86 level has (uint64 ones need
    # AVX-512 and are slow even there: 5.9 vs 4.7 ms per 720p frame on a Xeon).
    n = taps.shape[0]
    _fir_sym(src, dst, n, 1, np.float64(_tap(taps, 0)), np.float64(_tap(taps, 1)),
             np.float64(_tap(taps, 2)), np.float64(_tap(taps, 3)), np.float64(_tap(taps, 4)),
             np.float64(_tap(taps, 5)), np.float64(_tap(taps, 6)), np.float64(_tap(taps, 7)),
             np.float64(_tap(taps, 8)))


@njit(cache=True, nogil=True, inline="always")
def _horizontal(v_mu1: np.ndarray, v_mu2: np.ndarray, v_xx: np.ndarray, v_yy: np.ndarray,
                v_xy: np.ndarray, taps: np.ndarray, h_mu1: np.ndarray, h_mu2: np.ndarray,
                h_xx: np.ndarray, h_yy: np.ndarray, h_xy: np.ndarray, f_sq: np.ndarray
                ) -> None:
    """Horizontal pass of one padded row of vertical sums: means in uint32, squares (uint32
    in ``vif_statistic_8``, uint64 in ``vif_statistic_16``) through the float64 scratch rows
    ``f_sq`` ``(3, len(v_xx))`` into uint64, as libvmaf sums them."""
    for j in range(v_xx.shape[0]):
        f_sq[0, j] = np.float64(v_xx[j])
        f_sq[1, j] = np.float64(v_yy[j])
        f_sq[2, j] = np.float64(v_xy[j])
    _fir_row_u32(v_mu1, h_mu1, taps)
    _fir_row_u32(v_mu2, h_mu2, taps)
    _fir_row_f64(f_sq[0], h_xx, taps)
    _fir_row_f64(f_sq[1], h_yy, taps)
    _fir_row_f64(f_sq[2], h_xy, taps)


@njit(cache=True, nogil=True)
def vif_statistic_8(ref: np.ndarray, dis: np.ndarray, taps: np.ndarray, table: np.ndarray,
                    gain_limit: float) -> tuple[float, float]:
    """``vif_statistic_8``: scale 0 of 8-bit ``(h, w)`` uint8 frames; ``(num, den)`` as the
    float32 values libvmaf stores (returned as Python floats)."""
    h, w = ref.shape
    fw = taps.shape[0]
    half = fw // 2
    wp = w + 2 * half
    # Vertical sums as libvmaf's uint32 (none can wrap: 65536 * 255^2 < 2^32).
    v_mu1 = np.empty(wp, np.uint32)
    v_mu2 = np.empty(wp, np.uint32)
    v_xx = np.empty(wp, np.uint32)
    v_yy = np.empty(wp, np.uint32)
    v_xy = np.empty(wp, np.uint32)
    h_mu1 = np.empty(w, np.uint32)
    h_mu2 = np.empty(w, np.uint32)
    h_xx = np.empty(w, np.uint64)
    h_yy = np.empty(w, np.uint64)
    h_xy = np.empty(w, np.uint64)
    f_sq = np.empty((3, wp))
    acc = np.zeros(4, np.int64)
    for i in range(h):
        v_mu1[:] = 0
        v_mu2[:] = 0
        v_xx[:] = 0
        v_yy[:] = 0
        v_xy[:] = 0
        for fi in range(fw):
            rr = ref[_mirror(i - half + fi, h)]
            dd = dis[_mirror(i - half + fi, h)]
            c = taps[fi]
            for j in range(w):
                r = _U32(rr[j])
                d = _U32(dd[j])
                cr = _U32(c * r)
                cd = _U32(c * d)
                v_mu1[half + j] += cr
                v_mu2[half + j] += cd
                v_xx[half + j] += _U32(cr * r)
                v_yy[half + j] += _U32(cd * d)
                v_xy[half + j] += _U32(cr * d)
        for j in range(w):
            v_mu1[half + j] = (v_mu1[half + j] + _U32(128)) >> _U32(8)
            v_mu2[half + j] = (v_mu2[half + j] + _U32(128)) >> _U32(8)
        for line in (v_mu1, v_mu2, v_xx, v_yy, v_xy):
            _pad_line(line, half, w)
        _horizontal(v_mu1, v_mu2, v_xx, v_yy, v_xy, taps, h_mu1, h_mu2, h_xx, h_yy, h_xy, f_sq)
        _row_terms(h_mu1, h_mu2, h_xx, h_yy, h_xy, table, gain_limit, acc)
    return _finish(acc)


@njit(cache=True, nogil=True)
def vif_statistic_16(ref: np.ndarray, dis: np.ndarray, taps: np.ndarray, vp_shift: int,
                     vp_sq_shift: int, table: np.ndarray, gain_limit: float
                     ) -> tuple[float, float]:
    """``vif_statistic_16``: ``(h, w)`` uint16 samples (scale 0 above 8 bits) or 16-bit means
    (scales 1-3); ``vp_shift``/``vp_sq_shift``: the vertical pass's shifts of the means and of
    the squares. Returns ``(num, den)`` as :func:`vif_statistic_8`."""
    h, w = ref.shape
    fw = taps.shape[0]
    half = fw // 2
    wp = w + 2 * half
    sh = _U32(vp_shift)
    rnd = _U32(1 << (vp_shift - 1))
    sh_sq = _U64(vp_sq_shift)
    rnd_sq = _U64((1 << vp_sq_shift) >> 1)
    v_mu1 = np.empty(wp, np.uint32)
    v_mu2 = np.empty(wp, np.uint32)
    v_xx = np.empty(wp, np.uint64)
    v_yy = np.empty(wp, np.uint64)
    v_xy = np.empty(wp, np.uint64)
    h_mu1 = np.empty(w, np.uint32)
    h_mu2 = np.empty(w, np.uint32)
    h_xx = np.empty(w, np.uint64)
    h_yy = np.empty(w, np.uint64)
    h_xy = np.empty(w, np.uint64)
    f_sq = np.empty((3, wp))
    acc = np.zeros(4, np.int64)
    for i in range(h):
        v_mu1[:] = 0
        v_mu2[:] = 0
        v_xx[:] = 0
        v_yy[:] = 0
        v_xy[:] = 0
        for fi in range(fw):
            rr = ref[_mirror(i - half + fi, h)]
            dd = dis[_mirror(i - half + fi, h)]
            c = taps[fi]
            for j in range(w):
                r = _U32(rr[j])
                d = _U32(dd[j])
                cr = _U32(c * r)
                cd = _U32(c * d)
                v_mu1[half + j] += cr
                v_mu2[half + j] += cd
                v_xx[half + j] += _U64(cr) * _U64(r)
                v_yy[half + j] += _U64(cd) * _U64(d)
                v_xy[half + j] += _U64(cr) * _U64(d)
        for j in range(w):
            # libvmaf stores these in uint16 (means) and uint32 (squares).
            v_mu1[half + j] = _U32(_U32(v_mu1[half + j] + rnd) >> sh) & _U32(0xFFFF)
            v_mu2[half + j] = _U32(_U32(v_mu2[half + j] + rnd) >> sh) & _U32(0xFFFF)
            v_xx[half + j] = ((v_xx[half + j] + rnd_sq) >> sh_sq) & _U64(0xFFFFFFFF)
            v_yy[half + j] = ((v_yy[half + j] + rnd_sq) >> sh_sq) & _U64(0xFFFFFFFF)
            v_xy[half + j] = ((v_xy[half + j] + rnd_sq) >> sh_sq) & _U64(0xFFFFFFFF)
        for line in (v_mu1, v_mu2):
            _pad_line(line, half, w)
        for line64 in (v_xx, v_yy, v_xy):
            _pad_line(line64, half, w)
        _horizontal(v_mu1, v_mu2, v_xx, v_yy, v_xy, taps, h_mu1, h_mu2, h_xx, h_yy, h_xy, f_sq)
        _row_terms(h_mu1, h_mu2, h_xx, h_yy, h_xy, table, gain_limit, acc)
    return _finish(acc)


@njit(cache=True, nogil=True)
def _finish(acc: np.ndarray) -> tuple[float, float]:
    num_log, den_log, num_non_log, den_non_log = acc[0], acc[1], acc[2], acc[3]
    num = num_log / 2048.0 + (den_non_log - (num_non_log / 16384.0) / 65025.0)
    den = den_log / 2048.0 + den_non_log
    # float64 holding the float32 values (numba keeps float() of a float32 as float32)
    return np.float64(np.float32(num)), np.float64(np.float32(den))


@njit(cache=True, nogil=True)
def vif_subsample(x: np.ndarray, taps: np.ndarray, vp_shift: int) -> np.ndarray:
    """``subsample_rd_8/16``: low-pass (vertical ``>> vp_shift``, horizontal ``>> 16``) and keep
    even rows and columns: ``(h // 2, w // 2)`` uint16 means."""
    h, w = x.shape
    fw = taps.shape[0]
    half = fw // 2
    sh = _U32(vp_shift)
    rnd = _U32(1 << (vp_shift - 1))
    ho, wo = h // 2, w // 2
    out = np.empty((ho, wo), np.uint16)
    line = np.empty(w + 2 * half, np.uint32)
    even = np.empty(wo, np.uint32)
    for io in range(ho):
        i = 2 * io
        line[:] = 0
        for fi in range(fw):
            rr = x[_mirror(i - half + fi, h)]
            c = taps[fi]
            for j in range(w):
                line[half + j] += _U32(c * _U32(rr[j]))
        for j in range(w):
            line[half + j] = _U32(_U32(line[half + j] + rnd) >> sh) & _U32(0xFFFF)
        _pad_line(line, half, w)
        _fir_row_u32(line, even, taps, 2)  # even columns only
        for jo in range(wo):
            out[io, jo] = np.uint16(_U32(even[jo] + _U32(32768)) >> _U32(16))
    return out


def vif_frame(ref: np.ndarray, dis: np.ndarray, bit_depth: int, gain_limit: float,
              skip_scale0: bool = False) -> np.ndarray:
    """``integer_vif_scale0..3`` of one ``(h, w)`` frame pair of ``bit_depth``-bit samples (any
    integer dtype): float64 ``(4,)``."""
    table = _log2_table()
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    x = np.ascontiguousarray(ref, dtype=dtype)
    y = np.ascontiguousarray(dis, dtype=dtype)
    out = np.zeros(4)
    gain = float(gain_limit)
    for scale in range(4):
        if scale > 0:
            shift = bit_depth if scale == 1 else 16
            x = vif_subsample(x, _TAPS[scale], shift)
            y = vif_subsample(y, _TAPS[scale], shift)
        if scale == 0 and skip_scale0:
            continue
        if scale == 0 and bit_depth == 8:
            num, den = vif_statistic_8(x, y, _TAPS[0], table, gain)
        else:
            vp, vp_sq = (bit_depth, 2 * (bit_depth - 8)) if scale == 0 else (16, 16)
            num, den = vif_statistic_16(x, y, _TAPS[scale], vp, vp_sq, table, gain)
        out[scale] = float(np.float32(num) / np.float32(den))
    return out


@functools.cache
def _log2_table() -> np.ndarray:
    """libvmaf's log2 table as int64 (entries 32767..65535 used)."""
    return log2_table("cpu").numpy().astype(np.int64)


# --------------------------------------------------------------------------- motion

_MOTION_TAPS = np.array((3571, 16004, 26386, 16004, 3571), dtype=np.int64)
if tuple(_MOTION_TAPS) != tuple(_MOTION_TAPS[::-1]):  # motion_sad folds its pairs
    raise RuntimeError("the motion filter must be symmetric")


@njit(cache=True, nogil=True)
def motion_sad(prev: np.ndarray, cur: np.ndarray, vp_shift: int) -> int:
    """libvmaf's integer motion SAD (before scaling) between two ``(h, w)`` reference frames:
    the 5-tap blur of their difference (vertical ``>> vp_shift``, horizontal ``>> 16``, both
    rounded, mirrored borders), summed in absolute value. The taps are written out (folded
    pairs, as :func:`_fir_sym`) so that both passes vectorise; int64 sums are exact in any
    order."""
    h, w = prev.shape
    half = 2
    line = np.empty(w + 2 * half, np.int64)
    rnd = np.int64(1 << (vp_shift - 1))
    c0, c1, c2 = _MOTION_TAPS[0], _MOTION_TAPS[1], _MOTION_TAPS[2]
    total = np.int64(0)
    for i in range(h):
        p0, q0 = prev[_mirror(i - 2, h)], cur[_mirror(i - 2, h)]
        p1, q1 = prev[_mirror(i - 1, h)], cur[_mirror(i - 1, h)]
        p2, q2 = prev[i], cur[i]
        p3, q3 = prev[_mirror(i + 1, h)], cur[_mirror(i + 1, h)]
        p4, q4 = prev[_mirror(i + 2, h)], cur[_mirror(i + 2, h)]
        for j in range(w):
            d0 = np.int64(p0[j]) - np.int64(q0[j])
            d1 = np.int64(p1[j]) - np.int64(q1[j])
            d2 = np.int64(p2[j]) - np.int64(q2[j])
            d3 = np.int64(p3[j]) - np.int64(q3[j])
            d4 = np.int64(p4[j]) - np.int64(q4[j])
            line[half + j] = (c0 * (d0 + d4) + c1 * (d1 + d3) + c2 * d2 + rnd) >> vp_shift
        _pad_line(line, half, w)
        for j in range(w):
            total += abs((_sym5(line, j, c0, c1, c2) + 32768) >> 16)
    return total


# --------------------------------------------------------------------------- batched entry points


def _frames(x: torch.Tensor, bit_depth: int) -> np.ndarray:
    """``(N, H, W)`` samples of ``bit_depth`` bits as C-contiguous uint8 (8-bit) or uint16 numpy.

    Float samples are rounded (as the torch path's ADM does); values outside ``0 .. 2^bits - 1``
    raise, since storing them in libvmaf's unsigned types would wrap them silently.
    """
    t = x.detach().cpu()
    if t.is_floating_point():
        t = t.to(torch.float64).round()  # also covers dtypes numpy lacks (bfloat16)
    arr = t.numpy()
    full_range = (arr.dtype == np.uint8 and bit_depth >= 8) or (
        arr.dtype == np.uint16 and bit_depth == 16)  # nothing to check (decoded frames)
    if arr.size and not full_range:
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > (1 << bit_depth) - 1:
            raise ValueError(f"{bit_depth}-bit samples must lie in 0..{(1 << bit_depth) - 1}, "
                             f"got values from {lo} to {hi}")
    return np.ascontiguousarray(arr, dtype=np.uint8 if bit_depth == 8 else np.uint16)


def _check_filter_sizes(h: int, w: int, taps: tuple[tuple[int, ...], ...], what: str) -> None:
    """The torch path's error for a filter wider than the plane (here a read out of bounds).

    ``taps``: the filter of each level, each level working on half the previous size.
    """
    for level, t in enumerate(taps):
        r = len(t) // 2
        for n in (h >> level, w >> level):
            if n <= r:
                raise ValueError(f"{what}: a {len(t)}-tap filter needs more than {r} samples, "
                                 f"got {n} (frame {w}x{h})")


def integer_vif_compiled(ref: torch.Tensor, dis: torch.Tensor, bit_depth: int,
                         opts: IntegerVifOptions) -> dict[str, torch.Tensor]:
    """:func:`.integer_vif.integer_vif` of CPU tensors through :func:`vif_frame`."""
    _check_filter_sizes(ref.shape[-2], ref.shape[-1], VIF_FILTERS, "integer VIF")
    r, d = _frames(ref, bit_depth), _frames(dis, bit_depth)
    scores = np.stack([vif_frame(r[i], d[i], bit_depth, opts.enhn_gain_limit, opts.skip_scale0)
                       for i in range(r.shape[0])]) if r.shape[0] else np.zeros((0, 4))
    return {f"integer_vif_scale{s}": torch.from_numpy(scores[:, s].copy()) for s in range(4)}


def motion_sad_sequence(history: torch.Tensor, chunk: torch.Tensor,
                        pairs: list[tuple[int, int]], bit_depth: int) -> torch.Tensor:
    """SADs of frame pairs ``(a, b)`` indexing the sequence ``history`` then ``chunk`` (both
    ``(n, H, W)``): int64 ``(len(pairs),)``, read in place (no concatenated copy)."""
    _check_filter_sizes(chunk.shape[-2], chunk.shape[-1], (tuple(_MOTION_TAPS),),
                        "integer motion")
    if history.shape[0] and history.shape[1:] != chunk.shape[1:]:
        raise ValueError(f"integer motion: history frames are {tuple(history.shape[1:])}, the "
                         f"chunk's {tuple(chunk.shape[1:])}")
    hist, frames = _frames(history, bit_depth), _frames(chunk, bit_depth)
    k = hist.shape[0]
    shift = 8 if bit_depth == 8 else bit_depth
    return torch.tensor([motion_sad(hist[a] if a < k else frames[a - k],
                                    hist[b] if b < k else frames[b - k], shift)
                         for a, b in pairs], dtype=torch.int64)


def motion_sad_compiled(prev: torch.Tensor, cur: torch.Tensor, bit_depth: int) -> torch.Tensor:
    """:func:`..motion3.motion_sad_integer` of CPU tensors: int64 ``(N,)``."""
    _check_filter_sizes(prev.shape[-2], prev.shape[-1], (tuple(_MOTION_TAPS),), "integer motion")
    if prev.shape != cur.shape:
        raise ValueError(f"integer motion: frame shapes differ, {tuple(prev.shape)} and "
                         f"{tuple(cur.shape)}")
    p, c = _frames(prev, bit_depth), _frames(cur, bit_depth)
    shift = 8 if bit_depth == 8 else bit_depth
    return torch.tensor([motion_sad(p[i], c[i], shift) for i in range(p.shape[0])],
                        dtype=torch.int64)
