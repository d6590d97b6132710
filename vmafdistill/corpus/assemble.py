"""Turn per-(source, rung) frame arrays into the four corpus tables (pure, pandas)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from ..features.frame_numpy import FEATURE_NAMES
from ..features.registry import CODECS, FEATURE_SET_VERSION, TEACHER_FEATURES
from ..features.shot_rows import shot_feature_rows, shot_timing
from ..shots import Shot
from ..vmaf_names import FRAME_METRICS
from .schema import FRAME_COLUMNS, SAMPLE_COLUMNS, SCHEMA_VERSION, SHOT_COLUMNS, SOURCE_COLUMNS


def shot_id(source_id: str, shot_index: int) -> str:
    """``<source_id>/s<NNN>``: the CV grouping unit."""
    return f"{source_id}/s{shot_index:03d}"


def scene_id(source_id: str, scene_index: int) -> str:
    """``<source_id>/c<NNN>``: windows cut from one scene share it."""
    return f"{source_id}/c{scene_index:03d}"


def sources_table(sources: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per source."""
    cols = ["source_id", "path", "sha256", "width", "height", "pix_fmt", "bit_depth", "fps",
            "num_frames", "duration_s"]
    # Table strings are UTF-8: a file name that is not (Latin-1 from an old share) ended the
    # build after every job had run; its bytes are written as \x escapes instead
    df = pd.DataFrame([{c: (os.fsencode(s[c]).decode("utf-8", "backslashreplace")
                            if c == "path" else s[c]) for c in cols} for s in sources],
                      columns=cols)
    df["schema_version"] = SCHEMA_VERSION
    return df[list(SOURCE_COLUMNS)]


def shots_table(sources: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per shot; shots tile each source exactly."""
    rows = []
    for s in sources:
        fps = float(s["fps"])
        for shot_index, start, stop, scene_index in s["shots"]:
            rows.append({
                "source_id": s["source_id"],
                "shot_id": shot_id(s["source_id"], shot_index),
                "shot_index": shot_index,
                "scene_id": scene_id(s["source_id"], scene_index),
                **shot_timing(start, stop, fps),
            })
    df = pd.DataFrame(rows, columns=list(SHOT_COLUMNS[:-1]))
    df["schema_version"] = SCHEMA_VERSION
    return df[list(SHOT_COLUMNS)]


def _frame_shot_ids(source: dict[str, Any]) -> np.ndarray:
    ids = np.empty(int(source["num_frames"]), dtype=object)
    for shot_index, start, stop, _ in source["shots"]:
        ids[start:stop] = shot_id(source["source_id"], shot_index)
    return ids


def frames_table(source: dict[str, Any], result: dict[str, Any]) -> pd.DataFrame:
    """Per-frame rows of one (source, rung)."""
    v = result["variant"]
    f = result["frames"]
    n = int(source["num_frames"])
    df = pd.DataFrame({
        "source_id": source["source_id"],
        "variant_id": v["variant_id"],
        "rung_index": v["rung_index"],
        "shot_id": _frame_shot_ids(source),
        "frame": np.arange(n, dtype=np.int64),
        "packet_bytes": f["packet_bytes"],
        "qp": f["qp"],
        "mb_qp": f["mb_qp"],
        **{name: f[name] for name in FRAME_METRICS},
        **{name: f[name] for name in FEATURE_NAMES},
    })
    df["teacher_backend"] = v["teacher_backend"]
    df["schema_version"] = SCHEMA_VERSION
    return df[list(FRAME_COLUMNS)]


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(values * weights) / np.sum(weights))


#: Relative difference between a rung's read rate and its source's above which the build
#: names the source (the note prints 3 decimals).
RATE_TOLERANCE = 1e-3


def rung_rate(source: dict[str, Any], variant: dict[str, Any]) -> float:
    """The frame rate a rung's rates and bitrates are computed at: the rate ``predict`` reads
    its encode at (``delivered_fps``, from the encode's timestamps; the source's where an older
    cache's record has none). An encode of a constant-rate source reads the source's rate
    exactly; a variable-rate one may not (within 1e-3 of it the source's was used, and every
    bitrate differed from predict's by that much)."""
    return float(variant.get("delivered_fps") or source["fps"])


def samples_rows(source: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    """One sample per shot of one (source, rung).

    The student's inputs (rate, metadata, scene rate, pooled pixel features) come from
    :func:`~vmafdistill.features.shot_rows.shot_feature_rows`, the function the edge calls on
    the videos it is handed. The label is the duration-weighted mean of the frame scores (every
    frame lasts 1/fps at the rung's :func:`rung_rate`, so it equals the frame mean); the teacher's
    own features are pooled the same way.
    """
    v = result["variant"]
    f = result["frames"]
    fps = rung_rate(source, v)
    shots = [Shot(shot_index, start, stop, scene_index)
             for shot_index, start, stop, scene_index in source["shots"]]
    inputs = shot_feature_rows(
        {name: f[name] for name in FEATURE_NAMES}, shots, f["packet_bytes"],
        ref_size=(int(v["ref_width"]), int(v["ref_height"])), codec=v["codec"], fps=fps,
        width=int(v["width"]), height=int(v["height"]), empty="raise", frame_qp=f["qp"],
        frame_mb_qp=f["mb_qp"],
    )
    rows = []
    for shot, student_inputs in zip(shots, inputs, strict=True):
        seg = slice(shot.start, shot.stop)
        weights = np.full(len(shot), 1.0 / fps)
        vmaf = np.asarray(f["vmaf"][seg], np.float64)
        row: dict[str, Any] = {
            **student_inputs,
            "sample_id": f"{shot_id(source['source_id'], shot.shot_index)}/{v['variant_id']}",
            "source_id": source["source_id"],
            "shot_id": shot_id(source["source_id"], shot.shot_index),
            "scene_id": scene_id(source["source_id"], shot.scene_index),
            **{k: v[k] for k in ("variant_id", "rung_index", "codec", "width", "height", "crf",
                                 "preset", "ref_width", "ref_height")},
            "fps": fps,
            "vmaf": _weighted_mean(vmaf, weights),
            "vmaf_min": float(vmaf.min()),
            # libvmaf's harmonic mean: 1 / mean(1 / (x + 1)) - 1
            "vmaf_hmean": float(1.0 / np.mean(1.0 / (vmaf + 1.0)) - 1.0),
            **{name: _weighted_mean(np.asarray(f[name][seg], np.float64), weights)
               for name in TEACHER_FEATURES},
            "teacher_backend": v["teacher_backend"],
            "teacher_version": v["teacher_version"],
            "teacher_model": v["teacher_model"],
            "feature_set_version": FEATURE_SET_VERSION,
            "schema_version": SCHEMA_VERSION,
        }
        rows.append({c: row[c] for c in SAMPLE_COLUMNS})
    return rows


def summary_table(samples: pd.DataFrame) -> pd.DataFrame:
    """Per variant (like the pilot's Table 3): shot-unweighted mean bitrate and VMAF."""
    keys = ["source_id", "rung_index", "variant_id", "codec", "width", "height", "crf"]
    g = samples.groupby(keys, sort=True)
    out = g.agg(shots=("vmaf", "size"), bitrate_kbps=("bitrate_kbps", "mean"),
                vmaf=("vmaf", "mean"), vmaf_min=("vmaf", "min"), vmaf_max=("vmaf", "max"))
    return out.reset_index()


__all__ = [
    "CODECS",
    "RATE_TOLERANCE",
    "frames_table",
    "rung_rate",
    "samples_rows",
    "scene_id",
    "shot_id",
    "shots_table",
    "sources_table",
    "summary_table",
]
