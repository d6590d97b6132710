"""Read and write corpus tables (Parquet) atomically, checking the schema version."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import VmafDistillError
from ..folders import atomic_write_bytes
from ..versions import FEATURE_SET_VERSION
from .schema import SCHEMA_VERSION, TABLES

if TYPE_CHECKING:  # pandas is a training-time dependency
    import pandas as pd

MANIFEST = "corpus.json"


def atomic_write_json(path: Path, obj: Any) -> None:
    """JSON (sorted keys, indented) written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Parquet written atomically (a reader never sees a half-written table)."""
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet table whose every row has this package's ``schema_version``."""
    import pandas as pd

    if not path.is_file():
        raise VmafDistillError(f"{path}: corpus table not found")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise VmafDistillError(f"{path}: unreadable Parquet table ({exc})") from None
    if "schema_version" in df and len(df) and set(df["schema_version"].unique()) != {
        SCHEMA_VERSION
    }:
        found = sorted(df["schema_version"].unique().tolist())
        raise VmafDistillError(
            f"{path}: schema_version {found}, this vmafdistill reads {SCHEMA_VERSION}; "
            "rebuild the corpus"
        )
    # features of another definition: a student trained on them was stamped with this
    # package's version, and export and predict took it (the edge computes these features)
    if "feature_set_version" in df and len(df) and set(
            df["feature_set_version"].unique()) != {FEATURE_SET_VERSION}:
        found = sorted(df["feature_set_version"].unique().tolist())
        raise VmafDistillError(
            f"{path}: feature_set_version {found}, this vmafdistill computes features of "
            f"version {FEATURE_SET_VERSION}; rebuild the corpus (vmafdistill corpus ...)"
        )
    return df


def table_path(corpus_dir: str | os.PathLike[str], table: str) -> Path:
    """``<corpus_dir>/tables/<table>.parquet`` for one of :data:`TABLES`."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
    return Path(corpus_dir) / "tables" / f"{table}.parquet"


def load_table(corpus_dir: str | os.PathLike[str], table: str) -> pd.DataFrame:
    """One table of a built corpus."""
    return read_table(table_path(corpus_dir, table))


def load_samples(corpus_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The per-(shot, variant) sample table of a built corpus (the students' input)."""
    return load_table(corpus_dir, "samples")


def check_tables_intact(corpus_dir: str | os.PathLike[str],
                        tables: tuple[str, ...] = ("samples",)) -> dict[str, Any]:
    """The manifest of ``corpus_dir``, once each of ``tables`` (those the caller reads; train
    and export read the samples) matches the sha256 it records; else one error naming the
    table. A samples table edited after the build was trained on (a corpus given by folder
    was read as is) and scored against baselines cached for the old labels (GBDT MAE 11.7
    where its refit gives 1.5)."""
    manifest = read_manifest(corpus_dir)
    check_manifest_tables(corpus_dir, manifest, tables)
    return manifest


def check_manifest_tables(corpus_dir: str | os.PathLike[str], manifest: Mapping[str, Any],
                          tables: tuple[str, ...] = ("samples",)) -> None:
    """:func:`check_tables_intact` for a manifest already read from ``corpus_dir``."""
    from .cache import file_sha256

    recorded = manifest.get("tables_sha256")
    for name, sha in (recorded.items() if isinstance(recorded, dict) else ()):
        if name not in tables:
            continue
        path = Path(corpus_dir) / "tables" / f"{name}.parquet"
        if not path.is_file():
            raise VmafDistillError(f"{path}: missing; {MANIFEST} records it (rebuild the "
                                   "corpus with `vmafdistill corpus`)")
        if file_sha256(path) != sha:
            raise VmafDistillError(
                f"{path}: not the table {MANIFEST} records (another sha256: edited or replaced "
                "after the build?); rebuild the corpus with `vmafdistill corpus`, or put the "
                "built table back")


def read_manifest(corpus_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``corpus.json`` of a built corpus (name, corpus_hash, counts, failures, config)."""
    path = Path(corpus_dir) / MANIFEST
    if not path.is_file():
        raise VmafDistillError(
            f"{Path(corpus_dir)}: not a built corpus (no {MANIFEST}); run `vmafdistill corpus`"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise VmafDistillError(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict):  # every reader's .get() was an AttributeError
        raise VmafDistillError(f"{path}: corrupt manifest (a JSON {type(manifest).__name__}, "
                               "not an object)")
    return manifest


def corpora_trained_on(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every corpus a student was fitted on, its last one first: ``record`` is a bundle's meta
    or an exported card (``corpus``, then a fine-tuned student's ``earlier_corpora``; a bundle
    fine-tuned before those were kept names its source's corpus in ``finetuned_from``). A
    student trained on one corpus and fine-tuned on another kept only the second: its first
    corpus read as unseen content in evaluate and as held-out rows in a later fine-tune."""
    found = [record.get("corpus"), *(record.get("earlier_corpora") or [])]
    earlier = record.get("finetuned_from")
    if not record.get("earlier_corpora") and isinstance(earlier, Mapping):
        found.append(earlier.get("corpus"))
    out: list[dict[str, Any]] = []
    for corpus in found:
        if isinstance(corpus, Mapping) and (corpus.get("hash") or corpus.get("name")) \
                and dict(corpus) not in out:
            out.append(dict(corpus))
    return out


def sources_seen_in(trained_dir: Path, trained_hash: Any, corpus_dir: Path) -> list[str] | None:
    """The source ids of the corpus at ``corpus_dir`` whose files (by sha256) the corpus at
    ``trained_dir`` holds, where that one still has ``trained_hash`` (one rebuilt there since,
    sources added, would name every new source as seen); None where it cannot tell (not
    there, rebuilt, or an older or damaged table)."""
    import pandas as pd

    try:
        if read_manifest(trained_dir).get("corpus_hash") != trained_hash:
            return None
        seen = set(pd.read_parquet(Path(trained_dir) / "tables" / "sources.parquet",
                                   columns=["sha256"])["sha256"])
        here = pd.read_parquet(Path(corpus_dir) / "tables" / "sources.parquet",
                               columns=["source_id", "sha256"])
    except (VmafDistillError, OSError, ValueError, KeyError):
        return None
    return sorted(here.loc[here["sha256"].isin(seen), "source_id"].astype(str))
