"""Encode one ladder rung (codec x height x CRF x preset) with the packaged ffmpeg.

Encodes are made deterministic (single-threaded encoders, bit-exact flags, no metadata) so a
rerun reproduces the same bitstream and cached labels stay valid.
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._ffmpeg import (
    coded_picture_args,
    decoder_thread_args,
    ffmpeg_exe,
    input_url,
    output_url,
    run_ffmpeg,
)
from .codecs import CODECS
from .errors import VmafDistillError
from .folders import partial_file

#: The fewest lines a rung given in lines may have: a student's pixel statistics need a 3x3
#: interior, and encoders and players are not meant for smaller pictures.
MIN_RUNG_LINES = 16


@functools.cache
def encoder_pix_fmts(encoder: str) -> tuple[str, ...]:
    """The pixel formats ffmpeg's ``encoder`` takes (``ffmpeg -h encoder=...``; empty when
    ffmpeg does not say, and the encode's own check then tells)."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-h", f"encoder={encoder}"],
                         capture_output=True, text=True, check=False).stdout
    found = re.search(r"Supported pixel formats:([^\n]*)", out)
    return tuple(found.group(1).split()) if found else ()


@dataclass(frozen=True)
class Rung:
    """One ladder rung; ``height`` is pixels (>= 1) or a fraction of the source height.

    ``pix_fmt`` is the delivery pixel format (e.g. ``yuv420p`` for an 8-bit ladder of 10-bit
    masters); None keeps the source's, or the nearest one the encoder takes.
    """

    codec: str
    height: float
    crf: int
    preset: str = "medium"
    pix_fmt: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rung:
        """Build from a config mapping, checking its keys, the codec name, the numbers and the
        pixel format (a misspelt key, ``crf: abc`` or a preset the encoder ignores were a
        traceback or passed unsaid: an av1 ``preset: 4`` renamed the variant, encoded the same)."""
        from .config import checked_number

        unknown = sorted(set(d) - {"codec", "height", "crf", "preset", "pix_fmt"})
        if unknown:
            raise VmafDistillError(f"ladder rung {d}: unknown key(s) {unknown} (a rung takes "
                                   "codec, height, crf, preset, pix_fmt)")
        if d.get("codec") not in CODECS:
            raise VmafDistillError(f"ladder rung {d}: codec must be one of {sorted(CODECS)}")
        codec = CODECS[d["codec"]]
        if "preset" in d and codec.presets is None:
            fixed = (f"preset {codec.fixed_preset}" if codec.fixed_preset
                     else f"{codec.encoder}'s default preset")
            raise VmafDistillError(
                f"ladder rung {d}: {codec.family} takes no preset; it encodes at {fixed} "
                "(drop it)")
        if "preset" in d and d["preset"] not in codec.presets:  # failed at the encode, unsaid
            raise VmafDistillError(f"ladder rung {d}: preset {d.get('preset')!r} is none of "
                                   f"{codec.encoder}'s: {', '.join(codec.presets)}")
        height = checked_number(f"ladder rung {d}: height", d.get("height"), float, 0, False)
        if height > 1 and (height != int(height) or height < MIN_RUNG_LINES):
            # 1.5 was a 2-line rung, 2 one the features refused after its encode and labels
            raise VmafDistillError(
                f"ladder rung {d}: height {d.get('height')}: above 1 it is lines, a whole "
                f"number of at least {MIN_RUNG_LINES} (up to 1 a fraction of the source's)")
        # x264/x265 clamped 99 to 51 unsaid: two rungs, one encode, one labelled crf 99
        crf = checked_number(f"ladder rung {d}: crf", d.get("crf"), int, codec.crf_min, True,
                             codec.crf_max + 1)
        pix_fmt = d.get("pix_fmt")
        if pix_fmt is not None:
            from .io.video import SUPPORTED_PIX_FMTS, pix_fmt_layout

            if pix_fmt not in SUPPORTED_PIX_FMTS or not pix_fmt_layout(pix_fmt).has_chroma:
                raise VmafDistillError(
                    f"ladder rung {d}: pix_fmt must be a YUV format of "
                    f"{[f for f in SUPPORTED_PIX_FMTS if f.startswith('yuv')]}")
            takes = encoder_pix_fmts(codec.encoder)
            if takes and pix_fmt not in takes:  # libx264 12-bit: every job encoded, then failed
                raise VmafDistillError(
                    f"ladder rung {d}: {codec.encoder} cannot encode pix_fmt "
                    f"{pix_fmt}; it takes {', '.join(f for f in takes if f.startswith('yuv'))}")
        return cls(codec=d["codec"], height=height, crf=crf,
                   preset=str(d.get("preset", "medium")),
                   pix_fmt=None if pix_fmt is None else str(pix_fmt))

    def size_for(self, src_width: int, src_height: int) -> tuple[int, int]:
        """Delivery size: absolute or fractional height, width keeping the aspect, both even."""
        h = self.height * src_height if self.height <= 1.0 else self.height
        out_h = max(2, round(h / 2.0) * 2)
        out_w = max(2, round(src_width * out_h / src_height / 2.0) * 2)
        return out_w, out_h

    def label(self, src_width: int, src_height: int) -> str:
        """Short name such as ``h264_640x360_crf26`` (``_<preset>`` appended unless medium,
        ``_<pix_fmt>`` when the rung sets one)."""
        w, h = self.size_for(src_width, src_height)
        suffix = "" if self.preset == "medium" else f"_{self.preset}"
        if self.pix_fmt is not None:
            suffix += f"_{self.pix_fmt}"
        return f"{self.codec}_{w}x{h}_crf{self.crf}{suffix}"


def encode_rung(
    source: str | Path,
    rung: Rung,
    src_size: tuple[int, int],
    out_path: str | Path,
    *,
    scale_flags: str = "bicubic",
    decoder_threads: int | None = None,
) -> Path:
    """Scale ``source`` to the rung's size and encode it; written atomically to ``out_path``.

    ``scale_flags`` are swscale's: the corpus passes ``bicubic+accurate_rnd+bitexact`` so the
    downscale (like the teacher's upscale) is identical on every CPU. ``decoder_threads``:
    the source decoder's (the corpus passes 1: a damaged source's concealed pictures are then
    the same on every run, and the same as the teacher's reference decode).
    """
    spec = CODECS[rung.codec]
    w, h = rung.size_for(*src_size)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    preset = (["-preset", rung.preset] if spec.presets is not None
              else ["-preset", spec.fixed_preset] if spec.fixed_preset else [])
    with partial_file(out) as tmp:
        args = [
            # the coded frames (no autorotation, no container cropping), the pictures the
            # teacher's reference decode (vmafdistill.io, the same options) compares them with
            "-y", *decoder_thread_args(decoder_threads),
            *coded_picture_args(), "-i", input_url(source), "-map", "0:V:0", "-an",
            "-fps_mode", "passthrough",
            "-vf", f"scale={w}:{h}:flags={scale_flags}",
            *(["-pix_fmt", rung.pix_fmt] if rung.pix_fmt else []),
            "-c:v", spec.encoder, *preset, "-crf", str(rung.crf), *spec.encoder_args,
            "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
            output_url(tmp),
        ]
        what = f"encoding {Path(source).name} as {rung.label(*src_size)}"
        run_ffmpeg(args, what=what)
        if rung.pix_fmt is not None:
            _check_pix_fmt(tmp, rung, what)
    return out


def _check_pix_fmt(encoded: Path, rung: Rung, what: str) -> None:
    """ffmpeg swaps a format the encoder cannot take for the nearest one with only a warning
    (libx264 has no 12-bit): a rung that asked for one format must not deliver another."""
    from .io.video import probe_video

    got = probe_video(encoded).pix_fmt
    # a full-range source's rung keeps its range: its yuv420p decodes as yuvj420p (the same
    # samples' format; it was refused as "libx264 cannot encode pix_fmt yuv420p")
    if got.replace("yuvj", "yuv") != str(rung.pix_fmt).replace("yuvj", "yuv"):
        raise VmafDistillError(
            f"{what}: {CODECS[rung.codec].encoder} cannot encode pix_fmt {rung.pix_fmt} "
            f"(ffmpeg made {got}); choose a format that encoder takes")
