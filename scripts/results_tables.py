"""Render `vmafdistill train` run directories as the markdown tables of docs/results.md.

    python scripts/results_tables.py RUN_DIR [RUN_DIR ...]

Each run's `metrics.json` (out-of-fold) gives one table: the student row, then the
scikit-learn reference rows computed on the same folds and features.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Overrides that do not change the numbers (left out of table titles).
_SKIP = ("corpus_dir=", "hydra.", "trainer.enable_progress_bar", "paths.")


def _num(value: object, fmt: str) -> str:
    """``value`` formatted, ``-`` for a missing or undefined one (a NaN PLCC is stored as
    null: a constant prediction)."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, fmt)


def _guard(g: dict) -> str:
    if not g or not g.get("defined"):
        return "undefined (one class)"
    return f"{g['precision']:.2f}/{g['recall']:.2f}/{g['f1']:.2f}"


def _row(name: str, oof: dict, folds_sd: float | None, guard: dict, ths: list[str]) -> str:
    sd = _num(folds_sd, ".3f") if folds_sd is not None else ""
    cells = [name, _num(oof.get("mae"), ".2f"), _num(oof.get("rmse"), ".2f"),
             _num(oof.get("plcc"), ".3f"), _num(oof.get("srocc"), ".3f"), sd,
             *(_guard(guard.get(t, {})) for t in ths)]
    return "| " + " | ".join(cells) + " |"


def table(run_dir: Path) -> str:
    """One markdown table for one run directory."""
    m = json.loads((run_dir / "metrics.json").read_text())
    ths = [str(t) for t in m.get("guard_thresholds", [])]
    conf = m.get("conformal", {})
    shown = [o for o in m.get("overrides") or [] if not o.startswith(_SKIP)]
    head = (f"### {' '.join(shown) or 'defaults'}  "
            f"features={m['features']} cv={m['cv'].get('name')} n={m['n_samples']} "
            f"coverage={_num(conf.get('coverage'), '.3f')} (nominal {conf.get('nominal')}, "
            f"{conf.get('method')}) final_q={_num(conf.get('final_q'), '.2f')} "
            f"wall={_num(m.get('wall_time_s'), '.1f')}s")
    lines = [head,
             "| model | MAE | RMSE | PLCC | SROCC | fold PLCC sd | "
             + " | ".join(f"guard P/R/F1 @{t}" for t in ths) + " |",
             "|" + "---|" * (6 + len(ths))]
    # loss=huber and loss=huber_points are both named huber: the space tells them apart
    space = (m.get("loss_config") or {}).get("space")
    student = f"{m['student']} ({m['loss']}{', ' + space if space == 'vmaf' else ''})"
    lines.append(_row(student, m["oof"], m.get("fold_plcc_std"), m.get("guard", {}), ths))
    for name, b in sorted(m.get("baselines", {}).items()):
        lines.append(_row(name, b["oof"], b.get("fold_plcc_std"), b.get("guard", {}), ths))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):  # --help was taken for a run directory
        print(__doc__)
        return 0 if argv else 2
    missing = [a for a in argv if not (Path(a) / "metrics.json").is_file()]
    if missing:  # was a FileNotFoundError traceback
        print(f"results_tables: no metrics.json in {', '.join(missing)} (a `vmafdistill train` "
              "run directory holds one)", file=sys.stderr)
        return 2
    not_trained = [a for a in argv if "oof" not in json.loads(
        (Path(a) / "metrics.json").read_text())]
    if not_trained:  # a finetune run's metrics.json: a KeyError traceback
        print(f"results_tables: {', '.join(not_trained)}: not a `vmafdistill train` run (its "
              "metrics.json has no out-of-fold results; a finetune run's has none)",
              file=sys.stderr)
        return 2
    print("\n\n".join(table(Path(a)) for a in argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
