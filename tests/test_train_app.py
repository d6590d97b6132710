"""The training app end to end on small synthetic corpora (Hydra -> Lightning -> bundle).

``synthetic_corpus`` (:mod:`vmafdistill.testing.synthetic`) writes a corpus directory in the
corpus writer's format with a known smooth relation between the scale-free features and the
VMAF target; the other training tests import it from here.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vmafdistill.corpus.tables import write_table
from vmafdistill.errors import VmafDistillError
from vmafdistill.features.registry import feature_set
from vmafdistill.testing.synthetic import make_samples, synthetic_corpus, truth  # noqa: F401

torch.set_num_threads(1)

#: Overrides that keep a test run small and quiet.
FAST = [
    "trainer.enable_progress_bar=false",
    "trainer.checkpoint_final=false",
    "optim.max_epochs=150",
    "summary=false",
]
#: FAST for `vmafdistill train` (finetune has no conformal.method): cross-conformal needs no
#: extra fits; the default `nested` calibration has its own test.
TRAIN_FAST = [*FAST, "conformal.method=cross"]


def run_train(corpus: Path, out: Path, *overrides: str) -> int:
    """``vmafdistill train`` on ``corpus`` with its run dir at ``out``."""
    from vmafdistill.cli import main

    return main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={out}", *TRAIN_FAST,
                 *overrides])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert run_train(corpus, out, "baselines=[gbdt50,linear]") == 0
    return out


def test_run_writes_outputs_and_honest_metrics(trained: Path, corpus: Path) -> None:
    from vmafdistill.evaluation.metrics import regression_metrics

    metrics = json.loads((trained / "metrics.json").read_text())
    oof = pd.read_parquet(trained / "oof.parquet")
    samples = pd.read_parquet(corpus / "tables" / "samples.parquet")
    # every sample predicted exactly once, by the fold that held it out
    assert sorted(oof["sample_id"]) == sorted(samples["sample_id"])
    assert metrics["n_folds"] == 5 and oof["fold"].nunique() == 5
    for _, part in oof.groupby("fold"):  # a shot never spans two folds
        others = oof[oof["fold"] != part["fold"].iloc[0]]
        assert not set(part["shot_id"]) & set(others["shot_id"])
    # the recorded metrics are the OOF predictions' metrics
    ref = regression_metrics(oof["vmaf"], oof["pred"])
    assert metrics["oof"]["mae"] == pytest.approx(ref["mae"], rel=1e-9)
    assert metrics["oof"]["plcc"] == pytest.approx(ref["plcc"], rel=1e-9)
    y = samples.set_index("sample_id").loc[oof["sample_id"], "vmaf"].to_numpy()
    np.testing.assert_array_equal(oof["vmaf"].to_numpy(), y)  # the table's, not float32's
    # the student learns the smooth surface: far better than predicting the mean
    mean_mae = float(np.abs(y - y.mean()).mean())
    assert metrics["oof"]["mae"] < 0.35 * mean_mae
    assert metrics["oof"]["plcc"] > 0.95
    fold_plcc = [f["plcc"] for f in metrics["folds"]]
    assert metrics["fold_plcc_std"] == pytest.approx(float(np.std(fold_plcc)), rel=1e-9)
    # baselines on the same folds
    assert set(metrics["baselines"]) == {"gbdt50", "linear"}
    base = pd.read_parquet(metrics["baseline_cache"])
    assert set(base["fold"]) == set(oof["fold"])
    merged = base[base["model"] == "gbdt50"].merge(oof, on="sample_id", suffixes=("_b", ""))
    assert (merged["fold_b"] == merged["fold"]).all()
    # conformal: intervals pred +- q_fold, coverage measured on the held-out folds
    width = (oof["hi"] - oof["lo"]) / 2
    q_by_fold = {f["fold"]: f["q"] for f in metrics["folds"]}
    np.testing.assert_allclose(width, oof["fold"].map(q_by_fold), rtol=1e-9)
    # cross-conformal: fold k's q is the conformal quantile of the *other* folds' OOF residuals
    from vmafdistill.evaluation.conformal import conformal_quantile

    res = np.abs(oof["vmaf"] - oof["pred"])
    for k, q in q_by_fold.items():
        assert q == pytest.approx(conformal_quantile(res[oof["fold"] != k], 0.1), rel=1e-12)
    assert metrics["conformal"]["method"] == "cross"
    assert all(f["n_fit"] == f["n_train"] for f in metrics["folds"])  # nothing held out
    cov = float(((oof["lo"] <= oof["vmaf"]) & (oof["vmaf"] <= oof["hi"])).mean())
    assert metrics["conformal"]["coverage"] == pytest.approx(cov)
    # the final (pooled) q's held-out coverage: each fold covered by the pooled quantile of the
    # other folds, which under cross-conformal is that fold's own q: the same figure
    assert metrics["conformal"]["final_q_coverage"] == pytest.approx(cov)
    assert metrics["conformal"]["nominal"] == pytest.approx(0.9)
    assert metrics["stratified"]["codec"].keys() == {"h264", "h265"}
    assert metrics["objective"] == metrics["oof"]["mae"]


def test_bundle_reproduces_final_model(trained: Path, corpus: Path) -> None:
    from vmafdistill.evaluation.conformal import conformal_quantile
    from vmafdistill.students.bundle import load_bundle

    model, meta = load_bundle(trained / "student.pt")
    names = feature_set("scalefree")
    assert meta["feature_names"] == names and meta["feature_set"] == "scalefree"
    assert meta["corpus"]["name"] == "synthetic"
    samples = pd.read_parquet(corpus / "tables" / "samples.parquet")
    with torch.no_grad():
        pred = model(torch.tensor(samples[names].to_numpy(np.float32))).numpy()
    # fitted on every row: in-sample error well under the OOF error
    assert np.abs(pred - samples["vmaf"].to_numpy()).mean() < 5.0
    # conformal q of the final model = quantile of the pooled OOF residuals
    oof = pd.read_parquet(trained / "oof.parquet")
    q = conformal_quantile(np.abs(oof["vmaf"] - oof["pred"]), meta["conformal"]["alpha"])
    assert meta["conformal"]["q"] == pytest.approx(q)
    # the scaler was fitted on the (transformed) training features
    from vmafdistill.students.models import fit_scaler

    mean, std = fit_scaler(samples[names].to_numpy(), names)
    np.testing.assert_allclose(model.mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(model.std.numpy(), std, rtol=1e-5)
    assert (trained / ".hydra" / "config.yaml").is_file()
    assert (trained / "logs" / "fold0" / "metrics.csv").is_file()


def test_deterministic(corpus: Path, trained: Path, tmp_path: Path) -> None:
    assert run_train(corpus, tmp_path, "baselines=[gbdt50,linear]") == 0
    a = pd.read_parquet(trained / "oof.parquet")
    b = pd.read_parquet(tmp_path / "oof.parquet")
    np.testing.assert_array_equal(a["pred"].to_numpy(), b["pred"].to_numpy())
    # baselines came from the cache the first run wrote
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["baseline_cache"] == json.loads((trained / "metrics.json").read_text())[
        "baseline_cache"]


def test_bad_inputs_are_one_line_errors(corpus: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from vmafdistill.cli import main

    assert main(["train", f"corpus_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'r'}"]) == 2
    assert "not a built corpus" in capsys.readouterr().err
    bad = synthetic_corpus(tmp_path / "bad")
    df = pd.read_parquet(bad / "tables" / "samples.parquet").drop(columns=["log_bpp"])
    write_table(df, bad / "tables" / "samples.parquet")
    assert run_train(bad, tmp_path / "r2") == 2
    err = capsys.readouterr().err
    assert "log_bpp" in err and "samples.parquet" in err


def test_select_features_policies() -> None:
    from vmafdistill.students.datamodule import select_features

    df = make_samples(n_sources=1, n_shots=2)
    names = feature_set("scalefree")
    df.loc[0, "temporal_diff"] = np.nan  # NaN features are kept (imputed in the model)
    x, _, keep = select_features(df, names)
    assert keep.all() and np.isnan(x[0, names.index("temporal_diff")])
    df.loc[1, "vmaf"] = np.nan
    with pytest.raises(VmafDistillError, match="vmaf"):
        select_features(df, names)
    x, y, keep = select_features(df, names, nan_policy="drop")
    assert len(y) == len(df) - 1 and not keep[1]
    df.loc[2, "blockiness"] = np.inf
    with pytest.raises(VmafDistillError, match="blockiness"):
        select_features(df, names, nan_policy="drop")


def test_tensor_batches_shard_and_cover() -> None:
    from vmafdistill.students.datamodule import TensorBatches

    x = torch.arange(10, dtype=torch.float32)[:, None]
    y = torch.arange(10, dtype=torch.float32)
    shards = [TensorBatches(x, y, 2, shuffle=True, seed=3, rank=r, world_size=3) for r in range(3)]
    seen = [torch.cat([b[1] for b in s]) for s in shards]
    assert {len(s) for s in shards} == {2}  # ceil(ceil(10 / 3) / 2) batches on every rank
    assert {len(v) for v in seen} == {4}  # equal shares (padded by wrap-around)
    assert set(torch.cat(seen).tolist()) == set(range(10))
    again = torch.cat([b[1] for b in shards[0]])  # a new epoch reshuffles
    assert not torch.equal(again, seen[0]) or len(again) < 2


def test_nested_conformal_uses_inner_oof_residuals(tmp_path: Path) -> None:
    corpus = synthetic_corpus(tmp_path / "c", n_sources=1, n_shots=6, seed=3)
    out = tmp_path / "run"
    assert run_train(corpus, out, "conformal.method=nested", "conformal.inner_splits=3",
                     "student=logistic", "optim.max_epochs=100", "baselines=[]") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["conformal"]["method"] == "nested"
    assert metrics["conformal"]["group_col"] == "shot_id"  # the cv protocol's group
    for f in metrics["folds"]:
        # every training row got exactly one inner out-of-fold residual; all rows were fitted
        assert f["n_calib"] == f["n_train"] == f["n_fit"]
        assert math.isfinite(f["q"]) and f["q"] > 0
    # 3 inner fits per fold were logged, and none used the fold's test rows (by construction:
    # the inner folds partition the training rows); coverage is measured, not assumed
    assert (out / "logs" / "fold0_inner2").is_dir() and not (out / "logs" / "fold0_inner3").exists()
    oof = pd.read_parquet(out / "oof.parquet")
    cov = float(((oof["lo"] <= oof["vmaf"]) & (oof["vmaf"] <= oof["hi"])).mean())
    assert metrics["conformal"]["coverage"] == pytest.approx(cov)
    assert cov >= 0.7


def test_worst_fold_final_q_covers_every_held_out_source(tmp_path: Path, capsys) -> None:
    """cv=loso + conformal.final_q=worst_fold: the shipped q is the largest per-source quantile
    of the OOF residuals (recomputed here from oof.parquet), pooled the quantile of all of them
    (both recorded, the bundle carries the chosen one); a fold too small for a finite quantile
    is a clear error, not an infinite interval."""
    from vmafdistill.evaluation.conformal import conformal_quantile

    corpus = synthetic_corpus(tmp_path / "c", n_sources=3, n_shots=5, seed=4)
    runs = {}
    for rule in ("pooled", "worst_fold"):
        out = tmp_path / rule
        assert run_train(corpus, out, "cv=loso", "student=logistic",
                         "baselines=[]", f"conformal.final_q={rule}") == 0
        runs[rule] = json.loads((out / "metrics.json").read_text())["conformal"]
    oof = pd.read_parquet(tmp_path / "worst_fold" / "oof.parquet")
    res = (oof["vmaf"] - oof["pred"]).abs()
    per_source = {s: conformal_quantile(res[oof["source_id"] == s].to_numpy(), 0.1)
                  for s in oof["source_id"].unique()}
    assert len(per_source) == 3
    worst = runs["worst_fold"]
    assert worst["final_q_rule"] == "worst_fold"
    assert worst["final_q"] == pytest.approx(max(per_source.values()))
    assert sorted(worst["per_fold_q"].values()) == pytest.approx(sorted(per_source.values()))
    assert worst["pooled_q"] == pytest.approx(conformal_quantile(res.to_numpy(), 0.1))
    assert runs["pooled"]["final_q"] == pytest.approx(worst["pooled_q"])  # same folds, same fit
    # held out: each source covered by the largest quantile of the *other* sources
    for source, cov in worst["final_q_per_fold_coverage"].items():
        rows = oof["fold"] == int(source)
        (held,) = oof.loc[rows, "source_id"].unique()
        q = max(v for s, v in per_source.items() if s != held)
        assert cov == pytest.approx(float((res[rows] <= q).mean()))
    assert len(worst["final_q_per_fold_coverage"]) == 3
    from vmafdistill.students.bundle import load_bundle

    _, meta = load_bundle(tmp_path / "worst_fold" / "student.pt")
    assert meta["conformal"]["q"] == pytest.approx(worst["final_q"])
    capsys.readouterr()
    assert run_train(corpus, tmp_path / "bad", "conformal.final_q=widest") != 0
    assert "conformal.final_q: unknown 'widest'" in capsys.readouterr().err
    assert run_train(corpus, tmp_path / "tiny_alpha", "cv=loso", "student=logistic",
                     "baselines=[]", "conformal.final_q=worst_fold",
                     "conformal.alpha=0.01") != 0  # 40 rows per source, 99 % needs 99
    assert "too few rows" in capsys.readouterr().err


def test_conformal_method_defaults_to_the_cv_protocols_choice(tmp_path: Path) -> None:
    """conformal.method=null: leave-one-source-out calibrates `cross` (its config says so),
    shot-grouped k-fold `nested`; an explicit method still wins."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=3, n_shots=5, seed=6)
    fast = ["student=logistic", "baselines=[]", "optim.max_epochs=40", "conformal.inner_splits=2"]
    want = {("cv=loso", "conformal.method=null"): "cross",
            ("cv=group_shot", "conformal.method=null"): "nested",
            ("cv=loso", "conformal.method=nested"): "nested"}
    for i, (overrides, method) in enumerate(want.items()):
        out = tmp_path / f"r{i}"
        assert run_train(corpus, out, *fast, *overrides) == 0
        assert json.loads((out / "metrics.json").read_text())["conformal"]["method"] == method


#: Hydra launchers a sweep runs under: joblib worker processes, and Ray tasks on a local
#: runtime (hydra-ray-launcher, the `ray` extra).
LAUNCHERS = {
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "ray": ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_a_failed_job_of_a_sweep_fails_the_command(tmp_path: Path, launcher: str) -> None:
    """Sweep jobs in another process (joblib workers, Ray tasks): one job with a bad override
    (a target column the samples table lacks) must make `vmafdistill train -m` exit non-zero
    with its message, while the good job still writes its metrics (the error once vanished in
    the worker and the sweep exited 0). An unknown feature set is refused before any job
    runs: `features` is a config group (test_features.test_train_config_selects_a_feature_set_file).
    """
    import os
    import subprocess

    if launcher == "ray":
        pytest.importorskip("hydra_plugins.hydra_ray_launcher",
                            reason="hydra-ray-launcher is not installed (the ray extra)")
    corpus = synthetic_corpus(tmp_path / "c", n_sources=1, n_shots=6, seed=8)
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "vmafdistill", "train", "-m", f"corpus_dir={corpus}",
         *TRAIN_FAST, "student=logistic", "baselines=[]", "optim.max_epochs=30",
         "target=vmaf,no_such_target", *LAUNCHERS[launcher], f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 2, proc.stderr  # as every error (Hydra's own status was 1)
    assert "no_such_target" in proc.stderr
    # the job's message, not a traceback of Hydra's internals after it
    assert "Traceback" not in proc.stderr and "a sweep job failed" in proc.stderr, proc.stderr
    assert len(list(sweep.glob("*/metrics.json"))) == 1  # the healthy job finished


def test_inner_group_folds() -> None:
    from vmafdistill.students.train import inner_group_folds

    groups = np.repeat([f"g{i}" for i in range(7)], 3)
    folds = inner_group_folds(groups, 5)
    assert len(folds) == 5
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested.tolist()) == list(range(len(groups)))  # each row tested once
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
    assert len(inner_group_folds(groups[:6], 5)) == 2  # capped at the number of groups
    assert inner_group_folds(np.array(["a", "a"]), 5) == []


def test_inner_group_split() -> None:
    from vmafdistill.students.train import inner_group_split

    groups = np.repeat([f"g{i}" for i in range(10)], 3)
    fit, cal = inner_group_split(groups, 0.2, seed=1)
    assert len(cal) == 6 and len(fit) == 24
    assert not set(groups[fit]) & set(groups[cal])
    fit, cal = inner_group_split(np.array(["a", "a"]), 0.2, seed=1)
    assert len(cal) == 0 and len(fit) == 2


def test_wandb_missing_is_a_clear_error(corpus: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    assert run_train(corpus, tmp_path, "logger=wandb") == 2
    assert "pip install wandb" in capsys.readouterr().err


def test_wandb_logs_offline_by_default(corpus: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert run_train(corpus, tmp_path, "logger=wandb") == 0
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert runs, "no offline wandb run written"
    assert all((r / next(iter(r.glob("*.wandb"))).name).is_file() for r in runs)


def test_loss_config_drops_sweep_only_keys() -> None:
    from vmafdistill.students.losses import TemperatureLoss, build_loss
    from vmafdistill.students.train import loss_config

    assert "tau" not in loss_config({"name": "huber", "delta": 5.0, "tau": 2.0})
    # the shipped huber/mse configs carry an inert `tau: null`, so `loss.tau=...` sweeps them
    from omegaconf import OmegaConf

    from vmafdistill.config import conf_dir

    for name in ("huber", "mse"):
        cfg = OmegaConf.to_container(OmegaConf.load(conf_dir() / "loss" / f"{name}.yaml"))
        assert "tau" in cfg and cfg["tau"] is None
        build_loss(loss_config({**cfg, "tau": 4.0}))
    loss = build_loss(loss_config({"name": "temperature", "tau": 2.0}))
    assert isinstance(loss, TemperatureLoss) and loss.tau == pytest.approx(2.0)


def test_checkpoint_final_writes_the_final_fits_checkpoint(tmp_path: Path) -> None:
    """``trainer.checkpoint_final=true`` (the default) leaves checkpoints/final.ckpt, as
    docs/training.md lists: the final fit runs no validation, where Lightning saves by default,
    so the checkpoint is taken at the end of its training epochs."""
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    overrides = [o for o in TRAIN_FAST if not o.startswith("trainer.checkpoint_final")]
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'run'}",
                 *overrides, "optim.max_epochs=20", "baselines=[]",
                 "trainer.checkpoint_final=true"]) == 0
    ckpts = list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert [p.name for p in ckpts] == ["final.ckpt"], ckpts
    # a rerun into the same run dir overwrites it (no final-v1.ckpt beside a stale one)
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'run'}",
                 *overrides, "optim.max_epochs=20", "baselines=[]",
                 "trainer.checkpoint_final=true"]) == 0
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "final.ckpt"]
    import torch

    state = torch.load(ckpts[0], map_location="cpu", weights_only=False)
    assert state["epoch"] >= 19 and state["state_dict"]


def test_a_user_error_is_printed_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vmafdistill.cli import main

    assert main(["train", f"corpus_dir={tmp_path / 'none'}",
                 f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("not a built corpus") == 1, err


def test_a_mistyped_number_is_a_one_line_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    for override, msg in (("optim.lr=abc", "optim.lr='abc': not a number"),
                          ("optim.max_epochs=2.5", "optim.max_epochs=2.5: not a whole number"),
                          ("optim.lr=-1", "optim.lr=-1: must be above 0"),
                          ("optim.max_epochs=0", "optim.max_epochs=0: must be at least 1"),
                          ("optim.weight_decay=-0.1", "optim.weight_decay=-0.1: must be at least"),
                          # read before any fit (a typo failed in numpy after every fold)
                          ("guard_thresholds=[abc]", "guard_thresholds='abc': not a number"),
                          ("seed=abc", "seed='abc': not a number"),
                          # read as 1 and 0.001 (checked_number took bools and numeric text)
                          ("optim.lr=true", "optim.lr=True: not a number (true/false)"),
                          ("optim.lr='0.001'", "optim.lr='0.001': not a number but text"),
                          ("optim.max_epochs='3'", "optim.max_epochs='3': not a number but"),
                          ("optim.lr='inf'", "optim.lr='inf': not a number"),
                          # one inner fold gave no interval at all, with rc 0
                          ("conformal.inner_splits=1", "conformal.inner_splits=1: must be at"),
                          ("conformal.inner_splits=0", "conformal.inner_splits=0: must be at"),
                          ("seed=inf", "seed=inf: not a whole number"),
                          ("seed=-1", "seed=-1: must be at least 0"),
                          ("optim.max_epochs=inf", "optim.max_epochs=inf: not a whole number"),
                          # trained to NaN and failed after every fold
                          ("optim.lr=inf", "optim.lr=inf: not a finite number"),
                          ("guard_thresholds=70", "guard_thresholds=70: a list"),
                          # a traceback from deep inside the fit (a hunt)
                          ("optim.lr=null", "optim.lr=null: needs a number"),
                          ("optim.weight_decay=null", "optim.weight_decay=null: needs a number"),
                          ("optim.max_epochs=null", "optim.max_epochs=null: needs a number"),
                          # a second hunt: duplicates gave twin guard columns, 0 threads ran
                          # as 1, and keys added with "+" composed and were ignored
                          ("guard_thresholds=[70,70.0]", "guard_thresholds: 70.0 is given twice"),
                          ("num_threads=0", "num_threads=0: must be at least 1"),
                          ("+optim.lrr=1", "optim: unknown key(s) ['lrr']"),
                          ("+conformal.alhpa=0.2", "conformal: unknown key(s) ['alhpa']"),
                          ("+cv.n_split=3", "cv (group_kfold): unknown key(s) ['n_split']"),
                          ("+features.colums=[log_bpp]", "unknown key(s) ['colums']"),
                          ("+student.widthz=[4]", "student (mlp): unknown key(s) "
                                                  "['widthz']")):
        assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                     *TRAIN_FAST, "baselines=[]", override]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, err
    # a good run, then a rerun refused for a typo: the good run's outputs stay
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                 *TRAIN_FAST, "baselines=[]", "optim.max_epochs=5"]) == 0
    kept = (tmp_path / "r" / "student.pt").read_bytes()
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                 *TRAIN_FAST, "baselines=[]", "seed=abc"]) == 2
    assert (tmp_path / "r" / "student.pt").read_bytes() == kept
    assert (tmp_path / "r" / "metrics.json").exists()
    capsys.readouterr()
    for overrides, msg in ((["conformal.method=split", "conformal.calib_frac=1.5"],
                            "conformal.calib_frac=1.5: must be below 1"),
                           (["student=soft_tree", "student.depth=2.5"],
                            "student.depth=2.5: not a whole number")):
        assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                     *TRAIN_FAST, "baselines=[]", *overrides]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, err


@pytest.mark.parametrize("sweeper", ["basic", "optuna"])
def test_a_failed_job_of_an_in_process_sweep(tmp_path: Path, sweeper: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A job error in an in-process sweep is printed once as it happens, the other jobs run,
    and the command ends with exit 2 and a count (not the first error again). Under Optuna a
    failed trial used to return NaN, which the sweeper cannot take: a traceback about told
    values, no further trials and no optimization_results.yaml."""
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4, seed=3)
    sweep = tmp_path / "sweep"
    if sweeper == "basic":
        args = ["student=mlp", "student.activation=gelu,bogus"]
    else:
        args = ["hparams_search=optuna", "hydra.sweeper.n_trials=4",
                "student.activation=choice(gelu,bogus)", "hydra.sweeper.sampler.seed=4"]
    rc = main(["train", "-m", f"corpus_dir={corpus}", *TRAIN_FAST, "baselines=[]",
               "optim.max_epochs=5", *args, f"hydra.sweep.dir={sweep}"])
    err = capsys.readouterr().err
    assert rc == 2, err
    failed = err.count("unknown 'bogus'")
    assert failed >= 1 and "Traceback" not in err, err
    assert f"{failed} sweep job{'s' if failed > 1 else ''} failed" in err, err
    done = len(list(sweep.glob("*/metrics.json")))
    assert done == (1 if sweeper == "basic" else 4 - failed) and done >= 1
    if sweeper == "optuna":
        assert (sweep / "optimization_results.yaml").is_file()


def test_a_sweeps_misspelt_group_option_is_one_line_before_any_job(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``train -m student=mpl,logistic`` printed Hydra's 20 lines and exited 1; an Optuna sweep
    of ``n_trials=0`` was an Optuna traceback (a hunt). Each value of a sweep is composed
    before any job runs: one line naming it, exit 2, no job."""
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4, seed=3)
    sweep = tmp_path / "sweep"
    for args, msg in ((["student=logistic,mpl", "loss.tau=1,2"], "Could not find 'student/mpl'"),
                      (["hparams_search=optuna", "hydra.sweeper.n_trials=0"],
                       "hydra.sweeper.n_trials=0: must be at least 1")):
        rc = main(["train", "-m", f"corpus_dir={corpus}", *TRAIN_FAST, *args,
                   f"hydra.sweep.dir={sweep}"])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert not sweep.exists()
    # valid sweeps pass the check as Hydra runs them: quoted options (they were quoted twice:
    # "Could not find 'student/'mlp''"), ranges, list values, an interpolated trial count
    from vmafdistill.config import check_overrides

    for args in (["student='mlp',soft_tree"], ["seed=range(0,3)"], ["seed=range(3,0)"],
                 ["guard_thresholds=[60,70],[80]"], ["+tag=a,b"],
                 ["hparams_search=optuna", "hydra.sweeper.n_trials=${oc.env:NT,2}"]):
        assert check_overrides("train", ["-m", f"corpus_dir={corpus}", *args]) is None


def test_a_sweeps_setting_without_m_is_refused(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``train hparams_search=optuna hydra.sweeper.n_trials=5`` (no -m) trained one run and
    ignored the search, exit 0; so were a launcher, a sweep directory or sampler given to one
    run. Refused in one line, before any work, saying they take effect with -m. Sweeps
    however asked for pass (a review: ``--multi``, ``++hydra.mode=RunMode.MULTIRUN`` and a
    config's own ``hydra.mode: MULTIRUN`` were refused), a config's single run is checked in
    its task, and the Python API refuses them too (one call, one run)."""
    from vmafdistill import api
    from vmafdistill.cli import main

    none = f"corpus_dir={tmp_path / 'none'}"  # a run that got past the check stops at once
    for command, args in (("train", ["hparams_search=optuna", "hydra.sweeper.n_trials=5"]),
                          ("train", ["hydra.sweeper.n_trials=5"]),
                          ("train", ["hydra/sweeper=optuna", "hydra/sweeper/sampler=grid"]),
                          ("train", ["hydra.sweep.dir=x"]), ("train", ["hydra/launcher=joblib"]),
                          ("train", ["+hydra.launcher.ray.init.num_cpus=2"]),
                          ("finetune", ["ckpt=default", "hydra.launcher.n_jobs=2"])):
        rc = main([command, none, *args])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1, (rc, err)
        first = next(a for a in args if not a.startswith("ckpt="))
        assert err.strip() == (
            f"vmafdistill {command}: error: {first}: a sweep's setting, which takes effect with "
            "-m (--multirun); without it one run would train and ignore it"), err
    assert not (tmp_path / "x").exists()
    # printing the composed config is no run: the sweeper's settings may be looked at
    assert main(["train", "--cfg", "hydra", "hparams_search=optuna"]) == 0
    assert "n_trials: 30" in capsys.readouterr().out
    with pytest.raises(VmafDistillError, match="hparams_search=optuna: a sweep's setting"):
        api.train(tmp_path / "none", tmp_path / "api", "hparams_search=optuna")
    own = tmp_path / "conf" / "experiment"
    own.mkdir(parents=True)
    (own / "lrsweep.yaml").write_text("# @package _global_\nhydra: {mode: MULTIRUN}\n")
    (own / "one.yaml").write_text("# @package _global_\nseed: 1\n")
    sweep = f"hydra.sweep.dir={tmp_path / 'sweep'}"
    for args in (["--multi"], ["++hydra.mode=RunMode.MULTIRUN"],
                 ["-cd", str(tmp_path / "conf"), "experiment=lrsweep"]):
        assert main(["train", *args, none, sweep, "optim.lr=0.01,0.03"]) == 2
        err = capsys.readouterr().err
        assert "a sweep's setting" not in err and "not a built corpus" in err, (args, err)
    # a config's single run: checked in its task
    assert main(["train", "-cd", str(tmp_path / "conf"), none, sweep,
                 f"hydra.run.dir={tmp_path / 'one'}", "experiment=one"]) == 2
    assert f"{sweep}: a sweep's setting" in capsys.readouterr().err


def test_a_study_storage_optuna_cannot_open_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``hydra.sweeper.storage=sqlite:///...`` with the sweeper's Optuna 2.10 and SQLAlchemy 2
    installed: a bare AssertionError traceback from Optuna's schema check, before any trial.
    Refused in one line naming both versions, before any work; where SQLAlchemy is older than
    2 (Optuna 2's own) it passes, and so do the in-memory default and a redis storage."""
    from importlib.metadata import version

    from vmafdistill.cli import main
    from vmafdistill.students import app

    db = tmp_path / "study.db"
    argv = ["train", "-m", "hparams_search=optuna", f"hydra.sweeper.storage=sqlite:///{db}",
            f"corpus_dir={tmp_path / 'none'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    broken = {"optuna": (2, 10, 1), "sqlalchemy": (2, 1, 9)}
    if not (version("optuna").startswith("2.")
            and int(version("sqlalchemy").split(".")[0]) >= 2):
        monkeypatch.setattr(app, "_version", broken.get)  # not such a pair here: as if it were
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, (rc, err)
    assert "the Optuna sweeper's Optuna 2." in err and "needs SQLAlchemy<2" in err, err
    assert not db.exists() and not (tmp_path / "sweep").exists()
    monkeypatch.setattr(app, "_version", broken.get)
    for ok in ("hydra.sweeper.storage=null", "hydra.sweeper.storage=redis://localhost:6379"):
        app._refuse_a_storage_optuna_cannot_open(["-m", ok])
    monkeypatch.setattr(app, "_version", {"optuna": (2, 10, 1), "sqlalchemy": (1, 4, 54)}.get)
    app._refuse_a_storage_optuna_cannot_open(argv[1:])


def test_an_optuna_sweep_whose_every_trial_failed_names_no_best(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every trial failed: the sweeper still wrote a "best" trial with value inf to
    optimization_results.yaml. The file is removed and the error says why."""
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4, seed=3)
    sweep = tmp_path / "sweep"
    rc = main(["train", "-m", f"corpus_dir={corpus}", *TRAIN_FAST, "baselines=[]",
               "optim.max_epochs=5", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
               "student.activation=bogus", f"hydra.sweep.dir={sweep}"])
    err = capsys.readouterr().err
    assert rc == 2 and "2 sweep jobs failed" in err, err
    assert "every trial failed" in err and "optimization_results.yaml removed" in err, err
    assert not (sweep / "optimization_results.yaml").exists()


def test_too_few_rows_for_the_interval_is_an_error(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A 99 % interval needs >= 99 out-of-fold rows: with fewer the pooled quantile is
    infinite, and the run shipped q = Infinity (every interval [0, 100]) without a word."""
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                 *TRAIN_FAST, "baselines=[]", "optim.max_epochs=5",
                 "conformal.alpha=0.01"]) == 2
    err = capsys.readouterr().err
    assert "conformal.alpha=0.01" in err and "too few" in err and "Traceback" not in err, err
    assert not (tmp_path / "r" / "student.pt").exists()
    # a good run, then a rerun into its directory with too few rows: refused before any fit,
    # the earlier run's outputs stay (they were removed first, then the run failed after CV)
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                 *TRAIN_FAST, "baselines=[]", "optim.max_epochs=5"]) == 0
    kept = (tmp_path / "r" / "student.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                 *TRAIN_FAST, "baselines=[]", "optim.max_epochs=5",
                 "conformal.alpha=0.01"]) == 2
    assert "replacing" not in capsys.readouterr().err
    assert (tmp_path / "r" / "student.pt").read_bytes() == kept
    assert (tmp_path / "r" / "metrics.json").exists()


def test_split_conformal_logs_val_mae_on_its_calibration_rows(tmp_path: Path) -> None:
    """The docs promise val_mae in the fold logs; train passed no validation rows at all.
    With conformal.method=split the calibration rows are validated on."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    assert run_train(corpus, tmp_path / "r", "student=logistic", "baselines=[]",
                     "optim.max_epochs=20", "conformal.method=split",
                     "trainer.check_val_every_n_epoch=10") == 0
    log = pd.read_csv(tmp_path / "r" / "logs" / "fold0" / "metrics.csv")
    assert log["val_mae"].notna().sum() == 2  # epochs 10 and 20
    assert (log["val_mae"].dropna() > 0).all()


def test_every_setting_is_checked_before_an_earlier_run_is_replaced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rerun into a run directory removed the earlier model and metrics, then failed on a
    value only the fit, the interval or the baselines read (optim.lr=-1, alpha=2, an unknown
    baseline after every CV fit, a negative temperature alpha taken as 0, a ZeroDivisionError
    on tau_min == tau_max, n_splits=0 run as 5): each is now one error before anything goes."""
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    run = tmp_path / "r"
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={run}", *TRAIN_FAST,
                 "baselines=[]", "optim.max_epochs=5"]) == 0
    kept = (run / "student.pt").read_bytes()
    capsys.readouterr()
    for overrides, msg in (
            (["optim.lr=-1"], "optim.lr=-1: must be above 0"),
            (["conformal.alpha=2"], "conformal.alpha=2: must be below 1"),
            (["conformal.alpha=abc"], "conformal.alpha='abc': not a number"),
            (["conformal.alpha=null"], "conformal.alpha=None: not a number"),
            (["baselines=[nope]"], "baselines: unknown ['nope']"),
            (["baselines=nope"], "baselines: unknown ['nope']"),
            (["loss=temperature", "loss.alpha=-5"], "loss.alpha=-5: must be at least 0"),
            # trained to NaN and failed after every fold
            (["loss=temperature", "loss.tau=inf"], "loss.tau=inf: not a finite number"),
            (["loss=temperature", "loss.alpha=1", "loss.delta=-1"],
             "loss.delta=-1: must be above 0"),
            (["loss=temperature", "loss.learnable_tau=true", "loss.tau_min=1",
              "loss.tau_max=1"], "a learnable tau needs tau_min < tau_max"),
            (["cv.n_splits=0"], "cv.n_splits=0: must be at least 2"),
            (["cv.n_splits=2.7"], "cv.n_splits=2.7: not a whole number"),
            (["cv=hash", "cv.test_fraction=abc"], "cv.test_fraction='abc': not a number"),
            (["trainer.max_epochs=3"], "trainer.max_epochs=3 differs from optim.max_epochs=5"),
            (["cv=loso", "conformal.method=nested"],
             "fold 0's training rows hold 1 group of 'source_id'"),
            # Lightning's own refusals came at fold 0, as tracebacks, after the deletion
            (["+trainer.gradient_clip_vall=1"], "unexpected keyword argument 'gradient_clip_v"),
            (["+trainer.precision=abc"], "trainer.precision=abc: use one of"),
            # bf16-true failed after every fit (numpy has no bfloat16)
            (["+trainer.precision=bf16-true"], "trainer.precision=bf16-true: use one of"),
            (["+trainer.logger=false"], "trainer.logger: set by the run itself"),
            # fits cut short were reported as fitted (MAE 27.8 where 18.4)
            (["+trainer.max_steps=1"], "trainer.max_steps=1: it ends fits before"),
            (["+trainer.limit_train_batches=1"], "trainer.limit_train_batches=1: it ends"),
            (["+trainer.max_time=00:00:00:01"], "trainer.max_time=00:00:00:01: it ends"),
            (["+trainer.fast_dev_run=true"], "trainer.fast_dev_run=True: it ends"),
            (["+trainer.overfit_batches=1"], "trainer.overfit_batches=1: it ends"),
            (["+trainer.num_nodes=2"], "trainer.num_nodes=2: one node only"),
            # bool("no") is True: the checkpoint was written anyway
            (["trainer.checkpoint_final=maybe"], "trainer.checkpoint_final='maybe': needs"),
            (["trainer.deterministic=maybe"], "trainer.deterministic='maybe': needs"),
            # one q per fold, known from the fold sizes: refused after every fit before
            (["conformal.final_q=worst_fold", "conformal.alpha=0.05"],
             "conformal.final_q=worst_fold: fold(s)")):
        rc = main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={run}", *TRAIN_FAST,
                   "baselines=[]", "optim.max_epochs=5", *overrides])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, (overrides, err)
        assert "replacing" not in err and (run / "student.pt").read_bytes() == kept, overrides


def test_a_rerun_removes_the_earlier_runs_logs_and_checkpoint(tmp_path: Path) -> None:
    """A 2-fold rerun into a 5-fold run's directory left logs/fold2..4 and the old
    checkpoints/final.ckpt beside the new model."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    run = tmp_path / "r"
    assert run_train(corpus, run, "baselines=[]", "optim.max_epochs=5",
                     "trainer.checkpoint_final=true") == 0
    assert (run / "logs" / "fold4").is_dir() and (run / "checkpoints" / "final.ckpt").is_file()
    (run / "logs" / "notes.txt").write_text("mine")  # a user's own: never removed
    (run / "logs" / "server").mkdir()
    assert run_train(corpus, run, "baselines=[]", "optim.max_epochs=5", "cv.n_splits=2") == 0
    assert sorted(p.name for p in (run / "logs").iterdir()) == [
        "final", "fold0", "fold1", "notes.txt", "server"]
    assert not (run / "checkpoints" / "final.ckpt").exists()
    # a first run into a folder with a logs/ of its own removes nothing there
    fresh = tmp_path / "fresh"
    (fresh / "logs").mkdir(parents=True)
    (fresh / "logs" / "server.log").write_text("important")
    assert run_train(corpus, fresh, "baselines=[]", "optim.max_epochs=5", "cv.n_splits=2") == 0
    assert (fresh / "logs" / "server.log").read_text() == "important"


def test_cross_conformal_on_one_fold_says_it_has_no_interval(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """cv=hash with conformal.method=cross: one fold, no other folds to calibrate it on; its
    out-of-fold intervals were NaN without a word."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    assert run_train(corpus, tmp_path / "r", "baselines=[]", "optim.max_epochs=2", "cv=hash",
                     "conformal.method=cross") == 0
    assert "cv hash_split makes one fold: no out-of-fold interval" in capsys.readouterr().err


def test_a_null_cv_setting_is_recorded_as_what_ran(tmp_path: Path) -> None:
    """``cv.n_splits=null`` ran 5 folds but metrics.json said ``n_splits: null``."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    run = tmp_path / "r"
    assert run_train(corpus, run, "baselines=[]", "optim.max_epochs=2", "cv.n_splits=null") == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["cv"]["n_splits"], metrics["n_folds"]) == (5, 5)


def test_folds_too_small_for_their_interval_get_none_not_full_coverage(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """split conformal with alpha=0.05 on folds whose calibration part holds a handful of rows:
    each fold's q was infinite, its interval covered every row and the OOF coverage read
    1.000. Those folds now get no interval, and the run says so."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    assert run_train(corpus, tmp_path / "r", "baselines=[]", "optim.max_epochs=5",
                     "conformal.method=split", "conformal.alpha=0.05") == 0
    err = capsys.readouterr().err
    assert "too few calibration rows" in err, err
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert all(f["q"] is None for f in metrics["folds"])
    assert metrics["conformal"]["coverage"] is None
    oof = pd.read_parquet(tmp_path / "r" / "oof.parquet")
    assert not np.isinf(oof[["lo", "hi"]].to_numpy()).any()


def test_a_repeated_sample_id_is_named(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    table = corpus / "tables" / "samples.parquet"
    df = pd.read_parquet(table)
    write_table(pd.concat([df, df.iloc[:3]], ignore_index=True), table)
    assert run_train(corpus, tmp_path / "r", "baselines=[]", "optim.max_epochs=5") == 2
    err = capsys.readouterr().err
    assert "samples table repeats 3 sample_id(s)" in err and "Traceback" not in err, err


def test_one_baseline_may_be_named_bare() -> None:
    from vmafdistill.students.train import baseline_names

    assert baseline_names({"baselines": "gbdt50"}) == ["gbdt50"]
    assert baseline_names({"baselines": ["gbdt50", "linear"]}) == ["gbdt50", "linear"]
    assert baseline_names({"baselines": None}) == []


def test_a_corpus_choice_that_disagrees_with_corpus_dir_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``corpus=X corpus_dir=Y`` trained on Y and named the run folder after X, without a
    word. Without corpus= (the other tests) a corpus_dir runs as before."""
    import json

    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    built = json.loads((corpus / "corpus.json").read_text())["name"]
    other = "skvideo_mix" if built != "skvideo_mix" else "bbb_pilot"
    base = ["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}", *TRAIN_FAST,
            "baselines=[]", "optim.max_epochs=5"]
    assert main([*base, f"corpus={other}"]) == 2
    err = capsys.readouterr().err
    assert f"corpus={other} and corpus_dir={corpus} (a {built} corpus) disagree" in err, err
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_a_corpus_whose_table_was_edited_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A samples table edited after the build (corpus_dir=, corpus.json unchanged) was
    trained on, and scored against GBDT predictions cached for the old labels (MAE 11.7 where
    a refit gives 1.5); export took it for parity and the training domain. Both refuse it,
    naming the table, as a build that reuses its corpus does."""
    import json

    import pandas as pd

    from vmafdistill.cli import main
    from vmafdistill.corpus.cache import file_sha256
    from vmafdistill.corpus.tables import write_table
    from vmafdistill.export import trained_corpus

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    table = corpus / "tables" / "samples.parquet"
    manifest = json.loads((corpus / "corpus.json").read_text())
    # as a build records them; a table train does not read (frames, often not shared) is
    # not hashed or required
    manifest["tables_sha256"] = {"samples": file_sha256(table), "frames": "0" * 64}
    (corpus / "corpus.json").write_text(json.dumps(manifest))
    (corpus / "corpus.json").write_text(json.dumps(manifest))
    assert trained_corpus({"name": "synthetic"}, corpus)[0] == corpus
    edited = pd.read_parquet(table)
    edited["vmaf"] = edited["vmaf"] * 0.6 + 10
    write_table(edited, table)
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                 *TRAIN_FAST, "baselines=[]", "optim.max_epochs=5"]) == 2
    err = capsys.readouterr().err
    assert f"{table}: not the table corpus.json records (another sha256: edited" in err, err
    assert not (tmp_path / "r" / "metrics.json").exists()
    with pytest.raises(VmafDistillError, match=r"not the table corpus\.json records"):
        trained_corpus({"name": "synthetic"}, corpus)


def test_a_diverged_fit_is_named_at_its_fold(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """optim.lr=1e9 trained to NaN and failed after every fold with "conformal: residuals
    must be finite"; the first fold that diverges now says so, with the likely cause."""
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                 *TRAIN_FAST, "baselines=[]", "optim.max_epochs=30", "optim.lr=1e9"]) == 2
    err = capsys.readouterr().err
    assert "fold 0: the student's predictions are not finite" in err, err
    assert "optim.lr=1000000000.0 too high?" in err and "Traceback" not in err, err


def test_export_finds_the_corpus_a_bundle_was_trained_on_from_any_directory(
        trained: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """export looked for .cache/corpus/<name> under the working directory: from elsewhere, a
    student trained on corpus_dir=... asked to run `vmafdistill corpus`. Bundles record the
    directory; one that does not (older) names --corpus."""
    import torch as _torch

    from vmafdistill.corpus.tables import load_samples
    from vmafdistill.export import export_bundle, load_export_settings

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    card = export_bundle(trained / "student.pt", tmp_path / "m.onnx",
                         settings=load_export_settings())
    assert card["export_metrics"]["n_samples"] == len(load_samples(corpus))
    assert set(card["corpus"]) == {"name", "hash"}  # no local path in a card
    # how the OOF figures were measured (a shot-grouped MAE read as one across content),
    # and the teacher whose labels the student learnt (evaluate labels with it)
    metrics = json.loads((trained / "metrics.json").read_text())
    assert card["metrics"]["cv"] == metrics["cv"] and card["metrics"]["cv"]["group"] == "shot_id"
    for key in ("n_dropped", "n_folds", "cv_shared_scenes"):
        assert card["metrics"][key] == metrics[key], key
    assert card["teacher"] == {"model": "vmaf_v0.6.1", "mode": "exact"}
    payload = _torch.load(trained / "student.pt", weights_only=True)
    payload["meta"]["corpus"].pop("dir")
    older = tmp_path / "older.pt"
    _torch.save(payload, older)
    with pytest.raises(VmafDistillError, match=r"give --corpus \(corpus_dir= in the API\) with "
                                               r"the corpus the student was"):
        export_bundle(older, tmp_path / "m2.onnx", settings=load_export_settings())


def test_export_warns_where_the_card_would_cut_other_shots_than_the_corpus(
        trained: Path, corpus: Path, tmp_path: Path) -> None:
    """A corpus cut with shots.max_len_s=0.75 exported with the default 1 s cut: predict's
    shots were not the training shots, without a word (the pilot then compared 2 of 6)."""
    import json
    import shutil
    import warnings

    from vmafdistill.export import export_bundle, load_export_settings

    default = load_export_settings()["edge"]["shots"]
    other = tmp_path / "c"
    shutil.copytree(corpus, other)
    manifest = json.loads((other / "corpus.json").read_text())
    manifest.setdefault("config", {})["shots"] = {**default, "max_len_s": 0.75}
    (other / "corpus.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match=r"cut with shots\.max_len_s=0\.75 and the card cuts "
                                         r"with 1\.0.*edge\.shots\.max_len_s=0\.75"):
        export_bundle(trained / "student.pt", tmp_path / "m.onnx", corpus_dir=other,
                      settings=load_export_settings())
    manifest["config"]["shots"] = default
    (other / "corpus.json").write_text(json.dumps(manifest))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_bundle(trained / "student.pt", tmp_path / "m.onnx", corpus_dir=other,
                      settings=load_export_settings())


def test_wrong_types_and_strings_for_booleans_are_one_line_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tracebacks (student.widths=abc, loss.margin=abc, num_threads=abc, trainer=gpu without
    CUDA), silent truncation (widths=[8.7] built 8) and strings read as true
    (student.linear_skip=no built the skip path, summary=no printed it): each is one error
    before any fit."""
    import torch as _torch

    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    cases = [("student.widths=abc", "student.widths='abc': needs a list"),
             ("student.widths=[8.7]", "student.widths=8.7: not a whole number"),
             ("student.dropout=abc", "student.dropout='abc': not a number"),
             ("student.linear_skip=no", "student.linear_skip='no': needs true or false"),
             ("student.output_margin=abc", "student.output_margin='abc': not a number"),
             ("loss.margin=abc", "loss.margin='abc': not a number"),
             ("num_threads=abc", "num_threads='abc': not a number"),
             ("summary=no", "summary='no': needs true or false"),
             # read with bool(): "no" shuffled the folds (a hunt)
             ("cv.shuffle=no", "cv.shuffle='no': needs true or false")]
    if not _torch.cuda.is_available():
        cases.append(("trainer=gpu", "trainer.accelerator=gpu: no CUDA device"))
    for override, msg in cases:
        assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                     *TRAIN_FAST, "baselines=[]", "optim.max_epochs=5", override]) == 2, override
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (override, err)
    # loss.learnable_tau=no trained a learnable tau (bool("no") is True)
    assert main(["train", f"corpus_dir={corpus}", f"hydra.run.dir={tmp_path / 'r'}",
                 *TRAIN_FAST, "baselines=[]", "optim.max_epochs=5", "loss=temperature",
                 "loss.learnable_tau=no"]) == 2
    assert "loss.learnable_tau='no': needs true or false" in capsys.readouterr().err
    # an empty corpus_dir (an unset shell variable) trained on the default corpus, and an
    # empty or null paths.cache_dir built it at / or under ./None
    for override, msg in (("corpus_dir=", "corpus_dir: an empty path"),
                          ("paths.cache_dir=''", "paths.cache_dir: an empty path"),
                          ("paths.cache_dir=null", "paths.cache_dir=null: needs a folder")):
        assert main(["train", override, f"hydra.run.dir={tmp_path / 'r'}", *TRAIN_FAST,
                     "baselines=[]"]) == 2, override
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (override, err)
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_runs_on_a_corpus_directory_are_filed_under_its_name() -> None:
    """``corpus_dir=/data/corpus_b`` runs were filed under the default corpus's name
    (outputs/train/bbb_pilot/...), among the pilot's own runs."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import vmafdistill.students.app  # noqa: F401  (registers ${run_label:...} on import)
    from vmafdistill.config import conf_dir

    def run_dirs(config: str, *overrides: str) -> tuple[str, str]:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config, overrides=list(overrides), return_hydra_config=True)
        return (str(OmegaConf.select(cfg, "hydra.run.dir")),
                str(OmegaConf.select(cfg, "hydra.sweep.dir")))

    for config in ("train", "finetune"):
        run, sweep = run_dirs(config, "corpus_dir=/data/corpus_b/")
        assert run.startswith(f"outputs/{config}/corpus_b/"), run
        assert sweep.startswith(f"outputs/{config}/corpus_b/multirun/"), sweep
        run, _ = run_dirs(config, "corpus=skvideo_mix")
        assert run.startswith(f"outputs/{config}/skvideo_mix/"), run


def test_a_corpus_directory_s_teacher_and_dead_columns_are_read_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On ``corpus_dir=`` the bundle recorded the config's default teacher (vmaf_v0.6.1) for a
    v1.0.16-labelled corpus; an input column with no finite value (v1.0.16 computes no vif_*)
    failed in fold 0's fit after an earlier run's model and metrics were deleted."""
    import json

    from vmafdistill.students.bundle import load_bundle

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=8)
    manifest = json.loads((corpus / "corpus.json").read_text())
    v1016 = {"backend": "torch", "model": "vmaf_v1.0.16_3d0h", "mode": "exact"}
    manifest["config"] = {"teacher": v1016}
    (corpus / "corpus.json").write_text(json.dumps(manifest))
    out = tmp_path / "run"
    assert run_train(corpus, out, "baselines=[]", "optim.max_epochs=20") == 0
    _, meta = load_bundle(out / "student.pt")
    assert meta["config"]["teacher"] == v1016
    before = (out / "student.pt").read_bytes()
    samples = pd.read_parquet(corpus / "tables" / "samples.parquet")
    name = feature_set("scalefree")[0]
    samples[name] = np.nan
    write_table(samples, corpus / "tables" / "samples.parquet")
    capsys.readouterr()
    assert run_train(corpus, out, "baselines=[]", "optim.max_epochs=20") == 2
    err = capsys.readouterr().err
    assert f"feature column {name!r} has no finite value in fold 0's training rows" in err
    assert "replacing an earlier run" not in err
    assert (out / "student.pt").read_bytes() == before and (out / "metrics.json").is_file()
    # a student whose features: subset never reads that column trains (finetune and the edge
    # already looked at the read inputs only; train refused the column it would drop)
    kept = [c for c in feature_set("scalefree") if c != name][:2]
    assert run_train(corpus, out, "baselines=[]", "optim.max_epochs=20",
                     f"+student.features=[{','.join(kept)}]") == 0, capsys.readouterr().err
    from vmafdistill.students.models import raw_inputs_read

    model, _ = load_bundle(out / "student.pt")
    assert raw_inputs_read(model) == kept
    x = samples[list(feature_set("scalefree"))].to_numpy(np.float32)
    import torch

    with torch.no_grad():
        assert np.isfinite(model(torch.from_numpy(x)).numpy()).all()


def test_another_target_keeps_the_teacher_vmaf_column_and_plots_the_target(
        tmp_path: Path) -> None:
    """With ``target=vmaf_min`` the oof table's ``vmaf`` column was overwritten with the
    target (the teacher's VMAF lost under its name); the plots read it as the teacher."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=8)
    out = tmp_path / "run"
    assert run_train(corpus, out, "baselines=[]", "optim.max_epochs=20", "target=vmaf_min") == 0
    oof = pd.read_parquet(out / "oof.parquet")
    samples = pd.read_parquet(corpus / "tables" / "samples.parquet").set_index("sample_id")
    rows = samples.loc[oof["sample_id"]]
    # the target as trained on (float32), the teacher's VMAF as in the corpus
    np.testing.assert_allclose(oof["vmaf_min"].to_numpy(), rows["vmaf_min"].to_numpy(),
                               rtol=1e-6)
    np.testing.assert_array_equal(oof["vmaf"].to_numpy(), rows["vmaf"].to_numpy())
    assert (oof["vmaf"] != oof["vmaf_min"]).any()
    assert (out / "plots" / "pred_vs_teacher.png").is_file()


@pytest.mark.parametrize(("command", "override", "needle"), [
    ("train", "studnt=mlp", "Could not override 'studnt'; To append to your config use "
                            "+studnt=mlp"),
    ("train", "student=mlpp", "Could not find 'student/mlpp'; Available options in 'student': "
                              "linear, "),
    ("finetune", "optim.lrr=1", "Could not override 'optim.lrr'"),
    ("corpus", "executor=foo", "Available options in 'executor': local, ray"),
])
def test_a_misspelt_override_is_one_line_with_exit_2(
        command: str, override: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Hydra printed several lines and a pointer to HYDRA_FULL_ERROR, and exited 1."""
    from vmafdistill.cli import main

    assert main([command, override]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(f"vmafdistill {command}: error: "), err
    assert needle in err[0] and "HYDRA_FULL_ERROR" not in err[0]


@pytest.mark.parametrize(("signum", "status", "said"), [(15, 143, ""), (2, 130, "interrupted")])
def test_a_signal_mid_fit_ends_train_with_its_exit_status(
        tmp_path: Path, signum: int, status: int, said: str) -> None:
    """Lightning ended a fit stopped by SIGTERM with exit 0 and no outputs (a SLURM timeout
    read as success; a basic sweep's later jobs never ran) and a Ctrl-C with a silent exit 1.
    Now 143 and 130 ("interrupted"), as the corpus build."""
    import os
    import signal
    import subprocess
    import time

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmafdistill", "train", f"corpus_dir={corpus}",
         f"hydra.run.dir={run}", *TRAIN_FAST, "optim.max_epochs=100000", "baselines=[]"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while not list(run.glob("logs/fold*")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the first fit has started
    assert proc.poll() is None, proc.communicate()[1]
    time.sleep(1.0)
    proc.send_signal(signal.Signals(signum))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert said in err and "Traceback" not in err, err


def test_a_run_directory_another_live_run_writes_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second train into the directory of a live one removed its logs mid-fit and crashed
    it. A live holder's lock is refused by name; a killed one's is taken over; a finished run
    leaves none."""
    import json
    import os
    import socket
    import subprocess

    from vmafdistill.students.train import RUN_LOCK

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    run = tmp_path / "run"
    run.mkdir()
    host = socket.gethostname()
    (run / RUN_LOCK).write_text(json.dumps({"pid": os.getppid(), "host": host}))  # alive
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- the live run's\n")
    assert run_train(corpus, run, "optim.max_epochs=5", "baselines=[]") == 2
    assert f"another run writes here (pid {os.getppid()} on {host})" in capsys.readouterr().err
    # refused before Hydra rewrote the live run's .hydra/ files
    assert (run / ".hydra" / "overrides.yaml").read_text() == "- the live run's\n"
    assert (run / RUN_LOCK).is_file()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (run / RUN_LOCK).write_text(json.dumps({"pid": int(dead), "host": host}))  # killed
    assert run_train(corpus, run, "optim.max_epochs=5", "baselines=[]") == 0
    assert (run / "metrics.json").is_file() and not (run / RUN_LOCK).exists()


def test_a_failed_run_leaves_its_directory_free(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that failed (or a notebook's interrupted ``api.train``) kept its directory
    claimed for the rest of the process: the next run into it from elsewhere was refused."""
    import vmafdistill.api as api
    import vmafdistill.students.train as train
    from vmafdistill.students.train import RUN_LOCK

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)

    def broken(*_a: object, **_k: object) -> None:
        assert (tmp_path / "run" / RUN_LOCK).is_file()  # claimed while it runs
        raise RuntimeError("a fit failed")

    monkeypatch.setattr(train, "cross_validate", broken)
    with pytest.raises(RuntimeError, match="a fit failed"):
        api.train(corpus, tmp_path / "run", "optim.max_epochs=5", "baselines=[]")
    assert not (tmp_path / "run" / RUN_LOCK).exists()


def test_a_signal_the_process_ignores_stays_ignored() -> None:
    """A script's ``vmafdistill train ... &`` ignores SIGINT; the run's own Ctrl-C handler
    replaced that, and a Ctrl-C in the terminal stopped the background run."""
    import signal

    from vmafdistill.signals import interrupts_kept

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_kept():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    with interrupts_kept():
        assert callable(signal.getsignal(signal.SIGINT))
    assert signal.getsignal(signal.SIGINT) is before


def test_handlers_restored_puts_back_what_code_in_the_block_installed() -> None:
    """``ray.init`` installs its own SIGTERM handler (exit 1) and leaves it; a later local
    build in the same process then died with 1, not 143."""
    import signal

    from vmafdistill.signals import handlers_restored

    def foreign(signum: int, frame: object) -> None:  # stands in for Ray's handler
        raise SystemExit(1)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError, match="in the block"), \
            handlers_restored(signal.SIGTERM):
        signal.signal(signal.SIGTERM, foreign)
        raise RuntimeError("failed in the block")
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_job_run_elsewhere_reads_the_corpus_cache_of_its_launch_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray worker (or ``hydra.job.chdir=true``) runs the job in another directory: the
    relative ``.cache`` then named a fresh one there, and every job built the whole corpus."""
    import hydra.utils
    from omegaconf import OmegaConf

    from vmafdistill.students.train import _paths_from_launch_dir

    launch, job = tmp_path / "launch", tmp_path / "job"
    launch.mkdir()
    job.mkdir()
    monkeypatch.setattr(hydra.utils, "get_original_cwd", lambda: str(launch))
    monkeypatch.chdir(job)
    cfg = OmegaConf.create({"paths": {"cache_dir": ".cache"}, "corpus": {"root": "footage"},
                            "out_dir": "${paths.cache_dir}/corpus/x"})
    _paths_from_launch_dir(cfg)
    OmegaConf.resolve(cfg)
    assert cfg.paths.cache_dir == str(launch / ".cache")
    assert cfg.corpus.root == str(launch / "footage")
    assert cfg.out_dir == str(launch / ".cache" / "corpus" / "x")
    absolute = OmegaConf.create({"paths": {"cache_dir": str(tmp_path / "c")}})
    _paths_from_launch_dir(absolute)
    assert absolute.paths.cache_dir == str(tmp_path / "c")
    monkeypatch.chdir(launch)  # run where it was launched: left as given
    same = OmegaConf.create({"paths": {"cache_dir": ".cache"}})
    _paths_from_launch_dir(same)
    assert same.paths.cache_dir == ".cache"


def test_a_corpus_built_with_failed_jobs_is_named_when_given_by_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``train corpus_dir=`` (and ``api.train``) on a corpus whose build failed for some
    sources trained on the rest without a word (a build through train refuses it)."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    manifest = json.loads((corpus / "corpus.json").read_text())
    manifest["failures"] = [{"source_id": "clip7", "variant_id": "*", "error": "unreadable"}]
    (corpus / "corpus.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert run_train(corpus, tmp_path / "r", "baselines=[]", "optim.max_epochs=2") == 0
    err = capsys.readouterr().err
    assert "1 job(s) failed when it was built (sources clip7" in err, err


def test_a_sweep_over_a_corpus_build_setting_is_refused_before_any_job(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-m ladder=a,b`` built each job's corpus into the one directory its name gives: each
    replaced the one before, and the earlier students' exports found another corpus."""
    from vmafdistill.cli import main

    for sweep in (["ladder=pilot,wide"], ["teacher.model=vmaf_v0.6.1,vmaf_v1.0.16_3d0h"],
                  ["corpus=folder", "corpus.root=/a,/b"]):
        assert main(["train", "-m", *sweep, f"hydra.sweep.dir={tmp_path / 's'}"]) == 2
        err = capsys.readouterr().err
        assert "builds a different corpus in every job" in err and "corpus_dir=" in err, err
    assert not (tmp_path / "s").exists()
    from vmafdistill.students.app import _refuse_sweeps_sharing_a_corpus

    # corpora read from directories, or written where the user says, settings that change
    # no table, other corpora, one run: no refusal
    for argv in (["-m", "corpus_dir=/a", "ladder=pilot,wide"],
                 ["-m", "ladder=pilot,wide", "paths.cache_dir=.cache/${ladder.name}"],
                 ["-m", "+corpus_build.workers=1,2"], ["-m", "teacher.threads=1,2"],
                 ["-m", "corpus=bbb_pilot,skvideo_mix", "optim.lr=0.1,0.2"], ["ladder=wide"]):
        _refuse_sweeps_sharing_a_corpus(argv)
    # corpus_dir=null builds the corpus
    with pytest.raises(VmafDistillError, match="over ladder builds a different corpus"):
        _refuse_sweeps_sharing_a_corpus(["-m", "corpus_dir=null", "ladder=pilot,wide"])
    with pytest.raises(VmafDistillError, match="over ladder builds a different corpus"):
        _refuse_sweeps_sharing_a_corpus(["-m", "ladder=pilot,wide", "corpus_build.out_dir=/x"])
    with pytest.raises(VmafDistillError, match=r"`vmafdistill corpus encode\.scale_flags=\.\.\."):
        _refuse_sweeps_sharing_a_corpus(["-m", "+corpus_build.encode.scale_flags=a,b"])


def test_metrics_record_the_whole_student_and_loss_and_a_flat_corpus_is_noted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """metrics.json named the student and loss only ('logistic' for five students, 'huber'
    for two losses) and no seed; a corpus whose labels all lie within 2e-5 reported PLCC
    -0.92 without a word; monotone constraints of which no column is an input of the feature
    set were dropped unsaid."""
    import warnings

    from vmafdistill.corpus.tables import write_table
    from vmafdistill.students.train import note_unused_monotone
    from vmafdistill.testing.synthetic import make_samples

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    samples = make_samples(n_sources=2, n_shots=4)
    samples["vmaf"] = 97.428 + np.arange(len(samples)) * 1e-7
    write_table(samples, corpus / "tables" / "samples.parquet")
    assert run_train(corpus, tmp_path / "r", "baselines=[]", "optim.max_epochs=5",
                     "loss=huber_points", "seed=3") == 0
    assert "every vmaf label lies within" in capsys.readouterr().err
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["seed"] == 3 and m["loss_config"]["space"] == "vmaf"
    assert m["student_config"]["name"] == m["student"]
    names = ["scene_mb_qp", "temporal_std"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        note_unused_monotone({"monotone": {"log_bpp": 1}}, names)
        note_unused_monotone({"monotone": {"log_bpp": 1, "scene_mb_qp": -1}}, names)
        note_unused_monotone({"monotone": {"scene_mb_qp*temporal_std": 1},
                              "interactions": [["scene_mb_qp", "temporal_std"]]}, names)
    assert len(caught) == 1 and "trains unconstrained" in str(caught[0].message)


def test_rows_dropped_by_the_nan_policy_are_said(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``nan_policy=drop`` left rows out with a word only in metrics.json (n_dropped): the
    printed table read as if it covered the whole corpus."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=8)
    table = corpus / "tables" / "samples.parquet"
    samples = pd.read_parquet(table)
    samples.loc[samples.index[:5], "vmaf"] = np.nan
    samples.to_parquet(table)
    out = tmp_path / "run"
    capsys.readouterr()
    assert run_train(corpus, out, "baselines=[]", "optim.max_epochs=5", "nan_policy=drop") == 0
    err = capsys.readouterr().err
    assert f"nan_policy=drop left out 5 of {len(samples)} rows" in err, err
    assert json.loads((out / "metrics.json").read_text())["n_dropped"] == 5


def test_a_logit_loss_and_a_bounded_head_of_other_margins_are_said(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The logit loss inverts a bounded head of its own margin; nothing read both, so
    ``student.output_margin=0`` trained against another inverse without a word."""
    from vmafdistill.students.losses import build_loss
    from vmafdistill.students.train import note_margin_mismatch

    logit = build_loss({"name": "huber", "space": "logit", "delta": 0.5, "margin": 2.0})
    note_margin_mismatch(logit, {"output": "bounded", "output_margin": 0.0})
    assert "loss.margin=2 and student.output_margin=0 differ" in capsys.readouterr().err
    points = build_loss({"name": "huber", "space": "vmaf", "delta": 0.5, "margin": 2.0})
    for loss, student in ((logit, {"output": "bounded", "output_margin": 2.0}),
                          (points, {"output": "linear", "output_margin": 0.0}),
                          (points, {"output": "bounded", "output_margin": 0.0})):
        note_margin_mismatch(loss, student)
    assert capsys.readouterr().err == ""
    # a linear (unbounded) head under a logit loss: no gradient outside (-2, 102), unsaid (a
    # linear student on the pilot: OOF MAE 22.0, 9.7 in points)
    note_margin_mismatch(logit, {"output": "linear", "output_margin": 0.0})
    err = capsys.readouterr().err
    assert "student.output=linear with a logit-space loss" in err and "(-2, 102)" in err, err
    import torch

    from vmafdistill.students.losses import vmaf_logit

    pred = torch.tensor([-21.5, 110.0, 50.0], requires_grad=True)
    (vmaf_logit(pred) - vmaf_logit(torch.tensor([0.0, 100.0, 40.0]))).abs().sum().backward()
    assert pred.grad is not None and pred.grad[:2].eq(0).all() and pred.grad[2] != 0


def test_inputs_missing_on_some_rows_are_said_with_their_codecs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A codec whose headers give no quantizer (VP8) left scene_qp NaN on its rows; the student
    filled them with the training mean without a word."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=8)
    table = corpus / "tables" / "samples.parquet"
    samples = pd.read_parquet(table)
    feature = "log_bpp"
    first = samples["codec"].astype(str).iloc[0]
    samples.loc[samples["codec"].astype(str) == first, feature] = np.nan
    samples.to_parquet(table)
    n = int((samples["codec"].astype(str) == first).sum())
    capsys.readouterr()
    assert run_train(corpus, tmp_path / "run", "baselines=[]", "optim.max_epochs=5") == 0
    err = capsys.readouterr().err
    assert f"note: input {feature} is NaN on {n} of {len(samples)} rows ({first}: {n})" in err, err


def test_yaml_files_read_floats_as_hydra_does_and_sizes_are_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML read ``fps: 2.5e1`` in a recipe as text (Hydra's configs read it as 25.0), which
    the number check then refused; ``"²x3"`` passed the size check's digits and was a
    ValueError; a numpy pair was refused; text ``inf`` was told to drop its quotes."""
    import numpy as np

    from vmafdistill.config import checked_number, checked_size, load_yaml
    from vmafdistill.errors import VmafDistillError

    (tmp_path / "r.yaml").write_text("fps: 2.5e1\nlr: 1e-3\nq: .5\nname: 1e3x\n"
                                     "version: 1.2.3\n")
    monkeypatch.setenv("VMAFDISTILL_CONF", str(tmp_path))  # load_yaml reads conf/<name>
    got = load_yaml("r")
    assert got == {"fps": 25.0, "lr": 0.001, "q": 0.5, "name": "1e3x", "version": "1.2.3"}
    assert checked_size("ref_size", np.array([1280, 720])) == (1280, 720)
    for bad in ("²x3", np.array([[1, 2]]), "1280x"):
        with pytest.raises(VmafDistillError, match="needs WxH"):
            checked_size("ref_size", bad)
    with pytest.raises(VmafDistillError, match=r"^x='inf': not a number$"):
        checked_number("x", "inf", float)


def test_a_bad_fit_setting_is_refused_before_the_corpus_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A hunt: `train ... optim.lr=abc` (or loss.tau=abc, trainer.*) built the whole corpus
    (hours on real footage) and only then said "optim.lr='abc': not a number"; finetune too."""
    import vmafdistill.corpus as corpus_pkg
    from vmafdistill.cli import main

    def corpus_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the corpus was built before the settings were checked")

    monkeypatch.setattr(corpus_pkg, "ensure_corpus", corpus_work)
    for argv, msg in ((["train", "optim.lr=abc"], "optim.lr='abc': not a number"),
                      (["train", "loss=temperature", "loss.tau=abc"], "loss.tau"),
                      (["finetune", "ckpt=default", "optim.lr=abc"],
                       "optim.lr='abc': not a number")):
        assert main([*argv, f"paths.cache_dir={tmp_path / 'cache'}",
                     f"hydra.run.dir={tmp_path / 'run'}"]) == 2, argv
        assert msg in capsys.readouterr().err, argv


def test_the_baselines_read_the_student_s_own_columns(tmp_path: Path) -> None:
    """A student on a ``features:`` subset (an interaction's factors included) was compared
    with sklearn baselines fitted on every column of the feature set (a hunt: a 6-column
    student beside a linear baseline on 17 columns, MAE 3.65 reported where its 6 give
    7.45). The baselines now read the student's raw columns: recomputed here with numpy's
    least squares on the run's own folds."""
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=8)
    out = tmp_path / "run"
    assert run_train(corpus, out, "baselines=[linear]", "optim.max_epochs=20",
                     "student=logistic", "+student.interactions=[[log_bpp,scale_ratio]]",
                     "+student.features=[log_bpp*scale_ratio,sobel_mean]") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    linear = metrics["baselines"]["linear"]
    assert linear["features"] == ["log_bpp", "scale_ratio", "sobel_mean"]
    samples = pd.read_parquet(corpus / "tables" / "samples.parquet").set_index("sample_id")
    oof = pd.read_parquet(out / "oof.parquet")
    x = samples.loc[oof["sample_id"], linear["features"]].to_numpy(np.float64)
    y = samples.loc[oof["sample_id"], "vmaf"].to_numpy(np.float64)
    folds = oof["fold"].to_numpy()
    # a fold's training rows: every row outside it (each row is held out once here)
    assert len(oof) == len(samples)
    assert linear["oof"]["mae"] == pytest.approx(_ols_oof_mae(x, y, folds), rel=1e-9)
    # on every column of the set the figure is another one: the test can fail
    every = samples.loc[oof["sample_id"], list(feature_set("scalefree"))].to_numpy(np.float64)
    assert abs(linear["oof"]["mae"] - _ols_oof_mae(every, y, folds)) > 1e-3


def _ols_oof_mae(x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> float:
    pred = np.empty_like(y)
    for fold in np.unique(folds):
        test = folds == fold
        design = np.column_stack([x[~test], np.ones((~test).sum())])
        coef = np.linalg.lstsq(design, y[~test], rcond=None)[0]
        pred[test] = np.column_stack([x[test], np.ones(test.sum())]) @ coef
    return float(np.abs(pred - y).mean())
