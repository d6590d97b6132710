"""Output files a command writes: checked before the work that fills them, so a wrong path
costs nothing and an input is never overwritten."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import VmafDistillError

__all__ = ["check_output_target"]


def check_output_target(option: str, target: str | None, inputs: Sequence[str | os.PathLike],
                        *, starts: bytes) -> str | None:
    """``target`` of ``option`` (None: not asked for; ``-``: stdout) once it is known to be
    writable and neither one of the ``inputs`` nor an existing file that does not start with
    ``starts`` (what this command writes there: a video given by mistake, ``--json a.mp4
    b.mp4``, is not replaced). Raises VmafDistillError naming the option and the problem."""
    if not target or target == "-":
        return target
    path = Path(target)
    if path.is_dir():
        raise VmafDistillError(f"{option} {target}: is a directory, not a file to write")
    if not path.resolve().parent.is_dir():
        raise VmafDistillError(f"{option} {target}: its directory does not exist")
    if not os.access(path.resolve().parent, os.W_OK):
        raise VmafDistillError(f"{option} {target}: its directory is not writable")
    if path.is_file():
        for given in inputs:
            with contextlib.suppress(OSError):
                if os.path.samefile(path, given):
                    raise VmafDistillError(
                        f"{option} {target}: is an input ({given}), not a file to write the "
                        f"results to ({option} takes the output file)")
        with contextlib.suppress(OSError), path.open("rb") as fh:
            head = fh.read(64).lstrip()
            if head and not head.startswith(starts):  # an earlier run's output starts so
                raise VmafDistillError(
                    f"{option} {target}: exists and is not this command's output (a video?); "
                    f"it is not replaced ({option} takes the output file)")
    return target
