"""Score a student on content it has never seen, through the real edge chain
(``vmafdistill evaluate``).

Builds an "unseen" source from photographs that ship with scikit-learn and matplotlib (china.jpg,
flower.jpg, grace_hopper.jpg: natural textures, none in any training corpus), panned like a camera
and joined by hard cuts (6 s, 480x270, 25 fps). Encodes it on a ladder (default `wide`), labels
every shot with libvmaf (its default integer model, the oracle), then runs `predict`'s
torch-free chain with the exported student on every encode and compares per shot: MAE, PLCC,
interval coverage, band agreement.

    vmafdistill evaluate [--model checkpoints/vmafdistill_default.onnx] [--ladder wide]
        [--workers 2] [--markdown docs/results-unseen.md] [--noise 8] [--plot unseen.png]

``--kinds`` scores the held-out content kinds of ``conf/sources/kinds.yaml`` instead (cartoon,
static camera, hand-held on these photographs, and screen content, a kind no corpus trains on),
with the signed error (predicted - teacher) per source and per codec x resolution: a student
that reads high on one kind of content turns a bad encode green.

Needs the ``train`` extra (corpus building, libvmaf labels, matplotlib and scikit-learn's
photographs).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VmafDistillError
from ..folders import atomic_write_text, is_stdout, make_folder, refuse_empty
from ..sources import PhotoPan, add_temporal_noise, pan_photos
from .conformal import coverage
from .metrics import regression_metrics

__all__ = ["evaluate_unseen", "group_table", "guard_table", "make_source", "photo_paths",
           "plot_rows"]

FPS = 25
W, H = 480, 270


def photo_paths() -> list[Path]:
    """The three photographs (located through their packages, never copied into the repo)."""
    import matplotlib
    import sklearn

    sk = Path(sklearn.__file__).parent / "datasets" / "images"
    mpl = Path(matplotlib.get_data_path()) / "sample_data"
    paths = [sk / "china.jpg", sk / "flower.jpg", mpl / "grace_hopper.jpg"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise VmafDistillError(f"missing photographs: {missing}")
    return paths


def make_source(cache: Path, noise: int = 0) -> Path:
    """2 s per photo: a slow pan (crop window moving across the photo), hard cuts between them;
    ``noise`` > 0 films it again with camera-like temporal noise of that strength."""
    shots = [PhotoPan(p, vx=12 + 8 * i, vy=6 + 4 * i) for i, p in enumerate(photo_paths())]
    clean = pan_photos(shots, cache / "unseen" / f"photos_pan_{W}x{H}.mp4", width=W, height=H,
                       fps=FPS, seconds_each=2, margin=60)
    if noise <= 0:
        return clean
    # its own folder: the corpus is a `folder` corpus over the source's directory
    noisy = cache / f"unseen_noise{noise}" / f"{clean.stem}_noise{noise}.mp4"
    return add_temporal_noise(clean, noisy, strength=noise)


def plot_rows(rows: list[dict], thresholds: Mapping[str, float], title: str, out: Path) -> None:
    """Predicted vs teacher VMAF per shot x variant, one colour per codec, the conformal interval
    as a vertical bar, the identity line and the band thresholds the report counts with
    (``{"green": 80, "amber": 60}``: a point above the green line left of it is a false
    green; the card's training guard thresholds were drawn, not the bands')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    for codec in sorted({r["variant"].split("_")[0] for r in rows}):
        part = [r for r in rows if r["variant"].split("_")[0] == codec]
        t = np.array([r["teacher"] for r in part])
        pr = np.array([r["pred"] for r in part])
        # a bounded student may predict a little below 0, under its interval's clipped end
        err = None if not _has_intervals(part) else np.clip(
            np.array([[r["pred"] - r["lo"] for r in part],
                      [r["hi"] - r["pred"] for r in part]]), 0.0, None)
        ax.errorbar(t, pr, yerr=err, fmt="o", ms=3, lw=0.5, alpha=0.7, label=codec)
    for (band, th), colour in zip(thresholds.items(), ("tab:green", "tab:orange", "0.6"),
                                  strict=False):
        ax.axhline(th, color=colour, lw=0.7, ls=":", label=f"{band} threshold {th:g}")
        ax.axvline(th, color=colour, lw=0.7, ls=":")
    ax.plot([0, 100], [0, 100], color="k", lw=1)
    ax.set_xlim(0, 102)
    ax.set_ylim(0, 102)
    ax.set_xlabel("teacher VMAF (libvmaf)")
    ax.set_ylabel("predicted VMAF (edge chain)"
                  + (", bar: interval" if _has_intervals(rows) else ""))
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    # signed, so a rerun knows the file for its own (any other image is not replaced)
    key = "Software" if out.suffix.lower() == ".png" else "Creator"
    fig.savefig(out, dpi=110, metadata={key: PLOT_SIGNATURE})
    plt.close(fig)


def _has_intervals(rows: list[dict]) -> bool:
    """Whether the rows carry intervals (a student exported without conformal has none)."""
    return all(r.get("lo") is not None for r in rows)


def _coverage(rows: list[dict]) -> float | None:
    """Interval coverage of the teacher's score, or None where the student has no intervals."""
    if not _has_intervals(rows):
        return None
    return coverage([r["teacher"] for r in rows], [r["lo"] for r in rows],
                    [r["hi"] for r in rows])


def guard_table(rows: list[dict], green: float) -> list[str]:
    """The release-guard view: of the shots a band calls green, how many the teacher scores
    below the green threshold (false greens: a bad encode passes), by prediction and by the
    interval's lower end (``bands.basis: lower``), and how many truly green shots each keeps."""
    truly = sum(r["teacher"] >= green for r in rows)
    out = ["| band basis | shots green | false greens (teacher < green) | true greens kept |",
           "|---|---:|---:|---:|"]
    bases = [("pred", "band"), ("lower (guard)", "guard_band")]
    for basis, key in bases[:2 if _has_intervals(rows) else 1]:  # no interval: no guard band
        called = [r for r in rows if r[key] == "green"]
        false = sum(r["teacher"] < green for r in called)
        kept = sum(r["teacher"] >= green for r in called)
        out.append(f"| {basis} | {len(called)} | {false} ({false / max(len(called), 1):.0%}) "
                   f"| {kept} of {truly} |")
    return out


def group_table(rows: list[dict], title: str, key: Callable[[dict], str]) -> list[str]:
    """Markdown rows per group: count, mean teacher and predicted VMAF, MAE, the signed error
    (predicted - teacher; > 0 reads high: the dangerous direction for a guard) and coverage."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(key(r), []).append(r)
    out = ["", f"| {title} | n | teacher VMAF (mean) | predicted (mean) | MAE | signed error "
                "| interval coverage |", "|---|---:|---:|---:|---:|---:|---:|"]
    from ..students.report import natural_key

    for g, rs in sorted(by.items(), key=lambda kv: natural_key(kv[0])):  # 68p before 136p
        t = np.array([r["teacher"] for r in rs])
        q = np.array([r["pred"] for r in rs])
        cov = _coverage(rs)
        out.append(f"| {g} | {len(rs)} | {t.mean():.2f} | {q.mean():.2f} | "
                   f"{np.abs(q - t).mean():.2f} | {(q - t).mean():+.2f} | "
                   f"{'-' if cov is None else f'{cov:.0%}'} |")
    return out


def evaluate_unseen(
    model: str | Path | None = None,
    *,
    ladder: str = "wide",
    workers: int = 2,
    noise: int = 0,
    kinds: bool = False,
    cache: str | Path = ".cache",
    markdown: str | Path | None = None,
    json_path: str | Path | None = None,
    plot: str | Path | None = None,
) -> dict[str, Any]:
    """Film the unseen source (or the held-out content kinds with ``kinds``), build its corpus
    on ``ladder`` with libvmaf labels under ``cache``, run the edge chain with ``model``
    (default: the shipped student) on every encode and compare per shot.

    Prints the markdown report and writes it (``markdown``), the per-shot rows (``json_path``)
    and a predicted-vs-teacher plot (``plot``) when asked. Returns ``{"text", "rows", "mae",
    "plcc", "coverage", "band_agreement"}``.
    """
    from ..corpus.build import build_corpus

    if noise < 0:  # filmed clean and reported as noisy
        raise VmafDistillError(f"--noise {noise}: needs 0 (clean) or a positive strength")
    if kinds and noise:  # the kinds are filmed without it: it was ignored without a word
        raise VmafDistillError("--noise films the unseen photo clip; the --kinds sources are "
                               "filmed as conf/sources/kinds.yaml says (drop one of the two)")
    model, pred, rules, target = _student(model)
    refuse_empty("--cache", cache)  # (the working folder became the cache)
    # "~/x": filmed under a literal ./~ while the corpus read the home folder's
    cache = Path(cache).expanduser()
    outputs = _checked_outputs({"--markdown": markdown, "--json": json_path, "--plot": plot},
                               model, Path(cache))
    make_folder("--cache", Path(cache))
    cfg, root, name = _unseen_corpus_config(Path(cache), ladder, workers, noise, kinds,
                                            pred.card.get("teacher"),
                                            (pred.card.get("edge") or {}).get("shots"))
    filmed = _film_unseen(Path(cache), root, noise, kinds)
    src = filmed[0]
    cfg = _of_sources(cfg, filmed)
    report = build_corpus(cfg)
    if report.failures:
        raise VmafDistillError(f"corpus failures: {report.failures}")
    trained_here = _trained_on_it(pred.card, report.manifest, name, Path(cfg["out_dir"]),
                                  Path(cache))
    rows = _shot_rows(cfg, report.samples, pred, rules, target)
    if not rows:  # every shot flagged without a prediction: a traceback on the empty arrays
        raise VmafDistillError(f"{model}: no shot of the {len(report.samples)} corpus samples "
                               "got a prediction (see the notes above); nothing to evaluate")
    y = np.array([r["teacher"] for r in rows])
    p = np.array([r["pred"] for r in rows])
    stats = {"mae": float(np.mean(np.abs(p - y))),
             # NaN, not numpy's divide warnings, for a constant prediction
             "plcc": regression_metrics(y, p)["plcc"],
             "coverage": _coverage(rows),  # None: a student without intervals
             "band_agreement": float(np.mean([r["band"] == r["teacher_band"] for r in rows]))}
    what = ("held-out content kinds (conf/sources/kinds.yaml: "
            + ", ".join(sorted({r["source"] for r in rows}))
            + f"; {_shots_per_encode(rows)} shots per encode, {W}x{H} {FPS} fps)"
            if kinds else
            f"{src.name}: 3 photographs panned, 2 hard cuts, {W}x{H} {FPS} fps"
            f"{f', camera noise strength {noise}' if noise else ''}")
    header = (f"Unseen content ({what}), ladder `{ladder}`, labels: "
              f"{report.samples['teacher_version'].iloc[0]}"
              f"{'' if target == 'vmaf' else f' (target `{target}`, as the card says)'}, "
              f"student `{model.name}` (trained on "
              f"corpus {(pred.card.get('corpus') or {}).get('name')}).")
    if trained_here:
        header += f"\n\nNote: {trained_here}"
    text = "\n".join(_report_lines(header, rows, stats, pred.card,
                                    float(rules["bands"]["green"])))
    # the files first: a reader of stdout that left early (| head) ended the process at the
    # print, and they were never written
    if "--markdown" in outputs:
        atomic_write_text(outputs["--markdown"], text + "\n")
    if "--json" in outputs:
        atomic_write_text(outputs["--json"], json.dumps(rows, indent=1) + "\n")
    if "--plot" in outputs:
        plot_rows(rows, {band: float(rules["bands"][band]) for band in ("green", "amber")},
                  f"{name if kinds else src.name}, ladder {ladder}: MAE {stats['mae']:.2f}, "
                  f"PLCC {stats['plcc']:.3f}"
                  + ("" if stats["coverage"] is None else f", coverage {stats['coverage']:.1%}"),
                  outputs["--plot"])
    print(text)
    return {"text": text, "rows": rows, **stats}


def _student(model: str | Path | None) -> tuple[Path, Any, dict[str, Any], str]:
    """``(model path, predictor, token rules, target)`` of the student to evaluate (default:
    the shipped one), each checked before any corpus work: a bad model path, a hand-edited
    card's bands (a traceback after the corpus work) or a target no corpus has."""
    from ..corpus.schema import SAMPLE_COLUMNS
    from ..edge.card import card_path_for
    from ..edge.predictor import Predictor, default_model_path
    from ..edge.tokens import DEFAULT_RULES, merge_rules

    path = Path(model).expanduser() if model is not None else default_model_path()
    pred = Predictor(path)
    try:
        rules = merge_rules(DEFAULT_RULES, pred.card.get("tokens"))
    except (ValueError, TypeError, AttributeError) as exc:
        raise VmafDistillError(f"{card_path_for(path)}: tokens: {exc}") from None
    return path, pred, rules, card_target(pred.card, SAMPLE_COLUMNS, card_path_for(path))


def same_shot(truth: Any, row: Mapping[str, Any]) -> bool:
    """Whether the corpus has a shot (``truth``: its samples indexed by ``start_frame``) with
    the edge row's start and end frames: a shot cut elsewhere is no pair (by start alone, a
    shot of other frames was compared with the corpus's label; by position, another shot)."""
    start = int(row["start_frame"])
    return start in truth.index and int(truth.loc[start, "stop_frame"]) == int(row["stop_frame"])


def card_target(card: dict[str, Any], columns: Sequence[str], card_file: Path) -> str:
    """The label the student learnt (the card's ``target``), one of the corpus's ``columns``:
    a ``vmaf_min`` student was compared with the shots' mean VMAF (MAE 9.80 where its own
    target gives 5.99)."""
    target = str(card.get("target") or "vmaf")
    if target not in columns:
        have = ", ".join(c for c in columns if c.startswith("vmaf"))
        raise VmafDistillError(f"{card_file}: target {target!r} is not a column of the unseen "
                               f"corpus (it has {have})")
    return target


def _trained_on_it(card: dict[str, Any], manifest: dict[str, Any], name: str,
                   corpus_dir: Path, cache: Path) -> str | None:
    """A sentence where the student was trained (or fine-tuned) on this very corpus (by hash),
    or on its sources (by file sha256, where its training corpus is found: under ``cache`` or
    ``.cache`` as the card names it): its intervals were calibrated on the shots it is scored
    on (coverage 22% -> 85% after a fine-tune on them), reported as unseen content without a
    word; another ``--ladder`` or teacher makes another corpus hash of the same footage.
    Printed as well."""
    from ..corpus.tables import corpora_trained_on

    # a fine-tuned student's earlier corpora too (its card's earlier_corpora): trained on this
    # very corpus and fine-tuned elsewhere, it was scored as unseen without a word
    corpora = corpora_trained_on(card)
    same = next((c for c in corpora
                 if c.get("hash") and c.get("hash") == manifest.get("corpus_hash")), None)
    # the first corpus holding these sources' files, read only where no hash matched
    shared = None if same else next(
        ((c, seen) for c in corpora if (seen := _seen_sources(c, corpus_dir, cache))), None)
    if same:
        note = (f"this student was trained on corpus {same.get('name')}, the corpus "
                f"`{name}` it is evaluated on (same hash): the content is not unseen, and the "
                "figures below are in-sample")
    elif shared:
        trained, seen = shared
        note = (f"this student was trained on corpus {trained.get('name')}, which holds the "
                f"same source files as `{name}` ({', '.join(seen)}; by sha256): the content is "
                "not unseen, and the figures below are in-sample for those sources")
    else:
        return None
    warnings.warn(note, stacklevel=3)
    return note


def _seen_sources(trained: Mapping[str, Any], corpus_dir: Path, cache: Path) -> list[str]:
    """The source ids of ``corpus_dir`` whose files (by sha256) the card's training corpus
    (``trained``: name and hash) holds, where that corpus is found with its hash; [] else."""
    from ..corpus.tables import sources_seen_in

    name = str(trained.get("name") or "")
    if not name or not trained.get("hash") or Path(name).name != name:
        return []
    for where in (cache / "corpus" / name, Path(".cache") / "corpus" / name):
        if where.resolve() == corpus_dir.resolve():
            continue
        seen = sources_seen_in(where, trained["hash"], corpus_dir)
        if seen is not None:  # else not there, another corpus, or an older table
            return seen
    return []


def _checked_outputs(asked: dict[str, str | Path | None], model: Path,
                     cache: Path) -> dict[str, Path]:
    """The output files asked for (``{option: path}``; None: not asked), each checked
    writable before any work. An empty path (an unset shell variable) was dropped and the
    results lost; ``-`` wrote a file named ``-`` past every check (the report is stdout)."""
    outputs: dict[str, Path] = {}
    for option, out in asked.items():
        if out is None:
            continue
        refuse_empty(option, out, hint="give a file to write")
        if is_stdout(str(out)):  # /dev/stdout too: it went into the report's stream
            raise VmafDistillError(f"{option} {out}: evaluate prints its report on stdout; "
                                   "give a file to write")
        outputs[option] = Path(out).expanduser()  # "~/r.md" made ./~
    if len({p.resolve() for p in outputs.values()}) < len(outputs):
        raise VmafDistillError(f"{', '.join(outputs)}: give each its own file (one path: the "
                               "last written replaced the others)")
    for option, out in outputs.items():  # so do output paths (as --plot already did)
        _ready_output(option, out, model, cache)
    return outputs


#: How each output of evaluate starts: an existing file that does not is not replaced. The
#: plot is in the format its extension names (matplotlib): PNG, SVG or PDF.
_OUTPUT_STARTS = {"--markdown": b"Unseen content", "--json": b"["}
_PLOT_STARTS = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}


def _shots_per_encode(rows: list[dict]) -> str:
    """How many shots each encode's rows hold, ``"6"`` or ``"5-6"`` (the header said "3 shots
    each", the scenes, where the tables count 1 s windows)."""
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        counts[r["source"], r["variant"]] = counts.get((r["source"], r["variant"]), 0) + 1
    lo, hi = min(counts.values(), default=0), max(counts.values(), default=0)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _ready_output(option: str, out: Path, model: Path, cache: Path) -> None:
    """``out``'s folder made, or an error naming ``option``: a folder path through a file, a
    folder given as the file, the model or its card, a path in the ``--cache`` folder (the
    filmed sources live there: ``--json CACHE/unseen/clip.mp4`` replaced the clip, and every
    later evaluate failed on it), an existing file that is no earlier output of this option."""
    from ..edge.card import card_path_for
    from ..folders import check_output_target

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VmafDistillError(f"{option} {out}: cannot make its folder ({exc.strerror})"
                               ) from None
    if out.is_dir():
        raise VmafDistillError(f"{option} {out}: is a directory, not an output file")
    if _in_evaluate_folders(out, cache):
        raise VmafDistillError(f"{option} {out}: is among the sources, encodes and tables "
                               f"evaluate keeps under --cache {cache}; write it elsewhere")
    if option == "--plot" and out.suffix.lower() not in _PLOT_STARTS:
        # another suffix: an existing .jpg was replaced unchecked, .mp4 failed after the work
        raise VmafDistillError(f"--plot {out}: name a .png, .svg or .pdf file")
    starts = _OUTPUT_STARTS.get(option) or _PLOT_STARTS[out.suffix.lower()]
    check_output_target(option, str(out), [model, card_path_for(model)], starts=starts)
    if out.is_file() and option != "--markdown" and not _written_here(option, out):
        # starting like ours is not enough: any JSON array, any PNG was replaced
        raise VmafDistillError(f"{option} {out}: exists and is not an earlier output of "
                               f"evaluate {option}; it is not replaced (name another file)")


#: Written into every evaluate plot's metadata (PNG ``Software``, SVG/PDF ``Creator``).
PLOT_SIGNATURE = "vmafdistill evaluate"


def _written_here(option: str, out: Path) -> bool:
    """Whether the existing ``out`` is an earlier evaluate's ``--json`` rows (a list of shot
    records) or ``--plot`` (signed with :data:`PLOT_SIGNATURE`)."""
    try:
        if option == "--json":
            rows = json.loads(out.read_text())
            return isinstance(rows, list) and bool(rows) and all(
                isinstance(r, dict) and {"source", "variant", "teacher", "pred"} <= set(r)
                for r in rows)
        if out.stat().st_size > 64 << 20:  # no plot of ours is that large
            return False
        return PLOT_SIGNATURE.encode() in out.read_bytes()
    except (OSError, ValueError):
        return False


def _in_evaluate_folders(out: Path, cache: Path) -> bool:
    """Whether ``out`` lies in a folder evaluate fills under ``cache``: its filmed sources
    (``unseen*``), the corpus tables and the corpus cache (conf/corpus.yaml's ``out_dir`` and
    ``cache_root`` under ``paths.cache_dir``). The rest of the cache is the user's."""
    rel = out.resolve()
    root = cache.resolve()
    if not rel.is_relative_to(root) or rel == root:
        return False
    top = rel.relative_to(root).parts[0]
    return top.startswith("unseen") or top in ("corpus", "corpus_cache")


def _unseen_corpus_config(
    cache: Path, ladder: str, workers: int, noise: int, kinds: bool,
    teacher: Mapping[str, Any] | None = None, shots: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], Path, str]:
    """The corpus config labelling the unseen sources under ``cache`` with libvmaf:
    ``(config, the sources' folder, corpus name)``. ``teacher``: the card's (model and mode
    the student learnt; libvmaf's default integer model without one). ``shots``: the card's
    ``edge.shots`` (the edge cuts with them, and shots pair by start and end frame: a card
    exported with other cuts paired none). Checked before any source is filmed (an unknown
    ``--ladder`` was Hydra's message, naming internal overrides, after the filming)."""
    from ..config import checked_number, compose_dict, conf_dir, hydra_quoted, load_yaml

    checked_number("--workers", workers, int, 1)
    ladders = sorted(p.stem for p in (conf_dir() / "ladder").glob("*.yaml"))
    if ladder not in ladders:
        raise VmafDistillError(f"--ladder {ladder}: no such ladder (conf/ladder: "
                               f"{', '.join(ladders)})")
    if kinds:
        root, name = cache / "unseen_kinds", "unseen_kinds"
    else:
        root, name = cache / ("unseen" if not noise else f"unseen_noise{noise}"), "unseen"
    # one corpus directory per ladder, so `--ladder wide_all` does not replace the tables of
    # the default ladder
    name += ("" if ladder == "wide" else "_" + ladder) + (f"_noise{noise}" if noise else "")
    if teacher is not None and not isinstance(teacher, Mapping):  # a hand-edited card
        raise VmafDistillError(f"the card's teacher is {teacher!r}, not a model and mode "
                               "({'model': ..., 'mode': 'exact' or 'float'})")
    model = str((teacher or {}).get("model") or "vmaf_v0.6.1")
    mode = str((teacher or {}).get("mode") or "exact")
    if mode not in ("exact", "float"):
        raise VmafDistillError(f"the card's teacher mode is {mode!r}: needs exact or float")
    if (model, mode) != ("vmaf_v0.6.1", "exact"):  # its own tables beside the default's
        stem = re.sub(r"\.json$", "", Path(model).name)  # vmaf_v1.0.16_3d0h's dots stay
        name += f"_{re.sub(r'[^A-Za-z0-9_.-]', '_', stem)}_{mode}"
    cut = _card_shots(shots, load_yaml("shots/default"))
    if cut:  # cut otherwise than conf/shots/default.yaml: its own tables beside the default's
        # repr: two cards that differ past 6 digits got one folder (and rebuilt it in turn)
        name += "_shots_" + "_".join(f"{k}{'none' if v is None else repr(float(v))}"
                                     for k, v in sorted(cut.items()))
    cfg = compose_dict("corpus", [
        f"paths.cache_dir={hydra_quoted(str(cache))}", "corpus=folder", f"corpus.name={name}",
        f"corpus.root={hydra_quoted(str(root))}", f"ladder={ladder}", "teacher=libvmaf",
        f"teacher.model={hydra_quoted(model)}", f"teacher.mode={mode}",
        f"workers={workers}", "progress=false", *(_shots_override(k, v) for k, v in cut.items()),
    ])
    from ..corpus.jobs import teacher_identity

    try:  # a model libvmaf's backend cannot label with: before any source is filmed
        teacher_identity(dict(cfg["teacher"]))
    except VmafDistillError as exc:
        raise VmafDistillError(f"the student learnt labels of teacher.model={model} "
                               f"teacher.mode={mode}; evaluate labels with libvmaf, which "
                               f"cannot: {exc}") from None
    return cfg, root, name


def _card_shots(shots: Mapping[str, Any] | None, default: Mapping[str, Any]
                ) -> dict[str, float | None]:
    """The card's shot settings that differ from ``default`` (conf/shots), checked as the
    corpus and the card check them (``max_len_s`` may be null: no window split); empty for a
    card without them (cut as the corpus default)."""
    from ..shots import checked_shot_settings

    if shots is None:
        return {}
    if not isinstance(shots, Mapping):  # a hand-edited card
        raise VmafDistillError(f"the card's edge.shots is {shots!r}, not the shot settings "
                               f"({', '.join(default)})")
    checked = checked_shot_settings("the card's edge.shots", shots)
    return {k: v for k, v in checked.items()
            if k in default and (v is None or default[k] is None or v != float(default[k]))}


def _shots_override(key: str, value: float | None) -> str:
    """``shots.<key>=<value>`` as Hydra reads it back (null for None, a float's repr)."""
    return f"shots.{key}={'null' if value is None else repr(float(value))}"


def _of_sources(cfg: dict[str, Any], filmed: list[Path]) -> dict[str, Any]:
    """The corpus config over the clips just filmed, not their folder: any other file there (a
    copied clip, an earlier recipe's) was scored as held-out content."""
    return {**cfg, "corpus": {**cfg["corpus"], "root": None,
                              # sorted, as the folder's scan was: the same build, row order
                              "sources": [str(p) for p in sorted(filmed)]}}


def _film_unseen(cache: Path, root: Path, noise: int, kinds: bool) -> list[Path]:
    """Film the unseen sources into ``root`` (kept where filmed from the same recipe before);
    their paths."""
    if kinds:
        from ..recipes import make_kind_sources

        filmed = make_kind_sources(root, "heldout")
    else:
        filmed = [make_source(cache, noise)]
    for src in filmed:
        if src.parent != root:  # the corpus reads its sources from ``root``
            raise AssertionError(f"{src} was filmed outside {root}")
    return filmed


def _shot_rows(
    cfg: dict[str, Any], samples: Any, pred: Any, rules: dict[str, Any], target: str = "vmaf"
) -> list[dict[str, Any]]:
    """One row per shot of every encode: the teacher's label (``target``, the column the
    student learnt) beside the edge chain's prediction, interval and bands (by prediction, and
    the guard band by the lower end)."""
    from ..corpus.build import cached_encodes
    from ..edge.pipeline import analyze_video
    from ..edge.tokens import band_of, merge_rules

    # the teacher's band reads the score itself; the guard band reads the interval's lower end
    pred_rules = merge_rules(rules, {"bands": {"basis": "pred"}})
    guard_rules = merge_rules(rules, {"bands": {"basis": "lower"}})
    rows = []
    for enc in cached_encodes(cfg):
        source = enc.source
        rep = analyze_video(enc.path, pred, rules=rules,
                            ref_size=(source["width"], source["height"]))
        truth = samples[(samples["rung_index"] == enc.rung_index)
                        & (samples["source_id"] == source["source_id"])].set_index("start_frame")
        paired = unpredicted = 0
        for rec, row in zip(rep.records, rep.rows, strict=True):
            # the edge's own frame index: its start time is a timestamp on variable-rate
            # video, which start * fps missed (the shot was dropped from the table)
            start = int(row["start_frame"])
            if not same_shot(truth, row):
                continue
            paired += 1
            if rec.get("pred_vmaf") is None:
                unpredicted += 1
                continue
            t = truth.loc[start]
            lo, hi = rec["interval"] or (None, None)  # None: a student without intervals
            rows.append({"source": source["source_id"], "variant": t["variant_id"],
                         "shot": int(rec["shot"]),
                         "teacher": float(t[target]), "pred": float(rec["pred_vmaf"]),
                         # by the prediction, whatever the card's basis (a guard-mode card
                         # put lower-end bands in the table's "pred" row)
                         "lo": lo, "hi": hi, "band": band_of(float(rec["pred_vmaf"]), pred_rules),
                         "teacher_band": band_of(float(t[target]), pred_rules),
                         "guard_band": None if lo is None else band_of(
                             float(rec["pred_vmaf"]), guard_rules, lo)})
        if paired != len(rep.records) or paired != len(truth) or unpredicted:
            # nothing left out silently: shots cut elsewhere, or flagged without a prediction
            print(f"note: {source['source_id']} {enc.rung.label(W, H)}: edge found "
                  f"{len(rep.records)} shots, corpus {len(truth)}, paired by start and end frame "
                  f"{paired}, of which {unpredicted} without a prediction (flagged)")
    return rows


def _report_lines(
    header: str, rows: list[dict[str, Any]], stats: dict[str, float], card: dict[str, Any],
    green: float,
) -> list[str]:
    """The markdown report: overall row, guard table, per source / codec x height / variant."""
    y = np.array([r["teacher"] for r in rows])
    p = np.array([r["pred"] for r in rows])
    nominal = 1 - float(card["conformal"].get("alpha") or 0.1)  # checked by read_card
    coverage = ("none (this student has no intervals)" if stats["coverage"] is None
                else f"{stats['coverage']:.1%} ({nominal:.0%})")
    lines = [
        header, "",
        "| shots x variants | MAE | signed error | max abs err | PLCC "
        "| interval coverage (nominal) | band agreement |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(rows)} | {stats['mae']:.2f} | {np.mean(p - y):+.2f} | "
        f"{np.max(np.abs(p - y)):.2f} | {stats['plcc']:.3f} | {coverage} "
        f"| {stats['band_agreement']:.1%} |",
        "",
        *guard_table(rows, green),
        "",
    ]
    lines += group_table(rows, "source", lambda r: r["source"])
    # variant ids read <codec>_<width>x<height>_crf<crf>
    lines += group_table(rows, "codec x height", lambda r: "{} {}p".format(
        r["variant"].split("_")[0], r["variant"].split("_")[1].split("x")[1]))
    lines += group_table(rows, "variant", lambda r: r["variant"])
    return lines
