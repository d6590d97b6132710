"""What a training run leaves in the experiment tracker, once every fold is done.

Lightning logs each fold's per-epoch curves itself (``make_logger``). After the run,
:func:`log_run_summary` adds what people open a run for: the resolved config, the out-of-fold
metrics (overall and per fold), the pred-vs-teacher and guard plots, and the student bundle as a
model artefact. It writes to W&B (a ``summary`` run in the same group as the folds, offline by
default) or TensorBoard (``<run>/tb/summary``); the CSV logger gets the plots in ``<run>/plots``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import VmafDistillError

__all__ = ["log_run_summary", "summary_plots"]

#: Scalars logged from ``metrics["oof"]`` (out-of-fold regression metrics).
OOF_KEYS: tuple[str, ...] = ("mae", "rmse", "plcc", "srocc", "krcc")


def summary_plots(oof: pd.DataFrame, thresholds: list[Any], run_dir: Path,
                  target: str = "vmaf") -> dict[str, Path]:
    """Draw the run's pred-vs-teacher and guard plots (against its ``target`` column) into
    ``<run_dir>/plots``."""
    from .report import plot_guard_pr, plot_pred_vs_teacher

    out = run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    return {
        "pred_vs_teacher": plot_pred_vs_teacher(oof, out / "pred_vs_teacher.png",
                                                f"{run_dir.name}: out of fold", target),
        "guard_pr": plot_guard_pr(oof, thresholds, out / "guard_pr.png", target=target),
    }


def _fold_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for i, fold in enumerate(metrics.get("folds") or []):
        row = {"fold": i}
        row.update({k: v for k, v in (fold.get("metrics") or fold).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
        rows.append(row)
    return pd.DataFrame(rows)


def log_run_summary(logger_cfg: Mapping[str, Any] | None, run_dir: Path,
                    config: Mapping[str, Any], metrics: Mapping[str, Any],
                    oof: pd.DataFrame) -> dict[str, Path]:
    """Plots for every logger; config, OOF metrics, plots and the model for W&B/TensorBoard."""
    cfg = dict(logger_cfg or {})
    name = cfg.get("name", "csv")
    plots = summary_plots(oof, list(metrics.get("guard_thresholds") or []), run_dir,
                          str(metrics.get("target") or "vmaf"))
    if name == "wandb":
        _log_wandb(cfg, run_dir, config, metrics, plots)
    elif name == "tensorboard":
        _log_tensorboard(run_dir, config, metrics, plots)
    return plots


def _oof_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    oof = metrics.get("oof") or {}
    # a NaN figure (constant labels: no correlation) is null in the JSON-safe metrics; W&B and
    # TensorBoard failed on float(None) after the run had finished
    out = {f"oof/{k}": float(oof[k]) for k in OOF_KEYS if oof.get(k) is not None}
    cov = (metrics.get("conformal") or {}).get("coverage")
    if cov is not None:
        out["oof/interval_coverage"] = float(cov)
    return out


def _log_wandb(cfg: Mapping[str, Any], run_dir: Path, config: Mapping[str, Any],
               metrics: Mapping[str, Any], plots: Mapping[str, Path]) -> None:
    import wandb

    from ..config import checked_bool
    from .loggers import wandb_grouping

    offline = (checked_bool("logger.offline", cfg["offline"])
               and os.environ.get("WANDB_MODE") != "online")
    # one group per Hydra run (its folds log there too); a sweep's jobs share the sweep's
    # directory name as job_type, so the sweep's runs group together in the UI
    run = wandb.init(project=cfg["project"], entity=cfg.get("entity"),  # defaults: conf/logger
                     dir=str(run_dir), mode="offline" if offline else "online",
                     name=f"{run_dir.name}-summary", config=dict(config), reinit=True,
                     **wandb_grouping(run_dir))
    try:
        run.log(_oof_scalars(metrics))
        folds = _fold_table(metrics)
        if len(folds):
            run.log({"oof/folds": wandb.Table(dataframe=folds)})
        run.log({key: wandb.Image(str(path)) for key, path in plots.items()})
        bundle = run_dir / "student.pt"
        if bundle.is_file():
            art = wandb.Artifact(artifact_name(run_dir), type="model",
                                 metadata={k: v for k, v in _oof_scalars(metrics).items()})
            art.add_file(str(bundle))
            run.log_artifact(art)
    finally:
        run.finish()


def artifact_name(run_dir: Path) -> str:
    """The W&B model artefact's name: the run's directory with its parent (job ``0`` of every
    sweep was ``student-0``, one artefact across sweeps), in the characters W&B allows (a
    directory with a space, or Hydra's ``override_dirname`` ``a=b,c=d``, failed the run after
    it had finished)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"student-{run_dir.parent.name}-{run_dir.name}")
    if len(name) > ARTIFACT_NAME_MAX:  # W&B refuses longer: cut, told apart by a digest
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        name = f"{name[:ARTIFACT_NAME_MAX - 11]}-{digest}"
    return name


#: The longest artefact name W&B takes.
ARTIFACT_NAME_MAX = 128


def _log_tensorboard(run_dir: Path, config: Mapping[str, Any], metrics: Mapping[str, Any],
                     plots: Mapping[str, Path]) -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ModuleNotFoundError as exc:
        raise VmafDistillError(f"logger=tensorboard needs tensorboard ({exc}): "
                               "pip install 'vmafdistill[tensorboard]'") from None
    import matplotlib.image as mpimg
    import yaml

    writer = SummaryWriter(log_dir=str(run_dir / "tb" / "summary"))
    try:
        writer.add_text("config", "```\n" + yaml.safe_dump(dict(config), sort_keys=False)
                        + "```")
        for key, value in _oof_scalars(metrics).items():
            writer.add_scalar(key, value, 0)
        folds = _fold_table(metrics)
        if len(folds):
            writer.add_text("oof/folds", folds.to_markdown(index=False)
                            if _has_tabulate() else folds.to_string(index=False))
        for key, path in plots.items():
            img = mpimg.imread(str(path))[..., :3]
            writer.add_image(f"plots/{key}", img, 0, dataformats="HWC")
        bundle = run_dir / "student.pt"
        # TensorBoard has no artefact store: record where the model is and what it is
        writer.add_text("model", json.dumps({"bundle": str(bundle),
                                             "bytes": bundle.stat().st_size
                                             if bundle.is_file() else None}))
    finally:
        writer.close()


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
