"""Evaluation metrics: numpy arrays in, plain Python floats out (torch-free).

* :func:`regression_metrics`: MAE, RMSE, PLCC (Pearson), SROCC (Spearman), KRCC (Kendall tau-b).
* :func:`guard_metrics`: a *quality guard* at threshold T fires when VMAF < T. The positive
  class is "below threshold" (an alarm), both for the teacher (``y_true < T``, the truth) and
  the student (``y_pred < T``, the alarm raised). Precision = TP / (TP + FP) (alarms that were
  real), recall = TP / (TP + FN) (real drops that raised an alarm), F1 their harmonic mean.
  A threshold is ``defined`` only when ``y_true`` has both classes; otherwise precision, recall
  and F1 are NaN. When defined but the student never fires, precision is 0 (sklearn's
  ``zero_division=0``), and F1 is 0 when precision + recall = 0.
* :func:`stratified_metrics`: regression metrics per value of grouping columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import VmafDistillError

__all__ = ["guard_metrics", "regression_metrics", "stratified_metrics"]


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise VmafDistillError(f"metrics: y_true has {t.size} values, y_pred {p.size}")
    for name, a in (("y_true", t), ("y_pred", p)):
        if not np.isfinite(a).all():
            raise VmafDistillError(f"metrics: {name} has {int((~np.isfinite(a)).sum())} "
                                   "non-finite value(s)")
    return t, p


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else math.nan


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """MAE, RMSE, PLCC, SROCC, KRCC (tau-b) and n of predictions against teacher scores.

    Correlations are NaN when fewer than 2 values or either side is constant. Non-finite
    inputs raise :class:`VmafDistillError`.
    """
    t, p = _pair(y_true, y_pred)
    n = t.size
    if n == 0:
        return {k: math.nan for k in ("mae", "rmse", "plcc", "srocc", "krcc")} | {"n": 0}
    err = p - t
    plcc = _pearson(t, p)
    srocc = _pearson(stats.rankdata(t), stats.rankdata(p))
    if n < 2 or math.isnan(srocc):
        krcc = math.nan
    else:
        krcc = float(stats.kendalltau(t, p, variant="b").statistic)
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err * err).mean())),
        "plcc": plcc,
        "srocc": srocc,
        "krcc": krcc,
        "n": int(n),
    }


def guard_metrics(
    y_true: Any, y_pred: Any, thresholds: Sequence[float] = (60, 70, 80)
) -> dict[str, dict[str, float | bool | int]]:
    """Precision/recall/F1 of the "VMAF < threshold" alarm, keyed by ``str(threshold)``.

    Per threshold: ``precision``, ``recall``, ``f1`` (NaN unless ``defined``), ``n_pos`` /
    ``n_neg`` (true below / at-or-above), ``n_alarm`` (student fired), ``tp``, ``defined``.
    See the module docstring for the convention.
    """
    t, p = _pair(y_true, y_pred)
    out: dict[str, dict[str, float | bool | int]] = {}
    for thr in thresholds:
        pos, alarm = t < thr, p < thr
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        tp = int((pos & alarm).sum())
        n_alarm = int(alarm.sum())
        defined = n_pos > 0 and n_neg > 0
        if defined:
            precision = tp / n_alarm if n_alarm else 0.0
            recall = tp / n_pos
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        else:
            precision = recall = f1 = math.nan
        out[str(thr)] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "n_pos": n_pos,
            "n_neg": n_neg,
            "n_alarm": n_alarm,
            "tp": tp,
            "defined": defined,
        }
    return out


def stratified_metrics(
    df: pd.DataFrame,
    pred_col: str = "pred",
    target_col: str = "vmaf",
    by: Sequence[str] = ("codec", "height"),
) -> dict[str, dict[str, dict[str, float]]]:
    """``{column: {str(value): regression_metrics}}`` for each column in ``by``."""
    missing = [c for c in (pred_col, target_col, *by) if c not in df.columns]
    if missing:
        raise VmafDistillError(f"stratified_metrics: missing column(s) {missing}")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for col in by:
        out[col] = {
            str(value): regression_metrics(group[target_col], group[pred_col])
            for value, group in df.groupby(col, sort=True)
        }
    return out
