"""Classical baselines (sklearn) on the same grouped folds as the students (torch-free).

The baselines are named in ``conf/baselines.yaml`` (name -> ``estimator`` kind + parameters);
:data:`ESTIMATORS` maps a kind to the factory that takes those parameters. Adding one is an
entry there (a new kind: one :func:`register_estimator` line). :func:`fit_predict_baselines`
sets ``random_state`` to the given seed where the estimator has one and returns out-of-fold
predictions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from ..errors import VmafDistillError

__all__ = ["ESTIMATORS", "baseline_specs", "fit_predict_baselines", "make_baseline",
           "register_estimator"]

#: Estimator kind (a baseline's ``estimator:`` key) -> factory taking its parameters.
ESTIMATORS: dict[str, Callable[..., Any]] = {}


def register_estimator(kind: str, factory: Callable[..., Any]) -> None:
    """Make ``estimator: <kind>`` usable in ``conf/baselines.yaml``."""
    ESTIMATORS[kind] = factory


def _standardised_ols(**params: Any) -> Any:
    return make_pipeline(StandardScaler(), LinearRegression(**params))


register_estimator("gbdt", GradientBoostingRegressor)
register_estimator("random_forest", RandomForestRegressor)
register_estimator("tree", DecisionTreeRegressor)
register_estimator("linear", _standardised_ols)


def baseline_specs() -> dict[str, dict[str, Any]]:
    """The baselines of ``conf/baselines.yaml``: name -> ``{estimator: kind, **params}``."""
    from ..config import load_yaml

    return load_yaml("baselines")


def make_baseline(name: str, specs: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """A fresh unfitted estimator of baseline ``name`` (``specs``: :func:`baseline_specs`)."""
    specs = baseline_specs() if specs is None else specs
    if name not in specs:
        raise VmafDistillError(f"baselines: unknown {[name]}; known: {sorted(specs)}")
    params = dict(specs[name])
    kind = params.pop("estimator", None)
    if kind not in ESTIMATORS:
        raise VmafDistillError(f"baseline {name!r}: unknown estimator {kind!r} (conf/baselines"
                               f".yaml); known: {sorted(ESTIMATORS)}")
    return ESTIMATORS[kind](**params)


def _seeded(est: Any, seed: int) -> Any:
    params = est.get_params()
    seeds = {k: seed for k in params if k == "random_state" or k.endswith("__random_state")}
    return est.set_params(**seeds) if seeds else est


def _fold_imputed(x: np.ndarray, train: np.ndarray, test: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A fold's training and test rows, NaN features filled with the training rows' median
    (0 for a column with no training value)."""
    x_train, x_test = x[train], x[test]
    if not (np.isnan(x_train).any() or np.isnan(x_test).any()):
        return x_train, x_test
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column's median
        median = np.nan_to_num(np.nanmedian(x_train, axis=0), nan=0.0)
    return (np.where(np.isnan(x_train), median, x_train),
            np.where(np.isnan(x_test), median, x_test))


def fit_predict_baselines(
    samples: pd.DataFrame,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    feature_names: Sequence[str],
    names: Sequence[str],
    seed: int = 0,
    target: str = "vmaf",
    specs: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    impute_nan: bool = False,
) -> pd.DataFrame:
    """Out-of-fold predictions of each baseline in ``names`` (of ``specs``, default
    ``conf/baselines.yaml``) on ``splits``.

    ``impute_nan``: fill NaN features with the median of each fold's training rows (the trees
    here take no NaN; a median over all rows would read the test fold).

    Returns a DataFrame with columns ``sample_id, model, fold, pred`` (one row per test row per
    fold per model). Missing columns, NaN/inf features or an unknown name raise
    :class:`VmafDistillError`.
    """
    cols = [*feature_names, target, "sample_id"]
    missing = [c for c in cols if c not in samples.columns]
    if missing:
        raise VmafDistillError(f"baselines: samples have no column(s) {missing}")
    specs = baseline_specs() if specs is None else specs
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise VmafDistillError(f"baselines: unknown {unknown}; known: {sorted(specs)}")
    x = samples[list(feature_names)].to_numpy(dtype=np.float64)
    y = samples[target].to_numpy(dtype=np.float64)
    finite = np.isfinite(x) | (np.isnan(x) if impute_nan else False)
    bad = [c for c, ok in zip(feature_names, finite.all(axis=0), strict=True) if not ok]
    if bad or not np.isfinite(y).all():
        raise VmafDistillError(f"baselines: non-finite values in column(s) "
                               f"{bad or [target]}")
    ids = samples["sample_id"].to_numpy()
    frames = []
    for name in names:
        for fold, (train, test) in enumerate(splits):
            est = _seeded(make_baseline(name, specs), seed)
            x_train, x_test = _fold_imputed(x, train, test)
            est.fit(x_train, y[train])
            frames.append(pd.DataFrame({
                "sample_id": ids[test], "model": name, "fold": fold,
                "pred": est.predict(x_test).astype(np.float64),
            }))
    if not frames:
        return pd.DataFrame(columns=["sample_id", "model", "fold", "pred"])
    return pd.concat(frames, ignore_index=True)
