"""Decode ahead of compute: a bounded background reader over a frame iterator (torch-free).

The decoders here are ffmpeg subprocesses writing into a pipe; a pipe holds 64 KiB, less than
one 360p frame, so without a reader ffmpeg stalls while the caller computes on the previous
chunk. :func:`prefetched` pulls up to ``depth`` chunks on a thread (the pipe read releases the
GIL), so decoding overlaps with the teacher's or the features' arithmetic.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["prefetched"]

T = TypeVar("T")
_DONE = object()


def prefetched(items: Iterable[T], depth: int = 2, *,
               name: str = "vmafdistill-prefetch") -> Iterator[T]:
    """Yield ``items`` in order, read ``depth`` ahead on a background thread (named ``name``).

    An exception raised by ``items`` is re-raised here, at the position it occurred. Closing
    the returned generator early (``break``) stops the reader after its current item and
    closes ``items`` (so a decoder subprocess is reaped); an error of that close is raised by
    the close here, not lost on the reader thread. ``depth < 1`` iterates inline.
    """
    if depth < 1:
        yield from items
        return
    buf: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    source = iter(items)
    close_error: list[BaseException] = []

    def read() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        buf.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            buf.put(exc)
            return
        finally:
            close = getattr(source, "close", None)
            if stop.is_set() and close is not None:
                try:
                    close()
                except BaseException as exc:  # raised by the consumer's close
                    close_error.append(exc)
        buf.put(_DONE)

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while True:
            item = buf.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while reader.is_alive():  # drain so a blocked put() sees the stop flag
            with contextlib.suppress(queue.Empty):
                buf.get(timeout=0.05)
        reader.join()
        if close_error:
            raise close_error[0]
