"""libvmaf's integer VIF (``integer_vif.c``) in PyTorch, bit for bit.

Per scale ``s`` (0..3), from ``(N, H, W)`` integer samples of ``bit_depth`` bits:

* scale 0 filters the samples themselves; scale ``s > 0`` first low-passes the previous scale
  with filter ``s`` (vertical pass rounded by ``>> bpc`` on the samples, ``>> 16`` on the
  16-bit means above; horizontal pass ``>> 16``) and keeps every second row and column;
* the statistic pass filters ``mu`` (vertical ``>> bpc`` at scale 0, else ``>> 16``;
  horizontal unshifted, so means carry 24 fractional bits) and the squares/product
  (vertical ``>> 2 (bpc - 8)`` at scale 0, else ``>> 16``; horizontal ``>> 16``);
* ``sigma`` values are in units of 1/65536 of an 8-bit sample squared; pixels with
  ``sigma1_sq >= 2`` (131072) add fixed-point ``log2`` terms (libvmaf's 2048-per-octave table
  on the 16 leading bits), the others add the linear terms;
* ``num`` and ``den`` are rounded to float32, as libvmaf stores them, and the score is their
  float32 quotient.

All filters run as float64 GEMMs (:mod:`.intfilter`), exact because every intermediate is an
integer below 2^53. The only floating-point steps that are not integer arithmetic are the gain
``g`` and ``g * g * sigma1_sq``, which libvmaf computes in double; they are computed here with
the same IEEE double operations in the same order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from .intfilter import _plan, filter_cols, filter_rows, shift_round

#: ``vif_filter1d_table`` of ``integer_vif.h`` (each sums to 65536).
VIF_FILTERS: tuple[tuple[int, ...], ...] = (
    (489, 935, 1640, 2640, 3896, 5274, 6547, 7455, 7784, 7455, 6547, 5274, 3896, 2640, 1640,
     935, 489),
    (1244, 3663, 7925, 12590, 14692, 12590, 7925, 3663, 1244),
    (3571, 16004, 26386, 16004, 3571),
    (10904, 43728, 10904),
)  # fmt: skip

#: ``sigma_nsq``: the noise variance 2 in units of 1/65536.
SIGMA_NSQ = 65536 << 1
#: Default ``vif_enhn_gain_limit`` (libvmaf's ``DEFAULT_VIF_ENHN_GAIN_LIMIT``).
DEFAULT_GAIN_LIMIT = 100.0

VIF_FEATURES = tuple(f"integer_vif_scale{s}" for s in range(4))


@dataclass(frozen=True)
class IntegerVifOptions:
    """Options the VMAF models pass to libvmaf's integer VIF."""

    enhn_gain_limit: float = DEFAULT_GAIN_LIMIT  # vif_enhn_gain_limit (NEG models: 1.0)
    skip_scale0: bool = False  # vif_skip_scale0: scale 0 reported as 0


@functools.lru_cache(maxsize=8)
def log2_table(device: str = "cpu") -> torch.Tensor:
    """libvmaf's ``log2_table``: ``round(log2f(i) * 2048)`` for ``i`` in 32767..65535.

    ``log2f`` is taken as the correctly rounded float32 of the double ``log2``; 145 entries
    sit within one float32 ulp of a rounding boundary, so an inaccurate ``log2f`` would change
    them (the parity tests against libvmaf pin this down). Entries below 32767 are unused.
    """
    i = np.arange(65537, dtype=np.float64)
    i[:32767] = 1.0
    f = np.log2(i).astype(np.float32).astype(np.float64)
    table = np.floor(f * 2048.0 + 0.5)  # C round(): half away from zero, values are > 0
    table[:32767] = 0
    table[65536] = 0
    return torch.from_numpy(table).to(device)


#: ``_log2_raw`` carries the float64 exponent bias: it returns libvmaf's log + LOG_BIAS.
LOG_BIAS = 2048 * (1023 + 15)


def _log2_raw(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``log2_32``/``log2_64`` plus :data:`LOG_BIAS`, read off the float64 bit pattern.

    ``x`` holds integers in ``[2^15, 2^53)`` as contiguous float64, ``x = 1.f 2^E``: the 16
    leading bits are the implicit 1 and the top 15 fraction bits, and libvmaf adds 2048 for each
    of the ``E - 15`` bits below them. Other values give garbage, in the table's index range.
    """
    bits = x.view(torch.int64)
    lead = (bits >> 37).bitwise_and_(0x7FFF).bitwise_or_(0x8000)
    return table[lead].add_((bits >> 52).to(torch.float64).mul_(2048.0))


def _split16(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hi = torch.floor(a * (1.0 / 65536))
    return hi, a - hi * 65536


def _mul_shift32(
    a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """``(a * b + 2^31) >> 32`` exactly for integers ``a, b < 2^32`` given as 16-bit halves.

    ``a * b`` can reach 2^64, past float64's 2^53: ``a b = ah bh 2^32 + (ah bl + al bh) 2^16 +
    al bl`` and only the last two terms (< 2^50) need the rounding shift.
    """
    (ah, al), (bh, bl) = a, b
    low = torch.addcmul(al * bh, ah, bl).mul_(65536.0).addcmul_(al, bl).add_(2147483648.0)
    return low.mul_(1.0 / 4294967296.0).floor_().addcmul_(ah, bh)


def _block_terms(
    mu: torch.Tensor, sq: torch.Tensor, n: int, table: torch.Tensor, gain_limit: float
) -> torch.Tensor:
    """Per-frame ``(num_log, den_log, num_non_log, den_non_log)`` sums of a block of rows.

    ``mu``: horizontally filtered ``mu1, mu2`` (2n planes); ``sq``: the shifted ``xx, yy, xy``
    (3n planes). Returns ``(4, n)`` float64 integer sums.
    """
    mu1, mu2 = _split16(mu[:n]), _split16(mu[n:])
    xx, yy, xy = sq[:n], sq[n : 2 * n], sq[2 * n :]
    sigma1_sq = xx.sub_(_mul_shift32(mu1, mu1))
    sigma2_sq = yy.sub_(_mul_shift32(mu2, mu2)).clamp_min_(0)
    sigma12 = xy.sub_(_mul_shift32(mu1, mu2))
    del mu1, mu2

    log_mask = sigma1_sq >= SIGMA_NSQ
    den_log = _log2_raw(sigma1_sq + SIGMA_NSQ, table).sub_(LOG_BIAS + 2048 * 17)
    num_mask = log_mask & (sigma12 > 0) & (sigma2_sq > 0)
    # Same double operations, same order as libvmaf: g, g * sigma12, the difference, trunc;
    # then g * g and (g * g) * sigma1_sq, trunc. No fused multiply-add (libvmaf's C has none).
    g = sigma12 / (sigma1_sq + 65536 * 1.0e-10)
    sv_sq = torch.sub(sigma2_sq, g * sigma12).trunc_().clamp_min_(0)
    g.clamp_max_(gain_limit)
    numer1 = sv_sq.add_(SIGMA_NSQ)
    numer1_tmp = (g * g).mul_(sigma1_sq).trunc_().add_(numer1)
    # Outside num_mask the arguments may be anything; keep them in the table's domain.
    numer1_tmp = torch.where(num_mask, numer1_tmp, float(SIGMA_NSQ))
    numer1 = torch.where(num_mask, numer1, float(SIGMA_NSQ))
    num_log = _log2_raw(numer1_tmp, table).sub_(_log2_raw(numer1, table))  # biases cancel

    dims = (-2, -1)
    lin = ~log_mask
    return torch.stack(
        [
            torch.where(num_mask, num_log, 0.0).sum(dims),
            torch.where(log_mask, den_log, 0.0).sum(dims),
            torch.where(lin, sigma2_sq, 0.0).sum(dims),
            lin.sum(dims).to(torch.float64),
        ]
    )


def _statistic(
    ref: torch.Tensor,
    dis: torch.Tensor,
    scale: int,
    bpc: int,
    opts: IntegerVifOptions,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``vif_statistic_8/16``: per-frame ``(num, den)`` float32 of one scale.

    Runs block of rows by block of rows (the vertical filter's GEMM blocks) so that the ~40
    elementwise passes of the statistic work on cache-sized tiles.
    """
    taps = VIF_FILTERS[scale]
    n, h, _ = ref.shape
    if scale == 0:
        vp_shift, vp_sq_shift = bpc, 2 * (bpc - 8)
    else:
        vp_shift, vp_sq_shift = 16, 16
    table = log2_table(str(ref.device))
    acc = torch.zeros(4, n, dtype=torch.float64, device=ref.device)
    for _, _, i_lo, i_hi, m in _plan(taps, h, 1, str(ref.device)):
        r, d = ref[:, i_lo:i_hi], dis[:, i_lo:i_hi]
        # The five planes of this block: mu1, mu2, ref^2, dis^2, ref*dis (written in place).
        planes = torch.empty((5 * n, *r.shape[1:]), dtype=r.dtype, device=r.device)
        planes[:n] = r
        planes[n : 2 * n] = d
        torch.mul(r, r, out=planes[2 * n : 3 * n])
        torch.mul(d, d, out=planes[3 * n : 4 * n])
        torch.mul(r, d, out=planes[4 * n :])
        v = torch.matmul(m.T, planes)
        mu_v = shift_round(v[: 2 * n], vp_shift)
        sq_v = shift_round(v[2 * n :], vp_sq_shift, 0 if vp_sq_shift == 0 else None)
        mu = filter_rows(mu_v, taps)  # 24 fractional bits, < 2^32
        sq = shift_round(filter_rows(sq_v, taps), 16)
        acc += _block_terms(mu, sq, n, table, opts.enhn_gain_limit)
    num_log, den_log, num_non_log, den_non_log = acc
    num = num_log / 2048.0 + (den_non_log - (num_non_log / 16384.0) / 65025.0)
    den = den_log / 2048.0 + den_non_log
    return num.to(torch.float32), den.to(torch.float32)


def _subsample(x: torch.Tensor, scale: int, bpc: int) -> torch.Tensor:
    """``subsample_rd_8/16``: low-pass with filter ``scale`` and keep even rows and columns.

    ``x`` is scale ``scale - 1``: the samples for ``scale == 1``, 16-bit means above.
    """
    taps = VIF_FILTERS[scale]
    # Only even rows and columns survive the decimation: compute just those outputs.
    v = shift_round(filter_cols(x, taps, step=2), bpc if scale == 1 else 16)
    return shift_round(filter_rows(v, taps, step=2), 16)


def integer_vif(
    ref: torch.Tensor,
    dis: torch.Tensor,
    bit_depth: int,
    opts: IntegerVifOptions | None = None,
) -> dict[str, torch.Tensor]:
    """libvmaf's ``integer_vif_scale0..3`` of ``(N, H, W)`` integer samples, float64 ``(N,)``.

    ``ref``/``dis`` hold decoded samples of ``bit_depth`` bits (8..16), any integer or float
    dtype, on any device. Not differentiable (fixed-point arithmetic has no gradient).
    """
    opts = opts or IntegerVifOptions()
    if ref.shape != dis.shape or ref.dim() != 3:
        raise ValueError(f"expected two equal (N, H, W) shapes, got {ref.shape} and {dis.shape}")
    if not 8 <= bit_depth <= 16:
        raise ValueError(f"bit depth {bit_depth} is outside 8..16")
    x = ref.to(torch.float64)
    y = dis.to(torch.float64)
    out: dict[str, torch.Tensor] = {}
    for scale in range(4):
        if scale > 0:
            both = _subsample(torch.cat([x, y]), scale, bit_depth)
            x, y = both[: ref.shape[0]], both[ref.shape[0] :]
        if scale == 0 and opts.skip_scale0:
            out[VIF_FEATURES[0]] = torch.zeros(ref.shape[0], dtype=torch.float64)
            continue
        num, den = _statistic(x, y, scale, bit_depth, opts)
        out[VIF_FEATURES[scale]] = (num / den).to(torch.float64).cpu()
    return out
