"""What the project knows about each codec family, in one table.

A family's name (``h264``) is what ladder configs, corpus rows, cards and the ``codec_<family>``
student flags use. The encoder, the stream-quantizer reader, the block-QP reader and the name
aliases all read this table. Adding a codec starts with one :class:`Codec` entry here; what
else it may need (constant-quality encoder options, a header-quantizer branch in
:mod:`vmafdistill.io.quantizer`, its flag in a feature set and a retrained student) is listed
in docs/corpus.md, "Adding a codec".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = ["CODECS", "CODEC_FAMILIES", "X26X_PRESETS", "Codec", "canonical_codec"]

#: x264's and x265's presets (both take the same names).
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")


@dataclass(frozen=True)
class Codec:
    """One codec family: how the corpus encodes it and how the edge reads its streams."""

    #: the family name (``h264``)
    family: str
    #: ffmpeg's encoder for corpus ladders
    encoder: str
    #: encoder options that make a rerun reproduce the same bitstream (one thread)
    encoder_args: tuple[str, ...]
    #: the encode's container extension
    ext: str
    #: the highest CRF the encoder takes (x264 and x265 clamp above it, SVT-AV1 and libvpx
    #: refuse)
    crf_max: int
    #: ffmpeg's codec name for the family's streams (``hevc``), as probes and PyAV report it
    ffmpeg_name: str
    #: what the stream quantizer reader (:mod:`vmafdistill.io.quantizer`) reads in the
    #: ``trace_headers`` log: the first slice's QP, or the frame header's q index
    quantizer: Literal["slice_qp", "q_index"]
    #: the ``-preset`` names a ladder rung may choose (None: the encoder's preset is fixed)
    presets: tuple[str, ...] | None
    #: the preset every rung of this family is encoded at (None: the encoder's default)
    fixed_preset: str | None = None
    #: whether ffmpeg's decoder exports per-block QPs (``AVVideoEncParams``) for it
    block_qp: bool = False
    #: the lowest CRF the encoder takes (libvpx's VP8 refuses below 4)
    crf_min: int = 0
    #: other spellings of the family: encoders, decoders, container tags
    aliases: tuple[str, ...] = ()


_TABLE = (
    Codec("h264", "libx264", ("-x264-params", "threads=1"), "mp4", 51, "h264", "slice_qp",
          X26X_PRESETS, block_qp=True,
          aliases=("avc", "avc1", "x264", "libx264", "h.264")),
    Codec("h265", "libx265", ("-x265-params", "pools=1:frame-threads=1:log-level=error"), "mp4",
          51, "hevc", "slice_qp", X26X_PRESETS,
          aliases=("hevc", "hvc1", "hev1", "x265", "libx265", "h.265")),
    Codec("av1", "libsvtav1", ("-svtav1-params", "lp=1"), "mp4", 63, "av1", "q_index", None,
          fixed_preset="8",
          aliases=("av01", "libsvtav1", "libaom-av1", "librav1e", "libdav1d", "svtav1")),
    Codec("vp9", "libvpx-vp9", ("-threads", "1", "-b:v", "0"), "webm", 63, "vp9", "q_index",
          None, aliases=("vp09", "libvpx-vp9")),
)

#: Family name -> :class:`Codec`, in the order of the ``codec_<family>`` flags.
CODECS: Mapping[str, Codec] = MappingProxyType({c.family: c for c in _TABLE})
#: The family names, in flag order.
CODEC_FAMILIES: tuple[str, ...] = tuple(CODECS)

_ALIASES: dict[str, str] = {
    alias: c.family for c in _TABLE for alias in (c.family, c.ffmpeg_name, *c.aliases)}


def canonical_codec(codec: str) -> str:
    """Codec family (one of :data:`CODEC_FAMILIES`) of an encoder/decoder/codec name, e.g.
    ``hevc``; ValueError names the known families."""
    family = _ALIASES.get(str(codec).strip().lower())
    if family is None:
        raise ValueError(f"unknown codec {codec!r}; known families: {', '.join(CODECS)}")
    return family
