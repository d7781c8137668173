"""The protocol and text layers are sans-IO: they must not import I/O or cluster libraries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SANS_IO = sorted((ROOT / "ulak" / "smpp").glob("*.py")) + sorted((ROOT / "ulak" / "text").glob("*.py"))
FORBIDDEN = {"asyncio", "socket", "ray", "redis", "selectors", "ssl", "threading", "subprocess", "trio"}


@pytest.mark.parametrize("path", SANS_IO, ids=lambda p: p.name)
def test_module_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{path.name} imports {sorted(imported & FORBIDDEN)}"


def test_the_list_is_not_empty() -> None:
    assert len(SANS_IO) >= 8
