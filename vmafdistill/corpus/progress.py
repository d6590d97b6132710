"""The corpus build's progress bar: its clock kept moving while long jobs run."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: Seconds between redraws of a bar's clock: on a terminal, and in a file (a log), where each
#: redraw appends a line (a SLURM log grew ~200 KB an hour per bar at one a second).
TICK_S = {"terminal": 1.0, "file": 60.0}


def _is_terminal(bar: Any) -> bool:
    stream = getattr(bar, "fp", None) or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


@contextlib.contextmanager
def ticking(bar: Any) -> Iterator[None]:
    """``bar`` redrawn while the block runs (every :data:`TICK_S` seconds), so its elapsed time
    moves: one long job (an hour-long source) showed a bar frozen at its start, alive or not."""
    if bar.disable:
        yield
        return
    every_s = TICK_S["terminal" if _is_terminal(bar) else "file"]
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every_s):
            bar.refresh()

    ticker = threading.Thread(target=tick, name="progress-tick", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
