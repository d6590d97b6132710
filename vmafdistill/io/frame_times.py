"""When each frame of a file is shown, and where two files' frames stop meeting in time.

The teacher pairs frames by position (frame i with frame i, as libvmaf's own tool pairs them);
ffmpeg's libvmaf filter pairs them by timestamp. The two agree while frame i of both files is
shown at the same moment, counted from each file's first frame. A gap in one file (frames
dropped in a capture, a cut) with the same rate declared and the same frame count breaks that
without a word: an MPEG-TS with 10 of 60 frames dropped read 47.4 here against libvmaf's 77.9.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import VideoInputError
from .packets import Packets, read_packets
from .video import VideoInfo

__all__ = ["first_time_mismatch", "frame_times_s"]


def frame_times_s(path: str | os.PathLike[str], info: VideoInfo) -> np.ndarray | None:
    """Seconds from the first frame to each frame of ``path`` in presentation order; a
    ``.y4m`` is shown at its declared rate. None where the file has no timestamps (headerless
    raw, no rate), a packet without one, or packets that cannot be listed (the decode that
    follows names the file's problem)."""
    if info.kind == "y4m" and info.fps and info.num_frames:
        return np.arange(info.num_frames, dtype=np.float64) / info.fps
    if info.kind != "container":
        return None
    try:
        packets = read_packets(path)
    except VideoInputError:
        return None
    if packets.discard is not None and packets.discard.any():
        # an edit list's hidden packets are decoded, never shown: counted, they moved every
        # frame number a gap was named by (and the first shown frame off time 0)
        packets = packets.take(np.flatnonzero(~packets.discard))
    if not len(packets) or np.isnan(packets.pts_s).any():
        # packets without a pts (MPEG-PS and VOB, packed B-frames in AVI): their frames' places
        # in display order are unknown, and a guess read frame 26 of a clean .mpg as a gap
        return None
    times = _display_order(packets)
    return times - times.min()


def _display_order(packets: Packets) -> np.ndarray:
    """The packets' times in the order a decoder outputs their frames: by timestamp within
    each run from one keyframe to the next in demux order. A global sort read two renditions
    joined with overlapping timestamps (0-0.12 s, then 0.08-0.2 s) as frame 3 shown at
    0.08 s, where the decoder's frame 3 is at 0.12 s and its frame 4 at 0.08 s."""
    if packets.demux_index is None or packets.pts is None:
        return packets.pts_s
    in_demux = np.argsort(packets.demux_index, kind="stable")
    run = np.cumsum(packets.keyframe[in_demux])
    shown = np.lexsort((packets.pts[in_demux], run))
    return packets.pts_s[in_demux][shown]


def first_time_mismatch(ref_times: np.ndarray, dist_times: np.ndarray,
                        frame_period_s: float) -> int | None:
    """The first position ``i`` at which the two files show their frame ``i`` more than half
    a frame period apart (None: they agree over the frames both have). Frames without a
    timestamp on either side are skipped."""
    n = min(len(ref_times), len(dist_times))
    gap = np.abs(ref_times[:n] - dist_times[:n])
    off = np.flatnonzero(np.isfinite(gap) & (gap > 0.5 * frame_period_s))
    return int(off[0]) if off.size else None
