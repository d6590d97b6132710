"""Exceptions with messages a user can act on: each names the file and the problem."""

from __future__ import annotations


class VmafDistillError(Exception):
    """Base class of every error this package raises on purpose."""


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
