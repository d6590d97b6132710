"""Exceptions with messages a user can act on: each names the file and the problem."""

from __future__ import annotations


class VmafDistillError(Exception):
    """Base class of every error this package raises on purpose.

    ``transient``: set on an error a retry elsewhere may not meet (a tool killed by a signal,
    a full disk); see :func:`is_transient`."""

    transient: bool = False


#: OSErrors a retry meets again: the file is missing, unreadable or of the wrong kind.
_LASTING_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may not recur on a retry: it, or an exception it was raised from or
    while handling, is marked ``transient`` or is an ``OSError`` other than a missing,
    forbidden or wrong-kind file (a failed fork, a stale NFS handle, an I/O error). Anything
    else this package raises is its input's own problem."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if getattr(link, "transient", False) or (
                isinstance(link, OSError) and not isinstance(link, _LASTING_OS_ERRORS)):
            return True
        link = link.__cause__ or link.__context__
    return False


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
