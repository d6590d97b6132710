"""Content-addressed artefact cache: every artefact is named by a hash of everything it depends on.

A key is the sha256 of a canonical JSON of its inputs (content hashes of files, rung, tool and
definition versions), so changing any input makes a new key instead of silently reusing stale
work, and identical work done by two corpora or two shards is shared. Artefacts are written to a
temporary name and renamed into place, so a killed build never leaves a file that reads back
as valid; unfinished temporaries are ignored, and a build removes those older than an hour
(younger ones may belong to a build still running on the same cache, here or on another host).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VmafDistillError
from ..folders import file_sha256 as file_sha256  # re-export: the cache's file hash
from .tables import atomic_write_bytes, atomic_write_json


def sum_path(path: str | os.PathLike[str]) -> Path:
    """Where ``path``'s recorded sha256 lives: beside it, as ``<name>.sha256``."""
    p = Path(path)
    return p.with_name(p.name + ".sha256")


def record_sha256(path: str | os.PathLike[str], sha: str) -> None:
    """Record ``sha`` as ``path``'s digest (atomically), for :func:`recorded_sha256`."""
    atomic_write_bytes(sum_path(path), (sha + "\n").encode())


def recorded_sha256(path: str | os.PathLike[str]) -> str | None:
    """The digest recorded for ``path``, or None (none recorded, or the record unreadable).

    A cached encode damaged on disk (a flipped bit) still decodes whole, to other pictures:
    only its recorded digest tells it from the encode its labels were computed on."""
    try:
        text = sum_path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if re.fullmatch(r"[0-9a-f]{64}", text) else None


def file_identity(path: str | os.PathLike[str]) -> list[Any]:
    """``[host, size, mtime_ns, inode]`` of ``path``: changes when the file is rewritten or
    replaced (a copy renamed over it), which a build checks its sources against while it reads
    them. Comparable on one host only (another mount of a shared filesystem may report other
    inodes or mtime resolution)."""
    st = os.stat(path)
    return [socket.gethostname(), st.st_size, st.st_mtime_ns, st.st_ino]


def key_of(**inputs: Any) -> str:
    """A 20-hex-digit key for a JSON-serialisable description of an artefact's inputs."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class ArtifactStore:
    """Artefacts under ``root/<kind>/<key>.<ext>``; writes are atomic, reads verify integrity."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str, ext: str) -> Path:
        """Where artefact ``kind/key.ext`` lives (it may not exist yet)."""
        return self.root / kind / f"{key}.{ext}"

    # JSON ------------------------------------------------------------------------------------
    def get_json(self, kind: str, key: str) -> Any | None:
        """A stored JSON artefact, or None when absent. A corrupt one is deleted (recomputed)."""
        path = self.path(kind, key, "json")
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            path.unlink(missing_ok=True)
            return None

    def put_json(self, kind: str, key: str, obj: Any) -> Path:
        """Store a JSON artefact atomically."""
        path = self.path(kind, key, "json")
        atomic_write_json(path, obj)
        return path

    # Arrays ----------------------------------------------------------------------------------
    def get_arrays(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        """A stored ``.npz`` artefact as a dict, or None when absent or unreadable."""
        path = self.path(kind, key, "npz")
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except Exception:  # a truncated zip raises several exception types
            path.unlink(missing_ok=True)
            return None

    def has_arrays(self, kind: str, key: str) -> bool:
        """Whether a stored ``.npz`` artefact is there and its zip directory reads (a
        truncated file's does not), without reading its arrays or removing it."""
        path = self.path(kind, key, "npz")
        if not path.is_file():
            return False
        try:
            with np.load(path, allow_pickle=False) as data:
                return bool(data.files)
        except Exception:  # a truncated zip raises several exception types
            return False

    def put_arrays(self, kind: str, key: str, arrays: dict[str, np.ndarray]) -> Path:
        """Store named arrays atomically (uncompressed ``.npz``)."""
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path = self.path(kind, key, "npz")
        atomic_write_bytes(path, buf.getvalue())
        return path


def require_equal_frames(where: str, **counts: int) -> int:
    """All frame counts equal, else an error naming each count (nothing is truncated)."""
    values = set(counts.values())
    if len(values) != 1:
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        raise VmafDistillError(f"{where}: frame counts differ ({detail}); refusing to misalign")
    return values.pop()
