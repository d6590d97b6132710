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
