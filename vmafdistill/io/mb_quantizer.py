"""The quantizer each frame's macroblocks got, from the decoder (H.264; torch-free, needs PyAV).

The slice header's QP (:mod:`vmafdistill.io.quantizer`) is the frame QP the rate control set
before x264's adaptive quantisation and macroblock tree move every macroblock away from it. On
flat, hard-edged content (animation) the macroblocks end up 3.4-4.5 QP coarser than the header
says, which a student reading the header mistakes for a ~10 VMAF better encode
(docs/research-quantizer.md). libavcodec's H.264 decoder exports the final per-macroblock QPs as
frame side data (``export_side_data=venc_params``, :c:type:`AVVideoEncParams`); this module
decodes the stream in-process with PyAV and keeps one number per frame: the mean of its blocks'
QPs, weighted by block area.

What the decoder may skip (the corpus, and the edge when ffmpeg decodes its pixels, run this
beside that decode, so it must be cheap; the edge's own in-process decode,
:mod:`vmafdistill.edge.pyav_decode`, reads the same block QPs from its full decode):

* the inverse transform and the deblocking filter (``skip_idct`` / ``skip_loop_filter``): the
  QPs come from entropy decoding, so they are the same, frame for frame;
* B-frames (``skip_frame=bidir``): they are about half the frames but the cheapest part of the
  bits, and nothing references their pixels in the frames kept. Only I- and P-frames report a
  block QP; :func:`~vmafdistill.features.shot_rows.shot_feature_rows` applies their offset from
  the slice QP to the whole scene.

On the 60 s 640x360 bench clip this pass takes 0.31-0.34 s CPU (every frame, no IDCT or
deblocking: 0.53 s; every frame in full: 0.57-0.62 s).

Other decoders export no block QPs (libavcodec's HEVC decoder has none): those codecs get None
and the caller falls back to the slice QP.
"""

from __future__ import annotations

import enum
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._ffmpeg import input_url
from ..codecs import CODECS

__all__ = ["BLOCK_PARAMS", "MB_QP_CODECS", "MbQuantizerError", "MbQuantizers", "frame_block_qp",
           "frame_mb_qp", "frame_side_data", "pyav_available", "read_mb_quantizers",
           "video_stream"]

#: ffmpeg codec names whose decoder exports per-block QPs.
MB_QP_CODECS: frozenset[str] = frozenset(c.ffmpeg_name for c in CODECS.values() if c.block_qp)

#: libavutil's AVVideoBlockParams (``src_x, src_y, w, h, delta_qp``, int32 each), the records
#: that follow the AVVideoEncParams header in the side-data buffer.
BLOCK_PARAMS = np.dtype([("src_x", "<i4"), ("src_y", "<i4"), ("w", "<i4"), ("h", "<i4"),
                         ("delta_qp", "<i4")])
# Their columns in a record read as int32 words (a record may grow past these five).
_W, _H, _DELTA_QP = (BLOCK_PARAMS.names.index(f) for f in ("w", "h", "delta_qp"))

# The decoder's options: export the block QPs; skip what only the pixels need.
_DECODER_OPTIONS = {"export_side_data": "venc_params", "skip_loop_filter": "all",
                    "skip_idct": "all", "skip_frame": "bidir"}


class MbQuantizerError(RuntimeError):
    """The stream could not be decoded for its macroblock QPs."""


def frame_mb_qp(enc_params: Any, bit_depth: int = 8) -> float:
    """The area-weighted mean block QP of one frame's ``AVVideoEncParams`` side data (PyAV's
    ``VideoEncParams``) on the slice headers' QP scale; NaN without blocks.

    libavcodec's H.264 decoder exports ``qp + delta_qp`` on its internal scale, which adds
    ``6 * (bit_depth - 8)`` (QpBdOffset) to the header QP: that offset is taken off here, so a
    10-bit stream reads like its slice QP. Read straight from the side-data buffer (one numpy
    view, no per-block Python objects); a block record longer than libavutil's 20 bytes today
    (it may grow) is read by stride.
    """
    n = int(enc_params.nb_blocks)
    if n <= 0:
        return float("nan")
    size = int(enc_params.block_size)
    if size < BLOCK_PARAMS.itemsize or size % 4:
        raise MbQuantizerError(f"unexpected AVVideoBlockParams size {size} (at least "
                               f"{BLOCK_PARAMS.itemsize}, a multiple of 4)")
    words = np.frombuffer(memoryview(enc_params), "<i4", count=n * size // 4,
                          offset=int(enc_params.blocks_offset)).reshape(n, size // 4)
    area = words[:, _W].astype(np.float64) * words[:, _H]
    total = float(area.sum())
    if total <= 0:
        return float("nan")
    mean_delta = float((words[:, _DELTA_QP] * area).sum()) / total
    return float(enc_params.qp) + mean_delta - 6.0 * (int(bit_depth) - 8)


def frame_block_qp(frame: Any) -> float:
    """:func:`frame_mb_qp` of a decoded PyAV frame's block-QP side data (NaN without it)."""
    for sd in frame_side_data(frame):
        if "ENC_PARAMS" in str(getattr(sd, "type", "")):
            return frame_mb_qp(sd, int(frame.format.components[0].bits))
    return float("nan")


def frame_side_data(frame: Any) -> Iterator[Any]:
    """A decoded PyAV frame's side-data entries. PyAV 18.1.1 iterates the container's keys
    (its ``Type`` enum) where earlier versions gave the entries: with the keys every frame read
    NaN and every H.264 corpus job failed ("no block QP read")."""
    side_data = frame.side_data
    for item in side_data:
        yield side_data[item] if isinstance(item, enum.Enum) else item


#: libavformat's AV_DISPOSITION_ATTACHED_PIC (cover art).
_ATTACHED_PIC = 0x400


def pyav_available() -> bool:
    """Whether PyAV imports; warns when it does not (the slice QP then stands in)."""
    try:
        import av  # noqa: F401
    except ImportError:
        warnings.warn("PyAV is not installed (pip install av): the macroblock quantizer is "
                      "read from the slice headers instead", stacklevel=3)
        return False
    return True


def video_stream(container: Any) -> Any:
    """The first video stream that is not cover art (ffmpeg's ``0:V:0``, as read_packets)."""
    for s in container.streams.video:
        if not int(s.disposition) & _ATTACHED_PIC:
            return s
    return None


@dataclass(frozen=True)
class MbQuantizers:
    """What :func:`read_mb_quantizers` read: how many packets the stream has (in demux order,
    as ``ffmpeg -c copy`` lists them) and, for every decoded I/P-frame, the index of the packet
    it came from and its mean block QP (NaN without block QPs)."""

    n_packets: int
    frames: list[tuple[int, float]]


def _read(container: Any, stream: Any, stop: threading.Event | None) -> MbQuantizers:
    """Number every packet, decode, read the block QPs. The number rides in the packet's pts
    (and dts), which the decoder hands to the frame made from it: no container timestamp is
    involved (ffmpeg shifts an MPEG-TS or HLS input's to start at 0, PyAV does not; a raw
    stream has none). Packets before the first keyframe are neither counted nor decoded: ffmpeg's
    stream copy, whose packet list this is matched to, drops them too (a capture starting
    mid-GOP). A packet the decoder rejects (damaged) is counted but gives no frame, as with
    ffmpeg. An interlaced frame coded as two field packets takes the first field's number; the
    second's stays NaN."""
    import av

    frames: list[tuple[int, float]] = []
    n = 0
    keyed = False

    def take(decoded: Any) -> None:
        for frame in decoded:
            if frame.pts is not None:
                frames.append((int(frame.pts), frame_block_qp(frame)))

    for packet in container.demux(stream):
        if stop is not None and stop.is_set():
            break
        if not (packet.size == 0 and packet.dts is None):  # not the demuxer's flush packet
            keyed = keyed or bool(packet.is_keyframe)
            if not keyed:
                continue
            packet.pts = packet.dts = n
            n += 1
        try:
            take(packet.decode())
        except av.error.InvalidDataError:
            continue
    return MbQuantizers(n, frames)


def read_mb_quantizers(path: str | os.PathLike[str], codec: str | None,
                       stop: threading.Event | None = None) -> MbQuantizers | None:
    """The mean block QP of every decoded I- and P-frame of ``path``'s first video stream
    (B-frames are not decoded), with the index of the packet each came from
    (:class:`MbQuantizers`).

    None when ``codec`` (ffmpeg's name; None: the stream's own, as PyAV reads it) is not one of
    :data:`MB_QP_CODECS`, or when PyAV is not installed (with a warning: the caller then reads
    the slice QP only). ``stop``, once set, ends the decode early (the result is then partial).

    Raises:
        MbQuantizerError: PyAV cannot open or decode the stream, or reads side data in a way
            this module does not know (another PyAV version).
    """
    if codec is not None and codec not in MB_QP_CODECS:
        return None
    if not pyav_available():
        return None
    import av

    p = os.fspath(path)
    try:
        with av.open(input_url(p)) as container:
            stream = video_stream(container)
            if stream is None:
                raise MbQuantizerError(f"{p}: no video stream")
            if stream.codec_context.name not in MB_QP_CODECS:
                return None
            stream.codec_context.options = dict(_DECODER_OPTIONS)
            stream.thread_count = 1  # beside the pixel decode on a 2-core edge box
            return _read(container, stream, stop)
    except MbQuantizerError:
        raise
    except IndexError as exc:  # PyAV's demuxer on a stream that appears mid-file
        raise MbQuantizerError(f"{p}: a video stream that starts mid-file (joined files with "
                               "other stream IDs?) stops PyAV's demuxer") from exc
    except Exception as exc:  # any PyAV failure (another version's API too): caller falls back
        raise MbQuantizerError(f"{p}: {type(exc).__name__}: {exc}") from exc
