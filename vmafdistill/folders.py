"""Folders: walking one of footage (what `corpus`, for a folder corpus, and `predict`, for a
folder argument, both read) and making one a command writes into. Standard library only (the
torch-free edge uses it)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path

from .errors import VmafDistillError


def make_folder(option: str, folder: Path) -> None:
    """``folder`` made (parents too), or one error naming ``option`` and the problem: an
    existing file, a path through one, a folder that cannot be made (each was a traceback,
    for ``sources --out`` and ``evaluate --cache``)."""
    if folder.exists() and not folder.is_dir():
        raise VmafDistillError(f"{option} {folder}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VmafDistillError(f"{option} {folder}: cannot make the folder "
                               f"({exc.strerror or exc})") from None


def walk_files(root: Path, skip_dirs: Sequence[Path] = (),
               exclude: Sequence[str] = ()) -> tuple[list[Path], list[Path]]:
    """``(files, broken)`` under ``root``, both sorted: the files (through links), and the
    links that point nowhere. Links to folders outside ``root`` are followed, each real folder
    once; a folder inside is reached by its own path, so a link to an ancestor does not loop.
    Footage is often linked in from other disks: ``Path.rglob`` on Python 3.11 did not enter
    folder links, and skipped a dangling link without a word.

    Hidden files and folders are left out (editors' and OS metadata, macOS's ``._name.mp4``,
    the ``.<name>.partial.mp4`` a killed `vmafdistill sources` leaves), as is anything under
    ``skip_dirs`` or matching an ``exclude`` glob relative to ``root`` (a glob that matches a
    folder leaves out everything in it).
    """
    skip = [d.resolve() for d in skip_dirs]

    def skipped(path: Path) -> bool:
        rel = path.relative_to(root)
        if any(rel.match(p) or fnmatch.fnmatch(rel.as_posix(), p) for p in exclude):
            return True
        return bool(skip) and any(path.resolve().is_relative_to(d) for d in skip)

    files: list[Path] = []
    broken: list[Path] = []
    real_root = root.resolve()
    seen = {real_root}
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(folder)
        kept = []
        for name in sorted(dirnames):
            real = (here / name).resolve()
            # a link to a folder inside the root: that folder is reached by its own path (a
            # convenience link that sorted first renamed the footage under it)
            inside = (here / name).is_symlink() and real.is_relative_to(real_root)
            if name.startswith(".") or inside or real in seen or skipped(here / name):
                continue
            seen.add(real)
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            path = here / name
            if name.startswith(".") or skipped(path):
                continue
            if path.is_file():
                files.append(path)
            elif path.is_symlink():
                broken.append(path)
    return sorted(files), sorted(broken)
