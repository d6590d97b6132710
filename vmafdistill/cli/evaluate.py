"""``vmafdistill evaluate``: score a student on unseen content through the real edge chain
(:mod:`vmafdistill.evaluation.unseen`)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``evaluate`` subcommand."""
    p = sub.add_parser(
        "evaluate",
        help="score a student on unseen content (or held-out content kinds) via the edge chain",
        description=(
            "Film an unseen source (three photographs scikit-learn and matplotlib ship, panned "
            "and cut; none in any training corpus) or, with --kinds, the held-out content kinds "
            "of conf/sources/kinds.yaml; encode it on a ladder, label every shot with libvmaf "
            "(the model and mode the student learnt, as its card says; its default integer "
            "model for a card that does not say), run the torch-free predict chain with the "
            "student on every encode and compare per shot with the card's target: MAE, signed "
            "error, PLCC, interval coverage, band agreement, false greens."
        ),
    )
    p.add_argument("--model", help="exported .onnx student (default: the shipped one)")
    p.add_argument("--ladder", default="wide", help="ladder config (default: wide)")
    p.add_argument("--workers", type=int, default=2, help="corpus workers (default: 2)")
    p.add_argument("--noise", type=int, default=0,
                   help="film the unseen clip with camera-like temporal noise of this strength "
                        "(ffmpeg `noise` filter; 0: clean)")
    p.add_argument("--kinds", action="store_true",
                   help="score the held-out content kinds (conf/sources/kinds.yaml `heldout`)")
    p.add_argument("--cache", default=".cache", help="cache directory (default: .cache)")
    p.add_argument("--markdown", help="also write the table as markdown here")
    p.add_argument("--json", help="also write per-shot rows as JSON here")
    p.add_argument("--plot", help="also draw predicted vs teacher VMAF (with the intervals and "
                                  "the guard thresholds) here: PNG, or SVG/PDF by the "
                                  "file's suffix")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the report."""
    from ..evaluation.unseen import evaluate_unseen

    evaluate_unseen(args.model, ladder=args.ladder, workers=args.workers, noise=args.noise,
                    kinds=args.kinds, cache=args.cache, markdown=args.markdown,
                    json_path=args.json, plot=args.plot)
    return 0
