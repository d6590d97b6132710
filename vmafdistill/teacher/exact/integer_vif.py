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

from .backend import use_compiled_kernels
from .intfilter import _plan, filter_cols, filter_rows, round_half_up_

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


@functools.lru_cache(maxsize=8)
def _log2_bits_table(device: str) -> torch.Tensor:
    """libvmaf's ``log2_32``/``log2_64`` indexed by the float64 bit pattern of the argument.

    For an integer ``x = 1.f 2^E`` in ``[2^17, 2^53)`` (as float64), libvmaf takes the 16
    leading bits (``lead``: the implicit 1 and the top 15 fraction bits, ``bits >> 37`` without
    the exponent) and adds 2048 for each of the ``E - 15`` bits below them:
    ``log2_table[lead] + 2048 (E - 15)``. Entry ``(bits >> 37) - LOG_INDEX_BASE`` of this table
    holds exactly that (36 exponents x 32768 leading-bit patterns), so the logarithm is one
    shift, one subtraction and one gather.
    """
    base = log2_table("cpu")[32768:65536]  # lead = 32768 + top 15 fraction bits
    exps = torch.arange(LOG_MIN_EXP, 53, dtype=torch.float64)
    return (base[None, :] + 2048.0 * (exps[:, None] - 15)).reshape(-1).to(device)


#: Smallest exponent :func:`_log2_bits_table` covers: every argument is >= ``SIGMA_NSQ`` = 2^17.
LOG_MIN_EXP = 17
#: ``bits >> 37`` of ``2^LOG_MIN_EXP``: biased exponent and 15 fraction bits (all zero).
LOG_INDEX_BASE = (1023 + LOG_MIN_EXP) << 15


#: libvmaf's ``log2_64(2 * sigma_nsq)`` (= 2^18: ``log2_table[32768] + 2048 * 3``).
_LOG2_SKIPPED = float(_log2_bits_table("cpu")[(18 - LOG_MIN_EXP) << 15])


def shape_problem(ref_shape: tuple[int, ...], dis_shape: tuple[int, ...]) -> str:
    """Why two frame stacks are not one (N, H, W) pair of luma planes (two equal shapes of
    another rank read "expected two equal shapes, got X and X")."""
    if tuple(ref_shape) != tuple(dis_shape):
        return (f"expected two equal (N, H, W) shapes, got {tuple(ref_shape)} and "
                f"{tuple(dis_shape)}")
    return (f"expected (N, H, W) luma frames, got shape {tuple(ref_shape)} (one frame: add an "
            "axis, frame[None]; colour frames: pass the luma (Y) plane)")

def _log2(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """libvmaf's fixed-point ``log2`` of contiguous float64 integers in ``[2^17, 2^53)``.

    Other values are outside the table (an index error, or garbage): callers keep every
    argument in range.
    """
    idx = (x.view(torch.int64) >> 37).sub_(LOG_INDEX_BASE)
    return table.index_select(0, idx.view(-1)).view(x.shape)


def _sq_shift32(uh: torch.Tensor, ul: torch.Tensor) -> torch.Tensor:
    """``(a * a + 2^31) >> 32`` of an integer ``0 <= a < 2^32`` given as ``a / 2^16 = uh + ul``.

    ``uh = floor(a / 2^16)``, ``ul`` its 16 fractional bits. ``(a/2^16)^2 = uh^2 + (2 uh +
    ul) ul``: ``(2 uh + ul) ul + 0.5`` is below 2^17 with 32 fractional bits (49 significant
    bits, exact in float64), its floor is the integer carry, and ``uh^2 < 2^32`` is exact.
    """
    t = torch.add(ul, uh, alpha=2.0)
    return t.mul_(ul).add_(0.5).floor_().addcmul_(uh, uh)


def _mul_shift32(
    uh1: torch.Tensor, ul1: torch.Tensor, u2: torch.Tensor, uh2: torch.Tensor, ul2: torch.Tensor
) -> torch.Tensor:
    """``(a * b + 2^31) >> 32`` for integers ``0 <= a, b < 2^32`` given as ``a/2^16 = uh1 +
    ul1``, ``b/2^16 = u2 = uh2 + ul2`` (as :func:`_sq_shift32`): ``ab/2^32 = uh1 uh2 + ul1 u2 +
    uh1 ul2``, where ``ul1 u2 + uh1 ul2 + 0.5 < 2^17`` has 32 fractional bits (exact)."""
    t = torch.mul(ul1, u2)
    return t.addcmul_(uh1, ul2).add_(0.5).floor_().addcmul_(uh1, uh2)


def _indicator(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """1.0 where integer-valued ``x >= threshold`` (an integer), else 0.0: one clamp, no mask.

    (Boolean masks and ``torch.where`` cost ~10x an arithmetic pass on CPU.)
    """
    return torch.sub(x, threshold - 1.0).clamp_(0.0, 1.0)


def _block_terms(
    u: torch.Tensor, sq: torch.Tensor, n: int, table: torch.Tensor, gain_limit: float
) -> torch.Tensor:
    """Per-frame ``(num_log, den_log, num_non_log, den_non_log)`` sums of a block of rows.

    ``u``: horizontally filtered ``mu1, mu2`` divided by 2^16 (2n planes; the means carry 24
    fractional bits, so ``u`` holds integers below 2^32 scaled by 2^-16, exactly);
    ``sq``: the shifted ``xx, yy, xy`` (3n planes, overwritten). Returns ``(4, n)`` float64
    integer sums (sums of integers below 2^53 in any order: exact).

    libvmaf, per pixel: ``sigma1_sq >= sigma_nsq`` pixels add ``log2(sigma_nsq + sigma1_sq) -
    2048 * 17`` to den_log and, where also ``sigma12 > 0`` and ``sigma2_sq > 0``, the log
    ratio to num_log; the others add ``sigma2_sq`` to num_non_log and 1 to den_non_log. Here
    every sum runs over all pixels with arguments kept in the table's range, and the
    contributions of the pixels libvmaf skips are either exactly 0 (both log arguments set to
    ``sigma_nsq``) or a known constant per skipped pixel (subtracted at the end).
    """
    uh = torch.floor(u)
    ul = torch.sub(u, uh)
    uh1, uh2, ul1, ul2, u2 = uh[:n], uh[n:], ul[:n], ul[n:], u[n:]
    xx, yy, xy = sq[:n], sq[n : 2 * n], sq[2 * n :]
    sigma1_sq = xx.sub_(_sq_shift32(uh1, ul1))
    sigma2_sq = yy.sub_(_sq_shift32(uh2, ul2)).clamp_min_(0)
    sigma12 = xy.sub_(_mul_shift32(uh1, ul1, u2, uh2, ul2))
    del uh, ul, uh1, uh2, ul1, ul2, u2

    dims = (-2, -1)
    # log_mask = sigma1_sq >= sigma_nsq (as 1.0/0.0); lin = 1 - log_mask.
    log_f = _indicator(sigma1_sq, SIGMA_NSQ)
    lin = torch.rsub(log_f, 1.0)
    den_non_log = lin.sum(dims)
    num_non_log = lin.mul_(sigma2_sq).sum(dims)
    del lin
    # den_log over every pixel with the argument clamped to >= 2 sigma_nsq: each skipped pixel
    # then adds log2(2 sigma_nsq) - 2048 * 17, subtracted below.
    den_arg = torch.clamp_min(sigma1_sq, SIGMA_NSQ).add_(SIGMA_NSQ)
    den_log = _log2(den_arg, table).sum(dims)
    del den_arg
    # num_mask = log_mask & (sigma12 > 0) & (sigma2_sq > 0), as 1.0/0.0 (integer values).
    num_f = _indicator(sigma12, 1).mul_(_indicator(sigma2_sq, 1)).mul_(log_f)
    del log_f
    # Same double operations, same order as libvmaf: g, g * sigma12, the difference, trunc;
    # then g * g and (g * g) * sigma1_sq, trunc. No fused multiply-add (libvmaf's C has none).
    # floor for trunc: where num_mask holds, (g * g) * sigma1_sq >= 0, and sv_sq is clamped to
    # >= 0 right after (trunc and floor agree on >= 0 and both clamp negatives to 0).
    g = torch.add(sigma1_sq, 65536 * 1.0e-10)
    torch.div(sigma12, g, out=g)
    sv_sq = torch.mul(g, sigma12)
    torch.sub(sigma2_sq, sv_sq, out=sv_sq).floor_().clamp_min_(0)
    g.clamp_max_(gain_limit)
    numer1 = sv_sq.add_(SIGMA_NSQ)
    numer1_tmp = g.mul_(g).mul_(sigma1_sq).floor_().add_(numer1)
    # Outside num_mask both arguments become sigma_nsq: their log ratio is exactly 0. Every
    # value there is finite (sigma1_sq + 6.5536e-6 is never 0 for an integer sigma1_sq), so
    # sigma_nsq + 0 * (x - sigma_nsq) is sigma_nsq; inside, the values are integers < 2^53.
    numer1_tmp.sub_(SIGMA_NSQ).mul_(num_f).add_(SIGMA_NSQ)
    numer1.sub_(SIGMA_NSQ).mul_(num_f).add_(SIGMA_NSQ)
    del num_f
    num_log = _log2(numer1_tmp, table).sub_(_log2(numer1, table)).sum(dims)
    # sum over libvmaf's pixels of (log - 2048 * 17) = all pixels' logs - the skipped pixels'
    # log2(2 sigma_nsq) - 2048 * 17 per counted pixel.
    n_pix = sq.shape[-2] * sq.shape[-1]
    den_log = den_log.sub_(den_non_log * (_LOG2_SKIPPED - 2048 * 17)).sub_(2048 * 17 * n_pix)
    return torch.stack([num_log, den_log, num_non_log, den_non_log])


def _statistic(
    ref: torch.Tensor,
    dis: torch.Tensor,
    scale: int,
    bpc: int,
    opts: IntegerVifOptions,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``vif_statistic_8/16``: per-frame ``(num, den)`` float32 of one scale.

    Runs block of rows by block of rows (the vertical filter's GEMM blocks) so that the ~40
    elementwise passes of the statistic work on cache-sized tiles. Rounding shifts are folded
    into the filters' taps (see :mod:`.intfilter`): one ``add_(0.5).floor_()`` each.
    """
    taps = VIF_FILTERS[scale]
    n, h, _ = ref.shape
    if scale == 0:
        vp_shift, vp_sq_shift = bpc, 2 * (bpc - 8)
    else:
        vp_shift, vp_sq_shift = 16, 16
    dev = str(ref.device)
    table = _log2_bits_table(dev)
    acc = torch.zeros(4, n, dtype=torch.float64, device=ref.device)
    plans_mu = _plan(taps, h, 1, dev, vp_shift)
    plans_sq = _plan(taps, h, 1, dev, vp_sq_shift)
    for (_, _, i_lo, i_hi, m_mu), (*_, m_sq) in zip(plans_mu, plans_sq, strict=True):
        r, d = ref[:, i_lo:i_hi], dis[:, i_lo:i_hi]
        # The five planes of this block: mu1, mu2, ref^2, dis^2, ref*dis (written in place).
        planes = torch.empty((5 * n, *r.shape[1:]), dtype=r.dtype, device=r.device)
        planes[:n] = r
        planes[n : 2 * n] = d
        torch.mul(r, r, out=planes[2 * n : 3 * n])
        torch.mul(d, d, out=planes[3 * n : 4 * n])
        torch.mul(r, d, out=planes[4 * n :])
        mu_v = round_half_up_(torch.matmul(m_mu.T, planes[: 2 * n]))
        sq_v = torch.matmul(m_sq.T, planes[2 * n :])
        if vp_sq_shift:
            round_half_up_(sq_v)
        del planes
        u = filter_rows(mu_v, taps, shift=16)  # mu / 2^16: 24 fractional bits, < 2^32
        sq = round_half_up_(filter_rows(sq_v, taps, shift=16))
        acc += _block_terms(u, sq, n, table, opts.enhn_gain_limit)
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
    v = round_half_up_(filter_cols(x, taps, step=2, shift=bpc if scale == 1 else 16))
    return round_half_up_(filter_rows(v, taps, step=2, shift=16))


def integer_vif(
    ref: torch.Tensor,
    dis: torch.Tensor,
    bit_depth: int,
    opts: IntegerVifOptions | None = None,
) -> dict[str, torch.Tensor]:
    """libvmaf's ``integer_vif_scale0..3`` of ``(N, H, W)`` integer samples, float64 ``(N,)``.

    ``ref``/``dis`` hold decoded samples of ``bit_depth`` bits (8..16), any integer or float
    dtype, on any device. Not differentiable (fixed-point arithmetic has no gradient). CPU
    tensors go through the compiled kernels of :mod:`.cpu_kernels` (same numbers; see
    :mod:`.backend`).
    """
    opts = opts or IntegerVifOptions()
    if ref.shape != dis.shape or ref.dim() != 3:
        raise ValueError(shape_problem(ref.shape, dis.shape))
    if not 8 <= bit_depth <= 16:
        raise ValueError(f"bit depth {bit_depth} is outside 8..16")
    if use_compiled_kernels(ref):
        from .cpu_kernels import integer_vif_compiled  # numba: imported when first needed

        return integer_vif_compiled(ref, dis, bit_depth, opts)
    x = ref.to(torch.float64)
    y = dis.to(torch.float64)
    out: dict[str, torch.Tensor] = {}
    for scale in range(4):
        if scale > 0:  # (one call each: concatenating them first costs a full copy)
            x, y = _subsample(x, scale, bit_depth), _subsample(y, scale, bit_depth)
        if scale == 0 and opts.skip_scale0:
            out[VIF_FEATURES[0]] = torch.zeros(ref.shape[0], dtype=torch.float64)
            continue
        num, den = _statistic(x, y, scale, bit_depth, opts)
        out[VIF_FEATURES[scale]] = (num / den).to(torch.float64).cpu()
    return out
