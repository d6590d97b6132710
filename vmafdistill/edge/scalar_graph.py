"""A tiny ONNX student compiled to straight-line Python float code, for single-row calls.

onnxruntime costs ~0.6 µs per graph node on a single row (kernel dispatch, output allocation)
on top of ~3 µs per call, so a 24-node linear student takes ~15 µs per row however the call is
made. An exported student is small (a standardisation, a signed-log transform, a linear or tiny
MLP layer, a sigmoid head) and computes in float64 (``conf/export.yaml`` ``precision``), which
is exactly Python's ``float``: this module reads the graph from the model's protobuf bytes (no
``onnx`` package on the edge), folds everything that depends only on initializers, and emits one
Python function with a local variable per tensor element (constant masks select at compile time,
``Where`` on a runtime condition becomes a conditional expression, a matrix product becomes
unrolled sums). A single row then costs a few microseconds.

It is a *fast path*, never the reference: :func:`compile_scalar` returns None for any graph it
does not cover exactly (an operator outside its small set, arithmetic in float32, a graph too
large to unroll), and the predictor uses it only after checking it against onnxruntime on many
rows (:meth:`ScalarGraph.check_against`); batches always go through onnxruntime.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .protobuf import LEN, ProtobufError, fields, packed_ints, signed

__all__ = ["ScalarGraph", "compile_scalar", "parse_graph", "rows_for_check"]

# ONNX TensorProto data types this module understands -> numpy dtypes.
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32), 6: np.dtype(np.int32), 7: np.dtype(np.int64),
    9: np.dtype(np.bool_), 11: np.dtype(np.float64),
}
_FLOAT, _DOUBLE, _INT64, _BOOL = 1, 11, 7, 9

#: Unrolled lines above which the graph stays with onnxruntime (a wide MLP would be slower
#: as Python code than as one onnxruntime call).
MAX_LINES = 1500


# --------------------------------------------------------------------------------------------
# Protobuf reading (ModelProto -> nodes, initializers, inputs, outputs), on the shared
# bounds-checked reader of .protobuf (malformed bytes: ProtobufError, compile_scalar -> None)
# --------------------------------------------------------------------------------------------


class UnsupportedGraphError(Exception):
    """The graph uses something this module does not compile (the caller keeps onnxruntime)."""


def _tensor(buf: bytes) -> tuple[str, np.ndarray]:
    """(name, value) of a TensorProto."""
    dims: list[int] = []
    dtype, name, raw = 0, "", None
    floats: list[float] = []
    doubles: list[float] = []
    ints: list[int] = []
    for f, w, v in fields(buf):
        if f == 1:
            dims += packed_ints(v) if w == LEN else [signed(v)]
        elif f == 2:
            dtype = v
        elif f == 4:
            floats += list(struct.unpack(f"<{len(v) // 4}f", v)) if w == LEN else [
                struct.unpack("<f", v)[0]]
        elif f in (5, 7):
            ints += packed_ints(v) if w == LEN else [signed(v)]
        elif f == 8:
            name = v.decode()
        elif f == 9:
            raw = v
        elif f == 10:
            doubles += list(struct.unpack(f"<{len(v) // 8}d", v)) if w == LEN else [
                struct.unpack("<d", v)[0]]
        elif f in (12, 13):  # external data / data location
            raise UnsupportedGraphError("external tensor data")
    if dtype not in _DTYPES:
        raise UnsupportedGraphError(f"tensor data type {dtype}")
    dt = _DTYPES[dtype]
    if raw is not None:
        arr = np.frombuffer(raw, dtype=dt.newbyteorder("<")).astype(dt)
    elif dtype == _FLOAT:
        arr = np.array(floats, dtype=dt)
    elif dtype == _DOUBLE:
        arr = np.array(doubles, dtype=dt)
    else:
        arr = np.array(ints, dtype=dt)
    return name, arr.reshape(dims)


@dataclass
class _Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


def _attribute(buf: bytes) -> tuple[str, Any]:
    name, value, ints, floats = "", None, None, None
    for f, w, v in fields(buf):
        if f == 1:
            name = v.decode()
        elif f == 2:
            value = struct.unpack("<f", v)[0]
        elif f == 3:
            value = signed(v)
        elif f == 4:
            value = v
        elif f == 5:
            value = _tensor(v)[1]
        elif f in (6, 11):
            raise UnsupportedGraphError("sub-graph attribute")
        elif f == 7:
            floats = (floats or []) + (list(struct.unpack(f"<{len(v) // 4}f", v)) if w == LEN
                                       else [struct.unpack("<f", v)[0]])
        elif f == 8:
            ints = (ints or []) + (packed_ints(v) if w == LEN else [signed(v)])
    if ints is not None:
        value = ints
    elif floats is not None:
        value = floats
    return name, value


def _node(buf: bytes) -> _Node:
    node = _Node("", [], [])
    domain = ""
    for f, _w, v in fields(buf):
        if f == 1:
            node.inputs.append(v.decode())
        elif f == 2:
            node.outputs.append(v.decode())
        elif f == 4:
            node.op = v.decode()
        elif f == 5:
            k, val = _attribute(v)
            node.attrs[k] = val
        elif f == 7:
            domain = v.decode()
    if domain not in ("", "ai.onnx"):
        raise UnsupportedGraphError(f"operator domain {domain}")
    return node


def _value_info(buf: bytes) -> tuple[str, int]:
    """(name, element type) of a ValueInfoProto."""
    name, elem = "", 0
    for f, _w, v in fields(buf):
        if f == 1:
            name = v.decode()
        elif f == 2:  # TypeProto -> tensor_type (1) -> elem_type (1)
            for tf, _tw, tv in fields(v):
                if tf == 1:
                    for ef, _ew, ev in fields(tv):
                        if ef == 1:
                            elem = ev
    return name, elem


@dataclass
class _Graph:
    nodes: list[_Node]
    initializers: dict[str, np.ndarray]
    inputs: list[tuple[str, int]]
    outputs: list[tuple[str, int]]


def parse_graph(data: bytes) -> _Graph:
    """The main graph of ONNX model bytes (model-local functions are not supported)."""
    graph = None
    for f, _w, v in fields(data):
        if f == 7:
            graph = v
        elif f == 25:
            raise UnsupportedGraphError("model-local functions")
    if graph is None:
        raise UnsupportedGraphError("no graph")
    g = _Graph([], {}, [], [])
    for f, _w, v in fields(graph):
        if f == 1:
            g.nodes.append(_node(v))
        elif f == 5:
            name, arr = _tensor(v)
            g.initializers[name] = arr
        elif f == 11:
            g.inputs.append(_value_info(v))
        elif f == 12:
            g.outputs.append(_value_info(v))
    g.inputs = [i for i in g.inputs if i[0] not in g.initializers]
    return g


# --------------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------------


@dataclass
class _Sym:
    """A runtime tensor: an object array of Python expressions (variable names or literals)
    with the tensor's static shape, and its kind: "f" (float64 values), "f32" (float32 values,
    exact as Python floats, not to be computed on), "b" (bool)."""

    expr: np.ndarray
    kind: str


def _lit(v: Any) -> str:
    """A Python literal (or module-level name) for one constant element."""
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    x = float(v)
    if math.isnan(x):
        return "_nan"
    if math.isinf(x):
        return "_inf" if x > 0 else "(-_inf)"
    return repr(x)


def _nonzero_literal(expr: str) -> bool:
    """Whether ``expr`` is a float literal other than zero (``_lit`` writes no NaN or inf as
    a literal)."""
    try:
        return float(expr) != 0.0
    except ValueError:
        return False


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _log_edge(x: float) -> float:
    """log of a value that is not > 0: -inf at zero, NaN below zero or for NaN."""
    return -math.inf if x == 0.0 else math.nan


def _sigmoid(x: float) -> float:
    """onnxruntime's double Sigmoid: 1 / (1 + e^-|x|), mirrored for x < 0."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    if x != x:
        return x
    return 1.0 - 1.0 / (1.0 + math.exp(x))


def _div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0.0:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


_GLOBALS: dict[str, Any] = {"_nan": math.nan, "_inf": math.inf, "_log": math.log,
                            "_log_edge": _log_edge, "_exp": _exp, "_sqrt": math.sqrt,
                            "_sigmoid": _sigmoid, "_tanh": math.tanh, "_div": _div,
                            "_abs": abs}

_UNARY: dict[str, str] = {
    "Neg": "(-{a})",
    "Abs": "_abs({a})",
    "Sign": "(1.0 if {a} > 0.0 else (-1.0 if {a} < 0.0 else 0.0))",  # Eigen's: NaN -> 0
    "Log": "(_log({a}) if {a} > 0.0 else _log_edge({a}))",
    "Exp": "_exp({a})",
    "Sqrt": "(_sqrt({a}) if {a} >= 0.0 else _nan)",
    "Relu": "(0.0 if {a} < 0.0 else {a})",
    "Sigmoid": "_sigmoid({a})",
    "Tanh": "_tanh({a})",
    "Reciprocal": "_div(1.0, {a})",
}
_BINARY: dict[str, str] = {"Add": "({a} + {b})", "Sub": "({a} - {b})", "Mul": "({a} * {b})",
                           "Div": "_div({a}, {b})"}
_NP_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Neg": np.negative, "Abs": np.abs, "Sign": np.sign, "Log": np.log, "Exp": np.exp,
    "Sqrt": np.sqrt, "Relu": lambda a: np.maximum(a, 0), "Tanh": np.tanh,
    "Sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)), "Reciprocal": lambda a: 1.0 / a,
    "IsNaN": np.isnan,
}
_NP_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
}


class _Compiler:
    def __init__(self, graph: _Graph, width: int) -> None:
        self.g = graph
        self.values: dict[str, np.ndarray | _Sym] = dict(graph.initializers)
        self.lines: list[str] = []
        self.n = 0
        (name, elem), = graph.inputs
        if elem not in (_FLOAT, _DOUBLE):
            raise UnsupportedGraphError("input is not float")
        self.input_args = [f"x{i}" for i in range(width)]
        # float32 values are exact doubles, but arithmetic on them must wait for a Cast to
        # double: onnxruntime would round every float32 operation
        self.values[name] = _Sym(np.array(self.input_args, dtype=object).reshape(1, width),
                                 "f" if elem == _DOUBLE else "f32")

    def emit(self, expr: str) -> str:
        """A new local variable holding ``expr``."""
        var = f"v{self.n}"
        self.n += 1
        self.lines.append(f"    {var} = {expr}")
        if len(self.lines) > MAX_LINES:
            raise UnsupportedGraphError("graph too large to unroll")
        return var

    def sym(self, v: np.ndarray | _Sym) -> _Sym:
        """A constant as a symbolic tensor of literals (float64 values or bools)."""
        if isinstance(v, _Sym):
            return v
        kind = "b" if v.dtype == np.bool_ else "f"
        if kind == "f" and v.dtype != np.float64:
            raise UnsupportedGraphError(f"constant of type {v.dtype} in float arithmetic")
        return _Sym(np.vectorize(_lit, otypes=[object])(v) if v.size else
                    np.empty(v.shape, dtype=object), kind)

    def run(self) -> tuple[str, list[str]]:
        for node in self.g.nodes:
            ins = [self.values[i] if i else None for i in node.inputs]
            if all(isinstance(v, np.ndarray) or v is None for v in ins):
                outs = self.fold(node, ins)
            else:
                outs = self.compile(node, ins)
            for name, val in zip(node.outputs, outs, strict=True):
                self.values[name] = val
        (out_name, out_elem), = self.g.outputs
        out = self.values[out_name]
        if out_elem != _FLOAT:
            raise UnsupportedGraphError("output is not float32")
        out = self.sym(out.astype(np.float64) if isinstance(out, np.ndarray) else out)
        if out.kind not in ("f", "f32") or out.expr.size != 1:
            raise UnsupportedGraphError("output is not one value per row")
        return "\n".join(self.lines), [str(e) for e in out.expr.ravel()]

    # -- constants ---------------------------------------------------------------------------

    def fold(self, node: _Node, ins: list[Any]) -> list[np.ndarray]:
        op, a = node.op, node.attrs
        if op == "Constant":
            if "value" not in a:
                raise UnsupportedGraphError("Constant without a tensor value")
            return [np.asarray(a["value"])]
        if op in _NP_UNARY:
            with np.errstate(all="ignore"):
                return [np.asarray(_NP_UNARY[op](ins[0]))]
        if op in _NP_BINARY:
            with np.errstate(all="ignore"):
                return [np.asarray(_NP_BINARY[op](ins[0], ins[1]))]
        if op == "Where":
            return [np.where(ins[0], ins[1], ins[2])]
        if op == "Cast":
            return [ins[0].astype(self.cast_dtype(a))]
        if op == "ConstantOfShape":
            fill = a.get("value", np.zeros(1, np.float32))
            return [np.full(tuple(int(d) for d in ins[0]), fill.ravel()[0], dtype=fill.dtype)]
        if op == "Shape":
            return [np.array(ins[0].shape, dtype=np.int64)]
        if op == "MatMul":
            return [np.matmul(ins[0], ins[1])]
        # shape and matrix ops work on constants as on symbols (object arrays)
        return [np.asarray(v) for v in self.shape_op(node, ins)]

    @staticmethod
    def cast_dtype(attrs: dict[str, Any]) -> np.dtype:
        to = int(attrs.get("to", 0))
        if to not in _DTYPES:
            raise UnsupportedGraphError(f"Cast to type {to}")
        return _DTYPES[to]

    # -- runtime ops -------------------------------------------------------------------------

    def shape_op(self, node: _Node, ins: list[Any]) -> list[Any]:
        """Shape-only operators, on constants (ndarrays) or symbols' expression arrays."""
        op, a = node.op, node.attrs
        x = ins[0]
        if op == "Identity":
            return [x]
        if op == "Squeeze":
            axes = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("axes")
            return [np.squeeze(x, axis=None if axes is None else tuple(int(i) for i in axes))]
        if op == "Unsqueeze":
            axes = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("axes")
            out = x
            nd = x.ndim + len(axes)
            for ax in sorted(int(i) % nd for i in axes):
                out = np.expand_dims(out, ax)
            return [out]
        if op == "Reshape":
            shape = [int(d) for d in ins[1]]
            shape = [x.shape[i] if d == 0 and not a.get("allowzero") else d
                     for i, d in enumerate(shape)]
            return [x.reshape(shape)]
        if op == "Flatten":
            ax = int(a.get("axis", 1)) % max(x.ndim, 1)
            return [x.reshape(int(np.prod(x.shape[:ax])), -1)]
        if op == "Gather":
            return [np.take(x, np.asarray(ins[1], dtype=np.int64) % x.shape[int(a.get("axis", 0))]
                            if np.asarray(ins[1]).size else np.asarray(ins[1], dtype=np.int64),
                            axis=int(a.get("axis", 0)))]
        if op == "Concat":
            return [np.concatenate(ins, axis=int(a["axis"]))]
        if op == "Transpose":
            perm = a.get("perm")
            return [np.transpose(x, None if perm is None else [int(p) for p in perm])]
        raise UnsupportedGraphError(f"operator {op}")

    def compile(self, node: _Node, ins: list[Any]) -> list[_Sym]:
        op, a = node.op, node.attrs
        if op in ("Shape",):
            x = ins[0].expr
            return [np.array(x.shape, dtype=np.int64)]  # type: ignore[list-item]
        if op in ("Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Gather",
                  "Concat", "Transpose"):
            syms = [self.sym(v) if i == 0 or op == "Concat" else v for i, v in enumerate(ins)]
            kinds = {s.kind for s in syms if isinstance(s, _Sym)}
            if len(kinds) != 1:
                raise UnsupportedGraphError(f"{op} of mixed kinds")
            args = [s.expr if isinstance(s, _Sym) else s for s in syms]
            if op != "Concat" and any(isinstance(v, _Sym) for v in ins[1:]):
                raise UnsupportedGraphError(f"{op} with a runtime shape or index")
            return [_Sym(self.shape_op(node, args)[0], kinds.pop())]
        if op == "Cast":
            x = self.sym(ins[0])
            to = int(a.get("to", 0))
            if to == _DOUBLE and x.kind in ("f", "f32"):
                return [_Sym(x.expr, "f")]  # float32 values are exact doubles
            if to == _DOUBLE and x.kind == "b":
                return [self.map1(x, "(1.0 if {a} else 0.0)", "f")]
            if to == _FLOAT and node.outputs[0] == self.g.outputs[0][0]:
                return [x]  # the final rounding to float32 happens when the row is returned
            raise UnsupportedGraphError(f"Cast to {to} inside the graph")
        if op == "IsNaN":
            return [self.map1(self.float_sym(ins[0]), "({a} != {a})", "b")]
        if op in _UNARY:
            return [self.map1(self.float_sym(ins[0]), _UNARY[op], "f")]
        if op in _BINARY:
            return [self.map2(self.float_sym(ins[0]), self.float_sym(ins[1]), _BINARY[op])]
        if op == "Where":
            return [self.where(ins)]
        if op == "MatMul":
            return [self.matmul(ins[0], ins[1])]
        if op == "Gemm":
            return [self.gemm(ins, a)]
        raise UnsupportedGraphError(f"operator {op}")

    def float_sym(self, v: Any) -> _Sym:
        s = self.sym(v)
        if s.kind != "f":
            raise UnsupportedGraphError("arithmetic on a non-float tensor")
        return s

    def map1(self, x: _Sym, fmt: str, kind: str) -> _Sym:
        out = np.empty(x.expr.shape, dtype=object)
        for idx, e in np.ndenumerate(x.expr):
            out[idx] = self.emit(fmt.format(a=e))
        return _Sym(out, kind)

    def map2(self, x: _Sym, y: _Sym, fmt: str) -> _Sym:
        ex, ey = np.broadcast_arrays(x.expr, y.expr)
        out = np.empty(ex.shape, dtype=object)
        for idx in np.ndindex(ex.shape):
            b = ey[idx]
            # dividing by a nonzero finite constant cannot raise: plain ``/``, no call
            f = "({a} / {b})" if fmt.startswith("_div") and _nonzero_literal(b) else fmt
            out[idx] = self.emit(f.format(a=ex[idx], b=b))
        return _Sym(out, "f")

    def where(self, ins: list[Any]) -> _Sym:
        cond, x, y = ins
        if isinstance(cond, np.ndarray):  # a constant mask: chosen now, no runtime cost
            sx, sy = self.float_sym(x), self.float_sym(y)
            c, ex, ey = np.broadcast_arrays(cond.astype(bool), sx.expr, sy.expr)
            return _Sym(np.where(c, ex, ey), "f")
        sc, sx, sy = self.sym(cond), self.float_sym(x), self.float_sym(y)
        if sc.kind != "b":
            raise UnsupportedGraphError("Where on a non-bool condition")
        c, ex, ey = np.broadcast_arrays(sc.expr, sx.expr, sy.expr)
        out = np.empty(c.shape, dtype=object)
        for idx in np.ndindex(c.shape):
            out[idx] = self.emit(f"({ex[idx]} if {c[idx]} else {ey[idx]})")
        return _Sym(out, "f")

    def matmul(self, x: Any, w: Any) -> _Sym:
        """Row-vector times a constant matrix, as left-to-right sums of products."""
        if not isinstance(w, np.ndarray) or w.dtype != np.float64:
            raise UnsupportedGraphError("MatMul needs a constant float64 right operand")
        sx = self.float_sym(x)
        vec = w.ndim == 1
        m = w.reshape(-1, 1) if vec else w
        if m.ndim != 2 or sx.expr.shape[-1] != m.shape[0]:
            raise UnsupportedGraphError("MatMul shapes")
        lead = sx.expr.shape[:-1]
        out = np.empty((*lead, m.shape[1]), dtype=object)
        for idx in np.ndindex(lead):
            row = sx.expr[idx]
            for j in range(m.shape[1]):
                out[(*idx, j)] = self.emit(" + ".join(f"{row[k]} * {_lit(m[k, j])}"
                                                      for k in range(m.shape[0])))
        return _Sym(out[..., 0] if vec else out, "f")

    def gemm(self, ins: list[Any], a: dict[str, Any]) -> _Sym:
        x, w = ins[0], ins[1]
        c = ins[2] if len(ins) > 2 else None
        if int(a.get("transA", 0)) or not isinstance(w, np.ndarray):
            raise UnsupportedGraphError("Gemm form")
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        w = w.T if int(a.get("transB", 0)) else w
        if alpha != 1.0 or beta != 1.0:  # onnxruntime's rounding order would differ
            raise UnsupportedGraphError("Gemm with alpha or beta != 1")
        out = self.matmul(x, np.ascontiguousarray(w))
        if c is None:
            return out
        return self.map2(out, self.float_sym(c), "({a} + {b})")


@dataclass
class ScalarGraph:
    """A compiled single-row evaluator: ``predict_row(x)`` for one (F,) / (1, F) float32 row."""

    source: str
    width: int
    _fn: Callable[..., float]

    def predict_row(self, x: np.ndarray) -> np.ndarray:
        """The student's output for one row as a new (1,) float32 array; NaN where a feature
        is not finite (the graph's clips would turn it into a plausible number)."""
        values = x.ravel().tolist()
        if not math.isfinite(sum(values)):  # a NaN or inf anywhere (finite float32s cannot
            return np.array((math.nan,), dtype=np.float32)  # overflow a float64 sum)
        return np.array((self._fn(*values),), dtype=np.float32)

    def check_against(self, reference: Callable[[np.ndarray], np.ndarray],
                      rows: np.ndarray) -> bool:
        """Whether every row of ``rows`` gives exactly ``reference``'s float32 output (NaN
        where it has NaN)."""
        ref = np.asarray(reference(rows), dtype=np.float32).reshape(-1)
        got = np.concatenate([self.predict_row(r) for r in rows])
        return got.shape == ref.shape and got.tobytes() == ref.tobytes()


_VAR = re.compile(r"\bv\d+\b")


def _live_lines(body: str, result: str) -> str:
    """``body`` without the assignments the result does not depend on (elements that a
    constant ``Where`` mask or a ``Gather`` dropped are computed for every element first)."""
    lines = body.splitlines()
    need = set(_VAR.findall(result))
    kept: list[str] = []
    for line in reversed(lines):
        var, _, expr = line.strip().partition(" = ")
        if var in need:
            kept.append(line)
            need |= set(_VAR.findall(expr))
    return "\n".join(reversed(kept))


def compile_scalar(data: bytes, width: int) -> ScalarGraph | None:
    """The graph of ONNX model bytes as a :class:`ScalarGraph`, or None where it cannot be
    compiled exactly (see the module docstring)."""
    try:
        body, (result,) = _Compiler(parse_graph(data), width).run()
    except (UnsupportedGraphError, ProtobufError, KeyError, ValueError, IndexError, TypeError):
        return None
    body = _live_lines(body, result) or "    pass"
    args = ", ".join(f"x{i}" for i in range(width))
    source = f"def _row({args}):\n{body}\n    return {result}\n"
    namespace: dict[str, Any] = dict(_GLOBALS)
    try:
        exec(compile(source, "<vmafdistill scalar student>", "exec"), namespace)
    except (SyntaxError, RecursionError, MemoryError):
        return None
    return ScalarGraph(source=source, width=width, _fn=namespace["_row"])


def rows_for_check(width: int, domain: Sequence[tuple[float, float]] | None = None,
                   n: int = 256, seed: int = 0) -> np.ndarray:
    """Rows to compare a compiled graph with onnxruntime on: uniform over the training domain
    (when known) and beyond it, wide normals, zeros and a NaN in each column."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(size=(n, width)) * 30.0, np.zeros((1, width))]
    if domain is not None:
        lo = np.array([d[0] for d in domain], dtype=np.float64)
        hi = np.array([d[1] for d in domain], dtype=np.float64)
        span = np.where(hi > lo, hi - lo, 1.0)
        parts.append(lo + rng.uniform(-0.25, 1.25, size=(n, width)) * span)
    nan_rows = np.tile(parts[0][:1], (width, 1))
    nan_rows[np.arange(width), np.arange(width)] = np.nan
    parts.append(nan_rows)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
