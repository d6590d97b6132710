"""Tests of vmafdistill.shots: cuts at known frames, windows, min length, streaming."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.features import raw_stats
from vmafdistill.io import iter_frames, read_all
from vmafdistill.shots import (
    Shot,
    ShotDetector,
    detect_shots,
    detect_video_shots,
    luma_signature,
    select_cuts,
    split_scenes,
)

FPS = 25.0
SEG = 30  # frames per source: 1.2 s at 25 fps
CUTS = [SEG, 2 * SEG]


@pytest.fixture(scope="module")
def concat_clip(bbb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """testsrc2 | mandelbrot | BBB excerpt, 1.2 s each at 25 fps, 320x180, joined by concat."""
    out = tmp_path_factory.mktemp("shots") / "concat.y4m"
    graph = (
        f"testsrc2=size=320x180:rate=25,trim=end_frame={SEG},format=yuv420p[a];"
        f"mandelbrot=size=320x180:rate=25,trim=end_frame={SEG},format=yuv420p[b];"
        f"[0:v]trim=start_frame=40:end_frame={40 + SEG},setpts=PTS-STARTPTS,"
        "scale=320:180:flags=bicubic,fps=25,format=yuv420p[c];"
        "[a][b][c]concat=n=3:v=1:a=0[v]"
    )
    run_ffmpeg(
        [
            "-y",
            "-i",
            str(bbb_path),
            "-filter_complex",
            graph,
            "-map",
            "[v]",
            "-strict",
            "-1",
            str(out),
        ],
        what="building the concat clip",
    )
    return out


def assert_tiles(shots: list[Shot], n: int) -> None:
    """Shots are numbered 0.., non-empty, and cover 0..n-1 without gaps or overlaps."""
    assert [s.shot_index for s in shots] == list(range(len(shots)))
    assert shots[0].start == 0 and shots[-1].stop == n
    for a, b in itertools.pairwise(shots):
        assert a.stop == b.start
    assert all(len(s) > 0 for s in shots)


def test_cuts_at_known_frames(concat_clip: Path) -> None:
    y = read_all(concat_clip).y
    assert y.shape == (3 * SEG, 180, 320)
    shots = detect_shots(y, fps=FPS, max_len_s=None)
    assert [(s.start, s.stop) for s in shots] == [(0, 30), (30, 60), (60, 90)]
    assert [s.scene_index for s in shots] == [0, 1, 2]
    # The cuts stand far above everything inside the sources.
    det = ShotDetector(fps=FPS)
    det.update(y)
    strength = det.strength
    assert strength[0] == 0.0
    assert np.all(strength[CUTS] > 2.5)
    assert np.delete(strength, CUTS).max() < 0.25
    assert det.cuts() == CUTS


def test_max_len_windows_tile_the_clip(concat_clip: Path) -> None:
    y = read_all(concat_clip).y
    shots = detect_shots(y, fps=FPS, min_len_s=0.2, max_len_s=0.5)
    assert_tiles(shots, len(y))
    assert all(s.duration_s(FPS) <= 0.5 for s in shots)  # 12 frames at most
    # Each 30-frame scene -> ceil(30/12) = 3 windows of 10; cuts stay where they were.
    assert [len(s) for s in shots] == [10] * 9
    assert {s.start for s in shots} >= {0, *CUTS}
    assert [s.scene_index for s in shots] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # Corpus defaults (0.5 s .. 1 s): two 15-frame windows per scene.
    assert [len(s) for s in detect_shots(y, fps=FPS)] == [15] * 6


def test_streamed_equals_whole(concat_clip: Path) -> None:
    whole = ShotDetector(fps=FPS, max_len_s=0.5)
    whole.update(read_all(concat_clip).y)
    for chunk in (1, 7):
        det = ShotDetector(fps=FPS, max_len_s=0.5)
        for c in iter_frames(concat_clip, chunk=chunk):
            det.update(c)
        np.testing.assert_array_equal(det.strength, whole.strength)
        assert det.shots() == whole.shots()
    assert detect_video_shots(concat_clip, chunk=4, max_len_s=0.5) == whole.shots()
    assert detect_shots(iter_frames(concat_clip, chunk=9), fps=FPS, max_len_s=0.5) == whole.shots()


def test_histograms_from_features_give_the_same_shots(concat_clip: Path) -> None:
    # Corpus code can reuse the features' code-value histograms instead of a second pass.
    y = read_all(concat_clip).y
    a, b = ShotDetector(fps=FPS), ShotDetector(fps=FPS)
    a.update(y)
    for i in range(0, len(y), 16):
        b.update_hist(raw_stats(y[i : i + 16], 8).hist, 8)
    np.testing.assert_array_equal(a.strength, b.strength)
    assert a.shots() == b.shots()


def alternating(period: int, n: int, h: int = 24, w: int = 32) -> np.ndarray:
    """Dark and bright flat frames alternating every ``period`` frames: a cut every period."""
    levels = np.where((np.arange(n) // period) % 2 == 0, 40, 200).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None], (n, h, w)).copy()


def test_min_len_honoured() -> None:
    y = alternating(5, 100)
    # min 0.2 s = 5 frames: every change is a cut.
    short = detect_shots(y, fps=FPS, min_len_s=0.2, max_len_s=None)
    assert [s.start for s in short] == list(range(0, 100, 5))
    # min 0.5 s = 13 frames (12.5 rounded up): cuts >= 13 apart, none within 13 of start/end.
    shots = detect_shots(y, fps=FPS, min_len_s=0.5, max_len_s=None)
    assert_tiles(shots, 100)
    assert all(len(s) >= 13 for s in shots)
    starts = [s.start for s in shots[1:]]
    assert starts and all(t % 5 == 0 for t in starts)  # still only at real changes
    # Windows of split scenes obey max_len and tile exactly, whatever the cut pattern.
    windows = detect_shots(y, fps=FPS, min_len_s=0.5, max_len_s=1.0)
    assert_tiles(windows, 100)
    assert all(len(s) <= 25 for s in windows)


def test_select_cuts_rules() -> None:
    s = np.zeros(60)
    s[[10, 13]] = [1.2, 5.0]  # weak false alarm just before a strong cut: the strong one wins
    s[[30, 33]] = [5.0, 1.5]  # strong cut then a weaker candidate: the first stays
    s[3] = 9.0  # too close to the clip's start
    s[57] = 9.0  # too close to the end: dropped
    assert select_cuts(s, min_frames=8) == [13, 30]
    assert select_cuts(s, min_frames=1) == [3, 10, 13, 30, 33, 57]


def test_a_stronger_candidate_near_the_end_does_not_take_a_real_cut_away() -> None:
    """A cut at 30 followed by a stronger flash at 38 of 45 frames: 38 replaced 30, was then
    dropped as too close to the end, and the shot 22..45 spanned a real cut."""
    s = np.zeros(45)
    s[[30, 38]] = [3.0, 4.0]
    assert select_cuts(s, min_frames=13) == [30]
    s[38] = 0.0
    assert select_cuts(s, min_frames=13) == [30]


def test_split_scenes_near_equal() -> None:
    shots = split_scenes([26], 100, max_frames=25)
    assert [(s.start, s.stop, s.scene_index) for s in shots] == [
        (0, 13, 0),
        (13, 26, 0),
        (26, 50, 1),
        (50, 75, 1),
        (75, 100, 1),
    ]
    for n, m in [(5 * 25, 25), (131, 25), (7, 3), (1, 1)]:
        shots = split_scenes([], n, max_frames=m)
        assert_tiles(shots, n)
        lengths = [len(s) for s in shots]
        assert max(lengths) <= m and max(lengths) - min(lengths) <= 1
    with pytest.raises(ValueError):
        split_scenes([0], 10, max_frames=5)


def test_mean_jump_makes_a_cut() -> None:
    # A wide, flat histogram (codes 0..223) brightened by 30 levels: the 64-bin L1 distance is
    # only ~0.27 (< 0.3), but the mean jumps by 30 (>= 24), so the mean test finds the cut.
    ramp = np.tile(np.arange(224), (16, 1))
    y = np.stack([ramp] * 10 + [ramp + 30] * 10).astype(np.uint8)
    h, m = luma_signature(y, 8)
    assert np.abs(h[10] - h[9]).sum() < 0.3 and m[10] - m[9] == 30.0
    cut = detect_shots(y, fps=FPS, min_len_s=0.2, max_len_s=None)
    assert [s.start for s in cut] == [0, 10]
    no_mean = detect_shots(y, fps=FPS, min_len_s=0.2, max_len_s=None, mean_threshold=1e9)
    assert [s.start for s in no_mean] == [0]


def test_bit_depths_and_errors() -> None:
    rng = np.random.default_rng(3)
    y8 = rng.integers(0, 256, size=(20, 16, 16)).astype(np.uint8)
    # 10-bit samples (x4) give identical signatures.
    h8, m8 = luma_signature(y8, 8)
    h10, m10 = luma_signature(y8.astype(np.uint16) * 4, 10)
    np.testing.assert_array_equal(h8, h10)
    np.testing.assert_array_equal(m8, m10)
    assert detect_shots(y8, fps=FPS) == detect_shots(
        y8.astype(np.uint16) * 4, fps=FPS, bit_depth=10
    )
    with pytest.raises(ValueError, match="bit_depth"):
        detect_shots(y8.astype(np.uint16), fps=FPS)
    with pytest.raises(ValueError, match="fps"):
        detect_shots(y8, fps=0)
    with pytest.raises(ValueError, match="exceeds"):
        detect_shots(np.full((2, 8, 8), 1024, dtype=np.uint16), fps=FPS, bit_depth=10)


def test_short_clip_is_one_shot() -> None:
    y = alternating(2, 6)
    shots = detect_shots(y, fps=FPS)
    assert shots == [Shot(0, 0, 6, 0)]
