"""The one mechanism behind the name -> class/factory registries (students, losses, loggers)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from .errors import VmafDistillError

__all__ = ["register"]

T = TypeVar("T")


def register(table: dict[str, T], what: str, names: Iterable[str], obj: T) -> T:
    """Enter ``obj`` in ``table`` under each of ``names`` and return it (for decorators).

    Registering the same object again is a no-op; a name another object holds is a
    VmafDistillError naming ``what`` (``student``, ``loss``, ...), the name and the holder.
    """
    for name in names:
        held = table.get(name, obj)
        if held is not obj:
            raise VmafDistillError(f"{what} {name!r} is already registered "
                                   f"({getattr(held, '__name__', repr(held))})")
        table[name] = obj
    return obj
