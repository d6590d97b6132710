"""HLS playlists the edge chain can read whole: finished (VOD) ones whose local segments exist.

ffmpeg reads a live or event playlist (no ``#EXT-X-ENDLIST``) by waiting for segments that may
never come, and skips a missing local segment with only a warning: the first hung ``predict``,
the second joined the shots on either side of a hole and weighted them double. Both are said
before any decoding, naming the playlist and what is wrong; so is a ``file://`` segment that
is missing and an empty one (an error page saved as a segment is caught after the packet read:
:func:`check_playlist_frames`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from ..errors import VideoInputError

__all__ = ["check_playlist", "check_playlist_frames", "held_seconds"]

#: The suffixes read as playlists (their content is checked too: ``#EXTM3U``).
PLAYLIST_SUFFIXES = (".m3u8", ".m3u")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _entries(text: str) -> list[str]:
    """The URI lines of a playlist (neither tags nor comments nor blank)."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _local_path(base: Path, entry: str) -> Path | None:
    """The local file a playlist entry names (relative to the playlist, absolute, or a
    ``file://`` URI), or None for a remote one (http://, s3:// ...), which ffmpeg fetches."""
    if entry.lower().startswith("file://"):
        return Path(unquote(urlparse(entry).path))
    if _SCHEME.match(entry):
        return None
    return base / entry.split("?")[0]


def _listed_seconds(text: str) -> tuple[float, float] | None:
    """A media playlist's ``#EXTINF`` durations: their sum and its rounding slack (a second
    per integer duration, which older packagers round up); None when one cannot be read."""
    total = slack = 0.0
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            value = line[len("#EXTINF:"):].split(",")[0].strip()
            try:
                total += float(value)
            except ValueError:
                return None
            slack += 0.0 if "." in value else 1.0
    return (total, slack) if total > 0 else None


def check_playlist(path: str | os.PathLike[str], _depth: int = 0
                   ) -> tuple[float, float] | None:
    """Raise VideoInputError when ``path`` is an HLS playlist the chain cannot read whole: a
    live or event media playlist (no ``#EXT-X-ENDLIST``), or one listing local segments (or,
    for a master playlist, variant playlists) that do not exist or are empty. Other files pass
    untouched. Returns a media playlist's listed duration (``#EXTINF``, seconds) with its
    rounding slack, else None.
    """
    p = Path(path)
    if p.suffix.lower() not in PLAYLIST_SUFFIXES or not p.is_file():
        return None
    try:
        text = p.read_text(errors="replace")
    except OSError:
        return None  # the probe names an unreadable file
    if not text.lstrip().startswith("#EXTM3U"):
        return None
    master = "#EXT-X-STREAM-INF" in text
    if not master and "#EXT-X-ENDLIST" not in text:
        raise VideoInputError(
            f"{path}: a live or event HLS playlist (no #EXT-X-ENDLIST): predict reads finished "
            "(VOD) playlists; ffmpeg would wait for segments that may never come")
    local = [(e, f) for e in _entries(text) if (f := _local_path(p.parent, e)) is not None]
    what = "variant playlist" if master else "segment"
    for problem, bad in (("missing", [e for e, f in local if not f.is_file()]),
                         ("empty", [e for e, f in local if f.is_file()
                                    and f.stat().st_size == 0])):
        if bad:
            raise VideoInputError(
                f"{path}: {len(bad)} of its {len(local)} local {what}s {problem} ("
                f"{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); ffmpeg skips them "
                "with only a warning, which joins the shots on either side of the hole")
    if master:
        if _depth == 0:
            for variant in (f for _, f in local):
                check_playlist(variant, _depth=1)
        return None
    return _listed_seconds(text)


def held_seconds(pts_s: np.ndarray) -> float:
    """The time a stream's frames cover, from their presentation times: the steps between
    them plus one for the last frame, with any hole (a step over 4 typical ones and 0.25 s)
    counted as one typical step. Variable-rate streams keep their uneven steps."""
    t = np.sort(np.asarray(pts_s, dtype=np.float64))
    steps = np.diff(t)
    moving = steps[steps > 0]
    if moving.size == 0:
        return 0.0
    typical = float(np.median(moving))
    hole = steps > max(4.0 * typical, 0.25)
    return float(steps[~hole].sum() + typical * (int(hole.sum()) + 1))


def check_playlist_frames(path: str | os.PathLike[str], listed: tuple[float, float] | None,
                          pts_s: np.ndarray) -> None:
    """Raise VideoInputError when a playlist's segments cover less time than their
    ``#EXTINF`` durations list, by more than a second or 2 % (plus their rounding slack): a
    truncated segment, or an error page saved as one, is skipped by ffmpeg with a warning and
    joins the shots around the hole (the timestamps keep the gap, which is not counted)."""
    if not listed:
        return
    listed_s, slack = listed
    held = held_seconds(pts_s)
    if held < listed_s - max(1.0, 0.02 * listed_s) - slack:
        raise VideoInputError(
            f"{path}: its segments hold {len(pts_s)} frames covering {held:.2f} s where they "
            f"list {listed_s:.2f} s (#EXTINF): a segment is truncated or not video; ffmpeg "
            "skips what it cannot read with only a warning, which joins the shots on either "
            "side of the hole")
