"""Exact-mode frame features of a VMAF v0.6.1-family model, and libvmaf's printed names.

:func:`exact_frame_features` runs libvmaf's integer VIF, ADM and motion on a chunk of decoded
samples with the options the model passes (the NEG models' gain limits of 1), returning the
features under their canonical names (``vif_scale0``, ``adm2``, ``motion`` ...) so that the SVR
and every consumer of :class:`~vmafdistill.teacher.vmaf.VmafResult` read them as in float mode.
:func:`printed_names` gives the names libvmaf itself prints for them with that model
(``integer_vif_scale0_egl_1``, ``VMAF_integer_feature_motion_sad_score`` ...), which the JSON and
CSV writers use. ``motion2``/``motion3`` need the whole clip and come from
:func:`finish_motion`.
"""

from __future__ import annotations

import functools
import sys
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from ..motion3 import Motion3Options, motion3_from_sad, motion_sad_scores
from .backend import use_compiled_kernels
from .integer_adm import MIN_SIZE as ADM_MIN_SIZE
from .integer_adm import IntegerAdmOptions, integer_adm, libvmaf_reads_stale_memory
from .integer_vif import IntegerVifOptions, integer_vif, shape_problem

#: Exact-mode metrics in the order libvmaf's JSON log lists them (canonical names).
EXACT_METRICS: tuple[str, ...] = (
    "adm2", "aim", "adm3", "adm_scale0", "adm_scale1", "adm_scale2", "adm_scale3",
    "motion", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "motion2", "motion3",
    "vmaf",
)  # fmt: skip

#: VIF and ADM on CPU through torch run this many frames per call: their full-frame
#: intermediates then stay small (VIF at 720p, 1 thread: ~285 ms/frame in pairs vs ~350
#: ms/frame in groups of 8). The compiled kernels work frame by frame anyway, and one frame per
#: task balances two threads best (132 720p frames: 4.06 s vs 4.28 s in pairs, 4.14 s in
#: fours). On a GPU the whole chunk goes at once.
FRAMES_PER_CALL_CPU = 2
FRAMES_PER_CALL_COMPILED = 1

_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()



def _pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of at least ``workers`` threads (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] < workers:
            _POOL = (workers, ThreadPoolExecutor(workers, thread_name_prefix="vmafdistill-exact"))
        return _POOL[1]


def _run_tasks(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Results of independent ``tasks``; on ``torch.get_num_threads()`` threads at once.

    The compiled CPU kernels release the GIL, so frames run in parallel on these threads. On the
    torch path, exact mode's stages are long chains of small tensor operations on cache-sized tiles:
    OpenMP splits each of them across threads that then wait for one another (on a busy
    machine, several times slower than one thread). Independent tasks (VIF and ADM of each
    group of frames, motion), each run on one intra-op thread by one of several Python threads
    (torch releases the GIL inside every operation) that take the next task as they finish,
    use the same cores without those waits. ``torch.get_num_threads()`` is the budget: with 1
    (corpus workers, ``OMP_NUM_THREADS=1``) the tasks run one after the other on the caller's
    thread. Results do not depend on it: the same integer arithmetic either way.
    """
    budget = torch.get_num_threads()
    threads = min(budget, len(tasks))
    if threads < 2:
        return [t() for t in tasks]
    results: list[Any] = [None] * len(tasks)
    order = iter(range(len(tasks)))
    lock = threading.Lock()
    failed = threading.Event()

    def worker() -> None:
        torch.set_num_threads(1)  # this thread's intra-op threads (OpenMP/MKL: thread-local)
        with torch.no_grad():  # grad mode is thread-local too
            while not failed.is_set():
                with lock:
                    i = next(order, None)
                if i is None:
                    return
                try:
                    results[i] = tasks[i]()
                except BaseException:
                    failed.set()
                    raise

    futures = [_pool(threads - 1).submit(worker) for _ in range(threads - 1)]
    try:
        worker()
    finally:
        for f in futures:
            f.exception()  # wait for every worker before returning or raising
        torch.set_num_threads(budget)
    for f in futures:
        f.result()  # re-raise a worker's error
    return results


@dataclass(frozen=True)
class ExactOptions:
    """The integer extractors' options a model sets."""

    vif: IntegerVifOptions = field(default_factory=IntegerVifOptions)
    adm: IntegerAdmOptions = field(default_factory=IntegerAdmOptions)
    motion: Motion3Options = field(default_factory=Motion3Options)


def egl_suffix(value: float, default: float) -> str:
    """The suffix libvmaf prints after a feature name whose enhancement gain limit is not the
    default (``_egl_1`` for the neg models), else ``""``."""
    # libvmaf appends ``_<alias>_<value>`` for each non-default feature parameter (%g format).
    return "" if value == default else f"_egl_{value:g}"


def printed_names(opts: ExactOptions) -> dict[str, str]:
    """Canonical name -> the name libvmaf prints for it in integer mode with these options."""
    adm = egl_suffix(opts.adm.enhn_gain_limit, IntegerAdmOptions().enhn_gain_limit)
    vif = egl_suffix(opts.vif.enhn_gain_limit, IntegerVifOptions().enhn_gain_limit)
    names = {n: f"integer_{n}{adm}" for n in EXACT_METRICS if n.startswith(("adm", "aim"))}
    names.update({f"vif_scale{s}": f"integer_vif_scale{s}{vif}" for s in range(4)})
    names["motion"] = "VMAF_integer_feature_motion_sad_score"
    names["motion2"] = "integer_motion2"
    names["motion3"] = "integer_motion3"
    names["vmaf"] = "vmaf"
    return names


def _to_samples(x: torch.Tensor) -> torch.Tensor:
    if x.requires_grad:
        raise RuntimeError(
            "exact mode computes libvmaf's fixed-point features, which have no gradient; "
            "use mode='float' (the differentiable float teacher) to backpropagate through VMAF"
        )
    if x.is_floating_point() and not bool(torch.equal(x, x.round())):
        raise ValueError("exact mode needs integer sample values (decoded frames)")
    return x


def exact_input_problem(frames: torch.Tensor, bit_depth: int) -> str | None:
    """Why exact mode cannot score these ``(N, H, W)`` frames (none, too small, a bit depth
    outside 8..16), or None."""
    if not 8 <= int(bit_depth) <= 16:
        return f"bit depth must be 8..16, got {bit_depth}"
    if frames.shape[0] == 0:
        return "no frames to score: the (N, H, W) input has N = 0"
    h, w = frames.shape[-2:]
    if min(h, w) < ADM_MIN_SIZE:
        # libvmaf's integer ADM reads outside its buffers below this size.
        return (f"exact mode needs frames of at least {ADM_MIN_SIZE}x{ADM_MIN_SIZE} (libvmaf's "
                f"integer ADM), got {w}x{h}; float mode scores smaller frames (score --mode "
                f"float, corpus teacher.mode=float, VMAF(mode='float'))")
    return None


def _check_sample_range(frames: torch.Tensor, bit_depth: int) -> None:
    """The compiled path's range check, for the torch path (where a value above the range
    indexes past a lookup table and a negative one is scored silently)."""
    lo, hi = frames.min().item(), frames.max().item()
    if lo < 0 or hi > (1 << bit_depth) - 1:
        raise ValueError(f"{bit_depth}-bit samples must lie in 0..{(1 << bit_depth) - 1}, "
                         f"got values from {lo:g} to {hi:g}")


@torch.no_grad()
def exact_frame_features(
    ref: torch.Tensor,
    dis: torch.Tensor,
    bit_depth: int,
    opts: ExactOptions,
    *,
    history: torch.Tensor | None = None,
    start: int = 0,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Integer features of a chunk of decoded luma samples ``(N, H, W)``, CPU float64 ``(N,)``.

    ``history``/``start``: the reference frames before the chunk that motion needs and the
    index of the chunk's first frame (from the previous call; ``None``/0 at the start).
    Returns the canonical-name features (``motion`` is libvmaf's per-frame SAD score) and the
    history to pass to the next chunk.
    """
    ref, dis = _to_samples(ref), _to_samples(dis)
    if ref.shape != dis.shape or ref.dim() != 3:
        raise ValueError(shape_problem(ref.shape, dis.shape))
    if (problem := exact_input_problem(ref, bit_depth)) is not None:
        raise ValueError(problem)
    n = ref.shape[0]
    cpu = ref.device.type == "cpu"
    compiled = cpu and use_compiled_kernels(ref)
    if not compiled:  # the compiled path checks as it converts
        for frames in (ref, dis):
            _check_sample_range(frames, bit_depth)
    if libvmaf_reads_stale_memory(ref.shape[-1], bit_depth, skip_scale0=opts.adm.skip_scale0):
        warnings.warn(
            f"{ref.shape[-1]}-pixel-wide {bit_depth}-bit frames: on this CPU libvmaf's integer "
            "ADM reads memory its frame did not write there (left by the previous frame; for "
            "the first, whatever its heap held), so its score is not reproducible; exact mode "
            "may differ from it by about 0.01 VMAF here", stacklevel=3)
    group = (FRAMES_PER_CALL_COMPILED if compiled else FRAMES_PER_CALL_CPU) if cpu else n
    spans = [(i, i + group) for i in range(0, n, group)]

    # Independent tasks, largest first (VIF of a group of frames, its ADM, then motion): on
    # CPU they share the threads torch may use (see _run_tasks).
    tasks: list[Callable[[], Any]] = [
        *(functools.partial(integer_vif, ref[i:j], dis[i:j], bit_depth, opts.vif)
          for i, j in spans),
        *(functools.partial(integer_adm, ref[i:j], dis[i:j], bit_depth, opts.adm)
          for i, j in spans),
        functools.partial(motion_sad_scores, ref, bit_depth, opts.motion, history=history,
                          start=start),
    ]
    results = _run_tasks(tasks) if cpu else [t() for t in tasks]
    vif_parts, adm_parts = results[: len(spans)], results[len(spans) : 2 * len(spans)]
    motion = results[-1]
    parts = [{**v, **a} for v, a in zip(vif_parts, adm_parts, strict=True)]
    feats: dict[str, torch.Tensor] = {}
    keys = (*(f"vif_scale{s}" for s in range(4)), "adm2", "aim", "adm3",
            *(f"adm_scale{s}" for s in range(4)))  # fmt: skip
    for key in keys:
        if f"integer_{key}" in parts[0]:
            feats[key] = torch.cat([p[f"integer_{key}"].cpu() for p in parts])
    sad, history = motion
    feats["motion"] = sad.cpu()
    return feats, history


def release_buffers() -> None:
    """Free the compiled CPU kernels' per-thread buffers (scorers call it when a clip ends)."""
    cpu_adm = sys.modules.get(f"{__package__}.cpu_adm")  # imported only if the kernels ran
    if cpu_adm is not None:
        cpu_adm.release_workspaces()


#: Chunks scored between two :func:`trim_heap` calls in the file scorers.
TRIM_EVERY_CHUNKS = 16


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None (another C library or platform, or no ctypes:
    ``CDLL(None)`` is a TypeError on Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except Exception:
        return None


def trim_heap() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim(0)``; elsewhere
    nothing). Scoring a long clip chunk by chunk fragments the heap: a labelling process grew
    ~28 KB per 640x360 frame with no end (+75 MB over 4,000 frames, ~2.5 GB for an hour of
    footage per worker); trimmed every :data:`TRIM_EVERY_CHUNKS` chunks it stays flat."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def finish_motion(sad: torch.Tensor, opts: ExactOptions) -> dict[str, torch.Tensor]:
    """``motion2`` and ``motion3`` of a whole clip from its per-frame SAD scores."""
    return motion3_from_sad(sad, opts.motion)


def exact_features(
    ref: torch.Tensor, dis: torch.Tensor, bit_depth: int, opts: ExactOptions | None = None
) -> dict[str, torch.Tensor]:
    """All exact-mode features of a whole clip held in memory (canonical names)."""
    opts = opts or ExactOptions()
    feats, _ = exact_frame_features(ref, dis, bit_depth, opts)
    release_buffers()
    feats.update(finish_motion(feats["motion"], opts))
    return feats
