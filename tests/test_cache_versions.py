"""Cache versions follow the code whose results they key.

A cached source record keeps the rate :func:`vmafdistill.io.packets.read_rate` read and the
shot windows cut at it, keyed by ``SHOTS_VERSION``: a new rate rule under the same version
reused the old rule's rate and windows (a hunt: a frame-dropping 61-frame MP4 cut into 2
windows from a cache, 3 fresh; two rule changes had landed under version 8).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import io
import textwrap
import tokenize

from vmafdistill.io import packets
from vmafdistill.versions import SHOTS_VERSION

#: SHOTS_VERSION -> digest of the read_rate it keys (:func:`code_digest`). Changed read_rate?
#: Bump SHOTS_VERSION (vmafdistill/versions.py, saying why) and record the new digest here.
READ_RATE_DIGESTS = {9: "06b5c25b80fdb32e"}


def code_digest(fn: object) -> str:
    """sha256 (16 hex digits) of ``fn``'s tokens without comments, layout or its docstring:
    the same on every Python version (an ``ast.dump`` is not)."""
    source = textwrap.dedent(inspect.getsource(fn))
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    doc = node.body[0] if ast.get_docstring(node) is not None else None
    doc_rows = range(doc.lineno, doc.end_lineno + 1) if doc is not None else range(0)
    layout = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
              tokenize.DEDENT, tokenize.ENDMARKER)
    kept = [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type not in layout and tok.start[0] not in doc_rows]
    return hashlib.sha256(" ".join(kept).encode()).hexdigest()[:16]


def test_a_changed_read_rate_bumps_shots_version() -> None:
    assert READ_RATE_DIGESTS.get(SHOTS_VERSION) == code_digest(packets.read_rate), (
        "io.packets.read_rate changed (or SHOTS_VERSION did): cached source records keep the "
        "old rate and shot windows until SHOTS_VERSION is bumped; bump it and record "
        f"{code_digest(packets.read_rate)!r} for it in READ_RATE_DIGESTS")
