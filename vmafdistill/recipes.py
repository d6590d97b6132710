"""Source recipes: deterministic training and evaluation clips filmed from packaged content.

Each recipe is a file of ``conf/sources/`` (no media is committed; the files say what is filmed
and why): ``photos`` (scikit-image's photographs as camera pans, the shipped student's extra
sources), ``synth`` (ffmpeg lavfi patterns) and ``kinds`` (content kinds rendered from
photographs: cartoon, static camera, hand-held, grain, dark, screen). ``vmafdistill sources
<recipe>`` films one into its ``out_dir`` (a clip filmed from the same recipe is kept), where the
corpus configs (``conf/corpus/skvideo_photos_all.yaml`` ...) find them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import load_yaml
from .errors import VmafDistillError

__all__ = [
    "RECIPES",
    "load_recipe",
    "make_kind_sources",
    "make_photo_sources",
    "make_sources",
    "make_synth_source",
    "make_synth_sources",
    "missing_source_hint",
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


def _out(recipe: Mapping[str, Any], out_dir: str | Path | None) -> Path:
    return Path(out_dir if out_dir is not None else recipe["out_dir"])


def make_photo_sources(out_dir: str | Path | None = None,
                       recipe: Mapping[str, Any] | None = None,
                       filmed: Callable[[Path], None] | None = None) -> list[Path]:
    """Film every source of the ``photos`` recipe into ``out_dir`` (default: the recipe's)."""
    from .sources import PhotoPan, pan_photos, skimage_photo

    r = load_recipe("photos") if recipe is None else recipe
    out = _out(r, out_dir)
    paths = []
    for name, shots in r["sources"].items():
        pans = [PhotoPan(skimage_photo(s["photo"]), s["vx"], s["vy"]) for s in shots]
        paths.append(pan_photos(pans, out / f"{name}.mp4", width=int(r["width"]),
                                height=int(r["height"]), fps=r["fps"],
                                seconds_each=r["seconds_each"], margin=int(r["margin"])))
        if filmed is not None:
            filmed(paths[-1])
    return paths


def synth_graphs(recipe: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The ``synth`` recipe's lavfi graphs with its size and rate filled in."""
    r = load_recipe("synth") if recipe is None else recipe
    w, h = int(r["width"]), int(r["height"])
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
                      fps: float) -> Path:
    """Encode one lavfi graph losslessly to ``out_dir/<name>.mp4`` (kept if already there,
    filmed from the same graph)."""
    from ._ffmpeg import run_ffmpeg
    from .folders import already_made, partial_file, recipe_stamp

    out = Path(out_dir) / f"{name}.mp4"
    stamp = recipe_stamp(graph, seconds, fps)  # an edited graph is filmed again
    if already_made(out, stamp):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with partial_file(out, stamp) as tmp:
        run_ffmpeg(["-y", "-f", "lavfi", "-i", f"{graph},format=yuv420p,setsar=1",
                    "-t", str(seconds), "-r", str(fps), "-c:v", "libx264", "-qp", "0",
                    "-preset", "medium", "-x264-params", "threads=1",
                    "-fflags", "+bitexact", "-flags:v", "+bitexact", str(tmp)],
                   what=f"generating synthetic source {name}")
    return out


def make_synth_sources(out_dir: str | Path | None = None,
                       recipe: Mapping[str, Any] | None = None,
                       filmed: Callable[[Path], None] | None = None) -> list[Path]:
    """Encode every source of the ``synth`` recipe into ``out_dir`` (default: the recipe's)."""
    r = load_recipe("synth") if recipe is None else recipe
    out = _out(r, out_dir)
    paths = []
    for name, graph in synth_graphs(r).items():
        paths.append(make_synth_source(name, graph, out, seconds=r["seconds"], fps=r["fps"]))
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
    from .config import conf_dir

    where = str(conf_dir() / "sources" / "kinds.yaml") if recipe is None else "kinds recipe"
    r = load_recipe("kinds") if recipe is None else recipe
    out = _out(r, out_dir)
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
