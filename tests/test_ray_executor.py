"""executor=ray: the corpus's (source, rung) jobs as Ray tasks on a local runtime build the same
tables (same corpus_hash) as the local process pool; failing jobs are retried, then listed with
their source and rung while the others finish; an unreachable cluster is named."""

# ruff: noqa: F811  (the `sources` fixture is imported from test_corpus and named as a parameter)
from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest
from test_corpus import TINY_LADDER, make_cfg, sources  # noqa: F401 (fixture)

from vmafdistill.corpus.build import build_corpus
from vmafdistill.corpus.tables import read_manifest
from vmafdistill.errors import VmafDistillError

pytest.importorskip("ray")

RAY = {"name": "ray", "address": None, "num_cpus": 2, "num_cpus_per_job": 1,
       "num_gpus_per_job": 0, "max_retries": 1, "retry_exceptions": True}


def test_ray_builds_the_same_tables_as_the_local_pool(sources, tmp_path: Path) -> None:
    srcs = [sources["cuts"], sources["noise"]]
    local = build_corpus(make_cfg(srcs, tmp_path / "local", tmp_path / "cache_local"))
    ray = build_corpus(make_cfg(srcs, tmp_path / "ray", tmp_path / "cache_ray", executor=RAY))
    assert not ray.failures
    assert (read_manifest(tmp_path / "ray")["corpus_hash"]
            == read_manifest(tmp_path / "local")["corpus_hash"])
    pd.testing.assert_frame_equal(local.samples, ray.samples)


def test_a_failing_job_is_listed_and_the_rest_finish(
        sources, tmp_path: Path) -> None:
    bad = {"codec": "h264", "height": 0.1, "crf": 30}  # under 16 lines of the source: it fails
    cfg = make_cfg([sources["cuts"]], tmp_path / "out", tmp_path / "cache", executor=RAY,
                   ladder={"name": "tiny_bad", "rungs": [*TINY_LADDER, bad]})
    report = build_corpus(cfg)
    assert [f["source_id"] for f in report.failures] == ["cuts"]
    assert report.failures[0]["variant_id"] == "h264_18x10_crf30", report.failures
    assert report.samples["variant_id"].nunique() == len(TINY_LADDER)
    assert "cuts.mp4" in report.failures[0]["error"], report.failures
    # a node without the shared filesystem works on its own copy of the source (named by its
    # hash): the error still names the user's file, as the local pool's does
    node = tmp_path / "node_cache"
    detached = build_corpus({**cfg, "out_dir": str(tmp_path / "out2"), "executor": {
        **RAY, "shared_fs": False, "node_cache_dir": str(node)}})
    def said(text: str) -> str:  # ours; ffmpeg's log lines after it come in any order
        return text.split(" [")[0]

    error = detached.failures[0]["error"]
    assert said(error) == said(report.failures[0]["error"]), error
    assert "0.1 of the 108 lines of cuts.mp4 is 10, under the 16 a rung needs" in error, error
    assert str(node) not in error


def test_nodes_without_a_shared_filesystem_ship_artefacts_to_the_driver(
        sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """shared_fs=false: jobs read the source from the object store and work in their own
    cache; the driver's cache ends up holding every encode, label and feature (a local rebuild
    from it encodes, labels and featurises nothing) and the tables equal the local pool's."""
    srcs = [sources["cuts"], sources["noise"]]
    local = build_corpus(make_cfg(srcs, tmp_path / "local", tmp_path / "cache_local"))
    node = tmp_path / "node_cache"
    from vmafdistill.corpus import detached as detached_mod

    filed: list[int] = []  # jobs per filing: one at a time, as each returns
    real_file = detached_mod.file_artefacts

    def counting(store, results):
        filed.append(sum("artefacts" in r for r in results.values()))
        return real_file(store, results)

    monkeypatch.setattr(detached_mod, "file_artefacts", counting)
    detached = build_corpus(make_cfg(
        srcs, tmp_path / "ray", tmp_path / "cache_driver",
        executor={**RAY, "shared_fs": False, "node_cache_dir": str(node)}))
    assert not detached.failures
    # filed as each job returned (a driver killed midway keeps those), not all at the end
    assert filed.count(1) == len(srcs) * len(TINY_LADDER) and max(filed) == 1
    pd.testing.assert_frame_equal(local.samples, detached.samples)
    assert len(list((node / "sources").iterdir())) == len(srcs)  # the jobs' own copies

    # a rerun finds every encode in the driver's cache: it runs the jobs there, ships nothing
    import shutil

    shutil.rmtree(node)
    rerun = build_corpus(make_cfg(
        srcs, tmp_path / "ray2", tmp_path / "cache_driver",
        executor={**RAY, "shared_fs": False, "node_cache_dir": str(node)}))
    pd.testing.assert_frame_equal(local.samples, rerun.samples)
    assert not node.exists()

    from vmafdistill.corpus import jobs

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the driver's cache lacks an artefact")

    for name in ("encode_rung", "_teacher_frames", "_pixel_features"):
        monkeypatch.setattr(jobs, name, no_work)
    rebuilt = build_corpus(make_cfg(srcs, tmp_path / "again", tmp_path / "cache_driver"))
    assert not rebuilt.failures, rebuilt.failures
    pd.testing.assert_frame_equal(local.samples, rebuilt.samples)


def _die_once(marker: str, value: int) -> int:
    """A job whose worker process is SIGKILLed on its first attempt (a node lost mid-build)."""
    import os
    import signal

    path = Path(marker)
    if not path.exists():
        path.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def test_a_worker_killed_mid_build_is_retried(tmp_path: Path) -> None:
    from vmafdistill.corpus.executor import run_ray

    tasks = [(f"job{i}", (str(tmp_path / f"m{i}"), i)) for i in range(3)]
    results, errors = run_ray(_die_once, tasks, {**RAY, "retry_exceptions": False},
                              progress=False, desc="kill")
    assert not errors
    assert results == {"job0": 0, "job1": 1, "job2": 2}
    assert all((tmp_path / f"m{i}").exists() for i in range(3))  # each worker did die once


def _fail_counting(marker: str, refuse: bool | str) -> int:
    """A job that fails every time it runs, leaving one line in ``marker`` per attempt:
    refusing its input (VmafDistillError), raising an unexpected error, or (``"transient"``)
    a VmafDistillError a retry may not meet (raised while handling an OSError)."""
    with open(marker, "a") as fh:
        fh.write("ran\n")
    if refuse == "transient":
        try:
            raise OSError(12, "Cannot allocate memory")
        except OSError as exc:
            raise VmafDistillError(f"cannot run ffmpeg: {exc}") from None
    if refuse:
        raise VmafDistillError("source /footage/a.mp4: damaged\nsecond line")
    raise RuntimeError("lost its scratch disk")


def test_a_refused_input_is_not_retried_and_reads_as_a_local_failure(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A job refusing its input failed the same way on every retry, and Ray printed each
    try's traceback (cut mid-path) before the report; an unexpected error is still retried,
    and "(after retries)" is said only where there were retries."""
    from vmafdistill.corpus.executor import run_ray

    tasks = [("refused", (str(tmp_path / "refused"), True)),
             ("raised", (str(tmp_path / "raised"), False)),
             ("transient", (str(tmp_path / "transient"), "transient"))]
    results, errors = run_ray(_fail_counting, tasks, RAY, progress=True, desc="fail")
    assert not results
    assert errors == {"refused": "source /footage/a.mp4: damaged",
                      "raised": "RuntimeError: lost its scratch disk",
                      "transient": "cannot run ffmpeg: [Errno 12] Cannot allocate memory"}
    runs = {name: len((tmp_path / name).read_text().splitlines()) for name, _ in tasks}
    assert runs == {"refused": 1, "raised": 1 + RAY["max_retries"],
                    "transient": 1 + RAY["max_retries"]}
    err = capfd.readouterr().err
    assert "FAILED refused: source /footage/a.mp4: damaged" in err, err
    assert "FAILED raised (after retries): RuntimeError" in err, err
    # said once, in one line (Ray's own report of a raising task printed it with a traceback)
    assert sum("damaged" in line for line in err.splitlines()) == 1, err
    _, errors = run_ray(_fail_counting, [("raised", (str(tmp_path / "once"), False))],
                        {**RAY, "max_retries": 0}, progress=True, desc="fail")
    assert "(after retries)" not in capfd.readouterr().err
    assert len((tmp_path / "once").read_text().splitlines()) == 1


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name)


def test_workers_get_the_drivers_package_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray passes no driver environment to its workers: VMAFDISTILL_FFMPEG or
    VMAFDISTILL_EXACT_KERNELS set for a build were not what its jobs encoded or labelled with."""
    from vmafdistill.corpus.executor import run_ray

    monkeypatch.setenv("VMAFDISTILL_EXACT_KERNELS", "torch")
    results, errors = run_ray(_env, [("a", ("VMAFDISTILL_EXACT_KERNELS",))], RAY,
                              progress=False, desc="env")
    assert not errors and results == {"a": "torch"}


def test_package_settings_for_the_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path goes absolute (a worker runs in its node's directory); without a shared
    filesystem paths stay behind (the nodes have their own); a key a submitted Ray Job sets
    is left to it (Ray refuses the same key twice: "cannot join the Ray cluster")."""
    import json
    import os

    from vmafdistill.corpus.executor import _package_env

    for key in [k for k in os.environ if k.startswith("VMAFDISTILL_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myconf").mkdir()
    monkeypatch.setenv("VMAFDISTILL_CONF", "myconf")
    monkeypatch.setenv("VMAFDISTILL_EXACT_KERNELS", "torch")
    assert _package_env() == {"VMAFDISTILL_CONF": str(tmp_path / "myconf"),
                              "VMAFDISTILL_EXACT_KERNELS": "torch"}
    assert _package_env(shared_fs=False) == {"VMAFDISTILL_EXACT_KERNELS": "torch"}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(
        {"runtime_env": {"env_vars": {"VMAFDISTILL_EXACT_KERNELS": "torch"}}}))
    assert _package_env() == {"VMAFDISTILL_CONF": str(tmp_path / "myconf")}
    # a word that names a folder here stayed a word (every job refused "/abs/torch"); the
    # ffmpeg binary goes on without a shared filesystem (a node's own ffmpeg filed its
    # encodes under another key and labelled them unsaid)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR")
    (tmp_path / "torch").mkdir()
    monkeypatch.setenv("VMAFDISTILL_FFMPEG", "bin/ffmpeg")
    assert _package_env(shared_fs=False) == {"VMAFDISTILL_EXACT_KERNELS": "torch",
                                             "VMAFDISTILL_FFMPEG": str(tmp_path / "bin" /
                                                                       "ffmpeg")}


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_sigterm_stops_a_ray_build_with_143() -> None:
    """A SIGTERM (timeout, SLURM) ended a Ray build with exit 1 after Ray's own handler (a
    signal handler's exception inside ray.wait becomes Ray's SystemExit(1)); now 143, as the
    local pool, with the queued jobs cancelled. The signal is sent once the first result is
    in, when the build's handler is set. The process's handlers are put back afterwards."""
    import os
    import signal

    from vmafdistill.corpus.executor import run_ray

    tasks = [("fast", (0.0,)), *[(f"slow{i}", (60.0,)) for i in range(3)]]
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    started = time.perf_counter()
    with pytest.raises(SystemExit) as stopped:
        run_ray(_sleep, tasks, RAY, progress=False, desc="term",
                on_result=lambda name, _r: os.kill(os.getpid(), signal.SIGTERM))
    assert stopped.value.code == 143
    assert time.perf_counter() - started < 50  # the slow jobs were not waited for
    # Ray's own SIGTERM handler (exit 1) was left installed after ray.shutdown: a later
    # local-pool build in the process then died with 1
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_host_port_nothing_answers_at_is_named_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``executor.address=127.0.0.1:9`` (no ``ray://``) retried for over 10 minutes, and
    ``auto`` did the same when a killed head had left its address behind."""
    from vmafdistill.corpus.executor import run_ray

    t0 = time.perf_counter()
    with pytest.raises(VmafDistillError, match=r"'127\.0\.0\.1:9': nothing answers at "
                                               r"127\.0\.0\.1:9"):
        run_ray(_die_once, [("a", ("x", 0))], {**RAY, "address": "127.0.0.1:9"},
                progress=False, desc="x")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    with pytest.raises(VmafDistillError, match=r"'auto': nothing answers at 127\.0\.0\.1:9"):
        run_ray(_die_once, [("a", ("x", 0))], {**RAY, "address": "auto"},
                progress=False, desc="x")
    assert time.perf_counter() - t0 < 60


def test_an_address_that_answers_in_another_protocol_is_named_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard's port (8265, an HTTP server) given as the cluster's address hung
    ``ray.init`` for about 14 minutes before its error; ``RAY_ADDRESS=http://host:8265`` (the
    job-submission form) was named as "nothing answers at http://...". A gRPC server, as a
    Ray head's GCS is, passes (a real head's passed in 3 ms when this was written)."""
    import http.server
    import threading
    from concurrent import futures

    import grpc

    from vmafdistill.corpus.executor import _check_reachable

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_a: object) -> None:
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    gcs = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    gcs_port = gcs.add_insecure_port("127.0.0.1:0")
    gcs.start()
    try:
        t0 = time.perf_counter()
        web_address = f"127.0.0.1:{web.server_address[1]}"
        with pytest.raises(VmafDistillError, match=rf"something answers at {web_address}, "
                                                   r".*not as a Ray cluster's head"):
            _check_reachable(web_address)
        assert time.perf_counter() - t0 < 60  # guard against the hang, not a speed claim
        _check_reachable(f"127.0.0.1:{gcs_port}")
        monkeypatch.setenv("RAY_USE_TLS", "1")  # a TLS head would answer with an alert:
        _check_reachable(web_address)  # not probed, as before
    finally:
        web.shutdown()
        gcs.stop(None)
    monkeypatch.delenv("RAY_USE_TLS")
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    with pytest.raises(VmafDistillError, match=r"'auto': http://127\.0\.0\.1:8265 is a "
                                               r"dashboard's job-submission address \(from "
                                               r"RAY_ADDRESS\)"):
        _check_reachable("auto")


def test_auto_reads_the_address_file_ray_itself_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` read /tmp/ray/ray_current_cluster whatever RAY_TMPDIR (or TMPDIR) said: a
    stale file there refused a live cluster Ray itself joined."""
    from vmafdistill.corpus.executor import _check_reachable

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    from ray._private.utils import get_ray_address_file

    where = Path(get_ray_address_file(None))
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text("127.0.0.1:9\n")
    with pytest.raises(VmafDistillError, match=r"'auto': nothing answers at 127\.0\.0\.1:9"):
        _check_reachable("auto")


def test_auto_with_no_cluster_is_refused_before_any_source(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` with no cluster found was passed on, and ray.init said so only after every
    source was hashed and cut (minutes on an hour of footage), where the docs promise "before
    any source is read"."""
    from vmafdistill.corpus.executor import _check_reachable

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # no address file, no head found
    import ray._private.services as services

    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [], raising=False)
    with pytest.raises(VmafDistillError, match=r"'auto': no running Ray cluster found"):
        _check_reachable("auto")
    # a session this process opened (ray.init("ray://...") in a notebook) is the build's
    import sys
    import types

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: True))
    _check_reachable("auto")


def test_auto_joins_a_running_head_before_a_stale_address_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` refused a live head found on this machine (as ``ray.init`` finds one) when a
    stale address file named another port: Ray would have joined the head."""
    import socket

    from ray._private import services

    from vmafdistill.corpus.executor import _check_reachable

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    from ray._private.utils import get_ray_address_file

    where = Path(get_ray_address_file(None))
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text("127.0.0.1:9\n")
    with socket.socket() as head:  # a "head" that answers
        head.bind(("127.0.0.1", 0))
        head.listen()
        live = f"127.0.0.1:{head.getsockname()[1]}"
        monkeypatch.setattr(services, "find_gcs_addresses", lambda: [live])
        _check_reachable("auto")  # joins the running head, as Ray does
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])
    with pytest.raises(VmafDistillError, match=r"'auto': nothing answers at 127\.0\.0\.1:9"):
        _check_reachable("auto")


def test_two_nodes_on_one_machine_are_two_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The end-of-run line keyed nodes by address: a head and a worker on one machine were
    reported as one node."""
    import ray

    from vmafdistill.corpus.executor import _nodes_line

    nodes = [{"NodeID": "a", "NodeManagerAddress": "10.0.0.5", "Alive": True,
              "Resources": {"CPU": 1.0}},
             {"NodeID": "b", "NodeManagerAddress": "10.0.0.5", "Alive": True,
              "Resources": {"CPU": 2.0}},
             {"NodeID": "c", "NodeManagerAddress": "10.0.0.6", "Alive": False}]
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    assert _nodes_line() == "2 node(s): 10.0.0.5 (1 CPUs), 10.0.0.5 (2 CPUs)"


def test_the_address_and_the_driver_s_gpu_are_checked_as_a_cluster_needs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An address nothing answers at was named only after every source had been prepared;
    a CPU-only driver refused teacher.device=cuda for jobs that ask Ray for a GPU (they run
    on a node that has one)."""
    import torch

    from vmafdistill.corpus.build import check_build_settings

    base = {"teacher": {"backend": "torch", "device": "cpu"}, "shots": {},
            "cache_root": "/tmp/x", "out_dir": "/tmp/x"}
    for shared in (True, None):  # null is true, as everywhere the executor reads it (one
        # place took it for false and sent driver-only paths to the nodes)
        with pytest.raises(VmafDistillError, match=r"'127\.0\.0\.1:9': nothing answers"):
            check_build_settings({**base, "executor": {**RAY, "address": "127.0.0.1:9",
                                                       "shared_fs": shared}})
    # without a shared filesystem a rebuild from the driver's cache needs no cluster: the
    # address is checked when the build connects
    check_build_settings({**base, "executor": {**RAY, "address": "127.0.0.1:9",
                                               "shared_fs": False}})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cluster = {**RAY, "address": "auto", "shared_fs": False, "num_gpus_per_job": 0.25}
    for device, gpus in (("cuda", 0.25), ("cuda:0", 0.25), ("cpu", 0.25), ("cuda:1", 2)):
        check_build_settings({**base, "teacher": {"backend": "torch", "device": device},
                              "executor": {**cluster, "num_gpus_per_job": gpus}})
    for device, msg in (("cdua", "cdua"), ("cuda:1", r"sees cuda:0;"), ("meta", "sees")):
        with pytest.raises(VmafDistillError, match=rf"teacher\.device='{device}': .*{msg}"):
            check_build_settings({**base, "teacher": {"backend": "torch", "device": device},
                                  "executor": cluster})
    # a local runtime is no different: Ray shows each job only its own GPU (cuda:1 on a
    # two-GPU machine passed the driver's check and failed every job)
    with pytest.raises(VmafDistillError, match=r"sees cuda:0;"):
        check_build_settings({**base, "teacher": {"backend": "torch", "device": "cuda:1"},
                              "executor": {**RAY, "num_gpus_per_job": 0.25}})
    cuda = {**base, "teacher": {"backend": "torch", "device": "cuda"}}
    # a local runtime (this machine's GPUs), no GPU asked for, or the local pool: checked here
    for executor in ({**RAY, "num_gpus_per_job": 0.25}, {"name": "local"}):
        with pytest.raises(VmafDistillError, match="no CUDA device"):
            check_build_settings({**cuda, "executor": executor})
    # no GPU asked of Ray: a job may run where there is none (older Ray hid every GPU); more
    # than one GPU in a fraction: Ray refused it at the first submit, after the sources
    for gpus, msg in ((0, "set executor.num_gpus_per_job"), (1.5, "whole numbers only")):
        with pytest.raises(VmafDistillError, match=msg):
            check_build_settings({**cuda, "executor": {**cluster, "num_gpus_per_job": gpus}})
    libvmaf = {**base, "teacher": {"backend": "libvmaf"}}  # Ray refuses 1.5 whatever the backend
    with pytest.raises(VmafDistillError, match="whole numbers only"):
        check_build_settings({**libvmaf, "executor": {**cluster, "num_gpus_per_job": 1.5}})
    # a misspelt device is named as such, not blamed on the GPU count
    with pytest.raises(VmafDistillError, match="--device 'Cuda'"):
        check_build_settings({**base, "teacher": {"backend": "torch", "device": "Cuda"},
                              "executor": {**cluster, "num_gpus_per_job": 0}})


def test_a_signal_while_the_runtime_starts_exits_as_the_build_does() -> None:
    """SIGTERM inside ray.init met Ray's own handler: exit 15 (docs: 143), agents left."""
    import signal
    import types

    from vmafdistill.corpus.executor import _init

    calls: list[str] = []

    def init(**opts: object) -> None:
        raise SystemExit(signal.SIGTERM)  # what Ray's handler does

    fake = types.SimpleNamespace(init=init, shutdown=lambda: calls.append("shutdown"))
    with pytest.raises(SystemExit) as ended:
        _init(fake, address="local")
    assert ended.value.code == 143 and calls == ["shutdown"]


def test_a_job_no_node_can_run_is_an_error_not_a_wait(tmp_path: Path) -> None:
    """A GPU fraction per job on a cluster without GPUs waited for ever, printing nothing."""
    from vmafdistill.corpus.executor import run_ray

    with pytest.raises(VmafDistillError, match=r"asks for 1 CPU\(s\) and 0\.25 GPU\(s\).*"
                                               r"no node of the Ray cluster has that"):
        run_ray(_die_once, [("a", (str(tmp_path / "m"), 0))],
                {**RAY, "num_gpus_per_job": 0.25}, progress=False, desc="x")


def test_without_ray_installed_the_error_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from vmafdistill.corpus.executor import run_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(VmafDistillError, match=r"pip install 'vmafdistill\[ray\]'"):
        run_ray(_die_once, [("a", ("x", 0))], RAY, progress=False, desc="x")


def test_ray_jobs_get_absolute_paths() -> None:
    """A Ray worker runs in its node's directory (the head's, for address=auto): relative
    source paths and caches named the head's files (every job failed, or the artefacts landed
    in the head's directory)."""
    from vmafdistill.corpus.build import _absolute_paths
    from vmafdistill.corpus.cache import ArtifactStore

    tasks = [("s:r", ({"path": "src/a.mp4", "sha256": "1"}, None, 0, {}, {},
                      ArtifactStore(".cache/corpus_cache")))]
    ((_, (source, *_rest, store)),) = _absolute_paths(tasks)
    assert source["path"] == str(Path.cwd() / "src" / "a.mp4")
    assert store.root == Path.cwd() / ".cache" / "corpus_cache"
    assert tasks[0][1][0]["path"] == "src/a.mp4"  # the tables keep the path as given


# Last in this file: a failed Ray Client connection leaves this process unable to start a local
# runtime again (ray.init then fails an internal assertion), so no Ray test may follow it.
def _shipped_size(data: bytes, tag: str) -> int:
    """A job taking a shipped file's bytes."""
    return len(data)


def test_detached_jobs_ship_sources_one_at_a_time_and_check_node_copies(
        tmp_path: Path) -> None:
    """shared_fs=false: every source's bytes were held by the driver at once (twice over), a
    source changed mid-build stopped the whole build, and a node's copy was trusted on its
    size (a damaged copy was labelled and filed under the true source's keys)."""
    import hashlib

    from vmafdistill.corpus import detached
    from vmafdistill.corpus.executor import ShippedFile, run_ray

    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"a" * 1000)
    b.write_bytes(b"b" * 1000)
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b)}
    tasks = [(f"{p.stem}:{k}", ({"source_id": p.stem, "path": str(p), "sha256": sha[p]},
                                f"rung{k}", k, {}, {}, None)) for p in (a, b) for k in (0, 1)]
    shipped = detached.detached_tasks(tasks, str(tmp_path / "node"))
    assert all(isinstance(args[0], ShippedFile) for _, args in shipped)  # no bytes held
    b.write_bytes(b"c" * 1000)  # changed after it was hashed: its jobs fail, a's run
    jobs = [(name, (args[0], name)) for name, args in shipped]
    results, errors = run_ray(_shipped_size, jobs, RAY, progress=False, desc="x")
    assert results == {"a:0": 1000, "a:1": 1000}
    assert sorted(errors) == ["b:0", "b:1"] and "b.mp4 changed during the build" in errors["b:0"]
    # fail_fast: the first unreadable source ends the submission (every other source was
    # read, shipped and its jobs submitted, then killed)
    results, errors = run_ray(_shipped_size, jobs[2:] + jobs[:2], RAY, progress=False,
                              desc="x", stop_on_error=True)
    assert (results, list(errors)) == ({}, ["b:0"])
    # a copy of a's bytes under another name is shipped on its own when a is gone
    twin = tmp_path / "twin.mp4"
    twin.write_bytes(a.read_bytes())
    a.unlink()
    pair = [("a:0", (ShippedFile(str(a), sha[a]), "a")),
            ("twin:0", (ShippedFile(str(twin), sha[a]), "twin"))]
    results, errors = run_ray(_shipped_size, pair, RAY, progress=False, desc="x")
    assert results == {"twin:0": 1000} and "a.mp4: cannot be read" in errors["a:0"]
    # a node copy of the right size but other bytes is not the source
    copy = tmp_path / "node" / "copy.mp4"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"a" * 1000)
    assert detached._holds(copy, sha[a])
    copy.write_bytes(b"a" * 999 + b"!")
    os.utime(copy, ns=(1, 1))  # another file state (a write in the same clock tick keeps it)
    assert not detached._holds(copy, sha[a])


def _warns(value: int) -> int:
    """A job that warns, as a job finding a damaged cached encode does."""
    import warnings

    warnings.warn(f"job {value}: the cached encode is damaged; encoding it again", stacklevel=1)
    return value


def test_a_jobs_warnings_reach_the_driver() -> None:
    """Warnings raised inside Ray jobs were dropped (the workers' output stays on the
    workers); local jobs print them."""
    from vmafdistill.corpus.executor import run_ray

    with pytest.warns(UserWarning, match=r"job 7: the cached encode is damaged"):
        results, errors = run_ray(_warns, [("a", (7,))], RAY, progress=False, desc="x")
    assert results == {"a": 7} and not errors
    import warnings

    filed: list[str] = []
    with warnings.catch_warnings():  # a driver that turns warnings into errors keeps the result
        warnings.simplefilter("error")
        results, _ = run_ray(_warns, [("b", (8,))], RAY, progress=False, desc="x",
                             on_result=lambda name, r: filed.append(name))
    assert results == {"b": 8} and filed == ["b"]


def test_a_node_that_does_not_see_the_drivers_cache_is_named(tmp_path: Path) -> None:
    """With shared_fs, a node with a folder of its own at the cache's path labelled there:
    the build read as complete while its labels never reached the driver's cache (a rerun
    redid them, unsaid). A job checks it sees a file the driver wrote there; the file is
    gone after the build."""
    from vmafdistill.corpus.build import _shared_fs_marker
    from vmafdistill.corpus.jobs import run_rung_on_shared_fs

    with _shared_fs_marker(tmp_path / "cache") as marker:
        assert marker.is_file() and marker.parent == tmp_path / "cache"
        with pytest.raises(VmafDistillError, match=r"does not see the driver's cache .*"
                                                   r"executor\.shared_fs=false"):
            run_rung_on_shared_fs(str(tmp_path / "elsewhere" / marker.name))
    assert not marker.exists()
    # no jobs, or a read-only cache (an all-cached rebuild only reads it): no check, no file
    with _shared_fs_marker(tmp_path / "cache", wanted=False) as marker:
        assert marker is None
    import errno

    def read_only(*_a: object, **_k: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "write_text", read_only)
        with _shared_fs_marker(tmp_path / "cache") as marker:
            assert marker is None
    assert not list((tmp_path / "cache").iterdir())


def test_a_killed_drivers_marker_is_removed_by_the_next_build(tmp_path: Path) -> None:
    """A driver killed with SIGKILL (or SIGHUP: no ``finally`` runs) left its ``.driver-*``
    marker in the shared cache for good. The next build removes markers of this machine's
    drivers that are gone, and leaves a live driver's and another machine's. "This machine"
    is the host, its boot and this pid namespace (a review: a driver in a container sharing
    the host's name, whose pids are its own, read as dead from outside and lost its marker
    mid-build)."""
    import socket
    import subprocess
    import sys

    from vmafdistill.corpus.build import _process_place, _shared_fs_marker

    cache = tmp_path / "cache"
    cache.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    here = _process_place()
    assert here.startswith(socket.gethostname()) and here.count("/") == 2  # boot, namespace
    (cache / ".driver-dead").write_text(f"{here} {dead}\n")
    (cache / ".driver-live").write_text(f"{here} {os.getpid()}\n")
    (cache / ".driver-other").write_text(f"elsewhere-{here} {dead}\n")
    # the same host name in another pid namespace (a container): its pid means nothing here
    (cache / ".driver-container").write_text(f"{here.rsplit('/', 1)[0]}/1 {dead}\n")
    (cache / ".driver-old").write_text(f"{socket.gethostname()} {dead}\n")  # no place: kept
    with _shared_fs_marker(cache) as marker:
        left = sorted(p.name for p in cache.iterdir())
    assert left == sorted([".driver-live", ".driver-other", ".driver-container", ".driver-old",
                           marker.name])


# Last in this file: a failed ray:// join leaves Ray's client state in the process, and a
# local runtime started after it (and after earlier ones) timed out at startup in CI.
def test_an_unreachable_cluster_is_named(sources, tmp_path: Path) -> None:
    cfg = make_cfg([sources["cuts"]], tmp_path / "out", tmp_path / "cache",
                   executor={**RAY, "address": "ray://127.0.0.1:9"})
    t0 = time.perf_counter()
    with pytest.raises(VmafDistillError, match=r"executor\.address='ray://127\.0\.0\.1:9'"):
        build_corpus(cfg)
    assert time.perf_counter() - t0 < 600  # guard against a hang, not a speed claim
