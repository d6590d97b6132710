"""Visual Information Fidelity at four scales, following libvmaf's ``float_vif``.

Inputs are luma frames already offset to libvmaf's float domain (8-bit scale, minus 128).
The per-pixel statistic is libvmaf's "matching_matlab" mode, including its polynomial
``log2`` approximation (``VIF_OPT_FAST_LOG2``), because that approximation is part of the
numbers libvmaf prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .filters import (
    DEFAULT_BLOCK_ROWS,
    DEFAULT_BLOCK_WIDTH,
    correlate_sequential,
    reflect_pad,
    separable_filter,
    vif_gaussian_taps,
)

# libvmaf's log2 polynomial on the mantissa remainder, highest degree first (Horner order).
_LOG2_POLY = (
    -0.012671635276421,
    0.064841182402670,
    -0.157048836463065,
    0.257167726303123,
    -0.353800560300520,
    0.480131410397451,
    -0.721314327952201,
    1.442694803896991,
    0.0,
)

_EPS = 1.0e-10
#: Frames filtered together per block of rows (more frames: fewer, larger tensor ops).
DEFAULT_FRAMES_PER_BLOCK = 1


@dataclass(frozen=True)
class VifOptions:
    """Feature parameters of libvmaf's float VIF (defaults are libvmaf's)."""

    enhn_gain_limit: float = 100.0
    sigma_nsq: float = 2.0
    kernelscale: float = 1.0
    #: Use libvmaf's polynomial log2 (bit-faithful) rather than ``torch.log2`` (|Δ| < 1e-6).
    libvmaf_log2: bool = False
    #: Lower bound applied to the scale 1..3 scores (libvmaf's ``vif_scale{k}_min_val``).
    scale_min_val: float = 0.0


def log2_approx(x: torch.Tensor) -> torch.Tensor:
    """libvmaf's fast log2 for positive ``x``: exponent plus a degree-8 mantissa polynomial.

    Differentiable in ``x`` in every autodiff mode: the exponent is piecewise constant, the
    mantissa is ``x * 2**-e``. (A faster path for tensors without ``requires_grad`` gave
    forward-mode AD, ``jvp``/``jacfwd``, zero derivatives: dual tensors do not require grad.)
    """
    _, exponent = torch.frexp(x.detach())
    # frexp gives x = m * 2**e with m in [0.5, 1); libvmaf uses m in [1, 2).
    exponent = (exponent - 1).to(x.dtype)
    # x * 2**-e is exact. Not torch.ldexp(x, -e) with the int exponent: its backward
    # computes 2**-e in integer arithmetic, so the gradient is 0 for every x >= 2.
    r = x * torch.exp2(-exponent) - 1.0
    # Horner from the leading coefficient (libvmaf starts from 0: 0 * r + c0 == c0 exactly),
    # in place unless reverse mode keeps the intermediates (forward mode carries tangents
    # through in-place ops; the out-of-place form cost 1.7x)
    inplace = not (torch.is_grad_enabled() and x.requires_grad)
    acc = r * _LOG2_POLY[0]
    for coeff in _LOG2_POLY[1:-1]:
        acc = acc.add_(coeff).mul_(r) if inplace else (acc + coeff) * r
    # The last coefficient is 0; adding it changes nothing.
    return acc.add_(exponent) if inplace else acc + exponent


def vif_statistic(
    mu1: torch.Tensor,
    mu2: torch.Tensor,
    xx: torch.Tensor,
    yy: torch.Tensor,
    xy: torch.Tensor,
    opts: VifOptions,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame VIF numerator and denominator sums from local moments, shapes ``(N,)``.

    Equivalent to libvmaf's per-pixel branches, reduced to the ones that can change the
    result: its ``sigma1_sq < eps`` and ``g < 0`` cases are always overridden later (by the
    ``sigma1_sq < sigma_nsq`` and ``sigma12 < 0`` rules), and ``sigma2_sq < eps`` forces a zero
    numerator. Sums are accumulated in float64 (libvmaf accumulates float32 row sums).
    """
    sigma_nsq = opts.sigma_nsq
    sigma_max_inv = float(torch.tensor(sigma_nsq**2 / (255.0 * 255.0), dtype=torch.float32))

    sigma1_sq = (xx - mu1 * mu1).clamp_min_(0.0)
    sigma2_sq = (yy - mu2 * mu2).clamp_min_(0.0)
    sigma12 = xy - mu1 * mu2

    g = sigma12 / (sigma1_sq + _EPS)
    sv_sq = (sigma2_sq - g * sigma12).clamp_min_(_EPS)
    g = g.clamp_max(opts.enhn_gain_limit)
    num_arg = 1.0 + (g * g * sigma1_sq) / (sv_sq + sigma_nsq)
    den_arg = 1.0 + sigma1_sq / sigma_nsq
    if opts.libvmaf_log2:
        # One polynomial evaluation on both arguments halves its many small tensor ops.
        num, den = log2_approx(torch.stack([num_arg, den_arg])).unbind(0)
    else:
        num, den = torch.log2(num_arg), torch.log2(den_arg)

    zero_num = (sigma12 < 0.0) | (sigma2_sq < _EPS)
    num = num.masked_fill(zero_num, 0.0)
    flat = sigma1_sq < sigma_nsq
    num = torch.where(flat, 1.0 - sigma2_sq * sigma_max_inv, num)
    den = den.masked_fill(flat, 1.0)

    return num.sum(dim=(-2, -1), dtype=torch.float64), den.sum(dim=(-2, -1), dtype=torch.float64)


def _scale_sums(
    ref: torch.Tensor,
    dist: torch.Tensor,
    taps: tuple[float, ...],
    opts: VifOptions,
    filter_method: str,
    block_rows: int,
    frames_per_block: int = DEFAULT_FRAMES_PER_BLOCK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """VIF numerator/denominator sums of one scale, computed on blocks of rows.

    Each block filters the five moment images and reduces them right away, so the full-size
    moment images never exist: the working set stays in cache and memory stays small.
    """
    n = ref.shape[0]
    height = ref.shape[-2]
    radius = len(taps) // 2
    if filter_method != "exact":
        stack = torch.cat([ref, dist, ref * ref, dist * dist, ref * dist])
        moments = separable_filter(stack, taps, method=filter_method)
        return vif_statistic(*moments.split(n), opts)
    if min(ref.shape[-2:]) <= radius:
        raise ValueError(f"frame {tuple(ref.shape[-2:])} is too small for VIF at this scale")
    pr = reflect_pad(ref, radius, radius)
    pd = reflect_pad(dist, radius, radius)
    # Same number of samples per block at every scale: coarser scales take taller blocks.
    block_rows = max(block_rows, block_rows * DEFAULT_BLOCK_WIDTH // max(ref.shape[-1], 1))
    group = frames_per_block
    if ref.device.type != "cpu":  # blocking is a CPU-cache device; GPUs want big kernels
        block_rows, group = height, n
    nums, dens = [], []
    for first in range(0, n, group):
        # A few frames at a time: a block's five moment images then fit in the L2 cache.
        frames = slice(first, min(n, first + group))
        count = frames.stop - frames.start
        num = torch.zeros(count, dtype=torch.float64, device=ref.device)
        den = torch.zeros_like(num)
        for start in range(0, height, block_rows):
            rows = slice(start, min(height, start + block_rows) + 2 * radius)
            a, b = pr[frames, rows], pd[frames, rows]
            stack = torch.cat([a, b, a * a, b * b, a * b])
            moments = correlate_sequential(
                correlate_sequential(stack, taps, dim=-2), taps, dim=-1
            )
            block_num, block_den = vif_statistic(*moments.split(count), opts)
            num = num + block_num
            den = den + block_den
        nums.append(num)
        dens.append(den)
    return torch.cat(nums), torch.cat(dens)



def vif_min_size(kernelscale: float = 1.0) -> int:
    """The smallest frame side VIF's four scales take: at scale k the side is ``side >> k``
    (even rows/columns kept) and must exceed that scale's filter radius (the reflection)."""
    side = 1
    while any((side >> k) <= len(vif_gaussian_taps(k, kernelscale)) // 2 for k in range(4)):
        side += 1
    return side


def vif_scales(
    ref: torch.Tensor,
    dist: torch.Tensor,
    opts: VifOptions | None = None,
    *,
    filter_method: str = "exact",
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> dict[str, torch.Tensor]:
    """VIF numerators/denominators and scores at scales 0..3 for ``(N, H, W)`` frames.

    Returns ``vif_num_scale{k}``, ``vif_den_scale{k}`` (float64) and ``vif_scale{k}``
    (their ratio), each of shape ``(N,)``.
    """
    opts = opts or VifOptions()
    out: dict[str, torch.Tensor] = {}
    n = ref.shape[0]
    for scale in range(4):
        taps = vif_gaussian_taps(scale, opts.kernelscale)
        if scale > 0:
            # Low-pass with this scale's kernel, then keep even rows/columns (floor sizes).
            both = torch.cat([ref, dist])
            # A couple of frames per call keeps each block of rows in cache on CPU.
            group = 2 if both.device.type == "cpu" else both.shape[0]
            both = torch.cat(
                [
                    separable_filter(
                        both[i : i + group],
                        taps,
                        method=filter_method,
                        block_rows=block_rows,
                        decimate=True,
                    )
                    for i in range(0, both.shape[0], group)
                ]
            )
            ref, dist = both[:n], both[n:]
        num, den = _scale_sums(ref, dist, taps, opts, filter_method, block_rows)
        out[f"vif_num_scale{scale}"] = num
        out[f"vif_den_scale{scale}"] = den
        ratio = num / den
        # libvmaf bounds scales 1..3 from below (a flat reference can make num negative).
        out[f"vif_scale{scale}"] = ratio if scale == 0 else ratio.clamp_min(opts.scale_min_val)
    return out
