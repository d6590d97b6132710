"""The bytes of each frame's coded picture, the same in every container (torch-free).

A container's packet sizes are not the encoder's picture sizes: MPEG-TS, HLS segments and raw
Annex B streams repeat the parameter sets before every keyframe and add an access-unit
delimiter to every frame, and x265's option string (a 2.3 KB SEI) travels with its parameter
sets, which MP4 and Matroska keep once in the sample description. The same H.265 encode reads
~2 % more bits in MPEG-TS than in MP4, and a rate feature would see another encode.

A frame's *picture bytes* are therefore counted unit by unit, leaving out what a container may
repeat or add, and counting every H.264/H.265 NAL unit with a 4-byte framing (MP4's length
field; an Annex B start code may be 3 or 4 bytes):

- Every H.264/H.265 NAL unit counts 4 bytes of framing, whatever its container wrote (a
  4-, 2- or 1-byte length field, a 3- or 4-byte start code).
- H.264: without SPS, PPS, subset SPS, SPS extension (7, 8, 15, 13), access-unit delimiters
  (9), end of sequence/stream (10, 11) and filler data (12). SEI stays: x264 writes its own
  once, in the first frame, in every container.
- H.265: without VPS, SPS, PPS (32-34), delimiters (35), end of sequence/bitstream (36, 37),
  filler (38) and SEI (39, 40): x265's SEI goes where its parameter sets go.
- AV1: without temporal delimiters (OBU type 2: IVF and Section 5 streams carry one per
  frame, MP4 and Matroska none) and padding (15); sequence headers stay (every container
  carries them in keyframes).

For the packets ffmpeg's libx264, libx265 and libsvtav1 write into MP4 (the corpus's encodes)
the picture bytes equal the packet sizes: the rate features of every corpus built before are
unchanged. Other codecs: the packet size.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from typing import BinaryIO, NamedTuple

import numpy as np

from .._ffmpeg import ffmpeg_exe, input_url

__all__ = [
    "PICTURE_CODECS",
    "PictureBytes",
    "PictureBytesError",
    "picture_bytes",
    "read_picture_bytes",
]

#: NAL unit / OBU types a frame's picture bytes leave out, by ffmpeg codec name.
DROPPED_UNIT_TYPES: dict[str, frozenset[int]] = {
    "h264": frozenset({7, 8, 9, 10, 11, 12, 13, 15}),
    "hevc": frozenset(range(32, 41)),
    "av1": frozenset({2, 15}),
}
PICTURE_CODECS: frozenset[str] = frozenset(DROPPED_UNIT_TYPES)
#: bytes counted for a NAL unit's framing (an MP4 length field)
NAL_FRAMING_BYTES = 4

_START3 = b"\x00\x00\x01"


class PictureBytesError(ValueError):
    """A packet's units cannot be told apart (neither length-prefixed nor Annex B)."""


class PictureBytes(NamedTuple):
    """What :func:`read_picture_bytes` read."""

    sizes: np.ndarray  #: (N,) int64 picture bytes per packet, demux order
    #: packets whose units could not be read (a damaged stream, a packet cut short): each
    #: counts its packet size
    unreadable: int
    first_problem: str | None  #: the first such packet's problem, for a warning


def _nal_type(codec: str, first: int) -> int:
    return first & 0x1F if codec == "h264" else (first >> 1) & 0x3F


def _length_prefixed_units(packet: bytes, length_size: int) -> list[tuple[int, int]] | None:
    """``(start, end)`` of each NAL unit's payload when ``length_size``-byte lengths tile
    ``packet`` exactly (and every unit's forbidden bit is 0); None otherwise."""
    units = []
    pos, n = 0, len(packet)
    while pos < n:
        if pos + length_size > n:
            return None
        size = int.from_bytes(packet[pos:pos + length_size], "big")
        start, end = pos + length_size, pos + length_size + size
        if size == 0 or end > n or packet[start] & 0x80:
            return None
        units.append((start, end))
        pos = end
    return units


def _annexb_units(packet: bytes) -> list[tuple[int, int]] | None:
    """``(start, end)`` of each NAL unit's payload between start codes, trailing zero bytes
    (a 4-byte start code's zero_byte, trailing_zero_8bits) left out; None without a leading
    start code."""
    first = packet.find(_START3)
    if first < 0 or packet[:first].strip(b"\x00"):
        return None
    units = []
    start = first + 3
    while start <= len(packet):
        nxt = packet.find(_START3, start)
        end = len(packet) if nxt < 0 else nxt
        stop = end
        while stop > start and packet[stop - 1] == 0:
            stop -= 1
        if stop > start:
            units.append((start, stop))
        if nxt < 0:
            break
        start = nxt + 3
    return units


def _leb128(packet: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos + i >= len(packet):
            raise PictureBytesError("an OBU size runs past the packet")
        byte = packet[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise PictureBytesError("an OBU size longer than 8 bytes")


def _av1_picture_bytes(packet: bytes) -> int:
    kept, pos, n = 0, 0, len(packet)
    dropped = DROPPED_UNIT_TYPES["av1"]
    while pos < n:
        header = packet[pos]
        if header & 0x80:
            raise PictureBytesError("an OBU header with its forbidden bit set")
        obu_type = (header >> 3) & 0xF
        body = pos + 1 + ((header >> 2) & 1)  # obu_extension_flag: one more header byte
        if header & 0x2:  # obu_has_size_field
            size, body = _leb128(packet, body)
            end = body + size
        else:  # the last OBU of the packet
            end = n
        if end > n:
            raise PictureBytesError("an OBU runs past the packet")
        if obu_type not in dropped:
            kept += end - pos
        pos = end
    return kept


def picture_bytes(packet: bytes, codec: str, framing: str | None = None) -> int:
    """The picture bytes of one packet of ``codec`` (ffmpeg's name; see the module docs).
    ``framing``: ``"length"`` or ``"annexb"`` where the stream's is known (its other packets').

    Raises:
        PictureBytesError: the packet's units cannot be read.
    """
    return _framed_picture_bytes(packet, codec, framing)[0]


def _framed_picture_bytes(packet: bytes, codec: str,
                          framing: str | None) -> tuple[int, str | None]:
    """:func:`picture_bytes` and the framing its H.264/H.265 units were read in."""
    if codec not in DROPPED_UNIT_TYPES or not packet:
        return len(packet), framing
    if codec == "av1":
        return _av1_picture_bytes(packet), framing
    units, framing = _nal_units(packet, framing)
    dropped = DROPPED_UNIT_TYPES[codec]
    return sum(NAL_FRAMING_BYTES + end - start for start, end in units
               if _nal_type(codec, packet[start]) not in dropped), framing


def _nal_units(packet: bytes, framing: str | None) -> tuple[list[tuple[int, int]], str]:
    """The packet's NAL units and their framing. Length-prefixed first: a 4-byte length of
    256-511 bytes begins 00 00 01, as a start code does; lengths that tile the packet exactly
    are no Annex B stream. The sample description may declare 2- or 1-byte lengths (valid,
    rare); an Annex B packet begins 00 00, a zero length, so it never tiles as those. In a
    length-prefixed stream a packet that does not tile is unreadable, not Annex B (a packet
    cut short read its 00 00 01 2A length as a start code, and 0 bytes, unsaid)."""
    if framing != "annexb":
        for length_size in (4, 2, 1):
            units = _length_prefixed_units(packet, length_size)
            if units is not None:
                return units, "length"
        if framing == "length":
            raise PictureBytesError("its NAL lengths do not tile it (cut short?)")
    units = _annexb_units(packet)
    if units is None:
        raise PictureBytesError("neither 4-, 2- or 1-byte NAL lengths nor Annex B start codes")
    return units, "annexb"


def _packets_picture_bytes(stream: BinaryIO, sizes: Sequence[int], codec: str,
                           where: str) -> PictureBytes:
    out = np.empty(len(sizes), dtype=np.int64)
    unreadable, first = 0, None
    # the stream's framing: length-prefixed once a packet tiles so (an Annex B-looking first
    # packet, damaged or odd, fixed "annexb" for all and misread every 256-511-byte length)
    framing: str | None = None
    for i, size in enumerate(sizes):
        packet = stream.read(int(size))
        if len(packet) != size:
            raise PictureBytesError(f"{where}: the stream copy ended at packet {i + 1} of "
                                    f"{len(sizes)}")
        try:
            out[i], read_as = _framed_picture_bytes(packet, codec, framing)
            framing = "length" if read_as == "length" else framing
        except PictureBytesError as exc:  # a damaged packet: its size is the best guess
            out[i] = size
            unreadable += 1
            first = first or f"packet {i + 1}: {exc}"
    if stream.read(1):
        raise PictureBytesError(f"{where}: the stream copy holds more bytes than its "
                                f"{len(sizes)} packets")
    return PictureBytes(out, unreadable, first)


def read_picture_bytes(path: str | os.PathLike[str], codec: str,
                       sizes: Sequence[int]) -> PictureBytes:
    """Picture bytes of each packet of ``path``'s first video stream, in demux order from
    its first keyframe (``sizes``: those packets' sizes, as ffmpeg's stream copy lists them),
    from a decode-free ffmpeg pass that copies the packets out as they are. A packet whose
    units cannot be read counts its size (:attr:`PictureBytes.unreadable` counts them).

    Raises:
        PictureBytesError: ffmpeg fails, or the copy does not hold those packets.
    """
    p = os.fspath(path)
    if codec not in DROPPED_UNIT_TYPES:
        return PictureBytes(np.asarray(sizes, dtype=np.int64).copy(), 0, None)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
           "-i", input_url(p), "-map", "0:V:0", "-c", "copy", "-f", "data", "-"]
    # stderr to a file: a damaged stream's messages must not fill a pipe nobody reads yet
    with tempfile.TemporaryFile() as log, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log) as proc:
        assert proc.stdout is not None
        mismatch: PictureBytesError | None = None
        try:
            out = _packets_picture_bytes(proc.stdout, sizes, codec, p)
        except PictureBytesError as exc:
            mismatch = exc
            while proc.stdout.read(1 << 20):  # let ffmpeg finish: its own error says more
                pass
        finally:
            proc.stdout.close()
            proc.wait()
            log.seek(0)
            err = log.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = " | ".join(err.strip().splitlines()[-3:]) or f"exit {proc.returncode}"
        raise PictureBytesError(f"{p}: cannot copy the video packets ({tail})")
    if mismatch is not None:
        raise mismatch
    return out
