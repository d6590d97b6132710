"""One in-process decode for students that read block QPs: the luma and the block QPs (PyAV).

A student reading ``scene_mb_qp`` (the shipped one) needs the decoder's block QPs of an H.264
delivery, which only an in-process decode exports (:mod:`vmafdistill.io.mb_quantizer`). Decoding
once more in ffmpeg for the pixels cost the chain a second decode on a 2-core box. Here one
PyAV decode gives both: a thread demuxes and decodes, copies each frame's Y plane into pooled
chunk buffers (as :mod:`.decode`'s pipe reader does) and reads the block QPs of its I- and
P-frames, while the caller computes features on the previous chunk (libavcodec runs without
the GIL). On the 60 s 640x360 bench clip it takes 0.70 s CPU, against 0.90 s for ffmpeg's
Y-plane pipe plus 0.31-0.34 s for the separate block-QP decode.

The pixels are the decoder's own samples, as ``extractplanes=y`` gives them (H.264 decoding is
bit-exact). Packets are numbered in demux order, the number riding in pts through the decoder,
so every output frame knows its packet (the caller turns that into ffmpeg's timestamps through
the packet list; no container timestamp is read here).

Only streams this path reproduces exactly are decoded here. Anything else raises
:class:`PyavDeclinedError` and the caller decodes with ffmpeg, which has every robustness
behaviour of the chain (:mod:`.decode`): a codec without block QPs, a stream that starts
mid-GOP, a picture that is not 8-bit planar YUV or changes size, a frame without a number, and
any decoder error (ffmpeg's path records those; here they are only detected).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._ffmpeg import input_url
from ..io.mb_quantizer import MB_QP_CODECS, MbQuantizers, frame_block_qp, video_stream
from ..io.prefetch import prefetched
from .decode import CHUNK_BYTES, _BufferPool, _chunk_array, decoder_threads

__all__ = ["PyavDeclinedError", "PyavFrames", "decode_luma_pyav"]

#: Decoded formats whose plane 0 is the 8-bit luma this path copies.
_LUMA8_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                            "gray"})
_B_FRAME = 3  # AVPictureType AV_PICTURE_TYPE_B (PyAV gives the int)


class PyavDeclinedError(Exception):
    """This stream is decoded by ffmpeg instead (the message says why)."""


@dataclass
class PyavFrames:
    """What :func:`decode_luma_pyav` learned besides the pixels (filled when it ends).

    ``frame_packets``: for each output frame, the index of its packet in demux order (from the
    first keyframe, as ffmpeg's stream copy lists them); ``mb``: the block QPs of the I/P-frames
    (B-frames give none, as :func:`~vmafdistill.io.mb_quantizer.read_mb_quantizers`), None
    until the decode has finished.
    """

    frame_packets: list[int] = field(default_factory=list)
    mb: MbQuantizers | None = None


#: One in-process decode at a time per process: PyAV's log capture is process-wide and
#: last-in-first-out, so two at once would take each other's errors. A second one declines.
_ONE_DECODE = threading.Lock()


def _new_lock_in_child() -> None:
    """A child forked during a decode does not run that decode: it starts with a free lock."""
    global _ONE_DECODE
    _ONE_DECODE = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


class _ErrorLog:
    """libav's error-level messages during the decode, from every thread (frame threads log
    from their own). PyAV's log settings are process-wide: for the decode, its level is raised
    to ERROR (if it was lower) and its dropping of a message equal to the last one logged
    anywhere is switched off (the previous file's last error would otherwise hide this one's
    first); both are restored after."""

    def __enter__(self) -> list[Any]:
        import av.logging

        self._level = av.logging.get_level()
        self._skip = av.logging.get_skip_repeated()
        if self._level is None or self._level < av.logging.ERROR:
            av.logging.set_level(av.logging.ERROR)
        av.logging.set_skip_repeated(False)
        self._capture = av.logging.Capture(local=False)
        return self._capture.__enter__()

    def __exit__(self, *exc: object) -> None:
        import av.logging

        self._capture.__exit__(*exc)
        av.logging.set_skip_repeated(self._skip)
        av.logging.set_level(self._level)

    @staticmethod
    def first_error(logs: list[Any]) -> str | None:
        """The first error-level message of ``logs`` ((level, context, message) tuples); the
        messages read are taken out of the list (a host logging at DEBUG would otherwise make
        every check rescan all of them: quadratic in the stream's length)."""
        import av.logging

        seen = logs[:]
        del logs[: len(seen)]  # PyAV appends to this very list, from any thread
        return next((str(m[-1]).strip() for m in seen if m[0] <= av.logging.ERROR), None)


class _ChunkWriter:
    """Copies frames' Y planes into pooled chunk buffers; hands back each full chunk."""

    def __init__(self, pool: _BufferPool, chunk: int, width: int, height: int) -> None:
        self.pool = pool
        self.width, self.height = width, height
        self.per_chunk = max(1, min(int(chunk), CHUNK_BYTES // max(width * height, 1)))
        self.entry: list[Any] | None = None
        self.view: np.ndarray | None = None
        self.k = 0
        self.format: str | None = None  # the first picture's

    def add(self, frame: Any) -> tuple[list[Any], int] | None:
        """One decoded frame's Y plane (checked to be this path's kind of picture, and the
        first one's: ffmpeg's path splits the video into picture runs where it changes); the
        chunk ``(pool entry, bytes)`` when this frame filled it."""
        fmt = frame.format.name
        if self.format is None:
            if fmt not in _LUMA8_FORMATS:
                raise PyavDeclinedError(f"decoded pictures are {fmt}, not 8-bit planar YUV")
            self.format = fmt
        elif fmt != self.format:
            raise PyavDeclinedError(f"the pictures change format mid-stream ({self.format} -> "
                                    f"{fmt})")
        if (frame.width, frame.height) != (self.width, self.height):
            raise PyavDeclinedError(
                f"decoded pictures are {frame.width}x{frame.height}, not the probe's "
                f"{self.width}x{self.height} (they change size mid-stream, or are cropped)")
        if self.view is None:
            self.entry = self.pool.take(self.per_chunk * self.width * self.height)
            self.view = np.frombuffer(self.entry[0], np.uint8).reshape(
                self.per_chunk, self.height, self.width)
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(self.height, plane.line_size)
        self.view[self.k] = rows[:, : self.width]
        self.k += 1
        return self.flush() if self.k == self.per_chunk else None

    def flush(self) -> tuple[list[Any], int] | None:
        """The chunk being filled ``(pool entry, bytes)``, None if no frame is in it."""
        full = (self.entry, self.k * self.width * self.height) if self.k else None
        self.entry = self.view = None
        self.k = 0
        return full  # type: ignore[return-value]


def _open(path: str, threads: int) -> tuple[Any, Any]:
    """The container and its first video stream, set up to export block QPs."""
    import av

    container = av.open(input_url(path))
    stream = video_stream(container)
    if stream is None or stream.codec_context.name not in MB_QP_CODECS:
        container.close()
        raise PyavDeclinedError("no H.264 video stream (only its decoder exports block QPs)")
    stream.codec_context.options = {"export_side_data": "venc_params"}
    n = decoder_threads(threads)
    stream.thread_count = n
    if n != 1:
        # slice threads only: under frame threads libavcodec's exported block QPs varied from
        # run to run (a P-frame read 36.35 with one thread, 34.64 with eight), moving the
        # student's scene_mb_qp and its prediction by up to 0.25 VMAF on a machine of 8 CPUs
        stream.thread_type = "SLICE"
    return container, stream


def _chunks(path: str, writer: _ChunkWriter, threads: int, out: PyavFrames
            ) -> Iterator[tuple[list[Any], int]]:
    """The decode's chunks ``(pool entry, bytes)`` (one such decode at a time:
    :data:`_ONE_DECODE`); any failure raised as PyavDeclinedError. Run on
    :func:`~vmafdistill.io.prefetch.prefetched`'s reader thread, which closes it early when the
    caller stops (the container, the log settings and the lock are then released)."""
    if not _ONE_DECODE.acquire(blocking=False):
        raise PyavDeclinedError("another in-process decode is running in this process")
    try:
        yield from _decode_locked(path, writer, threads, out)
    except PyavDeclinedError:
        raise
    except Exception as exc:  # a PyAV error or API change: ffmpeg's path takes over
        raise PyavDeclinedError(f"{type(exc).__name__}: {exc}") from None
    finally:
        _ONE_DECODE.release()


def _decode_locked(path: str, writer: _ChunkWriter, threads: int, out: PyavFrames
                   ) -> Iterator[tuple[list[Any], int]]:
    """Demux, number, decode; each frame to ``writer`` (its full chunks yielded), its packet
    and block QP to ``out``."""
    import av

    mb: list[tuple[int, float]] = []
    n = 0
    with _ErrorLog() as errors:
        container, stream = _open(path, threads)
        with container:
            for packet in container.demux(stream):
                if not (packet.size == 0 and packet.dts is None):  # not the flush packet
                    if n == 0 and not packet.is_keyframe:
                        raise PyavDeclinedError("the stream starts mid-GOP")
                    packet.pts = packet.dts = n
                    n += 1
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    raise PyavDeclinedError(f"decoder error: {exc}") from None
                for frame in frames:
                    if frame.pts is None:
                        raise PyavDeclinedError("a decoded frame lost its packet number")
                    full = writer.add(frame)
                    out.frame_packets.append(int(frame.pts))
                    if int(frame.pict_type) != _B_FRAME:
                        mb.append((int(frame.pts), frame_block_qp(frame)))
                    if full is not None:
                        yield full
                _raise_first_error(errors)
            _raise_first_error(errors)  # the demuxer's last word (a file cut short)
    if (last := writer.flush()) is not None:
        yield last
    out.mb = MbQuantizers(n, mb)


def _raise_first_error(logs: list[Any]) -> None:
    if logs and (error := _ErrorLog.first_error(logs)) is not None:
        raise PyavDeclinedError(f"the decoder reported: {error}")


def decode_luma_pyav(path: str | os.PathLike[str], *, width: int, height: int, out: PyavFrames,
                     chunk: int = 64, prefetch: int = 2, threads: int = 0
                     ) -> Iterator[np.ndarray]:
    """``path``'s 8-bit luma as (n, H, W) uint8 chunks in output order, decoded in-process.

    ``out`` is filled as :class:`PyavFrames` says. Raises :class:`PyavDeclinedError` (possibly
    after some chunks) when this stream must be decoded by ffmpeg instead; PyAV must import.
    ``chunk``, ``prefetch`` and ``threads`` as :func:`~vmafdistill.edge.decode.decode_luma`.
    """
    path = os.fspath(path)
    depth = max(1, int(prefetch))
    writer = _ChunkWriter(_BufferPool(depth + 4), chunk, width, height)
    # decoded ahead on a thread (libavcodec runs without the GIL) while the caller computes
    ahead = prefetched(_chunks(path, writer, threads, out), depth, name="decode_luma_pyav")
    with contextlib.closing(ahead):  # stopped with this generator, not at garbage collection
        for entry, got in ahead:
            arr = _chunk_array(path, entry, got, width, height, width * height,
                               np.dtype(np.uint8), 8)
            entry = None
            yield arr
            arr = None
