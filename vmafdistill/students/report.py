"""Sweep report: every run's ``metrics.json`` under a directory -> table, plots, the winner.

Winner rule (:data:`WINNER_RULE`): among runs whose fold-to-fold PLCC standard deviation is at
most the median of that spread across runs (the upper middle one of an even count; stable
runs), the lowest mean out-of-fold MAE wins;
ties go to the first run directory in numeric order (Hydra's 8 before 10). Runs whose spread
is undefined (one fold) are eligible only when no run has a defined spread.

Outputs in the directory: ``report.md``, ``report.csv``, ``winner.json`` (what ``export``
reads), ``mae_by_run.png``, ``pred_vs_teacher.png``, ``guard_pr.png``. Torch-free.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import override_key
from ..errors import VmafDistillError

WINNER_RULE = (
    "lowest mean out-of-fold MAE among runs whose fold-to-fold PLCC std is <= the median "
    "fold PLCC std across runs (the upper middle one of an even count) (ties: first run "
    "directory)"
)

#: What the winner's plots say without its out-of-fold predictions (``oof.parquet``).
NO_OOF = "no out-of-fold predictions (the run has no oof.parquet)"

#: Report outputs, relative to the sweep directory.
OUTPUTS: tuple[str, ...] = (
    "report.md", "report.csv", "winner.json", "mae_by_run.png", "pred_vs_teacher.png",
    "guard_pr.png",
)


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def collect_runs(root: str | Path) -> list[dict[str, Any]]:
    """Every run's metrics under ``root`` (``**/metrics.json``), each with ``_dir`` (its run dir).

    Unreadable files raise :class:`VmafDistillError` naming them; no run at all, too.
    """
    root = Path(root)
    if not root.is_dir():
        raise VmafDistillError(f"{root}: not a directory")
    runs = []
    for path in sorted(root.rglob("metrics.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts[:-1]):
            continue  # .hydra/ etc.
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
            raise VmafDistillError(f"{path}: unreadable metrics ({exc})") from None
        if not isinstance(metrics, dict) or "oof" not in metrics:
            continue  # not a training run's metrics (e.g. a finetune's)
        metrics["_dir"] = path.parent
        runs.append(metrics)
    if not runs:
        raise VmafDistillError(f"{root}: no training run (no metrics.json with 'oof') found")
    return runs


def _hydra_overrides(job_dir: Path) -> list[str] | None:
    """The overrides Hydra recorded for a job (``.hydra/overrides.yaml``), None without one."""
    import yaml

    path = job_dir / ".hydra" / "overrides.yaml"
    try:
        listed = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return [str(o) for o in listed] if isinstance(listed, list) else None


def sweep_grid(root: Path) -> dict[str, list[str] | None] | None:
    """The sweep's overrides as Hydra's BasicSweeper recorded them (``multirun.yaml``):
    ``{key: the values its jobs take, in order (a repeated value launches a job each)}``, None
    for a sweep Hydra cannot enumerate (``interval``: any value); None without a readable
    ``multirun.yaml`` (Optuna writes none)."""
    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        doc = yaml.safe_load((root / "multirun.yaml").read_text()) or {}
        task = [str(o) for o in doc["hydra"]["overrides"]["task"]]
        # the sweeper's own params (hydra.sweeper.params in a config) sweep too; the command
        # line's value of a key wins, as BasicSweeper merges them
        params = (doc["hydra"].get("sweeper") or {}).get("params") or {}
        given = {override_key(o) for o in task}
        task += [f"{k}={v}" for k, v in params.items() if str(k).lstrip("+~") not in given]
        parsed = OverridesParser.create().parse_overrides(task)
    except Exception:  # absent, unreadable, or syntax this Hydra does not parse
        return None
    grid: dict[str, list[str] | None] = {}
    for o in parsed:
        try:
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() \
                else [o.get_value_element_as_str()]
        except Exception:  # an interval or tagged sweep: any value
            values = None
        grid[o.get_key_element()] = values
    return grid


def _hydra_record(job: Path) -> dict[str, Any]:
    """The ``hydra`` node of a job's ``.hydra/hydra.yaml`` (``{}``: absent or unreadable)."""
    import yaml

    try:
        node = (yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text()) or {}).get("hydra")
    except Exception:  # absent or unreadable
        return {}
    return node if isinstance(node, dict) else {}


def _job_sweeper(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``hydra.sweeper`` node of a job's record (None: not recorded)."""
    sweeper = record.get("sweeper")
    return sweeper if isinstance(sweeper, dict) else None


def _is_optuna(sweeper: Mapping[str, Any] | None) -> bool:
    return "optuna" in str((sweeper or {}).get("_target_", "")).lower()


def _optuna_launch(job0: Mapping[str, Any]) -> tuple[bool, int | None]:
    """Whether the sweep last launched into a directory was an Optuna one, and how many
    trials it ran, from its job 0's record: every launch writes job 0 first, and its record
    names the sweeper. Only Hydra's BasicSweeper writes ``multirun.yaml``, so after a grid
    sweep and an Optuna one in the same directory the grid's file stayed, and every Optuna
    trial was left out as "an earlier sweep's"."""
    sweeper = _job_sweeper(job0)
    if not _is_optuna(sweeper):
        return False, None
    trials = (sweeper or {}).get("n_trials")
    return True, trials if isinstance(trials, int) and not isinstance(trials, bool) else None


#: Words of a ``hydra.sweep.subdir`` that name a folder per job (the default is
#: ``${hydra.job.num}``).
PER_JOB_SUBDIR = ("hydra.job.num", "hydra.job.id", "hydra.job.override_dirname")


def _no_record(root: Path, records: Sequence[Mapping[str, Any]]) -> str:
    """Why jobs of a sweep left no folder: never started, failed under
    ``hydra.output_subdir=null``, or, where the sweep's ``hydra.sweep.subdir`` (its jobs'
    records, else ``multirun.yaml``) names no folder per job, several jobs shared one, each
    replacing the one before (``hydra.sweep.subdir=${student.name}`` over two losses left one
    folder, and the report blamed a stopped sweep)."""
    subdir = next((str(r["sweep"]["subdir"]) for r in records
                   if isinstance(r.get("sweep"), dict) and r["sweep"].get("subdir")), None)
    if subdir is None:
        import yaml

        try:
            doc = yaml.safe_load((root / "multirun.yaml").read_text()) or {}
            subdir = str(doc["hydra"]["sweep"]["subdir"])
        except Exception:  # absent or unreadable: nothing to say of it
            subdir = None
    said = ("no record (no .hydra/ folder, no results): never started (the sweep was "
            "stopped?), or failed under hydra.output_subdir=null")
    if subdir is None or any(word in subdir for word in PER_JOB_SUBDIR):
        return said
    return (f"no folder of their own: hydra.sweep.subdir={subdir} names no folder per job, so "
            "jobs may have shared one, each replacing the results of the one before (the "
            "default, ${hydra.job.num}, gives each job its own); else " + said)


def _optuna_jobs(root: Path, job0: Mapping[str, Any], kept: Sequence[Mapping[str, Any]],
                 overrides: Sequence[Sequence[str]]) -> tuple[int | None, str, bool]:
    """How many trials an Optuna sweep (job 0's record) ran, whence that count, and whether
    it is a grid search that did not finish: its ``n_trials``, but a grid sampler lowers that
    to its grid's size ("Updating num of trials to 4"), which no file records: a finished
    grid search (its results file names one of the runs ``kept``) ran them all, an unfinished
    one at least the points its jobs' values (``overrides``) span, a lower bound its jobs
    always meet on one axis (a grid search stopped between trials read complete). Its
    n_trials of 20 called 16 of a finished 4-point grid's jobs never started."""
    sweeper = _job_sweeper(job0) or {}
    trials = _optuna_launch(job0)[1]
    sampler = sweeper.get("sampler")
    if not str((sampler if isinstance(sampler, dict) else {}).get("_target_", "")).endswith(
            "GridSampler"):
        return trials, "the Optuna sweep's n_trials", False
    best = _optuna_best(root)
    if best is not None and any(_is_trial(m, *best) for m in kept):
        return None, "", False  # finished: every point of its grid ran
    values: dict[str, set[str]] = {}
    for listed in overrides:
        for o in listed:
            values.setdefault(override_key(o), set()).add(o.partition("=")[2])
    if not values:
        return None, "", True
    points = math.prod(len(v) for v in values.values())
    return (min(points, trials) if trials else points,
            "its grid sampler's points, as far as the values its jobs took show", True)


def _grid_size(grid: Mapping[str, list[str] | None]) -> int | None:
    """How many jobs the sweep launched (None where a dimension cannot be enumerated)."""
    size = 1
    for values in grid.values():
        if values is None:
            return None
        size *= len(values)
    return size


def _job_num(record: Mapping[str, Any]) -> int | None:
    """``hydra.job.num`` of a job's record (:func:`_hydra_record`), None where not recorded."""
    try:
        return int(record["job"]["num"])
    except Exception:
        return None


def _in_grid(listed: Sequence[str], grid: Mapping[str, list[str] | None]) -> bool:
    """Whether a job's overrides are one point of the sweep's grid (same keys, each value one
    the sweep takes)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(listed))
    except Exception:
        return True  # nothing to compare against
    job = {o.get_key_element(): o.get_value_element_as_str() for o in parsed}
    return set(job) == set(grid) and all(
        grid[k] is None or job[k] in grid[k] for k in job)  # type: ignore[operator]


#: A sweep job that failed writes its error here (``students/app.py``; a run that gets past
#: its checks removes it with its other outputs): its directory may still hold an earlier
#: run's results, which :func:`sweep_runs` then leaves out, naming it.
JOB_FAILED = "job_failed.txt"


def _failure(job: Path) -> str:
    """The first line of a failed job's :data:`JOB_FAILED` (its error), cut at 200 characters,
    so the report says why without opening the file."""
    try:
        lines = (job / JOB_FAILED).read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    first = lines[0] if lines else ""
    return (first[:200] + ("..." if len(first) > 200 else "")) or f"{JOB_FAILED} is empty"


def sweep_runs(root: str | Path) -> tuple[list[dict[str, Any]], list[str], list[list[str]]]:
    """:func:`collect_runs` less the runs that are not this sweep's results, with a sentence
    naming each left out, and every job's overrides (finished or not).

    Left out, each named (they were counted, and could win, without a word):

    * a run whose overrides are no point of the sweep's grid (``multirun.yaml``): an earlier
      sweep's job in the same directory, after a rerun with fewer or other values;
    * a ``metrics.json`` whose overrides are not its job's ``.hydra/overrides.yaml``: a job
      that stopped before training (its settings check keeps the earlier run's outputs);
    * a job directory without a training ``metrics.json``: it failed or is unfinished;
    * jobs of the grid with no directory at all (a sweep stopped before they started): counted.

    Read from the files' contents, not their times (a copied sweep has fresh ones). An Optuna
    sweep records no grid: after one, the jobs another sweeper ran or numbered past its
    ``n_trials`` (job 0's ``.hydra/hydra.yaml``) are an earlier sweep's; an earlier Optuna
    sweep's trials within that count stay.
    """
    root = Path(root)
    runs = collect_runs(root)
    record = functools.cache(_hydra_record)  # each job's .hydra/hydra.yaml read once
    optuna, trials = _optuna_launch(record(root / "0"))
    grid = None if optuna else sweep_grid(root)  # after Optuna: an earlier grid's file
    jobs = sorted({p.parent.parent for p in root.rglob(".hydra/overrides.yaml")
                   if not any(part.startswith(".")
                              for part in p.parent.parent.relative_to(root).parts)},
                  key=lambda d: natural_key(str(d)))
    size = _grid_size(grid) if grid is not None else None
    listed = {d: _hydra_overrides(d) for d in jobs}  # each job's files read once

    source = (f"the Optuna sweep's {trials} trials, by job 0's .hydra/hydra.yaml" if optuna
              else "multirun.yaml")

    def earlier(job: Path, overrides: Sequence[str] | None) -> bool:
        """An earlier sweep's job: no point of this grid, or numbered past its jobs (a rerun
        with fewer values leaves the old higher-numbered ones, maybe with the same overrides);
        after an Optuna launch, a job another sweeper ran or numbered past its trials."""
        if optuna:
            # a job whose record cannot be read counts as this sweep's (as the grid keeps it)
            sweeper, num = _job_sweeper(record(job)), _job_num(record(job))
            return (sweeper is not None and not _is_optuna(sweeper)) or (
                trials is not None and num is not None and num >= trials)
        if grid is None:
            return False
        if overrides is not None and not _in_grid(overrides, grid):
            return True
        num = _job_num(record(job)) if size is not None else None
        return num is not None and size is not None and num >= size

    kept, left_out = [], []
    for m in runs:
        job = Path(m["_dir"])
        name = str(job.relative_to(root)) if job.is_relative_to(root) else str(job)
        ran = list(m.get("overrides") or [])
        if (job / JOB_FAILED).is_file():
            left_out.append(f"{name}: its last run failed ({_failure(job)}); its results are "
                            "an earlier run's or incomplete")
        elif listed.get(job) is not None and listed[job] != ran:
            left_out.append(f"{name}: its metrics.json is from other overrides than its "
                            ".hydra/overrides.yaml (a rerun that stopped before training)")
        elif earlier(job, ran):
            left_out.append(f"{name}: not one of this sweep's jobs ({source}): an "
                            "earlier sweep's, in this directory")
        else:
            kept.append(m)
    have = {Path(m["_dir"]) for m in runs}
    ours = {d: not earlier(d, o) for d, o in listed.items()}
    for d in jobs:
        if d not in have:
            why = ((f"failed ({_failure(d)})" if (d / JOB_FAILED).is_file() else
                    "no training metrics.json (the job failed or is unfinished)") if ours[d]
                   else f"not one of this sweep's jobs ({source}): an earlier sweep's, in this "
                   "directory")
            left_out.append(f"{d.relative_to(root)}: {why}")
    # jobs seen: by their .hydra/ files, or by their results (hydra.output_subdir=null
    # writes no .hydra/)
    n_ours = len({d for d, o in ours.items() if o} | {Path(m["_dir"]) for m in kept})
    # the sweep's axes from every job of this sweep, finished or not
    overrides = [o for d, o in listed.items() if o is not None and ours[d]]
    expected, whose, unfinished = (size, "multirun.yaml", False) if size is not None else (
        _optuna_jobs(root, record(root / "0"), kept, overrides) if optuna
        else (None, "", False))
    if expected is not None and n_ours < expected:  # interrupted: its winner of fewer runs
        left_out.append(f"{expected - n_ours} of the sweep's {expected} jobs ({whose}): "
                        + _no_record(root, [record(d) for d in jobs]))
    elif unfinished:
        left_out.append("the rest of its grid: the Optuna grid search did not finish (its "
                        "optimization_results.yaml names none of its runs: stopped?), and no "
                        "file records the grid's size")
    if not kept:
        raise VmafDistillError(f"{root}: no run of this sweep has results; "
                               + "; ".join(left_out))
    return kept, left_out, overrides


def report_table(runs: Sequence[dict[str, Any]], root: str | Path,
                 all_overrides: Sequence[Sequence[str]] = ()) -> pd.DataFrame:
    """One row per run: run dir, overrides, student/loss, OOF metrics, guard F1s, coverage."""
    root = Path(root)
    rows = []
    for m in runs:
        oof = m.get("oof") or {}
        row: dict[str, Any] = {
            "run": str(Path(m["_dir"]).resolve().relative_to(root.resolve()))
            if Path(m["_dir"]).resolve().is_relative_to(root.resolve()) else str(m["_dir"]),
            "overrides": " ".join(m.get("overrides") or []),
            "student": m.get("student"),
            "loss": m.get("loss"),
            # huber and huber_points share the name "huber"; the space tells them apart
            "loss_space": (m.get("loss_config") or {}).get("space"),
            # whether the loss learned parameters of its own, which optim.loss_lr steps (None:
            # not recorded)
            "loss_learns": _learns(m),
            "features": m.get("features"),
            "n": oof.get("n"),
            "mae": _num(oof.get("mae")),
            "rmse": _num(oof.get("rmse")),
            "plcc": _num(oof.get("plcc")),
            "srocc": _num(oof.get("srocc")),
            "fold_plcc_std": _num(m.get("fold_plcc_std")),
        }
        for thr, g in (m.get("guard") or {}).items():
            row[f"f1_{thr}"] = _num(g.get("f1"))
        conf = m.get("conformal") or {}
        row["coverage"] = _num(conf.get("coverage"))
        row["nominal"] = _num(conf.get("nominal"))
        base = (m.get("baselines") or {}).get("gbdt50") or {}
        row["gbdt50_mae"] = _num((base.get("oof") or {}).get("mae"))
        row["wall_time_s"] = _num(m.get("wall_time_s"))
        row["scored_on"] = scored_on(m)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(2, "varying", varying_overrides(
        [list(m.get("overrides") or []) for m in runs], all_overrides, sweep_axes(root)))
    return table


def _learns(metrics: Mapping[str, Any]) -> bool | None:
    """Whether a run's loss had learnable parameters (its ``learned_loss_params``; None where
    ``metrics.json`` does not record them)."""
    learned = metrics.get("learned_loss_params")
    return bool(learned) if isinstance(learned, Mapping) else None


def _common(overrides: Sequence[Sequence[str]]) -> set[str]:
    """The overrides every run lists (each run's a list: an override's value may hold spaces,
    ``corpus_dir='/data/my corpus'``, which splitting a joined string cut in two)."""
    tokens = [set(o) for o in overrides]
    return set.intersection(*tokens) if tokens else set()


def sweep_axes(root: Path) -> set[str]:
    """The keys a grid sweep's ``multirun.yaml`` gives several values (or any value: an
    interval), started or not; none after an Optuna sweep (its file is an earlier grid's)."""
    if _optuna_launch(_hydra_record(root / "0"))[0]:
        return set()
    grid = sweep_grid(root) or {}
    # "++loss.tau=0.5,1": the grid keeps the prefix, override_key drops it
    return {k.lstrip("+~") for k, values in grid.items()
            if values is None or len(set(values)) > 1}


def _shared(overrides: Sequence[Sequence[str]], jobs: Sequence[Sequence[str]],
            axes: Collection[str] = ()) -> set[str]:
    """The overrides every run *and* every job lists, less those of the sweep's ``axes``
    (:func:`sweep_axes`): a value only the finished runs share is still one of the sweep's
    axes (it showed as shared and as varying at once; while the jobs of the axis's other
    values had not started, as shared alone)."""
    return {o for o in _common([*overrides, *jobs]) if override_key(o) not in axes}


def varying_overrides(overrides: Sequence[Sequence[str]],
                      jobs: Sequence[Sequence[str]] = (),
                      axes: Collection[str] = ()) -> list[str]:
    """Each run's overrides less those every run shares (:func:`_shared`), space-joined;
    ``jobs``: every job's overrides, unfinished ones too, where known; ``axes``: the keys
    the sweep varies."""
    common = _shared(overrides, jobs, axes)
    return [" ".join(t for t in run if t not in common) for run in overrides]


def scored_on(metrics: Mapping[str, Any]) -> str:
    """What a run's out-of-fold metrics were measured on: the corpus (hash), the target, the
    cross-validation protocol and the rows scored. MAEs of runs that differ in any of these
    are not comparable (a sweep over ``corpus_dir`` crowned a 24-row subset over the 72-row
    corpus, one over ``target`` MAE on ``vmaf_min`` over MAE on ``vmaf``)."""
    corpus = (metrics.get("corpus") or {}).get("hash") or "?"
    cv = metrics.get("cv") or {}
    protocol = cv.get("name", "?") if isinstance(cv, Mapping) else str(cv)
    # the seed moves the folds only where they are shuffled: a seed sweep's runs share folds
    moot = {"name"} | ({"seed"} if isinstance(cv, Mapping) and cv.get("shuffle") is not True
                       and cv.get("name") == "group_kfold" else set())
    settings = ",".join(f"{k}={cv[k]}" for k in sorted(cv) if k not in moot) \
        if isinstance(cv, Mapping) else ""
    return (f"corpus {str(corpus)[:8]}, target {metrics.get('target') or '?'}, "
            f"cv {protocol}({settings}), n {(metrics.get('oof') or {}).get('n')}")


def _comparable(table: pd.DataFrame) -> pd.Series:
    """The runs that compete for the winner: those scored on what most runs were scored on
    (:func:`scored_on`; a tie goes to the first run's), all runs where all agree."""
    if "scored_on" not in table or table["scored_on"].nunique(dropna=False) <= 1:
        return pd.Series(True, index=table.index)
    counts = table["scored_on"].value_counts(dropna=False)
    best = counts[counts == counts.max()].index
    first = table[table["scored_on"].isin(best)].sort_values("run", key=_run_order)
    return table["scored_on"] == first["scored_on"].iloc[0]


def median_spread(table: pd.DataFrame) -> float:
    """The median fold PLCC std the winner rule compares with: over the comparable runs
    (:func:`_comparable`) alone (the report printed the median over every run)."""
    spread = table["fold_plcc_std"].astype(float).where(_comparable(table))
    return upper_median(spread) if spread.notna().any() else math.nan


def pick_winner(table: pd.DataFrame) -> tuple[int, pd.Series]:
    """Index of the winning row by :data:`WINNER_RULE` among the comparable runs
    (:func:`_comparable`), and the eligibility mask."""
    comparable = _comparable(table)
    spread = table["fold_plcc_std"].astype(float).where(comparable)
    mae = table["mae"].astype(float)
    median = median_spread(table)
    eligible = spread <= median if not math.isnan(median) else comparable.copy()
    eligible &= mae.notna() & comparable
    if not eligible.any():
        raise VmafDistillError("sweep report: no run with a finite MAE")
    cand = table[eligible].sort_values(["mae", "run"], kind="mergesort", key=_run_order)
    return int(cand.index[0]), eligible


def run_maes(table: pd.DataFrame) -> dict[str, float | None]:
    """Each compared run's MAE by its name (None: no finite MAE), as ``winner.json`` keeps
    them: what the winner was picked from."""
    return {str(run): (float(mae) if math.isfinite(float(mae)) else None)
            for run, mae in zip(table["run"], table["mae"].astype(float), strict=True)}


def sweep_table(root: str | Path) -> pd.DataFrame:
    """:func:`report_table` of the sweep's results in ``root`` now (:func:`sweep_runs`);
    reads, writes nothing."""
    runs, _, all_overrides = sweep_runs(root)
    return report_table(runs, root, all_overrides)


def picked_run(table: pd.DataFrame) -> str:
    """The run :func:`pick_winner` picks in ``table``, as ``winner.json`` names it."""
    return str(table.loc[pick_winner(table)[0], "run"])


def _middle_cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle, where long paths share least."""
    text = str(text)
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _run_order(column: pd.Series) -> pd.Series:
    """Sort key: run directories in numeric order (Hydra's "10" after "8"), other columns as
    they are."""
    if column.name != "run":
        return column
    return column.astype(str).map(natural_key)


def natural_key(text: str) -> str:
    """``text`` with its numbers zero-padded: sorts "8" before "10" ("68p" before "136p")."""
    return re.sub(r"\d+", lambda m: m.group().zfill(12), text)


def upper_median(values: pd.Series) -> float:
    """The median of the finite ``values``, the upper middle one of an even count: the mean of
    the two middle ones left out the less stable of every two-run sweep for its spread alone
    (MAE 20.1 won over 10.9)."""
    finite = np.sort(values.dropna().to_numpy(float))
    return float(finite[len(finite) // 2])


def winner_baseline(table: pd.DataFrame, win: int) -> float:
    """The winner's own GBDT(50) MAE on its folds (NaN when it ran no baselines)."""
    return float(table.loc[win, "gbdt50_mae"])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def _cell(v: Any) -> str:
    """A markdown table cell: a ``|`` in an override value (a path) split the row's cells
    and moved every number one column right."""
    return _fmt(v).replace("|", "\\|").replace("\n", " ")


def _markdown(table: pd.DataFrame, cols: Sequence[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def run_labels(table: pd.DataFrame, width: int = 60) -> dict[Any, str]:
    """The MAE bar label of each run (by row index): its number and overrides, long values
    cut in the middle (two corpora under one long folder got the same label when cut at 60
    characters), and why it has no bar (no MAE: a zero bar read as perfect) or cannot win."""
    comparable = _comparable(table)
    # the run's name too: hydra.sweep.subdir=${hydra.job.override_dirname} names a job by its
    # overrides, and such labels ran off the figure
    return {i: f"{_middle_cut(str(r.run), 24)}: {_middle_cut(r.varying or '-', width)}"
               + (" (no MAE)" if math.isnan(float(r.mae)) else "")
               + ("" if comparable[i] else " (not comparable)")
            for i, r in zip(table.index, table.itertuples(), strict=True)}


def pred_vs_teacher_limits(oof: pd.DataFrame | None, target: str = "vmaf") -> tuple[float, float]:
    """Axis limits of the predicted-vs-teacher plot: the VMAF scale widened to every point
    and a margin (predictions above 100 or labels below 0 were cut at the border, and points
    at exactly 100 sat on it)."""
    lo, hi = 0.0, 100.0
    if oof is not None and len(oof):
        values = oof[[target, "pred"]].to_numpy(float)
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    return lo - 2.0, hi + 2.0


def _plots(root: Path, table: pd.DataFrame, win: int, eligible: pd.Series,
           winner_oof: pd.DataFrame | None, thresholds: Sequence[str],
           target: str = "vmaf") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # MAE per run (sorted), unstable runs grey, the winner highlighted, GBDT(50) reference
    order = table.sort_values("mae", na_position="last")
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.3 * len(order) + 1)))
    colours = ["tab:red" if i == win else ("tab:blue" if eligible[i] else "0.7")
               for i in order.index]
    label_of = run_labels(table)
    labels = [label_of[i] for i in order.index]
    ax.barh(range(len(order)), order["mae"].fillna(0), color=colours)
    ax.set_yticks(range(len(order)), labels, fontsize=7)
    ax.invert_yaxis()
    gbdt = winner_baseline(table, win)
    if not math.isnan(gbdt):
        ax.axvline(gbdt, color="k", ls="--", lw=1, label="GBDT(50), winner's folds")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("mean OOF MAE (VMAF points)")
    # grey also marks runs scored on other data or without an MAE (the title said only the
    # spread)
    ax.set_title("red: winner; grey: not eligible (fold PLCC std above the comparable runs' "
                 "median, not comparable, or no MAE)", fontsize=8)
    fig.tight_layout()
    fig.savefig(root / "mae_by_run.png", dpi=110)
    plt.close(fig)

    title = (f"winner: run {table.loc[win, 'run']}"
             + (f" ({_middle_cut(table.loc[win, 'varying'], 70)})"
                if table.loc[win, "varying"] else ""))
    if winner_oof is not None and target not in winner_oof:  # a run from before: "vmaf" held it
        target = "vmaf"
    plot_pred_vs_teacher(winner_oof, root / "pred_vs_teacher.png", title, target)
    plot_guard_pr(winner_oof, thresholds, root / "guard_pr.png", "winner", target)


def inert_override_notes(table: pd.DataFrame) -> list[str]:
    """Sentences naming sweep-only loss keys (e.g. ``loss.tau``) that some runs ignored, and
    ``optim.loss_lr`` where their loss learns nothing."""
    from .train import SWEEP_ONLY_LOSS_KEYS

    notes = []
    for key, takers in SWEEP_ONLY_LOSS_KEYS.items():
        given = table["overrides"].astype(str).str.extract(
            rf"(?:^|\s)\+*loss\.{key}=(\S*)", expand=False)
        ignoring = given.notna() & ~table["loss"].isin(takers)
        ignored = sorted({str(v) for v in table.loc[ignoring, "loss"]})
        # repeats only where the ignored key takes more than one value (loss.tau=2 alone, one
        # huber run: nothing repeats)
        if ignored and given[ignoring].nunique() > 1:
            notes.append(
                f"`loss.{key}` is inert for {', '.join(ignored)} (only "
                f"{', '.join(takers)} has a {key}); those runs differ only in it and repeat "
                "each other."
            )
    return notes + _inert_loss_lr_notes(table)


def _inert_loss_lr_notes(table: pd.DataFrame) -> list[str]:
    """A sentence where ``optim.loss_lr`` (the learning rate of the loss's own parameters)
    takes several values in runs whose loss learns none (column ``loss_learns``): a sweep
    over it with ``loss=temperature`` (a fixed tau) gave identical runs, without a word."""
    if "loss_learns" not in table:
        return []
    given = table["overrides"].astype(str).str.extract(
        r"(?:^|\s)\+*optim\.loss_lr=(\S*)", expand=False)
    ignoring = given.notna() & table["loss_learns"].eq(False)
    if not ignoring.any() or given[ignoring].nunique() <= 1:
        return []
    ignored = sorted({str(v) for v in table.loc[ignoring, "loss"]})
    return [f"`optim.loss_lr` is inert for the runs whose loss learns no parameter of its own "
            f"({', '.join(ignored)}; the temperature loss learns its tau only with "
            "loss.learnable_tau=true); those runs differ only in it and repeat each other."]


def _read_oof(oof_path: Path) -> pd.DataFrame | None:
    """A run's out-of-fold predictions, None without the file; an unreadable one named."""
    try:
        return pd.read_parquet(oof_path) if oof_path.is_file() else None
    except Exception as exc:  # pyarrow's ArrowInvalid and kin: a truncated or foreign file
        raise VmafDistillError(f"{oof_path}: unreadable out-of-fold predictions "
                               f"({type(exc).__name__}: {exc})") from None


def write_report(root: str | Path) -> dict[str, Any]:
    """Write the sweep report of ``root`` (see module docstring); returns ``winner.json``'s dict."""
    from ..corpus.tables import atomic_write_bytes, atomic_write_json

    root = Path(root)
    runs, left_out, all_overrides = sweep_runs(root)
    table = report_table(runs, root, all_overrides)
    win, eligible = pick_winner(table)
    table["eligible"] = eligible
    table["winner"] = table.index == win
    m = runs[win]
    run_dir = Path(m["_dir"]).resolve()
    thresholds = [k for k in (m.get("guard") or {})]
    oof_path = run_dir / "oof.parquet"
    winner_oof = _read_oof(oof_path)

    atomic_write_bytes(root / "report.csv", table.to_csv(index=False).encode())
    f1_cols = [c for c in table.columns if c.startswith("f1_")]
    cols = ["run", "varying", "mae", "rmse", "plcc", "srocc", *f1_cols, "coverage",
            "fold_plcc_std", "eligible", "winner"]
    ordered = table.sort_values(["mae", "run"], na_position="last", key=_run_order)
    gbdt = winner_baseline(table, win)
    shared = _shared([list(m.get("overrides") or []) for m in runs], all_overrides,
                     sweep_axes(root))
    notes = [*_scored_on_notes(table, win), *inert_override_notes(table),
             *_sweeper_notes(root, runs, table, win)]
    if winner_oof is None:  # the plots were blank axes, unsaid
        notes.append(f"the winner has no {oof_path.name} (a copied or older run): its "
                     "predicted-vs-teacher and guard plots are empty")
    md = [
        f"# Sweep report: {root}",
        "",
        f"{_runs_phrase(len(table), len(left_out))}; overrides shared by all: "
        f"`{' '.join(sorted(shared)) or '-'}`; "
        f"column `varying` lists the rest.",
        "",
        *[f"Left out: {why}" for why in left_out],
        *([""] if left_out else []),
        f"Winner rule: {WINNER_RULE}; median fold PLCC std "
        f"{_fmt(median_spread(table))}.",
        "",
        f"**Winner**: `{table.loc[win, 'run']}` ({table.loc[win, 'varying'] or 'no overrides'})"
        f": MAE {_fmt(table.loc[win, 'mae'])}, PLCC {_fmt(table.loc[win, 'plcc'])}, "
        f"SROCC {_fmt(table.loc[win, 'srocc'])}, coverage {_fmt(table.loc[win, 'coverage'])} "
        f"(nominal {_fmt(table.loc[win, 'nominal'])})"
        + (f"; GBDT(50) on the same folds: MAE {_fmt(gbdt)}" if not math.isnan(gbdt) else "")
        + ".",
        "",
        *[f"Note: {n}" for n in notes],
        *([""] if notes else []),
        _markdown(ordered, cols),
        "",
        "![MAE by run](mae_by_run.png)",
        "![winner vs teacher](pred_vs_teacher.png)",
        "![guard precision/recall](guard_pr.png)",
        "",
    ]
    atomic_write_bytes(root / "report.md", "\n".join(md).encode())
    winner = {
        "run_dir": str(run_dir),
        "run": table.loc[win, "run"],
        # relative to winner.json: a copied or moved sweep exports its own bundle
        "bundle": os.path.relpath((run_dir / "student.pt").resolve(), root.resolve()),
        "rule": WINNER_RULE,
        "overrides": m.get("overrides") or [],
        "metrics": {
            "oof": m.get("oof"), "fold_plcc_std": m.get("fold_plcc_std"),
            "guard": m.get("guard"), "conformal": m.get("conformal"),
            "features": m.get("features"), "corpus": m.get("corpus"),
        },
        "n_runs": len(table),
        "runs": run_maes(table),  # export refuses the winner when the sweep's results change
        "left_out": left_out,
        "notes": notes,
    }
    atomic_write_json(root / "winner.json", winner)
    _plots(root, table, win, eligible, winner_oof, thresholds, str(m.get("target") or "vmaf"))
    return winner


def _scored_on_notes(table: pd.DataFrame, win: int) -> list[str]:
    """A sentence where the runs were scored on different data, targets or folds: only those
    scored as the winner was compete (column ``scored_on`` of report.csv)."""
    groups = table["scored_on"].value_counts(dropna=False, sort=False)
    if len(groups) <= 1:
        return []
    chosen = table.loc[win, "scored_on"]
    others = "; ".join(f"{n} on {what}" for what, n in groups.items() if what != chosen)
    return [f"the runs were scored on different data, targets or folds, whose MAEs are not "
            f"comparable: only the {groups[chosen]} run(s) scored on {chosen} compete for the "
            f"winner (others: {others}; column `scored_on` of report.csv)."]


def _sweeper_notes(root: Path, runs: Sequence[Mapping[str, Any]], table: pd.DataFrame,
                   win: int) -> list[str]:
    """A sentence where an Optuna sweep's best trial (``optimization_results.yaml``: the
    lowest MAE alone) is not this report's winner, which also asks for a stable fold spread:
    the two named different runs without a word. The file is read as this sweep's only where
    the last launch here was Optuna's and its best trial is one of the runs compared: a grid
    sweep run after an Optuna one into the same directory left the file, and the report
    blamed the winner's fold spread for a trial that was no longer there."""
    best = _optuna_best(root)
    if best is None:
        return []
    value, params = best
    sweeper = _job_sweeper(_hydra_record(root / "0"))
    # another sweeper only where job 0's record names one (hydra.output_subdir=null writes
    # none: an Optuna sweep's own file was called another sweeper's)
    other = sweeper is not None and not _is_optuna(sweeper)
    if other or not any(_is_trial(m, value, params) for m in runs):
        why = ("the file is an earlier Optuna sweep's (the last sweep here was another "
               "sweeper's)" if other
               else "its run was left out, or the file is an earlier Optuna sweep's")
        return [f"`optimization_results.yaml` names a best trial (MAE {_fmt(value)}) that is "
                f"not among this sweep's results: {why}; not compared with the winner."]
    if math.isclose(value, float(table.loc[win, "mae"]), abs_tol=1e-9):
        return []
    return [f"the sweeper's best trial (MAE {_fmt(value)}, "
            "`optimization_results.yaml`) is not the winner: the winner rule also asks for a "
            "fold PLCC std at most the median, which that trial's is not."]


def _optuna_best(root: Path) -> tuple[float, dict[str, Any]] | None:
    """The best trial's value and parameters in ``root/optimization_results.yaml`` (None
    without a readable one or a finite value)."""
    import yaml

    try:
        doc = yaml.safe_load((root / "optimization_results.yaml").read_text()) or {}
        value, params = float(doc.get("best_value")), doc.get("best_params") or {}
    except (OSError, ValueError, TypeError, yaml.YAMLError, AttributeError):
        return None
    return (value, dict(params)) if math.isfinite(value) and isinstance(params, dict) \
        else None


def _is_trial(run: Mapping[str, Any], value: float, params: Mapping[str, Any]) -> bool:
    """Whether ``run`` is the trial of MAE ``value`` and parameters ``params`` (each given
    as an override of the run; the value as YAML reads it, or as its text)."""
    if not math.isclose(_num((run.get("oof") or {}).get("mae")), value, abs_tol=1e-9):
        return False
    given = {override_key(o): o.partition("=")[2] for o in run.get("overrides") or []}
    return all(k in given and (given[k] == str(v) or _yaml_value(given[k]) == v)
               for k, v in params.items())


def _yaml_value(text: str) -> Any:
    """``text`` as YAML reads it (itself where it does not parse)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _runs_phrase(n_runs: int, n_left_out: int) -> str:
    """``n_runs`` compared, and whether some jobs were left out (``n_left_out`` sentences,
    each naming one job or a count of them: "1 left out" said so of two jobs never started)."""
    runs = f"{n_runs} run{'s' if n_runs != 1 else ''}"
    return f"{runs} (jobs left out: below)" if n_left_out else runs


def plot_pred_vs_teacher(oof: pd.DataFrame | None, out: Path, title: str,
                         target: str = "vmaf") -> Path:
    """Out-of-fold student VMAF against the teacher's (its ``target`` column), one colour per
    codec, identity line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    if oof is not None and len(oof):
        groups = oof.groupby("codec") if "codec" in oof else [("all", oof)]
        for name, part in groups:
            ax.scatter(part[target], part["pred"], s=10, alpha=0.7, label=str(name))
        ax.legend(fontsize=7)
    else:  # blank axes read as a plot that failed to draw
        ax.text(0.5, 0.5, NO_OOF, ha="center", va="center", fontsize=8, transform=ax.transAxes)
    lo, hi = pred_vs_teacher_limits(oof, target)
    ax.plot([lo, hi], [lo, hi], color="k", lw=1)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("teacher VMAF" if target == "vmaf" else f"teacher {target}")
    ax.set_ylabel("student VMAF (out of fold)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_guard_pr(oof: pd.DataFrame | None, thresholds: Sequence[Any], out: Path,
                  who: str = "student", target: str = "vmaf") -> Path:
    """The quality guard's precision/recall curve per threshold (alarm when pred < t), the
    operating point t itself marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    if oof is not None and len(oof):
        from sklearn.metrics import precision_recall_curve

        for thr in thresholds:
            t = float(thr)
            pos = (oof[target] < t).to_numpy()
            if pos.all() or not pos.any():
                continue
            prec, rec, _ = precision_recall_curve(pos, -oof["pred"].to_numpy())
            line = ax.plot(rec, prec, lw=1.2, label=f"VMAF < {thr}")[0]
            alarm = (oof["pred"] < t).to_numpy()
            tp = float((alarm & pos).sum())
            ax.plot([tp / pos.sum()], [tp / max(alarm.sum(), 1)], "o", color=line.get_color())
        if ax.get_legend_handles_labels()[0]:  # no threshold splits the labels: no lines
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no threshold has labels on both sides" if thresholds
                    else "no guard thresholds", ha="center", fontsize=8,
                    transform=ax.transAxes)
    else:
        ax.text(0.5, 0.5, NO_OOF, ha="center", va="center", fontsize=8, transform=ax.transAxes)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"quality guard ({who}, OOF); dot = alarm at pred < threshold", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
