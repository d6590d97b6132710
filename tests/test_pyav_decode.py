"""The edge's in-process decode (edge/pyav_decode.py) against ffmpeg's pipe (edge/decode.py).

For a student that reads block QPs, an 8-bit H.264 delivery is decoded once, in-process, for
its pixels and its block QPs. It must change nothing but speed: the same Y samples, the same
frame timestamps, the same block QPs as the separate partial decode, and the same records,
rows and summary as ``decoder=ffmpeg`` on the streams real footage arrives as (stream-copy
cuts behind an edit list, HLS, raw Annex B, variable frame rate, a rotation tag, two video
tracks). Streams it cannot reproduce (a damaged file, a capture starting mid-GOP, a rendition
switch, 10-bit, H.265) go to ffmpeg's path, and the summary says so and why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.edge import pipeline
from vmafdistill.edge.decode import DecodeLog, decode_luma
from vmafdistill.edge.options import EdgeOptions
from vmafdistill.edge.predictor import Predictor, default_model_path
from vmafdistill.edge.pyav_decode import PyavDeclinedError, PyavFrames, decode_luma_pyav
from vmafdistill.edge.tokens import DEFAULT_RULES, merge_rules
from vmafdistill.io.packets import read_packets

av = pytest.importorskip("av")

SOURCE = [  # 2 s of testsrc2, then 2 s of mandelbrot: one hard cut at 2.0 s
    "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2",
    "-f", "lavfi", "-i", "mandelbrot=size=320x180:rate=25",
    "-filter_complex", "[1:v]trim=duration=2,setpts=PTS-STARTPTS[m];[0:v][m]concat=n=2:v=1",
]
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-g", "50",
        "-x264-params", "threads=1"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pyav_decode")


@pytest.fixture(scope="module")
def base_mp4(work: Path) -> Path:
    """4 s of 320x180 H.264 with B-frames and 2 s GOPs, adaptive quantisation on (x264's)."""
    base = work / "base.mp4"
    run_ffmpeg([*SOURCE, *X264, "-pix_fmt", "yuv420p", str(base)], what="the uncut clip")
    return base


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    pred = Predictor(default_model_path())
    assert "scene_mb_qp" in pred.feature_names  # the path under test is this student's
    return pred


def _analyze(path: Path, pred: Predictor, decoder: str) -> pipeline.VideoReport:
    return analyze_with(path, pred, EdgeOptions.from_card(pred.card.get("edge"), decoder=decoder))


def analyze_with(path: Path, pred: Predictor, options: EdgeOptions) -> pipeline.VideoReport:
    return pipeline.analyze_video(path, pred, rules=merge_rules(DEFAULT_RULES,
                                                                pred.card["tokens"]),
                                  options=options)


def test_pixels_timestamps_and_block_qps_equal_ffmpegs_and_the_partial_decodes(base_mp4):
    log = DecodeLog()
    y_ff = np.concatenate(list(decode_luma(base_mp4, width=320, height=180, bit_depth=8,
                                           log=log)))
    out = PyavFrames()
    chunks = list(decode_luma_pyav(str(base_mp4), width=320, height=180, out=out, chunk=7))
    assert {c.shape[0] for c in chunks[:-1]} == {7}  # chunked as asked
    np.testing.assert_array_equal(np.concatenate(chunks), y_ff)
    packets = read_packets(base_mp4, quantizer=True, mb_quantizer=True)
    assert pipeline._frame_pts(packets, out) == log.frame_pts
    assert out.mb is not None and out.mb.n_packets == len(packets) == 100
    by_packet = np.full(len(packets), np.nan)
    for k, qp in out.mb.frames:
        by_packet[k] = qp
    # the partial decode (no B-frames, no IDCT, no deblocking) reads the same block QPs
    np.testing.assert_array_equal(by_packet[packets.demux_index], packets.mb_qp)
    assert 20 <= np.isfinite(by_packet).sum() < 100  # I/P-frames only


def test_block_qps_with_decoder_threads_equal_the_single_threaded_reads(base_mp4):
    # Under frame threads libavcodec's exported block QPs varied from run to run (0.25 VMAF
    # on a machine of 8 CPUs, where threads=0 means automatic): the in-process decode
    # threads by slices only, so every thread count reads the single-threaded QPs
    packets = read_packets(base_mp4, quantizer=True, mb_quantizer=True)
    for _ in range(3):
        out = PyavFrames()
        list(decode_luma_pyav(str(base_mp4), width=320, height=180, out=out, threads=4))
        assert out.mb is not None
        by_packet = np.full(len(packets), np.nan)
        for k, qp in out.mb.frames:
            by_packet[k] = qp
        np.testing.assert_array_equal(by_packet[packets.demux_index], packets.mb_qp)


def _cut(work: Path, base: Path) -> Path:
    out = work / "cut.mp4"  # the GOP before 1.3 s stays behind an edit list
    run_ffmpeg(["-ss", "1.3", "-i", str(base), "-c", "copy", str(out)], what="cutting")
    return out


def _hls(work: Path, base: Path) -> Path:
    hls = work / "hls"
    hls.mkdir()
    run_ffmpeg(["-i", str(base), "-c", "copy", "-f", "hls", "-hls_time", "1",
                "-hls_playlist_type", "vod", str(hls / "play.m3u8")], what="HLS")
    return hls / "play.m3u8"


def _raw(work: Path, base: Path) -> Path:
    out = work / "raw.h264"
    run_ffmpeg(["-i", str(base), "-c", "copy", "-bsf:v", "h264_mp4toannexb", str(out)],
               what="raw Annex B")
    return out


def _vfr(work: Path, base: Path) -> Path:
    out = work / "vfr.mkv"  # every 4th frame dropped, timestamps kept
    run_ffmpeg([*SOURCE[:-1], SOURCE[-1] + ",select='not(eq(mod(n\\,4)\\,1))'",
                "-fps_mode", "vfr", *X264, str(out)], what="VFR")
    return out


def _rotated(work: Path, base: Path) -> Path:
    out = work / "rotated.mp4"
    run_ffmpeg(["-display_rotation", "90", "-i", str(base), "-c", "copy", str(out)],
               what="rotation tag")
    return out


def _two_tracks(work: Path, base: Path) -> Path:
    small, out = work / "small.mp4", work / "two.mkv"
    run_ffmpeg(["-i", str(base), "-s", "160x90", "-c:v", "libx264", "-preset", "ultrafast",
                str(small)], what="second track")
    run_ffmpeg(["-i", str(base), "-i", str(small), "-map", "0:v", "-map", "1:v", "-c", "copy",
                str(out)], what="two tracks")
    return out


@pytest.mark.parametrize("make", [_cut, _hls, _raw, _vfr, _rotated, _two_tracks],
                         ids=lambda f: f.__name__.strip("_"))
def test_real_world_streams_predict_the_same_in_process(work, base_mp4, shipped, make):
    """Records, rows (every feature, scene_mb_qp included) and summary equal ffmpeg's path."""
    path = make(work, base_mp4)
    got, want = _analyze(path, shipped, "auto"), _analyze(path, shipped, "ffmpeg")
    assert got.summary["pixel_features"].pop("decoder") == "pyav"
    assert want.summary["pixel_features"].pop("decoder") == "ffmpeg"
    assert got.summary == want.summary
    assert got.records == want.records
    # json: NaN reads equal to NaN
    assert json.dumps(got.rows, sort_keys=True) == json.dumps(want.rows, sort_keys=True)
    assert any(np.isfinite(r["scene_mb_qp"]) for r in got.rows)


def _truncated(work: Path, base: Path) -> tuple[Path, str]:
    whole, short = work / "whole.mkv", work / "short.mkv"
    run_ffmpeg(["-i", str(base), "-c", "copy", str(whole)], what="remux")
    data = whole.read_bytes()
    short.write_bytes(data[: len(data) * 6 // 10])
    return short, "the decoder reported"


def _mid_gop(work: Path, base: Path) -> tuple[Path, str]:
    ts, cut = work / "full.ts", work / "mid_gop.ts"
    run_ffmpeg(["-i", str(base), "-c", "copy", "-f", "mpegts", str(ts)], what="TS")
    with av.open(str(ts)) as container:
        pkts = [(p.pos, p.is_keyframe) for p in container.demux(video=0) if p.size]
    start = next(i for i, (_, k) in enumerate(pkts) if k) + 3
    cut.write_bytes(ts.read_bytes()[(pkts[start][0] // 188) * 188:])
    return cut, "the stream starts mid-GOP"


def _switch(work: Path, base: Path) -> tuple[Path, str]:
    parts = []
    for size in ("320x180", "160x90"):
        seg = work / f"seg_{size}.ts"
        run_ffmpeg(["-i", str(base), "-s", size, *X264, "-f", "mpegts", str(seg)],
                   what="rendition")
        parts.append(seg.read_bytes())
    out = work / "switch.ts"
    out.write_bytes(parts[0] + parts[1])
    return out, "decoded pictures are 160x90, not the probe's 320x180"


def _ten_bit(work: Path, base: Path) -> tuple[Path, str]:
    out = work / "ten.mp4"
    run_ffmpeg(["-i", str(base), *X264, "-pix_fmt", "yuv420p10le", str(out)], what="10-bit")
    return out, ""


def _hevc(work: Path, base: Path) -> tuple[Path, str]:
    out = work / "hevc.mp4"
    run_ffmpeg(["-i", str(base), "-c:v", "libx265", "-crf", "30", "-x265-params",
                "log-level=error:frame-threads=1:pools=none", str(out)], what="H.265")
    return out, ""


@pytest.mark.parametrize("make", [_truncated, _mid_gop, _switch, _ten_bit, _hevc],
                         ids=lambda f: f.__name__.strip("_"))
def test_streams_it_cannot_reproduce_go_to_ffmpegs_path(work, base_mp4, shipped, make):
    """Declined mid-way or before starting, the result is ffmpeg's path's, and says why."""
    path, why = make(work, base_mp4)
    got, want = _analyze(path, shipped, "auto"), _analyze(path, shipped, "ffmpeg")
    decoder = got.summary["pixel_features"].pop("decoder")
    assert want.summary["pixel_features"].pop("decoder") == "ffmpeg"
    if why:  # tried, then declined
        assert decoder.startswith("ffmpeg (in-process decode declined: ") and why in decoder
    else:  # not tried: 10-bit, or a codec whose decoder exports no block QPs
        assert decoder == "ffmpeg"
    assert got.summary == want.summary and got.records == want.records
    assert json.dumps(got.rows, sort_keys=True) == json.dumps(want.rows, sort_keys=True)


def test_a_decode_stopped_early_leaves_nothing_running(base_mp4):
    """The caller leaving after one chunk stops the decode thread (no frames decoded on)."""
    import threading

    out = PyavFrames()
    chunks = decode_luma_pyav(str(base_mp4), width=320, height=180, out=out, chunk=5)
    assert next(chunks).shape == (5, 180, 320)
    chunks.close()
    assert not [t for t in threading.enumerate() if t.name == "decode_luma_pyav"]
    assert out.mb is None and len(out.frame_packets) < 100


def test_a_size_other_than_the_probes_is_declined(base_mp4):
    with pytest.raises(PyavDeclinedError, match="change size"):
        list(decode_luma_pyav(str(base_mp4), width=160, height=90, out=PyavFrames()))


def test_the_decoder_option_is_checked():
    with pytest.raises(ValueError, match="decoder must be one of auto, ffmpeg"):
        EdgeOptions(decoder="pyav")


def test_a_format_change_at_the_same_size_is_declined(work, shipped):
    """4:2:0 then 4:2:2 at one size: ffmpeg's path splits the picture runs there, so the
    in-process decode must not read on."""
    parts = []
    for pix_fmt in ("yuv420p", "yuv422p"):
        seg = work / f"fmt_{pix_fmt}.ts"
        run_ffmpeg([*SOURCE, *X264, "-pix_fmt", pix_fmt, "-f", "mpegts", str(seg)],
                   what="segment")
        parts.append(seg.read_bytes())
    both = work / "fmt_switch.ts"
    both.write_bytes(parts[0] + parts[1])
    got, want = _analyze(both, shipped, "auto"), _analyze(both, shipped, "ffmpeg")
    assert "change format mid-stream (yuv420p -> yuv422p)" in got.summary["pixel_features"].pop(
        "decoder")
    want.summary["pixel_features"].pop("decoder")
    assert got.summary == want.summary and got.records == want.records
    assert len(got.summary["picture_changes"]) == 2


def test_the_same_damage_twice_is_declined_twice(work, base_mp4, shipped):
    """libav drops a message equal to the last one logged: a second damaged file whose first
    error repeats the previous file's last one must still be seen as damaged."""
    short, why = _truncated(work, base_mp4)
    for _ in range(2):
        decoder = _analyze(short, shipped, "auto").summary["pixel_features"]["decoder"]
        assert why in decoder, decoder


@pytest.mark.parametrize("level", ["VERBOSE", "DEBUG"])
def test_a_host_log_level_more_verbose_than_errors_still_decodes_in_process(base_mp4, shipped,
                                                                            level):
    av.logging.set_level(getattr(av.logging, level))
    try:
        rep = _analyze(base_mp4, shipped, "auto")
    finally:
        av.logging.set_level(None)
    assert rep.summary["pixel_features"]["decoder"] == "pyav"
    assert av.logging.get_level() is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_during_a_decode_can_decode_in_process(base_mp4):
    running = decode_luma_pyav(base_mp4, width=320, height=180, out=PyavFrames(), chunk=5)
    next(running)  # the parent's decode holds the one-decode lock
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own decode must not wait for the parent's
        code = 1
        try:
            frames = sum(len(c) for c in decode_luma_pyav(base_mp4, width=320, height=180,
                                                           out=PyavFrames()))
            os.write(write, str(frames).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    got = os.read(read, 64).decode()
    _, status = os.waitpid(pid, 0)
    running.close()
    assert os.waitstatus_to_exitcode(status) == 0 and got == "100"


def test_a_second_concurrent_decode_declines_instead_of_sharing_the_error_log(base_mp4):
    first = decode_luma_pyav(str(base_mp4), width=320, height=180, out=PyavFrames(), chunk=5)
    next(first)  # the first decode is running (its thread waits on the queue)
    with pytest.raises(PyavDeclinedError, match="another in-process decode"):
        list(decode_luma_pyav(str(base_mp4), width=320, height=180, out=PyavFrames()))
    first.close()
    assert len(np.concatenate(list(decode_luma_pyav(  # and once it is done, it is free again
        str(base_mp4), width=320, height=180, out=PyavFrames())))) == 100


def test_an_error_in_the_feature_pass_stops_the_decode_thread(base_mp4, shipped, monkeypatch):
    import threading

    def failing_pass(chunks, **kw):
        next(iter(chunks))
        raise RuntimeError("feature pass failed")

    monkeypatch.setattr(pipeline, "frame_pass", failing_pass)
    with pytest.raises(RuntimeError, match="feature pass failed") as info:
        _analyze(base_mp4, shipped, "auto")
    assert info.value is not None  # the error (and its traceback) is still held here
    assert not [t for t in threading.enumerate() if t.name == "decode_luma_pyav"]


def test_lost_block_qps_are_flagged_and_dash_manifests_refused(work, base_mp4, shipped,
                                                              monkeypatch):
    """Found by a hunt: a DASH manifest ran through ffmpeg's demuxer, which PyAV cannot open,
    so the block QPs were lost and the shipped student scored the slice QP instead (15 VMAF
    off the same stream as MP4; a missing segment was a silent hole), with only a warning on
    stderr. A manifest is now refused, naming the way round it (one representation's segments
    joined into one file, which predicts as the MP4); and any H.264 delivery whose block QPs
    are lost has every shot flagged ``no_block_qp``."""
    from vmafdistill.errors import VideoInputError
    from vmafdistill.io import mb_quantizer

    dash = work / "dash"
    dash.mkdir()
    run_ffmpeg(["-i", str(base_mp4), "-c", "copy", "-f", "dash", "-seg_duration", "1",
                str(dash / "manifest.mpd")], what="DASH")
    with pytest.raises(VideoInputError, match=r"manifest\.mpd: a DASH manifest"):
        _analyze(dash / "manifest.mpd", shipped, "auto")
    (dash / "renamed.xml").write_bytes((dash / "manifest.mpd").read_bytes())
    with pytest.raises(VideoInputError, match="a DASH manifest"):  # by content, too
        _analyze(dash / "renamed.xml", shipped, "auto")
    joined = dash / "rep.mp4"
    chunks = sorted(dash.glob("chunk-stream0-*.m4s"))
    assert len(chunks) == 2  # 2 s GOPs
    joined.write_bytes(b"".join(p.read_bytes() for p in
                                [dash / "init-stream0.m4s", *chunks]))
    whole, rep = _analyze(base_mp4, shipped, "auto"), _analyze(joined, shipped, "auto")
    assert rep.summary["frames"] == whole.summary["frames"] == 100
    assert [r["pred_vmaf"] for r in rep.records] == pytest.approx(
        [r["pred_vmaf"] for r in whole.records], abs=0.5)  # moof/mdat headers add bits
    assert not any("no_block_qp" in r["flags"] for r in rep.records)

    monkeypatch.setattr(mb_quantizer, "pyav_available", lambda: False)
    lost = _analyze(base_mp4, shipped, "auto")
    assert lost.summary["pixel_features"]["decoder"] == "ffmpeg"
    assert all("no_block_qp" in r["flags"] for r in lost.records)
    assert lost.summary["flagged"] == len(lost.records)
