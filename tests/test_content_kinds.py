"""Content-kind sources (vmafdistill/content_kinds.py): deterministic, and each kind looks like
what it claims to be, measured on the decoded luma of a tiny rendition."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from vmafdistill.content_kinds import (
    KINDS,
    KindShot,
    KindSource,
    film_kind_source,
    kind_sources_from_config,
    packaged_photo,
    rgb_to_yuv420,
)
from vmafdistill.errors import VideoInputError
from vmafdistill.io.video import read_all

REPO = Path(__file__).resolve().parents[1]
PHOTO = "skimage:astronaut.png"


def _tiny(kind: str, **kw) -> KindSource:
    shot = KindShot(packaged_photo(kw.pop("photo", PHOTO)), vx=kw.pop("vx", 20.0),
                    vy=kw.pop("vy", 0.0), strength=kw.pop("strength", 0.0))
    return KindSource(name=f"t_{kind}", kind=kind, shots=(shot,), seed=3, width=96, height=64,
                      fps=10, seconds_each=0.8, margin=24, **kw)


def _luma(path: Path) -> np.ndarray:
    return read_all(path).y.astype(np.int32)


def test_recipes_parse_and_name_packaged_photos() -> None:
    cfg = yaml.safe_load((REPO / "conf" / "sources" / "kinds.yaml").read_text())
    train = kind_sources_from_config(cfg["train"])
    held = kind_sources_from_config(cfg["heldout"])
    assert {s.kind for s in train} <= set(KINDS) and {s.kind for s in held} <= set(KINDS)
    # held-out photographs never appear in a training source of the same kind
    for h in held:
        for t in train:
            if t.kind == h.kind:
                assert not {s.photo for s in t.shots} & {s.photo for s in h.shots}
    for s in [*train, *held]:
        assert all(shot.photo.is_file() for shot in s.shots), s.name


def test_film_is_deterministic(tmp_path: Path) -> None:
    src = _tiny("handheld", strength=5)
    a = film_kind_source(src, tmp_path / "a.mp4").read_bytes()
    b = film_kind_source(src, tmp_path / "b.mp4").read_bytes()
    assert a == b


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_renders(kind: str, tmp_path: Path) -> None:
    photo = "skimage:text.png" if kind == "screen" else PHOTO
    y = _luma(film_kind_source(_tiny(kind, photo=photo, vy=30.0 if kind == "screen" else 0.0),
                               tmp_path / f"{kind}.mp4"))
    assert y.shape == (8, 64, 96)
    diff = np.abs(np.diff(y, axis=0))
    if kind == "dark":
        assert y.mean() < 50  # a scene lit at ~1/25 (8-bit luma, limited range starts at 16)
    else:
        assert y.mean() > 50
    if kind == "static":
        # a fixed camera: most pixels change only by sensor noise, a few by the movers
        assert np.median(diff) <= 4 and diff.max() > 40
    if kind == "cartoon":
        # flat shading: many horizontally adjacent pixels are (near) equal
        assert np.mean(np.abs(np.diff(y[0], axis=1)) <= 1) > 0.4


def test_rgb_to_yuv420_matches_bt601_limited_range() -> None:
    white = np.full((2, 2, 3), 255, np.uint8)
    black = np.zeros((2, 2, 3), np.uint8)
    assert list(rgb_to_yuv420(white)) == [235] * 4 + [128, 128]
    assert list(rgb_to_yuv420(black)) == [16] * 4 + [128, 128]


def test_unknown_kind_and_missing_photo_are_named(tmp_path: Path) -> None:
    with pytest.raises(VideoInputError, match="unknown kind 'anime'"):
        film_kind_source(replace(_tiny("cartoon"), kind="anime"), tmp_path / "x.mp4")
    # a hunt: seconds_each under a frame filmed a stamped clip with no video (kept after);
    # a negative size or seed was numpy's ValueError; margin 0 "rendered (36, 0, 3)"
    for edit, needle in (({"seconds_each": 0.01}, "films no frame"),
                         ({"seconds_each": -1}, "films no frame"),
                         ({"width": -64}, "frame size -64x64 must be even and at least"),
                         ({"seed": -1}, "seed=-1 must be 0 or more"),
                         ({"margin": 0}, "margin=0 must be at least 1 for a hand-held")):
        with pytest.raises(VideoInputError, match=needle):
            film_kind_source(replace(_tiny("handheld"), **edit), tmp_path / "z.mp4")
        assert not (tmp_path / "z.mp4").exists()
    # the kinds that read no room to move film at margin 0 (a review: refused for all)
    film_kind_source(replace(_tiny("static"), margin=0), tmp_path / "m0.mp4")
    with pytest.raises(VideoInputError, match=r"nope\.png"):
        film_kind_source(_tiny("grain", photo=str(tmp_path / "nope.png")), tmp_path / "y.mp4")


def test_an_ffmpeg_that_stops_early_is_named_with_its_message(tmp_path: Path) -> None:
    """ffmpeg refusing the output (an unknown extension) closes its stdin after the first
    frames: a ToolError with ffmpeg's own words, no partial file, not a bare BrokenPipeError."""
    from vmafdistill.errors import ToolError

    src = _tiny("handheld", strength=5)
    with pytest.raises(ToolError, match=r"(?s)ffmpeg failed filming x\.unknownext: .*output file"):
        film_kind_source(src, tmp_path / "x.unknownext")
    assert not list(tmp_path.iterdir())


def test_a_kept_clip_is_filmed_again_when_its_recipe_changes(tmp_path: Path) -> None:
    """An existing clip was kept whatever its recipe now says: an edited held-out source (new
    seed, photographs) was never filmed, and ``evaluate --kinds`` scored the old clips as it."""
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.folders import stamp_path

    src = _tiny("handheld", strength=5)
    out = tmp_path / "clip.mp4"
    first = film_kind_source(src, out).read_bytes()
    made = out.stat().st_mtime_ns
    assert film_kind_source(src, out).stat().st_mtime_ns == made  # the same recipe: kept
    assert stamp_path(out).name == ".clip.mp4.recipe"  # hidden: no footage of a folder corpus
    assert film_kind_source(replace(src, seed=4), out).read_bytes() != first
    moved = replace(src, shots=(replace(src.shots[0], strength=6.0),))
    again = film_kind_source(moved, out).stat().st_mtime_ns
    assert film_kind_source(moved, out).stat().st_mtime_ns == again
    stamp_path(out).unlink()  # not filmed here (the user's own video of that name): refused,
    with pytest.raises(VmafDistillError, match="without a recipe stamp"):  # was replaced
        film_kind_source(moved, out)
    assert out.stat().st_mtime_ns == again


@pytest.mark.parametrize(("spec", "needle"), [
    ({"kind": "cartoon", "seeed": 5, "shots": [{"photo": PHOTO}]}, r"unknown key\(s\) \['seeed'\]"),
    ({"shots": [{"photo": PHOTO}]}, "kind None; known"),
    ({"kind": "static"}, "shots: needs a list"),
    ({"kind": "static", "shots": [{"photo": PHOTO, "strenght": 50}]},
     r"shots\[0\]: unknown key\(s\) \['strenght'\]"),
    ({"kind": "static", "shots": [{"photo": PHOTO, "strength": -1}]},
     r"shots\[0\]\.strength=-1: must be at least 0"),
    ({"kind": "static", "shots": [{"vx": 3}]}, r"shots\[0\]: needs a mapping with a photo"),
    ({"kind": "static", "seed": "x", "shots": [{"photo": PHOTO}]}, r"seed='x': not a number"),
])
def test_a_recipe_mistake_is_one_error_naming_the_source(spec: dict, needle: str) -> None:
    """Tracebacks (KeyError, numpy's scale < 0) or silently ignored typos before."""
    from vmafdistill.errors import VmafDistillError

    with pytest.raises(VmafDistillError, match=rf"^kinds\.yaml: heldout: source 'c': {needle}"):
        kind_sources_from_config({"c": spec}, where="kinds.yaml: heldout")
    with pytest.raises(VmafDistillError, match=r"source '\.\./x': a name is its clip's file"):
        kind_sources_from_config({"../x": {"kind": "static", "shots": [{"photo": PHOTO}]}})


def test_kind_keys_a_kind_does_not_read_are_refused_and_a_page_may_stand_still(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A static camera's vx/vy and a page's vx/strength passed the key check and changed
    nothing; ``vy: 0`` scrolled the page at 40 px/s anyway; an unreadable page was a PIL
    traceback; a misspelt packaged photo did not say which shot named it (a hunt)."""
    from vmafdistill.errors import VideoInputError, VmafDistillError

    for kind, shot, unread in (("static", {"vx": 3}, "vx"), ("screen", {"strength": 2}, "strength"),
                               ("screen", {"vx": 1, "vy": 5}, "vx")):
        with pytest.raises(VmafDistillError, match=rf"shots\[0\]: the {kind} kind reads no "
                                                   rf"{unread} \(it reads photo"):
            kind_sources_from_config({"c": {"kind": kind, "shots": [{"photo": PHOTO, **shot}]}})
    with pytest.raises(VmafDistillError, match=r"source 'c': shots\[0\]\.photo: scikit-image "
                                               r"does not ship 'skimage/data/astronot\.png'"):
        kind_sources_from_config({"c": {"kind": "static",
                                        "shots": [{"photo": "skimage:astronot.png"}]}})
    page = "skimage:page.png"
    parsed = [kind_sources_from_config({"c": {"kind": "screen", "shots": [{"photo": page, **v}]}}
                                       )[0].shots[0].vy for v in ({}, {"vy": 0}, {"vy": 25})]
    assert parsed == [40.0, 0.0, 25.0]  # the default scroll only where no vy is given
    still = _luma(film_kind_source(_tiny("screen", photo=page, vx=0.0, vy=0.0),
                                   tmp_path / "still.mp4"))
    moving = _luma(film_kind_source(_tiny("screen", photo=page, vx=0.0, vy=30.0),
                                    tmp_path / "moving.mp4"))
    changed = [float(np.mean(np.abs(c[-1] - c[0]) > 8)) for c in (still, moving)]
    assert changed[0] < 0.05 < changed[1], changed  # only the cursor moves on a still page
    monkeypatch.setitem(KINDS, "slideshow", KINDS["static"])  # a kind added to KINDS alone
    assert kind_sources_from_config({"c": {"kind": "slideshow", "shots": [
        {"photo": PHOTO, "vx": 3}]}})[0].shots[0].vx == 3.0  # was a KeyError
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(VideoInputError, match=r"photograph .*bad\.png: not an image PIL reads"):
        film_kind_source(replace(_tiny("screen", photo=page), shots=(
            KindShot(bad, vx=0.0, vy=30.0, strength=0.0),)), tmp_path / "bad.mp4")


def test_a_kinds_recipe_films_each_name_once_and_something(tmp_path: Path, monkeypatch) -> None:
    """A name in both groups filmed one clip for both (the held-out one never); an empty or
    absent group filmed nothing (exit 0) or was a KeyError/AttributeError traceback; a key
    given twice in the recipe file kept the last one, unsaid."""
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.recipes import load_recipe, make_kind_sources

    src = {"kind": "static", "shots": [{"photo": PHOTO}]}
    with pytest.raises(VmafDistillError, match="clip named in both train and heldout"):
        make_kind_sources(tmp_path, "all", {"train": {"clip": src}, "heldout": {"clip": src}})
    for recipe in ({"train": {"a": src}}, {"train": {"a": src}, "heldout": None},
                   {"train": {"a": src}, "heldout": {}}):
        with pytest.raises(VmafDistillError, match="no sources in heldout"):
            make_kind_sources(tmp_path, "heldout", recipe)
    assert not list(tmp_path.iterdir())
    conf = tmp_path / "conf"
    (conf / "sources").mkdir(parents=True)
    (conf / "sources" / "kinds.yaml").write_text(
        "out_dir: x\ntrain:\n  a: {kind: static}\n  a: {kind: grain}\n")
    monkeypatch.setenv("VMAFDISTILL_CONF", str(conf))
    with pytest.raises(VmafDistillError, match=r"kinds\.yaml: line 4: key 'a' is given twice"):
        load_recipe("kinds")
    (conf / "sources" / "kinds.yaml").write_text(  # a merge key is no second key
        "out_dir: x\nbase: &b {kind: static}\ntrain:\n  a:\n    <<: *b\n    seed: 3\n")
    assert load_recipe("kinds")["train"]["a"] == {"kind": "static", "seed": 3}


def test_a_stamp_is_gone_before_its_clip_changes(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed between replacing the clip and writing its stamp left the new clip under
    the old recipe's stamp (going back to that recipe then kept the wrong clip)."""
    import os

    from vmafdistill import folders
    from vmafdistill.errors import VmafDistillError
    from vmafdistill.folders import PENDING_STAMP, already_made, partial_file, stamp_path

    out = tmp_path / "c.mp4"
    with partial_file(out, "old") as tmp:
        tmp.write_bytes(b"old clip")
    assert already_made(out, "old") and not already_made(out, "new")
    with pytest.raises(KeyboardInterrupt), partial_file(out, "new") as tmp:
        tmp.write_bytes(b"new cl")
        raise KeyboardInterrupt
    assert out.read_bytes() == b"old clip" and not already_made(out, "old")
    # a first film is marked ours before its clip appears: killed between its rename and its
    # stamp, the clip was refused as the user's video
    first = tmp_path / "first.mp4"
    with pytest.raises(KeyboardInterrupt), partial_file(first, "s") as tmp:
        # no mark while a first film encodes: a killed one left "ours" with no clip, and a
        # user's video put there later was filmed over
        assert not os.path.lexists(stamp_path(first))
        raise KeyboardInterrupt
    assert not os.path.lexists(stamp_path(first))  # a failed first film leaves nothing
    real_write = folders.atomic_write_bytes

    def write(path: Path, data: bytes) -> None:
        if not data.startswith(PENDING_STAMP.encode()):
            raise KeyboardInterrupt  # killed after the rename, before the stamp
        real_write(path, data)

    monkeypatch.setattr(folders, "atomic_write_bytes", write)
    with pytest.raises(KeyboardInterrupt), partial_file(first, "s") as tmp:
        tmp.write_bytes(b"renamed, not stamped")
    monkeypatch.undo()
    assert first.is_file() and not already_made(first, "s")  # ours: filmed again
    # a user's video put at a first film's path while its tool ran is refused, not replaced
    late = tmp_path / "late.mp4"
    with pytest.raises(VmafDistillError, match="without a recipe stamp"), \
            partial_file(late, "s") as tmp:
        tmp.write_bytes(b"our clip")
        late.write_bytes(b"the user's own video")
    assert late.read_bytes() == b"the user's own video" and not os.path.lexists(tmp)
    assert not os.path.lexists(stamp_path(late))


def test_two_recipes_filming_one_clip_commit_one_at_a_time(tmp_path: Path) -> None:
    """Two recipes filming one path at once could interleave their renames and stamps and
    leave one run's clip under the other's stamp: each run's mark, rename and stamp now wait
    for the folder's lock (held here by a second open of the folder, as another run would)."""
    import fcntl
    import os
    import threading

    from vmafdistill.folders import already_made, partial_file

    out = tmp_path / "c.mp4"
    held = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)

    def film() -> None:
        with partial_file(out, "recipe b") as tmp:
            tmp.write_bytes(b"clip b")

    worker = threading.Thread(target=film)
    try:
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and not out.exists()  # waits for the other run's commit
    finally:
        os.close(held)  # releases the lock
    worker.join(10)
    assert not worker.is_alive()
    assert out.read_bytes() == b"clip b" and already_made(out, "recipe b")


def test_sources_into_a_blocked_default_folder_is_one_error(tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    """A file ``.cache`` in the way of the recipe's own out_dir was a NotADirectoryError
    traceback (only --out was checked)."""
    from vmafdistill.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".cache").write_text("")
    assert main(["sources", "kinds"]) == 2
    err = capsys.readouterr().err
    assert "out_dir of " in err and "kinds.yaml .cache/kind_sources: cannot make the folder" \
        in err and "Traceback" not in err, err
