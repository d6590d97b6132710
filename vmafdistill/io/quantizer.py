"""The encoder's quantizer per frame, read from the bitstream's headers (no decoding, torch-free).

At equal codec, scale and rate-control setting, VMAF varies by 10-25 points across content, and
the bitrate cannot say why: easy content is cheap *and* good. The quantizer the encoder chose is
the missing piece: it is what a CRF rate control actually sets, and it sits in every slice or
frame header (docs/results.md, "encoder quantizer").

ffmpeg's ``trace_headers`` bitstream filter parses the headers with libavcodec's coded-bitstream
readers and logs every syntax element; ``ffmpeg -c copy -bsf:v trace_headers`` therefore reads
them without decoding a pixel. This module turns that log into one number per packet:

* H.264 / H.265: ``SliceQpY = 26 + init_qp_minus26 (PPS) + slice_qp_delta`` of the picture's
  first slice: the frame QP the rate control chose. Per-block adaptive-quantisation offsets are
  not in the headers, and an encoder that cuts a picture into several slices may start the
  later ones at any block's QP (x264 with ``slices=4`` started slices 2-4 of a CRF 28 I-frame
  at QP 15 while its first slice, and the same frame encoded as one slice, say 28), so only the
  first slice of each packet is read.
* AV1 / VP9: ``base_q_idx`` (0..255) of every frame header in the packet (a packet may carry
  hidden frames), mapped to the H.264 QP whose quantiser step is closest (:func:`qindex_to_qp`),
  so one student reads every codec on one scale. A packet that only re-shows a decoded frame
  carries no quantizer (NaN).

H.264 and H.265 share the quantiser-step law (step doubles every 6 QP), so their QPs are on one
scale already; 10-bit streams use the same ``SliceQpY`` range as 8-bit ones at the same relative
step, so no bit-depth offset is applied.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np

__all__ = [
    "AC_QLOOKUP_8BIT",
    "TRACE_ARGS",
    "PacketQuantizers",
    "parse_trace_quantizers",
    "qindex_to_qp",
]

#: ffmpeg output options that log the headers of the first video stream's packets.
TRACE_ARGS: tuple[str, ...] = ("-bsf:v", "trace_headers")

# A trace line is "[trace_headers @ 0x...] " then a packet line, a syntax element
# ("<bit position> <name> <bits> = <value>") or a section title. Only the elements read here
# are matched; titles are lines without "=" starting with a letter.
_TRACE = re.compile(
    r"^\[trace_headers @ [^\]]*\] (?:(Packet: )"
    r"|\d+\s+(pic_parameter_set_id|pps_pic_parameter_set_id|slice_pic_parameter_set_id"
    r"|pic_init_qp_minus26|init_qp_minus26|slice_qp_delta|base_q_idx)\s+[01]+ = (-?\d+)\s*$"
    r"|([A-Za-z][^=\n]*?)\s*$)",
    re.MULTILINE,
)

# PPS id fields (H.264, H.265) and the slice-header field naming the PPS a slice uses.
_PPS_ID = {"pic_parameter_set_id", "pps_pic_parameter_set_id"}
_SLICE_PPS_ID = {"pic_parameter_set_id", "slice_pic_parameter_set_id"}
_PPS_INIT_QP = {"pic_init_qp_minus26", "init_qp_minus26"}


class PacketQuantizers(list):
    """Per packet (decode order) the quantizer in H.264 QP units, NaN when it has none."""


# The AV1 / VP9 8-bit AC quantiser table (``ac_qlookup``, identical in both specifications),
# written as its first entry and then (step, count) runs: 4, then +4 once, +1 94 times, +2 25
# times, ... up to 1828 at q index 255.
_AC_RUNS: tuple[tuple[int, int], ...] = (
    (4, 1), (1, 94), (2, 25), (3, 17), (4, 13), (5, 10), (6, 9), (7, 7), (8, 6), (9, 6),
    (10, 5), (11, 5), (12, 4), (13, 4), (14, 4), (15, 3), (16, 3), (17, 3), (18, 3), (19, 3),
    (20, 2), (21, 3), (22, 2), (23, 2), (24, 2), (25, 2), (26, 2), (27, 2), (28, 2), (29, 2),
    (30, 2), (31, 1), (32, 2), (33, 1), (34, 2), (35, 1),
)
AC_QLOOKUP_8BIT: np.ndarray = np.cumsum([4] + [step for step, n in _AC_RUNS for _ in range(n)])


def qindex_to_qp(qindex: float) -> float:
    """H.264-equivalent QP of an AV1 / VP9 ``base_q_idx`` (0..255), by equal quantiser step.

    H.264's step is ``0.625 * 2 ** (qp / 6)``; the AV1 / VP9 AC quantiser ``ac_q`` is in units
    8x finer (``ac_q / 8`` runs 0.5 -> 228.5 over the table, H.264's step 0.625 -> 224 over QP
    0..51), so the equivalent QP is ``6 * log2(ac_q / 8 / 0.625)``. The index addresses the
    8-bit table for every bit depth: the 10- and 12-bit tables scale it by ~4 and ~16 for
    samples 4 and 16 times larger, i.e. the same relative step. Approximate by design (equal
    step is not equal quality across codecs): a student trained on these codecs' rungs learns
    each codec's offset through its codec flag.
    """
    q = float(qindex)
    if not math.isfinite(q):
        return math.nan
    ac_q = float(AC_QLOOKUP_8BIT[int(min(max(round(q), 0), 255))])
    return 6.0 * math.log2(ac_q / 8.0 / 0.625)


def parse_trace_quantizers(log: str | Iterable[str], codec: str) -> PacketQuantizers:
    """The quantizer of each packet (decode order) from ffmpeg's ``trace_headers`` log: its
    first slice's QP (H.264 / H.265), the mean of its frame headers' mapped q index (AV1 / VP9).

    Args:
        log: stderr of ``ffmpeg -loglevel info ... -bsf:v trace_headers`` (one string, or its
            lines); lines from other loggers are ignored.
        codec: the stream's codec (ffmpeg's ``h264``, ``hevc``, ``av1``, ``vp9``, or the
            family name ``h265``); any other codec gives NaN for every packet.

    Returns:
        One float per ``Packet:`` line, in the order ffmpeg logged them (decode order).
    """
    text = log if isinstance(log, str) else "\n".join(log)
    codec = {"hevc": "h265"}.get(codec, codec)
    av1_like = codec in ("av1", "vp9")
    slice_qp = codec in ("h264", "h265")
    out = PacketQuantizers()
    per_packet: list[float] | None = None
    pps_init: dict[int, int] = {}
    in_pps = in_slice = False
    cur_pps_id: int | None = None
    slice_pps: int | None = None
    # one C-level scan over the whole log (~30 syntax elements per frame, of which we read 1-3)
    for m in _TRACE.finditer(text):
        packet, name, value, title = m.groups()
        if packet:
            if per_packet is not None:
                out.append(float(np.mean(per_packet)) if per_packet else math.nan)
            per_packet = []
        elif title is not None:  # "Picture Parameter Set", "Slice Header", ...
            lowered = title.lower()
            in_pps = "picture parameter set" in lowered
            in_slice = "slice" in lowered
            cur_pps_id = slice_pps = None
        elif name == "base_q_idx":
            if av1_like and per_packet is not None:
                per_packet.append(qindex_to_qp(int(value)))
        elif in_pps:
            if name in _PPS_ID:
                cur_pps_id = int(value)
            elif name in _PPS_INIT_QP:
                pps_init[cur_pps_id if cur_pps_id is not None else 0] = int(value)
        elif in_slice:
            if name in _SLICE_PPS_ID:
                slice_pps = int(value)
            elif (name == "slice_qp_delta" and slice_qp and per_packet is not None
                  and not per_packet):  # the picture's first slice only (see module doc)
                init = pps_init.get(slice_pps if slice_pps is not None else 0,
                                    next(iter(pps_init.values()), 0))
                per_packet.append(26.0 + init + int(value))
    if per_packet is not None:
        out.append(float(np.mean(per_packet)) if per_packet else math.nan)
    return out
