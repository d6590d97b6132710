"""The edge chain's options and the rules that turn them into per-video steps (torch-free).

:class:`EdgeOptions` holds the knobs (read from a model card's ``edge`` section);
:meth:`EdgeOptions.pixel_step`, :meth:`EdgeOptions.cut_step` and
:meth:`EdgeOptions.temporal_step` choose, for a student's input features and a video's size,
which frames get pixel features and at which pixel step; :func:`needs_pixel_features`,
:func:`temporal_only` and :func:`needs_quantizer` say what a student reads, and
:func:`default_ref_size` which reference size a delivery is compared at.

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
  (``temporal_diff`` / ``temporal_std``, e.g. the shipped ``mbquant_ti7``), those two on *every*
  frame from every s-th row and column of each frame pair (exact integer sums on the
  subsample; :func:`~vmafdistill.features.frame_numpy.temporal_features`). 0 (exported cards'
  default) = automatic, >= :data:`TEMPORAL_MIN_SAMPLES` samples per frame; its effect on the
  shipped student's predictions is measured in docs/edge.md.

A step given for either is capped per video at :func:`max_pixel_step` (>= a 64x36 grid of
samples per frame); the summary records the step used.

A student whose card lists no pixel feature (e.g. ``rate7``: stream metadata only) needs no
pixel feature for its *prediction*; then the pixel features only feed the quality token's
``issue`` heuristic and are computed on every ``issue_frame_step``-th frame (default 8, card
``edge.issue_frame_step``), each with its true previous frame; the prediction is unchanged
(it never reads them) and every frame still feeds the cut detector (8-bit histograms). A
temporal-only student is the same, plus the every-frame temporal pass above. The summary's
``pixel_features`` says which frames were measured and what for.

``threads``, ``decode_threads``, ``prefetch``, ``chunk`` and ``decoder`` change speed only,
never results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..features.frame_numpy import FEATURE_NAMES, TEMPORAL_FEATURES
from ..features.registry import MB_QUANTIZER_FEATURES, QUANTIZER_FEATURES, inputs_read
from .tokens import is_whole_number

__all__ = [
    "CUT_MIN_SAMPLES",
    "DECODERS",
    "INT_OPTIONS",
    "STEP_FLOOR_SAMPLES",
    "TEMPORAL_MIN_SAMPLES",
    "EdgeOptions",
    "auto_cut_step",
    "auto_temporal_step",
    "default_ref_size",
    "max_pixel_step",
    "needs_mb_quantizer",
    "needs_pixel_features",
    "needs_quantizer",
    "temporal_only",
]


#: ``EdgeOptions.decoder`` values: the same pixels and block QPs either way.
DECODERS = ("auto", "ffmpeg")

#: The whole-number options of :class:`EdgeOptions` (a card's ``edge`` keys).
INT_OPTIONS = ("frame_step", "shot_pixel_step", "issue_frame_step", "temporal_pixel_step",
               "chunk", "threads", "decode_threads", "prefetch")


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
    ``prefetch`` (decoded chunks queued ahead) and ``chunk`` only change speed; so does
    ``decoder`` (:data:`DECODERS`): ``auto`` decodes an 8-bit H.264 stream in-process when the
    student reads its block QPs (one decode for pixels and QPs, :mod:`.pyav_decode`), ``ffmpeg``
    always pipes from ffmpeg (the block QPs then come from a second, partial decode).
    """

    frame_step: int = 1
    shot_pixel_step: int = 0
    issue_frame_step: int = 8
    temporal_pixel_step: int = 1
    chunk: int = 64
    threads: int = 1
    decode_threads: int = 0
    prefetch: int = 2
    decoder: str = "auto"
    shots: Mapping[str, Any] = field(default_factory=dict)  # ShotDetector keyword arguments

    def __post_init__(self) -> None:
        bad = [f"{name} must be >= {low}, got {value}" for low, names in (
            (1, ("frame_step", "issue_frame_step", "chunk", "threads", "prefetch")),
            (0, ("decode_threads", "shot_pixel_step", "temporal_pixel_step")))
            for name in names if (value := getattr(self, name)) < low]
        if bad:  # each setting named (the whole options' repr was dumped)
            raise ValueError("edge options: " + "; ".join(bad))
        from ..shots import checked_shot_settings

        # a hand-edited card's unknown shot key crashed the decode with a TypeError
        object.__setattr__(self, "shots", checked_shot_settings("edge.shots", self.shots))
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got "
                             f"{self.decoder!r}")

    @classmethod
    def from_card(cls, edge: Mapping[str, Any] | None, **overrides: Any) -> EdgeOptions:
        """Options from a model card's ``edge`` section; ``overrides`` that are not None win.

        Keys a card lacks (cards exported before the key existed) keep the defaults above.
        ValueError naming ``edge.<key>`` for a value that is not a whole number (text, a bool,
        2.5: int() cut it to 2) or a decoder that is not text.
        """
        edge = dict(edge or {})
        kw: dict[str, Any] = {}
        for k in INT_OPTIONS:
            value = edge.get(k)
            if value is None:
                continue
            if not is_whole_number(value):
                raise ValueError(f"edge.{k}={value!r}: needs a whole number")
            kw[k] = int(value)
        if edge.get("decoder") is not None:
            if not isinstance(edge["decoder"], str):
                raise ValueError(f"edge.decoder={edge['decoder']!r}: needs one of "
                                 f"{', '.join(DECODERS)}")
            kw["decoder"] = edge["decoder"]
        kw["shots"] = dict(edge.get("shots") or {})
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)

    def cut_step(self, width: int, height: int, pixel_step: int | None = None) -> int:
        """The cut-histogram pixel step for frames of this size: ``shot_pixel_step`` if set;
        else 1 when every frame gets pixel features anyway (``pixel_step`` 1: their
        full-resolution histograms come free), else the automatic :func:`auto_cut_step`."""
        if self.shot_pixel_step:
            return min(self.shot_pixel_step, max_pixel_step(width, height))
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
        if self.temporal_pixel_step:
            return min(self.temporal_pixel_step, max_pixel_step(width, height))
        return auto_temporal_step(width, height)


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


#: A pixel step given by hand is capped where it would leave fewer samples per frame than a
#: 64x36 grid: a step of 5000 measured one pixel of a 640x360 frame, cut 12 shots into 14 and
#: moved a prediction by 5.8 VMAF with no flag. The summary records the step used.
STEP_FLOOR_SAMPLES = 64 * 36


def max_pixel_step(width: int, height: int) -> int:
    """The largest pixel step a caller may ask for at this frame size (>= 1; see
    :data:`STEP_FLOOR_SAMPLES`)."""
    return auto_cut_step(width, height, STEP_FLOOR_SAMPLES)


def temporal_only(feature_names: Sequence[str]) -> bool:
    """Whether a student reads pixel features and all of them are temporal ones."""
    pixel = [n for n in inputs_read(feature_names) if n in FEATURE_NAMES]
    return bool(pixel) and all(n in TEMPORAL_FEATURES for n in pixel)


def needs_quantizer(feature_names: Sequence[str]) -> bool:
    """Whether a student reads the encoder's quantizer (then the packet pass also logs every
    packet's headers, :mod:`vmafdistill.io.quantizer`; ~0.1 s per 1500 frames)."""
    return any(n in QUANTIZER_FEATURES for n in inputs_read(feature_names))


def needs_mb_quantizer(feature_names: Sequence[str]) -> bool:
    """Whether a student reads the macroblock quantizer (then the packet pass also decodes an
    H.264 stream's I/P frames in-process for their block QPs, :mod:`vmafdistill.io.mb_quantizer`;
    ~0.32 s CPU per 1500 frames of 640x360, beside the pixel decode)."""
    return any(n in MB_QUANTIZER_FEATURES for n in inputs_read(feature_names))


def needs_pixel_features(feature_names: Sequence[str]) -> bool:
    """Whether a student with these input features reads any decoded-pixel feature."""
    return any(n in FEATURE_NAMES for n in inputs_read(feature_names))


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
