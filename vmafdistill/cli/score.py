"""``vmafdistill score REF DIST``: VMAF of a distorted video against its reference."""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import VmafDistillError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``score`` subcommand."""
    p = sub.add_parser(
        "score",
        help="score a distorted video against its reference with the PyTorch VMAF teacher",
        description=(
            "Score DIST against REF with VMAF reimplemented in PyTorch: libvmaf's integer "
            "(default) model bit for bit in exact mode, or its float features. Inputs: any "
            "ffmpeg-decodable file, .y4m, or raw .yuv with "
            "--width/--height/--pix-fmt. Prints the pooled VMAF."
        ),
    )
    p.add_argument("ref", help="reference video")
    p.add_argument("dist", help="distorted video")
    p.add_argument("--width", type=int, help="frame width of raw .yuv input (both files)")
    p.add_argument("--height", type=int, help="frame height of raw .yuv input (both files)")
    p.add_argument(
        "--pix-fmt",
        default=None,
        help="pixel format of raw .yuv input, e.g. yuv420p, yuv420p10le (default yuv420p)",
    )
    p.add_argument(
        "--model",
        default="vmaf_v0.6.1",
        help="vmaf_v0.6.1 (default), vmaf_v0.6.1neg, vmaf_4k_v0.6.1, vmaf_float_v0.6.1 (and "
        "the other vmaf_float_* names), the v1.0.16 models vmaf_v1.0.16_3d0h, _5d0h, "
        "_3d0h_2160, _1d5h_2160 and their hfr_ twins, or a model JSON path",
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--chunk", type=int, default=8, help="frames decoded and scored at a time")
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="compute precision of float mode (the v1.0.16 models compute as libvmaf does)",
    )
    p.add_argument(
        "--mode",
        choices=("exact", "float"),
        default=None,
        help="feature arithmetic: exact = libvmaf's integer extractors, bit for bit (default "
        "for vmaf_v0.6.1, vmaf_v0.6.1neg, vmaf_4k_v0.6.1); float = libvmaf's float "
        "extractors, differentiable (default for vmaf_float_v0.6.1 and float model JSONs)",
    )
    p.add_argument(
        "--rescale",
        action="store_true",
        help="scale the distorted video to the reference size and pixel format (ffmpeg scaler, "
        "as ffmpeg's libvmaf graph does) before scoring",
    )
    p.add_argument("--scale-flags", default="bicubic", help="ffmpeg scaler flags for --rescale")
    p.add_argument(
        "--allow-length-mismatch",
        action="store_true",
        help="score the common prefix when frame counts differ (with a warning)",
    )
    p.add_argument("--json", metavar="PATH", help="write per-frame metrics, libvmaf JSON layout")
    p.add_argument("--csv", metavar="PATH", help="write per-frame metrics as CSV")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _raw(args: argparse.Namespace) -> dict | None:
    if args.width is None and args.height is None and args.pix_fmt is None:
        return None
    return {"width": args.width, "height": args.height, "pix_fmt": args.pix_fmt or "yuv420p"}


def run(args: argparse.Namespace) -> int:
    """Score and print ``VMAF <pooled mean>``; write --json/--csv when asked."""
    if args.chunk < 1:
        raise VmafDistillError(f"--chunk must be >= 1, got {args.chunk}")
    import torch

    from ..teacher.score import score_files, write_csv, write_json

    raw = _raw(args)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        result = score_files(
            args.ref,
            args.dist,
            model=args.model,
            device=args.device,
            dtype=torch.float64 if args.dtype == "float64" else torch.float32,
            chunk=args.chunk,
            ref_raw=raw,
            dist_raw=raw,
            rescale=args.rescale,
            scale_flags=args.scale_flags,
            on_length_mismatch="prefix" if args.allow_length_mismatch else "error",
            progress=not args.quiet and sys.stderr.isatty(),
            mode=args.mode,
            aim=bool(args.json or args.csv),  # the logs carry every feature libvmaf prints
        )
    if args.json:
        write_json(result, args.json)
    if args.csv:
        write_csv(result, args.csv)
    pooled = result.pooled["vmaf"]
    info = result.info
    print(
        f"VMAF {pooled['mean']:.6f}  (harmonic mean {pooled['harmonic_mean']:.6f}, "
        f"min {pooled['min']:.6f}; {result.num_frames} frames, model {result.model} "
        f"{result.mode}, "
        f"{info['fps']:.2f} frames/s on {info['device']})"
    )
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"vmafdistill score: warning: {message}", file=sys.stderr)
