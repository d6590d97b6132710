"""Golden libvmaf numbers for the content cases: which models, how they are run, file layout.

A golden file (``tests/data/golden/<case>.json``) records, for one case of
:data:`vmafdistill.testing.content.CASES`, the decoded sha256 of both inputs (so a changed
encoder or scaler is detected before numbers are compared), the tool versions, and per model the
per-frame values of :data:`~vmafdistill.oracle.CANONICAL_METRICS` exactly as libvmaf printed
them (6 decimals) plus libvmaf's pooled means. Per-frame values are stored column-wise:
``models[<model>]["per_frame"][<metric>]`` is a list with one value per frame.

Where the numbers were made: ``made_on`` holds the CPU model and the SIMD level libvmaf ran
(:func:`vmafdistill.machine.cpu_record`). libvmaf's kernels differ between SIMD levels, so a record
can also be scored on machines of other levels (``also_recorded_on``, written by
``tests/tools/make_golden.py --add-this-cpu``): values that differ there are kept under
``models[<model>]["per_frame_by_simd"][<level>][<metric>]`` (only the metrics that differ);
:meth:`GoldenCase.per_frame` returns the values of this machine's level when there are any, and
:func:`golden_tolerance` says how far a fresh libvmaf run may move from what is returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..machine import cpu_record, simd_level
from ..oracle import CANONICAL_METRICS, LibvmafResult, float_model_json
from .content import BuiltCase, decoded_sha256

__all__ = [
    "BASE_MODELS",
    "GOLDEN_SCHEMA",
    "GoldenCase",
    "add_simd_values",
    "cpu_vendor",
    "dumps_golden",
    "golden_dir",
    "golden_path",
    "golden_record",
    "golden_tolerance",
    "load_golden",
    "model_argument",
    "recorded_simd_levels",
]

GOLDEN_SCHEMA = 1

#: Models every case is scored with: the float model the teacher reimplements, and libvmaf's
#: default integer model (to report the float/integer gap).
BASE_MODELS: tuple[str, ...] = ("vmaf_float_v0.6.1", "vmaf_v0.6.1")

#: How far a fresh libvmaf run may move from a golden value, and why.
#: Recorded on this SIMD level (AVX2/AVX-512) and, for float features, this CPU vendor: libvmaf
#: is deterministic there; one printed digit (6 decimals) of slack covers a libm whose exp/log
#: rounds a last bit differently. Measured: 0.
#: Not recorded so:
#: - float features: libvmaf's float kernels accumulate float32 sums in vector-width order, so
#:   AVX2 and AVX-512 differ in the last bits; measured between an AMD EPYC (AVX2) and an Intel
#:   Xeon (AVX-512), libvmaf 86da14d, 17 golden cases: features <= 1e-6 (one printed digit), VMAF
#:   <= 9e-6. The same level on another vendor differs too: an AMD EPYC with AVX-512 against
#:   the Intel Xeon's values (2026-12-06, 17 cases): features <= 1e-6, VMAF <= 9e-6, integer 0.
#:   Tolerance 5e-6 on features and 5e-5 on VMAF (the SVR amplifies feature changes; 5e-5 is
#:   also the float teacher's own parity bound).
#: - integer features: VIF and motion are integer arithmetic and agree exactly; libvmaf's AVX2 and
#:   AVX-512 ADM kernels disagree on frame sizes whose subbands are not a whole number of vectors
#:   (measured 1.12e-4 on integer_adm_scale3, 4.8e-5 on integer_adm2, 1.01e-2 on VMAF for
#:   321x181 and 322x182; 0 on every even-size case). Tolerance 3e-4 on ADM metrics and 3e-2 on
#:   VMAF, about 3x the measured gap; VIF and motion keep the one-digit tolerance.
_SAME_SIMD_TOL = 2e-6
_OTHER_SIMD_TOL: dict[str, dict[str, float]] = {
    "float": {"vmaf": 5e-5, "feature": 5e-6},
    "integer": {"vmaf": 3e-2, "adm": 3e-4, "feature": 2e-6},
}


def golden_tolerance(flavour: str, metric: str, *, same_simd: bool) -> float:
    """Largest |fresh libvmaf - golden| allowed for ``metric`` (reasons: ``_OTHER_SIMD_TOL``).

    Args:
        flavour: ``"float"`` or ``"integer"`` (the golden model's ``features`` field).
        metric: a name of :data:`~vmafdistill.oracle.CANONICAL_METRICS`.
        same_simd: whether the golden value was recorded on this machine's SIMD level.
    """
    if same_simd:
        return _SAME_SIMD_TOL
    table = _OTHER_SIMD_TOL[flavour]
    if metric == "vmaf":
        return table["vmaf"]
    if metric.startswith("adm") and "adm" in table:
        return table["adm"]
    return table["feature"]


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

    def per_frame(self, model: str, metric: str = "vmaf", simd: str | None = None
                  ) -> list[float]:
        """Golden per-frame values of ``metric`` under ``model`` (as libvmaf printed them), those
        recorded on SIMD level ``simd`` (default: this machine's) where the file has them."""
        rec = self.golden["models"][model]
        local = rec.get("per_frame_by_simd", {}).get(simd or simd_level(), {})
        return list(local.get(metric, rec["per_frame"][metric]))

    def recorded_here(self, *, same_vendor: bool = True) -> bool:
        """Whether the golden values were recorded on this machine's SIMD level, and (with
        ``same_vendor``) on a CPU of its vendor: libvmaf's float VMAF moved 9e-6 between an
        Intel Xeon and an AMD EPYC both on its AVX-512 kernels, its integer features not."""
        here = cpu_record()
        return any(m.get("simd") == here["simd"] and (
            not same_vendor or cpu_vendor(str(m.get("cpu", ""))) == cpu_vendor(here["cpu"]))
            for m in _recorded_on(self.golden))

    def tolerance(self, model: str, metric: str) -> float:
        """How far a fresh libvmaf run of ``model`` may move from :meth:`per_frame` here:
        integer features are tight on the SIMD level they were recorded on, float ones only
        on that level and CPU vendor (``_OTHER_SIMD_TOL``)."""
        flavour = self.golden["models"][model]["features"]
        same = self.recorded_here(same_vendor=flavour != "integer")
        return golden_tolerance(flavour, metric, same_simd=same)

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


def cpu_vendor(name: str) -> str:
    """``"intel"``, ``"amd"`` or the name itself, from a CPU model name: clouds mask or vary
    the rest ("Intel Xeon", "Intel(R) Xeon(R) Platinum 8481C", "AMD EPYC 9B14")."""
    lowered = name.lower()
    return next((v for v in ("intel", "amd") if v in lowered), lowered)


def recorded_simd_levels(golden: dict[str, Any]) -> set[str]:
    """SIMD levels a golden record holds values for: ``made_on`` and ``also_recorded_on``."""
    return {m["simd"] for m in _recorded_on(golden) if "simd" in m}


def _recorded_on(golden: dict[str, Any]) -> list[dict[str, Any]]:
    """The machines a golden record's values come from (``made_on``, ``also_recorded_on``)."""
    return [golden.get("made_on", {}), *golden.get("also_recorded_on", [])]


def add_simd_values(golden: dict[str, Any], results: dict[str, LibvmafResult]) -> list[str]:
    """Record this machine's libvmaf values in ``golden`` (in place) beside the original ones.

    Metrics whose per-frame values differ from the record's ``per_frame`` go under
    ``per_frame_by_simd[<level>]``; the machine is listed in ``also_recorded_on``. Returns the
    ``model/metric`` names that differ. Refuses the level the record was made on.
    """
    level = simd_level()
    if golden.get("made_on", {}).get("simd") == level:
        raise ValueError(f"{golden['case']}: already made on {level}; rebuild it instead")
    differing = []
    for name, res in results.items():
        rec = golden["models"][name]
        local = {m: res.metric(m) for m in CANONICAL_METRICS
                 if res.metric(m) != rec["per_frame"][m]}
        by_simd = rec.setdefault("per_frame_by_simd", {})
        by_simd.pop(level, None)
        if local:
            by_simd[level] = local
            differing += [f"{name}/{m}" for m in local]
        if not by_simd:
            del rec["per_frame_by_simd"]
    also = [m for m in golden.get("also_recorded_on", []) if m.get("simd") != level]
    golden["also_recorded_on"] = [*also, cpu_record()]
    return differing


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
        raise FileNotFoundError(f"no golden file {path}: run tests/tools/make_golden.py")
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
        "made_on": cpu_record(),
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
