"""``vmafdistill predict VIDEO``: per-shot predicted VMAF and quality tokens, torch-free.

Needs only the base install plus onnxruntime (``pip install 'vmafdistill[edge]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import VmafDistillError
from ..folders import (
    VIDEO_EXTENSIONS,
    atomic_write_text,
    check_output_target,
    is_stdout,
    json_safe,
    json_starting_with,
    stdout_to_devnull,
    walk_files,
)

#: HLS playlists: in a directory, each media playlist is one video and the files it lists
#: are not predicted again on their own.
PLAYLIST_SUFFIXES = (".m3u8", ".m3u")


def expand_videos(args: list[str]) -> list[tuple[str, str | None]]:
    """The videos to predict as ``(path, error)``: files as given (error None), directories as
    their video files (recursively through folder links, sorted, by :data:`VIDEO_EXTENSIONS`;
    HLS media playlists in place of the segments they list; hidden files such as macOS's
    ``._name.mp4`` resource forks are skipped; a video link that points nowhere is an entry
    with an error). A directory without any is one entry with an error, reported like a bad
    video while the other arguments are still predicted."""
    out: list[tuple[str, str | None]] = []
    for arg in args:
        path = Path(arg)
        if not path.is_dir():
            out.append((arg, None))
            continue
        files, broken = walk_files(path)
        found = _without_listed([f for f in files
                                 if f.suffix.lower() in (*VIDEO_EXTENSIONS, *PLAYLIST_SUFFIXES)])
        dangling = [str(f) for f in broken if f.suffix.lower() in VIDEO_EXTENSIONS]
        if not found and not dangling:
            out.append((arg, f"{arg}: a directory without video files "
                             f"({', '.join(VIDEO_EXTENSIONS)})"))
        out.extend((f, None) for f in found)
        out.extend((f, f"{f}: a link that points nowhere ({os.readlink(f)})") for f in dangling)
    return out


def _without_listed(files: list[Path]) -> list[str]:
    """``files`` with HLS media playlists of video kept as one video each, the files any
    media playlist lists dropped, and master playlists, I-frame indexes, subtitle and audio
    playlists dropped (each variant is a media playlist of its own); a player's ``.m3u``
    list is no HLS playlist: dropped, and the videos it names stay."""
    from ..edge.playlist import media_playlist_files

    listed: set[Path] = set()
    playlists: set[Path] = set()
    for f in files:
        if f.suffix.lower() in PLAYLIST_SUFFIXES:
            found = media_playlist_files(f)
            if found is not None:
                listed |= found[0]
                if found[1]:  # a video rendition: not an I-frame index, subtitles or audio
                    playlists.add(f)
    return [str(f) for f in files
            if (f in playlists or f.suffix.lower() not in PLAYLIST_SUFFIXES)
            and f.resolve() not in listed]


def _size(text: str) -> tuple[int, int]:
    from ..config import checked_size

    try:
        return checked_size("--ref-size", text)
    except VmafDistillError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``predict`` subcommand."""
    p = sub.add_parser(
        "predict",
        help="predict per-shot VMAF of a delivered video without its reference (ONNX student)",
        description=(
            "Decode VIDEO, cut it into shots, read per-shot bitrate and codec from its packets, "
            "compute the student's features and predict VMAF with an exported ONNX student. "
            "Prints one quality token per shot ({shot, start, end, codec, res, bitrate_kbps, "
            "qp (quantizer students), pred_vmaf, interval, band, issue, flags}) and a one-line "
            "summary per video. Band and issue "
            "rules come from the model card; the flags below override them."
        ),
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO",
                   help="distorted (delivered) video(s) or HLS playlists; a directory means its "
                        "video files and HLS media playlists (not their segments)")
    p.add_argument("--model", help="ONNX student (default: checkpoints/vmafdistill_default.onnx)")
    p.add_argument("--card", help="model card JSON (default: <model stem>.card.json beside it)")
    p.add_argument("--ref-size", type=_size, metavar="WxH",
                   help="resolution the teacher would compare at (default: the card's, "
                        "turned to the video's orientation and fitted to its aspect ratio; the "
                        "video's own size if it is larger)")
    p.add_argument("--json", metavar="PATH",
                   help="write the records as JSON to PATH ('-' = stdout instead of text)")
    p.add_argument("--green", type=float, help="band threshold: pred >= this is green")
    p.add_argument("--amber", type=float, help="band threshold: pred >= this is amber")
    p.add_argument("--band-basis", choices=("pred", "lower"),
                   help="what a band reads: the prediction, or the lower end of its interval "
                        "(guard mode: green only when the interval says so; default: the card's)")
    p.add_argument("--issue-max-vmaf", type=float, help="name no issue at or above this pred")
    p.add_argument("--blockiness-z", type=float, help="z(blockiness) that means blockiness")
    p.add_argument("--detail-scale-ratio", type=float, help="scale ratio counted as aggressive")
    p.add_argument("--detail-z", type=float, help="mean detail z at or below which: detail_loss")
    p.add_argument("--motion-z", type=float, help="mean motion z at or above which ...")
    p.add_argument("--motion-max-vmaf", type=float, help="... and pred below which: motion_stress")
    p.add_argument("--frame-step", type=_positive_int,
                   help="the spatial pixel features the student reads, on every k-th frame "
                        "(default: the card's; 1 = exact); none for a student without them "
                        "(the shipped one: see --issue-frame-step)")
    p.add_argument("--issue-frame-step", type=_positive_int,
                   help="for a student without spatial pixel features (e.g. rate7, the shipped "
                        "one): pixel features for the issue heuristic on every k-th frame "
                        "(default: the card's, else 8)")
    p.add_argument("--shot-pixel-step", type=_step,
                   help="cut-detection histograms on every s-th row/column; 0 = automatic "
                        "(>= 320x180 samples per frame; the default unless the card says); "
                        "capped where it would leave < 64x36 samples")
    p.add_argument("--temporal-pixel-step", type=_step,
                   help="for a student whose only pixel inputs are temporal: those on every "
                        "frame from every s-th row/column; 0 = automatic (>= 160x90 samples), "
                        "1 = exact (default: the card's); capped where it would leave < 64x36 "
                        "samples")
    p.add_argument("--threads", type=_positive_int,
                   help="feature threads per chunk (default: the card's edge.threads, else 1)")
    p.add_argument("--decoder", choices=("auto", "ffmpeg"),
                   help="auto (default): an 8-bit H.264 stream whose block QPs the student "
                        "reads is decoded once, in-process (PyAV); ffmpeg: always ffmpeg's pipe "
                        "(same results)")
    p.add_argument("--timings", action="store_true", help="print stage timings to stderr")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="decoded-frames progress bar on stderr (auto: when stderr is a terminal)")
    p.set_defaults(func=run)


def _rules(card: dict[str, Any], args: argparse.Namespace, card_file: Path) -> dict[str, Any]:
    from ..edge.records import check_band_basis
    from ..edge.tokens import DEFAULT_RULES, merge_rules

    try:
        base = merge_rules(DEFAULT_RULES, card.get("tokens"))
    except (ValueError, TypeError, AttributeError) as exc:  # a hand-edited card
        raise VmafDistillError(f"{card_file}: tokens: {exc}") from None
    try:
        rules = merge_rules(base, {
            "bands": {"green": args.green, "amber": args.amber, "basis": args.band_basis},
            "issues": {
                "max_vmaf": args.issue_max_vmaf, "blockiness_z": args.blockiness_z,
                "detail_scale_ratio": args.detail_scale_ratio, "detail_z": args.detail_z,
                "motion_z": args.motion_z, "motion_max_vmaf": args.motion_max_vmaf,
            },
        })
        check_band_basis(card, rules)  # before any video is decoded
    except ValueError as exc:
        raise VmafDistillError(str(exc)) from None
    return rules


def _line(record: dict[str, Any]) -> str:
    from ..edge.tokens import ShotRecord

    rec = ShotRecord.from_dict(record)
    if rec.pred_vmaf is None:
        pred = f"pred {'-':>6} [{'-':>6}, {'-':>6}]"
    elif rec.interval is None:  # a student exported without intervals
        pred = f"pred {rec.pred_vmaf:6.2f} [{'-':>6}, {'-':>6}]"
    else:
        lo, hi = rec.interval
        pred = f"pred {rec.pred_vmaf:6.2f} [{lo:6.2f}, {hi:6.2f}]"
    flags = f"  flags={','.join(rec.flags)}" if rec.flags else ""
    return (f"shot {rec.shot:3d} {rec.start:8.2f}-{rec.end:<8.2f}s {rec.codec:>4} "
            f"{rec.res:>5}  {pred}  {rec.band:<6} {rec.issue}{flags}")


def _summary_line(s: dict[str, Any]) -> str:
    bands = " ".join(f"{k}={v}" for k, v in s["bands"].items() if v)
    issues = " ".join(f"{k}={v}" for k, v in s["issues"].items()) or "none"
    # two decimals, as the shot lines and the records (a min of 79.99 read "80.0")
    mean = "-" if s["pred_vmaf_mean"] is None else f"{s['pred_vmaf_mean']:.2f}"
    low = "-" if s["pred_vmaf_min"] is None else f"{s['pred_vmaf_min']:.2f}"
    return (f"{s['video']}: {s['shots']} shots, {s['duration_s']:.2f} s, {s['codec']} {s['res']}, "
            f"pred VMAF mean {mean} min {low}"
            + (f" (shot {s['worst_shot']})" if s["worst_shot"] is not None else "")
            + f"; {bands}; issues: {issues}"
            + (f"; flagged {s['flagged']}" if s["flagged"] else "")
            + (f"; reference {s['ref_size'][0]}x{s['ref_size'][1]} ({s['ref_size_rule']})"
               if s.get("ref_size_rule") not in (None, "card", "given") else "")
            + (f"; {s['hidden_frames']} hidden frames" if s.get("hidden_frames") else "")
            + (f"; {s['video_streams']} video streams, predicted the first"
               if s.get("video_streams") else "")
            + ("; renditions: " + " -> ".join(
                f"{c['width']}x{c['height']} {c['pix_fmt']} at {c['time_s']:.2f} s"
                + (f" ({c['shots']} shots)" if "shots" in c else "")
                for c in s["picture_changes"])
               + ("" if all("shots" in c for c in s["picture_changes"])
                  else " (shots with changed pictures: no prediction)")
               if s.get("picture_changes") else "")
            + (f"; decoder errors {s['decoder_errors']['count']} (first: "
               f"{s['decoder_errors']['first']})" if s.get("decoder_errors") else "")
            + (f"; file {s['truncated']}" if s.get("truncated") else ""))


def _int_at_least(low: int, note: str = "") -> Callable[[str], int]:
    """argparse type: an integer >= ``low`` (``note`` says what the lowest value means)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}{note}, got {value}")
        return value

    return parse


#: a pixel step (0 = automatic)
_step = _int_at_least(0, " (0 = automatic)")
#: an integer >= 1 (0 would silently mean "the card's value")
_positive_int = _int_at_least(1)


def _write_json(target: str, doc: dict[str, Any]) -> None:
    try:
        atomic_write_text(target, json.dumps(doc, indent=2) + "\n")  # never a short file
    except OSError as exc:
        raise VmafDistillError(f"{target}: cannot write the results ({exc})") from None


class _FrameBar:
    """A video's progress bar as :func:`~vmafdistill.edge.pipeline.analyze_video` drives it:
    called with the frames decoded so far; ``expect`` gives the bar its total (so an ETA),
    estimated from the container's duration."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def __call__(self, frames: int) -> None:
        if self.bar.total is not None and frames > self.bar.total:  # the estimate was short
            self.bar.total = frames
        self.bar.update(frames - self.bar.n)

    def expect(self, frames: int) -> None:
        self.bar.total = frames
        self.bar.refresh()


def run(args: argparse.Namespace) -> int:
    """Predict every video; text to stdout (or JSON with --json)."""
    from concurrent.futures import ThreadPoolExecutor

    from ..edge.card import card_path_for, read_card
    from ..edge.pipeline import EdgeOptions, analyze_video
    from ..edge.predictor import Predictor, check_model_path, default_model_path
    from ..errors import VideoInputError

    model = Path(args.model) if args.model else default_model_path()
    check_model_path(model)  # a student.pt or a card read as "model card not found"
    card_file = Path(args.card) if args.card else card_path_for(model)
    videos = expand_videos(args.videos)
    check_output_target("--json", args.json, [v for v, _ in videos] + [model, card_file],
                        starts=json_starting_with("model"))
    card = read_card(card_file, beside=None if args.card else model)
    # onnxruntime loads and checks the model in the background while the first video is
    # probed and decoded (start-up off the critical path); its errors stop the run early.
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load_model")
    pred = loader.submit(Predictor, model, args.card)
    loader.shutdown(wait=False)
    rules = _rules(card, args, card_file)
    edge = card.get("edge", {})
    try:
        options = EdgeOptions.from_card(
            edge, frame_step=args.frame_step or None,
            issue_frame_step=args.issue_frame_step or None,
            shot_pixel_step=args.shot_pixel_step,
            temporal_pixel_step=args.temporal_pixel_step, threads=args.threads or None,
            decoder=args.decoder,
        )
    except ValueError as exc:
        raise VmafDistillError(str(exc)) from None
    # /dev/stdout too: the text lines went into the JSON's stream (neither parsed)
    to_stdout_json = is_stdout(args.json)
    if sys.stdout is None and (to_stdout_json or not args.json or _names_fd1(args.json)):
        # started with >&-: /dev/stdout then named whatever this process opened next
        raise VmafDistillError("stdout is closed: the results have nowhere to go; give "
                               "--json FILE")
    _note_unused_frame_step(args, card, options)
    show = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    if show:  # tqdm costs ~30-60 ms of start-up: imported only when a bar is drawn
        from tqdm import tqdm
    out: list[dict[str, Any]] = []
    failed = 0
    text_status: int | None = None  # where stdout failed and a --json file is owed: 141, 2
    for video, error in videos:
        bar = _FrameBar(tqdm(desc=Path(video).name, unit="frame", file=sys.stderr,
                             leave=False, dynamic_ncols=True)) if show else None
        try:
            if error is not None:
                raise VideoInputError(error)
            rep = analyze_video(video, pred, rules=rules, ref_size=args.ref_size,
                                options=options, card=card, progress=bar)
        except VideoInputError as exc:
            # a bad input file is that file's problem: report it, go on with the others
            failed += 1
            out.append({"video": video, "error": str(exc)})
            print(f"vmafdistill predict: error: {exc}", file=sys.stderr)
            continue
        finally:
            if bar is not None:
                bar.bar.close()
        out.append({"video": video, "summary": rep.summary, "shots": rep.records,
                    "timings": {k: round(v, 4) for k, v in rep.timings.items()}})
        if not to_stdout_json and text_status is None:
            text_status = _print_lines(
                [*(_line(rec) for rec in rep.records), _summary_line(rep.summary)],
                keep_going=bool(args.json))
        if args.timings:
            print(" ".join(f"{k}={v:.3f}" for k, v in rep.timings.items()), file=sys.stderr)
    _write_results(args, model, card, out, to_stdout=to_stdout_json)
    if failed and len(videos) > 1:
        print(f"vmafdistill predict: {failed} of {len(videos)} video(s) failed",
              file=sys.stderr)
    if text_status is not None:  # the JSON file is whole
        return text_status
    return 2 if failed else 0


def _print_lines(lines: list[str], *, keep_going: bool) -> int | None:
    """Print a video's text lines; None, or the exit status where stdout failed. With
    ``keep_going`` (a ``--json`` file to write) a failed stdout ends the text, not the run
    (the file, written after the last video, was lost with the remaining predictions): 141
    where its reader left (``| head``, as a shell reports SIGPIPE), 2 on another write error
    (``> /dev/full``)."""
    try:
        for line in lines:
            print(line)  # nothing where stdout is None (closed at start: >&-)
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as exc:
        if not keep_going:
            raise
        stdout_to_devnull()
        if isinstance(exc, BrokenPipeError):
            return 141
        print(f"vmafdistill predict: error: stdout: {exc.strerror or exc}; the text stops "
              "here, the results go on into the --json file", file=sys.stderr)
        return 2
    return None


def _names_fd1(target: str) -> bool:
    """Whether ``target`` names file descriptor 1 (``/dev/stdout``, ``/dev/fd/1``,
    ``/proc/self/fd/1``), whatever it holds now."""
    path = re.sub("/+", "/", os.path.abspath(target))  # //dev/stdout; "stdout" in /dev
    return path in ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def _note_unused_frame_step(args: argparse.Namespace, card: Mapping[str, Any],
                            options: Any) -> None:
    """``--frame-step`` sets the step of the pixel features the student reads; for a student
    that reads none but temporal ones (the shipped one) it set nothing, unsaid."""
    from ..edge.options import needs_pixel_features, temporal_only

    names = list(card.get("feature_names") or [])
    if args.frame_step and not (needs_pixel_features(names) and not temporal_only(names)):
        print(f"vmafdistill predict: note: --frame-step {args.frame_step}: this student reads "
              "no spatial pixel features (its temporal ones come from every frame); the issue "
              f"heuristic's are on one frame in {options.issue_frame_step} "
              "(--issue-frame-step)", file=sys.stderr)


def _write_results(args: argparse.Namespace, model: Path, card: dict[str, Any],
                   videos: list[dict[str, Any]], *, to_stdout: bool) -> None:
    """The JSON document (``--json``: a file, or stdout: ``-`` or a path to it, written
    through stdout so that a reader leaving is exit 141 as for ``-``)."""
    from ..edge.tokens import TOKEN_VERSION

    if not args.json:
        return
    # ref_size: the one given, else the card's; each summary says what its video used. The
    # model's sha256 and the record schema's version say what wrote the records.
    doc = json_safe({"model": str(model), "model_sha256": card["sha256"],
                     "token_version": TOKEN_VERSION,
                     "ref_size": list(args.ref_size or card["ref_size"]), "videos": videos})
    if to_stdout:
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        _write_json(args.json, doc)
