"""Student features: per-frame no-reference luma features and named feature sets.

Importing this package never imports torch (it is part of the edge runtime): the numpy
implementation and the registry are re-exported here; the batched torch twin used for corpus
building is :mod:`vmafdistill.features.frame_torch` and must be imported explicitly.
"""

from .frame_numpy import (
    FEATURE_NAMES,
    FeatureParams,
    RawStats,
    finalize,
    frame_features,
    pool_shot,
    pool_shots,
    raw_stats,
    video_features,
)
from .registry import (
    CODECS,
    FEATURE_SET_VERSION,
    FEATURE_SETS,
    METADATA_FEATURES,
    PIXEL_FEATURES,
    TEACHER_FEATURES,
    canonical_codec,
    feature_set,
    load_feature_sets,
    metadata_features,
)

__all__ = [
    "CODECS",
    "FEATURE_NAMES",
    "FEATURE_SETS",
    "FEATURE_SET_VERSION",
    "METADATA_FEATURES",
    "PIXEL_FEATURES",
    "TEACHER_FEATURES",
    "FeatureParams",
    "RawStats",
    "canonical_codec",
    "feature_set",
    "finalize",
    "frame_features",
    "load_feature_sets",
    "metadata_features",
    "pool_shot",
    "pool_shots",
    "raw_stats",
    "video_features",
]
