"""The model card: the JSON that travels beside an exported ONNX student (torch-free).

It says what the model expects (feature names and order, feature-set version, reference size),
where it came from (corpus id and hash, student config, package versions), how good it is
(metrics, conformal quantile), how to read its output (token rules and the feature statistics
they standardize with, guard thresholds) and pins the model file by sha256 and opset. The
predictor refuses a model whose card disagrees with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ModelError, VmafDistillError
from ..features.registry import (
    FEATURE_SET_VERSION,
    METADATA_FEATURES,
    QUANTIZER_FEATURES,
    SCENE_RATE_FEATURES,
    SHOT_FEATURES,
    canonical_codec,
    known_feature_set,
)
from ..features.registry import PIXEL_FEATURES as _PIXEL
from ..folders import atomic_write_text
from ..folders import file_sha256 as sha256_file  # re-export

__all__ = [
    "CARD_VERSION",
    "EDGE_FEATURES",
    "REQUIRED_KEYS",
    "card_path_for",
    "read_card",
    "sha256_file",
    "validate_card",
    "write_card",
]

# Bump CARD_VERSION in vmafdistill.versions when a card key is renamed or changes meaning.
from ..versions import CARD_VERSION as CARD_VERSION  # re-export
from .tokens import is_finite_number, is_whole_number

#: Keys every card must have.
REQUIRED_KEYS: tuple[str, ...] = (
    "card_version", "sha256", "opset", "feature_set", "feature_names", "feature_set_version",
    "corpus", "conformal", "ref_size", "tokens", "token_stats", "edge",
)

#: Features the torch-free edge pipeline can compute from a distorted video alone.
EDGE_FEATURES: frozenset[str] = frozenset(
    {*METADATA_FEATURES, "log_bpp", *SCENE_RATE_FEATURES, *QUANTIZER_FEATURES, *_PIXEL,
     *SHOT_FEATURES}
)


def card_path_for(model_path: str | os.PathLike[str]) -> Path:
    """``model.onnx`` -> ``model.card.json`` (same directory)."""
    p = Path(model_path)
    return p.with_name(p.stem + ".card.json")


def write_card(path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write a card as sorted, indented JSON (atomically) and return its path."""
    p = Path(path)
    atomic_write_text(p, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return p


def read_card(path: str | os.PathLike[str], *, beside: str | os.PathLike[str] | None = None,
              ) -> dict[str, Any]:
    """Load a card, checking that it is a JSON object with every :data:`REQUIRED_KEYS` key.

    ``beside``: the model whose default card ``path`` is (named in the not-found error)."""
    p = Path(path)
    if not p.is_file():
        where = f" (a model's card is expected beside it: {Path(beside).name})" if beside else ""
        raise ModelError(f"{p}: model card not found{where}")
    try:
        card = json.loads(p.read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
        raise ModelError(f"{p}: unreadable model card ({exc})") from None
    if not isinstance(card, dict):
        raise ModelError(f"{p}: model card is not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise ModelError(f"{p}: model card lacks {', '.join(missing)}")
    version = card["card_version"]
    if not is_whole_number(version) or version != CARD_VERSION:  # ``true`` equals 1 in Python
        raise ModelError(f"{p}: card_version {version!r}, this vmafdistill reads {CARD_VERSION}")
    _check_card_values(p, card)
    return card


def _check_card_values(path: Path, card: Mapping[str, Any]) -> None:
    """ModelError naming the card and the field whose value the edge cannot use (a
    hand-edited card): ``ref_size`` (an IndexError, a TypeError for null, or a string
    silently replaced by the video's own size), ``opset`` and ``feature_set_version`` (whole
    numbers), ``conformal.q`` (null beside an alpha gave zero-width intervals, a negative one
    inverted them; both null: a student exported without intervals; not a mapping: an
    AttributeError), the fields reports read, the ``edge`` options, ``token_stats`` and,
    through :func:`_check_inputs_and_domain`, ``used_features`` and ``training_domain``."""
    ref = card.get("ref_size")
    if not (isinstance(ref, list) and len(ref) == 2
            and all(is_whole_number(v) and v > 0 for v in ref)):
        raise ModelError(f"{path}: ref_size={ref!r}: needs [width, height], two positive "
                         "whole numbers (the size the teacher compared at)")
    for key in ("opset", "feature_set_version"):  # "17" read "opset 17 but its card says 17"
        if not is_whole_number(card.get(key)):
            raise ModelError(f"{path}: {key}={card.get(key)!r}: needs a whole number")
    conformal = card.get("conformal")
    if not isinstance(conformal, Mapping):  # export always writes one (alpha, q null: none)
        raise ModelError(f"{path}: conformal={conformal!r}: needs a mapping with q, the "
                         "interval's half-width (alpha and q null: no intervals)")
    q = conformal.get("q")
    uncalibrated = q is None and conformal.get("alpha") is None  # no intervals: width 0
    if not uncalibrated and not _finite_at_least(q, 0.0):
        raise ModelError(f"{path}: conformal.q={q!r}: needs a finite number >= 0 (the "
                         "interval's half-width)")
    _check_reported_fields(path, card)
    _check_edge_section(path, card.get("edge"))
    _check_token_stats(path, card.get("token_stats"))
    _check_inputs_and_domain(path, card)


def _check_edge_section(path: Path, edge: Any) -> None:
    """ModelError naming the card where ``edge`` is not a mapping of the edge chain's options
    as :class:`~.options.EdgeOptions` takes them (whole numbers in range, a known decoder, the
    cut detector's settings): a text step was an int() error naming neither, 2.5 was cut to 2."""
    from .options import EdgeOptions

    if not isinstance(edge, Mapping):
        raise ModelError(f"{path}: edge={edge!r}: needs a mapping of the edge chain's options")
    shots = edge.get("shots")
    if shots is not None and not isinstance(shots, Mapping):  # dict(5): a TypeError
        raise ModelError(f"{path}: edge.shots={shots!r}: needs a mapping of the cut "
                         "detector's settings")
    try:  # the shots settings as the corpus checks them (shots.checked_shot_settings)
        EdgeOptions.from_card(edge)
    except (ValueError, VmafDistillError) as exc:  # VmafDistillError: a shots setting
        raise ModelError(f"{path}: {exc}") from None


def _check_token_stats(path: Path, stats: Any) -> None:
    """ModelError naming the card where ``token_stats`` is not {feature: {center, scale > 0,
    log}} (a zero scale divided by zero after the decode, a negative one turned its issue
    rule around, a list or null was an AttributeError)."""
    if not isinstance(stats, Mapping):
        raise ModelError(f"{path}: token_stats={stats!r}: needs a mapping of feature name to "
                         "{center, scale, log}")
    for name, st in stats.items():
        if not (isinstance(st, Mapping) and is_finite_number(st.get("center"))
                and is_finite_number(st.get("scale")) and st["scale"] > 0
                and isinstance(st.get("log", False), bool)):
            raise ModelError(f"{path}: token_stats.{name}={st!r}: needs center (a number), "
                             "scale (a number > 0) and log (true or false)")


def _check_reported_fields(path: Path, card: Mapping[str, Any]) -> None:
    """ModelError naming the card where a field that reports describe the student with is
    unusable (``evaluate`` failed on them with a traceback after its corpus work, or drew a
    threshold ``"80"`` as lines at 8 and 0): ``conformal.alpha`` (a number in (0, 1) or
    null), ``guard_thresholds`` (VMAF values, or null) and ``corpus`` (a mapping, or null)."""
    alpha = card["conformal"].get("alpha")
    if alpha is not None and not (is_finite_number(alpha) and 0 < alpha < 1):
        raise ModelError(f"{path}: conformal.alpha={alpha!r}: needs a number in (0, 1), the "
                         "interval's miss rate (0.1: 90 % intervals)")
    thresholds = card.get("guard_thresholds")
    if thresholds is not None and not (isinstance(thresholds, list) and all(
            is_finite_number(t) and 0 <= t <= 100 for t in thresholds)):
        raise ModelError(f"{path}: guard_thresholds={thresholds!r}: needs a list of VMAF "
                         "values (0..100)")
    if card.get("corpus") is not None and not isinstance(card["corpus"], Mapping):
        raise ModelError(f"{path}: corpus={card['corpus']!r}: needs a mapping (name, hash) "
                         "of the corpus the student was trained on")


def _check_inputs_and_domain(path: Path, card: Mapping[str, Any]) -> None:
    """ModelError naming the card where ``used_features`` names a feature outside
    ``feature_names`` (the edge fed the model's real inputs as 0: 73.2 became 1.2) or
    ``training_domain`` is not {features: {name: [min, max]}, codecs: [names]} (an
    IndexError or AttributeError while flagging a shot). Either may be absent (older cards)."""
    names = card.get("feature_names")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ModelError(f"{path}: feature_names={names!r}: needs a list of feature names")
    used = card.get("used_features")
    if used is not None:
        if not isinstance(used, list):
            raise ModelError(f"{path}: used_features={used!r}: needs a list of feature names")
        unknown = [u for u in used if u not in names]
        if unknown:
            raise ModelError(f"{path}: used_features lists {unknown!r}, not among the card's "
                             "feature_names")
    domain = card.get("training_domain")
    if domain is None:
        return
    if not isinstance(domain, Mapping):
        raise ModelError(f"{path}: training_domain={domain!r}: needs a mapping")
    features = domain.get("features")
    if features is not None and not isinstance(features, Mapping):
        raise ModelError(f"{path}: training_domain.features={features!r}: needs a mapping "
                         "of feature name to [min, max]")
    for name, rng in (features or {}).items():
        if not (isinstance(rng, list) and len(rng) == 2 and all(map(is_finite_number, rng))
                and rng[0] <= rng[1]):
            raise ModelError(f"{path}: training_domain.features.{name}={rng!r}: needs "
                             "[min, max], two finite numbers, min <= max")
    codecs = domain.get("codecs")
    if codecs is not None and not (isinstance(codecs, list)
                                   and all(isinstance(c, str) for c in codecs)):
        raise ModelError(f"{path}: training_domain.codecs={codecs!r}: needs a list of codec "
                         "names")
    for codec in codecs or ():
        try:
            canonical_codec(codec)
        except ValueError as exc:  # raised while flagging the first shot, after the decode
            raise ModelError(f"{path}: training_domain.codecs: {exc}") from None


def _finite_at_least(value: Any, low: float) -> bool:
    return is_finite_number(value) and float(value) >= low


def validate_card(
    card: dict[str, Any],
    *,
    model_path: str | os.PathLike[str],
    model_sha256: str,
    model_opsets: dict[str, int],
    input_width: int | None,
    edge_features: bool = True,
) -> None:
    """Raise ModelError unless ``card`` describes this model file and this package's features.

    Checks: sha256 of the file, default-domain opset, the number of model inputs against the
    feature list, the feature-set version, that every feature can be computed without a
    reference (unless ``edge_features`` is False), and, where this install reads
    ``conf/features/`` (PyYAML: the training side), that a known feature set's names and order
    match. The card's ``feature_names`` are the model's inputs, in order; the torch- and
    yaml-free edge install relies on them alone.
    """
    name = Path(model_path).name
    if card["sha256"] != model_sha256:
        raise ModelError(
            f"{name}: sha256 {model_sha256[:12]}... does not match its card "
            f"({str(card['sha256'])[:12]}...): the card belongs to another model"
        )
    opset = model_opsets.get("")
    if opset != card["opset"]:
        raise ModelError(f"{name}: model opset {opset} but its card says {card['opset']}")
    names = list(card["feature_names"])
    if input_width is not None and input_width != len(names):
        raise ModelError(
            f"{name}: model takes {input_width} features, its card lists {len(names)}"
        )
    known = known_feature_set(card["feature_set"])
    if known is not None and names != known:
        raise ModelError(
            f"{name}: card features differ from feature set {card['feature_set']!r} of this "
            "vmafdistill (names or order)"
        )
    if card["feature_set_version"] != FEATURE_SET_VERSION:
        raise ModelError(
            f"{name}: trained on feature-set version {card['feature_set_version']}, this "
            f"vmafdistill computes version {FEATURE_SET_VERSION}; re-export the model"
        )
    foreign = [n for n in names if n not in EDGE_FEATURES]
    if foreign and edge_features:
        raise ModelError(
            f"{name}: needs features the edge cannot compute without a reference: "
            + ", ".join(foreign)
        )
