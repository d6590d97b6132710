"""Score reference/distorted files with the teacher: decode in chunks, stream, report.

This is the glue between :mod:`vmafdistill.io` (exact decoded planes, streamed) and
:class:`~vmafdistill.teacher.vmaf.VmafScorer`; the CLI's ``score`` command is a thin layer on it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import VideoInputError, VmafDistillError
from ..folders import atomic_write_text
from ..io import iter_frame_pairs, probe_video
from ..io.prefetch import prefetched
from .exact.features import TRIM_EVERY_CHUNKS, trim_heap
from .vmaf import VmafResult, VmafScorer, check_device

#: Precision of libvmaf's logs: ``%.6f``, or ``%.16f`` for a value whose fractional part
#: has more than 6 leading zeros (see :func:`log_decimals`).
_LOG_DECIMALS = 6
_LOG_DECIMALS_SMALL = 16


def log_decimals(value: float) -> int:
    """The decimals libvmaf's JSON/CSV/XML logs print ``value`` with: 16 when its fractional
    part is non-zero with more than 6 leading zeros (``0.0000001``, ``12.00000004``), else 6.
    Mirrors ``count_leading_zeros_d`` in libvmaf's ``output.c``, multiplications included, so
    the boundary (``1e-6`` itself) falls where libvmaf's does; a non-finite value: 6."""
    if not math.isfinite(value) or abs(value) >= 2.0**31:
        return _LOG_DECIMALS  # C's (int)x is INT_MIN there: no fraction is counted
    x = abs(value)
    fraction = x - float(math.trunc(x))
    zeros = 0
    while fraction < 1.0 and fraction != 0.0:
        fraction *= 10.0
        zeros += 1
    return _LOG_DECIMALS if zeros <= _LOG_DECIMALS else _LOG_DECIMALS_SMALL


def _log_number(value: float) -> float | None:
    """``value`` as libvmaf's JSON log holds it: printed with :func:`log_decimals` decimals;
    NaN and infinities as ``null`` (libvmaf writes null; ``json`` would write invalid NaN)."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.{log_decimals(value)}f}")


def _raw_opts(raw: dict[str, Any] | None) -> dict[str, Any]:
    """A raw input's ``width``, ``height`` and ``pix_fmt``, the sizes checked whole numbers
    (``"160"`` or ``160.0`` were TypeErrors deep in the probe)."""
    opts = {k: raw[k] for k in ("width", "height", "pix_fmt") if raw and raw.get(k) is not None}
    for key in ("width", "height"):
        if key in opts:
            value = opts[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise VmafDistillError(f"raw {key}={value!r}: needs a whole number of pixels")
            opts[key] = int(value)
    return opts


def _refuse_float_v1016(model: str, mode: str | None) -> None:
    if mode == "float":
        raise VmafDistillError(f"{model}: the v1.0.16 models are scored in exact mode only "
                               "(libvmaf has no float version of them)")


def _warn_on_conversions(ref: str | Path, dist: str | Path, ref_raw: dict[str, Any] | None,
                         dist_raw: dict[str, Any] | None, *, rescale: bool = False) -> None:
    """What ffmpeg's libvmaf graph would convert first and the teacher scores as decoded: a
    full-range input against a limited-range one (unless ``rescale``, which converts the
    distorted to the reference's range as that graph does), a gray input (unless against a
    full-range YUV one, which ffmpeg converts it to without a change of numbers), a display
    rotation. Say so. A headerless raw input is taken as ffmpeg takes it, by its format:
    ``yuvj*`` and gray full range, other YUV limited (every raw input counted as limited: a
    ``yuvj420p`` .yuv against a limited .y4m read 68.4 against libvmaf's 79.2, without a
    word). Two YUV matrix tags that differ (one may be none): ffmpeg converts one side to the
    other's through RGB (the reference to the distorted's; with ``rescale``, the distorted to
    the reference's, unless the reference is 9- or 14-bit)."""
    from ..io.video import graph_converts_reference, probe_video, range_of_pix_fmt, stream_facts

    def raw_facts(pix_fmt: str) -> dict[str, Any]:
        return {"range": range_of_pix_fmt(pix_fmt), "gray": pix_fmt.startswith("gray"),
                "rotation": None, "cropping": None, "matrix": None}

    facts = [stream_facts(path) if raw is None else raw_facts(str(raw.get("pix_fmt") or
                                                                  "yuv420p"))
             for path, raw in ((ref, ref_raw), (dist, dist_raw))]  # one ffmpeg -i each
    for k, (path, f) in enumerate(zip((ref, dist), facts, strict=True)):
        other = facts[1 - k]
        # --rescale converts a gray distorted to a YUV reference's format and range, as
        # ffmpeg's graph does (io.video.iter_frame_pairs); a gray reference it cannot
        converts = rescale and k == 1 and not other["gray"]
        if f["gray"] and (other["gray"] or other["range"] != "pc") and not converts:
            warnings.warn(
                f"{path} is gray: it is scored as decoded, while ffmpeg's libvmaf filter would "
                f"first convert it to limited-range YUV (its numbers then differ: by 0.4-2.8 "
                f"VMAF per frame gray against gray on the clips measured, by 5-24 against a "
                f"limited-range YUV input"
                + ("; --rescale converts a gray distorted as ffmpeg does)"
                   if k == 1 and not other["gray"] else ")"), stacklevel=3)
        rotation = f["rotation"]
        # "-0.00 degrees" is a vertical flip alone (ffmpeg prints no flip): it flips too
        if rotation is not None and (rotation != 0 or math.copysign(1.0, rotation) < 0):
            warnings.warn(
                f"{path} has a display matrix (rotation of {rotation:g} degrees as ffmpeg "
                f"prints it; it may mirror too): its coded pictures are scored, while ffmpeg "
                f"(and libvmaf through it) rotates or flips them first; apply or strip the "
                f"matrix for comparable numbers", stacklevel=3)
        if f["cropping"]:
            left, right, top, bottom = f["cropping"]
            warnings.warn(
                f"{path} carries container cropping (left {left}, right {right}, top {top}, "
                f"bottom {bottom} pixels): its coded pictures are scored whole, while ffmpeg "
                f"(and libvmaf through it) crops them first; crop both files for comparable "
                f"numbers", stacklevel=3)
    matrices = facts[0]["matrix"], facts[1]["matrix"]
    if (_matrix_class(matrices[0]) != _matrix_class(matrices[1])
            and not (facts[0]["gray"] or facts[1]["gray"])):
        said = [f"YUV matrix {m}" if m else "no YUV matrix tag" for m in matrices]
        # a review read ffmpeg's -v verbose: a scale filter on the distorted converts it
        which = ("the distorted to the reference's" if rescale and not graph_converts_reference(
            probe_video(ref, **_raw_opts(ref_raw)).pix_fmt) else "the reference to the "
                 "distorted's")
        warnings.warn(
            f"{ref} has {said[0]} and {dist} has {said[1]}: the samples are scored as "
            f"decoded, while ffmpeg's libvmaf filter first converts {which} matrix "
            f"(through RGB: a BT.709 tag alone on a lossless encode read "
            f"52.3 there for 99.9); tag both alike or strip the tags for comparable numbers",
            stacklevel=3)
    ranges = facts[0]["range"], facts[1]["range"]
    converted = rescale and not facts[0]["gray"]  # the distorted to the reference's range
    if None not in ranges and ranges[0] != ranges[1] and not converted:
        names = {"pc": "full range (pc)", "tv": "limited range (tv)"}
        warnings.warn(
            f"{ref} is {names[ranges[0]]} and {dist} is {names[ranges[1]]}: the samples are "
            f"scored as decoded, while ffmpeg's libvmaf filter would convert one to the other's "
            f"range first; convert first for comparable numbers (e.g. ffmpeg -vf "
            f"scale=out_range={ranges[0]})", stacklevel=3)


def _matrix_class(matrix: str | None) -> str | None:
    """A YUV matrix tag as ffmpeg's conversions tell them apart: untagged, ``bt470bg`` and
    ``smpte170m`` are one BT.601 matrix (its scaler leaves such a pair's samples as they are:
    the same VMAF measured; a warning there was false)."""
    return "bt601" if matrix in (None, "bt470bg", "smpte170m") else matrix


def _same_rate(a: float, b: float) -> bool:
    """Whether two declared frame rates are one: within 1e-3 (an MP4 remuxed from 1 ms
    timestamps averages 59.97 for 59.94 over a few seconds), unless one is an integer N and
    the other NTSC's N * 1000/1001 (30 against 29.97: a frame's drift every 33 s)."""
    if abs(a - b) > 1e-3 * max(a, b):
        return False

    def integer(r: float) -> bool:
        return abs(r - round(r)) <= 1e-4 * r

    def ntsc(r: float) -> bool:
        n = round(r * 1001 / 1000)
        return n > 0 and not integer(r) and abs(r - n * 1000 / 1001) <= 1e-4 * r

    return not ((integer(a) and ntsc(b)) or (ntsc(a) and integer(b)))


def _warn_on_rates(ref: str | Path, dist: str | Path, ref_fps: float | None,
                   dist_fps: float | None) -> bool:
    """Frames pair by position (frame i with frame i, as libvmaf's own tool pairs them); where
    the two files declare other frame rates that pairs a frame with one from another moment
    (a 25 fps encode of a 50 fps master scored 41.7 against libvmaf's 83.9 after fps=50).
    Say so, naming both rates (a raw input has none); True when it did."""
    if not ref_fps or not dist_fps or _same_rate(ref_fps, dist_fps):
        return False
    warnings.warn(
        f"{ref} runs at {ref_fps:g} frames/s and {dist} at {dist_fps:g}: frames are paired by "
        f"position, so frame i of one meets frame i of the other from another moment; convert "
        f"the distorted to the reference's rate first (ffmpeg -vf fps={ref_fps:g}) for "
        f"meaningful numbers", stacklevel=3)
    return True


def _warn_on_timestamps(ref: str | Path, dist: str | Path, ref_info: Any,
                        dist_info: Any) -> None:
    """The same rate declared, but frame i of one file shown at another moment than frame i
    of the other, counted from each file's first frame (a gap where frames were dropped): the
    pairs by position are not the pairs by timestamp that ffmpeg's libvmaf filter scores (an
    MPEG-TS with 10 of 60 frames dropped read 47.4 here against its 77.9, without a word).
    Say so, naming the first such frame."""
    from ..io.frame_times import first_time_mismatch, frame_times_s

    if not ref_info.fps:
        return
    ref_times = frame_times_s(ref, ref_info)
    dist_times = None if ref_times is None else frame_times_s(dist, dist_info)
    if ref_times is None or dist_times is None:
        return
    i = first_time_mismatch(ref_times, dist_times, 1.0 / ref_info.fps)
    if i is None:
        return
    warnings.warn(
        f"frame {i} of {dist} is shown at {dist_times[i]:.3f} s and frame {i} of {ref} at "
        f"{ref_times[i]:.3f} s (from each file's first frame; a gap or a repeat in one of "
        f"them?): frames are paired by position, while ffmpeg's libvmaf filter pairs them by "
        f"timestamp; for comparable numbers, make both constant-rate first (ffmpeg -vf "
        f"fps={ref_info.fps:g} on each)", stacklevel=3)


def _probe_pair(ref: str | Path, dist: str | Path, ref_raw: dict[str, Any] | None,
                dist_raw: dict[str, Any] | None, *, one_depth: bool,
                warn_depths: bool = False, check_timestamps: bool = True) -> tuple[Any, Any]:
    """The reference's and the distorted's :class:`~vmafdistill.io.video.VideoInfo`:
    other frame rates warned of, other frame times too where ``check_timestamps``, another
    bit depth refused where ``one_depth``, warned of where ``warn_depths`` (float mode, not
    rescaled)."""
    ref_info = probe_video(ref, **_raw_opts(ref_raw))
    dist_info = probe_video(dist, **_raw_opts(dist_raw))
    if not _warn_on_rates(ref, dist, ref_info.fps, dist_info.fps) and check_timestamps:
        _warn_on_timestamps(ref, dist, ref_info, dist_info)
    if one_depth:
        _check_bit_depths(ref, dist, ref_info.bit_depth, dist_info.bit_depth)
    elif warn_depths and ref_info.bit_depth != dist_info.bit_depth:
        warnings.warn(_mixed_depths(ref, dist, ref_info.bit_depth, dist_info.bit_depth),
                      stacklevel=3)
    return ref_info, dist_info


def _mixed_depths(ref: str | Path, dist: str | Path, ref_depth: int, dist_depth: int) -> str:
    """Float mode scores each side at its own depth, which equals libvmaf with the
    lower-depth side converted up; which ffmpeg command does that depends on the side."""
    if ref_depth < dist_depth:
        same = ("a plain `ffmpeg -i dist -i ref -lavfi libvmaf` (it converts the reference to "
                "the distorted's format)")
        other = "a scale filter on the distorted (--rescale) converts the distorted down"
    else:
        same = ("libvmaf with a scale filter on the distorted (--rescale), which converts it "
                "to the reference's format")
        other = ("a plain `ffmpeg -i dist -i ref -lavfi libvmaf` converts the reference "
                 "down to the distorted's")
    return (f"{ref} is {ref_depth}-bit and {dist} is {dist_depth}-bit: each is scored at its "
            f"own depth, which equals {same}; {other} and gives other numbers")


#: What ffmpeg does with two formats, and how to score as it does (the error and the warning).
DEPTH_CONVERSION = (
    "a plain `ffmpeg -i dist -i ref -lavfi libvmaf` converts the reference to the distorted's "
    "format; a scale filter on the distorted, as --rescale (score_files(rescale=True)), "
    "converts the distorted to the reference's")


def _check_bit_depths(ref: str | Path, dist: str | Path, ref_depth: int,
                      dist_depth: int) -> None:
    """Exact mode (and v1.0.16) scores one bit depth: a distorted file of another is refused
    up front, naming both files and what ffmpeg would do (:data:`DEPTH_CONVERSION`)."""
    if dist_depth != ref_depth:
        raise VideoInputError(
            f"{ref} is {ref_depth}-bit and {dist} is {dist_depth}-bit: exact mode scores one "
            f"bit depth; {DEPTH_CONVERSION}")


def score_files(
    ref: str | Path,
    dist: str | Path,
    *,
    model: str = "vmaf_v0.6.1",
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    chunk: int = 8,
    ref_raw: dict[str, Any] | None = None,
    dist_raw: dict[str, Any] | None = None,
    rescale: bool = False,
    scale_flags: str = "bicubic",
    on_length_mismatch: str = "error",
    progress: bool = False,
    mode: str | None = None,
    aim: bool = False,
    decoder_threads: int | None = None,
    check_timestamps: bool = True,
) -> VmafResult:
    """Score ``dist`` against ``ref`` frame by frame with the PyTorch teacher.

    ``ref_raw``/``dist_raw`` give ``width``, ``height``, ``pix_fmt`` for raw ``.yuv`` input.
    ``rescale=True`` scales the distorted video to the reference size with ffmpeg's scaler
    (``scale_flags``, bicubic by default) and to the reference's pixel format before scoring,
    as ffmpeg's libvmaf filter graph does for low-resolution encodes (a 10-bit rung of a 12-bit
    master is scored at 12 bits); otherwise a size mismatch is an error.
    ``on_length_mismatch="prefix"`` scores the common prefix (with a warning) instead of
    failing on different frame counts.
    ``mode``: ``"exact"`` (libvmaf's integer features; the default for ``vmaf_v0.6.1``,
    ``vmaf_v0.6.1neg``, ``vmaf_4k_v0.6.1``) or ``"float"`` (the default for ``vmaf_float_*``).
    ``aim``: float mode also reports ``aim``/``adm3`` (:class:`~.vmaf.VmafScorer`).
    ``decoder_threads``: ffmpeg's decoder threads for both files (1: a damaged file's
    concealment is the same on every run; the corpus passes 1).
    ``check_timestamps``: warn where frame i of the two files is shown at other moments (one
    ffmpeg packet listing per file; the corpus, whose encodes keep every source frame's
    timestamp, skips it).
    """
    from .model_v1016 import is_v1016_model

    check_device(device)
    _warn_on_conversions(ref, dist, ref_raw, dist_raw, rescale=rescale)
    if is_v1016_model(model):  # CAMBI/SpEED/adm3/motion3 models: their own streaming scorer
        from .v1016 import score_files_v1016

        _refuse_float_v1016(model, mode)
        return score_files_v1016(
            ref, dist, model=model, device=device, chunk=chunk, ref_raw=ref_raw,
            dist_raw=dist_raw, rescale=rescale, scale_flags=scale_flags,
            on_length_mismatch=on_length_mismatch, progress=progress,
            decoder_threads=decoder_threads, check_timestamps=check_timestamps,
        )
    started = time.perf_counter()
    scorer = VmafScorer(model, device=device, dtype=dtype, mode=mode, aim=aim)
    ref_info, _ = _probe_pair(ref, dist, ref_raw, dist_raw,
                              one_depth=scorer.mode == "exact" and not rescale,
                              warn_depths=scorer.mode == "float" and not rescale,
                              check_timestamps=check_timestamps)
    pairs = prefetched(iter_frame_pairs(
        ref, dist, chunk=chunk,
        ref_opts={**_raw_opts(ref_raw), "decoder_threads": decoder_threads},
        dist_opts={**_raw_opts(dist_raw), "decoder_threads": decoder_threads},
        scale_dist_to_ref=rescale, scale_flags=scale_flags,
        on_length_mismatch=on_length_mismatch,
    ))  # the next chunk pair decodes while this one is scored
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=ref_info.num_frames, unit="frame", desc="vmaf", leave=False)
    try:
        for k, (ref_chunk, dist_chunk) in enumerate(pairs, 1):
            scorer.update(ref_chunk.y, dist_chunk.y, ref_bit_depth=ref_chunk.bit_depth,
                          dist_bit_depth=dist_chunk.bit_depth)
            if k % TRIM_EVERY_CHUNKS == 0:
                trim_heap()  # a long clip's chunks fragment the heap: RSS grew per frame
            if bar is not None:
                bar.update(len(ref_chunk))
    finally:
        if bar is not None:
            bar.close()
    result = scorer.result()
    elapsed = time.perf_counter() - started
    result.info.update(
        {
            "reference": str(ref),
            "distorted": str(dist),
            "width": ref_info.width,
            "height": ref_info.height,
            "device": str(scorer.device),
            "mode": scorer.mode,
            "dtype": str(dtype).replace("torch.", "") if scorer.mode == "float" else "int",
            "rescale": scale_flags if rescale else None,
            "wall_s": elapsed,
            "fps": result.num_frames / elapsed if elapsed > 0 else float("nan"),
        }
    )
    return result


def to_libvmaf_json(result: VmafResult) -> dict[str, Any]:
    """The result in libvmaf's JSON log layout (``frames[].frameNum/metrics``, pooled)."""
    frames = [
        {"frameNum": i, "metrics": {k: _log_number(v) for k, v in frame.items()}}
        for i, frame in enumerate(result.frames(printed=True))
    ]
    pooled = {
        result.printed.get(name, name): {
            stat: _log_number(value) for stat, value in stats.items()
        }
        for name, stats in result.pooled.items()
    }
    kind = "integer features, exact mode" if result.mode == "exact" else "float features"
    return {
        "version": f"vmafdistill {__version__} (torch teacher, {kind})",
        "model": result.model,
        # null when unknown (a VmafScorer's result): NaN is not JSON (strict parsers refuse it)
        "fps": _fps_field(result.info.get("fps")),
        "frames": frames,
        "pooled_metrics": pooled,
        "aggregate_metrics": {},  # libvmaf always writes it (empty for these models)
        "info": {k: v for k, v in result.info.items() if k not in ("fps",)},
    }


def _fps_field(fps: Any) -> float | None:
    """libvmaf's ``fps`` field (two decimals), None where the rate is unknown or not finite."""
    if fps is None or not math.isfinite(float(fps)):
        return None
    return round(float(fps), 2)


def write_json(result: VmafResult, path: str | Path) -> None:
    """Write :func:`to_libvmaf_json` to ``path`` (``"-"``: stdout)."""
    text = json.dumps(to_libvmaf_json(result), indent=2) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
    else:
        atomic_write_text(path, text)  # a Ctrl-C mid-write left a short file that parsed


def write_csv(result: VmafResult, path: str | Path) -> None:
    """Write one row per frame (``Frame`` then the metric names libvmaf prints) to ``path``
    (``"-"``: stdout)."""
    frames = result.frames(printed=True)
    names = list(frames[0]) if frames else []
    # built whole, then written at once: row by row, a Ctrl-C left 228 of 1000 rows, each
    # line whole, a file that parsed as complete
    fh = io.StringIO(newline="")
    writer = csv.writer(fh, lineterminator="\n")  # libvmaf's rows end in LF (csv's: CRLF)
    writer.writerow(["Frame", *names])
    for i, frame in enumerate(frames):
        writer.writerow([i, *(f"{frame[n]:.{log_decimals(frame[n])}f}" for n in names)])
    if str(path) == "-":
        sys.stdout.write(fh.getvalue())
    else:
        atomic_write_text(path, fh.getvalue())
