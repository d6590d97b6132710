"""Per-frame compressed sizes and stream facts from a container, without decoding (torch-free).

Shot bitrates must come from the bits the encoder actually spent on the shot's frames, not from
the file size. ``ffmpeg -c copy -f framecrc`` lists every video packet (dts, pts, duration, size)
and, in its header, the codec and dimensions; packets sorted by pts are the frames in
presentation order, which is the order every decoder here delivers them in. framecrc writes a
packet's flags (``, F=0x..``) only when they differ from "keyframe" alone, so a line without an
``F=`` field is a keyframe and ``F=0x0`` an inter frame (bit 0x1 is AV_PKT_FLAG_KEY).
"""

from __future__ import annotations

import os
import subprocess
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .._ffmpeg import ffmpeg_exe
from ..errors import VideoInputError
from .quantizer import QuantizerTraceError, read_quantizers

__all__ = [
    "Packets",
    "parse_framecrc_flags",
    "read_packets",
    "scene_bitrates_kbps",
    "shot_bitrate_kbps",
]

#: libavcodec AV_PKT_FLAG_KEY.
PKT_FLAG_KEY = 0x1


@dataclass(frozen=True)
class Packets:
    """Video packets of one stream in presentation order."""

    path: str
    codec: str  #: ffmpeg codec name, e.g. ``h264``, ``hevc``, ``av1``, ``vp9``
    width: int
    height: int
    sizes: np.ndarray  #: (N,) int64 bytes per frame
    pts_s: np.ndarray  #: (N,) float64 presentation time in seconds (first frame at 0)
    duration_s: np.ndarray  #: (N,) float64 frame duration in seconds (from the container)
    keyframe: np.ndarray  #: (N,) bool: the packet is a keyframe (random access point)
    #: (N,) float64 quantizer of each frame in H.264 QP units (H.264 / H.265: its first slice's
    #: QP; NaN: none readable); None when not read (see :mod:`vmafdistill.io.quantizer`)
    qp: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def fps(self) -> float:
        """Mean frame rate from the frame durations (NaN when the container gives none)."""
        total = float(self.duration_s.sum())
        return len(self) / total if total > 0 else float("nan")


def read_packets(path: str | os.PathLike[str], *, quantizer: bool = False) -> Packets:
    """Sizes, timestamps, codec and size of the first video stream of ``path``.

    With ``quantizer``, :attr:`Packets.qp` holds each frame's quantizer from a second,
    decode-free ffmpeg pass that logs the stream headers
    (:func:`~vmafdistill.io.quantizer.read_quantizers`; ~0.1 s for 1500 frames of 640x360
    H.264), matched to the frames by pts. A frame whose headers cannot be read, or every frame
    of a stream that cannot be traced, gets NaN (with a warning naming the file), as does every
    frame of a codec whose headers carry no quantizer this package reads (no warning: no
    student reads such codecs). The sizes and timestamps never depend on it.

    Raises:
        VideoInputError: missing/unreadable file, no video stream, or no packets.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise VideoInputError(f"{p}: no such file")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", p,
           "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:]) or f"exit {proc.returncode}"
        if "matches no streams" in proc.stderr:
            tail = "no video stream"
        raise VideoInputError(f"{p}: cannot read video packets ({tail})")
    header: dict[str, str] = {}
    rows: list[tuple[int, int, int, int, int]] = []
    for line in proc.stdout.splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 5 or fields[0] != "0":
            continue
        _, dts, pts, dur, size = (int(f) for f in fields[:5])
        rows.append((dts, pts, dur, size, parse_framecrc_flags(fields[5:])))
    if not rows:
        raise VideoInputError(f"{p}: the video stream has no packets (empty video)")
    tb = Fraction(header.get("tb 0", "1/1").replace(" ", ""))
    codec = header.get("codec_id 0", "unknown")
    try:
        width, height = (int(v) for v in header.get("dimensions 0", "0x0").split("x"))
    except ValueError:
        width = height = 0
    arr = np.array(rows, dtype=np.int64)
    order = np.argsort(arr[:, 1], kind="stable")
    arr = arr[order]
    qp = _frame_quantizers(p, codec, arr[:, 1], len(rows), order) if quantizer else None
    pts = (arr[:, 1] - arr[0, 1]).astype(np.float64) * float(tb)
    return Packets(
        path=p,
        codec=codec,
        width=width,
        height=height,
        sizes=arr[:, 3].copy(),
        pts_s=pts,
        duration_s=arr[:, 2].astype(np.float64) * float(tb),
        keyframe=(arr[:, 4] & PKT_FLAG_KEY) != 0,
        qp=qp,
    )


def _frame_quantizers(path: str, codec: str, pts: np.ndarray, n: int,
                      order: np.ndarray) -> np.ndarray:
    """(N,) quantizer per frame in presentation order (``pts``: the frames' pts, sorted)."""
    qp = np.full(n, np.nan)
    try:
        parser = read_quantizers(path, codec)
    except QuantizerTraceError as exc:
        warnings.warn(f"{path}: cannot read the quantizer from the stream headers ({exc}); "
                      "it is NaN", stacklevel=3)
        return qp
    if parser is None:  # a codec no student reads
        return qp
    traced = parser.packets()
    by_pts = {t: q for t, q in traced if t is not None}
    if len(by_pts) == len(traced):  # every traced packet has its own pts: match on it
        qp = np.array([by_pts.get(int(t), np.nan) for t in pts])
        unmatched = n - sum(int(t) in by_pts for t in pts)
    elif len(traced) == n:  # no usable pts: both passes list the packets in decode order
        qp = np.array([q for _, q in traced])[order]
        unmatched = 0
    else:
        warnings.warn(f"{path}: the header trace lists {len(traced)} packets without usable "
                      f"timestamps, the stream {n}; the quantizer is NaN", stacklevel=3)
        return qp
    if parser.unreadable or unmatched:
        warnings.warn(f"{path}: {parser.unreadable + unmatched} of {n} packets have no readable "
                      "header (damaged stream?); their quantizer is NaN", stacklevel=3)
    return qp


def parse_framecrc_flags(fields: list[str]) -> int:
    """Packet flags from the fields after a framecrc line's size (``0x<crc>``, ``F=0x..``, ...).

    framecrc omits ``F=`` when the flags are exactly AV_PKT_FLAG_KEY, so no field means 0x1.
    """
    for f in fields:
        if f.startswith("F="):
            return int(f[2:], 16)
    return PKT_FLAG_KEY


def shot_bitrate_kbps(packet_bytes: np.ndarray, start: int, stop: int, fps: float) -> float:
    """Bitrate (kbit/s) of frames ``start .. stop-1``: their packet bits over their duration.

    ``packet_bytes`` are per-frame sizes in presentation order (e.g. :attr:`Packets.sizes`).
    The duration is ``(stop - start) / fps`` (constant-rate corpora); ``fps`` is the stream's
    nominal rate, so a shot of N frames always lasts N / fps whatever the container rounding.
    The corpus builder and the edge predictor both call this, so their rates agree exactly.
    """
    n = len(packet_bytes)
    if not 0 <= start < stop <= n:
        raise ValueError(f"shot {start}..{stop} outside the {n} frames with packets")
    bits = float(np.sum(packet_bytes[start:stop])) * 8.0
    return bits / ((stop - start) / fps) / 1000.0


def scene_bitrates_kbps(
    shots: Iterable[tuple[int, int, int]], packet_bytes: np.ndarray, fps: float
) -> dict[int, float]:
    """kbit/s of each scene: the bits of all its shots' frames over their total duration.

    ``shots`` are ``(start, stop, scene_index)``; windows cut from one scene share its rate.
    """
    n = len(packet_bytes)
    bits: dict[int, float] = {}
    frames: dict[int, int] = {}
    for start, stop, scene_index in shots:
        if not 0 <= start < stop <= n:
            raise ValueError(f"shot {start}..{stop} outside the {n} frames with packets")
        bits[scene_index] = bits.get(scene_index, 0.0) + float(
            np.sum(packet_bytes[start:stop])) * 8
        frames[scene_index] = frames.get(scene_index, 0) + (stop - start)
    return {k: bits[k] / (frames[k] / fps) / 1000.0 for k in bits}
