"""Source recipes: deterministic training and evaluation clips filmed from packaged content.

Each recipe is a file of ``conf/sources/`` (no media is committed; the files say what is filmed
and why): ``photos`` (scikit-image's photographs as camera pans, the shipped student's extra
sources), ``synth`` (ffmpeg lavfi patterns) and ``kinds`` (content kinds rendered from
photographs: cartoon, static camera, hand-held, grain, dark, screen). ``vmafdistill sources
<recipe>`` films one into its ``out_dir`` (a clip filmed from the same recipe is kept), where the
corpus configs (``conf/corpus/skvideo_photos_all.yaml`` ...) find them.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import checked_number, load_yaml
from .errors import VmafDistillError
from .folders import check_film_targets

__all__ = [
    "RECIPES",
    "RECIPE_KEYS",
    "check_recipe",
    "load_recipe",
    "make_kind_sources",
    "make_photo_sources",
    "make_sources",
    "make_synth_source",
    "make_synth_sources",
    "missing_source_hint",
    "recipe_label",
    "recipe_out_dir",
    "synth_graphs",
]

#: Recipe name -> what it films (``conf/sources/<name>.yaml``).
RECIPES: dict[str, str] = {
    "photos": "scikit-image photographs as camera pans (corpus skvideo_photos_all)",
    "synth": "ffmpeg lavfi patterns, lossless (corpus skvideo_synth)",
    "kinds": "content kinds from packaged photographs (corpus skvideo_kinds_all; "
             "heldout: vmafdistill evaluate --kinds)",
}


def load_recipe(name: str) -> dict[str, Any]:
    """``conf/sources/<name>.yaml`` as a dict."""
    if name not in RECIPES:
        raise VmafDistillError(f"unknown source recipe {name!r}; known: {', '.join(RECIPES)}")
    return load_yaml(f"sources/{name}")


def missing_source_hint(path: str | Path) -> str:
    """What to run when ``path``, a missing corpus source, is a clip a recipe films: its
    folder is named as a recipe's ``out_dir`` (``.../photo_sources/photos_a.mp4``). Empty
    otherwise. The ``--out`` is the missing file's folder, so a corpus read under another
    ``paths.cache_dir`` is told where to film it."""
    p = Path(path)
    for name in RECIPES:
        try:
            recipe = load_recipe(name)
        except (VmafDistillError, OSError):  # a user conf dir without the recipe
            continue
        if Path(str(recipe.get("out_dir", ""))).name != p.parent.name:
            continue
        listed = {str(k) for k in recipe.get("sources", {})}
        for group in ("train", "heldout"):
            listed |= {str(k) for k in (recipe.get(group) or {})}
        if p.stem not in listed:
            continue
        group = (" --group heldout" if name == "kinds" and p.stem in (recipe.get("heldout") or {})
                 else "")
        return (f" (film it with: vmafdistill sources {name}{group} "
                f"--out {shlex.quote(str(p.parent))})")
    return ""


def recipe_out_dir(recipe: Mapping[str, Any], out_dir: str | Path | None, where: str) -> Path:
    """``out_dir`` if given, else the recipe's own, an error naming ``where`` when it has
    none (a TypeError traceback)."""
    if out_dir is not None:
        return Path(out_dir).expanduser()
    given = recipe.get("out_dir")
    if not isinstance(given, str) or not given.strip():
        raise VmafDistillError(f"{where}: out_dir={given!r}: needs a folder (or give --out)")
    return Path(given).expanduser()


def recipe_label(name: str, recipe: Mapping[str, Any] | None = None) -> str:
    """How errors name a recipe: its file, or "<name> recipe" for one given as a mapping."""
    from .config import conf_dir

    return str(conf_dir() / "sources" / f"{name}.yaml") if recipe is None else f"{name} recipe"


#: The top-level keys each recipe reads (a misspelt ``heldot:`` or ``widht:`` was ignored:
#: the held-out clips were never filmed, or the clips filmed at the default size).
RECIPE_KEYS: dict[str, tuple[str, ...]] = {
    "photos": ("out_dir", "fps", "width", "height", "seconds_each", "margin", "sources"),
    "synth": ("out_dir", "fps", "width", "height", "seconds", "sources"),
    "kinds": ("out_dir", "train", "heldout"),
}
PHOTO_SHOT_KEYS = ("photo", "vx", "vy")


def check_recipe(name: str, recipe: Any, where: str) -> dict[str, Any]:
    """The ``photos`` or ``synth`` recipe's settings, each one error naming ``where`` (the
    file) and the key before anything is filmed: ``seconds_each: 0`` looped a photograph for
    ever (ffmpeg's ``-t 0`` is no limit), ``seconds: 0`` filmed a clip without video, an odd
    width was cut by one pixel unsaid, and a missing key was a KeyError traceback. Returns
    ``{"fps", "width", "height", "seconds", "margin"}`` (``margin`` for photos only)."""
    from .config import refuse_unknown_keys

    if not isinstance(recipe, Mapping):
        raise VmafDistillError(f"{where}: needs a mapping of settings, got {recipe!r}")
    refuse_unknown_keys(where, recipe, RECIPE_KEYS[name])
    length = "seconds_each" if name == "photos" else "seconds"
    if missing := [k for k in RECIPE_KEYS[name] if k != "out_dir" and k not in recipe]:
        raise VmafDistillError(f"{where}: missing key(s) {missing}")
    checked = {"fps": checked_number(f"{where}: fps", recipe["fps"], float, 0, False),
               "seconds": checked_number(f"{where}: {length}", recipe[length], float, 0, False)}
    if checked["seconds"] * checked["fps"] < 1:  # -loop 1 -t under a frame never ended
        raise VmafDistillError(f"{where}: {length}={recipe[length]!r} at {recipe['fps']!r} "
                               "frames/s films no frame (needs at least one)")
    for key in ("width", "height"):  # 4:2:0 needs even sizes
        checked[key] = checked_number(f"{where}: {key}", recipe[key], int, 16)
        if checked[key] % 2:
            raise VmafDistillError(f"{where}: {key}={recipe[key]!r}: needs an even number "
                                   "(4:2:0 chroma; an odd size was cut by one pixel)")
    if name == "photos":
        checked["margin"] = checked_number(f"{where}: margin", recipe["margin"], int, 0)
    sources = recipe["sources"]
    if not isinstance(sources, Mapping) or not sources:  # filmed nothing, said nothing
        raise VmafDistillError(f"{where}: sources: needs a mapping of source name -> "
                               f"{'shots' if name == 'photos' else 'lavfi graph'}, got {sources!r}")
    for source, spec in sources.items():
        _check_source(name, source, spec, f"{where}: source {source!r}")
    return checked


def _check_source(name: str, source: Any, spec: Any, at: str) -> None:
    """One source of a ``photos`` or ``synth`` recipe: its name is its clip's file name
    (``../x`` filmed outside the folder); a photos source is a list of shots with a photo
    and its pan speed, a synth source a lavfi graph."""
    from .config import refuse_unknown_keys
    from .content_kinds import SOURCE_NAME

    if not isinstance(source, str) or not SOURCE_NAME.fullmatch(source):
        raise VmafDistillError(f"{at}: a name is its clip's file name (letters, digits, "
                               ". _ -, not starting with . or -)")
    if name == "synth":
        if not isinstance(spec, str) or not spec.strip():
            raise VmafDistillError(f"{at}: needs a lavfi graph, got {spec!r}")
        return
    if not isinstance(spec, list) or not spec:
        raise VmafDistillError(f"{at}: needs a list of shots, each {{photo, vx, vy}}")
    for k, shot in enumerate(spec):
        label = f"{at}: shots[{k}]"
        if not isinstance(shot, Mapping) or not isinstance(shot.get("photo"), str):
            raise VmafDistillError(f"{label}: needs a mapping with a photo (e.g. coffee.png)")
        refuse_unknown_keys(label, shot, PHOTO_SHOT_KEYS)
        for axis in ("vx", "vy"):
            checked_number(f"{label}.{axis}", shot.get(axis), float)


def make_photo_sources(out_dir: str | Path | None = None,
                       recipe: Mapping[str, Any] | None = None,
                       filmed: Callable[[Path], None] | None = None) -> list[Path]:
    """Film every source of the ``photos`` recipe into ``out_dir`` (default: the recipe's)."""
    from .sources import PhotoPan, pan_photos

    where = recipe_label("photos", recipe)
    r = load_recipe("photos") if recipe is None else recipe
    c = check_recipe("photos", r, where)
    out = recipe_out_dir(r, out_dir, where)
    pans_of = {}
    for name, shots in r["sources"].items():  # every photo found before any is filmed
        pans_of[name] = [PhotoPan(_photo(s["photo"], f"{where}: source {name!r}: shots[{k}]"),
                                  float(s["vx"]), float(s["vy"])) for k, s in enumerate(shots)]
    check_film_targets([out / f"{name}.mp4" for name in pans_of])
    paths = []
    for name, pans in pans_of.items():
        paths.append(pan_photos(pans, out / f"{name}.mp4", width=c["width"],
                                height=c["height"], fps=r["fps"],
                                seconds_each=r["seconds_each"], margin=c["margin"]))
        if filmed is not None:
            filmed(paths[-1])
    return paths


def _photo(filename: str, at: str) -> Path:
    """A recipe shot's packaged photograph, its error naming the recipe and the shot."""
    from .sources import skimage_photo

    try:
        return skimage_photo(filename)
    except VmafDistillError as exc:
        raise VmafDistillError(f"{at}: photo {filename!r}: {exc}") from None


def synth_graphs(recipe: Mapping[str, Any] | None = None, where: str | None = None
                 ) -> dict[str, str]:
    """The ``synth`` recipe's lavfi graphs with its size and rate filled in (``where`` names
    the recipe in errors; default: its file, or "synth recipe" for a given mapping)."""
    r = load_recipe("synth") if recipe is None else recipe
    c = check_recipe("synth", r, where or recipe_label("synth", recipe))
    w, h = c["width"], c["height"]
    fill = {"width": w, "height": h, "fps": r["fps"], "half_width": w // 2,
            "half_height": h // 2, "double_width": 2 * w, "double_height": 2 * h,
            "last_x": w - 1, "last_y": h - 1}
    graphs = {}
    for name, graph in r["sources"].items():
        try:
            graphs[name] = str(graph).format(**fill)
        except (KeyError, IndexError, ValueError) as exc:  # a user recipe's typo: a traceback
            raise VmafDistillError(
                f"recipe synth, source {name}: bad placeholder in {graph!r} ({exc!r}); known: "
                + ", ".join("{" + k + "}" for k in fill)) from None
    return graphs


def make_synth_source(name: str, graph: str, out_dir: str | Path, *, seconds: float,
                      fps: float, size: tuple[int, int] | None = None) -> Path:
    """Encode one lavfi graph losslessly to ``out_dir/<name>.mp4`` (kept if already there,
    filmed from the same graph). ``size`` (width, height): the recipe's, which the clip must
    have, as it must have ``seconds`` of frames (a graph of another size or a shorter one was
    filmed as it was, unsaid)."""
    from ._ffmpeg import output_url, run_ffmpeg
    from .folders import already_made, partial_file, recipe_stamp
    from .io.packets import read_packets

    out = Path(out_dir) / f"{name}.mp4"
    stamp = recipe_stamp(graph, seconds, fps)  # an edited graph is filmed again
    if already_made(out, stamp):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with partial_file(out, stamp) as tmp:
        run_ffmpeg(["-y", "-f", "lavfi", "-i", f"{graph},format=yuv420p,setsar=1",
                    "-t", str(seconds), "-r", str(fps), "-c:v", "libx264", "-qp", "0",
                    "-preset", "medium", "-x264-params", "threads=1",
                    "-fflags", "+bitexact", "-flags:v", "+bitexact", output_url(tmp)],
                   what=f"generating synthetic source {name}")
        made = read_packets(tmp)
        # -t with -r keeps the frames that start before `seconds`: floor, not round (a 25 fps
        # graph at fps 30 for 1.05 s gives 31 frames)
        want = math.floor(seconds * fps + 1e-6)
        if size is not None and (made.width, made.height) != tuple(size):
            raise VmafDistillError(f"recipe synth, source {name}: its graph makes "
                                   f"{made.width}x{made.height} pictures, the recipe "
                                   f"{size[0]}x{size[1]} (use {{width}}x{{height}})")
        if len(made) < want:
            raise VmafDistillError(f"recipe synth, source {name}: its graph gives "
                                   f"{len(made)} frames, the recipe asks {want} "
                                   f"({seconds:g} s at {fps:g} frames/s)")
    return out


def make_synth_sources(out_dir: str | Path | None = None,
                       recipe: Mapping[str, Any] | None = None,
                       filmed: Callable[[Path], None] | None = None) -> list[Path]:
    """Encode every source of the ``synth`` recipe into ``out_dir`` (default: the recipe's)."""
    where = recipe_label("synth", recipe)
    r = load_recipe("synth") if recipe is None else recipe
    graphs = synth_graphs(r, where)  # checks the recipe
    out = recipe_out_dir(r, out_dir, where)
    check_film_targets([out / f"{name}.mp4" for name in graphs])
    paths = []
    for name, graph in graphs.items():
        paths.append(make_synth_source(name, graph, out, seconds=r["seconds"], fps=r["fps"],
                                       size=(int(r["width"]), int(r["height"]))))
        if filmed is not None:
            filmed(paths[-1])
    return paths


def make_kind_sources(out_dir: str | Path | None = None, group: str = "train",
                      recipe: Mapping[str, Any] | None = None,
                      filmed: Callable[[Path], None] | None = None) -> list[Path]:
    """Film every source of ``group`` (``train``, ``heldout`` or ``all``) of the ``kinds``
    recipe into ``out_dir`` (default: the recipe's; clips filmed from the same recipe are
    kept)."""
    from .content_kinds import film_kind_source, kind_sources_from_config

    if group not in ("train", "heldout", "all"):
        raise VmafDistillError(f"group must be train, heldout or all, got {group!r}")
    from .config import refuse_unknown_keys

    where = recipe_label("kinds", recipe)
    r = load_recipe("kinds") if recipe is None else recipe
    if not isinstance(r, Mapping):
        raise VmafDistillError(f"{where}: needs a mapping of settings, got {r!r}")
    refuse_unknown_keys(where, r, RECIPE_KEYS["kinds"])
    out = recipe_out_dir(r, out_dir, where)
    # every source checked before any is filmed; a name in both groups is one clip file (the
    # held-out one was never filmed: the training one was kept in its place)
    sources = {g: kind_sources_from_config(r.get(g) or {}, where=f"{where}: {g}")
               for g in ("train", "heldout")}
    both = sorted({s.name for s in sources["train"]} & {s.name for s in sources["heldout"]})
    if both:
        raise VmafDistillError(f"{where}: {', '.join(both)} named in both train and heldout "
                               "(one clip file each: give them other names)")
    groups = ["train", "heldout"] if group == "all" else [group]
    if not any(sources[g] for g in groups):  # filmed nothing, said nothing, exit 0
        raise VmafDistillError(f"{where}: no sources in {' or '.join(groups)}")
    check_film_targets([out / f"{src.name}.mp4" for g in groups for src in sources[g]])
    paths = []
    for g in groups:
        for src in sources[g]:
            paths.append(film_kind_source(src, out / f"{src.name}.mp4"))
            if filmed is not None:
                filmed(paths[-1])
    return paths


def make_sources(name: str, out_dir: str | Path | None = None, *, group: str = "train",
                 filmed: Callable[[Path], None] | None = None) -> list[Path]:
    """Film recipe ``name`` (:data:`RECIPES`); ``group`` applies to ``kinds`` only;
    ``filmed(path)`` is called as each clip is ready (the CLI prints it)."""
    load_recipe(name)  # known?
    if name == "photos":
        return make_photo_sources(out_dir, filmed=filmed)
    if name == "synth":
        return make_synth_sources(out_dir, filmed=filmed)
    return make_kind_sources(out_dir, group, filmed=filmed)
