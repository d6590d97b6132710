#!/usr/bin/env python
"""Exact mode against libvmaf's integer ``vmaf_v0.6.1`` on every golden case: a table.

``python tests/tools/check_exact_golden.py [--cases NAME ...] [--workdir DIR]`` builds each case of
``tests/data/golden`` (checking the decoded sha256 against the record), scores it with
``score_files`` in exact mode (``chunk=4``: motion crosses chunk borders) exactly as the oracle
scored it, and prints per case the largest per-frame |ΔVMAF| and the worst feature |Δ| against
libvmaf's printed values (this machine's SIMD level where the record has them). libvmaf prints
``%.6f``, so identical values show up as |Δ| <= 5e-7. Exit status 1 if any |Δ| > 1e-6.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vmafdistill.teacher.score import score_files  # noqa: E402
from vmafdistill.testing import content  # noqa: E402
from vmafdistill.testing.golden import GoldenCase, golden_dir, load_golden  # noqa: E402

LIMIT = 1e-6


def main() -> int:
    """Score the cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--workdir", help="where to build the cases (default: a temp dir)")
    args = parser.parse_args()
    names = args.cases or sorted(p.stem for p in golden_dir().glob("*.json"))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="exact_golden_"))
    print("| case | frames | max \\|ΔVMAF\\| | worst feature \\|Δ\\| | s |")
    print("|---|---:|---:|---|---:|")
    worst_all = 0.0
    for name in names:
        case = GoldenCase(built=content.build_case(name, work), golden=load_golden(name))
        if case.content_mismatches():
            print(f"| {name} | content differs from the golden record: skipped | | | |")
            continue
        b = case.built
        if b.scale_to is not None:
            assert tuple(b.scale_to) == (b.ref_format.width, b.ref_format.height)
        t0 = time.perf_counter()
        res = score_files(
            b.ref, b.dist, model="vmaf_v0.6.1", mode="exact", chunk=4,
            ref_raw=b.ref_raw, dist_raw=b.dist_raw,
            rescale=b.scale_to is not None, scale_flags=b.scale_flags or "bicubic",
        )  # fmt: skip
        wall = time.perf_counter() - t0
        deltas = {
            m: float(np.abs(res.metrics[m] - np.asarray(case.per_frame("vmaf_v0.6.1", m))).max())
            for m in case.golden["models"]["vmaf_v0.6.1"]["per_frame"]
        }
        feat = max((m for m in deltas if m != "vmaf"), key=lambda m: deltas[m])
        worst_all = max(worst_all, *deltas.values())
        print(f"| {name} | {res.num_frames} | {deltas['vmaf']:.1e} | {feat} {deltas[feat]:.1e} "
              f"| {wall:.1f} |", flush=True)
    print(f"largest |Δ| over all cases and metrics: {worst_all:.1e} (limit {LIMIT:.0e})")
    return 0 if worst_all <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
