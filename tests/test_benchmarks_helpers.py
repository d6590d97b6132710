"""The shared benchmark helpers time real processes and report their failures."""

from __future__ import annotations

import sys

import pytest

from vmafdistill.benchmarks import cpu_model, machine_line, run_timed


def test_run_timed_measures_wall_cpu_and_peak_rss():
    code = ("import time; b = bytearray(80 * 2**20); b[::4096] = b'x' * len(b[::4096]);"
            "t = time.process_time();\nwhile time.process_time() - t < 0.2: pass\n"
            "time.sleep(0.2); print('done')")
    t = run_timed([sys.executable, "-c", code], peak_rss=True)
    assert t.stdout.strip() == "done"
    assert t.wall_s >= 0.4 and t.cpu_s >= 0.2
    assert t.wall_s >= t.cpu_s - 0.05  # one busy thread: CPU cannot exceed wall by much
    assert t.peak_rss_kb is not None and t.peak_rss_kb >= 80 * 1024
    plain = run_timed([sys.executable, "-c", "pass"])
    assert plain.peak_rss_kb is None and plain.wall_s < t.wall_s


def test_run_timed_names_the_failing_command():
    with pytest.raises(SystemExit, match=r"(?s)benchmark command failed.*boom"):
        run_timed([sys.executable, "-c", "import sys; sys.exit('boom')"])


def test_machine_line_names_the_cpu():
    assert cpu_model() and cpu_model() in machine_line()


def test_video_files_globs_relative_absolute_and_recursive(tmp_path):
    from vmafdistill.benchmarks import CACHED_VIDEO_GLOBS, video_files

    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("x.mp4", "a/y.mp4", "a/b/z.mp4", "a/w.webm"):
        (tmp_path / name).write_bytes(b"")
    got = video_files([str(tmp_path / "**/*.mp4"), str(tmp_path / "a/*.webm"),
                       str(tmp_path / "x.mp4")], tmp_path)
    assert got == sorted(str(tmp_path / n) for n in ("x.mp4", "a/y.mp4", "a/b/z.mp4",
                                                       "a/w.webm"))
    (tmp_path / ".cache/corpus_cache/encodes").mkdir(parents=True)
    (tmp_path / ".cache/corpus_cache/encodes/e.webm").write_bytes(b"")
    default = video_files([], tmp_path)  # defaults resolve under the root
    assert str(tmp_path / ".cache/corpus_cache/encodes/e.webm") in default
    assert any(g.endswith("*.webm") for g in CACHED_VIDEO_GLOBS)


def test_results_tables_names_a_directory_without_metrics(tmp_path, capsys) -> None:
    """scripts/results_tables.py on a folder that is no run directory was a traceback."""
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "results_tables.py"
    main = runpy.run_path(str(script))["main"]
    assert main([str(tmp_path)]) == 2
    assert f"no metrics.json in {tmp_path}" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "run directories" in capsys.readouterr().out  # not a run
    # a NaN PLCC (a constant prediction) is stored as null: a format TypeError; a finetune
    # run's metrics.json has no out-of-fold results: a KeyError
    import json

    run = tmp_path / "run"
    run.mkdir()
    oof = {"mae": 3.0, "rmse": 4.0, "plcc": None, "srocc": None, "n": 4}
    (run / "metrics.json").write_text(json.dumps({
        "student": "mlp", "loss": "huber", "loss_config": {"name": "huber", "space": "vmaf"},
        "features": "quant_ti7", "cv": {"name": "loso"}, "n_samples": 4, "oof": oof,
        "conformal": {"coverage": None}, "guard_thresholds": [], "overrides": []}))
    assert main([str(run)]) == 0
    out = capsys.readouterr().out
    assert "| mlp (huber, vmaf) | 3.00 | 4.00 | - | - |" in out and "coverage=-" in out
    (run / "metrics.json").write_text(json.dumps({"before": {}, "after": {}}))
    assert main([str(run)]) == 2
    assert "not a `vmafdistill train` run" in capsys.readouterr().err


def test_bench_edge_accuracy_steps_and_races_without_a_student(tmp_path, capsys) -> None:
    """`--accuracy-steps 8,1` (or 2,2) filled a step's column twice: a broadcast error after
    every feature pass; `--student ''` skipped --breakdown/--baseline/--ffmpeg-decoder
    without a word."""
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_edge.py"
    bench = runpy.run_path(str(script))
    assert bench["accuracy_steps"]("8,1") == bench["accuracy_steps"]("1,8") == [1, 8]
    assert bench["accuracy_steps"]("2,2") == [1, 2]
    import sys

    saved = sys.argv
    sys.argv = ["bench_edge.py", "--student", "", "--breakdown", "2", "--skip-race",
                "--work", str(tmp_path)]
    try:
        with pytest.raises(SystemExit) as ended:
            bench["main"]()
    finally:
        sys.argv = saved
    assert ended.value.code == 2
    assert "--breakdown: race(s) the --student chain" in capsys.readouterr().err


def test_script_options_and_errors_are_one_line(tmp_path, capsys, monkeypatch) -> None:
    """A hunt: --rounds 0 / --repeat 0 were statistics' "no median for empty data" after the
    work, a missing video "0 videos" with exit 0, a missing model or file a traceback, and
    cli_reference.py --help (or a typo) rewrote docs/cli.md."""
    import argparse
    import runpy
    from pathlib import Path

    from vmafdistill.benchmarks import (
        int_list,
        non_negative_int,
        positive_int,
        run_script,
        video_files,
    )
    from vmafdistill.errors import VmafDistillError

    assert positive_int("3") == 3 and int_list("1, 8,") == [1, 8] and int_list("") == []
    assert non_negative_int("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 0"):
        non_negative_int("-1")
    for bad in ("0", "x", "-2"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)
    with pytest.raises(VmafDistillError, match=r"no such video file: .*nope\.mp4"):
        video_files([str(tmp_path / "nope.mp4")], tmp_path)
    monkeypatch.setattr(sys, "argv", ["bench_x.py"])

    def fails() -> int:
        raise VmafDistillError("m.onnx: model file not found")

    with pytest.raises(SystemExit) as ended:
        run_script(fails)
    assert ended.value.code == 2
    assert capsys.readouterr().err == "bench_x.py: error: m.onnx: model file not found\n"
    script = Path(__file__).resolve().parents[1] / "scripts" / "cli_reference.py"
    doc = script.parents[1] / "docs" / "cli.md"
    before = doc.stat().st_mtime_ns
    main = runpy.run_path(str(script))["main"]
    for argv in (["--help"], ["--chek"]):
        with pytest.raises(SystemExit):
            main(argv)
    assert doc.stat().st_mtime_ns == before
