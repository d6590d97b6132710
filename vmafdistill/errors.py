"""Exceptions with messages a user can act on: each names the file and the problem."""

from __future__ import annotations

import errno
import signal


class VmafDistillError(Exception):
    """Base class of every error this package raises on purpose.

    ``transient``: set on an error a retry elsewhere may not meet (a tool killed by a signal,
    a full disk); see :func:`is_transient`."""

    transient: bool = False


#: OSErrors a retry (or another node) may not meet: a busy or interrupted call, a failed
#: fork, a timeout, a lost connection, an I/O error, a full disk or quota, no memory, a stale
#: NFS handle, too many open files. A missing, forbidden or unrunnable file is lasting.
_TRANSIENT_OS_ERRORS = (BlockingIOError, InterruptedError, ChildProcessError, TimeoutError,
                        ConnectionError)
_TRANSIENT_ERRNOS = frozenset(getattr(errno, name) for name in (
    "EIO", "ENOSPC", "EDQUOT", "ENOMEM", "ESTALE", "EMFILE", "ENFILE", "EAGAIN")
    if hasattr(errno, name))


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may not recur on a retry: it, or an exception it was raised from or
    while handling, is marked ``transient`` (a tool killed from outside, e.g. by the OOM
    killer) or is such an ``OSError`` (:data:`_TRANSIENT_OS_ERRORS`, or its errno one of
    :data:`_TRANSIENT_ERRNOS`). Anything else this package raises is its input's own."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if getattr(link, "transient", False) or isinstance(link, _TRANSIENT_OS_ERRORS) or (
                isinstance(link, OSError) and link.errno in _TRANSIENT_ERRNOS):
            return True
        link = link.__cause__ or link.__context__
    return False


def killed_from_outside(returncode: int) -> bool:
    """Whether a tool's exit code is a kill from outside (SIGKILL: the OOM killer; SIGTERM: a
    scheduler), which another try may not meet; a crash (SIGSEGV, SIGABRT) on a malformed
    file is the file's own."""
    return returncode in (-signal.SIGKILL, -signal.SIGTERM)


class VideoInputError(VmafDistillError):
    """A video file is missing, undecodable, or inconsistent with what the caller asked for."""


class FrameMismatchError(VideoInputError):
    """Reference and distorted videos differ in frame count or frame size."""


class ModelError(VmafDistillError):
    """A VMAF model name is unknown or a model file is malformed."""


class ToolError(VmafDistillError):
    """An external tool (ffmpeg) is missing or failed."""


class DecodeWarning(UserWarning):
    """The decoder logged errors but produced frames (e.g. concealed corruption in a damaged
    file): the frames are usable, and fewer than the file held may have decoded."""
