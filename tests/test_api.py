"""The Python API's docstring examples run as tests (the loop on a tiny synthetic corpus, the
shipped student loaded), plus fine-tuning the shipped student through the API."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest
import torch

import vmafdistill.api as api
from vmafdistill.testing.synthetic import synthetic_corpus

torch.set_num_threads(1)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(api, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 8
    assert result.failed == 0


def test_compose_applies_overrides_like_the_cli() -> None:
    cfg = api.compose("train", ["student=quant", "optim.lr=0.5"])
    assert cfg.student.name == "logistic" and cfg.optim.lr == 0.5


def test_finetune_result_is_typed(tmp_path: Path) -> None:
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    fit = api.train(corpus, tmp_path / "run", "optim.max_epochs=40", "baselines=[]",
                    "trainer.enable_progress_bar=false", "summary=false")
    ft = api.finetune(fit.bundle, corpus, tmp_path / "ft", "optim.max_epochs=20",
                      "trainer.enable_progress_bar=false", "summary=false")
    assert ft.bundle.is_file() and ft.mae_before >= 0 and ft.mae_after >= 0
    assert ft.metrics["after"]["heldout"]["mae"] == ft.mae_after


def test_pilot_and_export_compose_through_hydra() -> None:
    """`vmafdistill pilot` and `export` take Hydra overrides like the other apps: the pilot's
    corpus overrides reach the corpus config it builds, export's reach the card settings, and a
    misspelt key is an error naming the config."""
    import argparse

    import pytest

    from vmafdistill.cli.pilot import _configs
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.export import load_export_settings

    args = argparse.Namespace(
        config="pilot", out=None, workers=1, no_teacher_check=True,
        overrides=["corpus_overrides=['teacher.model=vmaf_v1.0.16_3d0h']",
                   "train_overrides=['student=mlp']", "corpus_name=skvideo_mix"])
    cfg, corpus_cfg, train_cfg = _configs(args)
    assert cfg["teacher_check"] is False and corpus_cfg["workers"] == 1
    assert corpus_cfg["teacher"]["model"] == "vmaf_v1.0.16_3d0h"
    assert corpus_cfg["out_dir"] == str(Path(cfg["out_dir"]) / "corpus")
    assert train_cfg.student.name == "mlp"
    assert corpus_cfg["corpus"]["name"] == train_cfg.corpus.name == "skvideo_mix"

    # step 3's heading says the cv the run uses (it said "shot-grouped 5-fold" for any)
    from vmafdistill.cli.pilot import cv_phrase

    assert cv_phrase(train_cfg.cv) == "5-fold grouped by shot_id"
    for cv, phrase in (("hash", "one train/test split by hashed shot_id (20% test)"),
                       ("loso", "leave-one-source-out")):
        args.overrides = [f"train_overrides=['cv={cv}']"]
        assert cv_phrase(_configs(args)[2].cv) == phrase

    settings = load_export_settings({"opset": 18}, ["tokens.bands.green=85"])
    assert settings["tokens"]["bands"]["green"] == 85 and settings["opset"] == 18
    assert settings["edge"]["shots"]["threshold"] > 0  # conf/shots/default.yaml composed in
    with pytest.raises(VmafDistillError, match="export"):
        load_export_settings(None, ["tokens.bands.gren=85"])


def test_pilot_refuses_a_predict_rung_outside_its_ladder_before_any_work(
        tmp_path, capsys) -> None:
    from vmafdistill.cli import main

    assert main(["pilot", "--out", str(tmp_path / "p"), "predict_rung=99"]) == 2
    assert "predict_rung=99: the ladder pilot has" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_a_missing_optional_dependency_names_its_extra(monkeypatch, capsys) -> None:
    """In the [edge] install, a command that needs torch (or hydra, pandas ...) says which
    extra to install, in one line; a missing module that is no optional dependency of ours is
    a bug and keeps its traceback."""
    import pytest

    import vmafdistill.cli.score as score_cli
    from vmafdistill.cli import main

    def needs(module: str):
        def run(args):
            raise ModuleNotFoundError(f"No module named '{module}'", name=module)
        return run

    import importlib.util

    real_find_spec = importlib.util.find_spec
    absent = {"torch", "hydra"}  # as in the [edge] install
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in absent else real_find_spec(name, *a))
    monkeypatch.setattr(score_cli, "run", needs("torch"))
    assert main(["score", "a.mp4", "b.mp4"]) == 2
    err = capsys.readouterr().err
    assert "needs torch" in err and "pip install 'vmafdistill[teacher]'" in err
    monkeypatch.setattr(score_cli, "run", needs("hydra.core"))
    assert main(["score", "a.mp4", "b.mp4"]) == 2
    assert "vmafdistill[train]" in capsys.readouterr().err
    monkeypatch.setattr(score_cli, "run", needs("not_a_dependency"))
    with pytest.raises(ModuleNotFoundError):
        main(["score", "a.mp4", "b.mp4"])
    # a missing submodule of an installed package is a bug (a typo), not a missing extra
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)  # torch installed here
    monkeypatch.setattr(score_cli, "run", needs("torch.nn.funtional"))
    with pytest.raises(ModuleNotFoundError):
        main(["score", "a.mp4", "b.mp4"])


def test_pilot_settings_and_json_are_checked_before_any_work(tmp_path, capsys) -> None:
    """Tracebacks (predict_rung=abc, workers=abc, --config corpus), a silent truncation
    (predict_rung=1.5) and a --json that replaced the exported model or failed after the whole
    run are each one error before anything runs."""
    from vmafdistill.cli import main

    out = tmp_path / "p"
    out.mkdir()
    (out / "student.onnx").write_bytes(b"\x08\x07model")
    (tmp_path / "f").write_text("a file where --json's folder should be")
    for args, msg in ((["predict_rung=abc"], "predict_rung='abc': not a number"),
                      (["predict_rung=1.5"], "predict_rung=1.5: not a whole number"),
                      (["workers=abc"], "workers='abc': not a number"),
                      (["--config", "corpus"], "--config corpus: not a pilot config"),
                      (["--json", str(out / "student.onnx")], "pilot's own outputs"),
                      # a hunt: accepted, then lost after the whole run (a folder by then) or
                      # written over step 2's libvmaf corpus manifest
                      (["--json", str(out)], "is the pilot's output folder"),
                      (["--json", str(tmp_path)], "is the pilot's output folder"),
                      (["--json", str(out / "corpus_libvmaf" / "corpus.json")],
                       "pilot's own outputs"),
                      (["--json", str(tmp_path / "f" / "x.json")], "is a file, not a folder"),
                      (["workers=0"], "workers=0: must be at least 1"),
                      (["teacher_check=maybe"], "teacher_check='maybe': needs true or false"),
                      # moving the corpus or run away from --out split the stages (step 1
                      # built one corpus, training read another) or was ignored
                      (["corpus_overrides=['out_dir=/elsewhere']"],
                       "give --out DIR instead"),
                      (["train_overrides=['corpus_dir=/elsewhere']"], "give --out DIR instead"),
                      (["train_overrides=['hydra.run.dir=/x']"], "give --out DIR instead"),
                      # a final read: a search trained one run, unsaid; n_trials was refused
                      # as a move of the run; +executor=ray pointed where the pilot refuses
                      (["train_overrides=['hparams_search=optuna']"],
                       "'hparams_search=optuna' is a sweep's setting: the pilot trains one run"),
                      (["train_overrides=['hydra.sweeper.n_trials=5']"],
                       "is a sweep's setting: the pilot trains one run"),
                      (["train_overrides=['+executor=ray']"],
                       "says how the corpus is built; give it in corpus_overrides")):
        assert main(["pilot", "--out", str(out), *args]) == 2, args
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (args, err)
    assert sorted(p.name for p in out.iterdir()) == ["student.onnx"]
    # an unset $OUT replaced the default pilot's outputs; a folder through a file was a
    # traceback from the corpus build; out_dir=null a TypeError
    for args, msg in ((["--out", ""], "--out: an empty path"),
                      (["--out", str(tmp_path / "f" / "out")], "is a file"),
                      (["out_dir=null"], "out_dir=None: give the pilot's output folder")):
        assert main(["pilot", *args]) == 2, args
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (args, err)
    # a live pilot's folder: refused before its corpus is rebuilt, naming --out
    import json
    import subprocess

    from vmafdistill.students.train import RUN_LOCK, _my_claim

    (out / "train").mkdir()
    other = subprocess.Popen(["sleep", "60"])
    try:
        (out / "train" / RUN_LOCK).write_text(json.dumps({**_my_claim(), "pid": other.pid}))
        assert main(["pilot", "--out", str(out)]) == 2
        assert "another pilot writes here" in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()


def test_pilot_trains_with_the_interrupts_kept(monkeypatch, tmp_path) -> None:
    """Lightning swallowed a SIGTERM during the pilot's training (exit 0, nothing written)
    and a Ctrl-C (a silent exit 1); `vmafdistill train` kept them. The pilot trains under the
    same handlers: SIGTERM is SystemExit(143), not the default, while it trains."""
    import signal
    from types import SimpleNamespace

    import pandas as pd

    import vmafdistill.cli.pilot as pilot
    import vmafdistill.students.train as train
    from vmafdistill.cli import main

    seen = {}

    class StopError(Exception):
        pass

    def fake_train(cfg, run_dir):
        seen["sigterm"] = signal.getsignal(signal.SIGTERM)
        raise StopError

    samples = pd.DataFrame({"shot_id": ["a"]})
    monkeypatch.setattr(pilot, "_corpus", lambda cfg, quiet=False: SimpleNamespace(
        samples=samples))
    monkeypatch.setattr(train, "run", fake_train)
    with pytest.raises(StopError):
        main(["pilot", "--out", str(tmp_path / "p"), "--no-teacher-check"])
    assert seen["sigterm"] not in (signal.SIG_DFL, signal.SIG_IGN, None), seen
    assert signal.getsignal(signal.SIGTERM) is not seen["sigterm"]  # restored after


@pytest.mark.parametrize("target", ["vmaf", "vmaf_min"])
def test_pilot_compares_the_shots_that_span_the_same_frames(monkeypatch, capsys,
                                                           target) -> None:
    """Step 5 zipped the edge's shots with the corpus's by position: with another cut (a
    corpus_overrides shots.* change) edge shot 1 was compared with another shot's label. Then
    by start frame alone (a shot starting alike and ending elsewhere was paired), and always
    with the shots' mean VMAF: a ``target=vmaf_min`` student read MAE 3.12 where its own label
    gives 1.19 (a hunt's pilot)."""
    from types import SimpleNamespace

    import pandas as pd

    import vmafdistill.corpus.build as build
    import vmafdistill.edge.pipeline as pipeline
    import vmafdistill.edge.predictor as predictor
    from vmafdistill.cli.pilot import _predict

    source = {"source_id": "bbb", "width": 64, "height": 36}
    rung = SimpleNamespace(label=lambda w, h: "h264_18p")
    monkeypatch.setattr(build, "cached_encodes", lambda cfg, rung_indices: iter(
        [SimpleNamespace(source=source, rung=rung, path=Path("enc.mp4"))]))
    monkeypatch.setattr(predictor, "Predictor",
                        lambda path: SimpleNamespace(card={"tokens": {}, "target": target}))
    # the edge cut 0-10, 10-16, 16-20; the corpus 0-10, 10-14, 14-20
    rep = SimpleNamespace(
        records=[{"shot": 0, "pred_vmaf": 71.0}, {"shot": 1, "pred_vmaf": 50.0},
                 {"shot": 2, "pred_vmaf": 50.0}],
        rows=[{"start_frame": 0, "stop_frame": 10}, {"start_frame": 10, "stop_frame": 16},
              {"start_frame": 16, "stop_frame": 20}], timings={"total_s": 0.1})
    monkeypatch.setattr(pipeline, "analyze_video", lambda *a, **k: rep)
    samples = pd.DataFrame({"variant_id": "h264_18p", "source_id": "bbb",
                            "start_frame": [0, 10, 14], "stop_frame": [10, 14, 20],
                            "vmaf": [70.0, 90.0, 10.0], "vmaf_min": [68.0, 80.0, 5.0]})
    out = _predict({"predict_rung": -1}, {}, SimpleNamespace(samples=samples), Path("m.onnx"))
    # shot 0 alone: 71 against its own label
    assert out["mae_vs_teacher"] == (1.0 if target == "vmaf" else 3.0)
    assert out["target"] == target
    printed = capsys.readouterr().out
    assert "no corpus shot spans frames 10-16" in printed
    assert "no corpus shot spans frames 16-20" in printed
    assert "1 span the same frames" in printed and f"shot MAE vs teacher ({target})" in printed


def test_notebook_use_leaves_the_process_as_it_found_it(tmp_path: Path, monkeypatch) -> None:
    """A hunt's findings: paths with ( ' , ~ were Hydra grammar errors; one api.train left the
    process single-threaded, deterministic, reseeded, with PL_* variables; a notebook's own
    Hydra was composed from; export overwrote its own bundle; ``"1920x1080"`` became [1, 9];
    a table in another column order predicted other numbers; list overrides were a TypeError."""
    import json
    import os
    import warnings

    import lightning.pytorch  # noqa: F401  (its import-time settings are kept, not undone)
    import pandas as pd
    import pytest
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from vmafdistill.errors import VmafDistillError

    corpus = synthetic_corpus(tmp_path / "bob's (x,y)" / "corpus", n_sources=2, n_shots=6)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.yaml").write_text("mine: 1\n")
    threads = torch.get_num_threads()
    state = (torch.are_deterministic_algorithms_enabled(), len(warnings.filters),
             torch.random.get_rng_state())
    env = dict(os.environ)
    with initialize_config_dir(config_dir=str(tmp_path / "mine"), version_base="1.3"):
        fit = api.train(corpus, tmp_path / "run", ["student=logistic", "optim.max_epochs=30"],
                        "baselines=[]", "trainer.enable_progress_bar=false", "summary=false")
        assert hydra_compose("train").mine == 1  # the notebook's own Hydra, back in place
    assert torch.get_num_threads() == threads and dict(os.environ) == env
    assert (torch.are_deterministic_algorithms_enabled(), len(warnings.filters)) == state[:2]
    assert torch.equal(torch.random.get_rng_state(), state[2])
    assert fit.run_dir.is_absolute() and fit.bundle.is_file()
    with pytest.raises(VmafDistillError, match=r"^out .*is an input.*\(out takes the output"):
        api.export(fit.bundle, fit.bundle, corpus_dir=corpus)  # the API's names, not --out's
    with pytest.raises(VmafDistillError, match="ref_size"):
        api.export(fit.bundle, tmp_path / "s.onnx", corpus_dir=corpus, ref_size=(1920,))
    out = api.export(fit.bundle, tmp_path / "s.onnx", "tokens.bands.green=85",
                     corpus_dir=corpus, ref_size="1920x1080")
    card = json.loads(out.path.with_suffix(".card.json").read_text())
    assert card["ref_size"] == [1920, 1080]
    # the command's overrides of conf/export.yaml (a hunt: the API took none)
    assert card["tokens"]["bands"]["green"] == 85
    # "~" is the home folder, as train's run_dir: export wrote into a folder named "~" here
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    tilde = api.export(fit.bundle, "~/models/s.onnx", corpus_dir=corpus)
    assert tilde.path == home / "models" / "s.onnx" and tilde.path.is_file()
    assert not (tmp_path / "~").exists()
    assert api.load_student("~/models/s.onnx").feature_names == out.card["feature_names"]
    student = api.load_student(out.path)
    rows = pd.read_parquet(corpus / "tables" / "samples.parquet").head(4)
    want = student.predict(rows[student.feature_names].to_numpy("float32"))
    for table in (rows, rows[student.feature_names[::-1]]):  # by name, in any order
        assert (student.predict(table) == want).all()
    positional = pd.DataFrame(rows[student.feature_names].to_numpy("float32"))  # 0, 1, ...
    assert (student.predict(positional) == want).all()
    with pytest.raises(VmafDistillError, match="key=value strings"):
        api.train(corpus, tmp_path / "run2", 5)  # type: ignore[arg-type]
    # what an argument says, repeated as an override: corpus_dir= replaced the argument
    # without a word, hydra.run.dir= was ignored
    for override in (f"corpus_dir={tmp_path}", "hydra.run.dir=/tmp/elsewhere"):
        with pytest.raises(VmafDistillError, match="repeats an argument of the call"):
            api.train(corpus, tmp_path / "run3", override)
    with pytest.raises(VmafDistillError, match="repeats an argument of the call"):
        api.finetune(fit.bundle, corpus, tmp_path / "run4", "ckpt=default")
    # beside a built corpus: another corpus named, or how a corpus is built, ran on the
    # directory as built, unsaid (the command refused corpus= already)
    with pytest.raises(VmafDistillError, match=r"corpus=skvideo_mix and corpus_dir=.* disagree"):
        api.train(corpus, tmp_path / "run6", "corpus=skvideo_mix")
    with pytest.raises(VmafDistillError, match=r"corpus=skvideo_mix and corpus_dir=.* disagree"):
        api.finetune(fit.bundle, corpus, tmp_path / "run7", "corpus=skvideo_mix")
    for override in ("ladder=wide", "teacher.model=vmaf_v1.0.16_3d0h", "shots.threshold=0.5",
                     "corpus.sources=[a.mp4]"):
        with pytest.raises(VmafDistillError, match=rf"{re.escape(override)}: says how a corpus "
                           "is built, but corpus_dir="):
            api.finetune(fit.bundle, corpus, tmp_path / "run8", override)
    assert not (tmp_path / "run6").exists() and not (tmp_path / "run8").exists()
    # a hash split with every group on one side says which side and what moves groups
    with pytest.raises(VmafDistillError, match=r"the (training|test) side is empty; \d+ group"):
        api.train(corpus, tmp_path / "run5", "cv=hash", "cv.test_fraction=0.99",
                  "baselines=[]", "summary=false")


def test_paths_reach_hydra_intact_and_hydra_s_own_options_pass_the_override_check(
        tmp_path: Path) -> None:
    """Quoted for Hydra, a backslash was doubled (another directory) and ``${`` read as an
    interpolation; the override check refused ``-cn``, ``-sc`` and ``hydra.searchpath``
    command lines Hydra runs."""
    from omegaconf import OmegaConf

    from vmafdistill.config import check_overrides

    for path in ("/tmp/a\\b", "/tmp/a${x}", "/tmp/a${oc.env:HOME}", "/tmp/bob's (x,y)",
                 '/tmp/q"x', "/tmp/ünï $%=", "/tmp/end\\"):
        cfg = api.compose("train", [f"corpus_dir={api._hydra_path(path, 'corpus_dir')}"])
        assert OmegaConf.to_container(cfg, resolve=True)["corpus_dir"] == path
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\nseed: 5\n")
    for argv in (["-cn", "finetune", "ckpt=default"], ["-sc", "install=bash"],
                 [f"hydra.searchpath=[file://{tmp_path}]", "experiment=mine"],
                 ["hydra.mode=MULTIRUN", "seed=1,2"], ["-m", "seed=1,2"], ["--help"]):
        check_overrides("train", argv)  # left to Hydra: no error here


def test_json_safe_writes_strict_json() -> None:
    """pilot --json wrote bare NaN (a baseline's undefined guard precision), which strict
    parsers refuse; it goes through json_safe, as metrics.json always did."""
    import json

    import numpy as np

    from vmafdistill.folders import json_safe

    summary = {"baselines": {"gbdt50": {"precision@80": float("nan"), "mae": np.float64(3.0)}},
               "n": np.int64(72), "interval": (1.0, float("inf")),
               "per_fold": np.array([1.5, np.nan])}
    text = json.dumps(json_safe(summary), allow_nan=False)
    assert json.loads(text) == {"baselines": {"gbdt50": {"precision@80": None, "mae": 3.0}},
                                "n": 72, "interval": [1.0, None], "per_fold": [1.5, None]}


def test_pilot_keeps_overrides_that_leave_its_stages_together(tmp_path) -> None:
    """The corpus cache (cache_root) is not under --out: moving it splits no stage."""
    import argparse

    from vmafdistill.cli.pilot import _configs

    args = argparse.Namespace(out=str(tmp_path / "p"), workers=None, no_teacher_check=True,
                              config="pilot", overrides=[
                                  f"corpus_overrides=['cache_root={tmp_path / 'c'}']"])
    _, corpus_cfg, _ = _configs(args)
    assert corpus_cfg["cache_root"] == str(tmp_path / "c")


def test_a_guard_threshold_a_card_refuses_is_refused_when_training_starts() -> None:
    from vmafdistill.students.train import checked_run_values

    with pytest.raises(Exception, match="not a VMAF value"):
        checked_run_values({"guard_thresholds": [60, 110]})
    checked_run_values({"guard_thresholds": [60, 100]})


def test_build_corpus_says_when_it_skips_the_teacher_check(monkeypatch) -> None:
    """With failed jobs the command says the teacher check was skipped; the API returned
    ``teacher_check=None`` without a word."""
    import types

    import vmafdistill.corpus.app as app

    report = types.SimpleNamespace(out_dir="x", manifest={}, samples=None,
                                   failures=[{"source_id": "a", "variant_id": "*", "error": "e"}])
    monkeypatch.setattr(app, "corpus_action", lambda cfg: report)
    with pytest.warns(UserWarning, match=r"teacher_check: skipped, the corpus is incomplete "
                                         r"\(1 job"):
        result = api.build_corpus("teacher_check=true")
    assert result.teacher_check is None and result.failures == report.failures


def test_build_corpus_checks_and_expands_as_the_command(monkeypatch, tmp_path) -> None:
    """A hunt: api.build_corpus skipped the command's preparation: `teacher=libvmaf
    teacher_check=true` was refused only after the whole build, and a `~` in
    paths.cache_dir put the build lock and teacher_check.json under a literal ./~."""
    import vmafdistill.corpus.app as app
    from vmafdistill.errors import VmafDistillError

    seen = []
    monkeypatch.setattr(app, "corpus_action", lambda cfg: seen.append(cfg) or 1 / 0)
    with pytest.raises(VmafDistillError, match="the teacher is libvmaf already"):
        api.build_corpus("teacher=libvmaf", "teacher_check=true")
    assert not seen  # before any build
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ZeroDivisionError):
        api.build_corpus("paths.cache_dir='~/vd'")
    assert seen[0]["out_dir"].startswith(f"{tmp_path}/vd/corpus/")
    assert seen[0]["cache_root"] == f"{tmp_path}/vd/corpus_cache"

def test_the_edge_fallback_defaults_equal_the_configs() -> None:
    """The torch-free edge has no config composer, so the token rules, the cut detector's
    settings and the edge options keep code defaults beside conf/export.yaml and
    conf/shots/default.yaml: a change to one side alone made a card without the field read
    other values than an exported one."""
    import dataclasses
    import inspect

    from vmafdistill.edge.options import EdgeOptions
    from vmafdistill.edge.tokens import DEFAULT_RULES
    from vmafdistill.export import load_export_settings
    from vmafdistill.shots import ShotDetector, detect_shots

    settings = load_export_settings()
    assert {k: settings["tokens"][k] for k in DEFAULT_RULES} == DEFAULT_RULES
    for fn in (ShotDetector.__init__, detect_shots):
        params = inspect.signature(fn).parameters
        assert {k: params[k].default for k in settings["edge"]["shots"]} == \
            settings["edge"]["shots"], fn
    defaults = {f.name: f.default for f in dataclasses.fields(EdgeOptions)}
    for key, value in settings["edge"].items():
        if key == "shots":
            continue
        # temporal_pixel_step: 1 (exact) for cards without the field, cards written before it
        # existed; exported cards carry the config's 0 (automatic)
        assert defaults[key] == (1 if key == "temporal_pixel_step" else value), key


def test_a_missing_run_directory_is_named(tmp_path: Path) -> None:
    """A hunt: ``api.train(corpus, None)`` and ``api.finetune(..., None)`` were a bare
    TypeError from pathlib, where ``corpus_dir=None`` says "a path is needed"."""
    from vmafdistill.errors import VmafDistillError

    for run_dir in (None, "", "  "):
        with pytest.raises(VmafDistillError, match=r"run_dir: a path is needed"):
            api.train(tmp_path, run_dir)
        with pytest.raises(VmafDistillError, match=r"run_dir: a path is needed"):
            api.finetune("default", tmp_path, run_dir)
