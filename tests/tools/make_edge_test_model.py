"""Write the tiny *test* ONNX student + card used by the edge tests and the install check.

    .venv/bin/python tests/tools/make_edge_test_model.py [OUT_DIR]   # default tests/data/edge

A linear ``paper14`` student with hand-set weights (VMAF rises with ln bitrate and falls with
the scale ratio, bounded 0..100 by a sigmoid head) behind a scaler fitted on synthetic feature
rows drawn from plausible ranges. It is NOT a quality model: it exists so the torch-free
``vmafdistill predict`` path has a small, deterministic, reviewable model to run. Exported with
:func:`vmafdistill.export.export_onnx` (checker, allowlist, ORT-vs-torch parity, card).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def synthetic_samples(n: int = 256, seed: int = 0):  # -> pandas.DataFrame
    """Feature rows in plausible ranges (+ a synthetic ``vmaf`` target and ref size)."""
    import pandas as pd

    from vmafdistill.features.registry import feature_set

    rng = np.random.default_rng(seed)
    cols = {
        "log_bitrate": np.log(rng.uniform(50, 8000, n)),
        "scale_ratio": rng.choice([1.0, 1.5, 2.0, 3.0, 4.0], n),
        "mean_luma": rng.uniform(30, 200, n),
        "std_luma": rng.uniform(5, 70, n),
        "contrast_p95_p05": rng.uniform(20, 220, n),
        "sobel_mean": rng.uniform(2, 80, n),
        "spatial_info": rng.uniform(5, 120, n),
        "edge_density": rng.uniform(0, 0.4, n),
        "laplacian_var": np.exp(rng.uniform(2, 9, n)),
        "entropy": rng.uniform(4, 7.8, n),
        "temporal_diff": rng.uniform(0, 20, n),
        "temporal_std": rng.uniform(0, 30, n),
        "blockiness": np.exp(rng.uniform(-0.5, 1.5, n)),
    }
    codec = rng.integers(0, 4, n)
    for i, c in enumerate(("h264", "h265", "av1", "vp9")):
        cols[f"codec_{c}"] = (codec == i).astype(float)
    df = pd.DataFrame(cols)[feature_set("paper14")]
    z = 0.9 * (df["log_bitrate"] - 6.5) - 0.8 * (df["scale_ratio"] - 1.5)
    df["vmaf"] = 100 / (1 + np.exp(-z))
    df["sample_id"] = [f"syn{i:04d}" for i in range(n)]
    df["ref_width"], df["ref_height"] = 1280, 720
    return df


def build(out_dir: Path) -> Path:
    """Export the test student to ``out_dir/tiny.onnx`` (+ card); return the model path."""
    import torch

    from vmafdistill.export import export_onnx, load_export_settings
    from vmafdistill.features.registry import feature_set
    from vmafdistill.students.models import make_scaled_student

    torch.set_num_threads(1)
    names = feature_set("paper14")
    df = synthetic_samples()
    cfg = {"name": "linear", "output": "bounded", "output_margin": 0.0, "transforms": None,
           "features": None}
    model = make_scaled_student(cfg, df[names].to_numpy(np.float32), names).eval()
    w = torch.zeros(1, len(names))
    w[0, names.index("log_bitrate")] = 1.6
    w[0, names.index("scale_ratio")] = -0.9
    w[0, names.index("sobel_mean")] = -0.2
    with torch.no_grad():
        model.student.linear.weight.copy_(w)
        model.student.linear.bias.fill_(0.3)
    meta = {
        "feature_set": "paper14",
        "feature_names": names,
        "corpus": {"name": "synthetic-test", "hash": "none"},
        "metrics": {"note": "test model on synthetic rows; not a quality model"},
        "conformal": {"alpha": 0.1, "q": 6.0},
        "guard_thresholds": [60.0, 80.0],
        "target": "vmaf",
        "student_cfg": cfg,
    }
    out = out_dir / "tiny.onnx"
    card_path = out.with_name("tiny.card.json")
    # the predict tests read the committed card's settings (shot_pixel_step 1, no training
    # domain): a fresh card would change what they check. Its sha256 pins the model, which
    # comes out as committed; export_onnx writes a card, so the committed one is put back.
    committed = card_path.read_bytes() if card_path.is_file() else None
    card = export_onnx(model, meta, df, out, settings=load_export_settings(),
                       source="tests/tools/make_edge_test_model.py")
    if committed is not None:
        card_path.write_bytes(committed)
        print(f"kept {card_path} as it was (delete it to write a fresh card)")
        return out
    # A fixed timestamp and versions keep the committed card byte-stable across regenerations.
    import json

    card["created"] = "fixed"
    card["versions"] = {k: "-" for k in card["versions"]}
    card_path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return out


if __name__ == "__main__":
    path = build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/data/edge"))
    print(f"wrote {path} ({path.stat().st_size} bytes)")
