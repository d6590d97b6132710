"""HLS playlists the edge chain can read whole: finished (VOD) ones whose local segments exist
and are whole.

ffmpeg reads a live or event playlist (no ``#EXT-X-ENDLIST``) by waiting for segments that may
never come, and skips a missing, empty, truncated or non-video local segment (an error page
saved in its place) with only a warning: the first hung ``predict``, the others joined the
shots on either side of the hole and weighted them double. All are said before any decoding,
naming the playlist, the segment and what is wrong. Segments (whole files or the
``#EXT-X-BYTERANGE`` ranges of one) are checked by their container's structure (MPEG-TS
packets, ISO-BMFF boxes) and for holding video (a video PES packet, an ``mdat`` with data: a
segment cut down to its tables or ``styp`` box was a 4 s hole), not by their timing: a
variable-rate stream's still passage is no hole. An fMP4 playlist whose init section
(``#EXT-X-MAP``) changes to other sample descriptions (a rendition switch) is refused:
ffmpeg decodes the later segments with the first section's parameter sets. A DASH manifest
is refused (:func:`refuse_dash`)."""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import VideoInputError
from ..io.truncation import TS_PACKET, ts_truncation

__all__ = ["check_playlist", "media_playlist_files", "refuse_dash", "segment_problem"]

#: The suffixes read as playlists (their content is checked too: ``#EXTM3U``).
PLAYLIST_SUFFIXES = (".m3u8", ".m3u")
#: A name with a colon before any ``/``, ``?`` or ``#`` (``http:``, ``take_a:2.ts``): not joined
#: to the playlist's folder by ffmpeg; what precedes the colon decides how it opens it
#: (:func:`_local_path`; ``./take_a:2.ts`` is a plain relative file).
_SCHEME = re.compile(r"^([^/?#:]*):")
#: What ffmpeg reads as a protocol name (libavformat's URL_SCHEME_CHARS).
_PROTOCOL_NAME = re.compile(r"[A-Za-z0-9+.-]*")
#: Top-level ISO-BMFF boxes an fMP4 segment or init section starts with.
_BMFF_FIRST = {b"ftyp", b"styp", b"moof", b"sidx", b"moov", b"emsg", b"prft", b"free", b"uuid"}


@dataclass(frozen=True)
class _Part:
    """A media segment or init section a playlist names: as written, the local file (None for
    a remote one, which ffmpeg reading a local playlist does not open), and its byte range
    ``(offset, length)`` or None for the whole file."""

    entry: str
    path: Path | None
    byte_range: tuple[int, int] | None = None

    def label(self) -> str:
        if self.byte_range is None:
            return self.entry
        offset, length = self.byte_range
        return f"{self.entry} bytes {offset}..{offset + length}"


def _entries(text: str) -> list[str]:
    """The URI lines of a playlist (neither tags nor comments nor blank), as ffmpeg reads
    them: trailing whitespace dropped, leading kept (``  seg1.ts`` is a file named so; the
    check found ``seg1.ts`` and ffmpeg skipped the segment)."""
    return [ln.rstrip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _range(spec: str, follows: int) -> tuple[int, int]:
    """``<length>[@<offset>]`` of a BYTERANGE; without an offset it starts at ``follows``."""
    length, _, offset = spec.strip().strip('"').partition("@")
    return (int(offset) if offset else follows), int(length)


def _media_parts(text: str, base: Path) -> list[tuple[_Part, _Part | None]]:
    """Each media segment of a media playlist with the init section (``#EXT-X-MAP``) in force
    for it, byte ranges resolved (RFC 8216 4.3.2.2: a range without an offset starts where
    the same resource's previous range ended). Raises ValueError on a malformed range."""
    out: list[tuple[_Part, _Part | None]] = []
    init: _Part | None = None
    pending: str | None = None
    ends: dict[str, int] = {}
    for raw in text.splitlines():
        line = raw.rstrip()  # as ffmpeg: leading whitespace is part of a URI
        if not line.strip():
            continue
        if line.startswith("#EXT-X-BYTERANGE:"):
            pending = line.split(":", 1)[1]
        elif line.startswith("#EXT-X-MAP:"):
            uri = re.search(r'URI="([^"]+)"', line)
            if uri is not None:
                spec = re.search(r'BYTERANGE="([^"]+)"', line)
                init = _Part(uri.group(1), _local_path(base, uri.group(1)),
                             None if spec is None else _range(spec.group(1), 0))
        elif line and not line.startswith("#"):
            rng = None if pending is None else _range(pending, ends.get(line, 0))
            if rng is not None:
                ends[line] = rng[0] + rng[1]
            out.append((_Part(line, _local_path(base, line), rng), init))
            pending = None
    return out


def _local_path(base: Path, entry: str) -> Path | None:
    """The local file a playlist entry names, read as ffmpeg reads it: relative to the
    playlist, absolute, or ``file:`` followed by the path exactly as written (``file:///x.ts``
    is ``/x.ts``; no ``%XX`` decoding, no ``localhost`` host, the scheme in lower case: ffmpeg
    opens none of those, and the check passed segments it skipped). A name whose part before
    a first ``:`` holds another character than letters, digits, ``+ - .`` (``take_a:2.ts``)
    is a file ffmpeg opens relative to the working directory, not the playlist's folder.
    None where that part is a protocol name (``http``, ``cam-1``, ``FILE``): ffmpeg reading
    a local playlist opens only local files, and no others by such a name, so such a
    segment is a hole."""
    if entry.startswith("file:"):
        return Path(entry[len("file:"):])
    scheme = _SCHEME.match(entry)
    if scheme is None:
        return base / entry  # a "?query" is part of the file name to ffmpeg's file protocol
    # ffmpeg's protocol name is the leading run of letters, digits, "+", "-", "." before the
    # colon: such a name is a protocol (none of them file: never opened here); any other
    # character before it makes the whole name a file path, opened as it is
    return None if _PROTOCOL_NAME.fullmatch(scheme.group(1)) else Path(entry)


def _has_video_pes(fh: BinaryIO, start: int, size: int) -> bool:
    """Whether MPEG-TS packets in ``[start, start + size)`` open a video PES (stream id
    0xE0-0xEF: H.264, H.265, MPEG-2): a segment of only PAT/PMT tables holds no picture.
    Read in blocks, stopping at the first (normally within the first few packets)."""
    block = TS_PACKET * 512
    for pos in range(start, start + size, block):
        fh.seek(pos)
        data = fh.read(min(block, start + size - pos))
        for k in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
            pkt = data[k:k + TS_PACKET]
            if not pkt[1] & 0x40 or not pkt[3] & 0x10:  # no payload unit start / no payload
                continue
            at = 5 + pkt[4] if pkt[3] & 0x20 else 4  # past the adaptation field
            if (pkt[at:at + 3] == b"\x00\x00\x01" and at + 3 < TS_PACKET
                    and 0xE0 <= pkt[at + 3] <= 0xEF):
                return True
    return False


def _ts_problem(fh: BinaryIO, start: int, size: int, video: bool = True) -> str | None:
    """An MPEG-TS segment is whole 188-byte packets, each opening with the sync byte, and
    (``video``: not an init section) opens a video PES."""
    fh.seek(start)
    if fh.read(1) != b"\x47":
        return f"not MPEG-TS at byte {start} (no sync byte: an error page?)"
    if problem := ts_truncation(fh, start, size):
        return problem
    if video and not _has_video_pes(fh, start, size):
        return "holds no video (no video PES packet: only tables?)"
    return None


def _boxes(fh: BinaryIO, start: int, size: int) -> tuple[list[tuple[bytes, int]], str | None]:
    """The top-level ISO-BMFF boxes ``(type, size)`` of ``[start, start + size)``, and what is
    wrong if the chain does not end exactly there."""
    boxes: list[tuple[bytes, int]] = []
    pos, end = start, start + size
    while pos < end:
        fh.seek(pos)
        head = fh.read(min(16, end - pos))
        if len(head) < 8:
            return boxes, f"truncated (a box header at byte {pos} is cut off)"
        box, kind = struct.unpack(">I4s", head[:8])
        if box == 1:  # a 64-bit size follows
            if len(head) < 16:
                return boxes, f"truncated (a box header at byte {pos} is cut off)"
            box = struct.unpack(">Q", head[8:16])[0]
        elif box == 0:  # the box runs to the end
            box = end - pos
        if box < 8 or pos + box > end:
            return boxes, (f"truncated (its {kind.decode('latin-1')!r} box at byte {pos} "
                           f"needs {box} bytes, {end - pos} are left)")
        boxes.append((kind, box))
        pos += box
    return boxes, None


def _bmff_problem(fh: BinaryIO, start: int, size: int, init: bool) -> str | None:
    """An fMP4 segment is a chain of ISO-BMFF boxes that ends exactly at its end and carries
    media (an ``mdat`` with a payload); an init section carries a ``moov``."""
    boxes, problem = _boxes(fh, start, size)
    if problem is not None:
        return problem
    if init:
        return None if any(k == b"moov" for k, _ in boxes) else "no 'moov' box (no init section)"
    if not any(k == b"mdat" and n > 8 for k, n in boxes):
        return "holds no media (no 'mdat' box with data)"
    return None


def segment_problem(path: str | os.PathLike[str], byte_range: tuple[int, int] | None = None,
                    *, init: bool = False) -> str | None:
    """What is wrong with a local HLS segment (or ``init`` section), whole or the byte range
    ``(offset, length)`` of it: missing, empty, past the file's end, truncated, not the
    container its neighbours are, or holding no video; None when usable. MPEG-TS and fMP4
    segments are checked by their structure; other kinds only for existing and holding bytes."""
    p = Path(path)
    if not p.is_file():
        return "missing"
    size = p.stat().st_size
    start, length = (0, size) if byte_range is None else byte_range
    if length <= 0 or size == 0:
        return "empty"
    if start + length > size:
        return f"past the file's end ({size} bytes: truncated?)"
    try:
        with open(p, "rb") as fh:
            fh.seek(start)
            head = fh.read(8)
            suffix = p.suffix.lower()
            if suffix in (".ts", ".m2ts", ".mts") or head[:1] == b"\x47":
                # a TS init section (RFC 8216 allows one) is its PAT/PMT tables alone
                return _ts_problem(fh, start, length, video=not init)
            if (suffix in (".m4s", ".mp4", ".m4v", ".cmfv", ".cmfi")
                    or head[4:8] in _BMFF_FIRST):
                if head[4:8] not in _BMFF_FIRST and len(head) == 8:
                    return "not an fMP4 segment (no ISO-BMFF box first: an error page?)"
                return _bmff_problem(fh, start, length, init)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def _part_problem(part: _Part, init: bool = False) -> str | None:
    if part.path is None:  # ffmpeg skipped it with "not on whitelist": a hole, flagged by nothing
        return ("not a local file to ffmpeg (it reads the part before ':' as a protocol and opens "
                "only local files from a local playlist; a file named so: write it ./name)")
    return segment_problem(part.path, part.byte_range, init=init)


def _init_bytes(part: _Part) -> bytes | None:
    """What of an init section tells a rendition switch from the same section named twice
    (None when remote or unreadable): its sample descriptions (``stsd`` boxes: codec, size,
    parameter sets), not the timestamps another packaging run writes in ``mvhd``; the whole
    section where it holds none (a TS init's tables)."""
    if part.path is None:
        return None
    try:
        data = _read_part(part)
    except OSError:
        return None
    found = [data[k - 4:k - 4 + int.from_bytes(data[k - 4:k], "big")]
             for k in (m.start() for m in re.finditer(b"stsd", data)) if k >= 4]
    return b"".join(found) or data


def _check_init_switch(path: str | os.PathLike[str],
                       parts: list[tuple[_Part, _Part | None]]) -> None:
    """Refuse an fMP4 playlist whose init section changes to other sample descriptions
    (:func:`_init_bytes`): ffmpeg keeps the
    first one's parameter sets and decodes the later segments with them (a 180p rendition
    read as 360p garbage, scored green)."""
    first: _Part | None = None
    first_bytes: bytes | None = None
    for k, (_, init) in enumerate(parts):
        if init is None:
            continue
        if first is None:
            first, first_bytes = init, _init_bytes(init)
        elif init != first and _init_bytes(init) != first_bytes:
            raise VideoInputError(
                f"{path}: its init section changes at segment {k} ({first.label()} -> "
                f"{init.label()}: a rendition switch inside one fMP4 playlist); ffmpeg would "
                "decode the later segments with the first section's parameters. Predict each "
                "rendition's playlist on its own")


def refuse_dash(path: str | os.PathLike[str]) -> None:
    """Raise VideoInputError for a DASH manifest (``.mpd``, or an XML file holding ``<MPD``).

    ffmpeg's DASH demuxer joins whatever segments it finds (a missing one is a silent hole)
    and the in-process decoder cannot open a manifest, so an H.264 delivery's block QPs were
    lost and its shots scored on the slice QP, several VMAF off the same stream as MP4."""
    p = Path(path)
    if not p.is_file():  # a FIFO would block the open; the probe names what it is
        return
    try:
        with open(p, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return  # the probe names an unreadable file
    if p.suffix.lower() == ".mpd" or (head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
                                      and b"<MPD" in head):
        raise VideoInputError(
            f"{path}: a DASH manifest: predict does not read them (a missing segment would be "
            "a silent hole, and the decoder's block QPs are lost). Join one representation's "
            "init and media segments into one file (cat init.m4s chunk-*.m4s > rep.mp4, in "
            "segment order) and predict that, or predict an HLS playlist of the same segments")


def check_playlist(path: str | os.PathLike[str], _depth: int = 0) -> None:
    """Raise VideoInputError when ``path`` is an HLS playlist the chain cannot read whole: a
    live or event media playlist (no ``#EXT-X-ENDLIST``); one listing local segments (or,
    for a master playlist, variant playlists) that are missing, or segments or byte ranges
    that are empty, past their file's end, truncated or hold no video
    (:func:`segment_problem`); an fMP4 one whose init section changes mid-playlist. Other
    files pass untouched.
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
    if "#EXT-X-STREAM-INF" in text:
        _check_master(path, p, text, _depth)
        return
    if "#EXT-X-ENDLIST" not in text:
        raise VideoInputError(
            f"{path}: a live or event HLS playlist (no #EXT-X-ENDLIST): predict reads finished "
            "(VOD) playlists; ffmpeg would wait for segments that may never come")
    methods = re.findall(r"^#EXT-X-KEY:.*METHOD=([A-Za-z0-9-]+)", text, re.MULTILINE)
    if encrypted := [m for m in methods if m != "NONE"]:  # "not MPEG-TS: an error page?"
        raise VideoInputError(f"{path}: its segments are encrypted (#EXT-X-KEY METHOD="
                              f"{encrypted[0]}): predict reads clear segments only")
    try:
        parts = _media_parts(text, p.parent)
    except ValueError:
        raise VideoInputError(f"{path}: a BYTERANGE is not <length>[@<offset>]") from None
    inits = list(dict.fromkeys(init for _, init in parts if init is not None))
    checked = [(part, _part_problem(part, init=True)) for part in inits]
    checked += [(part, _part_problem(part)) for part, _ in parts]
    total = len(inits) + len(parts)
    # a missing file is named once however many of its byte ranges the playlist lists
    bad = [(part.entry if why == "missing" else part.label(), _colon_hint(part, p.parent, why))
           for part, why in checked if why is not None]
    if bad:
        listed = ", ".join(f"{e}: {why}" for e, why in list(dict.fromkeys(bad))[:3])
        raise VideoInputError(
            f"{path}: {len(bad)} of its {total} segments unusable ({listed}"
            f"{' ...' if len(dict.fromkeys(bad)) > 3 else ''}); ffmpeg skips them with only a "
            "warning, which joins the shots on either side of the hole")
    _check_init_switch(path, parts)
    _check_ts_stream_switch(path, parts)


#: MPEG-TS stream types of video (ISO 13818-1 and its amendments: MPEG-1/2, MPEG-4 part 2,
#: H.264, H.265, H.266, AVS2/3).
_TS_VIDEO_TYPES = {0x01: "MPEG-1", 0x02: "MPEG-2", 0x10: "MPEG-4", 0x1B: "H.264",
                   0x24: "H.265", 0x33: "H.266", 0xD2: "AVS2", 0xD4: "AVS3"}


def _ts_video_stream(part: _Part) -> tuple[int, int] | None:
    """``(PID, stream type)`` of the first video stream the first program map of an MPEG-TS
    segment lists, or None (not TS, unreadable, no PMT in its first 64 KiB)."""
    try:
        data = _read_part(part, limit=TS_PACKET * 350)
    except OSError:
        return None
    if data[:1] != b"\x47":  # not MPEG-TS (an fMP4 segment): nothing to compare
        return None
    pmt_pid = None
    for k in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
        pkt = data[k:k + TS_PACKET]
        if pkt[0] != 0x47 or not pkt[1] & 0x40:  # a section starts in this packet
            continue
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        at = (5 + pkt[4] if pkt[3] & 0x20 else 4)
        at += 1 + pkt[at] if at < TS_PACKET else 0  # past the pointer field
        section = pkt[at:]
        if len(section) < 12:
            continue
        section_len = min(((section[1] & 0x0F) << 8) | section[2], len(section) - 3)
        if pid == 0 and section[0] == 0x00 and pmt_pid is None:  # PAT: first program's map
            for j in range(8, 3 + section_len - 4, 4):
                if int.from_bytes(section[j:j + 2], "big") != 0:  # not the network PID
                    pmt_pid = int.from_bytes(section[j + 2:j + 4], "big") & 0x1FFF
                    break
        elif pid == pmt_pid and section[0] == 0x02:  # PMT: its elementary streams
            j = 12 + (int.from_bytes(section[10:12], "big") & 0x0FFF)
            while j + 5 <= 3 + section_len - 4:
                kind = section[j]
                es_pid = int.from_bytes(section[j + 1:j + 3], "big") & 0x1FFF
                if kind in _TS_VIDEO_TYPES:
                    return es_pid, kind
                j += 5 + (int.from_bytes(section[j + 3:j + 5], "big") & 0x0FFF)
            return None
    return None


def _check_ts_stream_switch(path: str | os.PathLike[str],
                            parts: list[tuple[_Part, _Part | None]]) -> None:
    """Refuse a TS playlist whose video stream changes PID or codec between segments (an ad
    inserted after an ``#EXT-X-DISCONTINUITY``): ffmpeg's HLS reader keeps the first
    stream and drops the other's segments without a word (a 2 s ad vanished), or decodes
    H.265 packets as H.264."""
    first: tuple[_Part, tuple[int, int]] | None = None
    for k, (part, _) in enumerate(parts):
        found = _ts_video_stream(part) if part.path is not None else None
        if found is None:
            continue
        if first is None:
            first = (part, found)
        elif found != first[1]:
            (pid0, kind0), (pid, kind) = first[1], found
            raise VideoInputError(
                f"{path}: its video stream changes at segment {k} ({first[0].label()}: PID "
                f"{pid0:#x} {_TS_VIDEO_TYPES[kind0]} -> {part.label()}: PID {pid:#x} "
                f"{_TS_VIDEO_TYPES[kind]}); ffmpeg would drop or misread the later segments. "
                "Predict the segments of each stream on their own")


def _colon_hint(part: _Part, base: Path, why: str) -> str:
    """``why``, and for a name with a colon missing where ffmpeg opens it (the working
    directory) but present beside the playlist, how to write it."""
    # a name read from the working directory is one whose path is the entry itself
    if (why == "missing" and _SCHEME.match(part.entry) and part.path == Path(part.entry)
            and (base / part.entry).is_file()):
        return (f"missing where ffmpeg opens it, {Path.cwd()}: a name with a colon is not "
                "read relative to the playlist; write it ./name")
    return why


def _check_master(path: str | os.PathLike[str], p: Path, text: str, depth: int) -> None:
    """A master playlist: its local variant playlists exist, and each is checked in turn."""
    local = [(e, f) for e in _entries(text) if (f := _local_path(p.parent, e)) is not None]
    bad = [e for e, f in local if not f.is_file()]
    if bad:
        listed = ", ".join(f"{e}: missing" for e in bad[:3])
        raise VideoInputError(
            f"{path}: {len(bad)} of its {len(local)} local variant playlists unusable ({listed}"
            f"{' ...' if len(bad) > 3 else ''}); ffmpeg skips them with only a warning, which "
            "joins the shots on either side of the hole")
    if depth == 0:
        for _, variant in local:
            check_playlist(variant, _depth=1)


def media_playlist_files(path: str | os.PathLike[str]) -> tuple[set[Path], bool] | None:
    """The local files (segments and init sections, resolved) an HLS *media* playlist lists,
    and whether it is a video rendition; None when ``path`` is not one (a master playlist,
    another ``.m3u``, unreadable). A folder of deliveries predicts each video playlist once and
    skips the files any playlist lists, which would otherwise be predicted again one segment
    at a time.

    Video: not an I-frame index (``#EXT-X-I-FRAMES-ONLY``, the same frames again) and its
    first local segment holds video (:func:`_holds_video`: an audio rendition in ``.ts`` or
    ``.m4s``, or subtitles' ``.vtt``, are no videos). A playlist of remote segments only, or
    one with a malformed range (predicting it names the range), is taken for video."""
    p = Path(path)
    if not p.is_file():  # a FIFO would block the read
        return None
    try:
        text = p.read_text(errors="replace")
    except OSError:
        return None
    # #EXT-X-TARGETDURATION is required in an HLS media playlist: a player's #EXTM3U list of
    # files (VLC writes one) has none, and its videos are predicted one by one
    if (not text.lstrip().startswith("#EXTM3U") or "#EXT-X-STREAM-INF" in text
            or "#EXT-X-TARGETDURATION" not in text):
        return None
    try:
        parts = _media_parts(text, p.parent)
    except ValueError:
        return set(), True
    files = {part.path for part, _ in parts} | {init.path for _, init in parts if init}
    local = [(part, init) for part, init in parts if part.path is not None]
    video = "#EXT-X-I-FRAMES-ONLY" not in text and (not local or _holds_video(*local[0]))
    return {f.resolve() for f in files if f is not None}, video


def _holds_video(part: _Part, init: _Part | None) -> bool:
    """Whether a local segment (with its init section) carries video: an fMP4 track whose
    handler is ``vide`` (in the init, or a self-initialising segment), an MPEG-TS video PES.
    A missing or unreadable segment counts as video: the playlist check names it."""
    try:
        if init is not None and init.path is not None and init.path.is_file():
            data = _read_part(init)
            if b"moov" in data:
                return _VIDEO_HANDLER.search(data) is not None
        if not part.path.is_file():
            return True
        start, length = part.byte_range or (0, part.path.stat().st_size)
        with open(part.path, "rb") as fh:
            fh.seek(start)
            head = fh.read(min(length, 1 << 20))
            if head[:1] == b"\x47":
                return _has_video_pes(fh, start, length - length % TS_PACKET)
    except OSError:
        return True
    return _VIDEO_HANDLER.search(head) is not None  # a self-initialising fMP4 segment


def _read_part(part: _Part, limit: int | None = None) -> bytes:
    """The bytes of a local segment or init section (its byte range, or the whole file), at
    most ``limit`` of them from its start."""
    start, length = part.byte_range or (0, -1)
    if limit is not None:
        length = limit if length < 0 else min(length, limit)
    with open(part.path, "rb") as fh:  # type: ignore[arg-type]
        fh.seek(start)
        return fh.read(length)


#: An ISO-BMFF ``hdlr`` box of a video track: type, version/flags, pre_defined, ``vide``.
_VIDEO_HANDLER = re.compile(rb"hdlr.{8}vide", re.DOTALL)
