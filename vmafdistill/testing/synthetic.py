"""A small synthetic corpus in the corpus writer's format (tests, docs and API examples).

The teacher is a known smooth function of the scale-free features, so a student trained on it
has a right answer; nothing is encoded or decoded, so a corpus is written in milliseconds.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..corpus.cache import file_sha256
from ..corpus.schema import SCHEMA_VERSION
from ..corpus.tables import atomic_write_json, write_table
from ..features.registry import CODECS, PIXEL_FEATURES

__all__ = ["make_samples", "synthetic_corpus", "truth"]


def truth(log_bpp: np.ndarray, scale_ratio: np.ndarray, si: np.ndarray, shift: float = 0.0,
          slope: float = 1.0) -> np.ndarray:
    """The synthetic teacher: a smooth, monotone-in-rate VMAF surface (0..100)."""
    z = slope * 1.6 * (log_bpp + 3.0) - 0.9 * (scale_ratio - 2.0) - 0.6 * si + shift
    return 100.0 / (1.0 + np.exp(-z))


def make_samples(
    n_sources: int = 2, n_shots: int = 8, seed: int = 0, noise: float = 0.5,
    shift: float = 0.0, slope: float = 1.0, name: str = "synthetic",
) -> pd.DataFrame:
    """A samples table: n_sources x n_shots shots x 8 variants (2 codecs x 2 heights x 2 crf)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sources):
        source = f"{name}{s}"
        for k in range(n_shots):
            shot = f"{source}/s{k:03d}"
            complexity = rng.normal()
            pix = {f: rng.normal(1.0, 0.3) for f in PIXEL_FEATURES}
            pix["spatial_info"] = complexity
            pix["blockiness"] = float(rng.lognormal(2.0, 1.5))
            for codec in ("h264", "h265"):
                for height in (180, 360):
                    for crf in (26, 38):
                        bpp = math.exp(-1.5 - 0.12 * (crf - 26) - 0.5 * complexity
                                       + (0.3 if codec == "h265" else 0.0)
                                       + rng.normal(0, 0.1))
                        width = height * 16 // 9
                        kbps = bpp * width * height * 25 / 1000
                        row = {
                            "sample_id": f"{shot}/{codec}_{height}_crf{crf}",
                            "source_id": source, "shot_id": shot, "scene_id": shot,
                            "variant_id": f"{codec}_{width}x{height}_crf{crf}",
                            "codec": codec, "width": width, "height": height, "crf": crf,
                            "preset": "medium", "ref_width": 1280, "ref_height": 720,
                            "fps": 25.0, "bitrate_kbps": kbps, "bits_per_pixel": bpp,
                            "log_bitrate": math.log(kbps), "log_bpp": math.log(bpp),
                            "scale_ratio": 720 / height,
                            **{f"codec_{c}": float(c == codec) for c in CODECS},
                            **pix, "schema_version": SCHEMA_VERSION,
                        }
                        rows.append(row)
    df = pd.DataFrame(rows)
    clean = truth(df["log_bpp"].to_numpy(), df["scale_ratio"].to_numpy(),
                  df["spatial_info"].to_numpy(), shift, slope)
    df["vmaf"] = np.clip(clean + rng.normal(0, noise, len(df)), 0, 100)
    df["vmaf_min"] = df["vmaf"] - 3
    df["vmaf_hmean"] = df["vmaf"] - 1
    return df


def synthetic_corpus(path: str | os.PathLike[str], **kw: object) -> Path:
    """Write ``make_samples(**kw)`` as a built corpus at ``path`` (tables/ + corpus.json)."""
    path = Path(path)  # a str was a TypeError at the first "/"
    df = make_samples(**kw)  # type: ignore[arg-type]
    table = path / "tables" / "samples.parquet"
    write_table(df, table)
    name = str(kw.get("name", "synthetic"))
    sha = file_sha256(table)
    atomic_write_json(path / "corpus.json", {
        "name": name, "schema_version": SCHEMA_VERSION,
        # of the rows (named by seed and shift alone, two corpora of other sizes, noise or
        # slope written to one folder shared their cached baselines)
        "corpus_hash": f"{name}-{sha[:16]}",
        # no tables_sha256: tests rewrite these tables in place to make odd corpora
        "counts": {"samples": len(df)}, "failures": [],
    })
    return path
