"""The teacher check: the same corpus labelled by libvmaf, and the per-sample gap to its labels.

``vmafdistill corpus teacher_check=true`` (and step 2 of ``vmafdistill pilot``) builds the corpus
twice from one cache: once with the configured teacher and once with libvmaf through the packaged
ffmpeg (same model, same mode, same upscale), then compares the shot labels sample by sample. The
libvmaf twin is a corpus of its own under ``<out_dir>_libvmaf`` (cached like any other); the gap
table is written to ``<out_dir>/teacher_check.csv`` and its summary to ``teacher_check.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import load_yaml
from ..errors import VmafDistillError
from ..folders import atomic_write_text

__all__ = ["TEACHER_CHECK_CSV", "TEACHER_CHECK_JSON", "libvmaf_gap", "oracle_config",
           "run_teacher_check"]

#: What a check writes beside the corpus tables: the per-sample gaps and their summary (which
#: records the corpus it checked; a rebuild with other tables removes both).
TEACHER_CHECK_CSV, TEACHER_CHECK_JSON = "teacher_check.csv", "teacher_check.json"


def oracle_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The corpus config ``cfg`` with libvmaf as its teacher (same model, mode and upscale
    flags) writing to ``<out_dir>_libvmaf``."""
    out = copy.deepcopy(cfg)
    teacher = load_yaml("teacher/libvmaf")
    for key in ("model", "mode", "scale_flags"):
        if key in cfg["teacher"]:
            teacher[key] = cfg["teacher"][key]
    out["teacher"] = teacher
    out["out_dir"] = f"{str(cfg['out_dir']).rstrip('/')}_libvmaf"
    return out


def libvmaf_gap(samples: pd.DataFrame, oracle_samples: pd.DataFrame) -> pd.DataFrame:
    """Per-sample ``vmaf`` (teacher), ``vmaf_libvmaf`` and ``abs_diff``, indexed by sample_id.

    Raises when the two corpora do not hold the same samples (a label would be compared with
    nothing)."""
    a = samples.set_index("sample_id")["vmaf"]
    b = oracle_samples.set_index("sample_id")["vmaf"]
    missing = sorted(set(a.index) ^ set(b.index))
    if missing:
        raise VmafDistillError(
            f"teacher check: {len(missing)} sample(s) are in only one of the two corpora, "
            f"e.g. {missing[:3]}"
        )
    table = pd.DataFrame({"vmaf": a, "vmaf_libvmaf": b.reindex(a.index)})
    table["abs_diff"] = (table["vmaf"] - table["vmaf_libvmaf"]).abs()
    return table


def run_teacher_check(cfg: dict[str, Any], report: Any, build: Any) -> dict[str, Any]:
    """Label ``cfg``'s corpus with libvmaf (``build(oracle_cfg)`` returns its report), compare
    with ``report``'s labels, write the gap table and return its summary."""
    oracle_cfg = oracle_config(cfg)
    oracle = build(oracle_cfg)
    table = libvmaf_gap(report.samples, oracle.samples)
    if table.empty:
        raise VmafDistillError(f"teacher check: the corpus {cfg['out_dir']} has no samples")
    out_dir = Path(cfg["out_dir"])
    table.to_csv(out_dir / TEACHER_CHECK_CSV, float_format="%.9g")
    diff = table["abs_diff"].to_numpy(np.float64)
    summary = {
        "samples": int(diff.size),
        "max_abs_diff": float(np.max(diff)),
        "mean_abs_diff": float(np.mean(diff)),
        "teacher": str(report.samples["teacher_version"].iloc[0]),
        "libvmaf": str(oracle.samples["teacher_version"].iloc[0]),
        "model": str(cfg["teacher"].get("model", "vmaf_v0.6.1")),
        "mode": str(cfg["teacher"].get("mode", "exact")),
        "libvmaf_corpus": str(oracle_cfg["out_dir"]),
        # the corpus checked: a rebuild into out_dir with other tables removes this check
        "corpus_hash": (getattr(report, "manifest", None) or {}).get("corpus_hash"),
    }
    atomic_write_text(out_dir / TEACHER_CHECK_JSON, json.dumps(summary, indent=2) + "\n")
    return summary


def format_teacher_check(summary: dict[str, Any]) -> str:
    """One line: how far the teacher's labels are from libvmaf's."""
    return (f"teacher check ({summary['model']}, {summary['mode']}): {summary['samples']} shot "
            f"labels, max |teacher - libvmaf| = {summary['max_abs_diff']:.2e} VMAF, mean "
            f"{summary['mean_abs_diff']:.2e} ({summary['libvmaf']})")
