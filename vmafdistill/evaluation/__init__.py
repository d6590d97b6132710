"""Evaluation (torch-free): metrics, guard metrics, grouped CV splits, conformal, baselines.

Needs pandas, scipy and scikit-learn (the ``train`` extra); ``baselines`` is imported explicitly.
"""

from __future__ import annotations

from .conformal import (
    conformal_quantile,
    coverage,
    group_quantiles,
    intervals,
    worst_group_quantile,
)
from .metrics import guard_metrics, regression_metrics, stratified_metrics
from .splits import make_splits

__all__ = [
    "conformal_quantile",
    "coverage",
    "group_quantiles",
    "guard_metrics",
    "intervals",
    "make_splits",
    "regression_metrics",
    "stratified_metrics",
    "worst_group_quantile",
]
