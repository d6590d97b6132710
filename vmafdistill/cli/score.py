"""``vmafdistill score REF DIST``: VMAF of a distorted video against its reference."""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings

from ..errors import VmafDistillError
from ..folders import check_output_target, is_stdout, json_starting_with


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
        default=None,
        help="compute precision of float mode (default float32; exact mode and the v1.0.16 "
        "models compute as libvmaf does, and refuse float64)",
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
    p.add_argument("--scale-flags", help="ffmpeg scaler flags for --rescale (default: bicubic)")
    p.add_argument(
        "--allow-length-mismatch",
        action="store_true",
        help="score the common prefix when frame counts differ (with a warning): as libvmaf "
             "with shortest=1 (without it libvmaf repeats the shorter clip's last frame)",
    )
    p.add_argument("--json", metavar="PATH", help="write per-frame metrics, libvmaf JSON layout")
    p.add_argument("--csv", metavar="PATH", help="write per-frame metrics as CSV")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


#: Headerless raw video by name (ffmpeg guesses some of these as images or audio).
_RAW_EXTENSIONS = (".yuv", ".raw", ".bin", ".dat", ".i420", ".iyuv")


def _raw(args: argparse.Namespace) -> tuple[dict | None, dict | None]:
    """The raw-input options for REF and DIST: each gets them only when it is headerless (no
    container or .y4m header ffmpeg reads), so ``ref.yuv dist.mp4 --width ...`` reads the MP4
    as an MP4 (it was read as raw YUV: an error, or garbage scored where its size happened to
    be a whole number of frames)."""
    raw = {"width": args.width, "height": args.height, "pix_fmt": args.pix_fmt or "yuv420p"}
    if args.width is None and args.height is None and args.pix_fmt is None:
        # a .yuv without the options: its error names what is missing, and pix_fmt has a
        # default (it was listed as missing too)
        ref_raw, dist_raw = (raw if os.path.splitext(p)[1].lower() in _RAW_EXTENSIONS
                             else None for p in (args.ref, args.dist))
        return ref_raw, dist_raw
    from ..errors import VideoInputError
    from ..folders import VIDEO_EXTENSIONS
    from ..io.video import probe_video

    out: list[dict | None] = []
    for path in (args.ref, args.dist):
        ext = os.path.splitext(path)[1].lower()
        if ext in _RAW_EXTENSIONS:
            out.append(raw)
            continue
        if ext in (*VIDEO_EXTENSIONS, ".y4m"):
            out.append(None)  # a container (readable or not: its own error says why)
            continue
        try:
            probe_video(path, backend="ffmpeg")
            out.append(None)  # it has a header: the options are not about it
        except VideoInputError as exc:
            # a container of a format the teacher cannot read (.gif, .nut RGB) is no raw YUV:
            # only a file ffmpeg finds no video in is taken as raw
            text = str(exc)
            out.append(raw if "not a readable video file" in text
                       or "has no video stream" in text else None)
    if out == [None, None]:
        raise VmafDistillError(
            f"--width/--height/--pix-fmt describe headerless raw .yuv input, but {args.ref} and "
            f"{args.dist} both have headers (container or .y4m): leave the options out")
    return out[0], out[1]


def _check_dtype(args: argparse.Namespace) -> None:
    """``--dtype`` only where it acts, float mode (it was accepted and ignored in exact mode
    and by the v1.0.16 models, which compute libvmaf's own arithmetic)."""
    if args.dtype in (None, "float32"):  # float32 is what exact mode's result is given in
        return
    from ..teacher.model_v1016 import is_v1016_model
    from ..teacher.vmaf import VmafModel, resolve_mode

    if is_v1016_model(args.model):
        raise VmafDistillError(f"--dtype {args.dtype}: the v1.0.16 models compute as libvmaf "
                               "does; leave it out")
    if resolve_mode(VmafModel.load(args.model), args.mode) == "exact":
        raise VmafDistillError(f"--dtype {args.dtype}: only in float mode (exact mode is "
                               f"libvmaf's integer arithmetic); add --mode float, or leave it out")


def run(args: argparse.Namespace) -> int:
    """Score and print ``VMAF <pooled mean>``; write --json/--csv when asked."""
    if args.chunk < 1:
        raise VmafDistillError(f"--chunk must be >= 1, got {args.chunk}")
    import torch

    from ..io.video import scaler_refusal
    from ..teacher.score import score_files, write_csv, write_json
    from . import one_line_warning

    _check_dtype(args)
    ref_raw, dist_raw = _raw(args)
    inputs = [args.ref, args.dist]
    json_out = check_output_target("--json", args.json, inputs,
                                   starts=json_starting_with("version", "vmafdistill"))
    # libvmaf's CSV starts "Frame," too, but its header line ends with a comma; ours does not
    csv_out = check_output_target("--csv", args.csv, inputs,
                                  starts=re.compile(rb"Frame,[^\n]*[^,\r\n]\r?\n"))
    if json_out and csv_out and (json_out == csv_out or _same_path(json_out, csv_out)
                                 or (is_stdout(json_out) and is_stdout(csv_out))):
        # both on stdout made neither parseable; one file kept only the CSV
        same = json_out if json_out == csv_out else f"{json_out} and {csv_out}, one file"
        raise VmafDistillError(f"--json and --csv both name {same}: give each its own "
                               "target (one of them may be - for stdout)")
    if args.scale_flags is not None and not args.rescale:  # accepted and ignored before
        raise VmafDistillError(f"--scale-flags {args.scale_flags}: only with --rescale (they "
                               "are the scaler's flags for it)")
    if args.scale_flags is None:  # "" stays "" and is refused below (an unset variable)
        args.scale_flags = "bicubic"
    refusal = scaler_refusal(args.scale_flags) if args.rescale else None
    if refusal:  # a flag ffmpeg does not know was blamed on the distorted file
        raise VmafDistillError(f"--scale-flags {args.scale_flags!r}: {refusal}")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = one_line_warning("score", every_warning=True)
        result = score_files(
            args.ref,
            args.dist,
            model=args.model,
            device=args.device,
            dtype=torch.float64 if args.dtype == "float64" else torch.float32,
            chunk=args.chunk,
            ref_raw=ref_raw,
            dist_raw=dist_raw,
            rescale=args.rescale,
            scale_flags=args.scale_flags,
            on_length_mismatch="prefix" if args.allow_length_mismatch else "error",
            progress=not args.quiet and sys.stderr.isatty(),
            mode=args.mode,
            aim=bool(args.json or args.csv),  # the logs carry every feature libvmaf prints
        )
    for option, target, write in (("--json", json_out, write_json),
                                   ("--csv", csv_out, write_csv)):
        if target:  # "-": stdout
            try:
                write(result, target)
            except OSError as exc:  # a full disk, /proc: after the whole clip was scored
                raise VmafDistillError(f"{option} {target}: cannot write it ({exc.strerror or exc})"
                                       ) from None
    pooled = result.pooled["vmaf"]
    info = result.info
    # with a log on stdout (--json - / --csv -) the summary goes to stderr
    print(
        f"VMAF {pooled['mean']:.6f}  (harmonic mean {pooled['harmonic_mean']:.6f}, "
        f"min {pooled['min']:.6f}; {result.num_frames} frames, model {result.model} "
        f"{result.mode}, "
        f"{info['fps']:.2f} frames/s on {info['device']})",
        file=sys.stderr if any(is_stdout(t) for t in (json_out, csv_out)) else sys.stdout,
    )
    return 0


def _same_path(a: str, b: str) -> bool:
    """Whether two output paths (neither ``-``) name one file, existing or not."""
    if "-" in (a, b):
        return False
    return os.path.abspath(a) == os.path.abspath(b) or (
        os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b))

