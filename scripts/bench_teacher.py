#!/usr/bin/env python
"""Teacher speed benchmark: libvmaf (ffmpeg) vs the PyTorch teacher, same raw files, one run.

Reproduce with ``python scripts/bench_teacher.py`` (about 4 minutes on 2 cores). It

1. decodes the packaged Big Buck Bunny clip (1280x720, 132 frames) to raw YUV and an x264
   CRF 30 encode of it to raw YUV (so nobody pays for H.264 decoding in the timed runs);
2. times whole processes on those files, interleaved: ffmpeg+libvmaf with the integer model
   (the default) and the float model, each with ``n_threads`` = all cores, and ``vmafdistill
   score`` in exact mode (libvmaf's integer model) and in float mode on CPU (and on CUDA when
   a GPU is present);
3. breaks the teacher's time down per stage in-process (VIF, ADM, motion, SVR; exact and float);
   with a GPU, also times exact mode on batches of 1080p frames on the GPU (frames/s, batch
   size, device name) -- ``--gpu-only`` runs just that;
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vmafdistill._ffmpeg import ffmpeg_exe, ffmpeg_version, run_ffmpeg  # noqa: E402
from vmafdistill.benchmarks import (  # noqa: E402
    bbb_raw_pair,
    cpu_model,
    positive_int,
    run_script,
    run_timed,
)


def libvmaf_cmd(ref: Path, dist: Path, size: str, model: str, threads: int) -> list[str]:
    """ffmpeg + libvmaf on raw yuv420p files (distorted first, as libvmaf expects)."""
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size]
    graph = f"[0:v][1:v]libvmaf=model=version={model}:n_threads={threads}"
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            *raw, "-i", str(dist), *raw, "-i", str(ref), "-lavfi", graph, "-f", "null", "-"]


def teacher_cmd(
    ref: Path, dist: Path, width: int, height: int, device: str, mode: str = "exact"
) -> list[str]:
    """``vmafdistill score`` as a user runs it."""
    return [sys.executable, "-m", "vmafdistill", "score", str(ref), str(dist), "--width",
            str(width), "--height", str(height), "--pix-fmt", "yuv420p", "--device", device,
            "--mode", mode, "--quiet"]


def exact_stage_breakdown(r: np.ndarray, d: np.ndarray) -> dict[str, float]:
    """Milliseconds per frame of each exact-mode stage on decoded 8-bit frames ``(N, H, W)``."""
    import torch

    from vmafdistill.teacher.exact.features import FRAMES_PER_CALL_CPU
    from vmafdistill.teacher.exact.integer_adm import integer_adm
    from vmafdistill.teacher.exact.integer_vif import integer_vif
    from vmafdistill.teacher.motion3 import Motion3Options, motion_sad_scores

    rt, dt = torch.from_numpy(r), torch.from_numpy(d)  # decoded uint8, as `score` passes them
    g = FRAMES_PER_CALL_CPU
    out = {}
    # Warm-up: the first call of a process loads the compiled kernels (numba's cache).
    integer_vif(rt[:1], dt[:1], 8)
    integer_adm(rt[:1], dt[:1], 8)
    motion_sad_scores(rt[:2], 8, Motion3Options())
    for name, fn in [
        ("exact: integer VIF (4 scales)",
         lambda: [integer_vif(rt[i:i + g], dt[i:i + g], 8) for i in range(0, len(rt), g)]),
        ("exact: integer ADM (4 scales)",
         lambda: [integer_adm(rt[i:i + g], dt[i:i + g], 8) for i in range(0, len(rt), g)]),
        ("exact: integer motion", lambda: motion_sad_scores(rt, 8, Motion3Options())),
    ]:
        t0 = time.perf_counter()
        fn()
        out[name] = (time.perf_counter() - t0) * 1000 / len(rt)
    return out


def gpu_batched(batch: int = 32, rounds: int = 5) -> dict[str, object] | None:
    """Exact-mode features + SVR on the GPU, batches of 1080p frames already on the device.

    Returns frames/s (median round), batch size and device name; None without CUDA.
    """
    import torch

    if not torch.cuda.is_available():
        return None
    from vmafdistill.teacher.exact.features import exact_frame_features
    from vmafdistill.teacher.model import VmafModel

    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    ref = torch.randint(0, 256, (batch, 1080, 1920), generator=gen, device=dev)
    # A realistic distortion: ref plus small noise (random frames would be too easy for nothing).
    dist = (ref + torch.randint(-6, 7, ref.shape, generator=gen, device=dev)).clamp(0, 255)
    model = VmafModel.load("vmaf_v0.6.1")
    opts = model.exact_options
    # Batched on the GPU: ADM takes the whole batch at once there (see features.py).
    exact_frame_features(ref[:2], dist[:2], 8, opts)  # warm-up (kernels, cuBLAS handles)
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        feats, _ = exact_frame_features(ref, dist, 8, opts)
        feats["motion2"] = feats["motion"]
        model.predict(feats)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    wall = statistics.median(times)
    return {"fps": batch / wall, "batch": batch, "device": torch.cuda.get_device_name(0),
            "rounds": rounds}


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
    parser.add_argument("--frames", type=positive_int, default=132,
                        help="frames of the 720p clip")
    parser.add_argument("--frames-1080p", type=positive_int, default=60,
                        help="frames for the memory run")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    parser.add_argument("--workdir", help="keep the raw files here (default: a temp dir)")
    parser.add_argument("--repeat", type=positive_int, default=3,
                        help="interleaved repeats (median)")
    parser.add_argument("--torch-threads", type=positive_int,
                        help="intra-op threads of the teacher processes (OMP_NUM_THREADS; "
                        "default: torch's own choice). On an oversubscribed machine OpenMP "
                        "threads that wait for each other can be 10x slower than one thread")
    parser.add_argument("--skip-1080p", action="store_true", help="skip the 1080p memory run")
    parser.add_argument("--gpu-batch", type=positive_int, default=32, help="frames per GPU batch")
    parser.add_argument("--gpu-only", action="store_true",
                        help="only the batched 1080p exact-mode GPU benchmark (prints, no file)")
    args = parser.parse_args()

    if args.torch_threads:
        # Inherited by the `vmafdistill score` processes; set before torch is imported here.
        os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)

    if args.gpu_only:
        res = gpu_batched(args.gpu_batch)
        print(res if res else "no CUDA device: nothing to measure")
        return 0 if res else 1

    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        return measure(args, work)
    # ~740 MB of raw 720p and 1080p frames were left in /tmp by every run, and every failure
    with tempfile.TemporaryDirectory(prefix="bench_teacher_") as tmp:
        return measure(args, Path(tmp))


def measure(args: argparse.Namespace, work: Path) -> int:
    """The benchmark on raw files made under ``work``; writes its section of ``--out``.
    Long because it is one measurement run end to end: the interleaved whole-process runs,
    the stage breakdown, the 1080p memory run and the section text."""
    import torch

    threads = os.cpu_count() or 1
    ref, dist, frames = bbb_raw_pair(work, args.frames)

    runs = [
        (f"libvmaf, integer model vmaf_v0.6.1 (n_threads={threads})",
         libvmaf_cmd(ref, dist, "1280x720", "vmaf_v0.6.1", threads)),
        (f"libvmaf, float model vmaf_float_v0.6.1 (n_threads={threads})",
         libvmaf_cmd(ref, dist, "1280x720", "vmaf_float_v0.6.1", threads)),
        ("vmafdistill score --mode exact, CPU", teacher_cmd(ref, dist, 1280, 720, "cpu")),
        ("vmafdistill score --mode float, CPU",
         teacher_cmd(ref, dist, 1280, 720, "cpu", "float")),
        # The same exact mode without the compiled kernels: what they gain, in the same run.
        ("vmafdistill score --mode exact, CPU, torch path (VMAFDISTILL_EXACT_KERNELS=torch)",
         ["env", "VMAFDISTILL_EXACT_KERNELS=torch", *teacher_cmd(ref, dist, 1280, 720, "cpu")]),
    ] + ([("vmafdistill score --mode exact, CUDA", teacher_cmd(ref, dist, 1280, 720, "cuda")),
          ("vmafdistill score --mode float, CUDA",
           teacher_cmd(ref, dist, 1280, 720, "cuda", "float"))]
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
    exact_fps, float_fps = rows[2][1], rows[3][1]
    ratios = [w_int / w for w_int, w in zip(walls[rows[0][0]], walls[rows[2][0]], strict=True)]
    print(f"exact teacher / libvmaf-integer speed per repeat: "
          f"{', '.join(f'{r:.3f}' for r in ratios)}; exact / float teacher "
          f"{exact_fps / float_fps:.2f}x; compiled kernels / torch path "
          f"{exact_fps / rows[4][1]:.2f}x")

    stages = stage_breakdown(ref, dist, 1280, 720, min(16, frames))
    from vmafdistill.io import read_all

    opts = {"width": 1280, "height": 720, "pix_fmt": "yuv420p"}
    nst = min(8, frames)
    stages.update(exact_stage_breakdown(read_all(ref, **opts).y[:nst],
                                        read_all(dist, **opts).y[:nst]))
    for k, v in stages.items():
        print(f"  {k}: {v:.1f} ms/frame")
    gpu = gpu_batched(args.gpu_batch)
    gpu_line = (f"GPU, exact mode, batches of {gpu['batch']} 1080p frames on {gpu['device']}: "
                f"{gpu['fps']:.0f} frames/s (features + SVR, frames already on the device, "
                f"median of {gpu['rounds']} batches)." if gpu else
                "GPU: none on this machine (`python scripts/bench_teacher.py --gpu-only` "
                "measures exact mode on batches of 1080p frames where there is one); the GPU "
                "figures are in [Teacher on a GPU](#teacher-on-a-gpu).")
    print(gpu_line)

    # 1080p memory: upscale the same content, score the whole thing in one process.
    if args.skip_1080p:
        args.frames_1080p = 0
    n1080 = str(args.frames_1080p)
    ref1080, dist1080 = work / "ref1080.yuv", work / "dist1080.yuv"
    for inp, out in [] if args.skip_1080p else [(ref, ref1080), (dist, dist1080)]:
        run_ffmpeg(["-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "1280x720", "-i",
                    str(inp), "-frames:v", n1080, "-vf", "scale=1920:1080:flags=bicubic",
                    "-f", "rawvideo", "-pix_fmt", "yuv420p", str(out)], what="upscaling to 1080p")
    if not args.skip_1080p:
        t1080 = run_timed(teacher_cmd(ref1080, dist1080, 1920, 1080, "cpu"), peak_rss=True)
        wall1080, rss1080 = t1080.wall_s, t1080.peak_rss_kb
        frames1080 = ref1080.stat().st_size // (1920 * 1080 * 3 // 2)
        print(f"1080p: {frames1080 / wall1080:.2f} frames/s, peak RSS {rss1080 / 1024:.0f} MB")
        mem_line = (f"1080p (same content upscaled, {frames1080} frames): `vmafdistill score` "
                    f"(exact) {frames1080 / wall1080:.2f} frames/s, peak RSS "
                    f"{rss1080 / 1024:.0f} MB (frames are streamed in chunks; memory does not "
                    "grow with length).")
    else:
        mem_line = "1080p memory run skipped (--skip-1080p)."

    lines = [
        "## Teacher: `vmafdistill score` vs libvmaf",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `python scripts/bench_teacher.py` on: "
        f"{machine()}.",
        "",
        f"Same raw YUV files for every row: Big Buck Bunny 1280x720, {frames} frames, reference "
        "vs an x264 CRF 30 encode. Whole processes, start-up and reading included; median of "
        f"{args.repeat} interleaved runs; teacher intra-op threads: "
        f"{args.torch_threads or 'torch default'}. Exact teacher / libvmaf-integer speed "
        "ratio per run: "
        f"{', '.join(f'{r:.3f}' for r in ratios)}; exact / float teacher "
        f"{exact_fps / float_fps:.2f}x; exact mode's compiled kernels / its torch path "
        f"{exact_fps / rows[4][1]:.2f}x.",
        "",
        "| run | frames/s | wall s | vs libvmaf integer | vs libvmaf float | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, fps, wall, rss, _ in rows:
        lines.append(f"| {label} | {fps:.2f} | {wall:.2f} | {fps / base_int:.3f}x | "
                     f"{fps / base_float:.3f}x | {rss / 1024:.0f} |")
    lines += [
        "",
        mem_line,
        "",
        gpu_line,
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
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_script(main)
