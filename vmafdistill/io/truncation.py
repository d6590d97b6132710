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


def file_truncation(path: str | os.PathLike[str]) -> str | None:
    """Why the local MPEG-TS / M2TS or AVI file ``path`` is cut short, or None (whole, another
    container, or not a local file)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(2 * M2TS_PACKET)
            if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
                # the first RIFF chunk's size (an OpenDML file's later RIFF AVIX chunks follow
                # it, so a whole file is at least this long)
                declared = struct.unpack("<I", head[4:8])[0] + 8
                return (f"truncated (its RIFF header declares {declared} bytes, the file has "
                        f"{size})" if size < declared else None)
            packet = ts_packet_size(head)
            return None if packet is None else ts_truncation(fh, 0, size, packet)
    except OSError:  # not a local file (a URL) or unreadable: the decode says what it finds
        return None
