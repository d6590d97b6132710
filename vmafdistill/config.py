"""Where the repository's ``conf/`` tree lives, and small helpers to read it without Hydra."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import VmafDistillError


def conf_dir() -> Path:
    """The ``conf/`` tree: ``VMAFDISTILL_CONF`` when set (your own config directory), else the
    one inside the package (``vmafdistill/conf``: in a checkout a link to the repository's
    ``conf/``, in a wheel a copy), so every app works from any directory after ``pip install``."""
    override = os.environ.get("VMAFDISTILL_CONF")
    path = Path(override).expanduser() if override else Path(__file__).resolve().parent / "conf"
    if not path.is_dir():
        where = "VMAFDISTILL_CONF" if override else "the installed package"
        raise VmafDistillError(
            f"config directory {path} not found ({where}); reinstall vmafdistill or set "
            "VMAFDISTILL_CONF to a config directory"
        )
    return path


def load_yaml(relative: str) -> dict[str, Any]:
    """Load ``conf/<relative>`` (``.yaml`` added when missing) as a plain dict."""
    import yaml

    name = relative if relative.endswith(".yaml") else f"{relative}.yaml"
    path = conf_dir() / name
    if not path.is_file():
        raise VmafDistillError(f"config {path} not found")
    with open(path) as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise VmafDistillError(f"config {path} is not a mapping")
    return data
