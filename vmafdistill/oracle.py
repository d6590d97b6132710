"""libvmaf through ffmpeg: the reference oracle every teacher and student number is checked against.

The oracle runs ffmpeg's ``libvmaf`` filter (first input = distorted, second = reference) and
parses its JSON log. Frames are paired by decode order, like Netflix's ``vmaf`` command-line
tool, not by timestamps: both inputs are re-stamped ``0, 1, 2, ...`` before the filter and the
filter runs with ``shortest=1:repeatlast=0``, so a shorter input is never padded by repeating
its last frame. When the frame counts of both inputs can be determined, the number of scored
frames must equal both, otherwise :class:`~vmafdistill.errors.FrameMismatchError` is raised.

Models are either libvmaf built-in versions (``vmaf_v0.6.1`` integer features,
``vmaf_float_v0.6.1`` float features, ...) or JSON files. :func:`float_model_json` derives
float-feature copies of the three Netflix models shipped by ``ffmpeg-quality-metrics``, so
``vmaf_v0.6.1neg`` and ``vmaf_4k_v0.6.1`` can be run with the float extractors the teacher
reimplements. Model JSON is never committed; it is derived at run time from the installed package.

Metric names are normalised in :attr:`LibvmafResult.frames`: libvmaf prints ``integer_adm2`` for
the integer extractors, ``adm2_egl_1`` when a model sets ``adm_enhn_gain_limit`` (the ``neg``
models) and ``VMAF_integer_feature_motion_sad_score`` for the integer ``motion``. Each frame dict
holds every name libvmaf printed plus the canonical alias (``adm2``, ``motion``, ...) where that
alias is not printed itself, so the same keys work for every model.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._ffmpeg import (
    coded_picture_args,
    decoder_thread_args,
    ffmpeg_exe,
    ffmpeg_version,
    input_url,
)
from .errors import (
    FrameMismatchError,
    ModelError,
    ToolError,
    VideoInputError,
    VmafDistillError,
    killed_from_outside,
)
from .io.video import SUPPORTED_PIX_FMTS, frame_size_bytes, y4m_frame_count, y4m_header
from .vmaf_names import FRAME_METRICS

__all__ = [
    "CANONICAL_METRICS",
    "FLOAT_MODEL_SOURCES",
    "LibvmafResult",
    "RawSpec",
    "count_frames",
    "float_model_json",
    "libvmaf_available",
    "libvmaf_score",
    "libvmaf_version",
    "model_files_dir",
    "y4m_header",
]

#: The per-frame metrics the VMAF v0.6.1 family is built from, in libvmaf's float spelling.
CANONICAL_METRICS: tuple[str, ...] = FRAME_METRICS

#: Float-feature model name -> the ffmpeg-quality-metrics JSON it is derived from.
FLOAT_MODEL_SOURCES: dict[str, str] = {
    "vmaf_float_v0.6.1": "vmaf_v0.6.1",
    "vmaf_float_v0.6.1neg": "vmaf_v0.6.1neg",
    "vmaf_float_4k_v0.6.1": "vmaf_4k_v0.6.1",
}

#: ``{"width": int, "height": int, "pix_fmt": str}`` describing a headerless .yuv file.
RawSpec = dict[str, Any]

# Characters that terminate or are interpreted by the three parsers a filter option value passes
# through (filtergraph, filter options, libvmaf's model/feature dictionaries). Escaping a
# character that needs no escaping is harmless: av_get_token drops the backslash either way.
_ESCAPE_CHARS = "\\':=,;[] \t"


@dataclass
class LibvmafResult:
    """One libvmaf run: per-frame metrics, pooled metrics and provenance.

    Attributes:
        version: libvmaf version string from the log (e.g. ``"86da14d"``).
        ffmpeg_version: version of the ffmpeg binary that ran libvmaf.
        model: the model argument as given (built-in version name or JSON path).
        frames: one dict per frame in ``frameNum`` order; names as printed by libvmaf plus the
            canonical aliases (``adm2``, ``motion``, ``vif_scale0`` ...), see the module doc.
        pooled: libvmaf's ``pooled_metrics`` (``{metric: {"min", "max", "mean",
            "harmonic_mean"}}``), with the same aliases added.
        fps: scoring speed libvmaf reports in its log (frames per second).
        wall_s: measured wall time of the whole ffmpeg process (decode + scale + libvmaf).
        command: the ffmpeg command line that was run.
    """

    version: str
    ffmpeg_version: str
    model: str
    frames: list[dict[str, float]]
    pooled: dict[str, dict[str, float]]
    fps: float | None
    wall_s: float
    command: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        """Number of scored frames."""
        return len(self.frames)

    def metric(self, name: str) -> list[float]:
        """Per-frame values of one metric (canonical or printed name)."""
        try:
            return [frame[name] for frame in self.frames]
        except KeyError:
            have = sorted(self.frames[0]) if self.frames else []
            raise KeyError(f"metric {name!r} not in libvmaf output (have {have})") from None

    def mean(self, name: str = "vmaf") -> float:
        """Arithmetic mean of one metric over frames, as libvmaf pools it."""
        values = self.metric(name)
        return sum(values) / len(values)


# --------------------------------------------------------------------------------------------
# Availability and model files
# --------------------------------------------------------------------------------------------


@functools.cache
def libvmaf_available() -> bool:
    """True when the ffmpeg binary in use has the ``libvmaf`` filter."""
    try:
        exe = ffmpeg_exe()
    except ToolError:
        return False
    proc = subprocess.run(
        [exe, "-hide_banner", "-h", "filter=libvmaf"], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0 and "Filter libvmaf" in proc.stdout


@functools.cache
def libvmaf_version() -> str:
    """Version of the libvmaf inside the ffmpeg in use (read from a 2-frame log; cached)."""
    with tempfile.TemporaryDirectory(prefix="vmafdistill-libvmaf-version-") as tmp:
        log_path = Path(tmp) / "v.json"
        src = "testsrc2=size=64x64:rate=25:duration=0.08"
        log_opt = _filter_escape(_escape(str(log_path), 1))
        graph = f"[0:v][1:v]libvmaf=log_fmt=json:log_path={log_opt}"
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
               "-f", "lavfi", "-i", src, "-f", "lavfi", "-i", src,
               "-filter_complex", graph, "-f", "null", "-"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        try:
            return str(json.loads(log_path.read_text()).get("version", "unknown"))
        except (OSError, ValueError):
            raise ToolError(f"cannot run libvmaf: {_stderr_tail(proc.stderr)}") from None


def model_files_dir() -> Path:
    """Directory of the Netflix model JSON files shipped by ``ffmpeg-quality-metrics``.

    Located without importing the package (its import pulls in unrelated dependencies).
    """
    spec = importlib.util.find_spec("ffmpeg_quality_metrics")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "VMAF model JSON files come from the 'ffmpeg-quality-metrics' package, which is not "
            "installed: pip install 'vmafdistill[teacher]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "vmaf_models"
    if not path.is_dir():
        raise ModelError(f"ffmpeg-quality-metrics is installed but {path} is missing")
    return path


def _cache_dir() -> Path:
    """Writable cache directory for derived model files."""
    root = os.environ.get("VMAFDISTILL_CACHE")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "vmafdistill"
    return base / "models"


def float_model_json(name: str) -> Path:
    """Write (once) a float-feature copy of a Netflix model JSON and return its path.

    ``name`` is ``vmaf_v0.6.1``, ``vmaf_v0.6.1neg`` or ``vmaf_4k_v0.6.1`` (the
    ``vmaf_float_*`` spellings are accepted too). The copy differs from the file shipped by
    ``ffmpeg-quality-metrics`` only in the feature extractor it names: ``VMAF_feature_*``
    (float ADM/VIF/motion, what the teacher reimplements) instead of ``VMAF_integer_feature_*``.
    Per-feature options (``feature_opts_dicts``, e.g. the enhancement-gain limits of the ``neg``
    model) are kept. The file name carries a hash of the source, so an updated package yields a
    new file instead of a stale cache hit.
    """
    source_name = FLOAT_MODEL_SOURCES.get(name, name)
    if source_name not in FLOAT_MODEL_SOURCES.values():
        raise ModelError(
            f"no float variant known for model {name!r}; "
            f"choose one of {sorted(FLOAT_MODEL_SOURCES.values())}"
        )
    src = model_files_dir() / f"{source_name}.json"
    if not src.is_file():
        raise ModelError(f"model {name!r}: expected file {src} is missing")
    raw = src.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:12]
    doc = json.loads(raw)
    model = doc.get("model_dict")
    if not isinstance(model, dict) or "feature_names" not in model:
        raise ModelError(f"{src}: not a libvmaf model JSON (no model_dict.feature_names)")
    model["feature_names"] = [
        f.replace("VMAF_integer_feature_", "VMAF_feature_") for f in model["feature_names"]
    ]
    fdict = model.get("feature_dict", {})
    model["feature_dict"] = {
        ("VMAF_feature" if k == "VMAF_integer_feature" else k): v for k, v in fdict.items()
    }
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"

    out_dir = _cache_dir()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        # Read-only home (CI sandboxes): a per-user temp dir still lets the oracle run.
        out_dir = Path(tempfile.gettempdir()) / f"vmafdistill-models-{os.getuid()}"
        out_dir.mkdir(parents=True, exist_ok=True)
    float_name = next(k for k, v in FLOAT_MODEL_SOURCES.items() if v == source_name)
    out = out_dir / f"{float_name}-{digest}.json"
    if not out.is_file() or out.read_text() != text:
        # Write-then-rename so concurrent test workers never read a half-written model.
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, out)
    return out


# --------------------------------------------------------------------------------------------
# Frame counting
# --------------------------------------------------------------------------------------------


def _frame_bytes(width: int, height: int, pix_fmt: str) -> int:
    """Bytes of one raw frame; VideoInputError naming the supported formats otherwise."""
    try:
        return frame_size_bytes(width, height, pix_fmt)
    except KeyError:
        raise VideoInputError(
            f"unsupported raw pix_fmt {pix_fmt!r}; use one of {list(SUPPORTED_PIX_FMTS)}"
        ) from None


def _decoded_frames(path: Path, input_args: Sequence[str]) -> int:
    """Count frames by decoding the first video stream (for containers without an index)."""
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *input_args,
        "-i", input_url(path), "-map", "0:V:0", "-fps_mode", "passthrough",
        "-f", "null", "-progress", "pipe:1", "-nostats", "-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        error = VideoInputError(f"{path}: cannot decode: {_stderr_tail(proc.stderr)}")
        error.transient = killed_from_outside(proc.returncode)  # an OOM kill: retried
        raise error
    counts = re.findall(r"^frame=(\d+)$", proc.stdout, flags=re.MULTILINE)
    if not counts:
        raise VideoInputError(f"{path}: ffmpeg reported no frame count")
    return int(counts[-1])


def count_frames(
    path: str | Path, raw: RawSpec | None = None, *, decode: bool = True,
    decoder_threads: int | None = None,
) -> int | None:
    """Number of frames in a video file.

    Raw .yuv (``raw`` given) and .y4m files are counted from their size and frame headers; other
    containers are decoded (``decode=True``, with ``decoder_threads``: 1 counts a damaged file
    as the single-threaded scoring pass decodes it) or reported as unknown (``None``).
    """
    p = Path(path)
    if not p.is_file():
        raise VideoInputError(f"video file not found: {p}")
    if raw is not None:
        size = _frame_bytes(int(raw["width"]), int(raw["height"]), str(raw["pix_fmt"]))
        total = p.stat().st_size
        if total % size:
            raise VideoInputError(
                f"{p}: size {total} is not a multiple of one {raw['width']}x{raw['height']} "
                f"{raw['pix_fmt']} frame ({size} bytes); wrong raw spec?"
            )
        return total // size
    if p.suffix.lower() == ".y4m":
        return y4m_frame_count(p)
    return _decoded_frames(p, decoder_thread_args(decoder_threads)) if decode else None


# --------------------------------------------------------------------------------------------
# Running libvmaf
# --------------------------------------------------------------------------------------------


def _escape(value: str, levels: int) -> str:
    """Backslash-escape ``value`` for ``levels`` nested ffmpeg option parsers."""
    for _ in range(levels):
        value = "".join("\\" + c if c in _ESCAPE_CHARS else c for c in value)
    return value


def _stderr_tail(stderr: str, lines: int = 6) -> str:
    tail = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(tail) if tail else "(no output)"


def _input_args(path: Path, raw: RawSpec | None) -> list[str]:
    if raw is None:
        # The coded frames, as every decoder in this package reads them: autorotation would
        # score a phone video's display-rotated frames (and transpose one input of a pair only
        # when just one carries a rotation); container cropping would shrink one.
        return coded_picture_args()
    missing = {"width", "height", "pix_fmt"} - set(raw)
    if missing:
        raise VideoInputError(f"{path}: raw spec lacks {sorted(missing)}")
    _frame_bytes(int(raw["width"]), int(raw["height"]), str(raw["pix_fmt"]))  # validates pix_fmt
    return [
        "-f", "rawvideo", "-pix_fmt", str(raw["pix_fmt"]),
        "-s", f"{int(raw['width'])}x{int(raw['height'])}",
    ]  # fmt: skip


def _is_model_path(model: str) -> bool:
    return model.lower().endswith(".json") or os.sep in model or "/" in model


def _model_option(model: str) -> str:
    """The ``model=`` value (before filter-level escaping) for a version name or JSON path."""
    if _is_model_path(model):
        path = Path(model).expanduser().resolve()
        if not path.is_file():
            raise ModelError(f"VMAF model file not found: {path}")
        if "|" in str(path) or "\n" in str(path):
            # '|' separates models in libvmaf's option and cannot be escaped.
            raise ModelError(f"VMAF model path contains '|' or a newline, unusable: {path}")
        # Inside the model spec ':' separates keys, so the path gets one escaping level of its own.
        return "path=" + _escape(str(path), 1)
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", model):
        raise ModelError(f"invalid libvmaf model version name: {model!r}")
    return "version=" + model


def _canonical(name: str) -> str:
    if name == "VMAF_integer_feature_motion_sad_score":
        return "motion"
    name = name.removeprefix("integer_")
    return re.sub(r"_egl_[0-9.]+$", "", name)


def _with_aliases(metrics: dict[str, float]) -> dict[str, float]:
    out = dict(metrics)
    for name, value in metrics.items():
        alias = _canonical(name)
        if alias != name and alias not in metrics:
            out.setdefault(alias, value)
    return out


def libvmaf_score(
    ref: str | Path,
    dist: str | Path,
    *,
    model: str | Path = "vmaf_float_v0.6.1",
    ref_raw: RawSpec | None = None,
    dist_raw: RawSpec | None = None,
    scale_to: tuple[int, int] | None = None,
    scale_flags: str = "bicubic",
    n_threads: int | None = None,
    extra_features: list[str] | None = None,
    check_frame_counts: bool = True,
    decoder_threads: int | None = None,
) -> LibvmafResult:
    """Score ``dist`` against ``ref`` with ffmpeg's libvmaf filter.

    Args:
        ref: reference video (any container ffmpeg reads, or raw .yuv with ``ref_raw``).
        dist: distorted video (same, ``dist_raw`` for raw).
        model: libvmaf built-in version (``vmaf_v0.6.1``, ``vmaf_float_v0.6.1``,
            ``vmaf_float_v0.6.1neg``, ``vmaf_float_4k_v0.6.1``, ...) or a model JSON path.
        ref_raw, dist_raw: ``{"width", "height", "pix_fmt"}`` for headerless .yuv input.
        scale_to: ``(width, height)`` to scale the distorted video to before scoring (e.g. a
            640x360 ladder rung against its 1280x720 source).
        scale_flags: swscale flags for ``scale_to``. Plain ``bicubic`` takes CPU-specific SIMD
            paths whose rounding differs from swscale's C code; ``bicubic+accurate_rnd+bitexact``
            gives the same pixels on every CPU.
        n_threads: libvmaf worker threads (``None``: libvmaf's default).
        extra_features: additional libvmaf feature specs, e.g. ``["name=psnr"]``; options
            inside a spec are separated by ``:`` as in libvmaf's own syntax.
        check_frame_counts: count both inputs' frames (cheap for .y4m/raw, a decode pass for
            other containers) and require the scored frame count to equal both.
        decoder_threads: ffmpeg's decoder threads for both inputs (1: a damaged file's
            concealment is the same on every run).

    Returns:
        The parsed :class:`LibvmafResult`.

    Raises:
        VideoInputError: an input is missing or unreadable.
        FrameMismatchError: the inputs' frame counts differ from each other or from the
            number of frames libvmaf scored.
        ModelError: the model name or file is unknown/unloadable.
        ToolError: ffmpeg or libvmaf failed otherwise.
    """
    ref_p = Path(ref).expanduser().resolve()
    dist_p = Path(dist).expanduser().resolve()
    missing = [str(p) for p in (ref_p, dist_p) if not p.is_file()]
    if missing:
        raise VideoInputError("video file not found: " + ", ".join(missing))
    if not libvmaf_available():
        raise ToolError(f"the ffmpeg at {ffmpeg_exe()} was built without libvmaf")
    model_str = str(model)
    model_opt = _model_option(model_str)
    _check_formats(ref_p, ref_raw, dist_p, dist_raw, scale_to)
    counts = _input_frame_counts(ref_p, ref_raw, dist_p, dist_raw, decoder_threads) \
        if check_frame_counts else {}

    with tempfile.TemporaryDirectory(prefix="vmafdistill-oracle-") as tmp:
        log_path = Path(tmp) / "libvmaf.json"
        vmaf_args = _libvmaf_options(model_opt, log_path, n_threads, extra_features)
        threads = decoder_thread_args(decoder_threads)
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            *threads, *_input_args(dist_p, dist_raw), "-i", input_url(dist_p),
            *threads, *_input_args(ref_p, ref_raw), "-i", input_url(ref_p),
            "-filter_complex", _filter_graph(vmaf_args, scale_to, scale_flags), "-map", "[out]",
            "-fps_mode", "passthrough", "-f", "null", "-",
        ]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            try:
                _raise_for_failure(proc.stderr, model_str, ref_p, dist_p)
            except VmafDistillError as exc:  # killed (an OOM kill): another try may pass
                exc.transient = killed_from_outside(proc.returncode)
                raise
        try:
            log = json.loads(log_path.read_text())
        except (OSError, ValueError) as exc:
            raise ToolError(
                f"libvmaf wrote no readable log scoring {dist_p} against {ref_p}: {exc}; "
                f"ffmpeg said: {_stderr_tail(proc.stderr)}"
            ) from exc

    frames = _log_frames(log, counts, ref_p, dist_p)
    fps = log.get("fps")
    return LibvmafResult(
        version=str(log.get("version", "unknown")),
        ffmpeg_version=ffmpeg_version(),
        model=model_str,
        frames=frames,
        pooled=_log_pooled(log),
        fps=float(fps) if fps is not None else None,
        wall_s=wall,
        command=cmd,
    )


def _input_frame_counts(
    ref: Path, ref_raw: RawSpec | None, dist: Path, dist_raw: RawSpec | None,
    decoder_threads: int | None,
) -> dict[str, int | None]:
    """Both inputs' frame counts (``{"reference", "distorted"}``), decoded as the scoring pass
    decodes them; they must be equal."""
    counts = {"reference": count_frames(ref, ref_raw, decoder_threads=decoder_threads),
              "distorted": count_frames(dist, dist_raw, decoder_threads=decoder_threads)}
    if counts["reference"] != counts["distorted"]:
        raise FrameMismatchError(
            f"frame counts differ: reference {ref} has {counts['reference']}, "
            f"distorted {dist} has {counts['distorted']}"
        )
    return counts


def _libvmaf_options(
    model_opt: str, log_path: Path, n_threads: int | None, extra_features: list[str] | None
) -> str:
    """The libvmaf filter's ``key=value:...`` options (each value escaped once; the model path
    was already escaped once more for libvmaf's own model syntax)."""
    opts = [
        f"model={_escape(model_opt, 1)}",
        "log_fmt=json",
        f"log_path={_escape(str(log_path), 1)}",
        # Never pad the shorter input with repeats of its last frame (framesync default).
        "shortest=1",
        "repeatlast=0",
        "eof_action=endall",
    ]
    if n_threads is not None:
        opts.append(f"n_threads={int(n_threads)}")
    if extra_features:
        opts.append("feature=" + _escape("|".join(extra_features), 1))
    return ":".join(opts)


def _filter_graph(vmaf_args: str, scale_to: tuple[int, int] | None, scale_flags: str) -> str:
    """Input 0 (distorted, optionally scaled) and input 1 (reference) into libvmaf.

    Both inputs are re-stamped 0, 1, 2, ... in a common time base, so framesync pairs frame i
    of the distorted with frame i of the reference whatever the containers' timestamps.
    """
    restamp = "settb=1/25,setpts=N"
    dist_chain = f"[0:V]{restamp}"
    if scale_to is not None:
        w, h = (int(v) for v in scale_to)
        dist_chain += f",scale={w}:{h}:flags={_escape(scale_flags, 2)}"
    # The option string goes through the filtergraph parser once more.
    vmaf = f"libvmaf={_filter_escape(vmaf_args)}"
    return f"{dist_chain}[dist];[1:V]{restamp}[ref];[dist][ref]{vmaf}[out]"


def _log_frames(
    log: dict[str, Any], counts: dict[str, int | None], ref: Path, dist: Path
) -> list[dict[str, float]]:
    """Per-frame metrics of a libvmaf JSON log with aliases; checked against the input counts."""
    frames_raw = sorted(log.get("frames", []), key=lambda f: int(f["frameNum"]))
    nums = [int(f["frameNum"]) for f in frames_raw]
    if nums != list(range(len(nums))):
        raise ToolError(f"libvmaf log frame numbers are not 0..n-1: {nums[:5]}...")
    frames = [_with_aliases({k: float(v) for k, v in f["metrics"].items()}) for f in frames_raw]
    n = len(frames)
    for role, count in counts.items():
        if count is not None and count != n:
            path = ref if role == "reference" else dist
            raise FrameMismatchError(f"libvmaf scored {n} frames but the {role} {path} has {count}")
    if n == 0:
        raise VideoInputError(f"libvmaf scored no frames of {dist} against {ref}")
    return frames


def _log_pooled(log: dict[str, Any]) -> dict[str, dict[str, float]]:
    """libvmaf's ``pooled_metrics`` with the canonical aliases added."""
    pooled_raw = log.get("pooled_metrics", {})
    pooled = dict(pooled_raw)
    for name, value in pooled_raw.items():
        alias = _canonical(name)
        if alias not in pooled_raw:
            pooled.setdefault(alias, value)
    return pooled


def _known_format(path: Path, raw: RawSpec | None) -> tuple[int, int, str] | None:
    """(width, height, pix_fmt) when it is known without probing (raw spec or y4m header)."""
    if raw is not None:
        return int(raw["width"]), int(raw["height"]), str(raw["pix_fmt"])
    if path.suffix.lower() == ".y4m":
        w, h, fmt, _ = y4m_header(path)
        return w, h, fmt
    return None


def _bit_depth(pix_fmt: str) -> int:
    """A raw pixel format's bit depth, by its layout (``yuv420p10`` and ``yuv420p10le`` alike:
    the suffix-only reading took the alias for 8-bit, and ffmpeg converted it silently)."""
    from .io.video import pix_fmt_layout

    try:
        return int(pix_fmt_layout(pix_fmt).bit_depth)
    except Exception:  # a format this package does not lay out: ffmpeg's own reading
        match = re.search(r"(\d+)(?:le|be)$", pix_fmt)
        return int(match.group(1)) if match else 8


def _check_formats(
    ref: Path,
    ref_raw: RawSpec | None,
    dist: Path,
    dist_raw: RawSpec | None,
    scale_to: tuple[int, int] | None,
) -> None:
    """Refuse pairs libvmaf would reject, or that ffmpeg would silently convert.

    ffmpeg's format negotiation inserts a scaler when the two inputs' pixel formats differ, so an
    8-bit reference against a 10-bit distorted video would be scored after an implicit bit-depth
    conversion. Only checked where formats are known cheaply (.y4m and raw input).
    """
    ref_fmt, dist_fmt = _known_format(ref, ref_raw), _known_format(dist, dist_raw)
    if ref_fmt is None or dist_fmt is None:
        return
    if _bit_depth(ref_fmt[2]) != _bit_depth(dist_fmt[2]):
        raise FrameMismatchError(
            f"bit depths differ: reference {ref} is {ref_fmt[2]}, distorted {dist} is "
            f"{dist_fmt[2]}; convert one explicitly"
        )
    dist_size = tuple(int(v) for v in scale_to) if scale_to else dist_fmt[:2]
    if dist_size != ref_fmt[:2]:
        what = f"scale_to {dist_size[0]}x{dist_size[1]}" if scale_to else "distorted"
        raise FrameMismatchError(
            f"frame sizes differ: reference {ref} is {ref_fmt[0]}x{ref_fmt[1]}, {what} "
            f"({dist}) is {dist_size[0]}x{dist_size[1]}; pass scale_to=(width, height)"
        )


def _filter_escape(args: str) -> str:
    """Escape a filter's argument string for the filtergraph parser (``[],;'\\`` are special)."""
    return "".join("\\" + c if c in "\\'[],;" else c for c in args)


def _raise_for_failure(stderr: str, model: str, ref: Path, dist: Path) -> None:
    """Map an ffmpeg failure to the most specific error, naming what to fix."""
    tail = _stderr_tail(stderr)
    if "could not load libvmaf model" in stderr or "could not read model" in stderr:
        raise ModelError(f"libvmaf could not load model {model!r}: {tail}")
    if "input width must match" in stderr or "input height must match" in stderr:
        raise FrameMismatchError(
            f"frame sizes of {dist} and {ref} differ (pass scale_to=(width, height)): {tail}"
        )
    if "No such file" in stderr or "Invalid data found" in stderr:
        raise VideoInputError(f"ffmpeg could not read {dist} or {ref}: {tail}")
    raise ToolError(f"ffmpeg/libvmaf failed scoring {dist} against {ref}: {tail}")
