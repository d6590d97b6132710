"""Additive Detail Measure (ADM, "adm2") at four scales, following libvmaf's ``float_adm``.

Per scale: a db2 DWT of reference and distorted frames; the distorted detail bands are split
into a *restored* part (the reference scaled by a gain clipped to [0, 1], or the distorted
band itself when the orientation is within one degree) and an *additive* impairment; both go
through Watson's wavelet CSF; contrast masking subtracts a threshold built from the additive
part's 3x3 neighbourhood; the numerator is the cube-norm of what survives, the denominator the
cube-norm of the reference bands, both over the frame minus a 10 % border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .filters import dwt2_db2

#: Fraction of each side excluded from the ADM sums.
BORDER_FACTOR = 0.1

# float32 constants libvmaf uses for the masking neighbourhood.
_ONE_BY_30 = 0.0333333351
_ONE_BY_15 = 0.0666666701

# Watson et al. 1997 wavelet model, Y channel (a, k, f0, g[theta]) and basis amplitudes.
WATSON_Y = (0.495, 0.466, 0.401, (1.501, 1.0, 0.534, 1.0))
BASIS_AMPLITUDES = (
    (0.62171, 0.67234, 0.72709, 0.67234),
    (0.34537, 0.41317, 0.49428, 0.41317),
    (0.18004, 0.22727, 0.28688, 0.22727),
    (0.091401, 0.11792, 0.15214, 0.11792),
    (0.045943, 0.059758, 0.077727, 0.059758),
    (0.023013, 0.030018, 0.039156, 0.030018),
)


@dataclass(frozen=True)
class AdmOptions:
    """Feature parameters of libvmaf's float ADM (defaults are libvmaf's)."""

    enhn_gain_limit: float = 100.0
    norm_view_dist: float = 3.0
    ref_display_height: int = 1080
    noise_weight: float = 0.03125


def _f32(x: float) -> float:
    return float(np.float32(x))


def csf_factors(scale: int, opts: AdmOptions) -> tuple[float, float]:
    """CSF weights (horizontal/vertical, diagonal) at ``scale``: 1 / Watson quantisation step.

    Evaluated with libvmaf's mix of float and double arithmetic so the weights match its
    float32 values exactly.
    """
    a, k, f0 = (_f32(v) for v in WATSON_Y[:3])
    g = WATSON_Y[3]
    r = _f32(opts.norm_view_dist * opts.ref_display_height * math.pi / 180.0)
    factors = []
    for theta in (1, 2):
        temp = _f32(math.log10(2.0 ** (scale + 1) * f0 * _f32(g[theta]) / r))
        q = _f32(
            2.0 * a * 10.0 ** (k * temp * temp) / _f32(BASIS_AMPLITUDES[scale][theta])
        )
        factors.append(float(np.float32(1.0) / np.float32(q)))
    return factors[0], factors[1]


def _roi(n: int) -> tuple[int, int]:
    """[start, stop) of the sums along a dimension of length ``n`` (C truncation toward 0)."""
    start = int(n * BORDER_FACTOR - 0.5)
    return start, n - start


def _noise_constant(width: int, height: int, weight: float) -> float:
    # powf((w * h * weight), 1/3) in float, as libvmaf's get_noise_constant.
    return float(np.float32(np.float32(width * height * weight) ** np.float32(1.0 / 3.0)))


def _cube_norm(x: torch.Tensor) -> torch.Tensor:
    """(sum |x|^3)^(1/3) over the last two dims, accumulated in float64."""
    s = (x.abs() ** 3).sum(dim=(-2, -1), dtype=torch.float64)
    # The cube root's derivative is infinite at 0; a zero sum only occurs for flat bands.
    return torch.where(s > 0, s.clamp_min(1e-300) ** (1.0 / 3.0), torch.zeros_like(s))


def decouple(
    o: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    t: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    enhn_gain_limit: float,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Split distorted bands ``t`` (h, v, d) into restored and additive parts given ``o``.

    ``k = clip(t / o, 0, 1); restored = k * o`` is written without the division (same value,
    no infinite gradient when ``o == 0``): 0 when signs differ, else whichever of ``t`` and
    ``o`` is smaller in magnitude.
    """
    oh, ov, _ = o
    th, tv, _ = t
    cos_1deg_sq = _f32(math.cos(math.pi / 180.0) ** 2)
    dot = oh * th + ov * tv
    o_mag_sq = oh * oh + ov * ov
    t_mag_sq = th * th + tv * tv
    angle_ok = (dot >= 0) & (dot * dot >= cos_1deg_sq * o_mag_sq * t_mag_sq)

    restored, additive = [], []
    for ob, tb in zip(o, t, strict=True):
        same_sign = ob * tb > 0
        smaller = torch.where(tb.abs() <= ob.abs(), tb, ob)
        rst = torch.where(same_sign, smaller, torch.zeros_like(tb))
        # Enhancement (|t| beyond |o| at the same angle) is credited up to the gain limit.
        boosted = rst * enhn_gain_limit
        rst = torch.where(angle_ok & (rst > 0), torch.minimum(boosted, tb), rst)
        rst = torch.where(angle_ok & (rst < 0), torch.maximum(boosted, tb), rst)
        restored.append(rst)
        additive.append(tb - rst)
    return restored, additive


def _masking_threshold(csf_a: list[torch.Tensor]) -> torch.Tensor:
    """Contrast-masking threshold: 3x3 sums of |csf_a|/30 (centre |csf_a|/15), over bands.

    Rows/columns beyond the frame mirror at the top/left edge and repeat the edge sample at the
    bottom/right edge, as libvmaf's ``ADM_CM_THRESH_S_*`` macros do.
    """
    thr = None
    for band in csf_a:
        mag = band.abs()
        flt = _ONE_BY_30 * mag
        h, w = flt.shape[-2:]
        top = flt[:, 1:2] if h > 1 else flt[:, :1]
        rows = torch.cat([top, flt, flt[:, -1:]], dim=1)
        left = rows[:, :, 1:2] if w > 1 else rows[:, :, :1]
        p = torch.cat([left, rows, rows[:, :, -1:]], dim=2)
        s = (
            p[:, :-2, :-2] + p[:, :-2, 1:-1] + p[:, :-2, 2:]
            + p[:, 1:-1, :-2] + _ONE_BY_15 * mag + p[:, 1:-1, 2:]
            + p[:, 2:, :-2] + p[:, 2:, 1:-1] + p[:, 2:, 2:]
        )
        thr = s if thr is None else thr + s
    assert thr is not None
    return thr


def _aim_term(restored: list[torch.Tensor], additive: list[torch.Tensor],
              weights: tuple[float, float, float], roi: tuple[slice, slice, slice]
              ) -> torch.Tensor:
    """One scale's AIM numerator: the additive part masked by the restored part's CSF (no
    noise term), as libvmaf's float ADM adds it to ``aim``."""
    thr = _masking_threshold([wt * b for wt, b in zip(weights, restored, strict=True)])[roi]
    out = None
    for wt, add in zip(weights, additive, strict=True):
        term = _cube_norm(((wt * add[roi]).abs() - thr).clamp_min(0.0))
        out = term if out is None else out + term
    assert out is not None
    return out


def adm_scales(
    ref: torch.Tensor, dist: torch.Tensor, opts: AdmOptions | None = None, *, aim: bool = False
) -> dict[str, torch.Tensor]:
    """ADM numerators/denominators per scale, per-scale scores and ``adm2`` for ``(N, H, W)``.

    Returns float64 tensors of shape ``(N,)``: ``adm_num_scale{k}``, ``adm_den_scale{k}``,
    ``adm_scale{k}`` and ``adm2`` (sum of numerators over sum of denominators); with ``aim``
    also libvmaf's ``aim`` (the additive impairment over the same denominator) and ``adm3``
    (:func:`~vmafdistill.teacher.adm3.adm3_from_adm2_aim`), which its float ADM prints but the
    v0.6.1 models do not read (they cost a fourth more).
    """
    opts = opts or AdmOptions()
    out: dict[str, torch.Tensor] = {}
    n_frames = ref.shape[0]
    full_h, full_w = ref.shape[-2:]
    num_total = torch.zeros(n_frames, dtype=torch.float64, device=ref.device)
    den_total = torch.zeros_like(num_total)
    aim_total = torch.zeros_like(num_total)
    cur_ref, cur_dist = ref, dist
    for scale in range(4):
        a_r, v_r, h_r, d_r = dwt2_db2(cur_ref)
        a_d, v_d, h_d, d_d = dwt2_db2(cur_dist)
        h, w = a_r.shape[-2:]
        top, bottom = _roi(h)
        left, right = _roi(w)
        f1, f2 = csf_factors(scale, opts)
        weights = (f1, f1, f2)
        noise = _noise_constant(right - left, bottom - top, opts.noise_weight)

        # Only the sums' region plus the one-sample reach of the masking neighbourhood matters
        # (libvmaf computes nothing else either); where that reach leaves the frame, the
        # masking threshold's own edge rules apply, as they do in libvmaf.
        r0, r1 = max(top - 1, 0), min(bottom + 1, h)
        c0, c1 = max(left - 1, 0), min(right + 1, w)
        crop = (slice(None), slice(r0, r1), slice(c0, c1))
        o_bands = (h_r[crop], v_r[crop], d_r[crop])
        restored, additive = decouple(
            o_bands, (h_d[crop], v_d[crop], d_d[crop]), opts.enhn_gain_limit
        )
        csf_a = [wt * b for wt, b in zip(weights, additive, strict=True)]
        roi = (slice(None), slice(top - r0, bottom - r0), slice(left - c0, right - c0))
        thr = _masking_threshold(csf_a)[roi]

        num = torch.zeros(n_frames, dtype=torch.float64, device=ref.device)
        den = torch.zeros_like(num)
        for wt, rst, orig in zip(weights, restored, o_bands, strict=True):
            masked = ((wt * rst[roi]).abs() - thr).clamp_min(0.0)
            num = num + _cube_norm(masked) + noise
            den = den + _cube_norm(wt * orig[roi]) + noise
        if aim:
            aim_total = aim_total + _aim_term(restored, additive, weights, roi)
        out[f"adm_num_scale{scale}"] = num
        out[f"adm_den_scale{scale}"] = den
        out[f"adm_scale{scale}"] = num / den
        num_total = num_total + num
        den_total = den_total + den
        cur_ref, cur_dist = a_r, a_d

    # libvmaf zeroes sums below a size-scaled limit and then scores an all-zero frame as 1.
    limit = 1e-10 * (full_w * full_h) / (1920.0 * 1080.0)
    num_total = torch.where(num_total < limit, torch.zeros_like(num_total), num_total)
    den_total = torch.where(den_total < limit, torch.zeros_like(den_total), den_total)
    safe_den = torch.where(den_total == 0, torch.ones_like(den_total), den_total)
    out["adm2"] = torch.where(den_total == 0, torch.ones_like(num_total), num_total / safe_den)
    if aim:
        from .adm3 import Adm3Options, adm3_from_adm2_aim

        # libvmaf's float ADM caps it: MIN(aim_num / aim_den, 1) (its integer ADM does not)
        out["aim"] = torch.where(den_total == 0, torch.zeros_like(aim_total),
                                 (aim_total / safe_den).clamp(max=1.0))
        out["adm3"] = adm3_from_adm2_aim(out["adm2"], out["aim"], Adm3Options())
    return out
