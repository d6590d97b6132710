"""Exact mode's compiled CPU kernels (cpu_kernels.py, cpu_adm.py) equal its torch path.

Both paths reproduce libvmaf's integer VIF, ADM and motion (tests/test_exact_parity.py holds the
default, compiled, path to libvmaf's printing); here the kernels' float64 outputs must equal the
torch path's exactly (``torch.equal``, no tolerance), on sizes and bit depths that exercise the
mirrored borders, odd decimations and libvmaf's 16-bit arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vmafdistill.errors import VmafDistillError
from vmafdistill.teacher.exact import backend
from vmafdistill.teacher.exact.cpu_adm import integer_adm_compiled
from vmafdistill.teacher.exact.cpu_kernels import integer_vif_compiled, motion_sad_compiled
from vmafdistill.teacher.exact.integer_adm import IntegerAdmOptions, integer_adm
from vmafdistill.teacher.exact.integer_vif import IntegerVifOptions, integer_vif
from vmafdistill.teacher.motion3 import motion_sad_integer


def _pair(w: int, h: int, n: int, bits: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Textured reference, blurred noisy distorted copy (integer samples, full range)."""
    rng = np.random.default_rng(seed)
    top = (1 << bits) - 1
    yy, xx = np.mgrid[0:h, 0:w]
    ref = np.stack([0.5 + 0.3 * np.sin(xx / 5.0 + t) * np.cos(yy / 7.0) for t in range(n)])
    ref = np.clip(ref * top + rng.normal(0, 0.05 * top, ref.shape), 0, top)
    dis = 0.5 * ref + 0.25 * (np.roll(ref, 1, -1) + np.roll(ref, -1, -1))
    dis = np.clip(dis + rng.normal(0, 0.04 * top, ref.shape), 0, top)
    # Some saturated and flat patches: sigma values of 0 and the non-log branch.
    ref[:, : h // 4, : w // 4] = top
    dis[:, : h // 4, : w // 4] = 0
    return torch.from_numpy(np.round(ref)), torch.from_numpy(np.round(dis))


@pytest.mark.parametrize(
    ("w", "h", "bits", "gain", "skip0"),
    [
        (37, 33, 8, 100.0, False),  # smallest sizes: every border at every scale
        (161, 91, 10, 100.0, False),
        (200, 64, 12, 1.0, False),  # NEG gain limit
        (97, 55, 16, 100.0, False),  # 16-bit: libvmaf's uint32 sums at their limits
        (130, 77, 8, 1.0, True),  # vif_skip_scale0
    ],
)
def test_vif_kernels_equal_torch(w: int, h: int, bits: int, gain: float, skip0: bool) -> None:
    ref, dis = _pair(w, h, 3, bits, seed=w)
    opts = IntegerVifOptions(enhn_gain_limit=gain, skip_scale0=skip0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(backend.ENV_VAR, "torch")
        want = integer_vif(ref, dis, bits, opts)
    got = integer_vif_compiled(ref.to(torch.int32), dis.to(torch.int32), bits, opts)
    assert want.keys() == got.keys()
    for name, value in want.items():
        assert torch.equal(value, got[name]), (name, value, got[name])
    assert float(got["integer_vif_scale1"].min()) > 0  # a real score, not an empty default


@pytest.mark.parametrize(("w", "h", "bits"), [(37, 33, 8), (161, 91, 10), (97, 55, 16)])
def test_motion_kernel_equals_torch(w: int, h: int, bits: int) -> None:
    ref, _ = _pair(w, h, 4, bits, seed=h)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(backend.ENV_VAR, "torch")
        want = motion_sad_integer(ref[:-1], ref[1:], bits)
    got = motion_sad_compiled(ref[:-1], ref[1:], bits)
    assert torch.equal(want, got) and int(got.min()) > 0


@pytest.mark.parametrize(
    ("w", "h", "bits", "opts"),
    [
        (65, 49, 8, {}),  # 8-bit, ceil(w/2) - 1 = 32: AVX-512's DWT tail column
        (161, 91, 10, {}),  # 10-bit, = 80: AVX2's high-bit-depth tail column
        (200, 37, 12, {"enhn_gain_limit": 1.0}),  # NEG
        (97, 55, 10, {"enhn_gain_limit": 1.2}),  # fractional gain: vector blocks round
        (129, 73, 16, {"csf_mode": 2, "skip_scale0": True}),  # v1.0.16 options
        (96, 64, 8, {"norm_view_dist": 4.0, "noise_weight": 0.1, "skip_aim": True}),
    ],
)
def test_adm_kernels_equal_torch(w: int, h: int, bits: int, opts: dict[str, object]) -> None:
    ref, dis = _pair(w, h, 2, bits, seed=w + h)
    if "enhn_gain_limit" in opts:  # raised contrast: the gain limit decides many coefficients
        top = (1 << bits) - 1
        dis = (ref.mean() + 1.5 * (ref - ref.mean())).round().clamp(0, top)
    options = IntegerAdmOptions(**opts)  # type: ignore[arg-type]
    for simd in ("c", "avx2", "avx512"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(backend.ENV_VAR, "torch")
            want = integer_adm(ref, dis, bits, options, simd=simd)
        got = integer_adm_compiled(ref, dis, bits, options, simd)
        assert want.keys() == got.keys()
        for name, value in want.items():
            assert torch.equal(value, got[name]), (simd, name, value, got[name])
        assert float(got["integer_adm2"].min()) > 0.5  # a real score (above 1: enhancement)


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.zeros(1, 40, 40)
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    assert backend.use_compiled_kernels(x)  # numba is a teacher dependency
    monkeypatch.setenv(backend.ENV_VAR, "torch")
    assert not backend.use_compiled_kernels(x)
    monkeypatch.setenv(backend.ENV_VAR, "fast")
    with pytest.raises(VmafDistillError, match="VMAFDISTILL_EXACT_KERNELS='fast'"):
        backend.use_compiled_kernels(x)


def test_int64_to_float32_rounds_once() -> None:
    """The decoupling's float32 casts of int64 products above 2^53, where going through
    float64 would round twice: against numpy's int64 -> float32 cast (the C cast)."""
    import importlib

    cpu_adm = importlib.import_module("vmafdistill.teacher.exact.cpu_adm")
    rng = np.random.default_rng(0)
    values = []
    for shift in range(54, 62):  # float32 keeps 24 bits: ties sit at 2^(shift - 24) steps
        base = rng.integers(1 << 23, 1 << 24, 200, dtype=np.int64) << (shift - 23)
        half = np.int64(1) << (shift - 24)
        for delta in (half, half + 1, half - 1, -half, 3 * half):  # ties and their neighbours
            values.extend((base + delta).tolist())
    values += [-v for v in values[:500]] + [(1 << 53) + 1, -(1 << 53) - 3]
    want = np.asarray(values, dtype=np.int64).astype(np.float32)
    got = np.array([cpu_adm._to_f32(v) for v in values], dtype=np.float32)
    naive = np.asarray(values, dtype=np.int64).astype(np.float64).astype(np.float32)
    assert np.array_equal(got, want)
    assert not np.array_equal(naive, want)  # the case exists: double rounding would differ


def test_bad_input_is_refused_as_on_the_torch_path() -> None:
    """The kernels read without bounds checks: sizes the torch path refuses raise here too,
    and samples outside the bit depth (which libvmaf's unsigned types would wrap) raise."""
    small = torch.zeros(2, 8, 40)
    with pytest.raises(ValueError, match="17-tap filter needs more than 8 samples"):
        integer_vif(small, small, 8)
    with pytest.raises(ValueError, match="5-tap filter needs more than 2 samples"):
        motion_sad_integer(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), 8)
    ref, dis = _pair(40, 40, 1, 8, seed=1)
    negative = ref.clone()
    negative[0, 5, 5] = -1
    with pytest.raises(ValueError, match=r"8-bit samples must lie in 0\.\.255"):
        integer_vif(negative, dis, 8)
    with pytest.raises(ValueError, match=r"10-bit samples must lie in 0\.\.1023"):
        integer_adm(ref * 5, dis, 10)


def test_empty_batches_and_float_dtypes() -> None:
    ref, dis = _pair(48, 40, 2, 8, seed=2)
    empty = integer_adm(ref[:0], dis[:0], 8)
    assert empty["integer_adm2"].shape == (0,)
    assert integer_vif(ref[:0], dis[:0], 8)["integer_vif_scale0"].shape == (0,)
    # bfloat16 holds 8-bit samples exactly; numpy has no such dtype.
    want = integer_vif(ref, dis, 8)
    got = integer_vif(ref.to(torch.bfloat16), dis.to(torch.bfloat16), 8)
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert backend._numba_error() is None


def test_angle_test_on_borderline_coefficients() -> None:
    """The one-degree test of the decoupling at scales 1-3, on coefficient pairs within ~1e-6
    rad of one degree, where libvmaf's float32 casts decide: the kernel against the torch
    path's formula. (An earlier kernel squared the casts in float32, not double: it passed the
    textured test clips and moved real 720p encodes by up to 6.6e-3 VMAF on single frames.)"""
    import importlib
    import math

    cpu_adm = importlib.import_module("vmafdistill.teacher.exact.cpu_adm")
    adm = importlib.import_module("vmafdistill.teacher.exact.integer_adm")
    rng = np.random.default_rng(3)
    n = 20000
    mag = rng.uniform(2**20, 2**27, n)
    phi = rng.uniform(0, 2 * math.pi, n)
    delta = math.radians(1.0) + rng.uniform(-2e-6, 2e-6, n)  # right at the boundary
    gain = rng.uniform(0.5, 2.0, n)
    oh, ov = np.round(mag * np.cos(phi)), np.round(mag * np.sin(phi))
    th, tv = np.round(gain * mag * np.cos(phi + delta)), np.round(gain * mag * np.sin(phi + delta))
    bands = [b.astype(np.int64).reshape(100, 200) for b in (oh, ov, th, tv)]
    got = np.empty(bands[0].shape, np.bool_)
    cpu_adm._angle_flags(*bands, cpu_adm._COS_1DEG_SQ, False, got)
    o_h, o_v, t_h, t_v = (torch.from_numpy(b) for b in bands)
    dp = adm._i64_to_f32(o_h * t_h + o_v * t_v).to(torch.float64)
    om = adm._i64_to_f32(o_h * o_h + o_v * o_v).to(torch.float64)
    tm = adm._i64_to_f32(t_h * t_h + t_v * t_v).to(torch.float64)
    want = ((dp >= 0) & (dp * dp >= (om * cpu_adm._COS_1DEG_SQ) * tm)).numpy()
    assert np.array_equal(got, want), int((got != want).sum())
    # The set is borderline: the casts' float32 rounding decides some of the flags.
    dp64, om64, tm64 = ((a.astype(np.float64)) for a in (
        bands[0] * bands[2] + bands[1] * bands[3], bands[0] ** 2 + bands[1] ** 2,
        bands[2] ** 2 + bands[3] ** 2))
    in_double = (dp64 >= 0) & (dp64 * dp64 >= (om64 * cpu_adm._COS_1DEG_SQ) * tm64)
    assert (in_double != want).sum() > 10


def test_reciprocal_by_division_equals_libvmafs_table() -> None:
    """The decoupling reads libvmaf's ``div_lookup`` (2^30 // m) as a float64 division: equal
    for every index the table has."""
    import importlib

    from numba import njit

    cpu_adm = importlib.import_module("vmafdistill.teacher.exact.cpu_adm")
    adm = importlib.import_module("vmafdistill.teacher.exact.integer_adm")
    recip = cpu_adm._recip

    @njit
    def every(n: int) -> np.ndarray:
        out = np.empty(n, np.int64)
        for m in range(n):
            out[m] = recip(m)
        return out

    table = adm._recip_table_cpu().numpy()
    assert np.array_equal(every(len(table)), table)


def test_adm_buffers_follow_frame_size_and_thread() -> None:
    """The compiled ADM's per-thread buffers: sizes alternating on one thread and two threads
    at once give the torch path's features."""
    from concurrent.futures import ThreadPoolExecutor

    opts = IntegerAdmOptions()
    import importlib

    cpu_adm = importlib.import_module("vmafdistill.teacher.exact.cpu_adm")
    sizes = ((96, 64), (96, 64), (65, 49), (96, 64), (130, 77))  # same size twice: reuse
    pairs = [_pair(w, h, 1, 8, seed=k) for k, (w, h) in enumerate(sizes)]
    first = cpu_adm._workspace(64, 96)
    assert cpu_adm._workspace(64, 96) is first  # same size, same thread: the same buffers
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(backend.ENV_VAR, "torch")
        want = [integer_adm(r, d, 8, opts, simd="avx2") for r, d in pairs]
    simd = "avx2"
    alone = [integer_adm_compiled(r, d, 8, opts, simd) for r, d in pairs]
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda p: integer_adm_compiled(*p, 8, opts, simd), pairs * 2))
    n = len(pairs)
    for got in (alone, both[:n], both[n:]):
        for w_feats, g_feats in zip(want, got, strict=True):
            for name, value in w_feats.items():
                assert torch.equal(value, g_feats[name]), name


def test_motion_scores_in_chunks_equal_torch() -> None:
    """Chunked motion with history (frames read in place by the compiled path) equals the
    torch path on the whole clip, for the one- and two-frame lags."""
    from vmafdistill.teacher.motion3 import Motion3Options, motion_sad_scores

    ref, _ = _pair(61, 37, 7, 10, seed=5)
    for opts in (Motion3Options(), Motion3Options(five_frame_window=True)):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(backend.ENV_VAR, "torch")
            want, _ = motion_sad_scores(ref, 10, opts)
        parts, history, start = [], None, 0
        for lo, hi in ((0, 1), (1, 4), (4, 5), (5, 7)):
            scores, history = motion_sad_scores(ref[lo:hi], 10, opts, history=history,
                                                start=start)
            parts.append(scores)
            start = hi
        got = torch.cat(parts)
        assert torch.equal(want, got), (want, got)
        assert int((got > 0).sum()) == 7 - opts.lag


def test_decoded_dtypes_and_range_checks() -> None:
    """uint8/uint16 frames (as decoders give them) go through without a copy or a check where
    the dtype cannot exceed the bit depth, and are checked where it can."""
    from vmafdistill.teacher.exact.cpu_kernels import _frames

    ref, dis = _pair(64, 48, 2, 8, seed=1)
    want = integer_vif_compiled(ref, dis, 8, IntegerVifOptions())
    got = integer_vif_compiled(ref.to(torch.uint8), dis.to(torch.uint8), 8, IntegerVifOptions())
    for name, value in want.items():
        assert torch.equal(value, got[name]), name
    ten_bit = torch.from_numpy(np.full((1, 40, 40), 1023, np.uint16))
    assert _frames(ten_bit, 10).dtype == np.uint16
    with pytest.raises(ValueError, match=r"0\.\.1023"):  # 1024 does not fit 10 bits
        _frames(torch.from_numpy(np.full((1, 40, 40), 1024, np.uint16)), 10)
    with pytest.raises(ValueError, match=r"0\.\.127"):
        _frames(torch.full((1, 40, 40), 200, dtype=torch.uint8), 7)


def test_motion_history_of_another_size_is_refused() -> None:
    from vmafdistill.teacher.motion3 import Motion3Options, motion_sad_scores

    big, _ = _pair(46, 40, 2, 8, seed=2)
    small = big[:, :20, :24].contiguous()
    with pytest.raises(ValueError, match="history frames"):
        motion_sad_scores(small, 8, Motion3Options(), history=big[:1], start=1)
    with pytest.raises(ValueError, match="frame shapes differ"):
        motion_sad_compiled(big[:1], small[:1], 8)


def test_scorers_release_the_kernel_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from vmafdistill.teacher.vmaf import VmafScorer

    monkeypatch.setenv(backend.ENV_VAR, "compiled")

    cpu_adm = importlib.import_module("vmafdistill.teacher.exact.cpu_adm")
    ref, dis = _pair(64, 48, 3, 8, seed=4)
    scorer = VmafScorer("vmaf_v0.6.1", mode="exact")
    scorer.update(ref.to(torch.uint8), dis.to(torch.uint8), ref_bit_depth=8, dist_bit_depth=8)
    assert cpu_adm._WORKSPACES  # the frames ran in buffers kept across calls
    scorer.result()
    assert not cpu_adm._WORKSPACES


def test_predict_clip_equals_the_model_on_any_length() -> None:
    """The scorers' SVR (one intra-op thread, chunks of frames) equals ``predict``, also across
    chunk borders, and leaves torch's thread count as it was."""
    from vmafdistill.teacher import model as model_module
    from vmafdistill.teacher.model import VmafModel, predict_clip

    model = VmafModel.load("vmaf_v0.6.1")
    rng = np.random.default_rng(6)
    feats = {n: torch.from_numpy(rng.uniform(0, 1, 1000) * (30 if "motion" in n else 1))
             for n in model.feature_names}
    want = model.predict(feats).numpy()
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_module, "PREDICT_CHUNK", 300)  # 4 calls, the last one short
        got = predict_clip(model, feats)
    assert np.array_equal(want, got)
    assert torch.get_num_threads() == threads
    assert predict_clip(model, {n: v[:0] for n, v in feats.items()}).shape == (0,)


def test_branch_free_decoupling_equals_the_scalar_one() -> None:
    """The vectorised decoupling for integer gains (bit counting instead of ``frexp``) equals
    the scalar per-coefficient code at scale 0 and on magnitudes up to int32's, zeros and the
    angle mask."""
    import importlib

    from numba import njit

    cpu_adm = importlib.import_module("vmafdistill.teacher.exact.cpu_adm")
    excess = cpu_adm._excess_bits

    @njit
    def excess_all(a: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = excess(a[i])
        return out

    mags = np.concatenate([np.arange(0, 70000), 2 ** np.arange(0, 63), 2 ** np.arange(1, 63) - 1])
    want = np.array([max(int(m).bit_length() - 15, 0) for m in mags])
    assert np.array_equal(excess_all(mags.astype(np.int64)), want)

    rng = np.random.default_rng(8)
    for top in (2**14, 2**20, 2**31 - 1):
        o = rng.integers(-top, top, (60, 90)).astype(np.int64)
        o[::7, ::5] = 0
        t = (o * rng.uniform(-0.5, 2.5, o.shape)).astype(np.int64) + rng.integers(-50, 50, o.shape)
        angle = rng.random(o.shape) < 0.6
        for gain in (100, 1):
            for scale0 in (False, True) if top <= 2**15 else (False,):  # scale 0: |o| <= 2^15
                want_r, want_a, got_r, got_a = (np.empty_like(o) for _ in range(4))
                cpu_adm._decouple_band(o, t, angle, scale0, float(gain), 0, want_r, want_a)
                cpu_adm._decouple_band_int_gain(o, t, angle, gain, scale0, got_r, got_a)
                assert np.array_equal(want_r, got_r), (top, gain, scale0)
                assert np.array_equal(want_a, got_a), (top, gain, scale0)
