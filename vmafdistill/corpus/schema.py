"""Corpus table layout: the contract between the corpus builder, the students and the edge.

A built corpus is a directory::

    <out>/corpus.json            manifest: name, schema_version, corpus_hash, counts, failures
    <out>/tables/sources.parquet one row per source clip
    <out>/tables/shots.parquet   one row per shot of a source (shots tile the source exactly)
    <out>/tables/frames.parquet  one row per (source, variant, frame): teacher + pixel features
    <out>/tables/samples.parquet one row per (shot, variant): the training sample
    <out>/cache/...              content-addressed per-(source, rung) artefacts (encodes, labels)

Torch-free. Every table carries ``schema_version``; readers refuse other versions.
"""

from __future__ import annotations

from ..features.registry import (
    CODECS,
    PIXEL_FEATURES,
    QUANTIZER_FEATURES,
    SCENE_RATE_FEATURES,
    SHOT_FEATURES,
    TEACHER_FEATURES,
)

# Bump SCHEMA_VERSION in vmafdistill.versions when a column is added, renamed, removed or changes
# meaning (a corpus built before an added column lacks it).
from ..versions import SCHEMA_VERSION as SCHEMA_VERSION  # re-export
from ..vmaf_names import FEATURE_METRICS

TABLES: tuple[str, ...] = ("sources", "shots", "frames", "samples")

#: Identity of a clip. ``source_id`` is a stable slug (file stem, made unique), ``sha256`` the
#: content hash of the file the corpus was built from.
SOURCE_COLUMNS: tuple[str, ...] = (
    "source_id", "path", "sha256", "width", "height", "pix_fmt", "bit_depth", "fps",
    "num_frames", "duration_s", "schema_version",
)

#: ``shot_id`` = ``<source_id>/s<shot_index:03d>`` is the CV grouping unit (the pilot's);
#: ``scene_id`` = ``<source_id>/c<scene_index:03d>`` groups windows split from one long scene.
#: Frames ``start_frame .. stop_frame-1``.
SHOT_COLUMNS: tuple[str, ...] = (
    "source_id", "shot_id", "shot_index", "scene_id", "start_frame", "stop_frame",
    "num_frames", "start_s", "end_s", "duration_s", "schema_version",
)

#: One ladder variant of a source: ``variant_id`` is the rung label, e.g. ``h264_640x360_crf26``;
#: ``rung_index`` its position in the ladder config (tables are sorted by it).
VARIANT_COLUMNS: tuple[str, ...] = (
    "variant_id", "rung_index", "codec", "width", "height", "crf", "preset",
    "ref_width", "ref_height",
)

#: Per-frame rows: teacher metrics (``vmaf`` + every elementary feature), the encoded frame's
#: packet size and quantizer (``qp``, H.264 QP units, NaN when the frame's headers carry none;
#: ``mb_qp``, the mean macroblock QP from the decoder, NaN for codecs that export none),
#: and the 11 pixel features of the decoded distorted frame.
FRAME_COLUMNS: tuple[str, ...] = (
    "source_id", *VARIANT_COLUMNS[:2], "shot_id", "frame", "packet_bytes", "qp", "mb_qp",
    "vmaf", *FEATURE_METRICS, *PIXEL_FEATURES,
    "teacher_backend", "schema_version",
)

#: Shot labels: ``vmaf`` is the duration-weighted mean of the frame scores (the training
#: target); also its min and harmonic mean.
LABEL_COLUMNS: tuple[str, ...] = ("vmaf", "vmaf_min", "vmaf_hmean")

#: Metadata features of a sample (see :mod:`vmafdistill.features.registry`).
METADATA_COLUMNS: tuple[str, ...] = (
    "bitrate_kbps", "bits_per_pixel", "log_bitrate", "log_bpp", "scale_ratio",
    *(f"codec_{c}" for c in CODECS),
    "scene_bitrate_kbps", *SCENE_RATE_FEATURES, *QUANTIZER_FEATURES,
)

#: Per-sample rows. Every feature-set column (``FEATURE_SETS[name]``) is a column here, so a
#: student selects its inputs with ``samples[feature_set(name)]``; registered shot features
#: (:data:`~vmafdistill.features.registry.SHOT_FEATURES`) follow the pixel features.
SAMPLE_COLUMNS: tuple[str, ...] = (
    "sample_id", "source_id", "shot_id", "scene_id", *VARIANT_COLUMNS, "fps",
    "start_frame", "stop_frame", "num_frames", "duration_s",
    *LABEL_COLUMNS, *TEACHER_FEATURES, *METADATA_COLUMNS, *PIXEL_FEATURES, *SHOT_FEATURES,
    "teacher_backend", "teacher_version", "teacher_model", "feature_set_version",
    "schema_version",
)
