#!/usr/bin/env python
"""VMAF v1.0.16 speed: libvmaf (ffmpeg, the model file) vs the PyTorch teacher, one run.

Reproduce with ``python scripts/bench_v1016.py`` (a few minutes on 2 cores). It decodes the
packaged Big Buck Bunny clip (1280x720) and an x264 CRF 30 encode of it to raw yuv420p (the
model reads chroma: SpEED), then times whole processes on those files, interleaved and repeated:
ffmpeg + libvmaf running ``vmaf_v1.0.16_3d0h.json`` (``n_threads`` = all cores) and
``vmafdistill score --model vmaf_v1.0.16_3d0h`` on the CPU; checks that both print the same pooled
VMAF; and writes the table to ``docs/benchmarks.md`` (section "Teacher, VMAF v1.0.16").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vmafdistill._ffmpeg import ffmpeg_exe  # noqa: E402
from vmafdistill.benchmarks import (  # noqa: E402
    bbb_raw_pair,
    machine_line,
    positive_int,
    run_script,
    run_timed,
)
from vmafdistill.oracle import _escape, _filter_escape  # noqa: E402
from vmafdistill.teacher.model_v1016 import resolve_v1016_path  # noqa: E402

SECTION = "## Teacher, VMAF v1.0.16: `vmafdistill score` vs libvmaf"
#: How far the two pooled VMAFs may lie apart (both print 6 decimals; the teacher's exact mode
#: matches libvmaf's to those, docs/teacher.md): room for another CPU's float rounding.
POOLED_TOL = 1e-3


def libvmaf_cmd(ref: Path, dist: Path, model: Path, threads: int, log: Path) -> list[str]:
    """ffmpeg + libvmaf with a model file on raw yuv420p 1280x720 (distorted first)."""
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "1280x720"]
    opts = (f"model={_escape('path=' + _escape(str(model), 1), 1)}:n_threads={threads}:"
            f"log_fmt=json:log_path={_escape(str(log), 1)}")
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            *raw, "-i", str(dist), *raw, "-i", str(ref),
            "-lavfi", f"[0:v][1:v]libvmaf={_filter_escape(opts)}", "-f", "null", "-"]


def teacher_cmd(ref: Path, dist: Path, model: str, out: Path) -> list[str]:
    """``vmafdistill score`` as a user runs it."""
    return [sys.executable, "-m", "vmafdistill", "score", str(ref), str(dist), "--width", "1280",
            "--height", "720", "--pix-fmt", "yuv420p", "--model", model, "--quiet",
            "--json", str(out)]


def main() -> int:
    """Run the benchmark and write its section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=positive_int, default=48,
                        help="frames of the 720p clip")
    parser.add_argument("--model", default="vmaf_v1.0.16_3d0h")
    parser.add_argument("--repeat", type=positive_int, default=3,
                        help="interleaved repeats (median)")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    model_path = resolve_v1016_path(args.model)  # before the clips (a typo failed after them)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_v1016_") as tmp:  # it was left behind
        return measure(args, Path(tmp), model_path, load_before)


def measure(args: argparse.Namespace, work: Path, model_path: Path, load_before: float) -> int:
    """The interleaved runs on raw files made under ``work``; writes the section of ``--out``
    when both print the same pooled VMAF (exit 1 otherwise). Long because it is one
    measurement end to end: runs, the pooled check and the section text."""
    threads = os.cpu_count() or 1
    ref, dist, frames = bbb_raw_pair(work, args.frames)
    runs = {
        f"libvmaf, {model_path.name} (n_threads={threads})":
            (libvmaf_cmd(ref, dist, model_path, threads, work / "lib.json"), work / "lib.json"),
        f"vmafdistill score --model {args.model}, CPU":
            (teacher_cmd(ref, dist, args.model, work / "torch.json"), work / "torch.json"),
    }
    walls: dict[str, list[float]] = {label: [] for label in runs}
    cpus: dict[str, list[float]] = {label: [] for label in runs}
    for rep in range(args.repeat):
        for label, (cmd, _) in runs.items():
            t = run_timed(cmd)
            walls[label].append(t.wall_s)
            cpus[label].append(t.cpu_s)
            print(f"[{rep + 1}/{args.repeat}] {label}: {frames / t.wall_s:.2f} frames/s "
                  f"({t.wall_s:.1f} s wall, {t.cpu_s:.1f} s CPU)", flush=True)
    pooled = {label: json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"]
              for label, (_, log) in runs.items()}
    lib_label, torch_label = list(runs)
    ratios = [a / b for a, b in zip(walls[lib_label], walls[torch_label], strict=True)]
    print(f"teacher / libvmaf speed per repeat: {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"pooled VMAF {pooled[torch_label]:.6f} vs libvmaf {pooled[lib_label]:.6f}")
    # said it checked; it printed (not <=: a NaN fails too)
    if not abs(pooled[torch_label] - pooled[lib_label]) <= POOLED_TOL:
        print(f"error: the pooled VMAFs differ by more than {POOLED_TOL:g}: the teacher is not "
              "libvmaf's numbers here; the section is not written", file=sys.stderr)
        return 1

    lines = [
        SECTION, "",
        f"Measured {time.strftime('%Y-%m-%d')} by `python scripts/bench_v1016.py` on: "
        f"{machine_line()}; load average before the run "
        f"{load_before:.1f}.", "",
        f"Big Buck Bunny 1280x720, {frames} frames, reference vs an x264 CRF 30 encode, raw "
        f"yuv420p; whole processes, median of {args.repeat} interleaved runs. Teacher / libvmaf "
        f"speed per run: {', '.join(f'{r:.3f}' for r in ratios)}. Pooled VMAF: teacher "
        f"{pooled[torch_label]:.6f}, libvmaf {pooled[lib_label]:.6f}.", "",
        "| run | frames/s | wall s | CPU s | vs libvmaf |", "|---|---:|---:|---:|---:|",
    ]
    lib_fps = frames / statistics.median(walls[lib_label])
    for label in runs:
        wall = statistics.median(walls[label])
        lines.append(f"| {label} | {frames / wall:.2f} | {wall:.1f} | "
                     f"{statistics.median(cpus[label]):.1f} | {frames / wall / lib_fps:.3f}x |")
    _write_section(Path(args.out), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _write_section(doc: Path, text: str) -> None:
    """Replace (or append) this benchmark's section of ``doc``."""
    old = doc.read_text() if doc.exists() else ""
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    new = pattern.sub(lambda _: text.rstrip("\n"), old) if SECTION in old else (
        old.rstrip("\n") + "\n\n" + text)
    doc.write_text(new if new.endswith("\n") else new + "\n")


if __name__ == "__main__":
    run_script(main)
