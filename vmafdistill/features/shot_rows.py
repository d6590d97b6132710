"""Per-shot student inputs from per-frame measurements: the one definition both sides use.

The corpus builder (:func:`vmafdistill.corpus.assemble.samples_rows`, on the encodes it made)
and the edge (:func:`vmafdistill.edge.pipeline.analyze_video`, on a video it is handed) turn
per-frame pixel features and packet sizes into shot rows here, so a student sees at the edge
exactly the columns it was trained on. Torch- and pandas-free (the edge install has neither).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ..io.packets import scene_bitrates_kbps, shot_bitrate_kbps
from .frame_numpy import pool_shot
from .registry import SHOT_FEATURES, metadata_features, scene_rate_features

__all__ = ["ShotLike", "scene_mb_quantizer", "shot_feature_rows", "shot_timing"]

_RATE_COLUMNS = ("log_bitrate", "log_bpp")
_SCENE_COLUMNS = ("log_scene_bpp", "log_scene_bitrate")


class ShotLike(Protocol):
    """Anything with a shot's frame range and indices (e.g. :class:`vmafdistill.shots.Shot`)."""

    shot_index: int
    start: int
    stop: int
    scene_index: int


def scene_weighted_qp(
    shots: Iterable[tuple[int, int, int]], frame_qp: np.ndarray, packet_bytes: np.ndarray
) -> dict[int, float]:
    """Each scene's quantizer: its frames' QP weighted by their bits (finite QPs only).

    ``shots`` are ``(start, stop, scene_index)``; windows cut from one scene share the value,
    as they share the scene rate. Weighting by bits reads the QP the picture content was
    actually coded at: a skipped or near-empty frame (cheap B-frames of a still or panned
    shot) inherits its references' quality and says little about it. NaN for a scene with no
    finite QP or no bits.
    """
    num: dict[int, float] = {}
    den: dict[int, float] = {}
    for start, stop, scene_index in shots:
        q = frame_qp[start:stop]
        w = packet_bytes[start:stop].astype(np.float64)
        ok = np.isfinite(q)
        num[scene_index] = num.get(scene_index, 0.0) + float(np.sum(q[ok] * w[ok]))
        den[scene_index] = den.get(scene_index, 0.0) + float(np.sum(w[ok]))
    return {k: num[k] / den[k] if den[k] > 0 else math.nan for k in num}


def scene_mb_quantizer(
    shots: Iterable[tuple[int, int, int]], frame_qp: np.ndarray, frame_mb_qp: np.ndarray,
    packet_bytes: np.ndarray, scene_qp: Mapping[int, float],
) -> dict[int, float]:
    """Each scene's macroblock quantizer: its ``scene_qp`` plus the bits-weighted mean offset
    ``mb_qp - qp`` of its frames that have both (the I- and P-frames of an H.264 stream,
    :mod:`vmafdistill.io.mb_quantizer`). A scene with no such frame (another codec, a
    damaged stretch) gets offset 0: its slice quantizer. NaN where ``scene_qp`` is NaN.

    An offset rather than a mean of block QPs: the block QPs are read on the reference frames
    only, and their offset from the slice QP (x264's adaptive quantisation and macroblock tree)
    stands for the scene; the B-frames keep their own slice QP in ``scene_qp``.
    """
    # the offset is weighted and pooled exactly as scene_qp is (NaN: no frame has both)
    offsets = scene_weighted_qp(shots, frame_mb_qp - frame_qp, packet_bytes)
    return {k: scene_qp.get(k, math.nan) + (o if math.isfinite(o) else 0.0)
            for k, o in offsets.items()}


def shot_timing(start: int, stop: int, fps: float) -> dict[str, Any]:
    """A shot's frame range and times: ``start_frame, stop_frame, num_frames, start_s, end_s,
    duration_s`` (frames ``start .. stop-1``, each lasting 1/fps)."""
    return {
        "start_frame": start,
        "stop_frame": stop,
        "num_frames": stop - start,
        "start_s": start / fps,
        "end_s": stop / fps,
        "duration_s": (stop - start) / fps,
    }


def shot_feature_rows(
    per_frame: Mapping[str, Sequence[float] | np.ndarray],
    shots: Sequence[ShotLike],
    packet_bytes: Sequence[int] | np.ndarray,
    *,
    ref_size: tuple[int, int],
    codec: str,
    fps: float,
    width: int,
    height: int,
    frame_qp: Sequence[float] | np.ndarray | None = None,
    frame_mb_qp: Sequence[float] | np.ndarray | None = None,
    empty: str = "nan",
) -> list[dict[str, Any]]:
    """One feature row per shot: pooled pixel features + bitrate/codec/scale metadata.

    Args:
        per_frame: ``{feature: (N,) array}`` per decoded delivery frame (NaN where a frame was
            not measured, e.g. temporal features of frame 0); each pooled over the shot with a
            NaN-skipping mean (:func:`~vmafdistill.features.frame_numpy.pool_shot`).
        shots: shots tiling the N frames (``start``/``stop``, ``shot_index``, ``scene_index``).
        packet_bytes: (N,) compressed bytes per frame in presentation order.
        ref_size: (width, height) the teacher compared at (sets ``scale_ratio``).
        codec: codec name or alias (``h264``, ``hevc``, ...).
        fps: frame rate; a shot of n frames lasts n / fps seconds.
        width, height: delivery (decoded) frame size.
        frame_qp: (N,) quantizer per frame in presentation order
            (:attr:`~vmafdistill.io.packets.Packets.qp`), or None.
        frame_mb_qp: (N,) mean macroblock QP per frame in presentation order
            (:attr:`~vmafdistill.io.packets.Packets.mb_qp`; NaN for frames without block QPs),
            or None (not read: ``scene_mb_qp`` is NaN, as it is without ``frame_qp``).
        empty: a shot (or scene) whose packets hold no bits gets NaN rate features
            (``"nan"``: the edge flags the record) or raises ValueError (``"raise"``: the corpus
            builder, where it means a broken encode).

    Returns:
        Dicts with ``shot_index, scene_index, start_frame, stop_frame, num_frames, start_s,
        end_s, duration_s, bitrate_kbps, bits_per_pixel``, the metadata features
        (``log_bitrate, log_bpp, scale_ratio, codec_*``), ``scene_bitrate_kbps`` with the scene
        rate features (``log_scene_bpp, log_scene_bitrate``), ``qp`` (the shot's mean frame
        quantizer) and ``scene_qp`` (:func:`scene_weighted_qp`; both NaN without
        ``frame_qp``), ``scene_mb_qp`` (:func:`scene_mb_quantizer`), every pooled per-frame
        feature and every registered
        :data:`~vmafdistill.features.registry.SHOT_FEATURES` column.
    """
    if empty not in ("nan", "raise"):
        raise ValueError(f"empty must be 'nan' or 'raise', got {empty!r}")
    sizes, qps, mb_qps = _frame_arrays(packet_bytes, frame_qp, frame_mb_qp)
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    scene_rates, scene_qps, scene_mb_qps = _scene_values(shots, sizes, qps, mb_qps, fps)
    rows: list[dict[str, Any]] = []
    for shot in shots:
        start, stop = int(shot.start), int(shot.stop)
        scene_index = int(getattr(shot, "scene_index", 0))
        kbps = shot_bitrate_kbps(sizes, start, stop, fps)
        row: dict[str, Any] = {
            "shot_index": int(shot.shot_index),
            "scene_index": scene_index,
            **shot_timing(start, stop, fps),
            "bitrate_kbps": kbps,
        }
        row.update(_rate_columns(kbps, ref_size, codec, fps, width, height, empty))
        scene_kbps = scene_rates[scene_index]
        row["scene_bitrate_kbps"] = scene_kbps
        try:
            row.update(scene_rate_features(scene_kbps, width, height, fps))
        except ValueError:  # a scene without bits
            if empty == "raise":
                raise
            row.update(dict.fromkeys(_SCENE_COLUMNS, math.nan))
        row["qp"] = pool_shot({"qp": qps}, start, stop)["qp"] if qps is not None else math.nan
        row["scene_qp"] = scene_qps.get(scene_index, math.nan)
        row["scene_mb_qp"] = scene_mb_qps.get(scene_index, math.nan)
        row.update(pool_shot(per_frame, start, stop))
        for name, feature in SHOT_FEATURES.items():  # registered shot features, last
            row[name] = _shot_feature(name, feature, row)
        rows.append(row)
    return rows


def _frame_arrays(
    packet_bytes: Sequence[int] | np.ndarray, frame_qp: Sequence[float] | np.ndarray | None,
    frame_mb_qp: Sequence[float] | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The per-frame packet sizes and quantizers as arrays, one length (ValueError names the
    one that differs)."""
    sizes = np.asarray(packet_bytes, dtype=np.int64)
    qps = None if frame_qp is None else np.asarray(frame_qp, dtype=np.float64)
    if qps is not None and qps.shape != sizes.shape:
        raise ValueError(f"frame_qp has {qps.shape[0]} frames, packet_bytes {sizes.shape[0]}")
    mb_qps = None
    if frame_mb_qp is not None:
        mb_qps = np.asarray(frame_mb_qp, dtype=np.float64)
        if mb_qps.shape != sizes.shape:
            raise ValueError(f"frame_mb_qp has {mb_qps.shape[0]} frames, packet_bytes "
                             f"{sizes.shape[0]}")
    return sizes, qps, mb_qps


def _scene_values(
    shots: Sequence[ShotLike], sizes: np.ndarray, qps: np.ndarray | None,
    mb_qps: np.ndarray | None, fps: float,
) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
    """Per scene (windows of one scene share them): its rate in kbps (this also checks every
    shot's range), its quantizer and its macroblock quantizer (empty without the frames')."""
    ranges = [(int(s.start), int(s.stop), int(getattr(s, "scene_index", 0))) for s in shots]
    scene_rates = scene_bitrates_kbps(ranges, sizes, fps)
    scene_qps = {} if qps is None else scene_weighted_qp(ranges, qps, sizes)
    scene_mb_qps = {} if mb_qps is None or qps is None else scene_mb_quantizer(
        ranges, qps, mb_qps, sizes, scene_qps)
    return scene_rates, scene_qps, scene_mb_qps


def _rate_columns(kbps: float, ref_size: tuple[int, int], codec: str, fps: float, width: int,
                  height: int, empty: str) -> dict[str, Any]:
    """A shot's ``bits_per_pixel`` and metadata features (rate, scale, codec flags); a shot
    without bits gets NaN rate features, or raises with ``empty="raise"``."""
    try:
        meta = metadata_features(kbps, int(ref_size[1]), height, codec,
                                 delivery_width=width, fps=fps)
    except ValueError:  # a shot without bits
        if empty == "raise":
            raise
        meta = metadata_features(1.0, int(ref_size[1]), height, codec,
                                 delivery_width=width, fps=fps)
        meta.update(dict.fromkeys(_RATE_COLUMNS, math.nan))
    return {"bits_per_pixel": math.exp(meta["log_bpp"]) if kbps > 0 else 0.0, **meta}


def _shot_feature(name: str, feature: Any, row: Mapping[str, Any]) -> float:
    """A registered shot feature of ``row``, computed from the columns it declares alone (an
    undeclared read is an error here, on both sides, not a divergence at the edge)."""
    given = {c: row[c] for c in feature.reads if c in row}
    if missing := [c for c in feature.reads if c not in row]:
        raise KeyError(f"shot feature {name!r} reads {missing}: no such shot column (a shot "
                       "feature registered after it?)")
    try:
        return float(feature.compute(given))
    except KeyError as exc:
        if exc.args and isinstance(exc.args[0], str) and exc.args[0] not in feature.reads:
            # a column it did not declare (given only its reads, the lookup failed)
            raise KeyError(f"shot feature {name!r} reads {exc}, which is not among its reads "
                           f"{list(feature.reads)} (features/registry.py)") from None
        raise
