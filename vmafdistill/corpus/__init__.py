"""Corpus building: shots, encode ladders, teacher labels, student features, Parquet tables.

Importing this package is light (no torch); the builder imports torch only inside jobs.
"""

from .schema import SAMPLE_COLUMNS, SCHEMA_VERSION, TABLES
from .tables import load_samples, load_table, read_manifest


def build_corpus(cfg):
    """See :func:`vmafdistill.corpus.build.build_corpus`."""
    from .build import build_corpus as _build

    return _build(cfg)


def ensure_corpus(cfg):
    """See :func:`vmafdistill.corpus.build.ensure_corpus`."""
    from .build import ensure_corpus as _ensure

    return _ensure(cfg)


__all__ = [
    "SAMPLE_COLUMNS",
    "SCHEMA_VERSION",
    "TABLES",
    "build_corpus",
    "ensure_corpus",
    "load_samples",
    "load_table",
    "read_manifest",
]
