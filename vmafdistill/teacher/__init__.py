"""The teacher: VMAF in PyTorch, batched and streamed.

Two modes: ``exact`` reproduces libvmaf's integer (default) models bit for bit
(:mod:`.exact`); ``float`` reproduces its float features and is differentiable.
"""

from ..vmaf_names import FRAME_METRICS
from .adm import AdmOptions, adm_scales
from .model import VmafModel, resolve_model_path
from .motion import motion2_from_motion, motion_blur, motion_sad
from .score import score_files, to_libvmaf_json, write_csv, write_json
from .vif import VifOptions, vif_scales
from .vmaf import (
    VMAF,
    VmafResult,
    VmafScorer,
    frame_features,
    pool,
    to_vmaf_domain,
    vmaf,
    vmaf_exact,
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
    "vmaf_exact",
    "write_csv",
    "write_json",
]
