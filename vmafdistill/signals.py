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

__all__ = ["Interrupted", "handlers_restored", "interrupts_kept", "raise_exit", "signal_handled"]


def raise_exit(signum: int, frame: Any) -> None:
    """SIGTERM as SystemExit(143), so the pool's cleanup runs (``timeout``, SLURM, systemd)."""
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def signal_handled(signum: int, handler: Any) -> Iterator[None]:
    """``handler`` for ``signum`` in this block, the previous one restored after (only the
    main thread may set handlers: elsewhere the block runs unchanged). Processes started in
    the block inherit SIG_IGN. A signal the process was started ignoring (a script's
    ``vmafdistill train ... &``, ``nohup``) stays ignored: a handler would make a Ctrl-C in
    that terminal stop the background run."""
    if threading.current_thread() is not threading.main_thread() or (
            callable(handler) and signal.getsignal(signum) is signal.SIG_IGN):
        yield
        return
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)


@contextlib.contextmanager
def handlers_restored(*signums: int) -> Iterator[None]:
    """The handlers of ``signums`` as they were before this block, whatever code in it
    installs (``ray.init`` sets its own SIGTERM handler, exit 1, and leaves it after
    shutdown). Outside the main thread the block runs unchanged; a handler set outside
    Python (``getsignal`` gives None) cannot be put back and is left."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.getsignal(signum) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)


class Interrupted(BaseException):
    """A Ctrl-C during a fit: not a KeyboardInterrupt, which Lightning's fit catches and ends
    with a silent ``sys.exit(1)`` (a notebook cell got a SystemExit)."""


@contextlib.contextmanager
def interrupts_kept(sigterm: bool = True) -> Iterator[None]:
    """In this block Ctrl-C is a KeyboardInterrupt that reaches the caller through Lightning
    (which turned it into a silent exit 1) and, with ``sigterm``, SIGTERM is
    ``SystemExit(143)`` (Lightning made it exit 0 with no outputs). Processes forked in the
    block (DDP ranks) get a plain KeyboardInterrupt, which torch's process wrapper ends
    quietly. The Python API leaves SIGTERM to its host (a notebook kernel's own)."""
    import os

    owner = os.getpid()

    def interrupted(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            raise KeyboardInterrupt
        raise Interrupted

    try:
        with contextlib.ExitStack() as stack:
            if sigterm:
                stack.enter_context(signal_handled(signal.SIGTERM, raise_exit))
            stack.enter_context(signal_handled(signal.SIGINT, interrupted))
            yield
    except Interrupted:
        raise KeyboardInterrupt from None
