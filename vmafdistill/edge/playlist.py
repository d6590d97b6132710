"""HLS playlists the edge chain can read whole: finished (VOD) ones whose local segments exist
and are whole.

ffmpeg reads a live or event playlist (no ``#EXT-X-ENDLIST``) by waiting for segments that may
never come, and skips a missing, empty, truncated or non-video local segment (an error page
saved in its place) with only a warning: the first hung ``predict``, the others joined the
shots on either side of the hole and weighted them double. All are said before any decoding,
naming the playlist, the segment and what is wrong. Segments are checked by their container's
structure (MPEG-TS packets, ISO-BMFF boxes), not by their timing: a variable-rate stream's
still passage is no hole.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from ..errors import VideoInputError

__all__ = ["check_playlist", "segment_problem"]

#: The suffixes read as playlists (their content is checked too: ``#EXTM3U``).
PLAYLIST_SUFFIXES = (".m3u8", ".m3u")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_TS_PACKET = 188
#: Top-level ISO-BMFF boxes an fMP4 segment or init section starts with.
_BMFF_FIRST = {b"ftyp", b"styp", b"moof", b"sidx", b"moov", b"emsg", b"prft", b"free", b"uuid"}


def _entries(text: str) -> list[str]:
    """The URI lines of a playlist (neither tags nor comments nor blank)."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _map_uris(text: str) -> list[str]:
    """The ``#EXT-X-MAP:URI="..."`` init sections of an fMP4 playlist."""
    return re.findall(r'#EXT-X-MAP:[^\n]*URI="([^"]+)"', text)


def _local_path(base: Path, entry: str) -> Path | None:
    """The local file a playlist entry names (relative to the playlist, absolute, or a
    ``file://`` URI), or None for a remote one (http://, s3:// ...), which ffmpeg fetches."""
    if entry.lower().startswith("file://"):
        return Path(unquote(urlparse(entry).path))
    if _SCHEME.match(entry):
        return None
    return base / entry.split("?")[0]


def _ts_problem(fh: BinaryIO, size: int) -> str | None:
    """An MPEG-TS segment is whole 188-byte packets, each opening with the sync byte."""
    fh.seek(0)
    if fh.read(1) != b"\x47":
        return "not MPEG-TS at byte 0 (no sync byte: an error page?)"
    if size % _TS_PACKET:
        return f"truncated ({size} bytes: not whole {_TS_PACKET}-byte MPEG-TS packets)"
    fh.seek(size - _TS_PACKET)
    if fh.read(1) != b"\x47":
        return f"not MPEG-TS at byte {size - _TS_PACKET} (no sync byte)"
    return None


def _bmff_problem(fh: BinaryIO, size: int) -> str | None:
    """An fMP4 segment is a chain of ISO-BMFF boxes that ends exactly at the file's end."""
    pos = 0
    while pos < size:
        fh.seek(pos)
        head = fh.read(16)
        if len(head) < 8:
            return f"truncated (a box header at byte {pos} is cut off)"
        box, kind = struct.unpack(">I4s", head[:8])
        if box == 1:  # a 64-bit size follows
            if len(head) < 16:
                return f"truncated (a box header at byte {pos} is cut off)"
            box = struct.unpack(">Q", head[8:16])[0]
        elif box == 0:  # the box runs to the end of the file
            return None
        if box < 8 or pos + box > size:
            return (f"truncated (its {kind.decode('latin-1')!r} box at byte {pos} needs "
                    f"{box} bytes, {size - pos} are left)")
        pos += box
    return None


def segment_problem(path: str | os.PathLike[str]) -> str | None:
    """What is wrong with a local HLS segment (missing, empty, truncated, not the container
    its neighbours are), or None. MPEG-TS and fMP4 segments are checked by their structure;
    other kinds only for existing and holding bytes."""
    p = Path(path)
    if not p.is_file():
        return "missing"
    size = p.stat().st_size
    if size == 0:
        return "empty"
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
            suffix = p.suffix.lower()
            if suffix in (".ts", ".m2ts", ".mts") or head[:1] == b"\x47":
                return _ts_problem(fh, size)
            if suffix in (".m4s", ".mp4", ".m4v", ".cmfv") or head[4:8] in _BMFF_FIRST:
                if head[4:8] not in _BMFF_FIRST and len(head) == 8:
                    return "not an fMP4 segment (no ISO-BMFF box first: an error page?)"
                return _bmff_problem(fh, size)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def check_playlist(path: str | os.PathLike[str], _depth: int = 0) -> None:
    """Raise VideoInputError when ``path`` is an HLS playlist the chain cannot read whole: a
    live or event media playlist (no ``#EXT-X-ENDLIST``), or one listing local segments (or,
    for a master playlist, variant playlists) that are missing, or segments that are empty,
    truncated or not video (:func:`segment_problem`). Other files pass untouched.
    """
    p = Path(path)
    if p.suffix.lower() not in PLAYLIST_SUFFIXES or not p.is_file():
        return
    try:
        text = p.read_text(errors="replace")
    except OSError:
        return  # the probe names an unreadable file
    if not text.lstrip().startswith("#EXTM3U"):
        return
    master = "#EXT-X-STREAM-INF" in text
    if not master and "#EXT-X-ENDLIST" not in text:
        raise VideoInputError(
            f"{path}: a live or event HLS playlist (no #EXT-X-ENDLIST): predict reads finished "
            "(VOD) playlists; ffmpeg would wait for segments that may never come")
    entries = _entries(text) + ([] if master else _map_uris(text))
    local = [(e, f) for e in entries if (f := _local_path(p.parent, e)) is not None]
    what = "variant playlist" if master else "segment"
    if master:
        bad = [(e, "missing") for e, f in local if not f.is_file()]
    else:
        bad = [(e, why) for e, f in local if (why := segment_problem(f)) is not None]
    if bad:
        listed = ", ".join(f"{e}: {why}" for e, why in bad[:3])
        raise VideoInputError(
            f"{path}: {len(bad)} of its {len(local)} local {what}s unusable ({listed}"
            f"{' ...' if len(bad) > 3 else ''}); ffmpeg skips them with only a warning, which "
            "joins the shots on either side of the hole")
    if master and _depth == 0:
        for _, variant in local:
            check_playlist(variant, _depth=1)
