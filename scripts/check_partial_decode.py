"""Could the edge decode fewer frames? Exactness and shot cuts under ffmpeg's ``-skip_frame``.

    python scripts/check_partial_decode.py [VIDEO_OR_GLOB ...]

Decoding is the floor of the edge chain (docs/benchmarks.md). ffmpeg can skip frames before
decoding them (what this measures is whether *shot cuts* survive that; the shipped student also
reads `temporal_std` from every frame pair, which skipping frames would change as well):
``bidir`` skips every B-frame, ``noref`` every frame no other frame references. For every video
(default: every cached corpus encode, the unseen set and the bench clip) this decodes the luma
three times with the edge's own ffmpeg command (full, bidir, noref; ``showinfo`` gives each
output frame's pts and type), and reports per option and codec:

* how many frames come out, and whether they are bit-identical to the same frames of the full
  decode (matched by pts): a skipped reference makes later frames wrong;
* the shot cuts the edge's detector finds when each skipped frame repeats the last decoded
  frame's histogram (frame indices and the minimum shot length keep their meaning), against
  the full decode's cuts;
* on the bench clip, the wall time of each decode to a pipe (3 interleaved runs, medians).

The figures in docs/benchmarks.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from vmafdistill._ffmpeg import ffmpeg_exe
from vmafdistill.benchmarks import video_files
from vmafdistill.edge.pipeline import auto_cut_step, cut_histograms
from vmafdistill.errors import VmafDistillError
from vmafdistill.io.video import probe_video
from vmafdistill.shots import ShotDetector

REPO = Path(__file__).resolve().parents[1]
BENCH_CLIP = "/tmp/bench_edge/d360_60s.mp4"
OPTIONS = ("bidir", "noref")
_SHOWINFO = re.compile(r"\[Parsed_showinfo[^\]]*\] n:\s*\d+ pts:\s*(-?\d+).*?type:(\w)")
_CODEC = re.compile(r"Video: (\w+)")


def _cmd(path: str, skip: str | None, showinfo: bool) -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel",
            "info" if showinfo else "error", "-threads", "0",
            *(["-skip_frame", skip] if skip else []), "-i", path, "-map", "0:V:0",
            "-vf", "extractplanes=y" + (",showinfo" if showinfo else ""),
            "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"]


def decode(path: str, width: int, height: int, skip: str | None):
    """(frames (n, h, w) uint8, pts list, frame-type letters, codec) of one decode."""
    proc = subprocess.run(_cmd(path, skip, True), capture_output=True, check=True)
    y = np.frombuffer(proc.stdout, np.uint8).reshape(-1, height, width)
    log = proc.stderr.decode(errors="replace")
    info = _SHOWINFO.findall(log)
    if len(info) != y.shape[0]:
        raise SystemExit(f"{path} ({skip}): {len(info)} showinfo lines, {y.shape[0]} frames")
    codec = _CODEC.search(log)
    return y, [int(p) for p, _ in info], "".join(t for _, t in info), (
        codec.group(1) if codec else "?")


def cuts_of(hists: np.ndarray, fps: float, shots_kw: dict) -> list[int]:
    det = ShotDetector(fps=fps, **shots_kw)
    det.update_hist(hists, 8)
    return det.cuts()


def check_video(path: str, shots_kw: dict) -> dict | None:
    info = probe_video(path)
    if info.bit_depth != 8:
        return None
    w, h = info.width, info.height
    step = auto_cut_step(w, h)
    full, pts, types, codec = decode(path, w, h, None)
    index_of = {p: i for i, p in enumerate(pts)}
    cuts_full = cuts_of(cut_histograms(full, 8, step=step), info.fps, shots_kw)
    rec = {"path": path, "codec": codec, "size": f"{w}x{h}", "frames": len(pts),
           "cuts": cuts_full, "cut_types": [types[c] for c in cuts_full]}
    for skip in OPTIONS:
        part, pts_s, _, _ = decode(path, w, h, skip)
        idx = np.array([index_of[p] for p in pts_s])
        diff = np.abs(part.astype(np.int16) - full[idx].astype(np.int16))
        wrong = diff.reshape(len(idx), -1).max(axis=1) > 0 if len(idx) else np.zeros(0, bool)
        # each skipped frame repeats the last decoded frame's histogram (the first decoded
        # frame's before it), so cut frame indices stay those of the full stream
        last = np.maximum.accumulate(np.where(np.isin(np.arange(len(pts)), idx),
                                              np.arange(len(pts)), -1))
        last[last < 0] = idx[0]
        hist = cut_histograms(part, 8, step=step)[np.searchsorted(idx, last)]
        rec[skip] = {"decoded": len(idx), "wrong_frames": int(wrong.sum()),
                     "max_abs_diff": int(diff.max()) if diff.size else 0,
                     "cuts": cuts_of(hist, info.fps, shots_kw)}
    return rec


def timing(path: str, rounds: int = 3) -> dict[str, float]:
    """Median wall seconds of the edge's decode-to-pipe command, per option, interleaved."""
    def once(skip: str | None) -> float:
        t = time.perf_counter()
        proc = subprocess.Popen(_cmd(path, skip, False), stdout=subprocess.PIPE, bufsize=0)
        buf = bytearray(1 << 22)
        while proc.stdout.readinto(buf):
            pass
        if proc.wait() != 0:
            raise SystemExit(f"{path}: decode failed ({skip})")
        return time.perf_counter() - t

    once(None)  # page cache
    runs: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for skip in (None, *OPTIONS):
            runs[skip or "full"].append(once(skip))
    return {k: statistics.median(v) for k, v in runs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", help="files or globs (default: the cached encodes)")
    ap.add_argument("--card", default=str(REPO / "checkpoints/vmafdistill_default.card.json"))
    args = ap.parse_args()
    shots_kw = json.loads(Path(args.card).read_text())["edge"]["shots"]
    files = video_files(args.videos, REPO)
    recs = []
    for f in files:
        try:
            rec = check_video(f, shots_kw)
        except (VmafDistillError, subprocess.CalledProcessError) as exc:
            print(f"skip {f}: {exc}")
            continue
        if rec is not None:
            recs.append(rec)
    print(f"{len(recs)} videos (8-bit)\n")
    print("| codec | option | videos | frames decoded | videos bit-exact | wrong frames | "
          "max abs diff | videos with the full decode's cuts |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for codec in sorted({r["codec"] for r in recs}):
        rs = [r for r in recs if r["codec"] == codec]
        total = sum(r["frames"] for r in rs)
        for skip in OPTIONS:
            dec = sum(r[skip]["decoded"] for r in rs)
            print(f"| {codec} | {skip} | {len(rs)} | {dec / total:.1%} | "
                  f"{sum(r[skip]['wrong_frames'] == 0 for r in rs)} | "
                  f"{sum(r[skip]['wrong_frames'] for r in rs)} | "
                  f"{max(r[skip]['max_abs_diff'] for r in rs)} | "
                  f"{sum(r[skip]['cuts'] == r['cuts'] for r in rs)} |")
    types = Counter(t for r in recs for t in r["cut_types"])
    print(f"\nframe type at the full decode's cuts: {dict(types)}")
    for skip in OPTIONS:
        moved = [r for r in recs if r[skip]["cuts"] != r["cuts"]]
        print(f"\n{skip}: cuts differ on {len(moved)} videos")
        for r in moved:
            print(f"  {Path(r['path']).name} {r['codec']} {r['size']} full={r['cuts']} "
                  f"{skip}={r[skip]['cuts']}")
    if Path(BENCH_CLIP).is_file():
        med = timing(BENCH_CLIP)
        print(f"\ndecode to a pipe, {BENCH_CLIP} (3 interleaved runs, medians): " + ", ".join(
            f"{k} {v:.3f} s" for k, v in med.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
