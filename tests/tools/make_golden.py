#!/usr/bin/env python
"""Build every content case, score it with libvmaf and write tests/data/golden/<case>.json.

Usage: python tests/tools/make_golden.py [WORK_DIR] [--out DIR] [--cases a,b] [--threads N]
                                     [--add-this-cpu]

WORK_DIR receives the built clips (default: a temporary directory, removed afterwards). Every
case is scored with the built-in ``vmaf_float_v0.6.1`` (what the teacher reimplements) and the
default integer ``vmaf_v0.6.1``; cases listing extra models are also scored with the float JSONs
derived for ``vmaf_v0.6.1neg`` and ``vmaf_4k_v0.6.1``. The script also checks, on every case,
that the derived float JSON for vmaf_v0.6.1 reproduces the built-in per frame, and on the
extra-model cases that the derived neg/4k JSONs reproduce libvmaf's built-in float versions,
and prints a table of float vs integer VMAF.

``--add-this-cpu`` keeps the golden files and adds this machine's libvmaf values beside them,
for a CPU whose SIMD level (AVX2, AVX-512) differs from the one they were made on: the content
must decode to the recorded sha256; the values that differ are stored per SIMD level.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

try:
    import vmafdistill  # noqa: F401
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vmafdistill.oracle import (
    CANONICAL_METRICS,
    LibvmafResult,
    float_model_json,
    libvmaf_available,
    libvmaf_score,
)
from vmafdistill.testing.content import CASES, build_case
from vmafdistill.testing.golden import (
    BASE_MODELS,
    add_simd_values,
    dumps_golden,
    golden_dir,
    golden_path,
    golden_record,
    load_golden,
    model_argument,
)


def _max_gap(a: LibvmafResult, b: LibvmafResult, metrics: tuple[str, ...]) -> float:
    return max(
        abs(fa[m] - fb[m]) for fa, fb in zip(a.frames, b.frames, strict=True) for m in metrics
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (1 if a verification failed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("work_dir", nargs="?", type=Path, help="where to build the clips")
    parser.add_argument("--out", type=Path, default=golden_dir(), help="golden JSON directory")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="libvmaf threads")
    parser.add_argument("--add-this-cpu", action="store_true",
                        help="add this CPU's values to the existing golden files")
    args = parser.parse_args(argv)

    if not libvmaf_available():
        print("the ffmpeg in use has no libvmaf filter", file=sys.stderr)
        return 2
    names = args.cases.split(",") if args.cases else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown cases: {unknown}")

    t_start = time.perf_counter()
    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="vmafdistill-golden-")
        work = Path(tmp.name)
    else:
        work = args.work_dir
        work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    json_v061 = str(float_model_json("vmaf_v0.6.1"))
    builtin_twins = {"vmaf_float_v0.6.1neg": "vmaf_float_v0.6.1neg",
                     "vmaf_float_4k_v0.6.1": "vmaf_float_4k_v0.6.1"}  # fmt: skip
    failures: list[str] = []
    rows: list[tuple[str, int, float, float, float, float]] = []
    extra_rows: list[str] = []
    records: dict[str, dict] = {}
    try:
        for name in names:
            t0 = time.perf_counter()
            built = build_case(name, work)
            kw = built.oracle_kwargs()
            results: dict[str, LibvmafResult] = {}
            for model in (*BASE_MODELS, *CASES[name].extra_models):
                results[model] = libvmaf_score(
                    built.ref, built.dist, model=model_argument(model), n_threads=args.threads, **kw
                )
            # The derived float JSON must reproduce libvmaf's built-in float model exactly.
            via_json = libvmaf_score(
                built.ref, built.dist, model=json_v061, n_threads=args.threads, **kw
            )
            gap = _max_gap(via_json, results["vmaf_float_v0.6.1"], CANONICAL_METRICS)
            if gap != 0.0:
                failures.append(f"{name}: float JSON vs built-in vmaf_float_v0.6.1 differ by {gap}")
            for model in CASES[name].extra_models:
                twin = libvmaf_score(
                    built.ref, built.dist, model=builtin_twins[model], n_threads=args.threads, **kw
                )
                tgap = _max_gap(twin, results[model], CANONICAL_METRICS)
                if tgap != 0.0:
                    failures.append(f"{name}: derived {model} JSON vs built-in differ by {tgap}")
                extra_rows.append(
                    f"{name:34s} {model:22s} mean {results[model].pooled['vmaf']['mean']:9.6f}"
                    f"  (json vs built-in max |d| {tgap:g})"
                )

            if args.add_this_cpu:
                record, fresh = load_golden(name, args.out), golden_record(built, results)
                if (fresh["ref"], fresh["dist"]) != (record["ref"], record["dist"]):
                    failures.append(f"{name}: content differs from the golden file's; not added")
                    continue
                differing = add_simd_values(record, results)
                print(f"{name}: {len(differing)} model/metric rows differ here: {differing}")
            else:
                record = golden_record(built, results)
            records[name] = record
            golden_path(name, args.out).write_text(dumps_golden(record) + "\n")
            flt, itg = results["vmaf_float_v0.6.1"], results["vmaf_v0.6.1"]
            rows.append(
                (
                    name,
                    built.frames,
                    flt.pooled["vmaf"]["mean"],
                    itg.pooled["vmaf"]["mean"],
                    _max_gap(flt, itg, ("vmaf",)),
                    time.perf_counter() - t0,
                )
            )
    finally:
        if tmp is not None:
            tmp.cleanup()

    print(f"{'case':34s} {'frames':>6s} {'float':>10s} {'integer':>10s} {'max|f-i|':>9s} {'s':>5s}")
    for name, frames, fmean, imean, gap, secs in rows:
        print(f"{name:34s} {frames:6d} {fmean:10.6f} {imean:10.6f} {gap:9.6f} {secs:5.1f}")
    if extra_rows:
        print("\nextra float models (derived JSON):")
        print("\n".join(extra_rows))
    # Same pixels through raw .yuv and .y4m must give identical numbers.
    for name in names:
        base = name.removesuffix("_raw")
        if base != name and base in records:
            raw_models, y4m_models = records[name]["models"], records[base]["models"]
            same = all(y4m_models[m] == v for m, v in raw_models.items())
            print(f"\n{name} identical to {base}: {same}")
            if not same:
                failures.append(f"{name}: raw input scores differ from {base}")
    first = next(iter(records.values()), None)
    if first:
        print(f"\nlibvmaf {first['libvmaf_version']}, ffmpeg {first['ffmpeg_version']}")
    print(f"wrote {len(records)} files to {args.out} in {time.perf_counter() - t_start:.1f} s")
    for failure in failures:
        print("VERIFY FAILED:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
