"""libvmaf's integer ADM as compiled CPU kernels (numba): the integer work of :mod:`.integer_adm`.

:mod:`.integer_adm` reproduces libvmaf's fixed-point ADM with whole-tensor torch operations;
on a CPU its many passes over the bands and the GIL held between small operations cost most of
its time. Here each integer stage of a scale is one compiled loop over the bands of one frame
pair (GIL released, so frames run in parallel on threads): the db2 DWT with its mirrored
borders and libvmaf's SIMD tail column, the decoupling (reciprocals, one-degree angle test
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
import threading

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
            tail: int, a: np.ndarray, v: np.ndarray, hh: np.ndarray, d: np.ndarray,
            lo: np.ndarray, hi: np.ndarray) -> None:
    """One DWT level of ``(h, w)`` integer samples into the int64 bands ``a``, ``v``, ``hh``,
    ``d`` of ``(ceil(h/2), ceil(w/2))``; ``lo``/``hi``: float64 row scratch of ``w + 3``.

    Vertical pass ``(sum + add_v [- off for the low pass]) >> sh_v``, horizontal ``(sum + add_h)
    >> sh_h``; ``tail``: libvmaf's vector block whose last block also computes the last column
    from unmirrored taps running into the high-pass row (see :func:`.integer_adm._dwt`).
    """
    h, w = x.shape
    ho, wo = (h + 1) // 2, (w + 1) // 2
    # Vertical outputs with the horizontal borders padded in: lo[k + 1] is sample k, lo[0] is
    # sample 1 (for -1), lo[w + 1] sample w - 1 and lo[w + 2] sample w - 2.
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
def _recip(m: int) -> int:
    """libvmaf's ``div_lookup[m]`` = 2^30 // m (0 for m = 0), for 0 <= m <= 32768.

    A float64 division instead of the 256 KB table: reading the table at |o| is a gather that
    misses L1 and cost ~5x the rest of the decoupling; the truncated quotient equals the integer
    one for every m (2^30 / m is at least 1/m from the next integer, far above the rounding).
    """
    return np.int64(1073741824.0 / m) if m > 0 else 0


@njit(cache=True, nogil=True, inline="always")
def _restored(ob: int, tb: int, angle: bool, scale0: bool, gain: float, int_gain: bool,
              gi: int, vector: bool) -> int:
    """libvmaf's restored coefficient of one reference/distorted coefficient pair."""
    mag = abs(ob)
    sgn_t = -tb if ob < 0 else tb
    if scale0:  # |o| <= 32768: straight from the Q30 reciprocal
        tmp = (_recip(mag) * sgn_t + 16384) >> 15
    else:  # 15 significant bits first, the shift undone after
        shift = 0
        if mag > 32767:
            shift = int(math.frexp(float(mag))[1]) - 15
        m = (mag + ((1 << shift) >> 1)) >> shift if shift > 0 else mag
        tmp = (_recip(m) * sgn_t + (1 << (14 + shift))) >> (15 + shift)
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
                 cos_sq: float, int16_bands: bool, out: np.ndarray) -> None:
    """libvmaf's one-degree test between (oh, ov) and (th, tv) into the bool array ``out``: its
    float32 casts of the int64 dot product and squared norms, compared in double as
    ``(cos * o) * t``.

    ``int16_bands`` (scale 0): every product is below 2^31, so the casts need no round-to-odd
    step and the loop vectorises.
    """
    n_rows, n_cols = oh.shape
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


@njit(cache=True, nogil=True, inline="always")
def _excess_bits(mag: int) -> int:
    """``bit_length(mag) - 15`` for ``mag >= 2^15``, else 0 (``0 <= mag < 2^63``): the shift
    that leaves 15 significant bits. Branch-free (the bits above bit 14 smeared down, then
    counted), so the loop around it vectorises, which a call of ``frexp`` prevents."""
    v = mag >> 15
    v |= v >> 1
    v |= v >> 2
    v |= v >> 4
    v |= v >> 8
    v |= v >> 16
    v |= v >> 32
    v = v - ((v >> 1) & 0x5555555555555555)
    v = (v & 0x3333333333333333) + ((v >> 2) & 0x3333333333333333)
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0F
    return (v * 0x0101010101010101) >> 56  # the byte sums (<= 64) in the top byte


@njit(cache=True, nogil=True)
def _decouple_band_int_gain(ob: np.ndarray, tb: np.ndarray, angle: np.ndarray, gain: int,
                            scale0: bool, rst: np.ndarray, add: np.ndarray) -> None:
    """:func:`_restored` with an integer gain limit (every v0.6.1 model), as one branch-light
    loop into ``rst`` and ``add``: at scale 0 (``|o| <= 32768``) straight from the reciprocal,
    at scales 1-3 after the shift to 15 significant bits (0: libvmaf's unshifted case)."""
    n_rows, n_cols = ob.shape
    for i in range(n_rows):
        for j in range(n_cols):
            o = ob[i, j]
            t = tb[i, j]
            mag = abs(o)
            shift = 0 if scale0 else _excess_bits(mag)
            m = (mag + ((1 << shift) >> 1)) >> shift
            k = (_recip(m) * (-t if o < 0 else t) + (1 << (14 + shift))) >> (15 + shift)
            k = 32768 if o == 0 else min(max(k, 0), 32768)
            r = (k * o + 16384) >> 15
            boosted = r * gain
            limited = min(boosted, t) if o > 0 else max(boosted, t)
            r = limited if (angle[i, j] and k > 0 and o != 0) else r
            rst[i, j] = r
            add[i, j] = t - r


@njit(cache=True, nogil=True)
def _decouple_band(ob: np.ndarray, tb: np.ndarray, angle: np.ndarray, scale0: bool,
                   gain: float, vec_cols: int, rst: np.ndarray, add: np.ndarray) -> None:
    n_rows, n_cols = ob.shape
    int_gain = gain == math.floor(gain)
    gi = np.int64(gain)
    for i in range(n_rows):
        for j in range(n_cols):
            r = _restored(ob[i, j], tb[i, j], angle[i, j], scale0, gain, int_gain, gi,
                          j < vec_cols)
            rst[i, j] = r
            add[i, j] = tb[i, j] - r


def adm_decouple(o: tuple[np.ndarray, ...], t: tuple[np.ndarray, ...], scale0: bool,
                 gain: float, vec_cols: int, cos_sq: float, buf: _ScaleBuffers) -> None:
    """Restored (``buf.rst``) and additive (``buf.add``) (h, v, d) bands from the reference
    (``o``) and distorted (``t``) (h, v, d) detail bands, as :func:`.integer_adm._decouple`
    computes them."""
    _angle_flags(o[0], o[1], t[0], t[1], cos_sq, scale0, buf.angle)
    for k in range(3):
        if gain == math.floor(gain):
            _decouple_band_int_gain(o[k], t[k], buf.angle, int(gain), scale0, buf.rst[k],
                                    buf.add[k])
        else:
            _decouple_band(o[k], t[k], buf.angle, scale0, gain, vec_cols, buf.rst[k],
                           buf.add[k])


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
                       adds: tuple[int, int, int], f_all: np.ndarray, centre: np.ndarray,
                       thr: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> None:
    """The masking threshold over the region of interest into ``thr``, from the masker's
    (h, v, d) bands (``f_all``, ``centre``: scratch of the bands' shape).

    :func:`.integer_adm._csf` of each orientation (CSF weighting, then the |csf|/30 weight and
    the centre's |csf|/15 weight, with libvmaf's int16/int32 wraps), then per pixel the eight
    neighbours' /30 weights summed over the orientations (top/left border reflected,
    bottom/right replicated) plus the three centre /15 weights: the ``thr`` of
    :func:`.integer_adm._cm_acc`, which all three orientations share. Rows ``[r0, r1)`` x
    columns ``[c0, c1)`` keep the scale-0 centre weight unwrapped, as libvmaf's vector code
    (:func:`.integer_adm.cm_vector_region`).
    """
    n_rows, n_cols = m_h.shape
    f_all[:] = 0
    centre[:] = 0
    for o in range(3):
        band = m_h if o == 0 else (m_v if o == 1 else m_d)
        rf, sh, add = rfs[o], shifts[o], adds[o]
        if scale == 0:
            for i in range(n_rows):
                for j in range(n_cols):
                    dv = abs(_wrap((band[i, j] * rf + add) >> sh, 16))
                    f_all[i, j] += _wrap((dv * 4369 + 2048) >> 12, 16)
                    weight = (dv * 8738 + 2048) >> 12
                    vector = r0 <= i < r1 and c0 <= j < c1
                    centre[i, j] += weight if vector else _wrap(weight, 16)
        else:
            for i in range(n_rows):
                for j in range(n_cols):
                    dv = abs(_wrap((band[i, j] * rf + add) >> sh, 32))
                    f_all[i, j] += _wrap((dv * 143165577 - (1 << 31)) >> 32, 32)
                    centre[i, j] += _wrap((dv * 286331153 - (1 << 31)) >> 32, 32)
    top, bottom = _roi(n_rows)
    left, right = _roi(n_cols)
    for i in range(top, bottom):
        up = 1 if i == 0 else i - 1
        dn = i if i == n_rows - 1 else i + 1
        for j in range(left, right):
            lf = 1 if j == 0 else j - 1
            rt = j if j == n_cols - 1 else j + 1
            thr[i - top, j - left] = (
                f_all[up, lf] + f_all[up, j] + f_all[up, rt] + f_all[i, lf] + f_all[i, rt]
                + f_all[dn, lf] + f_all[dn, j] + f_all[dn, rt] + centre[i, j])


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


def _masked_sums(src: np.ndarray, masker: np.ndarray, scale: int, rfs: tuple[int, int, int],
                 csf_params: tuple[tuple[int, int], ...], buf: _ScaleBuffers,
                 simd: str) -> list[int]:
    """The (h, v, d) cube sums of ``src`` masked by ``masker``'s CSF (:func:`.integer_adm._cm`
    of ``src`` with :func:`.integer_adm._csf` of ``masker``; both ``(3, h, w)``), as libvmaf's
    ``simd`` code path computes them."""
    shifts = tuple(p[0] for p in csf_params)
    adds = tuple(p[1] for p in csf_params)
    h, w = src.shape[1:]
    adm_mask_threshold(masker[0], masker[1], masker[2], scale, rfs, shifts, adds, buf.f_all,
                       buf.centre, buf.thr, *ia.cm_vector_region(simd, scale, h, w))
    sh_inner, params = ia._cm_shifts(scale, h, w)
    return [adm_cm_acc(b, buf.thr, scale, r, sub, sq, cub, sh_inner)
            for b, r, (sub, sq, cub) in zip(src, rfs, params, strict=True)]


class _ScaleBuffers:
    """The arrays one DWT scale of one frame pair works in (int64 bands, ``(ho, wo)``).

    libvmaf allocates its buffers once per clip; allocating these per frame instead (~37 MB at
    720p, scale 0) costs a page fault per 4 KB as the kernel hands the memory back and forth:
    at 720p that was 8 of 19 ms per frame.
    """

    def __init__(self, h: int, w: int) -> None:
        ho, wo = (h + 1) // 2, (w + 1) // 2
        self.ref = np.empty((4, ho, wo), np.int64)  # a, v, h, d of the reference
        self.dis = np.empty((4, ho, wo), np.int64)
        self.lo = np.empty(w + 3)
        self.hi = np.empty(w + 3)
        self.angle = np.empty((ho, wo), np.bool_)
        self.rst = np.empty((3, ho, wo), np.int64)  # restored (h, v, d)
        self.add = np.empty((3, ho, wo), np.int64)  # additive (h, v, d)
        self.f_all = np.empty((ho, wo), np.int64)
        self.centre = np.empty((ho, wo), np.int64)
        top, left = int(ho * 0.1 - 0.5), int(wo * 0.1 - 0.5)  # as _roi
        self.thr = np.empty((ho - 2 * top, wo - 2 * left), np.int64)


_WORKSPACES: dict[int, tuple[tuple[int, int], list[_ScaleBuffers]]] = {}
_WORKSPACES_LOCK = threading.Lock()


def _workspace(h: int, w: int) -> list[_ScaleBuffers]:
    """This thread's buffers for ``(h, w)`` frames, one per scale (kept for the last size
    only: a clip has one size, and frames of one thread never overlap)."""
    key = threading.get_ident()
    ws = _WORKSPACES.get(key)
    if ws is None or ws[0] != (h, w):
        scales, sh, sw = [], h, w
        for _ in range(4):
            scales.append(_ScaleBuffers(sh, sw))
            sh, sw = (sh + 1) // 2, (sw + 1) // 2
        ws = ((h, w), scales)
        with _WORKSPACES_LOCK:
            _WORKSPACES[key] = ws
    return ws[1]


def release_workspaces() -> None:
    """Free every thread's ADM buffers (~39 MB per thread at 720p, ~350 MB at 4K).

    The scorers call this when a clip is finished, so that a long-lived process (labelling,
    then training) does not keep them; the next frame of any thread allocates its own again,
    once. Safe while other threads run ADM: a running frame holds its buffers until it ends.
    """
    with _WORKSPACES_LOCK:
        _WORKSPACES.clear()


def adm_frame(ref: np.ndarray, dis: np.ndarray, bit_depth: int, opts: ia.IntegerAdmOptions,
              simd: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer sums of one frame pair: (den, num, aim) int64 ``(4 scales, 3 orientations)``
    (aim zero with ``skip_aim``; scale 0 zero with ``skip_scale0``)."""
    dens = np.zeros((4, 3), np.int64)
    nums = np.zeros((4, 3), np.int64)
    aims = np.zeros((4, 3), np.int64)
    half = 1 << (bit_depth - 1)
    cur_r, cur_d = ref, dis  # uint8/uint16 samples; int64 bands from scale 1 on
    workspace = _workspace(*ref.shape)
    for scale in range(4):
        buf = workspace[scale]
        if scale == 0:
            tail = 0 if opts.skip_scale0 else ia._SIMD_TAIL[simd, bit_depth == 8]
            vp = (ia._LO_SUM * half, half, bit_depth)
            hp = (32768, 16)
        else:
            tail = 0
            vp = ((0, 0, 0), (0, 32768, 16), (0, 32768, 16))[scale - 1]
            hp = ((16384, 15), (32768, 16), (16384, 15))[scale - 1]
        for x, bands in ((cur_r, buf.ref), (cur_d, buf.dis)):
            adm_dwt(x, vp[0], vp[1], vp[2], hp[0], hp[1], tail, bands[0], bands[1], bands[2],
                    bands[3], buf.lo, buf.hi)
        cur_r, cur_d = buf.ref[0], buf.dis[0]
        if scale == 0 and opts.skip_scale0:
            continue
        bh, bw = cur_r.shape
        o = (buf.ref[2], buf.ref[1], buf.ref[3])  # (h, v, d)
        t = (buf.dis[2], buf.dis[1], buf.dis[3])
        vec_cols = 0
        block = ia._DECOUPLE_BLOCK[simd, scale == 0]
        if block:
            left_c = max(int(bw * ia._BORDER - 0.5 - 1), 0)
            right_c = min(bw - left_c + 2, bw)
            vec_cols = right_c - (right_c - left_c) % block
        adm_decouple(o, t, scale == 0, float(opts.enhn_gain_limit), vec_cols, _COS_1DEG_SQ, buf)
        sh_acc, cub = ia._den_shifts(scale, bh, bw)
        dens[scale] = [adm_den_acc(b, scale, sh_acc, cub) for b in o]
        if scale == 0:
            rfs = ia._scale0_rfactor(opts)
            csf_p = ((15, 16384), (15, 16384), (17, 65535))  # sic: 65535 for the diagonal
        else:
            rfs = ia._s123_rfactor(scale, opts)
            csf_p = ((28, 1 << 27),) * 3
        nums[scale] = _masked_sums(buf.rst, buf.add, scale, rfs, csf_p, buf, simd)
        if not opts.skip_aim:  # AIM: the additive part masked by the restored part's CSF
            aims[scale] = _masked_sums(buf.add, buf.rst, scale, rfs, csf_p, buf, simd)
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
