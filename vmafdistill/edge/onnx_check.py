"""Which operators and opsets an ONNX model uses, read without the ``onnx`` package.

The edge runtime has onnxruntime but not ``onnx``; this module walks the model's protobuf bytes
directly (a ModelProto is a handful of nested length-delimited messages) so both the exporter
and the torch-free predictor check the same things:

* :func:`model_ops` - every ``(domain, op_type)`` in the graph, including sub-graphs of control
  flow nodes and model-local functions;
* :func:`model_opsets` - the ``opset_import`` table (domain -> version);
* :func:`check_allowlist` - fail with :class:`~vmafdistill.errors.ModelError` naming each op
  that is not on the allowlist shipped in ``op_allowlist.txt``.

Domains ``""`` and ``"ai.onnx"`` are the same (the default operator set) and reported as ``""``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import ModelError

__all__ = [
    "ALLOWLIST_PATH",
    "check_allowlist",
    "load_allowlist",
    "model_ops",
    "model_opsets",
]

#: The operator allowlist kept in the repository (one ``Op`` or ``domain:Op`` per line).
ALLOWLIST_PATH = Path(__file__).with_name("op_allowlist.txt")

# Field numbers of the ONNX protobuf messages (onnx/onnx.proto3).
_MODEL_OPSET_IMPORT = 8
_MODEL_GRAPH = 7
_MODEL_FUNCTIONS = 25
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2
_GRAPH_NODE = 1
_NODE_OP_TYPE, _NODE_DOMAIN, _NODE_ATTRIBUTE = 4, 7, 5
_ATTR_G, _ATTR_GRAPHS = 6, 11
_FUNCTION_NODE = 7


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise ModelError("malformed ONNX protobuf (truncated varint)")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    """(field number, wire type, varint value or (start, end) of the payload) of one message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise ModelError("malformed ONNX protobuf (field runs past its message)")
            yield field, wire, (pos, pos + length)
            pos += length
        else:
            raise ModelError(f"malformed ONNX protobuf (unsupported wire type {wire})")
    if pos != end:
        raise ModelError("malformed ONNX protobuf (truncated fixed-size field)")


def _text(buf: bytes, span: int | tuple[int, int]) -> str:
    assert isinstance(span, tuple)
    return buf[span[0] : span[1]].decode("utf-8", errors="replace")


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def _read(model: bytes | str | os.PathLike[str]) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    path = Path(model)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file ({exc})") from None


def _graph_ops(
    buf: bytes, span: tuple[int, int], node_field: int, out: set[tuple[str, str]]
) -> None:
    for field, wire, val in _fields(buf, *span):
        if field != node_field or wire != 2:
            continue
        assert isinstance(val, tuple)
        op_type, domain = "", ""
        for nf, nw, nval in _fields(buf, *val):
            if nf == _NODE_OP_TYPE and nw == 2:
                op_type = _text(buf, nval)
            elif nf == _NODE_DOMAIN and nw == 2:
                domain = _text(buf, nval)
            elif nf == _NODE_ATTRIBUTE and nw == 2:
                assert isinstance(nval, tuple)
                for af, aw, aval in _fields(buf, *nval):  # sub-graphs of If / Loop / Scan
                    if af in (_ATTR_G, _ATTR_GRAPHS) and aw == 2:
                        assert isinstance(aval, tuple)
                        _graph_ops(buf, aval, _GRAPH_NODE, out)
        out.add((_norm_domain(domain), op_type))


def model_ops(model: bytes | str | os.PathLike[str]) -> set[tuple[str, str]]:
    """Every ``(domain, op_type)`` a model's graph (and its sub-graphs and functions) uses."""
    buf = _read(model)
    out: set[tuple[str, str]] = set()
    found_graph = False
    for field, wire, val in _fields(buf, 0, len(buf)):
        if wire != 2:
            continue
        assert isinstance(val, tuple)
        if field == _MODEL_GRAPH:
            found_graph = True
            _graph_ops(buf, val, _GRAPH_NODE, out)
        elif field == _MODEL_FUNCTIONS:
            _graph_ops(buf, val, _FUNCTION_NODE, out)
    if not found_graph:
        raise ModelError("not an ONNX model (no graph found)")
    return out


def model_opsets(model: bytes | str | os.PathLike[str]) -> dict[str, int]:
    """The model's ``opset_import`` table: domain (``""`` = default) -> version."""
    buf = _read(model)
    out: dict[str, int] = {}
    for field, wire, val in _fields(buf, 0, len(buf)):
        if field != _MODEL_OPSET_IMPORT or wire != 2:
            continue
        assert isinstance(val, tuple)
        domain, version = "", 0
        for f, w, v in _fields(buf, *val):
            if f == _OPSET_DOMAIN and w == 2:
                domain = _text(buf, v)
            elif f == _OPSET_VERSION and w == 0:
                assert isinstance(v, int)
                version = v
        out[_norm_domain(domain)] = version
    return out


def load_allowlist(path: str | os.PathLike[str] | None = None) -> set[tuple[str, str]]:
    """Parse an allowlist: ``Op`` (default domain) or ``domain:Op`` per line, ``#`` comments."""
    p = Path(path) if path is not None else ALLOWLIST_PATH
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise ModelError(f"{p}: cannot read the operator allowlist ({exc})") from None
    out: set[tuple[str, str]] = set()
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        domain, _, op = line.rpartition(":")
        out.add((_norm_domain(domain), op))
    if not out:
        raise ModelError(f"{p}: the operator allowlist is empty")
    return out


def _fmt(ops: Iterable[tuple[str, str]]) -> str:
    return ", ".join(f"{d}:{o}" if d else o for d, o in sorted(ops))


def check_allowlist(
    model: bytes | str | os.PathLike[str],
    allowlist: set[tuple[str, str]] | str | os.PathLike[str] | None = None,
    *,
    name: str = "model",
) -> set[tuple[str, str]]:
    """Raise ModelError listing the ops of ``model`` that are not allowed; return the ops used.

    ``allowlist`` is a set of ``(domain, op)`` or the path of an allowlist file (default: the
    repository's ``op_allowlist.txt``).
    """
    allowed = allowlist if isinstance(allowlist, set) else load_allowlist(allowlist)
    try:
        ops = model_ops(model)
    except ModelError as exc:
        # the parser's message says what is wrong, not which file: a user passing --model
        # fake.onnx must see the file named
        raise ModelError(f"{name}: not a valid ONNX model: {exc}") from None
    foreign = ops - allowed
    if foreign:
        raise ModelError(
            f"{name}: uses operators outside the edge allowlist ({ALLOWLIST_PATH.name}): "
            f"{_fmt(foreign)}"
        )
    return ops
