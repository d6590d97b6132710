"""libvmaf's integer motion with the v1.0.16 options: ``motion3`` and its temporal windows.

:func:`motion_sad_integer` is the per-frame SAD of ``integer_motion.c``: the difference of two
reference luma frames blurred by the 5-tap integer filter (vertical pass rounded by ``>> 8``
for 8-bit input, ``>> bpc`` above; horizontal pass rounded by ``>> 16``; mirrored borders),
summed in absolute value and scaled to ``sad / 256 / (W H)``. With the five-frame window
(the ``hfr`` models) each frame is compared with the frame two before it.

:func:`motion3_from_sad` is libvmaf's ``flush``: ``motion2`` (minimum of neighbouring SADs),
then ``motion3`` = the blended (identity for the default blend factor 1), clipped ``motion2``,
optionally averaged with the previous frame's value; the first one or two frames, which have
no SAD, take the value of the first frame that has one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: ``integer_motion.h``'s filter (sums to 65536).
MOTION_FILTER = (3571, 16004, 26386, 16004, 3571)


@dataclass(frozen=True)
class Motion3Options:
    """Integer-motion options (libvmaf names in comments); defaults are libvmaf's."""

    max_val: float = 10000.0  # motion_max_val
    five_frame_window: bool = False  # motion_five_frame_window
    moving_average: bool = False  # motion_moving_average
    blend_factor: float = 1.0  # motion_blend_factor
    blend_offset: float = 40.0  # motion_blend_offset
    fps_weight: float = 1.0  # motion_fps_weight

    @classmethod
    def from_libvmaf(cls, opts: dict[str, object]) -> Motion3Options:
        """Options from a model's ``feature_opts_dicts`` entry; unknown keys are an error."""
        kw: dict[str, object] = {}
        for key, value in opts.items():
            name = key.removeprefix("motion_")
            if not key.startswith("motion_") or name not in cls.__dataclass_fields__:
                raise ValueError(f"motion option {key!r} is not supported")
            kw[name] = type(getattr(cls, name))(value)  # type: ignore[operator]
        return cls(**kw)  # type: ignore[arg-type]

    @property
    def lag(self) -> int:
        """Frames between the two compared frames (2 with the five-frame window)."""
        return 2 if self.five_frame_window else 1


def motion_sad_integer(prev: torch.Tensor, cur: torch.Tensor, bit_depth: int) -> torch.Tensor:
    """Integer SAD (``sad``, before scaling) between reference frames ``(N, H, W)``, int64.

    Runs as exact float64 band GEMMs (:mod:`.exact.intfilter`): every product and partial sum
    is an integer below 2^53, and ``floor`` after a power-of-two scaling is C's arithmetic
    shift, so the result is libvmaf's integer SAD whatever the summation order.
    """
    from .exact.backend import use_compiled_kernels
    from .exact.intfilter import filter_cols, filter_rows, round_half_up_

    if use_compiled_kernels(prev):
        from .exact.cpu_kernels import motion_sad_compiled

        return motion_sad_compiled(prev, cur, bit_depth)
    if prev.device.type == "cpu" and prev.shape[0] > 1:
        # One frame pair at a time on CPU: its float64 intermediates then stay in cache
        # (720p, 1 thread: ~15 ms per pair alone vs ~100 ms per pair in a batch of 7).
        return torch.cat(
            [motion_sad_integer(prev[i : i + 1], cur[i : i + 1], bit_depth)
             for i in range(prev.shape[0])]
        )  # fmt: skip
    diff = prev.to(torch.float64) - cur.to(torch.float64)
    # Rounding shifts folded into the taps (scaled by 2^-shift, exact; see intfilter).
    vshift = 8 if bit_depth == 8 else bit_depth
    y_row = round_half_up_(filter_cols(diff, MOTION_FILTER, shift=vshift))
    val = round_half_up_(filter_rows(y_row, MOTION_FILTER, shift=16))
    return val.abs_().sum(dim=(-2, -1)).to(torch.int64)


def motion_sad_scores(
    frames: torch.Tensor,
    bit_depth: int,
    opts: Motion3Options,
    *,
    history: torch.Tensor | None = None,
    start: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame SAD scores of a chunk of reference luma ``(n, H, W)`` (decoded samples).

    ``history`` holds the last ``opts.lag`` frames before the chunk and ``start`` the index of
    the chunk's first frame. Frames with no partner (index < lag) score 0, as in libvmaf.
    Returns the scores (float64, clipped to ``max_val``) and the new history.
    """
    from .exact.backend import use_compiled_kernels

    x = torch.as_tensor(frames)
    lag = opts.lag
    hist = x[:0] if history is None else history.to(x.device, x.dtype)
    offset = hist.shape[0]
    n, h, w = x.shape
    scores = torch.zeros(n, dtype=torch.float64)
    idx = [i for i in range(n) if start + i >= lag and offset + i - lag >= 0]
    if idx:
        if use_compiled_kernels(x):  # frames read in place, no gathered copies
            from .exact.cpu_kernels import motion_sad_sequence

            pairs = [(offset + i - lag, offset + i) for i in idx]
            sad = motion_sad_sequence(hist, x, pairs, bit_depth)
        else:
            seq = torch.cat([hist, x])
            sad = motion_sad_integer(seq[[offset + i - lag for i in idx]],
                                     seq[[offset + i for i in idx]], bit_depth)
        vals = (sad.to(torch.float64).cpu() / 256.0 / (w * h) * opts.fps_weight).clamp(
            max=opts.max_val)
        scores[idx] = vals
    tail = x[-lag:] if n >= lag else torch.cat([hist, x])[-lag:]
    return scores, tail.clone()


def _blend(x: float, factor: float, offset: float) -> float:
    return x * factor + (1 - factor) * min(offset, x)


def motion3_from_sad(sad: torch.Tensor, opts: Motion3Options) -> dict[str, torch.Tensor]:
    """``motion2`` and ``motion3`` per frame from all SAD scores of a clip (libvmaf's flush)."""
    s = [float(v) for v in sad.tolist()]
    n = len(s)
    min_idx = opts.lag
    stride = opts.lag
    stamp = 0.0
    if n > min_idx:
        stamp = min(_blend(s[min_idx], opts.blend_factor, opts.blend_offset), opts.max_val)
    m2, m3 = [], []
    prev = 0.0
    for i in range(n):
        if i < min_idx:
            motion2 = 0.0
        else:
            lo, hi = i - (stride - 1), i + 1
            if hi >= n:
                motion2 = s[i]
            elif lo >= min_idx:
                motion2 = min(s[lo], s[hi])
            else:
                motion2 = s[hi]
        m2.append(motion2)
        if i < min_idx:
            m3.append(stamp)
            prev = stamp
        else:
            processed = min(_blend(motion2, opts.blend_factor, opts.blend_offset), opts.max_val)
            m3.append((processed + prev) / 2.0 if opts.moving_average else processed)
            prev = processed
    return {
        "motion2": torch.tensor(m2, dtype=torch.float64),
        "motion3": torch.tensor(m3, dtype=torch.float64),
    }
