"""Bit-exact video input: the decoded Y (and U/V) planes of a video as numpy arrays.

VMAF is computed on the decoded luma samples, so this module never goes through RGB and never
lets a scaler touch the samples unless the caller asks for scaling:

* raw ``.yuv`` files are read with plain file reads (no subprocess);
* ``.y4m`` files are parsed here (header tags and ``FRAME`` markers), also without a subprocess;
* anything else (mp4, mkv, webm, ...) is probed with PyAV and decoded by piping the ffmpeg binary
  to ``-f rawvideo`` in the stream's *native* pixel format, so the bytes are the decoder's output.

Scaling (``scale_to``) always runs through the ffmpeg binary's ``scale`` filter with the same
flags, so the pixels equal those of a ``[0:v]scale=W:H:flags=bicubic`` filtergraph feeding
libvmaf in the same binary.

8-bit formats come back as ``uint8``; 10/12/16-bit formats as ``uint16`` with the values as
stored (a 10-bit sample stays in 0..1023). This module imports neither torch nor PyAV at import
time: it is part of the torch-free edge runtime (PyAV is only used, lazily, to probe containers,
with a fallback that parses ``ffmpeg -i`` when PyAV is not installed).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from .._ffmpeg import (
    coded_picture_args,
    decoder_thread_args,
    ffmpeg_exe,
    ffmpeg_has_option,
    input_url,
)
from ..errors import (
    DecodeWarning,
    FrameMismatchError,
    ToolError,
    VideoInputError,
    killed_from_outside,
)
from .ffmpeg_log import decoder_errors, picture_reconfigurations

__all__ = [
    "SUPPORTED_PIX_FMTS",
    "FrameChunk",
    "PixFmtLayout",
    "VideoInfo",
    "frame_size_bytes",
    "iter_frame_pairs",
    "iter_frames",
    "pix_fmt_layout",
    "probe_video",
    "read_all",
    "y4m_frame_count",
    "y4m_header",
]

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# Pixel formats
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PixFmtLayout:
    """Memory layout of a planar YUV / gray ffmpeg pixel format.

    ``chroma_shift_w/h`` are log2 of the chroma subsampling factors (ffmpeg's
    ``log2_chroma_w/h``); chroma planes are ``ceil(W / 2**shift_w) x ceil(H / 2**shift_h)``,
    exactly as ffmpeg's ``AV_CEIL_RSHIFT`` sizes them, so odd frame sizes work.
    """

    name: str
    bit_depth: int
    chroma_shift_w: int
    chroma_shift_h: int
    has_chroma: bool

    @property
    def bytes_per_sample(self) -> int:
        return 1 if self.bit_depth <= 8 else 2

    @property
    def dtype(self) -> np.dtype[Any]:
        """Dtype of the samples *in the byte stream* (high bit depths are little-endian)."""
        return np.dtype(np.uint8) if self.bit_depth <= 8 else np.dtype("<u2")

    def chroma_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of one chroma plane; (0, 0) for gray formats."""
        if not self.has_chroma:
            return 0, 0
        return -(-width >> self.chroma_shift_w), -(-height >> self.chroma_shift_h)

    def frame_samples(self, width: int, height: int) -> int:
        cw, ch = self.chroma_size(width, height)
        return width * height + 2 * cw * ch

    def frame_bytes(self, width: int, height: int) -> int:
        return self.frame_samples(width, height) * self.bytes_per_sample


#: The bit depths above 8 that ffmpeg has planar little-endian YUV and gray formats for (9 and
#: 14 were refused in files while the API scored them, as libvmaf does).
_HIGH_DEPTHS = (9, 10, 12, 14, 16)


def _build_layouts() -> dict[str, PixFmtLayout]:
    layouts: dict[str, PixFmtLayout] = {}
    subsampling = {"420": (1, 1), "422": (1, 0), "444": (0, 0)}
    for depth, suffix in ((8, ""), *((d, f"{d}le") for d in _HIGH_DEPTHS)):
        for sub, (sw, sh) in subsampling.items():
            name = f"yuv{sub}p{suffix}"
            layouts[name] = PixFmtLayout(name, depth, sw, sh, True)
        gray = "gray" if depth == 8 else f"gray{suffix}"
        layouts[gray] = PixFmtLayout(gray, depth, 0, 0, False)
    # JPEG-range variants (MJPEG decoders) have the same memory layout; they are kept under their
    # own name so ffmpeg is asked for exactly the decoder's format (no range conversion).
    for sub, (sw, sh) in subsampling.items():
        name = f"yuvj{sub}p"
        layouts[name] = PixFmtLayout(name, 8, sw, sh, True)
    return layouts


_LAYOUTS = _build_layouts()
SUPPORTED_PIX_FMTS: tuple[str, ...] = tuple(_LAYOUTS)

# Spellings people (and libvmaf's CLI docs) use for the same formats.
_PIX_FMT_ALIASES = {
    "gray8": "gray",
    "y8": "gray",
    **{f"yuv{s}p{d}": f"yuv{s}p{d}le" for s in ("420", "422", "444") for d in _HIGH_DEPTHS},
    **{f"gray{d}": f"gray{d}le" for d in _HIGH_DEPTHS},
}


def pix_fmt_layout(pix_fmt: str) -> PixFmtLayout:
    """Layout of a supported pixel format (ffmpeg name or alias); KeyError if unsupported."""
    name = _PIX_FMT_ALIASES.get(pix_fmt, pix_fmt)
    return _LAYOUTS[name]


def frame_size_bytes(width: int, height: int, pix_fmt: str) -> int:
    """Bytes of one raw frame of ``pix_fmt`` at ``width x height``."""
    return pix_fmt_layout(pix_fmt).frame_bytes(width, height)


def _layout_for(path: str, pix_fmt: str, where: str) -> PixFmtLayout:
    try:
        return pix_fmt_layout(pix_fmt)
    except KeyError:
        raise VideoInputError(
            f"{path}: unsupported pixel format {pix_fmt!r} ({where}); supported: "
            + ", ".join(SUPPORTED_PIX_FMTS)
        ) from None


# --------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learned about a file (geometry of the decoded frames)."""

    path: str
    width: int
    height: int
    pix_fmt: str  # ffmpeg name, e.g. yuv420p, yuv420p10le, gray
    bit_depth: int
    fps: float | None
    num_frames: int | None  # exact for raw/y4m; None for containers (only decoding knows)
    kind: str  # "raw" | "y4m" | "container"
    #: video streams that are not cover art (every reader here takes the first, ffmpeg's 0:V:0)
    video_streams: int = 1
    codec: str | None = None  #: its codec's ffmpeg name (h264, hevc, ...) for containers
    #: ``fps`` is ffmpeg's ``tbr`` guess, not a declared average rate (``ffmpeg -i`` printed no
    #: "fps": e.g. a variable-rate MPEG-TS stream, whose tbr can read "2k")
    fps_guessed: bool = False
    #: the container's duration as ``ffmpeg -i`` prints it (None: not printed, or another
    #: backend); an estimate for progress, never used for timing
    duration_s: float | None = None

    @property
    def layout(self) -> PixFmtLayout:
        return pix_fmt_layout(self.pix_fmt)

    @property
    def frame_bytes(self) -> int:
        return self.layout.frame_bytes(self.width, self.height)


@dataclass(frozen=True)
class FrameChunk:
    """Consecutive decoded frames ``start .. start + n - 1`` of one video.

    ``y`` has shape (n, H, W); ``u``/``v`` have shape (n, Hc, Wc) when planes="yuv" was asked
    for and the format has chroma (they are None otherwise). Arrays are C-contiguous, writable
    and own their memory (no chunk aliases another). dtype is uint8 for 8-bit formats and
    uint16 otherwise, values unshifted: normalise with ``bit_depth``.
    """

    y: np.ndarray
    start: int
    bit_depth: int
    pix_fmt: str
    u: np.ndarray | None = None
    v: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def stop(self) -> int:
        """Index one past the last frame of this chunk."""
        return self.start + len(self)

    def head(self, n: int) -> FrameChunk:
        """The first ``n`` frames of this chunk (views, not copies)."""
        return FrameChunk(
            y=self.y[:n],
            start=self.start,
            bit_depth=self.bit_depth,
            pix_fmt=self.pix_fmt,
            u=None if self.u is None else self.u[:n],
            v=None if self.v is None else self.v[:n],
        )


# --------------------------------------------------------------------------------------------
# Probing
# --------------------------------------------------------------------------------------------


def missing_video(p: str) -> VideoInputError:
    """The error for a video path with no file: ``-`` (standard input) is told why it is not
    read (every input is read more than once), anything else that there is no such file."""
    if p == "-":
        return VideoInputError("-: a video is not read from standard input (it is read more "
                               "than once: probed, then decoded); save it to a file first")
    return VideoInputError(f"{p}: no such file")


def _check_path(path: PathLike) -> str:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise missing_video(p)
    if os.path.isdir(p):
        raise VideoInputError(f"{p}: is a directory, not a video file")
    if not os.path.isfile(p):  # ffmpeg's "Invalid data" on a pipe read as a bad video
        raise VideoInputError(f"{p}: not a regular file (a pipe or a device): a video is read "
                              "more than once (probed, then decoded); save it to a file first")
    if not os.access(p, os.R_OK):
        raise VideoInputError(f"{p}: file is not readable (permission denied)")
    return p


def probe_video(
    path: PathLike,
    *,
    width: int | None = None,
    height: int | None = None,
    pix_fmt: str | None = None,
    backend: str = "auto",
) -> VideoInfo:
    """Describe a video file: frame size, pixel format, bit depth, fps and (when exact) length.

    ``.yuv`` files (and any file other than ``.y4m`` when ``width``, ``height`` and ``pix_fmt``
    are all given) are headerless raw video and need all three. For ``.y4m`` and containers the
    file's own header is used; any of ``width``/``height``/``pix_fmt`` given must agree with it.
    Containers are read by PyAV when it is installed (``backend="auto"``), else, or with
    ``backend="ffmpeg"``, from ``ffmpeg -i``'s stream line (what the edge chain uses in every
    install: the same answer everywhere, and no 0.2 s PyAV import); a stream line that does not
    settle the format still goes to PyAV's decoder when it is installed.
    Raises VideoInputError naming the file for anything missing, unreadable or inconsistent.
    """
    if backend not in ("auto", "ffmpeg"):
        raise ValueError(f"probe backend must be 'auto' or 'ffmpeg', got {backend!r}")
    p = _check_path(path)
    ext = os.path.splitext(p)[1].lower()
    all_given = width is not None and height is not None and pix_fmt is not None
    if ext == ".yuv" or (ext != ".y4m" and all_given):
        return _probe_raw(p, width, height, pix_fmt)
    if os.path.getsize(p) == 0:  # ffmpeg's "Invalid data found" said less
        raise VideoInputError(f"{p}: an empty file (0 bytes)")
    if ext == ".y4m":
        info = _probe_y4m(p)
    else:
        info = _probe_container_ffmpeg(p) if backend == "ffmpeg" else _probe_container(p)
    _check_declared(info, width, height, pix_fmt)
    return info


def _check_declared(
    info: VideoInfo, width: int | None, height: int | None, pix_fmt: str | None
) -> None:
    # The caller's expectations must not be silently ignored when the file says otherwise.
    problems = []
    if width is not None and width != info.width:
        problems.append(f"width {width} != {info.width}")
    if height is not None and height != info.height:
        problems.append(f"height {height} != {info.height}")
    if pix_fmt is not None and _PIX_FMT_ALIASES.get(pix_fmt, pix_fmt) != info.pix_fmt:
        problems.append(f"pix_fmt {pix_fmt!r} != {info.pix_fmt!r}")
    if problems:
        raise VideoInputError(
            f"{info.path}: the file header disagrees with the given options: " + "; ".join(problems)
        )


def _ffmpeg_info(path: str | os.PathLike[str]) -> str:
    """What ``ffmpeg -i path`` prints about the file (its stderr: the streams and their side
    data)."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", input_url(path)],
                          capture_output=True, check=False)
    return proc.stderr.decode(errors="replace")


#: Container openings (offset, bytes) that headerless raw YUV does not start with.
_CONTAINER_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"YUV4MPEG2", "a .y4m"), (4, b"ftyp", "an MP4/MOV"), (0, b"\x1aE\xdf\xa3", "a Matroska"),
    (0, b"RIFF", "a RIFF (AVI)"), (0, b"FLV\x01", "an FLV"), (0, b"\x00\x00\x01\xba", "an MPEG-PS"),
    (0, b"OggS", "an Ogg"),
)


def container_kind(path: str) -> str | None:
    """What container ``path`` is, by its first bytes (MPEG-TS: sync bytes at the first
    packets' starts, 188- or 192-byte packets) and confirmed by ffmpeg finding a video stream
    in it, else None: a file given as raw YUV that is one was read as YUV samples, and scored
    as garbage where its size divided into frames. (The bytes alone are not enough: flat
    raw luma of 71, 0x47, looks like TS sync bytes.)"""
    with open(path, "rb") as fh:
        head = fh.read(4 * 192 + 4)
    kind = next((kind for offset, magic, kind in _CONTAINER_MAGIC
                 if head[offset:offset + len(magic)] == magic), None)
    for stride, start in ((188, 0), (192, 4)):
        if kind is None and len(head) > start + 3 * stride and all(
                head[start + k * stride] == 0x47 for k in range(4)):
            kind = "an MPEG-TS"
    if kind is None:
        return None
    found = re.search(r"Stream #\d+:\d+\S*: Video: ", _ffmpeg_info(path))
    return kind if found else None


def _probe_raw(path: str, width: int | None, height: int | None, pix_fmt: str | None) -> VideoInfo:
    if (kind := container_kind(path)) is not None:
        fix = ("rename it to its container's suffix" if path.lower().endswith(".yuv") else
               "read it without a width, height and pix_fmt")
        raise VideoInputError(f"{path}: is {kind} file, not headerless raw YUV; {fix}")
    missing = [
        name
        for name, val in (("width", width), ("height", height), ("pix_fmt", pix_fmt))
        if val is None
    ]
    if missing:
        raise VideoInputError(
            f"{path}: raw YUV has no header, so width, height and pix_fmt must be given "
            f"(missing: {', '.join(missing)})"
        )
    assert width is not None and height is not None and pix_fmt is not None
    if width <= 0 or height <= 0:
        raise VideoInputError(f"{path}: invalid frame size {width}x{height}")
    layout = _layout_for(path, pix_fmt, "given for raw input")
    frame_bytes = layout.frame_bytes(width, height)
    size = os.path.getsize(path)
    num_frames, remainder = divmod(size, frame_bytes)
    if remainder:
        raise VideoInputError(
            f"{path}: size {size} bytes is not a whole number of {width}x{height} {layout.name} "
            f"frames (frame size {frame_bytes} bytes, {num_frames} frames + {remainder} bytes "
            "remainder); check width, height and pix_fmt"
        )
    if num_frames == 0:
        raise VideoInputError(f"{path}: is empty (no frames)")
    return VideoInfo(path, width, height, layout.name, layout.bit_depth, None, num_frames, "raw")


# Y4M colour-space tags (the ``C`` header field) -> ffmpeg pixel format. "420jpeg", "420paldv"
# and "420mpeg2" only differ in chroma siting, which does not change the samples.
_Y4M_COLORSPACES = {
    "420jpeg": "yuv420p",
    "420paldv": "yuv420p",
    "420mpeg2": "yuv420p",
    "420": "yuv420p",
    "422": "yuv422p",
    "444": "yuv444p",
    "mono": "gray",
    **{f"{s}p{d}": f"yuv{s}p{d}le" for s in ("420", "422", "444") for d in _HIGH_DEPTHS},
    **{f"mono{d}": f"gray{d}le" for d in _HIGH_DEPTHS},
}

_Y4M_MAGIC = b"YUV4MPEG2"
_Y4M_FRAME = b"FRAME"
_MAX_Y4M_LINE = 65536  # no sane header or FRAME line is longer; bounds readline on garbage


@dataclass(frozen=True)
class _Y4MHeader:
    width: int
    height: int
    pix_fmt: str
    fps: float | None
    header_len: int


def _parse_y4m_header(path: str, f: IO[bytes]) -> _Y4MHeader:
    line = f.readline(_MAX_Y4M_LINE)
    if not line.startswith(_Y4M_MAGIC):
        raise VideoInputError(f"{path}: not a YUV4MPEG2 (.y4m) file (bad magic)")
    if not line.endswith(b"\n"):
        raise VideoInputError(f"{path}: truncated or overlong .y4m header")
    width = height = None
    fps: float | None = None
    colorspace: str | None = None
    yscss: str | None = None  # mjpegtools' "XYSCSS=420P10" comment, read when there is no C tag
    for token in line[len(_Y4M_MAGIC) :].split():
        tag, value = chr(token[0]), token[1:].decode("ascii", errors="replace")
        try:
            if tag == "W":
                width = int(value)
            elif tag == "H":
                height = int(value)
            elif tag == "F":
                num, den = (int(x) for x in value.split(":"))
                fps = num / den if num > 0 and den > 0 else None
            elif tag == "C":
                colorspace = value
            elif tag == "X" and value.startswith("YSCSS="):
                yscss = value[len("YSCSS="):].lower()
        except ValueError:
            raise VideoInputError(f"{path}: malformed .y4m header tag {token!r}") from None
    if colorspace is None:  # the spec's default is 4:2:0 8-bit; ffmpeg reads XYSCSS first
        colorspace = yscss or "420"
    if not width or not height or width <= 0 or height <= 0:
        raise VideoInputError(f"{path}: .y4m header lacks a valid W/H frame size")
    pix_fmt = _Y4M_COLORSPACES.get(colorspace)
    if pix_fmt is None:
        raise VideoInputError(
            f"{path}: unsupported .y4m colour space C{colorspace} (supported: "
            + ", ".join(_Y4M_COLORSPACES)
            + ")"
        )
    return _Y4MHeader(width, height, pix_fmt, fps, len(line))


def _count_y4m_frames(path: str, f: IO[bytes], header_len: int, frame_bytes: int) -> int:
    size = os.fstat(f.fileno()).st_size
    plain = _Y4M_FRAME + b"\n"
    stride = len(plain) + frame_bytes
    body = size - header_len
    # Fast path: nearly every writer uses a bare "FRAME\n"; then the count is size arithmetic.
    # It is confirmed by checking the first and last frame headers (iteration re-checks all).
    if body > 0 and body % stride == 0:
        n = body // stride
        f.seek(header_len)
        first = f.read(len(plain))
        f.seek(header_len + (n - 1) * stride)
        last = f.read(len(plain))
        if first == plain and last == plain:
            return n
    # Slow path: frame headers carry parameters (or the file is damaged); walk them all.
    count, pos = 0, header_len
    while pos < size:
        f.seek(pos)
        line = f.readline(_MAX_Y4M_LINE)
        if not line.startswith(_Y4M_FRAME) or not line.endswith(b"\n"):
            raise VideoInputError(
                f"{path}: bad or truncated .y4m frame header for frame {count} at byte {pos}"
            )
        pos += len(line) + frame_bytes
        if pos > size:
            have = size - (pos - frame_bytes)
            raise VideoInputError(
                f"{path}: truncated last frame: frame {count} has {have} of {frame_bytes} bytes"
            )
        count += 1
    return count


def y4m_header(path: PathLike) -> tuple[int, int, str, int]:
    """``(width, height, pix_fmt, header_bytes)`` of a .y4m file, from its stream header."""
    p = _check_path(path)
    try:
        with open(p, "rb") as f:
            h = _parse_y4m_header(p, f)
    except OSError as exc:
        raise VideoInputError(f"{p}: cannot read: {exc}") from exc
    return h.width, h.height, h.pix_fmt, h.header_len


def y4m_frame_count(path: PathLike) -> int:
    """Frames of a .y4m file, from its size and FRAME headers (no decoding; 0 when empty)."""
    p = _check_path(path)
    try:
        with open(p, "rb") as f:
            h = _parse_y4m_header(p, f)
            return _count_y4m_frames(p, f, h.header_len, frame_size_bytes(h.width, h.height,
                                                                          h.pix_fmt))
    except OSError as exc:
        raise VideoInputError(f"{p}: cannot read: {exc}") from exc


def _probe_y4m(path: str) -> VideoInfo:
    try:
        with open(path, "rb") as f:
            header = _parse_y4m_header(path, f)
            layout = pix_fmt_layout(header.pix_fmt)
            frame_bytes = layout.frame_bytes(header.width, header.height)
            num_frames = _count_y4m_frames(path, f, header.header_len, frame_bytes)
    except OSError as exc:
        raise VideoInputError(f"{path}: cannot read: {exc}") from exc
    if num_frames == 0:
        raise VideoInputError(f"{path}: has no frames")
    return VideoInfo(
        path,
        header.width,
        header.height,
        layout.name,
        layout.bit_depth,
        header.fps,
        num_frames,
        "y4m",
    )


def _import_av() -> Any:
    """PyAV if installed, else None (the base install has no PyAV; the ``edge`` extra does)."""
    try:
        import av
    except ImportError:
        return None
    return av


_ATTACHED_PIC = 0x0400  # AV_DISPOSITION_ATTACHED_PIC: cover art, not a video to score


def _raw_hint(path: str) -> str:
    """The hint for a file no demuxer reads: it may be headerless raw YUV, unless its name
    says video file (the hint misled a folder corpus's user about a damaged .mp4)."""
    from ..folders import VIDEO_EXTENSIONS

    if os.path.splitext(path)[1].lower() in (*VIDEO_EXTENSIONS, ".y4m"):
        return ""
    return "; if it is headerless raw YUV, give width, height and pix_fmt"


def _probe_container(path: str) -> VideoInfo:
    av = _import_av()
    if av is None:
        return _probe_container_ffmpeg(path)
    try:
        container = av.open(input_url(path))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoInputError(f"{path}: not a readable video file ({exc}){_raw_hint(path)}"
                              ) from exc
    with container:
        streams = [s for s in container.streams.video if not int(s.disposition) & _ATTACHED_PIC]
        if not streams:
            raise VideoInputError(f"{path}: has no video stream")
        # The first non-cover-art video stream: the same one ffmpeg's "-map 0:V:0" selects.
        stream = streams[0]
        cc = stream.codec_context
        if cc is None:  # e.g. H.264 muxed into MPEG-PS, which ffmpeg reads as codec "none"
            raise VideoInputError(f"{path}: ffmpeg cannot tell its video stream's codec (a "
                                  "codec this container cannot carry?); remux it (mp4, mkv, ts)")
        pix_fmt, width, height = cc.pix_fmt, cc.width, cc.height
        if not pix_fmt or not width or not height:
            # Demuxer probing did not settle the format (e.g. broken first packets): ask the
            # decoder. If it cannot produce a single frame, nothing downstream could either.
            pix_fmt, width, height = _first_frame_format(av, container, stream, path)
        fps, fps_guessed = _stream_rate(
            float(stream.average_rate) if stream.average_rate else None,
            float(stream.guessed_rate) if stream.guessed_rate else None)
        if _raw_demuxer(container.format.name) and stream.guessed_rate:
            # the demuxer's default 25 as the average; the guess is the stream's own timing
            fps, fps_guessed = float(stream.guessed_rate), False
        # as ffmpeg -i prints it: rounded to 1/100 s (the two backends agree)
        duration_s = (None if container.duration is None
                      else _centiseconds((int(container.duration) + 5000) // 10000))
    layout = _layout_for(path, pix_fmt, "decoded pixel format of its video stream")
    return VideoInfo(path, width, height, layout.name, layout.bit_depth, fps, None, "container",
                     video_streams=len(streams), codec=cc.name, fps_guessed=fps_guessed,
                     duration_s=duration_s)


def _centiseconds(count: int) -> float | None:
    """A container duration of ``count`` hundredths of a second in seconds (None if not
    positive: nothing to estimate from)."""
    return count / 100 if count > 0 else None


def _stream_rate(declared: float | None, guessed: float | None) -> tuple[float | None, bool]:
    """The frame rate a probe reports, and whether it is only ffmpeg's guess (``tbr``, from the
    timestamps): the declared average rate, unless there is none or it is over 1.5x the guess
    (an MP4 stream-copied into AVI declares 600 fps for 25: every reader then cut 0.04 s
    shots; an average below the guess is a variable or field rate, and stays)."""
    if declared and not (guessed and declared > 1.5 * guessed):
        return declared, False
    return guessed, guessed is not None


def _first_frame_format(av: Any, container: Any, stream: Any, path: str) -> tuple[str, int, int]:
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    return frame.format.name, frame.width, frame.height
            except av.FFmpegError:
                continue  # a damaged packet; the decoder may recover on the next keyframe
    except av.FFmpegError as exc:
        raise VideoInputError(f"{path}: has no decodable video frames ({exc})") from exc
    raise VideoInputError(f"{path}: has no decodable video frames")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses/brackets (ffmpeg stream lines)."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


#: ffmpeg's demuxers of raw elementary streams (Annex B H.264/H.265/H.266, MPEG-1/2/4 video,
#: AV1 OBUs): no container timing, so the stream line prints the demuxer's default 25 fps
#: whatever the stream's own headers say (a 60 fps x264 stream read at 25: other shot windows
#: and bitrates than its MP4 copy). The decoder reads those headers (H.264/H.265 VUI timing,
#: an MPEG-2 sequence header); a stream that carries no timing stays at 25.
RAW_DEMUXERS = frozenset({"h264", "hevc", "vvc", "mpegvideo", "m4v", "obu", "cavsvideo"})


def _raw_demuxer(name: str | None) -> bool:
    return bool(name) and str(name).split(",")[0].strip() in RAW_DEMUXERS


def _decoder_rate(path: str) -> float | None:
    """The frame rate ffmpeg's decoder gives a raw stream, from the stream's own headers: the
    output stream line once one frame is decoded (None where it prints none)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", input_url(path), "-map", "0:V:0",
         "-frames:v", "1", "-f", "null", "-"], capture_output=True, check=False)
    _, _, out = proc.stderr.decode(errors="replace").partition("\nOutput #0")
    m = re.search(r"Stream #0:0\S*: Video: (.*)$", out, re.MULTILINE)
    fields = _split_top_level(m.group(1)) if m else []
    fm = next((fm for f in fields if (fm := re.fullmatch(r"([\d.]+)(k?) fps", f))), None)
    if fm is None:
        return None
    return _printed_rate(float(fm.group(1)) * (1000 if fm.group(2) else 1)) or None


def _printed_rate(printed: float) -> float:
    """The frame rate behind ``ffmpeg -i``'s printed one: it prints a non-integer rate to two
    decimals (30000/1001 as "29.97"), so a value within that rounding of an NTSC rate
    N*1000/1001 is that rate (PyAV's, to the last bit); any other value is taken as printed.
    Not recovered: NTSC rates of 5 fps and below (printed as integers) and exact decimal rates such
    as 2997/100, which snap to 30000/1001 (still within the printed value's 0.005)."""
    n = round(printed * 1001 / 1000)
    exact = n * 1000 / 1001
    if n > 0 and printed != round(printed) and abs(printed - exact) <= 0.005 + 1e-9:
        return exact
    return printed


def colour_range(path: str | os.PathLike[str]) -> tuple[str | None, bool]:
    """The first video stream's colour range as ffmpeg's conversions take it, and whether it
    is gray, from one ``ffmpeg -i``: ``"pc"`` (full) or ``"tv"`` (limited) where it prints one;
    else full for ``yuvj`` and ``gray`` formats and limited for the other YUV ones, as swscale
    assumes; None when ffmpeg reads no video stream with a known format from the file."""
    facts = stream_facts(path)
    return facts["range"], facts["gray"]


def range_of_pix_fmt(pix_fmt: str) -> str | None:
    """The colour range swscale assumes for a pixel format that states none: ``"pc"`` (full)
    for ``yuvj*`` and gray formats, ``"tv"`` (limited) for the other YUV ones, else None."""
    if pix_fmt.startswith(("yuvj", "gray")):
        return "pc"
    return "tv" if pix_fmt.startswith("yuv") else None


def stream_facts(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What one ``ffmpeg -i`` says of the first video stream that ffmpeg's own conversions act
    on: ``range`` and ``gray`` (:func:`colour_range`); ``rotation``, the degrees of its
    display matrix as ffmpeg prints them (None without one; ffmpeg autorotates such a
    stream; a mirrored matrix prints no flip, a vertical flip alone -0.0); ``cropping``, the
    container's (left, right, top, bottom) (None without; ffmpeg crops such a stream);
    ``matrix``, the YUV matrix it is tagged with (None: untagged; ffmpeg's libvmaf graph
    converts one input to the other's); ``interlaced``, ffmpeg's field order (``"top
    first"``, ``"bottom first"``, ``"top coded first (swapped)"`` ...) where the stream says
    it is interlaced (None: progressive or unsaid). This package reads the coded pictures
    (:func:`~vmafdistill._ffmpeg.coded_picture_args`) as decoded."""
    _check_path(path)  # ffmpeg -i on a pipe with no writer waits forever
    facts: dict[str, Any] = {"range": None, "range_stated": False, "gray": False,
                             "rotation": None, "cropping": None, "matrix": None,
                             "interlaced": None}
    found = False
    for line in _ffmpeg_info(path).splitlines():
        m = re.match(r"\s*Stream #\d+:\d+\S*: (\w+): (.*)$", line)
        if m:  # side data lines follow their stream's line
            if found:
                break
            if m.group(1) != "Video" or "(attached pic)" in line:
                continue
            found = True
            fmt = re.search(r"\b((?:yuvj|gray|yuv)\w*)", m.group(2))
            rng = re.search(r"\((pc|tv)[,)]", m.group(2))
            facts["gray"] = fmt is not None and fmt.group(1).startswith("gray")
            # an RGB stream states pc too, but it is refused as it is decoded (its range
            # warning came first, before the one-line refusal)
            facts["range"] = (None if fmt is None else rng.group(1) if rng
                              else range_of_pix_fmt(fmt.group(1)))
            # ffmpeg states one (or a yuvj format implies it): the frames carry that range;
            # else they carry none (an untagged H.264 stream), and it is taken as limited
            facts["range_stated"] = fmt is not None and (
                rng is not None or fmt.group(1).startswith("yuvj"))
            facts["matrix"] = _yuv_matrix(m.group(2))
            # "top coded first (swapped)" is shown bottom field first: ffmpeg's words kept
            field = re.search(r"\b(?:top|bottom)(?: coded)? first(?: \(swapped\))?",
                              m.group(2))
            facts["interlaced"] = field.group(0) if field else None
        elif found and (rot := re.search(r"rotation of (-?[\d.]+) degrees", line)):
            facts["rotation"] = float(rot.group(1))  # "-0.00": a vertical flip alone
        elif found and (crop := re.search(r"Frame Cropping: (\d+)/(\d+)/(\d+)/(\d+)", line)):
            # left/right/top/bottom, container cropping (Matroska PixelCrop, an MP4 clap box)
            facts["cropping"] = tuple(int(v) for v in crop.groups()) if any(
                int(v) for v in crop.groups()) else None
    return facts


#: What else an ``ffmpeg -i`` pixel-format parenthesis holds: range and field order.
_NOT_A_MATRIX = re.compile(r"(tv|pc|progressive|top first|bottom first|top coded first.*|"
                           r"bottom coded first.*|tff|bff|\d+ bpc)$")


def _yuv_matrix(stream_line: str) -> str | None:
    """The YUV matrix a stream line tags (``yuv420p(tv, bt709/unknown/unknown, progressive)``
    -> ``bt709``, the first of colour space / primaries / transfer), None where untagged."""
    group = re.search(r"\b(?:yuvj?|nv|p0)\w*\(([^)]*)\)", stream_line)
    for token in (group.group(1).split(", ") if group else ()):
        if not _NOT_A_MATRIX.match(token.strip()):
            matrix = token.strip().split("/")[0]
            return None if matrix in ("unknown", "reserved") else matrix
    return None


def _probe_container_ffmpeg(path: str) -> VideoInfo:
    """Probe by parsing ``ffmpeg -i`` output (``backend="ffmpeg"``, and ``"auto"`` without
    PyAV)."""
    text = _ffmpeg_info(path)
    n_video = sum(1 for line in text.splitlines()
                  if re.match(r"\s*Stream #0:\d+\S*: Video: ", line)
                  and "(attached pic)" not in line)
    for line in text.splitlines():
        m = re.match(r"\s*Stream #\d+:\d+\S*: Video: (.*)$", line)
        if not m or "(attached pic)" in line:
            continue
        fields = _split_top_level(m.group(1))
        pix_m = re.match(r"([a-z0-9_]+)", fields[1]) if len(fields) > 1 else None
        size_m = next((sm for f in fields[1:] if (sm := re.match(r"(\d+)x(\d+)\b", f))), None)
        if not pix_m or not size_m or pix_m.group(1) == "none":
            if _import_av() is not None:  # its decoder may settle it (broken first packets)
                return _probe_container(path)
            raise VideoInputError(f"{path}: cannot determine the video format from: {line.strip()}")
        rates = {}
        for unit in ("fps", "tbr"):
            pattern = rf"([\d.]+)(k?) {unit}"
            fm = next((fm for f in fields if (fm := re.fullmatch(pattern, f))), None)
            if fm:
                rates[unit] = _printed_rate(float(fm.group(1)) * (1000 if fm.group(2) else 1))
        fps, fps_guessed = _stream_rate(rates.get("fps"), rates.get("tbr"))
        demuxer = re.search(r"^Input #0, ([^,]+), from", text, re.MULTILINE)
        if demuxer and _raw_demuxer(demuxer.group(1)) and (rate := _decoder_rate(path)):
            fps, fps_guessed = rate, False
        layout = _layout_for(path, pix_m.group(1), "decoded pixel format of its video stream")
        w, h = int(size_m.group(1)), int(size_m.group(2))
        codec = fields[0].split()[0] if fields[0] else None
        duration = re.search(r"^\s*Duration: (\d+):(\d\d):(\d\d)\.(\d\d),", text,
                             re.MULTILINE)
        duration_s = (None if duration is None else _centiseconds(
            ((int(duration.group(1)) * 60 + int(duration.group(2))) * 60
             + int(duration.group(3))) * 100 + int(duration.group(4))))
        return VideoInfo(path, w, h, layout.name, layout.bit_depth, fps, None, "container",
                         video_streams=n_video, codec=codec, fps_guessed=fps_guessed,
                         duration_s=duration_s)
    if re.search(r"^Input #0", text, re.MULTILINE):
        raise VideoInputError(f"{path}: has no video stream")
    raise VideoInputError(f"{path}: not a readable video file ({_tail(text)})")


# --------------------------------------------------------------------------------------------
# Frame iteration
# --------------------------------------------------------------------------------------------

_PLANES = ("y", "yuv")
_SCALE_FLAGS_RE = re.compile(r"^[a-z0-9_+]+$")  # e.g. "bicubic", "lanczos+accurate_rnd"


def valid_scale_flags(scale_flags: str) -> bool:
    """Whether ``scale_flags`` is swscale flags joined by ``+`` (it goes verbatim into a
    filtergraph string, so nothing else is accepted)."""
    return isinstance(scale_flags, str) and bool(_SCALE_FLAGS_RE.match(scale_flags))


_SCALE_FLAGS_HINT = "swscale flags joined by '+', e.g. bicubic, lanczos+accurate_rnd+bitexact"


@functools.cache
def scaler_refusal(scale_flags: str) -> str | None:
    """ffmpeg's reason for refusing ``scale_flags`` as swscale flags, or None if it takes them.

    One 16x16 frame through ``scale`` (~50 ms): a flag name ffmpeg does not know (``bogus``)
    or a combination it refuses (``bicubic+lanczos``: one algorithm only) failed every encode
    of a corpus, or was blamed on the distorted file by ``score``. ffmpeg failing without the
    scaler's words (missing, killed, a build without lavfi) raises ToolError (not the flags'
    fault; not cached).
    """
    if not valid_scale_flags(scale_flags):
        return _SCALE_FLAGS_HINT
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
           "-i", "color=size=16x16:duration=0.04", "-vf", f"scale=8:8:flags={scale_flags}",
           "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    reason = next((ln.split("] ")[-1] for ln in lines
                   if "swscaler" in ln or "sws_flags" in ln or "Undefined constant" in ln), None)
    if reason is None:  # not the scaler's words: ffmpeg itself failed (killed, no lavfi, memory)
        raise ToolError(f"ffmpeg failed while checking the scaler flags {scale_flags!r}: "
                        + (" | ".join(lines[-3:]) or f"exit {proc.returncode}"))
    return f"ffmpeg's scaler refuses them ({reason}); {_SCALE_FLAGS_HINT}"


def _validate_common(chunk: int, planes: str, scale_flags: str) -> None:
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    if planes not in _PLANES:
        raise ValueError(f"planes must be one of {_PLANES}, got {planes!r}")
    # Goes verbatim into a filtergraph string: refuse anything that could inject filters.
    if not valid_scale_flags(scale_flags):
        raise ValueError(f"invalid scale_flags {scale_flags!r}")


def _validate_scale_to(scale_to: tuple[int, int] | None) -> tuple[int, int] | None:
    if scale_to is None:
        return None
    try:
        w, h = (int(x) for x in scale_to)
    except (TypeError, ValueError):
        raise ValueError(f"scale_to must be (width, height), got {scale_to!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"scale_to must be positive, got {scale_to!r}")
    return w, h


def iter_frames(
    path: PathLike,
    *,
    chunk: int = 16,
    width: int | None = None,
    height: int | None = None,
    pix_fmt: str | None = None,
    scale_to: tuple[int, int] | None = None,
    scale_flags: str = "bicubic",
    planes: str = "y",
    decoder_threads: int | None = None,
) -> Iterator[FrameChunk]:
    """Iterate over the decoded frames of ``path`` in chunks of ``chunk`` frames.

    Every chunk but the last holds exactly ``chunk`` frames; ``FrameChunk.start`` is the index
    of its first frame. ``planes="yuv"`` adds the chroma planes. ``scale_to=(W, H)`` scales
    through ffmpeg's ``scale`` filter with ``flags=scale_flags`` in the source pixel format (a
    no-op when it equals the source size). The file is probed (and validated) when this is
    called, not on the first ``next()``; memory use is bounded by one chunk.
    ``decoder_threads``: ffmpeg's decoder threads for a container (its default otherwise);
    1 makes a damaged file's concealed pictures the same on every run.
    """
    _validate_common(chunk, planes, scale_flags)
    scale = _validate_scale_to(scale_to)
    info = probe_video(path, width=width, height=height, pix_fmt=pix_fmt)
    return _iter_info(info, chunk=chunk, scale_to=scale, scale_flags=scale_flags, planes=planes,
                      decoder_threads=decoder_threads)


def read_all(path: PathLike, **kw: Any) -> FrameChunk:
    """The whole video as one FrameChunk (for small clips and tests); ``kw`` as iter_frames."""
    kw.setdefault("chunk", 64)
    chunks = list(iter_frames(path, **kw))
    return _concat(chunks)


def _concat(chunks: list[FrameChunk]) -> FrameChunk:
    first = chunks[0]
    if len(chunks) == 1:
        return first

    def cat(arrs: list[np.ndarray | None]) -> np.ndarray | None:
        return None if arrs[0] is None else np.concatenate(arrs, axis=0)  # type: ignore[arg-type]

    y = np.concatenate([c.y for c in chunks], axis=0)
    return FrameChunk(
        y=y,
        start=first.start,
        bit_depth=first.bit_depth,
        pix_fmt=first.pix_fmt,
        u=cat([c.u for c in chunks]),
        v=cat([c.v for c in chunks]),
    )


def _iter_info(
    info: VideoInfo,
    *,
    chunk: int,
    scale_to: tuple[int, int] | None,
    scale_flags: str,
    planes: str,
    limit: int | None = None,
    out_pix_fmt: str | None = None,
    decoder_threads: int | None = None,
    ranges: tuple[str, str] | None = None,
    out_matrix: str | None = None,
) -> Iterator[FrameChunk]:
    """Frames of an already-probed file; ``limit`` stops after that many frames.

    ``out_pix_fmt`` converts the frames to that format, ``ranges`` (from, to) their colour
    range and ``out_matrix`` tags the output's YUV matrix (a scale filter
    ``out_color_matrix``), in the same ffmpeg scaler that resizes them (``scale_to`` is then
    kept even at the same size, so its flags apply).
    """
    if (out_pix_fmt is not None and out_pix_fmt != info.pix_fmt) or ranges is not None:
        out_pix_fmt = out_pix_fmt or info.pix_fmt
        out_layout = _layout_for(info.path, out_pix_fmt, "conversion target")
        return _iter_ffmpeg(
            dataclasses.replace(info, pix_fmt=out_pix_fmt, bit_depth=out_layout.bit_depth),
            _input_args(info, decoder_threads), chunk, planes,
            scale_to or (info.width, info.height), scale_flags, limit, ranges, out_matrix,
        )
    if scale_to is not None and scale_to == (info.width, info.height) and info.kind != "container":
        # ffmpeg's scale filter passes frames through untouched at the same size and format,
        # so skipping it gives identical samples and keeps the fast raw/y4m readers. A
        # container keeps it: its pictures may change size mid-stream, each then scaled.
        scale_to = None
    if scale_to is None and info.kind == "raw":
        return _iter_raw(info, chunk, planes, limit)
    if scale_to is None and info.kind == "y4m":
        return _iter_y4m(info, chunk, planes, limit)
    return _iter_ffmpeg(info, _input_args(info, decoder_threads), chunk, planes, scale_to,
                        scale_flags, limit)


def _input_args(info: VideoInfo, decoder_threads: int | None = None) -> list[str]:
    """ffmpeg's input options for a probed file (``decoder_threads`` for a container)."""
    if info.kind == "raw":
        return ["-f", "rawvideo", "-pix_fmt", info.pix_fmt, "-s", f"{info.width}x{info.height}",
                "-i", input_url(info.path)]
    if info.kind == "y4m":
        return ["-f", "yuv4mpegpipe", "-i", input_url(info.path)]
    # the coded frames, whose size the probe reported: autorotation would transpose rotated
    # phone videos, container cropping shrink them
    return [*decoder_thread_args(decoder_threads), *coded_picture_args(), "-i",
            input_url(info.path)]


def _check_end(info: VideoInfo, rc: int, log: str, scale_to: tuple[int, int] | None,
               frames: int, rem: int, size: tuple[int, int]) -> None:
    """At the end of an ffmpeg decode of ``frames`` frames (``rem`` bytes of a partial one):
    VideoInputError for a failed decode, a picture change, a partial frame or no frames; a
    DecodeWarning for errors logged by a decode that still succeeded."""
    errors = decoder_errors(log)
    if rc != 0:
        error = VideoInputError(
            f"{info.path}: ffmpeg failed to decode it (exit code {rc}) after {frames} frames: "
            f"{_tail(chr(10).join(errors) or log)}")
        error.transient = killed_from_outside(rc)  # an OOM kill, not the file's fault
        raise error
    _check_no_picture_change(info, log, scale_to)
    if rem:  # only possible if the decoded geometry differs from the probe's
        raise VideoInputError(
            f"{info.path}: ffmpeg output ends with a partial frame ({rem} bytes); the decoded "
            f"frames are not {size[0]}x{size[1]} {info.pix_fmt}")
    if frames == 0:
        raise VideoInputError(f"{info.path}: has no decodable video frames")
    if errors:
        # Exit code 0 but errors logged (e.g. concealed corruption): the frames are usable,
        # the caller should still know.
        warnings.warn(f"{info.path}: ffmpeg reported decoding errors: "
                      f"{_tail(chr(10).join(errors))}", DecodeWarning, stacklevel=3)


def _check_no_picture_change(info: VideoInfo, log: str, scale_to: tuple[int, int] | None
                             ) -> None:
    """A video whose pictures change size or format mid-stream (a recording that switches
    renditions) came out of ffmpeg scaled to the first picture's: scored as such, silently
    (libvmaf refuses it). Scaled to a target anyway (``scale_to``), every picture is right."""
    first = (info.pix_fmt, info.width, info.height)
    # a notice for other changes (colour properties) names the same format and size
    changes = [c for c in picture_reconfigurations(log)
               if (_PIX_FMT_ALIASES.get(c[0], c[0]), c[1], c[2]) != first]
    if scale_to is None and changes:
        fmt, w, h = changes[0]
        raise VideoInputError(
            f"{info.path}: its pictures change mid-stream from {info.width}x{info.height} "
            f"{info.pix_fmt} to {w}x{h} {fmt} (renditions joined?); ffmpeg scales them to the "
            "first picture's size, which would be scored as such: cut it at the change, or "
            "score it rescaled to the reference (score --rescale, rescale=True)")


def _read_into(f: IO[bytes], buf: memoryview) -> int:
    """Fill ``buf`` from ``f`` until it is full or EOF; return the bytes read."""
    got = 0
    while got < len(buf):
        n = f.readinto(buf[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


#: The first read's buffer: a container's frame count is unknown until decoded, so a large
#: ``chunk`` grows its buffer as frames arrive (``--chunk 100000`` reserved 2.4 GB for a
#: 12-frame clip, and failed with MemoryError under a memory limit).
_FIRST_READ_BYTES = 1 << 27


def _read_frames(f: IO[bytes], want: int, frame_bytes: int) -> tuple[bytearray, int]:
    """Read up to ``want`` frames of ``frame_bytes`` from ``f``: the buffer (at least as long
    as what was read) and the bytes read; fewer than ``want`` frames means EOF."""
    total = want * frame_bytes
    size = min(total, max(frame_bytes, _FIRST_READ_BYTES // frame_bytes * frame_bytes))
    buf = bytearray(size)
    got = _read_into(f, memoryview(buf))
    while got == len(buf) and len(buf) < total:
        buf.extend(bytes(min(total, 2 * len(buf)) - len(buf)))  # doubling: amortised copies
        got += _read_into(f, memoryview(buf)[got:])
    return buf, got


def _make_chunk(
    buf: bytearray | memoryview,
    n: int,
    info: VideoInfo,
    width: int,
    height: int,
    start: int,
    planes: str,
) -> FrameChunk:
    """Slice the planes of ``n`` packed raw frames out of ``buf`` as owned native arrays."""
    layout = info.layout
    frames = np.frombuffer(buf, dtype=layout.dtype, count=n * layout.frame_samples(width, height))
    frames = frames.reshape(n, -1)
    out_dtype = np.uint8 if layout.bit_depth <= 8 else np.uint16
    ysz = width * height
    # astype copies into a fresh contiguous native-endian array, so the (larger) frame buffer
    # is freed and chunks never alias each other.
    y = frames[:, :ysz].astype(out_dtype).reshape(n, height, width)
    u = v = None
    if planes == "yuv" and layout.has_chroma:
        cw, ch = layout.chroma_size(width, height)
        csz = cw * ch
        u = frames[:, ysz : ysz + csz].astype(out_dtype).reshape(n, ch, cw)
        v = frames[:, ysz + csz : ysz + 2 * csz].astype(out_dtype).reshape(n, ch, cw)
    return FrameChunk(y=y, start=start, bit_depth=layout.bit_depth, pix_fmt=info.pix_fmt, u=u, v=v)


def _check_range(info: VideoInfo, c: FrameChunk) -> None:
    # Headerless data read with the wrong pix_fmt (8-bit read as 10-bit, MSB-aligned P010, ...)
    # shows up as out-of-range samples: refuse it instead of scoring garbage.
    if c.bit_depth >= 16 or c.bit_depth <= 8:
        return
    limit = (1 << c.bit_depth) - 1
    for plane in (c.y, c.u, c.v):
        if plane is not None and plane.size and int(plane.max()) > limit:
            raise VideoInputError(
                f"{info.path}: frames {c.start}..{c.stop - 1} hold sample values above "
                f"{limit}, impossible for {info.bit_depth}-bit {info.pix_fmt}; is the pixel "
                "format right?"
            )


def _iter_raw(info: VideoInfo, chunk: int, planes: str, limit: int | None) -> Iterator[FrameChunk]:
    total = info.num_frames or 0
    if limit is not None:
        total = min(total, limit)
    fb = info.frame_bytes
    with open(info.path, "rb") as f:
        start = 0
        while start < total:
            n = min(chunk, total - start)
            buf = bytearray(n * fb)
            got = _read_into(f, memoryview(buf))
            if got != len(buf):  # the file shrank since probing
                raise VideoInputError(
                    f"{info.path}: unexpected end of file in frame {start + got // fb}"
                )
            c = _make_chunk(buf, n, info, info.width, info.height, start, planes)
            _check_range(info, c)
            yield c
            start += n


def _iter_y4m(info: VideoInfo, chunk: int, planes: str, limit: int | None) -> Iterator[FrameChunk]:
    total = info.num_frames or 0
    if limit is not None:
        total = min(total, limit)
    fb = info.frame_bytes
    with open(info.path, "rb") as f:
        f.readline(_MAX_Y4M_LINE)  # stream header, already parsed by the probe
        start = 0
        while start < total:
            n = min(chunk, total - start)
            buf = bytearray(n * fb)
            view = memoryview(buf)
            for i in range(n):
                # Every frame header is checked: the probe's fast count only looked at two.
                line = f.readline(_MAX_Y4M_LINE)
                if not line.startswith(_Y4M_FRAME) or not line.endswith(b"\n"):
                    raise VideoInputError(
                        f"{info.path}: bad or truncated .y4m frame header for frame {start + i}"
                    )
                if _read_into(f, view[i * fb : (i + 1) * fb]) != fb:
                    raise VideoInputError(f"{info.path}: truncated frame {start + i}")
            c = _make_chunk(buf, n, info, info.width, info.height, start, planes)
            _check_range(info, c)
            yield c
            start += n


def _passthrough_args(exe: str) -> list[str]:
    # Never let ffmpeg duplicate or drop frames to reach a constant output rate: every decoded
    # frame must come out exactly once. -fps_mode replaced -vsync in ffmpeg 5.1.
    if ffmpeg_has_option(exe, "fps_mode"):
        return ["-fps_mode", "passthrough"]
    return ["-vsync", "passthrough"]


def _tail(text: str, lines: int = 5) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:]) or "no error output"


def _iter_ffmpeg(
    info: VideoInfo,
    input_args: list[str],
    chunk: int,
    planes: str,
    scale_to: tuple[int, int] | None,
    scale_flags: str,
    limit: int | None,
    ranges: tuple[str, str] | None = None,
    out_matrix: str | None = None,
) -> Iterator[FrameChunk]:
    exe = ffmpeg_exe()
    width, height = scale_to if scale_to is not None else (info.width, info.height)
    # level+info: errors tagged with their level, and the notice of a mid-stream change
    cmd = [exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", *input_args,
           "-map", "0:V:0"]
    if scale_to is not None:
        # ranges: (the input's, the output's) colour range, converted in the same scaler
        rng = f":in_range={ranges[0]}:out_range={ranges[1]}" if ranges else ""
        rng += f":out_color_matrix={out_matrix}" if out_matrix else ""
        cmd += ["-vf", f"scale={width}:{height}:flags={scale_flags}{rng}"]
    # Output the source pixel format so no conversion happens; the Y plane is sliced out here
    # rather than asking for -pix_fmt gray, which would route the samples through swscale.
    cmd += [*_passthrough_args(exe), "-f", "rawvideo", "-pix_fmt", info.pix_fmt, "-"]
    fb = info.layout.frame_bytes(width, height)

    # stderr goes to a temp file, not a pipe: nobody reads it while frames stream, so a pipe
    # could fill up and deadlock ffmpeg against us.
    with tempfile.TemporaryFile() as errfile:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errfile
            )
        except OSError as exc:
            raise ToolError(f"cannot run ffmpeg ({exe}): {exc}") from exc

        def stderr_text() -> str:
            errfile.seek(0)
            return errfile.read().decode(errors="replace")

        try:
            assert proc.stdout is not None
            start = 0
            while limit is None or start < limit:
                want = chunk if limit is None else min(chunk, limit - start)
                buf, got = _read_frames(proc.stdout, want, fb)
                n, rem = divmod(got, fb)
                if got < want * fb:  # EOF: ffmpeg is done (or died)
                    _check_end(info, proc.wait(), stderr_text(), scale_to, start + n, rem,
                               (width, height))
                    if n:
                        yield _make_chunk(
                            memoryview(buf)[: n * fb], n, info, width, height, start, planes
                        )
                    return
                yield _make_chunk(buf, n, info, width, height, start, planes)
                start += n
        finally:
            # Runs on normal end, on error and on generator close()/garbage collection: never
            # leave ffmpeg blocked on a full pipe or as a zombie.
            if proc.poll() is None:
                proc.kill()
            if proc.stdout is not None:
                proc.stdout.close()
            proc.wait()


# --------------------------------------------------------------------------------------------
# Reference / distorted pairs
# --------------------------------------------------------------------------------------------

_OPT_KEYS = frozenset({"width", "height", "pix_fmt", "planes", "scale_to", "scale_flags",
                       "decoder_threads"})
_MISMATCH_MODES = ("error", "prefix")


def _check_opts(opts: dict[str, Any] | None, name: str) -> dict[str, Any]:
    opts = dict(opts or {})
    unknown = set(opts) - _OPT_KEYS
    if unknown:
        raise ValueError(f"{name}: unknown keys {sorted(unknown)}; allowed: {sorted(_OPT_KEYS)}")
    return opts


def iter_frame_pairs(
    ref_path: PathLike,
    dist_path: PathLike,
    *,
    chunk: int = 16,
    ref_opts: dict[str, Any] | None = None,
    dist_opts: dict[str, Any] | None = None,
    scale_dist_to_ref: bool = False,
    scale_flags: str = "bicubic",
    on_length_mismatch: str = "error",
) -> Iterator[tuple[FrameChunk, FrameChunk]]:
    """Iterate over reference and distorted frames in lockstep, as aligned equal-length chunks.

    ``ref_opts``/``dist_opts`` hold per-file ``width``, ``height``, ``pix_fmt`` (raw input),
    ``planes``, ``scale_to``, ``scale_flags`` and ``decoder_threads`` (:func:`iter_frames`).
    With ``scale_dist_to_ref`` the distorted
    video is scaled to the reference frame size (ffmpeg ``scale``, ``flags=scale_flags``) and
    converted to the reference's YUV pixel format in the same scaler, as ffmpeg's libvmaf filter
    graph does (a 9- or 14-bit reference is converted instead, as that graph does:
    :func:`_graph_conversions`); otherwise differing sizes
    raise FrameMismatchError before any frame is read, and bit depths may differ (each chunk
    reports its own).

    Frame counts: when both are known up front (raw/y4m) they are compared before reading;
    otherwise a mismatch is detected when one stream ends first. ``on_length_mismatch="error"``
    raises FrameMismatchError with both counts (the longer one is counted to its end for the
    message); ``"prefix"`` warns and yields only the common prefix. When a count is only known
    by decoding, the error (or warning) comes when the shorter stream ends, after the aligned
    chunks before it were yielded; a pair of chunks is never misaligned.
    """
    if on_length_mismatch not in _MISMATCH_MODES:
        raise ValueError(
            f"on_length_mismatch must be one of {_MISMATCH_MODES}, got {on_length_mismatch!r}"
        )
    ropts = _check_opts(ref_opts, "ref_opts")
    dopts = _check_opts(dist_opts, "dist_opts")
    if scale_dist_to_ref and dopts.get("scale_to") is not None:
        raise ValueError("give either scale_dist_to_ref=True or dist_opts['scale_to'], not both")
    r_flags = ropts.get("scale_flags", scale_flags)
    d_flags = dopts.get("scale_flags", scale_flags)
    r_planes = ropts.get("planes", "y")
    d_planes = dopts.get("planes", "y")
    _validate_common(chunk, r_planes, r_flags)
    _validate_common(chunk, d_planes, d_flags)
    r_scale = _validate_scale_to(ropts.get("scale_to"))
    d_scale = _validate_scale_to(dopts.get("scale_to"))

    def probe(path: PathLike, opts: dict[str, Any]) -> VideoInfo:
        return probe_video(
            path, width=opts.get("width"), height=opts.get("height"), pix_fmt=opts.get("pix_fmt")
        )

    rinfo, dinfo = probe(ref_path, ropts), probe(dist_path, dopts)
    ref_size = r_scale or (rinfo.width, rinfo.height)
    dist_size = d_scale or (dinfo.width, dinfo.height)
    if scale_dist_to_ref:
        d_scale = ref_size
    elif ref_size != dist_size:
        raise FrameMismatchError(
            f"frame size mismatch: reference {rinfo.path} is {ref_size[0]}x{ref_size[1]}, "
            f"distorted {dinfo.path} is {dist_size[0]}x{dist_size[1]} "
            "(to scale the distorted video to the reference size: score --rescale, "
            "score_files(rescale=True), iter_frame_pairs(scale_dist_to_ref=True))"
        )

    limit = None
    nr, nd = rinfo.num_frames, dinfo.num_frames
    if nr is not None and nd is not None and nr != nd:
        msg = _count_message(rinfo.path, str(nr), dinfo.path, str(nd))
        if on_length_mismatch == "error":
            raise FrameMismatchError(msg)
        warnings.warn(f"{msg}; using the first {min(nr, nd)} frames only", stacklevel=2)
        limit = min(nr, nd)

    ref_conv, dist_conv = _graph_conversions(rinfo, dinfo) if scale_dist_to_ref else ({}, {})
    ref_it = _iter_info(
        rinfo, chunk=chunk, scale_to=r_scale, planes=r_planes, limit=limit,
        decoder_threads=ropts.get("decoder_threads"), **{"scale_flags": r_flags, **ref_conv})
    dist_it = _iter_info(
        dinfo, chunk=chunk, scale_to=d_scale, scale_flags=d_flags, planes=d_planes, limit=limit,
        decoder_threads=dopts.get("decoder_threads"), **dist_conv)
    return _lockstep(rinfo, dinfo, ref_it, dist_it, on_length_mismatch)


def _graph_conversions(rinfo: VideoInfo,
                       dinfo: VideoInfo) -> tuple[dict[str, Any], dict[str, Any]]:
    """The conversions of ffmpeg's libvmaf graph with a scale filter on the distorted, as
    :func:`_iter_info` options for the reference and the distorted.

    The distorted frames take the reference's pixel format (bit depth, chroma subsampling)
    and range in the scaler that resizes them: a 10-bit H.264 rung of a 12-bit master is
    scored at 12 bits, like libvmaf does. A gray distorted against a YUV reference too (it
    was scored as decoded, full range: 99.7 for libvmaf's 76.1), with a tagged reference's
    matrix (through RGB there: 0.008 VMAF off untagged, BT.709 measured). A gray reference
    is not converted (libvmaf's filter takes no gray: ffmpeg converts both; score warns).
    A 9- or 14-bit reference is converted instead, by the graph's own bicubic scaler, to the
    format the scaler gives the distorted (:func:`graph_filter_format`: its own, or the next
    depth the filter takes), and to the distorted's range where its frames carry one
    (:func:`graph_converts_reference`)."""
    if graph_converts_reference(rinfo.pix_fmt):
        target = graph_filter_format(dinfo.pix_fmt)
        ref_conv: dict[str, Any] = {"scale_flags": GRAPH_SCALE_FLAGS, "out_pix_fmt": target}
        dist_conv: dict[str, Any] = {"out_pix_fmt": target}
        if dinfo.layout.has_chroma and _states_range(dinfo):
            ref_conv["ranges"] = _range_conversion(dinfo, rinfo)
        else:
            # a distorted whose frames carry no range (an untagged H.264 rung), or a gray one,
            # leaves the graph the reference's: the scaler converts the distorted to it
            dist_conv["ranges"] = _range_conversion(rinfo, dinfo)
            if not dinfo.layout.has_chroma:
                dist_conv["out_matrix"] = _scaler_matrix(rinfo)
        return ref_conv, dist_conv
    if not rinfo.layout.has_chroma:
        return {}, {}
    convert = dinfo.pix_fmt != rinfo.pix_fmt
    return {}, {"out_pix_fmt": rinfo.pix_fmt if convert else None,
                "ranges": _range_conversion(rinfo, dinfo),
                "out_matrix": (_scaler_matrix(rinfo) if convert and not dinfo.layout.has_chroma
                               else None)}


#: The bit depths ffmpeg's libvmaf filter takes (its pixel formats: 8, 10, 12 and 16 bits).
LIBVMAF_FILTER_DEPTHS = (8, 10, 12, 16)

#: The flags of the scaler ffmpeg's graph inserts to convert an input's format (``auto_scale``:
#: bicubic whatever the scale filter on the distorted says).
GRAPH_SCALE_FLAGS = "bicubic"


def graph_converts_reference(ref_pix_fmt: str) -> bool:
    """Whether ffmpeg's libvmaf graph with a ``scale`` filter on the distorted (``--rescale``)
    converts the *reference* (to :func:`graph_filter_format` of the distorted's): a YUV
    reference of a depth the filter does not take (9 or 14 bits). The scaler on the distorted
    then picks the format, and the reference is converted to it (measured with ``-v verbose``:
    a 9-bit master and its 8-bit rung are scored at 8 bits). The colour range is the
    distorted's where its frames carry one (a full-range rung's master is converted to full
    range), else the reference's (a full-range master's untagged H.264 rung, or a gray one, is
    converted to full range). Otherwise the scaler converts the distorted to the reference's
    format and range."""
    ref = pix_fmt_layout(ref_pix_fmt)
    return ref.has_chroma and ref.bit_depth not in LIBVMAF_FILTER_DEPTHS


_SUBSAMPLING_NAMES = {(1, 1): "420", (1, 0): "422", (0, 0): "444"}


def graph_filter_format(dist_pix_fmt: str) -> str:
    """The format the scale filter on the distorted gives it in ffmpeg's libvmaf graph when
    the reference is 9- or 14-bit (:func:`graph_converts_reference`), the one both are scored
    in: the distorted's own where the filter takes it, else its chroma subsampling at the next
    depth the filter takes (a 9-bit rung at 10 bits, a 14-bit one at 16); a gray one as 4:4:4
    YUV of that depth (``gray`` -> ``yuv444p``, ``gray9le`` -> ``yuv444p10le``; measured with
    ``-v verbose``)."""
    layout = pix_fmt_layout(dist_pix_fmt)
    depth = next(d for d in LIBVMAF_FILTER_DEPTHS if d >= layout.bit_depth)
    if layout.has_chroma and depth == layout.bit_depth:
        return dist_pix_fmt
    sub = (_SUBSAMPLING_NAMES[(layout.chroma_shift_w, layout.chroma_shift_h)]
           if layout.has_chroma else "444")
    return f"yuv{sub}p" + ("" if depth == 8 else f"{depth}le")


#: ffmpeg's matrix tags as its scale filter names them (``out_color_matrix``).
_SCALER_MATRICES = {"bt709": "bt709", "bt470bg": "bt470", "smpte170m": "smpte170m",
                    "smpte240m": "smpte240m", "fcc": "fcc", "bt2020nc": "bt2020",
                    "bt2020c": "bt2020"}


def _scaler_matrix(info: VideoInfo) -> str | None:
    """A container input's YUV matrix tag as the scale filter names it; None untagged (or a
    raw input, or a tag the scaler has no name for)."""
    if info.kind == "raw":
        return None
    return _SCALER_MATRICES.get(stream_facts(info.path)["matrix"] or "")


def stream_range(info: VideoInfo) -> str | None:
    """``"pc"``/``"tv"`` of a probed input: a raw one's by its format, else as ffmpeg reads it."""
    return range_of_pix_fmt(info.pix_fmt) if info.kind == "raw" else colour_range(info.path)[0]


def _states_range(info: VideoInfo) -> bool:
    """Whether an input's decoded frames carry a colour range for ffmpeg's format negotiation:
    one ffmpeg states (a tag, a ``yuvj`` format); a headerless raw input only a ``yuvj`` one."""
    if info.kind == "raw":
        return info.pix_fmt.startswith("yuvj")
    return bool(stream_facts(info.path)["range_stated"])


def _range_conversion(target: VideoInfo, source: VideoInfo) -> tuple[str, str] | None:
    """(source's, target's) colour ranges where they differ, for the scaler that converts
    ``source`` to ``target``'s format: ffmpeg's libvmaf graph converts the range there too,
    and a full-range distorted (``yuvj420p``) scaled into a limited reference kept full range
    (luma 0..249 against libvmaf's 2..230: VMAF 69.7 where libvmaf reads 54.9). A gray
    ``source`` gets them even where they are the same: without them ffmpeg's scaler gives the
    YUV frames no range and converts full-range gray to limited (a gray rung of a full-range
    master read 58.2 against libvmaf's 87.1, unwarned)."""
    came, goes = stream_range(source), stream_range(target)
    stated = came != goes or not source.layout.has_chroma
    return (came, goes) if came and goes and stated else None


def _count_message(ref: str, nref: str, dist: str, ndist: str) -> str:
    return (
        f"frame count mismatch: reference {ref} has {nref} frames, "
        f"distorted {dist} has {ndist} frames"
    )


def _lockstep(
    rinfo: VideoInfo,
    dinfo: VideoInfo,
    ref_it: Iterator[FrameChunk],
    dist_it: Iterator[FrameChunk],
    mode: str,
) -> Iterator[tuple[FrameChunk, FrameChunk]]:
    # Both iterators yield exactly `chunk` frames per chunk until their last one, so chunk k of
    # each covers the same frame indices; the first length difference means a stream ended.
    done = 0
    try:
        while True:
            a = next(ref_it, None)
            b = next(dist_it, None)
            na = len(a) if a is not None else 0
            nb = len(b) if b is not None else 0
            if na == nb:
                if na == 0:
                    return
                assert a is not None and b is not None
                yield a, b
                done += na
                continue
            common = min(na, nb)
            ref_longer = na > nb
            longer_info, longer_it = (rinfo, ref_it) if ref_longer else (dinfo, dist_it)
            short_total = str(done + common)
            if mode == "error":
                # Count the longer stream to its end so the message gives both true counts.
                if longer_info.num_frames is not None:
                    long_total = longer_info.num_frames
                else:
                    long_total = done + max(na, nb) + sum(len(c) for c in longer_it)
                long_str = str(long_total)
            else:
                long_str = (
                    str(longer_info.num_frames)
                    if longer_info.num_frames is not None
                    else f"more than {done + common}"
                )
            nref, ndist = (long_str, short_total) if ref_longer else (short_total, long_str)
            msg = _count_message(rinfo.path, nref, dinfo.path, ndist)
            if mode == "error":
                raise FrameMismatchError(msg)
            warnings.warn(f"{msg}; using the first {done + common} frames only", stacklevel=2)
            if common:
                assert a is not None and b is not None
                yield a.head(common), b.head(common)
            return
    finally:
        # Closing stops any ffmpeg still running for the longer (or abandoned) stream.
        for it in (ref_it, dist_it):
            close = getattr(it, "close", None)
            if close is not None:
                close()
