"""Per-frame compressed sizes and stream facts from a container, without decoding (torch-free).

Shot bitrates must come from the bits the encoder actually spent on the shot's frames, not from
the file size. ``ffmpeg -c copy -f framecrc`` lists every video packet (dts, pts, duration, size)
and, in its header, the codec and dimensions; packets sorted by pts are the frames in
presentation order, which is the order every decoder here delivers them in. framecrc writes a
packet's flags (``, F=0x..``) only when they differ from "keyframe" alone, so a line without an
``F=`` field is a keyframe and ``F=0x0`` an inter frame (bit 0x1 is AV_PKT_FLAG_KEY).
"""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np

from .._ffmpeg import ffmpeg_exe, input_url
from ..errors import VideoInputError
from .mb_quantizer import MbQuantizerError, MbQuantizers, pyav_available, read_mb_quantizers
from .picture_bytes import PICTURE_CODECS, PictureBytes, read_picture_bytes
from .quantizer import QuantizerTraceError, read_quantizers

__all__ = [
    "FrameAlignment",
    "Packets",
    "align_packets_to_frames",
    "parse_framecrc",
    "parse_framecrc_flags",
    "read_packets",
    "read_rate",
    "scene_bitrates_kbps",
    "shot_bitrate_kbps",
]

#: libavcodec AV_PKT_FLAG_KEY.
PKT_FLAG_KEY = 0x1
PKT_FLAG_DISCARD = 0x4  # AV_PKT_FLAG_DISCARD
#: libavutil AV_NOPTS_VALUE: "no timestamp" (raw elementary streams carry none).
NOPTS_VALUE = -(2**63)


@dataclass(frozen=True)
class Packets:
    """Video packets of one stream in presentation order."""

    path: str
    codec: str  #: ffmpeg codec name, e.g. ``h264``, ``hevc``, ``av1``, ``vp9``
    width: int
    height: int
    sizes: np.ndarray  #: (N,) int64 bytes per frame
    #: (N,) float64 presentation time in seconds (first timed frame at 0; NaN: no pts)
    pts_s: np.ndarray
    duration_s: np.ndarray  #: (N,) float64 frame duration in seconds (from the container)
    keyframe: np.ndarray  #: (N,) bool: the packet is a keyframe (random access point)
    #: (N,) float64 quantizer of each frame in H.264 QP units (H.264 / H.265: its first slice's
    #: QP; NaN: none readable); None when not read (see :mod:`vmafdistill.io.quantizer`)
    qp: np.ndarray | None = None
    #: (N,) float64 area-weighted mean QP of each frame's macroblocks, from the decoder (H.264
    #: only; NaN for other codecs or frames without block QPs); None when not read (see
    #: :mod:`vmafdistill.io.mb_quantizer`)
    mb_qp: np.ndarray | None = None
    #: (N,) int64 pts in the stream's time base as the container gives it (NOPTS_VALUE where it
    #: gives none); matches the decoder's frame timestamps (:func:`align_packets_to_frames`)
    pts: np.ndarray | None = None
    time_base: Fraction = Fraction(1, 1)  #: the time base of :attr:`pts`
    #: (N,) int64 each packet's position in demux order (as ffmpeg's stream copy lists them,
    #: from the first keyframe); None when not known
    demux_index: np.ndarray | None = None
    #: packets before the first keyframe, left out of the list: no decoder outputs them (a
    #: capture or a stream copy starting mid-GOP); their bits belong to no shot
    before_keyframe: int = 0
    #: (N,) bool: the container marks the packet discarded (AV_PKT_FLAG_DISCARD: an MP4 edit
    #: list hides the GOP before a ``-c copy`` cut; decoded, never output); None: not read
    discard: np.ndarray | None = None
    #: (N,) int64 the bytes of each frame's coded picture, the same in every container
    #: (:mod:`vmafdistill.io.picture_bytes`: no repeated parameter sets, delimiters or
    #: x265's SEI); the rate features read these. None when not read
    picture_sizes: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.sizes.shape[0])

    def take(self, index: np.ndarray) -> Packets:
        """The packets at ``index`` (an integer array), in that order."""
        idx = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            sizes=self.sizes[idx],
            pts_s=self.pts_s[idx],
            duration_s=self.duration_s[idx],
            keyframe=self.keyframe[idx],
            qp=None if self.qp is None else self.qp[idx],
            mb_qp=None if self.mb_qp is None else self.mb_qp[idx],
            pts=None if self.pts is None else self.pts[idx],
            demux_index=None if self.demux_index is None else self.demux_index[idx],
            discard=None if self.discard is None else self.discard[idx],
            picture_sizes=None if self.picture_sizes is None else self.picture_sizes[idx],
        )

    @property
    def fps(self) -> float:
        """Mean frame rate from the frame durations (NaN when the container gives none)."""
        total = float(self.duration_s.sum())
        return len(self) / total if total > 0 else float("nan")


def read_packets(path: str | os.PathLike[str], *, quantizer: bool = False,
                 mb_quantizer: bool = False, picture_bytes: bool = False,
                 mb_source: Future[MbQuantizers | None] | None = None,
                 stop: threading.Event | None = None) -> Packets:
    """Sizes, timestamps, codec and size of ``path``'s first video stream that is
    not cover art (ffmpeg's ``0:V:0``, the stream every decoder here reads).

    With ``quantizer``, :attr:`Packets.qp` holds each frame's quantizer from a second,
    decode-free ffmpeg pass that logs the stream headers
    (:func:`~vmafdistill.io.quantizer.read_quantizers`; ~0.1 s for 1500 frames of 640x360
    H.264), matched to the frames by pts. A frame whose headers cannot be read, or every frame
    of a stream that cannot be traced, gets NaN (with a warning naming the file), as does every
    frame of a codec whose headers carry no quantizer this package reads (no warning: no
    student reads such codecs). The sizes and timestamps never depend on it.

    With ``mb_quantizer``, :attr:`Packets.mb_qp` holds each I- and P-frame's mean macroblock QP
    from an in-process decode (:func:`~vmafdistill.io.mb_quantizer.read_mb_quantizers`; H.264
    only, ~0.3 s CPU for those 1500 frames), matched to the frames by packet (not by timestamp);
    NaN for B-frames, for other codecs (no warning) and, with a warning, where the decode fails,
    its packets are not ffmpeg's, or PyAV is missing. ``mb_source``: those block QPs from a
    decode the caller runs instead (the edge's in-process pixel decode,
    :mod:`vmafdistill.edge.pyav_decode`); waited for, not decoded here. ``stop``: set by a
    caller that is leaving (Ctrl-C, an error elsewhere) to end the block-QP decode at once
    (its block QPs then read NaN, unsaid); it ran to the end of the file first.

    With ``picture_bytes``, :attr:`Packets.picture_sizes` holds each frame's coded-picture
    bytes (:func:`~vmafdistill.io.picture_bytes.read_picture_bytes`, a stream copy beside the
    quantizer pass), which a rate feature reads: the same for an encode in MP4, Matroska,
    MPEG-TS or a raw stream. Where its packets cannot be read, a warning names the file and
    the packet sizes stand in.

    Raises:
        VideoInputError: missing/unreadable file, no video stream, or no packets.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        from .video import missing_video

        raise missing_video(p) if not os.path.exists(p) else VideoInputError(
            f"{p}: no such file")
    # The block-QP decode (the longest pass) starts first, in a daemon thread beside the two
    # ffmpeg passes (PyAV decodes without the GIL); it learns the codec from the stream itself
    # and stops early if this function leaves before reading its result.
    mb_pass: _MbQuantizerPass | _GivenMbQuantizers | None = None
    if mb_quantizer and mb_source is not None:
        mb_pass = _GivenMbQuantizers(mb_source)
    elif mb_quantizer and pyav_available():
        mb_pass = _MbQuantizerPass(p, stop)
    try:
        return _read_packets(p, quantizer, mb_quantizer, mb_pass, picture_bytes)
    finally:
        if mb_pass is not None:
            mb_pass.stop.set()


def _read_packets(p: str, quantizer: bool, mb_quantizer: bool,
                  mb_pass: _MbQuantizerPass | _GivenMbQuantizers | None,
                  picture_bytes: bool) -> Packets:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", input_url(p),
           # -copyinkf: the packets before the first keyframe too, counted below (a stream
           # copy drops them silently: a capture starting mid-GOP lost 1.6 s unflagged)
           "-map", "0:V:0", "-c", "copy", "-copyinkf", "-f", "framecrc", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:]) or f"exit {proc.returncode}"
        if "matches no streams" in proc.stderr:
            tail = "no video stream"
        raise VideoInputError(f"{p}: cannot read video packets ({tail})")
    header, lines = parse_framecrc(proc.stdout)
    rows: list[tuple[int, int, int, int, int]] = []
    for fields in lines:
        _, dts, pts, dur, size = (int(f) for f in fields[:5])
        rows.append((dts, pts, dur, size, parse_framecrc_flags(fields[5:])))
    # the list starts at the first keyframe, as a plain stream copy's does (the block-QP pass
    # numbers packets from there); those before it no decoder outputs
    leading = next((i for i, row in enumerate(rows) if row[4] & PKT_FLAG_KEY), len(rows))
    rows = rows[leading:]
    if not rows:
        raise VideoInputError(f"{p}: the video stream has no packets (empty video)")
    tb = Fraction(header.get("tb 0", "1/1").replace(" ", ""))
    codec = header.get("codec_id 0", "unknown")
    try:
        width, height = (int(v) for v in header.get("dimensions 0", "0x0").split("x"))
    except ValueError:
        width = height = 0
    arr = np.array(rows, dtype=np.int64)
    # the picture-bytes copy runs beside the header trace (both after this listing: it
    # splits the copied bytes at these packets' sizes)
    pictures = _PictureBytesPass(p, codec, arr[:, 3]) if picture_bytes else None
    order = np.argsort(arr[:, 1], kind="stable")
    arr = arr[order]
    qp = _frame_quantizers(p, codec, arr[:, 1], len(rows), order) if quantizer else None
    picture_sizes = None if pictures is None else pictures.join()[order]
    mb_qp = None
    if mb_quantizer:
        mb_qp = (np.full(len(rows), np.nan) if mb_pass is None  # no PyAV: warned
                 else _frame_mb_quantizers(p, mb_pass, order))
    # from the first packet that has a pts; NaN where one has none (an MKV's leading RASL
    # pictures: NOPTS sorts first, and the subtraction overflowed every other packet's time,
    # so the timestamps' rate was never read)
    timed = arr[:, 1] != NOPTS_VALUE
    first = int(arr[timed, 1].min()) if timed.any() else 0
    pts = np.where(timed, (np.where(timed, arr[:, 1], first) - first).astype(np.float64)
                   * float(tb), np.nan)
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
        mb_qp=mb_qp,
        pts=arr[:, 1].copy(),
        time_base=tb,
        demux_index=order,
        before_keyframe=leading,
        discard=(arr[:, 4] & PKT_FLAG_DISCARD) != 0,
        picture_sizes=picture_sizes,
    )


class _PictureBytesPass:
    """:func:`~vmafdistill.io.picture_bytes.read_picture_bytes` on a thread; :meth:`join`
    gives the picture bytes per packet (demux order), the packet sizes where it failed."""

    def __init__(self, path: str, codec: str, sizes: np.ndarray) -> None:
        self.path, self.codec, self.sizes = path, codec, sizes
        self.result: PictureBytes | None = None
        self.error: Exception | None = None
        self._thread: threading.Thread | None = None
        if codec in PICTURE_CODECS:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self.result = read_picture_bytes(self.path, self.codec, self.sizes.tolist())
        except Exception as exc:  # said by join() in the caller's thread
            self.error = exc

    def join(self) -> np.ndarray:
        if self._thread is None:  # a codec whose packets are its pictures (VP9)
            return self.sizes.copy()
        self._thread.join()
        if self.result is None:
            warnings.warn(f"{self.error}; its rate features read the container's packet "
                          "sizes (they may differ by container)", stacklevel=4)
            return self.sizes.copy()
        if self.result.unreadable:
            warnings.warn(f"{self.path}: {self.result.unreadable} of {len(self.sizes)} "
                          "packets' coded units are unreadable (a damaged stream? "
                          f"{self.result.first_problem}); each counts its packet size in the "
                          "rate features", stacklevel=4)
        return self.result.sizes


@dataclass(frozen=True)
class FrameAlignment:
    """Which packet each decoded frame came from (:func:`align_packets_to_frames`)."""

    packets: Packets  #: one packet per decoded frame, in the decoder's output order
    #: (K,) indices into the *original* packets of those no decoded frame came from
    hidden: np.ndarray
    #: for each hidden packet, the index of the first decoded frame after it in presentation
    #: order (``n_frames`` when none follows)
    hidden_before_frame: np.ndarray
    by: str  #: ``"pts"`` (matched on timestamps) or ``"order"`` (one packet per frame)
    #: (n,) frame start times from the first frame; None without timestamps or when they do
    #: not increase frame to frame (files joined end to end, timestamp resets)
    frame_times_s: np.ndarray | None
    #: (n - 1,) steps between the frames' timestamps, also where they do not increase (a step
    #: <= 0 marks a join or reset; the steps of each side still tell its frame rate); None
    #: without timestamps
    frame_steps_s: np.ndarray | None = None


def align_packets_to_frames(
    packets: Packets, frame_pts: Sequence[int | None] | None, n_frames: int
) -> FrameAlignment:
    """Attribute packets to the ``n_frames`` frames a decoder output, by timestamp.

    A stream can hold packets the decoder decodes but never outputs, so "packet i is frame i"
    fails on ordinary footage:

    * an MP4 cut with ``-c copy`` keeps the GOP before the cut point and an edit list hides it
      (those packets carry AV_PKT_FLAG_DISCARD);
    * an H.265 stream that starts on a CRA picture (a segment of an open-GOP encode) has RASL
      pictures that reference frames before the cut; the decoder drops them;
    * a damaged stream loses pictures the decoder cannot reconstruct.

    ``frame_pts`` are the decoder's output timestamps in the stream's time base (ffmpeg
    ``-stats_enc_pre {ptsi}``), one per decoded frame. Each frame is matched to the packet
    with its pts. The packets no frame came from (a packet without a pts among them) are
    returned as ``hidden``; their bits belong to no shot. Without usable timestamps (raw
    elementary streams carry none) the packets are taken one per frame, which needs equal
    counts.

    Raises:
        VideoInputError: the frames cannot be attributed (counts differ and the timestamps do
            not match); the message names the file.
    """
    n_packets = len(packets)
    reason = "the decoder gave no frame timestamps"
    if frame_pts is not None and packets.pts is not None:
        fpts = [NOPTS_VALUE if t is None else int(t) for t in frame_pts]
        ppts = packets.pts
        # A packet without a pts can still be a hidden one: MKV writes the RASL picture a
        # decoder drops at an open-GOP cut with none. Frames match the packets that have one.
        timed = ppts != NOPTS_VALUE
        if len(fpts) != n_frames:
            reason = f"the decoder logged {len(fpts)} timestamps for {n_frames} frames"
        elif NOPTS_VALUE in fpts or not np.any(timed):
            reason = "the stream has no timestamps"
        else:
            idx, why = _packet_of_each_frame(ppts, fpts)
            if why is None:
                hidden = np.setdiff1d(np.arange(n_packets), idx)
                frame_sorted = np.sort(np.asarray(fpts, dtype=np.int64))
                before = np.searchsorted(frame_sorted, ppts[hidden], side="right")
                times = (np.asarray(fpts, dtype=np.float64) - fpts[0]) * float(packets.time_base)
                steps = np.diff(times)
                if np.any(steps <= 0):  # joined files, resets: no usable time line
                    times = None
                return FrameAlignment(packets.take(idx), hidden, before.astype(np.int64),
                                      "pts", times, steps)
            reason = why
    if n_packets == n_frames:
        return FrameAlignment(packets, np.zeros(0, np.int64), np.zeros(0, np.int64), "order",
                              None)
    raise VideoInputError(
        f"{packets.path}: {n_packets} video packets but {n_frames} decoded frames and "
        f"{reason}; cannot attribute bits to frames (damaged stream?)"
    )


def _packet_of_each_frame(ppts: np.ndarray, fpts: list[int]) -> tuple[np.ndarray, str | None]:
    """(n,) index of each frame's packet, and None; or why the frames cannot be attributed.

    A frame takes the packet with its pts; where several packets share one (a timestamp reset
    in joined files), they go to the frames with that pts in presentation order. Frames no pts
    names then take the timed packets left over, in presentation order, when there are exactly
    as many and each lies after its frame's pts and no later than the next frame's: a stream
    copy of an open-GOP cut into MKV "fixes" a non-monotonic DTS by moving one packet's pts
    forward, onto its neighbour's or (a 1 ms clock at 29.97 fps) just below it (ffmpeg's 40 ->
    80 where PyAV reads 40), which refused the whole video. Where pts repeat and a timed
    packet is left over (hidden), which copy the decoder dropped is not known: refused, as
    before."""
    slots: dict[int, collections.deque[int]] = {}
    for i, t in enumerate(ppts.tolist()):
        if t != NOPTS_VALUE:
            slots.setdefault(int(t), collections.deque()).append(i)
    repeats = any(len(queue) > 1 for queue in slots.values())
    idx = np.full(len(fpts), -1, dtype=np.int64)
    for j, t in enumerate(fpts):
        queue = slots.get(t)
        if queue:
            idx[j] = queue.popleft()
    unnamed = np.flatnonzero(idx < 0)
    left = sorted(i for queue in slots.values() for i in queue)
    if unnamed.size:
        frame_times = np.asarray(fpts, dtype=np.int64)
        by_time = unnamed[np.argsort(frame_times[unnamed], kind="stable")]
        own = frame_times[by_time]
        # the next frame's pts after each unnamed frame's (none after the last: no bound)
        later = np.append(np.sort(frame_times), np.iinfo(np.int64).max)
        bound = later[np.searchsorted(later, own, side="right")]
        moved = ppts[np.asarray(left, dtype=np.int64)]
        if len(left) != unnamed.size or not np.all((own < moved) & (moved <= bound)):
            return idx, f"{unnamed.size} decoded frame timestamps match no packet"
        idx[by_time] = left
    elif repeats and left:
        return idx, (f"packet timestamps repeat and {len(left)} timed packet(s) no frame came "
                     "from could be any copy")
    return idx, None


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


class _MbQuantizerPass:
    """:func:`~vmafdistill.io.mb_quantizer.read_mb_quantizers` on a daemon thread (an abandoned
    pass never holds up the interpreter's exit); ``stop`` ends it early."""

    def __init__(self, path: str, stop: threading.Event | None = None) -> None:
        self.stop = stop if stop is not None else threading.Event()
        self.result: MbQuantizers | None = None
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True,
                                        name="mb-quantizer")
        self._thread.start()

    def _run(self, path: str) -> None:
        try:
            self.result = read_mb_quantizers(path, None, self.stop)
        except Exception as exc:  # reported by the caller, which falls back
            self.error = exc

    def join(self) -> MbQuantizers | None:
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.result


class _GivenMbQuantizers:
    """Block QPs another decode delivers (a Future), read like :class:`_MbQuantizerPass`."""

    def __init__(self, source: Future[MbQuantizers | None]) -> None:
        self.stop = threading.Event()  # nothing to stop: the caller owns that decode
        self._source = source

    def join(self) -> MbQuantizers | None:
        return self._source.result()


def _frame_mb_quantizers(path: str, mb_pass: _MbQuantizerPass | _GivenMbQuantizers,
                         order: np.ndarray) -> np.ndarray:
    """(N,) mean macroblock QP per frame in presentation order; NaN for frames the pass does
    not decode (B-frames) or that carry no block QPs.

    Matched by packet: the pass numbers the packets in demux order, as framecrc lists them
    (``order`` maps presentation order to that), so no timestamp is involved (an MPEG-TS or
    HLS input's PyAV timestamps are not ffmpeg's shifted ones). Warns, and the slice QP stands
    in everywhere, when the decode fails or the two passes count different packets."""
    n = len(order)
    mb = np.full(n, np.nan)
    try:
        decoded = mb_pass.join()
        if mb_pass.stop.is_set():  # the caller stopped it: it is leaving, no warning
            return mb
    except MbQuantizerError as exc:
        warnings.warn(f"{path}: cannot decode the macroblock quantizers ({exc}); the slice "
                      "QP stands in for them", stacklevel=4)
        return mb
    if decoded is None:  # a codec whose decoder exports no block QPs
        return mb
    if decoded.n_packets != n:
        warnings.warn(f"{path}: the decoder's demuxer read {decoded.n_packets} packets, ffmpeg "
                      f"{n}; the slice QP stands in for the macroblock quantizer", stacklevel=4)
        return mb
    by_packet = np.full(n, np.nan)
    for i, q in decoded.frames:
        if 0 <= i < n:
            by_packet[i] = q
    return by_packet[order]


def parse_framecrc(text: str) -> tuple[dict[str, str], list[list[str]]]:
    """ffmpeg ``framecrc`` output: its header (``{"tb 0": "1/25", ...}``) and the lines of
    stream 0, each split into its stripped fields (index, dts, pts, duration, size, crc,
    flags...)."""
    header: dict[str, str] = {}
    rows: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 5 and fields[0] == "0":
            rows.append(fields)
    return header, rows


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

    ``packet_bytes`` are per-frame sizes in presentation order (the rate features pass
    :attr:`Packets.picture_sizes`, the same in every container).
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


def read_rate(info: Any, packets: Any) -> float:
    """The rate the edge chain (and the corpus, for its sources' shots and its rungs) reads a
    video at: the probe's declared rate where every step of the packets' timestamps is one
    frame at that rate (to 1.5 ticks of their time base, or 0.1 ms: a 1 ms Matroska clock
    steps 33 and 34 ms at 29.97; never half a frame or more) or where their span holds, to
    half a frame, as many frames at that rate as there are steps and the middle of the
    steps is one frame at it, to a quarter frame (jittered capture timestamps), else the
    timestamps' mean rate, with gaps (a capture that dropped out, a
    splice: steps over 1 s and 10x the median step) left out of the span.
    Constant-rate video keeps its declared value exactly; variable-rate video reads the mean,
    one number for one stream in any container, where the declared rate is not one:

    * ffmpeg only guessed the rate (``info.fps_guessed``: a variable-rate MPEG-TS or HLS
      stream without a declared average, whose guess can read 2000 fps);
    * an MPEG-TS or MKV stream that drops frames declares its nominal rate (30 fps where it
      carries 20: bitrates 1.5x its MP4 copy's; 30 where one frame in 150 is missing and the
      MP4 copy declares 29.8: every shot window one frame off);
    * an MP4's or MKV's declared average counts a gap's time (a 60 s hole read a 25 fps stream
      at 1.2 fps, every frame its own shot, where the same stream in MPEG-TS read 25); an MP4
      stream-copied into AVI declares 600.

    A declared rate about half the timestamps' (0.45-0.55x) is kept (field-coded video steps
    at the field rate), unless the timestamps hold a gap and it is their average over the
    whole span, gap included, to 10 %: a container average where the gap is about as long as
    the footage (a field-coded stream with such a gap reads at its field rate). The corpus
    cuts its sources at this rate too, so training and serving shot windows agree."""
    declared = float(info.fps)
    if len(packets) < 2:
        return declared
    steps = np.diff(np.asarray(packets.pts_s, dtype=np.float64))  # sorted by presentation
    steps = steps[np.isfinite(steps)]  # packets without a pts (sorted first) have no step
    moving = steps[steps > 0]
    if moving.size == 0:
        return declared
    gap = steps > max(1.0, 10.0 * float(np.median(moving)))
    kept = steps[~gap]
    span = float(kept.sum())
    if span <= 0:
        return declared
    mean_rate = kept.size / span
    if getattr(info, "fps_guessed", False) or not declared > 0:
        return mean_rate
    tick = float(getattr(packets, "time_base", 0) or 0)
    # under half a frame: an AVI's tick is a whole frame, and 1.5 of them passed a 2-frame
    # step (an AVI that drops frames read at 25 where its MKV copy reads 22.47)
    # a timestamp repeated at a join (``cat a.ts b.ts``: ffmpeg's fix of the second file's
    # clock can stamp its first frame or two with times the first file used) is no step at
    # another rate: with it, a 25 fps join read 26.1 fps (times and bitrates 4.5 % off). A few
    # are left out of this test only; many (a clock too coarse for its frames) still count.
    # "A few" is up to a quarter of the steps: a join repeats a frame or two however short the
    # clip (a cap of 1 in 20 steps read a 54-frame TS with two joins at 27.04, a 12-frame
    # one at 30.6), where a clock too coarse for its frames repeats about every other time
    timed = kept[kept > 0]
    if kept.size - timed.size > max(1, kept.size // 4):
        timed = kept
    if np.all(np.abs(timed - 1.0 / declared) <= min(max(1.5 * tick, 1e-4), 0.5 / declared)):
        return declared  # every step one frame at the declared rate: constant rate
    if (abs(span * declared - kept.size) < 0.5
            and np.all(np.abs(np.percentile(kept * declared, [40, 60]) - 1.0) <= 0.25)):
        # jittered timestamps (a capture's clock) around the declared rate: over the span they
        # add up to the frames they hold (a missing frame adds a whole one); their mean, a
        # hair off, cut other windows than the encode, whose muxer evens them out. Only where
        # the middle of the steps (their 40th and 60th percentiles) is one frame at that rate,
        # to a quarter frame: an MP4 that drops every third frame of 30 declares its frames
        # over its duration (20.22), which its span holds, and steps 2/3 and 4/3 of it in
        # equal numbers (their median, 1.0 where the count is even, passed); its TS copy
        # declares 30 and reads the timestamps' 20.11. A jittered clock's steps spread
        # around one frame (a test's +-0.35 frame: a third of them within a quarter frame)
        return declared
    ratio = declared / mean_rate
    if 0.45 <= ratio <= 0.55:  # field-coded, unless a container average counting a gap
        whole_span = steps.size / float(steps.sum())
        if not (gap.any() and abs(declared / whole_span - 1.0) <= 0.1):
            return declared
    return mean_rate
