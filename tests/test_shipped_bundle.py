"""The shipped student's trainable bundle: rebuilt from the ONNX + card exactly, shipped beside
them, and `vmafdistill finetune ckpt=default` adapts it to a corpus whose mapping differs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_finetune import finetune
from test_train_app import synthetic_corpus

from vmafdistill.edge.predictor import Predictor
from vmafdistill.students.bundle import load_bundle
from vmafdistill.students.shipped import (
    SHIPPED_BUNDLE,
    _domain_rows,
    bundle_from_onnx,
    resolve_student_source,
)

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
ONNX = REPO / "checkpoints" / "vmafdistill_default.onnx"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pred(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():  # as the export runs it: float64 inside, float32 out
        import copy

        return copy.deepcopy(model).double()(torch.from_numpy(x.astype(np.float64))).float().numpy()


def test_shipped_bundle_reproduces_the_shipped_onnx() -> None:
    model, meta = load_bundle(SHIPPED_BUNDLE)
    card = json.loads((REPO / "checkpoints" / "vmafdistill_default.card.json").read_text())
    assert meta["rebuilt_from"]["sha256"] == card["sha256"] == _sha(ONNX)
    rows = _domain_rows(card, n=2000, seed=5)
    # the same float64 graph on both sides: equal float32 outputs (0 measured on every row)
    np.testing.assert_array_equal(_pred(model, rows), Predictor(ONNX, scalar=False).predict(rows))
    assert meta["conformal"]["q"] == card["conformal"]["q"]


def test_rebuild_refuses_a_graph_the_card_does_not_describe(tmp_path: Path) -> None:
    from vmafdistill.errors import ModelError

    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(ONNX.read_bytes())
    card = json.loads((REPO / "checkpoints" / "vmafdistill_default.card.json").read_text())
    card["interactions"] = []  # one column fewer than the graph's weights
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"m\.onnx: initializers do not fit"):
        bundle_from_onnx(onnx)


def _shipped_corpus(path: Path) -> Path:
    """A synthetic corpus with the shipped student's inputs whose teacher reads 6 VMAF lower
    than the shipped student, more so at low quantizers (footage the student reads high on)."""
    corpus = synthetic_corpus(path, n_sources=3, n_shots=8, seed=3, name="newkind")
    samples = pd.read_parquet(corpus / "tables" / "samples.parquet")
    rng = np.random.default_rng(11)
    samples["scene_qp"] = np.clip(20 + (samples["crf"] - 26) + 2 * (samples["codec"] == "h265")
                                  + rng.normal(0, 2, len(samples)), 10, 51)
    samples["scene_mb_qp"] = samples["scene_qp"]  # whichever quantizer the student reads
    samples["temporal_std"] = rng.uniform(1, 20, len(samples))
    model, meta = load_bundle(SHIPPED_BUNDLE)
    x = samples[meta["feature_names"]].to_numpy(np.float32)
    offset = 6.0 + 0.2 * (35.0 - samples["scene_qp"].to_numpy())
    samples["vmaf"] = np.clip(_pred(model, x) - offset + rng.normal(0, 0.5, len(x)), 0, 100)
    samples.to_parquet(corpus / "tables" / "samples.parquet")
    return corpus


def test_finetune_default_lowers_heldout_mae_and_leaves_shipped_files(tmp_path: Path) -> None:
    shipped = {p: _sha(p) for p in (REPO / "checkpoints").iterdir() if p.is_file()}
    corpus = _shipped_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    assert finetune("ckpt=default", f"corpus_dir={corpus}", f"hydra.run.dir={run}",
                    "optim.lr=0.01", "optim.max_epochs=200") == 0
    m = json.loads((run / "metrics.json").read_text())
    before, after = m["before"]["heldout"]["mae"], m["after"]["heldout"]["mae"]
    assert before > 3.0 and after < 0.6 * before, (before, after)
    # the result is a bundle like any other (exportable), and the shipped files are untouched
    load_bundle(run / "student.pt")
    assert {p: _sha(p) for p in shipped} == shipped


def test_onnx_and_card_paths_resolve_to_a_rebuilt_bundle() -> None:
    for ckpt in (ONNX, ONNX.with_name("vmafdistill_default.card.json")):
        path = resolve_student_source(ckpt)
        assert path != SHIPPED_BUNDLE and path.suffix == ".pt"
        _model, meta = load_bundle(path)
        assert meta["rebuilt_from"]["parity_max_abs"] == 0.0


def test_export_refuses_to_overwrite_the_shipped_student_without_force(
        capsys: pytest.CaptureFixture[str]) -> None:
    from vmafdistill.cli import main

    before = _sha(ONNX)
    assert main(["export", "--bundle", str(SHIPPED_BUNDLE), "--out", str(ONNX)]) == 2
    assert "refuses to overwrite" in capsys.readouterr().err
    assert _sha(ONNX) == before


def test_export_never_writes_over_an_input_or_a_foreign_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``export --bundle S/student.pt --out S/student.pt`` replaced the bundle with the ONNX
    (the next export failed to unpickle it); ``--out clip.mp4`` or ``--out winner.json``
    replaced those. Each is now refused before anything is written; an earlier export at
    --out is replaced as before."""
    import shutil

    from vmafdistill.cli import main
    from vmafdistill.cli.export import _check_out

    bundle = tmp_path / "student.pt"
    shutil.copy(SHIPPED_BUNDLE, bundle)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0\0\0\x20ftypisom" + b"\0" * 100)
    winner = tmp_path / "winner.json"
    winner.write_text(json.dumps({"bundle": str(bundle)}))
    for args, msg in ((["--bundle", str(bundle), "--out", str(bundle)], "is an input"),
                      (["--bundle", str(bundle), "--out", str(video)], "not this command's"),
                      (["--winner", str(winner), "--out", str(winner)], "is an input"),
                      (["--bundle", str(bundle), "--out", str(tmp_path / "m.onnx"),
                        ], None)):
        if msg is None:  # a card-named file that is not a card: the card beside is refused
            (tmp_path / "m.card.json").write_bytes(b"\x89PNG")
            msg = "m.card.json: exists and is not this command's output"
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        assert main(["export", *args]) == 2, args
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, err
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    _check_out(str(ONNX), [bundle])  # the shipped export is an earlier export: replaceable


def test_export_names_a_student_the_edge_cannot_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep over feature sets can pick a full-reference set (fr6): export wrote it without
    a word and only predict refused it. Export now says so; an edge set is not named."""
    import vmafdistill.export as export
    from vmafdistill.cli import main

    names: list[str] = []

    def fake_export(bundle, out, **kw):
        return {"feature_names": names, "size_bytes": 1, "opset": 17, "sha256": "0" * 64,
                "int8": {}, "export_metrics": {"parity_max_abs": 0.0, "n_samples": 1,
                                               "parity_tol": 1e-5, "mae_vs_target": None}}

    monkeypatch.setattr(export, "export_bundle", fake_export)
    bundle = tmp_path / "student.pt"
    bundle.write_bytes(b"x")
    for feats, named in ((["adm2", "vif_scale0", "log_bpp"], True), (["log_bpp"], False)):
        names[:] = feats
        # into a folder not made yet, as export always allowed
        assert main(["export", "--bundle", str(bundle), "--out",
                     str(tmp_path / "new" / "m.onnx")]) == 0
        captured = capsys.readouterr()
        assert ("predict` refuses it" in captured.err) == named, captured.err
        assert ("adm2, vif_scale0)" in captured.err) == named
        assert "final model on its corpus n/a" in captured.out


def test_export_keeps_the_card_of_another_model_with_the_same_stem(tmp_path: Path) -> None:
    """``--out d/student`` then ``--out d/student.v2``: both cards are ``d/student.card.json``,
    and the second export replaced the first's card without a word (predict --model
    d/student then refused it: "the card belongs to another model"). Refused now; an earlier
    export of the same file, or a card whose model is gone, is still replaced."""
    from vmafdistill.cli.export import _check_out
    from vmafdistill.errors import VmafDistillError

    first = tmp_path / "student"
    first.write_bytes(b"\x08\x08")
    card = tmp_path / "student.card.json"
    card.write_text(json.dumps({"card_version": 1, "model_file": "student"}))
    with pytest.raises(VmafDistillError, match=r"student\.card\.json is the card of .*student"):
        _check_out(str(tmp_path / "student.v2"), [])
    _check_out(str(first), [])  # the same model again: replaceable
    first.unlink()
    _check_out(str(tmp_path / "student.v2"), [])  # the other model is gone
