"""The single-row fast path: an exported student compiled to Python float code
(vmafdistill.edge.scalar_graph), kept only where it reproduces onnxruntime's bits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vmafdistill.edge.predictor import Predictor, default_model_path
from vmafdistill.edge.scalar_graph import compile_scalar, rows_for_check

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "edge" / "tiny.onnx"


@pytest.mark.parametrize("model", ["shipped", "tiny"])
def test_compiled_students_give_onnxruntimes_bits(model):
    """Both students in the repository compile, and give onnxruntime's float32 bits on rows
    inside and beyond the training domain, wide random rows, zeros, NaNs and infinities."""
    pred = Predictor(default_model_path() if model == "shipped" else TINY)
    scalar = pred.scalar_graph()
    assert scalar is not None
    rng = np.random.default_rng(11)
    w = len(pred.feature_names)
    x = np.concatenate([
        rows_for_check(w, n=500, seed=5),
        (rng.normal(size=(2000, w)) * 10 + 20).astype(np.float32),
        np.full((1, w), np.inf, np.float32), np.full((1, w), -np.inf, np.float32),
        np.full((1, w), 1e30, np.float32), np.full((1, w), -0.0, np.float32),
    ]).astype(np.float32)
    ref = pred._predict_checked(x)
    got = np.concatenate([pred.predict(np.ascontiguousarray(r)) for r in x])
    assert got.dtype == np.float32
    assert got.tobytes() == ref.tobytes()
    # predict() took the compiled path for those rows, not the binding
    assert pred._scalar is scalar


def test_scalar_path_can_be_switched_off():
    pred = Predictor(TINY, scalar=False)
    assert pred.scalar_graph() is None
    x = np.ones((1, len(pred.feature_names)), np.float32)
    assert pred.predict(x).tobytes() == Predictor(TINY).predict(x).tobytes()


def _model(nodes, inits, width: int, in_type: int | None = None) -> bytes:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", in_type or TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def _ort(data: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0].reshape(-1)


def test_float64_mlp_compiles_and_matches_onnxruntime():
    """A hidden layer (MatMul + Relu), Gemm, Tanh, Exp and a runtime Where: compiled, and
    equal to onnxruntime within float32 rounding (the predictor additionally insists on
    equal bits before it uses a compiled graph)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(5, 6))
    w2 = rng.normal(size=(1, 6))
    nodes = [
        helper.make_node("Cast", ["x"], ["xd"], to=TensorProto.DOUBLE),
        helper.make_node("MatMul", ["xd", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["g"], transB=1),
        helper.make_node("Tanh", ["g"], ["t"]),
        helper.make_node("Exp", ["t"], ["e"]),
        helper.make_node("Greater", ["e", "one"], ["big"]),
        helper.make_node("Where", ["big", "e", "t"], ["s"]),
        helper.make_node("Squeeze", ["s", "ax"], ["sq"]),
        helper.make_node("Cast", ["sq"], ["y"], to=TensorProto.FLOAT),
    ]
    inits = {"w1": w1, "w2": w2, "b2": np.array([0.25]), "one": np.array(1.0),
             "ax": np.array([1], np.int64)}
    data = _model(nodes, inits, 5)
    # Greater is not compiled: the whole graph stays with onnxruntime
    assert compile_scalar(data, 5) is None
    nodes[6] = helper.make_node("IsNaN", ["e"], ["big"])
    data = _model(nodes, inits, 5)
    scalar = compile_scalar(data, 5)
    assert scalar is not None
    x = (rng.normal(size=(300, 5)) * 3).astype(np.float32)
    x[7, 2] = np.nan
    ref = _ort(data, x)
    got = np.concatenate([scalar.predict_row(r) for r in x])
    np.testing.assert_allclose(got, ref, rtol=2e-7, atol=0)
    assert np.isnan(got[7]) == np.isnan(ref[7])


def test_float32_arithmetic_is_left_to_onnxruntime():
    """A graph that computes in float32 would round differently in Python's doubles."""
    from onnx import helper

    nodes = [helper.make_node("Mul", ["x", "k"], ["m"]),
             helper.make_node("ReduceSum", ["m", "ax"], ["y"], keepdims=0)]
    data = _model(nodes, {"k": np.ones(3, np.float32), "ax": np.array([1], np.int64)}, 3)
    assert compile_scalar(data, 3) is None
    assert compile_scalar(b"not a model", 3) is None


def test_one_bounds_checked_protobuf_reader_names_the_file(tmp_path):
    """onnx_check and scalar_graph read the model with the same reader (edge.protobuf): a
    truncated model is an error naming the file (operators, opsets), never an IndexError or
    a silently short payload; the compiler then declines (onnxruntime stays the reference)."""
    from vmafdistill.edge import onnx_check, protobuf, scalar_graph
    from vmafdistill.edge.onnx_check import check_allowlist, model_ops, model_opsets
    from vmafdistill.errors import ModelError

    assert scalar_graph.fields is protobuf.fields
    assert onnx_check.field_spans is protobuf.field_spans
    data = TINY.read_bytes()
    assert model_ops(data) and model_opsets(data)
    cut = tmp_path / "cut.onnx"
    for size in (len(data) - 3, len(data) // 2, 7):
        cut.write_bytes(data[:size])
        for check in (check_allowlist, model_ops, model_opsets):
            with pytest.raises(ModelError, match=r"cut\.onnx: not a valid ONNX model: malformed"):
                check(cut)
        with pytest.raises(ModelError, match=r"^x\.onnx: not a valid ONNX model"):
            check_allowlist(data[:size], name="x.onnx")
        assert compile_scalar(data[:size], 3) is None
    # a length-delimited field (1, wire type 2) of 5 bytes with only 2 present
    with pytest.raises(protobuf.ProtobufError, match="field 1 at byte 2 runs past"):
        list(protobuf.field_spans(bytes([0x0A, 0x05, 0x61, 0x62])))
    with pytest.raises(protobuf.ProtobufError, match="truncated varint"):
        list(protobuf.fields(bytes([0x08, 0x80])))
    assert list(protobuf.fields(bytes([0x08, 0x96, 0x01, 0x12, 0x01, 0x7A]))) == [
        (1, 0, 150), (2, 2, b"z")]
