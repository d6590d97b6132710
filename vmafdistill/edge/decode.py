"""Decoding for the edge chain: the delivered video's luma plane, straight from ffmpeg.

One ffmpeg process decodes the first video stream and pipes only its Y plane
(``extractplanes=y``: the decoder's samples, no scaler, no range conversion); a reader thread
drains the pipe into a short queue of large chunks, so ffmpeg keeps decoding while the caller
computes on the previous chunk. :class:`DecodeLog` collects what ffmpeg says besides the pixels
(frame timestamps, decoder errors, mid-stream picture changes); :func:`picture_changes` finds
where an adaptive-bitrate recording switches renditions and :func:`decode_luma_runs` then
decodes every rendition at its own size.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._ffmpeg import coded_picture_args, ffmpeg_exe, input_url, widen_pipe
from ..errors import ToolError, VideoInputError
from ..io.ffmpeg_log import _LEVEL_ERROR, _RECONFIGURED, decoder_errors

__all__ = ["CHUNK_BYTES", "DecodeLog", "decode_luma", "decode_luma_runs", "decoder_threads",
           "picture_changes", "read_frame_pts"]


#: Upper bound on one decoded chunk (frames are grouped up to this many bytes, at most
#: ``EdgeOptions.chunk`` frames); with ``prefetch`` chunks queued this bounds memory.
CHUNK_BYTES = 16 << 20


#: ffmpeg binaries found not to know ``-stats_enc_pre`` (ffmpeg < 6.1): decoded without it.
_NO_FRAME_STATS: set[str] = set()

@dataclass
class DecodeLog:
    """What :func:`decode_luma` learned besides the pixels (filled when decoding ends).

    ``frame_pts``: each output frame's pts in the stream's time base (ffmpeg's
    ``-stats_enc_pre {ptsi}``; None where the stream has none; empty with an ffmpeg older than
    6.1, which cannot log them), so packets can be matched to frames
    (:func:`~vmafdistill.io.packets.align_packets_to_frames`). ``errors``: what ffmpeg logged
    at error level while still decoding to the end (a damaged stream, missing references of a
    stream that starts mid-GOP): the frames came out, but some pictures may be wrong.
    ``reconfigured``: ``(pix_fmt, width, height)`` each time the pictures changed mid-stream
    (an adaptive-bitrate recording switching renditions); ffmpeg then scaled the frames to the
    first picture's size, so they are not the coded pixels (:func:`picture_changes` says which).
    """

    frame_pts: list[int | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reconfigured: list[tuple[str, int, int]] = field(default_factory=list)


def decode_luma(
    path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    bit_depth: int,
    chunk: int = 64,
    prefetch: int = 2,
    threads: int = 0,
    log: DecodeLog | None = None,
) -> Iterator[np.ndarray]:
    """Decoded luma of the first video stream as (n, H, W) uint8/uint16 chunks, in order.

    ffmpeg's ``extractplanes=y`` copies the decoder's Y plane untouched (no scaler, no range
    conversion); ``-fps_mode passthrough`` keeps every decoded frame exactly once.

    A reader thread drains ffmpeg's pipe into up to ``prefetch`` queued chunks, so the decoder
    keeps running while the caller computes on the previous chunk (without it ffmpeg stalls as
    soon as the 64 KB pipe is full, and decode and features run one after the other).
    ``threads`` is ffmpeg's decoder ``-threads`` (0 = automatic: :func:`decoder_threads`).
    Chunks hold at most ``chunk`` frames and :data:`CHUNK_BYTES` bytes.

    ``log``, if given, is filled once decoding has finished (:class:`DecodeLog`: frame
    timestamps, decoder errors, mid-stream picture changes).
    """
    p = os.fspath(path)
    exe = ffmpeg_exe()
    want_pts = log is not None and exe not in _NO_FRAME_STATS
    with tempfile.TemporaryDirectory(prefix="vmafdistill-") as tmp:
        stats = os.path.join(tmp, "frames.txt")
        try:
            yield from _decode_luma_once(p, exe, width, height, bit_depth, chunk, prefetch,
                                         threads, stats if want_pts else None, log)
        except _NoFrameStatsError:
            _NO_FRAME_STATS.add(exe)
            want_pts = False
            yield from _decode_luma_once(p, exe, width, height, bit_depth, chunk, prefetch,
                                         threads, None, log)
        if want_pts and log is not None:
            log.frame_pts[:] = read_frame_pts(stats)


def read_frame_pts(stats: str) -> list[int | None]:
    """The frame timestamps an ``-stats_enc_pre {ptsi}`` file lists (None for NOPTS)."""
    with open(stats, encoding="ascii", errors="replace") as f:
        return [int(w) if (w := line.strip()).lstrip("-").isdigit() else None for line in f]


_SHOWINFO = re.compile(r"\] n:\s*\d+ pts:\s*(-?\d+|NOPTS) .*? fmt:(\w+) .*? s:(\d+)x(\d+) ")


def picture_changes(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Where the decoded pictures change format or size: ``[{"frame", "pix_fmt", "width",
    "height"}]``, one entry per run of equal pictures, the first at frame 0.

    A second decode with ffmpeg's ``showinfo`` (its frame counter restarts at every change, so
    frames are counted here), its log read line by line as it comes (a long video's log is
    never held whole); run only when a change is likely (see the edge pipeline).

    Raises:
        VideoInputError: this decode failed (the file's first decode had not).
    """
    p = os.fspath(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
           *coded_picture_args(), "-i", input_url(p), "-map", "0:V:0", "-vf",
           "showinfo=checksum=0",
           "-fps_mode", "passthrough", "-f", "null", "-"]
    runs: list[dict[str, Any]] = []
    tail: list[str] = []
    frame = 0
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, errors="replace")
    except OSError as exc:
        raise ToolError(f"cannot run ffmpeg: {exc}") from exc
    with proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            m = _SHOWINFO.search(line)
            if m is None:
                tail = [*tail[-2:], line.strip()]
                continue
            pic = (m[2], int(m[3]), int(m[4]))
            if not runs or (runs[-1]["pix_fmt"], runs[-1]["width"], runs[-1]["height"]) != pic:
                runs.append({"frame": frame, "pix_fmt": pic[0], "width": pic[1],
                             "height": pic[2]})
            frame += 1
    if proc.returncode != 0:
        raise VideoInputError(f"{p}: the pass that finds picture changes failed "
                              f"({' | '.join(tail) or f'ffmpeg exit {proc.returncode}'})")
    return runs


class _NoFrameStatsError(Exception):
    """This ffmpeg does not know ``-stats_enc_pre`` (it failed before decoding a frame)."""


def decoder_threads(threads: int) -> int:
    """ffmpeg's ``-threads`` for a requested count; 0 = automatic: one decoding thread on a
    machine with at most 2 CPUs, ffmpeg's own choice (0) otherwise.

    The edge's feature pass runs beside the decoder and needs a core of its own: on the 2-core
    VM, ffmpeg's automatic frame threads made ``predict`` slower (1.28-1.39 s, median 1.31 s, 10
    whole-process runs on the 60 s 360p bench clip, 2026-11-24) than one decoding thread
    (1.23-1.32 s, median 1.27 s, interleaved), for the same records.
    """
    if threads < 0:
        raise ValueError(f"decoder threads must be >= 0, got {threads}")
    if threads == 0 and (os.cpu_count() or 1) <= 2:
        return 1
    return int(threads)


def _gray_format(bit_depth: int) -> str:
    return "gray" if bit_depth <= 8 else f"gray{bit_depth}le" if bit_depth < 16 else "gray16le"


def _decode_luma_once(
    p: str, exe: str, width: int, height: int, bit_depth: int, chunk: int, prefetch: int,
    threads: int, stats: str | None, log: DecodeLog | None,
) -> Iterator[np.ndarray]:
    for _, y in _pipe_luma(p, exe, [(None, width, height)], bit_depth, chunk, prefetch,
                           threads, stats, log):
        yield y


def _decode_command(p: str, exe: str, bit_depth: int, threads: int, native: bool,
                    stats: str | None) -> list[str]:
    """The ffmpeg command that pipes ``p``'s Y plane as raw ``bit_depth`` samples."""
    stats_args = [] if stats is None else [
        "-stats_enc_pre", stats, "-stats_enc_pre_fmt", "{ptsi}"]
    return [
        # level+info: errors tagged with their level, and the notice of a mid-stream change
        exe, "-hide_banner", "-nostdin", "-loglevel", "level+info", "-nostats",
        # the coded frames, whose size the probe reported (a phone video's rotation would
        # otherwise transpose them, same bytes per frame, silently scrambled; container
        # cropping shrink them)
        "-threads", str(decoder_threads(int(threads))), *coded_picture_args(), "-i",
        input_url(p),
        "-map", "0:V:0", "-vf", "extractplanes=y", "-fps_mode", "passthrough",
        *(["-noautoscale"] if native else []),
        *stats_args, "-f", "rawvideo", "-pix_fmt", _gray_format(bit_depth), "-",
    ]


class _BufferPool:
    """Chunk buffers handed out before, reused once nothing else holds them.

    A fresh 16 MB bytearray per chunk is zero-filled and faulted in page by page (~0.02 s of
    the reader's CPU per 1500 640x360 frames). Each entry is [buffer, weak reference to the flat
    array the consumer made on it]: every array of a chunk, and every view of one (a kept
    frame), holds that flat array, so the buffer is free exactly when the reference is dead.
    Never while the entry is queued (reference None). The pool keeps only ``size`` entries, so
    a caller that keeps every chunk (a list of them) holds its own buffers and nothing more.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: list[list[Any]] = []

    def take(self, nbytes: int) -> list[Any]:
        """A free entry whose buffer holds ``nbytes`` bytes (a new one if none is free)."""
        for entry in self.entries:
            ref = entry[1]
            if ref is not None and ref() is None and len(entry[0]) == nbytes:
                entry[1] = None
                return entry
        entry = [bytearray(nbytes), None]
        self.entries.append(entry)
        if len(self.entries) > self.size:
            del self.entries[0]  # whoever still holds its arrays keeps it alive
        return entry


def _read_into(stdout: Any, buf: bytearray) -> int:
    """Fill ``buf`` from the pipe; the bytes read (fewer only at the end of the stream)."""
    view = memoryview(buf)
    got = 0
    while got < len(buf):
        k = stdout.readinto(view[got:])
        if not k:
            break
        got += k
    return got


def _read_chunks(stdout: Any, plan: Sequence[tuple[int | None, int, int, int]], chunk: int,
                 native: bool, pool: _BufferPool, q: queue.Queue[Any], short: list[str]) -> None:
    """The reader thread: every run of ``plan`` as ``(run, pool entry, bytes)`` chunks onto
    ``q``, then None; an exception is queued for the consumer. What went wrong with the
    schedule (a run ending early, pictures left over) is appended to ``short``."""
    try:  # readinto releases the GIL: decoding overlaps the caller
        for run, (frames, _w, _h, frame_bytes) in enumerate(plan):
            per_chunk = max(1, min(int(chunk), CHUNK_BYTES // max(frame_bytes, 1)))
            left = frames
            while left is None or left > 0:
                n = per_chunk if left is None else min(per_chunk, left)
                entry = pool.take(n * frame_bytes)
                got = _read_into(stdout, entry[0])
                if got:
                    q.put((run, entry, got))
                if got < n * frame_bytes:
                    if left is not None:
                        short.append(f"the decoder stopped inside picture run {run + 1}"
                                     f" of {len(plan)}")
                    return
                if left is not None:
                    left -= n
        if native and stdout.read(1):
            short.append("the decoder gave more pictures than its picture runs hold")
    except BaseException as exc:  # handed to the consumer
        q.put(exc)
    finally:
        q.put(None)


def _chunk_array(p: str, entry: list[Any], got: int, w: int, h: int, frame_bytes: int,
                 dtype: np.dtype, bit_depth: int) -> np.ndarray:
    """The (n, h, w) frames of a pool buffer; the entry's weak reference marks it in use."""
    if got % frame_bytes:  # ffmpeg writes whole pictures: these are not w x h
        raise VideoInputError(
            f"{p}: the decoder's output ended inside a picture of the probed {w}x{h}: its "
            "pictures are of another size (a stream whose picture size changes inside it, as "
            "AV1/VP9 reference scaling or an encoder's resize mode makes, cannot be "
            "predicted), or the decoder stopped mid-picture")
    n = got // frame_bytes
    flat = np.frombuffer(entry[0], dtype=dtype, count=n * w * h)
    entry[1] = weakref.ref(flat)  # the buffer is free once this array is gone
    return flat.reshape(n, h, w).astype(np.uint8 if bit_depth <= 8 else np.uint16,
                                        copy=bit_depth > 8)


def _check_exit(p: str, rc: int, errfile: Any, short: Sequence[str], stats: str | None,
                produced: bool, log: DecodeLog | None, finished: bool) -> None:
    """Raise what went wrong with a finished decode (schedule, exit status), else fill
    ``log`` with what ffmpeg said (decoder errors, picture changes)."""
    if short:  # before the exit status: stopping the reader breaks ffmpeg's pipe
        raise VideoInputError(f"{p}: {short[0]} (the pictures changed differently than "
                              "the first pass found)")
    if rc != 0:
        errfile.seek(0)
        text = errfile.read().decode(errors="replace")
        if stats is not None and not produced and "stats_enc_pre" in text:
            raise _NoFrameStatsError
        errors = [ln.strip() for ln in text.splitlines() if _LEVEL_ERROR.search(ln)]
        tail = " | ".join(errors[-3:] or text.strip().splitlines()[-3:])
        raise VideoInputError(f"{p}: decoding failed ({tail or f'ffmpeg exit {rc}'})")
    if log is not None and finished:
        errfile.seek(0)
        text = errfile.read().decode(errors="replace")
        log.errors.extend(decoder_errors(text))
        log.reconfigured.extend((m[1], int(m[2]), int(m[3]))
                                for m in _RECONFIGURED.finditer(text))


def _pipe_luma(
    p: str, exe: str, schedule: Sequence[tuple[int | None, int, int]], bit_depth: int,
    chunk: int, prefetch: int, threads: int, stats: str | None, log: DecodeLog | None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode ``p``'s Y plane through a pipe as ``(run, (n, H, W) chunk)`` pairs.

    ``schedule`` lists the runs of equal pictures in order as ``(frames, width, height)``;
    ``frames`` None (the last run only) means "until the end". With one run, ffmpeg scales any
    later picture of another size to the first one's (its default); with several, it is told
    not to (``-noautoscale``), every run arrives at its own size, and a stream that ends early
    or carries more frames than the schedule is an error naming the file.
    """
    native = len(schedule) > 1
    cmd = _decode_command(p, exe, bit_depth, threads, native, stats)
    dtype = np.dtype(np.uint8) if bit_depth <= 8 else np.dtype("<u2")
    plan = [(frames, w, h, w * h * dtype.itemsize) for frames, w, h in schedule]
    produced = False
    with tempfile.TemporaryFile() as errfile:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errfile,
                bufsize=0,
            )
        except OSError as exc:
            raise ToolError(f"cannot run ffmpeg: {exc}") from exc
        stdout = proc.stdout
        assert stdout is not None
        widen_pipe(stdout.fileno())
        q: queue.Queue[tuple[int, list[Any], int] | BaseException | None] = queue.Queue(
            maxsize=max(1, int(prefetch))
        )
        short: list[str] = []  # what went wrong with the schedule (read by the consumer)
        worker = threading.Thread(
            target=_read_chunks, name="decode_luma", daemon=True,
            args=(stdout, plan, chunk, native, _BufferPool(max(1, int(prefetch)) + 4), q, short))
        worker.start()
        finished = False
        try:
            while True:
                item = q.get()
                if item is None:
                    finished = True
                    break
                if isinstance(item, BaseException):
                    raise item
                run, entry, got = item
                _frames, w, h, frame_bytes = plan[run]
                arr = _chunk_array(p, entry, got, w, h, frame_bytes, dtype, bit_depth)
                item = entry = None  # only the caller's arrays may keep the buffer busy now
                produced = True
                yield run, arr
                arr = None
        finally:
            if not finished and proc.poll() is None:
                proc.kill()  # the caller stopped early: do not decode the rest
            while worker.is_alive():  # unblock a reader waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    q.get(timeout=0.05)
            worker.join()
            stdout.close()
            rc = proc.wait()
        _check_exit(p, rc, errfile, short, stats, produced, log, finished)


def decode_luma_runs(
    path: str | os.PathLike[str],
    runs: Sequence[tuple[int, int, int]],
    *,
    bit_depth: int,
    chunk: int = 64,
    prefetch: int = 2,
    threads: int = 0,
) -> Iterator[tuple[int, np.ndarray]]:
    """The luma of a video whose pictures change size mid-stream, every run at its own size.

    ``runs``: ``(frames, width, height)`` of each run of equal pictures, in order (from
    :func:`picture_changes`). Yields ``(run index, (n, H, W) chunk)``, a chunk never spanning
    two runs. ffmpeg is told not to scale (``-noautoscale``), so these are the coded pixels
    of every rendition; a stream whose pictures do not follow ``runs`` exactly raises
    :class:`VideoInputError`. Samples are given at ``bit_depth`` (a run of another depth is
    converted by ffmpeg: the caller should not trust its values).
    """
    if not runs:
        raise ValueError("decode_luma_runs: no runs")
    yield from _pipe_luma(os.fspath(path), ffmpeg_exe(), list(runs), bit_depth, chunk,
                          prefetch, threads, None, None)
