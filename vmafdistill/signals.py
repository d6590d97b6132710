"""Signal handling shared by the long-running commands (corpus builds, training runs).

:func:`signal_handled` sets a handler for one block and puts the previous one back;
:func:`raise_exit` turns a signal into ``SystemExit(128 + signum)`` (143 for SIGTERM), so
cleanup runs and a scheduler's timeout reads as one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["raise_exit", "signal_handled"]


def raise_exit(signum: int, frame: Any) -> None:
    """SIGTERM as SystemExit(143), so the pool's cleanup runs (``timeout``, SLURM, systemd)."""
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def signal_handled(signum: int, handler: Any) -> Iterator[None]:
    """``handler`` for ``signum`` in this block, the previous one restored after (only the
    main thread may set handlers: elsewhere the block runs unchanged). Processes started in
    the block inherit SIG_IGN."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)
