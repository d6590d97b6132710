"""Properties of the teacher that must hold exactly: chunking, precision, identity, gradients.

* Streaming in chunks of any size gives the numbers of one big chunk (``motion2`` looks one
  frame ahead and ``motion`` one frame back, across chunk borders).
* float64 agrees with the (libvmaf-faithful) float32 path.
* Identical inputs give ADM 1 and VIF 1.
* ``torch.autograd.gradcheck`` in float64 of the functional ``vmaf`` and of the VIF and ADM
  features.
* The ``VMAF`` ``nn.Module`` gives the numbers ``score_files`` gives and backpropagates.
* The filter implementations agree with each other and ``decimate=True`` is exact.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from vmafdistill.io import read_all
from vmafdistill.oracle import libvmaf_available, libvmaf_score
from vmafdistill.teacher import VMAF, VmafModel, adm_scales, vif_scales, vmaf
from vmafdistill.teacher.filters import (
    DEFAULT_BLOCK_ROWS,
    MOTION_FILTER_5,
    separable_filter,
    vif_gaussian_taps,
)
from vmafdistill.teacher.score import score_files
from vmafdistill.teacher.vif import log2_approx
from vmafdistill.teacher.vmaf import VmafResult
from vmafdistill.testing.golden import GoldenCase
from vmafdistill.vmaf_names import FRAME_METRICS

#: A 10-frame golden case with strong motion (motion up to ~23), 640x272: cheap to score.
MOTION_CASE = "bikes640x272_motion_x264_crf30"
#: The cheapest golden case (322x182), for the module/autograd checks.
SMALL_CASE = "bbb322x182_x264_crf30"

VIF_NAMES = tuple(f"vif_scale{k}" for k in range(4))
ADM_NAMES = ("adm2", *(f"adm_scale{k}" for k in range(4)))


def _score(case: GoldenCase, **kw: object) -> VmafResult:
    kw.setdefault("mode", "float")  # this module tests the float (differentiable) teacher
    return score_files(
        case.ref, case.dist, ref_raw=case.built.ref_raw, dist_raw=case.built.dist_raw, **kw
    )


@pytest.fixture(scope="module")
def motion_case(golden_case: Callable[[str], GoldenCase]) -> GoldenCase:
    return golden_case(MOTION_CASE)


@pytest.fixture(scope="module")
def whole_clip(motion_case: GoldenCase) -> VmafResult:
    """The motion case scored in one chunk of all 10 frames."""
    return _score(motion_case, chunk=10)


# --------------------------------------------------------------------------------------------
# Chunking and precision
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 10, 16])
def test_chunk_invariance(chunk: int, motion_case: GoldenCase, whole_clip: VmafResult) -> None:
    assert whole_clip.num_frames == 10
    # The point of the test: motion really differs frame to frame, so a lost or misplaced
    # previous frame at a chunk border would change motion/motion2 (and VMAF).
    assert whole_clip.metrics["motion"][1:].min() > 1.0
    assert np.ptp(whole_clip.metrics["motion"][1:]) > 1.0
    chunked = _score(motion_case, chunk=chunk)
    for name in FRAME_METRICS:
        a, b = chunked.metrics[name], whole_clip.metrics[name]
        assert a.shape == b.shape == (10,), name
        diff = np.abs(a - b)
        worst = int(np.argmax(diff))
        assert diff[worst] <= 1e-6, (
            f"chunk={chunk} {name} frame {worst}: {a[worst]!r} vs one chunk {b[worst]!r}"
        )


def test_chunk_invariance_with_golden_motion(motion_case: GoldenCase) -> None:
    """Chunk 1 (every frame its own chunk) still reproduces libvmaf's motion and motion2."""
    one_by_one = _score(motion_case, chunk=1)
    for name in ("motion", "motion2"):
        want = np.asarray(motion_case.per_frame("vmaf_float_v0.6.1", name))
        np.testing.assert_allclose(one_by_one.metrics[name], want, rtol=0, atol=1e-4, err_msg=name)


def test_float64_agrees_with_float32(motion_case: GoldenCase, whole_clip: VmafResult) -> None:
    """float64 mode runs and stays within 1e-3 VMAF of the float32 (libvmaf-exact) path.

    Not a property of every clip: ADM's 1-degree angle test is a hard threshold that libvmaf
    evaluates in float32, and a coefficient sitting on it can flip in float64. On the 322x182
    golden case one scale-3 coefficient (cos^2 0.99969536 in float32, 0.99969549 in float64,
    threshold 0.99969542) flips and moves frame 5 by 0.036 VMAF; at 640x272 and above no such
    coefficient carries enough weight here.
    """
    f64 = _score(motion_case, chunk=4, dtype=torch.float64)
    assert f64.info["dtype"] == "float64"
    diff = np.abs(f64.metrics["vmaf"] - whole_clip.metrics["vmaf"])
    assert diff.max() <= 1e-3, f"float64 vs float32 VMAF: max |delta| {diff.max():.2e}"
    for name in (*VIF_NAMES, *ADM_NAMES, "motion", "motion2"):
        np.testing.assert_allclose(
            f64.metrics[name], whole_clip.metrics[name], rtol=0, atol=1e-4, err_msg=name
        )
    # Not silently the same computation: float64 rounds differently somewhere.
    assert not np.array_equal(f64.metrics["vif_scale3"], whole_clip.metrics["vif_scale3"])


# --------------------------------------------------------------------------------------------
# Identical inputs
# --------------------------------------------------------------------------------------------


def _assert_identity(
    feats: dict[str, torch.Tensor] | dict[str, np.ndarray], what: str, vif_tol: float = 1e-6
) -> None:
    adm2 = np.asarray(feats["adm2"], dtype=np.float64)
    assert np.all(adm2 == 1.0), f"{what}: adm2 {adm2}"
    for name in VIF_NAMES:
        vif = np.asarray(feats[name], dtype=np.float64)
        assert np.abs(vif - 1.0).max() <= vif_tol, f"{what}: {name} {vif}"


def test_identical_inputs_golden_content(motion_case: GoldenCase) -> None:
    """Real content against itself: ADM exactly 1, VIF 1 up to libvmaf's flat-region rule.

    Where the local reference variance is below ``sigma_nsq`` libvmaf counts ``1 - sigma2_sq *
    sigma_nsq**2 / 255**2`` against a denominator of 1, so even identical frames lose ~1e-6 of
    VIF (libvmaf prints 0.999999 for these frames); random content has no such regions and
    gives 1 within 1e-6 (next test). The values are checked against libvmaf itself.
    """
    res = score_files(motion_case.ref, motion_case.ref, chunk=5, mode="float")
    _assert_identity(res.metrics, "bikes ref vs itself", vif_tol=5e-6)
    for name in VIF_NAMES:
        assert np.all(res.metrics[name] <= 1.0), name
    for k in range(4):
        np.testing.assert_allclose(res.metrics[f"adm_scale{k}"], 1.0, rtol=0, atol=1e-12)
    if not libvmaf_available():
        pytest.skip("ffmpeg has no libvmaf filter: identity checked without the oracle")
    oracle = libvmaf_score(motion_case.ref, motion_case.ref, model="vmaf_float_v0.6.1")
    for name in FRAME_METRICS:
        tol = 1e-3 if name == "vmaf" else 1e-4
        np.testing.assert_allclose(
            res.metrics[name], oracle.metric(name), rtol=0, atol=tol, err_msg=name
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identical_inputs_random_and_flat(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(11)
    noise = torch.rand(2, 72, 88, generator=g, dtype=torch.float64) * 255 - 128
    smooth = separable_filter(noise, vif_gaussian_taps(0), method="conv") * 3
    flat = torch.full((1, 72, 88), 37.0, dtype=torch.float64)
    for what, x in (("noise", noise), ("smooth", smooth), ("flat", flat)):
        x = x.to(dtype)
        feats = {**vif_scales(x, x.clone()), **adm_scales(x, x.clone())}
        _assert_identity(feats, f"{what} {dtype}")


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny float64 tensors: one intra-op thread is several times faster (and deterministic)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _random_pair(seed: int, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference uniform in [0, 255] minus 128, distorted = reference + Gaussian noise (sd 8).

    High-variance content keeps every pixel away from VIF's flat-region switch
    (``sigma1_sq < sigma_nsq``, a discontinuity in the reference).
    """
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(shape, generator=g, dtype=torch.float64) * 255 - 128
    dist = ref + torch.randn(shape, generator=g, dtype=torch.float64) * 8
    return ref, dist.requires_grad_(True)


# Tolerances: eps=1e-6 central differences in float64 are accurate to ~1e-9 on the features
# (values ~1, per-pixel derivatives ~1e-3) and ~1e-6 on VMAF (values ~100, the SVR sums 200+
# exponentials). The absolute tolerances sit just above that noise: gradcheck's default-sized
# atol=1e-4 is larger than a whole VIF feature gradient at 64x64 and let a VIF gradient that
# was identically 0 (torch.ldexp's backward with an int exponent) pass in fast mode.
FEATURE_ATOL = 1e-7
VMAF_ATOL = 1e-5


def _gradcheck(
    fn: Callable[..., object], inputs: tuple[torch.Tensor, ...], atol: float, fast: bool
) -> None:
    assert gradcheck(fn, inputs, eps=1e-6, atol=atol, rtol=1e-3, nondet_tol=0.0, fast_mode=fast)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("seed", [0, 1])
def test_gradcheck_vmaf_fast(seed: int) -> None:
    """All of vmaf(): VIF, ADM, motion (needs the reference) and the SVR, unclipped."""
    model = VmafModel.load("vmaf_v0.6.1")
    ref, dist = _random_pair(seed, (2, 40, 36))
    out = vmaf(ref, dist, model, clip=False)["vmaf"]
    assert out.dtype == torch.float64 and out.requires_grad
    _gradcheck(lambda d: vmaf(ref, d, model, clip=False)["vmaf"], (dist,), VMAF_ATOL, True)


@pytest.mark.usefixtures("one_thread")
def test_gradcheck_vmaf_wrt_both_inputs() -> None:
    """Three frames so motion and motion2 depend on several reference frames."""
    model = VmafModel.load("vmaf_v0.6.1")
    ref, dist = _random_pair(5, (3, 40, 36))
    ref.requires_grad_(True)
    _gradcheck(lambda r, d: vmaf(r, d, model, clip=False)["vmaf"], (ref, dist), VMAF_ATOL, True)


@pytest.mark.usefixtures("one_thread")
def test_gradcheck_vif_scales() -> None:
    ref, dist = _random_pair(2, (2, 40, 36))
    _gradcheck(
        lambda d: tuple(vif_scales(ref, d)[k] for k in VIF_NAMES), (dist,), FEATURE_ATOL, True
    )


@pytest.mark.usefixtures("one_thread")
def test_gradcheck_adm_scales() -> None:
    ref, dist = _random_pair(3, (2, 40, 36))
    _gradcheck(
        lambda d: tuple(adm_scales(ref, d)[k] for k in ADM_NAMES), (dist,), FEATURE_ATOL, True
    )


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_gradcheck_vmaf_full_jacobian() -> None:
    """Every Jacobian entry (not a random projection) on the smallest valid frame.

    18x18 is the smallest size where VIF scale 3 (3 taps after three decimations: 18 -> 9 ->
    4 -> 2 pixels) and four ADM DWT levels still exist.
    """
    model = VmafModel.load("vmaf_v0.6.1")
    ref, dist = _random_pair(0, (1, 18, 18))
    _gradcheck(lambda d: vmaf(ref, d, model, clip=False)["vmaf"], (dist,), VMAF_ATOL, False)


def test_gradient_of_vif_is_not_zero() -> None:
    """Direct guard for the failure the tolerances above are sized to catch."""
    ref, dist = _random_pair(4, (1, 48, 48))
    total = sum(vif_scales(ref, dist)[k].sum() for k in VIF_NAMES)
    (grad,) = torch.autograd.grad(total, dist)
    assert torch.count_nonzero(grad) > 0.9 * grad.numel()
    # Finite-difference check of one pixel in the interior.
    h = 1e-5
    with torch.no_grad():
        bump = torch.zeros_like(dist)
        bump[0, 20, 21] = h
        up = sum(vif_scales(ref, dist + bump)[k].sum() for k in VIF_NAMES)
        down = sum(vif_scales(ref, dist - bump)[k].sum() for k in VIF_NAMES)
    numeric = float((up - down) / (2 * h))
    assert float(grad[0, 20, 21]) == pytest.approx(numeric, rel=1e-4, abs=1e-9)


def test_log2_approx_value_and_gradient() -> None:
    """libvmaf's polynomial log2: close to log2, and its autograd gradient is its derivative.

    The polynomial sums to 0.99999976 at the top of each octave, so the function jumps by
    2.4e-7 at every power of two: a (tiny) discontinuity that gradcheck inputs must not straddle.
    """
    x = torch.logspace(-3, 7, 301, dtype=torch.float64)
    x = x[(x / torch.exp2(torch.round(torch.log2(x))) - 1).abs() > 1e-4]  # off the octave edges
    x.requires_grad_(True)
    y = log2_approx(x)
    assert (y - torch.log2(x)).abs().max() < 1e-6
    (grad,) = torch.autograd.grad(y.sum(), x)
    with torch.no_grad():
        h = x * 1e-7
        numeric = (log2_approx(x + h) - log2_approx(x - h)) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad, 1 / (x.detach() * math.log(2)), rtol=1e-3, atol=0)
    below = log2_approx(torch.tensor([np.nextafter(8.0, 0.0)], dtype=torch.float64))
    assert 0 < 3.0 - float(below) < 3e-7
    # forward mode too: jvp/jacfwd gave 0 (dual tensors do not require grad, and took the
    # path without a tangent)
    plain = x.detach()
    _, tangent = torch.func.jvp(log2_approx, (plain,), (torch.ones_like(plain),))
    torch.testing.assert_close(tangent, grad, rtol=1e-12, atol=0)
    # and the value is the same with and without autograd
    with torch.no_grad():
        assert torch.equal(log2_approx(plain), y.detach())


# --------------------------------------------------------------------------------------------
# nn.Module
# --------------------------------------------------------------------------------------------


def test_module_matches_score_files(golden_case: Callable[[str], GoldenCase]) -> None:
    case = golden_case(SMALL_CASE)
    expected = _score(case, chunk=3)
    ref = torch.from_numpy(read_all(case.ref).y).to(torch.float32)
    dist = torch.from_numpy(read_all(case.dist).y).to(torch.float32).requires_grad_(True)
    module = VMAF("vmaf_v0.6.1", data_range=255.0, mode="float")
    scores = module(ref, dist)
    assert scores.shape == (case.golden["frames"],)
    np.testing.assert_allclose(scores.detach().numpy(), expected.metrics["vmaf"], rtol=0, atol=1e-6)
    # ... and therefore libvmaf's numbers.
    golden = np.asarray(case.per_frame("vmaf_float_v0.6.1"))
    np.testing.assert_allclose(scores.detach().numpy(), golden, rtol=0, atol=1e-3)

    scores.mean().backward()
    assert dist.grad is not None and dist.grad.shape == dist.shape
    assert torch.isfinite(dist.grad).all()
    assert dist.grad.abs().sum() > 0
    assert torch.count_nonzero(dist.grad[1:]) > 0.5 * dist.grad[1:].numel()


def test_module_input_conventions(golden_case: Callable[[str], GoldenCase]) -> None:
    """(N, 1, H, W) input and data_range=1.0 on normalised frames give the same numbers."""
    case = golden_case(SMALL_CASE)
    ref = torch.from_numpy(read_all(case.ref).y).to(torch.float64)
    dist = torch.from_numpy(read_all(case.dist).y).to(torch.float64)
    base = VMAF(data_range=255.0, mode="float")(ref, dist)
    nchw = VMAF(data_range=255.0, mode="float")(ref.unsqueeze(1), dist.unsqueeze(1))
    unit = VMAF(data_range=1.0, mode="float")(ref / 255.0, dist / 255.0)
    torch.testing.assert_close(nchw, base, rtol=0, atol=0)
    torch.testing.assert_close(unit, base, rtol=0, atol=1e-9)
    # float64 through the module is the float64 file scorer.
    expected = _score(case, chunk=4, dtype=torch.float64).metrics["vmaf"]
    np.testing.assert_allclose(base.numpy(), expected, rtol=0, atol=1e-6)
    # A different model really is used: neg discounts nothing here but is a different SVR.
    neg = VMAF("vmaf_v0.6.1neg", data_range=255.0, mode="float")(ref, dist)
    assert not torch.equal(neg, base)


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------

TAPS = {
    **{f"vif{k}": vif_gaussian_taps(k) for k in range(4)},
    "motion5": MOTION_FILTER_5,
}
SIZES = [(37, 53), (64, 64), (90, 131)]


def _random(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 255 - 128).to(dtype)


@pytest.mark.parametrize("taps_name", list(TAPS))
@pytest.mark.parametrize("method", ["banded", "conv"])
def test_filter_methods_agree(taps_name: str, method: str) -> None:
    taps = TAPS[taps_name]
    for h, w in SIZES:
        x32 = _random((2, h, w), torch.float32, seed=h)
        exact = separable_filter(x32, taps, method="exact")
        other = separable_filter(x32, taps, method=method, tile=16)
        assert other.shape == exact.shape == (2, h, w)
        rel = float((other - exact).abs().max() / exact.abs().max())
        assert rel <= 1e-4, f"{method} vs exact, {taps_name} {h}x{w}: relative {rel:.2e}"
        # In float64 the three are the same maths up to rounding.
        x64 = x32.to(torch.float64)
        torch.testing.assert_close(
            separable_filter(x64, taps, method=method),
            separable_filter(x64, taps, method="exact"),
            rtol=0,
            atol=1e-10,
        )
        # torch.autocast (a mixed-precision training loop) lowered conv2d/matmul to bfloat16:
        # VMAF moved by up to 9 points, unsaid
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lowered = separable_filter(x32, taps, method=method, tile=16)
        assert lowered.dtype == torch.float32 and torch.equal(lowered, other)


def test_filter_matches_direct_convolution() -> None:
    """Independent check of the border rule: mirror without repeating the edge sample."""
    taps = vif_gaussian_taps(1)  # 9 taps
    x = _random((1, 23, 19), torch.float64, seed=3)
    r = len(taps) // 2
    rows = [abs(i) if i < 0 else (2 * (23 - 1) - i if i >= 23 else i) for i in range(-r, 23 + r)]
    cols = [abs(i) if i < 0 else (2 * (19 - 1) - i if i >= 19 else i) for i in range(-r, 19 + r)]
    padded = x[0][rows][:, cols].numpy()
    k = np.outer(taps, taps)
    direct = np.array(
        [
            [np.sum(padded[i : i + 2 * r + 1, j : j + 2 * r + 1] * k) for j in range(19)]
            for i in range(23)
        ]
    )
    np.testing.assert_allclose(separable_filter(x, taps)[0].numpy(), direct, rtol=0, atol=1e-10)


@pytest.mark.parametrize("taps_name", list(TAPS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decimate_equals_filter_then_subsample(taps_name: str, dtype: torch.dtype) -> None:
    taps = TAPS[taps_name]
    for h, w in [*SIZES, (17, 18), (18, 17)]:
        x = _random((2, h, w), dtype, seed=w)
        for block_rows in (DEFAULT_BLOCK_ROWS, 4, 5):
            full = separable_filter(x, taps, method="exact", block_rows=block_rows)
            dec = separable_filter(x, taps, method="exact", block_rows=block_rows, decimate=True)
            want = full[:, : h // 2 * 2 : 2, : w // 2 * 2 : 2]
            assert dec.shape == (2, h // 2, w // 2)
            assert torch.equal(dec, want), f"{taps_name} {h}x{w} block_rows={block_rows}"
            # Blocking never changes a value either.
            assert torch.equal(full, separable_filter(x, taps, method="exact"))
        for method in ("banded", "conv"):
            dec = separable_filter(x, taps, method=method, decimate=True)
            full = separable_filter(x, taps, method=method)
            assert torch.equal(dec, full[:, : h // 2 * 2 : 2, : w // 2 * 2 : 2])


def test_api_forms_agree_on_10_bit_and_numpy_samples() -> None:
    """``VMAF(bit_depth=10, mode="float")`` reads 10-bit samples as libvmaf's float extractors
    do (/ 4, as VmafScorer), its data_range 1023 by default; ``vmaf_exact`` takes the numpy
    arrays the readers return."""
    import numpy as np

    from vmafdistill.teacher import VMAF, VmafScorer
    from vmafdistill.teacher.vmaf import vmaf_exact

    g = torch.Generator().manual_seed(0)
    r = torch.randint(0, 1024, (4, 64, 64), generator=g)
    d = (r + torch.randint(-40, 40, r.shape, generator=g)).clamp(0, 1023)
    scorer = VmafScorer(mode="float")
    scorer.update(r.numpy().astype(np.uint16), d.numpy().astype(np.uint16), ref_bit_depth=10)
    want = scorer.result().metrics["vmaf"]
    got = VMAF(data_range=1023, bit_depth=10, mode="float", clip=True)(r.float(), d.float())
    np.testing.assert_allclose(got.numpy(), want, atol=1e-9)
    # data_range follows bit_depth: 10-bit samples without it (read 4x too bright before)
    got = VMAF(bit_depth=10, mode="float", clip=True)(r.float(), d.float())
    np.testing.assert_allclose(got.numpy(), want, atol=1e-9)
    exact = VMAF(bit_depth=10, mode="exact")(r.float(), d.float())
    assert torch.equal(exact, vmaf_exact(r.to(torch.int32), d.to(torch.int32), 10)["vmaf"])
    a = vmaf_exact(r.numpy().astype(np.uint16), d.numpy().astype(np.uint16), 10)["vmaf"]
    b = vmaf_exact(r.to(torch.int32), d.to(torch.int32), 10)["vmaf"]
    assert torch.equal(a, b)
    # torch's own uint16 (torch.from_numpy of a uint16 array): VmafScorer raised torch's
    # "min_all not implemented for 'UInt16'" in both modes
    for mode in ("float", "exact"):
        numpy_scorer, torch_scorer = VmafScorer(mode=mode), VmafScorer(mode=mode)
        numpy_scorer.update(r.numpy().astype(np.uint16), d.numpy().astype(np.uint16),
                            ref_bit_depth=10)
        torch_scorer.update(r.to(torch.uint16), d.to(torch.uint16), ref_bit_depth=10)
        np.testing.assert_array_equal(torch_scorer.result().metrics["vmaf"],
                                      numpy_scorer.result().metrics["vmaf"])


def test_exact_module_honours_clip_false() -> None:
    from vmafdistill.teacher import VMAF

    g = torch.Generator().manual_seed(3)
    r = torch.randint(0, 256, (3, 40, 40), generator=g).float()
    d = r.clone()  # identical frames score above 100 before the clip
    assert float(VMAF(mode="exact", clip=False)(r, d).max()) > 100.0
    assert float(VMAF(mode="exact", clip=True)(r, d).max()) == 100.0


def test_scorer_input_checks() -> None:
    import numpy as np

    from vmafdistill.errors import VideoInputError
    from vmafdistill.teacher import VmafScorer

    frames = np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    for mode in ("exact", "float"):
        s = VmafScorer(mode=mode)
        s.update(frames[:0], frames[:0])  # an empty chunk adds nothing
        s.update(frames, frames)
        with pytest.raises(VideoInputError, match="frame size changed mid-stream"):
            s.update(frames[:, :40], frames[:, :40])
        # a chunk of another stream: float mode took it (exact mode refused it)
        with pytest.raises(VideoInputError, match=r"bit depth changed from 8/8 to 10/10"):
            s.update(frames.astype(np.uint16) * 4, frames.astype(np.uint16) * 4,
                     ref_bit_depth=10)
        assert s.result().num_frames == 2
        s.reset()  # another clip may have another depth
        s.update(frames.astype(np.uint16) * 4, frames.astype(np.uint16) * 4, ref_bit_depth=10)
        # colour frames (N, H, W, 3) read "frames of at least 33x33 ... got 3x48" (a hunt)
        rgb = np.repeat(frames[..., None], 3, axis=-1)
        with pytest.raises(ValueError, match=r"expected \(N, H, W\) luma frames"):
            VmafScorer(mode=mode).update(rgb, rgb)
    with pytest.raises(ValueError, match=r"float32 or torch\.float64"):
        VmafScorer(mode="float", dtype=torch.float16)


def _textured_pair(n: int = 3, h: int = 48, w: int = 64, seed: int = 0) -> tuple[torch.Tensor,
                                                                                  torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = (torch.rand(n, h, w, generator=g) * 255).round()
    dist = (ref + torch.randn(n, h, w, generator=g) * 6).clamp(0, 255).round()
    return ref, dist


def test_module_scores_half_precision_frames_in_float32() -> None:
    """float16/bfloat16 frames (mixed-precision training) give the float32 numbers and keep
    their gradient; computed in half precision VMAF moved by about 6."""
    ref, dist = _textured_pair()
    module = VMAF(mode="float")
    want = module(ref, dist)
    for dtype in (torch.float16, torch.bfloat16):
        d = dist.to(dtype).requires_grad_()
        got = module(ref.to(dtype), d)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        got.sum().backward()
        assert d.grad is not None and torch.isfinite(d.grad).all()


def test_module_refuses_masks_and_takes_numpy_frames() -> None:
    """Boolean frames (a mask) were scored as 0/1 samples in both modes (VMAF ~91) where the
    scorers refuse them; NumPy frames were an AttributeError where the scorers take them."""
    from vmafdistill.errors import VideoInputError

    ref, dist = _textured_pair()
    for mode in ("exact", "float"):
        module = VMAF(mode=mode)
        with pytest.raises(VideoInputError, match=r"dist frames are torch\.bool"):
            module(ref, dist > 0)
        with pytest.raises(VideoInputError, match=r"ref frames are torch\.complex"):
            module(ref.to(torch.complex64), dist)
        torch.testing.assert_close(module(ref.numpy(), dist.numpy()), module(ref, dist),
                                   rtol=0, atol=0)


def test_exact_module_refuses_normalised_frames_under_a_sample_range() -> None:
    """VMAF() (exact, data_range 255) took frames in [0, 1], rounded them to samples 0 and 1
    and scored ~91 for any pair, unsaid (the scorer refuses non-integer samples). Refused
    now; data_range=1.0 gives the 0..255 frames' numbers; black frames (all 0) still score."""
    from vmafdistill.errors import VideoInputError

    ref, dist = _textured_pair()
    with pytest.raises(VideoInputError, match=r"ref and dist frames hold fractions in "
                       r"\[0, 1\] but data_range=255 .* pass data_range=1\.0"):
        VMAF()(ref / 255, dist / 255)
    # one side in [0, 1] may be real samples of a near-black frame: scored, as rounded
    dark = dist / 255
    torch.testing.assert_close(VMAF()(ref, dark), VMAF()(ref, dark.round()), rtol=0, atol=0)
    torch.testing.assert_close(VMAF(data_range=1.0)(ref / 255, dist / 255), VMAF()(ref, dist),
                               rtol=0, atol=0)
    black = torch.zeros_like(ref)
    assert torch.isfinite(VMAF()(black, black)).all()
    VMAF(mode="float")(ref / 255, dist / 255)  # float mode checks no values (documented)
    # judged per frame pair: a batch of a sample-range pair and a [0, 1] pair passed
    mixed_ref, mixed_dist = torch.stack([ref[0], ref[1] / 255]), torch.stack([dist[0],
                                                                            dist[1] / 255])
    with pytest.raises(VideoInputError, match=r"ref and dist frames \(frame 1\) hold "):
        VMAF()(mixed_ref, mixed_dist)
    # other frame counts are still the scorer's one error naming the shapes (the per-frame
    # masks met first and raised a bare broadcast RuntimeError)
    with pytest.raises(ValueError, match="expected two equal"):
        VMAF()(ref, dist[:2])
    VMAF()(ref.to(torch.uint8), dist)  # whole samples on one side: no mask to combine


def test_exact_module_clips_like_libvmaf_by_default() -> None:
    """VMAF('vmaf_v0.6.1') is exact mode: its default must be vmaf_exact's (clipped) numbers
    (unclipped it read 120.6 where libvmaf prints 100); float mode stays unclipped."""
    from vmafdistill.teacher.vmaf import vmaf_exact

    ref, dist = _textured_pair(n=4, seed=1)
    dist = (ref + torch.randn(ref.shape, generator=torch.Generator().manual_seed(2)) * 3
            ).clamp(0, 255).round()
    exact = VMAF("vmaf_v0.6.1")
    got = exact(ref, dist)
    torch.testing.assert_close(got, vmaf_exact(ref, dist, 8)["vmaf"], rtol=0, atol=0)
    unclipped = VMAF("vmaf_v0.6.1", clip=False)(ref, dist)
    assert unclipped.max() > 100 and got.max() == 100  # the case does exercise the clip
    assert VMAF(mode="float").clip is False


@pytest.mark.parametrize("kernels", ["auto", "torch"])
def test_exact_mode_refuses_out_of_range_samples_on_every_path(
        kernels: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch path (the GPU path) checks the sample range as the compiled path does: it
    scored negative samples silently and indexed past a table above the range."""
    from vmafdistill.errors import VideoInputError
    from vmafdistill.teacher.vmaf import vmaf_exact

    monkeypatch.setenv("VMAFDISTILL_EXACT_KERNELS", kernels)
    ref, dist = _textured_pair(n=2, h=40, w=48)
    for bad in (ref - 128, ref * 4):
        with pytest.raises(ValueError, match=r"8-bit samples must lie in 0\.\.255"):
            vmaf_exact(bad, dist, 8)
    # the module no longer clamps silently; it names the values given and data_range
    with pytest.raises(VideoInputError, match=r"ref frames hold values .* outside data_range "
                                              r"0\.\.255"):
        VMAF("vmaf_v0.6.1")(ref * 1.2, dist)
    # 10-bit samples in uint16, declared 8-bit: the message, not torch's "min_all not
    # implemented for 'UInt16'" (numpy's uint16 and torch's alike)
    ten = (ref.numpy() * 4).astype(np.uint16)
    for frames in (ten, torch.from_numpy(ten)):
        with pytest.raises(VideoInputError, match=r"ref frames hold values \d+\.\.\d+, outside"):
            VMAF("vmaf_v0.6.1")(frames, dist.numpy().astype(np.uint16))
    # ... and the hint names bit_depth=10 (a hunt: it said "pass the frames' own data_range",
    # and data_range=1023 requantises them to 8 bits, not libvmaf's 10-bit number)
    with pytest.raises(VideoInputError, match=r"10-bit samples\? pass bit_depth=10 \(data_range="
                                              r"1023 would requantise them to 8 bits"):
        VMAF("vmaf_v0.6.1")(ten, dist.numpy().astype(np.uint16))
    # another data_range given (a review): that is the problem, no bit depth is offered
    with pytest.raises(VideoInputError, match=r"outside data_range 0\.\.1 .*; else pass") as got:
        VMAF("vmaf_v0.6.1", data_range=1.0, bit_depth=10)(ten, ten)
    assert "bit_depth=" not in str(got.value)
    # uint64 samples: the range message too, not torch's "aminmax_cpu" NotImplementedError
    big = torch.from_numpy(ten.astype(np.int64)).to(torch.uint64)
    with pytest.raises(VideoInputError, match=r"ref frames hold values \d+\.\.\d+, outside"):
        VMAF("vmaf_v0.6.1")(big, torch.from_numpy(dist.numpy().astype(np.int64)).to(torch.uint64))
    # the v1.0.16 scorer's range check too (a final review: aminmax_cpu for UInt64)
    from vmafdistill.teacher.v1016 import check_chunk

    y64 = torch.from_numpy((ref.numpy() * 4).astype(np.int64)).to(torch.uint64)
    with pytest.raises(VideoInputError, match=r"8-bit|outside|0\.\.255"):
        check_chunk("v", y64, y64, None, None, 8)


def test_teacher_argument_errors_are_one_line() -> None:
    from vmafdistill.errors import VideoInputError
    from vmafdistill.teacher import VmafScorer
    from vmafdistill.teacher.vmaf import vmaf_exact

    ref, dist = _textured_pair(n=2, h=40, w=48)
    empty = ref[:0]
    for call in (lambda: VMAF(mode="float")(empty, empty), lambda: vmaf_exact(empty, empty, 8)):
        with pytest.raises(ValueError, match="no frames to score"):
            call()
    with pytest.raises(ValueError, match="at least 33x33"):
        vmaf_exact(ref[:, :8, :8], dist[:, :8, :8], 8)
    with pytest.raises(ValueError, match="data_range must be a finite number above 0"):
        VMAF(data_range=0)
    model = VmafModel.load("vmaf_v0.6.1")
    torch.testing.assert_close(VMAF(model, mode="float")(ref, dist),
                               VMAF("vmaf_v0.6.1", mode="float")(ref, dist))
    scorer = VmafScorer(mode="float")
    with pytest.raises(ValueError, match=r"bit depth must be 8\.\.16, got 7"):
        scorer.update(ref.numpy(), dist.numpy(), ref_bit_depth=7)
    ten_bit = (ref.numpy() * 4).astype(np.uint16)
    for mode in ("float", "exact"):
        with pytest.raises(VideoInputError, match=r"values 0\.\.10\d\d, outside 8-bit"):
            VmafScorer(mode=mode).update(ten_bit, ten_bit)


def test_scorer_reset_scores_a_second_clip_afresh() -> None:
    """After reset() a scorer gives a fresh scorer's numbers (result() alone continues the
    clip: the second clip's first motion compared it with the first clip's last frame)."""
    from vmafdistill.teacher import VmafScorer

    a, b = _textured_pair(n=2, seed=3), _textured_pair(n=2, seed=4)
    for mode in ("float", "exact"):
        scorer = VmafScorer(mode=mode)
        scorer.update(a[0].numpy().astype(np.uint8), a[1].numpy().astype(np.uint8))
        scorer.result()
        scorer.reset()
        scorer.update(b[0].numpy().astype(np.uint8), b[1].numpy().astype(np.uint8))
        fresh = VmafScorer(mode=mode)
        fresh.update(b[0].numpy().astype(np.uint8), b[1].numpy().astype(np.uint8))
        for name, values in fresh.result().metrics.items():
            np.testing.assert_array_equal(scorer.result().metrics[name], values, err_msg=name)


def test_the_differentiable_module_keeps_16_pixel_sides() -> None:
    """Scorers refuse 16 px (libvmaf's float ADM is wrong there); the differentiable loss on
    16x16 crops is well defined and keeps working, with a gradient."""
    ref, dist = _textured_pair(n=2, h=16, w=16)
    d = dist.clone().requires_grad_()
    VMAF(mode="float")(ref, d).sum().backward()
    assert d.grad is not None and torch.isfinite(d.grad).all()


def test_vmaf_scores_integer_and_half_frames_as_float32_and_scorers_survive_refusals() -> None:
    """The functional ``vmaf()`` ran in the input's dtype: uint8 frames wrapped in VIF's
    squared moments (VMAF off by 1.98), float16/bfloat16 ran the whole pipeline in half
    precision (off by 20 and 35). A refused chunk left ``VmafScorer`` holding its size, so
    every later valid chunk was "frame size changed mid-stream". ``VMAF`` took
    ``data_range=inf`` (every frame flat: 97.43 against black) and ``bit_depth=10.5`` (as
    10). The v1.0.16 refusal named ``--model vmaf_v1.0``, which does not exist."""
    from vmafdistill.errors import ModelError, VideoInputError
    from vmafdistill.teacher import VMAF, VmafScorer, vmaf

    torch.manual_seed(0)
    ref = torch.nn.functional.avg_pool2d(torch.rand(2, 1, 48, 64) * 255, 3, 1, 1)[:, 0].round()
    dist = (ref + torch.randn_like(ref) * 5).round().clamp(0, 255)
    base = vmaf(ref, dist, clip=False)["vmaf"]
    for dtype in (torch.uint8, torch.int16, torch.float16, torch.bfloat16):
        # integers up to 255 are exact in every one of these dtypes: the same frames
        got = vmaf(ref.to(dtype), dist.to(dtype), clip=False)["vmaf"]
        assert got.dtype == base.dtype and torch.equal(got, base), dtype
    scorer = VmafScorer("vmaf_float_v0.6.1")
    with pytest.raises(VideoInputError, match="at least 17x17"):
        scorer.update(np.zeros((1, 16, 16), np.uint8), np.zeros((1, 16, 16), np.uint8))
    frames = ref.numpy().astype(np.uint8)
    scorer.update(frames, frames)
    assert scorer.result().num_frames == 2
    exact = VmafScorer("vmaf_v0.6.1")
    ten = frames.astype(np.float32) * 4.0
    with pytest.raises(VideoInputError, match=r"outside 8-bit samples \(0\.\.255\); pass "
                                              r"their bit depth"):
        exact.update(ten, ten)  # 10-bit values declared 8-bit: refused
    exact.update(ten, ten, ref_bit_depth=10)  # then accepted with the right depth
    assert exact.result().num_frames == 2
    for kwargs, msg in (({"data_range": float("inf")}, "finite number above 0"),
                        ({"bit_depth": 10.5}, "integer 8..16")):
        with pytest.raises(ValueError, match=msg):
            VMAF("vmaf_float_v0.6.1", **kwargs)
    with pytest.raises(ModelError, match=r"--model vmaf_v1\.0\.16_3d0h`"):
        VMAF("vmaf_v1.0.16_3d0h", mode="float")
    # dist_bit_depth=0 was read as "not given" (the reference's 10); a mask (bool frames)
    # was scored as 0/1 samples, VMAF 96
    with pytest.raises(ValueError, match=r"distorted bit depth must be 8\.\.16, got 0"):
        VmafScorer("vmaf_v0.6.1").update(ten, ten, ref_bit_depth=10, dist_bit_depth=0)
    from vmafdistill.teacher import vmaf_exact

    for mask in (frames > 128, torch.from_numpy(frames > 128)):
        with pytest.raises(VideoInputError, match="booleans"):
            vmaf_exact(mask, mask, 8)
        with pytest.raises(VideoInputError, match="booleans"):
            VmafScorer("vmaf_v0.6.1").update(mask, mask)


def test_a_scorer_s_json_log_is_strict_json_and_lists_of_frames_are_refused() -> None:
    """A VmafScorer result knows no frame rate: its libvmaf-layout log wrote ``"fps": NaN``,
    which strict JSON parsers refuse (libvmaf's own log never holds NaN); a list of frames
    was an AttributeError on ``.dtype`` in vmaf_exact and VmafScorer.update."""
    import json

    from vmafdistill.errors import VideoInputError
    from vmafdistill.teacher import VmafScorer
    from vmafdistill.teacher.score import to_libvmaf_json
    from vmafdistill.teacher.vmaf import vmaf_exact

    frames = np.random.default_rng(3).integers(0, 256, (2, 48, 64), dtype=np.uint8)
    scorer = VmafScorer()
    scorer.update(frames, frames)
    doc = to_libvmaf_json(scorer.result())
    assert doc["fps"] is None
    json.dumps(doc, allow_nan=False)  # raises on any NaN or infinity left in the log
    for call in (lambda: vmaf_exact(list(frames), list(frames), 8),
                 lambda: VmafScorer().update(list(frames), frames)):
        with pytest.raises(VideoInputError, match=r"reference frames: needs a numpy array.*"
                                                   r"got list"):
            call()


def test_the_file_scorer_trims_the_heap_as_it_goes(motion_case: GoldenCase, monkeypatch) -> None:
    """Scoring a long clip chunk by chunk fragmented the heap: a labelling process grew ~28 KB
    per 640x360 frame with no end (+75 MB over 4,000 frames; flat with a trim every 16
    chunks, measured). The scorer now trims every TRIM_EVERY_CHUNKS chunks."""
    from vmafdistill.teacher import score as score_module
    from vmafdistill.teacher.exact.features import _malloc_trim

    calls: list[int] = []
    monkeypatch.setattr(score_module, "TRIM_EVERY_CHUNKS", 3)
    monkeypatch.setattr(score_module, "trim_heap", lambda: calls.append(1))
    result = _score(motion_case, chunk=1, mode="exact")
    assert len(calls) == len(result.metrics["vmaf"]) // 3 > 0
    if sys.platform.startswith("linux"):  # glibc, where CI runs: the trim is real
        assert _malloc_trim() is not None


def test_the_teacher_api_names_what_is_wrong_with_its_input() -> None:
    """Found by a hunt of the Python API: each was torch's raw error, a score of the wrong
    numbers, or an error quoting values the caller never passed."""
    import json
    import tempfile
    from pathlib import Path

    from vmafdistill.errors import ModelError, VideoInputError, VmafDistillError
    from vmafdistill.teacher import VmafScorer
    from vmafdistill.teacher.model import resolve_model_path

    ref, dist = _textured_pair(n=3, h=40, w=48)
    r8, d8 = ref.numpy().astype(np.uint8), dist.numpy().astype(np.uint8)
    # a device torch cannot parse: the scorer's one-line error (torch's RuntimeError before)
    with pytest.raises(VmafDistillError, match=r"--device 'gpu'"):
        VmafScorer(device="gpu")
    # a filter method nobody has: refused when made, not at the first update
    with pytest.raises(ValueError, match=r"unknown filter method 'foo'"):
        VmafScorer(mode="float", filter_method="foo")
    # NumPy views with negative strides (np.flip): torch's error in VMAF(); vmaf_exact took them
    flipped = VMAF()(np.flip(r8, -1), np.flip(d8, -1))
    torch.testing.assert_close(flipped, VMAF()(torch.from_numpy(r8.copy()).flip(-1),
                                               torch.from_numpy(d8.copy()).flip(-1)))
    # float frames to the float scorer: [0, 1] frames scored 97.4 where the samples give
    # 92.7, and 10-bit values declared 8-bit 81.2 where 100 was due; both now refused
    truth = VmafScorer(mode="float")
    truth.update(r8, d8)
    for frames, msg in (((r8 / np.float32(255), d8 / np.float32(255)), r"fractions in \[0, 1\]"),
                        ((r8 * np.float32(4), d8 * np.float32(4)), r"outside 8-bit samples"),
                        ((r8 * np.float32(np.nan), d8 * np.float32(1)), r"NaN or infinite")):
        with pytest.raises(VideoInputError, match=msg):
            VmafScorer(mode="float").update(*frames)
    # a float resize's overshoot (-32..276 for 8-bit frames) is scored in float mode, with a
    # warning (a review: refused, with a bit-depth hint); exact mode reads samples: refused
    over = np.clip(d8.astype(np.float32) * 1.2 - 20, -32, 276)
    import warnings

    chunked = VmafScorer(mode="float")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own filter: once per text and place
        for _ in range(3):  # once per clip, not per chunk (each chunk's range differed)
            chunked.update(r8.astype(np.float32), over * (1 + 0.01 * _))
    said = [c for c in caught if "scored as given" in str(c.message)]
    assert len(said) == 1 and said[0].filename == __file__, said
    with pytest.raises(VideoInputError, match=r"or clip them to 0\.\.255"):
        VmafScorer(mode="exact").update(r8.astype(np.float32), over)
    as_float = VmafScorer(mode="float")  # whole samples as float32 are still samples
    as_float.update(r8.astype(np.float32), d8.astype(np.float32))
    np.testing.assert_array_equal(as_float.result().metrics["vmaf"],
                                  truth.result().metrics["vmaf"])
    # data_range=1 on 0..255 frames: the values given and data_range, not 10200..50745
    with pytest.raises(VideoInputError, match=r"ref frames hold values 40\.\.\d+, outside "
                                              r"data_range 0\.\.1 "):
        VMAF(data_range=1.0)(torch.from_numpy(r8).clamp_min(40), torch.from_numpy(d8))
    # one frame, or colour frames: not "expected two equal shapes, got X and X"
    for frames in (ref[0], ref[:, None].repeat(1, 3, 1, 1)):
        with pytest.raises(ValueError, match=r"expected \(N, H, W\) luma frames, got shape"):
            VMAF()(frames, frames)
    # a gain limit libvmaf refuses: float mode scored it (19.9 for 0.5), exact mode refused
    spec = json.loads(Path(resolve_model_path("vmaf_v0.6.1neg")).read_text())
    for limit in (0.5, 150):
        opts = spec["model_dict"]["feature_opts_dicts"]
        for o in opts:
            for key in list(o):
                o[key] = limit
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "limit.json"
            path.write_text(json.dumps(spec))
            with pytest.raises(ModelError, match=rf"enhn_gain_limit={limit!r} is outside "
                                                 r"1\.\.100"):
                VmafModel.load(path)


def test_a_model_json_s_features_not_its_file_name_choose_the_mode(tmp_path) -> None:
    """libvmaf runs a JSON file's own features: a copy of the integer v0.6.1 model saved as
    ``vmaf_float_mine.json`` was scored in float mode (0.03 VMAF off libvmaf, unsaid), and a
    model mixing integer and float features in one mode. The ``vmaf_float_*`` model *names*
    still select the float extractors."""
    from vmafdistill.errors import ModelError
    from vmafdistill.teacher.model import resolve_model_path

    stock = resolve_model_path("vmaf_v0.6.1")
    renamed = tmp_path / "vmaf_float_mine.json"
    renamed.write_text(stock.read_text())
    assert VmafModel.load(renamed).integer_features
    assert VmafModel.load(stock).integer_features
    assert not VmafModel.load("vmaf_float_v0.6.1").integer_features
    mixed = tmp_path / "mixed.json"
    mixed.write_text(stock.read_text().replace("VMAF_integer_feature_adm2_score",
                                               "VMAF_feature_adm2_score"))
    with pytest.raises(ModelError, match=r"mixed\.json: mixes libvmaf's integer features"):
        VmafModel.load(mixed)
    floats = tmp_path / "floats.json"
    floats.write_text(stock.read_text().replace("VMAF_integer_feature_", "VMAF_feature_"))
    assert not VmafModel.load(floats).integer_features
