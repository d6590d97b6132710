"""Reading ffmpeg's ``-loglevel level+info`` decode logs: error lines about the input, and the
notice that the pictures changed format or size mid-stream (shared by the teacher's reader and
the edge chain)."""

from __future__ import annotations

import re

__all__ = ["decoder_errors", "picture_reconfigurations"]

# ffmpeg's notice (info level) that the decoded pictures changed format or size mid-stream; the
# frames are then scaled to the first picture's format and size before the pipe.
_RECONFIGURED = re.compile(
    r"Reconfiguring filter graph because video parameters changed to (\w+)[^,]*(?:\([^)]*\))?"
    r", (\d+)x(\d+)")
_LEVEL_ERROR = re.compile(r"\[(?:error|fatal|panic)\] ")
# Messages of our own output side (the raw pipe's encoder and muxer, the output file): e.g.
# "non monotonically increasing dts to muxer" when joined files' timestamps overlap. They say
# nothing about the decoded pictures, so they are not decoder errors.
_OUTPUT_SIDE = re.compile(r"^\[(?:rawvideo @|out#|vost#|enc:)")


# ffmpeg names a log context by its address ("[h264 @ 0x55d0...]"): different in every run.
_CONTEXT_ADDRESS = re.compile(r" @ (?:0x)?[0-9a-fA-F]+\]")  # %p: no 0x on some C runtimes


def decoder_errors(stderr: str) -> list[str]:
    """The error-level lines of a ``-loglevel level+info`` decode log that concern the input
    (demuxer, decoder, filters), level tag and context addresses removed (the same damage
    reads the same in every run); the output side's are left out."""
    return [_CONTEXT_ADDRESS.sub("]", _LEVEL_ERROR.sub("", ln)).strip()
            for ln in stderr.splitlines()
            if _LEVEL_ERROR.search(ln) and not _OUTPUT_SIDE.match(ln)]


def picture_reconfigurations(stderr: str) -> list[tuple[str, int, int]]:
    """``(pix_fmt, width, height)`` each time a decode log says the pictures changed."""
    return [(m[1], int(m[2]), int(m[3])) for m in _RECONFIGURED.finditer(stderr)]
