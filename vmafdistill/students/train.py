"""One training run: folds -> fit -> out-of-fold predictions -> metrics -> final model -> bundle.

Protocol (every number in ``metrics.json`` is out-of-fold):

1. the samples table's rows are split into CV folds (``cv`` config group, by shot / source / hash);
2. per fold, the student is fitted on *all* the fold's training rows and predicts the test fold;
3. the fold's conformal half width ``q`` (``conformal.method``; null = the cv protocol's
   ``conformal_method``, else nested): ``nested`` = the
   ``1 - alpha`` conformal quantile of *inner* out-of-fold absolute residuals, from an inner
   grouped K-fold over the fold's training rows (``inner_splits`` extra fits; the test fold is
   never touched); ``cross`` = the quantile of the outer OOF residuals of the *other* folds (no
   extra fit); ``split`` = hold ``calib_frac`` of the training groups out of fitting. ``pred`` and
   ``[pred - q, pred + q]`` go to ``oof.parquet``;
4. the pooled OOF predictions give the overall, per-fold, guard, stratified and coverage metrics;
   sklearn baselines are fitted on the *same* folds (cached per corpus + cv + features);
5. the final student is fitted on all rows; its interval half width is the conformal quantile of
   the pooled OOF absolute residuals (each computed by a model that did not see the row;
   ``conformal.final_q: pooled``) or the largest per-fold one (``worst_fold``: every held-out
   fold alone covered, for students shipped to content unlike any training source), and it
   is saved with its scaler, config and metrics as ``student.pt``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import checked_number, refuse_unknown_keys
from ..errors import VmafDistillError
from .loggers import make_logger, wandb_from_workers

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

#: Columns copied from the samples table into ``oof.parquet`` (when present).
OOF_KEYS: tuple[str, ...] = ("source_id", "shot_id", "codec", "height", "width", "crf")


# --------------------------------------------------------------------------- config helpers


def to_dict(node: Any) -> Any:
    """A plain (resolved) Python container of an OmegaConf node; other values pass through."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def resolve_corpus(cfg: DictConfig) -> Path:
    """The corpus directory: ``corpus_dir`` when set, else built/reused by ``ensure_corpus``."""
    from ..folders import refuse_empty

    # corpus_dir="" (an unset shell variable) trained on the default corpus, unsaid
    refuse_empty("corpus_dir", cfg.get("corpus_dir"), hint="give a built corpus's folder, or "
                 "leave corpus_dir out to build or reuse the configured corpus")
    if cfg.get("corpus_dir"):
        from ..config import from_launch_dir
        from ..corpus.tables import check_tables_intact

        path = from_launch_dir(str(cfg.corpus_dir))
        if not (path / "corpus.json").is_file():
            raise VmafDistillError(f"{path}: not a built corpus (no corpus.json)")
        check_tables_intact(path)  # as a corpus the build reuses is checked
        check_built_corpus_overrides(cfg, path)
        _note_failed_jobs(path)
        return path
    from ..corpus import ensure_corpus  # the corpus builder (heavy imports)

    # absolute: bundles record it, and export reads it from any working directory
    return Path(ensure_corpus(corpus_config(cfg))).resolve()


def _note_failed_jobs(path: Path) -> None:
    """Say so where a corpus given by ``corpus_dir`` was built with failed jobs (a build through
    train refuses it; given by folder, it trained on what was built without a word)."""
    try:
        failures = json.loads((path / "corpus.json").read_text()).get("failures") or []
    except (OSError, ValueError, AttributeError):  # its reader names a bad manifest
        return
    if failures:
        sources = sorted({str(f.get("source_id")) for f in failures if isinstance(f, dict)})
        print(f"note: corpus {path}: {len(failures)} job(s) failed when it was built (sources "
              f"{', '.join(sources[:5])}{' ...' if len(sources) > 5 else ''}; see its "
              "corpus.json); training on the samples it holds", file=sys.stderr)


#: Config groups that say how a corpus is built: a built corpus (``corpus_dir``) is read as it
#: was built, so an override of them (or of ``corpus.*``) beside it changes nothing.
BUILD_ONLY_GROUPS = ("ladder", "teacher", "shots")


def check_built_corpus_overrides(cfg: DictConfig, path: Path,
                                 given: Sequence[str] | None = None) -> None:
    """Overrides that do nothing beside a built corpus (``corpus_dir``), refused: ``corpus=X``
    where the directory holds another corpus (the directory was used and the run folder named
    after X), and overrides of how a corpus is built (``ladder=``, ``teacher.model=``,
    ``shots.*``, ``corpus.*``: ignored, unsaid). ``given``: the run's overrides (the Python
    API); None reads Hydra's (the command line), and outside a Hydra job nothing was given."""
    from hydra.core.hydra_config import HydraConfig

    from ..config import override_key
    from ..corpus.tables import read_manifest

    if given is None:
        try:
            given = list(HydraConfig.get().overrides.task)
        except ValueError:  # not inside a Hydra job (a composed config): nothing was chosen
            return
    keys = [(o, override_key(o)) for o in given]
    named = [o for o, key in keys if key == "corpus"]
    built = read_manifest(path).get("name")
    if named and built and built != cfg.corpus.name:
        raise VmafDistillError(
            f"{named[-1]} and corpus_dir={cfg.corpus_dir} (a {built} corpus) disagree: "
            "corpus_dir is what is read; drop corpus= or give the directory of that corpus")
    building = [o for o, key in keys if key.split(".")[0] in BUILD_ONLY_GROUPS
                or key.startswith("corpus.")]
    if building:
        raise VmafDistillError(
            f"{building[0]}: says how a corpus is built, but corpus_dir={cfg.corpus_dir} is "
            "read as it was built (its corpus.json records how); drop it, or build a corpus "
            "with it (vmafdistill corpus ...) and give that folder")


def load_rows(
    cfg: DictConfig, plain: Mapping[str, Any], feature_names: Sequence[str], target: str
) -> tuple[Path, dict[str, Any], Any, np.ndarray, np.ndarray, int]:
    """The corpus of ``cfg`` and its usable rows: ``(corpus_dir, manifest, samples, x, y,
    n_dropped)``.

    ``samples`` keeps the rows ``select_features`` accepted (``nan_policy``), re-indexed,
    ``x``/``y`` are their feature matrix and target in the same order, ``n_dropped`` how many
    rows the NaN policy removed.
    """
    from ..corpus.tables import load_samples, read_manifest
    from .datamodule import select_features

    corpus_dir = resolve_corpus(cfg)
    manifest = read_manifest(corpus_dir)
    samples_all = load_samples(corpus_dir)
    x, y, keep = select_features(
        samples_all, feature_names, target, nan_policy=plain.get("nan_policy", "error"),
        where=str(corpus_dir / "tables" / "samples.parquet"),
    )
    samples = samples_all.loc[keep].reset_index(drop=True)
    spread = float(np.ptp(y)) if len(y) else math.inf  # no rows: select_features said so
    if spread < 0.01:  # a flat grey clip: PLCC -0.92 read as a finding
        print(f"note: corpus {corpus_dir}: every {target} label lies within {spread:.2g} of "
              "the others: correlations (PLCC, SROCC) of this run say nothing", file=sys.stderr)
    n_dropped = int((~keep).sum())
    if n_dropped:  # the summary table read as if it covered the whole corpus
        print(f"note: nan_policy=drop left out {n_dropped} of {len(samples_all)} rows of corpus "
              f"{corpus_dir} (a non-finite {target}); every figure of this run is over the "
              f"other {len(samples)}", file=sys.stderr)
    note_missing_inputs(samples, x, feature_names)
    return corpus_dir, manifest, samples, x, y, n_dropped


def note_missing_inputs(samples: Any, x: np.ndarray, feature_names: Sequence[str]) -> None:
    """Say which input columns are NaN on some rows, and on which codecs: the student fills
    them with the training mean unsaid (a codec whose headers give no quantizer, VP8, trained
    half its rows on the mean ``scene_qp`` without a word)."""
    for j, name in enumerate(feature_names):
        missing = ~np.isfinite(x[:, j])
        if not missing.any():
            continue
        by_codec = ""
        if "codec" in samples:
            counts = samples.loc[missing, "codec"].astype(str).value_counts()
            by_codec = " (" + ", ".join(f"{c}: {n}" for c, n in counts.items()) + ")"
        print(f"note: input {name} is NaN on {int(missing.sum())} of {len(x)} rows{by_codec}; "
              "the student fills them with the training mean", file=sys.stderr)


def corpus_config(cfg: DictConfig) -> DictConfig:
    """The ``vmafdistill corpus`` config of a training config.

    ``conf/corpus.yaml`` composed by Hydra (its defaults, e.g. ``executor: local``), with the
    training config's ``corpus``/``ladder``/``teacher``/``shots`` groups and ``paths`` in place
    of its own, then the keys of ``corpus_build`` on top; interpolations resolve in the result.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ..config import compose, one_line

    base = compose("corpus")
    OmegaConf.set_struct(base, False)
    base.pop("hydra", None)
    groups = {k: to_dict(cfg[k]) for k in ("corpus", "ladder", "teacher", "shots", "paths")
              if k in cfg}
    for key in groups:  # the training config's group replaces corpus.yaml's default, whole
        base.pop(key, None)
    try:  # `+corpus_build.ladder=[1]`: an OmegaConf traceback
        merged = OmegaConf.merge(base, OmegaConf.create(groups),
                                 OmegaConf.create(to_dict(cfg.get("corpus_build") or {})))
    except OmegaConfBaseException as exc:
        raise VmafDistillError(f"corpus_build: {one_line(exc)}") from None
    _paths_from_launch_dir(merged)
    OmegaConf.resolve(merged)
    return merged


def _paths_from_launch_dir(corpus_cfg: DictConfig) -> None:
    """Relative ``paths.cache_dir`` and ``corpus.root`` as seen from the directory the command
    was started in, where a job runs elsewhere (a Ray worker's directory, ``hydra.job.chdir``):
    each job built the whole corpus anew under its own directory."""
    from ..config import from_launch_dir, launch_dir

    launched = launch_dir()
    if launched is None or launched == Path.cwd():  # the Python API: its own directory
        return
    for node, key in ((corpus_cfg.get("paths"), "cache_dir"), (corpus_cfg.get("corpus"), "root")):
        value = node.get(key) if node is not None else None
        if isinstance(value, str) and value not in ("", "???") and "${" not in value:
            node[key] = str(from_launch_dir(value))


# --------------------------------------------------------------------------- splitting

#: ``conformal.method`` values (see the module docstring).
CONFORMAL_METHODS: tuple[str, ...] = ("nested", "cross", "split")
#: ``conformal.final_q`` values: how the shipped model's half width comes from the OOF residuals.
FINAL_Q_RULES: dict[str, str] = {
    "pooled": "pooled OOF absolute residuals",
    "worst_fold": "largest per-fold conformal quantile of OOF absolute residuals",
}
#: A monotone input may raise the final student's prediction by at most this much (VMAF points,
#: float32 noise) on any training row before training warns (see ``monotone_check``).
MONOTONE_TOLERANCE = 1e-4


def checked_monotone(
    model: torch.nn.Module, x: np.ndarray, feature_names: Sequence[str],
    monotone: Mapping[str, int] | None,
) -> dict[str, float]:
    """:func:`~vmafdistill.students.models.monotone_check` on the training rows, with a warning
    for every column that rises by more than :data:`MONOTONE_TOLERANCE` or could not be
    checked (NaN)."""
    from .models import monotone_check

    result = monotone_check(model, x, feature_names, monotone)
    broken = {col: rise for col, rise in result.items() if not rise <= MONOTONE_TOLERANCE}
    if broken:
        log.warning("the student is not (or could not be checked to be) monotone on the "
                    "training rows: %s (largest rise in VMAF points when the input moves the "
                    "way that must not raise it; nan: not checked)", broken)
    return result


def inner_group_folds(
    groups: np.ndarray, n_splits: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped K-fold positions over ``groups`` (min(n_splits, #groups) folds; [] if < 2 groups).

    sklearn ``GroupKFold`` (deterministic, size-balanced): every position is in exactly one
    inner test part and no group straddles an inner split.
    """
    from sklearn.model_selection import GroupKFold

    groups = np.asarray(groups).astype(str)
    k = min(int(n_splits), len(np.unique(groups)))
    if k < 2:
        return []
    return [(np.asarray(a), np.asarray(b))
            for a, b in GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups)]


def inner_group_split(
    groups: np.ndarray, frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of fitting rows and calibration rows: ``frac`` of the groups are calibration.

    At least one group is held out when there are two or more groups and ``frac > 0``; with a
    single group (or ``frac == 0``) the calibration part is empty.
    """
    uniq = np.unique(np.asarray(groups).astype(str))
    n_cal = min(len(uniq) - 1, max(1, round(frac * len(uniq)))) if frac > 0 else 0
    rng = np.random.default_rng(seed)
    cal_groups = set(rng.permutation(uniq)[:n_cal].tolist()) if n_cal > 0 else set()
    is_cal = np.array([str(g) in cal_groups for g in groups], dtype=bool)
    return np.flatnonzero(~is_cal), np.flatnonzero(is_cal)


# --------------------------------------------------------------------------- Lightning pieces


def _many_devices(trainer_cfg: Mapping[str, Any]) -> bool:
    """Whether ``devices`` asks for more than one device (where ``strategy: auto`` picks DDP)."""
    devices = trainer_cfg.get("devices", "auto")
    if isinstance(devices, list | tuple):
        return len(devices) > 1
    text = str(devices).strip()
    if "," in text:
        return len([d for d in text.split(",") if d.strip()]) > 1
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if text in ("auto", "-1"):
        if accelerator in ("gpu", "cuda", "auto"):
            import torch

            if torch.cuda.is_available():
                return torch.cuda.device_count() > 1
        return text == "-1" and (os.cpu_count() or 1) > 1
    try:
        return int(text) > 1
    except ValueError:
        return False


def _strategy(spec: Any, many_devices: bool = False) -> Any:
    """A Trainer ``strategy``: a DDP strategy whose launcher would be popen becomes a
    spawn-launched DDPStrategy: ``ddp`` (string or mapping), a registered name such as
    ``ddp_find_unused_parameters_true``, and ``auto`` over several devices (Lightning picks
    ``ddp`` there).

    The default DDP launcher re-executes the command line once per rank, which would repeat the
    run's whole fold loop in every rank (``trainer.devices=2`` hung: it re-ran
    ``vmafdistill train`` as a file, and an API caller's script as a second run); spawning per
    fit keeps orchestration in this process.
    """
    if isinstance(spec, str):
        from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

        if spec == "auto" and many_devices:
            spec = "ddp"
        entry = dict.get(StrategyRegistry, spec)  # the registry entry (.get builds one)
        # DDPStrategy itself: its subclasses (deepspeed) take other arguments
        if entry is not None and spec != "ddp" and entry["strategy"] is DDPStrategy:
            method = entry["init_params"].get("start_method", "popen")
            if method == "popen" or fork_safe(method) != method:  # ddp_fork, ddp_notebook
                return DDPStrategy(**{**entry["init_params"], "start_method": "spawn"})
        if spec != "ddp":
            return spec
    from lightning.pytorch.strategies import DDPStrategy

    opts = {"name": "ddp"} if isinstance(spec, str) else dict(spec)
    name = opts.pop("name", "ddp")
    if name != "ddp":
        raise VmafDistillError(f"trainer.strategy: unknown mapping strategy {name!r} (use ddp)")
    opts.setdefault("start_method", "spawn")
    if opts["start_method"] == "popen":
        raise VmafDistillError(
            "trainer.strategy.start_method=popen re-runs the command per rank; use spawn or fork"
        )
    return DDPStrategy(**{**opts, "start_method": fork_safe(opts["start_method"])})


def fork_safe(start_method: str) -> str:
    """``start_method``, or ``spawn`` for ``fork`` in a process that has loaded gRPC's core (a
    Ray connection does, a failed ``ray://`` one too): a child forked while gRPC's threads
    poll aborts now and then (SIGABRT, ``ev_epoll1_linux.cc: Check failed``; measured 1 fit
    in 6 with a channel open, 4 in 6 after a failed ``ray://`` connection)."""
    if start_method != "fork" or "grpc._cython.cygrpc" not in sys.modules:
        return start_method
    _note_fork_to_spawn()
    return "spawn"


@functools.cache
def _note_fork_to_spawn() -> None:
    """Said once per process, not once per fit."""
    print("note: trainer.strategy.start_method=fork: gRPC is loaded in this process (Ray), "
          "whose threads make forked workers abort; the fits spawn their workers (slower)",
          file=sys.stderr)


def make_trainer(
    trainer_cfg: Mapping[str, Any],
    logger_cfg: Mapping[str, Any] | None,
    run_dir: Path,
    tag: str,
    *,
    max_epochs: int | None = None,
    validate: bool = True,
) -> Any:
    """A ``lightning.Trainer`` for one fit, from the ``trainer`` and ``logger`` config groups
    (no checkpoint callback: :func:`fit_student` saves its one checkpoint after the fit)."""
    import lightning.pytorch as pl

    kwargs = dict(trainer_cfg)
    kwargs.pop("checkpoint_final", None)
    kwargs["strategy"] = _strategy(kwargs.get("strategy", "auto"), _many_devices(kwargs))
    if max_epochs is not None:
        check_one_epoch_count(kwargs, max_epochs)
        kwargs["max_epochs"] = max_epochs
    if not validate:
        kwargs["limit_val_batches"] = 0
    # A ModelCheckpoint callback saved only after validation, which the final fit never runs
    # (final.ckpt was never written); saving every epoch instead cost time and wrote
    # final-v1.ckpt beside an old final.ckpt on a rerun.
    return pl.Trainer(
        logger=make_logger(logger_cfg, run_dir, tag),
        enable_checkpointing=False,
        default_root_dir=str(run_dir),
        **kwargs,
    )


def check_one_epoch_count(trainer_cfg: Mapping[str, Any], max_epochs: int) -> None:
    """The epoch count is ``optim.max_epochs``: a ``trainer.max_epochs`` that differs is an
    error (it was silently overridden)."""
    given = trainer_cfg.get("max_epochs")
    if given is not None and given != max_epochs:
        raise VmafDistillError(
            f"trainer.max_epochs={given} differs from optim.max_epochs={max_epochs}: the "
            "epoch count is optim.max_epochs (set that one)")


def _check_accelerator(trainer_kwargs: Mapping[str, Any]) -> None:
    """``trainer=gpu`` without a CUDA device: one error, not Lightning's traceback."""
    if str(trainer_kwargs.get("accelerator", "")).lower() in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise VmafDistillError(
                f"trainer.accelerator={trainer_kwargs['accelerator']}: no CUDA device is "
                f"available to torch {torch.__version__} (trainer=cpu trains on the CPU)")


def begin_run(cfg: Any, run_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """What every training-style run does first: its torch thread count (``num_threads``),
    quiet Lightning, the run directory created, ``seed`` and ``guard_thresholds`` checked;
    returns the plain config and the directory."""
    import torch

    from ..config import checked_number
    from ..evaluation.splits import cv_settings

    # a typo (abc) or -1 was a traceback here
    threads = cfg.get("num_threads", 1)  # 0 ran as 1 without a word
    torch.set_num_threads(checked_number("num_threads", 1 if threads is None else threads,
                                         int, 1))
    quiet_lightning()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    plain = to_dict(cfg)
    checked_run_values(plain)
    if isinstance(plain.get("cv"), Mapping):  # recorded as run: cv.n_splits=null ran 5 folds
        plain["cv"] = cv_settings(plain["cv"])
    return plain, run_dir


#: What a training-style run writes into its directory. A rerun into the same directory
#: removes an earlier run's once its settings have been checked, before it writes its own: a
#: rerun that failed half-way left the old metrics and bundle beside the new predictions
#: (sweep-report then mixed the two runs).
RUN_OUTPUTS = ("metrics.json", "student.pt", "oof.parquet", "heldout.parquet",
               "checkpoints/final.ckpt", "job_failed.txt")  # the last: report.JOB_FAILED
#: Where the loggers keep one folder per fit (CSV ``logs/<fit>``, TensorBoard ``tb/<fit>``):
#: an earlier run's with more folds stayed beside the new ones.
RUN_LOG_DIRS = ("logs", "tb")
#: The names of those per-fit folders (``fold3``, ``fold0_inner2``, ``final``), and
#: TensorBoard's ``tb/summary`` (two runs' event files read as two values of one scalar);
#: nothing else in ``logs/`` or ``tb/`` is removed (a user's own files may live there).
FIT_LOG_NAME = re.compile(r"fold\d+(_inner\d+)?|final")
SUMMARY_LOG = Path("tb", "summary")


#: Held in a run directory while a run writes there (pid, host); removed when its process ends.
RUN_LOCK = ".vmafdistill-run.lock"


def claim_run_dir(run_dir: Path) -> None:
    """Mark ``run_dir`` as this process's, or raise VmafDistillError naming the live run on
    this host that holds it: a second run into one directory removed the first's logs mid-fit
    and crashed it. A claim left by a process that has ended (killed) is taken over; one from
    another host (a requeued cluster job) is taken over with a note, its process unknowable."""
    import atexit

    lock = run_dir / RUN_LOCK
    me = _my_claim()
    for _ in range(3):
        try:
            _link_claim(lock, me)
        except FileExistsError:
            claim = _read_claim(lock)
            if claim == me:
                return  # this process again (a notebook's second fit into one directory)
            if _live_here(claim):
                raise run_dir_taken(run_dir, claim) from None
            if claim and claim.get("host") != me["host"]:
                print(f"note: {run_dir}: claimed by a run on {claim.get('host')} (pid "
                      f"{claim.get('pid')}), taken over (a requeued job?)", file=sys.stderr)
            if _read_claim(lock) == claim:  # not taken over by another run meanwhile
                lock.unlink(missing_ok=True)
            continue
        atexit.register(release_run_dir, run_dir)
        return
    raise VmafDistillError(f"{run_dir}: could not claim it ({lock} keeps changing)")


def _link_claim(lock: Path, claim: dict[str, Any]) -> None:
    """Create ``lock`` holding ``claim`` whole, or raise FileExistsError: written aside, then
    hard-linked into place (another run never reads a created but still empty claim)."""
    from ..folders import unique_token

    tmp = lock.with_name(f"{lock.name}.{unique_token()}")
    try:
        tmp.write_text(json.dumps(claim))
        try:
            os.link(tmp, lock)
        except FileExistsError:
            raise
        except OSError:  # a filesystem without hard links: created, then written
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as fh:
                json.dump(claim, fh)
    finally:
        tmp.unlink(missing_ok=True)


def run_dir_taken(run_dir: Path, claim: Mapping[str, Any]) -> VmafDistillError:
    """The error for a run directory that the live run ``claim`` holds."""
    return VmafDistillError(
        f"{run_dir}: another run writes here (pid {claim.get('pid')} on {claim.get('host')}); "
        f"give another hydra.run.dir, or remove {run_dir / RUN_LOCK} if that run is gone")


def run_dir_holder(run_dir: Path) -> dict[str, Any] | None:
    """The live run on this host that holds ``run_dir`` (``{"pid", "host"}``), else None."""
    claim = _read_claim(run_dir / RUN_LOCK)
    return claim if _live_here(claim) else None


def _read_claim(lock: Path) -> dict[str, Any] | None:
    try:
        claim = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return claim if isinstance(claim, dict) else None


def _my_claim() -> dict[str, Any]:
    """This process's claim: pid and host (containers reuse small pids)."""
    import socket

    return {"pid": os.getpid(), "host": socket.gethostname()}


def _live_here(claim: dict[str, Any] | None) -> bool:
    """Whether ``claim`` is a running process's on this host (not this process's)."""
    if not claim or claim.get("host") != _my_claim()["host"]:
        return False
    pid = int(claim.get("pid") or 0)
    from ..machine import pid_alive

    return pid != os.getpid() and pid_alive(pid)


def release_run_dir(run_dir: Path) -> None:
    """Remove this process's :data:`RUN_LOCK` from ``run_dir`` (a run's end; also at exit)."""
    lock = run_dir / RUN_LOCK
    if _read_claim(lock) == _my_claim():
        lock.unlink(missing_ok=True)


def clear_earlier_outputs(run_dir: Path) -> None:
    """Remove an earlier run's :data:`RUN_OUTPUTS` and its per-fit log folders
    (:data:`FIT_LOG_NAME` under :data:`RUN_LOG_DIRS`, and :data:`SUMMARY_LOG`) from
    ``run_dir``, saying so, once
    ``run_dir`` is claimed for this run (:func:`claim_run_dir`)."""
    claim_run_dir(run_dir)
    earlier = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
    fit_logs = [d / child.name for d in map(Path, RUN_LOG_DIRS) if (run_dir / d).is_dir()
                for child in sorted((run_dir / d).iterdir())
                if child.is_dir() and not child.is_symlink()
                and (FIT_LOG_NAME.fullmatch(child.name) or d / child.name == SUMMARY_LOG)]
    if earlier or fit_logs:
        shown = earlier + sorted({f"{p.parent}/" for p in fit_logs})
        print(f"note: {run_dir}: replacing an earlier run's {', '.join(shown)}",
              file=sys.stderr)
        for name in earlier:
            (run_dir / name).unlink()
        for rel in fit_logs:
            try:
                shutil.rmtree(run_dir / rel)
            except OSError as exc:
                raise VmafDistillError(
                    f"{run_dir / rel}: cannot remove an earlier run's log folder ({exc})"
                ) from None


def quiet_lightning() -> None:
    """Silence Lightning's per-fit banners and tiny-data warnings (a run does many fits)."""
    import lightning.pytorch  # noqa: F401  (its import sets its loggers to INFO)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*has shuffling enabled.*")
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", ".*is not a `torch.utils.data.DataLoader`.*")
    warnings.filterwarnings("ignore", ".*`srun` command is available.*")
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


def fit_student(
    cfg: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    fit_idx: np.ndarray,
    val_idx: np.ndarray | None,
    run_dir: Path,
    tag: str,
    *,
    checkpoint: bool = False,
    init: torch.nn.Module | None = None,
    frozen: Sequence[str] = (),
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Fit one student on rows ``fit_idx`` of ``x``/``y``; validate on ``val_idx``.

    Args:
        cfg: the resolved run config (``student``, ``loss``, ``optim``, ``trainer``, ``logger``,
            ``seed`` keys).
        init: continue from this ScaledStudent (fine-tuning: its scaler is kept) instead of a
            fresh student with a scaler fitted on the fitting rows.
        frozen: parameter-name prefixes kept fixed.

    Returns:
        The trained ScaledStudent (eval mode) and the loss module (its parameters trained too).
    """
    import lightning.pytorch as pl

    from .datamodule import SamplesDataModule
    from .lit_module import StudentModule
    from .losses import build_loss
    from .models import init_output_bias, scaled_student, student_inputs_read

    student_cfg = dict(cfg["student"])
    optim = checked_optim(cfg["optim"])
    pl.seed_everything(int(cfg.get("seed", 0)), workers=True, verbose=False)
    dm = SamplesDataModule(
        x, y, feature_names, fit_idx, val_idx,
        batch_size=optim.get("batch_size"), seed=int(cfg.get("seed", 0)),
        transforms=student_cfg.get("transforms"), interactions=student_cfg.get("interactions"),
        fit_scaler=init is None,
        read=student_inputs_read(student_cfg, feature_names, student_cfg.get("interactions")),
    )
    if init is None:
        model = scaled_student(student_cfg, dm.mean, dm.std, feature_names,
                               student_cfg.get("transforms"), student_cfg.get("interactions"))
        # start at the mean training target (a zero network then predicts it)
        init_output_bias(model, float(np.mean(np.asarray(y)[np.asarray(fit_idx)])))
    else:
        model = init.train()
    loss = build_loss(loss_config(cfg["loss"]))
    module = StudentModule(
        model, loss, lr=optim["lr"], weight_decay=optim["weight_decay"],
        loss_lr=optim.get("loss_lr"), frozen=frozen,
    )
    trainer = make_trainer(
        dict(cfg["trainer"]), cfg.get("logger"), run_dir, tag,
        max_epochs=int(optim["max_epochs"]), validate=len(dm.val_idx) > 0,
    )
    from_workers = wandb_from_workers(trainer, run_dir, tag)
    failed = True
    try:
        trainer.fit(module, datamodule=dm)
        if checkpoint:  # the final fit's weights, overwritten by a rerun into the same run dir
            trainer.save_checkpoint(run_dir / "checkpoints" / f"{tag}.ckpt")
        failed = False
    finally:  # a failed fit's W&B run, left live, took the next fit's (a sweep's next job)
        _finish_logger(trainer, from_workers, failed)
    module.model.eval()
    return module.model, module.loss_fn


#: Loss keys only some losses take; a sweep axis over them (``++loss.tau=0.5,1``) is ignored by
#: the others, which then simply repeat.
SWEEP_ONLY_LOSS_KEYS: dict[str, tuple[str, ...]] = {"tau": ("temperature",)}


def checked_optim(optim_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``optim`` section with its numbers read as numbers; a value that is not one (a typo
    such as ``optim.lr=abc``) is an error naming the option, not a traceback from deep inside
    the fit; so is one out of range (``optim.lr=-1``: torch's optimizer would raise inside
    Lightning)."""
    optim = dict(optim_cfg)
    kinds = {"lr": float, "weight_decay": float, "loss_lr": float, "max_epochs": int,
             "batch_size": int}
    refuse_unknown_keys("optim", optim, kinds)
    # (smallest allowed, whether it may equal it)
    bounds = {"lr": (0, False), "loss_lr": (0, False), "weight_decay": (0, True),
              "max_epochs": (1, True), "batch_size": (1, True)}
    for key, kind in kinds.items():
        if optim.get(key) is not None:
            optim[key] = checked_number(f"optim.{key}", optim[key], kind, *bounds[key])
        elif key in ("lr", "weight_decay", "max_epochs"):  # null means something only for
            # batch_size (full batch) and loss_lr (the lr); these crashed deep in the fit
            raise VmafDistillError(
                f"optim.{key}=null: needs a number (null is a choice only for optim.batch_size, "
                "full batch, and optim.loss_lr, the same as optim.lr)")
    return optim


def checked_run_values(plain: dict[str, Any]) -> None:
    """``seed`` and ``guard_thresholds`` read as numbers before any fit (a typo failed in
    numpy after every fold had been fitted; a threshold given twice gave twin columns), and
    the student config's keys checked (:func:`~.models.check_student_keys`)."""
    checked_number("seed", plain.get("seed", 0), int, 0, True, 2**32)  # numpy's seed range
    if isinstance(plain.get("student"), Mapping):
        from .models import check_student_keys

        check_student_keys(plain["student"])
    thresholds = plain.get("guard_thresholds") or []
    if not isinstance(thresholds, (list, tuple)):
        raise VmafDistillError(
            f"guard_thresholds={thresholds!r}: a list of VMAF values, e.g. [70,80]")
    seen: set[float] = set()
    for t in thresholds:  # checked, kept as typed (they name metric keys)
        value = checked_number("guard_thresholds", t, float, 0)
        if value > 100:  # the card refuses it
            raise VmafDistillError(f"guard_thresholds: {t!r} is not a VMAF value (0..100)")
        if value in seen:  # [70, 70] gave twin columns, [70.0, 70] keys "70.0" and "70"
            raise VmafDistillError(f"guard_thresholds: {t!r} is given twice")
        seen.add(value)


def loss_config(loss_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The loss mapping for ``build_loss``, less sweep-only keys the loss does not take."""
    out = dict(loss_cfg)
    for key, takers in SWEEP_ONLY_LOSS_KEYS.items():
        if out.get("name") not in takers:
            out.pop(key, None)
    return out


def _finish_logger(trainer: Any, from_workers: Callable[[bool], None] | None,
                   failed: bool) -> None:
    """Finish a fit's W&B run, marked failed when the fit raised (it read as a success);
    ``from_workers`` (:func:`~.loggers.wandb_from_workers`) first logs the curves the
    fit's worker processes wrote, also those of a failed fit."""
    exp_logger = getattr(trainer, "logger", None)
    if from_workers is None and (exp_logger is None
                                 or type(exp_logger).__name__ != "WandbLogger"):
        return
    import wandb

    try:
        if from_workers is not None:
            try:
                from_workers(failed)
            except Exception as exc:
                if not failed:
                    failed = True
                    raise
                # the fit's own error is the one to see; this one is a line
                print(f"note: the failed fit's W&B curves could not be logged "
                      f"({type(exc).__name__}: {exc})", file=sys.stderr)
    finally:  # a replay that raised left its run live: the next fit logged into it
        wandb.finish(exit_code=1 if failed else None)


def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Predictions (N,) float64 of a ScaledStudent on raw features (N, F)."""
    import torch

    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(x, dtype=np.float32)))
    return out.double().numpy()


# --------------------------------------------------------------------------- baselines


def baseline_names(cfg: Mapping[str, Any]) -> list[str]:
    """``cfg["baselines"]`` as a list of names: one name may be given bare
    (``baselines=gbdt50``, which was split into its letters)."""
    names = cfg.get("baselines") or []
    return [names] if isinstance(names, str) else [str(n) for n in names]


def _baseline_key(manifest: Mapping[str, Any], cfg: Mapping[str, Any], n_rows: int,
                  columns: Sequence[str], data: str = "") -> str:
    """Cache key of a run's baselines: corpus, folds, features and the columns they were fitted
    on, target and each baseline's parameters (an edited entry of conf/baselines.yaml is
    fitted anew), and ``data``, a digest of the rows fitted (:func:`_rows_digest`)."""
    from ..evaluation.baselines import baseline_specs

    names = baseline_names(cfg)
    specs = baseline_specs()
    blob = json.dumps({
        "corpus_hash": manifest.get("corpus_hash"), "cv": cfg["cv"], "features": cfg["features"],
        "target": cfg.get("target", "vmaf"), "baselines": names,
        "specs": [specs.get(n) for n in names], "imputation": "fold median",
        "seed": cfg.get("seed", 0), "rows": n_rows, "columns": list(columns), "data": data,
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _rows_digest(samples: pd.DataFrame, columns: Sequence[str], target: str) -> str:
    """sha256 of the ids, input columns and target the baselines are fitted on: a corpus whose
    table changed under the same corpus hash (the test helper's synthetic corpora, rewritten in
    place, record no table checksum) served the earlier table's predictions, scored against
    the new labels (tree8 MAE 28.9 where a fresh fit gives 3.46)."""
    import pandas as pd

    cols = [c for c in dict.fromkeys(["sample_id", *columns, target]) if c in samples]
    hashed = pd.util.hash_pandas_object(samples[cols], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def baseline_oof(
    samples: pd.DataFrame,
    feature_names: Sequence[str],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    cfg: Mapping[str, Any],
    manifest: Mapping[str, Any],
    corpus_dir: Path,
    run_dir: Path,
) -> tuple[pd.DataFrame, str]:
    """sklearn baselines' OOF predictions on the same folds, cached by corpus + cv + features.

    Returns the OOF frame (``sample_id, model, fold, pred``) and where it was cached.
    """
    import pandas as pd

    from ..corpus.tables import read_table, write_table
    from ..evaluation.baselines import fit_predict_baselines

    names = baseline_names(cfg)
    if not names:
        return pd.DataFrame(columns=["sample_id", "model", "fold", "pred"]), ""
    key = _baseline_key(manifest, cfg, len(samples), feature_names,
                        _rows_digest(samples, feature_names, str(cfg.get("target", "vmaf"))))
    candidates = [corpus_dir / "baselines" / f"{key}.parquet",
                  run_dir / "baselines" / f"{key}.parquet"]
    for path in candidates:
        if path.is_file():
            return read_table(path), str(path)
    # sklearn trees here take no NaN: each fold fills them with its training rows' median (the
    # student imputes the training mean inside its graph instead)
    oof = fit_predict_baselines(
        samples, splits, list(feature_names), names,
        seed=int(cfg.get("seed", 0)), target=cfg.get("target", "vmaf"), impute_nan=True,
    )
    for path in candidates:
        try:
            write_table(oof, path)
            return oof, str(path)
        except OSError:
            continue
    return oof, ""


# --------------------------------------------------------------------------- metrics


def summarise_predictions(
    oof: pd.DataFrame, thresholds: Sequence[float], target: str = "vmaf"
) -> dict[str, Any]:
    """Overall, per-fold (+ PLCC/MAE spread) and guard metrics of an OOF frame."""
    from ..evaluation.metrics import guard_metrics, regression_metrics

    y, p = oof[target].to_numpy(float), oof["pred"].to_numpy(float)
    folds = []
    for fold, part in oof.groupby("fold", sort=True):
        m = regression_metrics(part[target].to_numpy(float), part["pred"].to_numpy(float))
        folds.append({"fold": int(fold), **m})
    plcc = np.array([f["plcc"] for f in folds], dtype=float)
    mae = np.array([f["mae"] for f in folds], dtype=float)
    # a spread needs two folds: one fold's "std" of 0 read as the most stable run in sweeps
    return {
        "oof": regression_metrics(y, p),
        "folds": folds,
        "fold_plcc_std": float(np.nanstd(plcc)) if np.isfinite(plcc).sum() >= 2
        else float("nan"),
        "fold_mae_std": float(np.std(mae)) if len(mae) >= 2 else float("nan"),
        "guard": guard_metrics(y, p, list(thresholds)),
    }


def _rows_note(metrics: Mapping[str, Any]) -> str:
    """`` (on n of N rows)`` where the final q's held-out coverage left folds out."""
    rows = (metrics.get("conformal") or {}).get("final_q_coverage_rows")
    total = (metrics.get("oof") or {}).get("n")  # the held-out rows (test_sources: fewer)
    if rows is None or total is None or rows in (0, total):
        return ""
    return f" (on {rows} of {total} rows)"


def format_summary(metrics: Mapping[str, Any]) -> str:
    """A compact text table: the student and each baseline (MAE, RMSE, PLCC, SROCC, guard F1s)."""
    thresholds = [str(t) for t in metrics.get("guard_thresholds", [])]
    head = f"{'model':<16}{'MAE':>7}{'RMSE':>7}{'PLCC':>7}{'SROCC':>7}{'sdPLCC':>8}" + "".join(
        f"{'F1@' + t:>7}" for t in thresholds)
    rows = [head, "-" * len(head)]

    def fmt(v: Any, width: int) -> str:
        return f"{v:>{width}.3f}" if isinstance(v, (int, float)) and v is not None \
            and math.isfinite(float(v)) else f"{'-':>{width}}"

    entries = [(f"{metrics.get('student', 'student')}", metrics)]
    # "sk:" tells a baseline from a student of the same name (a linear student beside the
    # linear baseline read as two rows named linear)
    entries += [(f"sk:{name}", m) for name, m in (metrics.get("baselines") or {}).items()]
    for name, m in entries:
        o = m.get("oof") or {}
        guard = m.get("guard") or {}
        line = f"{name[:15]:<16}" + fmt(o.get("mae"), 7) + fmt(o.get("rmse"), 7) + fmt(
            o.get("plcc"), 7) + fmt(o.get("srocc"), 7) + fmt(m.get("fold_plcc_std"), 8)
        for t in thresholds:
            g = guard.get(t) or {}
            line += fmt(g.get("f1") if g.get("defined", True) else None, 7)
        rows.append(line)
    conf = metrics.get("conformal") or {}
    if conf:
        # two intervals: each fold's own (its coverage is the OOF one) and the final model's
        # q, whose held-out coverage is its rule applied to each fold from the other folds
        rows.append(
            f"conformal: nominal {fmt(conf.get('nominal'), 0).strip()}, OOF coverage "
            f"{fmt(conf.get('coverage'), 0).strip()} (fold intervals); final q "
            f"{fmt(conf.get('final_q'), 0).strip()}, held-out coverage "
            f"{fmt(conf.get('final_q_coverage'), 0).strip()}{_rows_note(metrics)}"
        )
    rows.append(f"wall time {fmt(metrics.get('wall_time_s'), 0).strip()} s")
    return "\n".join(rows)


# --------------------------------------------------------------------------- the run
# run() reads top to bottom: load_training_data -> conformal_plan -> cross_validate (fit_fold per
# fold) -> conformal_summary -> baseline_metrics -> fit_final -> run_metrics -> save_run.


@dataclass
class TrainData:
    """A run's corpus rows and folds (:func:`load_training_data`)."""

    feature_names: list[str]
    corpus_dir: Path
    manifest: dict[str, Any]
    samples: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    n_dropped: int
    splits: list[tuple[np.ndarray, np.ndarray]]
    target: str
    #: scenes (``scene_id``) with rows on both sides of some fold (:func:`note_shared_scenes`)
    shared_scenes: list[str] = field(default_factory=list)


@dataclass
class ConformalPlan:
    """How the folds' and the final model's interval half widths are calibrated."""

    alpha: float
    method: str
    final_q_rule: str
    group_col: str
    groups: np.ndarray
    inner_splits: int
    calib_frac: float


def load_training_data(cfg: Any, plain: Mapping[str, Any]) -> TrainData:
    """The feature set's columns, the corpus's usable rows and the CV folds over them."""
    from ..evaluation.splits import make_splits
    from ..features.registry import feature_set, feature_set_name

    target = plain.get("target", "vmaf")
    try:
        plain["features"] = feature_set_name(plain["features"])  # conf/features/<name>.yaml
        feature_names = feature_set(plain["features"])
    except ValueError as exc:
        raise VmafDistillError(f"features: {exc}") from None
    corpus_dir, manifest, samples, x, y, n_dropped = load_rows(cfg, plain, feature_names, target)
    check_sample_ids(corpus_dir, samples)
    splits = [(np.asarray(tr), np.asarray(te)) for tr, te in make_splits(samples, plain["cv"])]
    if not splits:
        raise VmafDistillError(f"cv {plain['cv'].get('name')}: no folds for {len(samples)} rows")
    return TrainData(list(feature_names), corpus_dir, manifest, samples, x, y, n_dropped, splits,
                     target, note_shared_scenes(samples, splits, plain["cv"], feature_names))


def check_sample_ids(corpus_dir: Path, samples: pd.DataFrame) -> None:
    """An error naming the corpus where its samples table has no ``sample_id`` or repeats one
    (both failed in pandas after every fold had been fitted; finetune had cleared its earlier
    run's results by then)."""
    if "sample_id" not in samples:
        raise VmafDistillError(f"{corpus_dir}: samples table has no sample_id column")
    repeated = samples["sample_id"][samples["sample_id"].duplicated()]
    if len(repeated):
        raise VmafDistillError(
            f"{corpus_dir}: samples table repeats {len(repeated)} sample_id(s), e.g. "
            f"{repeated.iloc[0]!r}: each row needs its own id")


def note_shared_scenes(samples: pd.DataFrame, splits: list[tuple[np.ndarray, np.ndarray]],
                       cv: Mapping[str, Any], feature_names: Sequence[str], *,
                       conformal_groups: bool = True) -> list[str]:
    """Scenes with shot windows on both sides of some fold, said once on stderr: a shot-grouped
    cv keeps shots whole, not scenes, so a test window's scene-level inputs and its scene's
    look were in training (the pilot clip is one scene cut into windows: every fold)."""
    from ..evaluation.splits import shared_groups

    shared = shared_groups(samples, splits, "scene_id")
    if not shared:
        return []
    scene_level = [f for f in feature_names if "scene" in f]
    n_scenes = int(samples["scene_id"].nunique())
    inputs = (f"; the scene-level inputs {', '.join(scene_level)} of a test shot were in "
              "training" if scene_level else "")
    remedy = ("cv=group_scene keeps scenes whole" if n_scenes >= 5 else
              f"cv=group_scene cv.n_splits={n_scenes} keeps scenes whole" if n_scenes > 2 else
              ("cv=group_scene cv.n_splits=2 conformal.group_col=shot_id keeps scenes whole"
               if conformal_groups else "cv=group_scene cv.n_splits=2 keeps scenes whole")
              if n_scenes == 2 else "this corpus has one scene, which no cv can hold out")
    print(f"note: cv {cv.get('name')} groups by {cv.get('group') or cv.get('key')}: "
          f"{len(shared)} of {n_scenes} scene(s) have shots on both sides of a fold, so its "
          f"figures are within-scene{inputs} ({remedy})", file=sys.stderr, flush=True)
    return shared


def rows_needed(alpha: float) -> int:
    """How many residuals a finite ``1 - alpha`` conformal quantile needs (fewer give q = inf),
    as the error messages state it."""
    return math.ceil((1 - alpha) / alpha)


def require_finite_q(q: float, alpha: float, n_rows: int, kind: str) -> None:
    """An error where the conformal q is infinite: ``n_rows`` residuals are too few for
    ``alpha`` (the card would ship q = Infinity: the interval [0, 100] for every shot)."""
    if not math.isfinite(q):
        raise VmafDistillError(
            f"conformal.alpha={alpha}: {n_rows} {kind} rows are too few for a "
            f"{1 - alpha:.0%} conformal quantile (need >= {rows_needed(alpha)}); "
            "use a larger alpha or a larger corpus")


def require_enough_rows(n_rows: int, alpha: float, kind: str) -> None:
    """:func:`require_finite_q` before any fit: whether ``n_rows`` residuals, whatever their
    values, give a finite quantile (train's out-of-fold rows, finetune's held-out rows)."""
    from ..evaluation.conformal import conformal_quantile

    require_finite_q(float(conformal_quantile(np.ones(n_rows), alpha)), alpha, n_rows, kind)


#: The ``conformal`` settings :func:`conformal_plan` reads.
CONFORMAL_KEYS = ("alpha", "method", "final_q", "group_col", "inner_splits", "calib_frac")


def conformal_plan(plain: Mapping[str, Any], samples: pd.DataFrame) -> ConformalPlan:
    """The ``conformal`` config checked, with the cv protocol's choices where it says null."""
    conf_cfg = plain.get("conformal") or {}
    refuse_unknown_keys("conformal", conf_cfg, CONFORMAL_KEYS)
    cv_cfg = plain["cv"]
    # null: the cv protocol's own choice (cv.conformal_method; leave-one-source-out picks
    # `cross`, see conf/cv/loso.yaml), else nested
    method = str(conf_cfg.get("method") or cv_cfg.get("conformal_method") or "nested")
    if method not in CONFORMAL_METHODS:
        raise VmafDistillError(f"conformal.method: unknown {method!r}; known: {CONFORMAL_METHODS}")
    final_q_rule = str(conf_cfg.get("final_q") or "pooled")
    if final_q_rule not in FINAL_Q_RULES:
        raise VmafDistillError(
            f"conformal.final_q: unknown {final_q_rule!r}; known: {tuple(FINAL_Q_RULES)}")
    # inner/calibration groups: conformal.group_col, else the CV protocol's own grouping column
    group_col = conf_cfg.get("group_col") or cv_cfg.get("group") or cv_cfg.get("key") or "shot_id"
    if group_col not in samples:
        raise VmafDistillError(f"conformal.group_col: samples table has no column {group_col!r}")
    # nested needs two inner folds for out-of-fold residuals (one gave no interval at all);
    # split keeps some of the groups for fitting and some for calibration
    inner_cfg = conf_cfg.get("inner_splits")
    inner = checked_number("conformal.inner_splits", 5 if inner_cfg is None else inner_cfg,
                           int, 2)
    calib = checked_number("conformal.calib_frac", conf_cfg.get("calib_frac", 0.2), float, 0,
                           False, 1) if method == "split" else 0.0
    alpha = checked_number("conformal.alpha", conf_cfg.get("alpha", 0.1), float, 0, False, 1)
    return ConformalPlan(
        alpha=alpha, method=method, final_q_rule=final_q_rule,
        group_col=group_col, groups=samples[group_col].to_numpy(),
        inner_splits=inner, calib_frac=calib,
    )


#: ``trainer`` keys the fits set themselves.
_TRAINER_KEYS_SET_HERE = ("logger", "default_root_dir", "enable_checkpointing", "callbacks")
#: ``trainer`` keys that end a fit before ``optim.max_epochs`` (the run then reported a
#: part-trained student as fitted: MAE 27.8 where the full fits give 18.4).
_TRAINER_KEYS_CUTTING_FITS = {"max_time": (None,), "max_steps": (None, -1),
                              "limit_train_batches": (None, 1.0),
                              "fast_dev_run": (None, False, 0), "overfit_batches": (None, 0, 0.0),
                              # several nodes: Lightning's popen launcher, which re-runs the
                              # command per rank
                              "num_nodes": (None, 1)}
#: Precisions whose students the run can check, export and fine-tune: ``bf16-true`` failed
#: after every fit (numpy has no bfloat16) and ``16-true`` read as a diverged fit.
_TRAINER_PRECISIONS = ("32", "32-true", "64", "64-true", "bf16-mixed", "16-mixed", "bf16", "16")


def check_trainer_settings(trainer_cfg: Mapping[str, Any], max_epochs: int) -> None:
    """The ``trainer`` group checked, and a Trainer built from it as a fit builds one, before
    an earlier run's outputs are removed: Lightning's own refusals (an unknown key, a bad
    value) came as a traceback at fold 0, after the outputs were deleted."""
    from ..config import checked_bool

    cfg = dict(trainer_cfg)
    check_one_epoch_count(cfg, max_epochs)
    _check_accelerator(cfg)
    for key in _TRAINER_KEYS_SET_HERE:
        if key in cfg:
            raise VmafDistillError(f"trainer.{key}: set by the run itself (the logger group "
                                   "picks the logger; outputs go to the run directory)")
    for key, harmless in _TRAINER_KEYS_CUTTING_FITS.items():
        given = cfg.get(key)
        # typed: limit_train_batches=1 (int) is one batch, 1.0 all of them
        if not any(given is h or (type(given) is type(h) and given == h) for h in harmless):
            raise VmafDistillError(
                f"trainer.{key}={given}: " + ("one node only (several re-run the command per "
                                              "rank)" if key == "num_nodes" else
                                              "it ends fits before optim.max_epochs, and the "
                                              "run would report a part-trained student as "
                                              "fitted; set optim.max_epochs"))
    for key in ("checkpoint_final", "enable_progress_bar", "enable_model_summary"):
        # bool("no") is True: checkpoint_final=no still wrote a checkpoint (null: the default)
        checked_trainer_bool(cfg, key, True)
    if cfg.get("deterministic") is not None and cfg["deterministic"] != "warn":
        cfg["deterministic"] = checked_bool("trainer.deterministic", cfg["deterministic"])
    precision = cfg.get("precision")
    if precision is not None and str(precision) not in _TRAINER_PRECISIONS:
        raise VmafDistillError(
            f"trainer.precision={precision}: use one of {', '.join(_TRAINER_PRECISIONS)} (the "
            "student's checks, export and finetune read float32 or float64 weights)")
    try:
        with tempfile.TemporaryDirectory(prefix="vmafdistill-trainer-check-") as tmp:
            make_trainer(cfg, None, Path(tmp), "check", max_epochs=max_epochs)
    except VmafDistillError:
        raise
    except Exception as exc:  # TypeError (a key Trainer lacks), ValueError, Misconfiguration
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise VmafDistillError(f"trainer settings: {why}") from None


def checked_trainer_bool(trainer_cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    """A boolean ``trainer`` key (``checkpoint_final=no`` is false), as the run reads it."""
    from ..config import checked_bool

    value = trainer_cfg.get(key)
    return default if value is None else checked_bool(f"trainer.{key}", value)


def check_fit_settings(plain: Mapping[str, Any], *, notes: bool = True) -> None:
    """The optimizer settings, the trainer, the one epoch count and the loss, built as a fit
    builds them (train and finetune check them before an earlier run's outputs are
    removed); ``notes``: also say what is legal but odd (the pilot checks early, quietly)."""
    from ..config import checked_bool
    from .losses import build_loss

    # `~loss` (or a config file without the section) was a KeyError traceback
    if missing := [k for k in ("optim", "loss") if plain.get(k) is None]:
        raise VmafDistillError(f"config: no {', '.join(missing)} section (removed with ~KEY, "
                               "or a config file without it?)")
    quiet_lightning()  # building the Trainer printed Lightning's banner
    check_trainer_settings(plain.get("trainer") or {}, checked_optim(plain["optim"])["max_epochs"])
    loss = build_loss(loss_config(plain["loss"]))
    checked_bool("summary", plain.get("summary", True))  # summary=no printed it
    if notes:
        note_margin_mismatch(loss, plain.get("student") or {})


def note_margin_mismatch(loss: Any, student: Mapping[str, Any]) -> None:
    """Say when a logit-space loss and the student's bounded head use other margins: the loss
    is the inverse of a bounded head of its own margin (docs/students.md), so with another one
    errors near 0 and 100 are weighted otherwise than the configs intend (nothing read both);
    and when such a loss trains an unbounded (linear) head, which it cannot pull back from
    outside its range."""
    margin, head = getattr(loss, "margin", None), student.get("output_margin")
    if not (isinstance(head, int | float) and not isinstance(head, bool)):
        return  # not a number: the student's own check names it
    if (getattr(loss, "space", None) == "logit" and student.get("output") == "bounded"
            and margin is not None and float(head) != float(margin)):
        print(f"note: loss.margin={margin:g} and student.output_margin={float(head):g} "
              "differ: the logit loss inverts a bounded head of its own margin; give both "
              "the same m", file=sys.stderr)
    if getattr(loss, "space", None) == "logit" and student.get("output") == "linear":
        # an unbounded head leaves the logit's range, where the loss is flat: a linear
        # student on the pilot ended at OOF MAE 22.0 (9.7 with loss.space=vmaf)
        print(f"note: student.output=linear with a logit-space loss: a prediction outside "
              f"(-{margin or 0:g}, {100 + (margin or 0):g}) gets no gradient from it; "
              "loss.space=vmaf (or loss=huber_points) trains a linear head on every row",
              file=sys.stderr)


def check_run_settings(plain: Mapping[str, Any], data: TrainData, plan: ConformalPlan) -> None:
    """Build what a fit builds (optimizer settings, loss, student) and check the baselines'
    names and each fold's calibration groups before an earlier run's outputs are removed or a
    fold is fitted: a bad value failed only after that, leaving the run directory empty (its
    old model deleted) or half written."""
    from ..evaluation.baselines import baseline_specs, make_baseline
    from .models import scaled_student, student_input_names

    check_fit_settings(plain)
    student_cfg = dict(plain["student"])
    width = len(student_input_names(data.feature_names, student_cfg.get("interactions")))
    scaled_student(student_cfg, np.zeros(width), np.ones(width), data.feature_names,
                   student_cfg.get("transforms"), student_cfg.get("interactions"))
    specs = baseline_specs()
    for name in baseline_names(plain):  # an unknown name or estimator, as the fits would find
        make_baseline(name, specs)
    check_fold_inputs(data, student_cfg, plan)
    if plan.method == "cross" and len(data.splits) < 2:  # its intervals were NaN, unsaid
        print(f"note: conformal.method=cross calibrates each fold on the other folds' "
              f"residuals, and cv {plain['cv'].get('name')} makes one fold: no out-of-fold "
              "interval or coverage (the student's interval comes from its pooled residuals; "
              "conformal.method=nested or split calibrate one)", file=sys.stderr)
    # the pooled out-of-fold q (every row is held out once) needs enough rows for alpha
    require_enough_rows(sum(len(te) for _, te in data.splits), plan.alpha, "out-of-fold")
    if plan.final_q_rule == "worst_fold":  # one q per fold: known before any fit (it was after)
        from ..evaluation.conformal import conformal_quantile

        small = {str(k): len(te) for k, (_, te) in enumerate(data.splits)
                 if not math.isfinite(float(conformal_quantile(np.ones(len(te)), plan.alpha)))}
        if small:
            raise VmafDistillError(
                f"conformal.final_q=worst_fold: fold(s) {small} (fold: rows) have too few rows "
                f"for a {1 - plan.alpha:.0%} conformal quantile (need >= "
                f"{rows_needed(plan.alpha)}); use final_q=pooled or a larger alpha")
    if plan.method in ("nested", "split"):
        for k, (tr, _) in enumerate(data.splits):
            n_groups = len(np.unique(plan.groups[tr].astype(str)))
            if n_groups < 2:  # inner folds or a calibration part need two groups
                raise VmafDistillError(
                    f"conformal.method={plan.method}: fold {k}'s training rows hold "
                    f"{n_groups} group of {plan.group_col!r}, so no interval can be "
                    "calibrated inside it; use conformal.method=cross")


def check_fold_inputs(data: TrainData, student_cfg: Mapping[str, Any],
                      plan: ConformalPlan | None = None) -> None:
    """Every fold's training rows (and a nested plan's inner folds') can be standardised (each
    input has a finite value, none an infinite one), checked before an earlier run's outputs
    are removed: fold 0's fit found an all-NaN column (a v1.0.16 corpus has no ``vif_*``
    features) after they were deleted."""
    from .models import fit_scaler, student_inputs_read

    interactions = student_cfg.get("interactions")
    read = student_inputs_read(student_cfg, data.feature_names, interactions)
    for k, (tr, _) in enumerate(data.splits):
        parts = [(f"fold {k}'s training rows", tr)]
        if plan is not None and plan.method == "nested":
            parts += [(f"fold {k}'s inner fold {j}", tr[itr]) for j, (itr, _) in
                      enumerate(inner_group_folds(plan.groups[tr], plan.inner_splits))]
        for where, rows in parts:
            try:
                fit_scaler(data.x[rows], data.feature_names, student_cfg.get("transforms"),
                           interactions, read=read)
            except VmafDistillError as exc:
                raise VmafDistillError(
                    f"{exc} in {where} of corpus {data.corpus_dir} (a teacher that computes "
                    "no such feature leaves it NaN, e.g. v1.0.16 for vif_*: choose another "
                    "feature set)") from None


def fit_fold(
    plain: Mapping[str, Any], data: TrainData, plan: ConformalPlan, k: int, run_dir: Path
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fold ``k``: fit on its training rows (less the calibration groups with ``split``), the
    calibration residuals of ``split`` / ``nested`` and their q, the test fold's predictions."""
    import pandas as pd

    from ..evaluation.conformal import conformal_quantile

    tr, te = data.splits[k]
    x, y, names = data.x, data.y, data.feature_names
    cal_idx = np.array([], dtype=np.int64)
    cal_res = np.array([], dtype=np.float64)
    if plan.method == "split":
        fit_pos, cal_pos = inner_group_split(
            plan.groups[tr], plan.calib_frac, int(plain.get("seed", 0)) + k)
        fit_idx, cal_idx = tr[fit_pos], tr[cal_pos]
    else:
        fit_idx = tr
    # the calibration rows of `split` are held out from the fit: validated on (val_mae in the
    # logs), they change nothing in the fit
    model, _ = fit_student(plain, x, y, names, fit_idx, cal_idx if len(cal_idx) else None,
                           run_dir, f"fold{k}")
    if plan.method == "split" and len(cal_idx):
        cal_res = np.abs(y[cal_idx] - predict(model, x[cal_idx]))
    elif plan.method == "nested":
        res = []
        inner = inner_group_folds(plan.groups[tr], plan.inner_splits)
        if 0 < len(inner) < plan.inner_splits:  # as many as the fold's training groups
            print(f"note: fold {k}: {len(inner)} inner folds, not conformal.inner_splits="
                  f"{plan.inner_splits}: its training rows hold {len(inner)} groups of "
                  f"{plan.group_col!r}", file=sys.stderr)
        for j, (itr, ite) in enumerate(inner):
            inner_model, _ = fit_student(plain, x, y, names, tr[itr], None,
                                         run_dir, f"fold{k}_inner{j}")
            res.append(np.abs(y[tr[ite]] - predict(inner_model, x[tr[ite]])))
        cal_res = np.concatenate(res) if res else cal_res
    test_pred = predict(model, x[te])
    _require_finite_predictions(plain, k, np.concatenate([test_pred, cal_res]))
    q = float(conformal_quantile(cal_res, plan.alpha)) if len(cal_res) else float("nan")
    samples = data.samples
    part = pd.DataFrame({
        "sample_id": samples["sample_id"].to_numpy()[te], "fold": k,
        # the table's own target, not the float32 one the student fits (3.8e-6 VMAF apart: every
        # figure from the OOF differed from one recomputed from samples.parquet; a hunt)
        "pred": test_pred, data.target: (samples[data.target].to_numpy(float)[te]
                                         if data.target in samples else y[te].astype(float)),
    })
    # the teacher's VMAF beside another target (vmaf_min): it was overwritten with the target
    for col in (*OOF_KEYS, *(("vmaf",) if data.target != "vmaf" else ())):
        if col in samples:
            part[col] = samples[col].to_numpy()[te]
    info = {"fold": k, "n_train": len(tr), "n_fit": len(fit_idx), "n_calib": len(cal_res),
            "n_test": len(te), "q": q,
            **({"n_inner": len(inner)} if plan.method == "nested" else {})}
    return part, info


def _require_finite_predictions(plain: Mapping[str, Any], fold: int,
                                values: np.ndarray) -> None:
    """A diverged fit (NaN or infinite predictions) stops at its fold, named, with the likely
    cause: it failed after every fold as "conformal: residuals must be finite"."""
    if not np.all(np.isfinite(values)):
        lr = (plain.get("optim") or {}).get("lr")
        raise VmafDistillError(
            f"fold {fold}: the student's predictions are not finite (the fit diverged; "
            f"optim.lr={lr} too high?)")


def cross_validate(
    plain: Mapping[str, Any], data: TrainData, plan: ConformalPlan, run_dir: Path
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every fold (:func:`fit_fold`), ``cross`` q's, intervals; writes ``oof.parquet``.

    Returns the OOF frame (``pred``, ``lo``, ``hi``, target, :data:`OOF_KEYS`) and the folds'
    info (sizes, q)."""
    import pandas as pd

    from ..corpus.tables import write_table
    from ..evaluation.conformal import conformal_quantile, intervals

    target = data.target
    folds = [fit_fold(plain, data, plan, k, run_dir) for k in range(len(data.splits))]
    parts = [part for part, _ in folds]
    fold_info = [info for _, info in folds]
    if plan.method == "cross" and len(parts) > 1:  # q_k from the OOF residuals of the others
        # (a single split, e.g. cv=hash, has no other fold: its q stays NaN, no interval)
        for k in range(len(parts)):
            others = np.concatenate([np.abs(p[target] - p["pred"]).to_numpy()
                                     for j, p in enumerate(parts) if j != k])
            fold_info[k]["q"] = float(conformal_quantile(others, plan.alpha))
            fold_info[k]["n_calib"] = len(others)
    _no_interval_where_too_few(fold_info, plan.alpha)
    for k, part in enumerate(parts):
        lo, hi = intervals(part["pred"].to_numpy(), fold_info[k]["q"])
        part["lo"], part["hi"] = np.asarray(lo, float), np.asarray(hi, float)
    oof = pd.concat(parts, ignore_index=True)
    write_table(oof, run_dir / "oof.parquet")
    return oof, fold_info


def _no_interval_where_too_few(fold_info: list[dict[str, Any]], alpha: float) -> None:
    """A fold whose calibration rows are too few for ``alpha`` gets no interval (q NaN, said
    on stderr): its infinite interval covered every row, and the OOF coverage read 1.000."""
    short = [info for info in fold_info if math.isinf(info["q"])]
    for info in short:
        info["q"] = float("nan")
    if short:
        print(f"warning: conformal.alpha={alpha}: fold(s) "
              f"{', '.join(str(i['fold']) for i in short)} have too few calibration rows "
              f"({', '.join(str(i['n_calib']) for i in short)}; need >= "
              f"{rows_needed(alpha)}) for a {1 - alpha:.0%} quantile: no interval "
              "there, and the OOF coverage leaves them out", file=sys.stderr)


def conformal_summary(oof: pd.DataFrame, plan: ConformalPlan, target: str) -> dict[str, Any]:
    """``metrics.json``'s ``conformal`` block: OOF coverage, widths, the final model's q."""
    from ..evaluation.conformal import (
        conformal_quantile,
        coverage,
        group_quantiles,
        held_out_rule_coverage,
    )

    alpha = plan.alpha
    finite_q = oof[~np.isnan(oof["lo"])]  # folds without calibration rows have q = NaN
    cov = float(coverage(finite_q[target], finite_q["lo"], finite_q["hi"])) if len(finite_q) \
        else float("nan")
    per_fold_cov = {
        str(k): float(coverage(g[target], g["lo"], g["hi"]))
        for k, g in finite_q.groupby("fold")
    }
    oof_abs = np.abs(oof[target] - oof["pred"]).to_numpy()
    pooled_q = float(conformal_quantile(oof_abs, alpha))
    per_fold_q = {str(k): float(q) for k, q in
                  group_quantiles(oof_abs, oof["fold"].to_numpy(), alpha).items()}
    # worst_fold: the largest per-fold quantile (what worst_group_quantile computes)
    worst = plan.final_q_rule == "worst_fold"
    final_q = max(per_fold_q.values()) if worst else pooled_q
    if worst and not math.isfinite(final_q):
        small = {k: int((oof["fold"] == int(k)).sum()) for k, q in per_fold_q.items()
                 if not math.isfinite(q)}
        raise VmafDistillError(
            f"conformal.final_q=worst_fold: fold(s) {small} (fold: rows) have too few rows for "
            f"a {1 - alpha:.0%} conformal quantile (need >= {rows_needed(alpha)}); "
            "use final_q=pooled or a larger alpha"
        )
    require_finite_q(final_q, alpha, len(oof_abs), "out-of-fold")
    # final_q's coverage of the residuals it came from is >= nominal by construction: the
    # same rule on the other folds' residuals, applied to each fold, is the honest figure
    final_cov, final_per_fold = held_out_rule_coverage(oof_abs, oof["fold"].to_numpy(), alpha,
                                                       plan.final_q_rule)
    return {
        "alpha": alpha, "nominal": 1.0 - alpha, "coverage": cov,
        "per_fold_coverage": per_fold_cov,
        "mean_width": float(np.nanmean(oof["hi"] - oof["lo"])) if len(finite_q) else None,
        "method": plan.method, "group_col": plan.group_col,
        "calib_frac": plan.calib_frac if plan.method == "split" else None,
        "inner_splits": plan.inner_splits if plan.method == "nested" else None,
        "final_q": final_q, "final_q_rule": plan.final_q_rule,
        "final_q_source": FINAL_Q_RULES[plan.final_q_rule],
        "pooled_q": pooled_q, "per_fold_q": per_fold_q,
        "final_q_coverage": final_cov,
        "final_q_per_fold_coverage": {str(k): v for k, v in final_per_fold.items()},
        # a fold whose other folds are too few for a finite q is left out of it: say how many
        "final_q_coverage_rows": int(oof["fold"].isin(list(final_per_fold)).sum()),
    }


def baseline_metrics(
    plain: Mapping[str, Any], data: TrainData, thresholds: Sequence[float], run_dir: Path
) -> tuple[dict[str, Any], str]:
    """sklearn reference rows on the same folds and the student's own input columns (a
    ``features:`` subset's, with its interactions' factors: a 6-column student was compared
    with baselines fitted on all 17), summarised per baseline, and their cache."""
    from .models import raw_columns_read

    samples, target = data.samples, data.target
    student = plain["student"]
    columns = raw_columns_read(student, data.feature_names, student.get("interactions"))
    baselines: dict[str, Any] = {}
    base_oof, base_cache = baseline_oof(samples, columns, data.splits, plain,
                                        data.manifest, data.corpus_dir, run_dir)
    if len(base_oof):
        truth = samples.set_index("sample_id")[target]
        for name, part in base_oof.groupby("model", sort=False):
            part = part.assign(**{target: truth.loc[part["sample_id"]].to_numpy()})
            baselines[str(name)] = {**summarise_predictions(part, thresholds, target),
                                    "features": columns}
    return baselines, base_cache


def learned_loss_params(loss: torch.nn.Module) -> dict[str, float]:
    """The loss's learned scalars (``raw_tau`` ...) and, for a learned temperature, ``tau`` in
    the config's units, kept inside its bounds (float32 rounding at a saturated bound landed
    outside them, and the bundle's loss then failed to rebuild)."""
    learned = {n: float(p.detach().reshape(-1)[0]) for n, p in loss.named_parameters()
               if p.numel() == 1}
    if getattr(loss, "learnable_tau", False):
        lo, hi = float(loss.tau_min), float(loss.tau_max)
        learned["tau"] = min(max(float(loss.tau), lo), hi)
    return learned


def fit_final(
    plain: Mapping[str, Any], data: TrainData, run_dir: Path
) -> tuple[torch.nn.Module, dict[str, float], dict[str, float]]:
    """The shipped student on every row, its learned loss parameters and monotone check."""
    final_model, final_loss = fit_student(
        plain, data.x, data.y, data.feature_names, np.arange(len(data.samples)), None, run_dir,
        "final", checkpoint=checked_trainer_bool(plain["trainer"], "checkpoint_final", False),
    )
    learned = learned_loss_params(final_loss)
    # interactions can bend a monotone input's slope: check the promise on every training row
    monotone = checked_monotone(final_model, data.x, data.feature_names,
                                plain["student"].get("monotone"))
    return final_model, learned, monotone


def run_metrics(
    plain: Mapping[str, Any], data: TrainData, oof: pd.DataFrame, summary: Mapping[str, Any],
    conformal: Mapping[str, Any], baselines: tuple[dict[str, Any], str],
    final: tuple[dict[str, float], dict[str, float]], run_dir: Path, overrides: Sequence[str],
) -> dict[str, Any]:
    """``metrics.json`` (``objective`` = mean OOF MAE)."""
    from ..evaluation.metrics import stratified_metrics

    manifest, target = data.manifest, data.target
    learned, monotone = final
    metrics: dict[str, Any] = {
        "run_dir": str(run_dir),
        "overrides": list(overrides),
        "student": plain["student"].get("name"),
        "loss": plain["loss"].get("name"),
        # the whole configs: several students share a name (logistic) and losses too (huber)
        "student_config": plain["student"],
        "loss_config": plain["loss"],
        "seed": plain.get("seed", 0),
        "features": plain["features"],
        "feature_names": data.feature_names,
        "target": target,
        "corpus": {"name": manifest.get("name"), "hash": manifest.get("corpus_hash"),
                   "dir": str(data.corpus_dir)},
        "cv": plain["cv"],
        "n_samples": len(data.samples),
        "n_dropped": data.n_dropped,
        "n_folds": len(data.splits),
        # scenes with shots in training and test alike (a shot-grouped cv): within-scene figures
        "cv_shared_scenes": len(data.shared_scenes),
        **summary,
        "guard_thresholds": list(plain.get("guard_thresholds") or []),
        "stratified": stratified_metrics(oof, pred_col="pred", target_col=target,
                                         by=tuple(c for c in ("codec", "height") if c in oof)),
        "conformal": dict(conformal),
        "baselines": baselines[0],
        "baseline_cache": baselines[1],
        "learned_loss_params": learned,
        "monotone_check": monotone,
        "bundle": str(run_dir / "student.pt"),
    }
    metrics["objective"] = metrics["oof"]["mae"]
    return metrics


def _with_learned_loss(plain: Mapping[str, Any], learned: Mapping[str, float]) -> dict[str, Any]:
    """The run config with a learned temperature as the loss's ``tau``: the bundle (and the
    exported card) then record the loss the student ended with, and fine-tuning starts there
    instead of at the initial tau."""
    out = dict(plain)
    if "tau" in learned and (plain.get("loss") or {}).get("learnable_tau"):
        out["loss"] = {**plain["loss"], "tau": learned["tau"]}
    return out


def save_run(
    plain: Mapping[str, Any], data: TrainData, oof: pd.DataFrame, final_model: torch.nn.Module,
    metrics: dict[str, Any], run_dir: Path, t0: float,
) -> None:
    """``student.pt`` (model + scaler + config + metrics), ``metrics.json``, the tracker's run
    summary and the printed table."""
    from ..corpus.tables import atomic_write_json
    from ..features.registry import FEATURE_SET_VERSION
    from ..folders import json_safe
    from .bundle import save_bundle
    from .runlog import log_run_summary

    conf = metrics["conformal"]
    meta = {
        "feature_set": plain["features"],
        "feature_names": data.feature_names,
        "feature_set_version": FEATURE_SET_VERSION,
        # dir: where export finds it from any working directory (the card keeps name, hash)
        "corpus": {"name": data.manifest.get("name"), "hash": data.manifest.get("corpus_hash"),
                   "dir": str(data.corpus_dir)},
        # how the OOF figures were measured travels with them to the card (a shot-grouped
        # pilot MAE read as one across content; rows nan_policy=drop left out went unsaid)
        "metrics": json_safe({**{k: metrics[k] for k in (
            "oof", "fold_plcc_std", "guard", "n_samples", "n_dropped", "n_folds",
            "cv_shared_scenes", "monotone_check")}, "cv": plain.get("cv")}),
        "conformal": {"alpha": conf["alpha"], "q": conf["final_q"], "rule": conf["final_q_rule"]},
        "guard_thresholds": metrics["guard_thresholds"],
        "target": data.target,
        "config": json_safe(_with_learned_loss(plain, metrics["learned_loss_params"])),
    }
    save_bundle(run_dir / "student.pt", final_model, plain["student"], meta)
    metrics["wall_time_s"] = time.perf_counter() - t0
    atomic_write_json(run_dir / "metrics.json", json_safe(metrics))
    # config, OOF metrics, plots and the model into the tracker (plots/ for every logger)
    log_run_summary(plain.get("logger"), run_dir, json_safe(plain), json_safe(metrics), oof)
    if plain.get("summary", True):
        print(format_summary(metrics), flush=True)


def note_unused_monotone(student_cfg: Mapping[str, Any], feature_names: Sequence[str]) -> None:
    """A warning where the student's monotone constraints name no input it has (its feature
    set's columns and interaction products): ``experiment=default_student student=mlp``
    trained an unconstrained student without a word (the config skips absent columns, so one
    config serves sets with ``log_bpp`` or ``log_bitrate``)."""
    from .models import interaction_name

    monotone = dict(student_cfg.get("monotone") or {})
    inputs = {*feature_names, *(interaction_name(a, b)
                                for a, b in student_cfg.get("interactions") or [])}
    if monotone and not inputs & set(monotone):
        warnings.warn(f"the student's monotone constraints name {sorted(monotone)}, none of "
                      "them an input of this feature set: it trains unconstrained",
                      stacklevel=2)


def record_corpus_teacher(plain: dict[str, Any], manifest: Mapping[str, Any]) -> None:
    """The run records the teacher its corpus was labelled with: a run on ``corpus_dir=`` kept
    the config's default (``vmaf_v0.6.1``) in its bundle for a v1.0.16-labelled corpus."""
    teacher = (manifest.get("config") or {}).get("teacher")
    if plain.get("corpus_dir") and isinstance(teacher, Mapping):
        plain["teacher"] = dict(teacher)


def run(
    cfg: DictConfig | Mapping[str, Any], run_dir: Path, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Cross-validate, fit the final student and write ``oof.parquet``, ``metrics.json``,
    ``student.pt`` into ``run_dir``. Returns the metrics (``objective`` = mean OOF MAE)."""
    t0 = time.perf_counter()
    plain, run_dir = begin_run(cfg, run_dir)
    try:
        return _run(cfg, plain, run_dir, overrides, t0)
    finally:  # also when the run fails: a notebook's next fit into it is not refused
        release_run_dir(run_dir)


def _run(cfg: DictConfig | Mapping[str, Any], plain: dict[str, Any], run_dir: Path,
         overrides: Sequence[str], t0: float) -> dict[str, Any]:
    """:func:`run`'s body, once its run directory is made."""
    # what needs no data, before the corpus (a build of hours ended in `optim.lr='abc'`)
    check_fit_settings(plain, notes=False)
    data = load_training_data(cfg, plain)
    record_corpus_teacher(plain, data.manifest)
    note_unused_monotone(plain["student"], data.feature_names)
    plan = conformal_plan(plain, data.samples)
    check_run_settings(plain, data, plan)
    clear_earlier_outputs(run_dir)  # every setting checked: now this run's outputs replace them
    oof, fold_info = cross_validate(plain, data, plan, run_dir)
    thresholds = list(plain.get("guard_thresholds") or [])
    summary = summarise_predictions(oof, thresholds, data.target)
    for f, info in zip(summary["folds"], fold_info, strict=True):
        f.update(info)
    conformal = conformal_summary(oof, plan, data.target)
    baselines = baseline_metrics(plain, data, thresholds, run_dir)
    final_model, learned, monotone = fit_final(plain, data, run_dir)
    metrics = run_metrics(plain, data, oof, summary, conformal, baselines, (learned, monotone),
                          run_dir, overrides)
    save_run(plain, data, oof, final_model, metrics, run_dir, t0)
    return metrics
