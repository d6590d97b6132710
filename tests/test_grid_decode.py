"""The edge's grid decode (vmafdistill/edge/grid_decode.py): ffmpeg subsamples every frame and
pipes the full planes of the measured frames only. It must change nothing but speed: the grid
is numpy's ``y[::g, ::g]`` bit for bit, and the chain's records, rows and summary are those of
the full-plane decode on clean, damaged and rendition-switching video, for both students that
use it (the shipped temporal-only student; a pixel student at frame_step > 1, whose measured
frames need their previous frame too)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.edge import pipeline
from vmafdistill.edge.decode import DecodeLog, decode_luma
from vmafdistill.edge.grid_decode import FullFrame, GridSpec, decode_luma_grid, grid_supported
from vmafdistill.edge.pipeline import EdgeOptions, analyze_video, grid_spec
from vmafdistill.edge.predictor import Predictor, default_model_path
from vmafdistill.edge.tokens import DEFAULT_RULES, merge_rules
from vmafdistill.io.video import probe_video

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "edge" / "tiny.onnx"
pytestmark = pytest.mark.skipif(not grid_supported(), reason="grid decode is POSIX only")
SOURCE = [  # 2 s of testsrc2, then 2 s of mandelbrot: one hard cut at 2.0 s
    "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2",
    "-f", "lavfi", "-i", "mandelbrot=size=320x180:rate=25",
    "-filter_complex", "[1:v]trim=duration=2,setpts=PTS-STARTPTS[m];[0:v][m]concat=n=2:v=1",
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """8-bit H.264 (B-frames) in MP4, the same cut short, 10-bit H.265, an odd-sized 4:4:4
    H.264, and an adaptive-bitrate recording switching 320x180 -> 160x90 -> 320x180."""
    work = tmp_path_factory.mktemp("grid")
    out = {k: work / name for k, name in (
        ("h264", "h264.mp4"), ("h265_10bit", "h265_10.mkv"), ("odd444", "odd444.mkv"),
        ("short", "short.mkv"), ("switch", "switch.ts"))}
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-x264-params", "threads=1"]
    run_ffmpeg([*SOURCE, *x264, "-g", "50", "-pix_fmt", "yuv420p", str(out["h264"])],
               what="test clip")
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1.6", "-c:v",
                "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error:pools=1",
                str(out["h265_10bit"])], what="10-bit clip")
    run_ffmpeg(["-f", "lavfi", "-i", "mandelbrot=size=161x91:rate=25", "-t", "1.2", *x264,
                "-pix_fmt", "yuv444p", str(out["odd444"])], what="odd-sized clip")
    whole = work / "whole.mkv"
    run_ffmpeg(["-i", str(out["h264"]), "-c", "copy", str(whole)], what="remux")
    data = whole.read_bytes()
    out["short"].write_bytes(data[: len(data) * 6 // 10])
    segs = []
    for i, size in enumerate(("320x180", "160x90", "320x180")):
        seg = work / f"seg{i}.ts"
        run_ffmpeg(["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration=2", *x264,
                    "-pix_fmt", "yuv420p", "-output_ts_offset", str(2 * i), str(seg)],
                   what="segment")
        segs.append(seg)
    out["switch"].write_bytes(b"".join(s.read_bytes() for s in segs))
    return out


@pytest.mark.parametrize("name", ["h264", "h265_10bit", "odd444"])
@pytest.mark.parametrize(("step", "every", "previous"), [(2, 8, False), (3, 5, True),
                                                         (4, 1, False)])
def test_the_grid_is_numpys_subsample_and_the_full_frames_are_the_planes(
        videos, name, step, every, previous):
    p = videos[name]
    info = probe_video(p)
    plane_log, grid_log = DecodeLog(), DecodeLog()
    y = np.concatenate(list(decode_luma(p, width=info.width, height=info.height,
                                        bit_depth=info.bit_depth, log=plane_log)))
    spec = GridSpec(step, every, previous)
    start, full_index = 0, []
    for item in decode_luma_grid(p, spec, width=info.width, height=info.height,
                                 bit_depth=info.bit_depth, chunk=7, log=grid_log):
        if isinstance(item, FullFrame):
            np.testing.assert_array_equal(item.plane, y[item.index])
            full_index.append(item.index)
            continue
        assert item.start == start and item.step == step
        np.testing.assert_array_equal(item.grid, y[start:start + item.n, ::step, ::step])
        start += item.n
    assert start == y.shape[0] > 0
    index = np.arange(start)
    assert full_index == index[spec.is_full(index)].tolist()
    assert grid_log.frame_pts == plane_log.frame_pts and grid_log.errors == plane_log.errors


def _report(path: Path, predictor: Predictor, options: EdgeOptions) -> dict:
    r = analyze_video(path, predictor, rules=merge_rules(DEFAULT_RULES, None), options=options)
    return {"records": r.records, "rows": r.rows, "summary": r.summary}


@pytest.mark.parametrize("name", ["h264", "short", "switch"])
@pytest.mark.parametrize("student", ["shipped", "pixel_frame_step_4"])
def test_the_chain_gives_the_same_report_from_the_grid(videos, name, student, monkeypatch):
    """Cut and temporal grids forced on (320x180 frames are below the automatic steps)."""
    if student == "shipped":
        predictor = Predictor(default_model_path())
        base = EdgeOptions.from_card(predictor.card["edge"], shot_pixel_step=2,
                                     temporal_pixel_step=4)
    else:
        predictor = Predictor(TINY)
        base = EdgeOptions(frame_step=4, shot_pixel_step=2)
    calls: list[GridSpec] = []
    real = pipeline.decode_luma_grid

    def counted(path, spec, **kw):
        calls.append(spec)
        return real(path, spec, **kw)

    monkeypatch.setattr(pipeline, "decode_luma_grid", counted)
    planes = _report(videos[name], predictor, EdgeOptions(**{**base.__dict__,
                                                             "decode_grid": False}))
    assert not calls
    grid = _report(videos[name], predictor, base)
    assert len(calls) == 1
    assert calls[0] == (GridSpec(2, 8, False) if student == "shipped" else GridSpec(2, 4, True))
    assert grid == planes
    if name == "short":
        assert grid["summary"]["decoder_errors"]["count"] >= 1
    if name == "switch":
        assert len(grid["summary"]["picture_changes"]) == 3


def test_grid_spec_rules():
    on = EdgeOptions()
    assert grid_spec(on, 8, 2, 4) == GridSpec(2, 8, False)
    assert grid_spec(on, 8, 4, None) == GridSpec(4, 8, True)
    assert grid_spec(on, 8, 6, 4) == GridSpec(2, 8, False)  # the steps' common factor
    assert grid_spec(on, 1, 2, 4) is None  # every frame needs its full plane
    assert grid_spec(on, 8, 1, 4) is None  # full-resolution cut histograms
    assert grid_spec(on, 8, 2, 5) is None  # no common step
    assert grid_spec(on, 8, 2, 1) is None  # exact temporal features
    assert grid_spec(EdgeOptions(decode_grid=False), 8, 2, 4) is None
    assert EdgeOptions.from_card({"decode_grid": False}).decode_grid is False


@pytest.mark.parametrize("every", [1, 2, 7, 8, 10**9])
@pytest.mark.parametrize("previous", [False, True])
def test_full_frame_index_arithmetic(every, previous):
    spec = GridSpec(2, every, previous)
    index = np.arange(300)
    want = index[spec.is_full(index)].tolist()
    got, i = [], -1
    while (i := spec.next_full(i)) < 300:
        got.append(i)
    assert got == want
    assert [spec.last_full(j) for j in range(-1, 300)] == [
        max([k for k in want if k <= j], default=-1) for j in range(-1, 300)]


def test_a_full_frame_step_beyond_the_queues_does_not_stall(videos):
    """ffmpeg holds an output's last frame until the next one comes: with one full frame per
    10**9 the first full plane arrives only at the end, long after the grid queue filled (the
    first design waited for it there and hung); items now come in arrival order."""
    import signal

    def hung(*_):
        raise TimeoutError("the grid decode stalled")

    p = videos["h264"]
    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)  # a stall fails the test instead of hanging the suite
    try:
        kinds = [type(item).__name__ for item in decode_luma_grid(
            p, GridSpec(2, 10**9), width=320, height=180, bit_depth=8, chunk=4, prefetch=1)]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert kinds.count("FullFrame") == 1 and kinds.count("GridChunk") == 25


def test_stopping_early_stops_the_decoder(videos):
    """A consumer that stops after one chunk ends the decode at once (no hang on the second
    pipe, no decoding the rest)."""
    p = videos["h264"]
    t = time.perf_counter()
    chunks = decode_luma_grid(p, GridSpec(2, 8), width=320, height=180, bit_depth=8, chunk=4)
    first = next(chunks)
    chunks.close()
    assert time.perf_counter() - t < 10 and (first.n == 4 if hasattr(first, "n") else True)
