"""``vmafdistill train``: the Hydra app around :func:`vmafdistill.students.train.run`.

Everything after ``train`` is a Hydra override; ``-m`` sweeps (basic launcher, or the Optuna
sweeper with ``hparams_search=optuna``). Each job's return value is its mean OOF MAE, the
quantity the Optuna sweeper minimises.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from ..errors import VmafDistillError


def hydra_app(config_name: str, job: Any) -> Any:
    """A ``@hydra.main`` task function for ``conf/<config_name>.yaml`` running ``job``.

    ``job(cfg, run_dir, overrides) -> float`` runs inside Hydra. A :class:`VmafDistillError`
    is not handed to Hydra (which would print a traceback and exit 1): it is kept and the job
    returns NaN, so a sweep goes on and the caller re-raises the first error afterwards.
    """
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from ..config import conf_dir

    errors: list[VmafDistillError] = []

    @hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")
    def task(cfg: Any) -> float:
        hc = HydraConfig.get()
        try:
            return float(job(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task)))
        except VmafDistillError as exc:
            errors.append(exc)
            print(f"vmafdistill {config_name}: error: {exc}", file=sys.stderr)
            return math.nan

    task.errors = errors  # type: ignore[attr-defined]
    return task


def run_hydra(command: str, config_name: str, job: Any, argv: list[str]) -> int:
    """Run ``job`` as the Hydra app ``vmafdistill <command>`` with overrides ``argv``."""
    task = hydra_app(config_name, job)
    saved = sys.argv
    sys.argv = [f"vmafdistill {command}", *argv]
    try:
        task()
    finally:
        sys.argv = saved
    if task.errors:
        raise task.errors[0]
    return 0


def _train_job(cfg: Any, run_dir: Path, overrides: list[str]) -> float:
    from .train import run

    return float(run(cfg, run_dir, overrides)["objective"])


def main(argv: list[str]) -> int:
    """``vmafdistill train [overrides...]``: returns the exit status."""
    return run_hydra("train", "train", _train_job, list(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
