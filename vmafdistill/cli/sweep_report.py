"""``vmafdistill sweep-report DIR``: compare the runs of a training sweep and name the winner."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``sweep-report`` subcommand."""
    p = sub.add_parser(
        "sweep-report",
        help="summarise a training sweep (report.md/.csv, plots) and pick the winner",
        description=(
            "Collect every run's metrics.json under DIR (a `vmafdistill train -m` multirun "
            "directory), write DIR/report.md, DIR/report.csv, DIR/winner.json and plots "
            "(mae_by_run.png, pred_vs_teacher.png, guard_pr.png). Winner: the lowest mean "
            "out-of-fold MAE among runs whose fold-to-fold PLCC std is at most the median (the "
            "upper middle one of an even count)."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="sweep directory (searched recursively)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report and print the winner."""
    import sys
    from pathlib import Path

    from ..students.report import write_report

    winner = write_report(Path(args.dir))
    oof = winner["metrics"]["oof"] or {}
    for why in winner["left_out"]:
        print(f"vmafdistill sweep-report: left out {why}", file=sys.stderr)
    for note in winner.get("notes") or []:  # report.md's notes (they were there alone)
        print(f"vmafdistill sweep-report: note: {note}", file=sys.stderr)
    n = winner["n_runs"]

    def figure(key: str) -> str:  # NaN reads back from metrics.json as null
        value = oof.get(key)
        return "n/a" if value is None else f"{float(value):.3f}"

    print(f"{n} run{'s' if n != 1 else ''}; winner {winner['run']} "
          f"({' '.join(winner['overrides']) or 'no overrides'}): "
          f"MAE {figure('mae')}, PLCC {figure('plcc')}")
    print(f"bundle: {Path(args.dir) / winner['bundle']}")
    print(f"report: {Path(args.dir) / 'report.md'}")
    return 0
