"""Student bundles: one ``.pt`` file with everything needed to rebuild and trust a student.

The file is ``torch.save`` of a plain dict (tensors, str, numbers, lists, dicts; no pickled
classes, so it loads with ``weights_only=True``)::

    format            "vmafdistill-student"
    format_version    1, or 2 when ``interactions`` is not empty (a reader from before
                      interactions refuses those by version instead of failing on a shape)
    student_cfg       the conf/student mapping the model was built from (a key an older
                      bundle lacks is read from conf/student: ``complete_student_cfg``)
    feature_names     raw input columns, in order
    transforms        {column: kind} applied inside ScaledStudent
    interactions      [[a, b], ...] product columns appended inside ScaledStudent (may be absent)
    state_dict        ScaledStudent.state_dict() (student weights + mean/std/mask buffers)
    meta              what the trainer passed: feature_set, feature_set_version, corpus, metrics,
                      conformal {alpha, q}, guard_thresholds, target, config, ...

It is written to a temporary file next to the target and renamed, so a reader never sees a
half-written bundle.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError, VmafDistillError

# BUNDLE_VERSION (and why 1 is still written) is documented in vmafdistill.versions.
from ..versions import BUNDLE_READABLE_VERSIONS as READABLE_VERSIONS  # re-export
from ..versions import BUNDLE_VERSION as BUNDLE_VERSION  # re-export
from .models import ScaledStudent, complete_student_cfg, scaled_student

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "load_bundle", "save_bundle", "to_plain"]

BUNDLE_FORMAT = "vmafdistill-student"


def to_plain(obj: Any) -> Any:
    """Recursively convert mappings/sequences/numpy values (and OmegaConf containers) to plain
    Python dicts, lists, str, int, float, bool and None."""
    if isinstance(obj, np.generic):  # before float: np.float64 subclasses float
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.ndarray):
        return to_plain(obj.tolist())
    if isinstance(obj, torch.Tensor):
        return to_plain(obj.detach().cpu().tolist())
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) or (
        hasattr(obj, "__iter__") and hasattr(obj, "__len__") and not isinstance(obj, bytes)
    ):
        return [to_plain(v) for v in obj]
    raise ModelError(f"bundle metadata: cannot store a value of type {type(obj).__name__}")


def save_bundle(
    path: str | Path, model: ScaledStudent, student_cfg: Mapping[str, Any], meta: Mapping[str, Any]
) -> None:
    """Write ``model`` (a :class:`ScaledStudent`), its student config and ``meta`` to ``path``.

    Atomic: written to a temporary file in the same directory, then renamed over ``path``.
    """
    if not isinstance(model, ScaledStudent):
        raise ModelError(
            f"save_bundle {path}: expected a ScaledStudent, got {type(model).__name__}"
        )
    path = Path(path)
    payload = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION if model.interactions else 1,
        "student_cfg": to_plain(student_cfg),
        "feature_names": list(model.feature_names),
        "transforms": dict(model.transforms),
        "interactions": [list(pair) for pair in model.interactions],
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": to_plain(meta),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_bundle(path: str | Path) -> tuple[ScaledStudent, dict[str, Any]]:
    """Rebuild the student saved at ``path`` (eval mode) and return it with its metadata.

    The returned meta is the saved ``meta`` plus ``student_cfg``, ``feature_names`` and
    ``transforms``. A missing, unreadable or foreign file raises :class:`ModelError`.
    """
    path = Path(path)
    if path.is_dir():  # a run directory: "no such file" read as a wrong path
        hint = " (its student.pt: --bundle " + str(path / "student.pt") + ")" \
            if (path / "student.pt").is_file() else ""
        raise ModelError(f"student bundle {path}: is a directory, not a student.pt{hint}")
    if not path.is_file():
        raise ModelError(f"student bundle {path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a corrupt/foreign file
        first = str(exc).splitlines()[0] if str(exc) else ""
        if "weights_only" in str(exc):  # its advice (weights_only=False) is not for a bundle
            first = "torch's safe loader refused it: a damaged file, or not a student.pt"
        raise ModelError(f"student bundle {path}: cannot read ({exc.__class__.__name__}: "
                         f"{first})") from exc
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        raise ModelError(f"student bundle {path}: not a vmafdistill student bundle")
    version = payload.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ModelError(f"student bundle {path}: format version {version} (this vmafdistill "
                         f"reads {', '.join(map(str, READABLE_VERSIONS))}); a newer vmafdistill "
                         "wrote it")
    try:
        # hyper-parameters an older bundle lacks: from conf/student (complete_student_cfg)
        cfg = complete_student_cfg(payload["student_cfg"])
        names = payload["feature_names"]
        state = payload["state_dict"]
        # bundles before interactions: none; version-1 bundles written between interactions and
        # version 2 may carry them, and load the same way
        interactions = payload.get("interactions") or []
        model = scaled_student(cfg, state["mean"], state["std"], names, payload["transforms"],
                               interactions)
        model.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError, ValueError, VmafDistillError) as exc:
        raise ModelError(f"student bundle {path}: inconsistent contents ({exc})") from exc
    model.eval()
    meta = dict(payload.get("meta") or {})
    meta.update(student_cfg=cfg, feature_names=list(names), transforms=dict(payload["transforms"]),
                interactions=[list(pair) for pair in interactions])
    return model, meta
