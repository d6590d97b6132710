"""Picture bytes: the rate features read the same bytes in every container.

Real encodes (the corpus's own encoder settings) copied into the containers users deliver in,
against the MP4 the corpus trains on; and hand-built access units for the parser's cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.edge.pipeline import analyze_video
from vmafdistill.edge.predictor import Predictor, default_model_path
from vmafdistill.encode import Rung, encode_rung
from vmafdistill.io.packets import read_packets
from vmafdistill.io.picture_bytes import PictureBytesError, picture_bytes

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "edge" / "tiny.onnx"

# the containers each codec is delivered in, copied from the corpus's MP4 (-c copy)
COPIES = {
    "h264": ["mkv", "ts", "h264", "m3u8"],
    "h265": ["mkv", "ts", "hevc", "m3u8"],
    "av1": ["mkv", "ivf", "obu"],
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s with a keyframe each second at the corpus's GOP: the TS copies repeat headers."""
    src = tmp_path_factory.mktemp("pictures") / "src.y4m"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=192x108:rate=25:duration=3",
                "-pix_fmt", "yuv420p", str(src)], what="test source")
    return src


@pytest.fixture(scope="module")
def encodes(source: Path) -> dict[str, Path]:
    """Each codec as the corpus encodes it (encode_rung: MP4)."""
    return {codec: encode_rung(source, Rung(codec, 108, 38), (192, 108),
                               source.parent / f"{codec}.mp4")
            for codec in COPIES}


def _copy(mp4: Path, ext: str) -> Path:
    out = mp4.with_name(f"{mp4.stem}_copy.{ext}")
    if ext == "m3u8":  # HLS: 1 s MPEG-TS segments, ffmpeg joins them back
        run_ffmpeg(["-y", "-i", str(mp4), "-c", "copy", "-f", "hls", "-hls_time", "1",
                    "-hls_playlist_type", "vod", str(out)], what="segmenting to HLS")
    else:
        run_ffmpeg(["-y", "-i", str(mp4), "-c", "copy", str(out)], what=f"copying to {ext}")
    return out


@pytest.mark.parametrize("codec", sorted(COPIES))
def test_the_corpus_encodes_read_their_packet_sizes(encodes, codec):
    """An MP4 from the corpus's encoders carries no repeated header: its picture bytes are its
    packet sizes, so the rate features of every corpus built before are unchanged."""
    pk = read_packets(encodes[codec], picture_bytes=True)
    assert len(pk) == 75
    np.testing.assert_array_equal(pk.picture_sizes, pk.sizes)


@pytest.mark.parametrize("codec", sorted(COPIES))
def test_every_container_reads_the_same_picture_bytes(encodes, codec):
    """The same encode copied into Matroska, MPEG-TS, HLS, a raw Annex B or an IVF/OBU stream:
    the packets differ (TS: delimiters on every frame, parameter sets and x265's 2 KB SEI on
    every keyframe; IVF/OBU: a temporal delimiter per frame), the picture bytes do not."""
    mp4 = read_packets(encodes[codec], picture_bytes=True)
    grown = []
    for ext in COPIES[codec]:
        pk = read_packets(_copy(encodes[codec], ext), picture_bytes=True)
        assert len(pk) == len(mp4), ext
        if np.isnan(pk.pts_s).any():  # raw streams have no timestamps: decode order
            np.testing.assert_array_equal(np.sort(pk.picture_sizes), np.sort(mp4.picture_sizes))
        else:
            np.testing.assert_array_equal(pk.picture_sizes, mp4.picture_sizes, err_msg=ext)
        if pk.sizes.sum() > mp4.sizes.sum():
            grown.append(ext)
    # the copies that add bytes (what the packet sizes read before): the test can fail
    assert set(grown) >= ({"ts", "m3u8"} if codec != "av1" else {"ivf", "obu"}), grown


def test_an_h265_hls_delivery_predicts_as_its_mp4(encodes):
    """The shipped student on an H.265 encode and its HLS copy: the same shots, bitrates and
    predictions (the TS copy read 2-5 % more bits per shot, its bits-weighted QP moved)."""
    predictor = Predictor(default_model_path())
    a = analyze_video(encodes["h265"], predictor)
    b = analyze_video(_copy(encodes["h265"], "m3u8"), predictor)
    assert len(a.records) == len(b.records) >= 1
    for ra, rb in zip(a.records, b.records, strict=True):
        assert (ra["start"], ra["end"]) == pytest.approx((rb["start"], rb["end"]), abs=0.002)
        assert ra["bitrate_kbps"] == rb["bitrate_kbps"]
        assert ra["pred_vmaf"] == pytest.approx(rb["pred_vmaf"], abs=1e-6)


def _annexb(units: list[bytes], long_codes: tuple[int, ...] = (0,)) -> bytes:
    out = b""
    for i, unit in enumerate(units):
        out += (b"\x00\x00\x00\x01" if i in long_codes else b"\x00\x00\x01") + unit
    return out


def _length_prefixed(units: list[bytes], length_size: int = 4) -> bytes:
    return b"".join(len(u).to_bytes(length_size, "big") + u for u in units)


def test_h264_units_counted_alike_in_both_framings():
    aud, sps, pps = b"\x09\xf0", b"\x67" + b"\x42" * 9, b"\x68\xce\x38\x80"
    sei, idr = b"\x06\x05" + b"\x11" * 30 + b"\x80", b"\x65" + b"\x88" * 300
    kept = (4 + len(sei)) + (4 + len(idr))
    # TS: a delimiter, the parameter sets, 3-byte start codes, trailing zero bytes
    ts = _annexb([aud, sps, pps, sei, idr + b"\x00\x00"], long_codes=(0, 1, 2))
    assert picture_bytes(ts, "h264") == kept
    assert picture_bytes(_length_prefixed([sei, idr]), "h264") == kept == \
        len(_length_prefixed([sei, idr]))
    # a 300-byte unit's 4-byte length begins 00 00 01, as a start code does
    assert _length_prefixed([idr]).startswith(b"\x00\x00\x01")
    assert picture_bytes(_length_prefixed([idr]), "h264") == 4 + len(idr)
    # a sample description declaring 2- or 1-byte lengths (valid; a review's hand-built MKV
    # read as 75 of 75 damaged packets): the same bytes as the 4-byte framing
    assert picture_bytes(_length_prefixed([sei, idr], 2), "h264") == kept
    assert picture_bytes(_length_prefixed([sei, b"\x41" + b"\x22" * 200], 1), "h264") == \
        (4 + len(sei)) + (4 + 201)
    # a length-prefixed stream's packet cut short: its 00 00 01 2A length is no start code
    # (read as Annex B it counted 0 bytes, unsaid; a final read)
    cut = _length_prefixed([b"\x41" + b"\x22" * 297])[:151]
    assert cut.startswith(b"\x00\x00\x01\x2a")
    with pytest.raises(PictureBytesError, match="do not tile"):
        picture_bytes(cut, "h264", framing="length")


def test_an_annex_b_looking_first_packet_does_not_set_the_stream_s_framing():
    """A length-prefixed stream whose first packet reads as Annex B (damaged, or written so):
    it fixed "annexb" for every packet, and each later 256-511-byte length (00 00 01 xx) was
    read as a start code: 13 of 60 frames counted 0 bytes (a review). Only a packet that
    tiles as lengths fixes the framing."""
    import io

    from vmafdistill.io.picture_bytes import _packets_picture_bytes

    slice_300 = b"\x41" + b"\x22" * 299  # its 4-byte length begins 00 00 01
    packets = [_annexb([b"\x65" + b"\x88" * 50]), _length_prefixed([slice_300]),
               _length_prefixed([b"\x41" + b"\x33" * 40]), _length_prefixed([slice_300])]
    got = _packets_picture_bytes(io.BytesIO(b"".join(packets)), [len(p) for p in packets],
                                 "h264", "test")
    assert got.unreadable == 0
    assert got.sizes.tolist() == [4 + 51, 4 + 300, 4 + 41, 4 + 300]


def test_h265_drops_parameter_sets_and_sei():
    def nal(t: int, n: int) -> bytes:
        return bytes([t << 1, 1]) + b"\x55" * n

    vcl = [nal(19, 500), nal(1, 40)]  # an IDR slice and a trailing slice of one picture
    headers = [nal(35, 1), nal(32, 20), nal(33, 40), nal(34, 8), nal(39, 2300)]
    assert picture_bytes(_annexb(headers + vcl), "hevc") == sum(4 + len(u) for u in vcl)
    assert picture_bytes(_annexb([*vcl, nal(40, 30)]), "hevc") == sum(4 + len(u) for u in vcl)


def test_av1_drops_temporal_delimiters():
    td, seq = b"\x12\x00", b"\x0a\x03" + b"\x01\x02\x03"
    frame = b"\x32\x81\x01" + b"\x07" * 129  # OBU_FRAME, leb128 size 129
    assert picture_bytes(td + seq + frame, "av1") == len(seq) + len(frame)
    last = b"\x30" + b"\x07" * 10  # no size field: the packet's last OBU
    assert picture_bytes(td + last, "av1") == len(last)
    with pytest.raises(PictureBytesError, match="past the packet"):
        picture_bytes(td + b"\x32\x81\x01" + b"\x07" * 5, "av1")


def test_other_codecs_and_unreadable_packets():
    assert picture_bytes(b"\x83\x00\x01" * 10, "vp9") == 30
    assert picture_bytes(b"", "h264") == 0
    with pytest.raises(PictureBytesError, match="neither"):
        picture_bytes(b"\x12\x34\x56\x78\x9a\xbc", "h264")


def test_a_failed_copy_warns_and_reads_the_packet_sizes(encodes, monkeypatch):
    """The stream copy failing: a warning names the file and the problem, and the container's
    sizes stand in (the edge still predicts)."""
    import vmafdistill.io.packets as packets_module

    def failing(path, codec, sizes):
        raise PictureBytesError(f"{path}: cannot copy the video packets (disk gone)")

    monkeypatch.setattr(packets_module, "read_picture_bytes", failing)
    with pytest.warns(UserWarning, match=r"h264\.mp4: cannot copy .*disk gone.* packet sizes"):
        pk = read_packets(encodes["h264"], picture_bytes=True)
    np.testing.assert_array_equal(pk.picture_sizes, pk.sizes)


def test_a_packet_cut_short_counts_its_size_alone(encodes, tmp_path):
    """A faststart MP4 cut short (a stopped download): its last packet's units run past its
    end. That packet counts its packet size (a warning counts it), the others their picture
    bytes; the file is not given up."""
    fast = tmp_path / "fast.mp4"
    run_ffmpeg(["-i", str(encodes["h264"]), "-c", "copy", "-movflags", "+faststart",
                str(fast)], what="remuxing with faststart")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size * 6 // 10])
    with pytest.warns(UserWarning) as rec:
        pk = read_packets(cut, picture_bytes=True)
    said = [str(w.message) for w in rec if "coded units" in str(w.message)]
    assert len(said) == 1 and f"{cut}: 1 of {len(pk)} packets' coded units" in said[0], said
    assert "cannot copy" not in " ".join(str(w.message) for w in rec)
    whole = read_packets(encodes["h264"], picture_bytes=True)
    np.testing.assert_array_equal(pk.picture_sizes[:-1], whole.picture_sizes[:len(pk) - 1])
