"""Where the repository's ``conf/`` tree lives, and small helpers to read it without Hydra."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import VmafDistillError


def conf_dir() -> Path:
    """The ``conf/`` directory (``VMAFDISTILL_CONF`` overrides; default: next to the package)."""
    override = os.environ.get("VMAFDISTILL_CONF")
    path = Path(override) if override else Path(__file__).resolve().parents[1] / "conf"
    if not path.is_dir():
        raise VmafDistillError(
            f"config directory {path} not found: run from a source checkout "
            "(pip install -e .) or set VMAFDISTILL_CONF"
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
