"""The teacher: VMAF (float features) reimplemented in PyTorch, batched and differentiable."""

from .adm import AdmOptions, adm_scales
from .model import VmafModel, resolve_model_path
from .motion import motion2_from_motion, motion_blur, motion_sad
from .score import score_files, to_libvmaf_json, write_csv, write_json
from .vif import VifOptions, vif_scales
from .vmaf import (
    FRAME_METRICS,
    VMAF,
    VmafResult,
    VmafScorer,
    frame_features,
    pool,
    to_vmaf_domain,
    vmaf,
)

__all__ = [
    "FRAME_METRICS",
    "VMAF",
    "AdmOptions",
    "VifOptions",
    "VmafModel",
    "VmafResult",
    "VmafScorer",
    "adm_scales",
    "frame_features",
    "motion2_from_motion",
    "motion_blur",
    "motion_sad",
    "pool",
    "resolve_model_path",
    "score_files",
    "to_libvmaf_json",
    "to_vmaf_domain",
    "vif_scales",
    "vmaf",
    "write_csv",
    "write_json",
]
