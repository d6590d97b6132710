"""Encoder quantizer from the stream headers: against encoder settings that fix it, against the
H.264 decoder's own QP export, and the AV1 / VP9 q-index mapping."""

from __future__ import annotations

import math
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import ffmpeg_exe, run_ffmpeg
from vmafdistill.features.shot_rows import scene_weighted_qp, shot_feature_rows
from vmafdistill.io.mb_quantizer import frame_side_data
from vmafdistill.io.packets import read_packets
from vmafdistill.io.quantizer import (
    AC_QLOOKUP_8BIT,
    TraceQuantizerParser,
    parse_trace_quantizers,
    qindex_to_qp,
)
from vmafdistill.shots import Shot


def _encode(path: Path, codec_args: list[str], frames: int = 30, size: str = "128x96") -> Path:
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=25,format=yuv420p",
                "-frames:v", str(frames), *codec_args, str(path)], what="test encode")
    return path


@pytest.mark.parametrize("codec_args", [
    ["-c:v", "libx264", "-x264-params", "qp=31:ipratio=1:pbratio=1:threads=1"],
    ["-c:v", "libx265", "-x265-params", "qp=31:ipratio=1:pbratio=1:log-level=error:pools=1"],
], ids=["h264", "h265"])
def test_constant_qp_encode_reads_back_as_that_qp(tmp_path: Path, codec_args: list[str]) -> None:
    # constant-QP rate control with equal I/P/B ratios: every slice is coded at QP 31
    p = read_packets(_encode(tmp_path / "cqp.mp4", codec_args), quantizer=True)
    assert p.qp is not None and len(p.qp) == len(p) == 30
    assert np.all(p.qp == 31.0)


def test_h264_slice_qp_equals_the_decoders_macroblock_qps(tmp_path: Path) -> None:
    """CRF with B-frames, adaptive quantisation and macroblock-tree off: every macroblock of a
    frame is coded at its slice QP, so the decoder's exported macroblock QPs are the truth."""
    av = pytest.importorskip("av")
    clip = _encode(tmp_path / "crf.mp4", [
        "-c:v", "libx264", "-crf", "30", "-x264-params",
        "bframes=3:keyint=12:aq-mode=0:mbtree=0:threads=1"], frames=40)
    p = read_packets(clip, quantizer=True)
    decoded: list[tuple[int, float]] = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"export_side_data": "venc_params"}
        for frame in container.decode(stream):
            raw = bytes(next(sd for sd in frame_side_data(frame) if "ENC_PARAMS" in str(sd.type)))
            # AVVideoEncParams: nb_blocks (u32 + pad), blocks_offset, block_size (u64 each),
            # type, qp (i32); then blocks of src_x, src_y, w, h, delta_qp (i32 each)
            nb, offset, block_size, _type, base = struct.unpack_from("<IxxxxQQii", raw, 0)
            blocks = np.frombuffer(raw, dtype=np.int32, offset=offset,
                                   count=nb * block_size // 4).reshape(nb, block_size // 4)
            mb_qp = base + blocks[:, 4]
            assert np.all(mb_qp == mb_qp[0])
            decoded.append((int(frame.pts), float(mb_qp[0])))
    frame_qp = np.array([q for _, q in sorted(decoded)])
    assert len(set(frame_qp.tolist())) > 2  # I, P and B frames at different QPs
    np.testing.assert_array_equal(p.qp, frame_qp)


def test_several_slices_per_picture_read_as_the_one_slice_encode(tmp_path: Path) -> None:
    """x264 starts the later slices of a picture at any block's QP; the first slice carries the
    frame QP, so a 4-slice encode reads exactly like the same encode in one slice."""
    args = ["-c:v", "libx264", "-crf", "28", "-x264-params"]
    one = read_packets(_encode(tmp_path / "one.mp4", [*args, "threads=1"], size="320x240"),
                       quantizer=True)
    four_path = _encode(tmp_path / "four.ts", [*args, "slices=4:threads=1"], size="320x240")
    four = read_packets(four_path, quantizer=True)
    np.testing.assert_array_equal(one.qp, four.qp)
    # the encode really has 4 slices per picture, and later slices start at other QPs
    log = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "info", "-i", str(four_path), "-map", "0:v",
         "-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"],
        capture_output=True, text=True, check=True).stderr
    deltas = [int(x) for x in re.findall(r"slice_qp_delta\s+[01]+ = (-?\d+)", log)]
    assert len(deltas) == 4 * len(four)
    assert any(len(set(deltas[i:i + 4])) > 1 for i in range(0, len(deltas), 4))


def test_quantizer_is_optional_and_changes_nothing_else(tmp_path: Path) -> None:
    clip = _encode(tmp_path / "x.mp4", ["-c:v", "libx264", "-crf", "28"])
    with_qp, without = read_packets(clip, quantizer=True), read_packets(clip)
    assert without.qp is None
    np.testing.assert_array_equal(with_qp.sizes, without.sizes)
    np.testing.assert_array_equal(with_qp.pts_s, without.pts_s)


@pytest.mark.parametrize("codec_args", [
    ["-c:v", "libvpx-vp9", "-crf", "40", "-b:v", "0", "-deadline", "realtime", "-cpu-used", "8"],
    ["-c:v", "libsvtav1", "-crf", "40", "-preset", "12", "-svtav1-params", "lp=1"],
], ids=["vp9", "av1"])
def test_av1_vp9_q_index_maps_into_the_h264_range(tmp_path: Path, codec_args: list[str]) -> None:
    p = read_packets(_encode(tmp_path / "q.mkv", codec_args), quantizer=True)
    assert p.qp is not None and len(p.qp) == 30
    finite = p.qp[np.isfinite(p.qp)]
    assert finite.size >= 1 and np.isfinite(p.qp[0])  # the keyframe always carries one
    assert np.all((finite > 0) & (finite <= 51.5))


def test_qindex_table_and_mapping() -> None:
    assert len(AC_QLOOKUP_8BIT) == 256
    assert (AC_QLOOKUP_8BIT[0], AC_QLOOKUP_8BIT[1], AC_QLOOKUP_8BIT[255]) == (4, 8, 1828)
    assert AC_QLOOKUP_8BIT[95] == 102 and AC_QLOOKUP_8BIT[96] == 104  # step 1 -> 2
    assert np.all(np.diff(AC_QLOOKUP_8BIT) > 0)
    # both tables end at nearly equal steps: AV1 q index 255 (1828 / 8) ~ H.264 QP 51
    assert qindex_to_qp(255) == pytest.approx(6 * math.log2(1828 / 8 / 0.625), abs=1e-12)
    assert abs(qindex_to_qp(255) - 51.0) < 0.2 and abs(qindex_to_qp(0) - 0.0) < 2.0
    assert math.isnan(qindex_to_qp(float("nan")))
    assert qindex_to_qp(-5) == qindex_to_qp(0) and qindex_to_qp(300) == qindex_to_qp(255)


def test_trace_parser_uses_the_pps_a_slice_names() -> None:
    tag = "[trace_headers @ 0x1]"
    lines = [
        f"{tag} Picture Parameter Set",
        f"{tag} 8  pic_parameter_set_id  1 = 0",
        f"{tag} 20 pic_init_qp_minus26  00111 = -3",
        f"{tag} Picture Parameter Set",
        f"{tag} 8  pic_parameter_set_id  010 = 1",
        f"{tag} 20 pic_init_qp_minus26  1 = 0",
        f"{tag} Packet: 100 bytes, key frame, pts 0, dts 0, duration 1.",
        f"{tag} Slice Header",
        f"{tag} 30 pic_parameter_set_id  010 = 1",
        f"{tag} 31 slice_qp_delta  00110 = 3",
        f"{tag} Slice Header",
        f"{tag} 30 pic_parameter_set_id  1 = 0",
        f"{tag} 31 slice_qp_delta  00110 = 5",
        f"{tag} Packet: 10 bytes, pts 1, dts 1, duration 1.",
        "[h264 @ 0x2] some other logger's message = 7",
        f"{tag} Packet: 10 bytes, pts 2, dts 2, duration 1.",
        f"{tag} Slice Header",
        f"{tag} 30 pic_parameter_set_id  1 = 0",
        f"{tag} 31 slice_qp_delta  1 = 0",
    ]
    out = parse_trace_quantizers(lines, "h264")
    # packet 0: its first slice, 26 + 0 + 3 (PPS 1; the second slice, 26 - 3 + 5 via PPS 0, is
    # not read); packet 1 has no slice; packet 2: 26 - 3 + 0
    assert out[0] == 29.0 and math.isnan(out[1]) and out[2] == 23.0
    assert all(math.isnan(v) for v in parse_trace_quantizers(lines, "mpeg4"))


def test_scene_qp_weights_frames_by_their_bits() -> None:
    qp = np.array([20.0, 30.0, 30.0, np.nan, 40.0, 40.0])
    size = np.array([300, 100, 100, 50, 100, 300])
    shots = [(0, 2, 0), (2, 4, 0), (4, 6, 1)]
    got = scene_weighted_qp(shots, qp, size)
    assert got[0] == pytest.approx((20 * 300 + 30 * 100 + 30 * 100) / 500)  # NaN frame skipped
    assert got[1] == pytest.approx(40.0)
    rows = shot_feature_rows(
        {}, [Shot(i, a, b, s) for i, (a, b, s) in enumerate(shots)], size, ref_size=(64, 48),
        codec="h264", fps=25.0, width=64, height=48, frame_qp=qp)
    assert [r["scene_qp"] for r in rows] == [got[0], got[0], got[1]]
    assert rows[1]["qp"] == 30.0  # the shot mean skips the NaN frame
    with pytest.raises(ValueError, match="frame_qp has 6 frames, packet_bytes 5"):
        shot_feature_rows({}, [Shot(0, 0, 5, 0)], size[:5], ref_size=(64, 48), codec="h264",
                          fps=25.0, width=64, height=48, frame_qp=qp)


def test_a_damaged_stream_keeps_every_packet_and_loses_only_unreadable_quantizers(
        tmp_path: Path) -> None:
    """Random bytes in the middle of an H.264 file: the packets whose headers ffmpeg cannot read
    get NaN and the warning (naming the file) counts exactly them; sizes, timestamps and every
    other frame's quantizer are those of the intact file. ffmpeg's threads interleave their
    messages differently from run to run: the result must not."""
    clip = _encode(tmp_path / "ok.mp4", ["-c:v", "libx264", "-crf", "30", "-x264-params",
                                         "keyint=10:threads=1"], frames=50)
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(3)
    mid = len(data) // 2
    data[mid:mid + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(data))
    plain = read_packets(bad)
    good = read_packets(clip, quantizer=True).qp
    patterns = set()
    for _ in range(4):
        with pytest.warns(UserWarning, match=r"damaged\.mp4: (\d+) of 50 packets") as rec:
            traced = read_packets(bad, quantizer=True)
        lost = np.isnan(traced.qp)
        counted = int(re.search(r": (\d+) of 50", str(rec[0].message)).group(1))
        assert counted == lost.sum() and 0 < counted < 50
        np.testing.assert_array_equal(traced.sizes, plain.sizes)
        np.testing.assert_array_equal(traced.pts_s, plain.pts_s)
        np.testing.assert_array_equal(traced.qp[~lost], good[~lost])
        patterns.add(tuple(np.flatnonzero(lost)))
    assert len(patterns) == 1


def test_trace_parser_h265_names_av1_frames_unknown_pps_and_missing_pts() -> None:
    tag = "[trace_headers @ 0x1]"
    hevc = [
        f"{tag} Picture Parameter Set",
        f"{tag} 16 pps_pic_parameter_set_id  1 = 0",
        f"{tag} 27 init_qp_minus26  1 = 4",
        f"{tag} Packet: 50 bytes, key frame, pts 0, dts 0, duration 1.",
        f"{tag} Slice Segment Header",
        f"{tag} 18 slice_pic_parameter_set_id  1 = 0",
        f"{tag} 24 slice_qp_delta  00110 = -2",
        f"{tag} Packet: 50 bytes, no pts, dts 1, duration 1.",
        f"{tag} Slice Segment Header",
        f"{tag} 18 slice_pic_parameter_set_id  011 = 2",
        f"{tag} 24 slice_qp_delta  1 = 0",
    ]
    parser = TraceQuantizerParser("hevc")
    parser.feed("\n".join(hevc) + "\n")
    (pts0, q0), (pts1, q1) = parser.packets()
    assert (pts0, q0) == (0, 28.0)  # 26 + 4 - 2
    assert pts1 is None and math.isnan(q1)  # PPS 2 never seen: NaN, not a guess
    av1 = [
        f"{tag} Packet: 900 bytes, key frame, pts 0, dts 0, duration 1.",
        f"{tag} 45 base_q_idx  00111110 = 60",
        f"{tag} Packet: 900 bytes, pts 1, dts 1, duration 1.",
        f"{tag} 82 base_q_idx  01000100 = 60",
        f"{tag} 82 base_q_idx  01100000 = 120",
        f"{tag} Packet: 20 bytes, pts 2, dts 2, duration 1.",
        f"{tag} 24 show_existing_frame  1 = 1",
    ]
    q = parse_trace_quantizers(av1, "av1")
    assert q[0] == qindex_to_qp(60)
    assert q[1] == pytest.approx((qindex_to_qp(60) + qindex_to_qp(120)) / 2)  # hidden + shown
    assert math.isnan(q[2])  # re-shows a decoded frame: no quantizer


def _reference_parse(log: str, codec: str) -> tuple[list[tuple[int | None, float]], int]:
    """The lines the scan anchored by ``^`` on every line matches (the definition before the
    newline-prefixed scan), fed to a parser one by one."""
    from vmafdistill.io import quantizer as qm

    anchored = re.compile("^" + qm._TRACE.pattern.removeprefix("\\n"), re.MULTILINE)
    ref = TraceQuantizerParser(codec)
    for line in log.splitlines():
        if anchored.match(line):
            ref.feed(line + "\n")
    return ref.packets(), ref.unreadable


@pytest.mark.parametrize("codec_args", [
    ["-c:v", "libx264", "-x264-params", "slices=3:threads=1"],
    ["-c:v", "libx265", "-x265-params", "log-level=error:pools=1"],
    ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
], ids=["h264", "h265", "vp9"])
def test_fast_trace_scan_reads_what_a_line_by_line_scan_reads(tmp_path: Path,
                                                              codec_args: list[str]) -> None:
    """read_quantizers reads ffmpeg's log as bytes in large blocks and scans it with a
    newline-prefixed regex: same packets, pts, QPs and unreadable count as feeding the matching
    trace lines one by one (blocks of any size, CRLF line ends, a log without a last newline)."""
    from vmafdistill.io import quantizer as qm

    video = _encode(tmp_path / "v.mkv", codec_args, frames=40)
    codec = read_packets(video).codec
    log = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i",
         str(video), "-map", "0:V:0", "-c", "copy", "-bsf:v", "trace_headers", "-f", "null",
         "-"], capture_output=True, text=True, check=True).stderr
    ref = _reference_parse(log, codec)
    assert len(ref[0]) == 40 and any(math.isfinite(q) for _, q in ref[0])
    for block in (97, 4096, 1 << 20):
        parser = TraceQuantizerParser(codec)
        pos = 0
        while pos < len(log):
            end = log.rfind("\n", pos, pos + block) + 1 or len(log)
            parser.feed(log[pos:end])
            pos = end
        assert (parser.packets(), parser.unreadable) == ref
    got = qm.read_quantizers(video, codec)
    assert got is not None and (got.packets(), got.unreadable) == ref
    assert qm._log_text(log.replace("\n", "\r\n").encode()) == log
    assert qm._last_lines(log, 50) == log.splitlines()[-50:]
    assert qm._last_lines("a\nb", 5) == ["a", "b"]
