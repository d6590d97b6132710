"""Names of the per-frame VMAF metrics, in libvmaf's JSON-log spelling (torch-free)."""

#: Per-frame metrics in the order libvmaf's JSON log lists them (float feature names).
FRAME_METRICS: tuple[str, ...] = (
    "vmaf",
    "adm2",
    "adm_scale0",
    "adm_scale1",
    "adm_scale2",
    "adm_scale3",
    "motion",
    "motion2",
    "vif_scale0",
    "vif_scale1",
    "vif_scale2",
    "vif_scale3",
)

#: The elementary features behind ``vmaf``.
FEATURE_METRICS: tuple[str, ...] = FRAME_METRICS[1:]

#: The features the VMAF v0.6.1 models take as input (what their JSON ``feature_names`` list).
MODEL_FEATURES: tuple[str, ...] = (
    "adm2",
    "motion2",
    "vif_scale0",
    "vif_scale1",
    "vif_scale2",
    "vif_scale3",
)
