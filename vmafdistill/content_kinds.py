"""Deterministic content *kinds* rendered from packaged photographs (no media committed).

The shipped student's first corpus had three real clips and five photo pans: no flat-shaded
animation, no static camera with small moving objects, no hand-held shake, no film grain, no dark
scene, no screen content, and on such footage it read too high (issue 17: +11 VMAF on animation).
Each kind here is a small, readable renderer that turns a photograph into what that footage
looks like to an encoder:

``cartoon``   flat colour regions with black outlines (mode filter + posterise + edge lines),
              panned, with flat-shaded sprites moving over it;
``static``    a fixed camera on a still scene with small objects crossing it and sensor noise;
``handheld``  a slow pan with hand shake (sub-pixel, a sum of seeded sinusoids);
``grain``     a pan with spatially correlated film grain, new every frame;
``dark``      a low-light pan (linear light scaled to ~1/25, then sensor noise);
``screen``    a scrolling document under a static toolbar with a moving cursor (sharp text).

Frames are rendered in numpy from a seeded generator and converted to 4:2:0 here (integer BT.601
limited range), then encoded near-losslessly with x264 (one thread, bitexact): the pixels do not
depend on the CPU's SIMD paths (Pillow's Lanczos resize of the photo is integer arithmetic).
Recipes (which photographs, speeds, strengths) live in ``conf/sources/kinds.yaml``.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._ffmpeg import ffmpeg_exe, output_url
from .config import refuse_unknown_keys
from .errors import ToolError, VideoInputError, VmafDistillError
from .folders import already_made, partial_file, recipe_stamp

__all__ = [
    "KINDS",
    "KindShot",
    "KindSource",
    "film_kind_source",
    "kind_sources_from_config",
    "packaged_photo",
    "rgb_to_yuv420",
]


@dataclass(frozen=True)
class KindShot:
    """One shot of a kind source: a photograph, a pan speed (output pixels per second; the
    screen kind's ``vy`` is its scroll speed, 0 a still page: recipes give it
    :data:`SCREEN_SCROLL` where they say none) and the kind's strength parameter (grain sigma,
    darkness, shake amplitude ...; 0 = the kind's default)."""

    photo: Path
    vx: float = 0.0
    vy: float = 0.0
    strength: float = 0.0


@dataclass(frozen=True)
class KindSource:
    """A source clip of one kind: its shots joined by hard cuts."""

    name: str
    kind: str
    shots: tuple[KindShot, ...]
    seed: int = 0
    width: int = 480
    height: int = 270
    fps: int = 25
    seconds_each: float = 2.0
    margin: int = 100
    extra: Mapping[str, Any] = field(default_factory=dict)


def _open_photo(photo: Path) -> Any:
    """The photograph as a PIL RGB image, or one error naming it (PIL's
    UnidentifiedImageError was a traceback; the screen kind opened its page bare)."""
    from PIL import Image

    if not Path(photo).is_file():
        raise VideoInputError(f"photograph not found: {photo}")
    try:
        with Image.open(photo) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise VideoInputError(f"photograph {photo}: not an image PIL reads ({exc})") from None


def _load_cover(photo: Path, width: int, height: int) -> np.ndarray:
    """The photograph as uint8 RGB, Lanczos-scaled to cover ``width`` x ``height``."""
    from PIL import Image

    rgb = _open_photo(photo)
    s = max(width / rgb.width, height / rgb.height)
    size = (max(width, math.ceil(rgb.width * s)), max(height, math.ceil(rgb.height * s)))
    return np.asarray(rgb.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


def _pan_origin(t: float, v: float, room: int) -> float:
    """Crop origin along one axis at time ``t``: positive speeds start at 0, negative ones at
    the far edge; clamped to the photo."""
    pos = t * v if v >= 0 else room + t * v
    return min(max(pos, 0.0), float(room))


def _crop(img: np.ndarray, x: float, y: float, width: int, height: int) -> np.ndarray:
    """Integer-position crop (sub-pixel positions are floored)."""
    xi, yi = math.floor(x), math.floor(y)
    return img[yi:yi + height, xi:xi + width]


def _crop_subpixel(img: np.ndarray, x: float, y: float, width: int, height: int) -> np.ndarray:
    """Bilinear crop at a sub-pixel origin (hand-held shake moves by fractions of a pixel)."""
    xi, yi = math.floor(x), math.floor(y)
    fx, fy = x - xi, y - yi
    a = img[yi:yi + height + 1, xi:xi + width + 1].astype(np.float32)
    top = a[:-1, :-1] * (1 - fx) + a[:-1, 1:] * fx
    bot = a[1:, :-1] * (1 - fx) + a[1:, 1:] * fx
    return np.clip(np.rint(top * (1 - fy) + bot * fy), 0, 255).astype(np.uint8)


def _add_noise(rgb: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Add a luminance noise field (same on R, G, B) and clip to 8 bits."""
    return np.clip(rgb.astype(np.int16) + np.rint(noise).astype(np.int16)[..., None],
                   0, 255).astype(np.uint8)


def _pan_frames(src: KindSource, shot: KindShot, img: np.ndarray,
                n: int) -> Iterator[tuple[float, np.ndarray]]:
    room_x, room_y = img.shape[1] - src.width, img.shape[0] - src.height
    for i in range(n):
        t = i / src.fps
        yield t, _crop(img, _pan_origin(t, shot.vx, room_x), _pan_origin(t, shot.vy, room_y),
                       src.width, src.height)


# ---------------------------------------------------------------------------------------------
# The kinds: each yields n RGB frames (height, width, 3) uint8 for one shot.


def _cartoonise(img: np.ndarray) -> np.ndarray:
    """Flat colour regions with dark outlines: a mode filter removes texture, 3-bit posterise
    flattens shading, and pixels with a strong luma gradient become outline."""
    from PIL import Image, ImageFilter, ImageOps

    flat = Image.fromarray(img).filter(ImageFilter.ModeFilter(7))
    flat = np.asarray(ImageOps.posterize(flat, 3), dtype=np.uint8)
    luma = flat.astype(np.int32) @ np.array([77, 150, 29], dtype=np.int32) >> 8
    gx = np.abs(np.diff(luma, axis=1, prepend=luma[:, :1]))
    gy = np.abs(np.diff(luma, axis=0, prepend=luma[:1]))
    out = flat.copy()
    out[(gx + gy) > 48] = (16, 16, 24)
    return out


def _render_cartoon(src: KindSource, shot: KindShot, rng: np.random.Generator,
                    n: int) -> Iterator[np.ndarray]:
    from PIL import Image, ImageDraw

    bg = _cartoonise(_load_cover(shot.photo, src.width + src.margin, src.height + src.margin))
    n_sprites = int(shot.strength) or 3
    palette = [(230, 60, 50), (250, 200, 40), (60, 140, 230), (90, 200, 90), (240, 240, 240)]
    sprites = []
    for k in range(n_sprites):
        r = int(rng.integers(14, 40))
        sprites.append((r, rng.uniform(0, src.width), rng.uniform(0, src.height),
                        rng.uniform(-90, 90), rng.uniform(-50, 50), palette[k % len(palette)]))
    for t, frame in _pan_frames(src, shot, bg, n):
        img = Image.fromarray(np.ascontiguousarray(frame))
        draw = ImageDraw.Draw(img)
        for r, x0, y0, vx, vy, colour in sprites:
            # bounce inside the frame: a triangle wave of the linear path
            x = _bounce(x0 + vx * t, src.width - 2 * r) + r
            y = _bounce(y0 + vy * t, src.height - 2 * r) + r
            draw.ellipse((x - r, y - r * 0.8, x + r, y + r * 0.8), fill=colour,
                         outline=(16, 16, 24), width=3)
        yield np.asarray(img, dtype=np.uint8)


def _bounce(p: float, span: float) -> float:
    span = max(span, 1.0)
    q = p % (2 * span)
    return q if q <= span else 2 * span - q


def _render_static(src: KindSource, shot: KindShot, rng: np.random.Generator,
                   n: int) -> Iterator[np.ndarray]:
    img = _load_cover(shot.photo, src.width, src.height)
    bg = _crop(img, (img.shape[1] - src.width) / 2, (img.shape[0] - src.height) / 2,
               src.width, src.height)
    movers = []
    for _ in range(int(rng.integers(3, 7))):
        w, h = int(rng.integers(4, 18)), int(rng.integers(6, 24))
        colour = rng.integers(20, 235, size=3).astype(np.uint8)
        movers.append((w, h, rng.uniform(0, src.width), rng.uniform(0, src.height),
                       rng.uniform(-60, 60), rng.uniform(-20, 20), colour))
    sigma = shot.strength or 2.5
    for i in range(n):
        t = i / src.fps
        frame = bg.copy()
        for w, h, x0, y0, vx, vy, colour in movers:
            x = int(_bounce(x0 + vx * t, src.width - w))
            y = int(_bounce(y0 + vy * t, src.height - h))
            frame[y:y + h, x:x + w] = colour
        yield _add_noise(frame, rng.normal(0.0, sigma, (src.height, src.width)))


def _render_handheld(src: KindSource, shot: KindShot, rng: np.random.Generator,
                     n: int) -> Iterator[np.ndarray]:
    img = _load_cover(shot.photo, src.width + src.margin, src.height + src.margin)
    amp = shot.strength or 6.0
    # hand tremor and walking sway: a few seeded sinusoids per axis, 0.4..5 Hz
    freqs = rng.uniform(0.4, 5.0, size=(2, 4))
    phases = rng.uniform(0, 2 * math.pi, size=(2, 4))
    weights = np.array([1.0, 0.6, 0.35, 0.2])
    room_x, room_y = img.shape[1] - src.width - 1, img.shape[0] - src.height - 1
    cx, cy = room_x / 2, room_y / 2
    for i in range(n):
        t = i / src.fps
        sx, sy = (amp * float(np.sum(weights * np.sin(2 * math.pi * freqs[a] * t + phases[a])))
                  / weights.sum() * 2 for a in (0, 1))
        x = min(max(cx + (t - 1.0) * shot.vx + sx, 0.0), room_x)
        y = min(max(cy + (t - 1.0) * shot.vy + sy, 0.0), room_y)
        yield _crop_subpixel(img, x, y, src.width, src.height)


def _grain_field(rng: np.random.Generator, sigma: float, shape: tuple[int, int]) -> np.ndarray:
    """Film grain: white noise box-filtered 3x3 (grain clumps larger than a pixel), rescaled so
    its standard deviation is ``sigma``."""
    h, w = shape
    white = rng.normal(0.0, 1.0, (h + 2, w + 2))
    box = sum(white[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 3.0
    return box * sigma


def _render_grain(src: KindSource, shot: KindShot, rng: np.random.Generator,
                  n: int) -> Iterator[np.ndarray]:
    img = _load_cover(shot.photo, src.width + src.margin, src.height + src.margin)
    sigma = shot.strength or 7.0
    for _, frame in _pan_frames(src, shot, img, n):
        yield _add_noise(frame, _grain_field(rng, sigma, (src.height, src.width)))


def _render_dark(src: KindSource, shot: KindShot, rng: np.random.Generator,
                 n: int) -> Iterator[np.ndarray]:
    img = _load_cover(shot.photo, src.width + src.margin, src.height + src.margin)
    gain = shot.strength or 0.04
    # darken in linear light (gamma 2.2), as a scene lit at ~1/25 would be
    lut = np.clip(np.rint(255.0 * (gain * (np.arange(256) / 255.0) ** 2.2) ** (1 / 2.2)),
                  0, 255).astype(np.uint8)
    dark = lut[img]
    for _, frame in _pan_frames(src, shot, dark, n):
        yield _add_noise(frame, rng.normal(0.0, 2.0, (src.height, src.width)))


def _render_screen(src: KindSource, shot: KindShot, rng: np.random.Generator,
                   n: int) -> Iterator[np.ndarray]:
    page = np.asarray(_open_photo(shot.photo), dtype=np.uint8)
    # tile the page to the frame width (text at its native size: sharp, high contrast)
    reps_x = -(-src.width // page.shape[1])
    reps_y = -(-(src.height * 4) // page.shape[0])
    doc = np.tile(page, (reps_y, reps_x, 1))[:, :src.width]
    bar_h = 24
    bar = np.empty((bar_h, src.width, 3), dtype=np.uint8)
    bar[:] = (52, 58, 70)
    for k in range(int(rng.integers(5, 9))):  # toolbar "buttons"
        x0 = 8 + k * 44
        bar[6:18, x0:x0 + 32] = (200, 205, 215)
    speed = shot.vy  # 0: a still page (the recipe's default is SCREEN_SCROLL)
    for i in range(n):
        t = i / src.fps
        off = int(t * speed) % (doc.shape[0] - src.height)
        frame = doc[off:off + src.height].copy()
        frame[:bar_h] = bar
        cx = int(_bounce(60 + t * 80, src.width - 12))
        cy = int(_bounce(120 + t * 30, src.height - bar_h - 18)) + bar_h
        if (i // 8) % 2 == 0:  # blinking cursor block
            frame[cy:cy + 16, cx:cx + 3] = (0, 0, 0)
        yield frame


Renderer = Callable[[KindSource, KindShot, np.random.Generator, int], Iterator[np.ndarray]]

#: kind name -> renderer; add a kind by writing a renderer and registering it here (and in
#: :data:`KIND_SHOT_KEYS` where it reads fewer shot keys than all).
#: Part of every filmed clip's recipe stamp: bump it when a renderer changes its pixels, so
#: clips filmed before are filmed again (a kept clip is otherwise only checked by recipe).
RENDER_VERSION = 2  # 2: a screen shot's vy 0 is a still page (it scrolled at 40 px/s)

KINDS: dict[str, Renderer] = {
    "cartoon": _render_cartoon,
    "static": _render_static,
    "handheld": _render_handheld,
    "grain": _render_grain,
    "dark": _render_dark,
    "screen": _render_screen,
}


def rgb_to_yuv420(rgb: np.ndarray) -> bytes:
    """uint8 RGB (H, W, 3), H and W even -> planar 4:2:0 bytes, BT.601 limited range, in integer
    arithmetic (the same bytes on every CPU); chroma is the rounded mean of each 2x2 block."""
    r, g, b = (rgb[..., k].astype(np.int32) for k in range(3))
    y = (66 * r + 129 * g + 25 * b + 128 >> 8) + 16
    u = (-38 * r - 74 * g + 112 * b + 128 >> 8) + 128
    v = (112 * r - 94 * g - 18 * b + 128 >> 8) + 128

    def sub(c: np.ndarray) -> np.ndarray:
        s = c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2]
        return (s + 2) >> 2

    planes = [np.clip(y, 16, 235), np.clip(sub(u), 16, 240), np.clip(sub(v), 16, 240)]
    return b"".join(p.astype(np.uint8).tobytes() for p in planes)


def _check_settings(src: KindSource) -> None:
    """A source's numbers, each one error naming it: ``seconds_each`` under one frame filmed a
    clip without video (stamped, so kept), a negative size or seed was numpy's ValueError,
    and ``margin: 0`` a hand-held shot's "rendered (36, 0, 3)"."""
    if src.width < 16 or src.height < 16 or src.width % 2 or src.height % 2:
        raise VideoInputError(f"{src.name}: frame size {src.width}x{src.height} must be even "
                              "and at least 16x16 (4:2:0 chroma)")
    if not src.fps > 0 or round(src.seconds_each * src.fps) < 1:
        raise VideoInputError(f"{src.name}: seconds_each={src.seconds_each!r} at {src.fps} "
                              "frames/s films no frame (needs at least one per shot)")
    if src.seed < 0:
        raise VideoInputError(f"{src.name}: seed={src.seed!r} must be 0 or more")
    if src.kind == "handheld" and src.margin < 1:  # the one kind that needs the room
        raise VideoInputError(f"{src.name}: margin={src.margin!r} must be at least 1 for a "
                              "hand-held camera (the room it shakes in)")
    if src.margin < 0:
        raise VideoInputError(f"{src.name}: margin={src.margin!r} must be 0 or more")


def film_kind_source(src: KindSource, out: Path, *, crf: int = 10) -> Path:
    """Render ``src`` and encode it to ``out`` (x264 ``crf``, one thread, bitexact), atomically.
    An existing ``out`` filmed from the same recipe is kept; another recipe's is filmed again.

    Raises:
        VideoInputError: unknown kind, no shots, odd frame size or a missing photograph.
        ToolError: ffmpeg failed.
    """
    import subprocess

    if src.kind not in KINDS:
        raise VideoInputError(f"{src.name}: unknown kind {src.kind!r}; known: {sorted(KINDS)}")
    if not src.shots:
        raise VideoInputError(f"{src.name}: no shots")
    _check_settings(src)
    missing = sorted({str(s.photo) for s in src.shots if not Path(s.photo).is_file()})
    if missing:  # the screen kind opened it bare: a FileNotFoundError traceback
        raise VideoInputError(f"{src.name}: photograph(s) not found: {', '.join(missing)}")
    # the photographs by name and bytes, not path: a moved install films nothing again
    named = replace(src, shots=tuple(replace(s, photo=Path(Path(s.photo).name))
                                     for s in src.shots))
    stamp = recipe_stamp(named, crf, RENDER_VERSION, files=[s.photo for s in src.shots])
    if already_made(out, stamp):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(src.seed)
    n = round(src.seconds_each * src.fps)
    render = KINDS[src.kind]
    with partial_file(out, stamp) as tmp:  # a random tag: runs side by side
        cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
               "-s", f"{src.width}x{src.height}", "-r", str(src.fps), "-i", "-",
               "-c:v", "libx264", "-crf", str(crf), "-preset", "medium",
               "-x264-params", "threads=1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
               "-pix_fmt", "yuv420p", output_url(tmp)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None
        try:
            for shot in src.shots:
                for frame in render(src, shot, rng, n):
                    if frame.shape != (src.height, src.width, 3):
                        raise VideoInputError(f"{src.name}: {src.kind} rendered {frame.shape}")
                    proc.stdin.write(rgb_to_yuv420(frame))
            proc.stdin.close()
        except BrokenPipeError:  # ffmpeg exited before taking every frame: its message says why
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            proc.wait()
            for pipe in (proc.stdin, proc.stderr):
                with contextlib.suppress(OSError):  # the reader is gone: closing may fail
                    pipe.close()
            raise ToolError(f"ffmpeg failed filming {out.name}: {err.strip()[-500:]}") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0:
            raise ToolError(f"ffmpeg failed filming {out.name}: {err.strip()[-500:]}")
    return out


def packaged_photo(spec: str) -> Path:
    """``skimage:<file>``, ``sklearn:<file>`` or ``matplotlib:<file>`` -> the photograph that
    package ships; anything else is a path."""
    from .sources import packaged_file

    where, _, name = spec.partition(":")
    if where == "skimage":
        return packaged_file("scikit-image", f"skimage/data/{name}")
    if where == "sklearn":
        return packaged_file("scikit-learn", f"sklearn/datasets/images/{name}")
    if where == "matplotlib":
        return packaged_file("matplotlib", f"mpl-data/sample_data/{name}")
    return Path(spec).expanduser()


#: What a recipe's source and shot may say (a misspelt ``seeed:`` was ignored: the clip was
#: filmed with the default seed).
SOURCE_KEYS = ("kind", "seed", "shots")
SHOT_KEYS = ("photo", "vx", "vy", "strength")
#: The shot keys each kind reads (a static camera's vx or a page's strength passed the key
#: check and changed nothing).
KIND_SHOT_KEYS: dict[str, tuple[str, ...]] = {
    **{kind: SHOT_KEYS for kind in ("cartoon", "handheld", "grain", "dark")},
    "static": ("photo", "strength"),
    "screen": ("photo", "vy"),
}
#: The screen kind's scroll speed (pixels per second) where a shot gives no ``vy``.
SCREEN_SCROLL = 40.0
#: A source's name is its clip's file name: ``../x`` filmed outside the folder.
SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def kind_sources_from_config(recipes: Mapping[str, Any],
                             photo: Callable[[str], Path] = packaged_photo,
                             where: str = "kinds recipe") -> list[KindSource]:
    """Parse a recipe mapping (a group of ``conf/sources/kinds.yaml``: ``train`` or
    ``heldout``) into :class:`KindSource` s; ``photo`` resolves a photograph's spec to its
    path. Raises VmafDistillError naming ``where`` (the file and group) and the source for a
    missing or unknown key, a kind not in :data:`KINDS`, no shots, a bad number or name."""
    from .config import checked_number

    if not isinstance(recipes, Mapping):
        raise VmafDistillError(f"{where}: needs a mapping of sources, got {recipes!r}")
    out = []
    for name, spec in recipes.items():
        at = f"{where}: source {name!r}"
        if not isinstance(name, str) or not SOURCE_NAME.fullmatch(name):
            raise VmafDistillError(f"{at}: a name is its clip's file name (letters, digits, "
                                   ". _ -, not starting with . or -)")
        if not isinstance(spec, Mapping):
            raise VmafDistillError(f"{at}: needs a mapping with {', '.join(SOURCE_KEYS)}")
        refuse_unknown_keys(at, spec, SOURCE_KEYS)
        if spec.get("kind") not in KINDS:
            raise VmafDistillError(f"{at}: kind {spec.get('kind')!r}; known: {sorted(KINDS)}")
        shot_specs = spec.get("shots")
        if not isinstance(shot_specs, list) or not shot_specs:
            raise VmafDistillError(f"{at}: shots: needs a list of shots, each with a photo")
        shots = []
        for k, shot in enumerate(shot_specs):
            label = f"{at}: shots[{k}]"
            if not isinstance(shot, Mapping) or not isinstance(shot.get("photo"), str):
                raise VmafDistillError(f"{label}: needs a mapping with a photo (e.g. "
                                       "skimage:coffee.png)")
            refuse_unknown_keys(label, shot, SHOT_KEYS)
            reads = KIND_SHOT_KEYS.get(spec["kind"], SHOT_KEYS)  # a kind added to KINDS alone
            if unread := [k for k in shot if k not in reads]:
                raise VmafDistillError(
                    f"{label}: the {spec['kind']} kind reads no {', '.join(map(str, unread))} "
                    f"(it reads {', '.join(reads)})")
            try:
                photo_path = photo(shot["photo"])
            except VmafDistillError as exc:  # a packaged photo's name alone said not where
                raise VmafDistillError(f"{label}.photo: {exc}") from None
            default_vy = SCREEN_SCROLL if spec["kind"] == "screen" else 0
            shots.append(KindShot(
                photo_path, checked_number(f"{label}.vx", shot.get("vx", 0), float),
                checked_number(f"{label}.vy", shot.get("vy", default_vy), float),
                # 0 is the kind's default; below it numpy refused with a traceback
                checked_number(f"{label}.strength", shot.get("strength", 0), float, 0)))
        out.append(KindSource(name=name, kind=spec["kind"], shots=tuple(shots),
                              seed=checked_number(f"{at}: seed", spec.get("seed", 0), int, 0,
                                                  True, 2**32)))
    return out


