"""Decoding at the decoder's side: a subsampled luma grid of every frame, full luma of a few.

When a student reads no spatial pixel feature (the shipped ``quant_ti7`` reads the temporal
statistics only), the edge chain needs the *whole* luma plane of only every k-th frame (the
quality token's issue heuristic), and of every frame only a regular subsample: the cut
histograms use every s-th row and column, the temporal statistics every t-th. Piping every full
plane to Python and subsampling there moves 345 MB through a pipe for a minute of 360p, of
which the chain reads about a third.

Here one ffmpeg process decodes once and its filter graph splits the luma plane in two:

* the *grid*: ``y[::g, ::g]`` of every frame, made by ffmpeg's nearest-neighbour scaler at an
  exact integer ratio on a padded plane (``pad`` shifts the plane by g // 2 samples, so the
  scaler's sample centres, ``k*g + g//2`` of the padded plane, land on ``k*g`` of the frame;
  the extra column and row are cropped off): the same samples numpy's ``y[::g, ::g]`` reads,
  bit for bit (tests compare them on 8- and 10-bit video, odd sizes and steps 2..8);
* the *full* frames: ``select`` keeps frame ``i`` when ``i % every == 0`` (and, when asked, the
  frame before it, for the frame-pair statistics), on a second pipe.

Each pipe has its own reader thread, and both feed one queue that the caller drains in
arrival order: :func:`decode_luma_grid` yields :class:`GridChunk` s (in frame order) and
:class:`FullFrame` s (in frame order) as they come, never waiting for one kind while the other
is pending. That matters: ffmpeg holds an output's last frame until the next one (or the end)
arrives, so the full plane of frame i can come after the grid of frame i + k; a consumer that
waited for it while the grid pipe was full would stall ffmpeg, and itself, for good. The values
the chain computes are those of the full-plane path (tested frame by frame and shot by shot);
only the bytes moved and the copies made change. POSIX only (the second pipe is an inherited
file descriptor); elsewhere the chain decodes full planes.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._ffmpeg import ffmpeg_exe, widen_pipe
from ..errors import ToolError, VideoInputError
from .decode import (
    _NO_FRAME_STATS,
    DecodeLog,
    _BufferPool,
    _check_exit,
    _chunk_array,
    _gray_format,
    _NoFrameStatsError,
    _read_chunks,
    decoder_threads,
    read_frame_pts,
)

__all__ = ["FullFrame", "GridChunk", "GridMismatchError", "GridSpec", "decode_luma_grid",
           "grid_supported"]


class GridMismatchError(VideoInputError):
    """The two outputs disagree on which frames the full planes are (ffmpeg restarted its
    filter graph, and the frame counter, when the pictures changed mid-stream)."""


@dataclass(frozen=True)
class GridSpec:
    """What :func:`decode_luma_grid` delivers: ``y[::step, ::step]`` of every frame, and the
    full planes of frames ``i % every == 0`` (plus ``i - 1`` for each when ``previous``)."""

    step: int
    every: int
    previous: bool = False

    def __post_init__(self) -> None:
        if self.step < 1 or self.every < 1:
            raise ValueError(f"grid step and every must be >= 1: {self}")

    def is_full(self, index: np.ndarray) -> np.ndarray:
        """Whether each frame index gets its full plane."""
        r = np.asarray(index) % self.every
        return (r == 0) | ((r == self.every - 1) if self.previous else False)

    def next_full(self, index: int) -> int:
        """The first frame index after ``index`` that gets its full plane (-1: the first)."""
        j = index + 1
        r = j % self.every
        if r == 0 or (self.previous and r == self.every - 1):
            return j
        return j + (self.every - 1 - r if self.previous else self.every - r)

    def last_full(self, index: int) -> int:
        """The last frame index <= ``index`` that gets its full plane (-1: none)."""
        if index < 0:
            return -1
        k = self.every
        best = index // k * k
        if self.previous and index >= k - 1:
            best = max(best, (index - (k - 1)) // k * k + (k - 1))
        return best

    def filter_graph(self) -> str:
        """ffmpeg's ``-filter_complex`` graph with the outputs ``[grid]`` and ``[full]``."""
        g, k = self.step, self.every
        keep = f"not(mod(n,{k}))" + (f"+eq(mod(n,{k}),{k - 1})" if self.previous else "")
        return (
            "[0:V:0]extractplanes=y,split=2[a][b];"
            f"[a]pad=w=ceil(iw/{g})*{g}+{g}:h=ceil(ih/{g})*{g}+{g}:x={g // 2}:y={g // 2},"
            f"scale=w=iw/{g}:h=ih/{g}:flags=neighbor,crop=w=iw-1:h=ih-1:x=0:y=0[grid];"
            f"[b]select='{keep}'[full]"
        )


@dataclass(frozen=True)
class GridChunk:
    """The grids ``y[::step, ::step]`` of frames ``start .. start + n - 1``."""

    start: int
    step: int  # the grid's pixel step
    grid: np.ndarray  # (n, ceil(H / step), ceil(W / step))

    @property
    def n(self) -> int:
        """Frames in the chunk."""
        return int(self.grid.shape[0])


@dataclass(frozen=True)
class FullFrame:
    """The full luma plane of frame ``index``."""

    index: int
    plane: np.ndarray  # (H, W)


def grid_supported() -> bool:
    """Whether this platform can hand ffmpeg the second pipe (an inherited descriptor)."""
    return os.name == "posix"


def _command(p: str, exe: str, spec: GridSpec, bit_depth: int, threads: int, full_fd: int,
             stats: str | None) -> list[str]:
    fmt = _gray_format(bit_depth)
    stats_args = [] if stats is None else [
        "-stats_enc_pre", stats, "-stats_enc_pre_fmt", "{ptsi}"]
    return [
        exe, "-hide_banner", "-nostdin", "-loglevel", "level+info", "-nostats",
        "-threads", str(decoder_threads(int(threads))), "-noautorotate", "-i", p,
        # one filter thread: the graph is cheap, and slice threads cost more than they save
        "-filter_complex_threads", "1", "-filter_complex", spec.filter_graph(),
        # the grid carries every frame: its encoder logs the frame timestamps
        "-map", "[grid]", "-fps_mode", "passthrough", *stats_args,
        "-f", "rawvideo", "-pix_fmt", fmt, "pipe:1",
        "-map", "[full]", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", fmt,
        f"pipe:{full_fd}",
    ]


def decode_luma_grid(
    path: str | os.PathLike[str],
    spec: GridSpec,
    *,
    width: int,
    height: int,
    bit_depth: int,
    chunk: int = 64,
    prefetch: int = 2,
    threads: int = 0,
    log: DecodeLog | None = None,
) -> Iterator[GridChunk | FullFrame]:
    """The first video stream's luma as grids of every frame and full planes of some.

    Yields :class:`GridChunk` s of up to ``chunk`` frames and :class:`FullFrame` s, each kind
    in frame order, the two interleaved as ffmpeg delivers them (see the module docstring).
    Same decoder, options and ``log`` as :func:`~.decode.decode_luma` (frame timestamps,
    decoder errors, picture changes); only what comes through the pipes differs. When the
    pictures change mid-stream (``log.reconfigured``), ffmpeg restarts the filter graph and
    its frame counter: the full frames after the change are not the ones the indices say, so
    the caller must decode full planes instead (:class:`GridMismatchError` when the counts
    disagree already).

    Raises:
        VideoInputError: the decode failed (:class:`GridMismatchError`: the two outputs
        disagree on the frames).
    """
    if not grid_supported():
        raise ToolError("decode_luma_grid needs a POSIX system (an inherited pipe)")
    p = os.fspath(path)
    exe = ffmpeg_exe()
    want_pts = log is not None and exe not in _NO_FRAME_STATS
    with tempfile.TemporaryDirectory(prefix="vmafdistill-") as tmp:
        stats = os.path.join(tmp, "frames.txt")
        args = (p, exe, spec, width, height, bit_depth, chunk, prefetch, threads, log)
        try:
            yield from _decode_grid_once(*args, stats if want_pts else None)
        except _NoFrameStatsError:
            _NO_FRAME_STATS.add(exe)
            want_pts = False
            yield from _decode_grid_once(*args, None)
        if want_pts and log is not None:
            log.frame_pts[:] = read_frame_pts(stats)


def _decode_grid_once(
    p: str, exe: str, spec: GridSpec, width: int, height: int, bit_depth: int, chunk: int,
    prefetch: int, threads: int, log: DecodeLog | None, stats: str | None,
) -> Iterator[GridChunk | FullFrame]:
    dtype = np.dtype(np.uint8) if bit_depth <= 8 else np.dtype("<u2")
    gw, gh = -(-width // spec.step), -(-height // spec.step)
    plans = {"grid": (None, gw, gh, gw * gh * dtype.itemsize),
             "full": (None, width, height, width * height * dtype.itemsize)}
    read_fd, write_fd = os.pipe()
    produced = finished = False
    with tempfile.TemporaryFile() as errfile:
        try:
            proc = subprocess.Popen(
                _command(p, exe, spec, bit_depth, threads, write_fd, stats),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errfile, bufsize=0,
                pass_fds=(write_fd,))
        except OSError as exc:
            os.close(read_fd)
            raise ToolError(f"cannot run ffmpeg: {exc}") from exc
        finally:
            os.close(write_fd)  # ffmpeg holds the only write end: EOF when it exits
        assert proc.stdout is not None
        pipes = {"grid": proc.stdout, "full": os.fdopen(read_fd, "rb", buffering=0)}
        for f in pipes.values():
            widen_pipe(f.fileno())
        # One bounded queue for both readers, drained in arrival order: the consumer never
        # waits for one pipe while the other's reader is blocked (see the module docstring).
        q: queue.Queue[Any] = queue.Queue(maxsize=max(1, int(prefetch)) + 8)
        short: list[str] = []
        readers = [
            threading.Thread(
                target=_read_chunks, name=f"decode_{kind}", daemon=True,
                args=(pipes[kind], [plans[kind]], chunk if kind == "grid" else 1, False,
                      _BufferPool(max(1, int(prefetch)) + 12), _Tagged(q, kind), short))
            for kind in ("grid", "full")
        ]
        for t in readers:
            t.start()
        try:
            for item in _items(p, spec, q, plans, dtype, bit_depth):
                produced = True
                yield item
            finished = True
        finally:
            if not finished and proc.poll() is None:
                proc.kill()  # the caller stopped early: do not decode the rest
            while any(t.is_alive() for t in readers):  # unblock a reader waiting to queue
                with contextlib.suppress(queue.Empty):
                    q.get(timeout=0.05)
            for t in readers:
                t.join()
            for f in pipes.values():
                f.close()
            rc = proc.wait()
        _check_exit(p, rc, errfile, short, stats, produced, log, finished)


class _Tagged:
    """A reader's view of the shared queue: its items go in as ``(kind, item)``."""

    def __init__(self, q: queue.Queue[Any], kind: str) -> None:
        self.q, self.kind = q, kind

    def put(self, item: Any) -> None:
        self.q.put((self.kind, item))


def _items(p: str, spec: GridSpec, q: queue.Queue[Any], plans: dict[str, tuple[Any, ...]],
           dtype: np.dtype, bit_depth: int) -> Iterator[GridChunk | FullFrame]:
    """Both readers' items as :class:`GridChunk` s and :class:`FullFrame` s, in arrival order;
    at the end, the full frames must be exactly those the spec selects among the frames."""
    start, last_full, open_readers = 0, -1, 2
    while open_readers:
        kind, item = q.get()
        if isinstance(item, BaseException):
            raise item
        if item is None:
            open_readers -= 1
            continue
        _run, entry, got = item
        _frames, w, h, frame_bytes = plans[kind]
        arr = _chunk_array(p, entry, got, w, h, frame_bytes, dtype, bit_depth)
        item = entry = None  # only the caller's arrays may keep the buffer busy now
        if kind == "grid":
            yield GridChunk(start=start, step=spec.step, grid=arr)
            start += arr.shape[0]
        else:
            last_full = spec.next_full(last_full)
            yield FullFrame(index=last_full, plane=arr[0])
        arr = None
    expected_last = spec.last_full(start - 1)
    if last_full != expected_last:
        raise GridMismatchError(
            f"{p}: the decoder's full-frame output ended at frame {last_full}, its grid output "
            f"says {expected_last} (the pictures changed mid-stream?)")
