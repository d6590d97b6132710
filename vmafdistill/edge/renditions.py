"""Recordings whose pictures change mid-stream (adaptive-bitrate renditions), for the edge chain.

ffmpeg scales every picture to the first one's size before the pipe and notices the change
(:class:`~vmafdistill.edge.decode.DecodeLog` ``reconfigured``). :func:`picture_runs` finds the
runs of equal pictures; :func:`rows_per_rendition` decodes each at its own size and cuts it
into shots on its own (a switch is a shot boundary); :func:`wrong_runs` names the runs whose
samples or rate cannot be trusted (another bit depth, another frame rate) and
:func:`rescaled_flag` the flag of shots ffmpeg rescaled without a second run to read them from.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import VideoInputError
from ..features.frame_numpy import MIN_SIDE
from ..features.shot_rows import shot_feature_rows
from ..shots import ShotDetector
from .decode import DecodeLog, decode_luma_runs, picture_changes
from .options import EdgeOptions, default_ref_size

__all__ = ["check_picture_size", "off_rate_shots", "picture_runs", "rescaled_flag",
           "rows_per_rendition", "run_bit_depth", "wrong_runs"]

#: The per-frame pass of :func:`~vmafdistill.edge.pipeline.frame_pass` (chunks and keyword
#: options in, ``{feature: (N,) float64}`` out).
FramePass = Callable[..., dict[str, np.ndarray]]


def picture_runs(path: str, log: DecodeLog, info: Any, n: int) -> list[dict[str, Any]]:
    """The runs of equal pictures (:func:`picture_changes`; their start times come from
    :func:`set_run_times`), or [] when the pictures never change.

    ffmpeg's notice of a change (:class:`DecodeLog` ``reconfigured``) is free, but its wording
    is that of the ffmpeg this package ships; with an ffmpeg that logged no frame timestamps
    (older than 6.1), whose notice may read differently, the ``showinfo`` pass always runs.
    """
    first = (info.pix_fmt, info.width, info.height)
    noticed = any(tuple(r) != first for r in log.reconfigured)
    if not noticed and log.frame_pts:
        return []
    runs = [r for r in picture_changes(path) if int(r["frame"]) < n] or [
        {"frame": 0, "pix_fmt": first[0], "width": first[1], "height": first[2]}]
    if not noticed and len(runs) == 1:
        return []
    return runs


def set_run_times(runs: Sequence[dict[str, Any]], frame_times_s: np.ndarray | None,
                  fps: float) -> None:
    """Each run's ``time_s``: its first frame's timestamp, else its frame index at ``fps``
    (the rate the video is read at, :func:`recording_rate`)."""
    for run in runs:
        f = int(run["frame"])
        run["time_s"] = round(float(frame_times_s[f]) if frame_times_s is not None
                              and f < frame_times_s.shape[0] else f / fps, 3)


def _run_spans(runs: Sequence[Mapping[str, Any]], n: int) -> list[tuple[int, int]]:
    """(first frame, stop frame) of each run of a video of ``n`` frames."""
    starts = [int(r["frame"]) for r in runs]
    return list(zip(starts, [*starts[1:], n], strict=True))


def run_bit_depth(pix_fmt: str) -> int | None:
    """Bit depth of a decoded picture format (None: one the edge does not read)."""
    from ..io.video import pix_fmt_layout

    try:
        return int(pix_fmt_layout(pix_fmt).bit_depth)
    except KeyError:
        return None


def rescaled_flag(run: Mapping[str, Any], info: Any) -> str:
    """The flag of shots whose pictures ffmpeg scaled to the first picture's size: ffmpeg
    noticed a change of size or format, but the second decode found a single run of pictures
    (when it found several, each is read at its own size). Their features, ``res`` and
    ``scale_ratio`` would be wrong: never a silent number."""
    if (run["pix_fmt"], run["width"], run["height"]) != (info.pix_fmt, info.width, info.height):
        return f"picture_changed:{run['width']}x{run['height']}"
    return "picture_changed"  # showinfo saw no change: trust the notice


def wrong_runs(runs: Sequence[Mapping[str, Any]], bit_depth: int) -> tuple[set[int], list[str]]:
    """The runs whose shots get no prediction, and the flags that say why (in order, once).

    A run of another bit depth than the recording's came through ffmpeg's conversion (not its
    coded samples: ``picture_format:<fmt>``); a run at another frame rate than the file's
    (``fps`` set by :func:`rows_per_rendition`) would be read at the wrong rate
    (``frame_rate:<fps>``).
    """
    which: set[int] = set()
    flags: list[str] = []
    for k, run in enumerate(runs):
        wrong = ([f"picture_format:{run['pix_fmt']}"]
                 if run_bit_depth(str(run["pix_fmt"])) != bit_depth else []) + (
            [f"frame_rate:{run['fps']:g}"] if "fps" in run else [])
        if wrong:
            which.add(k)
            flags += [f for f in wrong if f not in flags]
    return which, flags


#: A shot whose frames step at a rate this far from the file's (ratio) was recorded at another
#: frame rate than the rest (a 25 -> 50 fps switch at one size).
OFF_RATE_RATIO = 1.25


def off_rate_shots(rows: Sequence[Mapping[str, Any]], frame_steps_s: np.ndarray | None,
                   fps: float) -> dict[str, list[int]]:
    """``{"frame_rate:<fps>": [row index, ...]}``: where the shots' frames step at rates over
    :data:`OFF_RATE_RATIO` apart (a frame-rate switch at an unchanged picture size, which is
    no rendition run: those are found by size and format), the shots whose rate is that far
    off the rate ``fps`` the video is read at: their windows and bitrates are off by the
    ratio, as a rendition run at another rate would be. A variable-rate file that only drops
    frames steps alike in every shot and is not flagged.

    A shot is off only when two readings of its rate agree that it is: its median step, and
    its short steps (the 10th percentile), which frames dropped between them do not lengthen.
    The median alone was one frame in some shots and two in others of a file dropping frames
    at random (shots of one rate flagged as 30 and 15 fps); the short steps alone read a
    capture clock's jitter (+-8 ms at 30 fps) as 40 fps. Both must be off the same way; a shot
    whose two readings are off in opposite ways, each near the same reading of a shot flagged
    (its median near a flagged median, its short steps near flagged short steps), spans a
    switch between them (``frame_rate:mixed``); otherwise (a stalled, jittery capture) it is
    left alone.

    ``frame_steps_s``: the steps between the frames' timestamps
    (:attr:`~vmafdistill.io.packets.FrameAlignment.frame_steps_s`); a step <= 0 (files joined
    with their clocks reset or overlapping) is left out, the steps on either side still count
    (such a join of 25 and 50 fps files went unflagged: it has no time line). Timestamps
    that go back more often than at a few joins (more than 1 % of the steps) are read as no
    timing at all: nothing is flagged."""
    if frame_steps_s is None or frame_steps_s.shape[0] < 2:
        return {}
    steps = np.asarray(frame_steps_s, dtype=np.float64)
    if np.count_nonzero(steps <= 0) > max(1, steps.shape[0] // 100):
        # not a few joins: timestamps out of order throughout (decode-order stamps of a
        # B-frame stream), whose forward steps span several frames and read a false rate
        return {}
    readings: dict[int, tuple[float, float]] = {}  # (median rate, short-step rate)
    for i, row in enumerate(rows):
        shot = steps[int(row["start_frame"]):int(row["stop_frame"]) - 1]
        shot = shot[shot > 0]
        if shot.size >= 2:
            readings[i] = (1.0 / float(np.median(shot)), 1.0 / float(np.percentile(shot, 10)))
    if not readings or any(max(r[k] for r in readings.values())
                           <= OFF_RATE_RATIO * min(r[k] for r in readings.values())
                           for k in (0, 1)):
        return {}  # one rate throughout, by either reading

    def side(rate: float) -> int:  # +1 faster than the video is read at, -1 slower, 0 neither
        return 1 if rate > OFF_RATE_RATIO * fps else -1 if rate * OFF_RATE_RATIO < fps else 0

    out: dict[str, list[int]] = {}
    off_rates: list[tuple[float, float]] = []  # the readings of the shots flagged
    across: list[int] = []
    for i, (median_rate, short_rate) in readings.items():
        # the same way: a stalled capture's median reads slow where its jitter reads fast
        if side(median_rate) != 0 and side(median_rate) == side(short_rate):
            out.setdefault(f"frame_rate:{round(median_rate, 3):g}", []).append(i)
            off_rates.append((median_rate, short_rate))
        elif side(median_rate) * side(short_rate) < 0:
            across.append(i)

    def flagged_rate(rate: float, k: int) -> bool:  # near a flagged shot's reading k
        # like with like (median with medians, short steps with short steps): a jittery
        # capture's short steps read well past its median (+-5 ms: 59 fps on a 50 fps part)
        return any(max(rate, r[k]) <= OFF_RATE_RATIO * min(rate, r[k]) for r in off_rates)

    # a shot over the switch between two rates the other shots run at (read at the mean, a
    # rate neither part has, it was predicted unflagged); a stalled, jittery shot's readings
    # match no such pair
    mixed = [i for i in across
             if flagged_rate(readings[i][0], 0) and flagged_rate(readings[i][1], 1)]
    if mixed:
        out["frame_rate:mixed"] = mixed
    return out


def _offset_rows(rows: list[dict[str, Any]], f0: int, fps: float, shot_base: int,
                 scene_base: int) -> None:
    """A run's rows moved to the recording's frame numbers, times and shot / scene indices."""
    for row in rows:
        row["start_frame"] += f0
        row["stop_frame"] += f0
        row["start_s"] += f0 / fps
        row["end_s"] += f0 / fps
        row["shot_index"] += shot_base
        row["scene_index"] += scene_base


def _run_rate(durations_s: Any, fps: float, *, exact: bool = False) -> float | None:
    """The frame rate a run's packet durations say, when it is more than 1 % off ``fps``
    (None: the same, or unknown); to 3 decimals unless ``exact``.

    A rendition at another frame rate (a 15 fps low rung) would be read at the file's rate:
    its bitrate and shot lengths wrong.
    """
    durations = np.asarray(durations_s, dtype=np.float64)
    durations = durations[durations > 0]
    if durations.size:
        rate = 1.0 / float(np.median(durations))
        if abs(rate - fps) > 0.01 * fps:
            return rate if exact else round(rate, 3)
    return None


def check_picture_size(path: str, width: int, height: int) -> None:
    """A picture too small for the pixel features is the input's problem: say so, naming the
    file (raises VideoInputError), before anything is decoded at that size."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise VideoInputError(f"{path}: {width}x{height} pictures; the edge chain needs at "
                              f"least {MIN_SIDE}x{MIN_SIDE} (its edge features need an interior)")


def recording_rate(runs: Sequence[dict[str, Any]], packets: Any, n: int, fps: float) -> float:
    """The frame rate a recording of several renditions is read at: that of its run with the
    most frames (from the run's packet durations) when it is more than 1 % off the probe's
    ``fps``, else ``fps``.

    The probe's rate is libavformat's guess from a mix of renditions, and versions guess
    differently (ffmpeg 9 reads a 25 fps recording with a 15 fps low rung as 15 fps, PyAV's
    FFmpeg 8 as 25); a player may also start on a short low rung, so the longest run, not the
    first, sets the rate the other runs are judged against.
    """
    start, stop = max(_run_spans(runs, n), key=lambda span: span[1] - span[0])
    rate = _run_rate(packets.take(np.arange(start, stop)).duration_s, fps, exact=True)
    return fps if rate is None else rate


def rows_per_rendition(
    p: str, runs: list[dict[str, Any]], n: int, *, bit_depth: int, packets: Any,
    names: Sequence[str], options: EdgeOptions, step: int, fps: float,
    ref_given: tuple[int, int] | None, card_ref: Sequence[int], frame_pass: FramePass,
) -> tuple[list[dict[str, Any]], list[int]]:
    """Shot rows of a recording that switches renditions, every run of equal pictures decoded
    at its own size (:func:`decode_luma_runs`), measured by ``frame_pass`` and cut into shots
    on its own (a switch is a shot boundary). Rows carry the recording's frame numbers and
    shot / scene indices; returns them with the run index of each row. Each run's dict gains
    ``ref_size``, ``ref_size_rule``, ``shots``, ``cut_pixel_step`` (and ``temporal_pixel_step``
    where a temporal pass runs) and, at another frame rate than ``fps`` (the recording's,
    :func:`recording_rate`), ``fps``.
    """
    schedule = [(stop - start, int(r["width"]), int(r["height"]))
                for r, (start, stop) in zip(runs, _run_spans(runs, n), strict=True)]
    for _, w, h in schedule:
        check_picture_size(p, w, h)
    rows: list[dict[str, Any]] = []
    run_of_row: list[int] = []
    shot_base = scene_base = 0
    decoded = itertools.groupby(
        decode_luma_runs(p, schedule, bit_depth=bit_depth, chunk=options.chunk,
                         prefetch=options.prefetch, threads=options.decode_threads),
        key=lambda item: item[0])
    for k, group in decoded:
        frames, w, h = schedule[k]
        f0 = int(runs[k]["frame"])
        chunks: Iterator[np.ndarray] = (y for _, y in group)
        det = ShotDetector(fps=fps, **dict(options.shots))
        cut_step, temporal_step = options.cut_step(w, h, step), options.temporal_step(names, w, h)
        per_frame = frame_pass(
            chunks, bit_depth=bit_depth, detector=det, frame_step=step,
            shot_pixel_step=cut_step, threads=options.threads, temporal_step=temporal_step)
        if per_frame["mean_luma"].shape[0] != frames:
            raise VideoInputError(f"{p}: picture run {k + 1} ({w}x{h}) decoded "
                                  f"{per_frame['mean_luma'].shape[0]} frames, the first pass "
                                  f"counted {frames}")
        ref, rule = ((ref_given, "given") if ref_given is not None
                     else default_ref_size(card_ref, w, h))
        part = packets.take(np.arange(f0, f0 + frames))
        run_rows = shot_feature_rows(
            per_frame, det.shots(), part.picture_sizes, ref_size=ref, codec=packets.codec, fps=fps,
            width=w, height=h, frame_qp=part.qp, frame_mb_qp=part.mb_qp)
        _offset_rows(run_rows, f0, fps, shot_base, scene_base)
        shot_base += len(run_rows)
        scene_base = max((int(r["scene_index"]) for r in run_rows), default=scene_base - 1) + 1
        # each run's own pixel steps (they follow its size): the summary's top-level ones are
        # the first pass's, at the first run's size
        runs[k].update(ref_size=list(ref), ref_size_rule=rule, shots=len(run_rows),
                       cut_pixel_step=cut_step,
                       **({"temporal_pixel_step": temporal_step} if temporal_step else {}))
        rate = _run_rate(part.duration_s, fps)
        if rate is not None:
            runs[k]["fps"] = rate
        rows += run_rows
        run_of_row += [k] * len(run_rows)
    if sorted(set(run_of_row)) != list(range(len(runs))):
        missing = sorted(set(range(len(runs))) - set(run_of_row))
        raise VideoInputError(f"{p}: picture run(s) {[m + 1 for m in missing]} gave no frames "
                              "on the second decode")
    return rows, run_of_row
