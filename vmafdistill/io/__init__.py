"""Video input: exact decoded Y/U/V planes as numpy arrays (torch-free)."""

from .video import (
    SUPPORTED_PIX_FMTS,
    FrameChunk,
    PixFmtLayout,
    VideoInfo,
    frame_size_bytes,
    iter_frame_pairs,
    iter_frames,
    pix_fmt_layout,
    probe_video,
    read_all,
)

__all__ = [
    "SUPPORTED_PIX_FMTS",
    "FrameChunk",
    "PixFmtLayout",
    "VideoInfo",
    "frame_size_bytes",
    "iter_frame_pairs",
    "iter_frames",
    "pix_fmt_layout",
    "probe_video",
    "read_all",
]
