"""The torch-free predictor: an ONNX student plus its card, run by onnxruntime.

``Predictor(model)`` loads ``model.onnx`` and ``model.card.json`` beside it, checks that they
agree (sha256, opset, feature count and names, feature-set version, operator allowlist) and
predicts VMAF from raw (unstandardized) feature rows in the card's column order; the
standardisation is inside the graph.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .card import card_path_for, read_card, validate_card
from .onnx_check import check_allowlist, model_ops, model_opsets
from .scalar_graph import ScalarGraph, compile_scalar, rows_for_check

__all__ = ["DEFAULT_MODEL_NAME", "Predictor", "default_model_path"]

_F32 = np.dtype(np.float32)
_PENDING = object()  # the compiled single-row graph, not built yet
#: Operators whose result for one row depends on the other rows of the call: dynamic
#: quantization picks one activation scale (and zero point) from the whole batch, through
#: DynamicQuantizeLinear or, below opset 11, ReduceMin/ReduceMax feeding the integer MatMul.
_BATCH_STATISTIC_OPS = frozenset({("", "DynamicQuantizeLinear"), ("", "MatMulInteger")})

#: File name of the student shipped in the repository's ``checkpoints/``.
DEFAULT_MODEL_NAME = "vmafdistill_default.onnx"


def default_model_path() -> Path:
    """The shipped student: ``$VMAFDISTILL_MODEL`` or ``checkpoints/`` next to the package.

    Raises ModelError (with what to do) when no such file exists.
    """
    override = os.environ.get("VMAFDISTILL_MODEL")
    if override:
        p = Path(override)
        if not p.is_file():
            raise ModelError(f"VMAFDISTILL_MODEL={override!r} is not a file")
        return p
    pkg = Path(__file__).resolve().parents[1]  # .../vmafdistill
    candidates = [pkg.parent / "checkpoints" / DEFAULT_MODEL_NAME,
                  pkg / "checkpoints" / DEFAULT_MODEL_NAME]
    for p in candidates:
        if p.is_file():
            return p
    raise ModelError(
        f"no default model: {DEFAULT_MODEL_NAME} is not in "
        + " or ".join(str(c.parent) for c in candidates)
        + "; pass --model PATH.onnx (its .card.json beside it) or set VMAFDISTILL_MODEL"
    )


def check_not_a_training_output(path: Path) -> None:
    """ModelError, with the export command, where ``path`` is what training writes (a run
    folder holding ``student.pt``, a ``.pt`` bundle or a Lightning ``.ckpt``) instead of an
    exported ONNX student: it read as "model card not found", a malformed ONNX protobuf or
    "model file not found"."""
    bundle = path / "student.pt" if path.is_dir() else path
    if not bundle.is_file():  # (a named pipe is not opened: that waits for a writer)
        return
    zipped = False
    with contextlib.suppress(OSError), bundle.open("rb") as fh:
        zipped = fh.read(4) == b"PK\x03\x04"  # torch.save's zip archive
    if bundle.suffix in (".pt", ".pth", ".ckpt") or zipped:
        given = bundle if bundle.suffix in (".pt", ".pth") else "RUN/student.pt"
        raise ModelError(
            f"{path}: a training output (a torch file), not an exported ONNX student; "
            f"export it first: vmafdistill export --bundle {given} --out student.onnx")


def check_model_path(path: Path) -> None:
    """ModelError where ``path`` is no exported ONNX model: a training output
    (:func:`check_not_a_training_output`), a model card (it read as "<name>.card.card.json:
    model card not found"), a directory or nothing."""
    check_not_a_training_output(path)
    if path.name.endswith(".card.json"):
        onnx = path.with_name(path.name[:-len(".card.json")] + ".onnx")
        raise ModelError(f"{path}: a model card; give the ONNX model it describes ({onnx}), "
                         "whose card is read beside it")
    if path.is_dir():
        raise ModelError(f"{path}: a directory, not an exported ONNX model")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")


class Predictor:
    """An exported student ready to predict (onnxruntime, single-threaded by default)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        card_path: str | os.PathLike[str] | None = None,
        *,
        threads: int = 1,
        scalar: bool = True,
        edge_features: bool = True,
    ) -> None:
        """Load and check ``model_path`` and its card (default: ``<stem>.card.json`` beside it).

        ``scalar``: also compile the graph to Python float code for single-row calls
        (:mod:`.scalar_graph`; used only where it reproduces onnxruntime's bits).
        ``edge_features=False``: accept a student on reference features (``fr6``), which the
        edge cannot serve but the training side can run on a corpus (fine-tuning its ONNX).
        """
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError(
                "onnxruntime is not installed: pip install 'vmafdistill[edge]'"
            ) from None
        self.model_path = Path(model_path)
        check_model_path(self.model_path)
        self.card_path = Path(card_path) if card_path else card_path_for(self.model_path)
        self.card: dict[str, Any] = read_card(
            self.card_path, beside=None if card_path else self.model_path)
        data = self.model_path.read_bytes()
        check_allowlist(data, name=str(self.model_path))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                data, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.model_path}: onnxruntime cannot load it ({exc})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{self.model_path}: expected one input, found {len(inputs)}")
        shape = inputs[0].shape
        width = shape[-1] if len(shape) == 2 and isinstance(shape[-1], int) else None
        validate_card(
            self.card,
            model_path=self.model_path,
            model_sha256=self.sha256_of(data),
            model_opsets=model_opsets(data, name=str(self.model_path)),
            input_width=width,
            edge_features=edge_features,
        )
        self.input_name = inputs[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.feature_names: list[str] = list(self.card["feature_names"])
        self._width = len(self.feature_names)
        self._output_names = [self.output_name]
        self._run = _raw_run(self.session)
        # an INT8 card's scale comes from the whole call: a shot's score moved with the shots
        # beside it (48.34 alone, 48.68 in a longer video), so such a graph runs row by row
        self.row_wise: bool = is_batch_dependent(self.card, data, name=str(self.model_path))
        # one RunOptions reused by every fast call (onnxruntime builds a default one per call
        # when given None; measured a few percent slower per single-row call)
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = opts.log_severity_level
        self._single = _SingleRowBinding.build(self.session, self.input_name, self.output_name,
                                               self._width, self._run_options)
        # compiled on the first single-row call (~7 ms): `predict` on a video only batches
        self._scalar: Any = _PENDING if scalar else None
        self._model_bytes = data if scalar else b""

    def scalar_graph(self) -> ScalarGraph | None:
        """The compiled single-row evaluator (built now if it was not yet), or None where
        the graph does not compile or does not reproduce onnxruntime's bits."""
        if self._scalar is _PENDING:
            self._scalar = self._build_scalar(self._model_bytes)
        return self._scalar

    def _build_scalar(self, data: bytes) -> ScalarGraph | None:
        """The graph compiled to Python float code for single rows (:mod:`.scalar_graph`),
        kept only when it gives onnxruntime's exact float32 bits on rows across (and beyond)
        the card's training domain, wide random rows, zeros and NaNs; else None."""
        scalar = compile_scalar(data, self._width)
        if scalar is None:
            return None
        feats = (self.card.get("training_domain") or {}).get("features") or {}
        domain = [(float(feats[n][0]), float(feats[n][1])) if n in feats else (0.0, 1.0)
                  for n in self.feature_names]
        rows = rows_for_check(self._width, domain)
        try:
            ok = scalar.check_against(self._predict_checked, rows)
        except Exception:  # any failure of the fast path means: do without it
            ok = False
        return scalar if ok else None

    @staticmethod
    def sha256_of(data: bytes) -> str:
        """Hex sha256 of model bytes (what the card pins)."""
        import hashlib

        return hashlib.sha256(data).hexdigest()

    @property
    def size_bytes(self) -> int:
        """Size of the ONNX file in bytes."""
        return self.model_path.stat().st_size

    def predict(self, x: Any) -> np.ndarray:
        """VMAF for each row of ``x`` ((N, F) or (F,) raw features in card order, or a table
        with the card's feature columns, in any order) as float32: the student's own output,
        not clipped to 0..100 (a student can extrapolate a little past either end; ``predict``'s
        records clip, as libvmaf clips its score).

        A C-contiguous float32 ndarray of the right width takes a fast path: one row through
        the graph compiled to Python float code (:mod:`.scalar_graph`, 3-4 µs: onnxruntime
        spends ~0.6 µs per node on one row) or, for a graph that does not compile, a
        preallocated onnxruntime I/O binding (:class:`_SingleRowBinding`); more rows through
        the session's own run without the Python wrapper's per-call checks. Anything else is
        converted and checked first. The compiled graph is kept only where it reproduces
        onnxruntime's bits (checked when the first single row comes, ~7 ms once) and every
        other path runs the same onnxruntime graph on the same float32 values, so the outputs
        are the same bits. A row with a non-finite feature gives NaN on every path (the graph's
        clips turned an all-NaN row into 67, an inf into -2 or 102), as ``predict``'s chain
        leaves such a shot unscored. An INT8 graph (:attr:`row_wise`) runs each row as its own
        call: its activation scale comes from the whole call, so a batch moved a row's score.
        """
        if type(x) is np.ndarray and x.dtype is _F32 and x.flags.c_contiguous:
            shape = x.shape
            if shape == (1, self._width) or shape == (self._width,):
                scalar = self._scalar
                if scalar is _PENDING:
                    scalar = self.scalar_graph()
                if scalar is not None:
                    return scalar.predict_row(x)
                single = self._single
                if single is not None and single.lock.acquire(blocking=False):
                    try:
                        return _nan_where_not_finite(x, single.run(x))
                    finally:
                        single.lock.release()
            if len(shape) == 2 and shape[1] == self._width and shape[0] > 0:
                if self.row_wise:
                    return self._one_row_at_a_time(x)
                out = self._run(self._output_names, {self.input_name: x}, self._run_options)[0]
                return _nan_where_not_finite(x, np.asarray(out, dtype=np.float32).reshape(-1))
        return self._predict_checked(x)

    def _by_name(self, x: Any) -> Any:
        """A table whose column labels are names (a pandas DataFrame, a pyarrow Table), or one
        row whose labels are names (a pandas Series), as the card's features picked by name;
        anything else as given (by position, e.g. a DataFrame with integer labels)."""
        names = getattr(x, "column_names", None)  # pyarrow
        series = False
        if names is None and hasattr(x, "to_numpy"):  # pandas (an Index has no truth)
            series = getattr(x, "ndim", None) == 1 and hasattr(x, "index")
            labels = x.index if series else getattr(x, "columns", None)
            names = list(labels) if labels is not None else None
        if not names or not all(isinstance(n, str) for n in names):
            return x
        missing = [n for n in self.feature_names if n not in names]
        what = "row" if series else "table"
        if missing:
            raise ModelError(f"{self.model_path.name}: the {what} lacks the student's "
                             f"feature(s) {', '.join(missing)}")
        twice = sorted({n for n in self.feature_names if list(names).count(n) > 1})
        if twice:
            raise ModelError(f"{self.model_path.name}: the {what} holds feature(s) "
                             f"{', '.join(twice)} more than once")
        if hasattr(x, "column_names"):  # pyarrow Table
            return np.column_stack([np.asarray(x.column(n).to_numpy(), dtype=np.float32)
                                    for n in self.feature_names])
        return x[list(self.feature_names)].to_numpy(dtype=np.float32)

    def _predict_checked(self, x: Any) -> np.ndarray:
        """:meth:`predict` for any array-like: converted to float32 rows and checked. A table
        with named columns (a pandas DataFrame) gives the card's features by name: they were
        read by position, so a table in another column order predicted other numbers."""
        try:
            x = self._by_name(x)
            arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{self.model_path.name}: features must be numbers "
                             f"({exc})") from None
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != len(self.feature_names):
            raise ModelError(
                f"{self.model_path.name}: expects (N, {len(self.feature_names)}) features, "
                f"got shape {arr.shape}"
            )
        if arr.shape[0] == 0:  # onnxruntime runs an empty batch; the NaN mask cannot reshape it
            return np.empty(0, dtype=np.float32)
        if self.row_wise:
            return self._one_row_at_a_time(arr)
        out = self.session.run([self.output_name], {self.input_name: arr})[0]
        return _nan_where_not_finite(arr, np.asarray(out, dtype=np.float32).reshape(-1))

    def _one_row_at_a_time(self, x: np.ndarray) -> np.ndarray:
        """VMAF of each row of checked (N, F) C-contiguous float32 ``x``, each row its own
        onnxruntime call (:attr:`row_wise` graphs), so a row gets the bits it gets alone."""
        out = np.empty(x.shape[0], dtype=np.float32)
        names, feed, opts = self._output_names, self.input_name, self._run_options
        for i in range(x.shape[0]):
            out[i] = np.asarray(self._run(names, {feed: x[i : i + 1]}, opts)[0]).reshape(-1)[0]
        return _nan_where_not_finite(x, out)

    def predict_rows(self, rows: list[dict[str, float]]) -> np.ndarray:
        """:meth:`predict` on dict rows keyed by feature name (ModelError naming the
        features a row lacks)."""
        for i, row in enumerate(rows):
            missing = [n for n in self.feature_names if n not in row]
            if missing:  # a bare KeyError named one, without the row or the model
                raise ModelError(f"{self.model_path.name}: row {i} lacks the student's "
                                 f"feature(s) {', '.join(missing)}")
        x = np.array([[row[n] for n in self.feature_names] for row in rows], dtype=np.float32)
        return self.predict(x.reshape(len(rows), len(self.feature_names)))



def is_batch_dependent(card: Mapping[str, Any], data: bytes, *, name: str) -> bool:
    """Whether a row's output depends on the other rows of the call: the card says the
    export kept an INT8 graph (``int8.kept``), or the graph holds a batch-statistic op
    (read by the edge's own protobuf reader: a card from an older export, or a model
    quantized by hand). Such a graph must be run one row at a time."""
    int8 = card.get("int8")
    if isinstance(int8, Mapping) and int8.get("kept") is True:
        return True
    return not _BATCH_STATISTIC_OPS.isdisjoint(model_ops(data, name=name))


def _nan_where_not_finite(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out`` with NaN on the rows of ``x`` that hold a NaN or an infinity."""
    if out.shape[0] == 1:  # one row: a Python sum is ~10x cheaper than numpy's passes
        if math.isfinite(sum(x.ravel().tolist())):
            return out
        return np.full(1, np.nan, dtype=np.float32)
    bad = ~np.isfinite(x.reshape(out.shape[0], -1)).all(axis=1)
    if bad.any():
        out = out.copy()
        out[bad] = np.nan
    return out


def _raw_run(session: Any) -> Any:
    """The session's ``run(output_names, feed, run_options)`` without the Python wrapper's
    per-call input validation (onnxruntime's ``InferenceSession._sess``), or the public
    ``run`` where a future onnxruntime lacks it. Callers pass only checked inputs."""
    inner = getattr(session, "_sess", None)
    run = getattr(inner, "run", None)
    if run is None:
        return lambda names, feed, _opts: session.run(names, feed)
    return run


class _SingleRowBinding:
    """A one-row call through a preallocated onnxruntime I/O binding.

    The input row is copied into a fixed (1, F) float32 buffer and the output lands in a fixed
    (1,) buffer, both bound once, so a call allocates no tensor and converts no feed dict
    (docs/benchmarks.md, predictor-only latency). Used only when the graph's
    output is float32 and the binding API is there; one caller at a time (``lock``).
    """

    def __init__(self, session: Any, inp: np.ndarray, out: np.ndarray, binding: Any,
                 keep: tuple[Any, ...], run_options: Any = None) -> None:
        self._run = session._sess.run_with_iobinding
        self._run_options = run_options
        self._binding = binding
        self._inp = inp
        self._out = out
        self._keep = keep  # the OrtValues wrapping the buffers must outlive the binding
        self.lock = threading.Lock()

    @classmethod
    def build(cls, session: Any, input_name: str, output_name: str, width: int,
              run_options: Any = None) -> _SingleRowBinding | None:
        """The binding for ``session``, or None where it cannot be made (then the caller's
        ordinary path serves single rows too)."""
        try:
            import onnxruntime as ort

            if session.get_outputs()[0].type != "tensor(float)":
                return None
            inp = np.zeros((1, width), dtype=np.float32)
            out = np.zeros((1,), dtype=np.float32)
            x_val = ort.OrtValue.ortvalue_from_numpy(inp)
            y_val = ort.OrtValue.ortvalue_from_numpy(out)
            io = session.io_binding()
            io.bind_ortvalue_input(input_name, x_val)
            io.bind_ortvalue_output(output_name, y_val)
            single = cls(session, inp, out, io._iobinding, (io, x_val, y_val), run_options)
            ref = session.run([output_name], {input_name: inp})[0].reshape(-1)
            got = single.run(inp)
        except Exception:  # an onnxruntime without these internals: the ordinary path
            return None
        if got.shape != ref.shape or got.tobytes() != ref.tobytes():
            return None
        return single

    def run(self, x: np.ndarray) -> np.ndarray:
        """VMAF of one row ``x`` ((1, F) or (F,) C-contiguous float32) as a new (1,) array."""
        np.copyto(self._inp, x.reshape(self._inp.shape))
        self._run(self._binding, self._run_options)
        return self._out.copy()
