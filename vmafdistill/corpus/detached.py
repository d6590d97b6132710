"""Rung jobs on nodes that share no filesystem with the driver (``executor.shared_fs=false``).

With a shared cache (one machine, or ``paths.cache_dir`` on NFS) a job reads its source and
writes its artefacts where the driver finds them. Without one, :func:`detached_tasks` turns each
(source, rung) job into one that carries the source's bytes (Ray's object store holds one copy
per source) and works in a node-local cache (``executor.node_cache_dir``); the job returns its
encode's bytes and its label and feature arrays, and :func:`file_artefacts` writes them into the
driver's cache under the same content-addressed names. The driver's cache then holds everything a
shared one would (a rerun runs the jobs it holds on the driver, from cache; ``train``'s corpus
step and the edge evaluation find it), and the tables are the same whichever way the jobs ran.

The artefacts are filed as each job returns (a driver killed mid-build keeps what finished;
the nodes' caches keep theirs too). The driver reads one source at a time into Ray's object
store, which holds them while their jobs run (spilling to disk past its memory). The nodes
must run the same ffmpeg as the driver (the encode's cache key names it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..encode import Rung
from ..errors import VmafDistillError
from ..features.frame_numpy import FEATURE_NAMES
from ..folders import atomic_write_bytes
from ..vmaf_names import FRAME_METRICS
from .cache import ArtifactStore, file_sha256, record_sha256, recorded_sha256
from .jobs import encode_path, run_rung

__all__ = ["detached_tasks", "file_artefacts", "run_rung_detached"]

Task = tuple[str, tuple[Any, ...]]


def run_rung_detached(
    source_bytes: bytes, source: dict[str, Any], rung: Rung, rung_index: int,
    teacher_cfg: dict[str, Any], encode_cfg: dict[str, Any], node_cache: str,
) -> dict[str, Any]:
    """:func:`~vmafdistill.corpus.jobs.run_rung` on a node of its own: the source is written
    from ``source_bytes`` into ``node_cache`` (once per node), the artefacts stay there, and the
    result carries ``artefacts`` (the encode's bytes and its cache-relative path)."""
    store = ArtifactStore(node_cache)
    local = store.root / "sources" / f"{source['sha256']}{Path(source['path']).suffix}"
    if not _holds(local, source["sha256"]):
        local.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(local, source_bytes)  # synced: no zero-filled copy
    here = {**source, "path": str(local), "file_identity": None}  # bytes checked when shipped
    try:
        result = run_rung(here, rung, rung_index, teacher_cfg, encode_cfg, store)
    except VmafDistillError as exc:  # named as the user's file, as a local job names it
        exc.args = tuple(str(a).replace(str(local), str(source["path"])).replace(
            local.name, Path(source["path"]).name) for a in exc.args)
        raise
    enc = encode_path(here, rung, encode_cfg, store)
    result["artefacts"] = {"encode": enc.read_bytes(),
                           "encode_relpath": str(enc.relative_to(store.root))}
    return result


#: Node copies whose bytes this worker process has checked: (path, size, mtime_ns) -> sha256.
_CHECKED: dict[tuple[str, int, int], str] = {}


def _holds(local: Path, sha256: str) -> bool:
    """Whether the node's copy ``local`` holds the source's bytes, checked by hash once per
    worker process and file state (by size alone, a damaged copy of the same size was
    labelled, and its labels filed in the driver's cache under the true source's keys)."""
    try:
        st = local.stat()
    except OSError:
        return False
    key = (str(local), st.st_size, st.st_mtime_ns)
    if key not in _CHECKED:
        _CHECKED[key] = file_sha256(local)
    return _CHECKED[key] == sha256


def detached_tasks(tasks: list[Task], node_cache: str) -> list[Task]:
    """``run_rung`` tasks ``(name, (source, rung, i, teacher, encode, store))`` rewritten for
    :func:`run_rung_detached`, each source as a :class:`~.executor.ShippedFile`: read, checked
    against its hash and shipped once, at submission (a source changed since it was hashed
    fails its own jobs there)."""
    from .executor import ShippedFile

    return [(name, (ShippedFile(str(source["path"]), source["sha256"]), source, rung, i,
                    teacher_cfg, encode_cfg, node_cache))
            for name, (source, rung, i, teacher_cfg, encode_cfg, _store) in tasks]


def file_artefacts(store: ArtifactStore, results: dict[str, Any]) -> int:
    """Write the encodes, labels and features detached jobs returned into ``store`` where it
    lacks them, and drop the bytes from the results; the number of artefacts written."""
    written = 0
    for r in results.values():
        art = r.pop("artefacts", None)
        if art is None:
            continue
        enc = store.root / art["encode_relpath"]
        shipped = hashlib.sha256(art["encode"]).hexdigest()
        # a damaged copy here (its job was sent out because of it) is replaced, or it would
        # stay beside labels filed under the good encode's digest
        if not enc.is_file() or recorded_sha256(enc) != shipped or file_sha256(enc) != shipped:
            enc.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(enc, art["encode"])
            record_sha256(enc, shipped)
            written += 1
        keys = r.get("cache_keys") or {}
        for kind, names in (("labels", FRAME_METRICS), ("features", FEATURE_NAMES)):
            key = keys.get(kind)
            if key and store.get_arrays(kind, key) is None:
                store.put_arrays(kind, key, {n: r["frames"][n] for n in names})
                written += 1
    return written
