"""The codebase's shape, checked: short functions, a README layout that matches the tree.

A function over :data:`MAX_LINES` lines of code (its docstring not counted) must say why in its
docstring ("Long because ..."); every path the README's layout table names exists, and every
package module and config group is named there.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vmafdistill"
MAX_LINES = 80


def _code_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = fn.end_lineno - fn.lineno + 1
    first = fn.body[0] if fn.body else None
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def test_no_long_function_without_a_stated_reason() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _code_lines(node)
                doc = ast.get_docstring(node) or ""
                if n > MAX_LINES and "long because" not in doc.lower():
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "split these (or say 'Long because ...' in the docstring):\n" + "\n".join(long)


def _layout_table() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Layout")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_readme_layout_matches_the_tree() -> None:
    table = _layout_table()
    rows = [ln for ln in table.splitlines() if ln.startswith("| `")]
    missing = []
    for row in rows:
        names = re.findall(r"`([^`]+)`", row.split("|")[1])
        # later names in a cell are siblings of the first (`vmafdistill/encode.py`, `shots.py`)
        parent = REPO / Path(names[0].rstrip("/")).parent
        for name in names:
            if not ((REPO / name).exists() or (parent / name).exists()):
                missing.append(name)
    assert not missing, f"README layout names paths that do not exist: {missing}"
    modules = sorted(p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
                     if (p.suffix == ".py" and not p.stem.startswith("_"))
                     or (p.is_dir() and (p / "__init__.py").is_file()))
    unnamed = [m for m in modules if m not in table]
    assert not unnamed, f"package modules the README layout does not name: {unnamed}"
    groups = sorted(p.name for p in (REPO / "conf").iterdir() if p.is_dir())
    unnamed = [g for g in groups if f"{g}/" not in table]
    assert not unnamed, f"config groups the README layout does not name: {unnamed}"
