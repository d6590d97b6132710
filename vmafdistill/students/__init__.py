"""Students: tiny VMAF regressors (MLP, soft decision trees, linear), losses, bundles.

Light on purpose (torch only): the Lightning/Hydra training app lives in
:mod:`vmafdistill.students.app` and is imported only by ``vmafdistill train``.
"""

from __future__ import annotations

from .bundle import load_bundle, save_bundle
from .losses import build_loss
from .models import (
    DEFAULT_TRANSFORMS,
    STUDENTS,
    ScaledStudent,
    Student,
    apply_transforms,
    build_student,
    complete_student_cfg,
    fit_scaler,
    init_output_bias,
    make_scaled_student,
    register_student,
)

__all__ = [
    "DEFAULT_TRANSFORMS",
    "STUDENTS",
    "ScaledStudent",
    "Student",
    "apply_transforms",
    "build_loss",
    "build_student",
    "complete_student_cfg",
    "fit_scaler",
    "init_output_bias",
    "load_bundle",
    "make_scaled_student",
    "register_student",
    "save_bundle",
]
