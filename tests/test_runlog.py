"""Run logs people read: `vmafdistill train logger=wandb` (offline) and `logger=tensorboard`
leave the resolved config, per-epoch curves, the out-of-fold metrics, the plots and the model in
the tracker's own files, read back here with the tracker's formats."""

from __future__ import annotations

import json
import shutil
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from vmafdistill import api
from vmafdistill.students.lit_module import StudentModule
from vmafdistill.testing.synthetic import synthetic_corpus

torch.set_num_threads(1)

RUN = ("student=logistic", "optim.max_epochs=20", "baselines=[]", "cv=loso",
       "conformal.method=cross", "trainer.enable_progress_bar=false", "summary=false")


def wandb_records(path: Path) -> list:
    """The records of an offline ``run-*.wandb`` file (W&B's LevelDB-style log: a 7-byte file
    header, 32 KiB blocks of records with a 7-byte header: crc32, length, type FULL/FIRST/
    MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunks, buf = 7, 32768, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        chunk = data[pos:pos + length]
        pos += length
        if kind == 1:
            chunks.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            chunks.append(buf + chunk)
    out = []
    for c in chunks:
        rec = pb.Record()
        rec.ParseFromString(c)
        out.append(rec)
    return out


def _run_records(run: Path) -> dict[str, list]:
    """Each offline W&B run of ``run`` by display name: its records. W&B's service writes
    each run's log itself: under load a file can lack its records for a moment after the run
    finished (seen once in CI: no "run" record), so wait a little."""
    out = {}
    deadline = time.monotonic() + 30.0
    for f in sorted((run / "wandb").glob("offline-run-*/run-*.wandb")):
        while True:
            try:
                recs = wandb_records(f)
            except Exception:  # a chunk still being written: not ready
                recs = []
            names = [r.run.display_name for r in recs if r.WhichOneof("record_type") == "run"]
            if names or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert names, f"{f}: no run record in {len(recs)} records"
        out[names[0]] = recs
    return out


def test_wandb_offline_run_holds_config_curves_oof_plots_and_model(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    fit = api.train(corpus, tmp_path / "run", *RUN, "logger=wandb")
    runs = _run_records(tmp_path / "run")
    summary = runs["run-summary"]
    # grouped by the run's folder with its parent: job "0" of two sweeps were one group
    groups = {(r.run.run_group, r.run.job_type) for recs in runs.values() for r in recs
              if r.WhichOneof("record_type") == "run"}
    assert groups == {(f"{tmp_path.name}/run", tmp_path.name)}, groups
    config = {i.key for r in summary if r.WhichOneof("record_type") == "run"
              for i in r.run.config.update}
    assert {"student", "optim", "loss", "cv"} <= config
    hist = {(tuple(i.nested_key) or (i.key,))[0]: i.value_json for r in summary
            if r.WhichOneof("record_type") == "history" for i in r.history.item}
    assert json.loads(hist["oof/mae"]) == pytest.approx(fit.mae)
    assert {"oof/folds", "pred_vs_teacher", "guard_pr"} <= set(hist)
    arts = {(r.artifact.type, e.path) for r in summary if r.WhichOneof("record_type") == "artifact"
            for e in r.artifact.manifest.contents}
    assert ("model", "student.pt") in arts
    # per-epoch curves: each fold's run logged its losses every epoch
    fold = runs["run-fold0"]
    steps = [r for r in fold if r.WhichOneof("record_type") == "history"]
    keys = {(tuple(i.nested_key) or (i.key,))[0] for r in steps for i in r.history.item}
    assert len(steps) >= 20 and any("loss" in k for k in keys)


def test_tensorboard_event_files_hold_config_curves_oof_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    fit = api.train(corpus, tmp_path / "run", *RUN, "logger=tensorboard")
    acc = EventAccumulator(str(tmp_path / "run" / "tb" / "summary"),
                           size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert acc.Scalars("oof/mae")[0].value == pytest.approx(fit.mae, rel=1e-6)
    assert {"plots/pred_vs_teacher", "plots/guard_pr"} <= set(tags["images"])
    text = {t for t in tags["tensors"]}
    assert any(t.startswith("config") for t in text) and any("oof/folds" in t for t in text)
    fold = EventAccumulator(str(next((tmp_path / "run" / "tb").glob("fold0*"))))
    fold.Reload()
    curves = [t for t in fold.Tags()["scalars"] if "loss" in t]
    assert curves and len(fold.Scalars(curves[0])) >= 10


def test_wandb_per_fold_false_logs_the_final_fit_alone(tmp_path: Path) -> None:
    """``logger.per_fold`` was never read: false wrote a wandb run per fold all the same."""
    pytest.importorskip("wandb")
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    api.train(corpus, tmp_path / "run", *RUN, "logger=wandb", "logger.per_fold=false")
    runs = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2, runs  # the final fit and the summary


def _history(records: list) -> list[dict]:
    """A run's history rows, without W&B's own timing keys (``_timestamp``, ``_runtime``)."""
    rows = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {(tuple(i.nested_key) or (i.key,))[0]: i.value_json for i in r.history.item}
            rows.append({k: v for k, v in row.items() if k not in ("_timestamp", "_runtime")})
    return rows


@pytest.mark.parametrize("ddp", [("trainer=ddp_cpu",),
                                 ("trainer=ddp_cpu", "trainer.devices=1")],
                         ids=["two_ranks", "one_rank"])
def test_wandb_fold_runs_under_ddp_hold_their_curves(tmp_path: Path, ddp: tuple) -> None:
    """Under trainer=ddp_cpu each fit's W&B run started lazily in the forked rank-0 worker,
    which never finished it: every fold's run file was a bare 7-byte header, its curves lost,
    exit 0 (one rank too: Lightning still forks a worker). A run started before the fit for
    the workers to attach to failed the attach in a process that had used W&B before (the
    single-process reference run below does). The workers now log to CSV and this process
    logs the curves into the fit's run: the same rows as a fit in this process."""
    pytest.importorskip("wandb")
    corpus = synthetic_corpus(tmp_path / "c", n_sources=3, n_shots=6)
    common = (*RUN, "logger=wandb", "conformal.method=split", "trainer.check_val_every_n_epoch=2")
    api.train(corpus, tmp_path / "one", *common)
    try:
        api.train(corpus, tmp_path / "ddp", *common, *ddp)
    except Exception as exc:
        # A spawned rank (the Ray tests leave gRPC loaded, so the suite's fits spawn) aborted
        # after its fit had finished, in the C++ teardown ("terminate called without an active
        # exception", no Python frame): 1 full run in 3-6 on this test, never alone; an open
        # item (the stop note), not what this test checks. Once more, into a fresh folder;
        # any other failure, or a second abort, fails the test.
        if "terminated with signal SIGABRT" not in str(exc):
            raise
        shutil.rmtree(tmp_path / "ddp")
        api.train(corpus, tmp_path / "ddp", *common, *ddp)
    one, ddp_runs = _run_records(tmp_path / "one"), _run_records(tmp_path / "ddp")
    fits = sorted(name[len("ddp-"):] for name in ddp_runs if not name.endswith("-summary"))
    assert fits == sorted(name[len("one-"):] for name in one if not name.endswith("-summary"))
    assert {"fold0", "fold1", "final"} <= set(fits), fits
    for fit in fits:
        ours, reference = _history(ddp_runs[f"ddp-{fit}"]), _history(one[f"one-{fit}"])
        assert len(ours) >= 20 and any("train_loss" in row for row in ours), (fit, ours[:2])
        assert [sorted(row) for row in ours] == [sorted(row) for row in reference], fit
        assert [row["trainer/global_step"] for row in ours] == \
            [row["trainer/global_step"] for row in reference], fit


def test_a_nan_figure_and_an_odd_run_folder_reach_the_trackers(tmp_path: Path) -> None:
    """Constant labels give no correlation (NaN, null in metrics.json): W&B and TensorBoard
    failed on float(None) after the run had finished, and a run folder with a space (or
    Hydra's override_dirname, a=b,c=d) was an invalid W&B artefact name; both exit 1 with
    the bundle written. TensorBoard's summary folder is replaced on a rerun, as the fits' are
    (two event files read as two values of oof/mae)."""
    pytest.importorskip("wandb")
    pytest.importorskip("tensorboard")
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    corpus = synthetic_corpus(tmp_path / "c", n_sources=3, n_shots=6)
    table = corpus / "tables" / "samples.parquet"
    samples = pd.read_parquet(table)
    samples["vmaf"] = 100.0
    samples.to_parquet(table)
    run = tmp_path / "my run,a=b"
    api.train(corpus, run, *RUN, "logger=wandb", "conformal.method=split")
    summary = _run_records(run)[f"{run.name}-summary"]
    hist = {(tuple(i.nested_key) or (i.key,))[0] for r in summary
            if r.WhichOneof("record_type") == "history" for i in r.history.item}
    assert "oof/mae" in hist and "oof/plcc" not in hist
    arts = {r.artifact.name for r in summary if r.WhichOneof("record_type") == "artifact"
            and r.artifact.type == "model"}
    assert arts == {f"student-{tmp_path.name}-my_run_a_b"}, arts
    for _ in range(2):
        api.train(corpus, tmp_path / "tb", *RUN, "logger=tensorboard", "conformal.method=split")
    assert len(list((tmp_path / "tb" / "tb" / "summary").iterdir())) == 1
    acc = EventAccumulator(str(tmp_path / "tb" / "tb" / "summary"))
    acc.Reload()
    assert len(acc.Scalars("oof/mae")) == 1 and "oof/plcc" not in acc.Tags()["scalars"]


def test_a_long_run_folder_gives_an_artifact_name_w_and_b_takes() -> None:
    """With the parent folder in it the model artefact's name passed W&B's 128 characters
    for a Hydra override_dirname job (a ValueError after the run had finished); cut names
    stay apart by a digest of the whole."""
    from vmafdistill.students.runlog import ARTIFACT_NAME_MAX, artifact_name

    job = ("student=mlp,optim.lr=0.001,optim.weight_decay=0.0001,loss=huber_points,"
           "cv.n_splits=5,seed={},student.widths=[64,64]")
    names = {artifact_name(Path("2026-12-07_03-03-15") / job.format(seed)) for seed in (3, 4)}
    assert len(names) == 2 and all(len(n) <= ARTIFACT_NAME_MAX for n in names), names
    assert all(n.startswith("student-2026-12-07_03-03-15-student_mlp_optim.lr_0.001")
               for n in names), names
    assert artifact_name(Path("sweep/0")) == "student-sweep-0"


class FailsAtEpoch2(StudentModule):
    """A student module whose third epoch raises (module level: importable by name)."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.current_epoch == 2:
            raise RuntimeError("boom at epoch 2")
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize("ddp", [(), ("trainer=ddp_cpu", "trainer.devices=1")],
                         ids=["in_process", "one_rank"])
def test_a_fit_that_raises_ends_its_wandb_run_failed(tmp_path: Path, monkeypatch,
                                                      ddp: tuple) -> None:
    """A fit that raised ended its W&B run with exit code 0 (read as a success); under DDP its
    curves, logged by the worker, are logged into the run all the same."""
    pytest.importorskip("wandb")
    import wandb

    from vmafdistill.students import lit_module

    # the fit's module, not a patched method: a spawned worker (DDP where Ray's gRPC is
    # loaded, as after the Ray tests) unpickles it by name and never sees a monkeypatch
    monkeypatch.setattr(lit_module, "StudentModule", FailsAtEpoch2)
    corpus = synthetic_corpus(tmp_path / "c", n_sources=3, n_shots=6)
    with pytest.raises(Exception, match="boom at epoch 2"):
        api.train(corpus, tmp_path / "run", *RUN, "logger=wandb", "conformal.method=split",
                  *ddp)
    assert wandb.run is None  # no run left live for the next fit
    (fit,) = _run_records(tmp_path / "run").values()
    exits = [r.exit.exit_code for r in fit if r.WhichOneof("record_type") == "exit"]
    assert exits == [1], exits
    epochs = sorted({row["epoch"] for row in _history(fit) if "train_loss" in row})
    assert epochs == ["0", "1"], epochs


def test_a_replay_that_raises_leaves_no_run_live(tmp_path: Path, monkeypatch) -> None:
    """A replay of the workers' curves that raised after a good fit skipped wandb.finish: its
    run stayed live and the next fit (a sweep's next job) logged into it."""
    pytest.importorskip("wandb")
    import wandb

    from vmafdistill.students.train import _finish_logger

    monkeypatch.setenv("WANDB_MODE", "offline")

    def replay(failed: bool) -> None:
        wandb.init(project="t", dir=str(tmp_path))
        wandb.log({"x": 1.0})
        raise ValueError("unreadable curves")

    with pytest.raises(ValueError, match="unreadable curves"):
        _finish_logger(object(), replay, failed=False)
    assert wandb.run is None
