"""Grouped cross-validation splits over a samples table (torch-free).

Every protocol keeps all rows of a group (by default a shot: every ladder variant of one shot)
on one side, so a student is never tested on a shot it saw encoded at another rung.

* ``group_kfold``: K folds of whole groups (``group``, default ``shot_id``), sklearn's
  GroupKFold (greedy size balancing; deterministic; ``shuffle: true`` + ``seed`` permutes).
* ``leave_one_source_out``: one fold per ``source_id`` (content generalisation); with
  ``test_sources`` only those sources are held out (one fold each) and every other source is
  always training data (e.g. synthetic clips that help training but are no test of interest).
* ``hash_split``: one train/test split; a group is in test when
  md5(salt + key) / 2^128 < test_fraction, so the assignment depends only on the key value
  (stable under row order, additions and removals of other groups).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

from ..config import checked_bool, checked_number, refuse_unknown_keys
from ..errors import VmafDistillError

__all__ = ["SPLIT_NAMES", "cv_settings", "hash_fraction", "make_splits", "shared_groups"]

SPLIT_NAMES: tuple[str, ...] = ("group_kfold", "leave_one_source_out", "hash_split")

#: What a protocol reads where its key is absent or null (the values conf/cv/ sets).
_ABSENT_MEANS: dict[str, dict[str, Any]] = {
    "group_kfold": {"n_splits": 5, "group": "shot_id", "shuffle": False, "seed": 0},
    "leave_one_source_out": {"group": "source_id"},
    "hash_split": {"key": "shot_id", "test_fraction": 0.2, "salt": ""},
}


def cv_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with each absent or null key of its protocol replaced by the value the splits
    use, so what a run records is what it ran (``cv.n_splits=null`` ran 5 folds and was
    recorded as None, and sweep-report told it from an ``n_splits=5`` run)."""
    settings = dict(cfg)
    name = str(settings.get("name"))
    if name in _ABSENT_MEANS:  # an unknown name is make_splits' error
        # conformal_method: the protocol's interval choice, read by training
        refuse_unknown_keys(f"cv ({name})", settings, {
            "name", "conformal_method", *_ABSENT_MEANS[name],
            *(("test_sources",) if name == "leave_one_source_out" else ())})
    for key, value in _ABSENT_MEANS.get(name, {}).items():
        if settings.get(key) is None:
            settings[key] = value
    return settings


def hash_fraction(value: Any, salt: str = "") -> float:
    """Stable pseudo-uniform number in [0, 1) from md5(salt + str(value))."""
    digest = hashlib.md5(f"{salt}{value}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest, "big") / 2.0**128


def _groups(samples: pd.DataFrame, column: str) -> np.ndarray:
    if column not in samples.columns:
        raise VmafDistillError(f"splits: samples have no column {column!r}")
    groups = samples[column]
    if groups.isna().any():
        raise VmafDistillError(f"splits: column {column!r} has {int(groups.isna().sum())} "
                               "missing value(s)")
    return groups.astype(str).to_numpy()


def shared_groups(samples: pd.DataFrame, splits: list[tuple[np.ndarray, np.ndarray]],
                  column: str) -> list[str]:
    """Values of ``column`` found on both sides of some fold, sorted (none: ``[]``; no such
    column: ``[]``). With folds of shots, a scene cut into several shot windows is the
    common case: its scene-level inputs are then in training and test alike."""
    if column not in samples.columns:
        return []
    values = samples[column].astype(str).to_numpy()
    both: set[str] = set()
    for train, test in splits:
        both |= set(values[train]) & set(values[test])
    return sorted(both)


def _check(splits: list[tuple[np.ndarray, np.ndarray]], groups: np.ndarray, name: str) -> None:
    for k, (train, test) in enumerate(splits):
        if len(train) == 0 or len(test) == 0:
            side = "training" if len(train) == 0 else "test"
            hint = (" (cv.test_fraction, or another cv.salt, moves groups between the sides)"
                    if name.startswith("hash") else
                    " (too few groups for the folds: fewer cv.n_splits or a larger corpus)")
            raise VmafDistillError(f"split {name} fold {k}: the {side} side is empty; "
                                   f"{len(np.unique(groups))} group(s) in all{hint}")
        shared = set(groups[train]) & set(groups[test])
        if shared:  # cannot happen with the protocols above; a guard against regressions
            raise VmafDistillError(f"split {name} fold {k}: groups on both sides: "
                                   f"{sorted(shared)[:5]}")


def _held_out_groups(
    groups: np.ndarray, test_groups: list[str], column: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (train, test) fold per listed group: test = its rows, train = every other row."""
    if not test_groups:
        raise VmafDistillError("split leave_one_source_out: test_sources is an empty list")
    if len(set(test_groups)) != len(test_groups):
        raise VmafDistillError(f"split leave_one_source_out: test_sources has duplicates: "
                               f"{test_groups}")
    present = set(groups.tolist())
    missing = [t for t in test_groups if t not in present]
    if missing:
        raise VmafDistillError(
            f"split leave_one_source_out: test_sources {missing} not in column {column!r} "
            f"(values: {sorted(present)[:10]})"
        )
    return [(np.flatnonzero(groups != t), np.flatnonzero(groups == t)) for t in test_groups]


def make_splits(
    samples: pd.DataFrame, cfg: Mapping[str, Any]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, test_idx) positional index arrays for the protocol ``cfg["name"]``.

    Keys: ``group_kfold``: ``n_splits`` (5), ``group`` (``shot_id``), ``shuffle`` (false),
    ``seed`` (0). ``leave_one_source_out``: ``group`` (``source_id``), ``test_sources``
    (null = every group; else a list of group values, each one fold, in the listed order).
    ``hash_split``: ``test_fraction`` (0.2), ``key`` (``shot_id``), ``salt`` ("").
    Raises :class:`VmafDistillError` on a missing column, fewer groups than folds, or an empty
    side.
    """
    cfg = cv_settings(cfg)
    name = cfg.get("name")
    n = len(samples)
    if name == "group_kfold":
        groups = _groups(samples, str(cfg["group"]))
        # 0 used to mean 5 and 2.7 to mean 2, without a word
        n_splits = checked_number("cv.n_splits", cfg["n_splits"], int, 2)
        n_groups = len(np.unique(groups))
        if n_groups < n_splits:
            raise VmafDistillError(
                f"split group_kfold: {n_groups} groups in column "
                f"{cfg['group']!r}, fewer than {n_splits} folds"
            )
        # checked: bool() read "no" and "false" (strings from an override) as true
        shuffle = checked_bool("cv.shuffle", cfg["shuffle"])
        kw: dict[str, Any] = {"shuffle": True, "random_state": int(cfg["seed"])}
        splitter = GroupKFold(n_splits=n_splits, **(kw if shuffle else {}))
        splits = [(tr, te) for tr, te in splitter.split(np.zeros(n), groups=groups)]
    elif name == "leave_one_source_out":
        column = str(cfg["group"])
        groups = _groups(samples, column)
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise VmafDistillError(f"split leave_one_source_out: {n_groups} group(s) in column "
                                   f"{column!r}; need at least 2")
        test_sources = cfg.get("test_sources")
        if test_sources is None:
            splits = list(LeaveOneGroupOut().split(np.zeros(n), groups=groups))
        else:
            splits = _held_out_groups(groups, [str(t) for t in test_sources], column)
    elif name == "hash_split":
        column = str(cfg["key"])
        groups = _groups(samples, column)
        frac = checked_number("cv.test_fraction", cfg["test_fraction"], float, 0, False, 1)
        salt = str(cfg["salt"] or "")  # 0 and false meant "" before: the same split
        unique = np.unique(groups)
        in_test = {g: hash_fraction(g, salt) < frac for g in unique}
        mask = np.array([in_test[g] for g in groups], dtype=bool)
        splits = [(np.flatnonzero(~mask), np.flatnonzero(mask))]
    else:
        raise VmafDistillError(f"split config: unknown name {name!r}; known: {SPLIT_NAMES}")
    splits = [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)) for tr, te in splits]
    _check(splits, groups, str(name))
    return splits
