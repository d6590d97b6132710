"""CAMBI (Contrast Aware Multiscale Banding Index) in PyTorch, as libvmaf's ``cambi.c``.

CAMBI is a no-reference banding score of the distorted luma. Per frame:

1. convert to 10 bits (``<< 2`` for 8-bit input) and, for input below 10 bits, apply the
   2x2 anti-dithering average (right/bottom edges average two samples);
2. spatial mask: a pixel counts as "flat" when it equals its right and bottom neighbours
   (edges count as equal); the mask is 1 where the 7x7 zero-padded sum of flat pixels exceeds
   a size-dependent index;
3. five scales (the high-resolution speed-up adds one 2x decimation first, for frames of at
   least 1920x1080 pixels when ``cambi_high_res_speedup`` is 1080): decimate image and mask by
   2 (scales > 0), 3x3 mode filter, then per masked pixel the *c-value*
   ``max_d w_d * p0 * max(p(+d), p(-d)) / (p0 + max(...))`` where ``p(k)`` counts the masked
   pixels of value ``v + k`` in the ``window x window`` neighbourhood (clipped at the borders)
   and only contrasts below the BT.1886 visibility threshold, above the visible-luminance
   threshold, count;
4. per scale the mean of the top 60 % c-values, weighted 16, 8, 4, 2, 1 and divided by the
   window area; the result is clipped to ``cambi_max_val``.

Integer steps are exact; c-values are formed in float32 with libvmaf's reciprocal table, so
results match libvmaf up to the order of a double-precision sum.

The window counts are computed without a per-pixel loop: for each chunk of the grey levels
present among masked pixels, an indicator image per level is box-summed with cumulative sums
and the nine counts each pixel needs are gathered from it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import VideoInputError

NUM_SCALES = 5
SCALE_WEIGHTS = (16, 8, 4, 2, 1)
CONTRAST_WEIGHTS = (1, 2, 3, 4, 4, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8,
                    8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9)
MASK_FILTER_SIZE = 7
#: libvmaf refuses frames whose width and height are both below this.
CAMBI_MIN_WIDTH_HEIGHT = 216
_RECIPROCAL_LUT_SIZE = 4226
_BT1886_GAMMA = 2.4
_BT1886_LW = 300.0
_BT1886_LB = 0.01
#: Levels box-summed at once (memory: chunk x H x W int32).
_LEVEL_CHUNK = 16


@dataclass(frozen=True)
class CambiOptions:
    """CAMBI options (libvmaf names in comments); defaults are libvmaf's."""

    max_val: float = 1000.0  # cambi_max_val
    vis_lum_threshold: float = 0.0  # cambi_vis_lum_threshold
    high_res_speedup: int = 0  # cambi_high_res_speedup: 0, 1080, 1440 or 2160
    window_size: int = 65  # window_size
    topk: float = 0.6  # cambi_topk / topk
    tvi_threshold: float = 0.019  # tvi_threshold
    max_log_contrast: int = 2  # max_log_contrast

    @classmethod
    def from_libvmaf(cls, opts: dict[str, object]) -> CambiOptions:
        """Options from a model's ``feature_opts_dicts`` entry; unknown keys are an error."""
        keys = {
            "cambi_max_val": "max_val",
            "cambi_vis_lum_threshold": "vis_lum_threshold",
            "cambi_high_res_speedup": "high_res_speedup",
            "window_size": "window_size",
            "cambi_topk": "topk",
            "topk": "topk",
            "tvi_threshold": "tvi_threshold",
            "max_log_contrast": "max_log_contrast",
        }
        kw: dict[str, object] = {}
        for key, value in opts.items():
            if key not in keys:
                raise ValueError(f"CAMBI option {key!r} is not supported")
            field_name = keys[key]
            default = getattr(cls, field_name)
            kw[field_name] = type(default)(value)  # type: ignore[operator]
            low, high = _LIBVMAF_OPTION_RANGES.get(field_name, (kw[field_name], kw[field_name]))
            if not low <= kw[field_name] <= high:  # type: ignore[operator]
                # libvmaf refuses the model; a window of 200 was scored here
                raise ValueError(f"CAMBI option {key}={value} is outside libvmaf's range "
                                 f"{low:g}-{high:g}")
        return cls(**kw)  # type: ignore[arg-type]


#: libvmaf's bounds on the CAMBI options it parses (cambi.c's option table).
_LIBVMAF_OPTION_RANGES: dict[str, tuple[float, float]] = {
    "window_size": (15, 127),
    "topk": (0.0001, 1.0),
    "tvi_threshold": (0.0001, 1.0),
    "max_log_contrast": (0, 5),
}


# ---------------------------------------------------------------------------------------------
# Visibility tables (BT.1886, 10-bit limited range), exactly as libvmaf derives them
# ---------------------------------------------------------------------------------------------

_FOOT, _HEAD = 64, 940


def _bt1886_luminance(sample: int) -> float:
    v = (min(max(sample, _FOOT), _HEAD) - _FOOT) / (_HEAD - _FOOT)
    lw, lb, g = _BT1886_LW, _BT1886_LB, _BT1886_GAMMA
    a = math.pow(math.pow(lw, 1.0 / g) - math.pow(lb, 1.0 / g), g)
    b = math.pow(lb, 1.0 / g) / (math.pow(lw, 1.0 / g) - math.pow(lb, 1.0 / g))
    return a * math.pow(max(v + b, 0.0), g)


def _tvi_condition(sample: int, diff: int, threshold: float) -> bool:
    mean = _bt1886_luminance(sample)
    return _bt1886_luminance(sample + diff) - mean > threshold * mean


def _tvi_bisect(sample: int, diff: int, threshold: float) -> int:
    """-1: too big, 0: correct, 1: too small (libvmaf's CambiTVIBisectFlag)."""
    if not _tvi_condition(sample, diff, threshold):
        return -1
    if _tvi_condition(sample + 1, diff, threshold):
        return 1
    return 0


def _tvi_for_diff(diff: int, threshold: float) -> int:
    foot, head = _FOOT, _HEAD - diff - 1
    flag = _tvi_bisect(foot, diff, threshold)
    if flag == -1:
        return 0
    if flag == 0:
        return foot
    flag = _tvi_bisect(head, diff, threshold)
    if flag == 1:
        return (1 << 10) - 1
    if flag == 0:
        return head
    while True:
        mid = foot + (head - foot) // 2
        flag = _tvi_bisect(mid, diff, threshold)
        if flag == -1:
            head = mid
        elif flag == 1:
            foot = mid
        else:
            return mid


@functools.lru_cache(maxsize=16)
def cambi_tables(tvi_threshold: float, vis_lum_threshold: float,
                 max_log_contrast: int) -> tuple[tuple[int, ...], int]:
    """``(tvi_for_diff, vlt_luma)``: per-contrast luma limits (offset by ``num_diffs``) and the
    smallest 10-bit luma above the visible-luminance threshold (0 when that is the foot)."""
    num_diffs = 1 << max_log_contrast
    tvi = tuple(_tvi_for_diff(d + 1, tvi_threshold) + num_diffs for d in range(num_diffs))
    sample = _FOOT
    while _bt1886_luminance(sample) < vis_lum_threshold:
        sample += 1
    return tvi, (0 if sample == _FOOT else sample)


@functools.lru_cache(maxsize=1)
def _reciprocal_lut() -> torch.Tensor:
    """libvmaf's table: ``1/i`` printed to 9 significant digits, read as float32."""
    values = [0.0] + [float(f"{1.0 / i:.9g}") for i in range(1, _RECIPROCAL_LUT_SIZE)]
    return torch.tensor(np.asarray(values, dtype=np.float32))


def cambi_window_size(width: int, height: int, window: int = 65, speedup: bool = False) -> int:
    """Window scaled to the encode size (65 at 4K), halved with the speed-up, made odd."""
    ws = ((window * (width + height)) // 375) >> 4
    if speedup:
        ws = (ws + 1) >> 1
    return ws | 1


def _uses_speedup(width: int, height: int, option: int) -> bool:
    limits = {1080: 1920 * 1080, 1440: 2560 * 1440, 2160: 3840 * 2160}
    return option in limits and width * height >= limits[option]


def check_cambi_size(width: int, height: int, *, model: str = "") -> None:
    """Raise VideoInputError where libvmaf refuses CAMBI (both sides below 216)."""
    if width < CAMBI_MIN_WIDTH_HEIGHT and height < CAMBI_MIN_WIDTH_HEIGHT:
        where = f"model {model}: " if model else ""
        raise VideoInputError(
            f"{where}feature 'cambi' needs a frame at least {CAMBI_MIN_WIDTH_HEIGHT} pixels wide "
            f"or high; got {width}x{height}"
        )


# ---------------------------------------------------------------------------------------------
# Functional core
# ---------------------------------------------------------------------------------------------


def cambi_preprocess(frames: torch.Tensor, bit_depth: int) -> torch.Tensor:
    """Decoded luma ``(N, H, W)`` -> 10-bit int32 samples, anti-dithered below 10 bits."""
    x = torch.as_tensor(frames).to(torch.int32)
    if bit_depth > 10:
        shift = bit_depth - 10
        return (x + (1 << (shift - 1))) >> shift
    if bit_depth == 10:
        return x
    x = x << (10 - bit_depth)
    out = x.clone()
    out[:, :-1, :-1] = (x[:, :-1, :-1] + x[:, :-1, 1:] + x[:, 1:, :-1] + x[:, 1:, 1:]) >> 2
    out[:, :-1, -1] = (x[:, :-1, -1] + x[:, 1:, -1]) >> 1
    out[:, -1, :-1] = (x[:, -1, :-1] + x[:, -1, 1:]) >> 1
    return out


def _box_sum(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum over the ``(2r+1)^2`` window of ``(..., H, W)``, zero outside (exact, integer)."""
    for dim in (-1, -2):
        n = x.shape[dim]
        c = torch.cumsum(x, dim=dim)
        c = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c], dim=dim)
        idx = torch.arange(n, device=x.device)
        hi = (idx + radius + 1).clamp(max=n)
        lo = (idx - radius).clamp(min=0)
        x = c.index_select(dim % c.dim(), hi) - c.index_select(dim % c.dim(), lo)
    return x


def cambi_spatial_mask(img: torch.Tensor) -> torch.Tensor:
    """libvmaf's spatial mask of 10-bit ``(N, H, W)`` samples (bool)."""
    h, w = img.shape[-2:]
    flat = torch.ones_like(img, dtype=torch.bool)
    flat[:, :, :-1] = img[:, :, :-1] == img[:, :, 1:]
    flat[:, :-1, :] &= img[:, :-1, :] == img[:, 1:, :]
    counts = _box_sum(flat.to(torch.int32), MASK_FILTER_SIZE // 2)
    shifted = (w >> 6) * (h >> 6)
    ceil_log2 = 0 if shifted == 0 else (shifted - 1).bit_length()
    index = (MASK_FILTER_SIZE * MASK_FILTER_SIZE + 3 * (ceil_log2 - 11) - 1) >> 1
    index &= 0xFFFF  # libvmaf returns it as uint16
    return counts > index


def _mode3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    lo = torch.minimum(torch.minimum(a, b), c)
    return torch.where((a == b) | (a == c), a, torch.where(b == c, b, lo))


def cambi_filter_mode(img: torch.Tensor) -> torch.Tensor:
    """3x3 mode filter as libvmaf: horizontal then vertical; first/last row left as they are."""
    h_f = img.clone()
    if img.shape[-1] > 2:
        h_f[..., 1:-1] = _mode3(img[..., :-2], img[..., 1:-1], img[..., 2:])
    out = img.clone()
    if img.shape[-2] > 2:
        out[..., 1:-1, :] = _mode3(h_f[..., :-2, :], h_f[..., 1:-1, :], h_f[..., 2:, :])
    return out


def window_counts_by_level(
    img: torch.Tensor, counted: torch.Tensor, radius: int, pos: torch.Tensor,
    offsets: range,
) -> dict[int, torch.Tensor]:
    """Reference window counts: one box sum per grey level over the whole frame.

    For each ``k`` in ``offsets``: the number of ``counted`` pixels of value ``img[p] + k`` in
    the ``(2 radius + 1)^2`` window (clipped at the borders) around each flat position ``p`` of
    ``pos``. Simple and exact, but its cost grows with the number of levels; see
    :func:`window_counts`.
    """
    h, w = img.shape
    u = img.flatten()[pos]
    levels = torch.unique(u)
    counts = {k: torch.zeros(pos.numel(), dtype=torch.int64, device=img.device) for k in offsets}
    where = {k: torch.searchsorted(levels, u + k) for k in offsets}
    found = {k: levels[where[k].clamp(max=levels.numel() - 1)] == u + k for k in offsets}
    img_flat, counted_flat = img.flatten(), counted.flatten()
    for start in range(0, levels.numel(), _LEVEL_CHUNK):
        chunk = levels[start : start + _LEVEL_CHUNK]
        ind = (img_flat[None, :] == chunk[:, None]) & counted_flat[None, :]
        box = _box_sum(ind.view(-1, h, w).to(torch.int32), radius).view(chunk.numel(), -1)
        at = box[:, pos]
        for k in offsets:
            rel = where[k] - start
            sel = (found[k] & (rel >= 0) & (rel < chunk.numel())).nonzero().squeeze(1)
            counts[k][sel] = at[rel[sel], sel].to(torch.int64)
    return counts


#: Output tile side of :func:`window_counts`, and the element budget of one batch of tiles.
_TILE = 32
_TILE_BATCH_ELEMENTS = 1 << 23
_KEY = 2048  # > 1023 + max offset: keys of different tiles never collide


def window_counts(
    img: torch.Tensor, counted: torch.Tensor, radius: int, pos: torch.Tensor,
    offsets: range,
) -> dict[int, torch.Tensor]:
    """Same result as :func:`window_counts_by_level`, computed tile by tile.

    The frame is cut into ``32 x 32`` output tiles; each tile's region (the tile plus the window
    radius) holds few distinct grey levels among counted pixels (banding lives in smooth
    areas), so a one-hot image per (tile, local level) is box-summed with cumulative sums and
    the counts are gathered from it. Cost ~ pixels x levels-per-tile instead of pixels x
    levels-per-frame; tiles are batched by their number of levels to bound memory.
    """
    h, w = img.shape
    dev = img.device
    t, p = _TILE, radius
    r = t + 2 * p
    nth, ntw = -(-h // t), -(-w // t)
    nt = nth * ntw
    xp = torch.full((nth * t + 2 * p, ntw * t + 2 * p), -1, dtype=torch.int64, device=dev)
    xp[p : p + h, p : p + w] = torch.where(counted, img.to(torch.int64), -1)
    regions = xp.unfold(0, r, t).unfold(1, r, t).reshape(nt, r, r)
    tile_of = torch.arange(nt, device=dev)
    keys = tile_of[:, None, None] * _KEY + regions
    valid = regions >= 0
    uniq = torch.unique(keys[valid])
    first = torch.searchsorted(uniq, tile_of * _KEY)
    n_levels = torch.searchsorted(uniq, (tile_of + 1) * _KEY) - first
    # Output positions: global flat index -> (tile, y, x inside the tile).
    py, px = pos // w, pos % w
    p_tile = (py // t) * ntw + px // t
    p_y, p_x = py % t, px % t
    u = img.flatten()[pos].to(torch.int64)
    counts = {k: torch.zeros(pos.numel(), dtype=torch.int64, device=dev) for k in offsets}
    order = torch.argsort(n_levels, descending=True)
    busy = order[n_levels[order] > 0]
    i = 0
    while i < busy.numel():
        k_max = int(n_levels[busy[i]])
        n_batch = max(1, _TILE_BATCH_ELEMENTS // (k_max * r * r))
        batch = busy[i : i + n_batch]
        i += n_batch
        b = batch.numel()
        vmask = valid[batch]
        rank = torch.searchsorted(uniq, keys[batch]) - first[batch][:, None, None]
        onehot = torch.zeros(b, k_max, r, r, dtype=torch.int16, device=dev)
        bi, yi, xi = vmask.nonzero(as_tuple=True)
        onehot[bi, rank[bi, yi, xi], yi, xi] = 1
        # Integral image (int16 is exact: a region holds at most r*r < 32768 pixels).
        c = onehot.cumsum(-1, dtype=torch.int16).cumsum(-2, dtype=torch.int16)
        c = torch.nn.functional.pad(c, (1, 0, 1, 0)).view(b, k_max, (r + 1) * (r + 1))
        slot = torch.full((nt,), -1, dtype=torch.int64, device=dev)
        slot[batch] = torch.arange(b, device=dev)
        sel = (slot[p_tile] >= 0).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        sb = slot[p_tile[sel]]
        span = 2 * p + 1
        top_left = p_y[sel] * (r + 1) + p_x[sel]
        corners = (top_left + span * (r + 1) + span, top_left + span, top_left + span * (r + 1),
                   top_left)
        for k in offsets:
            key = p_tile[sel] * _KEY + u[sel] + k
            idx = torch.searchsorted(uniq, key).clamp(max=uniq.numel() - 1)
            hit = uniq[idx] == key
            lr = (idx - first[p_tile[sel]]).clamp(min=0, max=k_max - 1)
            flat = c.view(b * k_max, -1)
            row = sb * k_max + lr
            got = (flat[row, corners[0]].to(torch.int64) - flat[row, corners[1]]
                   - flat[row, corners[2]] + flat[row, corners[3]])
            counts[k][sel] = torch.where(hit, got, torch.zeros_like(got))
    return counts


def cambi_c_values(
    img: torch.Tensor,
    mask: torch.Tensor,
    window: int,
    tvi_for_diff: tuple[int, ...],
    vlt_luma: int,
    *,
    method: str = "tiles",
) -> torch.Tensor:
    """Per-pixel c-values (float32, ``(H, W)``) of one frame at one scale.

    ``method``: ``"tiles"`` (default, :func:`window_counts`) or ``"levels"``
    (:func:`window_counts_by_level`); both give identical counts.
    """
    h, w = img.shape
    num_diffs = len(tvi_for_diff)
    base = max(vlt_luma - 3 * num_diffs + 1, 0)
    top = tvi_for_diff[-1]  # largest raw value counted (libvmaf's band: tvi is offset by num_diffs)
    counted = mask & (img >= base) & (img <= top)
    out = torch.zeros(h * w, dtype=torch.float32, device=img.device)
    pos = counted.flatten().nonzero().squeeze(1)
    if pos.numel() == 0:
        return out.view(h, w)
    offsets = range(-num_diffs, num_diffs + 1)
    count_fn = {"tiles": window_counts, "levels": window_counts_by_level}[method]
    counts = count_fn(img, counted, window >> 1, pos, offsets)
    u = img.flatten()[pos].to(torch.int64)
    lut = _reciprocal_lut().to(img.device)
    p0 = counts[0]
    c = torch.zeros(pos.numel(), dtype=torch.float32, device=img.device)
    value = u + num_diffs
    for d in range(num_diffs):
        cond = (value <= tvi_for_diff[d]) & (value + d + 1 > vlt_luma)
        p1, p2 = counts[d + 1], counts[-(d + 1)]
        pm = torch.where(p1 > p2, p1, p2)
        val = (CONTRAST_WEIGHTS[d] * p0 * pm).to(torch.float32) * lut[pm + p0]
        c = torch.where(cond & (val > c), val, c)
    out[pos] = c
    return out.view(h, w)


def _topk_mean(c: torch.Tensor, topk: float) -> float:
    values = c.flatten()
    n = values.numel()
    k = min(max(int(topk * n), 1), n)
    best = torch.topk(values, k).values if k < n else values
    return float(best.to(torch.float64).sum()) / k


def cambi_frame(
    img10: torch.Tensor, opts: CambiOptions, *, width: int | None = None,
    height: int | None = None,
) -> float:
    """CAMBI of one preprocessed 10-bit frame ``(H, W)`` (unclipped)."""
    h, w = img10.shape
    width, height = width or w, height or h
    speedup = _uses_speedup(width, height, opts.high_res_speedup)
    window = cambi_window_size(width, height, opts.window_size, speedup)
    tvi, vlt = cambi_tables(opts.tvi_threshold, opts.vis_lum_threshold, opts.max_log_contrast)
    image = img10
    mask = cambi_spatial_mask(img10.unsqueeze(0))[0]
    total = 0.0
    for scale in range(NUM_SCALES):
        if scale > 0 or speedup:
            image = image[::2, ::2]
            mask = mask[::2, ::2]
        image = cambi_filter_mode(image)
        c = cambi_c_values(image, mask, window, tvi, vlt)
        total += _topk_mean(c, opts.topk) * SCALE_WEIGHTS[scale]
    return total / (window * window)


def cambi(frames: torch.Tensor, bit_depth: int, opts: CambiOptions | None = None) -> torch.Tensor:
    """CAMBI per frame of distorted luma ``(N, H, W)`` (decoded samples), float64, clipped."""
    opts = opts or CambiOptions()
    x = torch.as_tensor(frames)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    n, h, w = x.shape
    check_cambi_size(w, h)
    img10 = cambi_preprocess(x, bit_depth)
    scores = [min(cambi_frame(img10[i], opts), opts.max_val) for i in range(n)]
    return torch.tensor(scores, dtype=torch.float64)
