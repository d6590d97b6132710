"""``vmafdistill pilot``: the pilot study end to end on the packaged Big Buck Bunny clip.

corpus (torch teacher, exact mode) -> the same corpus labelled by libvmaf's default (integer)
model -> train the default student under
the pilot protocol -> export to ONNX -> predict one delivered rung with the torch-free edge chain.
The corpus, its teacher check and their encodes are cached (a second run redoes the training,
export and predict steps, about 40 s); ``conf/pilot.yaml`` says what runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import VmafDistillError
from ..folders import atomic_write_text, json_safe, refuse_empty


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``pilot`` subcommand."""
    p = sub.add_parser(
        "pilot",
        help="main job: the pilot study end to end on Big Buck Bunny (conf/pilot.yaml)",
        description="Build the Big Buck Bunny pilot corpus, check the teacher against libvmaf, "
        "train and export the default student, and run the edge predictor on one rung. "
        "Positional arguments are Hydra overrides of conf/pilot.yaml, e.g. "
        "\"corpus_overrides=['teacher.model=vmaf_v1.0.16_3d0h']\" or "
        "\"train_overrides=['student=mlp']\" (quote list items that hold '=').",
    )
    p.add_argument("overrides", nargs="*", help="Hydra overrides of conf/pilot.yaml")
    p.add_argument("--config", default="pilot", help="config under conf/ (default: pilot)")
    p.add_argument("--out", help="output directory (the override out_dir=...)")
    p.add_argument("--workers", type=int, help="parallel corpus jobs (the override workers=N)")
    p.add_argument("--no-teacher-check", action="store_true",
                   help="skip the libvmaf labelling of the corpus (teacher_check=false)")
    p.add_argument("--json", metavar="PATH",
                   help="also write the pilot summary as JSON (- for stdout; the step report "
                        "then goes to stderr)")
    p.set_defaults(func=run)


def _step(n: int, title: str) -> float:
    print(f"\n== {n}. {title} " + "=" * max(0, 70 - len(title)), flush=True)
    return time.perf_counter()


def _refuse_build_settings_in_training(train_overrides: list[Any]) -> None:
    """A ``train_overrides`` entry that says how a corpus is built (``teacher.model=...``,
    ``ladder=wide``, ``corpus_build.*``): training reads the corpus step 1 built, so it
    changed nothing, unsaid."""
    from ..config import override_key
    from ..students.train import BUILD_ONLY_GROUPS

    for override in map(str, train_overrides):
        # +ladder@corpus_build.ladder=wide: the group and where it goes both count
        group, _, package = override_key(override).partition("@")
        if {group.split(".")[0], package.split(".")[0]} & {*BUILD_ONLY_GROUPS, "corpus",
                                                            "corpus_build", "executor"}:
            example = (" (there: executor=ray, without a +)" if "executor" in
                       {group.split(".")[0], package.split(".")[0]} else "")
            raise VmafDistillError(f"train_overrides: {override!r} says how the corpus is "
                                   f"built; give it in corpus_overrides{example} (training "
                                   "reads the corpus step 1 builds)")


def _configs(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """The pilot config and the corpus and train configs it composes (all through Hydra)."""
    from ..config import (
        checked_bool,
        checked_number,
        compose,
        compose_dict,
        hydra_quoted,
        override_key,
    )
    from ..corpus.build import check_sections

    flags = {}  # the flags are spellings of overrides: key -> (flag, override)
    if args.out is not None:
        refuse_empty("--out", args.out, hint="give a folder")  # it replaced the default's
        flags["out_dir"] = ("--out", "out_dir=" + hydra_quoted(
            str(Path(args.out).expanduser().resolve())))
    if args.workers is not None:  # 0 too (it was dropped for the config's value)
        flags["workers"] = ("--workers", f"workers={args.workers}")
    if args.no_teacher_check:
        flags["teacher_check"] = ("--no-teacher-check", "teacher_check=false")
    given = {override_key(o): o for o in args.overrides if "=" in o}
    for key, (flag, _) in flags.items():  # `--out x out_dir=y` ran into x, unsaid (the
        if key in given:  # corpus command refuses the same pair)
            raise VmafDistillError(f"{flag} and {given[key]} both set {key}: give one")
    cfg = compose_dict(args.config, [*args.overrides, *(o for _, o in flags.values())])
    missing = [k for k in ("out_dir", "corpus_name") if k not in cfg]
    if missing:  # --config corpus: a KeyError traceback
        raise VmafDistillError(f"--config {args.config}: not a pilot config (it lacks "
                               f"{', '.join(missing)}; see conf/pilot.yaml)")
    out = _out_dir(cfg.get("out_dir"))
    cfg["out_dir"] = str(out)
    workers = checked_number("workers", cfg.get("workers", 1), int, 1)
    cfg["teacher_check"] = checked_bool("teacher_check", cfg.get("teacher_check", True))
    _refuse_placed_overrides(cfg)
    corpus_cfg = compose_dict("corpus", [
        f"corpus={cfg['corpus_name']}", f"workers={workers}",
        f"out_dir={hydra_quoted(str(out / 'corpus'))}",
        *[str(o) for o in cfg.get("corpus_overrides") or []]])
    check_sections(corpus_cfg)  # before its ladder and teacher are read here
    n_rungs = len(corpus_cfg["ladder"]["rungs"])
    rung = checked_number("predict_rung", cfg.get("predict_rung", -1), int)
    cfg["predict_rung"] = rung
    if not -n_rungs <= rung < n_rungs:  # said before the corpus and training, not after
        raise VmafDistillError(f"predict_rung={rung}: the ladder "
                               f"{corpus_cfg['ladder'].get('name', '')} has {n_rungs} rungs "
                               f"(0..{n_rungs - 1}, or -1 for the last)")
    _refuse_build_settings_in_training(cfg.get("train_overrides") or [])
    train_cfg = compose("train", [
        f"corpus={cfg['corpus_name']}", f"corpus_dir={hydra_quoted(str(out / 'corpus'))}",
        "trainer.enable_progress_bar=false",  # one table per stage, not a bar per fold
        *[str(o) for o in cfg.get("train_overrides") or []]])
    _check_train_values(train_cfg)
    if cfg["teacher_check"] and corpus_cfg["teacher"].get("backend") != "libvmaf":
        from ..errors import ToolError
        from ..oracle import libvmaf_version

        try:  # step 2's libvmaf, checked before step 1 builds the corpus
            libvmaf_version()
        except ToolError as exc:
            raise ToolError(f"{exc} (step 2 compares with libvmaf; --no-teacher-check "
                            "skips it)") from None
    return cfg, corpus_cfg, train_cfg


def _check_train_values(train_cfg: Any) -> None:
    """The training settings' values, checked as train checks them, before the corpus is
    built (``train_overrides=['optim.lr=abc']`` was refused only after the corpus, minutes
    later)."""
    from omegaconf.errors import OmegaConfBaseException

    from ..config import one_line
    from ..students.train import check_fit_settings, checked_run_values, to_dict

    try:
        plain = to_dict(train_cfg)
    except OmegaConfBaseException as exc:
        raise VmafDistillError(f"train_overrides: {one_line(exc)}") from None
    checked_run_values(plain)
    check_fit_settings(plain, notes=False)  # train says its notes in step 3


def _out_dir(value: Any) -> Path:
    """The pilot's output folder, checked writable (or one error naming it: a path through a
    file, an unwritable place, ``out_dir=null`` or empty; tracebacks, or the working folder,
    before) and not written by another live pilot (found out only after its corpus)."""
    from ..folders import check_folder_target
    from ..students.train import run_dir_holder

    if value is None or not str(value).strip():
        raise VmafDistillError(f"out_dir={value!r}: give the pilot's output folder (--out DIR)")
    out = Path(str(value)).expanduser().resolve()  # out_dir='~/p' made ./~/p
    check_folder_target("--out", out)
    if (holder := run_dir_holder(out / "train")) is not None:
        raise VmafDistillError(f"--out {out}: another pilot writes here (pid "
                               f"{holder.get('pid')}); give another --out")
    return out


def _refuse_placed_overrides(cfg: dict[str, Any]) -> None:
    """The pilot places its corpus and run under ``out_dir``: an override that moves one
    (corpus ``out_dir``, train ``corpus_dir`` or ``hydra.*``) split the stages (step 1 built
    one corpus while training, export and step 5 read another) or was ignored."""
    from ..config import override_key
    from ..students.app import first_sweep_setting

    sweep = first_sweep_setting(cfg.get("train_overrides") or [])
    if sweep is not None:  # hparams_search=optuna trained one run and ignored the search
        raise VmafDistillError(
            f"train_overrides: {sweep!r} is a sweep's setting: the pilot trains one run "
            "(sweep with `vmafdistill train -m ...` on the corpus it builds)")
    for group, keys in (("corpus_overrides", ("out_dir",)),
                        ("train_overrides", ("corpus_dir", "hydra"))):
        for item in cfg.get(group) or []:
            key = override_key(str(item))  # (without its + or ~)
            if key in keys or key.split(".")[0] in keys:
                raise VmafDistillError(
                    f"{group}: {item!r}: the pilot places its corpus and run under --out "
                    f"(out_dir={cfg['out_dir']}); give --out DIR instead")
    # the pilot's own settings of its corpus step: in corpus_overrides they silently won
    # (workers) or were ignored (teacher_check: step 2 reads the pilot's; action, shard)
    own = {"workers": "--workers", "teacher_check": "--no-teacher-check / teacher_check=",
           "action": None, "shard": None}
    for item in cfg.get("corpus_overrides") or []:
        if override_key(str(item)) == "corpus":  # won over corpus_name, which step 3 reads
            raise VmafDistillError(f"corpus_overrides: {item!r}: give corpus_name= instead")
        key = override_key(str(item)).split(".")[0]
        if key in own:
            raise VmafDistillError(
                f"corpus_overrides: {item!r}: " + (f"the pilot's {own[key]} sets it"
                                                   if own[key] else
                                                   "the pilot builds one whole corpus"))


def cv_phrase(cv: Mapping[str, Any]) -> str:
    """What the cross-validation of a ``cv`` config is, in words for step 3's heading (it said
    "shot-grouped 5-fold" whatever ``train_overrides`` chose)."""
    name = cv.get("name")
    if name == "group_kfold":
        return f"{cv.get('n_splits', 5)}-fold grouped by {cv.get('group', 'shot_id')}"
    if name == "hash_split":
        return (f"one train/test split by hashed {cv.get('key', 'shot_id')} "
                f"({float(cv.get('test_fraction', 0.2)):.0%} test)")
    if name == "leave_one_source_out":
        return "leave-one-source-out"
    return f"cv {name}"


def run(args: argparse.Namespace) -> int:
    """Run the five pilot stages and print what each found (on stderr with ``--json -``:
    stdout is the JSON summary alone, as ``predict --json -`` and ``score --json -`` keep it;
    the step report came first and the JSON did not parse)."""
    from ..folders import is_stdout

    if not is_stdout(args.json):  # /dev/stdout too: the report went into the JSON's stream
        summary = _stages(args)
        if args.json:  # "~/p.json": the home folder (it made ./~)
            atomic_write_text(Path(args.json).expanduser(), _summary_text(summary) + "\n")
        return 0
    with contextlib.redirect_stdout(sys.stderr):
        summary = _stages(args)
    print(_summary_text(summary))
    return 0


def _summary_text(summary: dict[str, Any]) -> str:
    """The summary as JSON: NaN (a baseline's undefined guard precision) as null, bare NaN
    is not JSON."""
    return json.dumps(json_safe(summary), indent=2, default=float, allow_nan=False)


def _stages(args: argparse.Namespace) -> dict[str, Any]:
    """The five pilot stages, each printing what it found; the summary."""
    cfg, corpus_cfg, train_cfg = _configs(args)
    out = Path(cfg["out_dir"])
    _check_json(args.json, out)
    summary: dict[str, Any] = {"out_dir": str(out)}
    t_all = time.perf_counter()

    t = _step(1, f"corpus {cfg['corpus_name']}: shots x ladder, torch teacher, student features")
    report = _corpus(corpus_cfg)
    summary["corpus"] = {"samples": len(report.samples), "wall_s": time.perf_counter() - t,
                         "shots": int(report.samples["shot_id"].nunique())}

    if cfg.get("teacher_check", True) and corpus_cfg["teacher"].get("backend") == "libvmaf":
        print("\n(step 2 skipped: the corpus teacher is libvmaf itself)")
    elif cfg.get("teacher_check", True):
        from ..corpus.teacher_check import format_teacher_check, run_teacher_check

        teacher = corpus_cfg["teacher"]
        t = _step(2, f"teacher check: the same corpus labelled by libvmaf "
                     f"({teacher.get('model')}, {teacher.get('mode')})")
        check = run_teacher_check(corpus_cfg, report, lambda c: _corpus(c, quiet=True))
        print(format_teacher_check(check))
        summary["teacher_check"] = check

    t = _step(3, f"train: student {train_cfg.student.get('name', '?')}, "
                 f"{cv_phrase(train_cfg.get('cv') or {})} + sklearn rows")
    from ..signals import interrupts_kept
    from ..students.train import run as train_run

    run_dir = out / "train"
    # Ctrl-C 130 and SIGTERM 143 as `vmafdistill train` (Lightning swallowed them: exit 0 or
    # a silent 1, the previous run's student left beside a half-written run)
    with interrupts_kept():
        metrics = train_run(train_cfg, run_dir)  # prints its own summary table
    # the student's own out-of-fold figures ("overall" is no key of metrics.json: only the
    # sklearn rows reached the summary)
    summary["train"] = {k: metrics.get(k) for k in ("oof", "fold_plcc_std", "conformal",
                                                     "baselines") if k in metrics}

    from ..export import export_bundle, load_export_settings

    # the card cuts shots as the corpus did (corpus_overrides may set shots.*)
    settings = load_export_settings({"edge": {"shots": dict(corpus_cfg["shots"])}})
    t = _step(4, f"export: ONNX opset {settings.get('opset')} + model card")
    onnx_path = out / "student.onnx"
    card = export_bundle(run_dir / "student.pt", onnx_path, corpus_dir=out / "corpus",
                         settings=settings)
    exp = card.get("export_metrics", {})
    print(f"{onnx_path} ({onnx_path.stat().st_size} bytes, opset {card.get('opset')}): "
          f"max |ORT - torch| = {exp.get('parity_max_abs', float('nan')):.2e} on "
          f"{exp.get('n_samples')} samples; in-sample MAE {exp.get('mae_vs_target'):.3f}")
    summary["export"] = {"path": str(onnx_path), "bytes": onnx_path.stat().st_size, **exp}

    t = _step(5, "predict: torch-free edge chain on one delivered rung")
    summary["predict"] = _predict(cfg, corpus_cfg, report, onnx_path)
    print(f"\npilot done in {time.perf_counter() - t_all:.1f} s; outputs in {out}")
    return summary


def _check_json(target: str | None, out: Path) -> None:
    """``--json`` checked before the run (a missing folder was a traceback after it, and
    ``--json OUT/student.onnx`` replaced the exported model): its folder made, and neither an
    existing file other than JSON nor one of the pilot's own outputs."""
    from ..folders import check_output_target, is_stdout, json_starting_with, make_folder

    if target is None or is_stdout(target):
        return
    refuse_empty("--json", target, hint="give a file to write, or - for stdout")
    path = Path(target).expanduser()
    own = {(out / name).resolve() for name in ("student.onnx", "student.card.json")}
    where = path.resolve()
    # the teacher check's libvmaf corpus too (its corpus.json was overwritten by the summary)
    if where in own or any(where.is_relative_to((out / name).resolve())
                           for name in ("corpus", "corpus_libvmaf", "train")):
        raise VmafDistillError(f"--json {target}: is one of the pilot's own outputs in {out}")
    if out.resolve().is_relative_to(where):  # --out X --json X: a folder once the run is done
        raise VmafDistillError(f"--json {target}: is the pilot's output folder {out}, or holds "
                               "it; give a file beside it")
    make_folder("--json", where.parent, writable=False)  # once it is none of the outputs
    check_output_target("--json", str(path), [], starts=json_starting_with("out_dir"))


def _corpus(cfg: dict[str, Any], quiet: bool = False) -> Any:
    from ..corpus.build import build_corpus, format_summary


    report = build_corpus(cfg)
    if report.failures:
        f = report.failures[0]
        raise VmafDistillError(f"corpus: {len(report.failures)} job(s) failed; first: "
                               f"{f['source_id']} {f['variant_id']}: {f['error']}")
    if not quiet:
        print(format_summary(report.summary))
    print(f"{len(report.samples)} samples ({report.samples['shot_id'].nunique()} shots) in "
          f"{report.wall_s:.1f} s -> {report.out_dir}")
    return report


def _predict(cfg: dict[str, Any], corpus_cfg: dict[str, Any], report: Any, onnx: Path) -> dict:
    from ..corpus.build import cached_encodes
    from ..edge.card import card_path_for
    from ..edge.pipeline import analyze_video
    from ..edge.predictor import Predictor
    from ..edge.tokens import DEFAULT_RULES, merge_rules
    from ..evaluation.unseen import card_target, same_shot

    # the first source's encode of the chosen rung (default: the last, best one)
    enc = next(cached_encodes(corpus_cfg, rung_indices=[int(cfg.get("predict_rung", -1))]))
    source, rung, video = enc.source, enc.rung, enc.path
    pred = Predictor(onnx)
    target = card_target(pred.card, list(report.samples.columns), card_path_for(onnx))
    rules = merge_rules(DEFAULT_RULES, pred.card.get("tokens"))
    rep = analyze_video(video, pred, rules=rules, ref_size=(source["width"], source["height"]))
    variant = rung.label(source["width"], source["height"])
    samples = report.samples
    truth = samples[(samples["variant_id"] == variant)
                    & (samples["source_id"] == source["source_id"])].set_index("start_frame")
    print(f"{variant} ({video.name}): student tokens vs teacher shot labels ({target})")
    errors = []
    paired = 0
    # paired by start and stop frame, as evaluate pairs them: by position, a corpus cut other
    # than the card's (corpus_overrides shots.*) compared shot 1 with frames from another shot;
    # against the label the student learnt (a vmaf_min student was compared with the mean)
    for rec, row in zip(rep.records, rep.rows, strict=True):
        token = {k: rec.get(k) for k in ("shot", "codec", "res", "pred_vmaf", "interval", "band",
                                         "issue")}
        start, stop = int(row["start_frame"]), int(row["stop_frame"])
        if not same_shot(truth, row):
            print(f"  {json.dumps(token)}  teacher: no corpus shot spans frames {start}-{stop}")
            continue
        paired += 1
        teacher = float(truth.loc[start, target])
        print(f"  {json.dumps(token)}  teacher {teacher:.2f}")
        if rec.get("pred_vmaf") is not None:
            errors.append(abs(rec["pred_vmaf"] - teacher))
    if paired != len(rep.records) or paired != len(truth):
        print(f"  note: the edge chain found {len(rep.records)} shots, the corpus {len(truth)}; "
              f"{paired} span the same frames and are compared (the card's shot settings "
              "differ from the corpus's?)")
    mae = sum(errors) / len(errors) if errors else float("nan")
    print(f"  shot MAE vs teacher ({target}) {mae:.2f} VMAF (in-sample: the exported student "
          f"was fitted on every pilot shot; out-of-fold figures are in step 3); edge chain "
          f"{rep.timings.get('total_s', 0):.2f} s")
    return {"variant": variant, "target": target, "records": rep.records, "mae_vs_teacher": mae,
            "timings": rep.timings}
