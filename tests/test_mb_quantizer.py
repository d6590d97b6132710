"""The decoder's macroblock quantizer (io/mb_quantizer.py): against PyAV's own QP map, against a
full decode, frame order, the codecs without block QPs, and the scene feature built on it."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.features.shot_rows import (
    scene_mb_quantizer,
    scene_weighted_qp,
    shot_feature_rows,
)
from vmafdistill.io.mb_quantizer import MB_QP_CODECS, frame_side_data, read_mb_quantizers
from vmafdistill.io.packets import read_packets
from vmafdistill.shots import Shot

av = pytest.importorskip("av")


def _encode(path: Path, codec_args: list[str], frames: int = 40) -> Path:
    # flat areas with hard edges (testsrc2's bars and digits) plus a textured half (mandelbrot)
    # moving: x264's adaptive quantisation and macroblock tree spread the block QPs widely
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=s=160x96:r=25",
                "-f", "lavfi", "-i", "mandelbrot=s=160x96:r=25",
                "-filter_complex", "[0:v][1:v]vstack,format=yuv420p", "-frames:v", str(frames),
                *codec_args, str(path)], what="test encode")
    return path


def _qp_maps(path: Path, skip: bool) -> list[tuple[int, str, np.ndarray]]:
    """(pts, picture type, PyAV's own qp_map()) per decoded frame, sorted by pts; ``skip``: the
    reader's decoder options (no IDCT, no deblocking, no B-frames)."""
    opts = {"export_side_data": "venc_params"}
    if skip:
        opts.update(skip_loop_filter="all", skip_idct="all", skip_frame="bidir")
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = opts
        for frame in container.decode(stream):
            sd = next(s for s in frame_side_data(frame) if "ENC_PARAMS" in str(s.type))
            kind = {1: "I", 2: "P", 3: "B"}.get(int(frame.pict_type), "?")  # AVPictureType
            out.append((int(frame.pts), kind,
                        np.asarray(sd.qp_map(), dtype=np.float64)))
    return sorted(out, key=lambda t: t[0])


@pytest.fixture(scope="module")
def aq_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _encode(tmp_path_factory.mktemp("mbqp") / "aq.mp4", [
        "-c:v", "libx264", "-crf", "30", "-x264-params", "bframes=3:keyint=20:threads=1"])


def test_mean_block_qp_equals_pyavs_qp_map_on_every_reference_frame(aq_clip: Path) -> None:
    """The buffer read (area-weighted over H.264's 16x16 blocks) against PyAV's qp_map(), an
    independent reader of the same side data, on every I- and P-frame of a full decode; the
    skipped IDCT, deblocking and B-frames change no QP of the frames kept; presentation order."""
    full = _qp_maps(aq_clip, skip=False)
    kept = [f for f in full if f[1] != "B"]
    assert 0 < len(kept) < len(full) == 40  # the clip has B-frames, which the reader skips
    skipped = _qp_maps(aq_clip, skip=True)
    assert [(t, k) for t, k, _ in skipped] == [(t, k) for t, k, _ in kept]
    for (_, _, a), (_, _, b) in zip(kept, skipped, strict=True):
        np.testing.assert_array_equal(a, b)
    read = read_mb_quantizers(aq_clip, "h264")
    assert read is not None and read.n_packets == 40
    # each frame names the packet (demux order) it came from; presentation order is pts order
    demux_pts = [int(t) for t in _demux_pts(aq_clip)]
    assert [demux_pts[i] for i, _ in read.frames] == [t for t, _, _ in kept]
    expected = np.array([m.mean() for _, _, m in kept])
    got = np.array([q for _, q in read.frames])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # adaptive quantisation really moved the blocks: the mean is not the slice QP
    assert max(m.std() for _, _, m in kept) > 1.0
    p = read_packets(aq_clip, quantizer=True)
    slice_qp = {int(t): q for t, q in zip(p.pts, p.qp, strict=True)}
    assert max(abs(q - slice_qp[demux_pts[i]]) for i, q in read.frames) > 0.5


def _demux_pts(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [p.pts for p in container.demux(stream) if p.size]


def test_read_packets_matches_the_block_qps_to_frames(aq_clip: Path) -> None:
    plain = read_packets(aq_clip, quantizer=True)
    p = read_packets(aq_clip, quantizer=True, mb_quantizer=True)
    assert p.mb_qp is not None and p.mb_qp.shape == (len(p),)
    np.testing.assert_array_equal(p.qp, plain.qp)  # the other columns never depend on it
    np.testing.assert_array_equal(p.sizes, plain.sizes)
    full = {t: (k, m.mean()) for t, k, m in _qp_maps(aq_clip, skip=False)}
    for t, q in zip(p.pts, p.mb_qp, strict=True):
        kind, mean = full[int(t)]
        if kind == "B":
            assert np.isnan(q)
        else:
            assert q == pytest.approx(mean, abs=1e-12)
    assert read_packets(aq_clip).mb_qp is None
    sub = p.take(np.array([3, 1]))
    np.testing.assert_array_equal(sub.mb_qp, p.mb_qp[[3, 1]])


def test_codecs_without_block_qps_read_nan_without_a_warning(tmp_path: Path,
                                                             recwarn: pytest.WarningsRecorder
                                                             ) -> None:
    assert "hevc" not in MB_QP_CODECS
    clip = _encode(tmp_path / "h265.mp4", [
        "-c:v", "libx265", "-crf", "30", "-x265-params", "log-level=error:pools=1"], frames=10)
    assert read_mb_quantizers(clip, "hevc") is None
    assert read_mb_quantizers(clip, None) is None  # the codec as the stream says
    p = read_packets(clip, quantizer=True, mb_quantizer=True)
    assert p.mb_qp is not None and np.isnan(p.mb_qp).all() and np.isfinite(p.qp).all()
    assert not [w for w in recwarn if "macroblock" in str(w.message)]


def test_without_pyav_the_slice_qp_stands_in_with_a_warning(aq_clip: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    with pytest.warns(UserWarning, match="PyAV is not installed"):
        p = read_packets(aq_clip, quantizer=True, mb_quantizer=True)
    assert np.isnan(p.mb_qp).all()
    rows = shot_feature_rows({}, [Shot(0, 0, 40, 0)], p.sizes, ref_size=(160, 192),
                             codec="h264", fps=25.0, width=160, height=192, frame_qp=p.qp,
                             frame_mb_qp=p.mb_qp)
    assert rows[0]["scene_mb_qp"] == rows[0]["scene_qp"]


def test_a_damaged_stream_keeps_the_block_qps_of_the_frames_it_decodes(aq_clip: Path,
                                                                       tmp_path: Path) -> None:
    """Random bytes over a tenth of the file: no error; the frames the decoder drops are NaN
    like the skipped B-frames (their scene falls back to its slice QP if none is left); the
    frames before the damage keep the intact file's values."""
    data = bytearray(aq_clip.read_bytes())
    rng = np.random.default_rng(5)
    a = int(len(data) * 0.4)
    b = a + len(data) // 10
    data[a:b] = rng.integers(0, 256, b - a, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(data))
    good = read_packets(aq_clip, mb_quantizer=True).mb_qp
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        p = read_packets(bad, mb_quantizer=True)
    assert not [w for w in rec if "macroblock" in str(w.message)]
    assert p.mb_qp is not None and len(p.mb_qp) == len(good) == 40
    assert np.isnan(p.mb_qp).sum() > np.isnan(good).sum()  # the damage cost frames
    np.testing.assert_array_equal(p.mb_qp[:5], good[:5])


def test_scene_mb_qp_is_the_scene_qp_plus_the_bits_weighted_block_offset() -> None:
    sizes = np.array([9000, 1000, 1000, 4000, 500, 500, 800], dtype=np.int64)
    slice_qp = np.array([28.0, 33, 35, 30, 34, 36, 31])
    mb_qp = np.array([31.5, 35.0, np.nan, 32.0, np.nan, np.nan, np.nan])  # NaN: B-frames
    shots = [Shot(0, 0, 3, 0), Shot(1, 3, 6, 1), Shot(2, 6, 7, 2)]
    rows = shot_feature_rows({}, shots, sizes, ref_size=(64, 48), codec="h264", fps=25.0,
                             width=64, height=48, frame_qp=slice_qp, frame_mb_qp=mb_qp)
    scene_qp = scene_weighted_qp([(0, 3, 0), (3, 6, 1), (6, 7, 2)], slice_qp, sizes)
    want0 = scene_qp[0] + (3.5 * 9000 + 2.0 * 1000) / 10000
    assert rows[0]["scene_mb_qp"] == pytest.approx(want0, abs=1e-12)
    assert rows[1]["scene_mb_qp"] == pytest.approx(scene_qp[1] + 2.0, abs=1e-12)
    assert rows[2]["scene_mb_qp"] == rows[2]["scene_qp"]  # no block QP in the scene: offset 0
    assert rows[0]["scene_qp"] == pytest.approx(scene_qp[0], abs=1e-12)
    mine = scene_mb_quantizer([(0, 3, 0), (3, 6, 1), (6, 7, 2)], slice_qp, mb_qp, sizes,
                              scene_qp)
    assert [r["scene_mb_qp"] for r in rows] == [mine[0], mine[1], mine[2]]
    without = shot_feature_rows({}, shots, sizes, ref_size=(64, 48), codec="h264", fps=25.0,
                                width=64, height=48, frame_qp=slice_qp)
    assert all(math.isnan(r["scene_mb_qp"]) for r in without)
    no_slice = shot_feature_rows({}, shots, sizes, ref_size=(64, 48), codec="h264", fps=25.0,
                                 width=64, height=48, frame_mb_qp=mb_qp)
    assert all(math.isnan(r["scene_mb_qp"]) for r in no_slice)
    with pytest.raises(ValueError, match="frame_mb_qp has 5 frames"):
        shot_feature_rows({}, shots[:1], sizes, ref_size=(64, 48), codec="h264", fps=25.0,
                          width=64, height=48, frame_qp=slice_qp, frame_mb_qp=mb_qp[:5])


@pytest.mark.parametrize("fmt", ["mpegts", "h264", "matroska"])
def test_other_containers_give_the_mp4s_values(aq_clip: Path, tmp_path: Path, fmt: str) -> None:
    """The same bitstream in MPEG-TS (timestamps not starting at 0: ffmpeg shifts them, PyAV
    does not), raw Annex B (no timestamps) and Matroska with a timestamp offset: frames are
    matched by packet, not by timestamp, so every container gives the MP4's values (the raw
    stream's packets, without timestamps, stay in decode order: each with its own)."""
    out = tmp_path / f"copy.{ {'mpegts': 'ts', 'h264': 'h264', 'matroska': 'mkv'}[fmt] }"
    extra = ["-output_ts_offset", "3.2"] if fmt == "matroska" else []
    run_ffmpeg(["-y", "-i", str(aq_clip), "-c", "copy", *extra, "-f", fmt, str(out)],
               what="remux")
    want = read_packets(aq_clip, quantizer=True, mb_quantizer=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning either
        got = read_packets(out, quantizer=True, mb_quantizer=True)
    assert np.isfinite(got.mb_qp).sum() > 5
    if fmt != "h264":
        np.testing.assert_array_equal(got.mb_qp, want.mb_qp)
    else:  # no timestamps: the packets stay in decode order, the block QPs with their frames
        def triples(p: object) -> list[tuple[float, float, int]]:
            return sorted(zip(p.qp.tolist(), np.nan_to_num(p.mb_qp, nan=-1.0).tolist(),
                              p.sizes.tolist(), strict=True))
        assert len(set(want.sizes.tolist())) > 30  # sizes tell the frames apart
        for (q1, m1, s1), (q2, m2, s2) in zip(triples(got), triples(want), strict=True):
            # Annex B carries the parameter sets in the keyframes' packets: a few bytes more
            assert (q1, m1) == (q2, m2) and 0 <= s1 - s2 <= 64


def test_ten_bit_block_qps_read_on_the_slice_qp_scale(tmp_path: Path) -> None:
    """libavcodec exports 10-bit H.264 block QPs with QpBdOffset (+12) added; with adaptive
    quantisation and macroblock tree off every block is at its slice QP, so the reader, which
    takes the offset off, must give exactly the header's QP."""
    clip = _encode(tmp_path / "ten.mp4", [
        "-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-crf", "30", "-x264-params",
        "bframes=2:keyint=12:aq-mode=0:mbtree=0:threads=1"], frames=24)
    p = read_packets(clip, quantizer=True, mb_quantizer=True)
    ok = np.isfinite(p.mb_qp)
    assert ok.sum() >= 8
    np.testing.assert_array_equal(p.mb_qp[ok], p.qp[ok])


def test_a_pyav_failure_falls_back_to_the_slice_qp_with_a_warning(
        aq_clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any error in the decode thread (e.g. another PyAV version's side-data API) becomes the
    warning and the fallback, never an exception out of read_packets."""
    import vmafdistill.io.mb_quantizer as mbq

    def broken(*_a: object, **_k: object) -> float:
        raise AttributeError("'SideData' object has no attribute 'nb_blocks'")

    monkeypatch.setattr(mbq, "frame_mb_qp", broken)
    with pytest.warns(UserWarning, match=r"aq\.mp4: cannot decode the macroblock quantizers"):
        p = read_packets(aq_clip, quantizer=True, mb_quantizer=True)
    assert np.isnan(p.mb_qp).all() and np.isfinite(p.qp).all()


def test_a_capture_starting_mid_gop_keeps_its_block_qps(aq_clip: Path, tmp_path: Path) -> None:
    """An MPEG-TS cut inside a GOP: ffmpeg's stream copy drops the packets before the first
    keyframe, and so does the block-QP pass, so the two still count the same packets and the
    frames after the keyframe keep the uncut stream's values."""
    ts = tmp_path / "full.ts"
    run_ffmpeg(["-y", "-i", str(aq_clip), "-c", "copy", "-f", "mpegts", str(ts)], what="remux")
    with av.open(str(ts)) as container:
        pkts = [(p.pos, p.is_keyframe) for p in container.demux(video=0) if p.size]
    keys = [i for i, (_, k) in enumerate(pkts) if k]
    assert len(keys) >= 2
    start = keys[0] + 3  # three packets into the first GOP
    cut = tmp_path / "cut.ts"
    data = ts.read_bytes()
    cut.write_bytes(data[(pkts[start][0] // 188) * 188:])
    full = read_packets(ts, quantizer=True, mb_quantizer=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no count mismatch, no fallback
        got = read_packets(cut, quantizer=True, mb_quantizer=True)
    assert len(got) < len(full)
    tail = got.mb_qp[-(len(full) - keys[1]):]  # from the second keyframe on: as uncut
    np.testing.assert_array_equal(tail, full.mb_qp[keys[1]:])
    assert np.isfinite(tail).sum() >= 3


def test_predict_reads_the_block_qps_the_corpus_reads(aq_clip: Path) -> None:
    """The whole edge chain with the shipped student (which reads scene_mb_qp): every row's
    scene_mb_qp is what the corpus's functions give on the same shots, and it is not the slice
    QP (adaptive quantisation moved the blocks)."""
    from vmafdistill.edge.pipeline import analyze_video
    from vmafdistill.edge.predictor import Predictor, default_model_path
    from vmafdistill.edge.tokens import DEFAULT_RULES, merge_rules

    pred = Predictor(default_model_path())
    assert "scene_mb_qp" in pred.feature_names
    rep = analyze_video(aq_clip, pred, rules=merge_rules(DEFAULT_RULES, pred.card["tokens"]),
                        ref_size=(320, 384))
    p = read_packets(aq_clip, quantizer=True, mb_quantizer=True)
    shots = [Shot(int(r["shot_index"]), int(r["start_frame"]), int(r["stop_frame"]),
                  int(r["scene_index"])) for r in rep.rows]
    want = shot_feature_rows({}, shots, p.sizes, ref_size=(320, 384), codec="h264", fps=25.0,
                             width=160, height=192, frame_qp=p.qp, frame_mb_qp=p.mb_qp)
    assert [r["scene_mb_qp"] for r in rep.rows] == [w["scene_mb_qp"] for w in want]
    assert all(math.isfinite(r["scene_mb_qp"]) for r in rep.rows)
    assert any(abs(r["scene_mb_qp"] - r["scene_qp"]) > 0.1 for r in rep.rows)
    assert all(rec["pred_vmaf"] is not None for rec in rep.records)
    assert rep.summary["pixel_features"]["decoder"] == "pyav"  # one in-process decode
