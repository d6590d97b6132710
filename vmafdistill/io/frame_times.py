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
from .packets import Packets, parse_framecrc, read_packets
from .video import VideoInfo

__all__ = ["decoded_times_s", "first_time_mismatch", "frame_times_s"]


def frame_times_s(path: str | os.PathLike[str], info: VideoInfo) -> np.ndarray | None:
    """Seconds from the first frame to each frame of ``path`` in presentation order; a
    ``.y4m`` is shown at its declared rate; packets without a pts: the decoder's output
    times (:func:`decoded_times_s`). None where the file has no timestamps (headerless raw,
    no rate), or packets that cannot be listed (the decode that follows names the file's
    problem)."""
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
    if not len(packets):
        return None
    if np.isnan(packets.pts_s).any():
        # packets without a pts (MPEG-PS and VOB, packed B-frames in AVI): their frames' places
        # in display order are unknown (a guess read frame 26 of a clean .mpg as a gap), so
        # the decoder's own output times are read (a gap there went unwarned)
        return decoded_times_s(path)
    times = _display_order(packets)
    return times - times.min()


def decoded_times_s(path: str | os.PathLike[str]) -> np.ndarray | None:
    """Seconds from the first decoded frame to each frame the decoder outputs, from a decode
    of the whole first video stream (ffmpeg ``framecrc``, timestamps passed through); None
    where it fails or gives no time base."""
    import subprocess
    from fractions import Fraction

    from .._ffmpeg import ffmpeg_exe, input_url

    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", input_url(path),
           "-map", "0:V:0", "-fps_mode", "passthrough", "-f", "framecrc", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        return None
    header, rows = parse_framecrc(proc.stdout)
    pts = [int(fields[2]) for fields in rows if fields[2].lstrip("-").isdigit()]
    if "tb 0" not in header or not pts:
        return None
    times = np.asarray(pts, dtype=np.float64) * float(Fraction(header["tb 0"].replace(" ", "")))
    return times - times[0]


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
