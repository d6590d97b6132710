"""The encoder's quantizer per frame, read from the bitstream's headers (no decoding, torch-free).

At equal codec, scale and rate-control setting, VMAF varies by 10-25 points across content, and
the bitrate cannot say why: easy content is cheap *and* good. The quantizer the encoder chose is
the missing piece: it is what a CRF rate control actually sets, and it sits in every slice or
frame header (docs/results.md, "encoder quantizer").

ffmpeg's ``trace_headers`` bitstream filter parses the headers with libavcodec's coded-bitstream
readers and logs every syntax element; ``ffmpeg -c copy -bsf:v trace_headers`` therefore reads
them without decoding a pixel. This module turns that log into one number per packet:

* H.264 / H.265: the mean over the packet's slices of ``SliceQpY = 26 + init_qp_minus26 (PPS) +
  slice_qp_delta`` (the slice's base QP; per-block adaptive-quantisation offsets are not in the
  headers and average out over a frame).
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

_FIELD = re.compile(r"\s(\w+)(?:\[[\d\]\[]*\])?\s+[01]+ = (-?\d+)\s*$")
_PACKET = re.compile(r"Packet: (\d+) bytes")

# PPS id fields (H.264, H.265) and the slice-header field naming the PPS a slice uses.
_PPS_ID = {"pic_parameter_set_id", "pps_pic_parameter_set_id"}
_SLICE_PPS_ID = {"pic_parameter_set_id", "slice_pic_parameter_set_id"}
_PPS_INIT_QP = {"pic_init_qp_minus26", "init_qp_minus26"}


class PacketQuantizers(list):
    """Per packet (decode order) the mean quantizer in H.264 QP units, NaN when it has none."""


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
    step is not equal quality across codecs); records of codecs a student never saw are
    flagged ``unseen_codec`` anyway.
    """
    q = float(qindex)
    if not math.isfinite(q):
        return math.nan
    ac_q = float(AC_QLOOKUP_8BIT[int(min(max(round(q), 0), 255))])
    return 6.0 * math.log2(ac_q / 8.0 / 0.625)


def parse_trace_quantizers(lines: Iterable[str], codec: str) -> PacketQuantizers:
    """Mean quantizer per packet (decode order) from ffmpeg ``trace_headers`` log lines.

    Args:
        lines: stderr lines of ``ffmpeg -loglevel info ... -bsf:v trace_headers``; lines from
            other loggers are ignored.
        codec: the stream's codec (ffmpeg's ``h264``, ``hevc``, ``av1``, ``vp9``, or the
            family name ``h265``); any other codec gives NaN for every packet.

    Returns:
        One float per ``Packet:`` line, in the order ffmpeg logged them (decode order).
    """
    out = PacketQuantizers()
    per_packet: list[float] | None = None
    pps_init: dict[int, int] = {}
    section = ""
    cur_pps_id: int | None = None
    slice_pps: int | None = None
    codec = {"hevc": "h265"}.get(codec, codec)
    av1_like = codec in ("av1", "vp9")
    for line in lines:
        if " = " in line:
            # a syntax element; skip the ~30 per frame we do not read before any regex
            if not ("qp" in line or "parameter_set_id" in line or "base_q_idx" in line):
                continue
        elif "trace_headers" not in line:
            continue
        elif _PACKET.search(line):
            if per_packet is not None:
                out.append(float(np.mean(per_packet)) if per_packet else math.nan)
            per_packet = []
            continue
        f = _FIELD.search(line) if " = " in line else None
        if f is None:  # a section title: "Picture Parameter Set", "Slice Header", ...
            section = line.rsplit("]", 1)[-1].strip().lower()
            cur_pps_id = None
            slice_pps = None
            continue
        name, value = f.group(1), int(f.group(2))
        if av1_like:
            if name == "base_q_idx" and per_packet is not None:
                per_packet.append(qindex_to_qp(value))
            continue
        if "picture parameter set" in section:
            if name in _PPS_ID:
                cur_pps_id = value
            elif name in _PPS_INIT_QP:
                pps_init[cur_pps_id if cur_pps_id is not None else 0] = value
        elif "slice" in section:
            if name in _SLICE_PPS_ID:
                slice_pps = value
            elif name == "slice_qp_delta" and per_packet is not None and codec in (
                    "h264", "h265"):
                init = pps_init.get(slice_pps if slice_pps is not None else 0,
                                    next(iter(pps_init.values()), 0))
                per_packet.append(26.0 + init + value)
    if per_packet is not None:
        out.append(float(np.mean(per_packet)) if per_packet else math.nan)
    return out
