"""``vmafdistill finetune ckpt=PATH``: adapt a trained student to a new corpus.

Protocol: the new corpus is split by the ``cv`` group (default: a hash split of shots). Per
fold, the original student is evaluated on the held-out rows (*before*), fine-tuned from its
weights on the fold's training rows (lower learning rate, its input scaler kept, optional
frozen parameters) and evaluated on the same held-out rows (*after*). The final fine-tuned
student is trained on every row of the new corpus and saved as ``student.pt``, with the
conformal half width of the pooled held-out residuals after fine-tuning (rule ``pooled``: the
new corpus recalibrates the interval; a ``worst_fold`` q of the original student is not kept).
"""

from __future__ import annotations

import copy
import logging
import math
import re
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import checked_number, override_key, refuse_unknown_keys
from ..errors import VmafDistillError

log = logging.getLogger(__name__)


def resolve_ckpt(ckpt: str | Path, work_dir: Path | None = None) -> Path:
    """The bundle path of ``ckpt``: ``default`` (the shipped student), a ``student.pt`` or the
    run directory holding it, a sweep's ``winner.json`` or the sweep directory holding it, or
    an exported ``.onnx`` / its ``.card.json`` (rebuilt into a bundle in ``work_dir`` from the
    graph's initializers and the card, checked against onnxruntime)."""
    from ..errors import ModelError
    from .shipped import resolve_student_source

    text = _ckpt_from_launch_dir(str(ckpt))
    if text == "default" or text.endswith((".onnx", ".card.json")):
        try:
            return resolve_student_source(text, work_dir)
        except ModelError as exc:
            raise VmafDistillError(str(exc)) from None
    path = Path(text).expanduser()
    # a directory: a sweep (its winner.json) or a run (its student.pt)
    if path.is_dir() and not (path / "winner.json").is_file():
        if not (path / "student.pt").is_file():
            raise VmafDistillError(f"ckpt {path}: a directory with neither a winner.json "
                                   "(a reported sweep) nor a student.pt (a training run)")
        path = path / "student.pt"
    if path.suffix == ".json" or path.is_dir():
        from ..export import resolve_winner

        path = resolve_winner(path)
    if not path.is_file():
        raise VmafDistillError(f"ckpt {path}: no such student bundle")
    if path.suffix == ".ckpt":  # train's checkpoints/final.ckpt: Lightning's, not a bundle
        bundle = path.resolve().parent.parent / "student.pt"
        hint = f"ckpt={bundle}" if bundle.is_file() else "the run's student.pt"
        raise VmafDistillError(
            f"ckpt {path}: a Lightning checkpoint (no scaler, features or interval); fine-tune "
            f"from the run's student bundle instead: {hint}")
    return path


def _ckpt_from_launch_dir(ckpt: str) -> str:
    """A relative ``ckpt`` as an absolute path from the directory the command was started in:
    a job run elsewhere (``hydra.job.chdir``, a Ray worker) looked for it there and found no
    bundle, while ``corpus_dir`` resolved from the launch directory; the run records the path
    a later reader can open."""
    from ..config import from_launch_dir

    if ckpt == "default" or not ckpt.strip():
        return ckpt
    return str(from_launch_dir(ckpt))


def _prefixes(freeze: Any) -> list[str]:
    if freeze is None:
        return []
    if isinstance(freeze, str):
        return [p.strip() for p in freeze.split(",") if p.strip()]
    return [str(p) for p in freeze]


def _eval(y: np.ndarray, pred: np.ndarray, thresholds: Sequence[float]) -> dict[str, Any]:
    from ..evaluation.metrics import guard_metrics, regression_metrics

    return {**regression_metrics(y, pred), "guard": guard_metrics(y, pred, list(thresholds))}


def load_source(plain: Mapping[str, Any]) -> tuple[Path, Any, dict[str, Any], list[str]]:
    """The student to fine-tune: ``(bundle path, model, meta, frozen prefixes)`` (the prefixes
    are checked against its parameter names)."""
    from .bundle import load_bundle
    from .lit_module import freeze_parameters

    if plain.get("ckpt") in (None, "", "???"):
        raise VmafDistillError("ckpt=PATH is required (a student.pt or a sweep's winner.json)")
    # an .onnx is rebuilt into a bundle in a folder removed once it is loaded (one was left
    # in /tmp per run); the run then names the .onnx it came from, not that folder
    with tempfile.TemporaryDirectory(prefix="vmafdistill-rebuilt-") as tmp:
        bundle_path = resolve_ckpt(plain["ckpt"], Path(tmp))
        original, meta = load_bundle(bundle_path)
        if bundle_path.is_relative_to(tmp):
            bundle_path = Path(meta["rebuilt_from"]["onnx"])
    frozen = _prefixes(plain.get("freeze"))
    try:
        freeze_parameters(copy.deepcopy(original), frozen)
    except ValueError as exc:
        raise VmafDistillError(f"freeze: {exc}") from None
    return bundle_path, original, meta, frozen


def finetune_loss(plain: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The loss config to fine-tune with and where it came from.

    The loss the student was trained with unless one is chosen (``loss=...``): a student fitted
    on VMAF points and tuned in logit space drifts away from what it was good at (the shipped
    student: held-out MAE 3.82 -> 4.00 with the logit Huber, -> 3.68 with its own). Keys given
    without ``loss=`` (``+loss.delta=2``) are laid over the training loss.
    """
    chosen = dict(plain.get("loss") or {})
    if chosen.get("name"):
        return chosen, "loss= override"
    if (meta.get("config") or {}).get("loss"):
        from .losses import complete_stored_loss_cfg

        base = complete_stored_loss_cfg(meta["config"]["loss"])
        loss_source = "the bundle's training loss"
    else:
        from omegaconf import OmegaConf

        from ..config import conf_dir

        base = OmegaConf.to_container(OmegaConf.load(conf_dir() / "loss" / "huber.yaml"))
        loss_source = "conf/loss/huber.yaml (the bundle records no training loss)"
    from .train import loss_config

    loss = {**base, **chosen}
    if ignored := sorted(set(chosen) - set(loss_config(loss))):  # reported as overridden
        raise VmafDistillError(f"loss.{ignored[0]}: the {loss.get('name')} loss the student "
                               "was trained with takes no such setting (choose a loss that "
                               "does: loss=...)")
    if chosen:
        loss_source += f" with {sorted(chosen)} overridden"
    return loss, loss_source


def heldout_predictions(
    plain: Mapping[str, Any], original: Any, frozen: Sequence[str], names: Sequence[str],
    samples: Any, x: np.ndarray, y: np.ndarray, splits: Sequence[Any], run_dir: Path,
) -> Any:
    """Per fold, the original student's and the fold-tuned student's predictions on the held-out
    rows (``pred_before``, ``pred``); written to ``heldout.parquet``."""
    import pandas as pd

    from ..corpus.tables import write_table
    from .train import fit_student, predict

    target = plain.get("target", "vmaf")
    parts = []
    for k, (tr, te) in enumerate(splits):
        tuned, _ = fit_student(plain, x, y, names, tr, te, run_dir, f"fold{k}",
                               init=copy.deepcopy(original), frozen=frozen)
        parts.append(pd.DataFrame({
            "sample_id": samples["sample_id"].to_numpy()[te], "fold": k,
            "pred_before": predict(original, x[te]), "pred": predict(tuned, x[te]),
            target: y[te].astype(float),
        }))
    held = pd.concat(parts, ignore_index=True)
    write_table(held, run_dir / "heldout.parquet")
    return held


def save_finetuned(
    plain: Mapping[str, Any], meta: Mapping[str, Any], final: Any, metrics: Mapping[str, Any],
    manifest: Mapping[str, Any], bundle_path: Path, run_dir: Path,
) -> None:
    """``student.pt``: the original bundle's meta with this corpus, held-out metrics and q."""
    from ..corpus.tables import corpora_trained_on
    from ..folders import json_safe
    from .bundle import save_bundle
    from .train import _with_learned_loss

    new_meta = dict(meta)
    # rebuilt_from: the source's weights came from an export; these were trained here
    for key in ("student_cfg", "feature_names", "transforms", "interactions", "rebuilt_from"):
        new_meta.pop(key, None)
    new_meta.update(
        corpus={"name": manifest.get("name"), "hash": manifest.get("corpus_hash"),
                "dir": (metrics.get("corpus") or {}).get("dir")},
        finetuned_from={"bundle": str(bundle_path), "corpus": meta.get("corpus")},
        # every corpus fitted on before this one (the source's own and its earlier ones): a
        # fine-tune kept only the last, and the first read as unseen content afterwards
        earlier_corpora=corpora_trained_on(meta),
        metrics=json_safe({"heldout_before": metrics["before"]["heldout"],
                         "heldout_after": metrics["after"]["heldout"],
                         "monotone_check": metrics["monotone_check"],
                         # how the held-out figures were measured travels to the card
                         **{k: metrics.get(k) for k in ("cv", "n_folds", "n_dropped",
                                                        "cv_shared_scenes")}}),
        conformal={"alpha": metrics["conformal"]["alpha"], "q": metrics["conformal"]["q"],
                   # the source's q kept where the held-out rows were in-sample (_honest_q)
                   "rule": "source" if "q_heldout" in metrics["conformal"] else "pooled"},
        guard_thresholds=list(plain.get("guard_thresholds") or []),
        target=plain.get("target", "vmaf"),
        config=json_safe(_with_learned_loss(plain, metrics["learned_loss_params"])),
    )
    save_bundle(run_dir / "student.pt", final, meta["student_cfg"], new_meta)


def source_domain(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the student fine-tuning starts from has seen (its card's ``training_domain``): the
    domain its bundle carries (a fine-tuned one, one rebuilt from an export), the card it was
    rebuilt from (the shipped bundle), else the domain of the corpus it was trained on where
    that corpus is still there. None, with a warning, where none is known."""
    from .shipped import rebuilt_training_domain

    if meta.get("training_domain"):
        return dict(meta["training_domain"])
    reason = f"no card, no corpus {(meta.get('corpus') or {}).get('name')}"
    try:  # after the fit: a changed card or a damaged corpus must not lose the fine-tune
        found = (rebuilt_training_domain(meta) if meta.get("rebuilt_from")
                 else _corpus_domain(meta))
    except Exception as exc:  # any reader's error (named): the domain is unknown
        found, reason = None, f"reading it failed: {exc}"
    if found is None:
        log.warning("the training domain of the student fine-tuning starts from is unknown "
                    "(%s): the exported card will hold this corpus's alone", reason)
    elif meta.get("finetuned_from"):  # fine-tuned before bundles carried their domain
        log.warning("the student fine-tuning starts from was itself fine-tuned by an earlier "
                    "version, which kept no training domain: the card covers %s and this "
                    "corpus, not the corpora before them",
                    "its card's" if meta.get("rebuilt_from") else "its last corpus")
    return found


def _corpus_domain(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The training domain of a trained bundle's corpus (where it recorded it, hash-checked
    as export checks it); None where the bundle names none or it is gone. A corpus that is
    there but changed or refused raises (:func:`source_domain` names why)."""
    from ..corpus.tables import MANIFEST, load_samples
    from ..export import _trained_corpus_dir, trained_corpus, trained_rows, training_domain

    corpus = meta.get("corpus") or {}
    if not corpus.get("name") and not corpus.get("dir"):
        return None  # the bundle names no corpus
    if not (_trained_corpus_dir(corpus) / MANIFEST).is_file():
        # gone: "no card, no corpus" (export's "give --corpus" advice would name finetune's
        # corpus_dir, the corpus it fine-tunes on)
        return None
    # a corpus that is there but changed or refused (another feature_set_version) raises,
    # and the caller names why
    try:
        cdir, _ = trained_corpus(corpus)
    except VmafDistillError as exc:  # without export's "give --corpus" advice: in finetune
        # corpus_dir= is the corpus it fine-tunes on
        raise VmafDistillError(re.split(r";( or)? give --corpus", str(exc))[0]) from None
    rows = trained_rows(load_samples(cdir), str(meta.get("target") or "vmaf"))
    return training_domain(rows, meta["feature_names"])


def finetuned_domain(meta: Mapping[str, Any], samples: Any) -> dict[str, Any]:
    """The fine-tuned student's training domain: its source's (:func:`source_domain`) widened
    by the fine-tune corpus's rows (``samples``)."""
    from ..export import merge_training_domains, training_domain

    return merge_training_domains(source_domain(meta),
                                  training_domain(samples, meta["feature_names"]))


def _replace_earlier_run(bundle_path: Path, run_dir: Path, plain: Mapping[str, Any],
                         n_heldout: int, alpha: float) -> None:
    """Clear an earlier run's outputs from ``run_dir`` once this run's settings (optimizer,
    loss, enough held-out rows for ``alpha``) have passed (they went first, and a bad
    ``optim.lr`` left the directory empty); refused where the bundle fine-tuning starts from
    is one of them (a failure would lose it, a success replace it)."""
    from .train import check_fit_settings, clear_earlier_outputs, require_enough_rows

    check_fit_settings(plain)
    require_enough_rows(n_heldout, alpha, "held-out")

    if bundle_path.resolve() == (run_dir / "student.pt").resolve():
        raise VmafDistillError(
            f"ckpt {bundle_path} is this run's own output (hydra.run.dir={run_dir}): "
            "fine-tune into another directory, the bundle it starts from would be replaced")
    clear_earlier_outputs(run_dir)


def _interval_settings(plain: dict[str, Any], meta: Mapping[str, Any]
                       ) -> tuple[list[Any], float]:
    """``guard_thresholds`` and ``conformal.alpha``: those given, else the bundle's (a 70 %
    interval became 90 % and ``[55]`` became ``[60, 70, 80]`` without a word), else
    ``[60, 70, 80]`` and 0.1; written back into ``plain`` so the run records them."""
    from .train import checked_run_values

    if plain.get("guard_thresholds") is None:
        inherited = meta.get("guard_thresholds")  # [] is the bundle's choice too
        # once per value: a bundle trained before twins were refused may hold [70, 70.0]
        plain["guard_thresholds"] = [60, 70, 80] if inherited is None else list(
            {float(t): t for t in inherited}.values())
    checked_run_values(plain)
    conformal = plain["conformal"] = dict(plain.get("conformal") or {})  # conformal=null
    # fine-tuning calibrates on the pooled held-out residuals: alpha is all it reads
    refuse_unknown_keys("conformal (fine-tuning)", conformal, ("alpha",))
    if conformal.get("alpha") is None:
        conformal["alpha"] = (meta.get("conformal") or {}).get("alpha") or 0.1
    alpha = checked_number("conformal.alpha", conformal["alpha"], float, 0, False, 1)
    return list(plain["guard_thresholds"]), alpha


def _checked_source(plain: dict[str, Any]) -> tuple[Path, Any, dict[str, Any], list[str]]:
    """:func:`load_source`'s ``(bundle_path, student, meta, frozen)``, its ckpt keys and its
    feature-set version checked."""
    from ..export import refuse_other_feature_set_version

    _refuse_keys_of_ckpt(plain)
    bundle_path, original, meta, frozen = load_source(plain)
    refuse_other_feature_set_version(meta.get("feature_set_version"), str(bundle_path))
    return bundle_path, original, meta, frozen


def _student_rows(cfg: Mapping[str, Any], plain: dict[str, Any], target: str,
                  bundle_path: Path, meta: Mapping[str, Any]) -> tuple[Any, ...]:
    """:func:`~.train.load_rows` of the student's inputs; a column the corpus lacks names the
    student that reads it (the table's path alone was said)."""
    from .datamodule import MissingColumnsError
    from .train import load_rows

    names = list(meta["feature_names"])
    try:
        return load_rows(cfg, plain, names, target)  # type: ignore[arg-type]
    except MissingColumnsError as exc:
        # the target is listed too, and the student reads no target
        read = [n for n in exc.missing if n in names]
        if not read:
            raise
        # "inputs", not "reads": a student on a column subset takes columns it gives no weight
        raise VmafDistillError(f"{exc} ({', '.join(read)}: inputs of student {bundle_path} "
                               f"(feature set {meta.get('feature_set')}))") from None


def _changed_parameters(final: Any, original: Any) -> list[str]:
    """The parameter names whose values the fine-tune moved."""
    import torch

    before = dict(original.named_parameters())
    return [n for n, p in final.named_parameters()
            if not torch.equal(p.detach(), before[n].detach())]


def _note_corpus_gaps(meta: Mapping[str, Any], model: Any, names: Sequence[str],
                       x: np.ndarray, manifest: Mapping[str, Any], corpus_dir: Path) -> None:
    """Notes, on stderr, of what the fine-tune cannot see: an input the student reads with no
    finite value in the corpus (its scaler fills every row with the old training mean, as
    for a corpus of one-frame shots' ``temporal_*``; it went unsaid where a v1.0.16 corpus
    has no ``vif_*``), and a corpus labelled by another teacher than the student's."""
    from .models import raw_inputs_read

    read = raw_inputs_read(model) or list(names)
    empty = [n for j, n in enumerate(names) if n in read and not np.isfinite(x[:, j]).any()]
    if empty:
        print(f"note: corpus {corpus_dir} has no finite value of {', '.join(empty)}: the "
              "student reads its training mean there on every row (a teacher that computes "
              "no such feature leaves it NaN, e.g. v1.0.16 for vif_*)", file=sys.stderr)
    from ..export import teacher_record

    def labels(teacher: Any) -> str | None:  # "vmaf_v0.6.1 exact": the mode labels too
        record = teacher_record(teacher)
        return None if record is None else f"{record['model']} {record['mode']}"

    from .shipped import bundle_teacher

    was = labels(bundle_teacher(meta))
    now = labels((manifest.get("config") or {}).get("teacher"))
    if was and now and was != now:
        print(f"note: the student was trained on {was} labels; corpus {corpus_dir} holds "
              f"{now} labels: it is fine-tuned toward the other teacher", file=sys.stderr)


def _heldout_q(y: np.ndarray, pred: np.ndarray, alpha: float) -> float:
    """The interval half width from the held-out residuals; an error where they are too few
    for ``alpha`` (the card would ship q = Infinity: [0, 100] for every shot)."""
    from ..evaluation.conformal import conformal_quantile
    from .train import require_finite_q

    q = float(conformal_quantile(np.abs(y - pred), alpha))
    require_finite_q(q, alpha, len(y), "held-out")
    return q


def _bundle_target(meta: Mapping[str, Any], overrides: Sequence[str], bundle: Path) -> str:
    """The column the student predicts: its bundle's ``target``. A fine-tune on another one
    is refused (it silently became ``vmaf``: a ``vmaf_min`` student tuned toward mean VMAF,
    its "before" figures compared with the wrong column)."""
    have = str(meta.get("target") or "vmaf")
    asked = [o.partition("=")[2] for o in overrides
             if not o.startswith("~") and override_key(o) == "target"]
    if asked and asked[-1] not in ("", "null", "None", have):  # null: the bundle's
        raise VmafDistillError(f"target={asked[-1]}: the student of {bundle} predicts {have}; "
                               "fine-tuning keeps its target (train a new student for another)")
    return have


def finetune(
    cfg: Mapping[str, Any], run_dir: Path, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Run the fine-tuning protocol; writes ``metrics.json`` and ``student.pt`` into ``run_dir``.

    Returns the metrics; ``objective`` is the held-out MAE after fine-tuning.
    """
    from .train import begin_run, release_run_dir

    t0 = time.perf_counter()
    plain, run_dir = begin_run(cfg, run_dir)
    try:
        return _finetune(cfg, plain, run_dir, overrides, t0)
    finally:  # also when it fails: a notebook's next run into the directory is not refused
        release_run_dir(run_dir)


def _refuse_keys_of_ckpt(plain: Mapping[str, Any]) -> None:
    """The student, its inputs and interactions come from ckpt: ``+student=mlp`` or
    ``+features=...`` composed and were ignored, the run no different from one without them."""
    for key in ("student", "features"):
        if key in plain:
            raise VmafDistillError(
                f"{key} comes from ckpt (the student being fine-tuned); a {key} given here "
                f"would be ignored: train a new student with `vmafdistill train {key}=...`")


def _folds(corpus_dir: Path, samples: Any, cv: Mapping[str, Any],
           names: Sequence[str]) -> tuple[list[tuple[Any, Any]], list[str]]:
    """The held-out folds, once the samples table's ids are checked (before the earlier run's
    results are cleared), and the scenes with windows on both sides, said in a note as train
    says it (finetune's interval has no inner groups to set: conformal takes alpha alone)."""
    from ..evaluation.splits import make_splits
    from .train import check_sample_ids, note_shared_scenes

    check_sample_ids(corpus_dir, samples)
    splits = make_splits(samples, cv)
    return splits, note_shared_scenes(samples, splits, cv, names, conformal_groups=False)


def _finetune(cfg: Mapping[str, Any], plain: dict[str, Any], run_dir: Path,
              overrides: Sequence[str], t0: float) -> dict[str, Any]:
    """:func:`finetune`'s body, once its run directory is made."""
    from .train import (
        check_fit_settings,
        checked_monotone,
        checked_trainer_bool,
        fit_student,
        learned_loss_params,
        predict,
        record_corpus_teacher,
    )

    bundle_path, original, meta, frozen = _checked_source(plain)
    thresholds, alpha = _interval_settings(plain, meta)
    target = plain["target"] = _bundle_target(meta, overrides, bundle_path)
    names = list(meta["feature_names"])
    plain["student"] = meta["student_cfg"]
    plain["loss"], loss_source = finetune_loss(plain, meta)
    check_fit_settings(plain, notes=False)  # before the corpus (it may be built first)

    corpus_dir, manifest, samples, x, y, n_dropped = _student_rows(cfg, plain, target, bundle_path,
                                                                   meta)
    record_corpus_teacher(plain, manifest)
    _note_corpus_gaps(meta, original, names, x, manifest, corpus_dir)
    splits, shared_scenes = _folds(corpus_dir, samples, plain["cv"], names)
    _replace_earlier_run(bundle_path, run_dir, plain, sum(len(te) for _, te in splits), alpha)
    held = heldout_predictions(plain, original, frozen, names, samples, x, y, splits, run_dir)
    yh = held[target].to_numpy(float)
    before = _eval(yh, held["pred_before"].to_numpy(float), thresholds)
    after = _eval(yh, held["pred"].to_numpy(float), thresholds)
    q = _heldout_q(yh, held["pred"].to_numpy(float), alpha)
    seen = _seen_sources(meta, corpus_dir, samples, held)
    conformal = _honest_q(q, alpha, meta, manifest, seen)

    final, final_loss = fit_student(plain, x, y, names, np.arange(len(y)), None, run_dir, "final",
                           init=copy.deepcopy(original), frozen=frozen,
                           checkpoint=checked_trainer_bool(plain["trainer"],
                                                                "checkpoint_final", False))
    changed = _changed_parameters(final, original)
    # an interaction's free weight may move: the monotone promise is checked again
    monotone = checked_monotone(final, x, names, meta["student_cfg"].get("monotone"))
    metrics: dict[str, Any] = {
        "run_dir": str(run_dir),
        "overrides": list(overrides),
        "ckpt": str(bundle_path),
        "student": meta["student_cfg"].get("name"),
        "loss": plain["loss"].get("name"),
        "loss_config": plain["loss"],
        "loss_source": loss_source,
        "features": meta.get("feature_set"),
        **_lineage(meta, manifest, corpus_dir),
        "cv": plain["cv"],
        "target": target,
        "n_samples": len(samples),
        "n_dropped": n_dropped,  # by nan_policy=drop (train records it too)
        "n_heldout": len(held),
        # held-out rows of sources the student was trained on (the same files: in-sample)
        "heldout_seen_sources": seen,
        # its held-out rows include content it was trained on: "after" and q are in-sample too
        "heldout_in_sample": conformal.pop("in_sample"),
        "n_folds": len(splits),
        # scenes with windows in training and held out alike (a shot-grouped split), as train
        "cv_shared_scenes": len(shared_scenes),
        "freeze": frozen,
        "trained_parameters": changed,
        "monotone_check": monotone,
        "learned_loss_params": learned_loss_params(final_loss),
        "before": {"heldout": before, "all": _eval(y, predict(original, x), thresholds)},
        "after": {"heldout": after},
        "conformal": conformal,
        "bundle": str(run_dir / "student.pt"),
    }
    # the student has now seen its source's domain and this corpus's: the export's card says so
    meta = {**meta, "training_domain": finetuned_domain(meta, samples)}
    save_finetuned(plain, meta, final, metrics, manifest, bundle_path, run_dir)
    metrics["objective"] = after["mae"]
    _finish(plain, metrics, manifest, run_dir, t0)
    return metrics


def _lineage(meta: Mapping[str, Any], manifest: Mapping[str, Any],
             corpus_dir: Path) -> dict[str, Any]:
    """``metrics.json``'s corpora: the source student's, those it was fitted on before its
    last (a fine-tuned one's ``earlier_corpora``) and this one."""
    from ..corpus.tables import corpora_trained_on

    return {"source_corpus": meta.get("corpus"), "earlier_corpora": corpora_trained_on(meta)[1:],
            "corpus": {"name": manifest.get("name"), "hash": manifest.get("corpus_hash"),
                       "dir": str(corpus_dir)}}


def _honest_q(q: float, alpha: float, meta: Mapping[str, Any], manifest: Mapping[str, Any],
              seen: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fine-tuned student's ``conformal`` (with ``in_sample``): the held-out residuals'
    ``q``, unless those rows are content the student was trained on (this corpus, or its
    source files by sha256: ``seen``). Each fold then starts from weights fitted to its
    held-out rows, so their residuals are small by construction: a student fine-tuned on its
    own training corpus shipped q 3.27 where rows it never saw needed 6.76 (coverage 0.76 for
    a nominal 0.90; a hunt). There the source's q stays where it is the wider (same alpha),
    and stderr says so whatever ``summary`` is."""
    from ..corpus.tables import corpora_trained_on

    hashes = {c.get("hash") for c in corpora_trained_on(meta)} - {None}
    own = manifest.get("corpus_hash") in hashes
    out: dict[str, Any] = {"alpha": alpha, "q": q, "source": "pooled held-out residuals after",
                           "in_sample": bool(own or seen)}
    if not out["in_sample"]:
        return out
    source = meta.get("conformal") or {}
    what = (f"this corpus ({manifest.get('name')}) is one the student was trained on" if own
            else f"{seen['rows']} held-out rows are of source files it was trained on "
                 f"({', '.join(seen['sources'])})")
    kept = ""
    if source.get("alpha") == alpha and isinstance(source.get("q"), int | float) \
            and math.isfinite(source["q"]) and source["q"] > q:
        out.update(q=float(source["q"]), q_heldout=q,
                   source="the source student's (its held-out rows here are in-sample)")
        kept = f"; the interval keeps the source's q {source['q']:.2f} (held-out {q:.2f})"
    print(f"warning: {what}: the held-out 'after' figures are in-sample too{kept}",
          file=sys.stderr, flush=True)
    return out


def _seen_sources(meta: Mapping[str, Any], corpus_dir: Path, samples: Any,
                  held: Any) -> dict[str, Any] | None:
    """The held-out rows whose source file (by sha256) is one the student was trained on, where
    its training corpus is still on disk: ``{"sources": [...], "rows": n}``; None where none
    is, or the training corpus is not found. A corpus relabelled by another teacher (same
    encodes, same shots) read as held-out figures with no note: only equal corpus hashes
    were."""
    import pandas as pd

    from ..corpus.tables import corpora_trained_on, sources_seen_in

    found: set[str] = set()
    for trained in corpora_trained_on(meta):  # a fine-tuned student's earlier corpora too
        if trained.get("dir"):
            found |= set(sources_seen_in(Path(str(trained["dir"])), trained.get("hash"),
                                         corpus_dir) or [])
    seen = sorted(found)
    if not seen:
        return None
    of_row = dict(zip(samples["sample_id"], samples["source_id"].astype(str), strict=True))
    rows = int(pd.Series([of_row.get(sid) for sid in held["sample_id"]]).isin(seen).sum())
    return {"sources": seen, "rows": rows} if rows else None


def _finish(plain: Mapping[str, Any], metrics: dict[str, Any], manifest: Mapping[str, Any],
            run_dir: Path, t0: float) -> None:
    """The run's wall time and ``metrics.json``; the run directory released; the summary."""
    from ..corpus.tables import atomic_write_json
    from ..folders import json_safe
    from .train import release_run_dir

    metrics["wall_time_s"] = time.perf_counter() - t0
    atomic_write_json(run_dir / "metrics.json", json_safe(metrics))
    release_run_dir(run_dir)  # before the summary: its run is done
    if plain.get("summary", True):
        _print_summary(metrics, manifest)


def _print_summary(metrics: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
    before, after = metrics["before"]["heldout"], metrics["after"]["heldout"]
    print(f"held-out ({metrics['n_heldout']} rows of {manifest.get('name')}): "
          f"MAE {before['mae']:.3f} -> {after['mae']:.3f}, "
          f"PLCC {before['plcc']:.3f} -> {after['plcc']:.3f}; "
          f"bundle {metrics['bundle']}", flush=True)
    hashes = {c.get("hash") for c in [metrics.get("source_corpus") or {},
                                      *(metrics.get("earlier_corpora") or [])]} - {None}
    seen = metrics.get("heldout_seen_sources")
    if (metrics.get("corpus") or {}).get("hash") in hashes:
        # its "before" rows were its own training rows: low by construction
        print(f"note: the student was trained on this corpus ({manifest.get('name')}), so its "
              "'before' figures are in-sample, not held-out", flush=True)
    elif seen:
        names = ", ".join(seen["sources"][:5]) + (" ..." if len(seen["sources"]) > 5 else "")
        print(f"note: {seen['rows']} of {metrics['n_heldout']} held-out rows come from sources "
              f"the student was trained on (the same files, by sha256: {names}), so their "
              "'before' figures are in-sample, not held-out", flush=True)


def _job(cfg: Any, run_dir: Path, overrides: list[str]) -> float:
    return float(finetune(cfg, run_dir, overrides)["objective"])


def main(argv: list[str]) -> int:
    """``vmafdistill finetune ckpt=PATH [overrides...]``: returns the exit status."""
    from .app import run_hydra

    return run_hydra("finetune", "finetune", _job, list(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
