"""``vmafdistill pilot``: the main job on the embedded default corpus (Big Buck Bunny).

For now (teacher milestone) it encodes a few rungs of the pilot ladder from the packaged clip,
scores each with the PyTorch teacher and with libvmaf's float model through ffmpeg, side by side,
and prints per-rung VMAF, the largest per-frame difference and both speeds. Later milestones
grow it into corpus -> students -> export.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``pilot`` subcommand."""
    p = sub.add_parser(
        "pilot",
        help="main job on the packaged Big Buck Bunny clip (conf/pilot.yaml)",
        description="Encode pilot-ladder rungs of the packaged Big Buck Bunny clip and score "
        "them with the PyTorch teacher and with libvmaf side by side.",
    )
    p.add_argument("--config", default="pilot", help="config under conf/ (default: pilot)")
    p.add_argument("--rungs", help="comma-separated ladder indices (overrides the config)")
    p.add_argument("--out", help="cache directory (overrides the config)")
    p.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Encode, score with both teachers, print the comparison table."""
    import numpy as np

    from ..config import load_yaml
    from ..encode import Rung, bitrate_kbps, encode_rung
    from ..io import probe_video
    from ..oracle import libvmaf_score
    from ..sources import resolve_source
    from ..teacher.score import score_files

    cfg = load_yaml(args.config)
    ladder = load_yaml(f"ladder/{cfg['ladder']}")
    rungs = [Rung.from_dict(r) for r in ladder["rungs"]]
    picks = [int(i) for i in args.rungs.split(",")] if args.rungs else list(cfg["rungs"])
    source = resolve_source(cfg["source"])
    info = probe_video(source)
    out_dir = Path(args.out or cfg["cache_dir"])
    src_size = (info.width, info.height)
    print(f"source {source.name}: {info.width}x{info.height} {info.pix_fmt}, ladder "
          f"{ladder['name']}, rungs {picks}, model {cfg['model']}")
    header = (f"{'rung':<26}{'kb/s':>8}{'teacher':>10}{'libvmaf':>10}{'max|Δ|':>10}"
              f"{'teacher fps':>13}{'libvmaf fps':>13}")
    print(header)
    rows = []
    for idx in picks:
        rung = rungs[idx]
        label = rung.label(*src_size)
        enc = out_dir / f"{source.stem}_{label}.{'webm' if rung.codec == 'vp9' else 'mp4'}"
        if not enc.exists():
            encode_rung(source, rung, src_size, enc)
        ours = score_files(source, enc, model=cfg["model"], rescale=True,
                           scale_flags=cfg["rescale_flags"])
        lib = libvmaf_score(source, enc, model=f"vmaf_float_{cfg['model'].removeprefix('vmaf_')}",
                            scale_to=src_size, scale_flags=cfg["rescale_flags"])
        lib_vmaf = np.array(lib.metric("vmaf"))
        delta = float(np.abs(lib_vmaf - ours.metrics["vmaf"]).max())
        fps = info.fps or 25.0
        row = {
            "rung": label, "bitrate_kbps": bitrate_kbps(enc, ours.num_frames, fps),
            "teacher_vmaf": ours.pooled["vmaf"]["mean"], "libvmaf_vmaf": float(lib_vmaf.mean()),
            "max_abs_delta": delta, "teacher_fps": ours.info["fps"],
            "libvmaf_fps": lib.num_frames / lib.wall_s, "frames": ours.num_frames,
        }
        rows.append(row)
        print(f"{label:<26}{row['bitrate_kbps']:>8.0f}{row['teacher_vmaf']:>10.3f}"
              f"{row['libvmaf_vmaf']:>10.3f}{delta:>10.1e}{row['teacher_fps']:>13.2f}"
              f"{row['libvmaf_fps']:>13.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
