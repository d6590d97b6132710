"""``vmafdistill finetune``: a student trained on corpus A adapts to corpus B's mapping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_train_app import FAST, run_train, synthetic_corpus

from vmafdistill.evaluation.conformal import conformal_quantile
from vmafdistill.features.registry import feature_set

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = synthetic_corpus(tmp_path_factory.mktemp("a"), n_sources=2, n_shots=8)
    out = tmp_path_factory.mktemp("train")
    # the feature gate is off by default; the freeze test needs it. A loss other than the
    # finetune config's old default (logit Huber), so that inheriting it is visible.
    assert run_train(corpus, out, "baselines=[]", "optim.max_epochs=200",
                     "student.feature_weighting=true", "loss=huber_points") == 0
    return out


@pytest.fixture(scope="module")
def corpus_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a different teacher mapping: shifted and flatter in rate, other content
    return synthetic_corpus(tmp_path_factory.mktemp("b"), n_sources=2, n_shots=8, seed=7,
                            shift=-1.5, slope=0.6, name="other")


def finetune(*argv: str) -> int:
    from vmafdistill.cli import main

    return main(["finetune", *FAST, *argv])


def test_finetune_improves_heldout(source_run: Path, corpus_b: Path, tmp_path: Path) -> None:
    from vmafdistill.evaluation.metrics import regression_metrics
    from vmafdistill.students.bundle import load_bundle

    assert finetune(f"ckpt={source_run / 'student.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tmp_path}", "optim.lr=0.01") == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    from vmafdistill.students.train import RUN_LOCK

    assert not (tmp_path / RUN_LOCK).exists()  # the run directory is free once it ends
    held = pd.read_parquet(tmp_path / "heldout.parquet")
    samples = pd.read_parquet(corpus_b / "tables" / "samples.parquet")
    # held-out rows are whole shots absent from the fine-tuning rows (hash split of shot_id)
    from vmafdistill.evaluation.splits import make_splits

    (_tr, te), = make_splits(samples, {"name": "hash_split", "key": "shot_id",
                                       "test_fraction": 0.2})
    assert sorted(held["sample_id"]) == sorted(samples["sample_id"].to_numpy()[te])
    # before = the original bundle's predictions, recomputed here
    original, _ = load_bundle(source_run / "student.pt")
    names = feature_set("scalefree")
    idx = samples.set_index("sample_id").loc[held["sample_id"]]
    with torch.no_grad():
        before = original(torch.tensor(idx[names].to_numpy(np.float32))).numpy()
    np.testing.assert_allclose(held["pred_before"], before, rtol=1e-5, atol=1e-4)
    ref = regression_metrics(held["vmaf"], held["pred_before"])
    assert m["before"]["heldout"]["mae"] == pytest.approx(ref["mae"])
    # fine-tuning on B's training shots fits B's mapping much better on B's held-out shots
    assert m["after"]["heldout"]["mae"] < 0.6 * m["before"]["heldout"]["mae"]
    assert m["after"]["heldout"]["mae"] == pytest.approx(
        regression_metrics(held["vmaf"], held["pred"])["mae"])
    assert (m["target"], m["n_dropped"], m["n_samples"]) == ("vmaf", 0, len(samples))
    # the new bundle keeps the original scaler and records its origin
    tuned, meta = load_bundle(tmp_path / "student.pt")
    assert torch.equal(tuned.mean, original.mean) and torch.equal(tuned.std, original.std)
    assert meta["corpus"]["name"] == "other"
    assert meta["finetuned_from"]["bundle"] == str(source_run / "student.pt")
    # no loss= given: fine-tuned with the loss the student was trained with (Huber on points)
    _, source_meta = load_bundle(source_run / "student.pt")
    assert m["loss_source"] == "the bundle's training loss"
    assert m["loss_config"] == source_meta["config"]["loss"]
    assert (m["loss_config"]["name"], m["loss_config"]["space"]) == ("huber", "vmaf")


def test_a_feature_the_new_corpus_lacks_is_filled_as_the_student_fills_it(
        source_run: Path, corpus_b: Path, tmp_path: Path) -> None:
    """Fine-tuning keeps its student's scaler, yet a scaler was fitted on the new rows first:
    a corpus of one-frame shots (``temporal_*`` NaN throughout) was refused, "feature column
    'temporal_diff' has no finite value", though the student fills NaN with its stored mean
    (the shipped student could not be fine-tuned on such a corpus)."""
    from vmafdistill.corpus.tables import write_table
    from vmafdistill.testing.synthetic import make_samples

    still = synthetic_corpus(tmp_path / "still", n_sources=2, n_shots=8, seed=7, shift=-1.5,
                             slope=0.6, name="still")
    samples = make_samples(n_sources=2, n_shots=8, seed=7, shift=-1.5, slope=0.6, name="still")
    samples["temporal_diff"] = np.nan
    samples["temporal_std"] = np.nan
    write_table(samples, still / "tables" / "samples.parquet")
    assert finetune(f"ckpt={source_run / 'student.pt'}", f"corpus_dir={still}",
                    f"hydra.run.dir={tmp_path / 'run'}", "optim.lr=0.01") == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert np.isfinite(m["after"]["heldout"]["mae"])


def test_finetune_freeze(source_run: Path, corpus_b: Path, tmp_path: Path) -> None:
    from vmafdistill.students.bundle import load_bundle

    assert finetune(f"ckpt={source_run / 'student.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tmp_path}", "freeze=[gate,body.0]",
                    "optim.max_epochs=20", "loss=mse") == 0
    original, _ = load_bundle(source_run / "student.pt")
    tuned, _ = load_bundle(tmp_path / "student.pt")
    before, after = dict(original.named_parameters()), dict(tuned.named_parameters())
    for name in before:
        same = torch.equal(before[name], after[name])
        frozen = name.startswith(("student.gate", "student.body.0."))
        assert same == frozen, name
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert set(m["trained_parameters"]) == {n for n in before if not n.startswith(
        ("student.gate", "student.body.0."))}
    assert m["loss"] == "mse" and m["loss_source"] == "loss= override"


def test_finetune_errors(source_run: Path, corpus_b: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    assert finetune(f"corpus_dir={corpus_b}", f"hydra.run.dir={tmp_path}") == 2
    assert "ckpt=PATH is required" in capsys.readouterr().err
    assert finetune(f"ckpt={tmp_path / 'nope.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tmp_path}") == 2
    assert "nope.pt" in capsys.readouterr().err
    assert finetune(f"ckpt={source_run / 'student.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tmp_path}", "freeze=[nothing.here]") == 2
    err = capsys.readouterr().err
    assert "nothing.here" in err and "student.body.0.weight" in err
    assert finetune(f"ckpt={tmp_path}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tmp_path / 'x'}") == 2
    assert "neither a winner.json" in capsys.readouterr().err
    from vmafdistill.students.finetune import resolve_ckpt

    assert resolve_ckpt(source_run) == source_run / "student.pt"  # a run directory
    # fine-tuning into the directory of the bundle it starts from would replace it
    assert finetune(f"ckpt={source_run / 'student.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={source_run}") == 2
    assert "this run's own output" in capsys.readouterr().err
    assert (source_run / "student.pt").is_file() and (source_run / "metrics.json").is_file()
    # freezing everything would train nothing (it crashed in Lightning's backward)
    assert finetune(f"ckpt={source_run / 'student.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tmp_path}", "freeze=[student]") == 2
    assert "freeze every parameter" in capsys.readouterr().err
    # the student predicts its bundle's target: another one was taken silently (a vmaf_min
    # student tuned toward mean VMAF)
    assert finetune(f"ckpt={source_run / 'student.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tmp_path / 'target'}", "target=vmaf_min") == 2
    assert "target=vmaf_min: the student of" in capsys.readouterr().err
    from vmafdistill.students.finetune import _bundle_target

    for given in (["target=null"], ["~target"], ["target=vmaf"], []):  # null: the bundle's
        assert _bundle_target({"target": "vmaf"}, given, source_run) == "vmaf"
    # the student and its inputs come from ckpt: +student / +features were silently ignored
    for extra in ("+student=mlp", "+features=quant6"):
        assert finetune(f"ckpt={source_run / 'student.pt'}", f"corpus_dir={corpus_b}",
                        f"hydra.run.dir={tmp_path / 'extra'}", extra) == 2
        assert "comes from ckpt" in capsys.readouterr().err, extra
    # 16 held-out rows cannot give a 99 % quantile: an error, not q = inf in the bundle
    assert finetune(f"ckpt={source_run / 'student.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tmp_path / 'alpha'}", "conformal.alpha=0.01") == 2
    assert "too few for a 99% conformal quantile" in capsys.readouterr().err
    assert not (tmp_path / "alpha" / "student.pt").exists()
    # train's Lightning checkpoint: pointed at the run's bundle, not "not a bundle"
    ckpt = source_run / "checkpoints" / "final.ckpt"
    ckpt.parent.mkdir(exist_ok=True)
    ckpt.write_bytes(b"lightning")  # the fixture's run skipped it (checkpoint_final=false)
    assert finetune(f"ckpt={ckpt}", f"corpus_dir={corpus_b}", f"hydra.run.dir={tmp_path}") == 2
    assert f"ckpt={source_run.resolve() / 'student.pt'}" in capsys.readouterr().err
    ckpt.unlink()


def test_interaction_student_trains_checks_monotone_and_finetunes(
    corpus_b: Path, tmp_path: Path
) -> None:
    """A logistic student with an interaction: training and fine-tuning both record the
    numeric monotonicity check, the card of its export carries the pair."""
    from test_train_app import synthetic_corpus

    from vmafdistill.students.bundle import load_bundle

    corpus_a = synthetic_corpus(tmp_path / "a", n_sources=2, n_shots=8)
    run = tmp_path / "train"
    assert run_train(corpus_a, run, "baselines=[]", "student=logistic",
                     "+student.interactions=[[log_bpp,scale_ratio]]",
                     "+student.monotone={log_bpp: 1, scale_ratio: -1}") == 0
    trained = json.loads((run / "metrics.json").read_text())
    assert set(trained["monotone_check"]) == {"log_bpp", "scale_ratio"}
    model, meta = load_bundle(run / "student.pt")
    assert model.interactions == [("log_bpp", "scale_ratio")]
    assert meta["metrics"]["monotone_check"] == trained["monotone_check"]
    tuned_dir = tmp_path / "tuned"
    assert finetune(f"ckpt={run / 'student.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tuned_dir}", "+loss.delta=2.5") == 0
    m = json.loads((tuned_dir / "metrics.json").read_text())
    # a loss key without a loss name is laid over the loss the student was trained with
    assert m["loss_config"] == {**meta["config"]["loss"], "delta": 2.5}
    assert m["loss_source"] == "the bundle's training loss with ['delta'] overridden"
    assert set(m["monotone_check"]) == {"log_bpp", "scale_ratio"}
    tuned, tmeta = load_bundle(tuned_dir / "student.pt")
    assert tuned.interactions == model.interactions
    assert tmeta["metrics"]["monotone_check"] == m["monotone_check"]
    assert "student.linear.weight" in m["trained_parameters"]


def test_an_exported_student_keeps_its_training_loss(tmp_path: Path) -> None:
    """Fine-tuning from an exported ONNX trains with the loss its student was trained with
    (the card records it), not the shipped recipe's; a card without one says so."""
    from vmafdistill import api
    from vmafdistill.edge.card import card_path_for
    from vmafdistill.students.bundle import load_bundle
    from vmafdistill.students.shipped import bundle_from_onnx

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=60",
                     "student=logistic", "loss=huber") == 0
    _, meta = load_bundle(tmp_path / "run" / "student.pt")
    assert meta["config"]["loss"]["space"] == "logit"  # not the shipped huber_points (vmaf)
    onnx = tmp_path / "s.onnx"
    api.export(tmp_path / "run" / "student.pt", onnx, corpus_dir=corpus)
    _, _, rebuilt = bundle_from_onnx(onnx)
    assert rebuilt["config"]["loss"] == meta["config"]["loss"]
    # and the teacher its labels came from (finetune compares it with the new corpus's)
    assert rebuilt["config"]["teacher"] == {"model": "vmaf_v0.6.1", "mode": "exact"}
    card_file = card_path_for(onnx)
    card = json.loads(card_file.read_text())
    card.pop("loss")  # an export from before cards recorded the loss (or the teacher)
    card.pop("teacher")
    card_file.write_text(json.dumps(card))
    _, _, rebuilt = bundle_from_onnx(onnx)
    assert rebuilt["config"] == {}  # finetune_loss then names its fallback


@pytest.mark.parametrize("student", [
    ["student=logistic", "features=rate7"],  # no log-transformed column: log_mask pruned
    ["student=soft_tree", "student.routing=axis", "student.depth=2", "student.n_trees=2"],
])
def test_an_exported_student_rebuilds_whatever_the_export_folded(tmp_path: Path,
                                                                 student: list[str]) -> None:
    """bundle_from_onnx (fine-tuning from an ONNX) rebuilt neither a student without a
    log-transformed column (the exporter prunes the unused log_mask) nor an axis-routed soft
    tree (constant folding keeps softmax(routing logits), not the logits): "initializers do
    not fit". Both rebuild now, within the parity tolerance of the graph, and fine-tune."""
    from vmafdistill import api
    from vmafdistill.students.shipped import bundle_from_onnx

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=40",
                     *student) == 0
    onnx = tmp_path / "s.onnx"
    api.export(tmp_path / "run" / "student.pt", onnx, corpus_dir=corpus)
    _, _, meta = bundle_from_onnx(onnx)  # raises unless it matches the graph
    assert meta["rebuilt_from"]["parity_max_abs"] <= 1e-5  # PARITY_TOL
    assert finetune(f"ckpt={onnx}", f"corpus_dir={corpus}", "optim.max_epochs=5",
                    f"hydra.run.dir={tmp_path / 'ft'}") == 0


def test_a_learned_temperature_is_the_bundles_loss_tau(tmp_path: Path) -> None:
    """With loss.learnable_tau the bundle's loss config kept the initial tau (1.0): fine-tuning
    restarted there. It now records the tau training ended with (learned_loss_params.tau)."""
    import math

    from vmafdistill.students.bundle import load_bundle
    from vmafdistill.students.losses import build_loss

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=60",
                     "student=logistic", "loss=temperature", "loss.learnable_tau=true") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    learned = metrics["learned_loss_params"]
    # the recorded tau is what the learned raw_tau means
    loss = build_loss({"name": "temperature", "space": "vmaf", "tau": 1.0,
                       "learnable_tau": True})
    with torch.no_grad():
        loss.raw_tau.fill_(learned["raw_tau"])
    assert learned["tau"] == pytest.approx(loss.tau, rel=1e-6)
    assert not math.isclose(learned["tau"], 1.0, rel_tol=1e-3)  # it did move
    _, meta = load_bundle(tmp_path / "run" / "student.pt")
    assert meta["config"]["loss"]["tau"] == pytest.approx(learned["tau"])


def test_a_saturated_learned_temperature_stays_inside_its_bounds() -> None:
    """At a bound, float32 rounding put tau just outside [tau_min, tau_max] (0.29999998 for
    0.3), and the bundle's loss then failed to rebuild for fine-tuning."""
    from vmafdistill.students.losses import build_loss
    from vmafdistill.students.train import learned_loss_params

    for lo, hi, raw in ((0.3, 3.0, -40.0), (0.25, 3.5, 18.0), (0.3, 3.0, 40.0)):
        cfg = {"name": "temperature", "space": "vmaf", "tau": 1.0, "learnable_tau": True,
               "tau_min": lo, "tau_max": hi}
        loss = build_loss(cfg)
        with torch.no_grad():
            loss.raw_tau.fill_(raw)
        tau = learned_loss_params(loss)["tau"]
        assert lo <= tau <= hi
        build_loss({**cfg, "tau": tau})  # rebuilds


def test_a_finetuned_bundle_records_its_learned_temperature(tmp_path: Path) -> None:
    """Fine-tuning kept the starting tau in its bundle (a fine-tune of it restarted there)."""
    from vmafdistill.students.bundle import load_bundle

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=20",
                     "student=logistic", "loss=temperature", "loss.learnable_tau=true") == 0
    assert finetune(f"ckpt={tmp_path / 'run' / 'student.pt'}", f"corpus_dir={corpus}",
                    "optim.max_epochs=40", f"hydra.run.dir={tmp_path / 'ft'}") == 0
    learned = json.loads((tmp_path / "ft" / "metrics.json").read_text())["learned_loss_params"]
    _, start = load_bundle(tmp_path / "run" / "student.pt")
    _, tuned = load_bundle(tmp_path / "ft" / "student.pt")
    assert tuned["config"]["loss"]["tau"] == pytest.approx(learned["tau"])
    assert tuned["config"]["loss"]["tau"] != pytest.approx(start["config"]["loss"]["tau"])


def test_a_reference_feature_student_rebuilds_from_its_onnx(tmp_path: Path) -> None:
    """An exported fr6 student (VMAF's own features: a research baseline, which the edge
    refuses) rebuilds for fine-tuning on a corpus that has those features; it was refused with
    the edge's "cannot compute without a reference"."""
    import pandas as pd

    from vmafdistill import api
    from vmafdistill.edge.predictor import Predictor
    from vmafdistill.errors import ModelError
    from vmafdistill.students.shipped import bundle_from_onnx

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    table = corpus / "tables" / "samples.parquet"
    df = pd.read_parquet(table)
    rng = np.random.default_rng(0)
    for i, col in enumerate(["adm2", "motion2", "vif_scale0", "vif_scale1", "vif_scale2",
                             "vif_scale3"]):
        df[col] = df["vmaf"] / 100 * (0.5 + 0.1 * i) + rng.normal(0, 0.02, len(df))
    df.to_parquet(table)
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=20",
                     "student=logistic", "features=fr6") == 0
    onnx = tmp_path / "fr6.onnx"
    api.export(tmp_path / "run" / "student.pt", onnx, corpus_dir=corpus)
    with pytest.raises(ModelError, match="without a reference"):
        Predictor(onnx)  # the edge still refuses it
    _model, cfg, meta = bundle_from_onnx(onnx)
    assert meta["feature_set"] == "fr6" and cfg["name"] == "logistic"


def test_finetuning_an_onnx_names_it_and_leaves_no_temporary_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebuilt bundle's folder stayed in /tmp once per run (81 had piled up), and the run
    recorded that folder's ft.pt as the student it came from, not the .onnx."""
    import tempfile

    from vmafdistill import api
    from vmafdistill.students.bundle import load_bundle

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=20",
                     "student=logistic") == 0
    onnx = tmp_path / "s.onnx"
    api.export(tmp_path / "run" / "student.pt", onnx, corpus_dir=corpus)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "ft"
    assert finetune(f"ckpt={onnx}", f"corpus_dir={corpus}", f"hydra.run.dir={out}",
                    "optim.max_epochs=5") == 0
    assert not any(p.name.startswith("vmafdistill-rebuilt-") for p in scratch.iterdir())
    assert json.loads((out / "metrics.json").read_text())["ckpt"] == str(onnx)
    _, meta = load_bundle(out / "student.pt")
    assert meta["finetuned_from"]["bundle"] == str(onnx)


def test_finetune_checks_its_settings_before_replacing_an_earlier_run(
        source_run: Path, corpus_b: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ft"
    ckpt = f"ckpt={source_run / 'student.pt'}"
    assert finetune(ckpt, f"corpus_dir={corpus_b}", f"hydra.run.dir={out}",
                    "optim.max_epochs=5") == 0
    kept = (out / "student.pt").read_bytes()
    capsys.readouterr()
    for override, msg in (("optim.lr=0", "optim.lr=0: must be above 0"),
                          ("conformal.alpha=1.5", "conformal.alpha=1.5: must be below 1"),
                          ("conformal.alpha=0.001", "too few")):
        assert finetune(ckpt, f"corpus_dir={corpus_b}", f"hydra.run.dir={out}",
                        "optim.max_epochs=5", override) == 2
        err = capsys.readouterr().err
        assert msg in err and "replacing" not in err, (override, err)
        assert (out / "student.pt").read_bytes() == kept
    # a samples table without sample_id, or with one twice, failed after every fold's fit,
    # with the earlier run's results already cleared (a hunt)
    import shutil

    for name, edit in (("no_id", lambda t: t.drop(columns=["sample_id"])),
                       ("twice", lambda t: t.assign(sample_id=t["sample_id"].iloc[0]))):
        bad = tmp_path / name
        shutil.copytree(corpus_b, bad)
        table = bad / "tables" / "samples.parquet"
        edit(pd.read_parquet(table)).to_parquet(table, index=False)
        assert finetune(ckpt, f"corpus_dir={bad}", f"hydra.run.dir={out}",
                        "optim.max_epochs=5") == 2
        err = capsys.readouterr().err
        assert "samples table" in err and "sample_id" in err and "Traceback" not in err, err
        assert (out / "student.pt").read_bytes() == kept


def test_finetune_says_when_its_folds_split_scenes(source_run: Path, corpus_b: Path,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """finetune's shot-grouped split put one scene's windows on both sides, with no word: its
    held-out figures and interval were within-scene (train says so; a hunt)."""
    import shutil

    scenes = tmp_path / "scenes"
    shutil.copytree(corpus_b, scenes)
    table = scenes / "tables" / "samples.parquet"
    samples = pd.read_parquet(table)
    # two scenes, each cut into several shot windows
    codes = pd.factorize(samples["shot_id"])[0]
    samples.assign(scene_id=[f"scene{c % 2}" for c in codes]).to_parquet(table, index=False)
    ckpt = f"ckpt={source_run / 'student.pt'}"
    assert finetune(ckpt, f"corpus_dir={scenes}", f"hydra.run.dir={tmp_path / 'ft'}",
                    "optim.max_epochs=5") == 0
    err = capsys.readouterr().err
    assert "scene(s) have shots on both sides of a fold" in err, err
    assert "conformal.group_col" not in err  # a key finetune refuses


def _export_cli(bundle: Path, out: Path, corpus: Path, *overrides: str) -> int:
    """``vmafdistill export --bundle BUNDLE --out OUT --corpus CORPUS [overrides]``."""
    from vmafdistill.cli import main

    return main(["export", "--bundle", str(bundle), "--out", str(out), "--corpus", str(corpus),
                 *overrides])


def test_a_float32_export_rebuilds_exactly_and_finetunes(tmp_path: Path) -> None:
    """An export at precision=float32 names its initializers ``mean``, ``std``, ``student.*``
    (no float64 wrapper, no ``inner.``): fine-tuning from it failed with "no inner.mean /
    inner.std initializers", and once past that the rebuild's check ran the student in float64
    against the float32 graph (3.4e-5 apart). It rebuilds the trained weights bit for bit."""
    from vmafdistill.students.bundle import load_bundle
    from vmafdistill.students.shipped import bundle_from_onnx

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=40",
                     "student=mlp") == 0
    onnx = tmp_path / "f32.onnx"
    assert _export_cli(tmp_path / "run" / "student.pt", onnx, corpus, "precision=float32") == 0
    assert json.loads(onnx.with_suffix(".card.json").read_text())["precision"] == "float32"
    rebuilt, _cfg, meta = bundle_from_onnx(onnx)
    trained, _ = load_bundle(tmp_path / "run" / "student.pt")
    want = trained.state_dict()
    for name, value in rebuilt.state_dict().items():
        assert torch.equal(value, want[name]), name
    # float32 on both sides: a few float32 steps at VMAF 100 (7.6e-6 each) at most
    assert meta["rebuilt_from"]["parity_max_abs"] <= 4 * np.spacing(np.float32(100.0))
    assert finetune(f"ckpt={onnx}", f"corpus_dir={corpus}", "optim.max_epochs=5",
                    f"hydra.run.dir={tmp_path / 'ft'}") == 0


def test_an_int8_export_is_refused_with_where_to_finetune_from(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A kept INT8 graph holds quantized weights, which no float student reproduces: the
    rebuild says to fine-tune from the float export or the bundle (it said "no inner.mean")."""
    from vmafdistill.errors import ModelError
    from vmafdistill.students.shipped import bundle_from_onnx

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    # wide enough that the quantized graph is the smaller one (a small student's is not)
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=5",
                     "student=mlp", "student.widths=[96,96]") == 0
    onnx = tmp_path / "i8.onnx"
    assert _export_cli(tmp_path / "run" / "student.pt", onnx, corpus, "precision=float32",
                       "parity_tol=1e-4", "int8.enabled=true", "int8.max_mae_delta=100") == 0
    assert json.loads(onnx.with_suffix(".card.json").read_text())["int8"]["kept"]
    with pytest.raises(ModelError, match=r"i8\.onnx: an INT8 export .* cannot be rebuilt"):
        bundle_from_onnx(onnx)
    capsys.readouterr()
    assert finetune(f"ckpt={onnx}", f"corpus_dir={corpus}", "optim.max_epochs=5",
                    f"hydra.run.dir={tmp_path / 'ft'}") == 2
    err = capsys.readouterr().err
    assert "fine-tune from the float export or the student.pt" in err
    assert str(tmp_path / "run" / "student.pt") in err


def _covers(domain: dict, inner: dict) -> bool:
    """Whether ``domain`` holds every codec and feature range of ``inner``."""
    feats = domain["features"]
    return set(inner["codecs"]) <= set(domain["codecs"]) and all(
        n in feats and feats[n][0] <= lo and hi <= feats[n][1]
        for n, (lo, hi) in inner["features"].items())


def test_finetuning_the_shipped_student_keeps_its_training_domain(tmp_path: Path) -> None:
    """The export of a fine-tuned shipped student held the fine-tune corpus's domain alone
    (codecs h264 and h265; scene_mb_qp from 26.5 where the shipped card has 12.8): predict then
    flagged VP9 and AV1 shots as unseen. It holds both now."""
    from test_shipped_bundle import _shipped_corpus

    from vmafdistill import api
    from vmafdistill.edge.card import card_path_for
    from vmafdistill.export import training_domain
    from vmafdistill.students.bundle import load_bundle
    from vmafdistill.students.shipped import SHIPPED_ONNX

    shipped = json.loads(card_path_for(SHIPPED_ONNX).read_text())["training_domain"]
    corpus = _shipped_corpus(tmp_path / "corpus")
    samples = pd.read_parquet(corpus / "tables" / "samples.parquet")
    samples = samples[samples["scene_mb_qp"] > 20].reset_index(drop=True)  # inside, narrower
    samples.to_parquet(corpus / "tables" / "samples.parquet")
    assert finetune("ckpt=default", f"corpus_dir={corpus}", "optim.max_epochs=5",
                    f"hydra.run.dir={tmp_path / 'ft'}") == 0
    _, meta = load_bundle(tmp_path / "ft" / "student.pt")
    assert _covers(meta["training_domain"], shipped)
    # its weights were trained here: the source's "rebuilt from the shipped ONNX" was copied
    assert "rebuilt_from" not in meta and meta["finetuned_from"]["bundle"]
    card = api.export(tmp_path / "ft" / "student.pt", tmp_path / "ft.onnx",
                      corpus_dir=corpus).card
    dom = card["training_domain"]
    assert dom["codecs"] == ["av1", "h264", "h265", "vp9"]
    assert _covers(dom, shipped)
    assert _covers(dom, training_domain(samples, list(dom["features"])))
    assert dom["features"]["scene_mb_qp"] == shipped["features"]["scene_mb_qp"]
    assert dom["n_samples"] == shipped["n_samples"] + len(samples)


def test_a_chain_of_finetunes_keeps_every_training_domain(tmp_path: Path) -> None:
    """A student trained on two codecs, fine-tuned on H.264 rows only, then fine-tuned again
    from that export's ONNX: each card covers everything the student has seen (the trained
    bundle's own corpus, read from where it recorded it, and each fine-tune corpus)."""
    from vmafdistill import api
    from vmafdistill.export import training_domain
    from vmafdistill.students.bundle import load_bundle

    corpus = synthetic_corpus(tmp_path / "a", n_sources=2, n_shots=6)
    full = pd.read_parquet(corpus / "tables" / "samples.parquet")
    narrow = synthetic_corpus(tmp_path / "b", n_sources=3, n_shots=8, seed=5, name="narrow")
    table = narrow / "tables" / "samples.parquet"
    part = pd.read_parquet(table)
    part = part[part["codec"] == "h264"]
    part.reset_index(drop=True).to_parquet(table)
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=20",
                     "student=logistic") == 0
    seen = training_domain(full, load_bundle(tmp_path / "run" / "student.pt")[1]["feature_names"])
    src = tmp_path / "run" / "student.pt"
    for step in ("ft1", "ft2"):
        assert finetune(f"ckpt={src}", f"corpus_dir={narrow}", "optim.max_epochs=5",
                        f"hydra.run.dir={tmp_path / step}") == 0
        card = api.export(tmp_path / step / "student.pt", tmp_path / f"{step}.onnx",
                          corpus_dir=narrow).card
        dom = card["training_domain"]
        assert dom["codecs"] == ["h264", "h265"], step
        seen_used = {**seen, "features": {n: r for n, r in seen["features"].items()
                                          if n in card["used_features"]}}
        assert _covers(dom, seen_used), step
        src = tmp_path / f"{step}.onnx"  # the next fine-tune starts from this export
    assert dom["n_samples"] == len(full) + 2 * len(part)


def test_a_finetunes_source_domain_leaves_out_rows_it_never_trained_on(
        tmp_path: Path) -> None:
    """Trained with nan_policy=drop on a corpus whose H.265 rows are unlabelled, the student
    never saw H.265; the fine-tuned bundle's domain (its source's, read from that corpus) still
    listed h265 and counted the dropped rows."""
    from vmafdistill.students.bundle import load_bundle

    corpus = synthetic_corpus(tmp_path / "a", n_sources=4, n_shots=6)
    table = corpus / "tables" / "samples.parquet"
    full = pd.read_parquet(table)
    h265 = full["codec"] == "h265"
    assert 0 < h265.sum() < len(full)
    full.loc[h265, "vmaf"] = np.nan
    full.to_parquet(table)
    narrow = synthetic_corpus(tmp_path / "b", n_sources=3, n_shots=8, seed=5, name="narrow")
    part = pd.read_parquet(narrow / "tables" / "samples.parquet")
    part = part[part["codec"] == "h264"].reset_index(drop=True)
    part.to_parquet(narrow / "tables" / "samples.parquet")
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=5",
                     "student=logistic", "nan_policy=drop", "cv=hash") == 0
    assert finetune(f"ckpt={tmp_path / 'run' / 'student.pt'}", f"corpus_dir={narrow}",
                    "optim.max_epochs=5", f"hydra.run.dir={tmp_path / 'ft'}") == 0
    dom = load_bundle(tmp_path / "ft" / "student.pt")[1]["training_domain"]
    assert dom["codecs"] == ["h264"]
    assert dom["n_samples"] == int((~h265).sum()) + len(part)


def test_finetuning_on_the_training_corpus_says_before_is_in_sample(
        capsys: pytest.CaptureFixture[str]) -> None:
    """On the corpus the student was trained on, its 'before' held-out rows were its own
    training rows: the summary printed 'held-out MAE 1.04 -> 2.51' as if it had got worse."""
    from vmafdistill.students.finetune import _print_summary

    figures = {"mae": 1.0, "plcc": 0.99}
    metrics = {"before": {"heldout": figures}, "after": {"heldout": figures}, "n_heldout": 9,
               "bundle": "b.pt", "source_corpus": {"name": "pilot", "hash": "h"},
               "corpus": {"name": "pilot", "hash": "h"}}
    _print_summary(metrics, {"name": "pilot"})
    assert "'before' figures are in-sample" in capsys.readouterr().out
    _print_summary({**metrics, "corpus": {"name": "other", "hash": "g"}}, {"name": "other"})
    assert "in-sample" not in capsys.readouterr().out


def test_finetune_keeps_the_bundles_interval_settings_and_records_the_teacher(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hunt: the fine-tuned bundle took conf/finetune.yaml's alpha 0.1 and guard thresholds
    [60, 70, 80] over the student's 0.3 and [55]; on a corpus labelled by another teacher it
    recorded the config's default teacher, without a word; a relative ckpt was looked for in
    the job's directory (hydra.job.chdir) while corpus_dir was read from the launch one; an
    input with no finite value went unsaid; +loss.tau on a Huber student was reported as
    overridden and did nothing; +conformal.method was ignored."""
    from vmafdistill.corpus.tables import atomic_write_json, write_table
    from vmafdistill.students.bundle import load_bundle
    from vmafdistill.testing.synthetic import make_samples

    source = synthetic_corpus(tmp_path / "a", n_sources=2, n_shots=8)
    assert run_train(source, tmp_path / "src", "baselines=[]", "optim.max_epochs=30",
                     "conformal.alpha=0.3", "guard_thresholds=[55]") == 0
    other = synthetic_corpus(tmp_path / "b", n_sources=2, n_shots=8, seed=7, name="other")
    samples = make_samples(n_sources=2, n_shots=8, seed=7, name="other")
    samples["entropy"] = np.nan  # an input of scalefree
    write_table(samples, other / "tables" / "samples.parquet")
    manifest = json.loads((other / "corpus.json").read_text())
    manifest["config"] = {"teacher": {"name": "torch", "model": "vmaf_v1.0.16_3d0h"}}
    atomic_write_json(other / "corpus.json", manifest)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert finetune("ckpt=src/student.pt", f"corpus_dir={other}", "optim.max_epochs=10",
                    "hydra.job.chdir=true", f"hydra.run.dir={tmp_path / 'ft'}") == 0
    err = capsys.readouterr().err
    assert "trained on vmaf_v0.6.1 exact labels" in err and "vmaf_v1.0.16_3d0h exact labels" \
        in err, err
    # the mode labels too: exact labels toward a float-labelled corpus went unsaid
    from vmafdistill.students.finetune import _note_corpus_gaps

    model, src_meta = load_bundle(tmp_path / "src" / "student.pt")
    x = np.zeros((2, len(src_meta["feature_names"])))
    _note_corpus_gaps(src_meta, model, src_meta["feature_names"], x,
                      {"config": {"teacher": {"model": "vmaf_v0.6.1", "mode": "float"}}},
                      other)
    assert "corpus " + str(other) + " holds vmaf_v0.6.1 float labels" in \
        capsys.readouterr().err
    assert "no finite value of entropy" in err, err
    _, meta = load_bundle(tmp_path / "ft" / "student.pt")
    assert meta["conformal"]["alpha"] == 0.3 and meta["guard_thresholds"] == [55]
    # how the held-out figures were measured travels to the card, as a trained bundle's
    ft_metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    for key in ("cv", "n_folds", "n_dropped", "cv_shared_scenes"):
        assert meta["metrics"][key] == ft_metrics[key], key
    assert meta["config"]["teacher"]["model"] == "vmaf_v1.0.16_3d0h"
    assert meta["finetuned_from"]["bundle"] == str(tmp_path / "src" / "student.pt")
    # given values win
    assert finetune(f"ckpt={tmp_path / 'src' / 'student.pt'}", f"corpus_dir={other}",
                    "optim.max_epochs=10", "conformal.alpha=0.2", "guard_thresholds=[50,65]",
                    f"hydra.run.dir={tmp_path / 'ft2'}") == 0
    _, meta = load_bundle(tmp_path / "ft2" / "student.pt")
    assert meta["conformal"]["alpha"] == 0.2 and meta["guard_thresholds"] == [50, 65]
    # the unit: an empty list is the bundle's choice, twins from before they were refused
    # are read once, conformal=null is the bundle's alpha (a review: a traceback)
    from vmafdistill.students.finetune import _interval_settings

    meta_in = {"guard_thresholds": [], "conformal": {"alpha": 0.3}}
    assert _interval_settings({"conformal": None}, meta_in) == ([], 0.3)
    assert _interval_settings({}, {"guard_thresholds": [70, 70.0]})[0] == [70.0]
    assert _interval_settings({}, {}) == ([60, 70, 80], 0.1)
    for extra, msg in (("+loss.tau=2", "loss.tau: the huber loss the student was trained "
                                       "with takes no such setting"),
                       ("+conformal.method=nested", "unknown key(s) ['method']")):
        capsys.readouterr()
        assert finetune(f"ckpt={tmp_path / 'src' / 'student.pt'}", f"corpus_dir={other}",
                        extra, f"hydra.run.dir={tmp_path / 'bad'}") == 2
        assert msg in capsys.readouterr().err, extra


def test_the_shipped_student_names_a_corpus_of_another_teacher(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A hunt: `finetune ckpt=default` on a float-labelled corpus said nothing (a trained
    bundle's run said "trained on vmaf_v0.6.1 exact labels"): the shipped card recorded no
    teacher. It learnt libvmaf's default, exact-mode v0.6.1 labels, and its card says so."""
    from vmafdistill.edge.card import card_path_for, read_card
    from vmafdistill.students.finetune import _note_corpus_gaps
    from vmafdistill.students.shipped import SHIPPED_ONNX, bundle_from_onnx

    model, _, meta = bundle_from_onnx(SHIPPED_ONNX)
    assert meta["config"]["teacher"] == {"model": "vmaf_v0.6.1", "mode": "exact"}
    names = list(read_card(card_path_for(SHIPPED_ONNX))["feature_names"])
    x = np.zeros((2, len(names)))
    for mode, noted in (("float", True), ("exact", False)):
        _note_corpus_gaps(meta, model, names, x,
                          {"config": {"teacher": {"model": "vmaf_v0.6.1", "mode": mode}}},
                          tmp_path)
        err = capsys.readouterr().err
        assert ("trained on vmaf_v0.6.1 exact labels" in err) == noted, (mode, err)
    # `ckpt=default` is the shipped .pt, rebuilt before bundles kept the teacher: its card's
    # (a second hunt: the note came by the .onnx path only); its re-export keeps it too
    from vmafdistill.export import _recipe
    from vmafdistill.students.bundle import load_bundle
    from vmafdistill.students.shipped import resolve_student_source

    pt_model, pt_meta = load_bundle(resolve_student_source("default"))
    assert "teacher" not in (pt_meta.get("config") or {})  # the case: predates the key
    _note_corpus_gaps(pt_meta, pt_model, names, x,
                      {"config": {"teacher": {"model": "vmaf_v0.6.1neg", "mode": "exact"}}},
                      tmp_path)
    assert "trained on vmaf_v0.6.1 exact labels" in capsys.readouterr().err
    assert _recipe(pt_meta)["teacher"] == {"model": "vmaf_v0.6.1", "mode": "exact"}
    # a same-graph card without the keys where the recorded relative path points (an older
    # checkout's): the shipped card still answers (a review)
    from vmafdistill.students.shipped import bundle_teacher, rebuilt_training_domain

    recorded = Path(pt_meta["rebuilt_from"]["onnx"])
    assert not recorded.is_absolute()
    old_card = {k: v for k, v in read_card(card_path_for(SHIPPED_ONNX)).items()
                if k not in ("teacher", "training_domain")}
    (tmp_path / recorded.parent).mkdir(parents=True, exist_ok=True)
    card_path_for(tmp_path / recorded).write_text(json.dumps(old_card))
    import os

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert bundle_teacher(pt_meta) == {"model": "vmaf_v0.6.1", "mode": "exact"}
        assert rebuilt_training_domain(pt_meta)
    finally:
        os.chdir(here)


def test_a_student_of_another_feature_set_version_is_refused_before_the_fit(
        source_run: Path, corpus_b: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A hunt: a student.pt of feature-set version 0 was fine-tuned to the end (its old
    scaler and weights on features defined otherwise), stamped 0 again, and only export
    refused it; a column the corpus lacks named the table, not the student that reads it."""
    from vmafdistill.students.bundle import load_bundle, save_bundle

    model, meta = load_bundle(source_run / "student.pt")
    cfg = meta["student_cfg"]
    save_bundle(tmp_path / "old.pt", model, cfg, {**meta, "feature_set_version": 0})
    assert finetune(f"ckpt={tmp_path / 'old.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tmp_path / 'ft'}") == 2
    err = capsys.readouterr().err
    assert "old.pt: the student was trained on feature-set version 0; this vmafdistill " \
           "computes version" in err
    assert not (tmp_path / "ft" / "student.pt").exists()
    renamed = ["entropy_v2" if n == "entropy" else n for n in meta["feature_names"]]
    assert renamed != meta["feature_names"]
    model.feature_names = renamed  # the bundle's own list (load_bundle reads it)
    save_bundle(tmp_path / "renamed.pt", model, cfg, {**meta, "feature_set": "custom9"})
    assert finetune(f"ckpt={tmp_path / 'renamed.pt'}", f"corpus_dir={corpus_b}",
                    f"hydra.run.dir={tmp_path / 'ft2'}") == 2
    err = capsys.readouterr().err
    assert "missing column(s) entropy_v2 (entropy_v2: inputs of student" in err and \
           "renamed.pt (feature set custom9))" in err


def test_held_out_rows_of_sources_the_student_saw_are_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A hunt: a student fine-tuned on its own training corpus relabelled by another teacher
    (the same encodes and shots, another hash) reported "held-out MAE 4.53 -> 4.01" with no
    note, while every "held-out" row was one of its training rows. Rows of sources whose
    files (sha256) the student was trained on are counted and named."""
    from vmafdistill.corpus.tables import write_table

    def with_sources(corpus: Path, sha: dict[str, str]) -> Path:
        write_table(pd.DataFrame({"source_id": list(sha), "sha256": list(sha.values())}),
                    corpus / "tables" / "sources.parquet")
        return corpus

    seen = synthetic_corpus(tmp_path / "a", n_sources=2, n_shots=8)
    ids = sorted(pd.read_parquet(seen / "tables" / "samples.parquet")["source_id"].unique())
    with_sources(seen, {ids[0]: "1" * 64, ids[1]: "2" * 64})
    assert run_train(seen, tmp_path / "src", "baselines=[]", "optim.max_epochs=20") == 0
    # relabelled: the same sources and shots, labels moved (another hash); one source swapped
    relabelled = with_sources(
        synthetic_corpus(tmp_path / "b", n_sources=2, n_shots=8, shift=-0.5),
        {ids[0]: "1" * 64, ids[1]: "3" * 64})
    capsys.readouterr()
    assert finetune(f"ckpt={tmp_path / 'src' / 'student.pt'}", f"corpus_dir={relabelled}",
                    "optim.max_epochs=5", f"hydra.run.dir={tmp_path / 'ft'}",
                    "summary=true") == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    shared = metrics["heldout_seen_sources"]
    assert shared["sources"] == [ids[0]] and 0 < shared["rows"] <= metrics["n_heldout"], shared
    assert (f"note: {shared['rows']} of {metrics['n_heldout']} held-out rows come from sources "
            f"the student was trained on (the same files, by sha256: {ids[0]})") in out, out
    # another corpus of other files: no note
    other = with_sources(synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=8, seed=7),
                         {ids[0]: "4" * 64, ids[1]: "5" * 64})
    assert finetune(f"ckpt={tmp_path / 'src' / 'student.pt'}", f"corpus_dir={other}",
                    "optim.max_epochs=5", f"hydra.run.dir={tmp_path / 'ft2'}",
                    "summary=true") == 0
    assert "in-sample" not in capsys.readouterr().out
    assert json.loads((tmp_path / "ft2" / "metrics.json").read_text())[
        "heldout_seen_sources"] is None
    # the training corpus rebuilt in its folder since (another hash): its sources table no
    # longer says what the student saw (a review: every source then read as seen)
    with_sources(synthetic_corpus(tmp_path / "a", n_sources=2, n_shots=8, seed=3),
                 {ids[0]: "1" * 64, ids[1]: "3" * 64})
    assert finetune(f"ckpt={tmp_path / 'src' / 'student.pt'}", f"corpus_dir={relabelled}",
                    "optim.max_epochs=5", f"hydra.run.dir={tmp_path / 'ft3'}") == 0
    assert json.loads((tmp_path / "ft3" / "metrics.json").read_text())[
        "heldout_seen_sources"] is None


def test_a_refused_source_corpus_is_named_not_called_missing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A student whose training corpus is there but refused (a table of another
    feature_set_version) was said to have "no card, no corpus": the refusal was swallowed."""
    import logging

    from vmafdistill.corpus.tables import write_table
    from vmafdistill.students.finetune import source_domain
    from vmafdistill.versions import FEATURE_SET_VERSION

    corpus = synthetic_corpus(tmp_path / "a", n_sources=2, n_shots=3)
    table = corpus / "tables" / "samples.parquet"
    samples = pd.read_parquet(table)
    meta = {"corpus": {"name": "a", "dir": str(corpus)}, "feature_names": ["log_bpp", "std_luma"],
            "target": "vmaf"}
    with caplog.at_level(logging.WARNING, logger="vmafdistill"):
        assert source_domain(meta) is not None  # readable: its domain
    samples["feature_set_version"] = FEATURE_SET_VERSION - 1
    write_table(samples, table)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vmafdistill"):
        assert source_domain(meta) is None
    said = caplog.text
    assert "samples.parquet" in said and "no card, no corpus" not in said, said
    # a corpus that is gone: "no card, no corpus" (a review: export's "give --corpus" advice
    # would name the corpus finetune fine-tunes on)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vmafdistill"):
        assert source_domain({**meta, "corpus": {"name": "a", "dir": str(tmp_path / "gone")}}
                             ) is None
    assert "no card, no corpus a" in caplog.text and "--corpus" not in caplog.text
    # there but changed (another hash): named, without export's "give --corpus" advice
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vmafdistill"):
        assert source_domain({**meta, "corpus": {"name": "a", "dir": str(corpus),
                                                  "hash": "0" * 64}}) is None
    assert "differs from the student's" in caplog.text and "--corpus" not in caplog.text


def test_a_student_fine_tuned_twice_keeps_its_first_corpus_as_seen(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A hunt: a student trained on corpus A, fine-tuned on B, then fine-tuned on A again
    reported A's held-out rows as held out (no note, ``heldout_seen_sources`` null): the
    first fine-tune's bundle kept only B as its corpus. Every corpus fitted on travels in
    ``earlier_corpora`` (the bundle's meta, the metrics, the exported card)."""
    from vmafdistill.students.bundle import load_bundle

    a = synthetic_corpus(tmp_path / "a", n_sources=2, n_shots=8)
    b = synthetic_corpus(tmp_path / "b", n_sources=2, n_shots=8, seed=7, name="other")
    assert run_train(a, tmp_path / "src", "baselines=[]", "optim.max_epochs=20") == 0
    assert finetune(f"ckpt={tmp_path / 'src' / 'student.pt'}", f"corpus_dir={b}",
                    "optim.max_epochs=5", f"hydra.run.dir={tmp_path / 'ft1'}") == 0
    _, meta = load_bundle(tmp_path / "ft1" / "student.pt")
    a_hash = json.loads((a / "corpus.json").read_text())["corpus_hash"]
    assert [c["hash"] for c in meta["earlier_corpora"]] == [a_hash]
    capsys.readouterr()
    assert finetune(f"ckpt={tmp_path / 'ft1' / 'student.pt'}", f"corpus_dir={a}",
                    "optim.max_epochs=5", f"hydra.run.dir={tmp_path / 'ft2'}",
                    "summary=true") == 0
    out = capsys.readouterr().out
    assert "'before' figures are in-sample, not held-out" in out, out
    metrics = json.loads((tmp_path / "ft2" / "metrics.json").read_text())
    assert [c["hash"] for c in metrics["earlier_corpora"]] == [a_hash]


def test_a_fine_tune_on_its_own_training_corpus_keeps_the_wider_interval(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A hunt: fine-tuned on its own training corpus, each fold starts from weights fitted to
    its held-out rows; their residuals set q (3.27 where unseen rows needed 6.76: coverage
    0.76 for 0.90), said nowhere but a summary-only note on the *before* figures. The run now
    says so on stderr, records ``heldout_in_sample``, and keeps the source's q where wider.
    On another corpus nothing changes."""
    from vmafdistill.students.bundle import load_bundle

    a = synthetic_corpus(tmp_path / "a", n_sources=2, n_shots=8)
    b = synthetic_corpus(tmp_path / "b", n_sources=2, n_shots=8, seed=7, name="other")
    assert run_train(a, tmp_path / "src", "baselines=[]", "optim.max_epochs=20") == 0
    source_q = load_bundle(tmp_path / "src" / "student.pt")[1]["conformal"]["q"]
    for corpus, name, in_sample in ((a, "self", True), (b, "other", False)):
        capsys.readouterr()
        assert finetune(f"ckpt={tmp_path / 'src' / 'student.pt'}", f"corpus_dir={corpus}",
                        "optim.max_epochs=5", f"hydra.run.dir={tmp_path / name}") == 0
        err = capsys.readouterr().err
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        held = pd.read_parquet(tmp_path / name / "heldout.parquet")
        q_heldout = float(conformal_quantile(np.abs(held["vmaf"] - held["pred"]), 0.1))
        assert metrics["heldout_in_sample"] is in_sample
        assert ("held-out 'after' figures are in-sample too" in err) is in_sample, err
        want = max(source_q, q_heldout) if in_sample else q_heldout
        q = load_bundle(tmp_path / name / "student.pt")[1]["conformal"]["q"]
        assert q == pytest.approx(want, rel=1e-9) == metrics["conformal"]["q"], (q, want)
