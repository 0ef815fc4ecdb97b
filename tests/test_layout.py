"""The test tree's rules: conftest files hold fixtures only, so nothing imports from one
(shared helpers live in tests/support/)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_test_module_imports_from_a_conftest():
    offenders = {
        str(path.relative_to(TESTS)): sorted(m for m in modules if "conftest" in m.split("."))
        for path in TESTS.rglob("*.py")
        if (modules := _imported_modules(path))
    }
    assert {path: found for path, found in offenders.items() if found} == {}
