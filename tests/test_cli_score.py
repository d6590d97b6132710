"""``vmafdistill score`` end to end: output formats, numbers, and one-line errors (exit code 2)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.cli import main
from vmafdistill.teacher.score import score_files
from vmafdistill.teacher.vmaf import VmafResult

REPO = Path(__file__).resolve().parents[1]
FRAMES = 8
W, H = 176, 144
POOL_STATS = {"min", "max", "mean", "harmonic_mean"}


def _y4m(out: Path, *, size: str = f"{W}x{H}", frames: int = FRAMES, vf: str | None = None):
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25", "-frames:v", str(frames)]
    if vf:
        args += ["-vf", vf]
    run_ffmpeg([*args, "-pix_fmt", "yuv420p", "-y", str(out)], what=f"making {out.name}")
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny moving test pattern and distorted versions of it, plus broken inputs."""
    d = tmp_path_factory.mktemp("cli")
    distort = "noise=alls=12:allf=t:all_seed=7,gblur=sigma=0.8"
    c = {
        "ref": _y4m(d / "ref.y4m"),
        "dist": _y4m(d / "dist.y4m", vf=distort),
        # Same content at 160x120: needs --rescale.
        "dist_small": _y4m(d / "dist_small.y4m", vf=f"{distort},scale=160:120"),
        # The first 6 frames only (testsrc2 is deterministic, so these are prefixes).
        "ref6": _y4m(d / "ref6.y4m", frames=6),
        "dist6": _y4m(d / "dist6.y4m", frames=6, vf=distort),
    }
    raw = d / "dist.yuv"
    run_ffmpeg(["-i", str(c["dist"]), "-f", "rawvideo", "-y", str(raw)], what="raw dist")
    c["dist_raw"] = raw
    ref_raw = d / "ref.yuv"
    run_ffmpeg(["-i", str(c["ref"]), "-f", "rawvideo", "-y", str(ref_raw)], what="raw ref")
    c["ref_raw"] = ref_raw
    short = d / "short.yuv"
    short.write_bytes(raw.read_bytes()[:-100])  # 7 frames and most of an 8th
    c["short_raw"] = short
    garbage = d / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 40)
    c["garbage"] = garbage
    return c


@pytest.fixture(scope="module")
def expected(clips: dict[str, Path]) -> VmafResult:
    """The in-memory result the CLI must reproduce."""
    return score_files(clips["ref"], clips["dist"])


#: What libvmaf prints per frame for vmaf_v0.6.1 (ffmpeg's libvmaf filter, JSON log).
LIBVMAF_INTEGER_NAMES = (
    "integer_adm2", "integer_aim", "integer_adm3", "integer_adm_scale0", "integer_adm_scale1",
    "integer_adm_scale2", "integer_adm_scale3", "VMAF_integer_feature_motion_sad_score",
    "integer_vif_scale0", "integer_vif_scale1", "integer_vif_scale2", "integer_vif_scale3",
    "integer_motion2", "integer_motion3", "vmaf",
)  # fmt: skip


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    rc = main(["score", *(str(a) for a in args), "--quiet"])
    out, err = capsys.readouterr()
    return rc, out, err


def _vmaf_line(out: str) -> float:
    lines = [ln for ln in out.splitlines() if ln.startswith("VMAF ")]
    assert len(lines) == 1, out
    return float(lines[0].split()[1])


def _one_error_line(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith("vmafdistill score: error: "), line
    assert "Traceback" not in err
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


# --------------------------------------------------------------------------------------------
# Successful runs
# --------------------------------------------------------------------------------------------


def test_prints_pooled_vmaf(
    capsys: pytest.CaptureFixture[str], clips: dict[str, Path], expected: VmafResult
) -> None:
    rc, out, err = _run(capsys, clips["ref"], clips["dist"])
    assert rc == 0, err
    assert err == ""
    mean = expected.pooled["vmaf"]["mean"]
    assert _vmaf_line(out) == pytest.approx(mean, abs=5e-7)
    # A real distortion of a real clip: not a saturated or degenerate score.
    assert 20.0 < mean < 99.9
    assert f"{FRAMES} frames" in out and "vmaf_v0.6.1" in out


def test_json_has_libvmaf_layout(
    capsys: pytest.CaptureFixture[str],
    clips: dict[str, Path],
    expected: VmafResult,
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.json"
    rc, out, err = _run(capsys, clips["ref"], clips["dist"], "--json", path)
    assert rc == 0, err
    doc = json.loads(path.read_text())
    frames = doc["frames"]
    assert [f["frameNum"] for f in frames] == list(range(FRAMES))
    # Exact mode (the default for vmaf_v0.6.1) prints libvmaf's integer feature names.
    printed = {expected.printed[n]: n for n in expected.names}
    assert set(printed) == set(LIBVMAF_INTEGER_NAMES)
    for f in frames:
        assert set(f["metrics"]) == set(printed)
        for name, canonical in printed.items():
            got, want = f["metrics"][name], expected.metrics[canonical][f["frameNum"]]
            assert got == pytest.approx(want, abs=1e-6), (f["frameNum"], name)
    pooled = doc["pooled_metrics"]
    assert doc["aggregate_metrics"] == {}  # libvmaf's layout has it, empty for these models
    assert set(pooled) == set(printed)
    for name, canonical in printed.items():
        assert set(pooled[name]) == POOL_STATS
        for stat in POOL_STATS:
            want = expected.pooled[canonical][stat]
            assert pooled[name][stat] == pytest.approx(want, abs=1e-6)
    # The pooled mean is the mean of the per-frame values and what the CLI printed.
    vmafs = np.array([f["metrics"]["vmaf"] for f in frames])
    assert pooled["vmaf"]["mean"] == pytest.approx(vmafs.mean(), abs=1e-6)
    assert _vmaf_line(out) == pytest.approx(pooled["vmaf"]["mean"], abs=1e-6)
    hm = len(vmafs) / np.sum(1.0 / (vmafs + 1.0)) - 1.0
    assert pooled["vmaf"]["harmonic_mean"] == pytest.approx(hm, abs=1e-5)


def test_csv_one_row_per_frame(
    capsys: pytest.CaptureFixture[str],
    clips: dict[str, Path],
    expected: VmafResult,
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.csv"
    rc, _, err = _run(capsys, clips["ref"], clips["dist"], "--csv", path)
    assert rc == 0, err
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    # lines end as libvmaf's do (csv's default CRLF differed on every line)
    assert b"\r" not in path.read_bytes() and path.read_bytes().endswith(b"\n")
    assert rows[0] == ["Frame", *(expected.printed[n] for n in expected.names)]
    assert len(rows) == 1 + FRAMES
    for i, row in enumerate(rows[1:]):
        assert int(row[0]) == i
        for name, cell in zip(expected.names, row[1:], strict=True):
            assert float(cell) == pytest.approx(expected.metrics[name][i], abs=1e-6), (i, name)


def test_raw_input_with_geometry(
    capsys: pytest.CaptureFixture[str], clips: dict[str, Path], expected: VmafResult
) -> None:
    rc, out, err = _run(capsys, clips["ref_raw"], clips["dist_raw"], "--width", W, "--height", H)
    assert rc == 0, err
    assert _vmaf_line(out) == pytest.approx(expected.pooled["vmaf"]["mean"], abs=5e-7)


def test_other_model_and_chunking(
    capsys: pytest.CaptureFixture[str], clips: dict[str, Path], expected: VmafResult
) -> None:
    rc, out, err = _run(
        capsys, clips["ref"], clips["dist"], "--model", "vmaf_v0.6.1neg", "--chunk", "3"
    )
    assert rc == 0, err
    neg = score_files(clips["ref"], clips["dist"], model="vmaf_v0.6.1neg")
    assert _vmaf_line(out) == pytest.approx(neg.pooled["vmaf"]["mean"], abs=5e-7)
    assert neg.pooled["vmaf"]["mean"] != pytest.approx(expected.pooled["vmaf"]["mean"], abs=1e-3)


# --------------------------------------------------------------------------------------------
# Bad input: exit code 2 and one line naming the file and the problem
# --------------------------------------------------------------------------------------------


def test_missing_file(capsys: pytest.CaptureFixture[str], clips: dict[str, Path]) -> None:
    missing = clips["ref"].parent / "no_such_clip.y4m"
    rc, out, err = _run(capsys, clips["ref"], missing)
    assert rc == 2
    assert out == ""
    _one_error_line(err, str(missing), "no such file")


def test_a_pipe_is_named_as_a_pipe(capsys: pytest.CaptureFixture[str], clips: dict[str, Path],
                                   tmp_path: Path) -> None:
    """A FIFO (what ``<(...)`` and ``/dev/stdin`` are) read as 'not a readable video file' or
    'give width/height': ffmpeg decodes a pipe once, and scoring reads each input twice."""
    fifo = tmp_path / "stream.y4m"
    os.mkfifo(fifo)
    rc, out, err = _run(capsys, clips["ref"], fifo)
    assert rc == 2
    assert out == ""
    _one_error_line(err, str(fifo), "not a regular file (a pipe or a device)")


def test_undecodable_file(capsys: pytest.CaptureFixture[str], clips: dict[str, Path]) -> None:
    rc, out, err = _run(capsys, clips["ref"], clips["garbage"])
    assert rc == 2
    assert out == ""
    _one_error_line(err, str(clips["garbage"]), "not a readable video")


def test_size_mismatch_needs_rescale(
    capsys: pytest.CaptureFixture[str], clips: dict[str, Path], expected: VmafResult
) -> None:
    rc, out, err = _run(capsys, clips["ref"], clips["dist_small"])
    assert rc == 2
    assert out == ""
    _one_error_line(err, "size", str(clips["dist_small"]), f"{W}x{H}", "160x120")

    flags = "bicubic+accurate_rnd+bitexact"
    rc, out, err = _run(
        capsys, clips["ref"], clips["dist_small"], "--rescale", "--scale-flags", flags
    )
    assert rc == 0, err
    want = score_files(clips["ref"], clips["dist_small"], rescale=True, scale_flags=flags)
    assert _vmaf_line(out) == pytest.approx(want.pooled["vmaf"]["mean"], abs=5e-7)
    # Downscaled-and-back is worse than the full-size distortion.
    assert want.pooled["vmaf"]["mean"] < expected.pooled["vmaf"]["mean"]


def test_frame_count_mismatch(capsys: pytest.CaptureFixture[str], clips: dict[str, Path]) -> None:
    rc, out, err = _run(capsys, clips["ref"], clips["dist6"])
    assert rc == 2
    assert out == ""
    _one_error_line(
        err, "frame count", str(clips["ref"]), str(clips["dist6"]), "has 8 frames", "has 6 frames"
    )


def test_frame_count_mismatch_allowed(
    capsys: pytest.CaptureFixture[str], clips: dict[str, Path]
) -> None:
    rc, out, err = _run(capsys, clips["ref"], clips["dist6"], "--allow-length-mismatch")
    assert rc == 0, err
    warnings = [ln for ln in err.splitlines() if ln.strip()]
    assert len(warnings) == 1 and "warning" in warnings[0], err
    assert "first 6 frames" in warnings[0]
    assert "6 frames" in out
    # Exactly the common prefix: the 6-frame reference against the 6-frame distorted clip.
    prefix = score_files(clips["ref6"], clips["dist6"])
    assert prefix.num_frames == 6
    assert _vmaf_line(out) == pytest.approx(prefix.pooled["vmaf"]["mean"], abs=5e-7)


def test_raw_partial_frame(capsys: pytest.CaptureFixture[str], clips: dict[str, Path]) -> None:
    rc, out, err = _run(capsys, clips["short_raw"], clips["dist_raw"], "--width", W, "--height", H)
    assert rc == 2
    assert out == ""
    _one_error_line(err, str(clips["short_raw"]), "not a whole number", "frames")


def test_raw_without_geometry(capsys: pytest.CaptureFixture[str], clips: dict[str, Path]) -> None:
    rc, out, err = _run(capsys, clips["ref_raw"], clips["dist_raw"])
    assert rc == 2
    assert out == ""
    _one_error_line(err, str(clips["ref_raw"]), "width", "height")


def test_unknown_model(capsys: pytest.CaptureFixture[str], clips: dict[str, Path]) -> None:
    rc, out, err = _run(capsys, clips["ref"], clips["dist"], "--model", "vmaf_v9.9")
    assert rc == 2
    assert out == ""
    _one_error_line(err, "vmaf_v9.9", "vmaf_v0.6.1", "vmaf_v0.6.1neg", "vmaf_4k_v0.6.1")


def test_unusable_device(capsys: pytest.CaptureFixture[str], clips: dict[str, Path]) -> None:
    import torch

    rc, _, err = _run(capsys, clips["ref"], clips["dist"], "--device", "nonsense")
    assert rc == 2
    _one_error_line(err, "--device", "nonsense")
    if not torch.cuda.is_available():
        rc, _, err = _run(capsys, clips["ref"], clips["dist"], "--device", "cuda")
        assert rc == 2
        _one_error_line(err, "--device cuda", "no CUDA device")
    # other device types this build lacks, and meta, were tracebacks after decoding began
    available = {"mps": torch.backends.mps.is_available(), "xpu": torch.xpu.is_available()}
    unusable = ["meta"] + [d for d, ok in available.items() if not ok]
    for device in unusable:
        rc, out, err = _run(capsys, clips["ref"], clips["dist"], "--device", device)
        assert rc == 2 and out == "", device
        _one_error_line(err, f"--device {device}")
    if torch.cuda.is_available():  # one index past the last GPU
        rc, _, err = _run(capsys, clips["ref"], clips["dist"], "--device",
                          f"cuda:{torch.cuda.device_count()}")
        assert rc == 2
        _one_error_line(err, "--device cuda:", "cannot use it")


def test_bad_chunk(capsys: pytest.CaptureFixture[str], clips: dict[str, Path]) -> None:
    rc, _, err = _run(capsys, clips["ref"], clips["dist"], "--chunk", "0")
    assert rc == 2
    _one_error_line(err, "--chunk")


# --------------------------------------------------------------------------------------------
# The real entry point
# --------------------------------------------------------------------------------------------


def test_python_dash_m_entry_point(clips: dict[str, Path], expected: VmafResult) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    base = [sys.executable, "-m", "vmafdistill", "score", "--quiet"]
    ok = subprocess.run(
        [*base, str(clips["ref"]), str(clips["dist"])],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert _vmaf_line(ok.stdout) == pytest.approx(expected.pooled["vmaf"]["mean"], abs=5e-7)

    missing = clips["ref"].parent / "absent.y4m"
    bad = subprocess.run(
        [*base, str(clips["ref"]), str(missing)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stdout == ""
    _one_error_line(bad.stderr, str(missing), "no such file")


def test_installed_console_script(clips: dict[str, Path]) -> None:
    """The ``vmafdistill`` script from ``[project.scripts]`` (when the package is installed)."""
    script = Path(sys.executable).parent / "vmafdistill"
    if not script.is_file():
        pytest.skip("vmafdistill is not installed in this environment (no console script)")
    missing = clips["ref"].parent / "absent.y4m"
    bad = subprocess.run(
        [str(script), "score", "--quiet", str(clips["ref"]), str(missing)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    _one_error_line(bad.stderr, str(missing), "no such file")


def test_inputs_ffmpeg_would_convert_are_named(tmp_path: Path,
                                               clips: dict[str, Path]) -> None:
    """A full-range distorted against a limited-range reference, or a gray input, is scored as
    decoded; libvmaf through ffmpeg converts it first, so the scores differ: warn, naming both."""
    full = tmp_path / "dist_full.mp4"
    run_ffmpeg(["-i", str(clips["dist"]), "-pix_fmt", "yuvj420p", "-c:v", "libx264",
                "-crf", "30", str(full)], what="a full-range encode")
    with pytest.warns(UserWarning, match=r"ref\.y4m is limited range \(tv\) and .*dist_full"
                                         r"\.mp4 is full range \(pc\)"):
        score_files(clips["ref"], full)
    gray = tmp_path / "gray.y4m"
    run_ffmpeg(["-i", str(clips["dist"]), "-pix_fmt", "gray", "-strict", "-1", str(gray)],
               what="a gray copy")
    with pytest.warns(UserWarning, match=r"gray\.y4m is gray"):
        score_files(gray, gray)
    # a gray distorted under rescale: converted to the reference's format and range as
    # ffmpeg's graph does (a parity hunt: scored as decoded, 99.7 for libvmaf's 76.1), libvmaf's
    # number to its 6 printed decimals, and no warning
    from vmafdistill.io.video import probe_video
    from vmafdistill.oracle import libvmaf_score

    ref_info = probe_video(clips["ref"])
    import warnings as _w

    with _w.catch_warnings(record=True) as said:
        _w.simplefilter("always")
        got = score_files(clips["ref"], gray, rescale=True)
    assert not [w for w in said if "gray" in str(w.message) or "range" in str(w.message)]
    oracle = libvmaf_score(clips["ref"], gray, model="vmaf_v0.6.1",
                           scale_to=(ref_info.width, ref_info.height))
    assert np.abs(np.array(oracle.metric("vmaf")) - got.metrics["vmaf"]).max() < 1e-6
    # ... also against a reference tagged BT.709 (ffmpeg's graph tags the converted gray
    # with it and goes through RGB: 0.008 VMAF off untagged, a review)
    ref709 = tmp_path / "ref709.mkv"
    run_ffmpeg(["-i", str(clips["ref"]), "-c:v", "libx264", "-qp", "0", "-x264-params",
                "threads=1", "-bsf:v", "h264_metadata=matrix_coefficients=1", str(ref709)],
               what="a lossless BT.709-tagged reference")
    tagged = score_files(ref709, gray, rescale=True)
    oracle = libvmaf_score(ref709, gray, model="vmaf_v0.6.1",
                           scale_to=(ref_info.width, ref_info.height))
    assert np.abs(np.array(oracle.metric("vmaf")) - tagged.metrics["vmaf"]).max() < 1e-6
    with pytest.warns(UserWarning, match=r"gray\.y4m is gray.*--rescale converts"):
        plain = score_files(clips["ref"], gray)  # as decoded: another number, and said
    assert np.abs(plain.metrics["vmaf"] - got.metrics["vmaf"]).max() > 0.1
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # same range, not gray: nothing to say
        warnings.simplefilter("always")
        score_files(clips["ref"], clips["dist"])
    assert not [w for w in caught if "range" in str(w.message) or "gray" in str(w.message)]


def test_v1016_models_refuse_float_mode(clips: dict[str, Path]) -> None:
    from vmafdistill.errors import VmafDistillError

    with pytest.raises(VmafDistillError, match="exact mode only"):
        score_files(clips["ref"], clips["dist"], model="vmaf_v1.0.16_3d0h", mode="float")


def test_every_option_and_environment_variable_is_in_the_cli_reference() -> None:
    """docs/cli.md is generated from the parsers (scripts/cli_reference.py); options used to be
    documented only in --help (evaluate --ladder, pilot --config, export --opset ...). Every
    option of every command must be in its own section, and every VMAFDISTILL_* variable the
    package reads in the environment table."""
    import importlib.util
    import re

    repo = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("cli_reference",
                                                  repo / "scripts" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    doc = (repo / "docs" / "cli.md").read_text()
    sections = dict(re.findall(r"^## `vmafdistill ([\w-]+)`\n(.*?)(?=^## |\Z)", doc,
                               re.MULTILINE | re.DOTALL))
    parsers = ref.subparsers()
    assert set(parsers) == set(sections), (sorted(parsers), sorted(sections))
    for name, parser in parsers.items():
        for action in parser._actions:
            for opt in action.option_strings:
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", sections[name]), (
                    f"vmafdistill {name} {opt} is not in docs/cli.md: run "
                    "python scripts/cli_reference.py")
    read = set()
    for path in (repo / "vmafdistill").rglob("*.py"):
        read |= set(re.findall(r"VMAFDISTILL_[A-Z_]+", path.read_text()))
    assert read == set(ref.ENVIRONMENT), read ^ set(ref.ENVIRONMENT)
    for var in read:
        assert f"`{var}`" in doc, var


def test_raw_options_describe_only_the_raw_input(
        capsys: pytest.CaptureFixture[str], clips: dict[str, Path], expected: VmafResult,
        tmp_path: Path) -> None:
    """``ref.yuv dist.mp4 --width --height`` read the MP4 as raw YUV too (an error, or garbage
    scored where its size happened to be whole frames); options for two files with headers
    were applied the same way."""
    mp4 = tmp_path / "dist.mp4"
    run_ffmpeg(["-i", str(clips["dist"]), "-c:v", "libx264", "-qp", "0", str(mp4)],
               what="a lossless MP4 of dist")
    rc, out, err = _run(capsys, clips["ref_raw"], mp4, "--width", W, "--height", H)
    assert rc == 0, err
    assert _vmaf_line(out) == pytest.approx(expected.pooled["vmaf"]["mean"], abs=1e-6)
    rc, _, err = _run(capsys, clips["ref"], mp4, "--width", W, "--height", H)
    assert rc == 2
    _one_error_line(err, "describe headerless raw .yuv input", "both have headers")
    # without the options, a .yuv's error listed pix_fmt as missing too (it has a default)
    rc, _, err = _run(capsys, clips["ref_raw"], mp4)
    assert rc == 2
    _one_error_line(err, f"{clips['ref_raw']}: raw YUV has no header", "(missing: width, height)")


def test_output_files_are_checked_before_scoring(
        capsys: pytest.CaptureFixture[str], clips: dict[str, Path], tmp_path: Path) -> None:
    """``--json ref.y4m`` replaced the reference with JSON (exit 0); a missing directory or a
    bad --scale-flags was a traceback, the first after all the scoring."""
    import shutil

    ref = tmp_path / "ref.y4m"
    shutil.copy(clips["ref"], ref)
    before = ref.read_bytes()
    for opt in ("--json", "--csv"):
        rc, _, err = _run(capsys, ref, clips["dist"], opt, ref)
        assert rc == 2 and ref.read_bytes() == before
        _one_error_line(err, f"{opt} {ref}: is an input")
        rc, _, err = _run(capsys, ref, clips["dist"], opt, tmp_path / "no" / "x")
        _one_error_line(err, "its directory does not exist")
    rc, _, err = _run(capsys, ref, clips["dist"], "--rescale", "--scale-flags", "bicubic:x")
    _one_error_line(err, "--scale-flags 'bicubic:x'")
    # a name ffmpeg's scaler does not know was blamed on the distorted file after the decode
    rc, _, err = _run(capsys, ref, clips["dist"], "--rescale", "--scale-flags", "bicubic+bogus")
    assert rc == 2
    line = _one_error_line(err, "--scale-flags 'bicubic+bogus': ffmpeg's scaler refuses them",
                           "'bogus'")
    assert str(clips["dist"]) not in line
    # known names in a combination ffmpeg refuses: its reason, not "ffmpeg failed"
    rc, _, err = _run(capsys, ref, clips["dist"], "--rescale", "--scale-flags", "bicubic+lanczos")
    assert rc == 2
    _one_error_line(err, "--scale-flags 'bicubic+lanczos': ffmpeg's scaler refuses them",
                    "one scaler algorithm")
    # ffmpeg itself failing is named as that, not as the flags' fault (it said "--scale-flags
    # 'bicubic': ffmpeg's scaler refuses them" of flags nobody gave)
    from vmafdistill._ffmpeg import ffmpeg_exe
    from vmafdistill.errors import ToolError
    from vmafdistill.io.video import scaler_refusal

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VMAFDISTILL_FFMPEG", str(tmp_path / "no_ffmpeg"))
        scaler_refusal.cache_clear()
        ffmpeg_exe.cache_clear()
        try:
            with pytest.raises(ToolError, match="VMAFDISTILL_FFMPEG"):
                scaler_refusal("bicubic")
            # an ffmpeg that fails in other words (a build without lavfi): its failure, not
            # the default flags refused
            fake = tmp_path / "ffmpeg_no_lavfi"
            fake.write_text("#!/bin/sh\ncase \"$*\" in *-version*) echo 'ffmpeg version "
                            "n0-nolavfi'; exit 0;; esac\n"
                            "echo \"Unknown input format: 'lavfi'\" >&2\nexit 1\n")
            fake.chmod(0o755)
            mp.setenv("VMAFDISTILL_FFMPEG", str(fake))
            ffmpeg_exe.cache_clear()
            with pytest.raises(ToolError, match="failed while checking the scaler flags "
                                                "'bicubic': Unknown input format"):
                scaler_refusal("bicubic")
            # a program that is not ffmpeg, or cannot run, or a bare name: named as such (it
            # read as "not a readable video file", or a traceback)
            for program, needle in (("/bin/true", "not ffmpeg"), (fake.name, "absolute"),
                                    (str(tmp_path / "plain"), "not executable")):
                (tmp_path / "plain").write_text("#!/bin/sh\n")
                mp.setenv("VMAFDISTILL_FFMPEG", program)
                mp.chdir(tmp_path)
                ffmpeg_exe.cache_clear()
                if program == fake.name:  # a bare name is this folder's file, made absolute
                    assert ffmpeg_exe() == str(fake)
                    continue
                with pytest.raises(ToolError, match=f"VMAFDISTILL_FFMPEG=.*: {needle}"):
                    ffmpeg_exe()
        finally:
            scaler_refusal.cache_clear()
            ffmpeg_exe.cache_clear()
    # flags without --rescale were accepted and ignored; an empty --json "$OUT" (unset
    # variable) wrote nothing, exit 0
    rc, _, err = _run(capsys, ref, clips["dist"], "--scale-flags", "lanczos")
    assert rc == 2
    _one_error_line(err, "--scale-flags lanczos: only with --rescale")
    # --dtype acts in float mode alone: exact mode and v1.0.16 accepted and ignored it
    for extra, needle in (([], "--dtype float64: only in float mode"),
                          (["--model", "vmaf_v1.0.16_3d0h"], "the v1.0.16 models compute")):
        rc, _, err = _run(capsys, ref, clips["dist"], "--dtype", "float64", *extra)
        assert rc == 2
        _one_error_line(err, needle)
    rc, _, err = _run(capsys, ref, clips["dist"], "--dtype", "float32")  # the default, said
    assert rc == 0, err
    rc, _, err = _run(capsys, ref, clips["dist"], "--rescale", "--scale-flags", "")
    assert rc == 2
    _one_error_line(err, "--scale-flags ''")
    for opt in ("--json", "--csv"):
        rc, _, err = _run(capsys, ref, clips["dist"], opt, "")
        assert rc == 2
        _one_error_line(err, f"{opt}: an empty path")
    # a score log is replaced by the next score run, a libvmaf log beside it is not (both
    # start with "version"), nor is another tool's JSON (any "{" file was replaced)
    ours = tmp_path / "ours.json"
    assert _run(capsys, ref, clips["dist"], "--json", ours)[0] == 0
    assert _run(capsys, ref, clips["dist"], "--json", ours)[0] == 0
    for text in ('{\n  "version": "3.0.0",\n  "frames": []\n}\n', '{"fps": 25}\n'):
        other = tmp_path / "other.json"
        other.write_text(text)
        rc, _, err = _run(capsys, ref, clips["dist"], "--json", other)
        assert rc == 2 and other.read_text() == text
        _one_error_line(err, "exists and is not this command's output")
    # the same for CSV: libvmaf's own log (its header line ends with a comma) was replaced
    lib_csv = tmp_path / "libvmaf.csv"
    run_ffmpeg(["-i", str(clips["dist"]), "-i", str(ref), "-lavfi",
                f"libvmaf=log_fmt=csv:log_path={lib_csv}", "-f", "null", "-"],
               what="libvmaf's CSV log")
    lib_text = lib_csv.read_text()
    assert lib_text.startswith("Frame,")
    rc, _, err = _run(capsys, ref, clips["dist"], "--csv", lib_csv)
    assert rc == 2 and lib_csv.read_text() == lib_text
    _one_error_line(err, "exists and is not this command's output")
    ours_csv = tmp_path / "ours.csv"
    assert _run(capsys, ref, clips["dist"], "--csv", ours_csv)[0] == 0
    assert _run(capsys, ref, clips["dist"], "--csv", ours_csv)[0] == 0
    rc, out, err = _run(capsys, ref, clips["dist"], "--json", "-")  # the log on stdout
    assert rc == 0 and json.loads(out)["frames"] and "VMAF " in err
    # both logs on one target: stdout held two documents, a file only the CSV (exit 0)
    for target in ("-", str(tmp_path / "same.out")):
        rc, out, err = _run(capsys, ref, clips["dist"], "--json", target, "--csv", target)
        assert rc == 2 and not out
        _one_error_line(err, f"--json and --csv both name {target}")
    # a write that fails after the scoring (a full disk): one line, not a traceback
    if Path("/dev/full").exists():
        rc, _, err = _run(capsys, ref, clips["dist"], "--csv", "/dev/full")
        assert rc == 2
        _one_error_line(err, "--csv /dev/full: cannot write it")


def test_bit_depths_rotation_and_raw_range_are_named(
        capsys: pytest.CaptureFixture[str], clips: dict[str, Path], tmp_path: Path) -> None:
    """8-bit vs 10-bit without --rescale said libvmaf refuses it too (it converts) and named no
    file; a display rotation (ffmpeg rotates, we read coded pictures) and a raw reference
    against a full-range distorted (no range warning with raw input) went unsaid."""
    d10 = tmp_path / "d10.y4m"
    run_ffmpeg(["-i", str(clips["dist"]), "-pix_fmt", "yuv420p10le", "-strict", "-1",
                str(d10)], what="10-bit dist")
    rc, _, err = _run(capsys, clips["ref"], d10)
    _one_error_line(err, "ref.y4m is 8-bit and", "d10.y4m is 10-bit", "--rescale")
    rc, _, err = _run(capsys, clips["ref"], d10, "--rescale")
    assert rc == 0, err
    plain, rotated = tmp_path / "plain.mp4", tmp_path / "rot.mp4"
    run_ffmpeg(["-i", str(clips["dist"]), "-c:v", "libx264", str(plain)], what="an encode")
    run_ffmpeg(["-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated)],
               what="the encode tagged rotated")
    with pytest.warns(UserWarning, match=r"rot\.mp4 has a display matrix \(rotation of 90 degrees"):
        score_files(clips["ref"], rotated)
    full = tmp_path / "full.mp4"
    run_ffmpeg(["-i", str(clips["dist"]), "-pix_fmt", "yuvj420p", "-c:v", "libx264",
                str(full)], what="a full-range encode")
    raw = {"width": W, "height": H, "pix_fmt": "yuv420p"}
    with pytest.warns(UserWarning, match=r"ref\.yuv is limited range \(tv\) and .*full\.mp4 is "
                                         r"full range"):
        score_files(clips["ref_raw"], full, ref_raw=raw)
    # a raw yuvj420p input is full range, as ffmpeg reads it (every raw input counted as
    # limited: against a limited file, 68.4 where libvmaf gives 79.2, without a word)
    with pytest.warns(UserWarning, match=r"ref\.yuv is full range \(pc\) and .*dist.* is "
                                         r"limited range"):
        score_files(clips["ref_raw"], clips["dist"], ref_raw={**raw, "pix_fmt": "yuvj420p"})
    # sizes given as text or a float (a hunt: TypeErrors deep in the probe)
    from vmafdistill.errors import VmafDistillError

    for bad in ({"width": str(W)}, {"height": float(H)}):
        with pytest.raises(VmafDistillError, match=r"raw (width='\d+'|height=\d+\.0): needs a "
                                                   r"whole number"):
            score_files(clips["ref_raw"], clips["dist"], ref_raw={**raw, **bad})


def _container_cropped(src: Path, out: Path) -> None:
    """``src`` encoded into Matroska with an aspect ratio (DisplayWidth 4, DisplayHeight 3,
    DisplayUnit 3: three 4-byte elements), turned into container cropping of the same bytes
    (PixelCropBottom 16, PixelCropRight 32, PixelCropTop 8): no ffmpeg option writes it."""
    tagged = out.with_name(f"aspect_{out.name}")
    run_ffmpeg(["-i", str(src), "-c:v", "libx264", "-crf", "30", "-aspect", "4:3",
                str(tagged)], what="an encode with an aspect ratio")
    data = bytearray(tagged.read_bytes())
    at = data.find(bytes.fromhex("54b0810454ba810354b28103"))
    assert at > 0, "ffmpeg's Matroska muxer wrote the display size otherwise"
    data[at:at + 12] = bytes.fromhex("54aa811054dd812054bb8108")
    out.write_bytes(bytes(data))


def test_container_cropping_a_flip_and_a_matrix_tag_are_named(
        clips: dict[str, Path], tmp_path: Path) -> None:
    """A Matroska file with container cropping: the probe gave its coded 176x144 while ffmpeg
    decoded 144x120 (cropped) pictures, whose bytes were read as frames of the probe's size:
    garbage scored without a word (a pair of such files 79.7 where libvmaf gives 43.7; one
    such against its uncropped reference 0.0). The coded pictures are read now, as the
    rotation is, and the cropping is named; libvmaf through the oracle reads the same. A
    vertical flip alone ("rotation of -0.00 degrees") was not warned of."""
    from vmafdistill.oracle import libvmaf_score

    cropped = tmp_path / "cropped.mkv"
    _container_cropped(clips["dist"], cropped)
    uncropped = tmp_path / "uncropped.mkv"  # the same packets, no cropping
    run_ffmpeg(["-i", str(tmp_path / "aspect_cropped.mkv"), "-c", "copy", "-aspect", "176:144",
                str(uncropped)], what="a copy without the cropping")
    with pytest.warns(UserWarning, match=r"cropped\.mkv carries container cropping \(left 0, "
                                         r"right 32, top 8, bottom 16"):
        got = score_files(clips["ref"], cropped)
    want = score_files(clips["ref"], uncropped)
    np.testing.assert_array_equal(got.metrics["vmaf"], want.metrics["vmaf"])
    assert 20 < float(np.mean(want.metrics["vmaf"])) < 100
    oracle = libvmaf_score(clips["ref"], cropped, model="vmaf_v0.6.1")  # libvmaf's integer
    # model, as exact mode: equal to its 6 printed decimals
    assert np.abs(np.array(oracle.metric("vmaf")) - got.metrics["vmaf"]).max() < 1e-6
    # a YUV matrix tag on one side only: ffmpeg's libvmaf filter converts the reference to
    # the distorted's matrix (through RGB) first, the teacher scores as decoded; named now
    tagged = tmp_path / "tagged709.mkv"
    run_ffmpeg(["-i", str(uncropped), "-c", "copy", "-bsf:v",
                "h264_metadata=matrix_coefficients=1", str(tagged)], what="a BT.709 tag")
    with pytest.warns(UserWarning, match=r"ref\.y4m has no YUV matrix tag and .*tagged709\.mkv "
                                         r"has YUV matrix bt709.* converts the reference to "):
        as_decoded = score_files(clips["ref"], tagged)
    # with a scale filter on the distorted (--rescale) the graph converts the distorted (a
    # review read ffmpeg's -v verbose; the warning said the reference)
    with pytest.warns(UserWarning, match=r"converts the distorted to the reference's matrix"):
        score_files(clips["ref"], tagged, rescale=True)
    np.testing.assert_array_equal(as_decoded.metrics["vmaf"], want.metrics["vmaf"])
    converted = libvmaf_score(clips["ref"], tagged, model="vmaf_v0.6.1")
    assert abs(np.mean(converted.metric("vmaf")) - np.mean(want.metrics["vmaf"])) > 1  # real
    import warnings

    # untagged on both sides, or untagged against BT.601's own tags (ffmpeg converts nothing
    # there: the same VMAF), is nothing to say
    bt601 = tmp_path / "tagged601.mkv"
    run_ffmpeg(["-i", str(uncropped), "-c", "copy", "-bsf:v",
                "h264_metadata=matrix_coefficients=6", str(bt601)], what="a SMPTE 170M tag")
    for quiet in (uncropped, bt601):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            score_files(clips["ref"], quiet)
    flipped = tmp_path / "flipped.mp4"
    run_ffmpeg(["-display_rotation", "0", "-display_vflip", "-i", str(uncropped), "-c", "copy",
                str(flipped)], what="the encode tagged flipped")
    with pytest.warns(UserWarning, match=r"flipped\.mp4 has a display matrix"):
        score_files(clips["ref"], flipped)


def test_pictures_changing_size_mid_stream_are_refused_unless_rescaled(
        capsys: pytest.CaptureFixture[str], clips: dict[str, Path], tmp_path: Path) -> None:
    """Two renditions joined in one TS: ffmpeg scaled the second's pictures to the first's
    size, and they were scored so without a word (libvmaf refuses the pair)."""
    a, b, joined = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "joined.ts"
    run_ffmpeg(["-i", str(clips["ref"]), "-frames:v", "4", "-c:v", "libx264", str(a)],
               what="first rendition")
    # its timestamps go on from the first's (0.16 s; an offset of 0.16 restarted them at
    # 0.08 s, an overlap the timestamp check names)
    run_ffmpeg(["-ss", "0.16", "-i", str(clips["ref"]), "-vf", "scale=160:120", "-c:v",
                "libx264", "-output_ts_offset", "0.24", str(b)], what="second rendition")
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    rc, _, err = _run(capsys, clips["ref"], joined)
    _one_error_line(err, f"joined.ts: its pictures change mid-stream from {W}x{H} yuv420p to "
                         "160x120")
    rc, out, err = _run(capsys, clips["ref"], joined, "--rescale")
    assert rc == 0 and f"{FRAMES} frames" in out, err


def test_a_container_the_teacher_cannot_read_is_not_taken_for_raw(
        capsys: pytest.CaptureFixture[str], clips: dict[str, Path], tmp_path: Path) -> None:
    """With --width/--height, a container whose pixel format is unsupported (RGB H.264) was
    taken for headerless raw YUV: a size error, or garbage where its size divided."""
    rgb = tmp_path / "rgb.mkv"
    run_ffmpeg(["-i", str(clips["dist"]), "-c:v", "libx264rgb", str(rgb)], what="RGB H.264")
    rc, _, err = _run(capsys, clips["ref_raw"], rgb, "--width", W, "--height", H)
    assert rc == 2 and "Traceback" not in err
    assert "error: " in err and "rgb.mkv: unsupported pixel format" in err, err
    rc, _, err = _run(capsys, clips["ref"], rgb)  # a YUV container against it: the refusal
    assert rc == 2 and "rgb.mkv: unsupported pixel format" in err, err
    assert "warning" not in err, err  # not first a range warning (RGB states pc)


def test_relative_paths_through_a_symlink_open_the_file_the_os_opens(
        clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``link/../x.y4m`` with ``link`` a symlink: the absolute path handed to ffmpeg was
    normalised by text (another directory), so ffmpeg missed a file Python found."""
    import shutil

    real = tmp_path / "real" / "sub"
    real.mkdir(parents=True)
    shutil.copy(clips["dist"], tmp_path / "real" / "x.y4m")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path / "work")
    mp4 = tmp_path / "real" / "x.mp4"
    run_ffmpeg(["-i", str(clips["dist"]), "-c:v", "libx264", "-qp", "0", str(mp4)],
               what="lossless")
    a = score_files(clips["ref"], "link/../x.mp4")
    b = score_files(clips["ref"], mp4)
    assert a.pooled["vmaf"]["mean"] == b.pooled["vmaf"]["mean"]


def test_a_container_outside_the_known_extensions_is_not_raw(
        capsys: pytest.CaptureFixture[str], clips: dict[str, Path], tmp_path: Path) -> None:
    """A .nut of RGB H.264 (a format ffmpeg opens and the teacher cannot read) was still
    taken for raw YUV when its extension was not a known container's."""
    nut = tmp_path / "rgb.nut"
    run_ffmpeg(["-i", str(clips["dist"]), "-c:v", "libx264rgb", str(nut)], what="RGB in NUT")
    rc, _, err = _run(capsys, clips["ref_raw"], nut, "--width", W, "--height", H)
    assert rc == 2 and "rgb.nut: unsupported pixel format" in err, err
    bin_raw = tmp_path / "ref.bin"
    bin_raw.write_bytes(clips["ref_raw"].read_bytes())
    rc, _, err = _run(capsys, bin_raw, clips["dist_raw"], "--width", W, "--height", H)
    assert rc == 0, err


def test_malformed_model_files_are_named_before_scoring(
        capsys: pytest.CaptureFixture[str], clips: dict[str, Path], tmp_path: Path) -> None:
    """A model JSON that is a list, a string, lacks its SVR or has too few slopes gave an
    AttributeError, a KeyError, or a RuntimeError after every frame was scored."""
    from vmafdistill.teacher.model import resolve_model_path

    good = json.loads(resolve_model_path("vmaf_v0.6.1").read_text())
    no_svr = json.loads(json.dumps(good))
    del no_svr["model_dict"]["model"]
    few_slopes = json.loads(json.dumps(good))
    few_slopes["model_dict"]["slopes"] = few_slopes["model_dict"]["slopes"][:3]
    short_names = json.loads(json.dumps(good))  # read "(IndexError('list assignment ..'))"
    short_names["model_dict"]["feature_names"] = short_names["model_dict"]["feature_names"][:5]
    short_opts = json.loads(resolve_model_path("vmaf_v0.6.1neg").read_text())
    short_opts["model_dict"]["feature_opts_dicts"] = short_opts["model_dict"][
        "feature_opts_dicts"][:-1]  # was a zip() ValueError traceback
    # a gain limit on one VIF scale took all four (libvmaf: that scale alone; 3.3 VMAF off)
    mixed_vif = json.loads(resolve_model_path("vmaf_v0.6.1neg").read_text())
    mixed_vif["model_dict"]["feature_opts_dicts"] = [{}, {}, {"vif_enhn_gain_limit": 1.0},
                                                     {}, {}, {}]
    for name, doc, needle in (("list", [], "not a VMAF model JSON"),
                              ("mixed_vif", mixed_vif, "vif_enhn_gain_limit differs between "
                                                       "the VIF scales"),
                              ("short_opts", short_opts, "feature_opts_dicts must hold one dict "
                                                         "per feature"),
                              ("text", "x", "not a VMAF model JSON"),
                              ("dict_list", {"model_dict": []}, "not a VMAF model JSON"),
                              ("no_svr", no_svr, "not a VMAF model JSON"),
                              ("few_slopes", few_slopes, "3 slopes and 7 intercepts"),
                              ("short_names", short_names, "support vector 1 has feature index "
                                                           "6, but feature_names lists 5")):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        rc, _, err = _run(capsys, clips["ref"], clips["dist"], "--model", path)
        assert rc == 2, err
        _one_error_line(err, f"model file {path}", needle)


def test_model_paths_that_are_not_files_say_what_they_are(
        capsys: pytest.CaptureFixture[str], clips: dict[str, Path], tmp_path: Path) -> None:
    """A directory or an empty --model read "no such file" (an empty name as "model file ."),
    and a JSON without model_dict read "not a VMAF model JSON ('model_dict')"."""
    folder = tmp_path / "models"
    folder.mkdir()
    no_model_dict = tmp_path / "v1016.json"
    no_model_dict.write_text("{}")
    for model, needle in ((folder, f"model file {folder}: is a directory, not a model JSON"),
                          ("", "model: the name is empty"),
                          (no_model_dict, "not a VMAF model JSON (no 'model_dict' key)")):
        rc, _, err = _run(capsys, clips["ref"], clips["dist"], "--model", model)
        assert rc == 2, err
        _one_error_line(err, needle)
    from vmafdistill.errors import ModelError
    from vmafdistill.teacher.model_v1016 import resolve_v1016_path
    with pytest.raises(ModelError, match="is a directory"):
        resolve_v1016_path(folder)


def test_other_frame_rates_are_named(capsys: pytest.CaptureFixture[str], clips: dict[str, Path],
                                     tmp_path: Path) -> None:
    """Frames pair by position; a distorted file at another frame rate was scored without a
    word (a 25 fps encode of a 50 fps master: 41.7 against libvmaf's 83.9 after fps=50)."""
    def at_50(dist: Path) -> Path:
        header, rest = dist.read_bytes().split(b"\n", 1)
        assert b" F25:1" in header  # the fixture's rate
        dist50 = tmp_path / f"{dist.stem}_50.y4m"
        dist50.write_bytes(header.replace(b" F25:1", b" F50:1") + b"\n" + rest)
        return dist50

    # CAMBI needs 216 wide, SpEED chroma planes 80x80
    wide = _y4m(tmp_path / "ref_wide.y4m", size="256x160", frames=3)
    # v1.0.16 scored it without a word
    for ref, dist, model in ((clips["ref"], at_50(clips["dist"]), []),
                             (wide, at_50(wide), ["--model", "vmaf_v1.0.16_3d0h"])):
        rc, out, err = _run(capsys, ref, dist, *model)
        assert rc == 0 and "VMAF " in out
        assert "runs at 25 frames/s" in err and f"{dist} at 50:" in err, (model, err)
    rc, _, err = _run(capsys, clips["ref"], clips["dist"])  # same rate: no word
    assert rc == 0 and "frames/s" not in err, err
    # NTSC's 30000/1001 against 30 (a frame's drift every 33 s; libvmaf, pairing by timestamp,
    # read 49.8 where the pairs by position give 77.5) fell inside a 1e-3 tolerance
    header, rest = clips["dist"].read_bytes().split(b"\n", 1)
    # ... while an average rate off NTSC's by a few 1e-4 (an MP4 remuxed from 1 ms timestamps:
    # 40000/667 for 60000/1001 over 2 s) is the same rate
    head_r, rest_r = clips["ref"].read_bytes().split(b"\n", 1)
    for ref_rate, rate, named in ((b"30:1", b"30000:1001", True), (b"30:1", b"30:1", False),
                                  (b"60000:1001", b"40000:667", False),
                                  (b"24000:1001", b"24:1", True)):
        name = "_".join(r.decode().replace(":", "-") for r in (ref_rate, rate))
        ref_at, dist_at = tmp_path / f"ref_{name}.y4m", tmp_path / f"dist_{name}.y4m"
        ref_at.write_bytes(head_r.replace(b" F25:1", b" F" + ref_rate) + b"\n" + rest_r)
        dist_at.write_bytes(header.replace(b" F25:1", b" F" + rate) + b"\n" + rest)
        rc, _, err = _run(capsys, ref_at, dist_at)
        assert rc == 0 and ("frames/s and" in err) == named, (ref_rate, rate, err)


def test_a_gap_in_the_timestamps_is_named(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    """Frames pair by position, ffmpeg's libvmaf filter by timestamp. An MPEG-TS with frames 6-9
    of 16 dropped (timestamps kept, 12 frames, 25 fps declared, like a 12-frame reference) was
    scored without a word (a 60-frame clip: 47.4 against libvmaf's 77.9). Named now, for a
    .y4m or a container reference; the same files without the gap say nothing."""
    src = _y4m(tmp_path / "src.y4m", frames=16)
    ref = _y4m(tmp_path / "ref.y4m", frames=12)

    def ts(name: str, select: str) -> Path:
        out = tmp_path / name
        run_ffmpeg(["-i", str(src), "-vf", f"select='{select}'", "-fps_mode", "passthrough",
                    "-c:v", "libx264", "-crf", "30", "-y", str(out)], what=name)
        return out

    gap = ts("gap.ts", r"lt(n\,6)+gte(n\,10)")
    whole = ts("whole.ts", r"lt(n\,12)")
    for reference in (ref, whole):
        rc, out, err = _run(capsys, reference, gap)
        assert rc == 0 and "VMAF " in out, err
        assert f"frame 6 of {gap} is shown at 0.400 s and frame 6 of {reference} at 0.240 s" \
            in err and "frames/s" not in err, err
        rc, out, err = _run(capsys, reference, whole)
        assert rc == 0 and "paired by" not in err, err
    # an MPEG-PS with B-frames lists packets without a pts: its frames' order is unknown, and
    # a guess warned of a gap at frame 6 of a clean file (the decoder shows frame i at i/25)
    long_ref, ps = _y4m(tmp_path / "long.y4m", frames=60), tmp_path / "b_frames.mpg"
    run_ffmpeg(["-i", str(long_ref), "-c:v", "mpeg2video", "-bf", "2", "-y", str(ps)],
               what="ps")
    rc, out, err = _run(capsys, long_ref, ps)
    assert rc == 0 and "paired by" not in err, err
    # ... so the decoder's output times are read there: a real gap in such a file was not
    # checked at all (frames 20-29 of 60 dropped: named at frame 20, as in a TS)
    ref50, gap_ps = _y4m(tmp_path / "ref50.y4m", frames=50), tmp_path / "gap.mpg"
    run_ffmpeg(["-i", str(long_ref), "-vf", r"select='lt(n\,20)+gte(n\,30)'", "-fps_mode",
                "passthrough", "-c:v", "mpeg2video", "-bf", "2", "-y", str(gap_ps)],
               what="ps with a gap")
    rc, out, err = _run(capsys, ref50, gap_ps)
    assert rc == 0 and f"frame 20 of {gap_ps} is shown at 1.200 s" in err, err


def test_frame_times_compare_within_half_a_frame() -> None:
    """A jitter under half a frame period is the same moment; frames without a timestamp
    (NaN) on either side are skipped; only the frames both files have are compared."""
    from vmafdistill.io.frame_times import first_time_mismatch

    ref = np.arange(6) / 25.0
    assert first_time_mismatch(ref, ref + 0.019, 1 / 25) is None
    assert first_time_mismatch(ref, ref + 0.021, 1 / 25) == 0
    holed = np.array([0.0, np.nan, 0.9, 0.12])
    assert first_time_mismatch(ref, holed, 1 / 25) == 2
    assert first_time_mismatch(ref[:2], holed, 1 / 25) is None


def test_frame_times_follow_the_decoder_across_a_splice(tmp_path: Path) -> None:
    """Two renditions joined with overlapping timestamps (0-0.12 s, then 0.08-0.2 s): a global
    sort of the packets read frame 3 at 0.08 s; the decoder outputs frame 3 at 0.12 s and frame
    4 at 0.08 s (ffmpeg's showinfo), by timestamp within each run from a keyframe."""
    from vmafdistill.io.frame_times import frame_times_s
    from vmafdistill.io.video import probe_video

    ref = _y4m(tmp_path / "ref.y4m", frames=8)
    a, b, joined = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "joined.ts"
    run_ffmpeg(["-i", str(ref), "-frames:v", "4", "-c:v", "libx264", str(a)], what="a")
    run_ffmpeg(["-ss", "0.16", "-i", str(ref), "-c:v", "libx264", "-output_ts_offset", "0.16",
                str(b)], what="b")
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    times = frame_times_s(joined, probe_video(joined))
    np.testing.assert_allclose(times, [0, 0.04, 0.08, 0.12, 0.08, 0.12, 0.16, 0.2], atol=1e-9)


def test_frame_times_leave_out_an_edit_list_s_hidden_packets(tmp_path: Path) -> None:
    """An MP4 cut with ``-c copy`` keeps the GOP before the cut and an edit list hides it
    (AV_PKT_FLAG_DISCARD): the decoder shows none of those packets. Counted, they read 75
    frames where 63 are shown, and a gap was named by a frame number off by the hidden count."""
    from vmafdistill._ffmpeg import ffmpeg_exe
    from vmafdistill.io.frame_times import frame_times_s
    from vmafdistill.io.video import probe_video

    src, full, cut = tmp_path / "src.y4m", tmp_path / "full.mp4", tmp_path / "cut.mp4"
    _y4m(src, frames=100)
    run_ffmpeg(["-i", str(src), "-c:v", "libx264", "-g", "25", "-bf", "2", "-y", str(full)],
               what="full")
    run_ffmpeg(["-ss", "1.48", "-i", str(full), "-c", "copy", "-y", str(cut)], what="cut")
    listed = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(cut), "-f", "framecrc", "-"],
                            capture_output=True, text=True, check=True).stdout
    shown = sum(1 for line in listed.splitlines() if line and not line.startswith("#"))
    times = frame_times_s(cut, probe_video(cut))
    assert times is not None and len(times) == shown, (len(times), shown)
    np.testing.assert_allclose(times, np.arange(shown) / 25, atol=1e-9)


def test_outputs_are_written_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    """`score --csv` wrote row by row: a Ctrl-C left 228 of 1000 rows, each line whole, a file
    that parsed as complete, and the earlier file was gone. Writes now go through a temp file
    and a rename; a link is written through, a device as is."""
    import os

    import vmafdistill.folders as folders

    out = tmp_path / "out.csv"
    out.write_text("earlier\n")

    def interrupted(*_a: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(folders.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        folders.atomic_write_text(out, "Frame,vmaf\n0,1.0\n")
    assert out.read_text() == "earlier\n" and sorted(tmp_path.iterdir()) == [out]
    monkeypatch.undo()
    link = tmp_path / "link.csv"
    link.symlink_to(out)
    folders.atomic_write_text(link, "new\n")
    assert link.is_symlink() and out.read_text() == "new\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with open(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), "rb", closefd=True) as reader:
        folders.atomic_write_text(fifo, "piped\n")
        assert reader.read() == b"piped\n"
    assert fifo.is_fifo()
    # /dev/stdout into a pipe: its link leads to "pipe:[N]" (a temp file was made there)
    import subprocess
    import sys

    code = "from vmafdistill.folders import atomic_write_text as w; w('/dev/stdout', 'x\\n')"
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert piped.stdout == b"x\n"
    # ... and into a shell's `>> file`: the file was replaced, the lines before it lost
    log = tmp_path / "app.log"
    log.write_text("earlier\n")
    with open(log, "ab") as appended:
        subprocess.run([sys.executable, "-c", code], stdout=appended, check=True)
    assert log.read_text() == "earlier\nx\n"
    # a private file stays private; a hard link keeps its twin in step
    os.chmod(out, 0o600)
    folders.atomic_write_text(out, "private\n")
    assert out.stat().st_mode & 0o777 == 0o600 and out.read_text() == "private\n"
    twin = tmp_path / "twin.csv"
    os.link(out, twin)
    folders.atomic_write_text(out, "both\n")
    assert twin.read_text() == "both\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_stdout_is_one_error_line(clips: dict[str, Path]) -> None:
    """``score ... > /dev/full``: the summary's print raised a traceback, exit 1."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "vmafdistill", "score", str(clips["ref"]),
                               str(clips["dist"]), "--quiet"], stdout=full,
                              stderr=subprocess.PIPE, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc.stderr, "cannot write the output", "No space left on device")


@pytest.mark.skipif(not Path("/dev/stdout").exists(), reason="no /dev/stdout on this system")
def test_a_log_on_dev_stdout_keeps_the_summary_off_it(clips: dict[str, Path]) -> None:
    """``--json /dev/stdout`` is stdout as ``-`` is: the summary line was printed after the
    JSON on stdout, so ``| jq`` failed; it goes to stderr as it does for ``-``."""
    proc = subprocess.run([sys.executable, "-m", "vmafdistill", "score", str(clips["ref"]),
                           str(clips["dist"]), "--quiet", "--json", "/dev/stdout"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # the JSON alone
    assert _vmaf_line(proc.stderr) == pytest.approx(doc["pooled_metrics"]["vmaf"]["mean"],
                                                    abs=5e-7)
    # and --json - beside --csv /dev/stdout is two documents on one stdout: refused
    proc = subprocess.run([sys.executable, "-m", "vmafdistill", "score", str(clips["ref"]),
                           str(clips["dist"]), "--quiet", "--json", "-", "--csv", "/dev/stdout"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and not proc.stdout
    _one_error_line(proc.stderr, "--json and --csv both name - and /dev/stdout, one file")


def test_the_stdout_check_takes_a_missing_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """``score ... >&-`` under pythonw-like hosts leaves ``sys.stdout`` None: the check that a
    log target is stdout raised AttributeError before any scoring."""
    from vmafdistill.folders import is_stdout

    monkeypatch.setattr(sys, "stdout", None)
    assert is_stdout("-") and not is_stdout("out.csv") and not is_stdout(None)
