"""The libvmaf oracle, the float model JSONs, and the reproducibility of the golden content."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.errors import FrameMismatchError, ModelError, ToolError, VideoInputError
from vmafdistill.oracle import (
    CANONICAL_METRICS,
    count_frames,
    float_model_json,
    libvmaf_available,
    libvmaf_score,
    model_files_dir,
)
from vmafdistill.testing import content
from vmafdistill.testing.golden import (
    GoldenCase,
    golden_tolerance,
    load_golden,
    recorded_simd_levels,
)

pytestmark = pytest.mark.skipif(not libvmaf_available(), reason="ffmpeg has no libvmaf filter")

TINY_FRAMES = 8
CHEAP_CASES = [c.name for c in content.CASES.values() if c.cheap]


def _lavfi_y4m(out: Path, vf: str | None = None, frames: int = TINY_FRAMES) -> Path:
    """A small moving test pattern (176x144 yuv420p, 25 fps) written as .y4m."""
    args = ["-f", "lavfi", "-i", "testsrc2=size=176x144:rate=25", "-frames:v", str(frames)]
    if vf:
        args += ["-vf", vf]
    run_ffmpeg([*args, "-pix_fmt", "yuv420p", "-y", str(out)], what=f"making {out.name}")
    return out


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(reference, distorted) 176x144 clips of TINY_FRAMES frames; distorted = noise + blur."""
    d = tmp_path_factory.mktemp("tiny")
    ref = _lavfi_y4m(d / "ref.y4m")
    dist = _lavfi_y4m(d / "dist.y4m", "noise=alls=12:allf=t:all_seed=7,gblur=sigma=0.8")
    return ref, dist


# --------------------------------------------------------------------------------------------
# An independent evaluation of the model JSON (libsvm nu-SVR, RBF kernel) in plain Python.
# --------------------------------------------------------------------------------------------


def _svr_predictor(path: Path) -> Callable[[dict[str, float]], float]:
    model = json.loads(path.read_text())["model_dict"]
    header: dict[str, str] = {}
    lines = iter(model["model"].splitlines())
    for line in lines:
        if line.strip() == "SV":
            break
        key, _, value = line.partition(" ")
        header[key] = value
    gamma, rho = float(header["gamma"]), float(header["rho"])
    svs = []
    for line in lines:
        if line.strip():
            coef, *pairs = line.split()
            svs.append((float(coef), {int(i): float(v) for i, v in (p.split(":") for p in pairs)}))
    names = [
        n.removeprefix("VMAF_integer_feature_").removeprefix("VMAF_feature_").removesuffix("_score")
        for n in model["feature_names"]
    ]
    slopes, intercepts = model["slopes"], model["intercepts"]

    def predict(feats: dict[str, float]) -> float:
        x = [slopes[i + 1] * feats[n] + intercepts[i + 1] for i, n in enumerate(names)]
        s = -rho
        for coef, sv in svs:
            dist2 = sum((x[i] - sv.get(i + 1, 0.0)) ** 2 for i in range(len(x)))
            s += coef * math.exp(-gamma * dist2)
        # libvmaf applies the model's score_transform only on request; default is clip only.
        return min(max((s - intercepts[0]) / slopes[0], 0.0), 100.0)

    return predict


# --------------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------------


def test_parses_run_and_counts_frames(tiny_pair: tuple[Path, Path]) -> None:
    ref, dist = tiny_pair
    res = libvmaf_score(ref, dist, model="vmaf_float_v0.6.1")
    assert count_frames(ref) == count_frames(dist) == TINY_FRAMES
    assert res.num_frames == TINY_FRAMES
    assert res.version and res.version != "unknown"
    assert res.ffmpeg_version and res.wall_s > 0
    for frame in res.frames:
        assert set(CANONICAL_METRICS) <= set(frame)
        assert 0.0 <= frame["vmaf"] <= 100.0
    assert res.frames[0]["motion"] == 0.0  # motion of the first frame is 0 by definition
    assert res.pooled["vmaf"]["mean"] == pytest.approx(res.mean("vmaf"), abs=1e-6)
    # The fused score is the SVR of the printed features (printed to 6 decimals).
    predict = _svr_predictor(model_files_dir() / "vmaf_v0.6.1.json")
    for frame in res.frames:
        assert frame["vmaf"] == pytest.approx(predict(frame), abs=5e-4)


def test_identical_inputs(tiny_pair: tuple[Path, Path]) -> None:
    ref, _ = tiny_pair
    res = libvmaf_score(ref, ref, model="vmaf_float_v0.6.1")
    predict = _svr_predictor(model_files_dir() / "vmaf_v0.6.1.json")
    for frame in res.frames:
        assert frame["adm2"] == 1.0
        for s in range(4):
            assert frame[f"adm_scale{s}"] == 1.0
            # Float VIF of identical frames is 1 up to float32 rounding: libvmaf prints 0.999999
            # for some scales of this synthetic pattern (BBB frames give exactly 1.0).
            assert 1.0 - 1e-6 <= frame[f"vif_scale{s}"] <= 1.0
        # VMAF of identical inputs is the model's value at adm2 = vif = 1 (97.43 at motion 0).
        assert frame["vmaf"] == pytest.approx(predict(frame), abs=5e-4)
    assert res.frames[0]["vmaf"] == pytest.approx(97.428043, abs=1e-4)


def test_integer_model_names_are_normalised(tiny_pair: tuple[Path, Path]) -> None:
    ref, dist = tiny_pair
    res = libvmaf_score(ref, dist, model="vmaf_v0.6.1")
    for frame in res.frames:
        assert set(CANONICAL_METRICS) <= set(frame)
        assert frame["adm2"] == frame["integer_adm2"]
        assert frame["motion"] == frame["VMAF_integer_feature_motion_sad_score"]


def test_shorter_distorted_is_not_padded(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    ref, _ = tiny_pair
    short = _lavfi_y4m(tmp_path / "short.y4m", "gblur=sigma=1", frames=TINY_FRAMES - 3)
    with pytest.raises(FrameMismatchError, match=r"short\.y4m"):
        libvmaf_score(ref, short)
    # Without the up-front count, shortest=1 still stops at the shorter input: no repeats.
    res = libvmaf_score(ref, short, check_frame_counts=False)
    assert res.num_frames == TINY_FRAMES - 3


def test_size_or_depth_mismatch_is_refused(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    ref, _ = tiny_pair
    small = _lavfi_y4m(tmp_path / "small.y4m", "scale=88:72")
    with pytest.raises(FrameMismatchError, match="88x72"):
        libvmaf_score(ref, small)
    # ffmpeg would silently convert the 8-bit reference to 10 bits: refuse instead.
    deep = tmp_path / "deep.y4m"
    run_ffmpeg(["-i", str(ref), "-pix_fmt", "yuv420p10le", "-strict", "-1", "-y", str(deep)],
               what="making 10-bit clip")  # fmt: skip
    with pytest.raises(FrameMismatchError, match="yuv420p10le"):
        libvmaf_score(ref, deep)
    # a raw 10-bit reference named by the alias without le (yuv420p10) read as 8-bit, and
    # ffmpeg converted it silently (VMAF 90.91 for frames of other depths)
    raw10 = tmp_path / "deep.yuv"
    run_ffmpeg(["-i", str(deep), "-f", "rawvideo", "-y", str(raw10)], what="writing raw")
    for alias in ("yuv420p10le", "yuv420p10"):
        with pytest.raises(FrameMismatchError, match="bit depths differ"):
            libvmaf_score(raw10, ref, ref_raw={"width": 176, "height": 144, "pix_fmt": alias})


def test_raw_input_matches_y4m(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    ref, dist = tiny_pair
    raw = {"width": 176, "height": 144, "pix_fmt": "yuv420p"}
    raws = []
    for src in (ref, dist):
        out = tmp_path / f"{src.stem}.yuv"
        run_ffmpeg(["-i", str(src), "-f", "rawvideo", "-y", str(out)], what="writing raw")
        raws.append(out)
    assert count_frames(raws[0], raw) == TINY_FRAMES
    via_raw = libvmaf_score(raws[0], raws[1], ref_raw=raw, dist_raw=raw)
    via_y4m = libvmaf_score(ref, dist)
    assert via_raw.frames == via_y4m.frames


def test_scale_to_scores_low_resolution_distorted(tmp_path: Path, tiny_pair: tuple[Path, Path]):
    ref, _ = tiny_pair
    small = _lavfi_y4m(tmp_path / "small.y4m", "scale=88:72:flags=bicubic")
    res = libvmaf_score(
        ref, small, scale_to=(176, 144), scale_flags="bicubic+accurate_rnd+bitexact"
    )
    assert res.num_frames == TINY_FRAMES
    assert 0.0 < res.mean() < 97.0


def test_special_characters_in_paths(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    # ':' ',' '[' ']' quote, '=' and space all mean something to ffmpeg's filtergraph parsers.
    weird = tmp_path / "we:ird, [dir]'s=x"
    weird.mkdir()
    ref = shutil.copy(tiny_pair[0], weird / "r:e,f.y4m")
    dist = shutil.copy(tiny_pair[1], weird / "d [i] s't.y4m")
    model = shutil.copy(float_model_json("vmaf_v0.6.1"), weird / "mo:del, 1.json")
    via_path = libvmaf_score(ref, dist, model=str(model))
    builtin = libvmaf_score(tiny_pair[0], tiny_pair[1], model="vmaf_float_v0.6.1")
    assert via_path.frames == builtin.frames


# --------------------------------------------------------------------------------------------
# Float model JSONs
# --------------------------------------------------------------------------------------------


def test_float_json_is_derived_from_package() -> None:
    for name in ("vmaf_v0.6.1", "vmaf_v0.6.1neg", "vmaf_4k_v0.6.1"):
        path = float_model_json(name)
        doc = json.loads(path.read_text())["model_dict"]
        assert all(f.startswith("VMAF_feature_") for f in doc["feature_names"])
        assert list(doc["feature_dict"]) == ["VMAF_feature"]
        src = json.loads((model_files_dir() / f"{name}.json").read_text())["model_dict"]
        assert doc["model"] == src["model"] and doc["slopes"] == src["slopes"]
        assert doc.get("feature_opts_dicts") == src.get("feature_opts_dicts")


def test_float_json_reproduces_builtin(tiny_pair: tuple[Path, Path]) -> None:
    ref, dist = tiny_pair
    builtin = libvmaf_score(ref, dist, model="vmaf_float_v0.6.1")
    via_json = libvmaf_score(ref, dist, model=float_model_json("vmaf_v0.6.1"))
    for fb, fj in zip(builtin.frames, via_json.frames, strict=True):
        for m in CANONICAL_METRICS:
            assert abs(fb[m] - fj[m]) <= 1e-6, m


def test_neg_float_json_limits_enhancement(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    ref, _ = tiny_pair
    sharp = _lavfi_y4m(tmp_path / "sharp.y4m", "unsharp=5:5:1.5:5:5:0")
    normal = libvmaf_score(ref, sharp, model=float_model_json("vmaf_v0.6.1"))
    neg = libvmaf_score(ref, sharp, model=float_model_json("vmaf_v0.6.1neg"))
    # The neg model's enhancement-gain limits (feature_opts_dicts) reach the float extractors.
    assert "adm2_egl_1" in neg.frames[0]
    assert all(n["vmaf"] <= f["vmaf"] for n, f in zip(neg.frames, normal.frames, strict=True))
    assert neg.mean() < normal.mean() - 1.0
    assert all(n["adm2"] <= f["adm2"] for n, f in zip(neg.frames, normal.frames, strict=True))


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    missing = tmp_path / "nope.y4m"
    with pytest.raises(VideoInputError, match=r"nope\.y4m"):
        libvmaf_score(tiny_pair[0], missing)
    with pytest.raises(VideoInputError, match=r"nope\.y4m"):
        libvmaf_score(missing, tiny_pair[1])


def test_unknown_model_is_named(tiny_pair: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises((ModelError, ToolError), match="vmaf_bogus_v9"):
        libvmaf_score(*tiny_pair, model="vmaf_bogus_v9")
    with pytest.raises(ModelError, match=r"absent\.json"):
        libvmaf_score(*tiny_pair, model=str(tmp_path / "absent.json"))
    with pytest.raises(ModelError, match="vmaf_v9"):
        float_model_json("vmaf_v9")


# --------------------------------------------------------------------------------------------
# Content cases and golden data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bbb322x182_x264_crf30", "bbb321x181_yuv444p_x264_crf30"])
def test_case_builds_deterministically(name: str, tmp_path: Path) -> None:
    first = content.build_case(name, tmp_path / "a")
    second = content.build_case(name, tmp_path / "b")
    for a, b in ((first.ref, second.ref), (first.dist, second.dist)):
        assert a != b
        assert content.decoded_sha256(a) == content.decoded_sha256(b)
    assert first.ref_format == second.ref_format and first.frames == second.frames


def test_every_case_has_golden_file() -> None:
    for name in content.CASES:
        golden = load_golden(name)
        assert golden["case"] == name
        assert golden["frames"] == content.FRAMES
        models = golden["models"]
        assert {"vmaf_float_v0.6.1", "vmaf_v0.6.1", *content.CASES[name].extra_models} == set(
            models
        )
        for rec in models.values():
            assert set(rec["per_frame"]) == set(CANONICAL_METRICS)
            assert all(len(v) == content.FRAMES for v in rec["per_frame"].values())


@pytest.mark.parametrize("name", list(content.CASES))
def test_golden_content_matches_fresh_build(
    name: str, golden_case: Callable[[str], GoldenCase]
) -> None:
    case = golden_case(name)  # the fixture fails on a sha256 mismatch; check explicitly anyway
    assert case.content_mismatches() == []
    assert case.golden["ref"]["width"] == case.built.ref_format.width
    assert case.golden["dist"]["pix_fmt"] == case.built.dist_format.pix_fmt


@pytest.mark.parametrize("name", [*CHEAP_CASES, "bbb720_x264_360p_crf30_upscaled"])
def test_golden_scores_reproduce(name: str, golden_case: Callable[[str], GoldenCase]) -> None:
    case = golden_case(name)
    for model in ("vmaf_float_v0.6.1", "vmaf_v0.6.1"):
        res = libvmaf_score(case.ref, case.dist, model=model, **case.built.oracle_kwargs())
        if res.version != case.golden["libvmaf_version"]:
            # Another libvmaf may legitimately print different digits; content is still checked.
            pytest.skip(f"libvmaf {res.version} != golden {case.golden['libvmaf_version']}")
        for metric in CANONICAL_METRICS:
            # Tolerances and why: vmafdistill.testing.golden._OTHER_SIMD_TOL.
            tol = case.tolerance(model, metric)
            gap = max(abs(a - b) for a, b in
                      zip(res.metric(metric), case.per_frame(model, metric), strict=True))
            assert gap <= tol, (model, metric, gap, tol)


def test_golden_tolerances_are_tight_where_recorded() -> None:
    """Same SIMD level: one printed digit; other levels only as loose as measured gaps need."""
    same = golden_tolerance("integer", "vmaf", same_simd=True)
    assert same <= 2e-6
    assert golden_tolerance("integer", "vif_scale0", same_simd=False) == same  # integer VIF exact
    assert golden_tolerance("integer", "motion2", same_simd=False) == same
    assert golden_tolerance("float", "vmaf", same_simd=False) <= 5e-5
    assert golden_tolerance("float", "adm2", same_simd=False) <= 5e-6


def test_golden_records_where_they_were_made() -> None:
    for name in content.CASES:
        golden = load_golden(name)
        levels = recorded_simd_levels(golden)
        assert golden["made_on"]["simd"] in levels and golden["made_on"]["cpu"]
        for model in golden["models"].values():
            assert set(model.get("per_frame_by_simd", {})) <= levels


def test_golden_motion_extremes() -> None:
    static = load_golden("bbb720_static_x264_crf30")["models"]
    moving = load_golden("bbb720_every4th_x264_crf30")["models"]
    for model in ("vmaf_float_v0.6.1", "vmaf_v0.6.1"):
        assert static[model]["per_frame"]["motion"] == [0.0] * content.FRAMES
        assert static[model]["per_frame"]["motion2"] == [0.0] * content.FRAMES
        assert max(moving[model]["per_frame"]["motion"]) > 10.0


def test_the_frame_count_decodes_as_the_scoring_pass(
        tmp_path: Path, tiny_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The corpus scores a source single-threaded (a damaged file's concealment differs per
    multi-threaded run); the frame count taken before it decoded with ffmpeg's default threads."""
    import subprocess

    import vmafdistill.oracle as oracle

    ref, dist = tiny_pair
    mp4 = tmp_path / "dist.mp4"
    run_ffmpeg(["-i", str(dist), "-c:v", "libx264", str(mp4)], what="an encode")
    commands: list[list[str]] = []
    real_run = subprocess.run

    def run(cmd: list[str], *args: object, **kw: object) -> object:
        commands.append([str(c) for c in cmd])
        return real_run(cmd, *args, **kw)

    monkeypatch.setattr(oracle.subprocess, "run", run)
    libvmaf_score(ref, mp4, decoder_threads=1)
    counting = [c for c in commands if "-progress" in c]
    assert counting and all(c[c.index("-i") - 2:c.index("-i")] == ["-threads", "1"]
                            for c in counting), counting
    assert count_frames(mp4) == TINY_FRAMES


def test_golden_same_level_on_another_cpu_kind_is_not_recorded_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An AMD EPYC with AVX-512 runs libvmaf's AVX-512 kernels like the Intel Xeon the golden
    files were made on, yet its float VMAF differs by up to 9e-6: the one-digit tolerance
    applies only on the CPU kind *and* level a value was recorded on."""
    from vmafdistill.testing import golden as golden_mod
    from vmafdistill.testing.golden import GoldenCase

    record = load_golden(CHEAP_CASES[0])
    made = record["made_on"]
    assert golden_mod.cpu_vendor(made["cpu"]) in ("intel", "amd")
    case = GoldenCase(built=None, golden=record)  # type: ignore[arg-type]
    monkeypatch.setattr(golden_mod, "cpu_record", lambda: dict(made))
    assert case.recorded_here()
    # the same vendor under another (cloud) model name is the same kind
    monkeypatch.setattr(golden_mod, "cpu_record",
                        lambda: {"cpu": f"{made['cpu']}(R) 8481C", "simd": made["simd"]})
    assert case.recorded_here()
    other = "AMD EPYC" if golden_mod.cpu_vendor(made["cpu"]) == "intel" else "Intel Xeon"
    monkeypatch.setattr(golden_mod, "cpu_record",
                        lambda: {"cpu": other, "simd": made["simd"]})
    assert not case.recorded_here() and case.recorded_here(same_vendor=False)
    assert case.tolerance("vmaf_float_v0.6.1", "vmaf") == golden_tolerance(
        "float", "vmaf", same_simd=False)
    # integer features: the same kernels give the same integers on either vendor
    assert case.tolerance("vmaf_v0.6.1", "vmaf") == golden_tolerance(
        "integer", "vmaf", same_simd=True)


def test_simd_level_is_the_kernels_libvmaf_dispatches(monkeypatch: pytest.MonkeyPatch) -> None:
    """libvmaf's AVX-512 kernels dispatch on the base AVX-512 flags (F/DQ/CD/BW/VL: a Skylake-SP
    Xeon runs them; its stricter AVX512ICL level selects no kernel), set only on top of its
    AVX2 level (BMI1/AVX2/BMI2; FMA is not asked for)."""
    import platform

    from vmafdistill import machine

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    base = {"sse2", "avx", "avx2", "bmi1", "bmi2"}
    skylake = base | {"fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
    icelake = skylake | {"avx512ifma", "avx512vbmi", "avx512_vbmi2", "gfni", "vaes"}
    for flags, level in ((icelake, "avx512"), (skylake, "avx512"), (base, "avx2"),
                         (skylake - {"bmi2"}, "c"), ({"sse2", "avx"}, "c")):
        monkeypatch.setattr(machine, "cpu_flags", lambda f=flags: frozenset(f))
        assert machine.simd_level() == level, sorted(flags)
