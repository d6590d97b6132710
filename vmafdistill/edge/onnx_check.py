"""Which operators and opsets an ONNX model uses, read without the ``onnx`` package.

The edge runtime has onnxruntime but not ``onnx``; this module walks the model's protobuf bytes
directly (a ModelProto is a handful of nested length-delimited messages; the reader, with its
bounds checks, is :mod:`.protobuf`) so both the exporter and the torch-free predictor check the
same things:

* :func:`model_ops` - every ``(domain, op_type)`` in the graph, including sub-graphs of control
  flow nodes and model-local functions;
* :func:`model_opsets` - the ``opset_import`` table (domain -> version);
* :func:`check_allowlist` - fail with :class:`~vmafdistill.errors.ModelError` naming each op
  that is not on the allowlist shipped in ``op_allowlist.txt``.

Domains ``""`` and ``"ai.onnx"`` are the same (the default operator set) and reported as ``""``.
A malformed model raises :class:`~vmafdistill.errors.ModelError` naming the file (its path, or
``name`` where the bytes were given).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ModelError
from .protobuf import LEN, VARINT, field_spans, named

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


def _text(buf: bytes, span: int | tuple[int, int]) -> str:
    assert isinstance(span, tuple)
    return buf[span[0] : span[1]].decode("utf-8", errors="replace")


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def _label(model: bytes | str | os.PathLike[str], name: str | None) -> str:
    """The name a model's errors carry: ``name``, else its path (``model`` for bytes)."""
    if name:
        return name
    return "model" if isinstance(model, (bytes, bytearray, memoryview)) else str(Path(model))


def _read(model: bytes | str | os.PathLike[str], name: str | None) -> tuple[bytes, str]:
    """The model's bytes and the name its errors carry (:func:`_label`)."""
    label = _label(model, name)
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), label
    path = Path(model)
    try:
        return path.read_bytes(), label
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file ({exc})") from None


def _graph_ops(
    buf: bytes, span: tuple[int, int], node_field: int, out: set[tuple[str, str]]
) -> None:
    for field, wire, val in field_spans(buf, *span):
        if field != node_field or wire != LEN:
            continue
        assert isinstance(val, tuple)
        op_type, domain = "", ""
        for nf, nw, nval in field_spans(buf, *val):
            if nf == _NODE_OP_TYPE and nw == LEN:
                op_type = _text(buf, nval)
            elif nf == _NODE_DOMAIN and nw == LEN:
                domain = _text(buf, nval)
            elif nf == _NODE_ATTRIBUTE and nw == LEN:
                assert isinstance(nval, tuple)
                for af, aw, aval in field_spans(buf, *nval):  # sub-graphs of If / Loop / Scan
                    if af in (_ATTR_G, _ATTR_GRAPHS) and aw == LEN:
                        assert isinstance(aval, tuple)
                        _graph_ops(buf, aval, _GRAPH_NODE, out)
        out.add((_norm_domain(domain), op_type))


def model_ops(model: bytes | str | os.PathLike[str], *, name: str | None = None
              ) -> set[tuple[str, str]]:
    """Every ``(domain, op_type)`` a model's graph (and its sub-graphs and functions) uses."""
    buf, label = _read(model, name)
    with named(label):
        return _model_ops(buf)


def _model_ops(buf: bytes) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    found_graph = False
    for field, wire, val in field_spans(buf, 0, len(buf)):
        if wire != LEN:
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


def model_opsets(model: bytes | str | os.PathLike[str], *, name: str | None = None
                 ) -> dict[str, int]:
    """The model's ``opset_import`` table: domain (``""`` = default) -> version."""
    buf, label = _read(model, name)
    with named(label):
        return _model_opsets(buf)


def _model_opsets(buf: bytes) -> dict[str, int]:
    out: dict[str, int] = {}
    for field, wire, val in field_spans(buf, 0, len(buf)):
        if field != _MODEL_OPSET_IMPORT or wire != LEN:
            continue
        assert isinstance(val, tuple)
        domain, version = "", 0
        for f, w, v in field_spans(buf, *val):
            if f == _OPSET_DOMAIN and w == LEN:
                domain = _text(buf, v)
            elif f == _OPSET_VERSION and w == VARINT:
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
    name: str | None = None,
) -> set[tuple[str, str]]:
    """Raise ModelError listing the ops of ``model`` that are not allowed; return the ops used.

    ``allowlist`` is a set of ``(domain, op)`` or the path of an allowlist file (default: the
    repository's ``op_allowlist.txt``); errors name the model ``name`` (default: its path, or
    ``model`` for bytes).
    """
    allowed = allowlist if isinstance(allowlist, set) else load_allowlist(allowlist)
    # a user passing --model fake.onnx must see the file named, not only what is wrong
    label = _label(model, name)
    ops = model_ops(model, name=label)
    foreign = ops - allowed
    if foreign:
        raise ModelError(
            f"{label}: uses operators outside the edge allowlist ({ALLOWLIST_PATH.name}): "
            f"{_fmt(foreign)}"
        )
    return ops
