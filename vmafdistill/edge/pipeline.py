"""The edge chain, torch-free: decode -> shots -> features -> predict -> quality tokens.

One ffmpeg process decodes the distorted video and pipes only its luma plane (``extractplanes=y``
copies the decoder's Y samples, no conversion; :mod:`.decode`), or, for a student reading an
H.264 stream's block QPs, one in-process PyAV decode gives the luma and the block QPs together
(:mod:`.pyav_decode`, ffmpeg's path whenever it declines); a reader thread drains the decoder
into a short queue of large chunks, so it keeps decoding while Python cuts shots from per-frame
histograms and computes the pixel features (numpy, allocation-free per frame; optionally in
``threads`` threads); a second, decode-free ffmpeg process lists the packet sizes (bitrate per
shot) and the codec, and for students that read the encoder's quantizer a third logs the stream
headers (:mod:`vmafdistill.io.quantizer`). Features and metadata are pooled per shot by the corpus
builder's own function (:func:`vmafdistill.features.shot_rows.shot_feature_rows`), then the ONNX
student predicts and :mod:`vmafdistill.edge.tokens` labels each shot.

:func:`analyze_video` runs these steps, top to bottom:

1. options (:func:`_plan`): the card's features and :class:`~.options.EdgeOptions` decide which
   frames get pixel features at which pixel step (:mod:`.options` documents the speed options);
2. frame pass (:func:`_first_pass`): probe, decode, cut detection and pixel features
   (:func:`frame_pass`), the packets read beside them (:class:`_PacketReader`);
3. renditions (:func:`_shot_rows`): shot rows of the video, or of every rendition of an
   adaptive-bitrate recording decoded again at its own size (:mod:`.renditions`);
4. records (:func:`_records`): the student's predictions turned into
   :class:`~.tokens.ShotRecord` s, shots that cannot be trusted flagged (:mod:`.records`),
   then the summary.

A student whose card lists no pixel feature (e.g. ``rate7``: stream metadata only) needs no
pixel feature for its *prediction*; then the pixel features only feed the quality token's
``issue`` heuristic and are computed on every ``issue_frame_step``-th frame (default 8, card
``edge.issue_frame_step``), each with its true previous frame; the prediction is unchanged
(it never reads them) and every frame still feeds the cut detector (8-bit histograms). A
temporal-only student is the same, plus the every-frame temporal pass. The summary's
``pixel_features`` says which frames were measured and what for.

``threads``, ``decode_threads``, ``prefetch``, ``chunk`` and ``decoder`` change speed only,
never results.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..config import checked_size
from ..errors import ModelError, VideoInputError
from ..features import compiled
from ..features.frame_numpy import (
    FEATURE_NAMES,
    RawStats,
    finalize,
    frame_histogram,
    raw_stats,
    temporal_features,
)
from ..features.registry import canonical_codec
from ..features.shot_rows import shot_feature_rows
from ..io.mb_quantizer import MB_QP_CODECS
from ..io.packets import read_rate
from ..io.truncation import file_truncation
from ..shots import ShotDetector
from .decode import DecodeLog, decode_luma, picture_changes
from .options import (
    CUT_MIN_SAMPLES,
    TEMPORAL_MIN_SAMPLES,
    EdgeOptions,
    auto_cut_step,
    auto_temporal_step,
    default_ref_size,
    needs_mb_quantizer,
    needs_pixel_features,
    needs_quantizer,
    temporal_only,
)
from .playlist import check_playlist, refuse_dash
from .pyav_decode import PyavDeclinedError, PyavFrames, decode_luma_pyav
from .records import (
    VideoReport,
    check_band_basis,
    domain_flags,
    flag_hidden_frames,
    flag_short_shots,
    flag_truncated,
    invalidate,
    make_records,
    shot_records,
    summarize,
)
from .renditions import (
    check_picture_size,
    off_rate_shots,
    picture_runs,
    recording_rate,
    rescaled_flag,
    rows_per_rendition,
    set_run_times,
    wrong_runs,
)
from .tokens import DEFAULT_RULES, ShotRecord, merge_rules

__all__ = [
    "CUT_MIN_SAMPLES",
    "TEMPORAL_MIN_SAMPLES",
    "DecodeLog",
    "EdgeOptions",
    "VideoReport",
    "analyze_video",
    "auto_cut_step",
    "auto_temporal_step",
    "cut_histograms",
    "decode_luma",
    "default_ref_size",
    "domain_flags",
    "frame_pass",
    "needs_mb_quantizer",
    "needs_pixel_features",
    "needs_quantizer",
    "picture_changes",
    "shot_feature_rows",
    "shot_records",
    "temporal_only",
]


# --------------------------------------------------------------------------------------------
# Decoding and the per-frame pass
# --------------------------------------------------------------------------------------------


def _concat_raw(parts: Sequence[RawStats]) -> RawStats:
    """Frames of several :class:`RawStats` (same size and bit depth) as one, in order."""
    if len(parts) == 1:
        return parts[0]
    f0 = parts[0]
    cols = {
        k: np.concatenate([getattr(r, k) for r in parts])
        for k in RawStats.__dataclass_fields__
        if k not in ("bit_depth", "height", "width")
    }
    return RawStats(bit_depth=f0.bit_depth, height=f0.height, width=f0.width, **cols)


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous near-equal (start, stop) ranges covering 0..n (empty ones dropped)."""
    edges = np.linspace(0, n, max(1, parts) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


_HIST_LOCAL = threading.local()


def cut_histograms(
    y: np.ndarray,
    bit_depth: int,
    frames: Sequence[int] | np.ndarray | None = None,
    *,
    step: int = 1,
) -> np.ndarray:
    """(m, 2**bit_depth) int64 code-value histograms of frames ``y[frames]`` (default: all),
    each from every ``step``-th row and column.

    Equal to :func:`~vmafdistill.features.frame_numpy.frame_histogram` of ``y[i, ::step,
    ::step]`` per frame, from the compiled kernel where it takes the frames
    (:mod:`~vmafdistill.features.compiled`). In numpy, for 8-bit frames of even width at step 1
    two neighbouring pixels are counted at once (65536 joint bins); every numpy path fills a
    per-thread preallocated index buffer, so no per-frame temporary is allocated (the
    histograms of every frame feed the cut detector, also when no pixel feature is computed).
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    idx = range(y.shape[0]) if frames is None else [int(i) for i in frames]
    out = np.empty((len(idx), 1 << bit_depth), dtype=np.int64)
    if not len(idx):
        return out
    if compiled.plane_ok(y[0]):
        histogram = compiled.kernel().histogram  # type: ignore[union-attr]
        for j, i in enumerate(idx):
            histogram(y[i], step, bit_depth, out[j])  # rejects values >= 2**bit_depth
        return out
    if step > 1:
        sub = y[:, ::step, ::step]
        key = ("sub", sub.shape[1:])
        buf = getattr(_HIST_LOCAL, "sub_buf", None)
        if buf is None or getattr(_HIST_LOCAL, "sub_key", None) != key:
            buf = _HIST_LOCAL.sub_buf = np.empty(sub.shape[1:], dtype=np.intp)
            _HIST_LOCAL.sub_key = key
        nbins = 1 << bit_depth
        for j, i in enumerate(idx):
            np.copyto(buf, sub[i], casting="unsafe")
            counts = np.bincount(buf.ravel(), minlength=nbins)
            if counts.shape[0] > nbins:
                raise ValueError(f"sample value {counts.shape[0] - 1} exceeds {nbins - 1} "
                                 f"(bit depth {bit_depth})")
            out[j] = counts
        return out
    h, w = y.shape[1:]
    if y.dtype != np.uint8 or w % 2 or not y.flags.c_contiguous:
        for j, i in enumerate(idx):
            out[j] = frame_histogram(y[i], bit_depth)
        return out
    buf = getattr(_HIST_LOCAL, "buf", None)
    if buf is None or buf.shape[0] != h * w // 2:
        buf = _HIST_LOCAL.buf = np.empty(h * w // 2, dtype=np.intp)
    pairs = y.reshape(y.shape[0], -1).view(np.uint16)
    out[:, 256:] = 0
    for j, i in enumerate(idx):
        np.copyto(buf, pairs[i])
        joint = np.bincount(buf, minlength=1 << 16).reshape(256, 256)
        row = out[j, :256]
        np.sum(joint, axis=0, out=row)  # one byte of each pair ...
        row += joint.sum(axis=1)  # ... and the other (either byte order)
    return out


def _measure(y: np.ndarray, sel: np.ndarray, before: np.ndarray | None, *, bit_depth: int,
             frame_step: int, pairs: bool) -> RawStats:
    """Raw stats of frames ``y[sel]`` (sorted indices), each with its previous frame (``before``
    for the chunk's first); without ``pairs`` the sampled frames of a ``frame_step`` > 1 pass
    get no frame-pair sums (an every-frame temporal pass gives the temporal features)."""
    if frame_step == 1:  # sel is a contiguous run a..b-1
        a, b = int(sel[0]), int(sel[-1]) + 1
        return raw_stats(y[a:b], bit_depth, before if a == 0 else y[a - 1])
    return _concat_raw([
        raw_stats(y[i], bit_depth, (before if i == 0 else y[i - 1]) if pairs else None)
        for i in sel.tolist()
    ])


def _chunk_features(
    y: np.ndarray, sel: np.ndarray, prev: np.ndarray | None, pool: ThreadPoolExecutor | None,
    *, bit_depth: int, frame_step: int, threads: int, pairs: bool,
) -> tuple[dict[str, np.ndarray], RawStats | None]:
    """Pixel features of one chunk's frames ``sel`` (NaN elsewhere) and their raw stats (None
    when no frame of the chunk is measured); ``threads`` contiguous runs, in ``pool``."""
    n = y.shape[0]
    feats = {k: np.full(n, math.nan) for k in FEATURE_NAMES}
    if not sel.size:
        return feats, None
    runs = [sel[a:b] for a, b in _split(sel.size, threads)]
    measure = functools.partial(_measure, bit_depth=bit_depth, frame_step=frame_step,
                                pairs=pairs)
    if pool is None or len(runs) == 1:
        raws = [measure(y, r, prev) for r in runs]
    else:
        raws = list(pool.map(measure, [y] * len(runs), runs, [prev] * len(runs)))
    raw = _concat_raw(raws)
    fin = finalize(raw)
    for k in FEATURE_NAMES:
        feats[k][sel] = fin[k]
    return feats, raw


def _feed_cuts(detector: ShotDetector, y: np.ndarray, sel: np.ndarray, raw: RawStats | None,
               *, bit_depth: int, shot_pixel_step: int) -> None:
    """Every frame of the chunk to the cut detector: subsampled histograms at a pixel step
    > 1, else the measured frames' own full-resolution histograms and those of the rest."""
    if shot_pixel_step > 1:
        detector.update_hist(cut_histograms(y, bit_depth, step=shot_pixel_step), bit_depth)
        return
    n = y.shape[0]
    if raw is not None and sel.size == n:
        hist = raw.hist
    else:  # histograms of the frames without features
        hist = np.empty((n, 1 << bit_depth), dtype=np.int64)
        rest = np.ones(n, dtype=bool)
        if raw is not None:
            hist[sel] = raw.hist
            rest[sel] = False
        hist[rest] = cut_histograms(y, bit_depth, np.flatnonzero(rest))
    detector.update_hist(hist, bit_depth)


def frame_pass(
    chunks: Iterator[np.ndarray],
    *,
    bit_depth: int,
    detector: ShotDetector,
    frame_step: int = 1,
    shot_pixel_step: int = 1,
    threads: int = 1,
    temporal_step: int | None = None,
) -> dict[str, np.ndarray]:
    """Feed every frame to ``detector`` and compute pixel features on every ``frame_step``-th.

    Each chunk's measured frames are split into ``threads`` contiguous runs computed in
    parallel (each run gets its true previous frame, so results do not depend on ``threads``).
    With ``temporal_step`` s, ``temporal_diff`` and ``temporal_std`` are instead computed on
    *every* frame from every s-th row and column
    (:func:`~vmafdistill.features.frame_numpy.temporal_features`; s = 1 is exact).
    Returns ``{feature: (N,) float64}`` with NaN on frames that were not measured.
    """
    if frame_step < 1 or shot_pixel_step < 1 or threads < 1:
        raise ValueError("frame_step, shot_pixel_step and threads must be >= 1")
    parts: list[dict[str, np.ndarray]] = []
    prev: np.ndarray | None = None
    start = 0
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    pairs = temporal_step is None  # else the sampled frames need no frame-pair sums
    try:
        for y in chunks:
            n = y.shape[0]
            sel = np.flatnonzero(np.arange(start, start + n) % frame_step == 0)
            feats, raw = _chunk_features(y, sel, prev, pool, bit_depth=bit_depth,
                                         frame_step=frame_step, threads=threads, pairs=pairs)
            if temporal_step is not None:
                feats.update(temporal_features(y, prev, bit_depth, step=temporal_step))
            _feed_cuts(detector, y, sel, raw, bit_depth=bit_depth,
                       shot_pixel_step=shot_pixel_step)
            parts.append(feats)
            prev = y[-1]
            start += n
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    if not parts:
        return {k: np.zeros(0) for k in FEATURE_NAMES}
    return {k: np.concatenate([p[k] for p in parts]) for k in FEATURE_NAMES}


def _set_times_from_timestamps(rows: list[dict[str, Any]], frame_times_s: np.ndarray,
                               frame_durations_s: np.ndarray, fps: float) -> None:
    """Shot start/end from the decoded frames' timestamps (true times on variable-rate video).

    Rates and features keep the nominal 1/fps per frame the students were trained with; only
    the times a reader sees move. A shot ends where the next frame starts (the last one: its
    packet's duration, else 1/fps).
    """
    n = frame_times_s.shape[0]
    last = float(frame_durations_s[-1]) if frame_durations_s[-1] > 0 else 1.0 / fps
    for row in rows:
        start, stop = int(row["start_frame"]), int(row["stop_frame"])
        end = frame_times_s[stop] if stop < n else frame_times_s[-1] + last
        row["start_s"] = float(frame_times_s[start])
        row["end_s"] = float(end)
        row["duration_s"] = float(end - frame_times_s[start])



# --------------------------------------------------------------------------------------------
# The chain, step by step: options, frame pass, renditions, records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Step 1, options: the video, the student's card and features, and the options."""

    path: str
    card: Mapping[str, Any]
    names: list[str]  # the student's input features, in its column order
    options: EdgeOptions
    step: int  # pixel-feature frame step (EdgeOptions.pixel_step)
    ref_size: tuple[int, int] | None  # the reference size the caller gave


def _plan(path: str | os.PathLike[str], predictor: Any, card: Mapping[str, Any] | None,
          options: EdgeOptions | None, ref_size: tuple[int, int] | None) -> _Plan:
    """The card (the predictor's unless given), its features and the options (the card's
    ``edge`` section unless given)."""
    if card is None:
        if isinstance(predictor, Future):
            raise ValueError("analyze_video: pass card= with a Future predictor")
        if not hasattr(predictor, "card"):  # a model path was an AttributeError on .card
            raise ModelError(f"analyze_video: predictor={predictor!r}: needs a Predictor "
                             "(vmafdistill.edge.Predictor(model_path)), or a Future with card=")
        card = predictor.card
    if ref_size is not None:  # "1280x720" was read as its first two characters, a 1x2 frame
        ref_size = checked_size("ref_size", ref_size)
    if options is None:
        options = EdgeOptions.from_card(card.get("edge"))
    refuse_dash(path)
    check_playlist(path)
    names = list(card["feature_names"])
    return _Plan(os.fspath(path), card, names, options, options.pixel_step(names), ref_size)


class _PacketReader:
    """The video's packet list (:func:`~vmafdistill.io.packets.read_packets`), read by a thread
    beside the probe and the decode (decode-free); its errors surface in the caller's thread.
    ``mb_source``: the block QPs come from the caller's own decode (see :func:`read_packets`)."""

    def __init__(self, path: str, *, quantizer: bool, mb_quantizer: bool = False,
                 mb_source: Future[Any] | None = None) -> None:
        from ..io.packets import read_packets

        self.path = path
        self.packets: Any = None
        self.error: Exception | None = None
        self.seconds = 0.0
        self._codec_ok = False
        self._stop = threading.Event()
        kw = {"quantizer": quantizer, "mb_quantizer": mb_quantizer, "mb_source": mb_source,
              "picture_bytes": True, "stop": self._stop}
        self._thread = threading.Thread(target=self._read, args=(read_packets, kw),
                                        daemon=True)
        self._thread.start()

    def _read(self, read_packets: Callable[..., Any], kw: dict[str, Any]) -> None:
        t = time.perf_counter()
        try:
            self.packets = read_packets(self.path, **kw)
        except Exception as exc:  # re-raised in the caller's thread
            self.error = exc
        self.seconds = time.perf_counter() - t

    def check_codec(self) -> None:
        """A codec no student knows is the input's problem: say so before decoding it all."""
        if self.packets is not None and not self._codec_ok:
            try:
                canonical_codec(self.packets.codec)
            except ValueError as exc:
                raise VideoInputError(f"{self.path}: {exc}") from None
            self._codec_ok = True

    def join(self) -> None:
        """Wait for the reader; interrupted (a Ctrl-C while waiting), end its decode first."""
        try:
            self._thread.join()
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        """End the reader's block-QP decode now: the caller is leaving (a Ctrl-C or an error
        waited for that second decode of the whole file, 30 s into a 15-minute 720p one)."""
        self._stop.set()

    def result(self) -> Any:
        """The packets, once read (the reader's error, or an unknown codec, raised here)."""
        self.join()
        if self.error is not None:
            raise self.error
        self.check_codec()
        return self.packets


@dataclass(frozen=True)
class _FirstPass:
    """Step 2, the frame pass: what one decode of the video and its packet list gave."""

    info: Any  # probe_video's VideoInfo
    ref: tuple[int, int]  # the reference size ...
    ref_rule: str  # ... and the rule that chose it (default_ref_size, or "given")
    detector: ShotDetector  # fed every frame: the shots of a single-rendition video
    cut_step: int
    temporal_step: int | None
    per_frame: dict[str, np.ndarray]
    log: DecodeLog
    aligned: Any  # align_packets_to_frames: the packets of the decoded frames, their times
    decoder: str  # "pyav" (in-process) or "ffmpeg", with why PyAV declined, if it did
    t_probe: float
    t_frames: float
    t_packets: float

    @property
    def n(self) -> int:
        """Frames decoded."""
        return int(self.per_frame["mean_luma"].shape[0])


def _luma_chunks(plan: _Plan, info: Any, log: DecodeLog, pyav: PyavFrames | None
                 ) -> Iterator[np.ndarray]:
    """The decoder's luma chunks: in-process with ``pyav`` (:mod:`.pyav_decode`), else
    ffmpeg's pipe (:func:`decode_luma`, which fills ``log``)."""
    o = plan.options
    if pyav is not None:
        return decode_luma_pyav(plan.path, width=info.width, height=info.height, out=pyav,
                                chunk=o.chunk, prefetch=o.prefetch, threads=o.decode_threads)
    return decode_luma(plan.path, width=info.width, height=info.height,
                       bit_depth=info.bit_depth, chunk=o.chunk, prefetch=o.prefetch,
                       threads=o.decode_threads, log=log)


def _decoded_chunks(chunks: Iterator[np.ndarray], predictor: Any, reader: _PacketReader,
                    progress: Callable[[int], None] | None) -> Iterator[np.ndarray]:
    """``chunks`` passed on; a model that failed to load, or a codec no student knows, stops
    the decode at the next chunk; ``progress`` hears the frame count."""
    pending = isinstance(predictor, Future)
    done = 0
    for y in chunks:
        if pending and predictor.done() and predictor.exception() is not None:
            raise predictor.exception()  # a bad model stops the decode at once
        reader.check_codec()
        yield y
        done += y.shape[0]
        if progress is not None:
            progress(done)


def _in_process_decode(plan: _Plan, info: Any) -> bool:
    """Whether to decode in-process (:mod:`.pyav_decode`): the student reads block QPs, the
    stream is 8-bit H.264, ``decoder`` allows it, and PyAV imports (else ffmpeg's pipe, with the
    block QPs from their own decode in the packet thread)."""
    if (plan.options.decoder != "auto" or not needs_mb_quantizer(plan.names)
            or info.codec not in MB_QP_CODECS or info.bit_depth != 8):
        return False
    from ..io.mb_quantizer import pyav_available

    return pyav_available()


def _frame_pts(packets: Any, pyav: PyavFrames) -> list[int | None]:
    """ffmpeg's timestamps of the in-process decode's frames, through their packet numbers
    (the packet list is ffmpeg's, in presentation order; ``demux_index`` maps it back)."""
    if pyav.mb is None or packets.demux_index is None or pyav.mb.n_packets != len(packets):
        raise PyavDeclinedError("its demuxer and ffmpeg's list different packets")
    position = np.empty(len(packets), dtype=np.int64)
    position[packets.demux_index] = np.arange(len(packets))
    return [int(packets.pts[position[k]]) for k in pyav.frame_packets]


def _first_pass(plan: _Plan, predictor: Any, progress: Callable[[int], None] | None,
                t0: float) -> _FirstPass:
    """Probe, then one decode feeding the cut detector and the pixel features
    (:func:`frame_pass`) while the packets are read beside it; packets matched to frames.

    In-process when :func:`_in_process_decode` says so: one decode then gives the pixels and
    the block QPs. A stream it cannot reproduce exactly (:class:`PyavDeclinedError`: damage,
    picture changes, a mid-GOP start ...) is decoded again by ffmpeg, whose path handles those;
    the summary's ``pixel_features.decoder`` says which decoder ran, and why PyAV declined."""
    from ..io.video import probe_video

    if plan.path.lower().endswith(".yuv"):  # the probe asked for a size predict cannot take
        raise VideoInputError(f"{plan.path}: raw YUV (no header, no codec): predict reads "
                              "encoded deliveries (mp4, mkv, ts, ...); encode it first")
    # ffmpeg -i in every install: the same rate and format everywhere, and no PyAV import
    # (0.1-0.2 s CPU) for a student or stream that does not need it
    info = probe_video(plan.path, backend="ffmpeg")
    t_probe = time.perf_counter() - t0
    if not info.fps or not math.isfinite(info.fps):
        raise VideoInputError(f"{plan.path}: frame rate unknown")
    check_picture_size(plan.path, info.width, info.height)
    if (expect := getattr(progress, "expect", None)) is not None and info.duration_s:
        expect(max(1, round(info.duration_s * info.fps)))
    declined = None
    if _in_process_decode(plan, info):
        try:
            return _frame_and_packet_pass(plan, info, t_probe, predictor, progress, True)
        except PyavDeclinedError as exc:
            declined = f"ffmpeg (in-process decode declined: {exc})"
    # outside the except: its traceback would hold the first attempt's frames during the rerun
    fp = _frame_and_packet_pass(plan, info, t_probe, predictor, progress, False)
    return fp if declined is None else replace(fp, decoder=declined)


def _frame_and_packet_pass(plan: _Plan, info: Any, t_probe: float, predictor: Any,
                           progress: Callable[[int], None] | None, in_process: bool
                           ) -> _FirstPass:
    """:func:`_first_pass`'s decode, ffmpeg's or in-process (raising PyavDeclinedError)."""
    from ..io.packets import align_packets_to_frames

    p, options = plan.path, plan.options
    pyav = PyavFrames() if in_process else None
    mb_source: Future[Any] | None = Future() if in_process else None
    reader = _PacketReader(p, quantizer=needs_quantizer(plan.names),
                           mb_quantizer=needs_mb_quantizer(plan.names), mb_source=mb_source)
    try:
        if plan.ref_size is not None:
            ref, ref_rule = (int(plan.ref_size[0]), int(plan.ref_size[1])), "given"
        else:
            ref, ref_rule = default_ref_size(plan.card["ref_size"], info.width, info.height)
        det = ShotDetector(fps=info.fps, **dict(options.shots))
        cut_step = options.cut_step(info.width, info.height, plan.step)
        temporal_step = options.temporal_step(plan.names, info.width, info.height)
        log = DecodeLog()
        t1 = time.perf_counter()
        # closing: an error in the feature pass stops the decoder at once (its thread or
        # process would otherwise wait on a full queue for as long as the error is held)
        with contextlib.closing(_luma_chunks(plan, info, log, pyav)) as chunks:
            per_frame = frame_pass(
                _decoded_chunks(chunks, predictor, reader, progress),
                bit_depth=info.bit_depth, detector=det, frame_step=plan.step,
                shot_pixel_step=cut_step, threads=options.threads, temporal_step=temporal_step)
        t_frames = time.perf_counter() - t1
    except BaseException:
        reader.cancel()
        raise
    finally:
        if mb_source is not None and not mb_source.done():
            mb_source.set_result(pyav.mb if pyav is not None else None)
        reader.join()  # never leave the packet reader's ffmpeg running behind an error
    packets = reader.result()
    if (rate := read_rate(info, packets)) != info.fps:
        info = replace(info, fps=rate)
        det.set_fps(rate)
    if pyav is not None:
        log.frame_pts[:] = _frame_pts(packets, pyav)
    n = per_frame["mean_luma"].shape[0]
    if n == 0:
        raise VideoInputError(f"{p}: no frames could be decoded (empty or undecodable video)")
    # Packets the decoder never output (an edit list's pre-roll, RASL pictures, lost pictures)
    # are left out here and flagged on the shot they precede.
    aligned = align_packets_to_frames(packets, log.frame_pts or None, n)
    return _FirstPass(info=info, ref=ref, ref_rule=ref_rule, detector=det, cut_step=cut_step,
                      temporal_step=temporal_step, per_frame=per_frame, log=log,
                      aligned=aligned, decoder="pyav" if in_process else "ffmpeg",
                      t_probe=t_probe, t_frames=t_frames, t_packets=reader.seconds)


def _loaded(predictor: Any, names: Sequence[str]) -> Any:
    """The predictor (waited for when loading in the background); its card must be the one
    the chain read the features from."""
    if isinstance(predictor, Future):
        predictor = predictor.result()
    if list(predictor.feature_names) != list(names):
        raise ModelError(f"{getattr(predictor, 'model_path', 'model')}: its card's features "
                         "differ from the card given")
    return predictor


def _shot_rows(plan: _Plan, fp: _FirstPass
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int] | None, float]:
    """Step 3, renditions: the shot rows, the runs of equal pictures ([] when the pictures
    never change), for a recording of several renditions the run of each row, and the frame
    rate the video is read at.

    An adaptive-bitrate recording has every rendition decoded again at its own size
    (:func:`~.renditions.rows_per_rendition`) and is read at its longest run's rate
    (:func:`~.renditions.recording_rate`); shot times come from the frames' timestamps.
    """
    info, packets = fp.info, fp.aligned.packets
    runs = picture_runs(plan.path, fp.log, info, fp.n)
    fps = recording_rate(runs, packets, fp.n, info.fps) if len(runs) > 1 else info.fps
    set_run_times(runs, fp.aligned.frame_times_s, fps)
    run_of_row: list[int] | None = None
    if len(runs) > 1:
        rows, run_of_row = rows_per_rendition(
            plan.path, runs, fp.n, bit_depth=info.bit_depth, packets=packets, names=plan.names,
            options=plan.options, step=plan.step, fps=fps, card_ref=plan.card["ref_size"],
            ref_given=fp.ref if fp.ref_rule == "given" else None, frame_pass=frame_pass)
    else:
        rows = shot_feature_rows(
            fp.per_frame, fp.detector.shots(), packets.picture_sizes,
            ref_size=(int(fp.ref[0]), int(fp.ref[1])), codec=packets.codec, fps=info.fps,
            width=info.width, height=info.height, frame_qp=packets.qp,
            frame_mb_qp=packets.mb_qp,
        )
    if fp.aligned.frame_times_s is not None:
        _set_times_from_timestamps(rows, fp.aligned.frame_times_s, packets.duration_s, fps)
    return rows, runs, run_of_row, fps


def _predict(predictor: Any, rows: Sequence[Mapping[str, Any]],
             names: Sequence[str], read: Sequence[str] | None = None) -> np.ndarray:
    """The student's prediction per row (NaN where a feature it reads is not finite).

    ``read``: the inputs the student reads (card ``used_features``, from its structure); the
    others are fed as 0, which it never looks at (a NaN there left the shot unscored)."""
    x = np.array([[r[k] for k in names] for r in rows], dtype=np.float32).reshape(
        len(rows), len(names))
    if read:
        read_set = set(read)
        x[:, [j for j, n in enumerate(names) if n not in read_set]] = 0.0
    finite = np.isfinite(x).all(axis=1)
    preds = np.full(len(rows), np.nan, dtype=np.float32)
    if finite.any():
        preds[finite] = predictor.predict(x[finite])
    return preds


#: On every shot of an H.264 delivery whose block QPs could not be read, for a student that
#: reads them (``scene_mb_qp`` then falls back to the slice QP).
NO_BLOCK_QP_FLAG = "no_block_qp"


def _records(plan: _Plan, fp: _FirstPass, rules: Mapping[str, Any],
             rows: list[dict[str, Any]], preds: np.ndarray, runs: list[dict[str, Any]],
             run_of_row: list[int] | None, fps: float) -> tuple[list[ShotRecord], int]:
    """Step 4, records: one :class:`~.tokens.ShotRecord` per row (each rendition's named by
    its own resolution), shots that cannot be trusted without a prediction, short shots (at
    the rate ``fps`` the video is read at), lost block QPs and hidden frames flagged; returns
    them with the count of hidden frames."""
    info = fp.info

    def build(part: Sequence[dict[str, Any]], p: np.ndarray, w: int, h: int) -> list[ShotRecord]:
        return make_records(part, p, plan.card, rules, feature_names=plan.names,
                            codec=fp.aligned.packets.codec, height=min(w, h))

    if run_of_row is None:
        records = build(rows, preds, info.width, info.height)
        if runs:  # ffmpeg noticed a change that no second run confirmed: every shot
            records = invalidate(records, [True] * len(records), [rescaled_flag(runs[0], info)])
        # a frame-rate switch at one size: those shots are read at the wrong rate
        for flag, idx in off_rate_shots(rows, fp.aligned.frame_steps_s, fps).items():
            records = invalidate(records, [i in idx for i in range(len(records))], [flag])
    else:
        records = []
        which = np.array(run_of_row)
        for k, run in enumerate(runs):
            idx = np.flatnonzero(which == k)
            records += build([rows[i] for i in idx], preds[idx], int(run["width"]),
                             int(run["height"]))
        bad, flags = wrong_runs(runs, info.bit_depth)
        if bad:  # shots never straddle runs: a shot is wrong when its run is
            records = invalidate(records, [k in bad for k in run_of_row], flags)
    # the detector's shortest window, not min_frames: at 24.5 fps a 25-frame scene is cut 12+13
    # with min_frames 13, and the 12 was flagged though the corpus cuts the same
    shortest = ShotDetector(fps=fps, **dict(plan.options.shots)).shortest_shot
    records = flag_short_shots(records, rows, shortest)
    packets = fp.aligned.packets
    if (needs_mb_quantizer(plan.names) and packets.codec in MB_QP_CODECS
            and packets.mb_qp is not None and not np.isfinite(packets.mb_qp).any()):
        # the decoder's block QPs were lost (no PyAV, a container it cannot open, a failed
        # decode: warned): the slice QP stood in, which the corpus never does for H.264
        records = [rec.flagged(NO_BLOCK_QP_FLAG) for rec in records]
    # packets before the first keyframe precede the first frame: hidden like the others
    leading = np.zeros(int(fp.aligned.packets.before_keyframe), np.int64)
    return flag_hidden_frames(records, rows,
                              np.concatenate([leading, fp.aligned.hidden_before_frame]))


def _pixel_summary(plan: _Plan, fp: _FirstPass) -> dict[str, Any]:
    """The summary's ``pixel_features``: which frames were measured, at which steps, what for."""
    names, step = plan.names, plan.step
    return {
        "used_for": ("prediction+issues" if needs_pixel_features(names)
                     and not temporal_only(names) else "issues"),
        "frame_step": step,
        "frames": -(-fp.n // step),
        "cut_pixel_step": fp.cut_step,
        "decoder": fp.decoder,
        "kernel": compiled.kernel_name(),
        **({"temporal": {"used_for": "prediction+issues", "frames": fp.n,
                         "pixel_step": fp.temporal_step}} if fp.temporal_step else {}),
    }


def analyze_video(
    path: str | os.PathLike[str],
    predictor: Any,
    *,
    rules: Mapping[str, Any] | None = None,
    ref_size: tuple[int, int] | None = None,
    options: EdgeOptions | None = None,
    card: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VideoReport:
    """Run the whole edge chain on one distorted video.

    ``progress``, if given, is called with the number of frames decoded so far after every
    decoded chunk (the CLI draws a progress bar from it on long videos); if it has an
    ``expect`` method, that first hears the frame count the container's duration and rate
    suggest (an estimate: the count decoded may differ; not called when no duration is known).

    ``predictor`` is a :class:`~vmafdistill.edge.predictor.Predictor`, or a
    :class:`concurrent.futures.Future` of one together with its ``card`` (read beforehand):
    then decoding starts while onnxruntime loads the model (its errors surface as soon as they
    happen, at the next decoded chunk). ``ref_size`` defaults to :func:`default_ref_size` of
    the card's (the summary records ``ref_size`` and ``ref_size_rule``); ``options`` to the
    card's ``edge`` section (exact features).

    Pixel features are measured on every :meth:`EdgeOptions.pixel_step`-th frame: ``frame_step``
    for a student that reads spatial pixel features, ``issue_frame_step`` for one that does not
    (then they only feed the issue heuristic); a temporal-only student also gets its temporal
    features from every frame (:meth:`EdgeOptions.temporal_step`). The summary's
    ``pixel_features`` records ``used_for`` (``prediction+issues`` or ``issues``),
    ``frame_step``, ``frames`` (how many frames, those with index % frame_step == 0, were
    measured), ``cut_pixel_step`` and, for a temporal-only student, ``temporal``.

    ``rules`` (bands and issue thresholds, :data:`~.tokens.DEFAULT_RULES`' shape) is laid over
    the card's ``tokens`` section, which is laid over the defaults: a partial dict such as
    ``{"bands": {"green": 85}}`` changes only what it names; ``None`` takes the card's rules.
    """
    plan = _plan(path, predictor, card, options, ref_size)
    try:
        card_rules = merge_rules(DEFAULT_RULES, plan.card.get("tokens"))
    except (ValueError, TypeError, AttributeError) as exc:  # a hand-edited card
        raise ModelError(f"the model card's tokens: {exc}") from None
    rules = merge_rules(card_rules, rules)
    try:
        check_band_basis(plan.card, rules)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    t0 = time.perf_counter()
    fp = _first_pass(plan, predictor, progress, t0)
    t2 = time.perf_counter()
    predictor = _loaded(predictor, plan.names)
    rows, runs, run_of_row, fps = _shot_rows(plan, fp)
    preds = _predict(predictor, rows, plan.names, plan.card.get("used_features"))
    records, hidden = _records(plan, fp, rules, rows, preds, runs, run_of_row, fps)
    truncated = file_truncation(plan.path)  # MPEG-TS / AVI: ffmpeg reads those without a word
    records = flag_truncated(records, truncated)
    t_pred = time.perf_counter() - t2
    summary = summarize(plan.path, records, fp.n, fps, hidden_frames=hidden,
                        decoder_errors=fp.log.errors, truncated=truncated, picture_changes=runs,
                        ref=(fp.ref, fp.ref_rule), video_streams=fp.info.video_streams,
                        pixel=_pixel_summary(plan, fp), band_rules=rules["bands"])
    return VideoReport(
        records=[r.to_dict() for r in records],
        summary=summary,
        rows=rows,
        timings={
            "probe_s": fp.t_probe,
            "decode_features_s": fp.t_frames,
            "packets_s": fp.t_packets,
            "shots_predict_s": t_pred,
            "total_s": time.perf_counter() - t0,
        },
    )
