"""Generate deterministic synthetic training sources with ffmpeg's lavfi (no media committed).

Broader training content for cross-content students (``conf/corpus/skvideo_synth.yaml``):
clips that span content difficulty from trivially compressible (slow pans over bars, smooth
gradients) to incompressible (temporal noise, cellular automata), so a rate student sees
"few bits because simple" as well as "few bits because heavily quantised". Every clip is
256x144, 25 fps, 1.6 s (40 frames; small so the corpus builds in ~5 min with workers=1),
encoded losslessly (x264 ``-qp 0``, bitexact, fixed seeds): the same files on every run.

    python scripts/make_synth_sources.py [--out .cache/synth_sources]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vmafdistill._ffmpeg import run_ffmpeg  # noqa: E402

FPS = 25
W, H = 256, 144
SECONDS = 1.6

#: name -> lavfi graph producing W x H at FPS (any length; cut to SECONDS).
SOURCES: dict[str, str] = {
    # slow zoom into the Mandelbrot set: fine detail everywhere, smooth motion
    "mandelbrot": f"mandelbrot=s={W}x{H}:r={FPS}:maxiter=600:end_scale=0.05",
    # the classic test pattern: sharp edges, text, moving gradient
    "testsrc2": f"testsrc2=s={W}x{H}:r={FPS}",
    # rule 110 scrolling one row per frame: high-entropy texture, all of it moving
    "cellauto": f"cellauto=s={W}x{H}:r={FPS}:rule=110:seed=7:random_fill_ratio=0.5,"
                "scale=flags=neighbor",
    # Game of Life on 2x2 cells with mould colours: sparse local change
    "life": f"life=s={W // 2}x{H // 2}:r={FPS}:seed=3:ratio=0.2:mold=10:"
            f"life_color=#f0e040:death_color=#203060:mold_color=#406080,"
            f"scale={W}:{H}:flags=neighbor",
    # smooth drifting gradients plus temporal film-grain noise: hard to compress
    "gradnoise": f"gradients=s={W}x{H}:r={FPS}:speed=0.02:seed=5,"
                 "noise=alls=14:allf=t+u:all_seed=11",
    # SMPTE HD bars panned slowly: almost free for inter prediction
    "barspan": f"smptehdbars=s={2 * W}x{2 * H}:r={FPS},"
               f"crop={W}:{H}:x='t*30':y='t*15'",
}


def make_source(name: str, graph: str, out_dir: Path) -> Path:
    """Encode one lavfi graph losslessly to ``out_dir/<name>.mp4`` (kept if already there)."""
    out = out_dir / f"{name}.mp4"
    if out.is_file():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial.mp4")
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"{graph},format=yuv420p,setsar=1",
                "-t", str(SECONDS), "-r", str(FPS), "-c:v", "libx264", "-qp", "0",
                "-preset", "medium", "-x264-params", "threads=1",
                "-fflags", "+bitexact", "-flags:v", "+bitexact", str(tmp)],
               what=f"generating synthetic source {name}")
    tmp.replace(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=str(REPO / ".cache" / "synth_sources"))
    args = ap.parse_args()
    for name, graph in SOURCES.items():
        print(make_source(name, graph, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
