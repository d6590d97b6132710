"""Tests of vmafdistill.io.video: bit-exact planes from raw, y4m and container inputs.

Every clip is generated with the same ffmpeg binary the package uses; expected samples come from
independent decoders (PyAV planes, or an ffmpeg subprocess sliced by hand here), never from the
code under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vmafdistill._ffmpeg import ffmpeg_exe, run_ffmpeg
from vmafdistill.errors import FrameMismatchError, VideoInputError
from vmafdistill.io import (
    FrameChunk,
    frame_size_bytes,
    iter_frame_pairs,
    iter_frames,
    probe_video,
    read_all,
)
from vmafdistill.io import video as video_mod

N_FRAMES = 7


def ff(*args: str) -> bytes:
    """Run the package's ffmpeg binary; return stdout (fail the test on a non-zero exit)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def lavfi(width: int, height: int, pix_fmt: str, frames: int, out: Path, *extra: str) -> Path:
    # testsrc2 rounds odd sizes down to even when it is asked for 4:2:0 directly; drawing in
    # 4:4:4 and converting afterwards keeps 65x49 really 65x49. High bit depths are drawn in
    # 10-bit so the samples are not just 8-bit values shifted left.
    draw = "yuv444p10le" if "10" in pix_fmt else "yuv444p"
    src = f"testsrc2=size={width}x{height}:rate=25,format={draw}"
    ff("-f", "lavfi", "-i", src, "-frames:v", str(frames), "-pix_fmt", pix_fmt, *extra, str(out))
    return out


@dataclass(frozen=True)
class Clip:
    name: str
    pix_fmt: str
    width: int
    height: int
    y4m: Path
    raw: Path
    mkv: Path
    mp4: Path | None = None

    @property
    def raw_opts(self) -> dict[str, object]:
        return {"width": self.width, "height": self.height, "pix_fmt": self.pix_fmt}

    def path(self, kind: str) -> Path:
        return {"y4m": self.y4m, "raw": self.raw, "mkv": self.mkv, "mp4": self.mp4}[kind]

    def opts(self, kind: str) -> dict[str, object]:
        return self.raw_opts if kind == "raw" else {}


SPECS = {
    # name: (pix_fmt, width, height, also encode x264-lossless mp4)
    "420": ("yuv420p", 64, 48, True),
    "422": ("yuv422p", 64, 48, False),
    "444": ("yuv444p", 64, 48, False),
    "420p10": ("yuv420p10le", 64, 48, True),
    "422p10": ("yuv422p10le", 64, 48, False),
    "444odd": ("yuv444p", 65, 49, False),
    "420odd": ("yuv420p", 65, 49, False),
    "gray": ("gray", 64, 48, False),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    d = tmp_path_factory.mktemp("clips")
    out = {}
    for name, (pix_fmt, w, h, with_mp4) in SPECS.items():
        # The y4m is the master; raw and mkv are written from it by ffmpeg (not by our code).
        y4m = lavfi(w, h, pix_fmt, N_FRAMES, d / f"{name}.y4m", "-strict", "-1")
        raw = d / f"{name}.yuv"
        ff("-i", str(y4m), "-f", "rawvideo", "-pix_fmt", pix_fmt, str(raw))
        mkv = d / f"{name}.mkv"
        ff("-i", str(y4m), "-c:v", "ffv1", "-pix_fmt", pix_fmt, str(mkv))
        mp4 = None
        if with_mp4:
            mp4 = d / f"{name}.mp4"
            ff(
                "-i",
                str(y4m),
                "-c:v",
                "libx264",
                "-qp",
                "0",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                pix_fmt,
                str(mp4),
            )
        out[name] = Clip(name, pix_fmt, w, h, y4m, raw, mkv, mp4)
    return out


@pytest.fixture(scope="module")
def misc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Odd inputs for error paths and pairs."""
    d = tmp_path_factory.mktemp("misc")
    out = {}
    out["short_mkv"] = lavfi(64, 48, "yuv420p", 5, d / "short.mkv", "-c:v", "ffv1")
    out["short_y4m"] = lavfi(64, 48, "yuv420p", 5, d / "short.y4m")
    out["small_mkv"] = lavfi(32, 24, "yuv420p", N_FRAMES, d / "small.mkv", "-c:v", "ffv1")
    out["big_mkv"] = lavfi(320, 240, "yuv420p", 40, d / "big.mkv", "-c:v", "ffv1")
    # Variable frame rate: irregular timestamps that a CFR muxer would fill by duplication.
    vfr = d / "vfr.mkv"
    ff(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=25",
        "-frames:v",
        "6",
        "-vf",
        "setpts='if(lt(N,3),N,N*4+7)/25/TB'",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "ffv1",
        str(vfr),
    )
    out["vfr"] = vfr
    audio = d / "audio.mp4"
    ff("-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-c:a", "aac", str(audio))
    out["audio"] = audio
    garbage = d / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    out["garbage"] = garbage
    rgb = d / "rgb.mkv"
    ff(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=25",
        "-frames:v",
        "2",
        "-c:v",
        "png",
        "-pix_fmt",
        "rgb24",
        str(rgb),
    )
    out["rgb"] = rgb
    return out


# ------------------------------------------------------------------------------------------
# Independent decoders
# ------------------------------------------------------------------------------------------


def pyav_planes(path: Path, **open_kw: object) -> list[np.ndarray]:
    """[Y, U, V] (or [Y] for gray) as (n, h, w) arrays decoded by PyAV's own libavcodec."""
    planes: list[list[np.ndarray]] = []
    with av.open(str(path), **open_kw) as container:
        for frame in container.decode(video=0):
            name = frame.format.name
            dtype = np.dtype("<u2") if any(t in name for t in ("10", "12", "16")) else np.uint8
            per_frame = []
            for p in frame.planes:
                # Rows are padded to line_size bytes: cut each row to the plane width.
                rows = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)
                per_frame.append(rows.view(dtype)[:, : p.width].astype(np.uint16))
            planes.append(per_frame)
    return [np.stack([f[i] for f in planes]) for i in range(len(planes[0]))]


def pyav_raw(clip: Clip) -> list[np.ndarray]:
    return pyav_planes(
        clip.raw,
        format="rawvideo",
        options={"video_size": f"{clip.width}x{clip.height}", "pixel_format": clip.pix_fmt},
    )


def ffmpeg_scaled(
    input_args: list[str], w: int, h: int, flags: str, pix_fmt: str, graph: str = "vf"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V of ``ffmpeg <input> scale=w:h:flags=F -f rawvideo -pix_fmt P -``, sliced here."""
    if graph == "vf":
        filt = ["-vf", f"scale={w}:{h}:flags={flags}"]
    else:  # the form the libvmaf oracle uses
        filt = ["-filter_complex", f"[0:v]scale={w}:{h}:flags={flags}[d]", "-map", "[d]"]
    out = ff(*input_args, *filt, "-f", "rawvideo", "-pix_fmt", pix_fmt, "-")
    hi = "10" in pix_fmt
    data = np.frombuffer(out, np.dtype("<u2") if hi else np.uint8)
    cw, ch = {"yuv420p": (-(-w // 2), -(-h // 2)), "yuv444p": (w, h)}[pix_fmt.replace("10le", "")]
    per = w * h + 2 * cw * ch
    frames = data.reshape(-1, per)
    y = frames[:, : w * h].reshape(-1, h, w)
    u = frames[:, w * h : w * h + cw * ch].reshape(-1, ch, cw)
    v = frames[:, w * h + cw * ch :].reshape(-1, ch, cw)
    return y, u, v


def assert_planes(chunk: FrameChunk, expected: list[np.ndarray]) -> None:
    np.testing.assert_array_equal(chunk.y, expected[0])
    if len(expected) == 3:
        assert chunk.u is not None and chunk.v is not None
        np.testing.assert_array_equal(chunk.u, expected[1])
        np.testing.assert_array_equal(chunk.v, expected[2])
    else:
        assert chunk.u is None and chunk.v is None


# ------------------------------------------------------------------------------------------
# Exact samples
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
def test_raw_y4m_container_agree_with_pyav(clips: dict[str, Clip], name: str) -> None:
    clip = clips[name]
    expected_dtype = (
        np.uint8 if clip.pix_fmt in ("yuv420p", "yuv422p", "yuv444p", "gray") else np.uint16
    )
    reads = {}
    for kind in ("raw", "y4m", "mkv", "mp4"):
        if kind == "mp4" and clip.mp4 is None:
            continue
        c = read_all(clip.path(kind), planes="yuv", **clip.opts(kind))
        assert c.y.dtype == expected_dtype and c.y.shape == (N_FRAMES, clip.height, clip.width)
        assert c.pix_fmt == clip.pix_fmt and c.start == 0
        assert c.y.flags.c_contiguous and c.y.flags.writeable
        reads[kind] = c
    # Each reader against an independent PyAV decode of the same file ...
    assert_planes(reads["raw"], pyav_raw(clip))
    for kind in ("y4m", "mkv", "mp4"):
        if kind in reads:
            assert_planes(reads[kind], pyav_planes(clip.path(kind)))
    # ... and all of them against each other (lossless encodes of one master).
    for kind, c in reads.items():
        (
            assert_planes(
                c,
                [reads["raw"].y, reads["raw"].u, reads["raw"].v]
                if reads["raw"].u is not None
                else [reads["raw"].y],
            ),
            kind,
        )
    # Luma-only reads are the same Y plane.
    for kind in reads:
        y_only = read_all(clip.path(kind), **clip.opts(kind))
        assert y_only.u is None and y_only.v is None
        np.testing.assert_array_equal(y_only.y, reads[kind].y)


def test_chroma_shapes_follow_ffmpeg_rounding(clips: dict[str, Clip]) -> None:
    c = read_all(clips["420odd"].y4m, planes="yuv")
    assert c.y.shape[1:] == (49, 65) and c.u is not None and c.u.shape[1:] == (25, 33)
    c = read_all(clips["422"].raw, planes="yuv", **clips["422"].raw_opts)
    assert c.u is not None and c.u.shape[1:] == (48, 32)
    assert frame_size_bytes(65, 49, "yuv420p") == 65 * 49 + 2 * 33 * 25
    assert frame_size_bytes(64, 48, "yuv422p10le") == 2 * (64 * 48 + 2 * 32 * 48)
    assert frame_size_bytes(64, 48, "gray") == 64 * 48


@pytest.mark.parametrize("kind", ["raw", "y4m", "mkv", "mp4"])
def test_ten_bit_is_really_ten_bit(clips: dict[str, Clip], kind: str) -> None:
    clip = clips["420p10"]
    c = read_all(clip.path(kind), planes="yuv", **clip.opts(kind))
    assert c.bit_depth == 10 and c.y.dtype == np.uint16
    assert 255 < int(c.y.max()) <= 1023
    assert int(c.y.min()) >= 0 and np.any(c.y % 4 != 0)  # not 8-bit values shifted left
    assert_planes(c, pyav_planes(clip.y4m))


@pytest.mark.parametrize("kind", ["raw", "y4m", "mkv"])
def test_probe(clips: dict[str, Clip], kind: str) -> None:
    clip = clips["420p10"]
    info = probe_video(clip.path(kind), **clip.opts(kind))
    assert (info.width, info.height, info.pix_fmt, info.bit_depth) == (64, 48, "yuv420p10le", 10)
    assert info.kind == {"raw": "raw", "y4m": "y4m", "mkv": "container"}[kind]
    assert info.path == str(clip.path(kind))
    if kind == "raw":
        assert info.num_frames == N_FRAMES and info.fps is None
    elif kind == "y4m":
        assert info.num_frames == N_FRAMES and info.fps == 25.0
    else:
        assert info.num_frames is None and info.fps == 25.0


def test_probe_without_pyav_parses_ffmpeg(
    clips: dict[str, Clip], misc: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_av = [probe_video(clips[n].path(k)) for n, k in [("420p10", "mp4"), ("444odd", "mkv")]]
    monkeypatch.setattr(video_mod, "_import_av", lambda: None)
    without = [probe_video(clips[n].path(k)) for n, k in [("420p10", "mp4"), ("444odd", "mkv")]]
    assert with_av == without
    with pytest.raises(VideoInputError, match="no video stream"):
        probe_video(misc["audio"])
    with pytest.raises(VideoInputError, match="unsupported pixel format 'rgb24'"):
        probe_video(misc["rgb"])


@pytest.mark.parametrize("rate", ["30000/1001", "24000/1001", "60000/1001", "25", "25/2"])
@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_probe_without_pyav_reads_ntsc_rates_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rate: str, ext: str
) -> None:
    """ffmpeg -i prints 30000/1001 as "29.97": the edge install (no PyAV) must still get the
    rate PyAV reads, to the last bit, or its bitrates and shot lengths drift from the corpus's
    (carphone, 29.97 fps, read 29.97 before)."""
    path = tmp_path / f"rate.{ext}"
    run_ffmpeg(["-f", "lavfi", "-i", f"testsrc2=size=64x48:rate={rate}", "-frames:v", "6",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], what="rate clip")
    with_av = probe_video(path)
    monkeypatch.setattr(video_mod, "_import_av", lambda: None)
    fps = probe_video(path).fps
    if ext == "mp4":  # MP4 stores the rational: the same double
        assert fps == with_av.fps == float(Fraction(rate))
    else:  # Matroska stores a frame duration in ns, so PyAV's rate is not the rational either:
        # within 5e-7 (5e-8 here; the printed "59.94" alone is 1.05e-6 off PyAV's 59.940063)
        assert fps == pytest.approx(with_av.fps, rel=5e-7)


# ------------------------------------------------------------------------------------------
# Chunking
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["raw", "y4m", "mkv"])
def test_chunking_concatenates_to_whole(clips: dict[str, Clip], kind: str) -> None:
    clip = clips["420odd"]
    path, opts = clip.path(kind), clip.opts(kind)
    (whole,) = list(iter_frames(path, chunk=1000, planes="yuv", **opts))
    assert len(whole) == N_FRAMES
    for chunk in (1, 2, 3, 7):
        parts = list(iter_frames(path, chunk=chunk, planes="yuv", **opts))
        assert [p.start for p in parts] == list(range(0, N_FRAMES, chunk))
        assert [len(p) for p in parts[:-1]] == [chunk] * (len(parts) - 1)
        assert sum(len(p) for p in parts) == N_FRAMES
        for name in ("y", "u", "v"):
            np.testing.assert_array_equal(
                np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name)
            )
        # Chunks own their memory: editing one never changes another.
        if len(parts) > 1:
            parts[0].y[...] = 0
            np.testing.assert_array_equal(parts[-1].y, whole.y[parts[-1].start :])


@pytest.mark.parametrize("first_read_frames", [1, 2, 3])
def test_a_container_chunk_larger_than_the_clip_grows_its_buffer_as_frames_arrive(
    clips: dict[str, Clip], monkeypatch: pytest.MonkeyPatch, first_read_frames: int
) -> None:
    # A container's frame count is unknown until decoded: the read starts small and doubles
    # (chunk=100000 once reserved 2.4 GB for 12 frames). Frames must be those of a plain read.
    clip = clips["420odd"]
    fb = frame_size_bytes(clip.width, clip.height, clip.pix_fmt)
    (whole,) = list(iter_frames(clip.mkv, chunk=N_FRAMES, planes="yuv"))
    import tracemalloc

    tracemalloc.start()
    try:
        list(iter_frames(clip.mkv, chunk=10**6, planes="yuv"))  # 10**6 frames: 4.8 GB
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * video_mod._FIRST_READ_BYTES
    monkeypatch.setattr(video_mod, "_FIRST_READ_BYTES", first_read_frames * fb)
    for chunk in (4, N_FRAMES, 10**6):
        parts = list(iter_frames(clip.mkv, chunk=chunk, planes="yuv"))
        assert [len(p) for p in parts] == ([chunk, N_FRAMES - chunk] if chunk < N_FRAMES
                                           else [N_FRAMES])
        for name in ("y", "u", "v"):
            np.testing.assert_array_equal(
                np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name))


# ------------------------------------------------------------------------------------------
# Scaling
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "size"),
    [
        ("420", "mkv", (96, 72)),
        ("420", "raw", (33, 25)),
        ("420p10", "y4m", (40, 30)),
        ("444odd", "mkv", (32, 24)),
    ],
)
def test_scale_to_matches_ffmpeg_scale_filter(
    clips: dict[str, Clip], name: str, kind: str, size: tuple[int, int]
) -> None:
    clip = clips[name]
    w, h = size
    if kind == "raw":
        input_args = [
            "-f",
            "rawvideo",
            "-pix_fmt",
            clip.pix_fmt,
            "-s",
            f"{clip.width}x{clip.height}",
            "-i",
            str(clip.raw),
        ]
    else:
        input_args = ["-i", str(clip.path(kind))]
    c = read_all(clip.path(kind), planes="yuv", scale_to=size, **clip.opts(kind))
    assert c.y.shape == (N_FRAMES, h, w) and c.pix_fmt == clip.pix_fmt
    for graph in ("vf", "filter_complex"):
        assert_planes(c, list(ffmpeg_scaled(input_args, w, h, "bicubic", clip.pix_fmt, graph)))
    # The flags really reach the filter.
    lz = read_all(clip.path(kind), scale_to=size, scale_flags="lanczos", **clip.opts(kind))
    np.testing.assert_array_equal(lz.y, ffmpeg_scaled(input_args, w, h, "lanczos", clip.pix_fmt)[0])
    assert not np.array_equal(lz.y, c.y)


def test_scale_to_same_size_is_identity(clips: dict[str, Clip]) -> None:
    clip = clips["420"]
    a = read_all(clip.mkv, scale_to=(64, 48), planes="yuv")
    assert_planes(a, pyav_planes(clip.mkv))


def test_scale_flags_are_validated(clips: dict[str, Clip]) -> None:
    with pytest.raises(ValueError, match="scale_flags"):
        iter_frames(clips["420"].mkv, scale_to=(32, 24), scale_flags="bicubic,hflip")
    with pytest.raises(ValueError, match="planes"):
        iter_frames(clips["420"].mkv, planes="rgb")


# ------------------------------------------------------------------------------------------
# y4m parsing details
# ------------------------------------------------------------------------------------------


def test_y4m_frame_headers_with_parameters(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["420odd"]
    fb = frame_size_bytes(clip.width, clip.height, clip.pix_fmt)
    raw = clip.raw.read_bytes()
    frames = [raw[i * fb : (i + 1) * fb] for i in range(N_FRAMES)]
    # First header plain (tempts the size-arithmetic fast path), later ones with parameters.
    heads = [b"FRAME\n", b"FRAME Ip XFOO=1\n", b"FRAME\n", b"FRAME Ib\n"] + [b"FRAME\n"] * 3
    path = tmp_path / "params.y4m"
    path.write_bytes(
        b"YUV4MPEG2 W65 H49 F30000:1001 It A0:0 C420mpeg2 XYSCSS=420MPEG2\n"
        + b"".join(h + f for h, f in zip(heads, frames, strict=True))
    )
    info = probe_video(path)
    assert info.num_frames == N_FRAMES and info.fps == pytest.approx(29.97, abs=1e-3)
    c = read_all(path, planes="yuv", chunk=3)
    assert_planes(c, pyav_raw(clip))


def test_y4m_mono_and_default_colorspace(tmp_path: Path) -> None:
    data = np.arange(2 * 6 * 4, dtype=np.uint8).reshape(2, 6, 4)
    mono = tmp_path / "mono.y4m"
    mono.write_bytes(
        b"YUV4MPEG2 W4 H6 F25:1 Cmono\n" + b"".join(b"FRAME\n" + f.tobytes() for f in data)
    )
    c = read_all(mono, planes="yuv")
    assert c.pix_fmt == "gray" and c.u is None
    np.testing.assert_array_equal(c.y, data)
    # No C tag means 4:2:0.
    default = tmp_path / "default.y4m"
    default.write_bytes(b"YUV4MPEG2 W4 H6 F25:1\n" + (b"FRAME\n" + bytes(4 * 6 + 2 * 2 * 3)) * 3)
    assert probe_video(default).pix_fmt == "yuv420p" and probe_video(default).num_frames == 3
    # No C tag but mjpegtools' XYSCSS comment: its format, as ffmpeg's demuxer reads it.
    ten = tmp_path / "xyscss.y4m"
    ten.write_bytes(b"YUV4MPEG2 W4 H6 F25:1 XYSCSS=420P10\n"
                    + (b"FRAME\n" + bytes(2 * (4 * 6 + 2 * 2 * 3))) * 3)
    info = probe_video(ten)
    assert (info.pix_fmt, info.bit_depth, info.num_frames) == ("yuv420p10le", 10, 3)
    with av.open(str(ten)) as container:  # ffmpeg's own y4m demuxer agrees
        assert container.streams.video[0].format.name == "yuv420p10le"


def test_y4m_truncated_last_frame(clips: dict[str, Clip], tmp_path: Path) -> None:
    path = tmp_path / "trunc.y4m"
    path.write_bytes(clips["420"].y4m.read_bytes()[:-10])
    with pytest.raises(VideoInputError, match=r"trunc\.y4m.*truncated"):
        probe_video(path)
    bad = tmp_path / "bad.y4m"
    bad.write_bytes(b"NOTY4M W4 H4\n" + bytes(100))
    with pytest.raises(VideoInputError, match=r"bad\.y4m"):
        probe_video(bad)
    odd = tmp_path / "odd.y4m"
    odd.write_bytes(b"YUV4MPEG2 W4 H4 C411\nFRAME\n" + bytes(24))
    with pytest.raises(VideoInputError, match="C411"):
        probe_video(odd)


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoInputError, match=r"nope\.mp4: no such file"):
        probe_video(missing)
    with pytest.raises(VideoInputError, match="no such file"):
        iter_frames(missing)  # raised at call time, not on first next()
    with pytest.raises(VideoInputError, match="directory"):
        probe_video(tmp_path)


def test_garbage_and_audio_only(misc: dict[str, Path]) -> None:
    with pytest.raises(VideoInputError, match=r"garbage\.mp4"):
        read_all(misc["garbage"])
    with pytest.raises(VideoInputError, match=r"audio\.mp4: has no video stream"):
        read_all(misc["audio"])
    with pytest.raises(VideoInputError, match=r"rgb\.mkv.*rgb24"):
        read_all(misc["rgb"])


def test_undecodable_video(clips: dict[str, Clip], tmp_path: Path) -> None:
    # An mp4 whose moov is intact but whose frame data is all zeros.
    data = bytearray(clips["420"].mp4.read_bytes())  # type: ignore[union-attr]
    start = data.find(b"mdat") + 4
    end = data.find(b"moov")
    assert start > 3 and end > start  # ffmpeg writes moov after mdat by default
    data[start : end - 4] = bytes(end - 4 - start)
    path = tmp_path / "zeros.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(VideoInputError, match=r"zeros\.mp4.*(no decodable|ffmpeg failed)"):
        read_all(path)


def test_variable_frame_rate_is_not_resampled(misc: dict[str, Path]) -> None:
    # Without -fps_mode passthrough ffmpeg's rawvideo output duplicates these 6 frames to 30.
    c = read_all(misc["vfr"], planes="yuv")
    assert len(c) == 6
    assert_planes(c, pyav_planes(misc["vfr"]))


def test_truncated_container_warns_and_keeps_decoded_frames(
    misc: dict[str, Path], tmp_path: Path
) -> None:
    data = misc["big_mkv"].read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.warns(UserWarning, match=r"cut\.mkv: ffmpeg reported decoding errors"):
        c = read_all(path)
    assert 0 < len(c) < 40
    np.testing.assert_array_equal(c.y, pyav_planes(misc["big_mkv"])[0][: len(c)])
    # the warning names the code iterating the frames (here), not a frame above it
    with pytest.warns(UserWarning, match="decoding errors") as caught:
        for _ in iter_frames(path):
            pass
    assert caught[0].filename == __file__


def test_ffmpeg_failure_reports_stderr(clips: dict[str, Clip], tmp_path: Path) -> None:
    info = probe_video(clips["420"].mkv)
    gone = tmp_path / "gone.mkv"
    it = video_mod._iter_ffmpeg(info, ["-i", str(gone)], 4, "y", None, "bicubic", None)
    with pytest.raises(VideoInputError, match=r"ffmpeg failed.*exit code.*gone\.mkv"):
        next(it)


def test_raw_needs_geometry_and_whole_frames(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["420"]
    with pytest.raises(VideoInputError, match=r"420\.yuv.*missing: width, height, pix_fmt"):
        probe_video(clip.raw)
    with pytest.raises(VideoInputError, match="missing: pix_fmt"):
        iter_frames(clip.raw, width=64, height=48)
    bad = tmp_path / "partial.yuv"
    bad.write_bytes(clip.raw.read_bytes() + b"xyz")
    with pytest.raises(VideoInputError, match=r"partial\.yuv.*frame") as exc:
        probe_video(bad, width=64, height=48, pix_fmt="yuv420p")
    assert "3 bytes" in str(exc.value) and str(64 * 48 * 3 // 2) in str(exc.value)
    with pytest.raises(VideoInputError, match="unsupported pixel format 'nv12'"):
        probe_video(clip.raw, width=64, height=48, pix_fmt="nv12")
    # Headerless data with another extension is raw when the geometry is given.
    other = tmp_path / "frames.bin"
    other.write_bytes(clip.raw.read_bytes())
    np.testing.assert_array_equal(read_all(other, **clip.raw_opts).y, read_all(clip.y4m).y)


def test_raw_with_wrong_bit_depth_is_caught(clips: dict[str, Clip]) -> None:
    # 8-bit 64x48 4:2:0 frames have the byte size of 10-bit 32x48 4:2:0 frames: reading them as
    # 10-bit must fail loudly (sample values > 1023), not return garbage.
    with pytest.raises(VideoInputError, match="above 1023"):
        read_all(clips["420"].raw, width=32, height=48, pix_fmt="yuv420p10le")


def test_declared_geometry_must_match_header(clips: dict[str, Clip]) -> None:
    with pytest.raises(VideoInputError, match="width 32 != 64"):
        probe_video(clips["420"].y4m, width=32)
    with pytest.raises(VideoInputError, match="pix_fmt"):
        probe_video(clips["420"].mkv, pix_fmt="yuv444p")
    assert probe_video(clips["420p10"].y4m, pix_fmt="yuv420p10").pix_fmt == "yuv420p10le"


# ------------------------------------------------------------------------------------------
# Pairs
# ------------------------------------------------------------------------------------------


def test_pairs_are_aligned(clips: dict[str, Clip]) -> None:
    clip = clips["420odd"]
    pairs = list(
        iter_frame_pairs(
            clip.raw, clip.mkv, chunk=3, ref_opts=clip.raw_opts, dist_opts={"planes": "yuv"}
        )
    )
    assert [(a.start, len(a)) for a, _ in pairs] == [(0, 3), (3, 3), (6, 1)]
    whole = read_all(clip.y4m, planes="yuv")
    for a, b in pairs:
        assert a.start == b.start and len(a) == len(b)
        assert a.u is None and b.u is not None
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(b.v, whole.v[b.start : b.stop])  # type: ignore[index]


def test_pairs_different_bit_depths(clips: dict[str, Clip]) -> None:
    pairs = list(iter_frame_pairs(clips["420p10"].y4m, clips["420"].mkv, chunk=4))
    assert [(a.bit_depth, b.bit_depth) for a, b in pairs] == [(10, 8), (10, 8)]
    assert pairs[0][0].y.dtype == np.uint16 and pairs[0][1].y.dtype == np.uint8


def test_pairs_size_mismatch(clips: dict[str, Clip], misc: dict[str, Path]) -> None:
    with pytest.raises(FrameMismatchError, match=r"64x48.*small\.mkv.*32x24") as exc:
        iter_frame_pairs(clips["420"].y4m, misc["small_mkv"])
    assert str(clips["420"].y4m) in str(exc.value)


def test_pairs_scale_dist_to_ref(clips: dict[str, Clip], misc: dict[str, Path]) -> None:
    ref = clips["420"].y4m
    pairs = list(iter_frame_pairs(ref, misc["small_mkv"], chunk=5, scale_dist_to_ref=True))
    dist = np.concatenate([b.y for _, b in pairs])
    assert dist.shape == (N_FRAMES, 48, 64)
    expected = ffmpeg_scaled(["-i", str(misc["small_mkv"])], 64, 48, "bicubic", "yuv420p")[0]
    np.testing.assert_array_equal(dist, expected)
    np.testing.assert_array_equal(np.concatenate([a.y for a, _ in pairs]), read_all(ref).y)


def test_pairs_known_counts_mismatch(clips: dict[str, Clip], misc: dict[str, Path]) -> None:
    ref, dist = clips["420"].y4m, misc["short_y4m"]
    # Both counts known from the files: detected at call time, before any frame is read.
    with pytest.raises(FrameMismatchError, match=r"420\.y4m has 7 frames.*short\.y4m has 5"):
        iter_frame_pairs(ref, dist)
    with pytest.warns(UserWarning, match=r"has 7 frames.*has 5 frames"):
        pairs = list(iter_frame_pairs(ref, dist, chunk=2, on_length_mismatch="prefix"))
    assert sum(len(a) for a, _ in pairs) == 5
    np.testing.assert_array_equal(np.concatenate([a.y for a, _ in pairs]), read_all(ref).y[:5])
    np.testing.assert_array_equal(np.concatenate([b.y for _, b in pairs]), read_all(dist).y)
    with pytest.raises(ValueError, match="on_length_mismatch"):
        iter_frame_pairs(ref, dist, on_length_mismatch="pad")


@pytest.mark.parametrize("chunk", [2, 5, 16])
@pytest.mark.parametrize("ref_kind", ["mkv", "raw"])
def test_pairs_streamed_counts_mismatch(
    clips: dict[str, Clip], misc: dict[str, Path], chunk: int, ref_kind: str
) -> None:
    # The container's count is unknown until decoded: the mismatch shows when it ends first.
    clip = clips["420"]
    ref, short = clip.path(ref_kind), misc["short_mkv"]
    ropts = clip.opts(ref_kind)
    with pytest.raises(FrameMismatchError, match=r"has 7 frames.*short\.mkv has 5 frames"):
        list(iter_frame_pairs(ref, short, chunk=chunk, ref_opts=ropts))
    # Swapped roles: the reference is the short one; the longer one is counted to the end.
    with pytest.raises(FrameMismatchError, match=r"short\.mkv has 5 frames.*has 7 frames"):
        list(iter_frame_pairs(short, ref, chunk=chunk, dist_opts=ropts))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = list(
            iter_frame_pairs(ref, short, chunk=chunk, ref_opts=ropts, on_length_mismatch="prefix")
        )
    assert any("short.mkv has 5 frames" in str(w.message) for w in caught)
    assert sum(len(a) for a, _ in pairs) == 5
    assert all(len(a) == len(b) and a.start == b.start for a, b in pairs)
    np.testing.assert_array_equal(np.concatenate([a.y for a, _ in pairs]), read_all(clip.y4m).y[:5])
    np.testing.assert_array_equal(np.concatenate([b.y for _, b in pairs]), read_all(short).y)


def test_pairs_option_validation(clips: dict[str, Clip]) -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        iter_frame_pairs(clips["420"].y4m, clips["420"].mkv, ref_opts={"widht": 64})
    with pytest.raises(ValueError, match="not both"):
        iter_frame_pairs(
            clips["420"].y4m,
            clips["420"].mkv,
            scale_dist_to_ref=True,
            dist_opts={"scale_to": (64, 48)},
        )


# ------------------------------------------------------------------------------------------
# Process hygiene and dependencies
# ------------------------------------------------------------------------------------------


@pytest.fixture
def popens(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """Record every Popen the video module starts."""
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, **kw)
            started.append(self)

    monkeypatch.setattr(video_mod.subprocess, "Popen", Recording)
    return started


def test_early_close_kills_ffmpeg(
    misc: dict[str, Path], popens: list[subprocess.Popen[bytes]]
) -> None:
    it = iter_frames(misc["big_mkv"], chunk=1)
    first = next(it)
    assert first.y.shape == (1, 240, 320)
    (proc,) = popens
    # 40 frames of 115 kB cannot fit a pipe: ffmpeg is still alive, blocked on writing.
    assert proc.poll() is None
    t0 = time.monotonic()
    it.close()
    assert time.monotonic() - t0 < 5
    assert proc.returncode is not None  # reaped: no zombie


def test_abandoned_pair_iterator_kills_both(
    misc: dict[str, Path], popens: list[subprocess.Popen[bytes]]
) -> None:
    it = iter_frame_pairs(misc["big_mkv"], misc["big_mkv"], chunk=1)
    next(it)
    assert len(popens) == 2 and all(p.poll() is None for p in popens)
    del it  # garbage collection closes the generator, whose finally stops both ffmpegs
    assert all(p.returncode is not None for p in popens)


def test_importable_without_torch_or_pyav(clips: dict[str, Clip]) -> None:
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"  # any 'import torch' now raises ImportError
        "sys.modules['av'] = None\n"
        "import vmafdistill.io as vio\n"
        f"info = vio.probe_video({str(clips['420'].mp4)!r})\n"
        "assert (info.width, info.height, info.pix_fmt) == (64, 48, 'yuv420p'), info\n"
        f"assert vio.read_all({str(clips['420'].mp4)!r}).y.shape == (7, 48, 64)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=False
    )
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------- prefetch


def test_prefetched_keeps_order_errors_and_closes_early() -> None:
    """Decode-ahead yields exactly the inner iterator's items in order, raises the inner
    error at the item where it happened, and an early break closes the inner generator (a
    decoder subprocess would be reaped) without hanging."""
    import threading

    from vmafdistill.io.prefetch import prefetched

    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))
    assert list(prefetched(iter(range(5)), depth=0)) == list(range(5))

    def failing():
        yield 1
        yield 2
        raise VideoInputError("broken frame 3")

    got = []
    with pytest.raises(VideoInputError, match="broken frame 3"):
        for item in prefetched(failing(), depth=2):
            got.append(item)
    assert got == [1, 2]

    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    gen = prefetched(endless(), depth=2)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()
    assert closed.wait(5.0)

    def fails_to_close():  # e.g. a decoder whose subprocess cannot be reaped
        try:
            yield from range(100)
        finally:
            raise VideoInputError("cleanup failed")

    gen = prefetched(fails_to_close(), depth=2)
    assert next(gen) == 0
    with pytest.raises(VideoInputError, match="cleanup failed"):  # not lost on the reader
        gen.close()


def test_video_features_with_and_without_prefetch_agree(tmp_path) -> None:
    """The features of a real decode are bit-identical whether decoding runs ahead or not."""
    from vmafdistill._ffmpeg import run_ffmpeg
    from vmafdistill.features.frame_torch import video_features

    clip = tmp_path / "clip.mp4"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=1.5",
                "-pix_fmt", "yuv420p", "-c:v", "libx264", "-crf", "30", str(clip)], what="clip")
    a = video_features(clip, chunk=8, prefetch=0)
    b = video_features(clip, chunk=8, prefetch=2)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_an_ffmpeg_failure_a_retry_may_not_meet_is_transient(tmp_path: Path) -> None:
    """A full disk (or a killed ffmpeg) is marked transient, so Ray retries the job; an
    encoder's refusal is the input's own problem and is not."""
    import signal
    import subprocess
    from unittest import mock

    from vmafdistill.errors import ToolError, is_transient

    with pytest.raises(ToolError, match="No space left on device") as full:
        run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x64:duration=1",
                    "-f", "rawvideo", "/dev/full"], what="writing")
    assert is_transient(full.value)
    with pytest.raises(ToolError) as refused:
        run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x64:duration=1",
                    "-c:v", "libx264", "-preset", "nosuch", "-f", "null", "-"], what="encoding")
    assert not is_transient(refused.value)
    killed = subprocess.CompletedProcess([], -signal.SIGKILL, b"", b"")
    with mock.patch("subprocess.run", return_value=killed), \
            pytest.raises(ToolError, match="exit -9") as oom:
        run_ffmpeg(["-version"], what="encoding")
    assert is_transient(oom.value)
    # a crash on a malformed file is the file's own: not retried; a decode killed from
    # outside is, as an encode is
    crashed = subprocess.CompletedProcess([], -signal.SIGSEGV, b"", b"")
    with mock.patch("subprocess.run", return_value=crashed), \
            pytest.raises(ToolError) as segv:
        run_ffmpeg(["-version"], what="encoding")
    assert not is_transient(segv.value)
    from types import SimpleNamespace

    from vmafdistill.io.video import _check_end

    info = SimpleNamespace(path="clip.mp4", pix_fmt="yuv420p")
    for rc, transient in ((-signal.SIGKILL, True), (-signal.SIGSEGV, False), (1, False)):
        with pytest.raises(VideoInputError, match="failed to decode") as decode:
            _check_end(info, rc, "", None, 3, 0, (64, 48))
        assert is_transient(decode.value) is transient, rc
    # an OSError behind an error is transient unless a retry meets it again (a missing or
    # forbidden file); raised `from None`, the handled error still tells
    for cause, transient in ((FileNotFoundError(2, "gone"), False),
                             (PermissionError(13, "no"), False),
                             (OSError(8, "Exec format error"), False),  # a wrong-arch ffmpeg
                             (BlockingIOError(11, "fork: try again"), True),
                             (OSError(5, "I/O error"), True)):
        try:
            try:
                raise cause
            except OSError:
                raise ToolError("cannot run ffmpeg") from None
        except ToolError as exc:
            assert is_transient(exc) is transient, cause


@pytest.mark.parametrize("ext", ["mp4", "mkv", "ts", "y4m"])
def test_a_container_given_as_raw_is_named_not_read_as_samples(tmp_path: Path, ext: str) -> None:
    """``score_files(ref_raw=...)`` (or ``.yuv`` naming) on a container was caught only where
    its size did not divide into frames; elsewhere its bytes were scored as YUV samples."""
    clip = tmp_path / f"c.{ext}"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-frames:v", "4",
                *(["-c:v", "libx264"] if ext != "y4m" else []), str(clip)], what="clip")
    frame = 64 * 48 * 3 // 2
    padded = tmp_path / f"padded.{ext}.yuv"  # its size a whole number of frames
    data = clip.read_bytes()
    padded.write_bytes(data + b"\0" * (-len(data) % frame))
    for path in (clip, padded):
        if path.suffix == ".y4m":
            continue  # .y4m is read by its header whatever the options
        with pytest.raises(VideoInputError, match=r"is an? .* file, not headerless raw YUV"):
            probe_video(path, width=64, height=48, pix_fmt="yuv420p")
    raw = tmp_path / "r.yuv"  # real raw YUV of the same content is still read
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-frames:v", "4",
                "-f", "rawvideo", "-pix_fmt", "yuv420p", str(raw)], what="raw")
    assert probe_video(raw, width=64, height=48, pix_fmt="yuv420p").num_frames == 4
    # flat luma 71 (0x47, TS's sync byte) at 8 bits, 327 (low byte 0x47) at 10: raw, not TS
    flat = tmp_path / "flat.yuv"
    flat.write_bytes(bytes([71]) * frame * 2)
    assert probe_video(flat, width=64, height=48, pix_fmt="yuv420p").num_frames == 2
    flat.write_bytes(np.full(frame * 2, 327, "<u2").tobytes())
    assert probe_video(flat, width=64, height=48, pix_fmt="yuv420p10le").num_frames == 2
    if ext != "y4m":  # a container named .yuv: renaming is the way, not leaving options out
        named = tmp_path / "named.yuv"
        named.write_bytes(data)
        for opts in ({}, {"width": 64, "height": 48, "pix_fmt": "yuv420p"}):
            with pytest.raises(VideoInputError, match="rename it to its container's suffix"):
                probe_video(named, **opts)


def test_an_empty_or_unreadable_container_is_named_without_the_raw_hint(tmp_path: Path) -> None:
    """An empty .mp4 in a folder corpus read "Invalid data found ...; if it is headerless raw
    YUV, give width, height and pix_fmt", which a corpus cannot take (nor is an .mp4 raw)."""
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoInputError, match=r"empty\.mp4: an empty file \(0 bytes\)$"):
        probe_video(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video " * 100)
    with pytest.raises(VideoInputError, match="not a readable video file") as info:
        probe_video(junk)
    assert "raw YUV" not in str(info.value)
    other = tmp_path / "capture.dat2"  # no container's name: it may be raw
    other.write_bytes(b"\x10" * 4096)
    with pytest.raises(VideoInputError, match="if it is headerless raw YUV"):
        probe_video(other)
