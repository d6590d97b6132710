"""VMAF from elementary features: functional core, streaming scorer and ``nn.Module`` wrapper.

* :func:`to_vmaf_domain` maps decoded samples (8/10/12/16-bit) to libvmaf's float domain.
* :func:`frame_features` computes the per-frame features of a chunk (VIF, ADM, motion).
* :func:`vmaf` scores a whole clip held in memory, differentiably.
* :class:`VmafScorer` streams chunks of any size and gives the same numbers as one big chunk,
  because the only temporal state (the previous blurred reference frame) is carried over.
* :class:`VMAF` is the thin ``nn.Module`` for training code.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import VideoInputError, VmafDistillError
from .adm import adm_scales
from .exact.features import (
    EXACT_METRICS,
    egl_suffix,
    exact_frame_features,
    exact_input_problem,
    finish_motion,
    printed_names,
    release_buffers,
)
from .exact.integer_vif import shape_problem
from .filters import check_filter_method
from .model import VmafModel, predict_clip
from .motion import motion2_from_motion, motion_blur, motion_sad
from .motion3 import Motion3Options, motion3_from_sad
from .vif import vif_min_size, vif_scales

#: What float mode reports: the v0.6.1 features and what libvmaf's float extractors print
#: beside them, in the order its log lists them.
FLOAT_METRICS: tuple[str, ...] = (
    "adm2", "aim", "adm3", *(f"adm_scale{k}" for k in range(4)), "motion2", "motion",
    *(f"vif_scale{k}" for k in range(4)), "motion3", "vmaf",
)  # libvmaf's log order


def to_vmaf_domain(
    frames: torch.Tensor | np.ndarray, bit_depth: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Decoded samples -> libvmaf's float domain: 8-bit scale, offset by -128.

    libvmaf divides 10-, 12- and 16-bit samples by 4, 16 and 256 before the offset.
    """
    t = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    t = t.to(dtype)
    if bit_depth != 8:
        t = t / float(1 << (bit_depth - 8))
    return t - 128.0


def frame_features(
    ref: torch.Tensor,
    dist: torch.Tensor,
    model: VmafModel,
    *,
    prev_ref_blur: torch.Tensor | None = None,
    filter_method: str = "exact",
    aim: bool = False,
    libvmaf_floor: bool = True,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-frame features of a chunk ``(N, H, W)`` in the VMAF domain.

    Returns the features (each ``(N,)``; ``motion`` but not ``motion2``, which needs the next
    frame) and the last blurred reference frame to pass as ``prev_ref_blur`` to the next chunk.
    ``aim``: also ADM's ``aim`` and ``adm3`` (printed by libvmaf, read by no v0.6.1 model).
    ``libvmaf_floor=False`` (the differentiable loss) also takes 16-pixel sides, where the
    maths is defined but libvmaf's float ADM reads out of bounds (scorers refuse them).
    """
    if ref.shape != dist.shape:
        raise ValueError(f"reference {tuple(ref.shape)} and distorted {tuple(dist.shape)} differ")
    if ref.dim() != 3:
        raise ValueError(shape_problem(ref.shape, ref.shape))
    if ref.shape[0] == 0:
        raise ValueError("no frames to score: the (N, H, W) input has N = 0")
    if (problem := float_size_problem(model, *ref.shape[-2:],
                                      libvmaf_floor=libvmaf_floor)) is not None:
        raise ValueError(problem)
    feats: dict[str, torch.Tensor] = {}
    feats.update(vif_scales(ref, dist, model.vif_options, filter_method=filter_method))
    feats.update(_adm_in_groups(ref, dist, model, aim))
    blurred = motion_blur(ref, filter_method=filter_method)
    feats["motion"] = motion_sad(blurred, prev_ref_blur)
    return feats, blurred[-1].detach()


#: ADM runs on this many frames at a time on CPU: its full-frame intermediates then stay in
#: cache (measured at 720p on 2 cores: 23 ms/frame in pairs vs 31 ms/frame in groups of 8).
ADM_FRAMES_PER_CALL_CPU = 2


#: The smallest side libvmaf's float ADM scores correctly: at 16 its scale-3 band is one sample
#: wide and libvmaf reads outside it (measured: adm_scale3 6.76 where 17 px and up agree with
#: libvmaf to the printed digit).
FLOAT_ADM_MIN_SIZE = 17


def float_size_problem(model: VmafModel, h: int, w: int, *, libvmaf_floor: bool = True
                       ) -> str | None:
    """Why float mode cannot score ``h x w`` frames (below VIF's coarsest filter, or, with
    ``libvmaf_floor``, below the size where libvmaf's float ADM is right), or None."""
    side = vif_min_size(model.vif_options.kernelscale)
    if libvmaf_floor:
        side = max(side, FLOAT_ADM_MIN_SIZE)
    if min(h, w) < side:
        return (f"float mode needs frames of at least {side}x{side} (VIF's coarsest filter, "
                f"ADM's coarsest band), got {w}x{h}")
    return None


def _adm_in_groups(
    ref: torch.Tensor, dist: torch.Tensor, model: VmafModel, aim: bool = False
) -> dict[str, torch.Tensor]:
    """ADM features of a chunk, computed a few frames at a time on CPU."""
    n = ref.shape[0]
    group = ADM_FRAMES_PER_CALL_CPU if ref.device.type == "cpu" else n
    if n <= group:
        return adm_scales(ref, dist, model.adm_options, aim=aim)
    parts = [
        adm_scales(ref[i : i + group], dist[i : i + group], model.adm_options, aim=aim)
        for i in range(0, n, group)
    ]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def vmaf(
    ref: torch.Tensor,
    dist: torch.Tensor,
    model: VmafModel | str = "vmaf_v0.6.1",
    *,
    clip: bool = True,
    filter_method: str = "exact",
) -> dict[str, torch.Tensor]:
    """Per-frame VMAF and features of a whole clip ``(N, H, W)`` in the VMAF domain.

    Differentiable with respect to ``dist`` (and ``ref``). ``clip=False`` leaves the score
    unclipped so gradients survive near 0 and 100.
    """
    if not isinstance(model, VmafModel):
        model = VmafModel.load(model)
    # integer frames wrapped in VIF's squared moments (uint8: vif_scale0 off by 0.45) and half
    # precision ran the whole pipeline in it (VMAF moved by 20-35): float32 at least
    ref, dist = _at_least_float32(ref), _at_least_float32(dist)
    feats, _ = frame_features(ref, dist, model, filter_method=filter_method, libvmaf_floor=False)
    feats["motion2"] = motion2_from_motion(feats["motion"])
    feats["vmaf"] = model.predict(feats, clip=clip)
    return feats


def pool(values: np.ndarray) -> dict[str, float]:
    """libvmaf's pooled statistics: min, max, mean and harmonic mean (of ``x + 1``, minus 1)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"min": float("nan"), "max": float("nan"), "mean": float("nan"),
                "harmonic_mean": float("nan")}
    return {
        "min": float(v.min()),
        "max": float(v.max()),
        "mean": float(v.mean()),
        "harmonic_mean": float(v.size / np.sum(1.0 / (v + 1.0)) - 1.0),
    }


@dataclass
class VmafResult:
    """Per-frame metrics of a scored pair plus pooled statistics.

    ``metrics`` is keyed by canonical names (``vmaf``, ``adm2``, ``motion2`` ...) in both modes;
    ``printed`` maps them to the names libvmaf prints (``integer_adm2`` ... in exact mode),
    which :meth:`frames` and the JSON/CSV writers use when asked.
    """

    model: str
    metrics: dict[str, np.ndarray]  # name -> (N,) float64
    info: dict[str, object] = field(default_factory=dict)
    mode: str = "float"
    printed: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Canonical names of the reported metrics, in libvmaf's log order for the mode."""
        order = EXACT_METRICS if self.mode == "exact" else FLOAT_METRICS
        return [n for n in order if n in self.metrics]

    @property
    def num_frames(self) -> int:
        """Number of scored frames."""
        return int(self.metrics["vmaf"].shape[0]) if "vmaf" in self.metrics else 0

    @property
    def pooled(self) -> dict[str, dict[str, float]]:
        """``{metric: {min, max, mean, harmonic_mean}}`` over frames."""
        return {name: pool(self.metrics[name]) for name in self.names}

    def frames(self, *, printed: bool = False) -> list[dict[str, float]]:
        """One ``{metric: value}`` dict per frame; ``printed=True``: libvmaf's printed names."""
        names = self.names
        keys = [self.printed.get(n, n) if printed else n for n in names]
        return [
            {k: float(self.metrics[n][i]) for k, n in zip(keys, names, strict=True)}
            for i in range(self.num_frames)
        ]


class VmafScorer:
    """Streaming VMAF: feed aligned chunks with :meth:`update`, then call :meth:`result`.

    Any chunking gives the same numbers as one chunk: motion carries the previous (blurred)
    reference frame across chunks and ``motion2`` is formed once all ``motion`` values are in.

    ``mode``: ``"exact"`` reproduces libvmaf's integer features (the default for the integer
    models ``vmaf_v0.6.1``, ``vmaf_v0.6.1neg``, ``vmaf_4k_v0.6.1``), ``"float"`` its float
    features (the default for ``vmaf_float_*``); ``None`` takes the model's default.
    ``dtype``, ``filter_method`` and ``aim`` only apply to float mode; ``aim`` also reports
    ADM's ``aim`` and ``adm3``, as libvmaf's float extractor prints them (no v0.6.1 model
    reads them, and they cost float scoring a quarter more CPU).
    """

    def __init__(
        self,
        model: VmafModel | str = "vmaf_v0.6.1",
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        filter_method: str = "exact",
        mode: str | None = None,
        aim: bool = False,
    ) -> None:
        self.model = model if isinstance(model, VmafModel) else VmafModel.load(model)
        self.mode = resolve_mode(self.model, mode)
        check_device(device)  # first: torch.device("gpu") raised torch's own error
        self.device = torch.device(device)
        if self.mode == "float" and dtype not in (torch.float32, torch.float64):
            # float16/bfloat16 moved VMAF by ~4.5 in a test: not libvmaf's numbers
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.dtype = dtype
        self._size: tuple[int, int] | None = None
        check_filter_method(filter_method)  # was refused at the first update only
        self.filter_method = filter_method
        self.aim = aim
        self._prev_blur: torch.Tensor | None = None
        self._history: torch.Tensor | None = None
        self._seen = 0
        self._bit_depth: tuple[int, int] | None = None  # (reference, distorted)
        self._parts: dict[str, list[np.ndarray]] = {}
        self._overshoot_said = False

    @torch.no_grad()
    def update(
        self,
        ref: np.ndarray | torch.Tensor,
        dist: np.ndarray | torch.Tensor,
        *,
        ref_bit_depth: int = 8,
        dist_bit_depth: int | None = None,
    ) -> None:
        """Score one aligned chunk of decoded luma frames ``(n, H, W)`` (an empty one adds
        nothing); the frame size must stay the first chunk's."""
        if np.shape(ref) != np.shape(dist):
            raise VideoInputError(f"reference chunk {np.shape(ref)} and distorted chunk "
                                  f"{np.shape(dist)} differ")
        if len(np.shape(ref)) != 3:  # (N, H, W, 3) read "frames of at least 33x33 ... 3x160"
            # ValueError, as VMAF() and frame_features raise for a shape
            raise ValueError(shape_problem(np.shape(ref), np.shape(dist)))
        if np.shape(ref)[0] == 0:
            return
        size = tuple(np.shape(ref)[-2:])
        if self._size is not None and size != self._size:
            raise VideoInputError(f"frame size changed mid-stream from {self._size[1]}x"
                                  f"{self._size[0]} to {size[1]}x{size[0]}")
        # None: the reference's (0 was read as "not given" and silently became it)
        depths = (ref_bit_depth, ref_bit_depth if dist_bit_depth is None else dist_bit_depth)
        for name, frames, bd in (("reference", ref, depths[0]), ("distorted", dist, depths[1])):
            said = check_samples(name, frames, bd, overshoot_ok=self.mode == "float")
            if said and not self._overshoot_said:  # once per clip, not once per chunk
                warnings.warn(said, stacklevel=3)
                self._overshoot_said = True
        _refuse_unit_range(_tensor(ref), _tensor(dist), (1 << depths[0]) - 1,
                           hint=f"the scorer reads {depths[0]}-bit samples 0.."
                                f"{(1 << depths[0]) - 1}: scale frames in [0, 1] by "
                                f"{(1 << depths[0]) - 1} (or pass the decoded samples)")
        if self._bit_depth is not None and depths != self._bit_depth:
            # float mode too: a chunk of another stream, though its domain would be rescaled
            raise VideoInputError(f"bit depth changed from {self._bit_depth[0]}/"
                                  f"{self._bit_depth[1]} to {depths[0]}/{depths[1]} "
                                  "(reference/distorted) mid-stream")
        # the size (and bit depth) are taken once a chunk is accepted: a refused 16x16 chunk
        # made every later chunk "frame size changed mid-stream"
        if self.mode == "exact":
            self._update_exact(ref, dist, *depths)
        else:
            self._update_float(ref, dist, *depths, size)
        self._size = size  # type: ignore[assignment]
        self._bit_depth = depths

    def _update_float(self, ref: np.ndarray | torch.Tensor, dist: np.ndarray | torch.Tensor,
                      rbd: int, dbd: int, size: tuple[int, ...]) -> None:
        if (problem := float_size_problem(self.model, *size)) is not None:
            raise VideoInputError(problem)  # the input's problem here, not the caller's
        r = to_vmaf_domain(ref, rbd, dtype=self.dtype).to(self.device)
        d = to_vmaf_domain(dist, dbd, dtype=self.dtype).to(self.device)
        feats, self._prev_blur = frame_features(
            r, d, self.model, prev_ref_blur=self._prev_blur, filter_method=self.filter_method,
            aim=self.aim,
        )
        for name, value in feats.items():
            self._parts.setdefault(name, []).append(value.detach().cpu().numpy())

    def _update_exact(
        self, ref: np.ndarray | torch.Tensor, dist: np.ndarray | torch.Tensor, rbd: int, dbd: int
    ) -> None:
        if rbd != dbd:
            raise VideoInputError(
                f"exact mode scores one bit depth, got reference {rbd} and distorted {dbd} "
                f"(ffmpeg's libvmaf filter scores one format: convert one side first; "
                f"score_files(rescale=True) converts the distorted to the reference's)"
            )
        # exact features carry no gradient and the result is numpy: a model output that
        # still requires grad (a validation loop without .detach()) is scored as it is
        r = _as_tensor(ref, "reference").detach().to(self.device)
        d = _as_tensor(dist, "distorted").detach().to(self.device)
        if (problem := exact_input_problem(r, rbd)) is not None:
            raise VideoInputError(problem)  # the input's problem here, not the caller's
        feats, self._history = exact_frame_features(
            r, d, rbd, self.model.exact_options, history=self._history, start=self._seen
        )
        self._seen += r.shape[0]
        for name, value in feats.items():
            self._parts.setdefault(name, []).append(value.numpy())

    def reset(self) -> None:
        """Forget every frame scored so far, to score another clip with the same settings
        (:meth:`result` does not reset: more chunks would continue the same clip)."""
        self._size = None
        self._prev_blur = None
        self._history = None
        self._seen = 0
        self._bit_depth = None
        self._parts = {}
        self._overshoot_said = False

    def result(self) -> VmafResult:
        """Finish the clip: ``motion2``, ``motion3`` and VMAF per frame."""
        if not self._parts:
            raise ValueError("no frames were scored")
        metrics = {k: np.concatenate(v).astype(np.float64) for k, v in self._parts.items()}
        motion = torch.from_numpy(metrics["motion"])
        if self.mode == "exact":
            release_buffers()  # the clip is done: free the CPU kernels' frame buffers
            opts = self.model.exact_options
            metrics.update({k: v.numpy() for k, v in finish_motion(motion, opts).items()})
            printed = printed_names(opts)
        else:
            metrics["motion2"] = motion2_from_motion(motion).numpy()
            metrics["motion3"] = motion3_from_sad(motion, Motion3Options())["motion3"].numpy()
            printed = float_printed_names(self.model)
        feats = {k: torch.from_numpy(v) for k, v in metrics.items()}
        metrics["vmaf"] = predict_clip(self.model, feats)
        return VmafResult(
            model=self.model.name, metrics=metrics, mode=self.mode, printed=printed
        )


def float_printed_names(model: VmafModel) -> dict[str, str]:
    """Canonical name -> the name libvmaf's float extractors print with ``model``'s options
    (a non-default enhancement gain limit appends ``_egl_<value>``: the neg model's
    ``adm2_egl_1``, ``vif_scale0_egl_1``, ...)."""
    from .adm import AdmOptions
    from .vif import VifOptions

    adm = egl_suffix(model.adm_options.enhn_gain_limit, AdmOptions().enhn_gain_limit)
    vif = egl_suffix(model.vif_options.enhn_gain_limit, VifOptions().enhn_gain_limit)
    names = {n: n + adm for n in FLOAT_METRICS if n.startswith(("adm", "aim"))}
    names.update({f"vif_scale{s}": f"vif_scale{s}{vif}" for s in range(4)})
    return names


def check_samples(name: str, frames: np.ndarray | torch.Tensor, bit_depth: int, *,
                  overshoot_ok: bool = False) -> str | None:
    """Fail in one line on a bit depth outside 8..16, or samples outside it (10-bit frames
    declared 8-bit would be scored as other numbers, not refused). ``overshoot_ok`` (float
    mode): float frames a little outside the samples (a float resize's overshoot) are
    scored, and the warning to give is returned; only values no sample of the depth could be
    (past twice its range, or below minus it) are refused. None: nothing to say."""
    if not 8 <= int(bit_depth) <= 16:
        raise ValueError(f"{name} bit depth must be 8..16, got {bit_depth}")
    _check_array(name, frames)
    if frames.dtype in (np.bool_, torch.bool):  # a mask was scored as 0/1 samples (VMAF 96)
        raise VideoInputError(f"{name} frames are booleans, not {bit_depth}-bit samples")
    if isinstance(frames, np.ndarray):
        floating, size, kind = frames.dtype.kind == "f", frames.size, frames.dtype
    else:
        frames = _widened(frames)  # torch has no min/max for uint16 ("min_all" not implemented)
        floating, size, kind = frames.is_floating_point(), frames.numel(), frames.dtype
    if size == 0 or str(kind).endswith("uint8"):
        return None  # 8-bit samples cannot overflow
    lo, hi = float(frames.min()), float(frames.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise VideoInputError(f"{name} frames hold NaN or infinite values")
    top = (1 << int(bit_depth)) - 1
    # float frames too: 10-bit values as float32 declared 8-bit scored 81 where 100 was due
    slack = top + 1 if floating and overshoot_ok else (0.5 if floating else 0)
    if lo < -slack or hi > top + slack:
        hint = ("pass their bit depth (ref_bit_depth=, dist_bit_depth=)"
                + ("" if hi > 2 * top + 1 else f", or clip them to 0..{top}") if hi > top
                else f"negative values are no samples (clip them to 0..{top})")
        raise VideoInputError(f"{name} frames hold values {lo:g}..{hi:g}, outside "
                              f"{bit_depth}-bit samples (0..{top}); {hint}")
    if lo < 0 or hi > top:
        return (f"{name} frames hold values {lo:g}..{hi:g}, outside {bit_depth}-bit samples "
                f"(0..{top}): scored as given, where libvmaf reads decoded samples (clip them "
                "for its numbers)")
    return None


def check_device(device: str | torch.device) -> None:
    """Fail early, in one line, on a device this torch build cannot use."""
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise VmafDistillError(f"--device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VmafDistillError(
            f"--device {device}: no CUDA device is available to torch {torch.__version__}"
        )
    if dev.type == "meta":  # shapes without values: nothing to score
        raise VmafDistillError(f"--device {device}: holds no values, so nothing can be scored")
    try:  # mps, xpu, cuda:N beyond the last GPU ... failed mid-decode with a traceback
        torch.empty(1, device=dev)
    except Exception as exc:  # RuntimeError, AssertionError, ModuleNotFoundError (hpu) ...
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise VmafDistillError(
            f"--device {device}: torch {torch.__version__} cannot use it ({why})") from None


def resolve_mode(model: VmafModel, mode: str | None) -> str:
    """``mode`` checked, or the model's default (exact for libvmaf's integer models)."""
    if mode is None:
        return model.default_mode
    if mode not in ("exact", "float"):
        raise ValueError(f"mode must be 'exact' or 'float', got {mode!r}")
    return mode


def _widened(frames: torch.Tensor) -> torch.Tensor:
    """``torch.uint16``/``uint32``/``uint64`` samples as int64 (torch has little arithmetic
    for them; exact for any 8..16-bit sample); other tensors unchanged."""
    return frames.to(torch.int64) if frames.dtype in (torch.uint16, torch.uint32, torch.uint64) \
        else frames


def _check_array(name: str, frames: object) -> None:
    """A list of frames was an AttributeError on ``.dtype``: say what is wanted."""
    if not isinstance(frames, np.ndarray | torch.Tensor):
        raise VideoInputError(f"{name} frames: needs a numpy array or torch tensor (N, H, W) "
                              f"(np.stack a list of frames), got {type(frames).__name__}")


def _as_tensor(frames: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    _check_array(name, frames)
    if frames.dtype in (np.bool_, torch.bool):  # a mask was scored as 0/1 samples (VMAF 96)
        raise VideoInputError("frames are booleans, not decoded samples")
    if isinstance(frames, np.ndarray):
        # uint16 has no torch arithmetic: widen to int32 (exact for 8..16-bit samples).
        arr = np.ascontiguousarray(frames)
        return torch.from_numpy(arr.astype(np.int32) if arr.dtype == np.uint16 else arr)
    return _widened(frames)


def vmaf_exact(
    ref: torch.Tensor | np.ndarray,
    dist: torch.Tensor | np.ndarray,
    bit_depth: int,
    model: VmafModel | str = "vmaf_v0.6.1",
    *,
    clip: bool = True,
) -> dict[str, torch.Tensor]:
    """libvmaf's integer-model VMAF and features of a whole clip of decoded samples ``(N, H, W)``
    (tensors or numpy arrays); ``clip=False`` leaves VMAF outside [0, 100] unclipped.

    Not differentiable: a tensor that requires grad raises a RuntimeError (use :func:`vmaf`).
    Keys are canonical (``vmaf``, ``adm2``, ``vif_scale0`` ...); see
    :func:`~vmafdistill.teacher.exact.features.printed_names` for libvmaf's spelling.
    """
    if not isinstance(model, VmafModel):
        model = VmafModel.load(model)
    opts = model.exact_options
    feats, _ = exact_frame_features(_as_tensor(ref, "reference"), _as_tensor(dist, "distorted"),
                                  bit_depth, opts)
    release_buffers()
    feats.update(finish_motion(feats["motion"], opts))
    feats["vmaf"] = model.predict(feats, clip=clip)
    return feats


class VMAF(nn.Module):
    """``nn.Module`` returning per-frame VMAF of ``(N, H, W)`` or ``(N, 1, H, W)`` frames.

    Frames are luma in ``[0, data_range]`` (1.0 for normalised tensors); ``data_range=None``
    (the default) is ``2^bit_depth - 1``: 255, or 1023 for ``bit_depth=10`` samples.
    ``mode="float"`` (libvmaf's float features) is differentiable: gradients flow to both
    inputs and ``clip=False`` disables the [0, 100] clip. ``mode="exact"`` gives libvmaf's
    integer-model numbers for frames that hold ``bit_depth``-bit samples (after scaling by
    ``(2^bit_depth - 1) / data_range`` and rounding) and raises if gradients are required;
    float mode reads the same samples as libvmaf's float extractors do (10-bit: / 4).
    ``N`` is one clip's consecutive frames: motion compares each frame with the one before it,
    so shuffled or mixed batches change every frame's score.
    ``mode=None`` takes the model's default: exact for ``vmaf_v0.6.1``, ``vmaf_v0.6.1neg`` and
    ``vmaf_4k_v0.6.1``, float for ``vmaf_float_*``. Training code wants ``mode="float"``.
    ``clip=None`` takes the mode's: exact mode clips to [0, 100] as libvmaf does, float mode
    does not (gradients survive near 0 and 100). float16/bfloat16 frames are scored in float32
    (in half precision VMAF moved by about 6); float64 frames in float64, which differs from
    libvmaf's float32 arithmetic by up to ~1.2e-4 VMAF (float32 frames: ~2e-5).
    Float mode checks no values (a check would sync the GPU on every training step): a
    frame holding NaN or inf scores NaN, and samples far outside ``[0, data_range]`` give
    scores outside [0, 100] with ``clip=False``. Exact mode raises on both, and on frames in
    [0, 1] with fractions under a sample ``data_range`` (the default 255): normalised frames
    need ``data_range=1.0``.
    """

    def __init__(
        self,
        model: VmafModel | str = "vmaf_v0.6.1",
        *,
        data_range: float | None = None,
        clip: bool | None = None,
        mode: str | None = None,
        bit_depth: int = 8,
    ) -> None:
        super().__init__()
        # 10.5 was taken as 10, and data_range=inf made every frame flat (97.43 against black)
        if isinstance(bit_depth, bool) or not float(bit_depth).is_integer() \
                or not 8 <= int(bit_depth) <= 16:
            raise ValueError(f"bit_depth must be an integer 8..16, got {bit_depth}")
        # follows bit_depth: with a fixed 255, float mode read 10-bit samples 4x too bright
        # (VMAF 9.7 low, no error; exact mode refused the same call)
        if data_range is None:
            data_range = float((1 << int(bit_depth)) - 1)
        if not (float(data_range) > 0 and math.isfinite(float(data_range))):
            raise ValueError(f"data_range must be a finite number above 0, got {data_range}")
        self.model = model if isinstance(model, VmafModel) else VmafModel.load(model)
        self.mode = resolve_mode(self.model, mode)
        self.data_range = float(data_range)
        self.clip = (self.mode == "exact") if clip is None else bool(clip)
        self.bit_depth = int(bit_depth)

    def forward(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """Per-frame VMAF, shape ``(N,)`` float64."""
        ref, dist = _tensor(ref), _tensor(dist)  # NumPy, as the scorers take
        for name, x in (("ref", ref), ("dist", dist)):
            # a mask was scored as 0/1 samples in both modes (VMAF ~91), a complex tensor on
            # its real part; the scorers and vmaf_exact refuse them
            if x.dtype == torch.bool or x.is_complex():
                raise VideoInputError(f"{name} frames are {x.dtype}, not samples")
        if ref.dim() == 4:
            ref, dist = ref.squeeze(1), dist.squeeze(1)
        if self.mode == "exact":
            if torch.is_grad_enabled() and (ref.requires_grad or dist.requires_grad):
                raise RuntimeError(
                    "VMAF(mode='exact') reproduces libvmaf's fixed-point features, which have "
                    "no gradient; use VMAF(..., mode='float') to backpropagate through VMAF"
                )
            to_samples = float((1 << self.bit_depth) - 1) / self.data_range
            if self.data_range > 1.5:  # a sample range (255, 1023), not a normalised one
                _refuse_unit_range(ref, dist, self.data_range)
            # rounded, not clamped: values outside the range raise, as vmaf_exact's do
            r = (ref.detach().to(torch.float64) * to_samples).round()
            d = (dist.detach().to(torch.float64) * to_samples).round()
            for name, x, samples in (("ref", ref, r), ("dist", dist, d)):
                _check_in_data_range(name, x, samples, self.data_range, self.bit_depth)
            return vmaf_exact(r, d, self.bit_depth, self.model,
                              clip=self.clip)["vmaf"].to(ref.device)
        ref, dist = _at_least_float32(ref), _at_least_float32(dist)
        # the frames' bit_depth-bit samples in libvmaf's float domain (10-bit: / 4 - 128)
        top = float((1 << self.bit_depth) - 1)
        scale = top / self.data_range / float(1 << (self.bit_depth - 8))
        return vmaf(ref * scale - 128.0, dist * scale - 128.0, self.model, clip=self.clip)["vmaf"]


def _refuse_unit_range(ref: torch.Tensor, dist: torch.Tensor, data_range: float,
                       hint: str | None = None) -> None:
    """Frames in [0, 1] with fractions on both sides where ``data_range`` is a sample range
    (255): exact mode rounded them to samples 0 and 1 and scored them (VMAF ~91 for any pair),
    unsaid. One side alone may be a dark frame of real samples (a near-black distortion).
    Judged per pair of frames: a batch of one sample-range pair and one [0, 1] pair passed."""
    def normalised(x: torch.Tensor) -> torch.Tensor | None:  # (N,): frame n is in [0, 1]
        x = x.detach()
        if not x.is_floating_point() or x.numel() == 0:
            return None  # whole samples: nothing to refuse
        x = x.reshape(x.shape[0], -1) if x.dim() >= 3 else x.reshape(1, -1)
        return (x.abs().amax(dim=1) <= 1.0) & (x != x.round()).any(dim=1)

    if ref.shape != dist.shape:  # the scorer names the shapes (a bare broadcast error here)
        return
    ref_unit, dist_unit = normalised(ref), normalised(dist)
    if ref_unit is None or dist_unit is None:
        return
    both = ref_unit & dist_unit.to(ref_unit.device)
    if bool(both.any()):
        first = "" if bool(both.all()) else f" (frame {int(both.nonzero()[0])})"
        hint = hint or (f"data_range={data_range:g} reads samples 0..{data_range:g}: pass "
                        "data_range=1.0 for frames in [0, 1] (dark frames of real samples: "
                        "round them, exact mode reads whole samples)")
        raise VideoInputError(f"ref and dist frames{first} hold fractions in [0, 1] but {hint}")


def _tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``frames`` as a tensor; NumPy views with negative strides (``np.flip``) copied."""
    if isinstance(frames, np.ndarray):
        return torch.as_tensor(np.ascontiguousarray(frames))
    return torch.as_tensor(frames)


def _check_in_data_range(name: str, frames: torch.Tensor, samples: torch.Tensor,
                         data_range: float, bit_depth: int) -> None:
    """Frames outside ``0..data_range`` named with the values the caller passed and
    ``data_range`` (the error quoted the rescaled samples: 0..255 frames with data_range=1
    read "values from 10200 to 50745")."""
    if samples.numel() == 0:
        return
    top = (1 << bit_depth) - 1
    if float(samples.min()) < 0 or float(samples.max()) > top:
        lo, hi = (float(v) for v in torch.aminmax(_widened(frames.detach())))
        # samples of a higher bit depth: bit_depth=, not data_range= (a data_range of 1023
        # requantises 10-bit frames to 8 bits: not libvmaf's 10-bit number)
        # (where data_range is the bit depth's own: another data_range is the problem then)
        deeper = next((b for b in (10, 12, 16) if b > bit_depth and lo >= 0 and hi > 255
                       and hi <= (1 << b) - 1 and float(hi) == int(hi)), None) \
            if float(data_range) == top else None
        raise VideoInputError(
            f"{name} frames hold values {lo:g}..{hi:g}, outside data_range 0..{data_range:g} "
            f"(read as {bit_depth}-bit samples 0..{top}); "
            + (f"{deeper}-bit samples? pass bit_depth={deeper} (data_range={(1 << deeper) - 1} "
               f"would requantise them to {bit_depth} bits); " if deeper else "")
            + "else pass the frames' own data_range (255 for 8-bit samples, 1.0 for frames "
            "in [0, 1])")


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision, integer and bool frames in float32 (differentiably); float32 and
    float64 unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()
