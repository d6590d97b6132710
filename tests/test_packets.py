"""Packet reader: sizes and keyframe flags against encoder settings that fix them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.io.packets import PKT_FLAG_KEY, parse_framecrc_flags, read_packets


def _encode(path: Path, codec_args: list[str], frames: int = 25) -> Path:
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25,format=yuv420p",
                "-frames:v", str(frames), *codec_args, "-fflags", "+bitexact",
                "-flags:v", "+bitexact", str(path)], what="test encode")
    return path


@pytest.mark.parametrize("gop", [1, 7, 10])
def test_keyframes_follow_a_fixed_x264_gop(tmp_path: Path, gop: int) -> None:
    # fixed GOP, no scene cuts: IDR frames exactly at 0, gop, 2*gop, ...
    clip = _encode(tmp_path / f"g{gop}.mp4", [
        "-c:v", "libx264", "-preset", "ultrafast", "-x264-params",
        f"keyint={gop}:min-keyint={gop}:scenecut=0:threads=1"])
    p = read_packets(clip)
    assert len(p) == 25
    assert p.keyframe.dtype == bool
    assert np.array_equal(np.flatnonzero(p.keyframe), np.arange(0, 25, gop))
    if gop > 1:  # intra frames cost more than predicted frames of the same static-ish content
        assert p.sizes[p.keyframe].mean() > p.sizes[~p.keyframe].mean()


def test_keyframes_with_b_frames_are_in_presentation_order(tmp_path: Path) -> None:
    clip = _encode(tmp_path / "b.mp4", [
        "-c:v", "libx264", "-preset", "medium", "-x264-params",
        "keyint=8:min-keyint=8:scenecut=0:bframes=3:open-gop=0:threads=1"])
    p = read_packets(clip)
    assert np.array_equal(np.flatnonzero(p.keyframe), np.arange(0, 25, 8))
    assert np.all(np.diff(p.pts_s) > 0)


def test_parse_framecrc_flags() -> None:
    assert parse_framecrc_flags(["0x591fa560"]) == PKT_FLAG_KEY  # no F=: keyframe only
    assert parse_framecrc_flags(["0x5d1921ec", "F=0x0"]) == 0
    assert parse_framecrc_flags(["0x5d1921ec", "F=0x5", "S=1"]) == 5
