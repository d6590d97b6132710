"""SpEED (spatial entropic differencing) on chroma, as libvmaf's ``speed.c`` (``speed_chroma``).

Per chroma plane (U, V) of reference and distorted, per frame:

1. samples -> float, offset by -128 (10-bit: /4 first); 4:2:0 planes are taken at
   ``floor(W/2) x floor(H/2)`` like libvmaf;
2. optional bilinear prescale (``speed_prescale``, e.g. 0.5 for the 2160p files);
3. Gaussian anti-aliasing (9 taps, sigma 3.6) and decimation by 16, then subtraction of a
   3-tap Gaussian local mean;
4. on the decimated image cropped to whole 5x5 blocks: the 25x25 covariance ``K`` of the
   block-pixel positions, its eigenvalues ``L``, the per-block variance ``S = sum(K^-1 y * y)/25``
   and entropy ``sum_k log2(max(L_k,0) S + sigma_nn) + log2(2 pi e)``;
5. the score: mean over blocks of ``|E_ref log2(1+S_ref) - E_dis log2(1+0.75 S_ref+0.25 S_dis)|``
   (``speed_weight_var_mode`` 5; modes 0-6 are all implemented), blocks where both entropies
   are below the noise-floor entropy count 0.

A singular covariance (any eigenvalue below 1e-6, e.g. a flat plane) gives variance 0 for that
side; when only one side is singular the channel scores 0, and when only one channel is
singular the U/V average takes the other channel (libvmaf's imputation).

Filtering, the per-block arithmetic and the 25x25 linear algebra (:mod:`.speed_linalg`) run in
float32 in libvmaf's order: SpEED's covariances of smooth content are badly conditioned, and a
float64 solver moves the score by up to 0.1 on smooth gradients.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import VideoInputError
from . import speed_linalg
from .filters import correlate_sequential, reflect_pad, separable_filter, vif_gaussian_taps

NUM_SCALES = 4
BLOCK = 5
EIGENVALUE_EPS = 1e-6
_LOG2_2PIE = math.log2(2 * math.pi * math.e)


@dataclass(frozen=True)
class SpeedOptions:
    """SpEED options (libvmaf names in comments); defaults are libvmaf's."""

    kernelscale: float = 1.0  # speed_kernelscale
    prescale: float = 1.0  # speed_prescale
    prescale_method: str = "nearest"  # speed_prescale_method
    sigma_nn: float = 0.29  # speed_sigma_nn
    nn_floor: float = 0.0  # speed_nn_floor
    max_val: float = 1000.0  # speed_max_val
    weight_var_mode: int = 0  # speed_weight_var_mode

    @classmethod
    def from_libvmaf(cls, opts: dict[str, object]) -> SpeedOptions:
        """Options from a model's ``feature_opts_dicts`` entry; unknown keys are an error."""
        kw: dict[str, object] = {}
        for key, value in opts.items():
            name = key.removeprefix("speed_")
            if not key.startswith("speed_") or name not in cls.__dataclass_fields__:
                raise ValueError(f"SpEED option {key!r} is not supported")
            kw[name] = type(getattr(cls, name))(value)  # type: ignore[operator]
        out = cls(**kw)  # type: ignore[arg-type]
        if abs(out.kernelscale - 1.0) > 1e-3:
            raise ValueError("SpEED speed_kernelscale other than 1.0 is not supported")
        if abs(out.prescale - 1.0) >= 1e-3 and out.prescale_method != "bilinear":
            raise ValueError(f"SpEED prescale method {out.prescale_method!r} is not supported")
        return out


def speed_dimensions(width: int, height: int, opts: SpeedOptions) -> tuple[int, int, int, int]:
    """``(scaled_w, scaled_h, blocks_w, blocks_h)`` of one plane, as libvmaf derives them."""
    sw = int(width * opts.prescale + 0.5)
    sh = int(height * opts.prescale + 0.5)
    return sw, sh, (sw >> NUM_SCALES) // BLOCK, (sh >> NUM_SCALES) // BLOCK


def speed_min_plane_size(opts: SpeedOptions) -> int:
    """Smallest plane side (before prescale) that gives one 5x5 block after /16."""
    side = BLOCK << NUM_SCALES
    return math.ceil((side - 0.5) / opts.prescale)


def check_speed_size(width: int, height: int, opts: SpeedOptions, *, model: str = "",
                     plane: str = "chroma") -> None:
    """Raise VideoInputError where libvmaf's SpEED has no block (it errors or crashes there)."""
    _, _, bw, bh = speed_dimensions(width, height, opts)
    if bw == 0 or bh == 0:
        where = f"model {model}: " if model else ""
        side = speed_min_plane_size(opts)
        raise VideoInputError(
            f"{where}feature 'speed_chroma' needs {plane} planes of at least {side}x{side} "
            f"samples (prescale {opts.prescale:g}); got {width}x{height}"
        )


@functools.lru_cache(maxsize=8)
def _antialias_taps(kernelscale: float = 1.0) -> tuple[float, ...]:
    """libvmaf's ``speed_get_antialias_filter``: scale-1 width, sigma ``sqrt(4) * width / 5``."""
    f32 = np.float32
    width = 9 if kernelscale == 1.0 else int(kernelscale * 9) | 1
    stdev = float(f32(math.sqrt(NUM_SCALES) * width / float(f32(5.0))))
    half = (width - 1) // 2
    den = f32(1.0 / (stdev * math.sqrt(2.0 * math.pi)))
    raw, total = [], f32(0.0)
    for i in range(width):
        x = float(i - half)
        value = f32(f32(math.exp(-0.5 * x / stdev * x / stdev)) / den)
        raw.append(value)
        total = f32(total + value)
    return tuple(float(f32(v / total)) for v in raw)


def _bilinear(x: torch.Tensor, out_w: int, out_h: int) -> torch.Tensor:
    """libvmaf's float32 bilinear scaler (``vif_scale_frame_bilinear_s``) on ``(N, H, W)``."""
    f32 = np.float32
    _, h, w = x.shape
    if (w, h) == (out_w, out_h):
        return x

    def table(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ratio = float(f32(f32(src) / f32(dst)))
        pos = np.array([f32((i + 0.5) * ratio - 0.5) for i in range(dst)], dtype=np.float32)
        lo = np.floor(pos).astype(np.float32)
        hi = np.ceil(pos).astype(np.float32)

        def mirror(i: np.ndarray) -> np.ndarray:
            right = f32(src - 1)
            return np.where(i < 0, -i, np.where(i > right, 2 * right - i, i)).astype(np.int64)

        i1, i2 = mirror(lo), mirror(hi)
        frac = (pos - i1.astype(np.float32)).astype(np.float32)
        return i1, i2, frac

    x1, x2, dx = table(w, out_w)
    y1, y2, dy = table(h, out_h)
    dev = x.device
    dx_t = torch.from_numpy(dx).to(dev)
    dy_t = torch.from_numpy(dy).to(dev)[:, None]
    r1 = x[:, torch.from_numpy(y1).to(dev)]
    r2 = x[:, torch.from_numpy(y2).to(dev)]
    c1, c2 = torch.from_numpy(x1).to(dev), torch.from_numpy(x2).to(dev)
    one = torch.ones((), dtype=torch.float32, device=dev)
    a = (one - dy_t) * (one - dx_t) * r1[..., c1]
    a = a + (one - dy_t) * dx_t * r1[..., c2]
    a = a + dy_t * (one - dx_t) * r2[..., c1]
    return a + dy_t * dx_t * r2[..., c2]


def speed_preprocess(plane: torch.Tensor, opts: SpeedOptions) -> torch.Tensor:
    """Float plane ``(N, H, W)`` (VMAF domain) -> locally mean-subtracted ``(N, H/16, W/16)``."""
    _, h, w = plane.shape
    sw, sh, _, _ = speed_dimensions(w, h, opts)
    x = plane
    if abs(opts.prescale - 1.0) >= 1e-3:
        x = _bilinear(x, sw, sh)
    taps = _antialias_taps(opts.kernelscale)
    radius = len(taps) // 2
    padded = reflect_pad(x, radius, radius)
    oh, ow = sh >> NUM_SCALES, sw >> NUM_SCALES
    step = 1 << NUM_SCALES
    # Only every 16th output of the anti-aliasing filter is kept: compute just those, with the
    # taps summed in libvmaf's order (vertical pass, then horizontal).
    rows = torch.arange(oh, device=x.device) * step
    vert = torch.stack([padded[:, rows + k] for k in range(len(taps))], dim=1)
    vert = correlate_sequential(vert, taps, dim=1).squeeze(1)  # (N, oh, W + 2r)
    cols = torch.arange(ow, device=x.device) * step
    horiz = torch.stack([vert[..., cols + k] for k in range(len(taps))], dim=-1)
    small = correlate_sequential(horiz, taps, dim=-1).squeeze(-1)  # (N, oh, ow)
    local_mean = separable_filter(small, vif_gaussian_taps(NUM_SCALES, opts.kernelscale))
    return small - local_mean


def _est_params(d: np.ndarray, sigma_nn: np.float32) -> tuple[np.ndarray, np.ndarray, bool]:
    """Entropies and variances per 5x5 block of one decimated plane (float32), and whether the
    covariance was singular."""
    f32 = np.float32
    bh, bw = d.shape[0] // BLOCK, d.shape[1] // BLOCK
    th, tw = bh * BLOCK, bw * BLOCK
    sub_h, sub_w = th - BLOCK + 1, tw - BLOCK + 1
    n_sub = sub_w * sub_h
    shifts = [(r, c) for r in range(BLOCK) for c in range(BLOCK)]
    subs = [d[r : r + sub_h, c : c + sub_w] for r, c in shifts]
    # Means: float32 running sums in raster order, divided in float32.
    means = [f32(np.cumsum(s.ravel(), dtype=np.float32)[-1] / f32(n_sub)) for s in subs]
    centred = np.stack([s.astype(np.float64).ravel() - float(m) for s, m in zip(subs, means,
                                                                              strict=True)])
    cov = ((centred @ centred.T) / n_sub).astype(np.float32)
    eig = speed_linalg.eigenvalues(cov)
    # Block pixels as columns: row k = position (r, c) of the 5x5 block, column = block index.
    blocks = d[:th, :tw].reshape(bh, BLOCK, bw, BLOCK).transpose(1, 3, 0, 2).reshape(25, -1)
    singular = bool((eig < EIGENVALUE_EPS).any())
    sol = None if singular else speed_linalg.solve_linear_system(cov, blocks)
    if sol is None:
        singular = True
        sol = np.zeros_like(blocks, dtype=np.float32)
    prod = (sol * blocks) / f32(25.0)
    s = prod[0].copy()
    for k in range(1, 25):
        s = s + prod[k]
    lam = np.maximum(eig.astype(np.float32), f32(0.0))
    ent = np.zeros_like(s)
    for k in range(25):
        # a near-singular covariance that passed the eigenvalue test can give a negative
        # variance: NaN here, as in libvmaf, whose final clip then reads it as the maximum
        with np.errstate(invalid="ignore"):
            term = np.log2((lam[k] * s + sigma_nn).astype(np.float64)) + _LOG2_2PIE
        ent = (ent.astype(np.float64) + term).astype(np.float32)
    return ent, s, singular


def _weights(mode: int, s_ref: np.ndarray, s_dis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """libvmaf's variance weights ``log2(1 + variance)`` per block, in its C arithmetic: the
    variances are float, so ``1 + v`` and ``v_ref + v_dis`` are rounded to float32, and the
    halving and the 0.75/0.25 mixes are double. Rounding ``1 + v`` matters: with equal chroma
    planes libvmaf's SpEED is a few 1e-6 where double arithmetic gives exactly 0, which turns
    on the model's chroma correction (3d0h read 80.7 where libvmaf reads 86.9)."""
    f32, f64 = np.float32, np.float64
    r32, d32 = s_ref.astype(f32), s_dis.astype(f32)
    r, d = r32.astype(f64), d32.astype(f64)
    one_r, one_d = (f32(1) + r32).astype(f64), (f32(1) + d32).astype(f64)  # float sums
    half = 1.0 + (r32 + d32).astype(f64) / 2.0  # float sum, double halving
    table = {
        0: (one_r, one_d), 1: (one_r, one_r), 2: (one_d, one_d), 3: (half, half),
        4: (one_r, half), 5: (one_r, 1.0 + (0.75 * r + 0.25 * d)),
        6: (one_r, 1.0 + (0.25 * r + 0.75 * d)),
    }
    if mode not in table:
        raise ValueError(f"speed_weight_var_mode {mode} is not supported (0-6)")
    a, b = table[mode]
    return np.log2(a), np.log2(b)


def speed_score_plane(ref: np.ndarray, dis: np.ndarray, opts: SpeedOptions) -> tuple[float, bool]:
    """SpEED of one decimated plane pair ``(h, w)`` float32: ``(score, failed)``."""
    f32 = np.float32
    sigma = f32(opts.sigma_nn)
    e_ref, s_ref, bad_ref = _est_params(ref, sigma)
    e_dis, s_dis, bad_dis = _est_params(dis, sigma)
    if bad_ref != bad_dis:
        return 0.0, True
    floor = f32(f32(1.0 + f32(opts.nn_floor)) * sigma)
    base = 25 * (math.log2(float(floor)) + _LOG2_2PIE)
    w_ref, w_dis = _weights(opts.weight_var_mode, s_ref, s_dis)
    sp_ref = (e_ref.astype(np.float64) * w_ref).astype(np.float32)
    sp_dis = (e_dis.astype(np.float64) * w_dis).astype(np.float32)
    diff = np.abs(sp_ref - sp_dis)
    diff[(e_ref < base) & (e_dis < base)] = f32(0.0)
    total = np.cumsum(diff, dtype=np.float32)[-1]
    return float(f32(total / f32(diff.size))), bad_ref or bad_dis


def speed_chroma(
    ref_u: torch.Tensor, ref_v: torch.Tensor, dis_u: torch.Tensor, dis_v: torch.Tensor,
    opts: SpeedOptions,
) -> dict[str, torch.Tensor]:
    """``speed_chroma_{u,v,uv}`` per frame from float chroma planes ``(N, h, w)`` (VMAF domain,
    already cropped to libvmaf's plane size), clipped to ``max_val`` as libvmaf prints them."""
    n = ref_u.shape[0]
    pre = {k: speed_preprocess(t.to(torch.float32), opts).cpu().numpy()
           for k, t in (("ru", ref_u), ("rv", ref_v), ("du", dis_u), ("dv", dis_v))}
    out: dict[str, list[float]] = {"speed_chroma_u": [], "speed_chroma_v": [],
                                   "speed_chroma_uv": []}
    for i in range(n):
        su, bad_u = speed_score_plane(pre["ru"][i], pre["du"][i], opts)
        sv, bad_v = speed_score_plane(pre["rv"][i], pre["dv"][i], opts)
        if bad_u and not bad_v:
            suv = sv
        elif bad_v and not bad_u:
            suv = su
        else:
            suv = float(np.float32((np.float32(su) + np.float32(sv)) / np.float32(2.0)))
        # libvmaf's MIN(a, b) is a < b ? a : b: a NaN score becomes max_val (45), where
        # Python's min() kept the NaN and made the frame's VMAF NaN (libvmaf: 61.47)
        for name, score in (("u", su), ("v", sv), ("uv", suv)):
            out[f"speed_chroma_{name}"].append(score if score < opts.max_val else opts.max_val)
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}


def as_plane_tensor(plane: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A decoded plane as a tensor, on the device it is already on (CUDA tensors stay there);
    NumPy views with negative strides (``np.flip``), which torch cannot view, copied."""
    if isinstance(plane, torch.Tensor):
        return plane
    array = np.asarray(plane)
    return torch.as_tensor(array if all(s >= 0 for s in array.strides)
                           else np.ascontiguousarray(array))


def chroma_planes(
    u: np.ndarray | torch.Tensor, v: np.ndarray | torch.Tensor, luma_w: int, luma_h: int,
    bit_depth: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded chroma planes -> libvmaf's SpEED input: floor-sized crop, float, offset -128.

    4:2:0 and 4:2:2 planes are cropped to ``floor(W/2)`` (and ``floor(H/2)``) as libvmaf sizes
    its buffers; samples of b > 8 bits are divided by 2^(b-8) first.
    """
    ut, vt = as_plane_tensor(u), as_plane_tensor(v)
    ch, cw = ut.shape[-2:]
    w = luma_w // 2 if cw < luma_w else luma_w
    h = luma_h // 2 if ch < luma_h else luma_h

    def conv(t: torch.Tensor) -> torch.Tensor:
        t = t[..., :h, :w].to(torch.float32)
        if bit_depth != 8:
            t = t / float(1 << (bit_depth - 8))
        return t - 128.0

    return conv(ut), conv(vt)
