"""Rules of the code's shape that review kept by hand (issue 23 §1 and §4), read from the source.

- No function in ``workbench/``, ``plugins/`` or ``apps/`` is longer than 80 lines.
- An import inside a function is the exception and says why: a comment on its line, on
  another line of the same block of imports, or on the line just above the block. And it
  is not a module the file already imports at its top (then the stated reason is false).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONGEST = 80


def sources() -> list[Path]:
    return sorted(p for folder in ("workbench", "plugins", "apps") for p in (ROOT / folder).rglob("*.py"))


def functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(root)}:{f.lineno} {f.name}: {f.end_lineno - f.lineno + 1} lines"
            for f in functions(tree) if f.end_lineno - f.lineno + 1 > LONGEST]


def _is_import(line: str) -> bool:
    return line.strip().startswith(("from ", "import "))


def late_import_problems(path: Path, root: Path = ROOT) -> list[str]:
    """In-function imports without a stated reason, or of a module the file imports at its top."""
    lines = path.read_text(encoding="utf-8").split("\n")
    tree = ast.parse("\n".join(lines))
    top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module and not n.level}
    where = path.relative_to(root)
    found = []
    for stmt in (s for f in functions(tree) for s in ast.walk(f) if isinstance(s, ast.Import | ast.ImportFrom)):
        modules = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else [stmt.module or ""]
        found += [f"{where}:{stmt.lineno} imports {m} again (the file imports it at the top)" for m in modules if m in top]
        first, last = stmt.lineno - 1, stmt.end_lineno - 1
        while first > 0 and _is_import(lines[first - 1]):
            first -= 1
        while last + 1 < len(lines) and _is_import(lines[last + 1]):
            last += 1
        block = lines[first:last + 1] + lines[max(first - 1, 0):first]
        if not any("#" in line for line in block):
            found.append(f"{where}:{stmt.lineno} {lines[stmt.lineno - 1].strip()}: a late import without a reason")
    return found


def test_no_function_is_longer_than_80_lines() -> None:
    assert [line for p in sources() for line in long_functions(p)] == []


def test_every_late_import_says_why_and_is_needed() -> None:
    assert [line for p in sources() for line in late_import_problems(p)] == []


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """Rules that could not see a violation would pass on anything."""
    module = tmp_path / "m.py"
    module.write_text("import json\n\n\ndef f():\n    import json\n    from os import path\n" + "    x = 1\n" * 80)
    problems = late_import_problems(module, tmp_path)
    assert any("imports json again" in p for p in problems) and any("from os import path" in p for p in problems)
    assert long_functions(module, tmp_path) == ["m.py:4 f: 83 lines"]
