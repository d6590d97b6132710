"""``vmafdistill export``: a trained student to ONNX + model card (needs the train extra)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import VmafDistillError
from ..folders import refuse_empty


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``export`` subcommand."""
    p = sub.add_parser(
        "export",
        help="export a student to ONNX with a model card (allowlist + parity checked)",
        description=(
            "Export the sweep winner (winner.json from `vmafdistill sweep-report`) or a "
            "student.pt bundle to ONNX (standardisation inside the graph), check it with "
            "onnx.checker and the operator allowlist, check onnxruntime against torch on every "
            "corpus sample, and write MODEL.onnx + MODEL.card.json. Defaults: conf/export.yaml; "
            "positional arguments are Hydra overrides of it (tokens.bands.green=85)."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle", help="student.pt bundle to export")
    src.add_argument("--winner", help="winner.json, or the sweep directory holding it")
    p.add_argument("--corpus", help="corpus dir for parity (default: the one the bundle was "
                                    "trained on, which it records; else .cache/corpus/<its name>)")
    p.add_argument("--out", default="vmafdistill_student.onnx",
                   help="output .onnx path, card written beside it (default: "
                        "./vmafdistill_student.onnx)")
    p.add_argument("--force", action="store_true",
                   help="allow overwriting the shipped student (checkpoints/vmafdistill_default)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: conf/export.yaml, 17)")
    p.add_argument("--int8", action="store_true",
                   help="try dynamic INT8 quantization of the student's float32 graph (kept "
                        "only if smaller and the MAE moves <= int8.max_mae_delta, 0.1)")
    p.add_argument("--ref-size", metavar="WxH", help="reference size for the card")
    p.add_argument("--frame-step", type=int, help="edge feature frame step for the card")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of conf/export.yaml")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print a short report."""
    from ..export import (
        export_bundle,
        load_export_settings,
        refuse_shipped_overwrite,
        resolve_winner,
    )

    # empty: a traceback, or the corpus's size taken unsaid
    for option, value in (("--out", args.out), ("--ref-size", args.ref_size)):
        refuse_empty(option, value, what="value")
    refuse_shipped_overwrite(args.out, args.force)
    bundle = Path(args.bundle) if args.bundle else resolve_winner(args.winner)
    _check_out(args.out, [bundle, *([args.winner] if args.winner else [])])
    _refuse_flag_and_override(args)
    over: dict = {"opset": args.opset}
    if args.int8:
        over["int8"] = {"enabled": True}
    if args.ref_size is not None:
        try:
            over["ref_size"] = [int(v) for v in args.ref_size.lower().split("x")]
        except ValueError:
            raise VmafDistillError(f"--ref-size: expected WxH, got {args.ref_size!r}") from None
    if args.frame_step is not None:
        over["edge"] = {"frame_step": args.frame_step}
    card = export_bundle(bundle, args.out, corpus_dir=args.corpus,
                         settings=load_export_settings(over, args.overrides))
    em = card["export_metrics"]
    mae = "n/a" if em["mae_vs_target"] is None else f"{em['mae_vs_target']:.3f}"
    print(f"exported {bundle} -> {args.out} ({card['size_bytes']} bytes, opset {card['opset']}, "
          f"sha256 {card['sha256'][:12]})")
    # a kept INT8 graph: the parity is the float graph's, the INT8 change is another figure
    of = " of the float graph" if card["int8"].get("kept") else ""
    print(f"parity{of}: max |ORT - torch| = {em['parity_max_abs']:.2e} VMAF on "
          f"{em['n_samples']} samples (tol {em['parity_tol']:g}); in-sample MAE of the "
          f"final model on its corpus {mae}{_held_out_where(card)}")
    if card["int8"].get("kept"):
        print(f"int8 kept: predictions moved by up to {card['int8']['max_abs_change']:.3g} "
              f"VMAF, corpus MAE {card['int8']['mae_float']:.3f} -> "
              f"{card['int8']['mae_int8']:.3f}")
    print("int8: " + json.dumps(card["int8"], sort_keys=True))
    from ..edge.card import EDGE_FEATURES

    foreign = [n for n in card["feature_names"] if n not in EDGE_FEATURES]
    if foreign:  # a sweep over feature sets can pick one; predict refused it only later
        print(f"vmafdistill export: note: this student reads features only a reference gives "
              f"({', '.join(foreign)}): `vmafdistill predict` refuses it; pick a run of an "
              f"edge feature set (e.g. features=quant_ti7) to serve without one",
              file=sys.stderr)
    return 0


def _check_out(out: str, inputs: list[Path | str], option: str = "--out") -> None:
    """``--out`` and the card beside it: neither an input (``--out S/0/student.pt`` replaced
    the bundle it exported with the ONNX) nor an existing file that is not an earlier export
    (a video, a ``winner.json``); an ONNX model starts with its ir_version field, byte 0x08.
    ``option``: how the caller names the output (the API: ``out``)."""
    from ..edge.card import card_path_for
    from ..folders import check_output_target, json_starting_with, make_folder

    # export made it; the check wants it
    make_folder(option, Path(out).resolve().parent, writable=False)
    check_output_target(option, out, inputs, starts=b"\x08")
    card = card_path_for(out)
    check_output_target(option, str(card), inputs, starts=json_starting_with("card_version"))
    _refuse_another_models_card(option, Path(out), card)


def _refuse_another_models_card(option: str, out: Path, card: Path) -> None:
    """The card beside ``out`` is named after its stem alone (``m.v1`` and ``m.v2`` share
    ``m.card.json``): an export's card that names another model file, still there, is not
    replaced (the second export left the first one's ONNX without its card, and predict
    refused it: "the card belongs to another model")."""
    if not card.is_file():
        return
    try:
        other = json.loads(card.read_text()).get("model_file")
    except (OSError, ValueError, AttributeError):
        return  # not a card this check can read: check_output_target judged it
    if isinstance(other, str) and other and other != out.name and (card.parent / other).is_file():
        raise VmafDistillError(
            f"{option} {out}: its card {card} is the card of {card.parent / other}, another "
            f"export (a model's card is named after its stem); name the model "
            f"{out.stem}-<name>.onnx, or move the other one first")


def _held_out_where(card: dict) -> str:
    """Where the card keeps the held-out figures beside the in-sample one printed: a trained
    student's out-of-fold ``metrics.oof``, a fine-tuned one's ``metrics.heldout_after``."""
    metrics = card.get("metrics") or {}
    for key, what in (("oof", "out-of-fold"), ("heldout_after", "held-out")):
        if key in metrics:
            return f" ({what}: the card's metrics.{key})"
    return ""


def _refuse_flag_and_override(args: argparse.Namespace) -> None:
    """A flag and a ``key=value`` override of the same setting: the flag won without a word
    (``--opset 17 opset=18``); corpus and pilot refuse such pairs too."""
    from ..export import refuse_flag_and_override

    refuse_flag_and_override(
        {"opset": ("--opset", args.opset), "int8.enabled": ("--int8", args.int8 or None),
         "ref_size": ("--ref-size", args.ref_size),
         "edge.frame_step": ("--frame-step", args.frame_step)}, args.overrides or [])
