"""HLS playlists the edge chain can read whole: finished (VOD) ones whose local segments exist.

ffmpeg reads a live or event playlist (no ``#EXT-X-ENDLIST``) by waiting for segments that may
never come, and skips a missing local segment with only a warning: the first hung ``predict``,
the second joined the shots on either side of a hole and weighted them double. Both are said
before any decoding, naming the playlist and what is wrong.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import VideoInputError

__all__ = ["check_playlist"]

#: The suffixes read as playlists (their content is checked too: ``#EXTM3U``).
PLAYLIST_SUFFIXES = (".m3u8", ".m3u")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _entries(text: str) -> list[str]:
    """The URI lines of a playlist (neither tags nor comments nor blank)."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def check_playlist(path: str | os.PathLike[str], _depth: int = 0) -> None:
    """Raise VideoInputError when ``path`` is an HLS playlist the chain cannot read whole: a
    live or event media playlist (no ``#EXT-X-ENDLIST``), or one listing local segments (or,
    for a master playlist, variant playlists) that do not exist. Other files pass untouched.
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
    entries = [e for e in _entries(text) if not _SCHEME.match(e)]
    missing = [e for e in entries if not (p.parent / e.split("?")[0]).is_file()]
    if missing:
        what = "variant playlist" if master else "segment"
        raise VideoInputError(
            f"{path}: {len(missing)} of its {len(entries)} local {what}s missing ("
            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); ffmpeg skips them "
            "with only a warning, which joins the shots on either side of the hole")
    if master and _depth == 0:
        for variant in entries:
            check_playlist(p.parent / variant, _depth=1)
