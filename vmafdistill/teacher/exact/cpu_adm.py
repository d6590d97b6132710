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
explicit two's-complement wraps where libvmaf stores int16/int32.
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


@njit(cache=True, nogil=True)
def adm_dwt(x: np.ndarray, off: int, add_v: int, sh_v: int, add_h: int, sh_h: int,
            tail: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One DWT level of ``(h, w)`` int64 samples: bands (a, v, h, d), ``(ceil(h/2), ceil(w/2))``.

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
    # lo and hi rows side by side, as libvmaf's scratch buffer holds them (the tail reads across).
    lohi = np.empty(2 * w, np.int64)
    quirk = tail > 0 and wo > 1 and (wo - 1) % tail == 0
    for i in range(ho):
        r0 = x[_dwt_index(2 * i - 1, h)]
        r1 = x[_dwt_index(2 * i, h)]
        r2 = x[_dwt_index(2 * i + 1, h)]
        r3 = x[_dwt_index(2 * i + 2, h)]
        for j in range(w):
            s0, s1, s2, s3 = r0[j], r1[j], r2[j], r3[j]
            lo = _LO[0] * s0 + _LO[1] * s1 + _LO[2] * s2 + _LO[3] * s3
            hi = _HI[0] * s0 + _HI[1] * s1 + _HI[2] * s2 + _HI[3] * s3
            lohi[j] = (lo + add_v - off) >> sh_v
            lohi[w + j] = (hi + add_v) >> sh_v
        for j in range(wo):
            j0 = _dwt_index(2 * j - 1, w)
            j1 = _dwt_index(2 * j, w)
            j2 = _dwt_index(2 * j + 1, w)
            j3 = _dwt_index(2 * j + 2, w)
            l0, l1, l2, l3 = lohi[j0], lohi[j1], lohi[j2], lohi[j3]
            h0, h1, h2, h3 = lohi[w + j0], lohi[w + j1], lohi[w + j2], lohi[w + j3]
            a[i, j] = (_LO[0] * l0 + _LO[1] * l1 + _LO[2] * l2 + _LO[3] * l3 + add_h) >> sh_h
            v[i, j] = (_HI[0] * l0 + _HI[1] * l1 + _HI[2] * l2 + _HI[3] * l3 + add_h) >> sh_h
            hh[i, j] = (_LO[0] * h0 + _LO[1] * h1 + _LO[2] * h2 + _LO[3] * h3 + add_h) >> sh_h
            d[i, j] = (_HI[0] * h0 + _HI[1] * h1 + _HI[2] * h2 + _HI[3] * h3 + add_h) >> sh_h
        if quirk:
            j = wo - 1
            t0, t1, t2, t3 = (lohi[2 * j - 1], lohi[2 * j], lohi[2 * j + 1], lohi[2 * j + 2])
            a[i, j] = (_LO[0] * t0 + _LO[1] * t1 + _LO[2] * t2 + _LO[3] * t3 + add_h) >> sh_h
            v[i, j] = (_HI[0] * t0 + _HI[1] * t1 + _HI[2] * t2 + _HI[3] * t3 + add_h) >> sh_h
    return a, v, hh, d


@njit(cache=True, nogil=True, inline="always")
def _to_f32(x: int, cell: np.ndarray) -> float:
    # C's (float) of an int64: one rounding. Above 2^53 the int64 -> float64 step would round
    # too; rounding to odd there (nextafter toward the lost part) keeps the final rounding single.
    d = float(x)
    if abs(x) >= (1 << 53):
        err = x - np.int64(d)
        cell[0] = d
        if err != 0 and (cell.view(np.int64)[0] & 1) == 0:
            d = np.nextafter(d, math.inf if err > 0 else -math.inf)
    return float(np.float32(d))


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
def adm_decouple(oh: np.ndarray, ov: np.ndarray, od: np.ndarray, th: np.ndarray,
                 tv: np.ndarray, td: np.ndarray, scale0: bool, gain: float, vec_cols: int,
                 table: np.ndarray, cos_sq: float) -> tuple[np.ndarray, ...]:
    """Restored (rh, rv, rd) and additive (ah, av, ad) bands from the reference (o*) and
    distorted (t*) detail bands, as :func:`.integer_adm._decouple` computes them."""
    n_rows, n_cols = oh.shape
    cell = np.empty(1, np.float64)
    int_gain = gain == math.floor(gain)
    gi = np.int64(gain)
    rh = np.empty((n_rows, n_cols), np.int64)
    rv = np.empty((n_rows, n_cols), np.int64)
    rd = np.empty((n_rows, n_cols), np.int64)
    ah = np.empty((n_rows, n_cols), np.int64)
    av = np.empty((n_rows, n_cols), np.int64)
    ad = np.empty((n_rows, n_cols), np.int64)
    for i in range(n_rows):
        for j in range(n_cols):
            o_h, o_v, o_d = oh[i, j], ov[i, j], od[i, j]
            t_h, t_v, t_d = th[i, j], tv[i, j], td[i, j]
            dp = _to_f32(o_h * t_h + o_v * t_v, cell)
            om = _to_f32(o_h * o_h + o_v * o_v, cell)
            tm = _to_f32(t_h * t_h + t_v * t_v, cell)
            angle = dp >= 0 and dp * dp >= (om * cos_sq) * tm  # (cos * o) * t in double, as C
            vector = j < vec_cols
            r_h = _restored(o_h, t_h, angle, scale0, gain, int_gain, gi, vector, table)
            r_v = _restored(o_v, t_v, angle, scale0, gain, int_gain, gi, vector, table)
            r_d = _restored(o_d, t_d, angle, scale0, gain, int_gain, gi, vector, table)
            rh[i, j] = r_h
            rv[i, j] = r_v
            rd[i, j] = r_d
            ah[i, j] = t_h - r_h
            av[i, j] = t_v - r_v
            ad[i, j] = t_d - r_d
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
def adm_csf(b: np.ndarray, scale: int, rf: int, shift: int, add: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """One orientation of :func:`.integer_adm._csf`: CSF-weighted band and its |.|/30 weight."""
    n_rows, n_cols = b.shape
    dst = np.empty((n_rows, n_cols), np.int64)
    flt = np.empty((n_rows, n_cols), np.int64)
    for i in range(n_rows):
        for j in range(n_cols):
            if scale == 0:
                dv = _wrap((b[i, j] * rf + add) >> shift, 16)
                dst[i, j] = dv
                flt[i, j] = _wrap((abs(dv) * 4369 + 2048) >> 12, 16)
            else:
                dv = _wrap((b[i, j] * rf + (1 << 27)) >> 28, 32)
                dst[i, j] = dv
                flt[i, j] = _wrap((abs(dv) * 143165577 - (1 << 31)) >> 32, 32)
    return dst, flt


@njit(cache=True, nogil=True)
def adm_cm_acc(src: np.ndarray, csf_a: np.ndarray, f_all: np.ndarray, scale: int, rf: int,
               sub: int, sq: int, cub: int, sh_inner: int) -> int:
    """One orientation of :func:`.integer_adm._cm_acc`: ``src``'s masked cube sum.

    ``csf_a``: the CSF-weighted additive (or restored) band of *this* orientation, ``f_all``:
    the three orientations' |csf|/30 weights summed.
    """
    n_rows, n_cols = src.shape
    top, bottom = _roi(n_rows)
    left, right = _roi(n_cols)
    add_cub = (1 << (cub - 1)) if cub > 0 else 0
    add_row = (1 << (sh_inner - 1)) if sh_inner > 0 else 0
    total = np.int64(0)
    for i in range(top, bottom):
        up = 1 if i == 0 else i - 1  # top border reflected, bottom replicated
        dn = i if i == n_rows - 1 else i + 1
        row = np.int64(0)
        for j in range(left, right):
            lf = 1 if j == 0 else j - 1
            rt = j if j == n_cols - 1 else j + 1
            box = (f_all[up, lf] + f_all[up, j] + f_all[up, rt]
                   + f_all[i, lf] + f_all[i, rt]
                   + f_all[dn, lf] + f_all[dn, j] + f_all[dn, rt])
            c = src[i, j]
            if scale == 0:
                thr = box + _centre0(csf_a, i, j, 0) + _centre0(csf_a, i, j, 1) + _centre0(
                    csf_a, i, j, 2)
                x = max(abs(c * rf) - (thr << sub), 0)
                x_sq = _wrap((x * x + (1 << (sq - 1))) >> sq, 32)
            else:
                thr = box + _centre123(csf_a, i, j, 0) + _centre123(csf_a, i, j, 1) + _centre123(
                    csf_a, i, j, 2)
                x = max(abs(_wrap((c * rf + (1 << 27)) >> 28, 32)) - thr, 0)
                x_sq = _wrap((x * x + (1 << 29)) >> 30, 32)
            row += (x_sq * x + add_cub) >> cub
        total += (row + add_row) >> sh_inner
    return total


@njit(cache=True, nogil=True, inline="always")
def _centre0(csf_a: np.ndarray, i: int, j: int, o: int) -> int:
    return _wrap((abs(csf_a[o, i, j]) * 8738 + 2048) >> 12, 16)


@njit(cache=True, nogil=True, inline="always")
def _centre123(csf_a: np.ndarray, i: int, j: int, o: int) -> int:
    return _wrap((abs(csf_a[o, i, j]) * 286331153 - (1 << 31)) >> 32, 32)


def _recip_table() -> np.ndarray:
    return ia._recip_table_cpu().numpy()


def _masked_sums(src: tuple[np.ndarray, ...], masker: tuple[np.ndarray, ...], scale: int,
                 rfs: tuple[int, int, int], csf_params: tuple[tuple[int, int], ...], h: int,
                 w: int) -> list[int]:
    """The (h, v, d) cube sums of ``src`` masked by ``masker``'s CSF (:func:`.integer_adm._cm`
    of ``src`` with :func:`.integer_adm._csf` of ``masker``)."""
    csf = [adm_csf(b, scale, r, s, a)
           for b, r, (s, a) in zip(masker, rfs, csf_params, strict=True)]
    csf_a = np.stack([c[0] for c in csf])
    f_all = csf[0][1] + csf[1][1] + csf[2][1]
    sh_inner, params = ia._cm_shifts(scale, h, w)
    return [adm_cm_acc(b, csf_a, f_all, scale, r, sub, sq, cub, sh_inner)
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
    cur_r = ref.astype(np.int64)
    cur_d = dis.astype(np.int64)
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
    """:func:`.integer_adm.integer_adm` of CPU tensors: integer sums per frame here, the float
    terms and pooling by the torch path's own functions."""
    from .cpu_kernels import _frames

    r, d = _frames(ref, bit_depth), _frames(dis, bit_depth)
    n, h, w = r.shape
    sums = [adm_frame(r[i], d[i], bit_depth, opts, simd) for i in range(n)]
    dens_i = torch.from_numpy(np.stack([s[0] for s in sums])) if n else None
    nums_i = torch.from_numpy(np.stack([s[1] for s in sums])) if n else None
    aims_i = torch.from_numpy(np.stack([s[2] for s in sums])) if n else None
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
