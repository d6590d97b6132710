"""Locate the ffmpeg binary every decoder, encoder and oracle call in this package uses.

One binary for everything keeps decoding, scaling and the libvmaf oracle consistent: the
``imageio-ffmpeg`` wheel ships an ffmpeg built with libvmaf, x264, x265, SVT-AV1 and libvpx.
``VMAFDISTILL_FFMPEG`` overrides it (e.g. a site build); ``ffmpeg`` on PATH is the last resort.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess

from .errors import ToolError, killed_from_outside


def input_url(path: str | os.PathLike[str]) -> str:
    """A local file as ffmpeg (and PyAV) must be handed it: absolute, so a name with a colon
    (``concat:x.mp4``, ``2024-05-01T12:30:00.mp4``) is never taken for a protocol (which read
    another file, or failed with "Protocol not found")."""
    p = os.fspath(path)
    # joined, not normalised: "link/../x.mp4" must stay the file the OS opens
    return p if os.path.isabs(p) else os.path.join(os.getcwd(), p)


def output_url(path: str | os.PathLike[str]) -> str:
    """A local file to write, as ffmpeg must be handed it: absolute, as :func:`input_url`
    (an output folder ``run:1`` or ``2024-05-01T12:30`` failed with "Protocol not found")."""
    return input_url(path)


@functools.cache
def _long_help(exe: str) -> str:
    """``exe -h long`` (run once per binary; empty where it does not run)."""
    try:
        out = subprocess.run(
            [exe, "-hide_banner", "-h", "long"], capture_output=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout + out.stderr).decode(errors="replace")


def ffmpeg_has_option(exe: str, option: str) -> bool:
    """Whether this ffmpeg build knows ``-option`` (its help read once per binary)."""
    return re.search(rf"^\s*-{re.escape(option)}\b", _long_help(exe), re.MULTILINE) is not None


def coded_picture_args() -> list[str]:
    """Input options under which ffmpeg decodes a file's coded pictures, as PyAV and every
    probe here see them: no autorotation (a display matrix: a phone video's frames would be
    transposed) and, where ffmpeg has the option (7.1 on), no container cropping (Matroska's
    PixelCrop, an MP4 ``clap`` box; the codec's own cropping stays): ffmpeg cropped such a
    320x180 stream to 288x156 while the probe said 320x180, and its bytes were read as
    frames of the wrong size (a score of 79.7 for libvmaf's 43.7, without a word)."""
    crop = (["-apply_cropping", "codec"] if ffmpeg_has_option(ffmpeg_exe(), "apply_cropping")
            else [])
    return ["-noautorotate", *crop]


def decoder_thread_args(threads: int | None) -> list[str]:
    """``-threads N`` for the input that follows (its decoder, not an encoder), or nothing for
    ffmpeg's default (``None``)."""
    return [] if threads is None else ["-threads", str(int(threads))]


@functools.cache
def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg binary to use (env override, imageio-ffmpeg, then PATH)."""
    override = os.environ.get("VMAFDISTILL_FFMPEG")
    if override:
        if not os.path.isfile(override):
            raise ToolError(f"VMAFDISTILL_FFMPEG={override!r} does not point to a file")
        return _checked_override(override)
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        pass
    found = shutil.which("ffmpeg")
    if found:
        return found
    raise ToolError(
        "no ffmpeg found: install the 'imageio-ffmpeg' package or set VMAFDISTILL_FFMPEG"
    )


def _checked_override(override: str) -> str:
    """``VMAFDISTILL_FFMPEG``'s file as an absolute path, checked to run and to be ffmpeg: a
    bare name was looked up on PATH (a traceback), a file without execute permission was a
    PermissionError traceback, and another program (``/bin/true``) made every video read as
    unreadable, blaming the video."""
    path = os.path.abspath(override)
    if not os.access(path, os.X_OK):
        raise ToolError(f"VMAFDISTILL_FFMPEG={override!r}: not executable")
    try:
        out = subprocess.run([path, "-hide_banner", "-version"], capture_output=True,
                             text=True, errors="replace", timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolError(f"VMAFDISTILL_FFMPEG={override!r}: does not run ({exc})") from None
    if not out.startswith("ffmpeg version"):
        first = out.splitlines()[0] if out.strip() else "nothing"
        raise ToolError(f"VMAFDISTILL_FFMPEG={override!r}: not ffmpeg (`-version` printed "
                        f"{first[:80]!r})")
    return path


@functools.cache
def ffmpeg_version() -> str:
    """The ffmpeg version string (e.g. ``n9.0.2-17-g2a571b6068-20260930``)."""
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"ffmpeg version (\S+)", out)
    return match.group(1) if match else "unknown"


def run_ffmpeg(args: list[str], *, what: str) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg with ``args`` (without the binary); raise ToolError naming ``what`` on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        text = proc.stderr.decode(errors="replace")
        lines = text.strip().splitlines()
        tail = lines[-5:] or [f"exit {proc.returncode}"]
        # an encoder's own reason comes first and ffmpeg's aftermath last ("x264 [error]:
        # invalid preset" was cut off behind "Could not open encoder ... Nothing was written")
        first = next((ln for ln in lines if re.search(r"\[error\]|[Ee]rror:", ln)), None)
        if first is not None and first not in tail:
            tail = [first, "...", *tail]
        error = ToolError(f"ffmpeg failed while {what}: " + " | ".join(tail))
        # killed (an OOM kill), or out of disk or memory: another try, or node, may pass
        error.transient = killed_from_outside(proc.returncode) or any(
            s in text for s in ("No space left on device", "Cannot allocate memory"))
        raise error
    return proc


#: Bytes asked for a pipe from ffmpeg (Linux ``F_SETPIPE_SZ``; the default is 64 KiB, and an
#: unprivileged process may ask for up to ``/proc/sys/fs/pipe-max-size``, 1 MiB by default).
PIPE_BYTES = 1 << 20


def widen_pipe(fd: int, size: int = PIPE_BYTES) -> None:
    """Ask the kernel for a ``size``-byte pipe behind ``fd`` (Linux; elsewhere, or when
    refused, the pipe keeps its size): fewer, larger transfers and fewer wake-ups of the
    writing ffmpeg and the reading thread (a 640x360 frame in one read instead of four)."""
    import fcntl

    op = getattr(fcntl, "F_SETPIPE_SZ", None)
    if op is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, op, size)
