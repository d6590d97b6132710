"""Does subsampling the cut-detection histograms change the shots the edge finds?

    python scripts/check_cut_step.py [VIDEO_OR_GLOB ...]

For every video (default: every cached corpus encode, the unseen set and the bench clip) the edge's
cut detector (the shipped card's shot settings) runs on full-resolution histograms (step 1) and on
every s-th row and column for s = 2, 4 and the automatic step (`auto_cut_step`, >= 320x180
samples per frame). Prints, per step, how many videos got different cuts and which sizes they
have. The figures in docs/edge.md come from this script.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from vmafdistill.benchmarks import run_script, video_files
from vmafdistill.edge.pipeline import auto_cut_step, cut_histograms, decode_luma
from vmafdistill.errors import VmafDistillError
from vmafdistill.io.video import probe_video
from vmafdistill.shots import ShotDetector

REPO = Path(__file__).resolve().parents[1]


def cuts_by_step(path: str, steps: list[int], shots_kw: dict) -> dict[int, list[int]]:
    """Cut frames of ``path`` for each histogram step (one decode, all steps at once)."""
    info = probe_video(path)
    dets = {s: ShotDetector(fps=info.fps, **shots_kw) for s in steps}
    for y in decode_luma(path, width=info.width, height=info.height, bit_depth=info.bit_depth):
        for s, det in dets.items():
            det.update_hist(cut_histograms(y, info.bit_depth, step=s), info.bit_depth)
    return {s: det.cuts() for s, det in dets.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", help="files or globs (default: the cached encodes)")
    ap.add_argument("--card", default=str(REPO / "checkpoints/vmafdistill_default.card.json"))
    args = ap.parse_args()
    shots_kw = json.loads(Path(args.card).read_text())["edge"]["shots"]
    files = video_files(args.videos, REPO)
    changed: Counter = Counter()
    sizes_changed: dict[str, Counter] = {}
    n_videos = n_cuts = n_subsampled = 0
    for f in files:
        try:
            info = probe_video(f)
        except VmafDistillError as exc:
            print(f"skip {f}: {exc}")
            continue
        auto = auto_cut_step(info.width, info.height)
        steps = sorted({1, 2, 4, auto})
        cuts = cuts_by_step(f, steps, shots_kw)
        n_videos += 1
        n_cuts += len(cuts[1])
        labels = {2: "s=2", 4: "s=4"}
        for s in steps[1:]:
            names = [labels[s]] if s in labels else []
            if s == auto:
                names.append("auto")
            for name in names:
                if cuts[s] != cuts[1]:
                    changed[name] += 1
                    sizes_changed.setdefault(name, Counter())[
                        f"{info.width}x{info.height}"] += 1
        n_subsampled += auto > 1
    print(f"{n_videos} videos, {n_cuts} cuts at full resolution")
    for name in ("s=2", "s=4", "auto"):
        sizes = dict(sizes_changed.get(name, {}))
        print(f"{name}: {changed[name]} videos with different cuts {sizes}")
    print(f"auto subsampled {n_subsampled} of them (the others have < 4x the 320x180 samples "
          "and keep step 1)")
    return 0


if __name__ == "__main__":
    run_script(main)
