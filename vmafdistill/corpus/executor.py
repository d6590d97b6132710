"""Where the corpus's (source, rung) jobs run: this machine's process pool, or a Ray cluster.

Both executors take the same jobs (a picklable function and its arguments) and return
``({name: result}, {name: error})``; the build assembles the tables in plan order from the
results, so the tables (and ``corpus_hash``) do not depend on the executor.

``executor=ray`` runs each job as a Ray task: ``executor.address`` null starts a local runtime
(``executor.num_cpus`` CPUs), ``auto`` or ``ray://host:port`` joins a cluster. A job is retried
``executor.max_retries`` times (a lost worker or node, or an exception), then reported like a
failed local job; a job that refuses its input (a :class:`VmafDistillError`: a damaged
source, an encoder's refusal; not a transient one, :func:`~vmafdistill.errors.is_transient`)
is reported at once, in one line, as a local job is. With
``executor.shared_fs`` true the jobs write their artefacts into the content-addressed cache,
which every node mounts (``paths.cache_dir`` on NFS or similar); with it false they work in a
node-local cache and their artefacts come back to the driver through Ray's object store
(:mod:`vmafdistill.corpus.detached`). Either way the results the tables are built from
(labels, features, sizes) come back through the object store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..errors import VmafDistillError, is_transient
from ..signals import handlers_restored, raise_exit, signal_handled
from .progress import ticking

__all__ = ["EXECUTORS", "ShippedFile", "check_address", "flag", "joins_cluster", "raise_exit",
           "run_ray", "signal_handled"]

#: Executor names ``conf/executor/*.yaml`` may use.
#: Each executor's config keys (``conf/executor/<name>.yaml``): another key is refused, a
#: typo (``+executor.num_cpu=2``) was ignored without a word.
EXECUTOR_KEYS: dict[str, tuple[str, ...]] = {
    "local": ("name",),
    "ray": ("name", "address", "num_cpus", "num_cpus_per_job", "num_gpus_per_job",
            "check_resources", "max_retries", "retry_exceptions", "shared_fs", "node_cache_dir"),
}
EXECUTORS: tuple[str, ...] = tuple(EXECUTOR_KEYS)


def _job(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """One job on a Ray worker: single-threaded like a local pool worker. Object refs among
    ``args`` (shared bytes) are fetched here."""

    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - the corpus extra always has torch
        pass
    import ray

    # the job's warnings go back with its result (a worker's output does not reach the
    # driver: a damaged cached encode's warning, which local jobs print, was lost); the
    # worker's own filters decide which, as a local job's do
    with warnings.catch_warnings(record=True) as caught:
        try:
            value = fn(*(ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args))
        except VmafDistillError as exc:
            if is_transient(exc):  # a killed encoder, a full disk, a failed fork: Ray retries
                raise
            # the input's own problem: a retry gives the same, and Ray printed each try's
            # traceback, cut mid-path, before the one-line report
            value = JobRefused(str(exc))
    return JobDone(value, tuple((f"{w.category.__module__}.{w.category.__qualname__}",
                                 str(w.message)) for w in caught))


class JobDone(NamedTuple):
    """A Ray job's result and the warnings it raised (category, message), re-raised on the
    driver."""

    value: Any
    warned: tuple[tuple[str, str], ...] = ()  # (the category's module.qualname, message)


class ShippedFile(NamedTuple):
    """A task argument that stands for a file's bytes (a source for nodes without a shared
    filesystem): read, checked against ``sha256`` and put into Ray's object store once, at
    submission, one file at a time (every source was held in the driver's memory at once,
    twice over: 2.2 GB of driver memory for six 150 MB sources)."""

    path: str
    sha256: str

    def read(self) -> bytes:
        """The file's bytes, refused where they are no longer what was hashed (or gone)."""
        import hashlib

        from ..errors import VideoInputError

        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise VideoInputError(f"{self.path}: cannot be read to ship it ({exc.strerror}); "
                                  "build again") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:  # never ship other content
            raise VideoInputError(f"{self.path} changed during the build (its bytes are not "
                                  "what was hashed); build again")
        return data


class JobRefused(NamedTuple):
    """A Ray job's result where the job raised :class:`VmafDistillError` (its message)."""

    message: str


def flag(cfg: Mapping[str, Any], key: str, default: bool = True) -> bool:
    """A boolean ``executor`` key (``shared_fs=no`` is false; bool() took "no" as true)."""
    from ..config import checked_bool

    value = cfg.get(key)
    return default if value is None else checked_bool(f"executor.{key}", value)


#: The ``VMAFDISTILL_*`` settings that name a file or folder (the others, such as the kernel
#: choices, are words: ``VMAFDISTILL_EXACT_KERNELS=torch`` went absolute where a folder
#: ``torch`` was in the driver's directory, and every job refused it).
PATH_SETTINGS = ("VMAFDISTILL_FFMPEG", "VMAFDISTILL_CONF", "VMAFDISTILL_MODEL",
                 "VMAFDISTILL_CACHE")


def joins_cluster(cfg: Mapping[str, Any]) -> bool:
    """Whether ``executor.address`` names a cluster to join (null, empty or ``local``: a new
    local runtime on this machine)."""
    return cfg.get("address") not in (None, "", "local")


def _package_env(shared_fs: bool = True) -> dict[str, str]:
    """The driver's ``VMAFDISTILL_*`` settings (ffmpeg binary, exact-mode kernels, config and
    model cache) for the workers: Ray does not pass a driver's environment on, and they then
    encoded or labelled otherwise than the driver was told to.

    A relative path (:data:`PATH_SETTINGS`) goes absolute (a worker runs in its node's own
    directory); without a shared filesystem (``shared_fs=false``) the config and model-cache
    folders stay behind, as the nodes have their own, but the ffmpeg binary goes on: a node
    without it at that path fails its jobs naming it, where one that used its own ffmpeg
    filed its encodes under another ffmpeg's cache key and labelled them unsaid. Keys a
    submitted Ray Job already sets are left to it (Ray refuses the same key twice, even with
    the same value)."""
    import json

    try:
        job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
        taken = set((job.get("runtime_env") or {}).get("env_vars") or {})
    except (ValueError, AttributeError):
        taken = set()
    out = {}
    for key, value in os.environ.items():
        if not key.startswith("VMAFDISTILL_") or key in taken:
            continue
        if key in PATH_SETTINGS and value:
            if not shared_fs and key != "VMAFDISTILL_FFMPEG":
                continue
            value = os.path.abspath(os.path.expanduser(value))
        out[key] = value
    return out


def _connect(cfg: Mapping[str, Any]) -> bool:
    """Join or start the Ray runtime; True when this call started a local one."""
    try:
        import ray
    except ImportError:
        raise VmafDistillError("executor=ray needs Ray: pip install 'vmafdistill[ray]'") from None
    if ray.is_initialized():
        return False
    address = cfg.get("address")
    opts: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False,
                            "include_dashboard": False, "configure_logging": False}
    if not joins_cluster(cfg):
        if cfg.get("num_cpus"):
            opts["num_cpus"] = int(cfg["num_cpus"])
        # workers import vmafdistill from wherever the driver does
        opts["runtime_env"] = {"env_vars": {"PYTHONPATH": ":".join(p for p in sys.path if p),
                                            **_package_env()}}  # one machine: paths hold
        try:
            # "local": a new runtime, never one RAY_ADDRESS or a stale
            # /tmp/ray/ray_current_cluster names (that hung, or refused num_cpus)
            _init(ray, address="local", **opts)
        except Exception as exc:
            raise VmafDistillError(f"executor=ray: cannot start a local Ray runtime "
                                   f"({_first_line(exc)})") from None
        return True
    _check_reachable(str(address))
    if cfg.get("num_cpus"):  # taken for a limit on the cluster, and ignored unsaid
        print(f"note: executor.num_cpus={cfg['num_cpus']} sizes a local runtime only; on the "
              f"cluster at {address} each node offers the CPUs it was started with",
              file=sys.stderr, flush=True)
    env = _package_env(flag(cfg, "shared_fs"))
    if env:  # the nodes encode and label as this driver says (same ffmpeg, kernels)
        opts["runtime_env"] = {"env_vars": env}
    try:
        _init(ray, address=str(address), **opts)
    except Exception as exc:  # ConnectionError, RuntimeError, ... depending on the address
        with contextlib.suppress(Exception):  # a failed ray:// left client state: the next
            ray.shutdown()  # local runtime in this process failed with an AssertionError
        raise VmafDistillError(
            f"executor.address={address!r}: cannot join the Ray cluster there "
            f"({_first_line(exc)}); start one with `ray start --head` or use "
            "executor.address=null for a local runtime"
        ) from None
    return False


def _init(ray: Any, **opts: Any) -> None:
    """``ray.init(**opts)``; a SIGTERM while it starts the runtime exits 143 with the runtime
    shut down (Ray's own handler, installed inside ``ray.init``, exited 15 and left its agents
    running). A Ctrl-C there is a KeyboardInterrupt as anywhere (exit 130; Ray's exit hook
    stops the runtime when the process ends)."""
    try:
        ray.init(**opts)
    except SystemExit as exc:
        if exc.code != signal.SIGTERM:
            raise
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise SystemExit(128 + int(exc.code)) from None


def _ray_address_file() -> str:
    """Where ``ray start`` records its cluster's address, as Ray finds it (``RAY_TMPDIR`` or
    the temporary folder, which ``TMPDIR`` moves: a fixed /tmp/ray read a stale file)."""
    for module in ("ray._common.utils", "ray._private.utils"):  # private: it moves
        with contextlib.suppress(Exception):
            import importlib

            return str(importlib.import_module(module).get_ray_address_file(None))
    # Ray's own rule where neither holds it: <RAY_TMPDIR or TMPDIR or /tmp>/ray/
    root = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(root, "ray", "ray_current_cluster")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``host:port`` address (also the one ``auto`` resolves to) that nothing answers at, or
    that answers in a protocol other than a Ray head's gRPC (a dashboard's HTTP), is an error
    naming it: ``ray.init`` retried such addresses for 10-14 minutes. So is an ``http://``
    job-submission address. ``ray://`` addresses fail fast in Ray itself."""
    if address.startswith("ray://"):
        return
    if address == "auto" and "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return  # a session this process opened (ray.init("ray://...")): the build uses it
    target = _auto_address() if address == "auto" else address
    if address == "auto" and not target:  # said by ray.init only after every source was read
        raise VmafDistillError(
            "executor.address='auto': no running Ray cluster found (no RAY_ADDRESS, no head "
            "started on this machine with `ray start --head`); start one, give its address, or "
            "use executor.address=null for a local runtime")
    if address == "auto" and target.startswith("ray://"):
        return  # Ray's client says at once
    if target.startswith(("http://", "https://")):  # was "nothing answers at http://..."
        raise VmafDistillError(
            f"executor.address={address!r}: {target} is a dashboard's job-submission "
            f"address{' (from RAY_ADDRESS)' if address == 'auto' else ''}; a corpus build "
            "joins the cluster itself: give the head's host:port (6379 unless `ray start "
            "--port` said otherwise) or ray://host:10001")
    host, _, port = target.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not host or not port.isdigit():
        return  # not host:port: Ray's own error names it
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as conn:
            reply = _http2_reply(conn)
    except OSError as exc:
        raise VmafDistillError(
            f"executor.address={address!r}: nothing answers at {target} ({exc}); start a "
            "cluster with `ray start --head` or use executor.address=null for a local "
            "runtime") from None
    if reply and not _is_http2_settings(reply):  # ray.init retried it for ~14 minutes
        said = "as an HTTP server" if b"HTTP" in reply[:64].upper() else "in another protocol"
        raise VmafDistillError(
            f"executor.address={address!r}: something answers at {target}, {said}, but not "
            "as a Ray cluster's head (a dashboard, port 8265, takes job submissions only); "
            "give the head's host:port (6379 unless `ray start --port` said otherwise) or "
            "ray://host:10001")


# An HTTP/2 client's opening (the connection preface and an empty SETTINGS frame): a Ray
# head's GCS is a gRPC server, which answers with its own SETTINGS frame.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _http2_reply(conn: socket.socket, wait_s: float = 2.0) -> bytes:
    """The first bytes a server sends back to an HTTP/2 opening; empty where it says nothing
    within ``wait_s`` or closes (then nothing is concluded: a slow head is not refused). Not
    sent where Ray's TLS is on (``RAY_USE_TLS``): a TLS head would answer with an alert."""
    if os.environ.get("RAY_USE_TLS", "0").lower() not in ("", "0", "false"):
        return b""
    reply = b""
    with contextlib.suppress(OSError):
        conn.sendall(_HTTP2_PREFACE)
        conn.settimeout(wait_s)
        while len(reply) < 9:  # a frame header, which TCP may deliver in pieces
            more = conn.recv(64)
            if not more:
                break
            reply += more
    return reply if len(reply) >= 9 or b"HTTP" in reply.upper() else b""


def _is_http2_settings(reply: bytes) -> bool:
    """Whether ``reply`` opens with an HTTP/2 frame of type SETTINGS (the frame header's 4th
    byte), as every gRPC server's first reply does."""
    return len(reply) >= 4 and reply[3] == 0x04


def _auto_address() -> str:
    """The address ``executor.address=auto`` joins, resolved as ``ray.init`` resolves it:
    ``RAY_ADDRESS``, then a head running on this machine, then the file ``ray start`` leaves
    (a stale file, with a head started elsewhere under ``--temp-dir`` running, was refused
    here while Ray would have joined the head). Ray's resolver is private: where it moves,
    ``RAY_ADDRESS`` or the file. Empty: none found."""
    with contextlib.suppress(Exception):
        from ray._private import services

        return str(services.get_ray_address_from_environment("auto", None) or "")
    target = os.environ.get("RAY_ADDRESS", "")
    if not target:
        # what `ray start` leaves (a killed head leaves it too)
        with contextlib.suppress(OSError), open(_ray_address_file()) as fh:
            target = fh.readline().strip()
    return target


def check_address(cfg: Mapping[str, Any]) -> None:
    """An ``executor.address`` nothing answers at is an error naming it, before any work (it
    came after every source had been hashed, decoded and cut: minutes for an hour of
    footage). None, ``local``: a local runtime, nothing to check."""
    if joins_cluster(cfg):
        _check_reachable(str(cfg["address"]))


def _check_resources(cfg: Mapping[str, Any]) -> None:
    """A job asking for more CPUs or GPUs than any node of the cluster has would wait for
    ever, silently: an error naming what the nodes have."""
    import ray

    need = {"CPU": float(cfg.get("num_cpus_per_job", 1)),
            "GPU": float(cfg.get("num_gpus_per_job", 0) or 0)}
    nodes = [n.get("Resources") or {} for n in ray.nodes() if n.get("Alive")]
    if any(all(node.get(k, 0.0) >= v for k, v in need.items() if v > 0) for node in nodes):
        return
    have = "; ".join(f"{node.get('CPU', 0):g} CPUs, {node.get('GPU', 0):g} GPUs"
                     for node in nodes) or "no live node"
    raise VmafDistillError(
        f"executor: a job asks for {need['CPU']:g} CPU(s) and {need['GPU']:g} GPU(s) "
        f"(executor.num_cpus_per_job, executor.num_gpus_per_job) but no node of the Ray "
        f"cluster has that ({have}); it would wait for ever (an autoscaling cluster that adds "
        f"such nodes on demand: executor.check_resources=false)")


def _submit(fn: Callable[..., Any], tasks: list[tuple[str, tuple[Any, ...]]],
            cfg: Mapping[str, Any], stop: Callable[[], bool] = lambda: False,
            stop_on_error: bool = False) -> tuple[dict[Any, str], dict[str, str]]:
    """The tasks submitted as Ray tasks: ``({object ref: name}, {name: error})``, the errors
    for tasks whose shipped file could not be read as hashed (those fail alone: a source
    changed since it was hashed stopped the whole build). Submission ends early once ``stop()``
    (a signal noted while sources are read and put: that can take minutes), and at the first
    such error with ``stop_on_error``."""
    import ray

    remote = ray.remote(_job).options(
        num_cpus=float(cfg.get("num_cpus_per_job", 1)),
        num_gpus=float(cfg.get("num_gpus_per_job", 0) or 0),
        max_retries=int(cfg.get("max_retries", 2)),
        retry_exceptions=flag(cfg, "retry_exceptions"),
    )
    fn_ref = ray.put(fn)
    shared: dict[Any, Any] = {}
    unreadable: dict[ShippedFile, str] = {}

    def by_ref(arg: Any) -> Any:
        # A shipped file (a source for nodes without a shared filesystem) or a large bytes
        # argument goes into the object store once, however many jobs take it; a file's
        # bytes are dropped here once put (the store spills to disk past its memory)
        if isinstance(arg, ShippedFile):
            # by file: a copy with the same bytes elsewhere is read and shipped on its own
            if arg in unreadable:
                raise VmafDistillError(unreadable[arg])
            if arg.sha256 not in shared:
                try:
                    data = arg.read()
                except VmafDistillError as exc:
                    unreadable[arg] = str(exc)
                    raise
                shared[arg.sha256] = ray.put(data)
                del data
            return shared[arg.sha256]
        if isinstance(arg, bytes) and len(arg) > 1 << 16:
            if id(arg) not in shared:
                shared[id(arg)] = ray.put(arg)
            return shared[id(arg)]
        return arg

    pending: dict[Any, str] = {}
    errors: dict[str, str] = {}
    for name, args in tasks:
        if stop() or (errors and stop_on_error):
            break
        try:
            pending[remote.remote(fn_ref, tuple(by_ref(a) for a in args))] = name
        except VmafDistillError as exc:
            errors[name] = str(exc)
    return pending, errors


def _job_error(exc: BaseException) -> str:
    """A failed task's error as the local pool words it (ours carry no class name)."""
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the job's own exception
    return (str(cause) if isinstance(cause, VmafDistillError)
            else f"{type(cause).__name__}: {cause}").splitlines()[0]


def _outcome(ref: Any, cfg: Mapping[str, Any]
             ) -> tuple[Any, str | None, str, tuple[tuple[str, str], ...]]:
    """A finished Ray job's ``(result, None, "", warnings)``, or ``(None, its one-line error,
    how it was tried, warnings)``: a job that refused its input (:class:`JobRefused`) ran once;
    an exception was retried ``executor.max_retries`` times where ``retry_exceptions`` allows
    it. ``warnings``: what the job raised, ``(category name, message)``."""
    import ray

    try:
        result = ray.get(ref)
    except Exception as exc:  # RayTaskError wraps the job's own exception
        # a lost worker is retried whatever retry_exceptions says; -1 is Ray's "for ever"
        own = isinstance(exc, ray.exceptions.RayTaskError)
        retried = int(cfg.get("max_retries", 2)) != 0 and (
            not own or flag(cfg, "retry_exceptions"))
        return None, _job_error(exc), " (after retries)" if retried else "", ()
    warned: tuple[tuple[str, str], ...] = ()
    if isinstance(result, JobDone):
        result, warned = result.value, result.warned
    if isinstance(result, JobRefused):
        return (None, result.message.splitlines()[0] if result.message else "refused", "",
                warned)
    return result, None, "", warned


def _act_on(terms: list[int]) -> None:
    """A noted Ctrl-C as KeyboardInterrupt, a SIGTERM as exit 143."""
    if terms and terms[0] == signal.SIGINT:
        raise KeyboardInterrupt
    if terms:
        raise_exit(terms[0], None)


def _rewarn(warned: tuple[tuple[str, str], ...]) -> None:
    """The warnings a finished job raised, raised again here (its output stays on its node);
    one the driver turns into an error (``-W error``) is printed instead, the job's result
    kept. A category the driver cannot import is a UserWarning."""
    import importlib

    for category_name, message in warned:
        module, _, qualname = str(category_name).rpartition(".")
        category: Any = None
        with contextlib.suppress(Exception):
            category = importlib.import_module(module)
            for part in qualname.split("."):
                category = getattr(category, part)
        if not (isinstance(category, type) and issubclass(category, Warning)):
            category = UserWarning
        try:
            warnings.warn(message, category, stacklevel=1)
        except Warning:
            print(f"warning: {message}", file=sys.stderr)


def _nodes_line() -> str:
    """``N node(s): address (C CPUs), ...`` of the live nodes."""
    import ray

    # by node id: two nodes on one machine (one address) were counted as one
    per_node = {node.get("NodeID", i): (node.get("NodeManagerAddress", "?"), int(
        (node.get("Resources") or {}).get("CPU", 0)))
        for i, node in enumerate(ray.nodes()) if node.get("Alive")}
    nodes = ", ".join(f"{a} ({c} CPUs)" for a, c in sorted(per_node.values()))
    return f"{len(per_node)} node(s): {nodes}"


def _record(name: str, ref: Any, cfg: Mapping[str, Any], results: dict[str, Any],
            errors: dict[str, str], bar: Any,
            on_result: Callable[[str, Any], None] | None) -> None:
    """A finished job's result or error recorded (and filed, by ``on_result``: a driver-side
    error there stops the build), then its warnings raised again (after the filing: under
    ``-W error`` the result was lost)."""
    result, error, tried, warned = _outcome(ref, cfg)
    try:
        if error is not None:
            errors[name] = error
            bar.write(f"FAILED {name}{tried}: {error}", file=sys.stderr)
        else:
            results[name] = result
            if on_result is not None:
                on_result(name, result)
    finally:
        _rewarn(warned)


def run_ray(fn: Callable[..., Any], tasks: list[tuple[str, tuple[Any, ...]]],
            cfg: Mapping[str, Any], progress: bool, desc: str,
            on_result: Callable[[str, Any], None] | None = None,
            stop_on_error: bool = False,
            ) -> tuple[dict[str, Any], dict[str, str]]:
    """Run ``fn(*args)`` for every ``(name, args)`` as Ray tasks (see the module docstring);
    ``on_result(name, result)`` as each result arrives (a driver killed later keeps those);
    ``stop_on_error``: the first failed job cancels the others."""
    from tqdm import tqdm

    # ray.init installs its own SIGTERM handler (exit 1) and leaves it after shutdown: a
    # later local build in the same process then died with 1, not 143
    stack = contextlib.ExitStack()
    stack.enter_context(handlers_restored(signal.SIGTERM, signal.SIGINT))
    try:
        started_here = _connect(cfg)
    except BaseException:
        stack.close()
        raise
    import ray

    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    t0 = time.perf_counter()
    if started_here:  # closed last: after the shutdown, the handlers from before ray.init
        stack.callback(ray.shutdown)
    try:
        # SIGTERM as SystemExit(143), as the local pool does (Ray's handler exited 1). The
        # handler only notes it: an exception raised inside ray.wait becomes Ray's own
        # SystemExit(1). Set right after ray.init, which installs Ray's handler (set after the
        # submission, a SIGTERM while the sources were shipped exited 15).
        # Ctrl-C the same way (a KeyboardInterrupt raised inside ray.wait once crashed it)
        terms: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            stack.enter_context(signal_handled(signum, lambda num, _: terms.append(num)))
        if flag(cfg, "check_resources"):  # "no" was true
            _check_resources(cfg)
        pending, unsent = _submit(fn, tasks, cfg, stop=lambda: bool(terms),
                                  stop_on_error=stop_on_error)
        for name, error in unsent.items():  # a source changed since it was hashed
            errors[name] = error
            print(f"FAILED {name}: {error}", file=sys.stderr)
        bar = tqdm(total=len(tasks), desc=f"{desc} (ray)", unit="job", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        bar.update(len(unsent))
        try:
            with ticking(bar):  # the clock moves while a long job runs
                while pending and not (errors and stop_on_error):
                    done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                    for ref in done:
                        _record(pending.pop(ref), ref, cfg, results, errors, bar, on_result)
                        if errors and stop_on_error:
                            bar.update(1)
                            break
                        # the postfix first: set after update, unrefreshed, it showed the previous
                        # job's counts ("4/4 left 1")
                        ran = bar.n + 1 - len(unsent)  # the rate of jobs that ran
                        rate = ran / max(time.perf_counter() - t0, 1e-9)
                        bar.set_postfix_str(f"left {len(pending)} failed {len(errors)} "
                                            f"{rate * 60:.1f} jobs/min", refresh=False)
                        bar.update(1)
                    # after the finished jobs are recorded (and filed): none is lost to a signal
                    _act_on(terms)
            _act_on(terms)  # noted while the sources were shipped, or with nothing pending
        finally:
            bar.close()
            for ref in pending:  # stopped early (a signal, a driver-side error): a cluster
                with contextlib.suppress(Exception):  # would otherwise run them all on
                    ray.cancel(ref, force=True)
        if progress:
            print(f"ray: {len(results)} job(s) done, {len(errors)} failed in "
                  f"{time.perf_counter() - t0:.1f} s on {_nodes_line()}", file=sys.stderr)
    finally:
        stack.close()
    return results, errors
