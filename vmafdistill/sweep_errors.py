"""The error a sweep job run in another process raises (Hydra's joblib, submitit or Ray
launcher): its message, printed by the job, cannot reach the command's caller any other way.

Hydra prints a :class:`~hydra.errors.CompactHydraException` as one line; any other error
escaping a multirun is printed with a traceback, which for a bad override or a missing file
buried the job's one-line message. Hydra is imported here, so the torch-free edge never
imports this module.
"""

from __future__ import annotations

from hydra.errors import CompactHydraException

from .errors import VmafDistillError


class SweepJobError(VmafDistillError, CompactHydraException):
    """A job of a multirun failed; its own message was printed as it happened."""
