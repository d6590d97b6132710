"""Evaluation: metrics vs scipy/sklearn, grouped splits, split-conformal coverage, baselines."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, precision_recall_fscore_support

from vmafdistill.errors import VmafDistillError
from vmafdistill.evaluation import (
    conformal_quantile,
    coverage,
    group_quantiles,
    guard_metrics,
    intervals,
    make_splits,
    regression_metrics,
    stratified_metrics,
    worst_group_quantile,
)
from vmafdistill.evaluation.baselines import baseline_specs, fit_predict_baselines

FEATURES = ["log_bitrate", "scale_ratio", "codec_h264", "codec_h265", "sobel_mean", "blockiness"]


def synthetic_samples(n_sources: int = 3, shots: int = 6, variants: int = 8,
                      seed: int = 0) -> pd.DataFrame:
    """A samples-shaped table: sources x shots x ladder variants, VMAF from a smooth rule."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, k, v in itertools.product(range(n_sources), range(shots), range(variants)):
        codec = ("h264", "h265")[v % 2]
        height = (360, 720)[(v // 2) % 2]
        crf = 20 + 4 * (v // 4) + rng.integers(0, 3)
        log_br = 8 - 0.12 * crf + (0.7 if height == 720 else 0) + rng.normal(0, 0.1)
        sobel = 20 + 5 * s + 3 * k + rng.normal(0, 1)
        vmaf = float(np.clip(25 * log_br - 0.8 * sobel + (6 if codec == "h265" else 0)
                             - (8 if height == 360 else 0) + rng.normal(0, 2), 0, 100))
        rows.append({
            "sample_id": f"src{s}/s{k:03d}/v{v}", "source_id": f"src{s}",
            "shot_id": f"src{s}/s{k:03d}", "scene_id": f"src{s}/c{k // 2:03d}",
            "variant_id": f"{codec}_{height}_crf{crf}", "codec": codec, "height": height,
            "log_bitrate": log_br, "scale_ratio": 720 / height,
            "codec_h264": float(codec == "h264"), "codec_h265": float(codec == "h265"),
            "sobel_mean": sobel, "blockiness": float(np.exp(rng.uniform(0, 7))), "vmaf": vmaf,
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- metrics


def _kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Brute-force Kendall tau-b (independent of scipy)."""
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if sx == 0 and sy == 0:
            continue
        if sx == 0:
            tx += 1
        elif sy == 0:
            ty += 1
        elif sx == sy:
            conc += 1
        else:
            disc += 1
    return (conc - disc) / math.sqrt((conc + disc + tx) * (conc + disc + ty))


def test_regression_metrics_match_scipy_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = np.round(rng.uniform(0, 100, 120), 0)  # rounding creates ties
    p = np.round(y + rng.normal(0, 8, 120), 0)
    m = regression_metrics(y, p)
    assert m["n"] == 120
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-12)
    assert m["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, p)), rel=1e-12)
    assert m["plcc"] == pytest.approx(stats.pearsonr(y, p).statistic, rel=1e-10)
    assert m["srocc"] == pytest.approx(stats.spearmanr(y, p).statistic, rel=1e-10)
    assert m["krcc"] == pytest.approx(_kendall_tau_b(y, p), rel=1e-10)
    assert all(isinstance(v, float) for k, v in m.items() if k != "n")


def test_regression_metrics_degenerate_and_bad_input() -> None:
    m = regression_metrics([10, 20, 30], [50, 50, 50])
    assert m["mae"] == pytest.approx(30.0) and math.isnan(m["plcc"]) and math.isnan(m["krcc"])
    assert math.isnan(regression_metrics([1.0], [2.0])["srocc"])
    with pytest.raises(VmafDistillError, match="y_pred"):
        regression_metrics([1, 2, 3], [1, np.nan, 3])
    with pytest.raises(VmafDistillError, match="3 values"):
        regression_metrics([1, 2, 3], [1, 2])


def test_guard_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.uniform(30, 100, 300)
    p = y + rng.normal(0, 7, 300)
    g = guard_metrics(y, p, thresholds=(60, 70, 80))
    assert set(g) == {"60", "70", "80"}
    for thr in (60, 70, 80):
        pr, rc, f1, _ = precision_recall_fscore_support(
            y < thr, p < thr, average="binary", pos_label=True, zero_division=0)
        d = g[str(thr)]
        assert d["defined"] is True
        assert (d["precision"], d["recall"], d["f1"]) == pytest.approx((pr, rc, f1), rel=1e-12)
        assert d["n_pos"] == int((y < thr).sum()) and d["n_neg"] == int((y >= thr).sum())


def test_guard_metrics_undefined_and_silent_student() -> None:
    g = guard_metrics([85.0, 90.0, 95.0], [50.0, 90.0, 99.0], thresholds=[80])["80"]
    assert g["defined"] is False and g["n_pos"] == 0
    assert math.isnan(g["precision"]) and math.isnan(g["recall"]) and math.isnan(g["f1"])
    g = guard_metrics([50.0, 90.0], [85.0, 95.0], thresholds=[60])["60"]  # never fires
    assert g["defined"] and g["precision"] == 0.0 and g["recall"] == 0.0 and g["f1"] == 0.0


def test_stratified_metrics_equal_subset_metrics() -> None:
    df = synthetic_samples()
    df["pred"] = df["vmaf"] + np.random.default_rng(2).normal(0, 3, len(df))
    out = stratified_metrics(df, by=("codec", "height"))
    assert set(out["codec"]) == {"h264", "h265"} and set(out["height"]) == {"360", "720"}
    sub = df[df["height"] == 360]
    assert out["height"]["360"] == regression_metrics(sub["vmaf"], sub["pred"])
    with pytest.raises(VmafDistillError, match="preset"):
        stratified_metrics(df, by=("preset",))


# --------------------------------------------------------------------------- splits


def _assert_no_leak(df, splits, column) -> None:
    for train, test in splits:
        assert not set(df[column].iloc[train]) & set(df[column].iloc[test])
        assert len(np.intersect1d(train, test)) == 0
        assert len(train) + len(test) == len(df)


@pytest.mark.parametrize("shuffle", [False, True])
def test_group_kfold_covers_each_row_once(shuffle: bool) -> None:
    df = synthetic_samples()
    cfg = {"name": "group_kfold", "n_splits": 5, "group": "shot_id", "shuffle": shuffle, "seed": 3}
    splits = make_splits(df, cfg)
    assert len(splits) == 5
    _assert_no_leak(df, splits, "shot_id")
    counts = np.bincount(np.concatenate([te for _, te in splits]), minlength=len(df))
    assert (counts == 1).all()
    again = make_splits(df, cfg)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again, strict=True))
    scene = make_splits(df, {"name": "group_kfold", "n_splits": 3, "group": "scene_id"})
    _assert_no_leak(df, scene, "scene_id")


def test_null_cv_keys_run_and_are_recorded_as_their_defaults() -> None:
    """``cv.n_splits=null`` ran 5 folds and was recorded as None (sweep-report then told the
    run from an ``n_splits=5`` one): the settings a run records are those the splits used."""
    from vmafdistill.evaluation.splits import cv_settings

    df = synthetic_samples()
    given = {"name": "group_kfold", "n_splits": None, "group": None, "shuffle": None,
             "seed": None}
    settings = cv_settings(given)
    assert settings == {"name": "group_kfold", "n_splits": 5, "group": "shot_id",
                        "shuffle": False, "seed": 0}
    assert given["n_splits"] is None  # the caller's mapping is left as it was
    same = make_splits(df, {"name": "group_kfold", "n_splits": 5, "group": "shot_id"})
    assert [te.tolist() for _, te in make_splits(df, given)] == [te.tolist() for _, te in same]
    assert cv_settings({"name": "hash_split", "salt": None})["salt"] == ""
    assert cv_settings({"name": "leave_one_source_out"})["group"] == "source_id"


def test_leave_one_source_out() -> None:
    df = synthetic_samples(n_sources=3)
    splits = make_splits(df, {"name": "leave_one_source_out"})
    assert len(splits) == 3
    _assert_no_leak(df, splits, "source_id")
    for _, test in splits:
        (source,) = set(df["source_id"].iloc[test])
        assert set(test) == set(np.flatnonzero(df["source_id"] == source))


def test_leave_one_source_out_restricted_to_test_sources() -> None:
    df = synthetic_samples(n_sources=5)
    cfg = {"name": "leave_one_source_out", "test_sources": ["src3", "src0"]}
    splits = make_splits(df, cfg)
    assert len(splits) == 2  # one fold per listed source, in the listed order
    _assert_no_leak(df, splits, "source_id")
    for source, (train, test) in zip(["src3", "src0"], splits, strict=True):
        assert set(test) == set(np.flatnonzero(df["source_id"] == source))
        # every other source (listed or not) trains: train + test is the whole table
        assert set(train) == set(np.flatnonzero(df["source_id"] != source))
    # never-held-out sources are in every training side and in no test side
    tested = np.concatenate([te for _, te in splits])
    assert set(df["source_id"].iloc[tested]) == {"src0", "src3"}
    # listing every source is plain leave-one-source-out
    full = make_splits(df, {"name": "leave_one_source_out"})
    listed = make_splits(df, {**cfg, "test_sources": sorted(df["source_id"].unique())})
    for (a_tr, a_te), (b_tr, b_te) in zip(full, listed, strict=True):
        assert np.array_equal(a_tr, b_tr) and np.array_equal(a_te, b_te)
    with pytest.raises(VmafDistillError, match=r"\['nope'\] not in column 'source_id'"):
        make_splits(df, {**cfg, "test_sources": ["src0", "nope"]})
    with pytest.raises(VmafDistillError, match="empty list"):
        make_splits(df, {**cfg, "test_sources": []})
    with pytest.raises(VmafDistillError, match="duplicates"):
        make_splits(df, {**cfg, "test_sources": ["src0", "src0"]})


def test_hash_split_stable_under_row_order() -> None:
    df = synthetic_samples(n_sources=4, shots=25, variants=3)
    cfg = {"name": "hash_split", "test_fraction": 0.25, "key": "shot_id", "salt": "v1"}
    ((train, test),) = make_splits(df, cfg)
    _assert_no_leak(df, [(train, test)], "shot_id")
    test_ids = set(df["sample_id"].iloc[test])
    shuffled = df.sample(frac=1.0, random_state=7).reset_index(drop=True)
    ((_, test2),) = make_splits(shuffled, cfg)
    assert set(shuffled["sample_id"].iloc[test2]) == test_ids
    # dropping other shots does not move a shot across the split
    half = df[df["source_id"].isin(["src0", "src1"])].reset_index(drop=True)
    ((_, test3),) = make_splits(half, cfg)
    assert set(half["sample_id"].iloc[test3]) == {i for i in test_ids if i.startswith(("src0/",
                                                                                          "src1/"))}
    frac = df["shot_id"].iloc[test].nunique() / df["shot_id"].nunique()
    assert 0.1 < frac < 0.4  # 100 shots, binomial(100, 0.25): within ~3.5 sigma
    ((_, test_salt),) = make_splits(df, {**cfg, "salt": "v2"})
    assert set(df["sample_id"].iloc[test_salt]) != test_ids


def test_split_errors() -> None:
    df = synthetic_samples(n_sources=1, shots=3, variants=2)
    with pytest.raises(VmafDistillError, match="fewer than 5 folds"):
        make_splits(df, {"name": "group_kfold", "n_splits": 5})
    with pytest.raises(VmafDistillError, match="need at least 2"):
        make_splits(df, {"name": "leave_one_source_out"})
    with pytest.raises(VmafDistillError, match="'title_id'"):
        make_splits(df, {"name": "group_kfold", "group": "title_id"})
    with pytest.raises(VmafDistillError, match="unknown name"):
        make_splits(df, {"name": "random"})


# --------------------------------------------------------------------------- conformal


def test_conformal_quantile_is_the_finite_sample_order_statistic() -> None:
    r = np.random.default_rng(0).exponential(5, 99)
    k = math.ceil(100 * 0.9)  # 90th smallest of 99
    assert conformal_quantile(r, 0.1) == np.sort(r)[k - 1]
    assert conformal_quantile(np.arange(5.0), 0.1) == math.inf  # ceil(6*0.9)=6 > 5
    lo, hi = intervals([50.0, 70.0], 4.0)
    assert list(lo) == [46.0, 66.0] and list(hi) == [54.0, 74.0]
    cov = coverage([45.0, 70.0, 80.0], [40.0, 69.0, 81.0], [50.0, 71.0, 90.0])
    assert cov == pytest.approx(2 / 3)


@pytest.mark.parametrize("alpha", [0.1, 0.2])
def test_conformal_coverage_on_exchangeable_data(alpha: float) -> None:
    rng = np.random.default_rng(5)
    draws, n_cal, n_test = 2000, 100, 100
    covs = np.empty(draws)
    for i in range(draws):
        x = rng.uniform(0, 1, n_cal + n_test)
        y = 60 + 30 * x + rng.standard_t(3, n_cal + n_test) * 4  # heavy-tailed noise
        pred = 60 + 28 * x  # a slightly biased point predictor
        q = conformal_quantile(np.abs(y[:n_cal] - pred[:n_cal]), alpha)
        lo, hi = intervals(pred[n_cal:], q)
        covs[i] = coverage(y[n_cal:], lo, hi)
    # theory: 1 - alpha <= E[coverage] <= 1 - alpha + 1/(n_cal + 1)
    assert abs(covs.mean() - (1 - alpha)) < 0.03
    assert covs.mean() >= 1 - alpha - 0.005


# --------------------------------------------------------------------------- baselines


def test_gbdt50_out_of_fold_equals_sklearn() -> None:
    df = synthetic_samples()
    splits = make_splits(df, {"name": "group_kfold", "n_splits": 4})
    out = fit_predict_baselines(df, splits, FEATURES, ["gbdt50", "tree8", "linear"], seed=0)
    assert list(out.columns) == ["sample_id", "model", "fold", "pred"]
    x, y = df[FEATURES].to_numpy(), df["vmaf"].to_numpy()
    gb = out[out["model"] == "gbdt50"]
    assert sorted(gb["sample_id"]) == sorted(df["sample_id"])  # each sample once, out of fold
    for fold, (train, test) in enumerate(splits):
        ref = GradientBoostingRegressor(n_estimators=50, random_state=0).fit(x[train], y[train])
        got = gb[gb["fold"] == fold].set_index("sample_id").loc[df["sample_id"].iloc[test], "pred"]
        np.testing.assert_allclose(got.to_numpy(), ref.predict(x[test]), rtol=1e-12)
    # the linear baseline is ordinary least squares: compare with numpy lstsq on fold 0
    train, test = splits[0]
    design = np.column_stack([x[train], np.ones(len(train))])
    coef = np.linalg.lstsq(design, y[train], rcond=None)[0]
    lin = out[(out["model"] == "linear") & (out["fold"] == 0)].set_index("sample_id")
    got = lin.loc[df["sample_id"].iloc[test], "pred"].to_numpy()
    np.testing.assert_allclose(got, np.column_stack([x[test], np.ones(len(test))]) @ coef,
                               rtol=1e-8, atol=1e-8)
    assert {"gbdt50", "gbdt180", "rf400", "tree8", "linear"} <= set(baseline_specs())


def test_baselines_come_from_conf_with_the_parameters_they_always_had() -> None:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor

    from vmafdistill.evaluation.baselines import make_baseline

    before = {  # the estimators the code built before conf/baselines.yaml held them
        "gbdt50": GradientBoostingRegressor(n_estimators=50, max_depth=3),
        "gbdt180": GradientBoostingRegressor(n_estimators=180, max_depth=3),
        "rf400": RandomForestRegressor(n_estimators=400, min_samples_leaf=1, n_jobs=1),
        "tree8": DecisionTreeRegressor(max_depth=8),
    }
    for name, est in before.items():
        got = make_baseline(name)
        assert type(got) is type(est) and got.get_params() == est.get_params(), name
    for name in baseline_specs():  # every entry builds
        assert hasattr(make_baseline(name), "fit"), name
    with pytest.raises(VmafDistillError, match="unknown estimator 'xgb'"):
        make_baseline("x", {"x": {"estimator": "xgb"}})


def test_baselines_errors() -> None:
    df = synthetic_samples(n_sources=2, shots=2, variants=2)
    splits = make_splits(df, {"name": "leave_one_source_out"})
    with pytest.raises(VmafDistillError, match="xgb"):
        fit_predict_baselines(df, splits, FEATURES, ["xgb"])
    df.loc[0, "sobel_mean"] = np.nan
    with pytest.raises(VmafDistillError, match="sobel_mean"):
        fit_predict_baselines(df, splits, FEATURES, ["linear"])


def test_worst_group_quantile_is_the_largest_group_quantile() -> None:
    rng = np.random.default_rng(5)
    r = np.concatenate([rng.exponential(1.0, 40), rng.exponential(4.0, 30), rng.exponential(2, 50)])
    g = np.repeat(["a", "b", "c"], [40, 30, 50])
    want = max(conformal_quantile(r[g == k], 0.1) for k in "abc")
    assert worst_group_quantile(r, g, 0.1) == want == conformal_quantile(r[g == "b"], 0.1)
    assert group_quantiles(r, g, 0.1) == {k: conformal_quantile(r[g == k], 0.1) for k in "abc"}
    assert worst_group_quantile(r, np.zeros(r.size), 0.1) == conformal_quantile(r, 0.1)
    for k in "abc":  # each group alone covered
        assert np.mean(r[g == k] <= want) >= 0.9
    with pytest.raises(VmafDistillError, match="group labels"):
        worst_group_quantile(r, g[:-1])


# ------------------------------------------------------------------ `vmafdistill evaluate`


def test_evaluate_command_keeps_the_unseen_script_options() -> None:
    """scripts/eval_unseen.py became `vmafdistill evaluate` (vmafdistill.evaluation.unseen)."""
    from pathlib import Path

    from vmafdistill.cli import build_parser

    args = build_parser().parse_args([
        "evaluate", "--model", "m.onnx", "--ladder", "wide_all", "--workers", "1", "--noise", "8",
        "--kinds", "--cache", "c", "--markdown", "r.md", "--json", "r.json", "--plot", "r.png"])
    assert (args.model, args.ladder, args.workers, args.noise, args.kinds, args.cache) == (
        "m.onnx", "wide_all", 1, 8, True, "c")
    assert (args.markdown, args.json, args.plot) == ("r.md", "r.json", "r.png")
    d = build_parser().parse_args(["evaluate"])
    assert (d.model, d.ladder, d.workers, d.noise, d.kinds, d.cache) == (
        None, "wide", 2, 0, False, ".cache")
    assert not (Path(__file__).resolve().parents[1] / "scripts" / "eval_unseen.py").exists()


def test_unseen_report_tables() -> None:
    from vmafdistill.evaluation.unseen import group_table, guard_table

    rows = [
        {"source": "a", "variant": "h264_640x360_crf30", "teacher": 85.0, "pred": 82.0,
         "lo": 78.0, "hi": 86.0, "band": "green", "guard_band": "green"},
        {"source": "a", "variant": "h264_640x360_crf40", "teacher": 60.0, "pred": 81.0,
         "lo": 77.0, "hi": 85.0, "band": "green", "guard_band": "amber"},
        {"source": "b", "variant": "h265_320x180_crf30", "teacher": 70.0, "pred": 66.0,
         "lo": 60.0, "hi": 72.0, "band": "amber", "guard_band": "amber"},
    ]
    guard = guard_table(rows, 80.0)
    assert guard[2] == "| pred | 2 | 1 (50%) | 1 of 1 |"
    assert guard[3] == "| lower (guard) | 1 | 0 (0%) | 1 of 1 |"
    by_source = group_table(rows, "source", lambda r: r["source"])
    assert by_source[3] == "| a | 2 | 72.50 | 81.50 | 12.00 | +9.00 | 50% |"
    assert by_source[4] == "| b | 1 | 70.00 | 66.00 | 4.00 | -4.00 | 100% |"
    # heights in numeric order (as text 136p sorted before 68p), shots counted per encode
    from vmafdistill.evaluation.unseen import _shots_per_encode

    small = [{**rows[2], "variant": "h265_120x68_crf30"}]
    by_height = group_table(rows + small, "height", lambda r: r["variant"].split("_")[1])
    assert [line.split(" | ")[0] for line in by_height[3:]] == [
        "| 120x68", "| 320x180", "| 640x360"], by_height
    assert _shots_per_encode(rows) == "1" and _shots_per_encode(rows + rows[:1]) == "1-2"


def test_baseline_imputation_reads_only_each_folds_training_rows() -> None:
    """NaN features are filled per fold with the training rows' median (the median over all
    rows, test fold included, leaked the test fold into the baselines' fit)."""
    from vmafdistill.evaluation.baselines import _fold_imputed

    x = np.array([[1.0, np.nan], [3.0, 10.0], [np.nan, 20.0], [100.0, np.nan], [np.nan, 40.0]])
    train, test = np.array([0, 1, 2]), np.array([3, 4])
    x_train, x_test = _fold_imputed(x, train, test)
    np.testing.assert_array_equal(x_train, [[1, 15], [3, 10], [2, 20]])  # medians 2, 15
    np.testing.assert_array_equal(x_test, [[100, 15], [2, 40]])
    df = synthetic_samples(n_sources=2, shots=2, variants=2)
    splits = make_splits(df, {"name": "leave_one_source_out"})
    df.loc[0, "sobel_mean"] = np.nan
    out = fit_predict_baselines(df, splits, FEATURES, ["linear"], impute_nan=True)
    assert np.isfinite(out["pred"]).all() and len(out) == len(df)


def test_baseline_cache_key_follows_the_entrys_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    """An edited conf/baselines.yaml entry is fitted anew (the key was the name alone)."""
    from vmafdistill.evaluation import baselines
    from vmafdistill.students.train import _baseline_key

    cfg = {"cv": {"name": "loso"}, "features": "f", "baselines": ["gbdt50"]}
    before = _baseline_key({"corpus_hash": "h"}, cfg, 10, ["a", "b"])
    # the columns fitted on are in the key too: the same config over other columns (a
    # features group whose columns come from elsewhere) served the stale baselines
    assert _baseline_key({"corpus_hash": "h"}, cfg, 10, ["a"]) != before
    edited = {**baselines.baseline_specs(), "gbdt50": {"estimator": "gbdt", "n_estimators": 60}}
    monkeypatch.setattr(baselines, "baseline_specs", lambda: edited)
    assert _baseline_key({"corpus_hash": "h"}, cfg, 10, ["a", "b"]) != before


def test_baselines_are_fitted_anew_when_the_rows_change_under_one_corpus_hash(
        tmp_path: Path) -> None:
    """A hunt: a synthetic corpus (no table checksum) rewritten in place kept its corpus hash,
    and the next run served the earlier table's cached baseline predictions scored against
    the new labels (tree8 MAE 28.9 where a fresh fit gives 3.46, labels halved)."""
    import numpy as np
    import pandas as pd

    from vmafdistill import api
    from vmafdistill.evaluation.baselines import fit_predict_baselines
    from vmafdistill.evaluation.metrics import regression_metrics
    from vmafdistill.evaluation.splits import make_splits
    from vmafdistill.testing.synthetic import synthetic_corpus

    run = ("student=logistic", "optim.max_epochs=2", "baselines=[tree8]", "cv=loso",
           "conformal.method=cross", "trainer.enable_progress_bar=false", "summary=false")
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=5)
    api.train(corpus, tmp_path / "a", *run)
    table = corpus / "tables" / "samples.parquet"
    df = pd.read_parquet(table)
    df["vmaf"] = df["vmaf"] * 0.5
    df.to_parquet(table)
    got = api.train(corpus, tmp_path / "b", *run).metrics["baselines"]["tree8"]
    oof = fit_predict_baselines(df, make_splits(df, {"name": "leave_one_source_out"}),
                                got["features"], ["tree8"], impute_nan=True)
    truth = df.set_index("sample_id").loc[oof["sample_id"], "vmaf"].to_numpy()
    assert got["oof"]["mae"] == pytest.approx(
        regression_metrics(truth, oof["pred"].to_numpy())["mae"]), got["oof"]
    assert np.isfinite(got["oof"]["mae"])


def test_evaluate_output_paths_are_ready_before_any_work(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """--json/--markdown into a missing directory crashed with a traceback after all the
    corpus work; their directories are now made up front (as --plot's was), and a directory
    given as the output file is refused before any work."""
    from vmafdistill.evaluation import unseen

    def no_work(*args: object, **kwargs: object) -> None:
        raise RuntimeError("reached the corpus work")

    monkeypatch.setattr(unseen, "_unseen_corpus_config", no_work)
    outs = {"markdown": tmp_path / "a" / "r.md", "json_path": tmp_path / "b" / "r.json"}
    with pytest.raises(RuntimeError, match="corpus work"):
        unseen.evaluate_unseen(**outs)
    assert all(p.parent.is_dir() for p in outs.values())
    with pytest.raises(VmafDistillError, match="is a directory"):
        unseen.evaluate_unseen(json_path=tmp_path)
    # a path through a file, and a file as the cache: one error each, not a traceback
    (tmp_path / "clip.mp4").write_bytes(b"x")
    with pytest.raises(VmafDistillError, match=r"--json .*clip\.mp4/r\.json: cannot make"):
        unseen.evaluate_unseen(json_path=tmp_path / "clip.mp4" / "r.json")
    with pytest.raises(VmafDistillError, match=r"--cache .*: is a file"):
        unseen.evaluate_unseen(cache=tmp_path / "clip.mp4")
    with pytest.raises(VmafDistillError, match=r"--cache .*sub: cannot make the folder"):
        unseen.evaluate_unseen(cache=tmp_path / "clip.mp4" / "sub")


def test_a_tilde_cache_is_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """A review: with `--cache ~/x` the clip was filmed under a literal ./~ while the corpus
    (its sources now read with ~ expanded) looked in the home folder: no such file."""
    from vmafdistill.evaluation import unseen

    asked = []

    def no_work(cache: Path, *args: object, **kwargs: object) -> None:
        asked.append(cache)
        raise RuntimeError("reached the corpus work")

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(unseen, "_unseen_corpus_config", no_work)
    with pytest.raises(RuntimeError, match="corpus work"):
        unseen.evaluate_unseen(cache="~/x")
    assert asked == [tmp_path / "home" / "x"] and not (tmp_path / "~").exists()

def test_evaluate_plans_its_filmed_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate films its held-out source under the cache and builds a corpus of it there; the
    build once skipped the whole cache as its own, found no videos and every evaluate failed."""
    from vmafdistill.corpus.build import planned_sources
    from vmafdistill.evaluation import unseen

    def fake_source(cache: Path, noise: int) -> Path:
        path = cache / "unseen" / "photos_pan.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        return path

    monkeypatch.setattr(unseen, "make_source", fake_source)
    cfg, root, _ = unseen._unseen_corpus_config(tmp_path / "cache", "wide", 1, 0, False)
    assert not root.exists()  # the config is checked before anything is filmed
    filmed = unseen._film_unseen(tmp_path / "cache", root, 0, False)
    assert [Path(p) for p, _ in planned_sources(cfg)] == filmed
    # a file left in the folder (a copied training clip) was scored as held-out content
    (root / "kind_grain.mp4").write_bytes(b"x")
    assert [Path(p) for p, _ in planned_sources(unseen._of_sources(cfg, filmed))] == filmed
    # a ladder or worker count the build would refuse: refused before the filming (the
    # ladder in Hydra's words, naming internal overrides)
    with pytest.raises(VmafDistillError, match=r"--ladder nosuch: no such ladder \(conf/"
                                               r"ladder: .*pilot.*wide"):
        unseen._unseen_corpus_config(tmp_path / "c2", "nosuch", 1, 0, True)
    with pytest.raises(VmafDistillError, match=r"--workers=0: must be at least 1"):
        unseen._unseen_corpus_config(tmp_path / "c2", "pilot", 0, 0, True)
    # the card's teacher labels the held-out content (a v1.0.16 student was compared with
    # v0.6.1 labels), in tables of its own; one libvmaf cannot run is refused before filming
    from vmafdistill.export import teacher_record

    teacher = teacher_record({"backend": "torch", "model": "vmaf_v1.0.16_3d0h", "chunk": 8})
    assert teacher == {"model": "vmaf_v1.0.16_3d0h", "mode": "exact"}
    assert teacher_record(None) is None
    cfg, _, name = unseen._unseen_corpus_config(tmp_path / "c2", "pilot", 1, 0, True, teacher)
    assert cfg["teacher"]["model"] == "vmaf_v1.0.16_3d0h" and cfg["teacher"]["backend"] == \
        "libvmaf" and name == "unseen_kinds_pilot_vmaf_v1.0.16_3d0h_exact"
    assert unseen._unseen_corpus_config(tmp_path / "c2", "pilot", 1, 0, True, None)[2] == \
        "unseen_kinds_pilot"
    with pytest.raises(VmafDistillError, match=r"the student learnt labels of teacher\.model="
                                               r".*my\.json teacher\.mode=exact; evaluate "
                                               r"labels with libvmaf, which cannot"):
        unseen._unseen_corpus_config(tmp_path / "c2", "pilot", 1, 0, True,
                                     {"model": str(tmp_path / "my.json"), "mode": "exact"})
    for teacher, needle in (("vmaf_v1.0.16_3d0h", "the card's teacher is 'vmaf_v1.0.16_3d0h'"),
                            ({"model": "vmaf_v0.6.1", "mode": "a=b"},
                             "the card's teacher mode is 'a=b'")):
        with pytest.raises(VmafDistillError, match=re.escape(needle)):
            unseen._unseen_corpus_config(tmp_path / "c2", "pilot", 1, 0, True, teacher)
    assert not (tmp_path / "c2" / "unseen_kinds").exists()


def test_evaluate_refuses_what_it_would_lose_or_ignore_before_any_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--json onto the filmed source in the cache replaced the clip (every later evaluate then
    failed on it), onto any other file replaced it; one path for two outputs kept the last;
    --noise -3 filmed a clean clip reported as noisy; --kinds --noise 8 ignored the noise; a
    card's bad bands were a traceback after the corpus work. Each is one error up front."""
    import json
    import shutil

    from vmafdistill.edge.card import card_path_for
    from vmafdistill.edge.predictor import default_model_path
    from vmafdistill.evaluation import unseen

    def no_work(*args: object, **kwargs: object) -> None:
        raise RuntimeError("reached the corpus work")

    monkeypatch.setattr(unseen, "_unseen_corpus_config", no_work)
    cache = tmp_path / "cache"
    (cache / "unseen").mkdir(parents=True)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0\0\0\x20ftypisom" + b"\0" * 64)
    model = tmp_path / "m.onnx"
    shutil.copy(default_model_path(), model)
    card = json.loads(card_path_for(default_model_path()).read_text())
    card["tokens"] = {**card["tokens"], "bands": {**card["tokens"].get("bands", {}),
                                                  "green": 50, "amber": 70}}
    card_path_for(model).write_text(json.dumps(card))
    for kwargs, msg in (
            ({"json_path": cache / "unseen" / "clip.mp4"}, "evaluate keeps under --cache"),
            ({"plot": cache / "corpus" / "unseen" / "p.png"}, "evaluate keeps under --cache"),
            ({"json_path": video}, "exists and is not this command's output"),
            ({"json_path": tmp_path / "r", "markdown": tmp_path / "r"}, "its own file"),
            ({"noise": -3}, "--noise -3: needs 0"),
            ({"kinds": True, "noise": 8}, "--noise films the unseen photo clip"),
            ({"model": model}, "m.card.json: tokens: band thresholds")):
        with pytest.raises(VmafDistillError, match=msg):
            unseen.evaluate_unseen(cache=cache, **kwargs)
    assert video.read_bytes().startswith(b"\0\0\0\x20ftyp")
    # card fields only reports read: a traceback after the corpus work, or a threshold "80"
    # drawn as lines at 8 and 0; one error naming the card and the field, before any work
    shipped = json.loads(card_path_for(default_model_path()).read_text())
    for field, value, msg in (("guard_thresholds", "80", "guard_thresholds='80': needs a list"),
                              ("guard_thresholds", 80, "guard_thresholds=80: needs a list"),
                              ("corpus", "pilot", "corpus='pilot': needs a mapping"),
                              ("conformal", {**shipped["conformal"], "alpha": "abc"},
                               "conformal.alpha='abc': needs a number in \\(0, 1\\)")):
        card_path_for(model).write_text(json.dumps({**shipped, field: value}))
        with pytest.raises(VmafDistillError, match=rf"m\.card\.json: {msg}"):
            unseen.evaluate_unseen(cache=cache, model=model)
    # what training writes, given as the model: said so, with the export command
    from vmafdistill.edge.predictor import Predictor

    bundle = default_model_path().with_suffix(".pt")
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(bundle, run / "student.pt")
    for given in (bundle, run):
        with pytest.raises(VmafDistillError, match=r"a training output .*export it first: "
                                                   r"vmafdistill export --bundle .*student\.pt|"
                                                   r"export --bundle .*default\.pt"):
            Predictor(given)
    # predict says so too (it read the card first: "student.card.json: model card not found")
    import os

    from vmafdistill.cli import main as cli_main

    capsys.readouterr()
    assert cli_main(["predict", str(video), "--model", str(run / "student.pt")]) == 2
    assert "student.pt: a training output" in capsys.readouterr().err
    # a named pipe is not opened (that waits for a writer): not found, as before
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    with pytest.raises(VmafDistillError, match="model file not found"):
        Predictor(fifo)
    with pytest.raises(RuntimeError, match="corpus work"):  # an earlier report is replaced
        (tmp_path / "old.json").write_text(json.dumps(
            [{"source": "s", "variant": "v", "teacher": 50.0, "pred": 51.0}]))
        unseen.evaluate_unseen(cache=cache, json_path=tmp_path / "old.json")
    # starting as ours do is not enough: a user's JSON array or photograph was replaced
    (tmp_path / "measurements.json").write_text("[1, 2, 3]\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    fig.savefig(tmp_path / "holiday.png")
    plt.close(fig)
    for kwargs in ({"json_path": tmp_path / "measurements.json"},
                   {"plot": tmp_path / "holiday.png"}):
        with pytest.raises(VmafDistillError, match="is not an earlier output of evaluate"):
            unseen.evaluate_unseen(cache=cache, **kwargs)
    # an empty path (an unset variable) lost the results; - wrote a file named -
    for option, kwargs in (("--json", {"json_path": ""}), ("--plot", {"plot": ""}),
                           ("--markdown", {"markdown": "-"}), ("--cache", {"cache": ""})):
        with pytest.raises(VmafDistillError, match=f"{option}( -)?: "):
            unseen.evaluate_unseen(**{"cache": cache, **kwargs})
    with pytest.raises(RuntimeError, match="corpus work"):  # the rest of the cache is free
        unseen.evaluate_unseen(cache=tmp_path, markdown=tmp_path / "report.md")
    with pytest.raises(VmafDistillError, match=r"name a \.png, \.svg or \.pdf file"):
        unseen.evaluate_unseen(cache=cache, plot=tmp_path / "photo.jpg")  # replaced unchecked
    # an earlier plot is replaced: plot_rows signs what it draws
    rows = [{"source": "s", "variant": "h264_x", "teacher": 50.0, "pred": 51.0, "lo": 40.0,
             "hi": 60.0}]
    for suffix in ("svg", "png", "pdf"):
        unseen.plot_rows(rows, {"green": 80.0}, "t", tmp_path / f"p.{suffix}")
        with pytest.raises(RuntimeError, match="corpus work"):
            unseen.evaluate_unseen(cache=cache, plot=tmp_path / f"p.{suffix}")


def test_evaluate_with_no_predicted_shot_is_one_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose every shot is flagged without a prediction ended evaluate in numpy's
    'zero-size array' traceback after the corpus work; now one error naming the model."""
    import json
    import types

    import pandas as pd

    from vmafdistill.evaluation import unseen

    src = tmp_path / "cache" / "unseen" / "clip.mp4"
    monkeypatch.setattr(unseen, "_unseen_corpus_config",
                        lambda *a, **k: ({"out_dir": str(tmp_path), "corpus": {}}, src.parent,
                                         "unseen"))
    monkeypatch.setattr(unseen, "_film_unseen", lambda *a, **k: [src])
    samples = pd.DataFrame({"vmaf": [50.0, 60.0], "teacher_version": ["libvmaf x"] * 2})
    monkeypatch.setattr("vmafdistill.corpus.build.build_corpus",
                        lambda cfg: types.SimpleNamespace(failures=[], samples=samples,
                                                          manifest={}))
    monkeypatch.setattr(unseen, "_shot_rows", lambda *a, **k: [])
    with pytest.raises(VmafDistillError, match=r"no shot of the 2 corpus samples got a "
                                               r"prediction"):
        unseen.evaluate_unseen(cache=tmp_path / "cache")
    # the files are written before the report is printed: a reader that left early (| head,
    # unbuffered) ended the process at the print, and --markdown/--json were never written
    rows = [{"source": "s", "variant": "h264_640x360_crf30", "teacher": t, "pred": t + 2,
             "lo": t - 5, "hi": t + 9, "band": "green", "teacher_band": "green",
             "guard_band": "amber"} for t in (82.0, 90.0)]
    monkeypatch.setattr(unseen, "_shot_rows", lambda *a, **k: rows)

    def reader_gone(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError

    monkeypatch.setattr(unseen, "print", reader_gone, raising=False)
    with pytest.raises(BrokenPipeError):
        unseen.evaluate_unseen(cache=tmp_path / "cache", markdown=tmp_path / "r.md",
                               json_path=tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == rows
    assert "| s | 2 |" in (tmp_path / "r.md").read_text()
    # a student without intervals (card q null) was refused: MAE, PLCC and bands are still
    # worth reading; coverage and the guard band say there are none
    no_intervals = [{**r, "lo": None, "hi": None, "guard_band": None} for r in rows]
    monkeypatch.setattr(unseen, "_shot_rows", lambda *a, **k: no_intervals)
    monkeypatch.setattr(unseen, "print", lambda *a, **k: None, raising=False)
    got = unseen.evaluate_unseen(cache=tmp_path / "cache", markdown=tmp_path / "n.md",
                                 plot=tmp_path / "n.png")
    assert got["coverage"] is None and got["mae"] == pytest.approx(2.0)
    text = (tmp_path / "n.md").read_text()
    assert "none (this student has no intervals)" in text and "lower (guard)" not in text
    assert "| s | 2 | 86.00 | 88.00 | 2.00 | +2.00 | - |" in text, text
    assert (tmp_path / "n.png").stat().st_size > 0
    # the plot's lines are the bands the report counts false greens with (it drew the card's
    # training guard thresholds, 60/70/80, beside a report at green 85)
    drawn = {}
    monkeypatch.setattr(unseen, "plot_rows", lambda rows, th, *a: drawn.update(th))
    unseen.evaluate_unseen(cache=tmp_path / "cache", markdown=tmp_path / "n.md",
                           plot=tmp_path / "n.png")
    green = re.search(r"false greens \(teacher < green\)", text)
    assert green and set(drawn) == {"green", "amber"} and drawn["green"] > drawn["amber"]
    from vmafdistill.edge.predictor import Predictor, default_model_path
    from vmafdistill.edge.tokens import DEFAULT_RULES, merge_rules

    bands = merge_rules(DEFAULT_RULES, Predictor(default_model_path()).card.get("tokens"))
    assert drawn == {k: float(bands["bands"][k]) for k in ("green", "amber")}


def test_evaluate_scores_the_cards_target_and_names_in_sample_figures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A student trained on ``vmaf_min`` was compared with the shots' mean VMAF (MAE 9.80
    where its own target gives 5.99), and one fine-tuned on the evaluation corpus itself was
    reported as unseen content (coverage 22% -> 85%). The card's target is read (named in the
    header), a target the corpus lacks is refused, and the in-sample case is said."""
    import types

    import pandas as pd

    from vmafdistill.edge.predictor import Predictor, default_model_path
    from vmafdistill.evaluation import unseen

    src = tmp_path / "cache" / "unseen" / "clip.mp4"
    monkeypatch.setattr(unseen, "_unseen_corpus_config",
                        lambda *a, **k: ({"out_dir": str(tmp_path), "corpus": {}}, src.parent,
                                         "unseen"))
    monkeypatch.setattr(unseen, "_film_unseen", lambda *a, **k: [src])
    samples = pd.DataFrame({"vmaf": [50.0, 60.0], "vmaf_min": [40.0, 45.0],
                            "teacher_version": ["libvmaf x"] * 2})
    monkeypatch.setattr("vmafdistill.corpus.build.build_corpus",
                        lambda cfg: types.SimpleNamespace(failures=[], samples=samples,
                                                          manifest={"corpus_hash": "h1"}))
    asked = []
    rows = [{"source": "s", "variant": "h264_640x360_crf30", "teacher": t, "pred": t + 2,
             "lo": t - 5, "hi": t + 9, "band": "red", "teacher_band": "red",
             "guard_band": "red"} for t in (40.0, 45.0)]
    monkeypatch.setattr(unseen, "_shot_rows", lambda *a: asked.append(a[-1]) or rows)
    monkeypatch.setattr(unseen, "print", lambda *a, **k: None, raising=False)
    shipped = Predictor(default_model_path())

    def with_card(**change: object) -> None:
        monkeypatch.setattr("vmafdistill.edge.predictor.Predictor", lambda m: types.SimpleNamespace(
            card={**shipped.card, **change}))

    with_card(target="vmaf_min", corpus={"name": "other", "hash": "h0"})
    got = unseen.evaluate_unseen(cache=tmp_path / "cache")
    assert asked == ["vmaf_min"] and "(target `vmaf_min`, as the card says)" in got["text"]
    assert "in-sample" not in got["text"]
    with_card(target="vmaf_p5", corpus={"name": "other", "hash": "h0"})
    built = []
    monkeypatch.setattr("vmafdistill.corpus.build.build_corpus", lambda cfg: built.append(cfg))
    with pytest.raises(VmafDistillError, match=r"target 'vmaf_p5' is not a column of the "
                                               r"unseen corpus \(it has vmaf, .*vmaf_min"):
        unseen.evaluate_unseen(cache=tmp_path / "cache")
    assert not built  # before the corpus work
    monkeypatch.setattr("vmafdistill.corpus.build.build_corpus",
                        lambda cfg: types.SimpleNamespace(failures=[], samples=samples,
                                                          manifest={"corpus_hash": "h1"}))
    with_card(corpus={"name": "unseen_pilot", "hash": "h1"})
    with pytest.warns(UserWarning, match="trained on corpus unseen_pilot, the corpus `unseen`"):
        got = unseen.evaluate_unseen(cache=tmp_path / "cache")
    assert "the figures below are in-sample" in got["text"] and asked[-1] == "vmaf"


def test_a_student_trained_on_these_sources_under_another_ladder_is_in_sample(
        tmp_path: Path) -> None:
    """Trained on evaluate's own `--ladder tiny` corpus and evaluated with `--ladder tiny2`,
    every row was a training shot, headed "Unseen content" without a note: only equal corpus
    hashes were, and the ladder changes the hash. The sources are compared by sha256 where
    the card's training corpus is found in the cache."""
    import json

    import pandas as pd

    from vmafdistill.evaluation import unseen

    cache = tmp_path / "cache"
    trained, here = cache / "corpus" / "unseen_kinds_tiny", cache / "corpus" / "unseen_kinds_t2"
    for d, ids, shas in ((trained, ["a", "b"], ["s1", "s2"]),
                         (here, ["a", "c"], ["s1", "s3"])):
        (d / "tables").mkdir(parents=True)
        (d / "corpus.json").write_text(json.dumps({"corpus_hash": d.name}))
        pd.DataFrame({"source_id": ids, "sha256": shas}).to_parquet(
            d / "tables" / "sources.parquet")
    card = {"corpus": {"name": "unseen_kinds_tiny", "hash": "unseen_kinds_tiny"}}
    with pytest.warns(UserWarning, match=r"holds the same source files as `unseen_kinds_t2` "
                                         r"\(a; by sha256\)"):
        note = unseen._trained_on_it(card, {"corpus_hash": "x"}, "unseen_kinds_t2", here, cache)
    assert note and "in-sample" in note
    # the training corpus rebuilt since (another hash): nothing concluded
    stale = {"corpus": {"name": "unseen_kinds_tiny", "hash": "old"}}
    assert unseen._trained_on_it(stale, {"corpus_hash": "x"}, "t2", here, cache) is None
    other = {"corpus": {"name": "elsewhere", "hash": "h"}}
    assert unseen._trained_on_it(other, {"corpus_hash": "x"}, "t2", here, cache) is None


def test_a_student_fine_tuned_after_training_on_the_unseen_corpus_is_in_sample(
        tmp_path: Path) -> None:
    """A hunt: a student trained on evaluate's own corpus and then fine-tuned on another
    (its card named only the second) was scored "Unseen content" with no note, its MAE the
    in-sample one. The card's ``earlier_corpora`` are checked as its corpus is."""
    import json

    import pandas as pd

    from vmafdistill.evaluation import unseen

    card = {"corpus": {"name": "synthetic", "hash": "s1"},
            "earlier_corpora": [{"name": "unseen_vp9", "hash": "h1"}]}
    with pytest.warns(UserWarning, match="trained on corpus unseen_vp9, the corpus `unseen_vp9`"):
        note = unseen._trained_on_it(card, {"corpus_hash": "h1"}, "unseen_vp9",
                                     tmp_path / "c", tmp_path)
    assert note and "in-sample" in note
    # by the source files, under another ladder
    cache = tmp_path / "cache"
    trained, here = cache / "corpus" / "unseen_vp9", cache / "corpus" / "unseen_av1"
    for d in (trained, here):
        (d / "tables").mkdir(parents=True)
        (d / "corpus.json").write_text(json.dumps({"corpus_hash": d.name}))
        pd.DataFrame({"source_id": ["a"], "sha256": ["s1"]}).to_parquet(
            d / "tables" / "sources.parquet")
    card = {"corpus": {"name": "synthetic", "hash": "s1"},
            "earlier_corpora": [{"name": "unseen_vp9", "hash": "unseen_vp9"}]}
    with pytest.warns(UserWarning, match=r"holds the same source files as `unseen_av1`"):
        assert unseen._trained_on_it(card, {"corpus_hash": "x"}, "unseen_av1", here, cache)


def test_the_unseen_corpus_is_cut_as_the_card_cuts(tmp_path: Path) -> None:
    """A card exported with edge.shots.max_len_s=2 (as export's own warning advises for a
    corpus cut so) cut 3 shots where evaluate's corpus, cut with the default, had 6: shots
    pair by start and end frame, none paired, and evaluate ended in "no shot got a
    prediction". The corpus is cut with the card's settings, in tables of its own."""
    from vmafdistill.evaluation import unseen

    default = unseen._unseen_corpus_config(tmp_path, "pilot", 1, 0, True, None,
                                           {"max_len_s": 1.0, "threshold": 0.3})
    assert default[2] == "unseen_kinds_pilot" and default[0]["shots"]["max_len_s"] == 1.0
    cfg, _, name = unseen._unseen_corpus_config(tmp_path, "pilot", 1, 0, True, None,
                                                {"max_len_s": 2, "min_len_s": 0.5})
    assert cfg["shots"]["max_len_s"] == 2.0 and cfg["shots"]["min_len_s"] == 0.5
    assert name == "unseen_kinds_pilot_shots_max_len_s2.0"
    with pytest.raises(VmafDistillError, match=r"edge\.shots\.max_len_s='x': not a number"):
        unseen._unseen_corpus_config(tmp_path, "pilot", 1, 0, True, None, {"max_len_s": "x"})
    # no window split (max_len_s null, which export writes and predict reads): a review
    cfg, _, name = unseen._unseen_corpus_config(tmp_path, "pilot", 1, 0, True, None,
                                                {"max_len_s": None, "threshold": 0.30000001})
    assert cfg["shots"]["max_len_s"] is None and cfg["shots"]["threshold"] == 0.30000001
    assert name == "unseen_kinds_pilot_shots_max_len_snone_threshold0.30000001"


def test_shot_folds_that_split_a_scene_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    """Shots are windows of scenes: folds of shots keep windows whole, not scenes, so a test
    window's scene-level inputs were in training. The run says so; group_scene does not."""
    from vmafdistill.evaluation.splits import make_splits, shared_groups
    from vmafdistill.students.train import note_shared_scenes

    # 3 scenes cut into 4 windows each, 2 rungs per window
    rows = [{"shot_id": f"s/c{c}/w{w}", "scene_id": f"s/c{c}", "source_id": "s", "rung": r}
            for c in range(3) for w in range(4) for r in range(2)]
    samples = pd.DataFrame(rows)
    by_shot = make_splits(samples, {"name": "group_kfold", "n_splits": 3, "group": "shot_id"})
    by_scene = make_splits(samples, {"name": "group_kfold", "n_splits": 3, "group": "scene_id"})
    expected = sorted({s for tr, te in by_shot
                       for s in set(samples.scene_id[tr]) & set(samples.scene_id[te])})
    assert shared_groups(samples, by_shot, "scene_id") == expected != []
    assert shared_groups(samples, by_scene, "scene_id") == []
    assert shared_groups(samples.drop(columns="scene_id"), by_shot, "scene_id") == []
    cv = {"name": "group_kfold", "group": "shot_id"}
    assert note_shared_scenes(samples, by_shot, cv, ["scene_qp", "temporal_std"]) == expected
    err = capsys.readouterr().err
    assert f"{len(expected)} of 3 scene(s)" in err and "scene-level inputs scene_qp" in err
    assert "cv=group_scene" in err
    assert note_shared_scenes(samples, by_scene, cv, ["scene_qp"]) == []
    assert capsys.readouterr().err == ""
