"""The shipped cross-content default: feature set ``rate7`` + ``conf/student/rate.yaml``."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vmafdistill.config import conf_dir
from vmafdistill.edge.card import EDGE_FEATURES
from vmafdistill.features.registry import feature_set, metadata_features
from vmafdistill.students.models import make_scaled_student

ort = pytest.importorskip("onnxruntime")

NAMES = feature_set("rate7")


def _rate_cfg() -> dict:
    return OmegaConf.to_container(OmegaConf.load(conf_dir() / "student" / "rate.yaml"))


def _rows(n: int, seed: int = 0) -> np.ndarray:
    """Plausible raw rate7 rows: consistent log_bpp / log_bitrate, one codec flag each."""
    rng = np.random.default_rng(seed)
    rows = []
    codecs = ["h264", "h265", "av1", "vp9"]
    for _ in range(n):
        h = int(rng.choice([36, 68, 144, 180, 270, 360, 720]))
        w = round(h * 16 / 9)
        ref_h = h * int(rng.choice([1, 2, 4]))
        md = metadata_features(float(np.exp(rng.uniform(2, 9))), ref_h, h,
                               codecs[rng.integers(4)], delivery_width=w, fps=25.0)
        rows.append([md[c] for c in NAMES])
    return np.asarray(rows, dtype=np.float32)


def test_rate7_is_edge_computable_and_spans_the_pixel_rate() -> None:
    assert NAMES == ["log_bpp", "log_bitrate", "scale_ratio",
                     "codec_h264", "codec_h265", "codec_av1", "codec_vp9"]
    assert set(NAMES) <= EDGE_FEATURES
    # log_bitrate - log_bpp is ln(delivered pixels per second / 1000), in closed form
    md = metadata_features(812.5, 720, 270, "hevc", delivery_width=480, fps=25.0)
    assert md["log_bitrate"] - md["log_bpp"] == pytest.approx(math.log(480 * 270 * 25 / 1000))
    assert md["scale_ratio"] == pytest.approx(720 / 270)


def _model(seed: int = 0) -> torch.nn.Module:
    x = _rows(64, seed)
    torch.manual_seed(seed)
    model = make_scaled_student(_rate_cfg(), x, NAMES, y_train=np.full(64, 60.0)).eval()
    # random (but sign-constrained) weights, as after training
    lin = model.student.linear
    with torch.no_grad():
        lin.weight.copy_(torch.randn_like(lin.weight))
        lin.bias.fill_(0.3)
    return model


def test_rate_student_matches_numpy_logistic_and_onnx() -> None:
    model = _model()
    x = _rows(50, seed=1)
    # numpy reference: ln(1 + scale_ratio), standardise, logit-linear, bounded head (margin 2)
    xt = x.astype(np.float64).copy()
    j = NAMES.index("scale_ratio")
    xt[:, j] = np.log1p(xt[:, j])
    z = (xt - model.mean.numpy()) / model.std.numpy()
    w = model.student.linear.effective_weight().detach().numpy().astype(np.float64)
    logit = z @ w + float(model.student.linear.bias.detach())
    want = 104.0 / (1.0 + np.exp(-logit)) - 2.0
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(x[:2]),), buf, dynamo=False, opset_version=17,
                          input_names=["features"], output_names=["vmaf"],
                          dynamic_axes={"features": {0: "n"}, "vmaf": {0: "n"}})
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"features": x})[0], got, rtol=0, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rate_student_is_monotone_in_bpp_and_scale(seed: int) -> None:
    model = _model(seed)
    x = torch.from_numpy(_rows(40, seed=10 + seed))
    ib, isr = NAMES.index("log_bpp"), NAMES.index("scale_ratio")
    with torch.no_grad():
        base = model(x)
        more_bits = x.clone()
        more_bits[:, ib] += 0.5
        upscaled = x.clone()
        upscaled[:, isr] *= 2.0
        assert (model(more_bits) >= base - 1e-5).all()
        assert (model(upscaled) <= base + 1e-5).all()
        # and strictly so somewhere (the constraint is not a zero weight)
        assert (model(more_bits) > base + 1e-3).any()
        assert (model(upscaled) < base - 1e-3).any()
