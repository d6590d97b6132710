"""Classical baselines (sklearn) on the same grouped folds as the students (torch-free).

Each factory returns a fresh unfitted estimator; :func:`fit_predict_baselines` sets its
``random_state`` to the given seed where it has one and returns out-of-fold predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from ..errors import VmafDistillError

__all__ = ["BASELINES", "fit_predict_baselines"]

#: name -> factory of an unfitted sklearn regressor.
BASELINES: dict[str, Callable[[], Any]] = {
    "gbdt50": lambda: GradientBoostingRegressor(n_estimators=50, max_depth=3),
    "gbdt180": lambda: GradientBoostingRegressor(n_estimators=180, max_depth=3),
    "rf400": lambda: RandomForestRegressor(n_estimators=400, min_samples_leaf=1, n_jobs=1),
    "tree8": lambda: DecisionTreeRegressor(max_depth=8),
    "linear": lambda: make_pipeline(StandardScaler(), LinearRegression()),
}


def _seeded(est: Any, seed: int) -> Any:
    params = est.get_params()
    seeds = {k: seed for k in params if k == "random_state" or k.endswith("__random_state")}
    return est.set_params(**seeds) if seeds else est


def fit_predict_baselines(
    samples: pd.DataFrame,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    feature_names: Sequence[str],
    names: Sequence[str],
    seed: int = 0,
    target: str = "vmaf",
) -> pd.DataFrame:
    """Out-of-fold predictions of each baseline in ``names`` on ``splits``.

    Returns a DataFrame with columns ``sample_id, model, fold, pred`` (one row per test row per
    fold per model). Missing columns, NaN/inf features or an unknown name raise
    :class:`VmafDistillError`.
    """
    cols = [*feature_names, target, "sample_id"]
    missing = [c for c in cols if c not in samples.columns]
    if missing:
        raise VmafDistillError(f"baselines: samples have no column(s) {missing}")
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise VmafDistillError(f"baselines: unknown {unknown}; known: {sorted(BASELINES)}")
    x = samples[list(feature_names)].to_numpy(dtype=np.float64)
    y = samples[target].to_numpy(dtype=np.float64)
    bad = [c for c, ok in zip(feature_names, np.isfinite(x).all(axis=0), strict=True) if not ok]
    if bad or not np.isfinite(y).all():
        raise VmafDistillError(f"baselines: non-finite values in column(s) "
                               f"{bad or [target]}")
    ids = samples["sample_id"].to_numpy()
    frames = []
    for name in names:
        for fold, (train, test) in enumerate(splits):
            est = _seeded(BASELINES[name](), seed)
            est.fit(x[train], y[train])
            frames.append(pd.DataFrame({
                "sample_id": ids[test], "model": name, "fold": fold,
                "pred": est.predict(x[test]).astype(np.float64),
            }))
    if not frames:
        return pd.DataFrame(columns=["sample_id", "model", "fold", "pred"])
    return pd.concat(frames, ignore_index=True)
