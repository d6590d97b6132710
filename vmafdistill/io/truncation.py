"""Whether a local MPEG-TS or AVI file ends where its container says it does.

ffmpeg reads these two cut short without a word: its MPEG-TS demuxer drops a partial last PES
(the frames in it are gone, and a B-frame hole can move the rate the file is read at), and its
AVI demuxer reads what is there although the RIFF header declares more. Other containers say
so themselves (MP4: a missing ``moov`` or NAL-size decoder errors; Matroska: "File ended
prematurely"). A file cut exactly at a TS packet boundary cannot be told from a whole one.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

__all__ = ["TS_PACKET", "file_truncation", "ts_packet_size", "ts_truncation"]

TS_PACKET = 188
#: Blu-ray's M2TS: a 4-byte arrival time stamp before each 188-byte TS packet.
M2TS_PACKET = 192
_SYNC = 0x47
#: A RIFF size an AVI writer that could not seek back leaves (a pipe, a live recording).
_RIFF_UNKNOWN = (0, 0xFFFFFFFF)


def ts_packet_size(head: bytes) -> int | None:
    """188 or 192 when ``head`` (the file's first >= 2 packets) opens an MPEG-TS / M2TS
    stream (a sync byte at the start of two packets in a row), else None."""
    for packet, offset in ((TS_PACKET, 0), (M2TS_PACKET, 4)):
        if (len(head) > packet + offset and head[offset] == _SYNC
                and head[packet + offset] == _SYNC):
            return packet
    return None


def ts_truncation(fh: BinaryIO, start: int, size: int, packet: int = TS_PACKET) -> str | None:
    """What is wrong with the end of the MPEG-TS bytes ``[start, start + size)`` of ``fh``
    (whole ``packet``-byte packets, the last opening with its sync byte), or None."""
    if size % packet:
        return f"truncated ({size} bytes: not whole {packet}-byte MPEG-TS packets)"
    last = start + size - packet + (packet - TS_PACKET)  # M2TS: past the time stamp
    fh.seek(last)
    if fh.read(1) != bytes([_SYNC]):
        return f"not MPEG-TS at byte {last} (no sync byte)"
    return None


def _ts_end_truncation(fh: BinaryIO, size: int, packet: int) -> str | None:
    """A TS file cut short, judged by its end: whole packets end it when a sync byte opens each
    of its last two packets counted back from the end (bytes lost mid-file, a damage the
    decoder reports, leave the end whole; a size count from byte 0 called that truncated)."""
    offset = packet - TS_PACKET  # M2TS: the sync byte follows a 4-byte time stamp
    if size < 2 * packet:
        return None
    for k in (1, 2):
        fh.seek(size - k * packet + offset)
        if fh.read(1) != bytes([_SYNC]):
            return (f"truncated (its last {packet}-byte MPEG-TS packet is cut short: no sync "
                    f"byte {k * packet - offset} bytes before the end)")
    return None


def _avi_truncation(fh: BinaryIO, size: int) -> str | None:
    """An AVI cut short: a RIFF chunk (the first, then an OpenDML file's ``AVIX`` ones) that
    runs past the file's end. A size the writer never filled in (a pipe) is not judged."""
    pos = 0
    while pos + 8 <= size:
        fh.seek(pos)
        head = fh.read(12)
        if head[:4] != b"RIFF":
            return None  # past the RIFF chunks: whatever follows is not the AVI's
        declared = struct.unpack("<I", head[4:8])[0]
        if declared in _RIFF_UNKNOWN:
            return None
        end = pos + 8 + declared + (declared & 1)
        if end > size:
            return (f"truncated (its RIFF chunk at byte {pos} declares {declared + 8} bytes, "
                    f"the file has {size - pos} from there)")
        pos = end
    return None


def file_truncation(path: str | os.PathLike[str]) -> str | None:
    """Why the local MPEG-TS / M2TS or AVI file ``path`` is cut short, or None (whole, another
    container, or not a local file)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(2 * M2TS_PACKET)
            if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
                return _avi_truncation(fh, size)
            packet = ts_packet_size(head)
            return None if packet is None else _ts_end_truncation(fh, size, packet)
    except OSError:  # not a local file (a URL) or unreadable: the decode says what it finds
        return None
