"""Encode one ladder rung (codec x height x CRF x preset) with the packaged ffmpeg.

Encodes are made deterministic (single-threaded encoders, bit-exact flags, no metadata) so a
rerun reproduces the same bitstream and cached labels stay valid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._ffmpeg import run_ffmpeg
from .errors import VmafDistillError

#: ffmpeg encoder and deterministic settings per codec name used in ladder configs.
CODECS: dict[str, dict[str, Any]] = {
    "h264": {"encoder": "libx264", "args": ["-x264-params", "threads=1"], "ext": "mp4"},
    "h265": {
        "encoder": "libx265",
        "args": ["-x265-params", "pools=1:frame-threads=1:log-level=error"],
        "ext": "mp4",
    },
    "av1": {"encoder": "libsvtav1", "args": ["-svtav1-params", "lp=1"], "ext": "mp4"},
    "vp9": {"encoder": "libvpx-vp9", "args": ["-threads", "1", "-b:v", "0"], "ext": "webm"},
}


@dataclass(frozen=True)
class Rung:
    """One ladder rung; ``height`` is pixels (>= 1) or a fraction of the source height."""

    codec: str
    height: float
    crf: int
    preset: str = "medium"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rung:
        """Build from a config mapping, checking the codec name."""
        if d.get("codec") not in CODECS:
            raise VmafDistillError(f"ladder rung {d}: codec must be one of {sorted(CODECS)}")
        return cls(codec=d["codec"], height=float(d["height"]), crf=int(d["crf"]),
                   preset=str(d.get("preset", "medium")))

    def size_for(self, src_width: int, src_height: int) -> tuple[int, int]:
        """Delivery size: absolute or fractional height, width keeping the aspect, both even."""
        h = self.height * src_height if self.height <= 1.0 else self.height
        out_h = max(2, round(h / 2.0) * 2)
        out_w = max(2, round(src_width * out_h / src_height / 2.0) * 2)
        return out_w, out_h

    def label(self, src_width: int, src_height: int) -> str:
        """Short name such as ``h264_640x360_crf26`` (``_<preset>`` appended unless medium)."""
        w, h = self.size_for(src_width, src_height)
        suffix = "" if self.preset == "medium" else f"_{self.preset}"
        return f"{self.codec}_{w}x{h}_crf{self.crf}{suffix}"


def encode_rung(
    source: str | Path,
    rung: Rung,
    src_size: tuple[int, int],
    out_path: str | Path,
    *,
    scale_flags: str = "bicubic",
) -> Path:
    """Scale ``source`` to the rung's size and encode it; written atomically to ``out_path``.

    ``scale_flags`` are swscale's: the corpus passes ``bicubic+accurate_rnd+bitexact`` so the
    downscale (like the teacher's upscale) is identical on every CPU.
    """
    spec = CODECS[rung.codec]
    w, h = rung.size_for(*src_size)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.partial{out.suffix}")
    preset = ["-preset", rung.preset] if rung.codec in ("h264", "h265") else []
    if rung.codec == "av1":
        preset = ["-preset", "8"]
    args = [
        # -noautorotate: encode the coded frames, the orientation the teacher's reference
        # decode (vmafdistill.io, also -noautorotate) compares them with.
        "-y", "-noautorotate", "-i", str(source), "-map", "0:V:0", "-an",
        "-fps_mode", "passthrough",
        "-vf", f"scale={w}:{h}:flags={scale_flags}",
        "-c:v", spec["encoder"], *preset, "-crf", str(rung.crf), *spec["args"],
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        str(tmp),
    ]
    try:
        run_ffmpeg(args, what=f"encoding {Path(source).name} as {rung.label(*src_size)}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def bitrate_kbps(path: str | Path, num_frames: int, fps: float) -> float:
    """Mean bitrate of an encoded file in kb/s (container overhead included)."""
    return Path(path).stat().st_size * 8.0 / (num_frames / fps) / 1000.0
