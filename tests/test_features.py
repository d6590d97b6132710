"""Tests of vmafdistill.features: analytic answers, torch == numpy, chunking, bit depths.

Synthetic frames have closed-form features (worked out in the comments); real frames come from
the packaged Big Buck Bunny clip, decoded with the package's ffmpeg.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.features import (
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    FEATURE_SETS,
    FeatureParams,
    canonical_codec,
    compiled,
    feature_set,
    metadata_features,
    pool_shot,
    pool_shots,
)
from vmafdistill.features import frame_numpy as fnp
from vmafdistill.io import iter_frames, read_all
from vmafdistill.shots import Shot

# The numpy (edge) half of these tests must also run where torch is not installed.
try:
    import torch

    from vmafdistill.features import frame_torch as ftorch
except ImportError:  # pragma: no cover - torch-free environment
    torch = None
    ftorch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
def _with_kernel(name: str):
    """``frame_numpy.frame_features`` with its pixel sums from the compiled kernel or numpy."""

    def features(*args, **kwargs):
        with compiled.forced(name):
            return fnp.frame_features(*args, **kwargs)

    return features


# "c" is the compiled kernel (tests/test_pixel_kernel.py fails where it is not built).
IMPLS = {"numpy": _with_kernel("numpy")}
if compiled.kernel() is not None:
    IMPLS["c"] = _with_kernel("c")
if ftorch is not None:
    IMPLS["torch"] = ftorch.frame_features
N_REAL = 12  # frames of the real-content tests
EPS = FeatureParams().blockiness_eps


@pytest.fixture(scope="module", autouse=True)
def torch_single_thread():
    """One torch thread: with two threads on a busy 2-core machine every op waits for the
    slower one (measured 20x slower); the numbers are the same either way."""
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=sorted(IMPLS))
def impl(request: pytest.FixtureRequest):
    """Each implementation's ``frame_features``."""
    return IMPLS[request.param]


def one(feats: dict[str, np.ndarray], i: int = 0) -> dict[str, float]:
    return {k: float(v[i]) for k, v in feats.items()}


# --------------------------------------------------------------------------------------------
# Synthetic frames with analytic answers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_constant_frame(impl, bit_depth: int) -> None:
    scale = 1 << (bit_depth - 8)
    y = np.full((2, 24, 40), 100 * scale, dtype=np.uint8 if bit_depth == 8 else np.uint16)
    f = impl(y, bit_depth)
    for i in range(2):
        v = one(f, i)
        assert v["mean_luma"] == 100.0
        for k in (
            "std_luma",
            "contrast_p95_p05",
            "sobel_mean",
            "spatial_info",
            "edge_density",
            "laplacian_var",
            "entropy",
        ):
            assert v[k] == 0.0, k
        assert v["blockiness"] == 0.0  # no step anywhere: 0 / (0 + eps)
    assert math.isnan(f["temporal_diff"][0]) and math.isnan(f["temporal_std"][0])
    assert f["temporal_diff"][1] == 0.0 and f["temporal_std"][1] == 0.0


def step_frame(h: int, w: int, x0: int, low: int, step: int) -> np.ndarray:
    """Columns < x0 at ``low``, the rest at ``low + step``."""
    y = np.full((h, w), low, dtype=np.uint8)
    y[:, x0:] = low + step
    return y


@pytest.mark.parametrize("step", [10, 20])
def test_vertical_step_edge(impl, step: int) -> None:
    # H=10, W=16, step between columns 7 and 8 (a block boundary). The interior is 8 x 14.
    # Sobel gx = 4*step on interior columns 7 and 8 (their (-1,0,1) taps straddle the step),
    # gy = 0: two of the 14 interior columns, so q = 2/14 of the interior has magnitude 4*step.
    h, w = 10, 16
    f = one(impl(step_frame(h, w, 8, 50, step), 8))
    q = 2 / (w - 2)
    m = 4 * step
    assert f["sobel_mean"] == pytest.approx(q * m, rel=1e-12)
    assert f["spatial_info"] == pytest.approx(m * math.sqrt(q * (1 - q)), rel=1e-12)
    # 40 <= 64 (no edge) for step 10; 80 > 64 for step 20.
    assert f["edge_density"] == (q if m > 64 else 0.0)
    # Laplacian = +step on column 7, -step on column 8, 0 elsewhere: mean 0, var = q * step².
    assert f["laplacian_var"] == pytest.approx(q * step * step, rel=1e-12)
    # Half the pixels at each level: 1 bit, p05 = low, p95 = high, std = step / 2.
    assert f["entropy"] == 1.0
    assert f["contrast_p95_p05"] == step
    assert f["mean_luma"] == 50 + step / 2
    assert f["std_luma"] == step / 2
    # Every non-zero step sits on the block boundary: boundary mean = 10*step / (10*1 + 16*1)
    # (1 boundary column step per row, 1 boundary row step per column), other steps all 0.
    assert f["blockiness"] == pytest.approx(10 * step / 26 / EPS, rel=1e-12)
    # The same edge off the block grid (between columns 4 and 5): no boundary step at all.
    assert one(impl(step_frame(h, w, 5, 50, step), 8))["blockiness"] == 0.0


def test_edge_threshold_is_a_parameter(impl) -> None:
    y = step_frame(10, 16, 8, 50, 10)  # magnitude 40 on the edge columns
    assert one(impl(y, 8))["edge_density"] == 0.0
    low = FeatureParams(edge_threshold=39.5)
    assert one(impl(y, 8, params=low))["edge_density"] == pytest.approx(2 / 14)
    # Strictly greater: a magnitude equal to the threshold is not an edge.
    assert one(impl(y, 8, params=FeatureParams(edge_threshold=40.0)))["edge_density"] == 0.0


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_checkerboard(impl, bit_depth: int) -> None:
    # 1-pixel checkerboard of 40 / 200 on 18x18: exactly half the pixels at each level.
    scale = 1 << (bit_depth - 8)
    ii, jj = np.indices((18, 18))
    y = np.where((ii + jj) % 2 == 0, 40, 200) * scale
    f = one(impl(y.astype(np.uint16 if bit_depth > 8 else np.uint8), bit_depth))
    assert f["entropy"] == 1.0
    assert f["contrast_p95_p05"] == 160.0
    assert f["mean_luma"] == 120.0 and f["std_luma"] == 80.0
    # Columns j-1 and j+1 (rows i-1, i+1) carry the same pattern: Sobel is 0 everywhere.
    assert f["sobel_mean"] == 0.0 and f["edge_density"] == 0.0
    # Laplacian = 4 * (other level - own level) = ±640, balanced over the 16x16 interior.
    assert f["laplacian_var"] == 640.0**2
    # Every step is 160, on and off the block grid.
    assert f["blockiness"] == pytest.approx(160 / (160 + EPS), rel=1e-12)


def test_percentiles_are_exact_codes(impl) -> None:
    # Codes 0..99 once each: CDF(v) = (v+1)/100, so p05 = 4 and p95 = 94 exactly.
    y = np.arange(100, dtype=np.uint8).reshape(10, 10)
    assert one(impl(y, 8))["contrast_p95_p05"] == 90.0
    f = one(impl(y, 8, params=FeatureParams(pct_low=10, pct_high=50)))
    assert f["contrast_p95_p05"] == 40.0  # 49 - 9


def test_blockiness_blocky_vs_smooth(impl) -> None:
    rng = np.random.default_rng(0)
    # 8x8 blocks of random constant levels: every step is on a block boundary.
    blocks = rng.integers(40, 200, size=(8, 8)).repeat(8, axis=0).repeat(8, axis=1)
    blocky = one(impl(blocks.astype(np.uint8), 8))["blockiness"]
    assert blocky > 1000
    # Diagonal ramp: every horizontal and vertical step is 1, on and off the grid.
    ii, jj = np.indices((64, 64))
    ramp = one(impl((ii + jj).astype(np.uint8), 8))["blockiness"]
    assert ramp == pytest.approx(1 / (1 + EPS), rel=1e-12)
    # Unstructured noise: about 1.
    noise = one(impl(rng.integers(0, 256, size=(64, 64)).astype(np.uint8), 8))["blockiness"]
    assert noise == pytest.approx(1.0, abs=0.05)
    # Mild blocking (block offsets of ±3 on the noise) raises it above 1.
    offs = rng.choice([-3, 3], size=(8, 8)).repeat(8, axis=0).repeat(8, axis=1)
    base = (ii * 2 + jj) % 200 + 20
    mild = one(impl((base + offs).astype(np.uint8), 8))["blockiness"]
    assert 1.5 < mild < blocky


@pytest.mark.parametrize("c", [7, -5])
def test_temporal_constant_difference(impl, c: int) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(20, 200, size=(30, 44)).astype(np.uint8)
    b = (a.astype(int) + c).astype(np.uint8)
    f = impl(np.stack([a, b]), 8)
    assert math.isnan(f["temporal_diff"][0]) and math.isnan(f["temporal_std"][0])
    assert f["temporal_diff"][1] == abs(c)
    assert f["temporal_std"][1] == 0.0
    # Given the previous frame, frame 0 gets the temporal features too.
    g = impl(b, 8, prev=a)
    assert g["temporal_diff"][0] == abs(c) and g["temporal_std"][0] == 0.0


def test_ten_bit_times_four_is_exactly_eight_bit(impl) -> None:
    rng = np.random.default_rng(2)
    y8 = rng.integers(0, 256, size=(3, 33, 47)).astype(np.uint8)
    f8 = impl(y8, 8)
    f10 = impl(y8.astype(np.uint16) * 4, 10)
    for k in FEATURE_NAMES:
        np.testing.assert_array_equal(f8[k], f10[k], err_msg=k)


def test_input_validation(impl) -> None:
    y = np.zeros((2, 8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match="bit_depth"):
        impl(y, 7)
    with pytest.raises(TypeError, match="integer"):
        impl(y.astype(np.float32), 8)
    with pytest.raises(ValueError, match="3x3"):
        impl(np.zeros((1, 2, 8), dtype=np.uint8), 8)
    with pytest.raises(ValueError, match="prev"):
        impl(y, 8, prev=np.zeros((8, 9), dtype=np.uint8))
    with pytest.raises(ValueError):
        impl(np.full((1, 8, 8), 1024, dtype=np.uint16), 10)  # above the 10-bit range
    with pytest.raises(ValueError):
        impl(np.full((1, 8, 8), -1, dtype=np.int16), 10)  # negative
    with pytest.raises(ValueError):
        impl(np.full((1, 8, 8), 256, dtype=np.uint16), 8)  # above the 8-bit range
    with pytest.raises(ValueError, match="pct_low"):
        FeatureParams(pct_low=50, pct_high=40)


# --------------------------------------------------------------------------------------------
# Real content: torch vs numpy, chunking, bit depths
# --------------------------------------------------------------------------------------------


def ffmpeg_y4m(src: Path, out: Path, vf: str, frames: int = N_REAL) -> Path:
    if not out.exists():
        run_ffmpeg(
            [
                "-y",
                "-i",
                str(src),
                "-frames:v",
                str(frames),
                "-vf",
                vf,
                "-an",
                "-strict",
                "-1",
                str(out),
            ],
            what=f"making {out.name}",
        )
    return out


@pytest.fixture(scope="module")
def clips(bbb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """BBB 720p (the mp4); 360p 8-bit; the same as 10-bit (exact x4); genuine 10-bit (blurred)."""
    d = tmp_path_factory.mktemp("features")
    # 640x360 keeps the chunking tests quick (chunk 1 = 12 separate calls per implementation).
    small = "scale=640:360:flags=bicubic"
    b8 = ffmpeg_y4m(bbb_path, d / "bbb8.y4m", f"{small},format=yuv420p")
    b10 = ffmpeg_y4m(bbb_path, d / "bbb10.y4m", f"{small},format=yuv420p,format=yuv420p10le")
    # gblur in 10 bits gives samples whose two low bits are really used.
    blur10 = ffmpeg_y4m(bbb_path, d / "blur10.y4m", f"{small},format=yuv420p10le,gblur=sigma=0.8")
    return {"bbb": bbb_path, "b8": b8, "b10": b10, "blur10": blur10}


def assert_close(a: dict[str, np.ndarray], b: dict[str, np.ndarray], rtol: float) -> None:
    for k in FEATURE_NAMES:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=0, equal_nan=True, err_msg=k)


@needs_torch
@pytest.mark.parametrize("clip", ["bbb", "blur10"])
def test_torch_matches_numpy(clips: dict[str, Path], clip: str) -> None:
    frames = iter_frames(clips[clip], chunk=N_REAL)  # bbb: the first 12 frames of the 720p mp4
    c = next(frames)
    frames.close()  # stops the decoder: the rest of the clip is not needed
    y = c.y
    assert c.bit_depth == (8 if clip == "bbb" else 10)
    assert y.shape[0] == N_REAL
    fn = fnp.frame_features(y, c.bit_depth)
    # Integer sums are identical; only the float64 Sobel-magnitude sum differs in order.
    assert_close(fn, ftorch.frame_features(y, c.bit_depth), rtol=1e-12)
    assert_close(fn, ftorch.frame_features(y, c.bit_depth, batch=N_REAL), rtol=1e-12)
    assert_close(
        fn, ftorch.frame_features(torch.from_numpy(y.astype(np.int32)), c.bit_depth), rtol=1e-12
    )
    # Sanity: real content has texture, motion and a fully finite feature vector.
    assert np.all(fn["sobel_mean"] > 1) and np.all(fn["temporal_diff"][1:] > 0)
    assert all(np.isfinite(fn[k][1:]).all() for k in FEATURE_NAMES)


@pytest.mark.parametrize("chunk", [1, 5])
@pytest.mark.parametrize("name", sorted(IMPLS))
def test_chunked_equals_whole(clips: dict[str, Path], chunk: int, name: str) -> None:
    f = IMPLS[name]
    whole = f(read_all(clips["b8"]).y, 8)
    parts, prev = [], None
    for c in iter_frames(clips["b8"], chunk=chunk):
        parts.append(f(c.y, c.bit_depth, prev))
        prev = c.y[-1]
    chunked = {k: np.concatenate([p[k] for p in parts]) for k in FEATURE_NAMES}
    for k in FEATURE_NAMES:
        np.testing.assert_array_equal(chunked[k], whole[k], err_msg=k)
    assert math.isnan(whole["temporal_diff"][0])
    assert np.isfinite(whole["temporal_diff"][1:]).all()
    # The streaming helper does the same.
    if name == "torch":
        streamed = ftorch.video_features(clips["b8"], chunk=chunk)
    else:
        with compiled.forced(name):
            streamed = fnp.video_features(clips["b8"], chunk=chunk)
    for k in FEATURE_NAMES:
        np.testing.assert_array_equal(streamed[k], whole[k], err_msg=k)


def test_ffmpeg_ten_bit_conversion_gives_identical_features(clips: dict[str, Path]) -> None:
    # ffmpeg's 8 -> 10 bit conversion is an exact x4, so every feature must be identical.
    a, b = read_all(clips["b8"]), read_all(clips["b10"])
    assert b.bit_depth == 10
    np.testing.assert_array_equal(b.y, a.y.astype(np.uint16) * 4)
    fa, fb = fnp.frame_features(a.y, 8), fnp.frame_features(b.y, 10)
    for k in FEATURE_NAMES:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


#: Allowed |f10 - f8| <= atol + rtol * |f10| between a genuine 10-bit clip and its 8-bit
#: rounding (BBB 640x360, gblur 0.8 in 10 bits). Rounding adds quantisation noise of variance
#: ~1/12 (8-bit units²), which the Laplacian amplifies 20x (+1.5 on laplacian_var ~44: 4 %)
#: and frame differences double (temporal_std moves by ~0.01 absolute, which is 8 % on a nearly
#: static frame); mean_luma moves by the rounding bias (+0.125 on average, measured 0.11);
#: the rest move well under 1 %. Documented in docs/features.md.
BIT_DEPTH_TOL: dict[str, tuple[float, float]] = {  # name: (atol, rtol)
    "mean_luma": (0.2, 0.0),
    "std_luma": (0.0, 1e-3),
    "contrast_p95_p05": (1.0, 0.0),
    "sobel_mean": (0.0, 5e-3),
    "spatial_info": (0.0, 5e-3),
    "edge_density": (1e-3, 0.0),
    "laplacian_var": (0.0, 0.06),
    "entropy": (0.01, 0.0),
    "temporal_diff": (0.01, 0.01),
    "temporal_std": (0.05, 0.01),
    "blockiness": (0.0, 0.02),
}


def test_ten_bit_vs_eight_bit_rounding(clips: dict[str, Path]) -> None:
    c = read_all(clips["blur10"])
    y10 = c.y
    assert np.any(y10 % 4 != 0)  # genuinely 10-bit samples
    y8 = np.minimum((y10.astype(np.int32) + 2) >> 2, 255).astype(np.uint8)
    f10, f8 = fnp.frame_features(y10, 10), fnp.frame_features(y8, 8)
    for k in FEATURE_NAMES:
        atol, rtol = BIT_DEPTH_TOL[k]
        a, b = f10[k][1:], f8[k][1:]
        excess = np.abs(a - b) - (atol + rtol * np.abs(a))
        assert excess.max() <= 0, f"{k}: |10-bit - 8-bit| {np.abs(a - b).max():.3g}"


# --------------------------------------------------------------------------------------------
# Edge runtime, pooling, registry
# --------------------------------------------------------------------------------------------


def test_edge_modules_import_without_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # any 'import torch' now raises ImportError
        sys.modules["yaml"] = None  # the edge install has no PyYAML: feature-set files unread
        import numpy as np
        import vmafdistill.features as F
        from vmafdistill.features import frame_numpy, registry
        from vmafdistill.edge import card
        assert "log_bpp" in card.EDGE_FEATURES
        assert registry.known_feature_set("paper14") is None  # the card's names rule here
        from vmafdistill.shots import detect_shots
        y = (np.arange(30 * 20 * 24) % 251).astype(np.uint8).reshape(30, 20, 24)
        f = F.frame_features(y, 8)
        assert set(f) == set(F.FEATURE_NAMES)
        assert len(detect_shots(y, fps=25.0)) >= 1
        try:
            import vmafdistill.features.frame_torch
        except ImportError:
            pass
        else:
            raise SystemExit("torch blocking did not work")
        print("ok")
        """
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_pool_shot_ignores_nan() -> None:
    per_frame = {"a": np.array([np.nan, 2.0, 4.0, 6.0]), "b": np.array([1.0, 1.0, 3.0, 5.0])}
    assert pool_shot(per_frame, 0, 2) == {"a": 2.0, "b": 1.0}
    assert pool_shot(per_frame, 1, 4) == {"a": 4.0, "b": 3.0}
    assert math.isnan(pool_shot(per_frame, 0, 1)["a"])  # only NaN in the shot
    pooled = pool_shots(per_frame, [Shot(0, 0, 2), Shot(1, 2, 4)])
    np.testing.assert_array_equal(pooled["a"], [2.0, 5.0])
    with pytest.raises(ValueError):
        pool_shot(per_frame, 2, 5)
    with pytest.raises(ValueError):
        pool_shot(per_frame, 2, 2)


def test_registry() -> None:
    assert isinstance(FEATURE_SET_VERSION, int)
    paper = FEATURE_SETS["paper14"]
    assert paper[:6] == [
        "log_bitrate",
        "scale_ratio",
        "codec_h264",
        "codec_h265",
        "codec_av1",
        "codec_vp9",
    ]
    assert paper[6:] == list(FEATURE_NAMES) and len(FEATURE_NAMES) == 11
    assert len(set(paper)) == len(paper) == 17
    assert FEATURE_SETS["fr6"] == [
        "adm2",
        "motion2",
        "vif_scale0",
        "vif_scale1",
        "vif_scale2",
        "vif_scale3",
    ]
    assert feature_set("fr6") == FEATURE_SETS["fr6"]
    with pytest.raises(ValueError, match="paper14"):
        feature_set("nope")

    m = metadata_features(1000.0, 720, 360, "libx265")
    assert set(m) == set(paper[:6])
    assert m["log_bitrate"] == pytest.approx(math.log(1000.0))
    assert m["scale_ratio"] == 2.0
    assert (m["codec_h264"], m["codec_h265"], m["codec_av1"], m["codec_vp9"]) == (0, 1, 0, 0)
    assert canonical_codec("HEVC") == "h265" and canonical_codec("libsvtav1") == "av1"
    assert canonical_codec("libvpx-vp9") == "vp9" and canonical_codec("avc") == "h264"
    with pytest.raises(ValueError, match="codec"):
        metadata_features(1000.0, 720, 360, "mpeg2")
    with pytest.raises(ValueError):
        metadata_features(0.0, 720, 360, "h264")


#: The column lists of the feature sets as they were defined in code before they moved to
#: conf/features/*.yaml: a changed list changes what a student's inputs mean (bump
#: FEATURE_SET_VERSION in vmafdistill/versions.py, the assert below and this table together).
_PIXEL = ["mean_luma", "std_luma", "contrast_p95_p05", "sobel_mean", "spatial_info",
          "edge_density", "laplacian_var", "entropy", "temporal_diff", "temporal_std",
          "blockiness"]
_CODEC_FLAGS = ["codec_h264", "codec_h265", "codec_av1", "codec_vp9"]
PINNED_FEATURE_SETS = {
    "paper14": ["log_bitrate", "scale_ratio", *_CODEC_FLAGS, *_PIXEL],
    "scalefree": ["log_bpp", "scale_ratio", *_CODEC_FLAGS, *_PIXEL],
    "rate7": ["log_bpp", "log_bitrate", "scale_ratio", *_CODEC_FLAGS],
    "scene7": ["log_scene_bpp", "log_scene_bitrate", "scale_ratio", *_CODEC_FLAGS],
    "quant6": ["scene_qp", "scale_ratio", *_CODEC_FLAGS],
    "quant_ti7": ["scene_qp", "temporal_std", "scale_ratio", *_CODEC_FLAGS],
    "mbquant_ti7": ["scene_mb_qp", "temporal_std", "scale_ratio", *_CODEC_FLAGS],
    "fr6": ["adm2", "motion2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3"],
}


def test_feature_set_files_hold_the_pinned_columns() -> None:
    from vmafdistill.corpus.schema import SAMPLE_COLUMNS
    from vmafdistill.features import registry
    from vmafdistill.features.registry import load_feature_sets

    assert FEATURE_SET_VERSION == 1
    assert load_feature_sets() == PINNED_FEATURE_SETS
    assert dict(FEATURE_SETS) == PINNED_FEATURE_SETS and len(FEATURE_SETS) == 8
    assert FEATURE_SETS.get("nope") is None and "quant_ti7" in FEATURE_SETS
    assert registry.known_feature_set("rate7") == PINNED_FEATURE_SETS["rate7"]
    assert registry.known_feature_set("nope") is None
    for columns in PINNED_FEATURE_SETS.values():
        assert set(columns) <= set(SAMPLE_COLUMNS)  # the corpus carries every column


def test_feature_set_files_are_checked(tmp_path: Path) -> None:
    from vmafdistill.features.registry import load_feature_sets

    (tmp_path / "a.yaml").write_text("name: a\ncolumns: [log_bpp, scale_ratio]\n")
    assert load_feature_sets(tmp_path) == {"a": ["log_bpp", "scale_ratio"]}
    for i, text in enumerate(["name: b\n", "columns: log_bpp\n", "name: x\ncolumns: [qp]\n",
                              "columns: [qp, qp]\n"]):
        bad = tmp_path / f"bad{i}"
        bad.mkdir()
        (bad / "b.yaml").write_text(text)
        with pytest.raises(ValueError, match=r"b\.yaml"):
            load_feature_sets(bad)


def test_feature_set_name_accepts_the_train_config_node() -> None:
    from vmafdistill.features.registry import feature_set_name

    cols = PINNED_FEATURE_SETS["quant_ti7"]
    assert feature_set_name("quant_ti7") == "quant_ti7"
    assert feature_set_name({"name": "quant_ti7", "columns": cols}) == "quant_ti7"
    with pytest.raises(ValueError, match="new feature set"):
        feature_set_name({"name": "quant_ti7", "columns": cols[:-1]})
    with pytest.raises(ValueError, match="unknown feature set"):
        feature_set_name("nope")


def test_train_config_selects_a_feature_set_file() -> None:
    from vmafdistill.api import compose
    from vmafdistill.errors import VmafDistillError

    cfg = compose("train", [])
    assert cfg.features.name == "scalefree"  # the default
    assert list(cfg.features.columns) == PINNED_FEATURE_SETS["scalefree"]
    cfg = compose("train", ["features=quant_ti7"])
    assert cfg.features.name == "quant_ti7"
    assert list(cfg.features.columns) == PINNED_FEATURE_SETS["quant_ti7"]
    with pytest.raises(VmafDistillError, match="no_such_set"):  # Hydra's error, named
        compose("train", ["features=no_such_set"])


def test_a_registered_shot_feature_reaches_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/features.md's example: one function + one registration line gives a column that
    the corpus builder and the edge (both call shot_feature_rows) compute alike."""
    from vmafdistill.features import registry
    from vmafdistill.features.shot_rows import shot_feature_rows

    def log_duration(row) -> float:
        return math.log(row["duration_s"])

    monkeypatch.setitem(registry.SHOT_FEATURES, "log_duration",
                        registry.ShotFeature(log_duration, reads=("duration_s",)))
    shots = [Shot(0, 0, 25, 0), Shot(1, 25, 75, 1)]

    def rows_of() -> list[dict]:
        return shot_feature_rows({"mean_luma": np.full(75, 100.0),
                                  "sobel_mean": np.full(75, 2.0)}, shots, np.full(75, 1000),
                                 ref_size=(1280, 720), codec="h264", fps=25.0, width=640,
                                 height=360)

    rows = rows_of()
    assert [r["log_duration"] for r in rows] == pytest.approx([0.0, math.log(2.0)])
    assert list(rows[0])[-1] == "log_duration"  # after every built-in column
    # what a feature reads decides the edge's passes (a feature reading qp was NaN at the
    # edge for a student without a quantizer input; one reading a pooled pixel feature was
    # measured on every 8th frame there); an undeclared read is an error on both sides
    from vmafdistill.edge.options import needs_pixel_features, needs_quantizer, temporal_only

    def qp_share(row) -> float:
        return row["qp"] / 51 + row["sobel_mean"] * 0

    monkeypatch.setitem(registry.SHOT_FEATURES, "qp_share",
                        registry.ShotFeature(qp_share, reads=("qp", "sobel_mean")))
    names = ["qp_share", "temporal_std", "scale_ratio"]
    assert needs_quantizer(names) and needs_pixel_features(names) and not temporal_only(names)
    assert not needs_quantizer(["log_duration", "temporal_std"])
    monkeypatch.setitem(registry.SHOT_FEATURES, "qp_share",
                        registry.ShotFeature(qp_share, reads=("qp",)))
    with pytest.raises(KeyError, match="shot feature 'qp_share' reads 'sobel_mean', which is "
                                       "not among its reads"):
        rows_of()
    # a feature reading another one reads its reads too; a plain string is no tuple
    monkeypatch.setitem(registry.SHOT_FEATURES, "qp_share",
                        registry.ShotFeature(qp_share, reads=("qp", "sobel_mean")))
    monkeypatch.setitem(registry.SHOT_FEATURES, "qp_share_sq",
                        registry.ShotFeature(lambda r: r["qp_share"] ** 2, reads=("qp_share",)))
    assert needs_quantizer(["qp_share_sq"]) and needs_pixel_features(["qp_share_sq"])
    assert rows_of()[0]["qp_share_sq"] == pytest.approx(rows_of()[0]["qp_share"] ** 2,
                                                        nan_ok=True)
    with pytest.raises(TypeError, match="a tuple of column names"):
        registry.ShotFeature(qp_share, reads="qp")
    # a read that is no shot column at all (a typo) is named as that
    monkeypatch.setitem(registry.SHOT_FEATURES, "qp_share_sq",
                        registry.ShotFeature(lambda r: 0.0, reads=("qp_shar",)))
    with pytest.raises(KeyError, match=r"'qp_share_sq' reads \['qp_shar'\]: no such shot "
                                       r"column"):
        rows_of()


def test_log_bpp_is_bits_per_delivered_pixel() -> None:
    # 640x360 at 25 fps and 576 kb/s carries exactly 0.1 bit per pixel.
    m = metadata_features(576.0, 720, 360, "h264", delivery_width=640, fps=25.0)
    assert m["log_bpp"] == pytest.approx(math.log(0.1), rel=1e-12)
    assert FEATURE_SETS["scalefree"][0] == "log_bpp"
    assert FEATURE_SETS["scalefree"][1:] == FEATURE_SETS["paper14"][1:]
    with pytest.raises(ValueError):
        metadata_features(576.0, 720, 360, "h264", delivery_width=640, fps=0.0)


@pytest.mark.parametrize("bit_depth", [8, 10, 16])
def test_temporal_features_equal_the_full_pass_at_step_1(bit_depth: int) -> None:
    """The edge's every-frame temporal pass is the full pass's formula on the same sums."""
    from vmafdistill.features.frame_numpy import finalize, raw_stats, temporal_features

    rng = np.random.default_rng(bit_depth)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    y = rng.integers(0, 1 << bit_depth, (6, 36, 64)).astype(dtype)
    prev = rng.integers(0, 1 << bit_depth, (36, 64)).astype(dtype)
    for before in (prev, None):
        got = temporal_features(y, before, bit_depth)
        want = finalize(raw_stats(y, bit_depth, before))
        for k in ("temporal_diff", "temporal_std"):
            np.testing.assert_array_equal(got[k], want[k])
    sub = temporal_features(y, prev, bit_depth, step=2)  # = the full formula on y[:, ::2, ::2]
    want = finalize(raw_stats(np.ascontiguousarray(y[:, ::2, ::2]), bit_depth,
                              np.ascontiguousarray(prev[::2, ::2])))
    np.testing.assert_array_equal(sub["temporal_std"], want["temporal_std"])
    with pytest.raises(ValueError, match="step"):
        temporal_features(y, prev, bit_depth, step=0)
