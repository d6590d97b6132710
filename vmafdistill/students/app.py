"""``vmafdistill train``: the Hydra app around :func:`vmafdistill.students.train.run`.

Everything after ``train`` is a Hydra override; ``-m`` sweeps (basic launcher, or the Optuna
sweeper with ``hparams_search=optuna``). Each job's return value is its mean OOF MAE, the
quantity the Optuna sweeper minimises.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import register_resolvers
from ..errors import VmafDistillError

# at import: a launcher's worker process (Ray, joblib, submitit) imports this module when it
# unpickles the task, and resolves the run directory's ${run_label:...} there
register_resolvers()


def _resolved_job(job: Any, cfg: Any, hc: Any, config_name: str) -> Any:
    """``job(cfg, run_dir, overrides)`` of Hydra's run ``hc``; a config that does not resolve
    (``optim.lr=${nope}``, ``~optim`` that a ``${optim.max_epochs}`` still reads, in the
    config or in the run directory's name) one error naming it: it was an OmegaConf
    traceback."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ..config import config_error, one_line

    # as typed: iterating the node resolved "${nope}" inside an override's own text
    overrides = [str(o) for o in OmegaConf.to_container(hc.overrides.task, resolve=False)]
    try:  # resolved here first: an OmegaConf error from the job itself stays a traceback
        OmegaConf.to_container(cfg, resolve=True)
        run_dir = Path(hc.runtime.output_dir)
    except OmegaConfBaseException as exc:
        raise config_error(config_name, overrides, one_line(exc)) from None
    return job(cfg, run_dir, overrides)


def hydra_app(config_name: str, job: Any) -> Any:
    """A ``@hydra.main`` task function for ``conf/<config_name>.yaml`` running ``job``.

    ``job(cfg, run_dir, overrides) -> float`` runs inside Hydra. A :class:`VmafDistillError`
    is not handed to Hydra (which would print a traceback and exit 1): it is kept and the job
    returns NaN (+inf under the Optuna sweeper), so a sweep goes on; afterwards the caller
    raises the run's error, or for a sweep a count of its failed jobs.
    """
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from ..config import conf_dir

    errors: list[VmafDistillError] = []
    multirun: list[bool] = []  # set by a job of a sweep
    sweep_dirs: list[str] = []  # an Optuna sweep's directory (its results file lives there)
    job_dirs: dict[str, Any] = {}  # the folders this sweep's in-process jobs ran in: job num

    @hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")
    def task(cfg: Any) -> float:
        hc = HydraConfig.get()
        try:
            if hc.mode.name == "RUN":  # the real mode: -m, hydra.mode=..., a config's own
                refuse_sweep_settings(_given_overrides(hc))
            _claim_job_dir(job_dirs, hc)
            return float(_resolved_job(job, cfg, hc, config_name))
        except VmafDistillError as exc:
            if hc.mode.name == "MULTIRUN":  # said as it happens; a single run's error is
                # printed once, by the CLI, when run_hydra re-raises it
                print(f"vmafdistill {config_name}: error: {exc}", file=sys.stderr)
                multirun.append(True)
                if not isinstance(exc, SharedJobFolderError):  # that folder is another's
                    _mark_failed_job(Path(hc.runtime.output_dir), exc)
            if not _in_process_launcher(hc) and _optuna_sweep(hc) and _counted(hc):
                # a raised error ended the Optuna search (its max_failure_rate is 0): the
                # trial is the worst objective instead, and a marker tells the driver
                _mark_failed_trial(_sweep_path(hc), hc.job.num, exc)
                return math.inf
            if not _in_process_launcher(hc):
                # joblib/submitit/Ray run the job in another process: errors[] would never
                # reach the caller, a raised error does (Hydra's sweeper re-raises it once the
                # batch has run, prints it as one line, and the command exits non-zero)
                from ..sweep_errors import SweepJobError

                raise SweepJobError(f"vmafdistill {config_name}: a sweep job failed "
                                    "(its error is above)") from None
            errors.append(exc)
            if _optuna_sweep(hc):
                sweep_dirs.append(str(hc.sweep.dir))
            # Optuna cannot take a NaN (its sweeper then fails with a traceback and runs no
            # further trials): a failed trial is the worst objective, which it steers away from
            return math.inf if _optuna_sweep(hc) else math.nan

    task.errors = errors  # type: ignore[attr-defined]
    task.multirun = multirun  # type: ignore[attr-defined]
    task.sweep_dirs = sweep_dirs  # type: ignore[attr-defined]
    return task


def _given_overrides(hc: Any) -> list[str]:
    """The run's task and hydra overrides as given: unresolved (``optim.lr=${nope}`` is the
    job's own one-line error, not a traceback from reading the overrides)."""
    from omegaconf import OmegaConf

    return [str(o) for part in (hc.overrides.task, hc.overrides.hydra)
            for o in OmegaConf.to_container(part, resolve=False)]


class SharedJobFolderError(VmafDistillError):
    """A sweep job given the folder an earlier job of its launch ran in."""


def _claim_job_dir(job_dirs: dict[str, Any], hc: Any) -> None:
    """A sweep job whose folder an earlier job of the same launch ran in (``job_dirs``: those
    of the jobs this process ran, with their ``.hydra/`` files) is refused: ``hydra.sweep.
    subdir=${student.name}`` over two losses gave both jobs one folder, and the second
    replaced the first's results, unsaid. Hydra has rewritten the folder's ``.hydra/`` for
    this job by now: the earlier job's files are put back (its results kept whole, a review
    found them relabelled), and no failure marker goes there. Jobs another launcher runs in
    other processes are not seen here (sweep-report then names the subdir)."""
    from omegaconf import OmegaConf

    if hc.mode.name != "MULTIRUN":
        return
    folder = Path(hc.runtime.output_dir).resolve()
    record = folder / str(hc.output_subdir) if hc.output_subdir else None
    if str(folder) in job_dirs:
        num, files = job_dirs[str(folder)]
        for name, text in files.items():
            (record / name).write_text(text)  # type: ignore[operator]
        subdir = OmegaConf.to_container(hc.sweep, resolve=False).get("subdir")
        raise SharedJobFolderError(
            f"{folder}: job {num} of this sweep ran in this folder: "
            f"hydra.sweep.subdir={subdir} gives several jobs one folder, and this job would "
            "replace that job's results (kept); give each job its own (the default "
            "hydra.sweep.subdir=${hydra.job.num})")
    files = ({p.name: p.read_text() for p in record.glob("*.yaml")}
             if record is not None and record.is_dir() else {})
    job_dirs[str(folder)] = (hc.job.num, files)


def _in_process_launcher(hc: Any) -> bool:
    """Whether Hydra runs the jobs in this process (a single run, or the basic launcher)."""
    target = str((hc.launcher or {}).get("_target_", "")) if "launcher" in hc else ""
    return hc.mode.name != "MULTIRUN" or target.endswith("BasicLauncher") or not target


#: Where an out-of-process Optuna trial that failed leaves a marker for the driver.
FAILED_TRIALS = ".vmafdistill-failed-trials"


def _mark_failed_job(job_dir: Path, exc: BaseException) -> None:
    """``<job dir>/job_failed.txt`` holding the error (best effort): a job that failed before
    training keeps an earlier run's results beside it, which sweep-report read as this
    sweep's (a rerun whose every job failed reported the old winner)."""
    from .report import JOB_FAILED
    from .train import run_dir_holder

    if run_dir_holder(job_dir) is not None:  # refused: the directory is a live run's, whose
        return  # result a marker would hide (this job's own claim is released by now)
    with contextlib.suppress(OSError):
        (job_dir / JOB_FAILED).write_text(f"{exc}\n")


def _mark_failed_trial(sweep_dir: Path, job_num: Any, exc: BaseException) -> None:
    """``<sweep dir>/.vmafdistill-failed-trials/<job num>`` holding the error (best effort)."""
    with contextlib.suppress(OSError):
        (sweep_dir / FAILED_TRIALS).mkdir(parents=True, exist_ok=True)
        (sweep_dir / FAILED_TRIALS / str(job_num)).write_text(f"{exc}\n")


#: Sweep directories of the Optuna sweeps this process ran (:class:`OptunaSweepDir`).
_optuna_sweep_dirs: list[str] = []


class OptunaSweepDir:
    """A Hydra callback (``conf/hparams_search/optuna*.yaml``) that notes, in the driver, the
    directory of the Optuna sweep it runs: the driver has no other way to it once the sweep
    is over, and its out-of-process trials' failures are counted there."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = _sweep_path(config.hydra)
        shutil.rmtree(sweep_dir / FAILED_TRIALS, ignore_errors=True)  # an earlier launch's
        _optuna_sweep_dirs.append(str(sweep_dir))

    def __getattr__(self, name: str) -> Any:  # Hydra's other callback hooks: nothing to do
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


def _sweep_path(hydra_cfg: Any) -> Path:
    """The sweep directory as an absolute path from the launch directory: a job that runs
    elsewhere (``hydra.job.chdir``, a Ray worker) wrote its marker under its own directory
    and the driver counted none."""
    return Path(str(hydra_cfg.runtime.cwd)) / str(hydra_cfg.sweep.dir)


def _counted(hc: Any) -> bool:
    """Whether this Optuna sweep's driver counts failed-trial markers (its config carries
    :class:`OptunaSweepDir`); without it a failed trial raises as before, or it would read
    as a success."""
    callbacks = hc.get("callbacks") or {}
    return any(str((cb or {}).get("_target_", "")).endswith("OptunaSweepDir")
               for cb in callbacks.values())


def _failed_trials() -> tuple[int, list[str]]:
    """How many out-of-process Optuna trials of the sweep just run failed (their markers; the
    callback cleared an earlier launch's), and its sweep directory (for :func:`_no_best`)."""
    if not _optuna_sweep_dirs:
        return 0, []
    sweep_dir = Path(_optuna_sweep_dirs.pop())
    try:
        markers = list((sweep_dir / FAILED_TRIALS).iterdir())
    except OSError:
        return 0, []
    return len(markers), [str(sweep_dir)]


def _optuna_sweep(hc: Any) -> bool:
    """Whether the sweep is the Optuna sweeper's."""
    target = str((hc.sweeper or {}).get("_target_", "")) if "sweeper" in hc else ""
    return hc.mode.name == "MULTIRUN" and "optuna" in target.lower()


def run_hydra(command: str, config_name: str, job: Any, argv: list[str]) -> int:
    """Run ``job`` as the Hydra app ``vmafdistill <command>`` with overrides ``argv``.

    Returns 0; re-raises the first job error of an in-process run or sweep; returns 2, the
    status of every other error, when a job of an out-of-process sweep failed (the job and
    Hydra have printed it; Hydra's own exit status is 1); 128 + N after signal N.
    """
    from ..config import check_overrides
    from ..signals import interrupts_kept

    _refuse_sweep_settings_in_one_run(argv)
    _refuse_a_storage_optuna_cannot_open(argv)
    check_overrides(config_name, argv)
    _check_run_dir_free(argv)
    _refuse_sweeps_sharing_a_corpus(argv)
    argv = _with_overrides(argv, _pinned_sweep_dir(command, argv))
    _optuna_sweep_dirs.clear()
    task = hydra_app(config_name, job)
    saved = sys.argv
    sys.argv = [f"vmafdistill {command}", *argv]
    try:
        # Lightning turned a SIGTERM mid-fit into exit 0 with no outputs (a SLURM timeout
        # read as success) and a Ctrl-C into a silent exit 1 (the CLI says "interrupted", 130)
        with interrupts_kept():
            task()
    except SystemExit as exc:  # a failed job of an out-of-process sweep, reported by Hydra
        if exc.code in (0, None):
            raise
        if isinstance(exc.code, int) and exc.code > 128:  # a signal (143 SIGTERM, 130 Ctrl-C)
            return exc.code
        return 2
    finally:
        sys.argv = saved
    if task.errors:
        raise _first_error(task)
    failed, sweep_dirs = _failed_trials()
    if failed:  # out-of-process Optuna trials: scored inf, the search went on; said here
        raise _failed_jobs(failed, sweep_dirs)
    return 0


def _with_overrides(argv: list[str], added: list[str]) -> list[str]:
    """``added`` placed just before the first override of ``argv``: Hydra reads overrides as
    one block, so appended after a trailing ``-m`` they were an "unrecognized argument"."""
    if not added:
        return argv
    first = next((i for i in range(len(argv)) if _is_override(argv, i)), len(argv))
    return [*argv[:first], *added, *argv[first:]]


def _overrides_of(argv: Sequence[str]) -> list[str]:
    """The overrides of a command line (:func:`_is_override`)."""
    return [a for i, a in enumerate(argv) if _is_override(argv, i)]


def _is_override(argv: Sequence[str], i: int) -> bool:
    """Whether ``argv[i]`` is an override: it holds ``=`` and is neither an option nor an
    option's value (``-cd /x=y``)."""
    arg = argv[i]
    return "=" in arg and not arg.startswith("-") and (i == 0 or not _takes_value(argv[i - 1]))


def _is_multirun(argv: Sequence[str]) -> bool:
    """Whether the command line asks Hydra for a sweep: ``-m``, ``--multirun`` or an
    abbreviation argparse takes (``--multi``), or ``hydra.mode=MULTIRUN`` in any spelling
    (``++hydra.mode=RunMode.MULTIRUN``). A mode a config file sets is not seen here."""
    from hydra._internal.utils import get_args_parser

    from ..config import override_key

    try:
        if get_args_parser().parse_known_args(list(argv))[0].multirun:
            return True
    except SystemExit:  # an argument Hydra's parser refuses: Hydra says so itself
        pass
    return any(override_key(o) == "hydra.mode" and "MULTIRUN" in o.partition("=")[2]
               for o in _overrides_of(argv))


def _takes_value(option: str) -> bool:
    """Hydra's options that read the next argument as their value (``-cn NAME``)."""
    return option in ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir",
                      "-c", "--cfg", "-p", "--package", "-i", "--info",
                      "--experimental-rerun")


#: Groups and keys only a sweep reads (``hparams_search`` picks an Optuna search).
SWEEP_ONLY_SETTINGS = ("hparams_search", "hydra/sweeper", "hydra.sweeper", "hydra.sweep",
                       "hydra/launcher", "hydra.launcher")


def _refuse_sweep_settings_in_one_run(argv: Sequence[str]) -> None:
    """:func:`refuse_sweep_settings` before Hydra composes (a setting the default sweeper
    lacks, ``hydra.sweeper.n_trials``, is Hydra's multi-line error there) where the command
    line tells the mode: not where a config of one's own may set ``hydra.mode`` (``-cd``,
    ``-cp``, ``-cn``, ``experiment=``, ``VMAFDISTILL_CONF``; the run's task checks those), nor
    where it only prints (``--cfg``, ``--info``, ``--help``)."""
    import os

    from hydra._internal.utils import get_args_parser

    from ..config import override_key

    if _is_multirun(argv) or os.environ.get("VMAFDISTILL_CONF"):
        return
    try:
        args, _ = get_args_parser().parse_known_args(list(argv))
    except SystemExit:  # an argument Hydra's parser refuses: Hydra says so itself
        return
    if (args.cfg or args.info or args.help or args.hydra_help or args.shell_completion
            or args.config_dir or args.config_path or args.config_name):
        return
    overrides = _overrides_of(argv)
    if any(override_key(o) == "experiment" for o in overrides):
        return
    refuse_sweep_settings(overrides)


def refuse_sweep_settings(overrides: Sequence[str]) -> None:
    """A sweep's setting (:data:`SWEEP_ONLY_SETTINGS`) in a single run: Hydra ran one job and
    ignored it (``train hparams_search=optuna hydra.sweeper.n_trials=5`` trained one run,
    exit 0). Refused, saying it takes effect with ``-m``; ``hparams_search=null`` (the
    default) passes. Called by a run's task, where Hydra's mode is known (a config of one's
    own may set ``hydra.mode: MULTIRUN``), and by the Python API (every call one run)."""
    override = first_sweep_setting(overrides)
    if override is not None:
        raise VmafDistillError(
            f"{override}: a sweep's setting, which takes effect with -m (--multirun); "
            "without it one run would train and ignore it")


def first_sweep_setting(overrides: Sequence[str]) -> str | None:
    """The first of ``overrides`` that only a sweep reads (:data:`SWEEP_ONLY_SETTINGS`;
    ``hparams_search=null``, the default, is none); None where none is."""
    from ..config import override_key

    for override in map(str, overrides):
        key, value = override_key(override), override.partition("=")[2]
        if key == "hparams_search" and value.strip() in ("", "null"):
            continue
        if any(key == k or key.startswith((f"{k}.", f"{k}/")) for k in SWEEP_ONLY_SETTINGS):
            return override
    return None


def _refuse_a_storage_optuna_cannot_open(argv: Sequence[str]) -> None:
    """``hydra.sweeper.storage=sqlite:///...`` where the Optuna sweeper's Optuna (2.x) meets
    SQLAlchemy 2: Optuna's schema check failed with a bare AssertionError traceback, before
    any trial. Refused naming both versions; an in-memory study (the default, ``null``)
    passes, and so does a storage where SQLAlchemy is older than 2 (which Optuna 2 opens).
    Read from the command line (a storage set in a config of one's own is not seen)."""
    from ..config import override_key

    given = [o for o in _overrides_of(argv) if override_key(o) == "hydra.sweeper.storage"
             and o.partition("=")[2].strip() not in ("", "null")
             and not o.partition("=")[2].startswith("redis")]  # Optuna 2's other storage
    if not given:
        return
    optuna, sqlalchemy = _version("optuna"), _version("sqlalchemy")
    if optuna is None or sqlalchemy is None or optuna[0] >= 3 or sqlalchemy[0] < 2:
        return
    raise VmafDistillError(
        f"{given[-1]}: the Optuna sweeper's Optuna {'.'.join(map(str, optuna))} cannot open a "
        f"study storage with SQLAlchemy {'.'.join(map(str, sqlalchemy))} installed (it "
        "needs SQLAlchemy<2); leave hydra.sweeper.storage out (an in-memory study: the "
        "sweep's runs and optimization_results.yaml are its record)")


def _version(package: str) -> tuple[int, ...] | None:
    """The installed ``package``'s version as numbers (``2.10.1`` -> (2, 10, 1)), None where it
    is not installed or does not read so."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version(package)
    except PackageNotFoundError:
        return None
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts) or None


#: Keys the default ``hydra.sweep.dir`` is named from (``run_label`` of the corpus).
SWEEP_DIR_KEYS = ("corpus", "corpus_dir", "corpus.name", "experiment")


def _sweep_overrides(argv: Sequence[str]) -> list[Any]:
    """The parsed overrides of a sweep's command line; none for a single run, or where one is
    malformed (Hydra names it itself)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not _is_multirun(argv):
        return []
    try:
        return list(OverridesParser.create().parse_overrides(_overrides_of(argv)))
    except Exception:  # Hydra names a malformed override itself
        return []


def _pinned_sweep_dir(command: str, argv: Sequence[str]) -> list[str]:
    """``hydra.sweep.dir=outputs/<command>/corpora/multirun/<time>`` for a sweep over a key the
    default sweep directory is named from: Hydra resolves that name again in every job, with
    the job's own corpus, so a ``-m corpus=a,b`` sweep wrote ``multirun.yaml`` under one
    corpus's name and each job under its own (sweep-report then saw one run, or none).
    Nothing where the user names the directory, or sweeps no such key."""
    parsed = _sweep_overrides(argv)
    if not parsed or any(o.key_or_group == "hydra.sweep.dir" for o in parsed):
        return []
    if not any(o.is_sweep_override() and o.key_or_group in SWEEP_DIR_KEYS
               for o in parsed):
        return []
    # ${now:...} is resolved once and shared by every job (Hydra copies the driver's cache)
    return [f"hydra.sweep.dir=outputs/{command}/corpora/multirun/${{now:%Y-%m-%d_%H-%M-%S}}"]


#: Groups and key prefixes whose value changes the corpus a training job builds (what its
#: build key hashes: sources, rungs, teacher, shots, encode settings), not its name.
CORPUS_BUILD_KEYS = ("ladder", "teacher", "shots")
CORPUS_BUILD_PREFIXES = ("corpus.", "ladder.", "teacher.", "shots.", "corpus_build.encode.")
#: Keys under those prefixes that change no table (how fast, not what: corpus/build.py).
CORPUS_SPEED_KEYS = ("corpus.name", "teacher.chunk", "teacher.threads")


def _refuse_sweeps_sharing_a_corpus(argv: Sequence[str]) -> None:
    """A sweep over a corpus-build setting (``-m ladder=a,b``, ``teacher.model=...``,
    ``corpus.root=...``) built every job's corpus into the one ``out_dir`` its name gives:
    each job replaced the corpus of the one before, the earlier students' exports then found
    another corpus (and parallel jobs wrote the same tables at once). Refused, saying how to
    sweep corpora; nothing where ``corpus_dir`` is given (no corpus is built) or where the
    corpus directory differs per job (``paths.cache_dir`` or ``corpus_build.out_dir`` swept, or
    interpolated: ``'paths.cache_dir=.cache/${ladder.name}'``)."""
    parsed = _sweep_overrides(argv)
    for o in parsed:
        key = o.key_or_group
        if key == "corpus_dir" and o.value() not in (None, "null"):
            return  # read from a directory: nothing is built
        if key in ("paths.cache_dir", "corpus_build.out_dir") and (
                o.is_sweep_override() or "${" in str(o.value())):
            return  # a directory per job (a constant one is still one directory)
    swept = [o.key_or_group for o in parsed if o.is_sweep_override()
             and (o.key_or_group in CORPUS_BUILD_KEYS
                  or o.key_or_group.startswith(CORPUS_BUILD_PREFIXES))
             and o.key_or_group not in CORPUS_SPEED_KEYS]
    if swept:
        key = swept[0].removeprefix("corpus_build.")  # the corpus command's own name for it
        raise VmafDistillError(
            f"a sweep over {swept[0]} builds a different corpus in every job, all into the "
            "one directory the corpus name gives: each job would replace the corpus of the one "
            f"before. Build each corpus first (`vmafdistill corpus {key}=... "
            "out_dir=.cache/corpus/<name>`), then sweep corpus_dir=<dir1>,<dir2> (or give "
            "each job its own paths.cache_dir)")


def _check_run_dir_free(argv: Sequence[str]) -> None:
    """A single run given a ``hydra.run.dir`` that a live run on this host writes: refused
    here, before Hydra rewrites that run's ``.hydra/`` files (the run's own claim, later, is
    what refuses it in every other case)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ..config import override_key
    from .train import run_dir_holder, run_dir_taken

    if _is_multirun(argv):
        return
    given = [a for a in _overrides_of(argv) if override_key(a) == "hydra.run.dir"]
    if not given:
        return
    try:
        value = OverridesParser.create().parse_overrides([given[-1]])[0].value()
    except Exception:  # Hydra names a malformed override itself
        return
    if isinstance(value, str) and "${" not in value:
        holder = run_dir_holder(Path(value))
        if holder is not None:
            raise run_dir_taken(Path(value), holder)


def _first_error(task: Any) -> VmafDistillError:
    """The error to end with: a single run's own; for a sweep, whose jobs' errors were
    printed as they happened, how many failed (not the first one again)."""
    if not task.multirun:
        return task.errors[0]
    return _failed_jobs(len(task.errors), task.sweep_dirs)


def _failed_jobs(n: int, sweep_dirs: list[str]) -> VmafDistillError:
    """``n`` failed sweep jobs, whose errors were printed as they happened."""
    return VmafDistillError(f"{n} sweep job{'s' if n > 1 else ''} failed (error"
                            f"{'s' if n > 1 else ''} above)" + _no_best(sweep_dirs))


def _no_best(sweep_dirs: list[str]) -> str:
    """When every trial of an Optuna sweep failed, its sweeper still wrote a "best" trial
    (``best_value: .inf``) to ``optimization_results.yaml``: that file is removed, and said."""
    if not sweep_dirs:
        return ""
    results = Path(sweep_dirs[0]) / "optimization_results.yaml"
    try:
        failed_all = "best_value: .inf" in results.read_text()
    except OSError:
        return ""
    if not failed_all:
        return ""
    results.unlink(missing_ok=True)
    return (f"; every trial failed, so the sweeper's 'best' (value inf) is none: {results} "
            "removed")


def _train_job(cfg: Any, run_dir: Path, overrides: list[str]) -> float:
    from .train import run

    return float(run(cfg, run_dir, overrides)["objective"])


def main(argv: list[str]) -> int:
    """``vmafdistill train [overrides...]``: returns the exit status."""
    return run_hydra("train", "train", _train_job, list(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
