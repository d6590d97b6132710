"""``vmafdistill sources <recipe>``: film a source recipe of ``conf/sources/`` (photos, synth,
kinds) into its directory, where the corpus configs find the clips."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import VmafDistillError
from ..folders import make_folder, refuse_empty


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``sources`` subcommand."""
    from ..recipes import RECIPES

    p = sub.add_parser(
        "sources",
        help="film deterministic training sources from a recipe of conf/sources/",
        description="Film a source recipe (conf/sources/<recipe>.yaml) from packaged content; "
                    "a clip filmed before from the same recipe is kept (an edited one is filmed "
                    "again; a video of that name it did not film, or a filmed clip changed "
                    "since, is refused, not replaced). "
                    "Recipes: "
                    + "; ".join(f"{k}: {v}" for k, v in RECIPES.items()),
    )
    p.add_argument("recipe", choices=list(RECIPES))
    p.add_argument("--out", help="output directory (default: the recipe's out_dir, e.g. "
                                 ".cache/photo_sources, where the corpus configs look)")
    p.add_argument("--group", choices=["train", "heldout", "all"],
                   help="kinds only: which sources (default: train)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Film the recipe (one path printed per clip)."""
    from ..recipes import make_sources

    if args.group is not None and args.recipe != "kinds":  # it filmed the whole recipe
        raise VmafDistillError(f"--group {args.group}: only the kinds recipe has groups "
                               f"({args.recipe} films every source it lists)")
    if args.out is not None:  # an empty one filmed into the working folder
        refuse_empty("--out", args.out, hint="give a folder, or leave --out out for the "
                                             "recipe's")
        make_folder("--out", Path(args.out).expanduser())
    else:  # the recipe's own (a file .cache in its way was a NotADirectoryError traceback)
        from ..recipes import load_recipe, recipe_label, recipe_out_dir

        where = recipe_label(args.recipe)
        make_folder(f"out_dir of {where}",
                    recipe_out_dir(load_recipe(args.recipe), None, where))
    import signal

    from ..signals import raise_exit, signal_handled

    # SIGTERM (timeout, a scheduler) as exit 143: the clip's .partial file is removed and its
    # ffmpeg killed (it ran on alone, and a looped photograph never ended)
    with signal_handled(signal.SIGTERM, raise_exit):
        make_sources(args.recipe, args.out, group=args.group or "train",
                     filmed=lambda path: print(path, flush=True))
    return 0
