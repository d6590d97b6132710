"""VMAF v1.0.16: CAMBI, SpEED chroma, motion3 and the model score against libvmaf via ffmpeg.

Content is generated here (vmafdistill.testing.v1016_content): smooth dark/bright gradients with
staircase banding, 8 and 10 bits, odd sizes, streamed in chunks of 2 frames so every temporal
feature crosses chunk borders. Tolerances: each feature within 5e-6 of libvmaf's printed value
(measured: CAMBI, SpEED and motion 5e-7, i.e. libvmaf's 6-decimal printing, on an Intel Xeon;
10x margin for other CPUs' float rounding), VMAF from libvmaf's printed features within 5e-4
(the printing's rounding amplified by the SVR; measured 2.1e-4) and VMAF entirely from our
features (adm3 from the exact integer ADM, which matches libvmaf's printed adm2/aim/adm3 to
5e-7) within 5e-6 (measured 4.9e-7). SpEED in double where libvmaf rounds ``1 + variance`` to
float drifted by 1e-5 (VMAF 8.5e-6), and by 6 VMAF with identical chroma planes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.errors import ModelError, VideoInputError
from vmafdistill.io.video import read_all
from vmafdistill.oracle import LibvmafResult, libvmaf_available, libvmaf_score, model_files_dir
from vmafdistill.teacher import VmafModel
from vmafdistill.teacher.adm3 import Adm3Options, adm3_from_adm2_aim
from vmafdistill.teacher.cambi import (
    cambi_filter_mode,
    cambi_preprocess,
    cambi_spatial_mask,
    window_counts,
    window_counts_by_level,
)
from vmafdistill.teacher.model_v1016 import V1016_MODELS, V1016Model
from vmafdistill.teacher.score import score_files
from vmafdistill.teacher.speed import SpeedOptions, chroma_planes, speed_chroma
from vmafdistill.teacher.v1016 import V1016Scorer
from vmafdistill.testing.v1016_content import gradient_clip, gradient_pair

pytestmark = pytest.mark.skipif(not libvmaf_available(), reason="ffmpeg has no libvmaf filter")

FEATURE_TOL = 5e-6
PRINTED_VMAF_TOL = 5e-4
VMAF_TOL = 5e-6

#: name -> (width, height, tone, bit depth, step, fps)
CASES = {
    "dark10": (640, 360, "dark", 10, 2, 25),  # banding, CAMBI ~12
    "bright10_odd": (641, 361, "bright", 10, 1, 25),  # odd size, CAMBI ~2
    "full8": (480, 270, "full", 8, 1, 25),  # 8-bit (anti-dithering), flat chroma: SpEED 0
    "dark8_hfr": (482, 272, "dark", 8, 1, 50),  # CAMBI clipped at 17, HFR models
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    out = tmp_path_factory.mktemp("v1016")
    made = {}
    for name, (w, h, tone, bd, step, fps) in CASES.items():
        made[name] = gradient_pair(out, name, w, h, 5, tone=tone, bit_depth=bd, step=step,
                                   fps=fps)
    ref = out / "pattern_ref.y4m"
    dist = out / "pattern_dist.y4m"
    src = "testsrc2=size=640x360:rate=25"
    run_ffmpeg(["-f", "lavfi", "-i", src, "-frames:v", "4", "-pix_fmt", "yuv420p", "-y",
                str(ref)], what="pattern ref")
    run_ffmpeg(["-i", str(ref), "-vf", "noise=alls=12:allf=t:all_seed=3", "-pix_fmt",
                "yuv420p", "-y", str(dist)], what="pattern dist")
    made["pattern"] = (ref, dist)
    # luma-only noise: identical chroma planes, where libvmaf's SpEED is a few 1e-6, not 0
    luma = out / "pattern_luma_dist.y4m"
    run_ffmpeg(["-i", str(ref), "-vf", "noise=c0s=14:c0f=t", "-pix_fmt", "yuv420p", "-y",
                str(luma)], what="pattern luma-only dist")
    made["luma_only"] = (ref, luma)
    return made


def _model_path(name: str) -> Path:
    return model_files_dir() / f"{name}.json"


def _ours(ref: Path, dist: Path, model: V1016Model, chunk: int = 2, *,
          features_only: bool = True) -> dict[str, np.ndarray]:
    r = read_all(ref, planes="yuv")
    d = read_all(dist, planes="yuv")
    scorer = V1016Scorer(model)
    for s in range(0, len(r), chunk):
        scorer.update(r.y[s : s + chunk], d.y[s : s + chunk],
                      (r.u[s : s + chunk], r.v[s : s + chunk]),
                      (d.u[s : s + chunk], d.v[s : s + chunk]), bit_depth=r.bit_depth)
    return scorer.result(features_only=features_only)


def _libvmaf(ref: Path, dist: Path, model: str) -> LibvmafResult:
    return libvmaf_score(ref, dist, model=str(_model_path(model)))


def test_predict_from_printed_features_every_model(clips: dict[str, tuple[Path, Path]]) -> None:
    ref, dist = clips["pattern"]
    for name in V1016_MODELS:
        model = V1016Model.load(name)
        lib = _libvmaf(ref, dist, name)
        names = model.printed_names()
        feats = {k: torch.tensor(lib.metric(v)) for k, v in names.items()}
        got = model.predict(feats).numpy()
        assert np.abs(got - np.array(lib.metric("vmaf"))).max() <= PRINTED_VMAF_TOL, name
        # adm3 from libvmaf's printed adm2 and aim (two 6-decimal roundings: <= 1e-6).
        adm3 = adm3_from_adm2_aim(
            torch.tensor(lib.metric(names["adm3"].replace("adm3", "adm2"))),
            torch.tensor(lib.metric(names["adm3"].replace("adm3", "aim"))),
            Adm3Options.from_libvmaf(model.feature_options["adm3"]),
        )
        assert np.abs(adm3.numpy() - np.array(lib.metric(names["adm3"]))).max() <= 2e-6


@pytest.mark.parametrize(
    ("case", "model"),
    [("dark10", "vmaf_v1.0.16_3d0h"), ("bright10_odd", "vmaf_v1.0.16_3d0h"),
     ("full8", "vmaf_v1.0.16_3d0h"), ("pattern", "vmaf_v1.0.16_3d0h"),
     ("luma_only", "vmaf_v1.0.16_3d0h"), ("luma_only", "vmaf_v1.0.16_5d0h"),
     ("dark8_hfr", "vmaf_v1.0.16_hfr_3d0h"), ("pattern", "vmaf_v1.0.16_hfr_5d0h")],
)
def test_features_and_vmaf_match_libvmaf(
    clips: dict[str, tuple[Path, Path]], case: str, model: str
) -> None:
    ref, dist = clips[case]
    m = V1016Model.load(model)
    lib = _libvmaf(ref, dist, model)
    ours = _ours(ref, dist, m)
    assert len(ours[m.printed_names()["cambi"]]) == lib.num_frames
    names = m.printed_names()
    adm3 = names["adm3"]
    for key in ("adm2", "aim", "adm3"):  # libvmaf's integer ADM, reproduced exactly
        assert adm3.replace("adm3", key, 1) in ours
    for name, values in ours.items():
        want = np.array(lib.metric(name))
        assert np.abs(values - want).max() <= FEATURE_TOL, (
            case, name, values, want)
    # VMAF entirely from our features, against libvmaf's.
    vmaf = m.predict({k: torch.from_numpy(ours[v]) for k, v in names.items()}).numpy()
    assert np.abs(vmaf - np.array(lib.metric("vmaf"))).max() <= VMAF_TOL
    full = _ours(ref, dist, m, features_only=False)
    assert np.array_equal(full["vmaf"], vmaf)


@pytest.mark.parametrize("model", ["vmaf_v1.0.16_5d0h", "vmaf_v1.0.16_3d0h_2160"])
def test_speed_prescale_matches_libvmaf(tmp_path: Path, model: str) -> None:
    """The 5d0h (0.6) and 2160 (0.5) files prescale chroma bilinearly before SpEED."""
    ref, dist = gradient_pair(tmp_path, "hd", 1282, 722, 2, tone="full", bit_depth=10)
    m = V1016Model.load(model)
    lib = _libvmaf(ref, dist, model)
    r, d = read_all(ref, planes="yuv"), read_all(dist, planes="yuv")
    ru, rv = chroma_planes(r.u, r.v, 1282, 722, 10)
    du, dv = chroma_planes(d.u, d.v, 1282, 722, 10)
    opts = SpeedOptions.from_libvmaf(m.feature_options["speed_chroma_uv"])
    got = speed_chroma(ru, rv, du, dv, opts)
    uv = m.printed_names()["speed_chroma_uv"]
    assert max(lib.metric(uv)) > 0.1  # the prescaled planes have blocks: a real comparison
    for key, values in got.items():
        want = np.array(lib.metric(uv.replace("speed_chroma_uv", key)))
        assert np.abs(values.numpy() - want).max() <= FEATURE_TOL, key


def test_cambi_tiled_counts_equal_per_level_counts() -> None:
    y, _, _ = gradient_clip(203, 117, 1, tone="dark", bit_depth=10, step=2)
    img = cambi_filter_mode(cambi_preprocess(torch.from_numpy(y.astype(np.int32)), 10)[0])
    mask = cambi_spatial_mask(img[None])[0]
    counted = mask & (img < 400)
    pos = counted.flatten().nonzero().squeeze(1)
    for radius in (2, 5, 16):
        a = window_counts(img, counted, radius, pos, range(-4, 5))
        b = window_counts_by_level(img, counted, radius, pos, range(-4, 5))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_v1016_file_is_known_by_its_content_and_unknown_names_list_v1016(
        tmp_path: Path) -> None:
    from vmafdistill.teacher.model_v1016 import is_v1016_model

    upper = tmp_path / "my_model.JSON"
    upper.write_bytes(_model_path("vmaf_v1.0.16_3d0h").read_bytes())
    assert is_v1016_model(upper)  # was refused for its suffix, with v0.6.1 advice
    with pytest.raises(ModelError, match=r"vmaf_v1\.0\.16_3d0h"):
        VmafModel.load("vmaf_v1.0.16")


def test_bad_input_is_a_clear_error() -> None:
    small = gradient_clip(192, 108, 2, bit_depth=8)
    with pytest.raises(VideoInputError, match=r"vmaf_v1.0.16_3d0h.*cambi.*216"):
        V1016Scorer("vmaf_v1.0.16_3d0h").update(small[0], small[0], small[1:], small[1:])
    # 480x270 4:2:0 with the 0.5 prescale leaves no 5x5 SpEED block (libvmaf segfaults here).
    mid = gradient_clip(480, 270, 2, bit_depth=8)
    for ref_uv, dist_uv in ((mid[1:], mid[1:]), (None, mid[1:]), (mid[1:], None)):
        # a gray side too: it gets the other's chroma shape (an IndexError came from SpEED)
        with pytest.raises(VideoInputError, match=r"3d0h_2160.*speed_chroma.*at least 159x159"):
            V1016Scorer("vmaf_v1.0.16_3d0h_2160").update(mid[0], mid[0], ref_uv, dist_uv)
    with pytest.raises(ModelError, match=r"v1\.0\.16.*adm3"):
        VmafModel.load("vmaf_v1.0.16_3d0h")
    ok = gradient_clip(320, 240, 1, bit_depth=8)
    full_chroma = (np.repeat(np.repeat(ok[1], 2, axis=-2), 2, axis=-1),) * 2  # 4:4:4
    with pytest.raises(VideoInputError, match=r"chroma planes differ \(160x120 vs 320x240"):
        V1016Scorer("vmaf_v1.0.16_3d0h").update(ok[0], ok[0], ok[1:], full_chroma)
    scorer = V1016Scorer("vmaf_v1.0.16_3d0h")
    scorer.update(ok[0], ok[0], ok[1:], ok[1:])
    assert np.isfinite(scorer.result()["vmaf"]).all()  # adm3 included: a full score


def test_gray_input_is_scored_as_libvmaf_scores_it(tmp_path: Path) -> None:
    """A gray reference against a YUV distorted of the same (full) range: ffmpeg hands libvmaf
    neutral chroma for the gray side, and every printed feature and VMAF agree within the
    v1.0.16 tolerances; gray on both sides scores with SpEED chroma 0 (what libvmaf prints
    when both chroma planes are flat)."""
    ref = tmp_path / "gray_ref.y4m"
    dist = tmp_path / "yuv_dist.y4m"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "3",
                "-pix_fmt", "gray", "-strict", "-1", "-y", str(ref)], what="gray ref")
    run_ffmpeg(["-i", str(ref), "-vf", "noise=alls=12:allf=t:all_seed=3,format=yuvj420p",
                "-y", str(dist)], what="yuv dist")
    lib = _libvmaf(ref, dist, "vmaf_v1.0.16_3d0h")
    r, d = read_all(ref, planes="yuv"), read_all(dist, planes="yuv")
    assert r.u is None and d.u is not None
    scorer = V1016Scorer("vmaf_v1.0.16_3d0h")
    scorer.update(r.y, d.y, None, (d.u, d.v), bit_depth=8)
    ours = scorer.result()
    for name, values in ours.items():
        if name in lib.frames[0]:
            tol = VMAF_TOL if name == "vmaf" else FEATURE_TOL
            assert np.abs(values - np.array(lib.metric(name))).max() <= tol, name
    both = V1016Scorer("vmaf_v1.0.16_3d0h")
    both.update(r.y, r.y, None, None, bit_depth=8)
    speed = {k: v for k, v in both.result().items() if k.startswith("speed_chroma")}
    assert len(speed) == 3 and all((v == 0).all() for v in speed.values())


def test_score_command_scores_v1016(clips: dict[str, tuple[Path, Path]], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``vmafdistill score --model vmaf_v1.0.16_3d0h`` scores (no refusal), as libvmaf does."""
    import json

    from vmafdistill.cli import main

    ref, dist = clips["bright10_odd"]
    out_json = tmp_path / "v1016.json"
    out_csv = tmp_path / "v1016.csv"
    rc = main(["score", str(ref), str(dist), "--model", "vmaf_v1.0.16_3d0h", "--chunk", "2",
               "--json", str(out_json), "--csv", str(out_csv), "--quiet"])
    assert rc == 0
    assert "model vmaf_v1.0.16_3d0h" in capsys.readouterr().out
    lib = _libvmaf(ref, dist, "vmaf_v1.0.16_3d0h")
    doc = json.loads(out_json.read_text())
    frames = doc["frames"]
    # the info said dtype float64 and no mode (0.6.1 says mode exact, dtype int)
    assert doc["info"]["mode"] == "exact" and doc["info"]["dtype"] == "libvmaf"
    got = np.array([f["metrics"]["vmaf"] for f in frames])
    assert np.abs(got - np.array(lib.metric("vmaf"))).max() <= VMAF_TOL
    adm3 = V1016Model.load("vmaf_v1.0.16_3d0h").printed_names()["adm3"]
    got_adm3 = np.array([f["metrics"][adm3] for f in frames])
    assert np.abs(got_adm3 - np.array(lib.metric(adm3))).max() <= FEATURE_TOL
    header = out_csv.read_text().splitlines()[0].split(",")
    assert "vmaf" in header and adm3 in header
    # every name libvmaf prints for the model, in its order (the per-scale ADM ones included)
    from vmafdistill.oracle import _canonical  # the oracle adds canonical aliases: drop them

    aliases = {_canonical(n) for n in lib.frames[0] if _canonical(n) != n}
    printed = [n for n in lib.frames[0] if n not in aliases]
    assert list(frames[0]["metrics"]) == printed
    for name in printed:
        worst = max(abs(f["metrics"][name] - g[name]) for f, g in zip(frames, lib.frames,
                                                                        strict=True))
        assert worst <= (VMAF_TOL if name == "vmaf" else FEATURE_TOL), (name, worst)


def test_corpus_labels_with_a_v1016_teacher(tmp_path) -> None:
    """teacher.model=vmaf_v1.0.16_3d0h labels a corpus: its VMAF per frame equals the scorer's,
    the features v0.6.1 has and v1.0.16 lacks are NaN (not zeros), and the labels get their own
    cache entries (the teacher identity names the model)."""
    import numpy as np

    from vmafdistill._ffmpeg import run_ffmpeg
    from vmafdistill.corpus.build import build_corpus
    from vmafdistill.corpus.tables import load_table

    src = tmp_path / "grad.y4m"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=384x216:rate=25:duration=0.4",
                "-pix_fmt", "yuv420p", str(src)], what="source")
    cfg = {
        "corpus": {"name": "v1016", "sources": [str(src)]},
        "ladder": {"name": "one", "rungs": [{"codec": "h264", "height": 1.0, "crf": 38}]},
        "teacher": {"backend": "torch", "model": "vmaf_v1.0.16_3d0h", "device": "cpu",
                    "chunk": 4, "scale_flags": "bicubic+accurate_rnd+bitexact"},
        "shots": {"threshold": 0.3, "mean_threshold": 24.0, "min_len_s": 0.2, "max_len_s": 1.0},
        "encode": {"scale_flags": "bicubic+accurate_rnd+bitexact"},
        "out_dir": str(tmp_path / "out"), "cache_root": str(tmp_path / "cache"),
        "workers": 1, "progress": False, "shard": {"index": None, "count": None},
        "fail_fast": True,
    }
    report = build_corpus(cfg)
    frames = load_table(tmp_path / "out", "frames")
    assert (report.samples["teacher_model"] == "vmaf_v1.0.16_3d0h").all()
    assert frames["vmaf"].between(0, 100).all() and frames["adm2"].notna().all()
    assert frames["vif_scale0"].isna().all()
    enc = next(iter((tmp_path / "cache" / "encodes").rglob("*.mp4")))
    from vmafdistill.teacher.score import score_files

    direct = score_files(src, enc, model="vmaf_v1.0.16_3d0h", rescale=True,
                         scale_flags="bicubic+accurate_rnd+bitexact")
    np.testing.assert_allclose(frames["vmaf"].to_numpy(), direct.metrics["vmaf"], atol=1e-9)

    # The teacher check (`vmafdistill corpus teacher_check=true`, pilot step 2): the same corpus
    # labelled by libvmaf running the same model file; every shot label within the per-frame
    # bound (a shot label is a mean of frames).
    from vmafdistill.corpus.teacher_check import run_teacher_check

    check = run_teacher_check(cfg, report, build_corpus)
    assert check["samples"] == len(report.samples) >= 1
    assert check["libvmaf"].startswith("libvmaf ") and check["libvmaf"].endswith("v1.0.16")
    assert check["max_abs_diff"] <= VMAF_TOL, check
    oracle_frames = load_table(tmp_path / "out_libvmaf", "frames")
    assert oracle_frames["vif_scale0"].isna().all()
    np.testing.assert_allclose(oracle_frames["adm2"], frames["adm2"],
                               atol=FEATURE_TOL)
    assert (tmp_path / "out" / "teacher_check.csv").is_file()


def test_the_scorer_refuses_input_libvmaf_would_not_score_as_given() -> None:
    """Frames passed as ``x / 255`` scored 97.9 where libvmaf reads 85 (exact v0.6.1 refuses
    them); a 7-bit depth, (H, W) luma, chroma of another frame count or a size change mid-stream
    were tracebacks from deep inside; an empty chunk gave an empty result, and there was no
    reset to score the next clip."""
    rng = np.random.default_rng(0)
    y = rng.integers(16, 236, (2, 176, 224), dtype=np.uint8)
    uv = rng.integers(16, 241, (2, 88, 112), dtype=np.uint8)
    scorer = V1016Scorer()

    def refused(match: str, ref_y, dist_y, ref_uv=(uv, uv), dist_uv=(uv, uv), **kw) -> None:
        with pytest.raises(VideoInputError, match=match):
            scorer.update(ref_y, dist_y, ref_uv, dist_uv, **kw)
        scorer.reset()

    floats = y.astype(np.float32)
    refused(r"distorted luma samples must be integer 8-bit values", y, floats / 255)
    refused(r"samples must be integer", y, floats + 0.7)
    ten_bit = y.astype(np.uint16) << 2
    refused(r"reference luma samples lie in 64\.\.940, outside 8-bit", ten_bit, y)
    refused(r"bit depth must be an integer 8\.\.16, got 7", y, y, bit_depth=7)
    refused(r"luma chunks must be \(n, H, W\)", y[0], y[0])
    refused(r"reference u planes must be \(n, H, W\) with the luma's 2 frames",
            y, y, ref_uv=(uv[:1], uv[:1]))
    # chroma planes no decoder gives for these frames: 10x10 failed deep in SpEED's filter,
    # planes larger than the luma were cropped and scored
    for bad in (uv[:, :10, :10], np.tile(uv, (1, 3, 3))):
        refused(rf"distorted u planes are {bad.shape[2]}x{bad.shape[1]}, no chroma plane of "
                r"224x176 frames", y, y, dist_uv=(bad, bad))
    # floor-sized planes of odd frames are what SpEED crops to: scored
    scorer.update(y[:, :175, :223], y[:, :175, :223], (uv[:, :87, :111],) * 2,
                  (uv[:, :87, :111],) * 2)
    scorer.reset()
    # a refused chunk (chroma of two layouts) leaves nothing behind: the next one is scored
    with pytest.raises(VideoInputError, match="chroma planes differ"):
        scorer.update(y, y, (y, y), (uv, uv))
    scorer.update(y, y, (uv, uv), (uv, uv))
    scorer.reset()
    # ... or a layout that changes between chunks (4:2:0, then 4:4:4)
    scorer.update(y, y, (uv, uv), (uv, uv))
    with pytest.raises(VideoInputError, match=r"chroma planes changed mid-stream from 112x88 "
                                              r"to 224x176"):
        scorer.update(y, y, (y, y), (y, y))
    scorer.reset()
    scorer.update(y, y, (uv, uv), (uv, uv))
    with pytest.raises(VideoInputError, match="frame size changed mid-stream"):
        scorer.update(y[:, :, :200], y[:, :, :200], (uv[:, :, :100],) * 2,
                      (uv[:, :, :100],) * 2)
    scorer.reset()
    scorer.update(y[:0], y[:0], (uv[:0], uv[:0]), (uv[:0], uv[:0]))  # an empty chunk: nothing
    with pytest.raises(VideoInputError, match="no frames were scored"):
        scorer.result()
    # integer-valued floats and a tensor that requires grad are decoded frames as well
    scorer.update(torch.from_numpy(floats).requires_grad_(), floats, (uv, uv), (uv, uv))
    first = scorer.result()["vmaf"]
    scorer.reset()
    scorer.update(y, y, (uv, uv), (uv, uv))
    np.testing.assert_array_equal(scorer.result()["vmaf"], first)


def test_the_scorer_refuses_a_depth_change_and_unlike_u_v_and_takes_flipped_views() -> None:
    """VmafScorer refused a bit depth changing mid-stream; V1016Scorer mixed 8- and 10-bit
    frames in motion3's history (75.2 read 86.4, the first frame too). A v plane of another
    size than u was cropped to u's (SpEED v read 0: 75.2 became 76.6). ``np.flip`` views were
    torch's negative-stride ValueError (VmafScorer copies them)."""
    rng = np.random.default_rng(1)
    y = rng.integers(16, 236, (2, 176, 224), dtype=np.uint8)
    uv = rng.integers(16, 241, (2, 88, 112), dtype=np.uint8)
    scorer = V1016Scorer()
    scorer.update(y[:1], y[:1], (uv[:1], uv[:1]), (uv[:1], uv[:1]), bit_depth=8)
    ten = [a[1:].astype(np.uint16) << 2 for a in (y, uv)]
    with pytest.raises(VideoInputError, match="bit depth changed mid-stream from 8 to 10"):
        scorer.update(ten[0], ten[0], (ten[1], ten[1]), (ten[1], ten[1]), bit_depth=10)
    scorer.reset()
    scorer.update(ten[0], ten[0], (ten[1], ten[1]), (ten[1], ten[1]), bit_depth=10)  # afresh
    scorer.reset()
    half_v = uv[:, ::2, ::2]
    with pytest.raises(VideoInputError, match=r"reference u and v planes differ in shape"):
        scorer.update(y, y, (uv, half_v), (uv, uv))
    scorer.reset()
    flipped = np.flip(y, axis=-1)
    scorer.update(flipped, flipped, (np.flip(uv, -1),) * 2, (np.flip(uv, -1),) * 2)
    by_copy = V1016Scorer()
    copies = np.ascontiguousarray(flipped), np.ascontiguousarray(np.flip(uv, -1))
    by_copy.update(copies[0], copies[0], (copies[1],) * 2, (copies[1],) * 2)
    np.testing.assert_array_equal(scorer.result()["vmaf"], by_copy.result()["vmaf"])


def test_cambi_s_topk_option_is_read_under_both_names_as_libvmaf_does(
        clips: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    """libvmaf takes CAMBI's top-k share as ``topk`` or ``cambi_topk`` (and prints each with
    its own alias); ``topk`` was refused here, in a message naming no file. Both now score
    as libvmaf does, every printed feature and VMAF."""
    import json

    ref, dist = clips["dark10"]
    for key in ("topk", "cambi_topk"):
        doc = json.loads(_model_path("vmaf_v1.0.16_3d0h").read_text())
        opts = doc["model_dict"]["feature_opts_dicts"]
        (cambi,) = [o for o in opts if "cambi_max_val" in o]
        cambi[key] = 0.3
        path = tmp_path / f"v_{key}.json"
        path.write_text(json.dumps(doc))
        lib = libvmaf_score(ref, dist, model=str(path))
        ours = _ours(ref, dist, V1016Model.load(str(path)), features_only=False)
        default = _ours(ref, dist, V1016Model.load("vmaf_v1.0.16_3d0h"))
        cambi_name = V1016Model.load(str(path)).printed_names()["cambi"]
        assert not np.array_equal(ours[cambi_name], next(
            v for k, v in default.items() if k.startswith("cambi")))  # the option matters
        for name, values in ours.items():
            tol = VMAF_TOL if name == "vmaf" else FEATURE_TOL
            assert np.abs(values - np.array(lib.metric(name))).max() <= tol, (key, name)


def test_a_model_option_this_teacher_lacks_is_one_model_error(tmp_path: Path) -> None:
    """libvmaf scores a v1.0.16 JSON with ``cambi_eotf: pq`` or another SpEED kernel scale;
    this teacher does not reproduce them, and said so with a ValueError traceback."""
    import json

    from vmafdistill.errors import ModelError
    from vmafdistill.teacher.model_v1016 import V1016Model, resolve_v1016_path
    from vmafdistill.teacher.v1016 import V1016Scorer

    doc = json.loads(resolve_v1016_path("vmaf_v1.0.16_3d0h").read_text())
    md = doc["model_dict"]
    cambi = [i for i, n in enumerate(md["feature_names"]) if "cambi" in n.lower()]
    assert cambi, md["feature_names"]
    md["feature_opts_dicts"][cambi[0]]["cambi_eotf"] = "pq"
    path = tmp_path / "v_cambi.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=r"model v_cambi: .*cambi_eotf"):
        V1016Scorer(V1016Model.load(str(path)))
    # an ADM option value out of range: refused before any frame, not per chunk mid-stream
    doc = json.loads(resolve_v1016_path("vmaf_v1.0.16_3d0h").read_text())
    md = doc["model_dict"]
    (adm,) = [i for i, n in enumerate(md["feature_names"]) if "adm" in n.lower()]
    md["feature_opts_dicts"][adm]["adm_enhn_gain_limit"] = 0.5
    path = tmp_path / "v_adm.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=r"model v_adm: .*adm_enhn_gain_limit"):
        V1016Scorer(V1016Model.load(str(path)))
    # a CAMBI window outside 15-127: ffmpeg's libvmaf refuses the model (measured: 14 and 200
    # fail to initialise, 15 and 127 score); a window of 200 was scored here
    for window, refused in ((14, True), (15, False), (127, False), (200, True)):
        doc = json.loads(resolve_v1016_path("vmaf_v1.0.16_3d0h").read_text())
        doc["model_dict"]["feature_opts_dicts"][cambi[0]]["window_size"] = window
        path = tmp_path / f"v_ws{window}.json"
        path.write_text(json.dumps(doc))
        if refused:
            with pytest.raises(ModelError, match=rf"model v_ws{window}: CAMBI option "
                                                 rf"window_size={window} is outside libvmaf's "
                                                 r"range 15-127"):
                V1016Scorer(V1016Model.load(str(path)))
        else:
            assert V1016Scorer(V1016Model.load(str(path))).cambi_opts.window_size == window
    # an option libvmaf takes that is not reproduced here: one line naming the file, at load
    doc = json.loads(resolve_v1016_path("vmaf_v1.0.16_3d0h").read_text())
    (motion,) = [o for o in doc["model_dict"]["feature_opts_dicts"] if "motion_max_val" in o]
    motion["motion_fps_weight"] = 2.0
    path = tmp_path / "v_fpsw.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=r"model file .*v_fpsw\.json: feature option "
                                         r"'motion_fps_weight' of integer_motion3"):
        V1016Model.load(str(path))


def _striped_chroma_frame(tmp_path: Path) -> tuple[Path, Path]:
    """A hunt's frame (640x480): random luma, chroma of 1-D stripes with sparse +-2 dots in
    the distorted one, whose V covariance is ill-conditioned yet passes SpEED's eigenvalue
    test (frame 18 of its seeded sweep, replayed)."""
    w, h, cw, ch = 640, 480, 320, 240
    rng = np.random.default_rng(7)
    xx = np.arange(cw)[None, :].repeat(ch, 0)
    base_u = 128 + np.round(20 * np.sin(2 * np.pi * xx / 37.0))
    base_v = 128 + np.round(15 * np.sin(2 * np.pi * xx / 23.0 + 1))
    for i in range(19):
        p = 10 ** (-3.0 + 0.4 * i / 39)
        y = rng.integers(40, 200, (h, w), dtype=np.uint8)
        yd = np.clip(y.astype(int) + rng.integers(-3, 4, (h, w)), 0, 255).astype(np.uint8)
        planes = []
        for luma in (y, yd):
            chroma = [np.clip(b + (rng.random(b.shape) < p) * rng.choice([-2, 2], b.shape), 0,
                              255).astype(np.uint8) for b in (base_u, base_v)]
            planes.append((luma, *chroma))
    out = []
    for name, frame in zip(("ref", "dist"), planes, strict=True):
        path = tmp_path / f"stripes_{name}.y4m"
        path.write_bytes(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n"
                         + b"".join(p.tobytes() for p in frame))
        out.append(path)
    return out[0], out[1]


def test_a_nan_speed_score_is_clipped_to_the_maximum_as_libvmaf_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A near-singular chroma covariance gives SpEED a NaN plane score in libvmaf's arithmetic
    too; libvmaf's MIN(a, b) (a < b ? a : b) then prints the maximum, 45. Python's min() kept
    the NaN: the frame's VMAF was NaN (libvmaf 61.47) and so was the clip's pooled score."""
    import vmafdistill.teacher.speed as speed

    opts = SpeedOptions(max_val=45.0)
    plane = torch.zeros(1, 40, 40)
    monkeypatch.setattr(speed, "speed_score_plane", lambda r, d, o: (math.nan, False))
    got = speed.speed_chroma(plane, plane, plane, plane, opts)
    assert {k: v.tolist() for k, v in got.items()} == {
        "speed_chroma_u": [45.0], "speed_chroma_v": [45.0], "speed_chroma_uv": [45.0]}
    monkeypatch.undo()
    # the hunt's frame, against libvmaf on this machine (whether this CPU's rounding takes
    # the NaN path or not, the two must agree)
    ref, dist = _striped_chroma_frame(tmp_path)
    lib = _libvmaf(ref, dist, "vmaf_v1.0.16_3d0h")
    ours = score_files(ref, dist, model="vmaf_v1.0.16_3d0h")
    got_vmaf = ours.frames()[0]["vmaf"]
    assert math.isfinite(got_vmaf) and abs(got_vmaf - lib.metric("vmaf")[0]) <= VMAF_TOL


@pytest.mark.parametrize(("pix_fmt", "keep", "full"), [
    ("yuv420p9le", 510, False), ("yuv420p14le", 16380, False), ("yuv420p9le", 510, True)])
def test_nine_and_fourteen_bit_files_are_scored_at_the_depth_ffmpeg_hands_libvmaf(
        tmp_path: Path, pix_fmt: str, keep: int, full: bool) -> None:
    """ffmpeg's libvmaf filter takes 8-, 10-, 12- and 16-bit formats: a 9-bit file reaches
    libvmaf as 10 bits (shifted up), where CAMBI's anti-dithering filter (run below 10 bits
    only) is off. Scored at 9 bits, a banded gradient read CAMBI 10.40 where libvmaf gives
    17.00, VMAF 3.7 apart (a hunt). 14 bits reach it as 16. Checked against libvmaf through
    ffmpeg, the score command's path (``score_files``). Full-range luma goes up by bit
    replication, as ffmpeg's scaler converts it (a shift read 7e-4 VMAF off; a final read)."""
    ext = "mkv" if full else "y4m"  # FFV1 in Matroska keeps a full-range tag
    ref, dist = tmp_path / f"ref.{ext}", tmp_path / f"dist.{ext}"
    tag = ["-color_range", "pc", "-c:v", "ffv1"] if full else ["-strict", "-1"]
    scale = "scale=out_range=pc," if full else ""
    # bright where full range: replication adds x >> 8, zero below half the 9-bit range
    colours = "c0=0x909090:c1=0xd0d0d0" if full else "c0=0x3c3c3c:c1=0x646464"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"gradients=s=320x216:{colours}:x0=0:"
                "y0=0:x1=320:y1=0:speed=0.01:r=25", "-frames:v", "3", "-vf",
                f"{scale}format={pix_fmt}", "-pix_fmt", pix_fmt, *tag, str(ref)],
               what="a gradient reference")
    run_ffmpeg(["-y", "-i", str(ref), "-vf", f"lutyuv=y=bitand(val\\,{keep}),noise=c0s=1:"
                "c0f=t", "-pix_fmt", pix_fmt, *tag, str(dist)], what="its banded, noisy copy")
    name = "vmaf_v1.0.16_3d0h"
    lib = _libvmaf(ref, dist, name)
    ours = score_files(ref, dist, model=name)
    cambi = V1016Model.load(name).printed_names()["cambi"]
    np.testing.assert_allclose(np.asarray(ours.metrics[cambi]), lib.metric(cambi), atol=FEATURE_TOL)
    np.testing.assert_allclose(np.asarray(ours.metrics["vmaf"]), lib.metric("vmaf"), atol=VMAF_TOL)


def test_a_rescaled_rung_of_a_nine_bit_master_is_scored_as_ffmpeg_graph_scores_it(
        tmp_path: Path) -> None:
    """With a scale filter on an 8-bit rung, ffmpeg's graph converts a 9-bit master to the
    rung's 8 bits (its filter takes no 9-bit format); --rescale scored the rung converted to
    the master's 9 bits, then at 10 (VMAF 65.13 against libvmaf's 65.38 on testsrc2)."""
    master, rung = tmp_path / "master.mkv", tmp_path / "rung.mp4"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=s=320x216:r=25", "-frames:v", "3",
                "-pix_fmt", "yuv420p9le", "-c:v", "ffv1", str(master)], what="a 9-bit master")
    run_ffmpeg(["-y", "-i", str(master), "-vf", "scale=160:108", "-pix_fmt", "yuv420p",
                "-c:v", "libx264", "-crf", "35", "-x264-params", "threads=1", str(rung)],
               what="its 8-bit rung")
    name = "vmaf_v1.0.16_3d0h"
    lib = libvmaf_score(master, rung, model=str(_model_path(name)), scale_to=(320, 216))
    ours = score_files(master, rung, model=name, rescale=True)
    cambi = V1016Model.load(name).printed_names()["cambi"]
    np.testing.assert_allclose(np.asarray(ours.metrics[cambi]), lib.metric(cambi), atol=FEATURE_TOL)
    np.testing.assert_allclose(np.asarray(ours.metrics["vmaf"]), lib.metric("vmaf"), atol=VMAF_TOL)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a CPU-only torch build")
def test_the_scorer_names_a_device_torch_cannot_use_in_one_line() -> None:
    """``V1016Scorer(device="cuda")`` on a CPU-only torch: torch's bare AssertionError at the
    first update (a hunt); ``VmafScorer`` already said it in one line."""
    from vmafdistill.errors import VmafDistillError

    with pytest.raises(VmafDistillError, match="--device cuda: no CUDA device"):
        V1016Scorer(device="cuda")
