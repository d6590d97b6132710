"""``vmafdistill train -m`` sweeps and ``vmafdistill sweep-report``: table, plots, winner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_train_app import TRAIN_FAST, synthetic_corpus

from vmafdistill.errors import VmafDistillError
from vmafdistill.students.report import pick_winner, sweep_runs, write_report

torch.set_num_threads(1)


def test_winner_rule_closed_form() -> None:
    table = pd.DataFrame({
        "run": ["a", "b", "c", "d", "e"],
        "mae": [1.0, 2.0, 3.0, 1.5, 2.0],
        "fold_plcc_std": [0.5, 0.1, 0.2, 0.3, 0.1],
    })
    # median spread 0.2: a (best MAE) and d are unstable; b and e tie on MAE -> first run "b"
    win, eligible = pick_winner(table)
    assert win == 1
    assert eligible.tolist() == [False, True, True, False, True]
    table.loc[1, "mae"] = np.nan  # a run without a finite MAE is never the winner
    assert pick_winner(table)[0] == 4


def test_of_two_runs_neither_is_left_out_for_its_spread_alone() -> None:
    """The mean of the two middle spreads made the less stable run of every two-run sweep
    ineligible: MAE 20.13 won over 10.94. The upper middle spread keeps both."""
    table = pd.DataFrame({"run": ["0", "1"], "mae": [20.13, 10.94],
                          "fold_plcc_std": [0.010, 0.012]})
    win, eligible = pick_winner(table)
    assert win == 1 and eligible.tolist() == [True, True]
    four = pd.DataFrame({"run": list("0123"), "mae": [4.0, 3.0, 2.0, 1.0],
                         "fold_plcc_std": [0.1, 0.2, 0.3, 0.4]})
    assert pick_winner(four)[1].tolist() == [True, True, True, False]


def test_only_runs_scored_on_the_same_data_compete() -> None:
    """A sweep over corpus_dir crowned a run scored on a 24-row subset (MAE 3.99) over the
    72-row corpus (8.48), and one over target MAE on vmaf_min over MAE on vmaf (a hunt). Only
    runs scored as most runs were compete; the note names the others."""
    from vmafdistill.students.report import _scored_on_notes, scored_on

    def metrics(corpus: str, target: str, n: int, cv: str = "group_kfold") -> dict:
        return {"corpus": {"hash": corpus * 8}, "target": target, "oof": {"n": n},
                "cv": {"name": cv, "n_splits": 5}}

    runs = [metrics("a", "vmaf", 72), metrics("b", "vmaf", 24), metrics("a", "vmaf", 72),
            metrics("a", "vmaf_min", 72), metrics("a", "vmaf", 72, "hash_split")]
    table = pd.DataFrame({"run": [str(i) for i in range(5)],
                          "mae": [8.48, 3.99, 8.0, 2.0, 1.0],
                          "fold_plcc_std": [0.1] * 5,
                          "scored_on": [scored_on(m) for m in runs]})
    win, eligible = pick_winner(table)
    assert win == 2 and eligible.tolist() == [True, False, True, False, False]
    note = _scored_on_notes(table, win)[0]
    assert "only the 2 run(s) scored on corpus aaaaaaaa, target vmaf, cv group_kfold" in note
    assert "1 on corpus bbbbbbbb" in note and "target vmaf_min" in note
    # a seed sweep: unshuffled group k-fold ignores the seed, so its runs share folds and all
    # compete (each run was its own group, and run 0 always won)
    seeds = [{**metrics("a", "vmaf", 72), "cv": {"name": "group_kfold", "n_splits": 5,
                                                 "shuffle": False, "seed": s}} for s in range(3)]
    assert len({scored_on(m) for m in seeds}) == 1
    shuffled = [{**m, "cv": {**m["cv"], "shuffle": True}} for m in seeds]
    assert len({scored_on(m) for m in shuffled}) == 3
    # a tie between two groups goes to the first run's (run "0", listed second here)
    tie = table.iloc[[1, 0]].reset_index(drop=True)
    assert pick_winner(tie)[0] == 1 and not _scored_on_notes(table.iloc[[0, 2]], 0)
    # the median the report prints is the rule's, over the comparable runs alone (it printed
    # the median over every run: 0.305 beside a rule that used 0.284, a hunt)
    from vmafdistill.students.report import median_spread, run_labels

    spread = table.assign(fold_plcc_std=[0.1, 0.9, 0.3, 0.8, 0.7])
    assert median_spread(spread) == 0.3  # of runs 0 and 2: the upper of the two
    assert pick_winner(spread)[1].tolist() == [True, False, True, False, False]
    # the MAE bars' labels say which runs cannot win, and long values stay told apart
    long = table.assign(varying=[f"corpus_dir=/{'x' * 80}/corpus_v{i}" for i in range(5)])
    labels = run_labels(long)
    assert len(set(labels.values())) == 5 and all(len(v) < 100 for v in labels.values())
    assert labels[0].startswith("0: corpus_dir=/x") and labels[0].endswith("corpus_v0")
    assert labels[1].endswith("(not comparable)") and not labels[2].endswith(")")


def test_winner_ties_go_to_the_first_run_in_numeric_order() -> None:
    """Hydra names runs 0..N: a tie between runs 8..11 goes to "8" (sorted as text, "10")."""
    runs = [str(i) for i in range(12)]
    table = pd.DataFrame({"run": runs, "mae": [2.0] * 8 + [1.0] * 4,
                          "fold_plcc_std": [0.1] * 12})
    assert table.loc[pick_winner(table)[0], "run"] == "8"


def test_one_fold_has_no_spread_and_a_spread_needs_two() -> None:
    """A one-fold run (cv=hash) has an undefined fold spread, not 0 (which made it the most
    stable run of any sweep)."""
    from vmafdistill.students.train import summarise_predictions

    rng = np.random.default_rng(0)
    y = rng.uniform(20, 90, 40)
    oof = pd.DataFrame({"vmaf": y, "pred": y + rng.normal(0, 3, 40), "fold": 0})
    one = summarise_predictions(oof, [70])
    assert np.isnan(one["fold_plcc_std"]) and np.isnan(one["fold_mae_std"])
    oof["fold"] = np.arange(40) % 2
    two = summarise_predictions(oof, [70])
    assert two["fold_plcc_std"] > 0 and two["fold_mae_std"] > 0


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path_factory.mktemp("corpus"))
    out = tmp_path_factory.mktemp("sweep")
    argv = ["train", "-m", f"corpus_dir={corpus}", f"hydra.sweep.dir={out}",
            "student=mlp,linear", "baselines=[gbdt50]", *TRAIN_FAST]
    assert main(argv) == 0
    return out


def test_sweep_report(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vmafdistill.cli import main
    from vmafdistill.students.bundle import load_bundle

    runs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert [p.name for p in runs] == ["0", "1"]
    assert main(["sweep-report", str(sweep)]) == 0
    assert "winner" in capsys.readouterr().out
    for name in ("report.md", "report.csv", "winner.json", "mae_by_run.png",
                 "pred_vs_teacher.png", "guard_pr.png"):
        assert (sweep / name).stat().st_size > 0, name
    csv = pd.read_csv(sweep / "report.csv")
    assert sorted(csv["run"].astype(str)) == ["0", "1"]
    for _, row in csv.iterrows():
        m = json.loads((sweep / str(row["run"]) / "metrics.json").read_text())
        assert row["mae"] == pytest.approx(m["oof"]["mae"])
        assert row["fold_plcc_std"] == pytest.approx(m["fold_plcc_std"])
        assert row["f1_70"] == pytest.approx(m["guard"]["70"]["f1"], nan_ok=True)
        assert row["gbdt50_mae"] == pytest.approx(m["baselines"]["gbdt50"]["oof"]["mae"])
        # loss=huber and loss=huber_points both read "huber"; the space column tells them apart
        assert row["loss_space"] == m["loss_config"]["space"]
        assert m["overrides"][-1].startswith("student=") or any(
            o.startswith("student=") for o in m["overrides"])
    # the winner follows the stated rule, recomputed here from the CSV
    spreads = sorted(csv["fold_plcc_std"])
    stable = csv[csv["fold_plcc_std"] <= spreads[len(spreads) // 2]]  # the upper median
    expected = str(stable.sort_values(["mae", "run"]).iloc[0]["run"])
    winner = json.loads((sweep / "winner.json").read_text())
    assert winner["run"] == expected
    assert "median" in winner["rule"]
    assert winner["bundle"] == f"{expected}/student.pt"  # relative: the sweep can move
    _model, meta = load_bundle(sweep / winner["bundle"])
    assert meta["conformal"]["q"] > 0
    assert expected in (sweep / "report.md").read_text()
    # the same linear-student pair on the same folds: one shared baseline cache
    caches = {json.loads((p / "metrics.json").read_text())["baseline_cache"] for p in runs}
    assert len(caches) == 1
    # reached through a symlink, the sweep's winner still names its own bundle
    from vmafdistill.export import resolve_winner

    link = sweep.parent / f"{sweep.name}_link"
    link.symlink_to(sweep, target_is_directory=True)
    assert main(["sweep-report", str(link)]) == 0
    assert json.loads((sweep / "winner.json").read_text())["bundle"] == f"{expected}/student.pt"
    assert resolve_winner(link).resolve() == (sweep / expected / "student.pt").resolve()
    # the sweep run again into the same directory, no sweep-report since: winner.json names
    # the old run's figures; export and finetune took the new bundle in silence
    metrics_path = sweep / expected / "metrics.json"
    rerun = json.loads(metrics_path.read_text())
    rerun["oof"]["mae"] += 1.0
    metrics_path.write_text(json.dumps(rerun))
    with pytest.raises(VmafDistillError, match=r"winner.json: it names run .* now reads MAE "
                                               r".*rerun `vmafdistill sweep-report"):
        resolve_winner(sweep)
    assert main(["sweep-report", str(sweep)]) == 0  # the report made anew: current again
    assert resolve_winner(sweep).is_file()


def test_sweep_report_errors(tmp_path: Path) -> None:
    with pytest.raises(VmafDistillError, match="no training run"):
        write_report(tmp_path)
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "metrics.json").write_text("{not json")
    with pytest.raises(VmafDistillError, match=r"metrics\.json"):
        write_report(tmp_path)
    # not UTF-8, and a truncated winner's oof.parquet: one error each, not a traceback
    (tmp_path / "0" / "metrics.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(VmafDistillError, match=r"metrics\.json: unreadable"):
        write_report(tmp_path)
    (tmp_path / "0" / "metrics.json").write_text(json.dumps(
        {"overrides": [], "oof": {"mae": 1.0}, "fold_plcc_std": 0.01}))
    (tmp_path / "0" / "oof.parquet").write_bytes(b"PAR1" + b"\0" * 46)
    with pytest.raises(VmafDistillError, match=r"oof\.parquet: unreadable"):
        write_report(tmp_path)


def test_optuna_search_minimises_oof_mae(tmp_path: Path) -> None:
    """hparams_search=optuna: trials are full runs; best_value is the best trial's OOF MAE."""
    import yaml

    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "corpus")
    out = tmp_path / "optuna"
    argv = ["train", "-m", "hparams_search=optuna", f"corpus_dir={corpus}",
            f"hydra.sweep.dir={out}", "hydra.sweeper.n_trials=2", "cv=hash", "baselines=[]",
            *(o for o in TRAIN_FAST if not o.startswith("optim.lr")), "optim.max_epochs=30"]
    assert main(argv) == 0
    result = yaml.safe_load((out / "optimization_results.yaml").read_text())
    maes = [json.loads(p.read_text())["oof"]["mae"] for p in sorted(out.glob("*/metrics.json"))]
    assert len(maes) == 2
    assert result["best_value"] == pytest.approx(min(maes))
    assert {"student.widths", "optim.lr", "optim.weight_decay", "loss.tau"} <= set(
        result["best_params"])
    m = json.loads((out / "0" / "metrics.json").read_text())
    assert m["loss"] == "temperature" and m["student"] == "mlp"
    # the report names the sweeper's best trial where its winner rule picks another run
    winner = write_report(out)
    report = (out / "report.md").read_text()
    named = "the sweeper's best trial" in report
    assert named == (winner["metrics"]["oof"]["mae"] != pytest.approx(result["best_value"]))
    # an Optuna sweep stopped before its last trial started: counted, as a grid's are (the
    # report named only the unfinished jobs it could see)
    import shutil

    shutil.rmtree(out / "1")
    winner = write_report(out)
    assert any("1 of the sweep's 2 jobs (the Optuna sweep's n_trials)" in w
               for w in winner["left_out"]), winner["left_out"]


def test_an_optuna_study_is_named_after_the_corpus_it_searches(tmp_path: Path) -> None:
    """The study name used the default corpus config's name whatever ``corpus_dir`` said, so
    two searches on two corpora sharing an Optuna storage (sqlite) joined one study."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from vmafdistill.config import conf_dir, register_resolvers

    register_resolvers()
    names = {}
    for search in ("optuna", "optuna_soft_tree"):
        for corpus in (None, tmp_path / "c" / "kinds_720p"):
            overrides = [f"hparams_search={search}"]
            overrides += [f"corpus_dir={corpus}"] if corpus else []
            with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
                cfg = compose("train", overrides=overrides, return_hydra_config=True)
            names[search, corpus is None] = OmegaConf.select(cfg, "hydra.sweeper.study_name")
            default_name = cfg.corpus.name
    assert names["optuna", True] == f"vmafdistill_{default_name}_mlp"
    assert names["optuna", False] == "vmafdistill_kinds_720p_mlp"
    assert names["optuna_soft_tree", False] == "vmafdistill_kinds_720p_soft_tree"


def test_an_optuna_search_under_another_launcher_goes_on_past_a_failed_trial(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Under joblib (or Ray) a failed trial raised, and the Optuna sweeper (max_failure_rate
    0) ended the search after that batch with Hydra's exit 1. It is now scored inf, the
    search runs every trial, and the command ends with the count of failed trials (exit 2)."""
    import yaml

    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "corpus")
    out = tmp_path / "optuna"
    monkeypatch.chdir(tmp_path)  # a relative sweep directory, as the default one
    argv = ["train", "-m", "hparams_search=optuna", f"corpus_dir={corpus}",
            "hydra.sweep.dir=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
            "optim.weight_decay=choice(-1,0.01)", "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2", "cv=hash", "baselines=[]",
            # jobs that run in their own directory still mark the sweep's (a relative sweep
            # directory put the markers under each job's, and the driver counted none)
            "hydra.job.chdir=true",
            *(o for o in TRAIN_FAST if not o.startswith("optim.lr")), "optim.max_epochs=5"]
    assert main(argv) == 2
    failed = {p.name for p in (out / ".vmafdistill-failed-trials").iterdir()}
    finished = {p.parent.name for p in out.glob("*/metrics.json")}
    assert failed and finished and not failed & finished
    assert len(failed | finished) == 4  # every trial ran
    assert f"{len(failed)} sweep job" in capsys.readouterr().err
    result = yaml.safe_load((out / "optimization_results.yaml").read_text())
    assert result["best_params"]["optim.weight_decay"] == 0.01


def test_inert_tau_is_reported() -> None:
    from vmafdistill.students.report import inert_override_notes

    table = pd.DataFrame({
        "overrides": ["loss=huber loss.tau=1", "loss=temperature loss.tau=1",
                      "loss=mse ++loss.tau=2", "loss=huber"],
        "loss": ["huber", "temperature", "mse", "huber"],
    })
    notes = inert_override_notes(table)
    assert len(notes) == 1 and "inert for huber, mse" in notes[0]
    assert inert_override_notes(table.iloc[[1, 3]]) == []  # the huber run has no tau override
    # `loss=huber,temperature loss.tau=2`: one huber run, nothing repeats it
    one = pd.DataFrame({"overrides": ["loss=huber loss.tau=2", "loss=temperature loss.tau=2"],
                        "loss": ["huber", "temperature"]})
    assert inert_override_notes(one) == []


def test_an_inert_loss_lr_is_reported(tmp_path: Path) -> None:
    """``optim.loss_lr`` steps the loss's own parameters: swept with a loss that learns none
    (``loss=temperature``, a fixed tau) it gave identical runs, and the report said nothing
    (as it does for ``loss.tau``)."""
    import yaml

    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"task": ["optim.loss_lr=0.001,0.5"]}}}))
    for num, lr in enumerate(("0.001", "0.5")):
        fake_job(tmp_path, num, [f"optim.loss_lr={lr}"], 3.096, loss="temperature",
                 learned_loss_params={})
    winner = write_report(tmp_path)
    note = ("`optim.loss_lr` is inert for the runs whose loss learns no parameter of its own "
            "(temperature; the temperature loss learns its tau only with "
            "loss.learnable_tau=true); those runs differ only in it and repeat each other.")
    assert note in winner["notes"], winner["notes"]
    assert f"Note: {note}" in (tmp_path / "report.md").read_text()
    assert pd.read_csv(tmp_path / "report.csv")["loss_learns"].tolist() == [False, False]
    # a learned tau reads it; a run from before learned_loss_params was recorded is not judged
    for num, lr in enumerate(("0.001", "0.5")):
        fake_job(tmp_path, num, [f"optim.loss_lr={lr}"], 3.0 + num, loss="temperature",
                 learned_loss_params={"raw_tau": 0.1, "tau": 1.2})
    assert not any("loss_lr" in n for n in write_report(tmp_path)["notes"])
    for num, lr in enumerate(("0.001", "0.5")):
        fake_job(tmp_path, num, [f"optim.loss_lr={lr}"], 3.0, loss="huber")
    assert not any("loss_lr" in n for n in write_report(tmp_path)["notes"])


def test_report_quotes_the_winners_own_baseline(tmp_path: Path) -> None:
    """The headline's GBDT(50) figure is the winner's folds', not the first run's."""
    for run, mae, gbdt in (("0", 3.0, 2.9), ("1", 1.0, 1.3)):
        d = tmp_path / run
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({
            "overrides": [f"cv={'a' if run == '0' else 'b'}"], "oof": {"mae": mae},
            "fold_plcc_std": 0.01, "baselines": {"gbdt50": {"oof": {"mae": gbdt}}}}))
    write_report(tmp_path)
    assert "GBDT(50) on the same folds: MAE 1.300" in (tmp_path / "report.md").read_text()


def test_runs_that_are_not_this_sweeps_results_are_left_out_and_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rerun into a sweep directory with fewer jobs left the earlier sweep's job 2 in the
    table (it could win, and export shipped it); a job whose rerun stopped at its settings
    check kept the earlier metrics under the new overrides; a failed job vanished without a
    word and its sweep axis read as shared. Each is now left out and named, from the files'
    contents (a copied sweep, with fresh file times, reports the same)."""
    import shutil

    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    sweep = tmp_path / "s"
    base = ["train", "-m", f"corpus_dir={corpus}", f"hydra.sweep.dir={sweep}", "baselines=[]",
            *TRAIN_FAST, "optim.max_epochs=5"]
    assert main([*base, "student=mlp,linear,logistic"]) == 0
    # job 2 (lr=-1) stops at its settings check, in the directory of the earlier logistic run
    assert main([*base, "student=linear", "optim.lr=0.03,0.02,-1"]) != 0
    (sweep / "1" / "metrics.json").unlink()  # as a job that failed or was killed mid-fit
    capsys.readouterr()
    for where in (sweep, tmp_path / "copy"):
        if where != sweep:  # copied file by file in name order: every mtime fresh
            shutil.copytree(sweep, where)
            (where / "multirun.yaml").touch()
        assert main(["sweep-report", str(where)]) == 0
        captured = capsys.readouterr()
        winner = json.loads((where / "winner.json").read_text())
        assert winner["n_runs"] == 1 and winner["run"] == "0", winner
        why = dict(w.split(": ", 1) for w in winner["left_out"])
        assert sorted(why) == ["1", "2"], winner["left_out"]
        assert why["1"].startswith("no training metrics.json")
        # its rerun failed (job_failed.txt), and its metrics.json is the earlier run's
        # (the error quoted: the report said only that the file holds it)
        assert why["2"].startswith("its last run failed (optim.lr=-1: must be above 0)"), why
        assert "left out 2: its last run failed" in captured.err
        report = (where / "report.md").read_text()
        assert "1 run (jobs left out: below)" in report and "Left out: 1: no training" in report
        csv = pd.read_csv(where / "report.csv")
        assert csv["run"].astype(str).tolist() == ["0"]
        assert csv["varying"].tolist() == ["optim.lr=0.03"]  # the failed job's axis
    # a rerun with fewer values: the earlier jobs numbered past this sweep's are not its own,
    # even where their overrides are one of its points
    assert main([*base, "student=linear", "optim.lr=0.03"]) == 0
    winner = write_report(sweep)
    why = dict(w.split(": ", 1) for w in winner["left_out"])
    assert winner["n_runs"] == 1 and sorted(why) == ["1", "2"], winner["left_out"]
    assert "an earlier sweep's" in why["1"], why  # job 2 as before: other overrides
    (sweep / "0" / "metrics.json").unlink()
    with pytest.raises(VmafDistillError, match="no run of this sweep has results"):
        write_report(sweep)

#: ``_target_`` of the sweepers, as a job's ``.hydra/hydra.yaml`` records them.
OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def fake_job(root: Path, num: int, overrides: list[str], mae: float, spread: float = 0.01,
             sweeper: dict | None = None, subdir: str = "${hydra.job.num}",
             folder: str | None = None, **metrics: object) -> Path:
    """A finished sweep job as Hydra and train leave it: ``.hydra/`` (its overrides, and
    hydra.yaml with its number, sweeper and subdir) and a metrics.json (``metrics``: more of
    its keys)."""
    import yaml

    job = root / (folder or str(num))
    (job / ".hydra").mkdir(parents=True, exist_ok=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {
        "job": {"num": num}, "sweeper": sweeper or {"_target_": BASIC},
        "sweep": {"dir": str(root), "subdir": subdir}}}))
    (job / "metrics.json").write_text(json.dumps(
        {"overrides": overrides, "oof": {"mae": mae}, "fold_plcc_std": spread, **metrics}))
    return job


def test_the_sweepers_best_trial_is_named_when_it_is_not_the_winner(tmp_path: Path) -> None:
    """Optuna minimises the MAE alone; the winner rule also asks for a stable fold spread, so
    the two named different runs without a word. A grid sweep run after an Optuna one into
    the same directory left its optimization_results.yaml: the report said the sweeper's best
    trial (no longer there) lost for its fold spread."""
    import yaml

    optuna = {"_target_": OPTUNA, "n_trials": 3}
    for run, mae, spread in (("0", 1.0, 0.05), ("1", 2.0, 0.01), ("2", 3.0, 0.02)):
        fake_job(tmp_path, int(run), [f"optim.lr={run}"], mae, spread, optuna)
    results = tmp_path / "optimization_results.yaml"
    results.write_text("name: optuna\nbest_params:\n  optim.lr: 0\nbest_value: 1.0\n")
    assert write_report(tmp_path)["run"] == "1"
    assert "the sweeper's best trial (MAE 1.000" in (tmp_path / "report.md").read_text()
    results.write_text("name: optuna\nbest_params:\n  optim.lr: 1\nbest_value: 2.0\n")
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "sweeper's best trial" not in report and "optimization_results" not in report
    # a grid sweep after the Optuna one: the file is the earlier sweep's
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"task": ["optim.lr=5,6"]}}}))
    for num, mae, spread in ((0, 3.369, 0.01), (1, 4.0, 0.02)):
        fake_job(tmp_path, num, [f"optim.lr={num + 5}"], mae + 1, spread)
    results.write_text("name: optuna\nbest_params:\n  optim.lr: 0\nbest_value: 3.369\n")
    winner = write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "sweeper's best trial" not in report, report
    assert ("names a best trial (MAE 3.369) that is not among this sweep's results: the file "
            "is an earlier Optuna sweep's") in report, report
    assert any("not among this sweep's results" in n for n in winner["notes"])


def test_an_optuna_sweep_without_records_reads_its_own_results_file(tmp_path: Path) -> None:
    """``hydra.output_subdir=null``: no job writes ``.hydra/``, so no record names the sweeper;
    the report called the sweep's own optimization_results.yaml "an earlier Optuna sweep's
    (the last sweep here was another sweeper's)" (a review). Without a record the file is
    this sweep's where its best trial is one of the runs."""
    import shutil

    for run, mae, spread in (("0", 1.0, 0.05), ("1", 2.0, 0.01), ("2", 3.0, 0.02)):
        shutil.rmtree(fake_job(tmp_path, int(run), [f"optim.lr={run}"], mae, spread,
                               {"_target_": OPTUNA, "n_trials": 3}) / ".hydra")
    (tmp_path / "optimization_results.yaml").write_text(
        "name: optuna\nbest_params:\n  optim.lr: 0\nbest_value: 1.0\n")
    winner = write_report(tmp_path)
    assert winner["run"] == "1"
    report = (tmp_path / "report.md").read_text()
    assert "another sweeper" not in report and "not among" not in report, report
    assert "the sweeper's best trial (MAE 1.000" in report


def test_a_finished_grid_sampler_sweep_is_not_called_stopped(tmp_path: Path) -> None:
    """Optuna's grid sampler lowers n_trials to its grid's size ("Updating num of trials to
    4"), which no file records: sweep-report took the configured n_trials (20) as the count
    and said 16 jobs never started. A finished grid search (its optimization_results.yaml
    names one of its runs) ran every point; an unfinished one at least the points its jobs'
    values span."""
    import shutil

    from vmafdistill.students.report import sweep_runs

    grid = {"_target_": OPTUNA, "n_trials": 20,
            "sampler": {"_target_": "optuna.samplers.GridSampler", "_partial_": True}}
    points = [("[16]", "0.03"), ("[8]", "0.03"), ("[8]", "0.01"), ("[16]", "0.01")]
    for num, (widths, lr) in enumerate(points):
        fake_job(tmp_path, num, [f"student.widths={widths}", f"optim.lr={lr}", "seed=0"],
                 3.0 + num, 0.01, grid)
    (tmp_path / "optimization_results.yaml").write_text(
        "name: optuna\nbest_params:\n  student.widths: '[16]'\n  optim.lr: 0.03\n"
        "best_value: 3.0\n")
    kept, left_out, _ = sweep_runs(tmp_path)
    assert len(kept) == 4 and not left_out, left_out
    # stopped before its last point started (no results file yet)
    (tmp_path / "optimization_results.yaml").unlink()
    shutil.rmtree(tmp_path / "3")
    kept, left_out, _ = sweep_runs(tmp_path)
    assert len(kept) == 3 and left_out == [
        "1 of the sweep's 4 jobs (its grid sampler's points, as far as the values its jobs "
        "took show): no record (no .hydra/ folder, no results): never started (the sweep was "
        "stopped?), or failed under hydra.output_subdir=null"], left_out
    # a one-axis grid stopped between trials: its jobs span every value they took, so the
    # lower bound is met; without the results file the search did not finish (a review: a
    # 4-point grid stopped after 2 read as 2 complete runs)
    for job in ("0", "1", "2"):
        shutil.rmtree(tmp_path / job)
    for num, lr in enumerate(("0.003", "0.01")):
        fake_job(tmp_path, num, [f"optim.lr={lr}", "seed=0"], 3.0 + num, 0.01, grid)
    kept, left_out, _ = sweep_runs(tmp_path)
    assert len(kept) == 2 and len(left_out) == 1 and "did not finish" in left_out[0], left_out


def test_jobs_that_shared_a_folder_are_named_so(tmp_path: Path) -> None:
    """``hydra.sweep.subdir=${student.name}`` over two losses: both jobs wrote one folder, the
    second replacing the first, and sweep-report said the other job never started (the
    sweep was stopped?). It now says the subdir names no folder per job."""
    import yaml

    from vmafdistill.students.report import sweep_runs

    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"task": ["loss=huber,temperature"]},
                   "sweep": {"dir": str(tmp_path), "subdir": "${student.name}"}}}))
    fake_job(tmp_path, 1, ["loss=temperature"], 3.0, subdir="${student.name}", folder="mlp")
    kept, left_out, _ = sweep_runs(tmp_path)
    assert len(kept) == 1 and len(left_out) == 1, left_out
    assert left_out[0].startswith(
        "1 of the sweep's 2 jobs (multirun.yaml): no folder of their own: "
        "hydra.sweep.subdir=${student.name} names no folder per job, so jobs may have shared "
        "one, each replacing the results of the one before"), left_out
    # a folder per job: a job without one never started
    fake_job(tmp_path, 1, ["loss=temperature"], 3.0, subdir="run_${hydra.job.num}",
             folder="mlp")
    assert "names no folder per job" not in sweep_runs(tmp_path)[1][0]


def test_a_sweep_job_into_an_earlier_jobs_folder_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``hydra.sweep.subdir=${student.name}`` over two losses: the second job replaced the
    first's results in their one folder, exit 0, and sweep-report blamed a stopped sweep. The
    second job is refused naming the first and the subdir (the command ends with exit 2); the
    first's results are kept whole (a review: its ``.hydra/`` said ``loss=mse`` and the
    refusal marked its folder failed, so no run was reported) and the report names the
    shared subdir for the missing job."""
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=4)
    sweep = tmp_path / "s"
    rc = main(["train", "-m", f"corpus_dir={corpus}", f"hydra.sweep.dir={sweep}",
               "hydra.sweep.subdir=${student.name}", "student=linear", "loss=huber,mse",
               "baselines=[]", *TRAIN_FAST, "optim.max_epochs=5"])
    err = capsys.readouterr().err
    folder = (sweep / "linear").resolve()
    assert rc == 2 and "1 sweep job failed" in err, err
    said = (f"{folder}: job 0 of this sweep ran in this folder: hydra.sweep.subdir="
            "${student.name} gives several jobs one folder, and this job would replace that "
            "job's results")
    assert said in err, err
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["linear"]
    assert not (folder / "job_failed.txt").exists()
    assert "loss=huber" in (folder / ".hydra" / "overrides.yaml").read_text()
    assert json.loads((folder / "metrics.json").read_text())["loss"] == "huber"
    kept, left_out, _ = sweep_runs(sweep)
    assert [m["loss"] for m in kept] == ["huber"]
    assert len(left_out) == 1 and "hydra.sweep.subdir=${student.name} names no folder per " \
        "job" in left_out[0], left_out


def test_a_sweep_with_sweeper_params_keeps_its_jobs(tmp_path: Path) -> None:
    """Keys a config sweeps through hydra.sweeper.params are in every job's overrides but not
    in multirun.yaml's task list: every run was left out as an earlier sweep's."""
    import yaml

    from vmafdistill.students.report import sweep_runs

    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"task": ["b=5,6"]},
                   "sweeper": {"params": {"a": "1,2", "b": "7"}}}}))
    num = 0
    for a in ("1", "2"):
        for b in ("5", "6"):
            job = tmp_path / str(num)
            (job / ".hydra").mkdir(parents=True)
            overrides = [f"a={a}", f"b={b}"]
            (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
                {"hydra": {"job": {"num": num}}}))
            (job / "metrics.json").write_text(json.dumps(
                {"overrides": overrides, "oof": {"mae": 1.0 + num}, "fold_plcc_std": 0.01}))
            num += 1
    kept, left_out, _ = sweep_runs(tmp_path)
    assert len(kept) == 4 and not left_out, left_out


def test_a_winner_without_oof_predictions_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A winner without ``oof.parquet`` (a copied run) drew blank predicted-vs-teacher and
    guard plots, with no word in the plots, report.md or stderr; a job named by its overrides
    (hydra.sweep.subdir=${hydra.job.override_dirname}) ran its label off the MAE figure."""
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    from vmafdistill.cli import main
    from vmafdistill.students.report import (
        NO_OOF,
        plot_guard_pr,
        plot_pred_vs_teacher,
        report_table,
        run_labels,
        sweep_runs,
    )

    long_name = "student=mlp,features=quant_ti7,loss=temperature,loss.tau=0.5,optim.lr=0.003"
    for run, mae in ((long_name, 2.0), ("b", 3.0)):
        d = tmp_path / run
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"overrides": [f"cv={run[:3]}"],
                                                    "oof": {"mae": mae},
                                                    "fold_plcc_std": 0.01}))
    assert main(["sweep-report", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "note: the winner has no oof.parquet (a copied or older run)" in err, err
    assert "the winner has no oof.parquet" in (tmp_path / "report.md").read_text()
    labels = run_labels(report_table(sweep_runs(tmp_path)[0], tmp_path))
    assert all(len(label.split(": ")[0]) <= 24 for label in labels.values()), labels
    drawn = []
    real_text = plt.Axes.text

    def text(self, *a, **k):
        drawn.append(a[2])
        return real_text(self, *a, **k)

    plt.Axes.text = text
    try:
        plot_pred_vs_teacher(None, tmp_path / "p.png", "t")
        plot_guard_pr(None, [80], tmp_path / "g.png")
    finally:
        plt.Axes.text = real_text
    assert drawn == [NO_OOF, NO_OOF]
    assert mpimg.imread(tmp_path / "p.png").shape[0] > 0


def test_export_refuses_a_winner_the_sweep_no_longer_picks(tmp_path: Path) -> None:
    """A sweep rerun into the same folder with fewer values left the old winner as an earlier
    sweep's job, and `export --winner` took it without a word (sweep-report then named
    another); so did a rerun whose other job now beats it. Both refused; the current winner
    exports."""
    import yaml

    from vmafdistill.export import resolve_winner

    def sweep(values: str, maes: dict[str, float]) -> None:
        (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(
            {"hydra": {"overrides": {"task": [f"student={values}"]}}}))
        for num, (student, mae) in enumerate(maes.items()):
            job = tmp_path / str(num)
            (job / ".hydra").mkdir(parents=True, exist_ok=True)
            overrides = [f"student={student}"]
            (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
                {"hydra": {"job": {"num": num}}}))
            (job / "metrics.json").write_text(json.dumps(
                {"overrides": overrides, "oof": {"mae": mae}, "fold_plcc_std": 0.01}))
            (job / "student.pt").write_bytes(b"x")

    sweep("logistic,linear,mlp", {"logistic": 3.0, "linear": 2.5, "mlp": 2.0})
    assert write_report(tmp_path)["run"] == "2"
    assert resolve_winner(tmp_path) == tmp_path / "2" / "student.pt"
    sweep("logistic,linear", {"logistic": 3.0, "linear": 2.5})  # job 2 stays: an earlier one
    with pytest.raises(VmafDistillError, match=r"names run '2', which is no longer one of "
                       r"the sweep's results in .* \(the sweep was run again\): rerun "
                       r"`vmafdistill sweep-report"):
        resolve_winner(tmp_path)
    assert write_report(tmp_path)["run"] == "1"
    assert resolve_winner(tmp_path) == tmp_path / "1" / "student.pt"
    sweep("logistic,linear", {"logistic": 1.5, "linear": 2.5})  # job 0 now beats it
    with pytest.raises(VmafDistillError, match=r"now pick run '0' \(other results '0'\)"):
        resolve_winner(tmp_path)
    # a winner.json from before it kept the runs' MAEs: compared with the current pick
    older = json.loads((tmp_path / "winner.json").read_text())
    older.pop("runs")
    (tmp_path / "winner.json").write_text(json.dumps(older))
    with pytest.raises(VmafDistillError, match=r"names run '1', but .* now pick run '0'"):
        resolve_winner(tmp_path)
    # a new run that loses leaves the pick as it was
    sweep("logistic,linear", {"logistic": 3.0, "linear": 2.5})
    write_report(tmp_path)
    sweep("logistic,linear,mlp", {"logistic": 3.0, "linear": 2.5, "mlp": 9.0})
    assert resolve_winner(tmp_path) == tmp_path / "1" / "student.pt"
    # a losing run removed since: the pick stands (re-deciding over fewer runs can move the
    # spread median and crown a run that did not win the full sweep)
    sweep("logistic,linear,mlp", {"logistic": 2.0, "linear": 3.0, "mlp": 4.0})
    for num, spread in ((0, 0.05), (1, 0.01), (2, 0.01)):
        m = json.loads((tmp_path / str(num) / "metrics.json").read_text())
        (tmp_path / str(num) / "metrics.json").write_text(json.dumps(
            {**m, "fold_plcc_std": spread}))
    assert write_report(tmp_path)["run"] == "1"
    import shutil

    shutil.rmtree(tmp_path / "2")
    assert resolve_winner(tmp_path) == tmp_path / "1" / "student.pt"


def test_override_values_with_spaces_and_jobs_that_never_started(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Overrides were joined with spaces and split again: ``corpus_dir='/x/my corpus A'``
    read as two tokens, the varying column said ``A'`` and the shared ones listed halves. A
    sweep stopped before some jobs started named a winner of fewer runs without a word."""
    import shutil

    from vmafdistill.cli import main

    # a "|" in a value split its markdown row's cells (every number one column right)
    corpora = [synthetic_corpus(tmp_path / f"my corpus {k}", n_sources=2, n_shots=4)
               for k in ("A", "B|2")]
    sweep = tmp_path / "s"
    axis = ",".join(f"'{c}'" for c in corpora)
    assert main(["train", "-m", f"corpus_dir={axis}", f"hydra.sweep.dir={sweep}",
                 "baselines=[]", *TRAIN_FAST, "optim.max_epochs=5", "student=linear"]) == 0
    table = report_table_of(sweep)
    assert [v.startswith("corpus_dir=") and v.endswith(f"my corpus {k}'")
            for v, k in zip(table["varying"], ("A", "B|2"), strict=True)] == [True, True], table
    report = (sweep / "report.md").read_text()
    rows = [ln for ln in report.splitlines() if ln.startswith("| ")]
    cells = {len(re.split(r"(?<!\\)\|", ln)) for ln in rows}
    assert len(rows) == 3 and len(cells) == 1, rows  # the header and two runs, one width
    assert "my corpus B\\|2" in report
    assert "my corpus" not in report.split("\n")[2], report.split("\n")[2]  # not shared
    shutil.rmtree(sweep / "1")  # never started: the sweep was stopped
    capsys.readouterr()
    assert main(["sweep-report", str(sweep)]) == 0
    err = capsys.readouterr().err
    assert "1 of the sweep's 2 jobs (multirun.yaml): no record" in err, err
    # the axis of a job not started is still an axis, not an override shared by all
    assert "corpus_dir" not in (sweep / "report.md").read_text().split("\n")[2]
    assert pd.read_csv(sweep / "report.csv")["varying"].str.startswith("corpus_dir=").all()
    # hydra.output_subdir=null writes no .hydra/: its jobs are counted by their results
    bare = tmp_path / "bare"
    assert main(["train", "-m", f"corpus_dir='{corpora[0]}'", f"hydra.sweep.dir={bare}",
                 "hydra.output_subdir=null", "seed=1,2", "baselines=[]", *TRAIN_FAST,
                 "optim.max_epochs=5", "student=linear"]) == 0
    capsys.readouterr()
    assert main(["sweep-report", str(bare)]) == 0
    assert "never started" not in capsys.readouterr().err


def report_table_of(sweep: Path) -> pd.DataFrame:
    write_report(sweep)
    return pd.read_csv(sweep / "report.csv")


def test_a_sweep_over_corpora_keeps_its_jobs_in_one_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default sweep directory is named from the corpus, and Hydra names it again in each
    job with the job's corpus: ``-m corpus_dir=a,b`` wrote multirun.yaml under a's name, job 0
    under a's and job 1 under b's, and sweep-report on either saw one run or none."""
    from vmafdistill.cli import main

    first = synthetic_corpus(tmp_path / "corpus_a")
    second = synthetic_corpus(tmp_path / "corpus_b", seed=5)
    monkeypatch.chdir(tmp_path)  # the default sweep directory is relative: outputs/...
    # -m after the overrides (the pinned directory once went after it: "unrecognized")
    argv = ["train", f"corpus_dir={first},{second}", "student=linear", "baselines=[]",
            *TRAIN_FAST, "-m"]
    assert main(argv) == 0
    sweeps = sorted(p.parent for p in (tmp_path / "outputs").rglob("multirun.yaml"))
    assert len(sweeps) == 1 and sweeps[0].parent.parent.name == "corpora", sweeps
    jobs = sorted(p.parent.name for p in (tmp_path / "outputs").rglob("metrics.json"))
    assert jobs == ["0", "1"]
    assert sorted(p.parent for p in (tmp_path / "outputs").rglob("metrics.json")) == [
        sweeps[0] / "0", sweeps[0] / "1"]
    assert main(["sweep-report", str(sweeps[0])]) == 0
    assert json.loads((sweeps[0] / "winner.json").read_text())["n_runs"] == 2


def test_a_rerun_whose_jobs_failed_does_not_report_the_earlier_results(tmp_path: Path) -> None:
    """A sweep run again into its directory, every job failing before training (its corpus
    gone): the earlier run's metrics.json stayed, and sweep-report named the old winner as
    this sweep's. The failed jobs are marked and left out; a good rerun clears the marks."""
    import shutil

    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "corpus")
    out = tmp_path / "sweep"
    argv = ["train", "-m", f"corpus_dir={corpus}", f"hydra.sweep.dir={out}",
            "student=linear,logistic", "baselines=[]", *TRAIN_FAST]
    assert main(argv) == 0
    write_report(out)
    hidden = tmp_path / "corpus_json"
    shutil.move(corpus / "corpus.json", hidden)
    assert main(argv) == 2
    assert sorted(p.parent.name for p in out.glob("*/job_failed.txt")) == ["0", "1"]
    with pytest.raises(VmafDistillError, match="no run of this sweep has results"):
        write_report(out)
    shutil.move(hidden, corpus / "corpus.json")
    assert main(argv) == 0
    assert not list(out.glob("*/job_failed.txt"))
    assert write_report(out)["n_runs"] == 2


def test_an_optuna_sweep_after_a_grid_sweep_in_one_directory_is_reported(
        tmp_path: Path) -> None:
    """Only the grid sweeper writes multirun.yaml: the grid's file stayed beside the Optuna
    trials that replaced its jobs, and sweep-report left every trial out as an earlier
    sweep's ("no run of this sweep has results")."""
    from vmafdistill.cli import main

    corpus = synthetic_corpus(tmp_path / "corpus")
    out = tmp_path / "sweep"
    common = [f"corpus_dir={corpus}", f"hydra.sweep.dir={out}", "cv=hash", "baselines=[]",
              *(o for o in TRAIN_FAST if not o.startswith("optim.lr")), "optim.max_epochs=5"]
    assert main(["train", "-m", "student=linear,logistic", "seed=0,1", *common]) == 0
    assert main(["train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
                 *common]) == 0
    winner = write_report(out)
    # the grid's jobs 2 and 3 stayed beside the two trials: left out, named
    assert winner["n_runs"] == 2, winner
    assert sorted(w.split(":")[0] for w in winner["left_out"]) == ["2", "3"], winner


def test_the_pred_vs_teacher_axes_hold_every_point() -> None:
    """The axes were fixed at 0-100: an out-of-fold prediction of 101.02 or a vmaf_min label
    below 0 was cut at the border, and a corpus at 100 everywhere sat on it."""
    from vmafdistill.students.report import pred_vs_teacher_limits

    oof = pd.DataFrame({"vmaf": [-3.0, 50.0, 100.0], "pred": [1.0, 101.02, np.nan]})
    lo, hi = pred_vs_teacher_limits(oof)
    assert lo < -3.0 and hi > 101.02
    assert pred_vs_teacher_limits(None) == pred_vs_teacher_limits(oof.iloc[:0]) == (-2.0, 102.0)


def test_a_winner_without_a_correlation_is_reported(tmp_path: Path, monkeypatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A winner whose PLCC is NaN (constant labels; null in metrics.json) wrote its report,
    then the summary line was a TypeError traceback and exit 1."""
    from vmafdistill.cli import main
    from vmafdistill.students import report

    monkeypatch.setattr(report, "write_report", lambda path: {
        "metrics": {"oof": {"mae": 0.5, "plcc": None}}, "left_out": [], "n_runs": 2,
        "run": "1", "overrides": ["student=mlp"], "bundle": "1/student.pt"})
    assert main(["sweep-report", str(tmp_path)]) == 0
    assert "winner 1 (student=mlp): MAE 0.500, PLCC n/a" in capsys.readouterr().out


def test_a_prefixed_override_is_an_axis_too(tmp_path: Path) -> None:
    """multirun.yaml keeps an axis's ``+``/``++`` prefix and the runs' overrides were compared
    without it: with one job finished, ``++loss.tau=0.5`` read as shared by all."""
    import yaml

    from vmafdistill.students.report import sweep_axes, varying_overrides

    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {
        "task": ["++loss.tau=0.5,1", "student=mlp,logistic", "seed=3"]}}}))
    assert sweep_axes(tmp_path) == {"loss.tau", "student"}
    run = ["++loss.tau=0.5", "student=mlp", "seed=3"]
    assert varying_overrides([run], [run], sweep_axes(tmp_path)) == [
        "++loss.tau=0.5 student=mlp"]
