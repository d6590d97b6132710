"""Streams whose packets are not one per decoded frame: stream-copy cuts, open-GOP segments,
variable frame rate and raw elementary streams, as real footage arrives.

The edge attributes bits to frames by the decoder's output timestamps
(:func:`~vmafdistill.io.packets.align_packets_to_frames`); these tests check it against the
uncut encode the stream was copied from (stream copy keeps every packet's bytes and every
decodable picture's pixels).
"""

from __future__ import annotations

import json
import os
import re
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import ffmpeg_exe, run_ffmpeg
from vmafdistill.edge import decode as decode_mod
from vmafdistill.edge import pipeline
from vmafdistill.edge.pipeline import DecodeLog, EdgeOptions, analyze_video, decode_luma
from vmafdistill.edge.predictor import Predictor
from vmafdistill.edge.tokens import DEFAULT_RULES, merge_rules
from vmafdistill.errors import VideoInputError
from vmafdistill.io.packets import (
    NOPTS_VALUE,
    Packets,
    align_packets_to_frames,
    read_packets,
    read_rate,
)
from vmafdistill.io.video import probe_video

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "edge" / "tiny.onnx"
SOURCE = [  # 2 s of testsrc2, then 2 s of mandelbrot: one hard cut at 2.0 s
    "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2",
    "-f", "lavfi", "-i", "mandelbrot=size=320x180:rate=25",
    "-filter_complex", "[1:v]trim=duration=2,setpts=PTS-STARTPTS[m];[0:v][m]concat=n=2:v=1",
]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cuts")


@pytest.fixture(scope="module")
def base_mp4(work) -> Path:
    """4 s of 320x180 H.264 (B-frames, 2 s GOPs) in MP4."""
    base = work / "base.mp4"
    run_ffmpeg([*SOURCE, "-c:v", "libx264", "-preset", "veryfast", "-crf", "30",
                "-g", "50", "-pix_fmt", "yuv420p", "-x264-params", "threads=1", str(base)],
               what="encoding the uncut clip")
    return base


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(TINY)


def decode(path: Path) -> tuple[np.ndarray, list[int | None]]:
    log = DecodeLog()
    y = np.concatenate(list(decode_luma(path, width=320, height=180, bit_depth=8, log=log)))
    return y, log.frame_pts


def analyze(path: Path, predictor: Predictor) -> pipeline.VideoReport:
    return analyze_video(path, predictor, rules=merge_rules(DEFAULT_RULES, None),
                         options=EdgeOptions())


def check_against_uncut(base: Path, cut: Path) -> tuple[np.ndarray, int]:
    """The cut's frames are consecutive frames of the uncut encode, pixel for pixel, on the
    same relative time line, and each gets exactly that frame's packet bytes; returns (for
    each hidden packet, the frame it precedes; number of frames)."""
    y_base, pts_base = decode(base)
    y_cut, pts_cut = decode(cut)
    packets, base_packets = read_packets(cut), read_packets(base)
    n = y_cut.shape[0]
    assert len(pts_cut) == n < len(packets)  # the stream really hides packets
    aligned = align_packets_to_frames(packets, pts_cut, n)
    assert aligned.by == "pts"
    assert aligned.hidden.size == len(packets) - n
    first = [m for m in range(y_base.shape[0]) if np.array_equal(y_base[m], y_cut[0])]
    assert len(first) == 1
    rows = first[0] + np.arange(n)
    np.testing.assert_array_equal(y_cut, y_base[rows])
    t_base = np.array(pts_base, dtype=np.float64)[rows] * float(base_packets.time_base)
    t_cut = np.array(pts_cut, dtype=np.float64) * float(packets.time_base)
    np.testing.assert_allclose(t_cut - t_cut[0], t_base - t_base[0], atol=1e-9)
    base_aligned = align_packets_to_frames(base_packets, pts_base, y_base.shape[0])
    np.testing.assert_array_equal(aligned.packets.sizes, base_aligned.packets.sizes[rows])
    return aligned.hidden_before_frame, n


def test_mp4_stream_copy_cut_hides_the_pre_roll(work, base_mp4, predictor):
    """`ffmpeg -ss 1.3 -c copy` into MP4 keeps the GOP before 1.3 s behind an edit list: the
    decoder decodes those packets but outputs only from 1.3 s. Before the fix, predict refused
    such files ("N video packets but M decoded frames")."""
    base, cut = base_mp4, work / "cut.mp4"
    run_ffmpeg(["-ss", "1.3", "-i", str(base), "-c", "copy", str(cut)], what="cutting")
    hidden_before, n = check_against_uncut(base, cut)
    assert n == 100 - 33 and np.all(hidden_before == 0)  # from frame 33 (1.32 s) on

    report = analyze(cut, predictor)
    k = len(hidden_before)
    assert report.summary["hidden_frames"] == k and report.summary["frames"] == n
    assert f"hidden_frames:{k}" in report.records[0]["flags"]
    assert not any(f.startswith("hidden") for r in report.records[1:] for f in r["flags"])
    assert report.records[-1]["end"] == pytest.approx(n / 25, abs=1e-3)


def test_a_stream_starting_mid_gop_flags_the_packets_before_its_first_keyframe(
        work, base_mp4, predictor):
    """A capture that starts mid-GOP: the packets before its first keyframe were dropped by
    the packet read's stream copy as by the decoder, so 0.6 s of the stream vanished without
    a flag. They are counted now, hidden before the first frame; the frames that follow read
    as before (the packet list still starts at the keyframe)."""
    from vmafdistill.io.packets import read_packets

    cut = work / "mid_gop.mp4"  # 15 packets dropped: 35 more before the 2 s keyframe
    run_ffmpeg(["-i", str(base_mp4), "-c", "copy", "-bsf:v", "noise=drop='lt(n,15)'",
                str(cut)], what="dropping the first packets")
    packets = read_packets(cut)
    assert packets.before_keyframe == 35 and len(packets) == 50 and packets.keyframe[0]
    report = analyze(cut, predictor)
    assert report.summary["frames"] == 50 and report.summary["hidden_frames"] == 35
    assert "hidden_frames:35" in report.records[0]["flags"]
    whole = read_packets(base_mp4)
    assert whole.before_keyframe == 0 and len(whole) == 100
    np.testing.assert_array_equal(packets.sizes, whole.sizes[50:])


def test_h265_open_gop_segment_drops_its_rasl_pictures(work, predictor):
    """An open-GOP H.265 stream cut into 1 s MPEG-TS segments at its CRA pictures (what a
    segmenter does): a segment's leading pictures reference frames of the previous segment,
    cannot be decoded and are skipped."""
    base = work / "open.ts"
    run_ffmpeg([*SOURCE, "-c:v", "libx265", "-preset", "veryfast", "-crf", "30",
                "-x265-params", "log-level=error:open-gop=1:keyint=25:min-keyint=25:"
                "scenecut=0:frame-threads=1:pools=none", str(base)],
               what="encoding an open-GOP H.265 clip")
    run_ffmpeg(["-i", str(base), "-c", "copy", "-f", "segment", "-segment_time", "1",
                "-segment_format", "mpegts", str(work / "seg%d.ts")], what="segmenting")
    segment = work / "seg1.ts"
    hidden_before, n = check_against_uncut(base, segment)
    assert np.all(hidden_before == 0)  # RASL pictures precede their CRA
    report = analyze(segment, predictor)
    assert report.summary["frames"] == n
    assert report.summary["hidden_frames"] == len(hidden_before) > 0
    assert f"hidden_frames:{len(hidden_before)}" in report.records[0]["flags"]


def _open_gop_mkv_cut(work: Path, name: str, vf: list[str], at: str) -> tuple[Path, Path]:
    """8 s of 25 fps open-GOP H.265 in MKV (``vf``: extra filter arguments) and its stream
    copy from ``at`` seconds: the encode and the cut."""
    base = work / f"{name}.mkv"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=8", *vf, "-c:v", "libx265",
                "-crf", "28", "-x265-params", "log-level=error:keyint=25:min-keyint=25:"
                "open-gop=1:bframes=4:frame-threads=1:pools=none", str(base)],
               what=f"encoding an open-GOP H.265 clip ({name})")
    cut = work / f"{name}_cut.mkv"
    run_ffmpeg(["-ss", at, "-i", str(base), "-c", "copy", str(cut)], what="cutting")
    return base, cut


def test_an_open_gop_cut_into_mkv_keeps_every_frame_s_bits(work, predictor):
    """An open-GOP H.265 stream cut with ``-c copy`` into MKV: its leading pictures carry no
    pts, and ffmpeg's stream copy (the packet list) "fixes" a non-monotonic DTS by moving one
    packet's pts onto its neighbour's (PyAV reads 40, the copy 80), so two packets shared a
    pts and the whole video was refused ("packet timestamps repeat"). The moved packet now
    goes to the frame no pts named, and every frame gets the uncut encode's bytes; the
    timestamps' rate is read past the packets without a pts (their time overflowed)."""
    base, cut = _open_gop_mkv_cut(work, "open_gop", [], "2.2")
    packets = read_packets(cut)
    untimed = packets.pts == NOPTS_VALUE
    assert untimed.any() and np.isnan(packets.pts_s[untimed]).all()
    timed = packets.pts[~untimed]
    assert np.unique(timed).size < timed.size  # the case is real: a pts repeats
    hidden_before, n = check_against_uncut(base, cut)
    assert len(hidden_before) == int(untimed.sum())
    report = analyze(cut, predictor)
    assert report.summary["frames"] == n
    assert report.summary["duration_s"] == pytest.approx(n / 25.0, abs=1e-6)
    # the same cut of a stream that drops every 7th frame reads at its timestamps' rate (the
    # overflowed times gave up on them: 25, and bitrates 1/6 too high)
    _, vfr_cut = _open_gop_mkv_cut(
        work, "open_gop_vfr", ["-vf", "select='not(eq(mod(n\\,7)\\,3))'", "-fps_mode", "vfr"],
        "3.1")
    vfr_packets = read_packets(vfr_cut)
    assert (vfr_packets.pts == NOPTS_VALUE).any()
    rate = read_rate(probe_video(vfr_cut, backend="ffmpeg"), vfr_packets)
    assert rate == pytest.approx(25 * 6 / 7, rel=0.01)


def test_variable_frame_rate_reports_true_shot_times(work, predictor):
    """Every 4th frame dropped with its timestamps kept (as a phone camera does): 75 frames
    over 4 s. Shot times come from the timestamps, so the cut at 2.0 s is reported at 2.0 s
    and the video lasts 4 s (frame index / fps would say 1.5 s and 3 s)."""
    vfr = work / "vfr.mkv"
    run_ffmpeg([*SOURCE[:-1], SOURCE[-1] + ",select='not(eq(mod(n\\,4)\\,1))'",
                "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "veryfast", "-crf", "30",
                "-x264-params", "threads=1", str(vfr)], what="encoding a VFR clip")
    report = analyze(vfr, predictor)
    assert report.summary["frames"] == 75
    assert report.summary["duration_s"] == pytest.approx(4.0, abs=1e-3)
    starts = [r["start"] for r in report.records]
    assert starts[0] == 0.0 and 2.0 in starts
    ends = [r["end"] for r in report.records]
    assert ends[:-1] == starts[1:]  # shots tile the timeline
    assert "hidden_frames" not in report.summary


@pytest.mark.parametrize("name, vf", [
    ("drops_random", "select='gte(random(0)\\,0.45)'"),
    ("drops_third", "select='not(eq(mod(n\\,3)\\,2))'"),
    # a capture clock: +-8 ms of jitter on a 1 ms time base
    ("jitter", "settb=1/1000,setpts='(N/30+0.008*(2*random(0)-1))/TB'"),
])
def test_a_file_that_only_drops_frames_is_not_flagged_for_its_rate(work, predictor, name, vf):
    """Frames dropped at random (45 %) or every third one: each shot's median step was one
    frame in some shots and two in others, and 6 of 9 shots were refused as recorded at
    another frame rate (``frame_rate:30``). Read by its shortest steps alone, a capture
    clock's jitter made 9 of 12 shots read 40 fps. One rate throughout: no shot flagged."""
    clip = work / f"{name}.mkv"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=12", "-vf", vf,
                "-fps_mode", "vfr", "-enc_time_base", "1/1000", "-c:v", "libx264", "-preset",
                "veryfast", "-bf", "0", "-crf", "26", "-x264-params", "threads=1", str(clip)],
               what="encoding a clip that drops frames")
    report = analyze(clip, predictor)
    assert report.summary["shots"] >= 6
    flags = [f for r in report.records for f in r["flags"]]
    assert not [f for f in flags if f.startswith("frame_rate:")], flags


def test_raw_elementary_stream_without_timestamps_pairs_by_order(work, base_mp4, predictor):
    """A raw H.264 stream has no timestamps: one packet per frame, counted in order."""
    base, raw = base_mp4, work / "raw.h264"
    run_ffmpeg(["-i", str(base), "-c", "copy", "-bsf:v", "h264_mp4toannexb", str(raw)],
               what="extracting the raw stream")
    y, pts = decode(raw)
    packets = read_packets(raw)
    aligned = align_packets_to_frames(packets, pts, y.shape[0])
    assert aligned.by == "order" and aligned.frame_times_s is None
    report = analyze(raw, predictor)
    assert report.summary["frames"] == y.shape[0] == 100


@pytest.mark.parametrize(("codec", "bsf", "suffix"), [("libx264", "h264_mp4toannexb", "h264"),
                                                     ("libx265", "hevc_mp4toannexb", "hevc")])
def test_a_raw_stream_is_read_at_its_own_rate(work, predictor, codec, bsf, suffix):
    """A raw Annex B stream has no container timing: ffmpeg's stream line prints its demuxer's
    default 25 fps, and a 50 fps stream was read at 25 (shots twice as long, bitrates halved,
    where its MP4 copy, what the corpus trains on, reads 50). Its VUI timing says 50."""
    mp4, raw = work / f"fifty_{suffix}.mp4", work / f"fifty.{suffix}"
    params = "threads=1" if codec == "libx264" else "pools=1:frame-threads=1:log-level=error"
    run_ffmpeg([*SOURCE, "-r", "50", "-c:v", codec, "-crf", "30", "-bf", "0",
                f"-{codec[3:]}-params", params, "-pix_fmt", "yuv420p", str(mp4)],
               what="encoding at 50 fps")
    run_ffmpeg(["-i", str(mp4), "-c", "copy", "-bsf:v", bsf, str(raw)], what="extracting")
    for backend in ("auto", "ffmpeg"):
        assert probe_video(raw, backend=backend).fps == probe_video(mp4).fps == 50.0
    assert read_rate(probe_video(raw, backend="ffmpeg"), read_packets(raw)) == 50.0
    want, got = analyze(mp4, predictor), analyze(raw, predictor)
    windows = [(r["start"], r["end"]) for r in want.records]
    assert [(r["start"], r["end"]) for r in got.records] == windows
    assert windows[-1][1] == pytest.approx(4.0) and len(windows) >= 2


def _packets(pts: list[int]) -> Packets:
    n = len(pts)
    return Packets(path="clip.mp4", codec="h264", width=2, height=2,
                   sizes=np.arange(1, n + 1, dtype=np.int64) * 100,
                   pts_s=np.zeros(n), duration_s=np.full(n, 0.04),
                   keyframe=np.zeros(n, bool), pts=np.array(pts, dtype=np.int64),
                   time_base=Fraction(1, 25))


def test_alignment_rules_by_hand():
    packets = _packets([0, 1, 2, 3, 4])
    a = align_packets_to_frames(packets, [1, 2, 4], 3)
    assert a.by == "pts" and a.packets.sizes.tolist() == [200, 300, 500]
    assert a.hidden.tolist() == [0, 3] and a.hidden_before_frame.tolist() == [0, 2]
    assert a.frame_times_s.tolist() == [0.0, 0.04, 0.12]
    # matched, but the time line goes backwards (two files joined): no frame times
    back = align_packets_to_frames(_packets([10, 11, 0, 1]), [10, 11, 0, 1], 4)
    assert back.by == "pts" and back.frame_times_s is None
    # no timestamps, equal counts: by order
    raw = _packets([NOPTS_VALUE] * 3)
    assert align_packets_to_frames(raw, [None] * 3, 3).by == "order"
    # no timestamps and fewer frames: a clear error naming the file and why
    with pytest.raises(VideoInputError, match=r"clip\.mp4: 3 video packets but 2 decoded "
                       r"frames and the stream has no timestamps"):
        align_packets_to_frames(raw, [None, None], 2)
    # a decoded frame whose pts no packet has (and counts differ): refused, not guessed
    with pytest.raises(VideoInputError, match="1 decoded frame timestamps match no packet"):
        align_packets_to_frames(packets, [1, 7], 2)
    # a stream copy moved one packet's pts onto its neighbour's (1 -> 2): the frames take
    # the packets with their pts, the frame no pts names the one left over
    moved = align_packets_to_frames(_packets([0, 2, 2, 3]), [0, 1, 2, 3], 4)
    assert moved.by == "pts" and moved.packets.sizes.tolist() == [100, 300, 200, 400]
    # two left over for one unnamed frame: which one is not known, so refused
    with pytest.raises(VideoInputError, match="1 decoded frame timestamps match no packet"):
        align_packets_to_frames(_packets([0, 2, 2, 2, 3]), [0, 1, 2, 3], 4)
    # a 1 ms clock at 29.97 fps: the copy moved 33 to 65, just below the next frame's 67
    below = align_packets_to_frames(_packets([NOPTS_VALUE, 0, 65, 67]), [0, 33, 67], 3)
    assert below.packets.sizes.tolist() == [200, 300, 400] and below.hidden.tolist() == [0]
    # the one left over lies past the next frame's pts: not a moved pts, refused
    with pytest.raises(VideoInputError, match="1 decoded frame timestamps match no packet"):
        align_packets_to_frames(_packets([NOPTS_VALUE, 0, 2, 3, 5]), [0, 1, 2, 3], 4)
    # joined files with a timestamp reset: one frame per copy of each pts, by order
    joined = align_packets_to_frames(_packets([0, 0, 1, 1]), [0, 1, 0, 1], 4)
    assert joined.packets.sizes.tolist() == [100, 300, 200, 400] and joined.hidden.size == 0
    # ... but a timed packet no frame came from could be either copy: refused
    with pytest.raises(VideoInputError, match="could be any copy"):
        align_packets_to_frames(_packets([0, 0, 1, 1, 2, 2]), [0, 1, 2, 0, 1], 5)
    # an ffmpeg that logged no timestamps: by order when the counts agree
    assert align_packets_to_frames(packets, None, 5).by == "order"
    # MKV writes the RASL picture an open-GOP cut's decoder drops with no pts (the keyframe
    # first in decode order, then it): one such packet turned matching off for the stream,
    # "71 video packets but 70 decoded frames and the stream has no timestamps". It is hidden,
    # before the first frame, as the same cut in MPEG-TS reads.
    cut = align_packets_to_frames(_packets([NOPTS_VALUE, 0, 1, 2, 3]), [0, 1, 2, 3], 4)
    assert cut.by == "pts" and cut.packets.sizes.tolist() == [200, 300, 400, 500]
    assert cut.hidden.tolist() == [0] and cut.hidden_before_frame.tolist() == [0]


def test_an_ffmpeg_without_frame_stats_still_decodes(work, base_mp4, tmp_path, monkeypatch):
    """ffmpeg < 6.1 has no -stats_enc_pre: decoding retries without it (no timestamps)."""
    base = base_mp4
    old = tmp_path / "ffmpeg-old"
    old.write_text(
        "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = -stats_enc_pre ]; then\n"
        "    echo \"Unrecognized option 'stats_enc_pre'.\" >&2; exit 8\n  fi\ndone\n"
        f"exec '{ffmpeg_exe()}' \"$@\"\n")
    old.chmod(old.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(decode_mod, "ffmpeg_exe", lambda: os.fspath(old))
    monkeypatch.setattr(decode_mod, "_NO_FRAME_STATS", set())
    y, pts = decode(base)
    assert y.shape[0] == 100 and pts == [] and os.fspath(old) in decode_mod._NO_FRAME_STATS
    y_new, pts_new = decode(base)  # remembered: no second failing start
    assert pts_new == [] and np.array_equal(y, y_new)


def test_decoder_errors_are_reported_not_swallowed(work, base_mp4, predictor):
    """A container cut short mid-file still decodes its complete frames; the summary says the
    decoder complained (and what first), and a clean file has no such entry."""
    base = base_mp4
    whole, short = work / "whole.mkv", work / "short.mkv"
    run_ffmpeg(["-i", str(base), "-c", "copy", str(whole)], what="remuxing")
    data = whole.read_bytes()
    short.write_bytes(data[: len(data) * 6 // 10])
    clean = analyze(whole, predictor).summary
    report = analyze(short, predictor).summary
    assert "decoder_errors" not in clean and clean["frames"] == 100
    assert 0 < report["frames"] < 100
    assert report["decoder_errors"]["count"] >= 1
    assert "ended prematurely" in report["decoder_errors"]["first"]


def test_a_rotation_matrix_does_not_turn_the_frames(work, base_mp4, predictor):
    """Phone videos carry a display rotation. ffmpeg autorotates by default: a 320x180 stream
    would come out as 180x320 frames of the same byte count, read as 320x180 and silently
    scrambled (the edge did so before). Every decoder here reads the coded frames instead:
    the edge, the libvmaf oracle and the ladder encoder agree with the unrotated stream."""
    from vmafdistill.encode import Rung, encode_rung
    from vmafdistill.io import read_all
    from vmafdistill.oracle import libvmaf_score

    base = base_mp4
    rotated = work / "rotated.mp4"
    run_ffmpeg(["-display_rotation", "90", "-i", str(base), "-c", "copy", str(rotated)],
               what="tagging a rotation")
    assert np.array_equal(decode(rotated)[0], decode(base)[0])
    a, b = analyze(base, predictor), analyze(rotated, predictor)
    assert [r["pred_vmaf"] for r in a.records] == [r["pred_vmaf"] for r in b.records]
    assert a.rows[0].keys() == b.rows[0].keys()
    for ra, rb in zip(a.rows, b.rows, strict=True):
        assert all(ra[k] == rb[k] or (ra[k] != ra[k] and rb[k] != rb[k]) for k in ra)

    rung = Rung(codec="h264", height=90, crf=35, preset="ultrafast")
    plain = encode_rung(base, rung, (320, 180), work / "plain_rung.mp4")
    turned = encode_rung(rotated, rung, (320, 180), work / "rotated_rung.mp4")
    y_plain, y_turned = read_all(plain).y, read_all(turned).y
    assert y_turned.shape == y_plain.shape == (100, 90, 160)
    np.testing.assert_array_equal(y_turned, y_plain)

    want = libvmaf_score(base, plain, scale_to=(320, 180)).frames
    got = libvmaf_score(base, turned, scale_to=(320, 180)).frames  # a rotated dist
    got_ref = libvmaf_score(rotated, plain, scale_to=(320, 180)).frames  # a rotated ref
    assert [f["vmaf"] for f in got] == [f["vmaf"] for f in want] == [f["vmaf"] for f in got_ref]


@pytest.mark.parametrize(("size", "want", "rule"), [
    ((640, 360), (1280, 720), "card"),
    ((1280, 720), (1280, 720), "card"),
    ((360, 640), (720, 1280), "card_turned"),
    ((640, 272), (1280, 544), "card_fit"),
    ((854, 480), (1280, 720), "card"),  # 16:9 rounded by the ladder: not 1280x719
    ((426, 240), (1280, 720), "card"),  # not 1278x720
    ((480, 854), (720, 1280), "card_turned"),
    ((840, 480), (1260, 720), "card_fit"),  # 1.6 % narrower than 16:9: its own shape
    ((176, 144), (880, 720), "card_fit"),
    ((1920, 1080), (1920, 1080), "delivery"),
    ((1080, 1920), (1080, 1920), "delivery"),
])
def test_default_reference_size_rules(size, want, rule):
    assert pipeline.default_ref_size((1280, 720), *size) == (want, rule)


def test_a_portrait_video_is_compared_with_a_portrait_reference(work, predictor, tmp_path,
                                                               capsys):
    """A 180x320 (9:16) phone delivery with a 1280x720 card: scale ratio 720x1280 / 180x320 =
    4, as for a 320x180 delivery of a landscape source, not 720 / 320 = 2.25; --ref-size
    still wins."""
    from vmafdistill.cli import main as cli_main

    portrait = work / "portrait.mp4"
    run_ffmpeg([*SOURCE[:-1], SOURCE[-1] + ",transpose=1", "-c:v", "libx264",
                "-preset", "veryfast", "-crf", "30", "-x264-params", "threads=1",
                str(portrait)], what="encoding a portrait clip")
    report = analyze(portrait, predictor)
    assert report.summary["ref_size"] == [720, 1280]
    assert report.summary["ref_size_rule"] == "card_turned"
    assert {r["scale_ratio"] for r in report.rows} == {4.0}
    given = analyze_video(portrait, predictor, rules=merge_rules(DEFAULT_RULES, None),
                          ref_size=(1280, 720))
    assert given.summary["ref_size_rule"] == "given"
    assert {r["scale_ratio"] for r in given.rows} == {720 / 320}
    out = tmp_path / "p.json"
    assert cli_main(["predict", str(portrait), "--model", str(TINY), "--json", str(out),
                     "--progress", "off"]) == 0
    assert "reference 720x1280 (card_turned)" in capsys.readouterr().out


def test_cover_art_is_not_the_video(tmp_path):
    """Every pass reads the first video stream that is not an attached picture (ffmpeg's
    0:V:0): a song with cover art has no video, for the packet and quantizer readers too
    (before, they read the cover's one PNG packet as the video)."""
    from vmafdistill.io.quantizer import QuantizerTraceError, read_quantizers

    cover = tmp_path / "cover.png"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x64:d=1", "-frames:v", "1", str(cover)],
               what="drawing a cover")
    song = tmp_path / "song.m4a"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=d=1", "-i", str(cover), "-map", "0:a", "-map", "1:v",
                "-c:a", "aac", "-c:v", "png", "-disposition:v", "attached_pic", str(song)],
               what="tagging a song with cover art")
    with pytest.raises(VideoInputError, match="no video stream"):
        read_packets(song)
    # the cover's PNG packet, read as the video, would be traced (or fail on a PNG) instead
    with pytest.raises(QuantizerTraceError, match=r"song\.m4a: no video stream"):
        read_quantizers(song, "h264").packets()


def test_predict_a_directory_and_name_portrait_resolution_by_its_short_side(
        work, base_mp4, tmp_path, capsys):
    """A directory argument means its video files (recursively, sorted, hidden files skipped);
    one without any is a clear error, in a batch reported like a bad video. A 180x320 portrait
    video is "180p", as players label it."""
    from vmafdistill.cli import main as cli_main

    folder = tmp_path / "deliveries"
    (folder / "day2").mkdir(parents=True)
    (folder / "notes.txt").write_text("not a video")
    (folder / "._a.mp4").write_bytes(b"\0\5\26\7 macOS resource fork")  # hidden: skipped
    a = folder / "a.mp4"
    a.write_bytes(base_mp4.read_bytes())
    run_ffmpeg(["-i", str(base_mp4), "-vf", "transpose=1", "-c:v", "libx264", "-preset",
                "ultrafast", str(folder / "day2" / "b.MKV")], what="a portrait delivery")
    out = tmp_path / "dir.json"
    assert cli_main(["predict", str(folder), "--model", str(TINY), "--json", str(out),
                     "--progress", "off"]) == 0
    videos = json.loads(out.read_text())["videos"]
    assert [Path(v["video"]).name for v in videos] == ["a.mp4", "b.MKV"]
    assert videos[0]["summary"]["res"] == "180p" and videos[1]["summary"]["res"] == "180p"
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert cli_main(["predict", str(empty), "--model", str(TINY)]) == 2
    assert "empty: a directory without video files" in capsys.readouterr().err
    # in a batch, an empty directory is reported like a bad video; the others still predict
    assert cli_main(["predict", str(empty), str(a), "--model", str(TINY), "--json", str(out),
                     "--progress", "off"]) == 2
    videos = json.loads(out.read_text())["videos"]
    assert "a directory without video files" in videos[0]["error"] and "summary" in videos[1]
    assert "1 of 2 video(s) failed" in capsys.readouterr().err
    # a folder linked in from elsewhere is entered (once); a video link that points nowhere is
    # reported like a bad video (both were skipped without a word, exit 0)
    store = tmp_path / "store"
    store.mkdir()
    (store / "c.mp4").write_bytes(base_mp4.read_bytes())
    (folder / "linked").symlink_to(store)
    (folder / "linked_again").symlink_to(store)
    (folder / "gone.mp4").symlink_to(tmp_path / "moved_away.mp4")
    assert cli_main(["predict", str(folder), "--model", str(TINY), "--json", str(out),
                     "--progress", "off"]) == 2
    videos = json.loads(out.read_text())["videos"]
    assert [Path(v["video"]).relative_to(folder).as_posix() for v in videos] == [
        "a.mp4", "day2/b.MKV", "linked/c.mp4", "gone.mp4"]
    assert "a link that points nowhere" in videos[3]["error"] and "summary" in videos[2]


def test_an_hls_playlist_is_one_video(work, base_mp4, predictor):
    """A VOD HLS playlist (1 s MPEG-TS segments) predicts as the video it was cut from: the
    same frames, shots, rates and predictions (the parameter sets and delimiters TS adds are no
    picture bytes)."""
    hls = work / "hls"
    hls.mkdir()
    run_ffmpeg(["-i", str(base_mp4), "-c", "copy", "-f", "hls", "-hls_time", "1",
                "-hls_playlist_type", "vod", str(hls / "play.m3u8")], what="segmenting to HLS")
    a, b = analyze(base_mp4, predictor), analyze(hls / "play.m3u8", predictor)
    assert b.summary["frames"] == a.summary["frames"] == 100
    assert [(r["start"], r["end"]) for r in b.records] == [(r["start"], r["end"])
                                                          for r in a.records]
    assert [r["bitrate_kbps"] for r in b.records] == [r["bitrate_kbps"] for r in a.records]
    np.testing.assert_allclose([r["pred_vmaf"] for r in b.records],
                               [r["pred_vmaf"] for r in a.records], atol=1e-6)


def test_live_playlists_and_missing_segments_are_named(work, base_mp4, predictor):
    """A live/event playlist (no #EXT-X-ENDLIST) hung predict (ffmpeg waits for segments
    forever); a missing local segment was skipped with an ffmpeg warning only, joining the
    shots around the hole. Both are now one-line errors before any decode; a master playlist's
    variants are checked too."""
    import time

    from vmafdistill.errors import VideoInputError

    hls = work / "hls_checks"
    hls.mkdir()
    run_ffmpeg(["-i", str(base_mp4), "-c", "copy", "-f", "hls", "-hls_time", "1",
                "-hls_playlist_type", "vod", str(hls / "vod.m3u8")], what="segmenting to HLS")
    vod = (hls / "vod.m3u8").read_text()
    (hls / "live.m3u8").write_text(vod.replace("#EXT-X-ENDLIST", "").replace(
        "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-PLAYLIST-TYPE:EVENT"))
    segments = [ln for ln in vod.splitlines() if ln.endswith(".ts")]
    (hls / "hole.m3u8").write_text(vod.replace(segments[1], "gone.ts"))
    (hls / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n"
                                     "hole.m3u8\n")
    started = time.monotonic()
    with pytest.raises(VideoInputError, match=r"live\.m3u8: a live or event HLS playlist"):
        analyze(hls / "live.m3u8", predictor)
    assert time.monotonic() - started < 10
    for name in ("hole.m3u8", "master.m3u8"):
        with pytest.raises(VideoInputError, match=r"hole\.m3u8: 1 of its \d+ segments "
                                                  r"unusable \(gone\.ts: missing\)"):
            analyze(hls / name, predictor)
    assert analyze(hls / "vod.m3u8", predictor).summary["frames"] == 100
    # a file:// URI is a local segment too; an empty, truncated or non-video segment (an error
    # page saved in its place) passed with an ffmpeg warning and joined the shots around it
    (hls / "uri.m3u8").write_text(vod.replace(segments[1], (hls / "gone.ts").as_uri()))
    with pytest.raises(VideoInputError, match=r"uri\.m3u8: 1 of its \d+ segments "
                                              r"unusable \(file://.*gone\.ts: missing\)"):
        analyze(hls / "uri.m3u8", predictor)
    whole = (hls / segments[1]).read_bytes()
    for name, data, why in (
            ("empty.ts", b"", "empty"),
            ("page.ts", b"<html><body>502 Bad Gateway</body></html>\n" * 47,
             r"not MPEG-TS at byte 0 \(no sync byte"),
            ("short.ts", whole[: len(whole) // 2 + 5], r"truncated \(\d+ bytes: not whole")):
        (hls / name).write_bytes(data)
        (hls / f"{name}.m3u8").write_text(vod.replace(segments[1], name))
        with pytest.raises(VideoInputError, match=rf"1 of its \d+ segments unusable "
                                                  rf"\({re.escape(name)}: {why}"):
            analyze(hls / f"{name}.m3u8", predictor)
        # the same hole behind a master playlist
        (hls / f"m_{name}.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"
                                             f"{name}.m3u8\n")
        with pytest.raises(VideoInputError, match="segments unusable"):
            analyze(hls / f"m_{name}.m3u8", predictor)
    # fMP4 segments: a truncated one is a box chain that overruns the file
    fmp4 = work / "hls_fmp4"
    fmp4.mkdir()
    run_ffmpeg(["-i", str(base_mp4), "-c", "copy", "-f", "hls", "-hls_time", "1",
                "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
                str(fmp4 / "vod.m3u8")], what="segmenting to fMP4 HLS")
    assert analyze(fmp4 / "vod.m3u8", predictor).summary["frames"] == 100
    first = next(ln for ln in (fmp4 / "vod.m3u8").read_text().splitlines()
                 if ln.endswith(".m4s"))
    data = (fmp4 / first).read_bytes()
    (fmp4 / first).write_bytes(data[: len(data) - 100])
    with pytest.raises(VideoInputError, match=rf"{re.escape(first)}: truncated \(its 'mdat' box"):
        analyze(fmp4 / "vod.m3u8", predictor)


def test_playlist_addresses_keys_and_stream_switches_are_read_as_ffmpeg_reads_them(
        work, base_mp4, predictor, monkeypatch):
    """Found by a hunt, each exit 0 with a segment silently missing before: the check
    cleaned an address up (leading spaces, file://localhost/, FILE:///) where ffmpeg opens
    it as written and skipped it; a remote segment in a local playlist was taken as
    fetched (ffmpeg opens only local files there: a hole); an ad segment after a
    discontinuity with another video PID vanished, and an H.265 segment among H.264 ones
    was decoded as H.264; encrypted segments were named "not MPEG-TS (an error page?)"."""
    from vmafdistill.errors import VideoInputError

    hls = work / "hls_addresses"
    hls.mkdir()
    run_ffmpeg(["-i", str(base_mp4), "-c", "copy", "-f", "hls", "-hls_time", "1",
                "-hls_playlist_type", "vod", str(hls / "vod.m3u8")], what="segmenting to HLS")
    vod = (hls / "vod.m3u8").read_text()
    second = [ln for ln in vod.splitlines() if ln.endswith(".ts")][1]
    absolute = str((hls / second).resolve())
    for name in ("take_a:2.ts", "cam-1:2.ts"):
        (hls / name).write_bytes((hls / second).read_bytes())
    for name, entry, why in (("spaced", f"  {second}", "missing"),
                             ("localhost", f"file://localhost{absolute}", "missing"),
                             # a protocol name to ffmpeg (none by that name: never opened)
                             ("upper", f"FILE://{absolute}", "not a local file"),
                             ("remote", "http://127.0.0.1:9/seg.ts", "not a local file"),
                             (":colon", ":2.ts", "not a local file"),
                             ("cam", "cam-1:2.ts", "not a local file"),
                             # "_" is no protocol character: a file ffmpeg opens from the
                             # working directory (it is beside the playlist)
                             ("colon", "take_a:2.ts", "missing where ffmpeg opens it, .*: a "
                                                      "name with a colon")):
        (hls / f"{name}.m3u8").write_text(vod.replace(second, entry))
        with pytest.raises(VideoInputError, match=rf"{name}\.m3u8: 1 of its \d+ segments "
                                                  rf"unusable \({re.escape(entry)}: {why}"):
            analyze(hls / f"{name}.m3u8", predictor)
    for entry in (f"file:{absolute}", f"file://{absolute}", "./take_a:2.ts"):  # ffmpeg reads
        (hls / "file.m3u8").write_text(vod.replace(second, entry))
        assert analyze(hls / "file.m3u8", predictor).summary["frames"] == 100
    # from the playlist's folder ffmpeg finds take_a:2.ts, and never cam-1:2.ts (a protocol)
    monkeypatch.chdir(hls)
    assert analyze(hls / "colon.m3u8", predictor).summary["frames"] == 100
    with pytest.raises(VideoInputError, match=r"cam-1:2\.ts: not a local file"):
        analyze(hls / "cam.m3u8", predictor)
    # a clear lead (METHOD=NONE) before encrypted segments: the first key alone was read
    lines = vod.splitlines(keepends=True)
    at = [i for i, ln in enumerate(lines) if ln.startswith("#EXTINF")]
    lines.insert(at[1], '#EXT-X-KEY:METHOD=AES-128,URI="k.key"\n')
    lines.insert(at[0], "#EXT-X-KEY:METHOD=NONE\n")
    (hls / "lead.m3u8").write_text("".join(lines))
    with pytest.raises(VideoInputError, match=r"encrypted \(#EXT-X-KEY METHOD=AES-128\)"):
        analyze(hls / "lead.m3u8", predictor)
    (hls / "key.m3u8").write_text(vod.replace(
        "#EXTINF", '#EXT-X-KEY:METHOD=AES-128,URI="k.key"\n#EXTINF', 1))
    with pytest.raises(VideoInputError, match=r"key\.m3u8: its segments are encrypted "
                                              r"\(#EXT-X-KEY METHOD=AES-128\)"):
        analyze(hls / "key.m3u8", predictor)
    # the second segment with another video PID, or as H.265 (ad insertion)
    run_ffmpeg(["-i", str(hls / second), "-c", "copy", "-mpegts_start_pid", "0x200",
                str(hls / "other_pid.ts")], what="another PID")
    run_ffmpeg(["-i", str(hls / second), "-c:v", "libx265", "-x265-params",
                "log-level=error:pools=1", str(hls / "hevc.ts")], what="an H.265 segment")
    for name, change in (("other_pid.ts", "PID 0x100 H.264 -> other_pid.ts: PID 0x200 H.264"),
                         ("hevc.ts", "PID 0x100 H.264 -> hevc.ts: PID 0x100 H.265")):
        (hls / "switch.m3u8").write_text(vod.replace(second, name))
        with pytest.raises(VideoInputError, match=rf"its video stream changes at segment 1 "
                                                  rf"\(\S+: {re.escape(change)}\)"):
            analyze(hls / "switch.m3u8", predictor)


def test_a_video_stream_that_starts_mid_file_is_named_in_the_block_qp_warning(
        work, base_mp4):
    """Two TS files of other stream IDs joined byte for byte: PyAV's demuxer stops at the
    second stream's first packet with an IndexError, which the warning quoted as "IndexError:
    list index out of range"; it now says what stopped it."""
    joined = work / "joined_pids"
    joined.mkdir()
    parts = []
    for k, pid in enumerate(("0x100", "0x200")):
        part = joined / f"part{k}.ts"
        run_ffmpeg(["-i", str(base_mp4), "-c", "copy", "-mpegts_start_pid", pid,
                    "-mpegts_pmt_start_pid", f"{0x1000 + k * 0x100:#x}", str(part)],
                   what="a TS part")
        parts.append(part.read_bytes())
    both = joined / "both.ts"
    both.write_bytes(b"".join(parts))
    from vmafdistill.edge.predictor import default_model_path

    shipped = Predictor(default_model_path())  # it reads the block QPs
    with pytest.warns(UserWarning, match="cannot decode the macroblock quantizers .*a video "
                                         "stream that starts mid-file"):
        analyze(both, shipped)


def test_playlist_segments_without_video_byte_ranges_and_init_switches(work, base_mp4,
                                                                         predictor):
    """Found by a hunt, each exit 0 with a wrong result before: a TS segment cut to its PAT and
    PMT, or an fMP4 one cut to its ``styp`` box, passed the structure check and joined the
    shots around a 1 s hole; a byte-range playlist (``-hls_flags single_file``) whose file
    lost its last segment lost those seconds silently; an fMP4 playlist switching rendition
    with a second ``#EXT-X-MAP`` was decoded with the first init's parameters (garbage at the
    wrong size). Each is now a one-line error naming the playlist and the part."""
    from vmafdistill.errors import VideoInputError

    ts = work / "novideo_ts"
    ts.mkdir()
    run_ffmpeg(["-i", str(base_mp4), "-c", "copy", "-f", "hls", "-hls_time", "1",
                "-hls_playlist_type", "vod", str(ts / "vod.m3u8")], what="segmenting to HLS")
    second = [ln for ln in (ts / "vod.m3u8").read_text().splitlines() if ln.endswith(".ts")][1]
    (ts / second).write_bytes((ts / second).read_bytes()[:376])  # PAT + PMT only
    with pytest.raises(VideoInputError, match=rf"vod\.m3u8: 1 of its \d+ segments "
                                              rf"unusable \({re.escape(second)}: holds no video"):
        analyze(ts / "vod.m3u8", predictor)
    # a TS init section (RFC 8216 allows one) is only tables: it holds no video, rightly
    first_ts = next(ln for ln in (ts / "vod.m3u8").read_text().splitlines()
                if ln.endswith(".ts"))
    (ts / "init.ts").write_bytes((ts / first_ts).read_bytes()[:376])
    (ts / "first.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        f'#EXT-X-MAP:URI="init.ts"\n#EXTINF:2.0,\n{first_ts}\n#EXT-X-ENDLIST\n')
    assert analyze(ts / "first.m3u8", predictor).summary["frames"] > 0

    def fmp4(name: str, *extra: str, size: str = "320x180") -> Path:
        out = work / name
        out.mkdir()
        run_ffmpeg(["-i", str(base_mp4), *(["-c", "copy"] if size == "320x180" else
                    ["-s", size, "-c:v", "libx264", "-preset", "veryfast", "-g", "25"]),
                    "-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4",
                    "-hls_fmp4_init_filename", f"init_{name}.mp4", *extra,
                    "-hls_playlist_type", "vod", str(out / "vod.m3u8")],
                   what="segmenting to fMP4 HLS")
        return out / "vod.m3u8"

    styp = fmp4("styp_only")
    first = next(ln for ln in styp.read_text().splitlines() if ln.endswith(".m4s"))
    data = (styp.parent / first).read_bytes()
    (styp.parent / first).write_bytes(data[: int.from_bytes(data[:4], "big")])
    with pytest.raises(VideoInputError, match=rf"{re.escape(first)}: holds no media"):
        analyze(styp, predictor)

    # byte ranges: whole, they read as the video; a file cut where its last range starts is
    # named with that range
    for kind, seg_type in (("ts", "mpegts"), ("m4s", "fmp4")):
        single = work / f"single_{kind}"
        single.mkdir()
        run_ffmpeg(["-i", str(base_mp4), "-c", "copy", "-f", "hls", "-hls_time", "1",
                    "-hls_flags", "single_file", "-hls_segment_type", seg_type,
                    "-hls_playlist_type", "vod", str(single / "vod.m3u8")],
                   what="segmenting to one-file HLS")
        text = (single / "vod.m3u8").read_text()
        assert "#EXT-X-BYTERANGE" in text
        assert analyze(single / "vod.m3u8", predictor).summary["frames"] == 100
        media = single / f"vod.{kind}"
        last = [ln for ln in text.splitlines() if ln.startswith("#EXT-X-BYTERANGE:")][-1]
        length, offset = (int(v) for v in last.split(":")[1].split("@"))
        media.write_bytes(media.read_bytes()[:offset])
        with pytest.raises(VideoInputError,
                           match=rf"{re.escape(media.name)} bytes {offset}\.\.{offset + length}:"
                                 r" past the file's end"):
            analyze(single / "vod.m3u8", predictor)

    # a second #EXT-X-MAP with other bytes: a rendition switch inside one playlist
    hi, lo = fmp4("init_hi"), fmp4("init_lo", size="160x90")
    segs = {d: [ln for ln in d.read_text().splitlines() if ln.endswith(".m4s")]
            for d in (hi, lo)}
    (work / "init_hi" / "switch.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        '#EXT-X-MAP:URI="init_init_hi.mp4"\n'
        f"#EXTINF:1.0,\n{segs[hi][0]}\n#EXT-X-DISCONTINUITY\n"
        '#EXT-X-MAP:URI="../init_lo/init_init_lo.mp4"\n'
        f"#EXTINF:1.0,\n../init_lo/{segs[lo][1]}\n#EXT-X-ENDLIST\n")
    with pytest.raises(VideoInputError, match=r"switch\.m3u8: its init section changes at "
                                              r"segment 1 \(init_init_hi\.mp4 -> "):
        analyze(work / "init_hi" / "switch.m3u8", predictor)
    # the same init section named again (another path, same bytes) is no switch
    (work / "init_hi" / "again.mp4").write_bytes((work / "init_hi" / "init_init_hi.mp4")
                                                 .read_bytes())
    lines = hi.read_text().splitlines()
    at = max(k for k, ln in enumerate(lines) if ln.startswith("#EXTINF"))
    lines.insert(at, '#EXT-X-MAP:URI="again.mp4"')
    (work / "init_hi" / "again.m3u8").write_text("\n".join(lines) + "\n")
    assert analyze(work / "init_hi" / "again.m3u8", predictor).summary["frames"] == 100


def test_a_folder_of_hls_deliveries_predicts_each_media_playlist(work, base_mp4, tmp_path):
    """A folder of HLS renditions (found by a hunt): the segments and init sections were
    predicted one by one and every fMP4 one failed ("no decodable video frames"), the playlists
    skipped. Each media playlist is now one video, the files it lists are not predicted again,
    a master playlist (its variants are media playlists of their own) and a music ``.m3u`` are
    skipped, and a plain video beside them is still predicted."""
    import os

    from vmafdistill.cli.predict import expand_videos

    folder = tmp_path / "deliveries"
    for name, seg_type in (("r_ts", "mpegts"), ("r_fmp4", "fmp4")):
        (folder / name).mkdir(parents=True)
        run_ffmpeg(["-i", str(base_mp4), "-c", "copy", "-f", "hls", "-hls_time", "1",
                    "-hls_segment_type", seg_type, "-hls_playlist_type", "vod",
                    str(folder / name / "vod.m3u8")], what="segmenting to HLS")
    (folder / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nr_ts/vod.m3u8\n"
                                        "#EXT-X-STREAM-INF:BANDWIDTH=2\nr_fmp4/vod.m3u8\n")
    (folder / "music.m3u").write_text("/music/track01.mp3\n")
    (folder / "stray.ts").write_bytes((folder / "r_ts" / "vod0.ts").read_bytes())
    (folder / "a.mp4").write_bytes(base_mp4.read_bytes())
    (folder / "b.mp4").write_bytes(base_mp4.read_bytes())
    # a player's list (VLC writes #EXTM3U too, no #EXT-X-TARGETDURATION): its videos stay
    (folder / "list.m3u").write_text("#EXTM3U\n#EXTINF:4,a\na.mp4\n#EXTINF:4,b\nb.mp4\n")
    # an I-frame index and a subtitle playlist beside a rendition are no videos
    (folder / "r_ts" / "iframes.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-I-FRAMES-ONLY\n#EXTINF:2,\n"
        "#EXT-X-BYTERANGE:376@0\nvod0.ts\n#EXT-X-ENDLIST\n")
    (folder / "r_ts" / "subs.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nsub0.vtt\n#EXT-X-ENDLIST\n")
    (folder / "r_ts" / "sub0.vtt").write_text("WEBVTT\n")
    # audio renditions, in TS and fMP4 segments as ffmpeg writes them (suffixes of video
    # containers: taken for videos, they failed the run)
    for name, seg_type in (("a_ts", "mpegts"), ("a_fmp4", "fmp4")):
        (folder / name).mkdir()
        run_ffmpeg(["-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", "-f", "hls",
                    "-hls_time", "1", "-hls_segment_type", seg_type, "-hls_playlist_type",
                    "vod", str(folder / name / "audio.m3u8")], what="an audio rendition")
    # a FIFO named as a playlist: reading it hung the folder's expansion
    os.mkfifo(folder / "stuck.m3u8")
    assert len(list((folder / "r_fmp4").iterdir())) > 2  # init + segments + playlist
    videos = expand_videos([str(folder)])
    assert [(Path(v).relative_to(folder).as_posix(), err) for v, err in videos] == [
        ("a.mp4", None), ("b.mp4", None), ("r_fmp4/vod.m3u8", None), ("r_ts/vod.m3u8", None),
        ("stray.ts", None)]
    # a FIFO given as a video: the DASH check opened it and predict hung; the probe names it
    import subprocess
    import sys

    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "vmafdistill", "predict", str(fifo),
                           "--model", str(TINY)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "pipe.mp4" in done.stderr, done.stderr


def _same_shot(rec: dict, alone: dict) -> None:
    """A shot of a recording equals the same shot of its rendition predicted on its own."""
    for key in ("codec", "res", "band", "issue", "flags"):
        assert rec[key] == alone[key], key
    for key in ("pred_vmaf", "bitrate_kbps"):
        assert rec[key] == pytest.approx(alone[key], abs=1e-6), key
    assert rec["end"] - rec["start"] == pytest.approx(alone["end"] - alone["start"], abs=1e-3)


def _ladder_segments(work: Path, name: str, size: str, pix_fmt: str = "yuv420p",
                     fps: int | None = None) -> list[Path]:
    """One rendition of a 6 s source cut into three 2 s HLS-style TS segments (a keyframe at
    every segment start; the segments keep the source's clock, as a player receives them);
    ``fps`` resamples it (a low rung at another frame rate). Encoded once per ``name``."""
    out = work / name
    segments = [out / f"seg{i}.ts" for i in range(3)]
    if all(seg.is_file() for seg in segments):
        return segments
    out.mkdir(exist_ok=True)
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=6",
                *(["-vf", f"fps={fps}"] if fps else []),
                "-s", size, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", pix_fmt,
                "-force_key_frames", "expr:gte(t,n_forced*2)", "-f", "segment",
                "-segment_time", "2", "-segment_format", "mpegts", str(out / "seg%d.ts")],
               what=f"rendition {name}")
    return segments


def test_a_rendition_switch_mid_stream_predicts_each_rendition_at_its_own_size(
        work, predictor, capsys):
    """An adaptive-bitrate recording: 2 s at 320x180, 2 s of the 160x90 rendition, then
    320x180 again (joined TS segments). ffmpeg scales later pictures to the first one's size
    before the pipe, so the edge decodes every run of equal pictures again at its own size:
    each rendition's shots must equal that segment predicted on its own (pixels, bits,
    resolution, scale), with the recording's shot numbers."""
    from vmafdistill.cli import main as cli_main

    hi = _ladder_segments(work, "hi", "320x180")
    lo = _ladder_segments(work, "lo", "160x90")
    parts = [hi[0], lo[1], hi[2]]  # the player dropped to 160x90 for the middle segment
    both = work / "switch.ts"
    both.write_bytes(b"".join(part.read_bytes() for part in parts))
    report = analyze(both, predictor)
    changes = report.summary["picture_changes"]
    assert [(c["frame"], c["width"], c["height"]) for c in changes] == [
        (0, 320, 180), (50, 160, 90), (100, 320, 180)]
    assert [c["time_s"] for c in changes] == pytest.approx([0.0, 2.0, 4.0], abs=0.05)
    alone = [analyze(part, predictor) for part in parts]
    assert all("picture_changes" not in a.summary for a in alone)  # no change: no 2nd pass
    assert [c["shots"] for c in changes] == [len(a.records) for a in alone]
    assert [c["ref_size"] for c in changes] == [a.summary["ref_size"] for a in alone]
    # each run's own cut step (the summary's top-level one is the first run's; a hunt)
    steps = [a.summary["pixel_features"]["cut_pixel_step"] for a in alone]
    assert [c["cut_pixel_step"] for c in changes] == steps, steps
    expected = [rec for a in alone for rec in a.records]
    assert len(report.records) == len(expected) and "hidden_frames" not in report.summary
    assert [r["shot"] for r in report.records] == list(range(len(expected)))
    for rec, ref in zip(report.records, expected, strict=True):
        _same_shot(rec, ref)
    assert [r["res"] for r in report.records] == [r["res"] for r in expected]
    assert {r["res"] for r in report.records} == {"180p", "90p"}
    # the summary's res said the first shot's alone ("180p")
    assert report.summary["res"] == "180p->90p->180p"
    assert all(a.summary["res"] == a.records[0]["res"] for a in alone)
    assert all(r["pred_vmaf"] is not None for r in report.records)
    # shots never straddle a switch, and the recording's clock runs on
    assert {50, 100} <= {row["start_frame"] for row in report.rows}
    assert report.records[-1]["end"] == pytest.approx(6.0, abs=0.05)
    assert cli_main(["predict", str(both), "--model", str(TINY), "--progress", "off"]) == 0
    out = capsys.readouterr().out
    assert "renditions: 320x180 yuv420p at 0.00 s" in out and "-> 160x90 yuv420p at 2.00 s" in out
    assert "no prediction" not in out


def test_a_rendition_switch_is_found_without_the_notice_of_a_newer_ffmpeg(
        work, predictor, tmp_path, monkeypatch):
    """An ffmpeg older than 6.1 logs no frame timestamps and may word its notice of a picture
    change differently: then the showinfo pass always runs, and a switch is still read per
    rendition, not scaled into the first size without a word."""
    hi = _ladder_segments(work, "hi", "320x180")
    lo = _ladder_segments(work, "lo", "160x90")
    both = work / "switch_old.ts"
    both.write_bytes(hi[0].read_bytes() + lo[1].read_bytes())
    want = analyze(both, predictor)
    old = tmp_path / "ffmpeg-old"
    old.write_text(  # no -stats_enc_pre, and no "Reconfiguring filter graph" notice
        "#!/bin/bash\nfor a in \"$@\"; do\n  if [ \"$a\" = -stats_enc_pre ]; then\n"
        "    echo \"Unrecognized option 'stats_enc_pre'.\" >&2; exit 8\n  fi\ndone\n"
        f"'{ffmpeg_exe()}' \"$@\" 2> >(grep -v 'Reconfiguring filter graph' >&2)\n"
        "rc=$?; wait; exit $rc\n")
    old.chmod(old.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(decode_mod, "ffmpeg_exe", lambda: os.fspath(old))
    monkeypatch.setattr(decode_mod, "_NO_FRAME_STATS", set())
    got = analyze(both, predictor)
    assert os.fspath(old) in decode_mod._NO_FRAME_STATS
    assert [(c["frame"], c["width"]) for c in got.summary["picture_changes"]] == [(0, 320),
                                                                                  (50, 160)]
    assert [r["res"] for r in got.records] == [r["res"] for r in want.records]
    assert [r["pred_vmaf"] for r in got.records] == [r["pred_vmaf"] for r in want.records]
    assert "picture_changes" not in analyze(hi[0], predictor).summary  # one run: none


def test_a_rendition_of_another_bit_depth_is_flagged_not_predicted(work, predictor):
    """A switch to a 10-bit rendition: the recording is read at the first run's depth, so the
    10-bit run's samples went through ffmpeg's conversion; its shots get no prediction and
    say why, the 8-bit shots keep theirs."""
    hi = _ladder_segments(work, "hi", "320x180")[0]
    deep = _ladder_segments(work, "deep", "160x90", "yuv420p10le")[1]
    both = work / "deep_switch.ts"
    both.write_bytes(hi.read_bytes() + deep.read_bytes())
    report = analyze(both, predictor)
    alone = analyze(hi, predictor).records
    assert report.summary["picture_changes"][1]["pix_fmt"] == "yuv420p10le"
    deep_shots = [rec for rec, row in zip(report.records, report.rows, strict=True)
                  if row["start_frame"] >= 50]
    assert len(deep_shots) == len(report.records) - len(alone) >= 2
    for rec in deep_shots:
        assert rec["pred_vmaf"] is None and "picture_format:yuv420p10le" in rec["flags"]
        assert rec["res"] == "90p"
    for rec, ref in zip(report.records[:len(alone)], alone, strict=True):
        _same_shot(rec, ref)


def test_decoder_threads_leave_a_core_to_the_feature_pass(monkeypatch):
    from vmafdistill.edge.decode import decoder_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert decoder_threads(0) == 1 and decoder_threads(3) == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert decoder_threads(0) == 0 and decoder_threads(1) == 1
    with pytest.raises(ValueError, match=">= 0"):
        decoder_threads(-1)


def test_decoder_errors_leave_out_the_output_side():
    """Joined files whose timestamps overlap make the raw pipe's muxer complain; that is not a
    damaged picture. Input-side errors (demuxer, decoder) are kept, level tag removed."""
    from vmafdistill.edge.decode import decoder_errors

    log = "\n".join([
        "[h264 @ 0x55d1] [error] mmco: unref short failure",
        "[rawvideo @ 0x55d2] [error] Application provided invalid, non monotonically increasing "
        "dts to muxer in stream 0: 49 >= 48",
        "[mpegts @ 0x55d3] [error] Packet corrupt (stream = 0, dts = 172800).",
        "[out#0/rawvideo @ 0x55d4] [error] Error muxing a packet",
        "[vf#0:0 @ 0x55d5] [info] Reconfiguring filter graph because video parameters changed",
        "[h264 @ 0x55d1] [warning] no frame!",
    ])
    # context addresses differ in every run: left out, so the same damage reads the same
    assert decoder_errors(log) == ["[h264] mmco: unref short failure",
                                   "[mpegts] Packet corrupt (stream = 0, dts = 172800)."]


def test_a_shot_shorter_than_any_in_training_is_flagged(work, base_mp4, predictor):
    """The corpus never cuts a shot shorter than min_len_s (0.5 s): a 5-frame video is one
    such shot, predicted but flagged; the 4 s clip's shots are not."""
    short = work / "five.mp4"
    run_ffmpeg(["-i", str(base_mp4), "-frames:v", "5", "-c:v", "libx264", "-preset",
                "ultrafast", str(short)], what="a 5-frame clip")
    rec, = analyze(short, predictor).records
    assert "short_shot:5f" in rec["flags"] and rec["pred_vmaf"] is not None
    assert not any(f.startswith("short_shot") for r in analyze(base_mp4, predictor).records
                   for f in r["flags"])


@pytest.mark.parametrize("rate", ["49/2", "61/2"])
def test_a_window_the_detector_cuts_is_never_flagged_short(work, predictor, rate):
    """At 24.5 fps the detector cuts a 25-frame scene into 12 + 13 frames (windows of at most
    24), while its min_frames is 13: the 12-frame window, one the corpus cuts the same way,
    was flagged ``short_shot:12f``."""
    from vmafdistill.shots import ShotDetector

    clip = work / f"rate_{rate.replace('/', '_')}.mp4"
    fps = float(Fraction(rate))
    frames = int(fps) + 1  # one scene of just over max_len_s: two windows
    run_ffmpeg(["-f", "lavfi", "-i", f"testsrc2=s=320x180:r={rate}", "-frames:v", str(frames),
                "-c:v", "libx264", "-preset", "ultrafast", str(clip)], what="an odd-rate clip")
    report = analyze(clip, predictor)
    sizes = [r["end"] - r["start"] for r in report.records]
    assert len(sizes) == 2, sizes
    detector = ShotDetector(fps=fps)
    assert detector.shortest_shot == detector.min_frames - 1
    assert not [f for r in report.records for f in r["flags"] if f.startswith("short_shot")]


def test_a_file_with_two_video_streams_says_which_it_predicted(work, base_mp4, predictor,
                                                               monkeypatch):
    """A container with two video tracks (a 320x180 and a 160x90 rendition): every reader takes
    the first, and the summary says there was another, with PyAV's probe and ffmpeg's alike."""
    from vmafdistill.io import video as video_io

    small = work / "small.mp4"
    run_ffmpeg(["-i", str(base_mp4), "-s", "160x90", "-c:v", "libx264", "-preset", "ultrafast",
                str(small)], what="a second rendition")
    two = work / "two_tracks.mkv"
    run_ffmpeg(["-i", str(base_mp4), "-i", str(small), "-map", "0:v", "-map", "1:v",
                "-c", "copy", str(two)], what="two video tracks")
    alone = analyze(base_mp4, predictor)
    assert "video_streams" not in alone.summary
    for probe in ("pyav", "ffmpeg"):
        if probe == "ffmpeg":
            monkeypatch.setattr(video_io, "_import_av", lambda: None)
        got = analyze(two, predictor)
        assert got.summary["video_streams"] == 2, probe
        assert got.summary["res"] == "180p"
        assert [r["pred_vmaf"] for r in got.records] == [r["pred_vmaf"] for r in alone.records]


def _probe_guessing(monkeypatch, fps: float | None) -> None:
    """Make the chain's probe report ``fps`` (None: the file's own), as libavformat versions
    guess differently on a mix of renditions (ffmpeg 9: 15 fps for the recording below)."""
    import dataclasses

    from vmafdistill.io import video as video_io

    if fps is None:
        return

    real = video_io.probe_video
    monkeypatch.setattr(video_io, "probe_video",
                        lambda *a, **kw: dataclasses.replace(real(*a, **kw), fps=fps))


@pytest.mark.parametrize("probe_fps", [None, 15.0, 25.0])
def test_a_rendition_at_another_frame_rate_is_flagged_not_predicted(work, predictor, probe_fps,
                                                                   monkeypatch):
    """A 15 fps low rung inside a 25 fps recording would be read at 25 fps (bitrate and shot
    lengths wrong): its shots get no prediction and say why; the 25 fps shots keep theirs.
    Whatever rate the probe guesses for the mix: the recording is read at its longest run's
    rate (from the packets)."""
    hi = _ladder_segments(work, "hi", "320x180")[0]
    slow = _ladder_segments(work, "slow", "160x90", fps=15)
    both = work / "fps_switch.ts"
    both.write_bytes(hi.read_bytes() + slow[1].read_bytes())
    alone = analyze(hi, predictor).records
    _probe_guessing(monkeypatch, probe_fps)
    report = analyze(both, predictor)
    assert report.summary["picture_changes"][1]["fps"] == pytest.approx(15.0, abs=0.01)
    late = [rec for rec, row in zip(report.records, report.rows, strict=True)
            if row["start_frame"] >= 50]
    assert late and all(r["pred_vmaf"] is None and "frame_rate:15" in r["flags"] for r in late)
    # the 25 fps shots as predicted alone (the last ends where the 15 fps clock starts)
    for rec, ref in zip(report.records[:len(alone) - 1], alone[:-1], strict=True):
        _same_shot(rec, ref)
    assert report.records[len(alone) - 1]["pred_vmaf"] == alone[-1]["pred_vmaf"]


@pytest.mark.parametrize("probe_fps", [None, 15.0])
def test_a_recording_that_starts_on_a_short_low_rung_is_read_at_its_main_rate(
        work, predictor, probe_fps, monkeypatch):
    """A player that starts on a 15 fps low rung for 2 s and then plays 4 s at 25 fps: the
    25 fps shots are predicted (as the same segments alone), the 15 fps opening is flagged."""
    hi = _ladder_segments(work, "hi", "320x180")
    slow = _ladder_segments(work, "slow", "160x90", fps=15)
    rec = work / "low_start.ts"
    rec.write_bytes(slow[0].read_bytes() + hi[1].read_bytes() + hi[2].read_bytes())
    main = work / "main_part.ts"
    main.write_bytes(hi[1].read_bytes() + hi[2].read_bytes())
    alone = analyze(main, predictor).records
    _probe_guessing(monkeypatch, probe_fps)
    report = analyze(rec, predictor)
    changes = report.summary["picture_changes"]
    assert [(c["frame"], c.get("fps")) for c in changes] == [(0, 15.0), (30, None)]
    early = [r for r, row in zip(report.records, report.rows, strict=True)
             if row["start_frame"] < 30]
    later = [r for r, row in zip(report.records, report.rows, strict=True)
             if row["start_frame"] >= 30]
    assert early and all(r["pred_vmaf"] is None and "frame_rate:15" in r["flags"]
                         for r in early)
    assert len(later) == len(alone)
    for got, ref in zip(later, alone, strict=True):
        _same_shot(got, ref)


def test_runs_that_do_not_hold_every_picture_are_an_error_naming_the_file(work):
    """More pictures than the runs hold is said as such, not as ffmpeg's broken pipe."""
    from vmafdistill.edge.decode import decode_luma_runs

    seg = _ladder_segments(work, "hi", "320x180")[0]  # 50 frames
    with pytest.raises(VideoInputError, match=r"seg0\.ts: the decoder gave more pictures"):
        for _ in decode_luma_runs(seg, [(20, 320, 180), (10, 320, 180)], bit_depth=8):
            pass
    with pytest.raises(VideoInputError, match=r"seg0\.ts: the decoder stopped inside .*run 2"):
        for _ in decode_luma_runs(seg, [(20, 320, 180), (40, 320, 180)], bit_depth=8):
            pass


def test_a_frame_rate_switch_at_one_size_is_flagged(work, predictor):
    """25 fps then 50 fps of one size, joined by the concat demuxer: no rendition run (same
    pictures), so the 50 fps part was read at 25 fps, windows and bitrates off 2x, unflagged.
    The shots read at the wrong rate get a ``frame_rate`` flag and no prediction, as a
    rendition run at another rate does. Both containers read the timestamps' mean (37 fps: the
    MKV's declared 25 is not borne out; an MP4 declares its average), a rate neither part has,
    so every shot is flagged. A file that only drops frames (the VFR test above) is not."""
    parts = []
    for rate in (25, 50):
        part = work / f"rate{rate}.ts"
        run_ffmpeg(["-f", "lavfi", "-i", f"mandelbrot=size=160x90:rate={rate}", "-t", "3",
                    "-c:v", "libx264", "-preset", "veryfast", "-g", str(rate), "-x264-params",
                    "threads=1", str(part)], what=f"{rate} fps part")
        parts.append(part)
    listing = work / "rates.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    flags = {}
    for ext in ("mkv", "mp4"):
        joined = work / f"rates.{ext}"
        run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    str(joined)], what=f"joined {ext}")
        report = analyze(joined, predictor)
        flags[ext] = [(r["start"] >= 3.0, r["flags"], r["pred_vmaf"]) for r in report.records]
    for ext in ("mkv", "mp4"):
        assert all(p is None and f"frame_rate:{50 if late else 25}" in fl
                   for late, fl, p in flags[ext]), flags[ext]
    # the TS files joined byte for byte: the second one's clock starts again (there is no
    # time line, and the switch went unflagged); each side's frame steps still tell its rate
    cat = work / "rates_cat.ts"
    cat.write_bytes(b"".join(p.read_bytes() for p in parts))
    report = analyze(cat, predictor)
    rates = [next((f for f in r["flags"] if f.startswith("frame_rate:")), None)
             for r in report.records]
    assert all(r["pred_vmaf"] is None for r in report.records), report.records
    assert rates[0] == "frame_rate:25" and rates[-1] == "frame_rate:50", rates
    # timestamps out of order throughout (decode-order stamps of a B-frame stream, which
    # players play) are no join: their forward steps span frames and read a false 10 fps
    dts_parts = []
    for bframes in (3, 0):
        part = work / f"dts_bf{bframes}.mp4"
        run_ffmpeg(["-f", "lavfi", "-i", "mandelbrot=size=320x180:rate=25", "-t", "2", "-c:v",
                    "libx264", "-preset", "veryfast", "-crf", "30", "-bf", str(bframes),
                    "-x264-params", "repeat-headers=1:threads=1", str(part)],
                   what="a B-frame part")
        dts_parts.append(part)
    listing.write_text("".join(f"file '{p}'\n" for p in dts_parts))
    joined = work / "dts_joined.mkv"
    run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(joined)],
               what="joined B-frame parts")
    stamped = work / "dts_stamped.mkv"
    run_ffmpeg(["-i", str(joined), "-c", "copy", "-bsf:v", "setts=pts=DTS", str(stamped)],
               what="decode-order timestamps")
    report = analyze(stamped, predictor)
    assert all(r["pred_vmaf"] is not None and not r["flags"] for r in report.records), \
        report.records
    dropping = work / "dropping.mkv"  # every 4th frame dropped, timestamps kept
    run_ffmpeg([*SOURCE[:-1], SOURCE[-1] + ",select='not(eq(mod(n\\,4)\\,1))'",
                "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "veryfast", "-crf", "30",
                "-x264-params", "threads=1", str(dropping)], what="encoding a VFR clip")
    vfr = analyze(dropping, predictor)
    assert len(vfr.records) > 1 and all(r["pred_vmaf"] is not None for r in vfr.records)
    assert not any(f.startswith("frame_rate") for r in vfr.records for f in r["flags"])


def test_a_shot_over_a_frame_rate_switch_is_flagged(work, predictor):
    """A hunt: 25 fps then 50 fps testsrc2 joined with no picture cut at the join (the test
    above joins mandelbrot, which restarts: a cut there). The shot over the join read 25 fps
    by its median step and 50 by its short steps, so it was neither and got a prediction
    (18.8, red) read at the 37.5 fps mean, the only figure of the video's summary."""
    parts = []
    for rate in (25, 50):
        part = work / f"straddle{rate}.ts"
        run_ffmpeg(["-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={rate}", "-t", "2",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-x264-params",
                    "threads=1", str(part)], what=f"{rate} fps part")
        parts.append(part)
    listing = work / "straddle.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    joined = work / "straddle.mkv"
    run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(joined)],
               what="joined mkv")
    records = analyze(joined, predictor).records
    # the shots with several frames on each side of the join
    over = [r for r in records if r["start"] < 1.9 and r["end"] > 2.1]
    assert over, [(r["start"], r["end"]) for r in records]  # a shot does span the join
    assert all(r["pred_vmaf"] is None for r in records), records
    assert all("frame_rate:mixed" in r["flags"] for r in over), [
        (r["start"], r["end"], r["flags"]) for r in records]


def test_a_stalled_jittery_shot_is_not_read_as_a_switch() -> None:
    """A review: a stalled, jittery 30 fps shot (steps of 50, 33 and 14 ms) reads slow by its
    median and fast by its short steps, as a shot over a switch does; with one real 60 fps
    shot elsewhere in the file it was flagged ``frame_rate:mixed`` and lost its prediction.
    Only readings that match rates other shots were flagged at make a switch."""
    from vmafdistill.edge.renditions import off_rate_shots

    rng = np.random.default_rng(1)
    steps: list[float] = []
    rows: list[dict[str, int]] = []

    def shot(s: list[float]) -> None:
        start = len(steps)
        steps.extend([*s, 1 / 30])  # the shot's steps, then the step over the cut
        rows.append({"start_frame": start, "stop_frame": start + len(s) + 1})

    shot([1 / 30] * 120)
    shot([1 / 60] * 120)  # a real 60 fps part
    shot(list(rng.choice([0.050, 0.050, 0.050, 0.033, 0.014], size=120)))
    shot([1 / 30] * 120)
    assert off_rate_shots(rows, np.array(steps[:-1]), 30.0) == {"frame_rate:60": [1]}
    # the same shot between a 25 and a 50 fps part, read at their mean: a switch
    steps.clear()
    rows.clear()
    shot([1 / 25] * 60)
    shot([1 / 25] * 40 + [1 / 50] * 20)
    shot([1 / 50] * 60)
    assert off_rate_shots(rows, np.array(steps[:-1]), 37.5) == {
        "frame_rate:25": [0], "frame_rate:50": [2], "frame_rate:mixed": [1]}
    # with a capture clock's jitter (+-5 ms) the switch's short steps read ~57 fps, past 10 %
    # of the 50 fps shots' median (a second review: predicted again, unflagged); like is
    # compared with like, medians with medians, short steps with short steps
    for seed in range(3):
        jitter = np.random.default_rng(seed)
        parts = [1 / rate + jitter.uniform(-0.005, 0.005, n)
                 for rate, n in ((25, 50), (50, 100), (25, 60), (50, 30), (25, 50), (50, 100))]
        parts[2:4] = [np.concatenate(parts[2:4])]  # one shot over the switch
        rows = []
        for k, part in enumerate(parts):
            start = sum(len(q) for q in parts[:k])
            rows.append({"start_frame": start, "stop_frame": start + len(part) + 1})
        jittered = np.concatenate(parts)
        flags = off_rate_shots(rows, jittered, len(jittered) / jittered.sum())
        assert flags.get("frame_rate:mixed") == [2], (seed, flags)
