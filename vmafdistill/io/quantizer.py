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
import os
import re
import subprocess
from collections.abc import Iterable

import numpy as np

from .._ffmpeg import ffmpeg_exe, input_url, widen_pipe
from ..codecs import CODECS, canonical_codec

__all__ = [
    "AC_QLOOKUP_8BIT",
    "TRACE_CODECS",
    "QuantizerTraceError",
    "TraceQuantizerParser",
    "parse_trace_quantizers",
    "qindex_to_qp",
    "read_quantizers",
]

#: ffmpeg codec names whose headers carry a quantizer this module reads.
TRACE_CODECS: frozenset[str] = frozenset(c.ffmpeg_name for c in CODECS.values())

# A trace line is "[trace_headers @ 0x...] " then a packet line, a syntax element
# ("<bit position> <name> <bits> = <value>") or a section title. Only the elements read here
# are matched; titles are lines without "=" starting with a letter.
# One anchored scan per chunk: a trace line is "[trace_headers @ 0x...] " then a packet line, a
# parse error of the trace itself ("Error|Failed|Invalid ..."), a syntax element ("<bit
# position> <name> <bits> = <value>"; only the ones read here match) or a section title (a
# line without "=" starting with a letter).
_TRACE = re.compile(
    r"\n\[trace_headers @ [^\]]*\] (?:(Packet: [^\n]*)"
    r"|((?:Error|Failed|Invalid) [^\n]*)"
    r"|\d+\s+(pic_parameter_set_id|pps_pic_parameter_set_id|slice_pic_parameter_set_id"
    r"|pic_init_qp_minus26|init_qp_minus26|slice_qp_delta|base_q_idx)\s+[01]+ = (-?\d+)\s*$"
    r"|(?!Packet: )([A-Za-z][^=\n]*?)\s*$)",
    re.MULTILINE,
)
# The scan runs over "\n" + the text: a line start is the newline before it, matched as part
# of the pattern instead of with "^", so the regex engine can jump from one "\n[trace_headers"
# to the next (its literal prefix) instead of trying every character of the ~5 MB log of a
# minute of video (matches unchanged; ~4x less CPU for the scan, docs/benchmarks.md).

# ffmpeg (>= 6.1) logs "Error applying bitstream filters ..." for a packet the trace could not
# parse *without* a trailing newline, so the next packet's line arrives glued to it, without its
# "[trace_headers @ ...]" prefix. Rare (damaged streams only), so it is repaired before the scan,
# and only when the message occurs: the error becomes a trace error line (it marks the packet
# just read as unreadable) and the glued packet line gets its own line back.
_BSF_ERROR_TEXT = "Error applying bitstream filter"
_BSF_ERROR = re.compile(
    r"^[^\n]*Error applying bitstream filter[^\n]*?(?=Packet: \d+ bytes|$)", re.MULTILINE)
_BSF_ERROR_LINE = "[trace_headers @ bsf] Error applying bitstream filters\n[trace_headers @ bsf] "

_PTS = re.compile(r", pts (-?\d+)")

# PPS id fields (H.264, H.265) and the slice-header field naming the PPS a slice uses.
_PPS_ID = {"pic_parameter_set_id", "pps_pic_parameter_set_id"}
_SLICE_PPS_ID = {"pic_parameter_set_id", "slice_pic_parameter_set_id"}
_PPS_INIT_QP = {"pic_init_qp_minus26", "init_qp_minus26"}


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


class TraceQuantizerParser:
    """Streaming reader of ffmpeg's ``trace_headers`` log: :meth:`feed` it whole lines as they
    arrive (memory: one value per packet, not the log), then :meth:`packets` gives
    ``(pts, qp)`` per packet in decode order: the first slice's QP (H.264 / H.265), the mean of
    the frame headers' mapped q index (AV1 / VP9), NaN when the packet carries none.

    A slice naming a picture parameter set the log never showed gets NaN, not a guess.
    """

    def __init__(self, codec: str) -> None:
        try:
            reads: str | None = CODECS[canonical_codec(codec)].quantizer
        except ValueError:  # a codec no student reads: every packet's qp is NaN
            reads = None
        self._av1_like = reads == "q_index"
        self._slice_qp = reads == "slice_qp"
        self._out: list[tuple[int | None, float]] = []
        self._pts: int | None = None
        self._cur: list[float] | None = None
        self._bad = False
        #: packets whose headers ffmpeg could not read (their qp is NaN)
        self.unreadable = 0
        self._pps_init: dict[int, int] = {}
        self._in_pps = self._in_slice = False
        self._cur_pps_id: int | None = None
        self._slice_pps: int | None = None

    def _close(self) -> None:
        if self._cur is not None:
            if self._bad:
                self.unreadable += 1
            ok = self._cur and not self._bad
            cur = self._cur
            # one or two values: the same float as np.mean (x / 1, (a + b) / 2) without
            # building an array for every packet
            mean = (cur[0] if len(cur) == 1 else (cur[0] + cur[1]) / 2 if len(cur) == 2
                    else float(np.mean(cur))) if ok else math.nan
            self._out.append((self._pts, float(mean)))

    def feed(self, text: str) -> None:
        """Parse complete log lines (``text`` must end at a line boundary)."""
        if _BSF_ERROR_TEXT in text:
            text = _BSF_ERROR.sub(_BSF_ERROR_LINE, text)
        # one C-level scan per chunk (~30 syntax elements per frame, of which we read 1-3)
        for m in _TRACE.finditer("\n" + text):
            packet, error, name, value, title = m.groups()
            if packet:  # "Packet: N bytes[, key frame], pts P|no pts, dts ..."
                self._close()
                pts = _PTS.search(packet)
                self._pts = int(pts.group(1)) if pts else None
                self._cur = []
                self._bad = False
            elif error:
                if self._cur is not None:
                    self._bad = True
            elif title is not None:  # "Picture Parameter Set", "Slice Header", ...
                lowered = title.lower()
                self._in_pps = "picture parameter set" in lowered
                self._in_slice = "slice" in lowered
                self._cur_pps_id = self._slice_pps = None
            elif name == "base_q_idx":
                if self._av1_like and self._cur is not None:
                    self._cur.append(qindex_to_qp(int(value)))
            elif self._in_pps:
                if name in _PPS_ID:
                    self._cur_pps_id = int(value)
                elif name in _PPS_INIT_QP:
                    key = self._cur_pps_id if self._cur_pps_id is not None else 0
                    self._pps_init[key] = int(value)
            elif self._in_slice:
                if name in _SLICE_PPS_ID:
                    self._slice_pps = int(value)
                elif (name == "slice_qp_delta" and self._slice_qp and self._cur is not None
                      and not self._cur):  # the picture's first slice only (see module doc)
                    init = self._pps_init.get(
                        self._slice_pps if self._slice_pps is not None else 0)
                    self._cur.append(math.nan if init is None else 26.0 + init + int(value))

    def packets(self) -> list[tuple[int | None, float]]:
        """``(pts, qp)`` of every packet seen so far (call once the log is complete)."""
        self._close()
        self._cur = None
        self._bad = False
        return list(self._out)


def parse_trace_quantizers(log: str | Iterable[str], codec: str) -> list[float]:
    """The quantizer of each packet (decode order) of a complete ``trace_headers`` log (one
    string, or its lines): see :class:`TraceQuantizerParser`."""
    parser = TraceQuantizerParser(codec)
    parser.feed(log if isinstance(log, str) else "\n".join(log) + "\n")
    return [q for _, q in parser.packets()]


class QuantizerTraceError(RuntimeError):
    """ffmpeg could not trace the stream's headers (the message says why)."""


def _log_text(raw: bytes) -> str:
    """ffmpeg's log bytes as text, as a text-mode pipe gives them: UTF-8 (undecodable bytes
    replaced) with universal newlines (``\\r\\n`` and ``\\r`` read as ``\\n``)."""
    text = raw.decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _last_lines(text: str, k: int) -> list[str]:
    """``text.splitlines()[-k:]`` without splitting all of ``text`` (a 1 MB log block):
    only the part after its (k+1)-th last newline, itself a line boundary, is split."""
    cut = len(text)
    for _ in range(k + 1):
        cut = text.rfind("\n", 0, cut)
        if cut < 0:
            return text.splitlines()[-k:]
    return text[cut + 1 :].splitlines()[-k:]


def read_quantizers(path: str | os.PathLike[str], codec: str,
                    chunk_chars: int = 1 << 20) -> TraceQuantizerParser | None:
    """Trace the headers of ``path``'s first video stream with a decode-free ffmpeg pass
    (``-bsf:v trace_headers``), parsing the log as it streams; the returned parser's
    :meth:`~TraceQuantizerParser.packets` gives ``(pts, qp)`` per packet in decode order and
    its ``unreadable`` counts the packets whose headers ffmpeg rejected (their qp is NaN).

    None when the codec is not one of :data:`TRACE_CODECS` (no student reads other codecs).

    Raises:
        QuantizerTraceError: ffmpeg failed on the stream (its last messages included).
    """
    p = os.fspath(path)
    if codec not in TRACE_CODECS:
        return None
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
           "-i", input_url(p), "-map", "0:V:0", "-c", "copy", "-bsf:v", "trace_headers",
           "-f", "null", "-"]
    parser = TraceQuantizerParser(codec)
    tail: list[str] = []
    no_stream = False
    # Bytes in large reads, decoded a block of whole lines at a time (a text-mode pipe reads
    # and decodes 8 KB at a time: ~11000 calls for a minute of 360p video).
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        assert proc.stderr is not None
        widen_pipe(proc.stderr.fileno())
        parts: list[bytes] = []
        size = 0
        while True:
            data = proc.stderr.read1(chunk_chars)
            parts.append(data)
            size += len(data)
            if size < chunk_chars and data:
                continue
            raw = b"".join(parts)
            cut = raw.rfind(b"\n") + 1
            parts, size = [raw[cut:]], len(raw) - cut
            block = _log_text(raw[:cut])
            if block:
                parser.feed(block)
                lines = [ln for ln in _last_lines(block, 50)
                         if not ln.startswith("[trace_headers")]
                no_stream = no_stream or any("matches no streams" in ln for ln in lines)
                tail = lines[-3:] or tail
            if not data:
                break
        rest = _log_text(b"".join(parts))
        parser.feed(rest + "\n")
    if proc.returncode != 0:
        if no_stream:  # only cover art or audio: no video stream (as read_packets says)
            raise QuantizerTraceError(f"{p}: no video stream")
        raise QuantizerTraceError(" | ".join([*tail, rest.strip()][-3:]).strip(" |")
                                   or f"ffmpeg exit {proc.returncode}")
    return parser
