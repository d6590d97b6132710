"""Film the content-kind sources of ``conf/sources/kinds.yaml`` (cartoon, static camera, hand-held,
grain, dark, screen; rendered from packaged photographs, no media committed).

    python scripts/make_kind_sources.py [--out .cache/kind_sources] [--group train|heldout|all]

``train`` sources feed ``conf/corpus/skvideo_kinds_all.yaml``; ``heldout`` ones are kept out of
training for ``scripts/eval_unseen.py --kinds``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vmafdistill.content_kinds import film_kind_source, kind_sources_from_config  # noqa: E402

RECIPES = REPO / "conf" / "sources" / "kinds.yaml"


def make_sources(out_dir: Path, group: str = "train", recipes: Path = RECIPES) -> list[Path]:
    """Film every source of ``group`` (``train``, ``heldout`` or ``all``) into ``out_dir``
    (existing files are kept)."""
    cfg = yaml.safe_load(recipes.read_text())
    groups = ["train", "heldout"] if group == "all" else [group]
    paths = []
    for g in groups:
        for src in kind_sources_from_config(cfg[g]):
            paths.append(film_kind_source(src, out_dir / f"{src.name}.mp4"))
            print(paths[-1], flush=True)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "kind_sources")
    ap.add_argument("--group", choices=["train", "heldout", "all"], default="train")
    args = ap.parse_args()
    make_sources(args.out, args.group)


if __name__ == "__main__":
    main()
