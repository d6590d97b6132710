"""libvmaf's integer ADM (``integer_adm.c``) in PyTorch, bit for bit: adm2, its scales and AIM.

Per scale, as libvmaf's fixed-point extractor computes it:

* a db2 DWT with the integer filter ``{15826, 27411, 7345, -4240}`` (high pass the mirrored,
  sign-alternated taps), vertical pass then horizontal pass, each followed by a rounding shift.
  Scale 0 works on the input samples (shift by the bit depth, then 16) into int16 bands; scales
  1-3 work on the previous scale's int32 approximation band (shifts 0/15, 16/16, 16/15).
  Borders: sample -1 is sample 1, sample n is n-1 and n+1 is n-2;
* decoupling of the distorted detail bands into restored and additive parts, with the division
  ``t / o`` done through libvmaf's Q30 reciprocal table (15-bit normalised above 32767), the
  one-degree angle test in float, and the enhancement gain limit;
* the CSF as a fixed-point factor (Q21/Q23 at scale 0, Q32 at scales 1-3), the 1/30 and 1/15
  masking weights in fixed point (with libvmaf's rounding constants, including the
  ``INT32_MIN`` "rounding" term of scales 1-3), and contrast masking over the 3x3 neighbourhood
  (top/left border reflected, bottom/right border replicated);
* cube sums with a rounding shift after every pixel term and after every row, converted to
  float only at the end; ``powf(x, 1/3)`` and the noise term in float32.

All integer arithmetic is exact in int64 whatever the summation order, so the work is done on
whole batched tensors (CPU or GPU); only the final per-scale reductions use libvmaf's float
rounding. Values libvmaf stores in int16/int32 are wrapped to those widths where they could
overflow. The float parts replay libvmaf's float/double mix: int64 -> float conversions are
correctly rounded (round-to-odd through float64), and ``powf`` is the C library's own (the one
libvmaf calls; see :func:`_powf_cbrt`).

libvmaf runs SIMD versions of these stages on x86, and some of them do not compute what its C
code does; those are reproduced (``simd=``, default: what libvmaf picks on this CPU):

* the scale-0 DWT's last vector block overruns into the high-pass row when ``ceil(w/2) - 1`` is
  a multiple of its block (see :func:`_dwt`): high bit depths on AVX2 (16) and AVX-512 (64),
  8-bit on AVX-512 (32; its AVX2 8-bit kernel only runs on widths that never meet this);
* the vector decoupling rounds ``rst * gain`` to nearest where the C code truncates (fractional
  gain limits only): AVX2 at scale 0 (blocks of 8), AVX-512 at every scale (blocks of 16).
* the vector scale-0 masking keeps the centre's ``|csf| / 15`` weight in int32 where the C code
  casts it to int16 (AVX2 blocks of 6, AVX-512 blocks of 14; :func:`cm_vector_region`): it
  shows in ``integer_aim`` / ``integer_adm3`` at sharp black/white edges.

Checked against the packaged libvmaf on AVX2 (AMD EPYC) and AVX-512 (Intel Xeon) machines.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from ...machine import simd_level
from ..adm import BASIS_AMPLITUDES, WATSON_Y  # the float ADM's tables: one copy
from ..adm3 import Adm3Options, adm3_from_adm2_aim
from .backend import use_compiled_kernels

__all__ = [
    "MIN_SIZE",
    "IntegerAdmOptions",
    "check_size",
    "csf_factors",
    "integer_adm",
    "libvmaf_simd",
]

#: Smallest width/height libvmaf's integer ADM handles without reading outside its buffers
#: (the scale-3 DWT needs >= 5 input samples, the scale-0 masking shifts a 16-wide band).
MIN_SIZE = 33

_LO = (15826, 27411, 7345, -4240)
_HI = (-4240, -7345, 27411, -15826)
_LO_SUM = 46342

_BORDER = 0.1
_I16_ONE_BY_15 = 8738
_I16_ONE_BY_30 = 4369
_I32_ONE_BY_15 = 286331153
_I32_ONE_BY_30 = 143165577
# libvmaf stores (1u << 31) in an int32_t: its "rounding" term before >> 32 is INT32_MIN.
_I32_FLT_ADD = -(1 << 31)

# adm_csf_mode 2 (Barten/Watson blend): [theta 0 = h/v, 1 = diagonal][scale], per viewing setup.
_BLEND = {
    (1080, 3.0): (
        (0.01183, 0.025026, 0.04295, 0.058621),
        (0.004302, 0.011778, 0.023918, 0.035901),
    ),
    (1080, 5.0): (
        (0.004212, 0.014809, 0.029642, 0.047464),
        (0.000984, 0.005852, 0.0146, 0.027574),
    ),
    (2160, 1.5): (
        (0.01183, 0.025026, 0.04295, 0.058621),
        (0.004302, 0.011778, 0.023918, 0.035901),
    ),
    (2160, 3.0): (
        (0.00226, 0.01183, 0.025026, 0.04295),
        (0.000479, 0.004302, 0.011778, 0.023918),
    ),
    (2160, 5.0): (
        (0.000092, 0.004212, 0.014809, 0.029642),
        (0.000050, 0.000984, 0.005852, 0.0146),
    ),
    (720, 3.0): (
        (0.018715, 0.035637, 0.052798, 0.061509),
        (0.007999, 0.018396, 0.031851, 0.037718),
    ),
    (720, 5.0): (
        (0.010144, 0.022561, 0.040309, 0.05672),
        (0.003463, 0.010282, 0.021839, 0.034641),
    ),
    (480, 3.0): (
        (0.027961, 0.045875, 0.060275, 0.056234),
        (0.013572, 0.026277, 0.036959, 0.034511),
    ),
    (480, 5.0): (
        (0.016781, 0.032822, 0.05032, 0.061594),
        (0.00691, 0.016545, 0.029917, 0.037777),
    ),
}


# libvmaf option name -> IntegerAdmOptions field.
_LIBVMAF_NAMES = {
    "adm_enhn_gain_limit": "enhn_gain_limit",
    "adm_norm_view_dist": "norm_view_dist",
    "adm_ref_display_height": "ref_display_height",
    "adm_csf_mode": "csf_mode",
    "adm_noise_weight": "noise_weight",
    "adm_dlm_weight": "dlm_weight",
    "adm_min_val": "min_val",
    "adm_skip_aim": "skip_aim",
    "adm_skip_scale0": "skip_scale0",
}


@dataclass(frozen=True)
class IntegerAdmOptions:
    """libvmaf's ``adm`` feature options (defaults are libvmaf's)."""

    enhn_gain_limit: float = 100.0  # adm_enhn_gain_limit
    norm_view_dist: float = 3.0  # adm_norm_view_dist
    ref_display_height: int = 1080  # adm_ref_display_height
    csf_mode: int = 0  # adm_csf_mode: 0 Watson, 2 Barten/Watson blend
    noise_weight: float = 0.03125  # adm_noise_weight
    dlm_weight: float = 0.5  # adm_dlm_weight (adm3 only)
    min_val: float = 0.0  # adm_min_val (adm3 only)
    skip_aim: bool = False  # adm_skip_aim
    skip_scale0: bool = False  # adm_skip_scale0

    @classmethod
    def from_libvmaf(cls, opts: dict[str, Any] | None) -> IntegerAdmOptions:
        """Build from a model's ``feature_opts_dicts`` entry (libvmaf option names)."""
        kw: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for key, value in (opts or {}).items():
            name = _LIBVMAF_NAMES.get(key)
            if name is None:
                raise ValueError(f"integer ADM option {key!r} is not supported")
            kind = types[name]
            kw[name] = (bool(value) if kind in ("bool", bool) else
                        int(value) if kind in ("int", int) else float(value))
        return cls(**kw)

    def validate(self) -> None:
        """Reject what libvmaf rejects (or handles only through undefined behaviour)."""
        if self.norm_view_dist * self.ref_display_height < 3.0 * 1080:
            raise ValueError("libvmaf's integer ADM needs adm_norm_view_dist * "
                             "adm_ref_display_height >= 3240 (its 16-bit pipeline)")
        if self.csf_mode not in (0, 2):
            raise ValueError(f"adm_csf_mode {self.csf_mode} is not supported (0 and 2 are)")
        if self.csf_mode == 2 and (self.ref_display_height, self.norm_view_dist) not in _BLEND:
            raise ValueError(
                "adm_csf_mode 2 has no CSF table for adm_ref_display_height="
                f"{self.ref_display_height}, adm_norm_view_dist={self.norm_view_dist}")
        if not 1.0 <= self.enhn_gain_limit <= 100.0:
            raise ValueError("adm_enhn_gain_limit must be in [1, 100]")


# --------------------------------------------------------------------------- constants


def _f32(x: float) -> np.float32:
    return np.float32(x)


def _watson_factor(scale: int, theta: int, opts: IntegerAdmOptions) -> np.float32:
    """1 / dwt_quant_step, with libvmaf's float/double mix (float products stay float)."""
    a, k, f0 = (_f32(v) for v in WATSON_Y[:3])
    g = _f32(WATSON_Y[3][theta])
    r = _f32(opts.norm_view_dist * opts.ref_display_height * math.pi / 180.0)
    temp = _f32(math.log10(math.pow(2.0, scale + 1) * float(f0) * float(g) / float(r)))
    ktt = np.float32(np.float32(k * temp) * temp)  # float * float * float in C
    amp = float(_f32(BASIS_AMPLITUDES[scale][theta]))
    q = _f32(2.0 * float(a) * math.pow(10.0, float(ktt)) / amp)
    return np.float32(np.float32(1.0) / q)


def csf_factors(scale: int, opts: IntegerAdmOptions) -> tuple[np.float32, np.float32]:
    """The float32 CSF weights (h/v, diagonal) libvmaf uses at ``scale``."""
    if opts.csf_mode == 2:
        tab = _BLEND[(opts.ref_display_height, float(opts.norm_view_dist))]
        return _f32(tab[0][scale]), _f32(tab[1][scale])
    return _watson_factor(scale, 1, opts), _watson_factor(scale, 2, opts)


def _scale0_rfactor(opts: IntegerAdmOptions) -> tuple[int, int, int]:
    """Scale-0 CSF in fixed point (Q21 h/v, Q23 d); libvmaf hard-codes the default's values."""
    if (abs(opts.norm_view_dist * opts.ref_display_height - 3.0 * 1080) < 1e-8
            and opts.csf_mode == 0):
        return 36453, 36453, 49417
    f1, f2 = csf_factors(0, opts)
    vals = (int(float(f1) * 2.0**21), int(float(f1) * 2.0**21), int(float(f2) * 2.0**23))
    if max(vals) > 0xFFFF:
        raise ValueError("CSF factor overflows libvmaf's 16-bit scale-0 factor")
    return vals


def _s123_rfactor(scale: int, opts: IntegerAdmOptions) -> tuple[int, int, int]:
    f1, f2 = csf_factors(scale, opts)
    vals = (int(float(f1) * 2.0**32), int(float(f1) * 2.0**32), int(float(f2) * 2.0**32))
    if max(vals) >= 1 << 31:  # libvmaf's AVX2 multiplies it as a signed int32
        raise ValueError("CSF factor too large for libvmaf's Q32 factor")
    return vals


def _ceil_log2(x: float) -> int:
    return math.ceil(math.log2(x))


def _roi(n: int) -> tuple[int, int]:
    """[start, stop) of the sums along a band dimension of length ``n`` (C truncation)."""
    start = int(n * _BORDER - 0.5)
    return start, n - start


# --------------------------------------------------------------------------- helpers


def _wrap(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Two's-complement wrap to a signed ``bits``-bit integer (a C store to int16/int32).

    In place: callers pass temporaries.
    """
    half = 1 << (bits - 1)
    return x.add_(half).bitwise_and_((1 << bits) - 1).sub_(half)


def _mas(x: torch.Tensor, mul: int, add: int, shift: int) -> torch.Tensor:
    """``(x * mul + add) >> shift`` with one allocation."""
    out = x * mul
    out.add_(add)
    return out.bitwise_right_shift_(shift)


def _abs_mas(x: torch.Tensor, mul: int, add: int, shift: int) -> torch.Tensor:
    """``(|x| * mul + add) >> shift`` with one allocation."""
    out = x.abs()
    out.mul_(mul).add_(add)
    return out.bitwise_right_shift_(shift)


def _i64_to_f32(x: torch.Tensor) -> torch.Tensor:
    """int64 -> float32 rounded once (C's cast), via round-to-odd float64."""
    d = x.to(torch.float64)
    if not bool((x.abs() >= 1 << 53).any()):  # exact in float64: one rounding to float32
        return d.to(torch.float32)
    err = x - d.to(torch.int64)
    even = (d.view(torch.int64) & 1) == 0
    fix = (err != 0) & even
    if bool(fix.any()):
        toward = torch.where(err > 0, torch.full_like(d, math.inf), torch.full_like(d, -math.inf))
        d = torch.where(fix, torch.nextafter(d, toward), d)
    return d.to(torch.float32)


_THIRD_F32 = float(np.float32(1.0) / np.float32(3.0))  # C's 1.0f / 3.0f


@functools.cache
def _libm_powf() -> Any:
    """The C library's ``powf`` through ctypes (None where it cannot be found).

    libvmaf's ADM takes ``powf(x, 1.0f / 3.0f)`` of its per-scale sums. glibc's ``powf`` is not
    always the correctly rounded result: float64 ``pow`` rounded to float32 differs from it by
    one float32 step on ~0.06 % of inputs (372 of 600,000 random ones, glibc 2.36), enough to
    move VMAF by ~5e-6 on about one frame in a hundred. Calling the C library of this machine
    gives the bits of an ffmpeg/libvmaf linked to it (the packaged one is; a fully static
    ffmpeg carries the powf of its own build).
    """
    import ctypes
    import ctypes.util

    # The libm this process has loaded first (no subprocess; works on musl), then by name.
    for name in (None, ctypes.util.find_library("m"), ctypes.util.find_library("c")):
        try:
            powf = ctypes.CDLL(name).powf
        except (OSError, AttributeError, TypeError):
            continue
        powf.restype = ctypes.c_float
        powf.argtypes = [ctypes.c_float, ctypes.c_float]
        return powf
    import logging

    logging.getLogger(__name__).warning(
        "no C library powf through ctypes: exact ADM rounds float64 pow to float32, which "
        "differs from glibc's powf on ~0.06 %% of values (VMAF up to ~1e-5 on rare frames)")
    return None


def _powf_cbrt(x: torch.Tensor) -> torch.Tensor:
    """``powf(x, 1.0f / 3.0f)`` for float32 ``x``: the C library's ``powf`` (a few values per
    frame, one call each), or float64 ``pow`` rounded to float32 without one."""
    powf = _libm_powf()
    if powf is None:
        return torch.pow(x.to(torch.float64), _THIRD_F32).to(torch.float32)
    vals = x.detach().to("cpu", torch.float32).reshape(-1).tolist()
    out = torch.tensor([powf(v, _THIRD_F32) for v in vals], dtype=torch.float32)
    return out.reshape(x.shape).to(x.device)


def _powf_cbrt_scalar(x: float) -> np.float32:
    powf = _libm_powf()
    if powf is None:
        return np.float32(math.pow(float(np.float32(x)), _THIRD_F32))
    return np.float32(powf(float(np.float32(x)), _THIRD_F32))


@functools.cache
def _tap_index(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Even and odd positions of the padded sample sequence ``1, 0, 1, .., n-1, n-1, n-2``."""
    idx = torch.cat([torch.tensor([1]), torch.arange(n), torch.tensor([n - 1, n - 2])])
    return idx[0::2].contiguous(), idx[1::2].contiguous()


def _taps(x: torch.Tensor, dim: int) -> list[torch.Tensor]:
    """The 4 DWT taps along ``dim`` (libvmaf's ``dwt2_src_indices_filt``), contiguous views.

    Output ``i`` reads samples ``2i-1 .. 2i+2``; sample -1 is 1, n is n-1 and n+1 is n-2. In the
    padded sequence those are positions ``2i .. 2i+3``: even[i], odd[i], even[i+1], odd[i+1].
    """
    n = x.shape[dim]
    half = (n + 1) // 2
    ev_i, od_i = _tap_index(n)
    even = x.index_select(dim, ev_i.to(x.device))
    odd = x.index_select(dim, od_i.to(x.device))
    return [even.narrow(dim, 0, half), odd.narrow(dim, 0, half),
            even.narrow(dim, 1, half), odd.narrow(dim, 1, half)]


def _fir(taps: list[torch.Tensor], coeffs: tuple[int, ...], add: int, shift: int
         ) -> torch.Tensor:
    """``(sum_k coeffs[k] * taps[k] + add) >> shift`` on integer-valued float64 taps.

    Exact: every product and partial sum is an integer below 2^48 (see :func:`_dwt`), and
    ``floor(x * 2^-shift)`` is C's arithmetic shift. float64 rather than int64 because x86
    has vector float64 multiply-adds but (before AVX-512) no vector int64 multiply or
    arithmetic shift. In place after the first product (fresh tensors are costly on CPU).
    """
    out = taps[0] * float(coeffs[0])
    for t, c in zip(taps[1:], coeffs[1:], strict=True):
        out.add_(t, alpha=float(c))
    if add:
        out.add_(float(add))
    if shift:
        out.mul_(2.0**-shift).floor_()
    return out


def _dwt(
    x: torch.Tensor, vp: tuple[int, int, int], hp: tuple[int, int], width: int,
    *, simd_tail: int = 0,
) -> tuple[torch.Tensor, ...]:
    """One DWT level on (N, H, W) integer-valued float64: ``vp = (offset_lo, add, shift)``,
    ``hp = (add, shift)``.

    Returns (a, v, h, d) wrapped to ``width`` bits as libvmaf stores them. ``simd_tail`` (the
    output block of libvmaf's vector scale-0 DWT, ``adm_dwt2_16_avx2``/``_avx512`` and
    ``adm_dwt2_8_avx512``; 0 for its C code): when ``ceil(w/2) - 1`` is a multiple of it, the
    vector horizontal loop also computes the last output column, with unmirrored taps that run
    past the low-pass row into the high-pass row stored right after it. Only the low-pass row's
    outputs ``a``/``v`` are reproducible (the high-pass ones read past the buffer; they are
    left mirrored as in libvmaf's C code, and never reach the score for bands >= 25 wide).
    """
    # No stage can overflow its int16 (scale 0) or int32 store: |taps| sum to 50582 (low) and
    # 54822 (high), so the worst cases are 27411 / 22930 at scale 0 and 1.79e9 at scales 1-3.
    # Before the shifts: |sum| <= 65535 * 54822 < 2^32 at scale 0, 2^31 * 54822 < 2^47 above;
    # float64 holds all of it exactly.
    _, _, w = x.shape
    rows = _taps(x, 1)
    off, add_v, sh_v = vp
    lo = _fir(rows, _LO, add_v - off, sh_v)
    hi = _fir(rows, _HI, add_v, sh_v)
    del rows
    add_h, sh_h = hp
    lo_c = _taps(lo, 2)
    hi_c = _taps(hi, 2)
    a = _fir(lo_c, _LO, add_h, sh_h)
    v = _fir(lo_c, _HI, add_h, sh_h)
    hh = _fir(hi_c, _LO, add_h, sh_h)
    d = _fir(hi_c, _HI, add_h, sh_h)
    half = (w + 1) // 2
    if simd_tail and half > 1 and (half - 1) % simd_tail == 0:
        j = half - 1
        cat = torch.cat([lo, hi], dim=2)  # tmphi follows tmplo in libvmaf's scratch buffer
        taps = [cat[:, :, 2 * j - 1 + k] for k in range(4)]
        a[:, :, j] = _fir(taps, _LO, add_h, sh_h)
        v[:, :, j] = _fir(taps, _HI, add_h, sh_h)
    return a, v, hh, d


@functools.cache
def _recip_table_cpu() -> torch.Tensor:
    table = (1 << 30) // torch.arange(32769, dtype=torch.int64).clamp_min(1)
    table[0] = 0
    return table


def _recip_table(device: torch.device) -> torch.Tensor:
    """libvmaf's ``div_lookup`` (2^30 // m, m = 0..32768; 0 unused) on ``device``."""
    return _recip_table_cpu().to(device)


def _bitlen(x: torch.Tensor) -> torch.Tensor:
    """Bit length of non-negative int64 values below 2^53."""
    return torch.frexp(x.to(torch.float64))[1].to(torch.int64)


@functools.cache
def _recip_table_f64(device: torch.device) -> torch.Tensor:
    return _recip_table_cpu().to(torch.float64).to(device)


def _decouple16_f64(
    o: tuple[torch.Tensor, ...], t: tuple[torch.Tensor, ...], angle: torch.Tensor, gain: float,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """:func:`_decouple`'s scale-0 loop (int16 bands, integer gain) in exact float64.

    ``o``/``t``: the (h, v, d) bands as integer-valued float64; ``angle``: the angle test as a
    bool tensor. Every value is an integer below 2^46 (``div_lookup[|o|] * t`` <= 2^30 * 2^15),
    exact in float64, shifts are ``floor(x * 2^-15)``, and the C code's branches become 0/1
    factors (integer-valued masks from ``clamp``: no bool masks, which cost ~10x a pass).
    Returns the restored and additive bands as int64, as :func:`_decouple` does.
    """
    table = _recip_table_f64(o[0].device)
    angle_f = angle.to(torch.float64)
    rst_out, add_out = [], []
    for ob, tb in zip(o, t, strict=True):
        mag = ob.abs()
        # (div_lookup[|o|] * (o < 0 ? -t : t) + 16384) >> 15; o == 0 reads div_lookup[0] = 0.
        k = table.index_select(0, mag.to(torch.int32).view(-1)).view(ob.shape)
        sgn = ob.clamp(-1.0, 1.0)  # sign of an integer
        k.mul_(tb).mul_(sgn).add_(16384.0).mul_(2.0**-15).floor_().clamp_(0.0, 32768.0)
        # o == 0: k = 32768 (k is 0 there).
        k.add_(mag.clamp_(max=1.0).sub_(1.0), alpha=-32768.0)
        rst = torch.mul(k, ob).add_(16384.0).mul_(2.0**-15).floor_()
        live = k.clamp_(max=1.0).mul_(angle_f)  # angle & (k > 0)
        boosted = rst * gain if gain != 1.0 else rst
        pos = torch.clamp_min(sgn, 0.0).mul_(live)  # o > 0 and live
        neg = sgn.clamp_(max=0.0).mul_(live)  # -1 where o < 0 and live
        up = torch.minimum(boosted, tb).sub_(rst).mul_(pos)
        down = torch.maximum(boosted, tb).sub_(rst).mul_(neg)
        rst = rst.add_(up).sub_(down)  # o > 0: min(rst g, t); o < 0: max(rst g, t)
        rst_out.append(rst.to(torch.int64))
        add_out.append(torch.sub(tb, rst).to(torch.int64))
    return rst_out, add_out


def _decouple(
    o: tuple[torch.Tensor, ...], t: tuple[torch.Tensor, ...], gain: float, width: int,
    vec_cols: int = 0, o_f64: tuple[torch.Tensor, ...] | None = None,
    t_f64: tuple[torch.Tensor, ...] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Restored and additive (h, v, d) bands; ``o``/``t`` are reference/distorted (h, v, d).

    ``vec_cols``: columns below it were done by libvmaf's vector loop (AVX2 at scale 0, AVX-512
    at every scale: ``_DECOUPLE_BLOCK``), which rounds ``rst * gain`` to nearest
    (``cvtpd_epi32``/``cvtpd_epi64``) before the min/max; its C code truncates after.
    ``o_f64``/``t_f64``: the same bands as float64, when at hand (scale 0's fast path).
    """
    oh, ov, _ = o
    th, tv, _ = t
    cos_1deg_sq = float(np.float32(math.cos(math.pi / 180.0) * math.cos(math.pi / 180.0)))
    # libvmaf: ((float)x / 4096.0) in double. The /4096 scales both sides of the test by 2^-24
    # exactly, so it is dropped; only the int64 -> float rounding matters.
    if width == 16:  # |products| < 2^31: exact in float64, one rounding to float32
        if o_f64 is None or t_f64 is None:
            o_f64 = tuple(b.to(torch.float64) for b in o)
            t_f64 = tuple(b.to(torch.float64) for b in t)
        ohf, ovf, thf, tvf = o_f64[0], o_f64[1], t_f64[0], t_f64[1]
        dp = (ohf * thf).add_(ovf * tvf).to(torch.float32).to(torch.float64)
        om = (ohf * ohf).add_(ovf * ovf).to(torch.float32).to(torch.float64)
        tm = (thf * thf).add_(tvf * tvf).to(torch.float32).to(torch.float64)
        del ohf, ovf, thf, tvf
    else:
        dp = _i64_to_f32(oh * th + ov * tv).to(torch.float64)
        om = _i64_to_f32(oh * oh + ov * ov).to(torch.float64)
        tm = _i64_to_f32(th * th + tv * tv).to(torch.float64)
    angle = (dp >= 0) & (dp * dp >= (om.mul_(cos_1deg_sq)).mul_(tm))  # (cos * o) * t, as in C
    del dp, om, tm
    if width == 16 and float(gain).is_integer():
        assert o_f64 is not None and t_f64 is not None
        return _decouple16_f64(o_f64, t_f64, angle, float(gain))

    table = _recip_table(oh.device)
    rst_out, add_out = [], []
    for ob, tb in zip(o, t, strict=True):
        mag = ob.abs()
        sgn_t = torch.where(ob < 0, -tb, tb)
        if width == 16:  # |o| <= 32768: straight from libvmaf's Q30 reciprocal table
            tmp = (torch.take(table, mag) * sgn_t + 16384) >> 15
        else:  # larger |o| are first rounded to 15 significant bits, the shift undone after
            shift = (_bitlen(mag) - 15).clamp_min(0)
            m = torch.where(shift > 0, (mag + ((1 << shift) >> 1)) >> shift, mag)
            tmp = (torch.take(table, m) * sgn_t + (1 << (14 + shift))) >> (15 + shift)
        k = tmp.clamp_(0, 32768).masked_fill_(ob == 0, 32768)
        rst = (k * ob).add_(16384).bitwise_right_shift_(15)
        live = angle & (k > 0)
        if float(gain).is_integer():  # rst * gain is exact: stay in integers
            boosted = rst * int(gain) if gain != 1.0 else rst
            up = torch.minimum(boosted, tb)
            down = torch.maximum(boosted, tb)
        else:
            boosted_f = rst.to(torch.float64) * gain
            tf = tb.to(torch.float64)
            up = torch.where(boosted_f < tf, boosted_f, tf).trunc().to(torch.int64)
            down = torch.where(boosted_f > tf, boosted_f, tf).trunc().to(torch.int64)
            if vec_cols > 0:
                near = torch.round(boosted_f).to(torch.int64)  # round half to even
                v_up, v_down = torch.minimum(near, tb), torch.maximum(near, tb)
                up[..., :vec_cols] = v_up[..., :vec_cols]
                down[..., :vec_cols] = v_down[..., :vec_cols]
        rst = torch.where(live & (ob > 0), up, rst)
        rst = torch.where(live & (ob < 0), down, rst)
        rst_out.append(rst)  # |rst| <= max(|o|, |t|) and t - rst keeps t's sign: no overflow
        add_out.append(tb - rst)
    return rst_out, add_out


def _neighbour_index(n: int, lo: int, hi: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Indices i-1, i, i+1 for i in [lo, hi): -1 reads 1, n reads n-1 (libvmaf's CM borders)."""
    i = torch.arange(lo, hi, dtype=torch.int64)
    up = torch.where(i == 0, torch.ones_like(i), i - 1)
    dn = torch.where(i == n - 1, i, i + 1)
    return up.to(device), i.to(device), dn.to(device)


def _box_neighbours(f: torch.Tensor, ry: tuple[torch.Tensor, ...], rx: tuple[torch.Tensor, ...]
                    ) -> torch.Tensor:
    """Sum of the 3x3 neighbourhood (centre included) of (N, H, W) ``f`` over the ROI."""
    col = f.index_select(1, ry[0]) + f.index_select(1, ry[1]) + f.index_select(1, ry[2])
    return col.index_select(2, rx[0]) + col.index_select(2, rx[1]) + col.index_select(2, rx[2])


def _row_round_sum(val: torch.Tensor, shift: int) -> torch.Tensor:
    """libvmaf's per-row ``(row_sum + 2^(shift-1)) >> shift`` summed over rows: (N,)."""
    inner = val.sum(-1)
    add = (1 << (shift - 1)) if shift > 0 else 0
    return ((inner + add) >> shift).sum(-1)


def _f32_sum3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (a + b) + c  # float32 tensors: libvmaf's h + v + d in float


# --------------------------------------------------------------------------- per-scale parts


def _den_acc(ref_bands: tuple[torch.Tensor, ...], scale: int) -> list[torch.Tensor]:
    """adm_csf_den_scale / adm_csf_den_s123, integer part: the (h, v, d) reference bands'
    cube sums over the region, with libvmaf's per-row rounding shifts; int64 ``(N,)`` each."""
    _, h, w = ref_bands[0].shape
    top, bottom = _roi(h)
    left, right = _roi(w)
    accs = []
    for band in ref_bands:
        x = band[:, top:bottom, left:right].abs()
        if scale == 0:
            accs.append(_row_round_sum(x * x * x, _den_shifts(scale, h, w)[0]))
        else:
            sq = (31, 30, 31)[scale - 1]
            sh_acc, cub = _den_shifts(scale, h, w)
            add_cub = (1 << (cub - 1)) if cub > 0 else 0
            val = ((((x * x + (1 << sq)) >> sq) * x) + add_cub) >> cub
            accs.append(_row_round_sum(val, sh_acc))
    return accs


def _den_shifts(scale: int, h: int, w: int) -> tuple[int, int]:
    """(row-sum shift, cube shift) of the den sums of an ``h x w`` band at ``scale``."""
    top, bottom = _roi(h)
    left, right = _roi(w)
    if scale == 0:
        return max(math.ceil(math.log2((bottom - top) * (right - left)) - 20), 0), 0
    return _ceil_log2(bottom - top), _ceil_log2(right - left)


def _den_finish(accs: list[torch.Tensor], scale: int, opts: IntegerAdmOptions, h: int, w: int
                ) -> torch.Tensor:
    """adm_csf_den_scale / adm_csf_den_s123, float part: the den term from :func:`_den_acc`."""
    top, bottom = _roi(h)
    left, right = _roi(w)
    area = (bottom - top) * (right - left)
    f1, f2 = csf_factors(scale, opts)
    sh_acc, cub = _den_shifts(scale, h, w)
    exp = 18 - sh_acc if scale == 0 else (32, 27, 23)[scale - 1] - sh_acc - cub
    outs = []
    for acc, rf in zip(accs, (f1, f1, f2), strict=True):
        if exp < 0:  # unsigned wrap in libvmaf: pow(2, ~2^32) = inf, the sum becomes 0
            csf = torch.zeros_like(acc, dtype=torch.float64)
        else:
            csf = (acc.to(torch.float64) / 2.0**exp) * math.pow(float(rf), 3)
        outs.append(_powf_cbrt(csf.to(torch.float32)))
    noise = torch.tensor(float(_powf_cbrt_scalar(area * opts.noise_weight)), dtype=torch.float32,
                         device=outs[0].device)
    return _f32_sum3(outs[0] + noise, outs[1] + noise, outs[2] + noise)


def _csf(src: list[torch.Tensor], scale: int, opts: IntegerAdmOptions
         ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """adm_csf / i4_adm_csf: CSF-weighted bands and their |.|/30 masking weights."""
    dst, flt = [], []
    if scale == 0:
        rf = _scale0_rfactor(opts)
        shifts = (15, 15, 17)
        adds = (16384, 16384, 65535)  # sic: 65535 for the diagonal
        for b, r, s, a in zip(src, rf, shifts, adds, strict=True):
            d = _wrap(_mas(b, r, a, s), 16)
            dst.append(d)
            flt.append(_wrap(_abs_mas(d, _I16_ONE_BY_30, 2048, 12), 16))
    else:
        rf = _s123_rfactor(scale, opts)
        for b, r in zip(src, rf, strict=True):
            d = _wrap(_mas(b, r, 1 << 27, 28), 32)
            dst.append(d)
            flt.append(_wrap(_abs_mas(d, _I32_ONE_BY_30, _I32_FLT_ADD, 32), 32))
    return dst, flt


def _cm_shifts(scale: int, h: int, w: int) -> tuple[int, tuple[tuple[int, int, int], ...]]:
    """Row-sum shift and, per orientation (h, v, d), (sub shift, square shift, cube shift) of
    the masked cube sums of an ``h x w`` band at ``scale`` (sub/square shifts: scale 0 only)."""
    sh_inner = _ceil_log2(h)
    if scale == 0:
        lw = math.log2(w)
        hv = (10, 29, math.ceil(lw - 4))
        return sh_inner, (hv, hv, (12, 30, math.ceil(lw - 3)))
    cub = _ceil_log2(w)
    return sh_inner, ((0, 30, cub),) * 3


def cm_vector_region(simd: str, scale: int, h: int, w: int) -> tuple[int, int, int, int]:
    """Rows ``[r0, r1)`` and columns ``[c0, c1)`` of an ``h x w`` band where libvmaf's vector
    ``adm_cm`` computes the centre's ``|csf| / 15`` masking weight: in int32, where its C code
    casts it to int16. Only scale 0 (int16 bands), only when the region of interest lies inside
    the band, and only in whole column blocks (14 on AVX-512, 6 on AVX2) from its left edge;
    empty for the C path. The cast matters where the weight exceeds 32767 (``|csf| > 15000``),
    which the AIM pass meets at sharp black/white edges: reproducing the C cast there moved
    ``integer_aim`` by up to 5e-4 against libvmaf on AVX-512."""
    block = _CM_BLOCK[simd]
    top, bottom = _roi(h)
    left, right = _roi(w)
    if scale != 0 or not block or not (left > 0 and right <= w - 1):
        return 0, 0, 0, 0
    c0, c1 = max(left, 1), min(right, w - 1)
    return max(top, 1), min(bottom, h - 1), c0, c1 - (c1 - c0) % block


def _cm_acc(src: list[torch.Tensor], csf_a: list[torch.Tensor], csf_f: list[torch.Tensor],
            scale: int, opts: IntegerAdmOptions,
            vector: tuple[int, int, int, int] = (0, 0, 0, 0)) -> list[torch.Tensor]:
    """adm_cm / i4_adm_cm, integer part: the masked cube sums of ``src`` (restored or additive
    bands) per orientation, int64 ``(N,)`` each. ``vector``: :func:`cm_vector_region`."""
    _, h, w = src[0].shape
    top, bottom = _roi(h)
    left, right = _roi(w)
    dev = src[0].device
    ry = _neighbour_index(h, top, bottom, dev)
    rx = _neighbour_index(w, left, right, dev)

    # Threshold: per orientation, the 8 neighbours' |csf|/30 plus the centre's |csf|/15.
    f_all = csf_f[0] + csf_f[1] + csf_f[2]
    if scale == 0:
        r0, r1, c0, c1 = vector
        centre = []
        for c in csf_a:
            weight = _abs_mas(c, _I16_ONE_BY_15, 2048, 12)
            wrapped = _wrap(weight.clone(), 16)
            wrapped[:, r0:r1, c0:c1] = weight[:, r0:r1, c0:c1]  # the vector blocks' int32
            centre.append(wrapped)
    else:
        centre = [_wrap(_abs_mas(c, _I32_ONE_BY_15, _I32_FLT_ADD, 32), 32) for c in csf_a]
    roi = (slice(None), slice(top, bottom), slice(left, right))
    thr = _box_neighbours(f_all, ry, rx).sub_(f_all[roi])
    for c in centre:
        thr.add_(c[roi])

    sh_inner, params = _cm_shifts(scale, h, w)
    accs = []
    if scale == 0:
        for b, r, (sub, sq, cub) in zip(src, _scale0_rfactor(opts), params, strict=True):
            x = b[roi] * r
            x.abs_().sub_(thr << sub).clamp_min_(0)
            x_sq = _wrap((x * x).add_(1 << (sq - 1)).bitwise_right_shift_(sq), 32)
            add_cub = (1 << (cub - 1)) if cub > 0 else 0
            accs.append(_row_round_sum(x_sq.mul_(x).add_(add_cub).bitwise_right_shift_(cub),
                                       sh_inner))
    else:
        for b, r, (_, _, cub) in zip(src, _s123_rfactor(scale, opts), params, strict=True):
            add_cub = (1 << (cub - 1)) if cub > 0 else 0
            x = _wrap(_mas(b[roi], r, 1 << 27, 28), 32)
            x.abs_().sub_(thr).clamp_min_(0)
            x_sq = _wrap((x * x).add_(1 << 29).bitwise_right_shift_(30), 32)
            accs.append(_row_round_sum(x_sq.mul_(x).add_(add_cub).bitwise_right_shift_(cub),
                                       sh_inner))
    return accs


def _cm_finish(accs: list[torch.Tensor], scale: int, noise_weight: float, h: int, w: int
               ) -> torch.Tensor:
    """adm_cm / i4_adm_cm, float part: the num (or AIM) term from :func:`_cm_acc`."""
    top, bottom = _roi(h)
    left, right = _roi(w)
    area = (bottom - top) * (right - left)
    sh_inner, params = _cm_shifts(scale, h, w)
    outs = []
    for acc, (_, _, cub), fin in zip(accs, params, (52, 52, 57), strict=True):
        if scale == 0:  # fin: the final exponent of h/v and of d
            f = (acc.to(torch.float64) / 2.0 ** (fin - cub - sh_inner)).to(torch.float32)
        else:
            exp = (45, 39, 36)[scale - 1] - cub - sh_inner
            if exp < 0:  # unsigned wrap in libvmaf: divided by inf
                f = torch.zeros_like(acc, dtype=torch.float32)
            else:
                f = (acc.to(torch.float64) / float(np.float32(2.0**exp))).to(torch.float32)
        outs.append(_powf_cbrt(f))
    noise = torch.tensor(float(_powf_cbrt_scalar(area * noise_weight)), dtype=torch.float32,
                         device=accs[0].device)
    return _f32_sum3(outs[0] + noise, outs[1] + noise, outs[2] + noise)


def _cm(src: list[torch.Tensor], csf_a: list[torch.Tensor], csf_f: list[torch.Tensor],
        scale: int, opts: IntegerAdmOptions, noise_weight: float, simd: str) -> torch.Tensor:
    """adm_cm / i4_adm_cm: masked cube-norm of ``src`` (restored or additive bands), as
    libvmaf's ``simd`` code path computes it."""
    _, h, w = src[0].shape
    vector = cm_vector_region(simd, scale, h, w)
    return _cm_finish(_cm_acc(src, csf_a, csf_f, scale, opts, vector), scale, noise_weight,
                      h, w)


# --------------------------------------------------------------------------- entry point

#: Output-column block of libvmaf's vector horizontal DWT pass at scale 0, per (path, 8-bit):
#: its last block also computes the last column when ``ceil(w/2) - 1`` is a multiple of it
#: (0: no such block). The 8-bit AVX2 kernel runs only on widths that never meet the condition.
_SIMD_TAIL = {("c", True): 0, ("c", False): 0, ("avx2", True): 0, ("avx2", False): 16,
              ("avx512", True): 32, ("avx512", False): 64}
_SIMD_PATHS = ("avx2", "avx512", "c")
#: Column block of libvmaf's vector decoupling per (path, scale 0), whose blocks round
#: ``rst * gain`` to nearest where its C code truncates (0: the C code's truncation).
_DECOUPLE_BLOCK = {("c", True): 0, ("c", False): 0, ("avx2", True): 8, ("avx2", False): 0,
                   ("avx512", True): 16, ("avx512", False): 16}
#: Column block of libvmaf's vector scale-0 ``adm_cm`` (its thresholds' centre weight stays
#: int32 there; :func:`cm_vector_region`); 0: the C code's int16 cast everywhere.
_CM_BLOCK = {"c": 0, "avx2": 6, "avx512": 14}


def libvmaf_reads_stale_memory(width: int, bit_depth: int, simd: str | None = None, *,
                               skip_scale0: bool = False) -> bool:
    """Whether libvmaf's integer ADM, on this CPU's code path (or ``simd``), reads memory its
    frame did not write: the AVX2 high-bit-depth scale-0 DWT on frames 33 or 34 wide takes
    the last column's high-pass taps from the word past its row, which holds what the
    previous frame's scale-2 DWT left there (the first frame: whatever the heap held; with
    libvmaf threads, another frame's). Measured: up to 1.8e-2 VMAF between it and exact
    mode, whose taps there are mirrored as in libvmaf's C code. With ``adm_skip_scale0``
    libvmaf runs its C scale-0 DWT, which has no such tail."""
    if skip_scale0:
        return False
    path = simd or libvmaf_simd()
    block = _SIMD_TAIL.get((path, bit_depth == 8), 0)
    half = (int(width) + 1) // 2
    # the band's last column reaches the score only where the band is under 25 wide
    return bool(block) and half < 25 and (half - 1) % block == 0


@functools.cache
def libvmaf_simd() -> str:
    """The x86 code path libvmaf selects on this CPU: ``avx512``, ``avx2`` or ``c``
    (:func:`vmafdistill.machine.simd_level`; other architectures run libvmaf's C ADM code)."""
    level = simd_level()
    return level if level in _SIMD_PATHS else "c"


def check_size(width: int, height: int) -> None:
    """Raise ValueError for frames smaller than libvmaf's integer ADM can process."""
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(f"integer ADM needs frames of at least {MIN_SIZE}x{MIN_SIZE} "
                         f"(got {width}x{height})")


@torch.no_grad()
def integer_adm(
    ref: torch.Tensor, dis: torch.Tensor, bit_depth: int, opts: IntegerAdmOptions | None = None,
    *, simd: str | None = None, frames_per_pass: int | None = None,
) -> dict[str, torch.Tensor]:
    """libvmaf's integer ADM of (N, H, W) integer-valued luma frames, per frame (float64).

    Keys are libvmaf's printed names: ``integer_adm2``, ``integer_adm_scale0..3``,
    ``integer_aim`` and ``integer_adm3`` (and the debug ``integer_adm_num``/``_den`` and
    per-scale ``integer_adm_num_scaleK``/``integer_adm_den_scaleK``). ``integer_aim`` and
    ``integer_adm3`` are absent with ``skip_aim``. ``simd`` names the libvmaf code path to
    reproduce where its SIMD code differs from its C code: ``"avx2"``, ``"avx512"`` or ``"c"``;
    ``None`` (default) picks what libvmaf itself picks on this CPU (:func:`libvmaf_simd`).
    ``frames_per_pass`` bounds how many frames go through the pipeline at once (default: 1 on
    CPU, which keeps the working set small at no measured cost; all on other devices).
    Results do not depend on it.
    """
    simd = simd or libvmaf_simd()
    if simd not in _SIMD_PATHS:
        raise ValueError(f"simd must be one of {sorted(_SIMD_PATHS)}, got {simd!r}")
    opts = opts or IntegerAdmOptions()
    opts.validate()
    if ref.shape != dis.shape or ref.dim() != 3:
        raise ValueError(f"expected two (N, H, W) tensors of one shape, got {tuple(ref.shape)} "
                         f"and {tuple(dis.shape)}")
    if not 8 <= bit_depth <= 16:
        raise ValueError(f"bit depth must be 8..16, got {bit_depth}")
    n, h, w = ref.shape
    check_size(w, h)
    if ref.is_floating_point() or dis.is_floating_point():
        ref, dis = ref.round(), dis.round()
    if n and use_compiled_kernels(ref):
        from .cpu_adm import integer_adm_compiled  # numba: imported when first needed

        return integer_adm_compiled(ref, dis, bit_depth, opts, simd)
    step = frames_per_pass or (1 if ref.device.type == "cpu" else max(n, 1))
    if n > step:
        parts = [_integer_adm(ref[i : i + step], dis[i : i + step], bit_depth, opts, simd)
                 for i in range(0, n, step)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return _integer_adm(ref, dis, bit_depth, opts, simd)


def _integer_adm(ref: torch.Tensor, dis: torch.Tensor, bit_depth: int, opts: IntegerAdmOptions,
                 simd: str) -> dict[str, torch.Tensor]:
    n, h, w = ref.shape
    r = ref.to(torch.float64)  # the DWTs run in exact float64 (see _fir); bands go to int64
    d = dis.to(torch.float64)
    dev = r.device

    half = 1 << (bit_depth - 1)
    vp0 = (_LO_SUM * half, half, bit_depth)
    nums: list[torch.Tensor] = []
    dens: list[torch.Tensor] = []
    aims: list[torch.Tensor] = []
    zero = torch.zeros(n, dtype=torch.float32, device=dev)
    cur_r, cur_d = r, d
    for scale in range(4):
        if scale == 0:
            # libvmaf's low-pass-only DWT (adm_skip_scale0) has no SIMD version: no quirk.
            tail = 0 if opts.skip_scale0 else _SIMD_TAIL[simd, bit_depth == 8]
            rb = _dwt(cur_r, vp0, (32768, 16), 16, simd_tail=tail)
            db = _dwt(cur_d, vp0, (32768, 16), 16, simd_tail=tail)
            width = 16
        else:
            vp = ((0, 0, 0), (0, 32768, 16), (0, 32768, 16))[scale - 1]
            hp = ((16384, 15), (32768, 16), (16384, 15))[scale - 1]
            rb = _dwt(cur_r, vp, hp, 32)
            db = _dwt(cur_d, vp, hp, 32)
            width = 32
        cur_r, cur_d = rb[0], db[0]
        rb_f, db_f = rb, db
        rb = (rb[0], *(b.to(torch.int64) for b in rb[1:]))
        db = (db[0], *(b.to(torch.int64) for b in db[1:]))
        if scale == 0 and opts.skip_scale0:
            nums.append(zero)
            dens.append(torch.full_like(zero, 1e-10))
            aims.append(zero)
            continue
        o = (rb[2], rb[1], rb[3])  # (h, v, d)
        t = (db[2], db[1], db[3])
        vec_cols = 0
        block = _DECOUPLE_BLOCK[simd, scale == 0]
        if block:
            bw = rb[0].shape[-1]
            left_c = max(int(bw * _BORDER - 0.5 - 1), 0)
            right_c = min(bw - left_c + 2, bw)
            # libvmaf's vector decoupling loop runs from left_c in whole blocks up to here.
            vec_cols = right_c - (right_c - left_c) % block
        rst, add = _decouple(o, t, opts.enhn_gain_limit, width, vec_cols,
                             (rb_f[2], rb_f[1], rb_f[3]), (db_f[2], db_f[1], db_f[3]))
        dens.append(_den_finish(_den_acc(o, scale), scale, opts, *o[0].shape[1:]))
        csf_a, csf_f = _csf(add, scale, opts)
        nums.append(_cm(rst, csf_a, csf_f, scale, opts, opts.noise_weight, simd))
        if not opts.skip_aim:
            # AIM: the additive part masked by the restored part's CSF (no noise term).
            csf_r, csf_rf = _csf(rst, scale, opts)
            aims.append(_cm(add, csf_r, csf_rf, scale, opts, 0.0, simd))
        else:
            aims.append(zero)
    return _pooled(nums, dens, aims, w, h, opts)


def _pooled(nums: list[torch.Tensor], dens: list[torch.Tensor], aims: list[torch.Tensor],
            w: int, h: int, opts: IntegerAdmOptions) -> dict[str, torch.Tensor]:
    """adm2, the per-scale ratios, AIM/adm3 and the raw sums from the four scales' terms."""
    num = sum(x.to(torch.float64) for x in nums)
    den = sum(x.to(torch.float64) for x in dens)
    aim_num = sum(x.to(torch.float64) for x in aims)
    assert isinstance(num, torch.Tensor) and isinstance(den, torch.Tensor)
    assert isinstance(aim_num, torch.Tensor)
    limit = 1e-10 * (w * h) / (1920.0 * 1080.0)
    num = torch.where(num < limit, torch.zeros_like(num), num)
    den = torch.where(den < limit, torch.zeros_like(den), den)
    safe = torch.where(den == 0, torch.ones_like(den), den)
    adm2 = torch.where(den == 0, torch.ones_like(num), num / safe)
    out = {"integer_adm2": adm2}
    for s in range(4):
        out[f"integer_adm_scale{s}"] = nums[s].to(torch.float64) / dens[s].to(torch.float64)
    if not opts.skip_aim:
        # libvmaf leaves AIM unset when the denominator is 0; report 0 there.
        aim = torch.where(den == 0, torch.zeros_like(num), aim_num / safe)
        out["integer_aim"] = aim
        out["integer_adm3"] = adm3_from_adm2_aim(
            adm2, aim, Adm3Options(dlm_weight=opts.dlm_weight, min_val=opts.min_val))
    out["integer_adm_num"] = num
    out["integer_adm_den"] = den
    for s in range(4):
        out[f"integer_adm_num_scale{s}"] = nums[s].to(torch.float64)
        out[f"integer_adm_den_scale{s}"] = dens[s].to(torch.float64)
    return out
