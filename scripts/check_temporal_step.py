"""Does subsampling the every-frame temporal pass change what a temporal student predicts?

    python scripts/check_temporal_step.py --model STUDENT.onnx [VIDEO_OR_GLOB ...]

For a student whose only pixel inputs are temporal (``temporal_diff`` / ``temporal_std``, e.g.
``features=quant_ti7``), the edge computes them on every frame from every s-th row and column
(``edge.temporal_pixel_step``; 0 = automatic, >= 160x90 samples per frame). For every video
(default: every cached corpus encode, the unseen set and the bench clip) this runs the real edge
chain with s = 1 (exact: the corpus's values) and with the automatic step, and prints per frame
size the largest change of the shot's ``temporal_std`` (relative) and of the prediction (VMAF).
The figures in docs/edge.md come from this script.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from vmafdistill.benchmarks import run_script, video_files
from vmafdistill.edge.pipeline import EdgeOptions, analyze_video, auto_temporal_step
from vmafdistill.edge.predictor import Predictor
from vmafdistill.edge.tokens import DEFAULT_RULES, merge_rules
from vmafdistill.errors import VmafDistillError
from vmafdistill.io.video import probe_video

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", help="files or globs (default: the cached encodes)")
    ap.add_argument("--model", required=True, help="a student whose pixel inputs are temporal")
    args = ap.parse_args()
    pred = Predictor(args.model)
    rules = merge_rules(DEFAULT_RULES, pred.card.get("tokens"))
    edge = pred.card.get("edge")
    exact, auto = (EdgeOptions.from_card(edge, temporal_pixel_step=s) for s in (1, 0))
    if exact.temporal_step(pred.feature_names, 64, 64) is None:
        raise SystemExit(f"{args.model}: its pixel inputs are not all temporal")
    files = video_files(args.videos, REPO)
    by_size: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    deltas: list[float] = []
    for f in files:
        try:
            info = probe_video(f)
            a = analyze_video(f, pred, rules=rules, options=exact)
            b = analyze_video(f, pred, rules=rules, options=auto)
        except VmafDistillError as exc:
            print(f"skip {f}: {exc}")
            continue
        pa = np.array([r["pred_vmaf"] for r in a.records], dtype=float)
        pb = np.array([r["pred_vmaf"] for r in b.records], dtype=float)
        ta = np.array([r["temporal_std"] for r in a.rows])
        tb = np.array([r["temporal_std"] for r in b.rows])
        rel = np.abs(tb - ta) / np.maximum(np.abs(ta), 1e-9)
        step = auto_temporal_step(info.width, info.height)
        by_size[f"{info.width}x{info.height} (s={step})"].append(
            (float(np.nanmax(rel)), float(np.nanmax(np.abs(pb - pa))), len(pa)))
        deltas.extend(np.abs(pb - pa).tolist())
    print("| frame size (auto step) | videos | shots | max rel. change of temporal_std | "
          "max abs change of pred (VMAF) |")
    print("|---|---:|---:|---:|---:|")
    for size, vals in sorted(by_size.items(), key=lambda kv: -len(kv[1])):
        print(f"| {size} | {len(vals)} | {sum(v[2] for v in vals)} | "
              f"{max(v[0] for v in vals):.4f} | {max(v[1] for v in vals):.3f} |")
    d = np.array(deltas)
    print(f"\nall {len(d)} shots: |delta pred| max {d.max():.3f}, mean {d.mean():.4f}, "
          f"99th percentile {np.percentile(d, 99):.3f} VMAF")
    return 0


if __name__ == "__main__":
    run_script(main)
