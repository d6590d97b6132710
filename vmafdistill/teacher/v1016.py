"""Streaming VMAF v1.0.16: CAMBI, chroma SpEED, motion3 and adm3, and the model's score.

:class:`V1016Scorer` takes aligned chunks of decoded planes (luma for CAMBI, ADM and motion,
chroma for SpEED) and keeps the only temporal state (the last one or two reference luma frames for
motion) across chunks, so any chunking gives the numbers of one big chunk. Per-frame results use
libvmaf's printed names for the model (``cambi_hrs_1080_cmxv_17_vlt_0.06`` ...).

``adm3`` comes from libvmaf's integer ADM with the model's options (``adm_csf_mode`` 2, noise
weight, gain limit, viewing distance/height, ``adm_min_val``, ``adm_dlm_weight``), reproduced
bit for bit in :mod:`vmafdistill.teacher.exact.integer_adm`; ``integer_adm2`` and
``integer_aim`` (what adm3 is made of) are reported beside it, as libvmaf prints them.
:func:`score_files_v1016` is the file-level entry the ``score`` command uses for these models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError, VideoInputError
from ..io.video import LIBVMAF_FILTER_DEPTHS
from .cambi import CambiOptions, cambi, check_cambi_size
from .exact.features import TRIM_EVERY_CHUNKS, release_buffers, trim_heap
from .exact.integer_adm import MIN_SIZE as ADM_MIN_SIZE
from .exact.integer_adm import IntegerAdmOptions, integer_adm
from .model import predict_clip
from .model_v1016 import V1016Model
from .motion3 import Motion3Options, motion3_from_sad, motion_sad_scores
from .speed import (
    SpeedOptions,
    as_plane_tensor,
    check_speed_size,
    chroma_planes,
    speed_chroma,
)
from .vmaf import VmafResult, pool

Adm3Fn = Callable[[torch.Tensor, torch.Tensor, int, dict[str, Any]], torch.Tensor]



def adm_features(
    ref_y: torch.Tensor, dist_y: torch.Tensor, bit_depth: int, adm_opts: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """libvmaf's integer ADM with a model's ``adm`` options: ``adm2``, ``aim``, ``adm3`` and
    ``adm_scale0..3``, as libvmaf prints them for the model."""
    out = integer_adm(ref_y, dist_y, bit_depth, IntegerAdmOptions.from_libvmaf(adm_opts))
    names = ("adm2", "aim", "adm3", *(f"adm_scale{k}" for k in range(4)))
    return {name: out[f"integer_{name}"] for name in names}


class V1016Scorer:
    """Stream chunks through the v1.0.16 feature extractors, then :meth:`result`."""

    def __init__(
        self,
        model: V1016Model | str = "vmaf_v1.0.16_3d0h",
        *,
        device: str | torch.device = "cpu",
        adm3: Adm3Fn | None = None,
    ) -> None:
        """``adm3`` overrides the exact integer ADM (then adm2/aim are not reported)."""
        from .vmaf import check_device

        check_device(device)  # one line, as VmafScorer says it (torch's own AssertionError)
        self.model = model if isinstance(model, V1016Model) else V1016Model.load(model)
        self.device = torch.device(device)
        self.adm3 = adm3
        fo = self.model.feature_options
        try:  # an option this teacher does not reproduce: one line before any frame is read
            self.cambi_opts = CambiOptions.from_libvmaf(fo["cambi"])
            self.speed_opts = SpeedOptions.from_libvmaf(fo["speed_chroma_uv"])
            self.motion_opts = Motion3Options.from_libvmaf(fo["motion3"])
            IntegerAdmOptions.from_libvmaf(fo["adm3"]).validate()  # read again per chunk
        except (ValueError, TypeError) as exc:
            raise ModelError(f"model {self.model.name}: {exc}") from None
        self._history: torch.Tensor | None = None
        self._seen = 0
        self._parts: dict[str, list[np.ndarray]] = {}
        self._size: tuple[int, int] | None = None
        self._chroma: tuple[int, ...] | None = None  # (H, W) of the first chunk's planes
        self._bit_depth: int | None = None

    def check_input(self, width: int, height: int, chroma_shape: tuple[int, int] | None) -> None:
        """Raise VideoInputError for input the model cannot score (size, missing chroma)."""
        name = self.model.name
        if width < ADM_MIN_SIZE or height < ADM_MIN_SIZE:
            raise VideoInputError(
                f"model {name}: feature 'adm3' needs frames of at least "
                f"{ADM_MIN_SIZE}x{ADM_MIN_SIZE}, got {width}x{height}")
        check_cambi_size(width, height, model=name)
        if chroma_shape is None:  # gray: libvmaf scores it, SpEED chroma reads 0 (no planes)
            return
        ch, cw = chroma_shape
        pw = width // 2 if cw < width else width
        ph = height // 2 if ch < height else height
        check_speed_size(pw, ph, self.speed_opts, model=name)

    @torch.no_grad()
    def update(
        self,
        ref_y: np.ndarray | torch.Tensor,
        dist_y: np.ndarray | torch.Tensor,
        ref_uv: tuple[Any, Any] | None,
        dist_uv: tuple[Any, Any] | None,
        *,
        bit_depth: int = 8,
    ) -> None:
        """Score one aligned chunk: luma ``(n, H, W)`` and chroma ``(u, v)`` planes of decoded
        (integer-valued) samples; an empty chunk adds nothing."""
        ry = as_plane_tensor(ref_y).detach().to(self.device)
        dy = as_plane_tensor(dist_y).detach().to(self.device)
        check_chunk(self.model.name, ry, dy, ref_uv, dist_uv, bit_depth)
        n, h, w = ry.shape
        if n == 0:
            return
        # a gray side gets the other side's chroma shape (neutral planes), so check that
        planes = ref_uv if ref_uv is not None else dist_uv
        chroma = None if planes is None else tuple(np.shape(planes[0])[-2:])
        if self._size is None:
            self.check_input(w, h, chroma)
        elif self._size != (w, h):
            raise VideoInputError(f"frame size changed mid-stream from {self._size[0]}x"
                                  f"{self._size[1]} to {w}x{h}")
        elif self._chroma != chroma:  # a 4:2:0 chunk, then a 4:4:4 one, was scored unsaid
            raise VideoInputError(f"model {self.model.name}: the chroma planes changed "
                                  f"mid-stream from {_shape_text(self._chroma)} to "
                                  f"{_shape_text(chroma)}")
        elif self._bit_depth != bit_depth:  # motion3 mixed 8- and 10-bit frames: 75 read 86
            raise VideoInputError(f"model {self.model.name}: bit depth changed mid-stream "
                                  f"from {self._bit_depth} to {bit_depth}")
        if (ref_uv is None) != (dist_uv is None):
            # One side gray: ffmpeg converts it to YUV for libvmaf, which gives neutral chroma.
            ref_uv, dist_uv = (neutral_chroma(dist_uv, bit_depth), dist_uv) if ref_uv is None \
                else (ref_uv, neutral_chroma(ref_uv, bit_depth))
        ref_c = None if ref_uv is None else tuple(np.shape(ref_uv[0])[-2:])
        dist_c = None if dist_uv is None else tuple(np.shape(dist_uv[0])[-2:])
        if ref_c != dist_c:  # 4:2:0 against 4:4:4: SpEED compares the planes block for block
            raise VideoInputError(
                f"model {self.model.name}: reference and distorted chroma planes differ "
                f"({ref_c[1]}x{ref_c[0]} vs {dist_c[1]}x{dist_c[0]}: other chroma subsampling);"
                " convert one of them (ffmpeg -pix_fmt) first")
        # taken once the chunk is accepted: a refused chunk made the next right one "changed"
        self._size, self._chroma, self._bit_depth = (w, h), chroma, int(bit_depth)
        feats: dict[str, torch.Tensor] = {}
        feats[self.model.printed_names()["cambi"]] = cambi(dy.to(torch.int32), bit_depth,
                                                           self.cambi_opts)
        if ref_uv is None or dist_uv is None:
            # Gray on both sides: libvmaf prints 0 for every SpEED chroma feature (measured with
            # ffmpeg's libvmaf filter on yuv400 input), and the model scores that.
            zero = torch.zeros(n, dtype=torch.float64)
            sp = {"speed_chroma_u": zero, "speed_chroma_v": zero, "speed_chroma_uv": zero}
        else:
            ru, rv = chroma_planes(ref_uv[0], ref_uv[1], w, h, bit_depth)
            du, dv = chroma_planes(dist_uv[0], dist_uv[1], w, h, bit_depth)
            sp = speed_chroma(ru.to(self.device), rv.to(self.device), du.to(self.device),
                              dv.to(self.device), self.speed_opts)
        uv_name = self.model.printed_names()["speed_chroma_uv"]
        for key, value in sp.items():
            feats[uv_name.replace("speed_chroma_uv", key)] = value
        sad, self._history = motion_sad_scores(ry, bit_depth, self.motion_opts,
                                               history=self._history, start=self._seen)
        feats["_sad"] = sad
        adm_name = self.model.printed_names()["adm3"]
        adm_opts = self.model.feature_options["adm3"]
        if self.adm3 is not None:
            feats[adm_name] = self.adm3(ry, dy, bit_depth, adm_opts)
        else:
            for key, value in adm_features(ry, dy, bit_depth, adm_opts).items():
                feats[adm_name.replace("adm3", key, 1)] = value
        for key, value in feats.items():
            self._parts.setdefault(key, []).append(value.detach().cpu().numpy())
        self._seen += n

    def reset(self) -> None:
        """Forget every frame scored so far, to score another clip with the same model."""
        self._history = None
        self._seen = 0
        self._parts = {}
        self._size = None
        self._chroma = None
        self._bit_depth = None

    def result(self, *, features_only: bool = False) -> dict[str, np.ndarray]:
        """Per-frame metrics in libvmaf's names and ``vmaf`` (``features_only``: without it)."""
        if not self._seen:
            raise VideoInputError("no frames were scored")
        metrics = {k: np.concatenate(v).astype(np.float64) for k, v in self._parts.items()}
        release_buffers()  # the clip is done: free the CPU kernels' frame buffers
        names = self.model.printed_names()
        sad = metrics.pop("_sad")
        m3 = names["motion3"]
        motion = motion3_from_sad(torch.from_numpy(sad), self.motion_opts)
        metrics[m3.replace("integer_motion3", "VMAF_integer_feature_motion_sad_score")] = sad
        metrics[m3.replace("motion3", "motion2")] = motion["motion2"].numpy()
        metrics[m3] = motion["motion3"].numpy()
        if features_only:
            return metrics
        if names["adm3"] not in metrics:
            raise ModelError(f"model {self.model.name}: no adm3 values were computed")
        feats = {short: torch.from_numpy(metrics[printed]) for short, printed in names.items()}
        metrics["vmaf"] = predict_clip(self.model, feats)
        return metrics


def _shape_text(chroma: tuple[int, ...] | None) -> str:
    return "none (gray)" if chroma is None else f"{chroma[1]}x{chroma[0]}"


def check_chunk(
    model: str, ref_y: torch.Tensor, dist_y: torch.Tensor, ref_uv: tuple[Any, Any] | None,
    dist_uv: tuple[Any, Any] | None, bit_depth: int,
) -> None:
    """Raise VideoInputError, in one line, for a chunk the v1.0.16 model cannot score as
    libvmaf would: a bit depth outside 8..16, luma not ``(n, H, W)`` or unlike on both sides,
    chroma planes of another frame count, or samples that are not ``bit_depth``-bit integers
    (normalised ``x / 255`` frames scored 98 where libvmaf reads 85)."""
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, int | np.integer) \
            or not 8 <= int(bit_depth) <= 16:
        raise VideoInputError(f"model {model}: bit depth must be an integer 8..16, "
                              f"got {bit_depth!r}")
    if ref_y.ndim != 3 or ref_y.shape != dist_y.shape:
        raise VideoInputError(
            f"model {model}: luma chunks must be (n, H, W) and alike, got reference "
            f"{tuple(ref_y.shape)} and distorted {tuple(dist_y.shape)}")
    n, h, w = ref_y.shape
    # a chroma plane is full size or half (rounded up as decoded, or down: SpEED crops to
    # that) each way: 10x10 planes of 240x200 frames failed deep in SpEED's filter, 400x480
    # ones were cropped and scored
    heights, widths = {h, (h + 1) // 2, h // 2}, {w, (w + 1) // 2, w // 2}
    planes = [("reference luma", ref_y), ("distorted luma", dist_y)]
    for side, uv in (("reference", ref_uv), ("distorted", dist_uv)):
        if uv is None:
            continue
        if len(uv) != 2:
            raise VideoInputError(f"model {model}: {side} chroma must be a (u, v) pair")
        if np.shape(uv[0]) != np.shape(uv[1]):  # v was cropped to u's size: SpEED v read 0
            raise VideoInputError(f"model {model}: {side} u and v planes differ in shape "
                                  f"({tuple(np.shape(uv[0]))} vs {tuple(np.shape(uv[1]))})")
        for label, plane in zip("uv", uv, strict=True):
            t = as_plane_tensor(plane)
            if t.ndim != 3 or t.shape[0] != n:
                raise VideoInputError(
                    f"model {model}: {side} {label} planes must be (n, H, W) with the luma's "
                    f"{n} frames, got {tuple(t.shape)}")
            if t.shape[1] not in heights or t.shape[2] not in widths:
                raise VideoInputError(
                    f"model {model}: {side} {label} planes are {t.shape[2]}x{t.shape[1]}, no "
                    f"chroma plane of {w}x{h} frames (full or half size each way: "
                    f"{'/'.join(map(str, sorted(widths)))} wide, "
                    f"{'/'.join(map(str, sorted(heights)))} high)")
            planes.append((f"{side} {label}", t))
    top = (1 << int(bit_depth)) - 1
    for label, t in planes:
        if t.numel() == 0 or t.dtype == torch.uint8:  # 8-bit samples fit every bit depth
            continue
        t = t.detach()
        if t.dtype in (torch.uint16, torch.uint32, torch.uint64):  # no min/max for them
            t = t.to(torch.int64)
        lo_t, hi_t = torch.aminmax(t)
        lo, hi = float(lo_t), float(hi_t)
        if t.is_floating_point() and not bool(torch.equal(t, t.round())):
            raise VideoInputError(
                f"model {model}: {label} samples must be integer {bit_depth}-bit values "
                f"(decoded frames, 0..{top}), got non-integer ones in {lo:g}..{hi:g}")
        if lo < 0 or hi > top:
            raise VideoInputError(
                f"model {model}: {label} samples lie in {lo:g}..{hi:g}, outside {bit_depth}-bit "
                f"values (0..{top}); pass their bit depth (bit_depth=)")


def neutral_chroma(like: tuple[Any, Any], bit_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat mid-grey chroma planes shaped like ``like``'s (a gray input converted to YUV)."""
    shape = np.shape(like[0])
    plane = np.full(shape, 128 << (bit_depth - 8), dtype=np.uint16 if bit_depth > 8 else np.uint8)
    return plane, plane.copy()


@dataclass
class V1016Result(VmafResult):
    """A v1.0.16 result: like :class:`VmafResult`, over every metric the model prints.

    ``metrics`` is keyed by libvmaf's printed names already, so ``printed`` changes nothing.
    """

    mode: str = "exact"  # libvmaf's integer ADM/motion, as the model specifies

    @property
    def names(self) -> list[str]:
        """Every metric, in the scorer's order."""
        return list(self.metrics)

    @property
    def pooled(self) -> dict[str, dict[str, float]]:
        """``{metric: {min, max, mean, harmonic_mean}}`` over frames, every metric."""
        return {name: pool(values) for name, values in self.metrics.items()}

    def frames(self, *, printed: bool = False) -> list[dict[str, float]]:
        """One ``{metric: value}`` dict per frame, libvmaf's metric names (``printed`` or not)."""
        return [{n: float(v[i]) for n, v in self.metrics.items()}
                for i in range(self.num_frames)]


def filter_depth_chunks(ref: Any, dist: Any,
                        full_range: tuple[bool, bool] = (False, False)) -> tuple[int, Any, Any]:
    """A pair of decoded chunks at the depth ffmpeg hands libvmaf: the next depth its filter
    takes, samples converted up as ffmpeg's scaler does (9-bit video is scored at 10 bits): a
    shift, but a full-range side's luma (``full_range``: reference, distorted) by bit
    replication (``x << 1 | x >> 8`` from 9 to 10 bits; a shift read 7e-4 VMAF off).
    It matters to CAMBI, whose anti-dithering filter runs below 10 bits only: scored at 9 bits
    a banded gradient read CAMBI 10.40 where libvmaf (through ffmpeg) gives 17.00, VMAF 3.7
    apart (a hunt). :class:`V1016Scorer` itself scores the depth it is given, as libvmaf's C
    API does."""
    from dataclasses import replace

    depth = int(ref.bit_depth)
    target = next((d for d in LIBVMAF_FILTER_DEPTHS if d >= depth), depth)
    if target == depth:
        return depth, ref, dist

    shift = target - depth

    def up(chunk: Any, full: bool) -> Any:
        planes = {k: None if getattr(chunk, k) is None
                  else getattr(chunk, k).astype(np.uint16) << shift for k in ("y", "u", "v")}
        if full:
            planes["y"] |= chunk.y.astype(np.uint16) >> (2 * depth - target)
        return replace(chunk, bit_depth=target, **planes)

    return target, up(ref, full_range[0]), up(dist, full_range[1])


def _full_ranges(ref_info: Any, dist_info: Any) -> tuple[bool, bool]:
    """Whether the reference and the distorted are full range (as ffmpeg reads them)."""
    from ..io.video import stream_range

    return stream_range(ref_info) == "pc", stream_range(dist_info) == "pc"


def score_files_v1016(
    ref: str | Path,
    dist: str | Path,
    *,
    model: str | Path = "vmaf_v1.0.16_3d0h",
    device: str = "cpu",
    chunk: int = 8,
    ref_raw: dict[str, Any] | None = None,
    dist_raw: dict[str, Any] | None = None,
    rescale: bool = False,
    scale_flags: str = "bicubic",
    on_length_mismatch: str = "error",
    progress: bool = False,
    decoder_threads: int | None = None,
    check_timestamps: bool = True,
) -> V1016Result:
    """Score ``dist`` against ``ref`` with a VMAF v1.0.16 model (name or JSON path).

    Same arguments as :func:`vmafdistill.teacher.score.score_files` (the ``score`` command
    dispatches here for v1.0.16 models); frames are decoded with their chroma planes.
    """
    from ..io import iter_frame_pairs
    from ..io.prefetch import prefetched
    from .score import _probe_pair, _raw_opts

    started = time.perf_counter()
    scorer = V1016Scorer(V1016Model.load(str(model)), device=device)
    ropts, dopts = _raw_opts(ref_raw), _raw_opts(dist_raw)
    # the v0.6.1 path's probe: other frame rates warned of, another bit depth refused
    info, dist_info = _probe_pair(ref, dist, ref_raw, dist_raw, one_depth=not rescale,
                                  check_timestamps=check_timestamps)
    # how a 9/14-bit pair goes up to the filter's depth (unscaled: --rescale converts both to
    # a depth the filter takes, io.video.graph_filter_format)
    full_range = _full_ranges(info, dist_info) if info.bit_depth not in \
        LIBVMAF_FILTER_DEPTHS else (False, False)
    pairs = prefetched(iter_frame_pairs(
        ref, dist, chunk=chunk,
        ref_opts={**ropts, "planes": "yuv", "decoder_threads": decoder_threads},
        dist_opts={**dopts, "planes": "yuv", "decoder_threads": decoder_threads},
        scale_dist_to_ref=rescale,
        scale_flags=scale_flags, on_length_mismatch=on_length_mismatch,
    ))  # the next chunk pair decodes while this one is scored
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=info.num_frames, unit="frame", desc="vmaf", leave=False)
    try:
        for k, (rc, dc) in enumerate(pairs, 1):
            if rc.bit_depth != dc.bit_depth:
                raise VideoInputError(
                    f"model {scorer.model.name}: reference and distorted bit depths differ "
                    f"({rc.bit_depth} vs {dc.bit_depth})")
            depth, rc, dc = filter_depth_chunks(rc, dc, full_range)
            ref_uv = None if rc.u is None or rc.v is None else (rc.u, rc.v)
            dist_uv = None if dc.u is None or dc.v is None else (dc.u, dc.v)
            scorer.update(rc.y, dc.y, ref_uv, dist_uv, bit_depth=depth)
            if k % TRIM_EVERY_CHUNKS == 0:
                trim_heap()  # a long clip's chunks fragment the heap: RSS grew per frame
            if bar is not None:
                bar.update(len(rc))
    finally:
        if bar is not None:
            bar.close()
    result = V1016Result(model=scorer.model.name, metrics=scorer.result())
    elapsed = time.perf_counter() - started
    result.info.update({
        "reference": str(ref), "distorted": str(dist), "width": info.width,
        "height": info.height, "device": str(scorer.device), "mode": result.mode,
        # as the 0.6.1 exact mode says "int": libvmaf's own arithmetic (integer ADM/motion,
        # float VIF/CAMBI/SpEED as libvmaf computes them), not a dtype the user picked
        "dtype": "libvmaf",
        "rescale": scale_flags if rescale else None, "wall_s": elapsed,
        "fps": result.num_frames / elapsed if elapsed > 0 else float("nan"),
    })
    return result
