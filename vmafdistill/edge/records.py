"""Per-shot records and the video summary of the edge chain (torch-free).

:func:`make_records` turns shot feature rows and the student's predictions into
:class:`~vmafdistill.edge.tokens.ShotRecord` s (band, issue, interval, training-domain flags);
:func:`invalidate`, :func:`flag_short_shots` and :func:`flag_hidden_frames` mark the shots whose
numbers must be read with care (or not at all), and :func:`summarize` pools the records into the
per-video summary. :class:`VideoReport` is what :func:`~vmafdistill.edge.pipeline.analyze_video`
returns: the records as JSON objects (:meth:`ShotRecord.to_dict`), the summary, the rows and
the stage timings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..features.registry import canonical_codec
from .tokens import INVALID_ISSUE, UNKNOWN_BAND, ShotRecord, band_of, issue_of

__all__ = [
    "VideoReport",
    "check_band_basis",
    "domain_flags",
    "flag_hidden_frames",
    "flag_short_shots",
    "flag_truncated",
    "interval_half_width",
    "invalidate",
    "make_records",
    "shot_records",
    "summarize",
]

#: Relative slack of the training-domain bounds (:func:`domain_flags`): the edge's float
#: pixel sums match the corpus's to ~1e-12 relative, not bit for bit.
DOMAIN_RTOL = 1e-9

#: The flag on the last shot of a file cut short (:func:`flag_truncated`).
TRUNCATED_FLAG = "truncated"


@dataclass
class VideoReport:
    """What :func:`analyze_video` found: one record per shot (its JSON object,
    :meth:`ShotRecord.to_dict`), a summary and stage timings."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    timings: dict[str, float]


def domain_flags(row: Mapping[str, Any], domain: Mapping[str, Any] | None, codec: str) -> list[str]:
    """Where a shot lies outside the student's training domain (card ``training_domain``).

    ``unseen_codec:<codec>`` when the card lists the codecs it was trained on and this is not
    one of them; ``outside_training:<feature>`` for each input feature beyond the [min, max] the
    student saw (its codec one-hot column is covered by the codec flag). The prediction is kept
    (it is the student's extrapolation) but the record says so. Cards without the section (older
    exports) give no flags.
    """
    if not isinstance(domain, Mapping):
        return []
    flags: list[str] = []
    codecs = domain.get("codecs")
    name = canonical_codec(codec)
    if codecs and name not in {canonical_codec(c) for c in codecs}:
        flags.append(f"unseen_codec:{name}")
    for feature, rng in (domain.get("features") or {}).items():
        if feature not in row or feature.startswith("codec_"):
            continue
        lo, hi = float(rng[0]), float(rng[1])
        x = float(row[feature])
        # the corpus sums pixels in torch, the edge in C or numpy, in another order: a
        # training row's own sobel_mean read 1 ulp above the max and was flagged
        slack = DOMAIN_RTOL * max(abs(lo), abs(hi), 1.0)
        if math.isfinite(x) and not lo - slack <= x <= hi + slack:
            flags.append(f"outside_training:{feature}")
    return flags


def make_records(
    rows: Sequence[Mapping[str, Any]],
    preds: np.ndarray | None,
    card: Mapping[str, Any],
    rules: Mapping[str, Any],
    *,
    feature_names: Sequence[str],
    codec: str,
    height: int,
) -> list[ShotRecord]:
    """The per-shot quality records (see the module docstring of :mod:`.tokens`).

    ``height`` names the resolution in ``res`` (``"360p"``): the video's short side, so a
    360x640 portrait video is 360p, as players label it. A shot with a non-finite feature or
    prediction gets none (``nan:<feature>`` flags, else ``nan:prediction``).
    """
    q = interval_half_width(card)
    stats = card.get("token_stats", {})
    # a non-finite input the student never reads leaves its prediction alone (older cards:
    # every input counts)
    read_names = [n for n in card.get("used_features") or feature_names if n in feature_names]
    out = []
    for i, row in enumerate(rows):
        bad = [n for n in read_names if not math.isfinite(float(row[n]))]
        scene_qp = float(row.get("scene_qp", math.nan))
        common: dict[str, Any] = {
            "shot": int(row["shot_index"]),
            "start": round(float(row["start_s"]), 3),
            "end": round(float(row["end_s"]), 3),
            "codec": canonical_codec(codec).upper(),
            "res": f"{height}p",
            "bitrate_kbps": round(float(row["bitrate_kbps"]), 1),
            # read only for students that use the quantizer
            "qp": round(scene_qp, 1) if math.isfinite(scene_qp) else None,
        }
        if bad or preds is None or not math.isfinite(float(preds[i])):
            out.append(ShotRecord(
                **common, pred_vmaf=None, interval=None, band=UNKNOWN_BAND, issue=INVALID_ISSUE,
                # the domain flags too: a codec the student never saw is the likely cause
                flags=(*(tuple(f"nan:{n}" for n in bad) or ("nan:prediction",)),
                       *domain_flags(row, card.get("training_domain"), codec))))
            continue
        # VMAF lives on 0..100 (libvmaf clips its score there); the students' output range
        # is a little wider (-2..102), so a far-out shot could read below its own interval.
        # Band and issue read the rounded numbers the record shows (79.996 printed as 80.0
        # read amber beside a green threshold of 80).
        raw = min(max(float(preds[i]), 0.0), 100.0)
        p = round(raw, 2)
        interval = None if q is None else (round(max(raw - q, 0.0), 2),
                                           round(min(raw + q, 100.0), 2))
        out.append(ShotRecord(
            **common,
            pred_vmaf=p,
            interval=interval,
            band=band_of(p, rules, None if interval is None else interval[0]),
            issue=issue_of(p, row, stats, rules),
            flags=(*domain_flags(row, card.get("training_domain"), codec),
                   *_unmeasured_issue_flag(p, row, stats, rules)),
        ))
    return out


def interval_half_width(card: Mapping[str, Any]) -> float | None:
    """The card's conformal ``q`` (the interval is pred ± q), or None for a student exported
    without intervals (its records say ``interval: null``, not a zero-width interval)."""
    q = (card.get("conformal") or {}).get("q")
    return None if q is None else float(q)


def check_band_basis(card: Mapping[str, Any], rules: Mapping[str, Any]) -> None:
    """ValueError when the bands read the interval's lower end (``--band-basis lower``) of a
    student that has no intervals: its guard mode would read the bare prediction, unsaid."""
    if rules["bands"].get("basis") == "lower" and interval_half_width(card) is None:
        raise ValueError("bands.basis 'lower' (the guard mode) reads the interval's lower end, "
                         "and this student has no intervals (its card's conformal q is null): "
                         "use --band-basis pred, or export a student trained with conformal "
                         "intervals")


def _unmeasured_issue_flag(pred: float, row: Mapping[str, Any],
                           stats: Mapping[str, Any], rules: Mapping[str, Any]) -> tuple[str, ...]:
    """``issue_unmeasured`` where a shot the issue rules would check (below ``max_vmaf``) has
    no measured frame for the blockiness or detail features: its ``none`` was not a check (a
    5-frame shot between every 8th frame; low frame rates)."""
    r = rules["issues"]
    if pred >= float(r["max_vmaf"]):
        return ()
    names = [n for n in ("blockiness", *r["detail_features"]) if n in stats]
    unmeasured = any(not math.isfinite(float(row.get(n, math.nan))) for n in names)
    return ("issue_unmeasured",) if unmeasured else ()


def shot_records(
    rows: Sequence[Mapping[str, Any]],
    preds: np.ndarray | None,
    card: Mapping[str, Any],
    rules: Mapping[str, Any],
    *,
    feature_names: Sequence[str],
    codec: str,
    height: int,
) -> list[dict[str, Any]]:
    """:func:`make_records` as JSON objects (:meth:`ShotRecord.to_dict`)."""
    return [r.to_dict() for r in make_records(rows, preds, card, rules,
                                              feature_names=feature_names, codec=codec,
                                              height=height)]


def invalidate(records: Sequence[ShotRecord], which: Sequence[bool],
               flags: Sequence[str]) -> list[ShotRecord]:
    """The records, those marked in ``which`` without a prediction and saying why (``flags``)."""
    return [rec.invalid(flags) if bad else rec
            for rec, bad in zip(records, which, strict=True)]


def flag_short_shots(records: Sequence[ShotRecord], rows: Sequence[Mapping[str, Any]],
                     min_frames: int) -> list[ShotRecord]:
    """``short_shot:<n>f`` on each shot of fewer than ``min_frames`` frames.

    Shorter than any shot the corpus cuts (only a whole video, or a rendition run, shorter than
    the detector's ``min_len_s`` makes one): the student never saw a shot this short.
    """
    return [rec.flagged(f"short_shot:{int(row['num_frames'])}f")
            if int(row["num_frames"]) < min_frames else rec
            for rec, row in zip(records, rows, strict=True)]


def flag_hidden_frames(records: Sequence[ShotRecord], rows: Sequence[Mapping[str, Any]],
                       hidden_before_frame: np.ndarray) -> tuple[list[ShotRecord], int]:
    """``hidden_frames:K`` on each shot that K never-output packets precede; the records and
    the total K.

    Their bits count in no shot, so the shot after them (usually the first, after a
    stream-copy cut) may read a lower rate than its pictures cost.
    """
    out = list(records)
    if hidden_before_frame.size == 0 or not out:
        return out, 0
    starts = np.array([int(r["start_frame"]) for r in rows])
    shot_of = np.clip(np.searchsorted(starts, hidden_before_frame, side="right") - 1,
                      0, len(out) - 1)
    for i, k in zip(*np.unique(shot_of, return_counts=True), strict=True):
        out[int(i)] = out[int(i)].flagged(f"hidden_frames:{int(k)}")
    return out, int(hidden_before_frame.size)


def flag_truncated(records: Sequence[ShotRecord], truncated: str | None) -> list[ShotRecord]:
    """``truncated`` on the last shot of a file cut short (``truncated``: why, from
    :func:`~vmafdistill.io.truncation.file_truncation`; None leaves the records): its frames end
    where the bytes do, not where the delivery did."""
    out = list(records)
    if truncated and out:
        out[-1] = out[-1].flagged(TRUNCATED_FLAG)
    return out


def _resolutions(records: Sequence[ShotRecord]) -> str | None:
    """The shots' ``res`` as the summary says it: ``360p``, or for a recording that switches
    renditions each run of shots in order, ``360p->180p->360p`` (the first shot's alone
    read 360p for a recording mostly at 180p)."""
    runs = [res for i, res in enumerate(r.res for r in records)
            if i == 0 or res != records[i - 1].res]
    return "->".join(runs) if runs else None


def summarize(path: str, records: Sequence[ShotRecord], n_frames: int, fps: float,
              hidden_frames: int = 0, decoder_errors: Sequence[str] = (),
              truncated: str | None = None, picture_changes: Sequence[Mapping[str, Any]] = (),
              ref: tuple[tuple[int, int], str] | None = None,
              pixel: dict[str, Any] | None = None, video_streams: int = 1,
              band_rules: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The per-video summary: shot and frame counts, duration, duration-weighted mean and worst
    prediction, band and issue counts, the band rules the bands were given by (``band_rules``:
    thresholds and basis, so a record's band can be explained from the file), and what the
    chain noticed on the way (reference size rule, hidden frames, decoder errors, a file cut
    short, picture changes, extra video streams, pixel-feature sampling)."""
    scored = [(r, r.pred_vmaf) for r in records if r.pred_vmaf is not None]
    dur = [r.end - r.start for r, _ in scored]
    bands = {b: sum(r.band == b for r in records)
             for b in ("green", "amber", "red", UNKNOWN_BAND)}
    issues: dict[str, int] = {}
    for r in records:
        if r.issue != "none":
            issues[r.issue] = issues.get(r.issue, 0) + 1
    worst = min(scored, key=lambda rv: rv[1])[0] if scored else None
    if scored and sum(dur) <= 0:  # every shot rounds to 0 s (e.g. 2 frames at 5000 fps)
        dur = [1.0] * len(scored)
    mean = (sum(v * d for (_, v), d in zip(scored, dur, strict=True)) / sum(dur)
            if scored else None)
    return {
        "video": path,
        "shots": len(records),
        "frames": n_frames,
        "duration_s": round(max((r.end for r in records), default=n_frames / fps), 3),
        "codec": records[0].codec if records else None,
        "res": _resolutions(records),
        **({"ref_size": list(ref[0]), "ref_size_rule": ref[1]} if ref is not None else {}),
        "pred_vmaf_mean": None if mean is None else round(mean, 2),
        "pred_vmaf_min": None if worst is None else worst.pred_vmaf,
        "worst_shot": None if worst is None else worst.shot,
        "bands": bands,
        **({"band_rules": dict(band_rules)} if band_rules is not None else {}),
        "issues": issues,
        "flagged": sum(bool(r.flags) for r in records),
        **({"hidden_frames": hidden_frames} if hidden_frames else {}),
        **({"decoder_errors": {"count": len(decoder_errors), "first": decoder_errors[0]}}
           if decoder_errors else {}),
        **({"truncated": truncated} if truncated else {}),
        **({"picture_changes": list(picture_changes)} if picture_changes else {}),
        **({"video_streams": video_streams} if video_streams > 1 else {}),
        **({"pixel_features": pixel} if pixel is not None else {}),
    }
