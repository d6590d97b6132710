"""Shot segmentation: hard cuts from luma statistics, then bounded-length windows.

The corpus pools teacher scores and student features per *shot*, and cross-validation groups
by content, so a clip is cut where its content changes and long shots are split into
near-equal windows (a 5 s clip still yields several samples).

Detection works on a per-frame 64-bin luma histogram (normalised to sum 1) and the mean luma
on the 8-bit scale. Frame ``t >= 1`` is a cut *candidate* when its strength

    strength_t = max( L1(h_t, h_{t-1}) / threshold,  |mean_t - mean_{t-1}| / mean_threshold )

is >= 1 (L1 of two normalised histograms lies in [0, 2]). Candidates become cuts greedily in
frame order, never closer than ``min_len_s`` to the previous cut or to the clip's start; a
candidate inside that distance *replaces* the previous cut when it is stronger (so a weak false
alarm just before a real cut does not hide it), and a last cut closer than ``min_len_s`` to the
clip's end is dropped. Each scene between cuts longer than ``max_len_s`` is split into
``ceil(len / max_len)`` windows whose lengths differ by at most one frame.

This module is numpy-only and never imports torch (edge runtime). The statistics are exact
functions of the per-frame code-value histogram, so torch code that already has one (the
``hist`` of :class:`vmafdistill.features.RawStats`) feeds it with :meth:`ShotDetector.update_hist`
instead of passing pixels twice. Per-frame work is one bincount: ~1 ms for a 720p frame.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import checked_number
from .errors import VmafDistillError

__all__ = [
    "HIST_BINS",
    "SHOT_SETTINGS",
    "Shot",
    "ShotDetector",
    "checked_shot_settings",
    "detect_shots",
    "detect_video_shots",
    "luma_signature",
    "select_cuts",
    "split_scenes",
]

#: Bins of the cut-detection luma histogram (b-bit code c falls in bin c >> (b - 6)).
HIST_BINS = 64

#: The cut detector's number settings (conf/shots/default.yaml).
SHOT_SETTINGS = ("threshold", "mean_threshold", "min_len_s", "max_len_s")


def checked_shot_settings(label: str, shots: Mapping[str, Any]) -> dict[str, Any]:
    """``shots`` with its number settings read as numbers > 0 (``min_len_s`` >= 0;
    ``max_len_s`` may also be null, no window split, or infinite), or an error naming
    ``<label>.<key>``: the corpus and the export card read the same settings (a bad one
    failed every corpus job naming no key, or reached the card and crashed predict)."""
    out = dict(shots)
    unknown = sorted(str(k) for k in out if k not in SHOT_SETTINGS)
    if unknown:  # ShotDetector would fail mid-work with a TypeError naming no file or key
        raise VmafDistillError(f"{label}: unknown setting{'s' if len(unknown) > 1 else ''} "
                               f"{', '.join(unknown)}; known: {', '.join(SHOT_SETTINGS)}")
    for key in SHOT_SETTINGS:
        if key in out and not (key == "max_len_s" and out[key] is None):
            # max_len_s=0 passed here and failed every source's job (a window of no frames)
            # 0 allowed for min_len_s only: a threshold of 0 passed here and ShotDetector
            # refused it in every corpus job (naming no key) and in predict (a traceback)
            out[key] = checked_number(f"{label}.{key}", out[key], float, 0,
                                      key == "min_len_s", finite=key != "max_len_s")
    return out

#: Default L1 histogram distance (range 0..2) of a cut. Within-shot motion on the packaged
#: clips stays below 0.24 (a fast pan in bikes.mp4), its hard cuts are 0.44..1.45.
DEFAULT_THRESHOLD = 0.3
#: Default mean-luma jump (8-bit units) of a cut; within-shot frame-to-frame changes of the
#: packaged clips stay below 1, so this only adds cuts between similarly-shaped histograms.
DEFAULT_MEAN_THRESHOLD = 24.0


@dataclass(frozen=True)
class Shot:
    """Frames ``start .. stop-1`` of a clip (``stop`` exclusive).

    ``scene_index`` numbers the cut-delimited scene the shot belongs to: windows split from one
    long scene share it (group cross-validation folds by it to keep near-identical windows of
    one scene on the same side of a split).
    """

    shot_index: int
    start: int
    stop: int
    scene_index: int = 0

    def __len__(self) -> int:
        return self.stop - self.start

    def duration_s(self, fps: float) -> float:
        """Length in seconds at ``fps``."""
        return (self.stop - self.start) / fps


# --------------------------------------------------------------------------------------------
# Per-frame statistics
# --------------------------------------------------------------------------------------------


def _check_bit_depth(bit_depth: int) -> int:
    b = int(bit_depth)
    if not 8 <= b <= 16:
        raise ValueError(f"bit_depth must be in 8..16, got {bit_depth!r}")
    return b


def _signature_from_hist(hist: np.ndarray, bit_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(N,64) normalised histograms and (N,) 8-bit mean luma from (N, 2**b) code histograms."""
    b = _check_bit_depth(bit_depth)
    h = np.asarray(hist)
    if h.ndim != 2 or h.shape[1] != 1 << b:
        raise ValueError(f"hist must be (N, {1 << b}) for bit depth {b}, got {h.shape}")
    counts = h.sum(axis=1)
    if np.any(counts <= 0):
        raise ValueError("empty histogram (a frame without samples)")
    total = counts.astype(np.float64)
    h64 = h.reshape(h.shape[0], HIST_BINS, -1).sum(axis=2) / total[:, None]
    codes = np.arange(1 << b, dtype=np.float64)
    mean = (h @ codes) / total / (1 << (b - 8))
    return h64, mean


def luma_signature(y: Any, bit_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (normalised 64-bin histogram (N,64), mean luma on the 8-bit scale (N,)).

    ``y`` is (N,H,W) or (H,W) integer luma code values at ``bit_depth``.
    """
    b = _check_bit_depth(bit_depth)
    arr = np.asarray(y)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ValueError(f"frames must be (N, H, W) or (H, W), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"frames must hold integer code values, got dtype {arr.dtype}")
    nbins = 1 << b
    hist = np.empty((arr.shape[0], nbins), dtype=np.int64)
    for i, frame in enumerate(arr):  # one vectorised bincount per frame
        hi = np.bincount(frame.ravel(), minlength=nbins)
        if hi.shape[0] > nbins:
            raise ValueError(f"sample value {hi.shape[0] - 1} exceeds {nbins - 1} (bit depth {b})")
        hist[i] = hi
    return _signature_from_hist(hist, b)


# --------------------------------------------------------------------------------------------
# Cuts and windows
# --------------------------------------------------------------------------------------------


def _frames_from_seconds(fps: float, min_len_s: float, max_len_s: float | None) -> tuple[int, int]:
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if min_len_s < 0:
        raise ValueError(f"min_len_s must be >= 0, got {min_len_s}")
    # The small tolerances keep e.g. 0.5 s * 25 fps = 12.5 -> 13 and 1.0 s * 25 fps -> 25 exact
    # despite binary floating point.
    min_frames = max(1, math.ceil(min_len_s * fps - 1e-9))
    if max_len_s is None or math.isinf(max_len_s):
        max_frames = 0  # no splitting
    else:
        if not max_len_s > 0:
            raise ValueError(f"max_len_s must be > 0 (or None), got {max_len_s}")
        max_frames = max(1, math.floor(max_len_s * fps + 1e-9))
    return min_frames, max_frames


def select_cuts(strength: np.ndarray, *, min_frames: int) -> list[int]:
    """Cut frames from per-frame cut strengths (candidate where strength >= 1).

    ``strength[t]`` compares frame t with frame t-1 (``strength[0]`` is ignored). A cut is never
    closer than ``min_frames`` to the previous cut, to frame 0, or to the end of the clip; a
    candidate too close to the previous cut replaces it when it is strictly stronger. A
    candidate too close to the end is no candidate: it replaced a valid cut before it and was
    then dropped, and a real cut was lost.
    """
    s = np.asarray(strength, dtype=np.float64)
    n = s.shape[0]
    cuts: list[int] = []
    cut_strength: list[float] = []
    for t in np.flatnonzero(s >= 1.0).tolist():  # few candidates: a Python loop is fine
        if t == 0 or n - t < min_frames:
            continue
        last = cuts[-1] if cuts else 0
        if t - last >= min_frames:
            cuts.append(t)
            cut_strength.append(float(s[t]))
        elif cuts and s[t] > cut_strength[-1]:
            # Moving the previous cut later keeps it >= min_frames after the one before it.
            cuts[-1] = t
            cut_strength[-1] = float(s[t])
    return cuts


def split_scenes(cuts: Iterable[int], num_frames: int, *, max_frames: int) -> list[Shot]:
    """Tile ``0 .. num_frames-1`` into shots: scenes between cuts, split to <= ``max_frames``.

    ``max_frames`` = 0 disables splitting. A scene of L > max frames becomes
    k = ceil(L / max) windows of ``L // k`` or ``L // k + 1`` frames (each longer than max / 2).
    """
    bounds = [0, *sorted(int(c) for c in cuts), num_frames]
    if any(b1 <= b0 for b0, b1 in itertools.pairwise(bounds)):
        raise ValueError(f"cuts must be distinct and inside 1..{num_frames - 1}: {bounds}")
    shots: list[Shot] = []
    for scene, (a, b) in enumerate(itertools.pairwise(bounds)):
        length = b - a
        k = 1 if max_frames <= 0 else -(-length // max_frames)
        edges = [a + (i * length) // k for i in range(k + 1)]
        for s0, s1 in itertools.pairwise(edges):
            shots.append(Shot(len(shots), s0, s1, scene))
    return shots


class ShotDetector:
    """Streaming shot detection: feed chunks in order, then ask for :meth:`shots`.

    Only a histogram and a mean per frame are kept (a few hundred bytes per frame), so a whole
    feature-length video streams in bounded memory; streaming in any chunking gives exactly the
    shots of the whole clip at once.
    """

    def __init__(
        self,
        *,
        fps: float,
        threshold: float = DEFAULT_THRESHOLD,
        mean_threshold: float = DEFAULT_MEAN_THRESHOLD,
        min_len_s: float = 0.5,
        max_len_s: float | None = 1.0,
    ) -> None:
        """See :func:`detect_shots` for the parameters."""
        if not threshold > 0 or not mean_threshold > 0:
            raise ValueError("threshold and mean_threshold must be > 0")
        self.fps = float(fps)
        self.threshold = float(threshold)
        self.mean_threshold = float(mean_threshold)
        self._lengths_s = (float(min_len_s), max_len_s)
        self.min_frames, self.max_frames = _frames_from_seconds(self.fps, min_len_s, max_len_s)
        self._strength: list[np.ndarray] = []
        self._prev: tuple[np.ndarray, float] | None = None
        self._n = 0

    def set_fps(self, fps: float) -> None:
        """Read the frames at another rate (the shot lengths in frames follow; the cut
        strengths do not depend on it): for a rate only known once the video was read."""
        min_frames, max_frames = _frames_from_seconds(float(fps), *self._lengths_s)
        self.fps, self.min_frames, self.max_frames = float(fps), min_frames, max_frames

    @property
    def shortest_shot(self) -> int:
        """The fewest frames a shot it cuts holds (a whole video shorter than that aside): cuts
        are ``min_frames`` apart, and a long scene's windows hold at least
        ``(max_frames + 1) // 2``, one frame fewer than ``min_frames`` at rates such as 24.5 fps
        (12 and 13 of a 25-frame scene)."""
        if self.max_frames <= 0:
            return self.min_frames
        return min(self.min_frames, (self.max_frames + 1) // 2)

    @property
    def num_frames(self) -> int:
        """Frames seen so far."""
        return self._n

    @property
    def strength(self) -> np.ndarray:
        """Per-frame cut strength so far (frame 0: 0); >= 1 marks a candidate."""
        return np.concatenate(self._strength) if self._strength else np.zeros(0)

    def update(self, frames: Any, bit_depth: int | None = None) -> None:
        """Add the next frames: a FrameChunk, or an (n,H,W) / (H,W) integer array.

        ``bit_depth`` is taken from a FrameChunk; for arrays it defaults to 8 for uint8 and
        must be given otherwise.
        """
        y, b = _frames_and_depth(frames, bit_depth)
        self._add(*luma_signature(y, b))

    def update_hist(self, hist: Any, bit_depth: int) -> None:
        """Add the next frames given as (n, 2**bit_depth) code-value histograms."""
        self._add(*_signature_from_hist(np.asarray(hist), bit_depth))

    def _add(self, h64: np.ndarray, mean: np.ndarray) -> None:
        n = h64.shape[0]
        if n == 0:
            return
        if self._prev is not None:
            ph, pm = self._prev
            h_prev = np.concatenate([ph[None], h64[:-1]])
            m_prev = np.concatenate([[pm], mean[:-1]])
        else:  # frame 0 of the clip has no predecessor: strength 0
            h_prev = np.concatenate([h64[:1], h64[:-1]])
            m_prev = np.concatenate([mean[:1], mean[:-1]])
        l1 = np.abs(h64 - h_prev).sum(axis=1)
        jump = np.abs(mean - m_prev)
        strength = np.maximum(l1 / self.threshold, jump / self.mean_threshold)
        self._strength.append(strength)
        self._prev = (h64[-1].copy(), float(mean[-1]))
        self._n += n

    def cuts(self) -> list[int]:
        """Frames where a new scene starts (sorted; never 0)."""
        return select_cuts(self.strength, min_frames=self.min_frames)

    def shots(self) -> list[Shot]:
        """The shots tiling every frame seen so far."""
        if self._n == 0:
            raise ValueError("no frames were given")
        return split_scenes(self.cuts(), self._n, max_frames=self.max_frames)


def _frames_and_depth(frames: Any, bit_depth: int | None) -> tuple[np.ndarray, int]:
    if hasattr(frames, "y") and hasattr(frames, "bit_depth"):  # a FrameChunk
        if bit_depth is not None and int(bit_depth) != int(frames.bit_depth):
            raise ValueError(f"bit_depth {bit_depth} != the chunk's {frames.bit_depth}")
        return np.asarray(frames.y), int(frames.bit_depth)
    if hasattr(frames, "detach"):  # a torch tensor: bring it to host memory as numpy
        frames = frames.detach().cpu().numpy()
    arr = np.asarray(frames)
    if bit_depth is None:
        if arr.dtype != np.uint8:
            raise ValueError(f"bit_depth is required for {arr.dtype} frames")
        bit_depth = 8
    return arr, int(bit_depth)


def detect_shots(
    frames: Any,
    *,
    fps: float,
    bit_depth: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    mean_threshold: float = DEFAULT_MEAN_THRESHOLD,
    min_len_s: float = 0.5,
    max_len_s: float | None = 1.0,
) -> list[Shot]:
    """Segment a clip into shots (``stop`` exclusive) that tile it exactly.

    Args:
        frames: the clip's luma: an (N,H,W) integer array (or tensor), one FrameChunk, or an
            iterable of chunks/arrays in frame order (e.g. ``iter_frames(path)``), streamed.
        fps: frame rate, to turn the second-based lengths into frames.
        bit_depth: sample bit depth for arrays (FrameChunks carry theirs; uint8 implies 8).
        threshold: L1 distance (0..2) between consecutive normalised 64-bin histograms that
            makes a cut.
        mean_threshold: jump of mean luma (8-bit units) that makes a cut on its own.
        min_len_s: no cut closer than this to the previous cut, the start or the end.
        max_len_s: longer scenes are split into near-equal windows no longer than this
            (None: never split).

    Returns:
        Shots in order; ``shot_index`` counts from 0, ``scene_index`` numbers the scenes.
    """
    det = ShotDetector(
        fps=fps,
        threshold=threshold,
        mean_threshold=mean_threshold,
        min_len_s=min_len_s,
        max_len_s=max_len_s,
    )
    is_single = (hasattr(frames, "y") and hasattr(frames, "bit_depth")) or hasattr(frames, "shape")
    for part in [frames] if is_single else frames:
        det.update(part, bit_depth)
    return det.shots()


def detect_video_shots(
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    chunk: int = 32,
    **kw: Any,
) -> list[Shot]:
    """:func:`detect_shots` on a video file, decoded chunk by chunk (fps from the file)."""
    from .io import iter_frames, probe_video

    if fps is None:
        fps = probe_video(path).fps
        if not fps:
            raise ValueError(f"{os.fspath(path)}: frame rate unknown; pass fps=")
    return detect_shots(iter_frames(path, chunk=chunk, planes="y"), fps=fps, **kw)
