"""Acceptance: the PyTorch teacher reproduces libvmaf's float VMAF on every golden case.

Every case in ``tests/data/golden`` is built fresh (the ``golden_case`` fixture checks the decoded
sha256 against the golden record) and scored with :func:`vmafdistill.teacher.score.score_files`
exactly as the oracle scored it: raw specs for raw cases, and for ``scale_to`` cases a rescale of
the distorted video with the case's swscale flags. Per frame, VMAF must agree within 1e-3 and
every elementary feature within 1e-4 with libvmaf's float models (``vmaf_float_v0.6.1`` and, on
the cases that have them, the float ``neg`` and ``4k`` models).

Run with ``-s`` to see the per-case table of max deltas (printed per test and, at the end of
the module, as one table).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import ffmpeg_exe, run_ffmpeg
from vmafdistill.io import iter_frames, read_all
from vmafdistill.oracle import libvmaf_available, libvmaf_score
from vmafdistill.teacher.score import score_files
from vmafdistill.teacher.vmaf import VmafResult
from vmafdistill.testing.golden import GoldenCase, golden_dir, load_golden
from vmafdistill.vmaf_names import FEATURE_METRICS

VMAF_TOL = 1e-3
FEATURE_TOL = 1e-4
#: Documented float-vs-integer gap is up to ~0.7; anything near 1 means something else is wrong.
INTEGER_GAP_LIMIT = 1.0

FEATURES = FEATURE_METRICS

#: Golden (libvmaf) float model -> the teacher's model name.
FLOAT_MODELS = {
    "vmaf_float_v0.6.1": "vmaf_v0.6.1",
    "vmaf_float_v0.6.1neg": "vmaf_v0.6.1neg",
    "vmaf_float_4k_v0.6.1": "vmaf_4k_v0.6.1",
}

CASE_NAMES = sorted(p.stem for p in golden_dir().glob("*.json"))
PARITY_PARAMS = [
    pytest.param(case, golden_model, id=f"{case}-{golden_model}")
    for case in CASE_NAMES
    for golden_model in FLOAT_MODELS
    if golden_model in load_golden(case)["models"]
]

# (case, teacher model) -> result; shared by the float parity and the integer comparison.
_RESULTS: dict[tuple[str, str], VmafResult] = {}
# Rows of the summary table printed at the end of the module.
_TABLE: list[str] = []


def test_golden_set_is_complete() -> None:
    """The parametrisation really covers every golden file and every float model in them."""
    assert len(CASE_NAMES) == 17, CASE_NAMES
    base = [p.values[0] for p in PARITY_PARAMS if p.values[1] == "vmaf_float_v0.6.1"]
    extra = [p.id for p in PARITY_PARAMS if p.values[1] != "vmaf_float_v0.6.1"]
    assert base == CASE_NAMES
    # The float neg and 4k models are recorded for three cases.
    assert len(extra) == 6, extra


def _score_case(case: GoldenCase, model: str) -> VmafResult:
    key = (case.name, model)
    if key not in _RESULTS:
        built = case.built
        if built.scale_to is not None:
            # score_files can only scale the distorted video to the reference size; that is
            # what every scale_to case does (a low-resolution rung scored at source size).
            assert tuple(built.scale_to) == (built.ref_format.width, built.ref_format.height)
        _RESULTS[key] = score_files(
            built.ref,
            built.dist,
            model=model,
            chunk=4,  # several chunks per case: motion crosses chunk borders here too
            ref_raw=built.ref_raw,
            dist_raw=built.dist_raw,
            rescale=built.scale_to is not None,
            scale_flags=built.scale_flags,
            mode="float",  # this module checks the float teacher (exact: test_exact_parity)
        )
    return _RESULTS[key]


def _violations(
    case: str, model: str, ours: VmafResult, golden: Callable[[str], list[float]]
) -> tuple[dict[str, float], list[str]]:
    """Max |delta| per metric and one message per metric that exceeds its tolerance."""
    deltas: dict[str, float] = {}
    problems: list[str] = []
    for metric in ("vmaf", *FEATURES):
        want = np.asarray(golden(metric), dtype=np.float64)
        got = ours.metrics[metric]
        assert got.shape == want.shape, f"{case}/{model}/{metric}: {got.shape} vs {want.shape}"
        diff = np.abs(got - want)
        worst = int(np.argmax(diff))
        deltas[metric] = float(diff[worst])
        tol = VMAF_TOL if metric == "vmaf" else FEATURE_TOL
        if diff[worst] > tol:
            bad = int(np.count_nonzero(diff > tol))
            problems.append(
                f"{case} [{model}] {metric} frame {worst}: teacher {got[worst]:.6f} vs libvmaf "
                f"{want[worst]:.6f} (|delta| {diff[worst]:.2e} > {tol:g}; {bad} frame(s) over)"
            )
    return deltas, problems


def _row(case: str, model: str, deltas: dict[str, float]) -> str:
    feat = max(FEATURES, key=lambda m: deltas[m])
    return (
        f"{case:34s} {model:22s} vmaf {deltas['vmaf']:.2e}  worst feature "
        f"{feat:11s} {deltas[feat]:.2e}"
    )


@pytest.fixture(scope="module", autouse=True)
def _print_table() -> Iterator[None]:
    yield
    if _TABLE:
        print("\n\nteacher vs libvmaf, max |delta| over frames:")
        for row in _TABLE:
            print(row)


@pytest.mark.parametrize(("case_name", "golden_model"), PARITY_PARAMS)
def test_float_parity(
    case_name: str, golden_model: str, golden_case: Callable[[str], GoldenCase]
) -> None:
    case = golden_case(case_name)
    model = FLOAT_MODELS[golden_model]
    ours = _score_case(case, model)
    assert ours.num_frames == case.golden["frames"]
    deltas, problems = _violations(
        case_name, golden_model, ours, lambda m: case.per_frame(golden_model, m)
    )
    row = _row(case_name, golden_model, deltas)
    _TABLE.append(row)
    print("\n" + row)
    assert not problems, "\n".join(problems)
    # libvmaf's pooled mean is the mean of its unrounded per-frame scores.
    assert ours.pooled["vmaf"]["mean"] == pytest.approx(
        case.pooled_mean(golden_model, "vmaf"), abs=VMAF_TOL
    )


@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_float_vs_integer_model(case_name: str, golden_case: Callable[[str], GoldenCase]) -> None:
    """Reported: our (float) VMAF against libvmaf's integer default model ``vmaf_v0.6.1``."""
    case = golden_case(case_name)
    ours = _score_case(case, "vmaf_v0.6.1")
    integer = np.asarray(case.per_frame("vmaf_v0.6.1", "vmaf"))
    golden_float = np.asarray(case.per_frame("vmaf_float_v0.6.1", "vmaf"))
    diff = ours.metrics["vmaf"] - integer
    worst = int(np.argmax(np.abs(diff)))
    row = (
        f"{case_name:34s} {'vs integer vmaf_v0.6.1':22s} max |delta| {abs(diff[worst]):.3f} "
        f"(frame {worst}), mean delta {diff.mean():+.3f}; libvmaf float-integer "
        f"{np.abs(golden_float - integer).max():.3f}"
    )
    _TABLE.append(row)
    print("\n" + row)
    assert abs(diff[worst]) <= INTEGER_GAP_LIMIT, (
        f"{case_name} frame {worst}: teacher {ours.metrics['vmaf'][worst]:.6f} vs libvmaf integer "
        f"{integer[worst]:.6f}"
    )


def test_rescale_reads_the_oracles_pixels(golden_case: Callable[[str], GoldenCase]) -> None:
    """The upscaled case: our reader's scaled frames equal swscale's C path bit for bit.

    The golden numbers were made by the oracle scaling inside ffmpeg's filtergraph with
    ``flags=<scale_flags>``; content was built with ``-cpuflags 0``. With ``accurate_rnd+bitexact``
    the SIMD paths must give the same pixels as the C code, so comparing our reader against an
    explicit ``-cpuflags 0 -filter_threads 1`` scale proves we score what the oracle scored.
    """
    built = golden_case("bbb720_x264_360p_crf30_upscaled").built
    assert built.scale_to is not None
    w, h = built.scale_to
    ours = read_all(built.dist, scale_to=(w, h), scale_flags=built.scale_flags).y
    c_path = ["-cpuflags", "0", "-filter_threads", "1", "-threads", "1"]
    scale = ["-vf", f"scale={w}:{h}:flags={built.scale_flags}"]
    out = ["-pix_fmt", "yuv420p", "-f", "rawvideo", "-"]
    proc = run_ffmpeg(
        [*c_path, "-i", str(built.dist), *scale, *out], what="scaling with the C code path"
    )
    raw = np.frombuffer(proc.stdout, dtype=np.uint8).reshape(built.frames, -1)
    reference_c = raw[:, : w * h].reshape(built.frames, h, w)
    assert ours.shape == reference_c.shape
    mismatch = int(np.count_nonzero(ours != reference_c))
    assert mismatch == 0, f"{mismatch} luma samples differ from swscale's C path"
    # And the chunked path score_files uses agrees with the one-shot read.
    chunked = np.concatenate(
        [
            c.y
            for c in iter_frames(
                built.dist, chunk=3, scale_to=(w, h), scale_flags=built.scale_flags
            )
        ]
    )
    np.testing.assert_array_equal(chunked, ours)


# --------------------------------------------------------------------------------------------
# Live oracle: a pair that is not in the golden set, scored by libvmaf right here.
# --------------------------------------------------------------------------------------------


def _make_live_pair(out: Path) -> tuple[Path, Path]:
    """97x61 yuv420p test pattern (6 frames) and its x264 CRF 38 encode, both as .y4m.

    x264 cannot encode odd 4:2:0 sizes, so the reference is padded to 98x62 for the encode and
    the decoded result cropped back to 97x61.
    """
    ref = out / "ref.y4m"
    enc = out / "dist.mp4"
    dist = out / "dist.y4m"
    y4m = ["-pix_fmt", "yuv420p", "-strict", "-1", "-f", "yuv4mpegpipe", "-y"]
    # testsrc2 only makes even 4:2:0 sizes: crop its 98x62 output to 97x61.
    src = ["-f", "lavfi", "-i", "testsrc2=size=98x62:rate=25", "-frames:v", "6"]
    crop = ["-vf", "crop=97:61:0:0:exact=1"]
    run_ffmpeg([*src, *crop, *y4m, str(ref)], what="making the reference")
    x264 = ["-c:v", "libx264", "-crf", "38", "-preset", "medium", "-threads", "1"]
    pad = ["-vf", "pad=98:62:0:0:gray"]
    run_ffmpeg(
        ["-i", str(ref), *pad, *x264, "-pix_fmt", "yuv420p", "-y", str(enc)], what="encoding"
    )
    run_ffmpeg(["-i", str(enc), *crop, *y4m, str(dist)], what="decoding")
    return ref, dist


@pytest.mark.skipif(not libvmaf_available(), reason="ffmpeg has no libvmaf filter")
def test_live_oracle_odd_size(tmp_path: Path) -> None:
    ref, dist = _make_live_pair(tmp_path)
    ref_y = read_all(ref).y
    assert ref_y.shape == (6, 61, 97)
    assert not np.array_equal(ref_y, read_all(dist).y)  # really distorted
    oracle = libvmaf_score(ref, dist, model="vmaf_float_v0.6.1")
    ours = score_files(ref, dist, model="vmaf_v0.6.1", chunk=4, mode="float")
    assert oracle.num_frames == ours.num_frames == 6
    assert max(oracle.metric("motion")) > 0.5  # the pattern moves: motion2 is exercised
    assert min(oracle.metric("vmaf")) < 95  # a real distortion, not a saturated score
    deltas, problems = _violations(
        f"live 97x61 ({ffmpeg_exe()})", "vmaf_float_v0.6.1", ours, oracle.metric
    )
    print("\n" + _row("live testsrc2 97x61 x264 crf38", "vmaf_float_v0.6.1", deltas))
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(not libvmaf_available(), reason="ffmpeg has no libvmaf filter")
@pytest.mark.parametrize("model", ["vmaf_float_v0.6.1", "vmaf_float_v0.6.1neg"])
def test_float_mode_prints_what_libvmafs_float_model_prints(tmp_path: Path, model: str) -> None:
    """Every name libvmaf's float extractors print (``aim``, ``adm3``, ``motion3`` beside the
    model's inputs; ``_egl_1`` on the neg model's ADM and VIF names), and nothing else, with
    the module's tolerances (features within FEATURE_TOL, VMAF within VMAF_TOL)."""
    ref, dist = _make_live_pair(tmp_path)
    oracle = libvmaf_score(ref, dist, model=model)
    ours = score_files(ref, dist, model=model, chunk=4, aim=True).frames(printed=True)
    # the oracle adds the canonical alias (adm2) beside a suffixed name (adm2_egl_1): drop it
    aliases = {n.removesuffix("_egl_1") for n in oracle.frames[0] if n.endswith("_egl_1")}
    printed = set(oracle.frames[0]) - aliases
    assert set(ours[0]) == printed, set(ours[0]) ^ printed
    assert max(f["aim" if model.endswith("1") else "aim_egl_1"] for f in oracle.frames) > 0
    assert list(ours[0]) == [n for n in oracle.frames[0] if n in printed]  # libvmaf's order
    for name in ours[0]:
        tol = VMAF_TOL if name == "vmaf" else FEATURE_TOL
        worst = max(abs(o[name] - f[name]) for o, f in zip(ours, oracle.frames, strict=True))
        assert worst <= tol, (name, worst)


@pytest.mark.skipif(not libvmaf_available(), reason="ffmpeg has no libvmaf filter")
def test_float_aim_is_capped_at_one_as_libvmaf(tmp_path: Path) -> None:
    """Strong noise on a flat reference: the additive impairment exceeds the reference's
    energy; libvmaf's float ADM prints aim = min(ratio, 1) (1.0, adm3 0.5), not 1.5-2.7."""
    ref, dist = tmp_path / "flat.y4m", tmp_path / "noisy.y4m"
    run_ffmpeg(["-f", "lavfi", "-i", "color=c=gray:size=64x64:rate=25", "-frames:v", "3",
                "-pix_fmt", "yuv420p", str(ref)], what="a flat clip")
    run_ffmpeg(["-i", str(ref), "-vf", "noise=alls=30:allf=t", "-pix_fmt", "yuv420p",
                str(dist)], what="its noisy copy")
    oracle = libvmaf_score(ref, dist, model="vmaf_float_v0.6.1")
    ours = score_files(ref, dist, model="vmaf_float_v0.6.1", aim=True)
    assert max(oracle.metric("aim")) == 1.0  # the premise: the cap is reached
    for name in ("aim", "adm3"):
        assert np.abs(ours.metrics[name] - np.array(oracle.metric(name))).max() <= FEATURE_TOL


@pytest.mark.parametrize("case_name", ["bbb720_x264_crf35", "bbb322x182_x264_crf30"])
def test_libvmaf_log2_mode_parity(
    golden_case: Callable[[str], GoldenCase], case_name: str
) -> None:
    """The bit-faithful mode (libvmaf's polynomial log2) meets the same tolerances, and the
    default (torch.log2) differs from it by far less than libvmaf's printed precision matters."""
    import dataclasses

    from vmafdistill.teacher import VifOptions, VmafModel

    case = golden_case(case_name)
    base = VmafModel.load("vmaf_v0.6.1")
    faithful_model = dataclasses.replace(base, vif_options=VifOptions(libvmaf_log2=True))
    built = case.built
    faithful = score_files(
        built.ref, built.dist, model=faithful_model, chunk=4,
        ref_raw=built.ref_raw, dist_raw=built.dist_raw, mode="float",
    )
    deltas, problems = _violations(
        case.name, "vmaf_float_v0.6.1 (libvmaf log2)", faithful,
        lambda m: case.per_frame("vmaf_float_v0.6.1", m),
    )
    assert not problems, "\n".join(problems)
    default = _score_case(case, "vmaf_v0.6.1")
    gap = np.abs(default.metrics["vmaf"] - faithful.metrics["vmaf"]).max()
    assert gap < 1e-4, f"{case.name}: torch.log2 vs libvmaf log2 moved VMAF by {gap:.2e}"
    assert deltas["vmaf"] < 2e-4


@pytest.mark.parametrize("name, transform, raises", [
    # the shipped neg/phone polynomial raises the score; out_lte_in then keeps the SVR's
    ("raising, out_gte_in", {"enabled": True}, True),
    ("raising, out_lte_in", {"enabled": True, "out_gte_in": None, "out_lte_in": "true"}, False),
    ("lowering, no rectification", {"enabled": True, "p0": -5.0, "p1": 1.0, "p2": None,
                                    "out_gte_in": None}, False),
    ("lowering, out_gte_in", {"enabled": True, "p0": -5.0, "p1": 1.0, "p2": None}, False),
    # libvmaf compares the flag with "true" exactly: "True" does not rectify
    ("lowering, out_gte_in True", {"enabled": True, "p0": -5.0, "p1": 1.0, "p2": None,
                                   "out_gte_in": "True"}, False),
    ("disabled", {"enabled": False}, False),
])
def test_a_model_jsons_score_transform_is_applied_as_libvmaf_does(
        tmp_path: Path, name: str, transform: dict[str, object], raises: bool) -> None:
    """A model JSON whose ``score_transform`` is enabled was scored without it (93.89 where
    libvmaf printed 99.05). Exact mode, so libvmaf's printed digits (tolerance: half of the
    6th decimal it prints)."""
    import json

    from vmafdistill.oracle import model_files_dir

    ref, dist = tmp_path / "ref.y4m", tmp_path / "dist.y4m"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=176x144:rate=25", "-frames:v", "4",
                "-pix_fmt", "yuv420p", str(ref)], what="reference")
    run_ffmpeg(["-i", str(ref), "-vf", "boxblur=3:1,noise=alls=20:allf=t", "-pix_fmt",
                "yuv420p", str(dist)], what="distorted")
    doc = json.loads((model_files_dir() / "vmaf_v0.6.1.json").read_text())
    st = doc["model_dict"]["score_transform"]
    st.update(transform)
    for key in [k for k, v in transform.items() if v is None]:
        del st[key]  # this libvmaf refuses a JSON null there
    model = tmp_path / "transformed.json"
    model.write_text(json.dumps(doc))
    ours = score_files(ref, dist, model=str(model)).metrics["vmaf"]
    theirs = libvmaf_score(ref, dist, model=str(model)).metric("vmaf")
    plain = libvmaf_score(ref, dist, model="vmaf_v0.6.1").metric("vmaf")
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=5.01e-7)
    assert (min(np.subtract(theirs, plain)) > 1) == raises  # the case does what it says


@pytest.mark.parametrize("change, message", [
    ({"enabled": True, "knots": [[0, 0], [100, 100]]}, "a score_transform with knots"),
    # what libvmaf refuses to load, enabled or not: an error here too, not a label
    ({"enabled": "true"}, "score_transform enabled: not what libvmaf reads"),
    ({"enabled": False, "p1": "1.0"}, "score_transform p1: not what libvmaf reads"),
    ({"enabled": True, "p0": None}, "score_transform p0: not what libvmaf reads"),
    ({"enabled": True, "out_lte_in": True}, "score_transform out_lte_in: not what"),
    ({"enabled": 1}, "score_transform enabled: not what libvmaf reads"),
])
def test_a_score_transform_libvmaf_cannot_read_is_refused(
        tmp_path: Path, change: dict[str, object], message: str) -> None:
    import json
    import re

    from vmafdistill.errors import ModelError
    from vmafdistill.oracle import model_files_dir
    from vmafdistill.teacher.model import VmafModel

    doc = json.loads((model_files_dir() / "vmaf_v0.6.1.json").read_text())
    doc["model_dict"]["score_transform"].update(change)
    path = tmp_path / "transform.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=re.escape(f"{path}: {message}")):
        VmafModel.load(str(path))


def test_float_mode_warns_when_the_two_sides_differ_in_bit_depth(tmp_path: Path) -> None:
    """Float mode scored a 10-bit reference against an 8-bit distorted each at its own depth
    in silence (94.725 where a plain libvmaf command, which converts the reference, gives
    94.753); the warning names both files and what each ffmpeg command converts."""
    ref, dist = tmp_path / "ref10.y4m", tmp_path / "dist8.y4m"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=176x144:rate=25", "-frames:v", "2",
                "-pix_fmt", "yuv420p10le", "-strict", "-1", str(ref)], what="reference")
    run_ffmpeg(["-i", str(ref), "-vf", "boxblur=2:1", "-pix_fmt", "yuv420p", str(dist)],
               what="distorted")
    with pytest.warns(UserWarning, match=r"ref10\.y4m is 10-bit and .*dist8\.y4m is 8-bit: "
                                         r"each is scored at its own depth.*plain"):
        score_files(ref, dist, model="vmaf_float_v0.6.1")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rescaled: one format, nothing to say
        score_files(ref, dist, model="vmaf_float_v0.6.1", rescale=True)
