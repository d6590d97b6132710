"""Split-conformal prediction intervals for a point predictor (torch-free).

Given absolute residuals r_1..r_n of a predictor on calibration data exchangeable with the
test data, q = the k-th smallest r with k = ceil((n + 1)(1 - alpha)) gives intervals
[pred - q, pred + q] whose coverage of a fresh point is >= 1 - alpha (marginally, finite
sample; at most 1 - alpha + 1/(n + 1) without ties). When k > n, q = inf.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import VmafDistillError

__all__ = [
    "conformal_quantile",
    "coverage",
    "group_quantiles",
    "held_out_rule_coverage",
    "intervals",
    "worst_group_quantile",
]


def conformal_quantile(abs_residuals: Any, alpha: float = 0.1) -> float:
    """Split-conformal half-width: the ceil((n+1)(1-alpha))-th smallest absolute residual."""
    r = np.asarray(abs_residuals, dtype=np.float64).reshape(-1)
    if not 0.0 < alpha < 1.0:
        raise VmafDistillError(f"conformal: alpha must be in (0, 1), got {alpha}")
    if r.size == 0:
        raise VmafDistillError("conformal: no calibration residuals")
    if not np.isfinite(r).all() or (r < 0).any():
        raise VmafDistillError("conformal: residuals must be finite and non-negative")
    n = r.size
    k = math.ceil((n + 1) * (1.0 - alpha) - 1e-12)
    if k > n:
        return math.inf
    return float(np.partition(r, k - 1)[k - 1])


def worst_group_quantile(abs_residuals: Any, groups: Any, alpha: float = 0.1) -> float:
    """The largest per-group split-conformal half-width: max over g of
    :func:`conformal_quantile` of the residuals of group g.

    With one group per held-out CV fold (e.g. per source under leave-one-source-out) this
    calibrates for the hardest held-out group: each group alone gets >= 1 - alpha coverage
    (group-conditional, not just marginal), the guarantee a student deployed on content unlike
    any single training source needs.
    """
    return max(group_quantiles(abs_residuals, groups, alpha).values())


def group_quantiles(abs_residuals: Any, groups: Any, alpha: float = 0.1) -> dict[Any, float]:
    """``{group: conformal_quantile(residuals of that group)}`` for every group label."""
    r = np.asarray(abs_residuals, dtype=np.float64).reshape(-1)
    g = np.asarray(groups).reshape(-1)
    if g.shape != r.shape:
        raise VmafDistillError(f"conformal: {r.size} residuals but {g.size} group labels")
    if r.size == 0:
        raise VmafDistillError("conformal: no calibration residuals")
    return {k.item() if hasattr(k, "item") else k: conformal_quantile(r[g == k], alpha)
            for k in np.unique(g)}


def intervals(pred: Any, q: float) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) = (pred - q, pred + q)."""
    p = np.asarray(pred, dtype=np.float64)
    return p - q, p + q


def coverage(y: Any, lo: Any, hi: Any) -> float:
    """Fraction of ``y`` with lo <= y <= hi."""
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        raise VmafDistillError("coverage: no values")
    return float(np.mean((np.asarray(lo) <= y) & (y <= np.asarray(hi))))


def held_out_rule_coverage(abs_residuals: Any, folds: Any, alpha: float = 0.1,
                           rule: str = "pooled") -> tuple[float, dict[Any, float]]:
    """How often the final model's interval rule covers rows it was not calibrated on.

    The final q is computed from every fold's OOF residuals, so its coverage of those same
    residuals is >= 1 - alpha by construction. Here each fold is covered by the q the ``rule``
    (``pooled``: :func:`conformal_quantile` of the residuals; ``worst_fold``:
    :func:`worst_group_quantile` over the folds) gives on the *other* folds' residuals.
    Returns ``(coverage over the covered rows, {fold: coverage})``; a fold whose q is not
    finite (too few other rows, or a single fold) is left out, and with none left the
    coverage is NaN.
    """
    r = np.asarray(abs_residuals, dtype=np.float64).reshape(-1)
    f = np.asarray(folds).reshape(-1)
    if f.shape != r.shape:
        raise VmafDistillError(f"conformal: {r.size} residuals but {f.size} fold labels")
    if rule not in ("pooled", "worst_fold"):
        raise VmafDistillError(f"conformal: unknown final-q rule {rule!r}")
    per_fold: dict[Any, float] = {}
    covered = rows = 0
    for k in np.unique(f):
        mine, others = r[f == k], r[f != k]
        if others.size == 0:
            continue
        q = (worst_group_quantile(others, f[f != k], alpha) if rule == "worst_fold"
             else conformal_quantile(others, alpha))
        if not math.isfinite(q):
            continue
        hit = int(np.count_nonzero(mine <= q))  # |y - pred| <= q: inside [pred - q, pred + q]
        per_fold[k.item() if hasattr(k, "item") else k] = hit / mine.size
        covered, rows = covered + hit, rows + mine.size
    return (covered / rows if rows else float("nan")), per_fold
