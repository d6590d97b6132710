"""libvmaf's integer ADM as compiled CPU kernels (numba): the integer work of :mod:`.integer_adm`.

:mod:`.integer_adm` reproduces libvmaf's fixed-point ADM with whole-tensor torch operations;
on a CPU its many passes over the bands and the GIL held between small operations cost most of
its time. Here each integer stage of a scale is one compiled loop over the bands of one frame
pair (GIL released, so frames run in parallel on threads): the db2 DWT with its mirrored
borders and libvmaf's SIMD tail column, the decoupling (reciprocal table, one-degree angle test
with libvmaf's float32 casts, gain limit and the vector blocks' rounding), the CSF and masking
weights, and the cube sums with their per-row rounding shifts. The few float steps that turn
those integer sums into the per-scale terms (``powf``, the noise term) are shared with the
torch path (:func:`.integer_adm._den_finish`, :func:`.integer_adm._cm_finish`), so both paths
hold one copy of libvmaf's float arithmetic.

All arithmetic is int64 (every product below 2^63, see the torch module for the bounds) with
explicit two's-complement wraps where libvmaf stores int16/int32; the DWT's filter sums are
exact float64. numba's on-disk cache is keyed to this file: the constants read from
:mod:`.integer_adm` at import (filter taps) are libvmaf's and never change.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import torch
from numba import njit

# The package re-exports the function ``integer_adm`` under the module's name: import the module.
ia = importlib.import_module(f"{__package__}.integer_adm")

_COS_1DEG_SQ = float(np.float32(math.cos(math.pi / 180.0) * math.cos(math.pi / 180.0)))
_LO = np.array(ia._LO, dtype=np.int64)
_HI = np.array(ia._HI, dtype=np.int64)


@njit(cache=True, nogil=True, inline="always")
def _wrap(x: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


@njit(cache=True, nogil=True, inline="always")
def _dwt_index(i: int, n: int) -> int:
    # DWT borders: sample -1 is 1, n is n-1, n+1 is n-2.
    if i < 0:
        return -i
    if i >= n:
        return 2 * n - 1 - i
    return i


_LO_F = _LO.astype(np.float64)
_HI_F = _HI.astype(np.float64)


@njit(cache=True, nogil=True, inline="always")
def _fir4(k: np.ndarray, s0: float, s1: float, s2: float, s3: float, add: float,
          scale: float) -> float:
    # (sum + add) >> shift as floor((sum + add) * 2^-shift): every value is an integer below
    # 2^48 (bounds in integer_adm._dwt), exact in float64, whose vector multiply-adds every
    # x86 level has (int64 multiplies need AVX-512).
    return math.floor((k[0] * s0 + k[1] * s1 + k[2] * s2 + k[3] * s3 + add) * scale)


@njit(cache=True, nogil=True)
def adm_dwt(x: np.ndarray, off: int, add_v: int, sh_v: int, add_h: int, sh_h: int,
            tail: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One DWT level of ``(h, w)`` integer samples: int64 bands (a, v, h, d) of
    ``(ceil(h/2), ceil(w/2))``.

    Vertical pass ``(sum + add_v [- off for the low pass]) >> sh_v``, horizontal ``(sum + add_h)
    >> sh_h``; ``tail``: libvmaf's vector block whose last block also computes the last column
    from unmirrored taps running into the high-pass row (see :func:`.integer_adm._dwt`).
    """
    h, w = x.shape
    ho, wo = (h + 1) // 2, (w + 1) // 2
    a = np.empty((ho, wo), np.int64)
    v = np.empty((ho, wo), np.int64)
    hh = np.empty((ho, wo), np.int64)
    d = np.empty((ho, wo), np.int64)
    # Vertical outputs with the horizontal borders padded in: lo[k + 1] is sample k, lo[0] is
    # sample 1 (for -1), lo[w + 1] sample w - 1 and lo[w + 2] sample w - 2.
    lo = np.empty(w + 3)
    hi = np.empty(w + 3)
    add_lo = float(add_v - off)
    add_hi = float(add_v)
    scale_v = 2.0 ** -sh_v
    add_hf = float(add_h)
    scale_h = 2.0 ** -sh_h
    quirk = tail > 0 and wo > 1 and (wo - 1) % tail == 0
    for i in range(ho):
        r0 = x[_dwt_index(2 * i - 1, h)]
        r1 = x[_dwt_index(2 * i, h)]
        r2 = x[_dwt_index(2 * i + 1, h)]
        r3 = x[_dwt_index(2 * i + 2, h)]
        for j in range(w):
            s0, s1, s2, s3 = float(r0[j]), float(r1[j]), float(r2[j]), float(r3[j])
            lo[j + 1] = _fir4(_LO_F, s0, s1, s2, s3, add_lo, scale_v)
            hi[j + 1] = _fir4(_HI_F, s0, s1, s2, s3, add_hi, scale_v)
        lo[0], hi[0] = lo[2], hi[2]
        lo[w + 1], hi[w + 1] = lo[w], hi[w]
        lo[w + 2], hi[w + 2] = lo[w - 1], hi[w - 1]
        for j in range(wo):
            b = 2 * j
            l0, l1, l2, l3 = lo[b], lo[b + 1], lo[b + 2], lo[b + 3]
            h0, h1, h2, h3 = hi[b], hi[b + 1], hi[b + 2], hi[b + 3]
            a[i, j] = np.int64(_fir4(_LO_F, l0, l1, l2, l3, add_hf, scale_h))
            v[i, j] = np.int64(_fir4(_HI_F, l0, l1, l2, l3, add_hf, scale_h))
            hh[i, j] = np.int64(_fir4(_LO_F, h0, h1, h2, h3, add_hf, scale_h))
            d[i, j] = np.int64(_fir4(_HI_F, h0, h1, h2, h3, add_hf, scale_h))
        if quirk:  # taps 2j-1 .. 2j+2 of the lo row followed by the hi row, unmirrored
            j = wo - 1
            t = [lo[c + 1] if c < w else hi[c - w + 1] for c in range(2 * j - 1, 2 * j + 3)]
            a[i, j] = np.int64(_fir4(_LO_F, t[0], t[1], t[2], t[3], add_hf, scale_h))
            v[i, j] = np.int64(_fir4(_HI_F, t[0], t[1], t[2], t[3], add_hf, scale_h))
    return a, v, hh, d


@njit(cache=True, nogil=True)
def _round_to_odd(x: int, d: float) -> float:
    # |x| >= 2^53: d = float64(x) was rounded; if it dropped bits and landed on an even
    # significand, step toward x so that the float32 rounding after it is the only one.
    err = x - np.int64(d)
    cell = np.empty(1, np.float64)
    cell[0] = d
    if err != 0 and (cell.view(np.int64)[0] & 1) == 0:
        return np.nextafter(d, math.inf if err > 0 else -math.inf)
    return d


@njit(cache=True, nogil=True, inline="always")
def _to_f32(x: int) -> float:
    # C's (float) of an int64: one rounding (exact through float64 below 2^53).
    d = float(x)
    if abs(x) >= (1 << 53):
        d = _round_to_odd(x, d)
    return np.float64(np.float32(d))  # (float() of a float32 stays float32 in numba)


@njit(cache=True, nogil=True, inline="always")
def _restored(ob: int, tb: int, angle: bool, scale0: bool, gain: float, int_gain: bool,
              gi: int, vector: bool, table: np.ndarray) -> int:
    """libvmaf's restored coefficient of one reference/distorted coefficient pair."""
    mag = abs(ob)
    sgn_t = -tb if ob < 0 else tb
    if scale0:  # |o| <= 32768: straight from the Q30 reciprocal table
        tmp = (table[mag] * sgn_t + 16384) >> 15
    else:  # 15 significant bits first, the shift undone after
        shift = 0
        if mag > 32767:
            shift = int(math.frexp(float(mag))[1]) - 15
        m = (mag + ((1 << shift) >> 1)) >> shift if shift > 0 else mag
        tmp = (table[m] * sgn_t + (1 << (14 + shift))) >> (15 + shift)
    k = min(max(tmp, 0), 32768)
    if ob == 0:
        k = 32768
    rst = (k * ob + 16384) >> 15
    if angle and k > 0 and ob != 0:
        if int_gain:
            boosted = rst * gi
            rst = min(boosted, tb) if ob > 0 else max(boosted, tb)
        elif vector:  # libvmaf's vector blocks round rst * gain to nearest (even)
            near = np.int64(np.rint(rst * gain))
            rst = min(near, tb) if ob > 0 else max(near, tb)
        else:  # its C code: min/max in double, then truncation
            bf = rst * gain
            tf = float(tb)
            sel = (bf if bf < tf else tf) if ob > 0 else (bf if bf > tf else tf)
            rst = np.int64(math.trunc(sel))
    return rst


@njit(cache=True, nogil=True)
def _angle_flags(oh: np.ndarray, ov: np.ndarray, th: np.ndarray, tv: np.ndarray,
                 cos_sq: float, int16_bands: bool) -> np.ndarray:
    """libvmaf's one-degree test between (oh, ov) and (th, tv): its float32 casts of the int64
    dot product and squared norms, compared in double as ``(cos * o) * t``.

    ``int16_bands`` (scale 0): every product is below 2^31, so the casts need no round-to-odd
    step and the loop vectorises.
    """
    n_rows, n_cols = oh.shape
    out = np.empty((n_rows, n_cols), np.bool_)
    for i in range(n_rows):
        if int16_bands:
            for j in range(n_cols):
                o_h, o_v, t_h, t_v = oh[i, j], ov[i, j], th[i, j], tv[i, j]
                dp = np.float64(np.float32(np.float64(o_h * t_h + o_v * t_v)))
                om = np.float64(np.float32(np.float64(o_h * o_h + o_v * o_v)))
                tm = np.float64(np.float32(np.float64(t_h * t_h + t_v * t_v)))
                out[i, j] = (dp >= 0) & (dp * dp >= (om * cos_sq) * tm)
        else:
            for j in range(n_cols):
                o_h, o_v, t_h, t_v = oh[i, j], ov[i, j], th[i, j], tv[i, j]
                dp = _to_f32(o_h * t_h + o_v * t_v)
                om = _to_f32(o_h * o_h + o_v * o_v)
                tm = _to_f32(t_h * t_h + t_v * t_v)
                out[i, j] = (dp >= 0) & (dp * dp >= (om * cos_sq) * tm)
    return out


@njit(cache=True, nogil=True)
def _decouple_band_scale0(ob: np.ndarray, tb: np.ndarray, angle: np.ndarray, gain: int,
                          table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_restored` for scale 0 and an integer gain limit (every v0.6.1 model), as one
    branch-light loop."""
    n_rows, n_cols = ob.shape
    rst = np.empty((n_rows, n_cols), np.int64)
    add = np.empty((n_rows, n_cols), np.int64)
    for i in range(n_rows):
        for j in range(n_cols):
            o = ob[i, j]
            t = tb[i, j]
            k = (table[abs(o)] * (-t if o < 0 else t) + 16384) >> 15
            k = 32768 if o == 0 else min(max(k, 0), 32768)
            r = (k * o + 16384) >> 15
            boosted = r * gain
            limited = min(boosted, t) if o > 0 else max(boosted, t)
            r = limited if (angle[i, j] and k > 0 and o != 0) else r
            rst[i, j] = r
            add[i, j] = t - r
    return rst, add


@njit(cache=True, nogil=True)
def _decouple_band(ob: np.ndarray, tb: np.ndarray, angle: np.ndarray, scale0: bool,
                   gain: float, vec_cols: int, table: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    n_rows, n_cols = ob.shape
    int_gain = gain == math.floor(gain)
    gi = np.int64(gain)
    rst = np.empty((n_rows, n_cols), np.int64)
    add = np.empty((n_rows, n_cols), np.int64)
    for i in range(n_rows):
        for j in range(n_cols):
            r = _restored(ob[i, j], tb[i, j], angle[i, j], scale0, gain, int_gain, gi,
                          j < vec_cols, table)
            rst[i, j] = r
            add[i, j] = tb[i, j] - r
    return rst, add


def adm_decouple(oh: np.ndarray, ov: np.ndarray, od: np.ndarray, th: np.ndarray,
                 tv: np.ndarray, td: np.ndarray, scale0: bool, gain: float, vec_cols: int,
                 table: np.ndarray, cos_sq: float) -> tuple[np.ndarray, ...]:
    """Restored (rh, rv, rd) and additive (ah, av, ad) bands from the reference (o*) and
    distorted (t*) detail bands, as :func:`.integer_adm._decouple` computes them."""
    angle = _angle_flags(oh, ov, th, tv, cos_sq, scale0)
    pairs = ((oh, th), (ov, tv), (od, td))
    if scale0 and gain == math.floor(gain):
        (rh, ah), (rv, av), (rd, ad) = (
            _decouple_band_scale0(o, t, angle, int(gain), table) for o, t in pairs)
    else:
        (rh, ah), (rv, av), (rd, ad) = (
            _decouple_band(o, t, angle, scale0, gain, vec_cols, table) for o, t in pairs)
    return rh, rv, rd, ah, av, ad


@njit(cache=True, nogil=True, inline="always")
def _roi(n: int) -> tuple[int, int]:
    start = int(n * 0.1 - 0.5)
    return start, n - start


@njit(cache=True, nogil=True)
def adm_den_acc(band: np.ndarray, scale: int, sh_acc: int, cub: int) -> int:
    """One orientation of :func:`.integer_adm._den_acc`."""
    n_rows, n_cols = band.shape
    top, bottom = _roi(n_rows)
    left, right = _roi(n_cols)
    sq = (31, 30, 31)[scale - 1] if scale > 0 else 0
    add_cub = (1 << (cub - 1)) if cub > 0 else 0
    add_row = (1 << (sh_acc - 1)) if sh_acc > 0 else 0
    total = np.int64(0)
    for i in range(top, bottom):
        row = np.int64(0)
        for j in range(left, right):
            x = abs(band[i, j])
            if scale == 0:
                row += x * x * x
            else:
                row += ((((x * x + (1 << sq)) >> sq) * x) + add_cub) >> cub
        total += (row + add_row) >> sh_acc
    return total


@njit(cache=True, nogil=True)
def adm_mask_threshold(m_h: np.ndarray, m_v: np.ndarray, m_d: np.ndarray, scale: int,
                       rfs: tuple[int, int, int], shifts: tuple[int, int, int],
                       adds: tuple[int, int, int]) -> np.ndarray:
    """The masking threshold over the region of interest, from the masker's (h, v, d) bands.

    :func:`.integer_adm._csf` of each orientation (CSF weighting, then the |csf|/30 weight and
    the centre's |csf|/15 weight, with libvmaf's int16/int32 wraps), then per pixel the eight
    neighbours' /30 weights summed over the orientations (top/left border reflected,
    bottom/right replicated) plus the three centre /15 weights: the ``thr`` of
    :func:`.integer_adm._cm_acc`, which all three orientations share.
    """
    n_rows, n_cols = m_h.shape
    f_all = np.zeros((n_rows, n_cols), np.int64)
    centre = np.zeros((n_rows, n_cols), np.int64)
    for o in range(3):
        band = m_h if o == 0 else (m_v if o == 1 else m_d)
        rf, sh, add = rfs[o], shifts[o], adds[o]
        if scale == 0:
            for i in range(n_rows):
                for j in range(n_cols):
                    dv = abs(_wrap((band[i, j] * rf + add) >> sh, 16))
                    f_all[i, j] += _wrap((dv * 4369 + 2048) >> 12, 16)
                    centre[i, j] += _wrap((dv * 8738 + 2048) >> 12, 16)
        else:
            for i in range(n_rows):
                for j in range(n_cols):
                    dv = abs(_wrap((band[i, j] * rf + add) >> sh, 32))
                    f_all[i, j] += _wrap((dv * 143165577 - (1 << 31)) >> 32, 32)
                    centre[i, j] += _wrap((dv * 286331153 - (1 << 31)) >> 32, 32)
    top, bottom = _roi(n_rows)
    left, right = _roi(n_cols)
    thr = np.empty((bottom - top, right - left), np.int64)
    for i in range(top, bottom):
        up = 1 if i == 0 else i - 1
        dn = i if i == n_rows - 1 else i + 1
        for j in range(left, right):
            lf = 1 if j == 0 else j - 1
            rt = j if j == n_cols - 1 else j + 1
            thr[i - top, j - left] = (
                f_all[up, lf] + f_all[up, j] + f_all[up, rt] + f_all[i, lf] + f_all[i, rt]
                + f_all[dn, lf] + f_all[dn, j] + f_all[dn, rt] + centre[i, j])
    return thr


@njit(cache=True, nogil=True)
def adm_cm_acc(src: np.ndarray, thr: np.ndarray, scale: int, rf: int, sub: int, sq: int,
               cub: int, sh_inner: int) -> int:
    """One orientation of :func:`.integer_adm._cm_acc`: ``src``'s cube sum over the region of
    interest, masked by ``thr`` (:func:`adm_mask_threshold`), with the per-row rounding."""
    n_rows, n_cols = src.shape
    top, bottom = _roi(n_rows)
    left, right = _roi(n_cols)
    add_cub = (1 << (cub - 1)) if cub > 0 else 0
    add_row = (1 << (sh_inner - 1)) if sh_inner > 0 else 0
    add_sq = 1 << (sq - 1)
    total = np.int64(0)
    for i in range(top, bottom):
        row = np.int64(0)
        if scale == 0:
            for j in range(left, right):
                x = max(abs(src[i, j] * rf) - (thr[i - top, j - left] << sub), 0)
                row += (_wrap((x * x + add_sq) >> sq, 32) * x + add_cub) >> cub
        else:
            for j in range(left, right):
                x = abs(_wrap((src[i, j] * rf + (1 << 27)) >> 28, 32))
                x = max(x - thr[i - top, j - left], 0)
                row += (_wrap((x * x + add_sq) >> sq, 32) * x + add_cub) >> cub
        total += (row + add_row) >> sh_inner
    return total


def _recip_table() -> np.ndarray:
    return ia._recip_table_cpu().numpy()


def _masked_sums(src: tuple[np.ndarray, ...], masker: tuple[np.ndarray, ...], scale: int,
                 rfs: tuple[int, int, int], csf_params: tuple[tuple[int, int], ...], h: int,
                 w: int) -> list[int]:
    """The (h, v, d) cube sums of ``src`` masked by ``masker``'s CSF (:func:`.integer_adm._cm`
    of ``src`` with :func:`.integer_adm._csf` of ``masker``)."""
    shifts = tuple(p[0] for p in csf_params)
    adds = tuple(p[1] for p in csf_params)
    thr = adm_mask_threshold(*masker, scale, rfs, shifts, adds)
    sh_inner, params = ia._cm_shifts(scale, h, w)
    return [adm_cm_acc(b, thr, scale, r, sub, sq, cub, sh_inner)
            for b, r, (sub, sq, cub) in zip(src, rfs, params, strict=True)]


def adm_frame(ref: np.ndarray, dis: np.ndarray, bit_depth: int, opts: ia.IntegerAdmOptions,
              simd: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer sums of one frame pair: (den, num, aim) int64 ``(4 scales, 3 orientations)``
    (aim zero with ``skip_aim``; scale 0 zero with ``skip_scale0``)."""
    table = _recip_table()
    dens = np.zeros((4, 3), np.int64)
    nums = np.zeros((4, 3), np.int64)
    aims = np.zeros((4, 3), np.int64)
    half = 1 << (bit_depth - 1)
    cur_r, cur_d = ref, dis  # uint8/uint16 samples; int64 bands from scale 1 on
    for scale in range(4):
        if scale == 0:
            tail = 0 if opts.skip_scale0 else ia._SIMD_TAIL[simd, bit_depth == 8]
            vp = (ia._LO_SUM * half, half, bit_depth)
            hp = (32768, 16)
        else:
            tail = 0
            vp = ((0, 0, 0), (0, 32768, 16), (0, 32768, 16))[scale - 1]
            hp = ((16384, 15), (32768, 16), (16384, 15))[scale - 1]
        rb = adm_dwt(cur_r, vp[0], vp[1], vp[2], hp[0], hp[1], tail)
        db = adm_dwt(cur_d, vp[0], vp[1], vp[2], hp[0], hp[1], tail)
        cur_r, cur_d = rb[0], db[0]
        if scale == 0 and opts.skip_scale0:
            continue
        bh, bw = rb[0].shape
        o = (rb[2], rb[1], rb[3])  # (h, v, d)
        t = (db[2], db[1], db[3])
        vec_cols = 0
        block = ia._DECOUPLE_BLOCK[simd, scale == 0]
        if block:
            left_c = max(int(bw * ia._BORDER - 0.5 - 1), 0)
            right_c = min(bw - left_c + 2, bw)
            vec_cols = right_c - (right_c - left_c) % block
        rh, rv, rd, ah, av, ad = adm_decouple(*o, *t, scale == 0, float(opts.enhn_gain_limit),
                                              vec_cols, table, _COS_1DEG_SQ)
        sh_acc, cub = ia._den_shifts(scale, bh, bw)
        dens[scale] = [adm_den_acc(b, scale, sh_acc, cub) for b in o]
        if scale == 0:
            rfs = ia._scale0_rfactor(opts)
            csf_p = ((15, 16384), (15, 16384), (17, 65535))  # sic: 65535 for the diagonal
        else:
            rfs = ia._s123_rfactor(scale, opts)
            csf_p = ((28, 1 << 27),) * 3
        rst, add = (rh, rv, rd), (ah, av, ad)
        nums[scale] = _masked_sums(rst, add, scale, rfs, csf_p, bh, bw)
        if not opts.skip_aim:  # AIM: the additive part masked by the restored part's CSF
            aims[scale] = _masked_sums(add, rst, scale, rfs, csf_p, bh, bw)
    return dens, nums, aims


def integer_adm_compiled(ref: torch.Tensor, dis: torch.Tensor, bit_depth: int,
                         opts: ia.IntegerAdmOptions, simd: str) -> dict[str, torch.Tensor]:
    """:func:`.integer_adm.integer_adm` of CPU tensors (at least one frame: ``integer_adm`` sends
    empty batches through the torch path): integer sums per frame here, the float terms and
    pooling by the torch path's own functions."""
    from .cpu_kernels import _frames

    r, d = _frames(ref, bit_depth), _frames(dis, bit_depth)
    n, h, w = r.shape
    sums = [adm_frame(r[i], d[i], bit_depth, opts, simd) for i in range(n)]
    dens_i = torch.from_numpy(np.stack([s[0] for s in sums]))
    nums_i = torch.from_numpy(np.stack([s[1] for s in sums]))
    aims_i = torch.from_numpy(np.stack([s[2] for s in sums]))
    zero = torch.zeros(n, dtype=torch.float32)
    nums, dens, aims = [], [], []
    bh, bw = h, w
    for scale in range(4):
        bh, bw = (bh + 1) // 2, (bw + 1) // 2
        if scale == 0 and opts.skip_scale0:
            nums.append(zero)
            dens.append(torch.full_like(zero, 1e-10))
            aims.append(zero)
            continue
        dens.append(ia._den_finish(list(dens_i[:, scale].unbind(1)), scale, opts, bh, bw))
        nums.append(ia._cm_finish(list(nums_i[:, scale].unbind(1)), scale, opts.noise_weight,
                                  bh, bw))
        aims.append(zero if opts.skip_aim else
                    ia._cm_finish(list(aims_i[:, scale].unbind(1)), scale, 0.0, bh, bw))
    return ia._pooled(nums, dens, aims, w, h, opts)
