"""Small generated clips for the VMAF v1.0.16 parity tests (banding, chroma, motion).

Everything is made with numpy and written as .y4m, so clips are identical on every machine:

* ``gradient``: a smooth luma ramp (dark, bright or full range) with slow chroma ramps and a
  drifting low-contrast texture (so SpEED, motion and ADM see structure); the distorted clip
  quantises it coarsely (the staircase banding that CAMBI measures) with weaker texture;
* any clip can be written in 8 or 10 bits, at any (odd) size, in 4:2:0 or 4:4:4 or grey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_CHROMA = {"yuv420p": (1, 1), "yuv444p": (0, 0), "gray": None}


def write_y4m(
    path: str | Path,
    y: np.ndarray,
    u: np.ndarray | None,
    v: np.ndarray | None,
    *,
    bit_depth: int = 8,
    fps: int = 25,
) -> Path:
    """Write planes ``(N, H, W)`` (chroma at its own size or None for grey) as .y4m."""
    n, h, w = y.shape
    if u is None:
        tag = "mono" if bit_depth == 8 else f"mono{bit_depth}"
    else:
        sub = "420" if u.shape[1] < h or u.shape[2] < w else "444"
        tag = sub if bit_depth == 8 else f"{sub}p{bit_depth}"
    dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    out = Path(path)
    with out.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C{tag}\n".encode())
        for i in range(n):
            fh.write(b"FRAME\n")
            for plane in (y, u, v):
                if plane is not None:
                    fh.write(np.ascontiguousarray(plane[i]).astype(dtype).tobytes())
    return out


def gradient_clip(
    width: int,
    height: int,
    frames: int,
    *,
    tone: str = "dark",
    bit_depth: int = 10,
    pix_fmt: str = "yuv420p",
    step: int = 0,
    noise: float = 0.0,
    seed: int = 0,
    motion: float = 1.5,
    tex_gain: float = 1.0,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Planes of a gradient clip; ``step > 0`` quantises luma to multiples of ``step`` codes.

    ``tone``: ``dark`` (codes ~16-60 at 8 bits), ``bright`` (~110-160) or ``full`` (16-235).
    """
    lo, hi = {"dark": (18.0, 60.0), "bright": (110.0, 160.0), "full": (16.0, 235.0)}[tone]
    scale = float(1 << (bit_depth - 8))
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    ramp = lo + (hi - lo) * (0.7 * xx / max(width - 1, 1) + 0.3 * yy / max(height - 1, 1))
    ys, us, vs = [], [], []
    chroma = _CHROMA[pix_fmt]
    for t in range(frames):
        tex = np.sin((xx + motion * t) / 7.0) * np.sin((yy - 0.5 * motion * t) / 11.0)
        tex *= tex_gain * 2.5
        tex *= (xx > width * 0.55) & (yy > height * 0.3)
        luma = (ramp + tex) * scale
        if noise:
            luma = luma + rng.normal(0.0, noise * scale, luma.shape)
        if step:
            luma = np.floor(luma / step) * step
        ys.append(np.clip(np.rint(luma), 0, (1 << bit_depth) - 1))
        if chroma is not None:
            ch, cw = -(-height // (1 << chroma[1])), -(-width // (1 << chroma[0]))
            cy, cx = np.mgrid[0:ch, 0:cw].astype(np.float64)
            ctex = tex_gain * 3.0 * np.sin((cx + 0.5 * motion * t) / 5.0) * np.cos(cy / 6.0)
            u = (128 + 20 * cx / max(cw - 1, 1) - 10 + ctex) * scale
            v = (128 - 15 * cy / max(ch - 1, 1) + 8 + 0.5 * ctex) * scale
            if noise:
                u = u + rng.normal(0.0, 0.5 * noise * scale, u.shape)
                v = v + rng.normal(0.0, 0.5 * noise * scale, v.shape)
            if step:
                u = np.floor(u / step) * step
                v = np.floor(v / step) * step
            us.append(np.clip(np.rint(u), 0, (1 << bit_depth) - 1))
            vs.append(np.clip(np.rint(v), 0, (1 << bit_depth) - 1))
    y = np.stack(ys)
    if chroma is None:
        return y, None, None
    return y, np.stack(us), np.stack(vs)


def gradient_pair(
    out_dir: str | Path,
    name: str,
    width: int,
    height: int,
    frames: int = 6,
    *,
    tone: str = "dark",
    bit_depth: int = 10,
    pix_fmt: str = "yuv420p",
    step: int | None = None,
    fps: int = 25,
) -> tuple[Path, Path]:
    """Write (ref, dist) .y4m: a smooth gradient and a copy with weaker texture, quantised to
    ``step`` codes (default 2 at 10 bits, 1 at 8 bits: a staircase within CAMBI's contrasts)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    q = step if step is not None else (2 if bit_depth == 10 else 1)
    ref = gradient_clip(width, height, frames, tone=tone, bit_depth=bit_depth, pix_fmt=pix_fmt)
    dist = gradient_clip(width, height, frames, tone=tone, bit_depth=bit_depth,
                         pix_fmt=pix_fmt, step=q, tex_gain=0.5, seed=1)
    rp = write_y4m(out / f"{name}_ref.y4m", *ref, bit_depth=bit_depth, fps=fps)
    dp = write_y4m(out / f"{name}_dist.y4m", *dist, bit_depth=bit_depth, fps=fps)
    return rp, dp
