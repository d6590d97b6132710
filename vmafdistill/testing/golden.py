"""Golden libvmaf numbers for the content cases: which models, how they are run, file layout.

A golden file (``tests/data/golden/<case>.json``) records, for one case of
:data:`vmafdistill.testing.content.CASES`, the decoded sha256 of both inputs (so a changed
encoder or scaler is detected before numbers are compared), the tool versions, and per model the
per-frame values of :data:`~vmafdistill.oracle.CANONICAL_METRICS` exactly as libvmaf printed
them (6 decimals) plus libvmaf's pooled means. Per-frame values are stored column-wise:
``models[<model>]["per_frame"][<metric>]`` is a list with one value per frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..oracle import CANONICAL_METRICS, LibvmafResult, float_model_json
from .content import BuiltCase, decoded_sha256

__all__ = [
    "BASE_MODELS",
    "GOLDEN_SCHEMA",
    "GoldenCase",
    "dumps_golden",
    "golden_dir",
    "golden_path",
    "golden_record",
    "load_golden",
    "model_argument",
]

GOLDEN_SCHEMA = 1

#: Models every case is scored with: the float model the teacher reimplements, and libvmaf's
#: default integer model (to report the float/integer gap).
BASE_MODELS: tuple[str, ...] = ("vmaf_float_v0.6.1", "vmaf_v0.6.1")

# Golden model name -> (how libvmaf is told about it, feature flavour).
_MODEL_SPECS: dict[str, tuple[str, str]] = {
    "vmaf_float_v0.6.1": ("builtin:vmaf_float_v0.6.1", "float"),
    "vmaf_v0.6.1": ("builtin:vmaf_v0.6.1", "integer"),
    "vmaf_float_v0.6.1neg": ("json:float_model_json('vmaf_v0.6.1neg')", "float"),
    "vmaf_float_4k_v0.6.1": ("json:float_model_json('vmaf_4k_v0.6.1')", "float"),
}


@dataclass(frozen=True)
class GoldenCase:
    """A freshly built content case together with its committed golden record.

    Attributes:
        built: the built pair (paths, formats, raw specs, ``scale_to``); see
            :class:`~vmafdistill.testing.content.BuiltCase`.
        golden: the parsed golden JSON (layout in the module doc).
    """

    built: BuiltCase
    golden: dict[str, Any]

    @property
    def name(self) -> str:
        """Case name."""
        return self.built.name

    @property
    def ref(self) -> Path:
        """Reference file (.y4m, or .yuv with ``built.ref_raw``)."""
        return self.built.ref

    @property
    def dist(self) -> Path:
        """Distorted file (.y4m, or .yuv with ``built.dist_raw``)."""
        return self.built.dist

    @property
    def models(self) -> list[str]:
        """Golden model names recorded for this case."""
        return list(self.golden["models"])

    def per_frame(self, model: str, metric: str = "vmaf") -> list[float]:
        """Golden per-frame values of ``metric`` under ``model`` (as libvmaf printed them)."""
        return list(self.golden["models"][model]["per_frame"][metric])

    def pooled_mean(self, model: str, metric: str = "vmaf") -> float:
        """libvmaf's pooled mean of ``metric`` under ``model``."""
        return float(self.golden["models"][model]["pooled_mean"][metric])

    def content_mismatches(self) -> list[str]:
        """Roles (``"ref"``/``"dist"``) whose freshly decoded sha256 differs from the golden one.

        Non-empty means the local ffmpeg/encoders produce different pixels than the machine that
        made the golden file, so its numbers do not apply to this content.
        """
        bad = []
        for role, path, raw, fmt in (
            ("ref", self.built.ref, self.built.ref_raw, self.built.ref_format),
            ("dist", self.built.dist, self.built.dist_raw, self.built.dist_format),
        ):
            if decoded_sha256(path, raw, fmt.pix_fmt) != self.golden[role]["sha256_decoded"]:
                bad.append(role)
        return bad


def model_argument(name: str) -> str:
    """The ``model`` argument of :func:`~vmafdistill.oracle.libvmaf_score` for a golden model.

    ``vmaf_float_v0.6.1neg`` and ``vmaf_float_4k_v0.6.1`` are run from the float JSON derived
    from ffmpeg-quality-metrics (libvmaf's own built-ins of the same names give identical numbers).
    """
    if name not in _MODEL_SPECS:
        raise KeyError(f"no golden model {name!r}; known: {sorted(_MODEL_SPECS)}")
    spec = _MODEL_SPECS[name][0]
    if spec.startswith("builtin:"):
        return spec.removeprefix("builtin:")
    return str(float_model_json(name))


def golden_dir() -> Path:
    """``tests/data/golden`` of the source checkout this package was imported from."""
    return Path(__file__).resolve().parents[2] / "tests" / "data" / "golden"


def golden_path(case: str, directory: Path | None = None) -> Path:
    """Path of the golden file for ``case``."""
    return (directory or golden_dir()) / f"{case}.json"


def load_golden(case: str, directory: Path | None = None) -> dict[str, Any]:
    """Load the golden record of ``case`` (see the module doc for the layout)."""
    path = golden_path(case, directory)
    if not path.is_file():
        raise FileNotFoundError(f"no golden file {path}: run scripts/make_golden.py")
    return json.loads(path.read_text())


def _video_entry(built: BuiltCase, role: str) -> dict[str, Any]:
    path = built.ref if role == "ref" else built.dist
    raw = built.ref_raw if role == "ref" else built.dist_raw
    fmt = built.ref_format if role == "ref" else built.dist_format
    return {
        "file": path.name,
        "container": "rawvideo" if raw else "y4m",
        "width": fmt.width,
        "height": fmt.height,
        "pix_fmt": fmt.pix_fmt,
        "frames": built.frames,
        "sha256_decoded": decoded_sha256(path, raw, fmt.pix_fmt),
    }


def golden_record(built: BuiltCase, results: dict[str, LibvmafResult]) -> dict[str, Any]:
    """The golden record of one built case scored with the models in ``results``."""
    versions = {r.version for r in results.values()}
    ffmpeg_versions = {r.ffmpeg_version for r in results.values()}
    if len(versions) != 1 or len(ffmpeg_versions) != 1:
        raise ValueError(f"mixed tool versions in one record: {versions} {ffmpeg_versions}")
    models: dict[str, Any] = {}
    for name, res in results.items():
        if res.num_frames != built.frames:
            raise ValueError(f"{built.name}/{name}: {res.num_frames} frames, want {built.frames}")
        spec, flavour = _MODEL_SPECS[name]
        models[name] = {
            "model_spec": spec,
            "features": flavour,
            "per_frame": {m: res.metric(m) for m in CANONICAL_METRICS},
            "pooled_mean": {m: res.pooled[m]["mean"] for m in CANONICAL_METRICS},
        }
    return {
        "schema": GOLDEN_SCHEMA,
        "case": built.name,
        "notes": built.notes,
        "frames": built.frames,
        "ref": _video_entry(built, "ref"),
        "dist": _video_entry(built, "dist"),
        "scale_to": list(built.scale_to) if built.scale_to else None,
        "scale_flags": built.scale_flags if built.scale_to else None,
        "libvmaf_version": versions.pop(),
        "ffmpeg_version": ffmpeg_versions.pop(),
        "models": models,
    }


def dumps_golden(record: Any, indent: int = 0) -> str:
    """JSON text with lists of numbers kept on one line (small, diff-friendly files).

    Floats are written with Python's shortest round-trip repr, which reproduces libvmaf's
    printed digits exactly.
    """
    pad = "  " * indent
    if isinstance(record, dict):
        if not record:
            return "{}"
        items = [
            f"{pad}  {json.dumps(str(k))}: {dumps_golden(v, indent + 1)}" for k, v in record.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(record, list) and any(isinstance(v, dict | list) for v in record):
        items = [f"{pad}  {dumps_golden(v, indent + 1)}" for v in record]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(record)
