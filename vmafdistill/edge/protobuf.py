"""The protobuf wire format, read without the ``protobuf`` or ``onnx`` packages (torch-free).

An ONNX model is a handful of nested protobuf messages; the edge runtime has onnxruntime but
neither ``onnx`` nor ``protobuf``, so :mod:`.onnx_check` (operators, opsets) and
:mod:`.scalar_graph` (the single-row compiler) both walk the bytes with this reader.
:func:`field_spans` yields one message's fields with the position of each payload (no copies);
:func:`fields` the same with each payload as bytes. Every varint and every field is checked to
end inside its message: a truncated or corrupt file raises :class:`ProtobufError` (a
:class:`~vmafdistill.errors.ModelError`) saying what and where, never an index error or a
silently short payload; callers that know the file name it (:func:`named`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..errors import ModelError

__all__ = ["ProtobufError", "field_spans", "fields", "named", "packed_ints", "read_varint",
           "signed"]

#: Wire types: varint, fixed 64-bit, length-delimited, fixed 32-bit (groups are not read).
VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class ProtobufError(ModelError):
    """Malformed protobuf bytes (a varint or field that runs past its message)."""


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``buf[pos]`` (which must end before ``end``) and the position after it."""
    value, shift, start = 0, 0, pos
    while True:
        if pos >= end or shift > 63:
            raise ProtobufError(f"malformed ONNX protobuf (truncated varint at byte {start})")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def field_spans(buf: bytes, start: int = 0, end: int | None = None
                ) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    """``(field number, wire type, value)`` of the message in ``buf[start:end]`` (default: all
    of ``buf``): a varint field's value, else the ``(start, end)`` of its payload (fixed 8 or 4
    bytes, or length-delimited)."""
    end = len(buf) if end is None else end
    if not 0 <= start <= end <= len(buf):
        raise ProtobufError(f"malformed ONNX protobuf (message {start}..{end} outside the "
                            f"{len(buf)} bytes)")
    pos = start
    while pos < end:
        key, pos = read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield number, wire, value
            continue
        if wire == FIXED64:
            length = 8
        elif wire == FIXED32:
            length = 4
        elif wire == LEN:
            length, pos = read_varint(buf, pos, end)
        else:
            raise ProtobufError(f"malformed ONNX protobuf (unsupported wire type {wire} at "
                                f"byte {pos})")
        if pos + length > end:
            raise ProtobufError(f"malformed ONNX protobuf (field {number} at byte {pos} runs "
                                "past its message)")
        yield number, wire, (pos, pos + length)
        pos += length


def fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """:func:`field_spans` of the whole message ``buf``, each payload as its bytes (a varint
    field's value as an int)."""
    for number, wire, value in field_spans(buf):
        yield number, wire, value if isinstance(value, int) else buf[value[0] : value[1]]


def signed(v: int) -> int:
    """A varint read as a two's-complement int64 (``int32`` / ``int64`` fields)."""
    return v - (1 << 64) if v >= 1 << 63 else v


def packed_ints(payload: bytes) -> list[int]:
    """The signed values of a packed repeated ``int32`` / ``int64`` field."""
    out, pos = [], 0
    while pos < len(payload):
        v, pos = read_varint(payload, pos, len(payload))
        out.append(signed(v))
    return out


@contextlib.contextmanager
def named(name: str) -> Iterator[None]:
    """Within: a :class:`~vmafdistill.errors.ModelError` (a malformed file, a missing graph)
    re-raised as ``"<name>: not a valid ONNX model: <what>"``."""
    try:
        yield
    except ModelError as exc:
        raise ModelError(f"{name}: not a valid ONNX model: {exc}") from None
