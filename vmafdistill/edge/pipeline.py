"""The edge chain, torch-free: decode -> shots -> features -> predict -> quality tokens.

One ffmpeg process decodes the distorted video and pipes only its luma plane (``extractplanes=y``
copies the decoder's Y samples, no conversion; :mod:`.decode`); a reader thread drains the pipe
into a short queue of large chunks, so ffmpeg keeps decoding while Python cuts shots from per-frame
histograms and computes the pixel features (numpy, allocation-free per frame; optionally in
``threads`` threads); a second, decode-free ffmpeg process lists the packet sizes (bitrate per
shot) and the codec, and for students that read the encoder's quantizer a third logs the stream
headers (:mod:`vmafdistill.io.quantizer`). Features and metadata are pooled per shot by the corpus
builder's own function (:func:`vmafdistill.features.shot_rows.shot_feature_rows`), then the ONNX
student predicts and :mod:`vmafdistill.edge.tokens` labels each shot.

Three documented speed options (recorded in the model card's ``edge`` section; 1 = exact):

* ``frame_step`` k: pixel features on every k-th frame only (each with its true previous frame
  for the temporal features), pooled with the same NaN-mean; an unbiased subsample of the shot
  mean. Every frame is still decoded (inter prediction needs them) and still feeds shot cuts.
  Measured on the pilot corpus's real encodes it moves predictions by up to several VMAF
  (docs/benchmarks.md), so the default stays 1.
* ``shot_pixel_step`` s: cut-detection histograms from every s-th row and column only. 0 (the
  default) = automatic: the largest s that keeps at least :data:`CUT_MIN_SAMPLES` samples per
  frame (s = 1 below 640x360, 2 at 640x360, 4 at 1280x720). On every real encode we have
  (230 videos, 44x36 to 1280x720) the automatic step finds exactly the cuts of s = 1; a fixed
  s = 2 changed cuts only on frames left with <= 9216 samples (docs/edge.md).
* ``temporal_pixel_step`` s: for a student whose only pixel inputs are temporal
  (``temporal_diff`` / ``temporal_std``, e.g. the shipped ``quant_ti7``), those two on *every*
  frame from every s-th row and column of each frame pair (exact integer sums on the
  subsample; :func:`~vmafdistill.features.frame_numpy.temporal_features`). 0 (exported cards'
  default) = automatic, >= :data:`TEMPORAL_MIN_SAMPLES` samples per frame: it moved the
  shipped student's predictions by <= 0.11 VMAF over 1165 shots (docs/edge.md).

A student whose card lists no pixel feature (e.g. ``rate7``: stream metadata only) needs no
pixel feature for its *prediction*; then the pixel features only feed the quality token's
``issue`` heuristic and are computed on every ``issue_frame_step``-th frame (default 8, card
``edge.issue_frame_step``), each with its true previous frame; the prediction is unchanged
(it never reads them) and every frame still feeds the cut detector (8-bit histograms). A
temporal-only student is the same, plus the every-frame temporal pass above. The summary's
``pixel_features`` says which frames were measured and what for.

``threads``, ``decode_threads``, ``prefetch`` and ``chunk`` change speed only, never results.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelError, VideoInputError
from ..features.frame_numpy import (
    FEATURE_NAMES,
    TEMPORAL_FEATURES,
    RawStats,
    finalize,
    frame_histogram,
    raw_stats,
    temporal_features,
)
from ..features.registry import QUANTIZER_FEATURES, canonical_codec
from ..features.shot_rows import shot_feature_rows
from ..shots import ShotDetector
from .decode import DecodeLog, decode_luma, decode_luma_runs, picture_changes
from .tokens import band_of, issue_of

__all__ = [
    "DecodeLog",
    "EdgeOptions",
    "VideoReport",
    "analyze_video",
    "auto_cut_step",
    "auto_temporal_step",
    "cut_histograms",
    "decode_luma",
    "default_ref_size",
    "domain_flags",
    "frame_pass",
    "needs_pixel_features",
    "needs_quantizer",
    "picture_changes",
    "shot_feature_rows",
    "shot_records",
    "temporal_only",
]


@dataclass(frozen=True)
class EdgeOptions:
    """Knobs of the edge chain (defaults: exact features, as the corpus computes them).

    ``frame_step`` / ``shot_pixel_step`` / ``temporal_pixel_step`` trade exactness for speed
    (see the module docstring; ``temporal_pixel_step`` defaults to 1, exact, for cards that do
    not set it; exported cards carry ``conf/export.yaml``'s 0 = automatic);
    ``issue_frame_step`` is the pixel-feature step used instead of ``frame_step`` when the
    student's prediction reads no spatial pixel feature (they then only feed the issue
    heuristic); ``threads``
    (feature threads per chunk), ``decode_threads`` (ffmpeg ``-threads``, 0 = automatic:
    :func:`~vmafdistill.edge.decode.decoder_threads`),
    ``prefetch`` (decoded chunks queued ahead) and ``chunk`` only change speed.
    """

    frame_step: int = 1
    shot_pixel_step: int = 0
    issue_frame_step: int = 8
    temporal_pixel_step: int = 1
    chunk: int = 64
    threads: int = 1
    decode_threads: int = 0
    prefetch: int = 2
    shots: Mapping[str, Any] = field(default_factory=dict)  # ShotDetector keyword arguments

    def __post_init__(self) -> None:
        if min(self.frame_step, self.issue_frame_step, self.chunk, self.threads,
               self.prefetch) < 1 or min(self.decode_threads, self.shot_pixel_step,
                                         self.temporal_pixel_step) < 0:
            raise ValueError(
                "frame_step, issue_frame_step, chunk, threads and prefetch must be >= 1 and "
                f"decode_threads, shot_pixel_step, temporal_pixel_step >= 0: {self}"
            )

    @classmethod
    def from_card(cls, edge: Mapping[str, Any] | None, **overrides: Any) -> EdgeOptions:
        """Options from a model card's ``edge`` section; ``overrides`` that are not None win.

        Keys a card lacks (cards exported before the key existed) keep the defaults above.
        """
        edge = dict(edge or {})
        kw: dict[str, Any] = {
            k: int(edge[k])
            for k in ("frame_step", "shot_pixel_step", "issue_frame_step", "temporal_pixel_step",
                      "chunk", "threads", "decode_threads", "prefetch")
            if edge.get(k) is not None
        }
        kw["shots"] = dict(edge.get("shots") or {})
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)

    def cut_step(self, width: int, height: int, pixel_step: int | None = None) -> int:
        """The cut-histogram pixel step for frames of this size: ``shot_pixel_step`` if set;
        else 1 when every frame gets pixel features anyway (``pixel_step`` 1: their
        full-resolution histograms come free), else the automatic :func:`auto_cut_step`."""
        if self.shot_pixel_step:
            return self.shot_pixel_step
        return 1 if pixel_step == 1 else auto_cut_step(width, height)

    def pixel_step(self, feature_names: Sequence[str]) -> int:
        """The pixel-feature frame step for a student with these input features.

        ``frame_step`` when the student reads a pixel feature other than the temporal ones (its
        prediction depends on them), else ``issue_frame_step`` (only the issue heuristic reads
        them; a temporal-only student gets its temporal features from :meth:`temporal_step`).
        """
        if needs_pixel_features(feature_names) and not temporal_only(feature_names):
            return self.frame_step
        return self.issue_frame_step

    def temporal_step(self, feature_names: Sequence[str], width: int, height: int) -> int | None:
        """Pixel step of the every-frame temporal pass, or None when there is none.

        Only a student whose pixel inputs are all temporal (``temporal_diff``,
        ``temporal_std``) gets it: those two, on every frame, from every s-th row and column
        (``temporal_pixel_step``; 0 = automatic, :func:`auto_temporal_step`; 1 = exact).
        """
        if not temporal_only(feature_names):
            return None
        return self.temporal_pixel_step or auto_temporal_step(width, height)


#: The automatic cut-histogram step keeps at least this many samples per frame (a 320x180
#: grid): the 64-bin cut signature of 57600 samples is as decisive as the full frame's on every
#: encode measured, while 2x2 subsampling of frames with <= 9216 samples moved cuts.
CUT_MIN_SAMPLES = 320 * 180


def auto_cut_step(width: int, height: int, min_samples: int = CUT_MIN_SAMPLES) -> int:
    """Largest s >= 1 with (width / s) * (height / s) >= ``min_samples`` (1 for small frames)."""
    return max(1, math.isqrt(max(int(width) * int(height), 0) // int(min_samples)))


#: The automatic temporal step keeps at least this many samples per frame (a 160x90 grid). The
#: shot mean of a frame-difference statistic over >= 14400 samples per frame moved the shipped
#: student's predictions by far less than a VMAF point on every encode measured (docs/edge.md).
TEMPORAL_MIN_SAMPLES = 160 * 90


def auto_temporal_step(width: int, height: int) -> int:
    """Largest s >= 1 keeping >= :data:`TEMPORAL_MIN_SAMPLES` samples per frame."""
    return auto_cut_step(width, height, TEMPORAL_MIN_SAMPLES)


def temporal_only(feature_names: Sequence[str]) -> bool:
    """Whether a student reads pixel features and all of them are temporal ones."""
    pixel = [n for n in feature_names if n in FEATURE_NAMES]
    return bool(pixel) and all(n in TEMPORAL_FEATURES for n in pixel)


def needs_quantizer(feature_names: Sequence[str]) -> bool:
    """Whether a student reads the encoder's quantizer (then the packet pass also logs every
    packet's headers, :mod:`vmafdistill.io.quantizer`; ~0.1 s per 1500 frames)."""
    return any(n in QUANTIZER_FEATURES for n in feature_names)


def needs_pixel_features(feature_names: Sequence[str]) -> bool:
    """Whether a student with these input features reads any decoded-pixel feature."""
    return any(n in FEATURE_NAMES for n in feature_names)


# --------------------------------------------------------------------------------------------
# Decoding and the per-frame pass
# --------------------------------------------------------------------------------------------


def _concat_raw(parts: Sequence[RawStats]) -> RawStats:
    """Frames of several :class:`RawStats` (same size and bit depth) as one, in order."""
    if len(parts) == 1:
        return parts[0]
    f0 = parts[0]
    cols = {
        k: np.concatenate([getattr(r, k) for r in parts])
        for k in RawStats.__dataclass_fields__
        if k not in ("bit_depth", "height", "width")
    }
    return RawStats(bit_depth=f0.bit_depth, height=f0.height, width=f0.width, **cols)


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous near-equal (start, stop) ranges covering 0..n (empty ones dropped)."""
    edges = np.linspace(0, n, max(1, parts) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


_HIST_LOCAL = threading.local()


def cut_histograms(
    y: np.ndarray,
    bit_depth: int,
    frames: Sequence[int] | np.ndarray | None = None,
    *,
    step: int = 1,
) -> np.ndarray:
    """(m, 2**bit_depth) int64 code-value histograms of frames ``y[frames]`` (default: all),
    each from every ``step``-th row and column.

    Equal to :func:`~vmafdistill.features.frame_numpy.frame_histogram` of ``y[i, ::step,
    ::step]`` per frame. For 8-bit frames of even width at step 1 two neighbouring pixels are
    counted at once (65536 joint bins); every path fills a per-thread preallocated index
    buffer, so no per-frame temporary is allocated (the histograms of every frame feed the cut
    detector, also when no pixel feature is computed).
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    idx = range(y.shape[0]) if frames is None else [int(i) for i in frames]
    out = np.empty((len(idx), 1 << bit_depth), dtype=np.int64)
    if not len(idx):
        return out
    if step > 1:
        sub = y[:, ::step, ::step]
        key = ("sub", sub.shape[1:])
        buf = getattr(_HIST_LOCAL, "sub_buf", None)
        if buf is None or getattr(_HIST_LOCAL, "sub_key", None) != key:
            buf = _HIST_LOCAL.sub_buf = np.empty(sub.shape[1:], dtype=np.intp)
            _HIST_LOCAL.sub_key = key
        nbins = 1 << bit_depth
        for j, i in enumerate(idx):
            np.copyto(buf, sub[i], casting="unsafe")
            counts = np.bincount(buf.ravel(), minlength=nbins)
            if counts.shape[0] > nbins:
                raise ValueError(f"sample value {counts.shape[0] - 1} exceeds {nbins - 1} "
                                 f"(bit depth {bit_depth})")
            out[j] = counts
        return out
    h, w = y.shape[1:]
    if y.dtype != np.uint8 or w % 2 or not y.flags.c_contiguous:
        for j, i in enumerate(idx):
            out[j] = frame_histogram(y[i], bit_depth)
        return out
    buf = getattr(_HIST_LOCAL, "buf", None)
    if buf is None or buf.shape[0] != h * w // 2:
        buf = _HIST_LOCAL.buf = np.empty(h * w // 2, dtype=np.intp)
    pairs = y.reshape(y.shape[0], -1).view(np.uint16)
    out[:, 256:] = 0
    for j, i in enumerate(idx):
        np.copyto(buf, pairs[i])
        joint = np.bincount(buf, minlength=1 << 16).reshape(256, 256)
        row = out[j, :256]
        np.sum(joint, axis=0, out=row)  # one byte of each pair ...
        row += joint.sum(axis=1)  # ... and the other (either byte order)
    return out


def frame_pass(
    chunks: Iterator[np.ndarray],
    *,
    bit_depth: int,
    detector: ShotDetector,
    frame_step: int = 1,
    shot_pixel_step: int = 1,
    threads: int = 1,
    temporal_step: int | None = None,
) -> dict[str, np.ndarray]:
    """Feed every frame to ``detector`` and compute pixel features on every ``frame_step``-th.

    Each chunk's measured frames are split into ``threads`` contiguous runs computed in
    parallel (each run gets its true previous frame, so results do not depend on ``threads``).
    With ``temporal_step`` s, ``temporal_diff`` and ``temporal_std`` are instead computed on
    *every* frame from every s-th row and column
    (:func:`~vmafdistill.features.frame_numpy.temporal_features`; s = 1 is exact).
    Returns ``{feature: (N,) float64}`` with NaN on frames that were not measured.
    """
    if frame_step < 1 or shot_pixel_step < 1 or threads < 1:
        raise ValueError("frame_step, shot_pixel_step and threads must be >= 1")
    parts: list[dict[str, np.ndarray]] = []
    prev: np.ndarray | None = None
    start = 0
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None

    # with an every-frame temporal pass the sampled frames need no frame-pair sums
    pairs = temporal_step is None

    def measure(y: np.ndarray, sel: np.ndarray, before: np.ndarray | None) -> RawStats:
        """Raw stats of frames ``y[sel]`` (sorted indices), each with its previous frame."""
        if frame_step == 1:  # sel is a contiguous run a..b-1
            a, b = int(sel[0]), int(sel[-1]) + 1
            return raw_stats(y[a:b], bit_depth, before if a == 0 else y[a - 1])
        return _concat_raw([
            raw_stats(y[i], bit_depth, (before if i == 0 else y[i - 1]) if pairs else None)
            for i in sel.tolist()
        ])

    try:
        for y in chunks:
            n = y.shape[0]
            idx = np.arange(start, start + n)
            sel = np.flatnonzero(idx % frame_step == 0)
            feats = {k: np.full(n, math.nan) for k in FEATURE_NAMES}
            raw: RawStats | None = None
            if sel.size:
                runs = [sel[a:b] for a, b in _split(sel.size, threads)]
                if pool is None or len(runs) == 1:
                    raws = [measure(y, r, prev) for r in runs]
                else:
                    raws = list(pool.map(measure, [y] * len(runs), runs, [prev] * len(runs)))
                raw = _concat_raw(raws)
                fin = finalize(raw)
                for k in FEATURE_NAMES:
                    feats[k][sel] = fin[k]
            if temporal_step is not None:
                feats.update(temporal_features(y, prev, bit_depth, step=temporal_step))
            if shot_pixel_step > 1:
                detector.update_hist(cut_histograms(y, bit_depth, step=shot_pixel_step),
                                     bit_depth)
            else:
                if raw is not None and sel.size == n:
                    hist = raw.hist
                else:  # histograms of the frames without features
                    hist = np.empty((n, 1 << bit_depth), dtype=np.int64)
                    rest = np.ones(n, dtype=bool)
                    if raw is not None:
                        hist[sel] = raw.hist
                        rest[sel] = False
                    hist[rest] = cut_histograms(y, bit_depth, np.flatnonzero(rest))
                detector.update_hist(hist, bit_depth)
            parts.append(feats)
            prev = y[-1]
            start += n
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    if not parts:
        return {k: np.zeros(0) for k in FEATURE_NAMES}
    return {k: np.concatenate([p[k] for p in parts]) for k in FEATURE_NAMES}


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def domain_flags(row: Mapping[str, Any], domain: Mapping[str, Any] | None, codec: str) -> list[str]:
    """Where a shot lies outside the student's training domain (card ``training_domain``).

    ``unseen_codec:<codec>`` when the card lists the codecs it was trained on and this is not
    one of them; ``outside_training:<feature>`` for each input feature beyond the [min, max] the
    student saw (its codec one-hot column is covered by the codec flag). The prediction is kept
    (it is the student's extrapolation) but the record says so. Cards without the section (older
    exports) give no flags.
    """
    if not isinstance(domain, Mapping):
        return []
    flags: list[str] = []
    codecs = domain.get("codecs")
    name = canonical_codec(codec)
    if codecs and name not in {canonical_codec(c) for c in codecs}:
        flags.append(f"unseen_codec:{name}")
    for feature, rng in (domain.get("features") or {}).items():
        if feature not in row or feature.startswith("codec_"):
            continue
        lo, hi = float(rng[0]), float(rng[1])
        x = float(row[feature])
        if math.isfinite(x) and not lo <= x <= hi:
            flags.append(f"outside_training:{feature}")
    return flags


def shot_records(
    rows: Sequence[Mapping[str, Any]],
    preds: np.ndarray | None,
    card: Mapping[str, Any],
    rules: Mapping[str, Any],
    *,
    feature_names: Sequence[str],
    codec: str,
    height: int,
) -> list[dict[str, Any]]:
    """The per-shot quality tokens (see the module docstring of :mod:`.tokens`).

    ``height`` names the resolution in ``res`` (``"360p"``): the video's short side, so a
    360x640 portrait video is 360p, as players label it.
    """
    q = float(card.get("conformal", {}).get("q") or 0.0)
    stats = card.get("token_stats", {})
    out = []
    for i, row in enumerate(rows):
        bad = [n for n in feature_names if not math.isfinite(float(row[n]))]
        rec: dict[str, Any] = {
            "shot": int(row["shot_index"]),
            "start": round(float(row["start_s"]), 3),
            "end": round(float(row["end_s"]), 3),
            "codec": canonical_codec(codec).upper(),
            "res": f"{height}p",
            "bitrate_kbps": round(float(row["bitrate_kbps"]), 1),
        }
        scene_qp = float(row.get("scene_qp", math.nan))
        if math.isfinite(scene_qp):  # read only for students that use the quantizer
            rec["qp"] = round(scene_qp, 1)
        if bad or preds is None or not math.isfinite(float(preds[i])):
            rec.update(pred_vmaf=None, interval=None, band="unknown", issue="invalid_features",
                       flags=[f"nan:{n}" for n in bad] or ["nan:prediction"])
        else:
            p = float(preds[i])
            lower = max(p - q, 0.0)
            rec.update(
                pred_vmaf=round(p, 2),
                interval=[round(lower, 2), round(min(p + q, 100.0), 2)],
                band=band_of(p, rules, lower),
                issue=issue_of(p, row, stats, rules),
                flags=domain_flags(row, card.get("training_domain"), codec),
            )
        out.append(rec)
    return out


@dataclass
class VideoReport:
    """What :func:`analyze_video` found: one record per shot, a summary and stage timings."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    timings: dict[str, float]


def default_ref_size(card_ref: Sequence[int], width: int, height: int
                     ) -> tuple[tuple[int, int], str]:
    """The resolution the teacher would compare a ``width`` x ``height`` delivery at, when the
    user did not say (``--ref-size``), and which rule chose it.

    The reference is the delivery upscaled to fit the card's reference frame (the students
    were trained on ladders of one source each, so a delivery and its reference share an
    aspect ratio and ``scale_ratio`` is the upscale factor):

    * ``"card"``: exactly the card's size (a 640x360 delivery, card 1280x720);
    * ``"card_turned"``: the card's size turned to the video's orientation: a 360x640 phone
      delivery is compared with 720x1280, not 1280x720 (scale ratio 2.0, not 1.125);
    * ``"card_fit"``: the largest same-aspect size inside the (turned) card frame, rounded to
      even sizes: a 640x272 film delivery with a 1280x720 card -> 1280x544 (scale ratio 2.0,
      not 2.65); a delivery within 1 % of the card's shape (854x480, 426x240) gets the card's
      size itself;
    * ``"delivery"``: the video's own size when it does not fit inside the card frame: no
      ladder delivers above its reference, so a 1920x1080 delivery is its own reference
      (scale ratio 1.0, not 0.67).
    """
    rw, rh = int(card_ref[0]), int(card_ref[1])
    turned = width != height and rw != rh and (height > width) != (rh > rw)
    if turned:
        rw, rh = rh, rw
    factor = min(rw / width, rh / height)
    if factor < 1.0:
        return (int(width), int(height)), "delivery"
    size = (round(width * factor), round(height * factor))
    # Ladder sizes round the aspect ratio (854x480, 426x240 for 16:9): a delivery within 1 % of
    # the card's shape is compared at the card's size, not one a pixel short (1280x719 would
    # put 854x480's scale ratio at 1.498, just under the detail_loss rule's 1.5).
    if all(abs(a - b) <= max(2, round(0.01 * b)) for a, b in zip(size, (rw, rh), strict=True)):
        return (rw, rh), "card_turned" if turned else "card"
    return (2 * round(size[0] / 2), 2 * round(size[1] / 2)), "card_fit"  # even, as ladders are


def _set_times_from_timestamps(rows: list[dict[str, Any]], frame_times_s: np.ndarray,
                               frame_durations_s: np.ndarray, fps: float) -> None:
    """Shot start/end from the decoded frames' timestamps (true times on variable-rate video).

    Rates and features keep the nominal 1/fps per frame the students were trained with; only
    the times a reader sees move. A shot ends where the next frame starts (the last one: its
    packet's duration, else 1/fps).
    """
    n = frame_times_s.shape[0]
    last = float(frame_durations_s[-1]) if frame_durations_s[-1] > 0 else 1.0 / fps
    for row in rows:
        start, stop = int(row["start_frame"]), int(row["stop_frame"])
        end = frame_times_s[stop] if stop < n else frame_times_s[-1] + last
        row["start_s"] = float(frame_times_s[start])
        row["end_s"] = float(end)
        row["duration_s"] = float(end - frame_times_s[start])


def _picture_runs(path: str, log: DecodeLog, info: Any, n: int,
                  frame_times_s: np.ndarray | None, fps: float) -> list[dict[str, Any]]:
    """The runs of equal pictures (:func:`picture_changes`, with their start times), or []
    when the pictures never change.

    ffmpeg's notice of a change (:class:`DecodeLog` ``reconfigured``) is free, but its wording
    is that of the ffmpeg this package ships; with an ffmpeg that logged no frame timestamps
    (older than 6.1), whose notice may read differently, the ``showinfo`` pass always runs.
    """
    first = (info.pix_fmt, info.width, info.height)
    noticed = any(tuple(r) != first for r in log.reconfigured)
    if not noticed and log.frame_pts:
        return []
    runs = [r for r in picture_changes(path) if int(r["frame"]) < n] or [
        {"frame": 0, "pix_fmt": first[0], "width": first[1], "height": first[2]}]
    if not noticed and len(runs) == 1:
        return []
    for run in runs:
        f = int(run["frame"])
        run["time_s"] = round(float(frame_times_s[f]) if frame_times_s is not None
                              and f < frame_times_s.shape[0] else f / fps, 3)
    return runs


def _invalidate_shots(records: list[dict[str, Any]], which: Sequence[bool],
                      flags: Sequence[str]) -> None:
    """No prediction for the records marked in ``which``: say why (``flags``)."""
    for rec, bad in zip(records, which, strict=True):
        if bad:
            rec.update(pred_vmaf=None, interval=None, band="unknown", issue="invalid_features")
            rec["flags"] = [*rec.get("flags", []), *flags]


def _rescaled_flag(run: Mapping[str, Any], info: Any) -> str:
    """The flag of shots whose pictures ffmpeg scaled to the first picture's size: ffmpeg
    noticed a change of size or format, but the second decode found a single run of pictures
    (when it found several, each is read at its own size). Their features, ``res`` and
    ``scale_ratio`` would be wrong: never a silent number."""
    if (run["pix_fmt"], run["width"], run["height"]) != (info.pix_fmt, info.width, info.height):
        return f"picture_changed:{run['width']}x{run['height']}"
    return "picture_changed"  # showinfo saw no change: trust the notice


def _flag_hidden_frames(records: list[dict[str, Any]], rows: Sequence[Mapping[str, Any]],
                        hidden_before_frame: np.ndarray) -> int:
    """Flag ``hidden_frames:K`` on each shot that K never-output packets precede; total K.

    Their bits count in no shot, so the shot after them (usually the first, after a
    stream-copy cut) may read a lower rate than its pictures cost.
    """
    if hidden_before_frame.size == 0 or not records:
        return 0
    starts = np.array([int(r["start_frame"]) for r in rows])
    shot_of = np.clip(np.searchsorted(starts, hidden_before_frame, side="right") - 1,
                      0, len(records) - 1)
    for i, k in zip(*np.unique(shot_of, return_counts=True), strict=True):
        records[int(i)].setdefault("flags", []).append(f"hidden_frames:{int(k)}")
    return int(hidden_before_frame.size)


def _summary(path: str, records: list[dict[str, Any]], n_frames: int, fps: float,
             hidden_frames: int = 0, decoder_errors: Sequence[str] = (),
             picture_changes: Sequence[Mapping[str, Any]] = (),
             ref: tuple[tuple[int, int], str] | None = None,
             pixel: dict[str, Any] | None = None, video_streams: int = 1) -> dict:
    ok = [r for r in records if r["pred_vmaf"] is not None]
    dur = [r["end"] - r["start"] for r in ok]
    bands = {b: sum(r["band"] == b for r in records) for b in ("green", "amber", "red", "unknown")}
    issues: dict[str, int] = {}
    for r in records:
        if r["issue"] != "none":
            issues[r["issue"]] = issues.get(r["issue"], 0) + 1
    worst = min(ok, key=lambda r: r["pred_vmaf"]) if ok else None
    mean = sum(r["pred_vmaf"] * d for r, d in zip(ok, dur, strict=True)) / sum(dur) if ok else None
    return {
        "video": path,
        "shots": len(records),
        "frames": n_frames,
        "duration_s": round(max((r["end"] for r in records), default=n_frames / fps), 3),
        "codec": records[0]["codec"] if records else None,
        "res": records[0]["res"] if records else None,
        **({"ref_size": list(ref[0]), "ref_size_rule": ref[1]} if ref is not None else {}),
        "pred_vmaf_mean": None if mean is None else round(mean, 2),
        "pred_vmaf_min": None if worst is None else worst["pred_vmaf"],
        "worst_shot": None if worst is None else worst["shot"],
        "bands": bands,
        "issues": issues,
        "flagged": sum(bool(r.get("flags")) for r in records),
        **({"hidden_frames": hidden_frames} if hidden_frames else {}),
        **({"decoder_errors": {"count": len(decoder_errors), "first": decoder_errors[0]}}
           if decoder_errors else {}),
        **({"picture_changes": list(picture_changes)} if picture_changes else {}),
        **({"video_streams": video_streams} if video_streams > 1 else {}),
        **({"pixel_features": pixel} if pixel is not None else {}),
    }


def _run_bit_depth(pix_fmt: str) -> int | None:
    """Bit depth of a decoded picture format (None: one the edge does not read)."""
    from ..io.video import pix_fmt_layout

    try:
        return int(pix_fmt_layout(pix_fmt).bit_depth)
    except KeyError:
        return None


def _rows_per_rendition(
    p: str, runs: list[dict[str, Any]], n: int, *, bit_depth: int, packets: Any,
    names: Sequence[str], options: EdgeOptions, step: int, fps: float,
    ref_given: tuple[int, int] | None, card_ref: Sequence[int],
) -> tuple[list[dict[str, Any]], list[int]]:
    """Shot rows of a recording that switches renditions, every run of equal pictures decoded
    at its own size (:func:`decode_luma_runs`) and cut into shots on its own (a switch is a
    shot boundary). Rows carry the recording's frame numbers and shot / scene indices;
    returns them with the run index of each row. Each run's dict gains ``ref_size``,
    ``ref_size_rule`` and ``shots``.
    """
    stops = [int(r["frame"]) for r in runs[1:]] + [n]
    schedule = [(stop - int(r["frame"]), int(r["width"]), int(r["height"]))
                for r, stop in zip(runs, stops, strict=True)]
    rows: list[dict[str, Any]] = []
    run_of_row: list[int] = []
    shot_base = scene_base = 0
    decoded = itertools.groupby(
        decode_luma_runs(p, schedule, bit_depth=bit_depth, chunk=options.chunk,
                         prefetch=options.prefetch, threads=options.decode_threads),
        key=lambda item: item[0])
    for k, group in decoded:
        frames, w, h = schedule[k]
        f0 = int(runs[k]["frame"])
        det = ShotDetector(fps=fps, **dict(options.shots))
        per_frame = frame_pass(
            (y for _, y in group), bit_depth=bit_depth, detector=det, frame_step=step,
            shot_pixel_step=options.cut_step(w, h, step), threads=options.threads,
            temporal_step=options.temporal_step(names, w, h))
        if per_frame["mean_luma"].shape[0] != frames:
            raise VideoInputError(f"{p}: picture run {k + 1} ({w}x{h}) decoded "
                                  f"{per_frame['mean_luma'].shape[0]} frames, the first pass "
                                  f"counted {frames}")
        ref, rule = ((ref_given, "given") if ref_given is not None
                     else default_ref_size(card_ref, w, h))
        part = packets.take(np.arange(f0, f0 + frames))
        run_rows = shot_feature_rows(
            per_frame, det.shots(), part.sizes, ref_size=ref, codec=packets.codec, fps=fps,
            width=w, height=h, frame_qp=part.qp)
        for row in run_rows:
            row["start_frame"] += f0
            row["stop_frame"] += f0
            row["start_s"] += f0 / fps
            row["end_s"] += f0 / fps
            row["shot_index"] += shot_base
            row["scene_index"] += scene_base
        shot_base += len(run_rows)
        scene_base = max((int(r["scene_index"]) for r in run_rows), default=scene_base - 1) + 1
        runs[k].update(ref_size=list(ref), ref_size_rule=rule, shots=len(run_rows))
        # A rendition at another frame rate (a 15 fps low rung) would be read at the file's
        # rate: its bitrate and shot lengths wrong. Its packets' durations tell (0: unknown).
        durations = np.asarray(part.duration_s, dtype=np.float64)
        durations = durations[durations > 0]
        if durations.size:
            rate = 1.0 / float(np.median(durations))
            if abs(rate - fps) > 0.01 * fps:
                runs[k]["fps"] = round(rate, 3)
        rows += run_rows
        run_of_row += [k] * len(run_rows)
    if sorted(set(run_of_row)) != list(range(len(runs))):
        missing = sorted(set(range(len(runs))) - set(run_of_row))
        raise VideoInputError(f"{p}: picture run(s) {[m + 1 for m in missing]} gave no frames "
                              "on the second decode")
    return rows, run_of_row


def analyze_video(
    path: str | os.PathLike[str],
    predictor: Any,
    *,
    rules: Mapping[str, Any],
    ref_size: tuple[int, int] | None = None,
    options: EdgeOptions | None = None,
    card: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VideoReport:
    """Run the whole edge chain on one distorted video.

    ``progress``, if given, is called with the number of frames decoded so far after every
    decoded chunk (the CLI draws a progress bar from it on long videos).

    ``predictor`` is a :class:`~vmafdistill.edge.predictor.Predictor`, or a
    :class:`concurrent.futures.Future` of one together with its ``card`` (read beforehand):
    then decoding starts while onnxruntime loads the model (its errors surface as soon as they
    happen, at the next decoded chunk). ``ref_size`` defaults to :func:`default_ref_size` of
    the card's (the summary records ``ref_size`` and ``ref_size_rule``); ``options`` to the
    card's ``edge`` section (exact features).

    Pixel features are measured on every :meth:`EdgeOptions.pixel_step`-th frame: ``frame_step``
    for a student that reads spatial pixel features, ``issue_frame_step`` for one that does not
    (then they only feed the issue heuristic); a temporal-only student also gets its temporal
    features from every frame (:meth:`EdgeOptions.temporal_step`). The summary's
    ``pixel_features`` records ``used_for`` (``prediction+issues`` or ``issues``),
    ``frame_step``, ``frames`` (how many frames, those with index % frame_step == 0, were
    measured), ``cut_pixel_step`` and, for a temporal-only student, ``temporal``.
    """
    from ..io.packets import align_packets_to_frames, read_packets
    from ..io.video import probe_video

    p = os.fspath(path)
    pending = isinstance(predictor, Future)
    if card is None:
        if pending:
            raise ValueError("analyze_video: pass card= with a Future predictor")
        card = predictor.card
    if options is None:
        options = EdgeOptions.from_card(card.get("edge"))
    names = list(card["feature_names"])
    step = options.pixel_step(names)
    t0 = time.perf_counter()
    box: dict[str, Any] = {}

    def get_packets() -> None:
        t = time.perf_counter()
        try:
            box["packets"] = read_packets(p, quantizer=needs_quantizer(names))
        except Exception as exc:  # re-raised in the caller's thread
            box["error"] = exc
        box["t"] = time.perf_counter() - t

    def check_codec() -> None:
        """A codec no student knows is the input's problem: say so before decoding it all."""
        if "packets" in box and "codec_ok" not in box:
            try:
                canonical_codec(box["packets"].codec)
            except ValueError as exc:
                raise VideoInputError(f"{p}: {exc}") from None
            box["codec_ok"] = True

    worker = threading.Thread(target=get_packets, daemon=True)
    worker.start()  # decode-free, runs beside the probe and the decode
    try:
        info = probe_video(p)
        t_probe = time.perf_counter() - t0
        fps = info.fps
        if not fps or not math.isfinite(fps):
            raise VideoInputError(f"{p}: frame rate unknown")
        if ref_size is not None:
            ref, ref_rule = (int(ref_size[0]), int(ref_size[1])), "given"
        else:
            ref, ref_rule = default_ref_size(card["ref_size"], info.width, info.height)
        det = ShotDetector(fps=fps, **dict(options.shots))
        cut_step = options.cut_step(info.width, info.height, step)
        temporal_step = options.temporal_step(names, info.width, info.height)

        log = DecodeLog()

        def chunks() -> Iterator[np.ndarray]:
            done = 0
            for y in decode_luma(p, width=info.width, height=info.height,
                                 bit_depth=info.bit_depth, chunk=options.chunk,
                                 prefetch=options.prefetch, threads=options.decode_threads,
                                 log=log):
                if pending and predictor.done() and predictor.exception() is not None:
                    raise predictor.exception()  # a bad model stops the decode at once
                check_codec()
                yield y
                done += y.shape[0]
                if progress is not None:
                    progress(done)

        t1 = time.perf_counter()
        per_frame = frame_pass(
            chunks(),
            bit_depth=info.bit_depth,
            detector=det,
            frame_step=step,
            shot_pixel_step=cut_step,
            threads=options.threads,
            temporal_step=temporal_step,
        )
        t_frames = time.perf_counter() - t1
    finally:
        worker.join()  # never leave the packet reader's ffmpeg running behind an error
    if "error" in box:
        raise box["error"]
    check_codec()
    n = per_frame["mean_luma"].shape[0]
    if n == 0:
        raise VideoInputError(f"{p}: no frames could be decoded (empty or undecodable video)")
    # Packets the decoder never output (an edit list's pre-roll, RASL pictures, lost pictures)
    # are left out here and flagged on the shot they precede.
    aligned = align_packets_to_frames(box["packets"], log.frame_pts or None, n)
    packets = aligned.packets
    t2 = time.perf_counter()
    if pending:
        predictor = predictor.result()
    if list(predictor.feature_names) != names:
        raise ModelError(f"{getattr(predictor, 'model_path', 'model')}: its card's features "
                         "differ from the card given")
    runs = _picture_runs(p, log, info, n, aligned.frame_times_s, fps)
    run_of_row: list[int] | None = None
    if len(runs) > 1:
        # an adaptive-bitrate recording: every rendition decoded again at its own size
        rows, run_of_row = _rows_per_rendition(
            p, runs, n, bit_depth=info.bit_depth, packets=packets, names=names,
            options=options, step=step, fps=fps, card_ref=card["ref_size"],
            ref_given=ref if ref_rule == "given" else None)
    else:
        rows = shot_feature_rows(
            per_frame, det.shots(), packets.sizes, ref_size=(int(ref[0]), int(ref[1])),
            codec=packets.codec, fps=fps, width=info.width, height=info.height,
            frame_qp=packets.qp,
        )
    if aligned.frame_times_s is not None:
        _set_times_from_timestamps(rows, aligned.frame_times_s, packets.duration_s, fps)
    x = np.array([[r[k] for k in names] for r in rows], dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    preds = np.full(len(rows), np.nan, dtype=np.float32)
    if finite.any():
        preds[finite] = predictor.predict(x[finite])
    if run_of_row is None:
        records = shot_records(rows, preds, card, rules, feature_names=names,
                               codec=packets.codec, height=min(info.width, info.height))
        if runs:  # ffmpeg noticed a change that no second run confirmed: every shot
            _invalidate_shots(records, [True] * len(records), [_rescaled_flag(runs[0], info)])
    else:
        records = []
        which = np.array(run_of_row)
        for k, run in enumerate(runs):
            idx = np.flatnonzero(which == k)
            records += shot_records(
                [rows[i] for i in idx], preds[idx], card, rules, feature_names=names,
                codec=packets.codec, height=min(int(run["width"]), int(run["height"])))
        # a run of another bit depth came through ffmpeg's conversion: not its coded samples
        # and a run at another frame rate than the file's would be read at the wrong rate
        wrong_runs: set[int] = set()
        flags: list[str] = []
        for k, run in enumerate(runs):
            wrong = ([f"picture_format:{run['pix_fmt']}"]
                     if _run_bit_depth(str(run["pix_fmt"])) != info.bit_depth else []) + (
                [f"frame_rate:{run['fps']:g}"] if "fps" in run else [])
            if wrong:
                wrong_runs.add(k)
                flags += [f for f in wrong if f not in flags]
        if wrong_runs:  # shots never straddle runs: a shot is wrong when its run is
            _invalidate_shots(records, [k in wrong_runs for k in run_of_row], flags)
    changes = runs
    # shorter than any shot the corpus cuts (only a whole video, or a rendition run, shorter
    # than min_len_s makes one): the student never saw a shot this short
    for rec, row in zip(records, rows, strict=True):
        if int(row["num_frames"]) < det.min_frames:
            rec.setdefault("flags", []).append(f"short_shot:{int(row['num_frames'])}f")
    hidden = _flag_hidden_frames(records, rows, aligned.hidden_before_frame)
    t_pred = time.perf_counter() - t2
    return VideoReport(
        records=records,
        summary=_summary(p, records, n, fps, hidden_frames=hidden,
                         decoder_errors=log.errors, picture_changes=changes,
                         ref=(ref, ref_rule), video_streams=info.video_streams, pixel={
            "used_for": ("prediction+issues" if needs_pixel_features(names)
                         and not temporal_only(names) else "issues"),
            "frame_step": step,
            "frames": -(-n // step),
            "cut_pixel_step": cut_step,
            **({"temporal": {"used_for": "prediction+issues", "frames": n,
                             "pixel_step": temporal_step}} if temporal_step else {}),
        }),
        rows=rows,
        timings={
            "probe_s": t_probe,
            "decode_features_s": t_frames,
            "packets_s": float(box.get("t", 0.0)),
            "shots_predict_s": t_pred,
            "total_s": time.perf_counter() - t0,
        },
    )
