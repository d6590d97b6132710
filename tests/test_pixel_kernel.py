"""The compiled pixel-sum kernel (features/_pixstats.c) against the numpy pass it replaces.

Every integer sum must be identical. The one float sum (Σ of float64 Sobel magnitudes) is added
in another order than numpy's pairwise sum: allowed relative difference 1e-12, the torch twin's
contract (measured: ~2e-16 on real frames). Frames: real decoded video at 8 and 10 bits, and
synthetic planes that reach the extremes (16-bit full-scale checkerboards: the largest Sobel
and Laplacian responses), odd sizes, rows wider than the kernel's 1024-sample blocks, strided
rows and every block size and threshold path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vmafdistill.edge.pipeline import cut_histograms
from vmafdistill.features import compiled
from vmafdistill.features.frame_numpy import (
    FeatureParams,
    raw_stats,
    temporal_features,
)
from vmafdistill.io import iter_frames

INT_FIELDS = ("sobel_sq_sum", "edge_count", "lap_sum", "lap_sq_sum", "blk_boundary_sum",
              "blk_inner_sum", "td_abs_sum", "td_sum", "td_sq_sum")


def test_kernel_is_built_in_this_install() -> None:
    # Without it every comparison below would compare numpy with numpy.
    from vmafdistill.features import _pixstats

    assert compiled.kernel_name() == "c"
    # An editable install builds the module once: after an edit of the C source it would
    # silently run the old code until `pip install -e .` runs again.
    built = Path(_pixstats.__file__).resolve()
    source = built.with_name("_pixstats.c")
    if built.is_relative_to(Path(__file__).resolve().parents[1]):  # built into this checkout
        assert built.stat().st_mtime >= source.stat().st_mtime, (
            f"{built.name} is older than {source.name}: rebuild it with `pip install -e .`")


def both(fn, *args, **kwargs):
    with compiled.forced("c"):
        c = fn(*args, **kwargs)
    with compiled.forced("numpy"):
        n = fn(*args, **kwargs)
    return c, n


def assert_same_raw(y, bit_depth, prev=None, params=None) -> None:
    c, n = both(raw_stats, y, bit_depth, prev, params=params)
    np.testing.assert_array_equal(c.hist, n.hist)
    for k in INT_FIELDS:
        np.testing.assert_array_equal(getattr(c, k), getattr(n, k), err_msg=k)
    np.testing.assert_array_equal(c.has_prev, n.has_prev)
    np.testing.assert_allclose(c.sobel_sum, n.sobel_sum, rtol=1e-12, atol=0)


@pytest.fixture(scope="module")
def real_frames(bbb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, np.ndarray]:
    """12 frames of Big Buck Bunny 720p at 8 bits, and blurred 10-bit ones at 640x360."""
    from vmafdistill._ffmpeg import run_ffmpeg

    d = tmp_path_factory.mktemp("kernel")
    out10 = d / "b10.y4m"
    run_ffmpeg(["-y", "-i", str(bbb_path), "-frames:v", "12", "-vf",
                "scale=640:360,format=yuv420p10le,gblur=sigma=0.8", "-f", "yuv4mpegpipe",
                "-strict", "-1", str(out10)], what="making b10.y4m")
    frames = {}
    for bits, path in ((8, bbb_path), (10, out10)):
        it = iter_frames(path, chunk=12, planes="y")
        c = next(it)
        it.close()
        assert c.bit_depth == bits
        frames[bits] = c.y
    return frames


@pytest.mark.parametrize("bits", [8, 10])
def test_real_frames_same_sums(real_frames: dict[int, np.ndarray], bits: int) -> None:
    y = real_frames[bits]
    assert y.dtype == (np.uint8 if bits == 8 else np.uint16)
    assert_same_raw(y[1:], bits, y[0])
    assert_same_raw(y, bits)  # no previous frame: td_* are 0, has_prev[0] is False
    c, _ = both(raw_stats, y[1:], bits, y[0])
    assert (c.sobel_sum > 0).all() and (c.td_abs_sum > 0).all()  # real texture and motion


@pytest.mark.parametrize("bits", [8, 10])
@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_real_frames_same_temporal_and_cut_histograms(real_frames, bits: int, step: int) -> None:
    y = real_frames[bits]
    c, n = both(temporal_features, y[1:], y[0], bits, step=step)
    for k in c:
        np.testing.assert_array_equal(c[k], n[k], err_msg=k)  # floats of identical integers
    c, n = both(temporal_features, y, None, bits, step=step)
    assert np.isnan(c["temporal_diff"][0]) and np.isnan(n["temporal_diff"][0])
    np.testing.assert_array_equal(c["temporal_std"], n["temporal_std"])
    c, n = both(cut_histograms, y, bits, [0, 5, 11], step=step)
    np.testing.assert_array_equal(c, n)
    assert c.sum(axis=1).tolist() == [len(range(0, y.shape[1], step))
                                      * len(range(0, y.shape[2], step))] * 3


def _checker(h: int, w: int, hi: int, dtype) -> np.ndarray:
    """Full-scale checkerboard: every Sobel and Laplacian response at its extreme."""
    return ((np.indices((h, w)).sum(axis=0) % 2) * hi).astype(dtype)


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (10, np.uint16), (12, np.uint16),
                                        (16, np.uint16)])
@pytest.mark.parametrize("h,w", [(3, 3), (5, 17), (9, 1030), (4, 2100), (33, 64)])
def test_extremes_and_odd_sizes(bits: int, dtype, h: int, w: int) -> None:
    hi = (1 << bits) - 1
    rng = np.random.default_rng(h * 10007 + w + bits)
    frames = np.stack([
        _checker(h, w, hi, dtype),
        hi - _checker(h, w, hi, np.int64),  # the same, inverted
        rng.integers(0, hi + 1, (h, w)).astype(dtype),
        np.full((h, w), hi, dtype),
        np.zeros((h, w), dtype),
    ])
    frames = frames.astype(dtype)
    assert_same_raw(frames[1:], bits, frames[0])
    for step in (1, 2):
        c, n = both(temporal_features, frames[1:], frames[0], bits, step=step)
        for k in c:
            np.testing.assert_array_equal(c[k], n[k], err_msg=k)


@pytest.mark.parametrize("params", [
    FeatureParams(block_size=2), FeatureParams(block_size=3), FeatureParams(block_size=16),
    FeatureParams(edge_threshold=0.0), FeatureParams(edge_threshold=1e9),
])
def test_every_block_size_and_threshold(real_frames, params: FeatureParams) -> None:
    y = real_frames[8][:4]
    assert_same_raw(y[1:], 8, y[0], params=params)


def test_strided_rows_and_wide_rows() -> None:
    rng = np.random.default_rng(7)
    wide = rng.integers(0, 256, (3, 40, 70), dtype=np.uint8)
    view = wide[:, 3:-5, 2:-9]  # rows with a stride wider than the row: the kernel takes them
    assert compiled.plane_ok(view[0])
    assert_same_raw(view[1:], 8, view[0])
    c, n = both(cut_histograms, view, 8, step=1)
    np.testing.assert_array_equal(c, n)
    # a row of more than 33000 8-bit samples takes the kernel's int64 difference sums
    long_rows = rng.integers(0, 256, (3, 3, 33100), dtype=np.uint8)
    c, n = both(temporal_features, long_rows[1:], long_rows[0], 8)
    for k in c:
        np.testing.assert_array_equal(c[k], n[k], err_msg=k)
    # columns with a stride: not the kernel's (numpy computes them), same values either way
    cols = wide[:, :, ::2]
    assert not compiled.plane_ok(cols[0])
    assert_same_raw(cols[1:], 8, cols[0])


def test_out_of_range_samples_are_errors_in_both() -> None:
    y = np.zeros((2, 8, 8), np.uint16)
    y[1, 3, 4] = 1024  # beyond 10 bits
    for name in ("c", "numpy"):
        with compiled.forced(name):
            with pytest.raises(ValueError, match="1024 exceeds"):
                raw_stats(y, 10)
            with pytest.raises(ValueError, match="1024 exceeds"):
                cut_histograms(y, 10, step=1)


def test_big_endian_and_mixed_dtypes_go_to_numpy() -> None:
    y = np.arange(64, dtype=">u2").reshape(8, 8)
    assert not compiled.plane_ok(y)
    assert not compiled.plane_ok(y.astype(np.uint16), y.astype(np.uint8))
    assert_same_raw(y[None], 10, y.astype(np.uint16))


def test_environment_variable_selects_numpy() -> None:
    code = ("from vmafdistill.features import compiled; print(compiled.kernel_name())")
    env_run = [sys.executable, "-c", code]
    out = subprocess.run(env_run, capture_output=True, text=True, check=True,
                         env={**os.environ, compiled.ENV_VAR: "numpy"})
    assert out.stdout.strip() == "numpy"
    bad = subprocess.run(env_run, capture_output=True, text=True,
                         env={**os.environ, compiled.ENV_VAR: "fortran"})
    assert bad.returncode != 0 and "expected auto, c or numpy" in bad.stderr


def test_flipped_and_broadcast_rows() -> None:
    # Review finding: a negative or zero row stride is a valid plane (rows read as base + i *
    # stride); the kernel refused them although plane_ok sent them to it.
    rng = np.random.default_rng(11)
    y = rng.integers(0, 256, (3, 20, 30), dtype=np.uint8)
    flipped = y[:, ::-1]
    assert flipped.strides[1] < 0 and compiled.plane_ok(flipped[0])
    assert_same_raw(flipped[1:], 8, flipped[0])
    assert_same_raw(y[1:], 8, y[0][::-1])
    broadcast = np.broadcast_to(y[0][:1], (20, 30))  # every row the same memory
    assert broadcast.strides[0] == 0 and compiled.plane_ok(broadcast)
    assert_same_raw(np.stack([broadcast, broadcast]), 8, broadcast)
    for step in (1, 2):
        c, n = both(temporal_features, flipped[1:], flipped[0], 8, step=step)
        for k in c:
            np.testing.assert_array_equal(c[k], n[k], err_msg=k)
        c, n = both(cut_histograms, flipped, 8, step=step)
        np.testing.assert_array_equal(c, n)


@pytest.mark.parametrize("bits", [10, 16])
def test_threshold_beyond_int64_counts_no_edge(bits: int) -> None:
    # Review finding: edge_threshold 1e9 at 10 bits squares to more than 2**63.
    params = FeatureParams(edge_threshold=1e9)
    assert params.edge_threshold_sq(bits) >= 1 << 63
    y = _checker(8, 9, (1 << bits) - 1, np.uint16)[None]
    assert_same_raw(y, bits, params=params)
    with compiled.forced("c"):
        assert raw_stats(y, bits, params=params).edge_count.tolist() == [0]


def test_prev_beyond_the_bit_depth_is_an_error() -> None:
    # Review finding: numpy's int16 work buffer wrapped such a prev (td_sq came out negative).
    y = np.zeros((1, 6, 6), np.uint16)
    prev = np.full((6, 6), 40000, np.uint16)
    for name in ("c", "numpy"):
        with compiled.forced(name), pytest.raises(ValueError, match="prev: sample value 40000"):
            raw_stats(y, 12, prev)
    # the temporal pass has no bit-depth check of its own: exact on any uint16 values
    c, n = both(temporal_features, y, prev, 12)
    np.testing.assert_array_equal(c["temporal_std"], n["temporal_std"])
    assert c["temporal_diff"][0] == 40000 / 16


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (12, np.uint16)])
def test_tall_frames_flush_the_histogram_counters(bits: int, dtype) -> None:
    # The kernel's 32-bit sub-histograms are flushed every 4096 rows: frames taller than that,
    # counted at steps 1 and 3, must still count every sample once.
    rng = np.random.default_rng(bits)
    y = rng.integers(0, 1 << bits, (2, 8200, 5)).astype(dtype)
    assert_same_raw(y[1:], bits, y[0])
    for step in (1, 3):
        c, n = both(cut_histograms, y, bits, step=step)
        np.testing.assert_array_equal(c, n)


def test_a_step_beyond_the_plane_reads_one_sample() -> None:
    # Review finding: a step near 2**62 overflowed the kernel's index arithmetic (segfault).
    for dtype, bits in ((np.uint8, 8), (np.uint16, 10)):
        y = np.arange(16, dtype=dtype).reshape(1, 4, 4) + 3
        for step in (5, 2**40, 2**62):
            c, n = both(cut_histograms, y, bits, step=step)
            np.testing.assert_array_equal(c, n)
            assert c[0, 3] == 1 and c.sum() == 1
        c, n = both(temporal_features, y, y[0] + 1, bits, step=2**62)
        assert c["temporal_diff"].tolist() == n["temporal_diff"].tolist() == [1.0 / (1 << bits - 8)]


def test_negative_threshold_counts_every_pixel() -> None:
    # Only the kernel's own entry point takes one (FeatureParams refuses a negative threshold).
    kernel = compiled.kernel()
    y = np.random.default_rng(3).integers(0, 256, (9, 9), dtype=np.uint8)
    hist = np.empty(256, np.int64)
    for thr in (-1, -2**32, -2**62):
        assert kernel.frame_sums(y, None, 8, thr, 8, hist)[2] == 7 * 7
    y16 = y.astype(np.uint16)
    hist = np.empty(1 << 12, np.int64)
    assert kernel.frame_sums(y16, None, 12, -2**40, 8, hist)[2] == 7 * 7


def test_a_bad_pixel_kernel_setting_is_a_one_line_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmafdistill.errors import VmafDistillError

    monkeypatch.setenv(compiled.ENV_VAR, "fast")  # a traceback from predict's import before
    with pytest.raises(VmafDistillError, match="VMAFDISTILL_PIXEL_KERNEL='fast': expected"):
        compiled._load()
    monkeypatch.setenv(compiled.ENV_VAR, "numpy")
    assert compiled._load() is None
