"""The Lightning logger of one fit, by ``conf/logger/<name>.yaml``'s ``name``: a registry.

Adding a logger is one function ``(cfg, run_dir, tag) -> Logger`` decorated with
``@register_logger("<name>")`` plus ``conf/logger/<name>.yaml``; its keys live there only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import VmafDistillError
from ..registry import register

__all__ = ["LOGGERS", "make_logger", "register_logger", "wandb_from_workers"]

LoggerFactory = Callable[[Mapping[str, Any], Path, str], Any]
#: logger name -> factory ``(logger config, run dir, fit tag) -> lightning logger``.
LOGGERS: dict[str, LoggerFactory] = {}


def register_logger(name: str) -> Callable[[LoggerFactory], LoggerFactory]:
    """Decorator: make a factory buildable as ``logger=<name>``."""
    return lambda fn: register(LOGGERS, "logger", (name,), fn)


def make_logger(logger_cfg: Mapping[str, Any] | None, run_dir: Path, tag: str) -> Any:
    """The logger of fit ``tag`` (False for ``name: none``, or no logger config)."""
    cfg = dict(logger_cfg or {"name": "none"})
    name = cfg.get("name")
    if name in ("none", None, False):
        return False
    if name not in LOGGERS:
        raise VmafDistillError(f"logger: unknown name {name!r}; known: {', '.join(LOGGERS)}")
    return LOGGERS[name](cfg, run_dir, tag)


@register_logger("csv")
def csv_logger(cfg: Mapping[str, Any], run_dir: Path, tag: str) -> Any:
    """``<run>/logs/<fit>/metrics.csv``."""
    from lightning.pytorch.loggers import CSVLogger

    # A rerun in the same run dir replaces this fit's logs (Lightning would delete the old files
    # itself, after a warning per fit).
    shutil.rmtree(run_dir / "logs" / tag, ignore_errors=True)
    return CSVLogger(save_dir=str(run_dir), name="logs", version=tag)


@register_logger("tensorboard")
def tensorboard_logger(cfg: Mapping[str, Any], run_dir: Path, tag: str) -> Any:
    """Event files under ``<run>/tb/<fit>``."""
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(run_dir), name="tb", version=tag)
    except ModuleNotFoundError as exc:
        raise VmafDistillError(
            f"logger=tensorboard needs tensorboard ({exc}): pip install tensorboard"
        ) from None


@register_logger("wandb")
def wandb_logger(cfg: Mapping[str, Any], run_dir: Path, tag: str) -> Any:
    """A Weights & Biases run per fit, grouped by the run dir; offline unless
    ``logger.offline=false`` or ``WANDB_MODE=online``."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise VmafDistillError(
            "logger=wandb needs the wandb package: pip install wandb (or use logger=csv)"
        ) from None
    from lightning.pytorch.loggers import WandbLogger

    from ..config import checked_bool

    # per_fold: false logs the final fit alone (plus the summary run); it was never read
    if not checked_bool("logger.per_fold", cfg.get("per_fold", True)) and tag != "final":
        return False
    offline = checked_bool("logger.offline", cfg["offline"]) \
        and os.environ.get("WANDB_MODE") != "online"
    return WandbLogger(project=cfg["project"], entity=cfg.get("entity"), save_dir=str(run_dir),
                       offline=offline, name=f"{run_dir.name}-{tag}", **wandb_grouping(run_dir))


def wandb_grouping(run_dir: Path) -> dict[str, str]:
    """W&B ``group`` and ``job_type`` of a run's fits and summary: the group names the run's
    directory with its parent (job ``0`` of two sweeps were both group "0", so after a sync
    their runs mixed), the job type the sweep (or corpus) folder."""
    return {"group": f"{run_dir.parent.name}/{run_dir.name}",
            "job_type": run_dir.parent.name or "train"}


def wandb_from_workers(trainer: Any, run_dir: Path,
                       tag: str) -> Callable[[bool], None] | None:
    """For a W&B fit that Lightning runs in worker processes (a DDP launcher, forked or
    spawned, one device or several): the fit logs its curves to ``<run>/logs/<fit>/
    metrics.csv`` instead, and the returned callable ``(failed)``, run in this process after
    the fit (a failed one too), logs them into the fit's W&B run. Started in a forked worker,
    the run was never finished there (every fold's run held no data); started here for the
    workers to attach to, the attach failed in any process that had used W&B before. None
    for a fit run in this process. Keep the callable off the trainer: a spawn launcher
    pickles the trainer."""
    wandb_logger = trainer.logger
    if type(wandb_logger).__name__ != "WandbLogger" \
            or getattr(trainer.strategy, "launcher", None) is None:
        return None
    trainer.logger = csv_logger({}, run_dir, tag)
    csv_path = run_dir / "logs" / tag / "metrics.csv"

    def replay(failed: bool) -> None:
        import csv

        if not csv_path.is_file():  # the fit logged nothing (it failed before an epoch): its
            _ = wandb_logger.experiment  # run exists all the same, to be marked failed
            return
        with open(csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        # an empty cell: not logged in that row; "nan": a NaN the fit logged (kept, as a fit
        # logging in this process keeps it)
        for row in sorted(rows, key=lambda r: int(r["step"])):
            values = {k: float(v) for k, v in row.items() if k != "step" and v != ""}
            wandb_logger.log_metrics(values, step=int(row["step"]))
        wandb_logger.finalize("failed" if failed else "success")

    return replay
