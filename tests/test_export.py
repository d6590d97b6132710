"""ONNX export: checker, operator allowlist (incl. a foreign op), ORT-vs-torch parity, card."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import load_script
from onnx import TensorProto, helper

from vmafdistill.edge.card import card_path_for, sha256_file
from vmafdistill.edge.onnx_check import check_allowlist, load_allowlist, model_ops, model_opsets
from vmafdistill.edge.predictor import Predictor
from vmafdistill.errors import ModelError, VmafDistillError
from vmafdistill.export import export_onnx, load_export_settings, onnx_bytes, resolve_winner
from vmafdistill.features.registry import FEATURE_SET_VERSION, feature_set
from vmafdistill.students.models import make_scaled_student

torch.set_num_threads(1)
NAMES = feature_set("paper14")
# every hyper-parameter spelled out (a student config sets them all; these are the values the
# cases were written against: no margin, no residual skip path)
_PLAIN = {"output_margin": 0.0, "linear_skip": False, "residual_penalty": 0.0}
CFGS = {
    "linear": {"name": "linear", "output": "linear", "output_margin": 0.0},
    "mlp": {"name": "mlp", "widths": [16, 8], "activation": "gelu", "dropout": 0.0,
            "feature_weighting": False, "output": "bounded", **_PLAIN},
    "soft_tree": {"name": "soft_tree", "depth": 3, "n_trees": 4, "temperature": 1.0,
                  "routing": "oblique", "output": "bounded", **_PLAIN},
}


@pytest.fixture(scope="module")
def samples():
    return load_script("make_edge_test_model", "tests/tools").synthetic_samples(n=300, seed=1)


def _student(kind: str, samples, seed: int = 0):
    torch.manual_seed(seed)
    m = make_scaled_student(CFGS[kind], samples[NAMES].to_numpy(np.float32), NAMES).eval()
    with torch.no_grad():  # random, non-trivial weights (a fresh linear student is all zeros)
        for p in m.student.parameters():
            p.add_(torch.randn_like(p) * 0.7)
    return m


def _meta(**kw):
    meta = {"feature_set": "paper14", "feature_names": NAMES, "corpus": {"name": "t", "hash": "h"},
            "conformal": {"alpha": 0.1, "q": 4.0}, "target": "vmaf"}
    meta.update(kw)
    return meta


@pytest.mark.parametrize("kind", sorted(CFGS))
def test_mini_protobuf_reader_matches_onnx(kind, samples):
    data = onnx_bytes(_student(kind, samples), len(NAMES), 17)
    m = onnx.load_from_string(data)
    want = {("" if n.domain in ("", "ai.onnx") else n.domain, n.op_type) for n in m.graph.node}
    assert model_ops(data) == want
    assert model_opsets(data) == {("" if o.domain in ("", "ai.onnx") else o.domain): o.version
                                  for o in m.opset_import}


@pytest.mark.parametrize("kind", sorted(CFGS))
def test_export_parity_card_and_checker(kind, samples, tmp_path):
    model = _student(kind, samples)
    out = tmp_path / f"{kind}.onnx"
    card = export_onnx(model, _meta(), samples, out, settings=load_export_settings())
    onnx.checker.check_model(onnx.load(out), full_check=True)
    # Independent parity: onnxruntime on the written file vs the torch module, every sample.
    x = samples[NAMES].to_numpy(np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"features": x})[0]
    with torch.no_grad():
        ref64 = model.double()(torch.from_numpy(x.copy()).double()).float().numpy()
        ref32 = model.float()(torch.from_numpy(x.copy())).numpy()
    assert np.abs(got - ref64).max() <= 1e-5
    assert np.abs(got - ref32).max() <= 1e-4  # the float32 module as trained, too
    assert card["export_metrics"]["parity_max_abs"] <= 1e-5
    mae = float(np.mean(np.abs(got.astype(np.float64) - samples["vmaf"].to_numpy())))
    assert card["export_metrics"]["mae_vs_target"] == pytest.approx(mae, rel=1e-6)
    on_disk = json.loads(card_path_for(out).read_text())
    assert on_disk["sha256"] == sha256_file(out)
    assert on_disk["feature_names"] == NAMES and on_disk["opset"] == 17
    assert on_disk["feature_set_version"] == FEATURE_SET_VERSION
    assert on_disk["ref_size"] == [1280, 720]
    assert on_disk["edge"]["issue_frame_step"] == 8  # conf/export.yaml edge.issue_frame_step
    assert out.stat().st_size <= 50_000
    assert Predictor(out).predict(x[:5]).tolist() == pytest.approx(got[:5].tolist(), abs=0)
    # the training domain: every input's range over the export corpus, and its codecs
    dom = on_disk["training_domain"]
    assert dom["n_samples"] == len(samples)
    assert dom["codecs"] == sorted(c for c in ("av1", "h264", "h265", "vp9")
                                   if samples[f"codec_{c}"].max() == 1)
    assert set(dom["features"]) == set(NAMES)
    for n in NAMES:
        assert dom["features"][n] == [samples[n].min(), samples[n].max()]


def test_training_domain_skips_columns_never_finite(samples):
    from vmafdistill.export import training_domain

    s = samples.assign(blockiness=np.nan)
    dom = training_domain(s, NAMES)
    assert "blockiness" not in dom["features"] and "sobel_mean" in dom["features"]


def test_the_cards_domain_and_statistics_leave_out_rows_never_trained_on(samples, tmp_path):
    """``nan_policy=drop`` left a corpus's unlabelled rows out of training, but the card's
    training domain (codecs, feature ranges, n_samples) and token statistics took every row:
    with every H.265 row unlabelled the card still listed h265 (no ``unseen_codec`` flag on
    an H.265 delivery) and an extreme value on a dropped row widened a range."""
    from vmafdistill.export import trained_rows

    h265 = samples["codec_h265"].to_numpy() == 1
    assert 0 < h265.sum() < len(samples)
    dropped = samples.assign(vmaf=np.where(h265, np.nan, samples["vmaf"]))
    dropped.loc[h265, "sobel_mean"] = 1e6  # on a dropped row only
    card = export_onnx(_student("linear", samples), _meta(), dropped, tmp_path / "d.onnx",
                       settings=load_export_settings())
    kept = samples.loc[~h265].reset_index(drop=True)
    want = export_onnx(_student("linear", samples), _meta(), kept, tmp_path / "k.onnx",
                       settings=load_export_settings())
    assert "h265" not in card["training_domain"]["codecs"]
    assert card["training_domain"] == want["training_domain"]
    assert card["training_domain"]["n_samples"] == len(kept)
    assert card["tokens"] == want["tokens"]
    assert card["export_metrics"]["mae_vs_target"] == pytest.approx(
        want["export_metrics"]["mae_vs_target"], rel=1e-9)
    assert len(trained_rows(dropped.drop(columns="vmaf"), "vmaf")) == len(samples)
    assert len(trained_rows(dropped.assign(vmaf=np.nan), "vmaf")) == len(samples)  # unlabelled


def test_export_copies_issue_frame_step_into_the_card(samples, tmp_path):
    """... and the speed options the edge reads from the card (``+edge.threads=2`` was
    dropped without a word: only a hand-edited card could set them)."""
    from vmafdistill.edge.pipeline import EdgeOptions

    settings = load_export_settings()
    settings["edge"].update(issue_frame_step=4, threads=2, decode_threads=1, decoder="ffmpeg")
    card = export_onnx(_student("linear", samples), _meta(), samples, tmp_path / "m.onnx",
                       settings=settings)
    assert card["edge"]["issue_frame_step"] == 4
    opts = EdgeOptions.from_card(card["edge"])
    assert (opts.issue_frame_step, opts.threads, opts.decode_threads, opts.decoder) == \
        (4, 2, 1, "ffmpeg")
    assert "chunk" not in card["edge"]  # not given: the edge's default


def test_a_student_with_more_than_one_output_per_row_is_refused(samples, tmp_path):
    """A module returning (N, 2) passed parity on the flattened values, then died in a numpy
    broadcast; the edge reads one VMAF per row."""

    class TwoOut(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x[:, 0], x[:, 1]], dim=1)

    with pytest.raises(ModelError, match=r"returns shape \(\d+, 2\).*shape \(N,\)"):
        export_onnx(TwoOut(), _meta(), samples, tmp_path / "two.onnx",
                    settings=load_export_settings())
    assert not (tmp_path / "two.onnx").exists()


def _foreign_model(op: str = "Einsum", domain: str = "") -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])
    if domain:
        node = helper.make_node(op, ["x"], ["y"], domain=domain)
    else:
        node = helper.make_node("Einsum", ["x"], ["y"], equation="ij->ij")
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]),
                           helper.make_node(node.op_type, ["r"], ["y"], domain=node.domain,
                                            **({"equation": "ij->ij"} if not domain else {}))],
                          "g", [x], [y])
    imports = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(g, opset_imports=imports).SerializeToString()


def test_allowlist_rejects_foreign_ops():
    allowed = load_allowlist()
    assert ("", "Relu") in allowed and ("", "Einsum") not in allowed
    with pytest.raises(ModelError, match="Einsum"):
        check_allowlist(_foreign_model())
    with pytest.raises(ModelError, match=r"com\.example:Mystery"):
        check_allowlist(_foreign_model("Mystery", "com.example"))
    # The same graph passes once its op is allowed: the check is about the list.
    assert ("", "Einsum") in check_allowlist(_foreign_model(), allowed | {("", "Einsum")})


def test_export_fails_on_foreign_op_and_writes_nothing(samples, tmp_path):
    class CumsumStudent(torch.nn.Module):  # CumSum is not on the allowlist
        def forward(self, x):
            return torch.cumsum(x, dim=1)[:, -1]

    out = tmp_path / "bad.onnx"
    with pytest.raises(ModelError, match="CumSum"):
        export_onnx(CumsumStudent(), _meta(), samples, out, settings=load_export_settings())
    assert not out.exists() and not card_path_for(out).exists()


class Branchy(torch.nn.Module):
    """Scales its first input by ``factor`` on real rows; tracing (on the zero input) freezes
    the other branch, so the graph and the module disagree by ``factor - 1``."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        if float(x.sum()) > 0:
            return x[:, 0] * self.factor
        return x[:, 0]


def test_export_fails_when_onnx_and_torch_disagree(samples, tmp_path):
    with pytest.raises(ModelError, match="disagree"):
        export_onnx(Branchy(2.0), _meta(), samples, tmp_path / "b.onnx",
                    settings=load_export_settings())


def test_int8_policy_reports_and_respects_threshold(samples, tmp_path):
    model = _student("mlp", samples)
    # float32 graph (what dynamic quantization rewrites); its parity is float32-rounding level.
    s = load_export_settings({"precision": "float32", "parity_tol": 1e-3,
                              "int8": {"enabled": True,
                                                              "max_mae_delta": -1.0}})
    card = export_onnx(model, _meta(), samples, tmp_path / "q.onnx", settings=s)
    rep = card["int8"]
    assert rep["tried"] and not rep["kept"] and rep["reason"]
    if "mae_delta" in rep:  # measured: the change is reported
        assert rep["mae_delta"] == pytest.approx(rep["mae_int8"] - rep["mae_float"])


def _wide_mlp(samples):
    """A 64x64 MLP student: wide enough that its INT8 graph is the smaller one (it is kept)."""
    torch.manual_seed(0)
    return make_scaled_student({**CFGS["mlp"], "widths": [64, 64]},
                               samples[NAMES].to_numpy(np.float32), NAMES).eval()


def _row_by_row(pred: Predictor, x: np.ndarray) -> np.ndarray:
    """Each row of ``x`` predicted alone."""
    return np.array([pred.predict(np.ascontiguousarray(x[i : i + 1]))[0]
                     for i in range(len(x))], dtype=np.float32)


def test_int8_from_the_default_float64_export_is_quantized(samples, tmp_path):
    """Dynamic quantization rewrites float32 MatMul/Gemm only: from the default float64 graph
    it made float64 MatMul + Add, larger, and every --int8 export was dropped as "not
    smaller", whatever the student's size. The INT8 graph now comes from the student's
    float32 graph and is measured against the float64 one that would ship instead."""
    model = _wide_mlp(samples)
    s = load_export_settings({"int8": {"enabled": True, "max_mae_delta": 100.0}})
    assert s["precision"] == "float64"
    out = tmp_path / "q.onnx"
    card = export_onnx(model, _meta(), samples, out, settings=s)
    rep = card["int8"]
    assert rep["kept"], rep
    assert rep["size_bytes"] == card["size_bytes"] < rep["unquantized_size_bytes"] / 2
    assert ("", "MatMulInteger") in model_ops(out.read_bytes())
    assert card["precision"] == "float32"  # the quantized graph's float parts
    # measured against the float64 graph: its predictions are the float export's
    float_card = export_onnx(model, _meta(), samples, tmp_path / "f.onnx",
                             settings=load_export_settings())
    assert rep["mae_float"] == pytest.approx(float_card["export_metrics"]["mae_vs_target"],
                                             rel=1e-9)
    assert rep["unquantized_size_bytes"] == float_card["size_bytes"]


def test_a_float32_graph_that_cannot_be_built_leaves_the_float_export(samples, tmp_path,
                                                                       monkeypatch):
    """INT8 is only tried: the float32 graph it quantizes failing to build is its reason, and
    the float64 export stands."""
    from vmafdistill import export

    real = export.onnx_bytes

    def float64_only(model, n, opset, *, precision="float64"):
        if precision == "float32":
            raise ModelError("no float32 graph here")
        return real(model, n, opset, precision=precision)

    monkeypatch.setattr(export, "onnx_bytes", float64_only)
    s = load_export_settings({"int8": {"enabled": True}})
    card = export_onnx(_student("mlp", samples), _meta(), samples, tmp_path / "f.onnx",
                       settings=s)
    assert card["int8"] == {"tried": True, "kept": False, "unquantized_size_bytes":
                            card["size_bytes"], "reason": "no float32 graph to quantize "
                            "(no float32 graph here)"}
    assert card["precision"] == "float64" and (tmp_path / "f.onnx").is_file()


def test_an_opset_10_int8_graph_runs_row_by_row_without_its_card_saying_so(samples,
                                                                           tmp_path):
    """At opset 10 the quantizer builds DynamicQuantizeLinear from ReduceMin/ReduceMax over
    the whole call; a graph whose card did not say int8.kept ran batched, and a shot's score
    moved with the others in the call. The integer MatMul marks it too."""
    import json

    model = _wide_mlp(samples)
    s = load_export_settings({"opset": 10, "int8": {"enabled": True, "max_mae_delta": 100.0}})
    out = tmp_path / "q10.onnx"
    card = export_onnx(model, _meta(), samples, out, settings=s)
    assert card["int8"]["kept"], card["int8"]
    assert ("", "DynamicQuantizeLinear") not in model_ops(out.read_bytes())
    card_file = out.with_suffix(".card.json")
    card["int8"]["kept"] = False  # an older card, or a graph quantized by hand
    card_file.write_text(json.dumps(card))
    pred = Predictor(out)
    assert pred.row_wise
    x = samples[NAMES].to_numpy(np.float32)
    alone = _row_by_row(pred, x)
    assert pred.predict(x).tobytes() == alone.tobytes()


def test_an_int8_rows_score_does_not_depend_on_the_rows_beside_it(samples, tmp_path):
    """Dynamic quantization picks one activation scale per call from the whole batch: a shot
    scored 64.40 alone and 62.73 among a video's other shots, and export measured the INT8
    MAE on the corpus as one batch, which predict never runs. Each row must get the bits it
    gets alone, and the card's INT8 MAE must be what the predictor gives."""
    s = load_export_settings({"precision": "float32", "parity_tol": 1e-3,
                              "int8": {"enabled": True, "max_mae_delta": 100.0}})
    out = tmp_path / "q.onnx"
    model = _wide_mlp(samples)
    card = export_onnx(model, _meta(), samples, out, settings=s)
    assert card["int8"]["kept"], card["int8"]
    assert ("", "DynamicQuantizeLinear") in model_ops(out.read_bytes())
    pred = Predictor(out)
    assert pred.row_wise
    x = samples[NAMES].to_numpy(np.float32)
    alone = _row_by_row(pred, x)
    assert pred.predict(x).tobytes() == alone.tobytes()
    # beside other content (a much wider activation range), and through the checked path
    assert pred.predict(np.concatenate([x[:1], x * 3.0]))[0] == alone[0]
    assert pred.predict(samples[NAMES]).tobytes() == alone.tobytes()
    mae = float(np.mean(np.abs(alone.astype(np.float64) - samples["vmaf"].to_numpy())))
    assert card["int8"]["mae_int8"] == pytest.approx(mae, rel=1e-9)
    # the card's export metrics describe the graph it pins (they were the float graph's)
    assert card["export_metrics"]["mae_vs_target"] == card["int8"]["mae_int8"]
    assert "graph the INT8 one replaces" in card["export_metrics"]["parity_of"]
    # a float card keeps its one call per batch
    f32 = tmp_path / "f.onnx"
    export_onnx(model, _meta(), samples, f32,
                settings=load_export_settings({"precision": "float32", "parity_tol": 1e-3}))
    assert not Predictor(f32).row_wise


def test_export_refuses_bad_inputs(samples, tmp_path):
    model = _student("linear", samples)
    with pytest.raises(VmafDistillError, match="lacks feature column"):
        export_onnx(model, _meta(), samples.drop(columns=["blockiness"]), tmp_path / "x.onnx",
                    settings=load_export_settings())
    # the bundle is named (it read "export: the student was ..."; a hunt)
    with pytest.raises(ModelError, match=r"export: old\.pt: the student .* feature-set version"):
        export_onnx(model, _meta(feature_set_version=FEATURE_SET_VERSION + 1), samples,
                    tmp_path / "x.onnx", settings=load_export_settings(), source="old.pt")
    # a negative tolerance read "disagree by 0 VMAF (tolerance -1)"
    with pytest.raises(VmafDistillError, match=r"parity_tol=-1\.0: must be at least 0"):
        export_onnx(model, _meta(), samples, tmp_path / "x.onnx",
                    settings=load_export_settings({"parity_tol": -1.0}))
    # a token feature without statistics switched its issue off, unsaid; a section that is
    # no mapping was a traceback deep in the export
    for over, msg in ((["tokens.issues.detail_features=[nope]"],
                       r"tokens.issues.detail_features names \['nope'\], without statistics"),
                      (["tokens.stat_features=[sobel_meen]"],
                       r"tokens.stat_features names \['sobel_meen'\], not columns"),
                      (["tokens=5"], "tokens=5: needs a mapping"),
                      (["edge.shots=5"], "edge.shots=5: needs a mapping")):
        with pytest.raises(VmafDistillError, match=msg):
            export_onnx(model, _meta(), samples, tmp_path / "x.onnx",
                        settings=load_export_settings(None, over))
    with pytest.raises(VmafDistillError,
                       match=r"ref_size \(--ref-size or ref_size=, or conf/export.yaml\) "
                             r"must be two "):
        export_onnx(model, _meta(), samples, tmp_path / "x.onnx",
                    settings=load_export_settings({"ref_size": 0}))
    assert not (tmp_path / "x.onnx").exists()


def test_predictor_refuses_mismatched_card(samples, tmp_path):
    out = tmp_path / "m.onnx"
    export_onnx(_student("linear", samples), _meta(), samples, out, settings=load_export_settings())
    card_file = card_path_for(out)
    good = json.loads(card_file.read_text())
    for change, msg in [
        ({"sha256": "0" * 64}, "sha256"),
        ({"opset": 13}, "opset"),
        # used_features trimmed too: the reader refuses a name outside feature_names first
        ({"feature_names": NAMES[:-1], "used_features": [n for n in good["used_features"]
                                                         if n != NAMES[-1]]},
         "takes 17 features"),
        ({"used_features": [*good["used_features"], "nonexistent"]},
         r"m\.card\.json: used_features lists \['nonexistent'\]"),
        ({"feature_names": list(reversed(NAMES))}, "names or order"),
        ({"feature_set_version": FEATURE_SET_VERSION + 1}, "feature-set version"),
    ]:
        card_file.write_text(json.dumps({**good, **change}))
        with pytest.raises(ModelError, match=msg):
            Predictor(out)
    card_file.unlink()
    with pytest.raises(ModelError, match="card not found"):
        Predictor(out)


def test_resolve_winner(tmp_path):
    (tmp_path / "run").mkdir()
    bundle = tmp_path / "run" / "student.pt"
    bundle.write_bytes(b"x")
    win = {"run_dir": "run", "bundle": "run/student.pt"}
    (tmp_path / "winner.json").write_text(json.dumps(win))
    assert resolve_winner(tmp_path) == tmp_path / "run" / "student.pt"
    (tmp_path / "winner.json").write_text(json.dumps({"run_dir": "run"}))
    with pytest.raises(VmafDistillError, match="no 'bundle'"):
        resolve_winner(tmp_path / "winner.json")
    with pytest.raises(VmafDistillError, match=r"no winner\.json"):
        resolve_winner(tmp_path / "run")
    # an older winner.json holds the absolute path: a copy of the sweep exports its own run
    (tmp_path / "winner.json").write_text(json.dumps(
        {"run": "run", "bundle": str(bundle.resolve())}))
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tmp_path, copy, ignore=shutil.ignore_patterns("copy"))
    assert resolve_winner(copy) == copy / "run" / "student.pt"
    (tmp_path / "winner.json").write_text(json.dumps({"bundle": 5}))
    with pytest.raises(VmafDistillError, match="no 'bundle' path"):
        resolve_winner(tmp_path)
    (tmp_path / "winner.json").write_bytes(b"PAR1\xff\xfe")  # a parquet given as winner
    with pytest.raises(VmafDistillError, match=r"corrupt winner\.json"):
        resolve_winner(tmp_path / "winner.json")


def test_a_failed_export_leaves_the_previous_one_working(samples, tmp_path):
    """Every setting is checked before anything is written: a bad band, size, step or opset
    is a one-line error, and the model and card already at --out stay a matching pair (the
    .onnx was replaced before the card failed, and predict refused the pair)."""
    out = tmp_path / "keep.onnx"
    export_onnx(_student("linear", samples), _meta(), samples, out,
                settings=load_export_settings())
    before = out.read_bytes(), card_path_for(out).read_text()
    bad = [({"tokens": {"bands": {"amber": 90}}}, "amber <= green"),
           ({"tokens": {"bands": {"green": "abc"}}}, "abc"),
           ({"ref_size": [0, 0]}, "positive"),
           ({"ref_size": [640, 360, 2]}, "WxH"),
           ({"ref_size": [960.5, 540]}, "WxH"),  # was cut to 960 unsaid (API)
           ({"ref_size": [True, 540]}, "WxH"),  # was read as 1
           ({"edge": {"frame_step": 0}}, "frame_step must be >= 1, got 0"),
           # speed options the edge reads from the card: 2.5 was cut to 2 by predict, a
           # misspelt key was dropped without a word
           ({"edge": {"threads": 2.5}}, r"edge\.threads=2\.5: needs a whole number"),
           ({"edge": {"thread": 2}},
            r"edge \(decoder one of auto, ffmpeg\): unknown key\(s\) \['thread'\]"),
           ({"edge": {"decoder": "gpu"}}, "decoder must be one of auto, ffmpeg"),
           # the blockiness rule without its statistics never fired, unsaid
           ({"tokens": {"stat_features": ["sobel_mean", "edge_density", "laplacian_var",
                                          "temporal_diff", "temporal_std"]}},
            "lacks blockiness"),
           ({"tokens": {"log_features": ["blockiness", "bitrate_kbps"]}},
            r"log_features names \['bitrate_kbps'\]"),
           ({"edge": {"temporal_pixel_step": -3}}, "temporal_pixel_step"),
           ({"opset": 99}, "opset 99"),
           # "abc" reached the card and predict crashed on it; "maybe" tried INT8
           ({"edge": {"shots": {"threshold": "abc"}}}, r"edge\.shots\.threshold='abc'"),
           ({"int8": {"enabled": "maybe"}}, r"int8\.enabled='maybe': needs true or false"),
           ({"int8": {"enabled": True, "max_mae_delta": "abc"}}, r"int8\.max_mae_delta"),
           ({"opset": "x"}, "opset must be an integer")]
    for override, msg in bad:
        with pytest.raises(VmafDistillError, match=msg):
            export_onnx(_student("mlp", samples, seed=1), _meta(), samples, out,
                        settings=load_export_settings(override))
        assert (out.read_bytes(), card_path_for(out).read_text()) == before, override
    Predictor(out)  # the pair still loads
    with pytest.raises(VmafDistillError, match="is a directory"):
        export_onnx(_student("linear", samples), _meta(), samples, tmp_path,
                    settings=load_export_settings())
    assert not list(tmp_path.glob(".*.partial"))
    with pytest.raises(ModelError, match="conformal q is inf"):
        export_onnx(_student("linear", samples), _meta(conformal={"alpha": 0.1, "q": np.inf}),
                    samples, out, settings=load_export_settings())
    assert (out.read_bytes(), card_path_for(out).read_text()) == before


def test_a_student_on_a_column_subset_is_checked_on_those_columns(samples, tmp_path):
    """A student reading two of the 17 inputs: the card names the two (from its structure),
    its training domain covers them alone, and a NaN in a column it never reads leaves the
    shot's prediction in place (it was flagged invalid_features, no prediction)."""
    from vmafdistill.edge.pipeline import _predict
    from vmafdistill.edge.records import make_records
    from vmafdistill.edge.tokens import DEFAULT_RULES

    subset = [NAMES[0], NAMES[5]]
    torch.manual_seed(0)
    model = make_scaled_student({**CFGS["linear"], "features": subset},
                                samples[NAMES].to_numpy(np.float32), NAMES).eval()
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(torch.randn_like(p) * 0.7)
    out = tmp_path / "subset.onnx"
    card = export_onnx(model, _meta(), samples, out, settings=load_export_settings())
    assert card["used_features"] == subset
    assert set(card["training_domain"]["features"]) <= set(subset)
    row = {**samples.iloc[0].to_dict(), "shot_index": 0, "start_s": 0.0, "end_s": 1.0,
           "bitrate_kbps": 500.0}
    unread = next(n for n in NAMES if n not in subset)
    pred = Predictor(out)
    for changed, expect_pred in (({unread: float("nan")}, True),
                                 ({subset[1]: float("nan")}, False)):
        r = {**row, **changed}
        p = _predict(pred, [r], NAMES, card["used_features"])
        rec = make_records([r], p, card, DEFAULT_RULES, feature_names=NAMES, codec="h264",
                           height=360)[0]
        assert (rec.pred_vmaf is not None) == expect_pred, (changed, rec)
    # a kept interaction product reads both its factors; without a subset, every column
    from vmafdistill.students.models import interaction_name, raw_inputs_read

    a, b = NAMES[2], NAMES[7]
    inter = make_scaled_student({**CFGS["linear"], "interactions": [[a, b]],
                                 "features": [NAMES[0], interaction_name(a, b)]},
                                samples[NAMES].to_numpy(np.float32), NAMES)
    assert raw_inputs_read(inter) == [NAMES[0], a, b]
    assert raw_inputs_read(_student("mlp", samples)) == NAMES
    # the unread column's value changes nothing: the same prediction as the clean row
    assert _predict(pred, [{**row, unread: float("nan")}], NAMES, card["used_features"]) == \
        pytest.approx(pred.predict(np.array([[row[n] for n in NAMES]], dtype=np.float32)))


def test_export_refuses_to_overwrite_the_shipped_student_or_its_card(tmp_path, monkeypatch):
    """``--out checkpoints/vmafdistill_default`` (no suffix) left the shipped model but wrote
    its card over the shipped one, and predict's default then refused the pair; only the
    ``.onnx`` itself was guarded."""
    import shutil

    import vmafdistill.students.shipped as shipped
    from vmafdistill.edge.card import card_path_for
    from vmafdistill.export import refuse_shipped_overwrite

    ship = tmp_path / "checkpoints"
    ship.mkdir()
    onnx = ship / "vmafdistill_default.onnx"
    shutil.copy(shipped.SHIPPED_ONNX, onnx)
    shutil.copy(card_path_for(shipped.SHIPPED_ONNX), card_path_for(onnx))
    monkeypatch.setattr(shipped, "SHIPPED_ONNX", onnx)
    for out, needle in ((onnx, "vmafdistill_default.onnx without"),
                        (ship / "vmafdistill_default", "card vmafdistill_default.card.json"),
                        (ship / "vmafdistill_default.bin", "card vmafdistill_default.card.json")):
        with pytest.raises(VmafDistillError, match=f"refuses to overwrite the shipped "
                                                   f"student's {needle}"):
            refuse_shipped_overwrite(out)
        refuse_shipped_overwrite(out, force=True)
    refuse_shipped_overwrite(ship / "mine.onnx")
    with pytest.raises(VmafDistillError, match=r"without force=True \(give out elsewhere"):
        refuse_shipped_overwrite(onnx, out_name="out", force_name="force=True")  # the API's


def test_a_carried_training_domain_widens_the_cards(samples, tmp_path):
    """A fine-tuned student's bundle carries the domain it has seen (its source's too); the
    card held the export corpus's alone, and predict flagged the source's codecs and ranges."""
    from vmafdistill.export import training_domain

    narrow = samples[samples["codec_h264"] == 1].reset_index(drop=True)
    own = training_domain(narrow, NAMES)
    lo, hi = own["features"]["sobel_mean"]
    carried = {"features": {"sobel_mean": [lo - 5.0, hi - 1.0], "not_an_input": [0.0, 1.0]},
               "codecs": ["vp9", "AV1"], "n_samples": 1000}
    card = export_onnx(_student("linear", narrow), _meta(training_domain=carried), narrow,
                       tmp_path / "m.onnx", settings=load_export_settings())
    dom = card["training_domain"]
    assert dom["codecs"] == sorted({"av1", "vp9", *own["codecs"]})
    assert dom["features"]["sobel_mean"] == [lo - 5.0, hi]  # min of mins, max of maxes
    assert "not_an_input" not in dom["features"]  # only the columns the student reads
    assert {n: r for n, r in dom["features"].items() if n != "sobel_mean"} == \
        {n: r for n, r in own["features"].items() if n != "sobel_mean"}
    assert dom["n_samples"] == 1000  # the bundle's count of its training rows
    # a plain union sums the rows; without a carried domain the card's is the corpus's
    from vmafdistill.export import merge_training_domains

    assert merge_training_domains(own, carried)["n_samples"] == len(narrow) + 1000
    plain = export_onnx(_student("linear", narrow), _meta(), narrow, tmp_path / "p.onnx",
                        settings=load_export_settings())
    assert plain["training_domain"] == own


def test_a_float32_graph_gets_float32_rounding_room(samples, tmp_path):
    """onnxruntime and torch round float32 ops apart: soft trees differed by 2 float32 steps
    at VMAF 64..128 (1.5e-5), and ``precision=float32`` with the default 1e-5 refused them.
    The float32 check allows 4 steps at the largest output; more than that still fails, and
    says what to do."""
    from vmafdistill.export import FLOAT32_PARITY_STEPS, float32_parity_floor

    floor = float32_parity_floor(np.array([42.0, 99.5, np.nan], np.float32))
    assert floor == FLOAT32_PARITY_STEPS * float(np.spacing(np.float32(100.0)))
    assert float32_parity_floor(np.array([300.0])) == 4 * float(np.spacing(np.float32(300.0)))
    settings = load_export_settings({"precision": "float32"})
    assert settings["parity_tol"] < 2 * floor / FLOAT32_PARITY_STEPS  # below 2 steps at 100
    for seed in range(3):
        card = export_onnx(_student("soft_tree", samples, seed), _meta(), samples,
                           tmp_path / f"t{seed}.onnx", settings=settings)
        metrics = card["export_metrics"]
        assert metrics["parity_tol"] == floor
        assert metrics["parity_max_abs"] <= floor
    # the float64 default keeps its own tolerance
    card = export_onnx(_student("soft_tree", samples), _meta(), samples, tmp_path / "d.onnx",
                       settings=load_export_settings())
    assert card["export_metrics"]["parity_tol"] == 1e-5

    with pytest.raises(ModelError, match="precision=float64"):
        export_onnx(Branchy(1.001), _meta(), samples, tmp_path / "o.onnx", settings=settings)


def test_an_empty_path_is_refused_by_export_and_sources(tmp_path, capsys, monkeypatch):
    """An unset shell variable: `export --out ""` was a traceback, `--ref-size ""` took the
    corpus's size, `sources --out ""` filmed into the working folder."""
    from vmafdistill.cli import main

    monkeypatch.chdir(tmp_path)
    for args, msg in ((["export", "--bundle", "s.pt", "--out", ""], "--out: an empty value"),
                      (["export", "--bundle", "s.pt", "--ref-size", ""],
                       "--ref-size: an empty value"),
                      (["sources", "photos", "--out", ""], "--out: an empty path")):
        assert main(args) == 2, args
        assert msg in capsys.readouterr().err, args
    assert list(tmp_path.iterdir()) == []
    # a flag and an override of one setting: the flag won without a word (a hunt)
    for flag, override, setting in ((["--opset", "17"], "opset=18", "opset"),
                                    (["--frame-step", "2"], "edge.frame_step=4",
                                     "edge.frame_step"),
                                    (["--int8"], "int8.enabled=false", "int8.enabled"),
                                    (["--int8"], "int8={enabled:false}", "int8.enabled"),
                                    (["--int8"], "~int8", "int8.enabled")):
        assert main(["export", "--bundle", "s.pt", "--out", "s.onnx", *flag, override]) == 2
        assert f"{flag[0]} and {override} both set {setting}: give one" in \
            capsys.readouterr().err
    # a parent's override that leaves the flag's setting alone is no pair (a review: Hydra
    # merges a mapping); the API's keyword and an override are refused as the flags are
    from vmafdistill import api
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.export import refuse_flag_and_override

    refuse_flag_and_override({"int8.enabled": ("--int8", True)}, ["int8={max_mae_delta:0.2}"])
    refuse_flag_and_override({"edge.frame_step": ("--frame-step", 2)},
                             ["edge={issue_frame_step:4}"])
    with pytest.raises(VmafDistillError, match=r"ref_size= and ref_size=\[640,360\] both set"):
        api.export("s.pt", "s.onnx", "ref_size=[640,360]", ref_size=(1920, 1080))
    assert list(tmp_path.iterdir()) == []


def test_the_edge_test_model_tool_rebuilds_the_committed_model(tmp_path):
    """docs/edge.md names ``tests/tools/make_edge_test_model.py`` as how tests/data/edge's
    tiny model is made; it had become a traceback (its student config lacked a setting the
    configs now hold). Its model comes out as committed (the card is kept as committed: the
    predict tests read its settings): the same graph, and the same outputs to 1e-9 (the
    standardiser's mean and std are numpy reductions, whose last bits may differ by CPU;
    byte-identical on the Xeon that wrote this)."""
    from helpers import REPO

    tool = load_script("make_edge_test_model", "tests/tools")
    out = tool.build(tmp_path)
    committed = REPO / "tests" / "data" / "edge" / "tiny.onnx"
    assert model_ops(out.read_bytes()) == model_ops(committed.read_bytes())
    x = tool.synthetic_samples()[NAMES].to_numpy(np.float32)
    got, want = Predictor(out).predict(x), Predictor(committed).predict(x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.ptp(want) > 10  # rows the model tells apart
    # a card already there is kept as it was (the committed one: the predict tests read it)
    card = out.with_name("tiny.card.json")
    card.write_text('{"kept": true}')
    tool.build(tmp_path)
    assert card.read_text() == '{"kept": true}'


def test_a_setting_below_a_flags_key_is_a_pair_too() -> None:
    """A final review: `--ref-size 1x2 ref_size.0=5` passed (only the key and its parents
    were compared)."""
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.export import refuse_flag_and_override

    with pytest.raises(VmafDistillError, match=r"--ref-size and ref_size\.0=5 both set"):
        refuse_flag_and_override({"ref_size": ("--ref-size", "1x2")}, ["ref_size.0=5"])
