"""Dependencies point one way: ``ulak`` ← ``ingest`` ← ``cluster`` ← ``actors`` ← ``api``.

Read statically (``ast``), lazy imports inside functions and ``TYPE_CHECKING`` blocks included: a
package may import its own modules and those of the packages left of it, never one to its right, and
no set of modules imports itself round in a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("ulak", "ingest", "cluster", "actors", "api")


def modules(root: Path) -> dict[str, Path]:
    """Every module of the layered packages under *root*, by dotted name."""
    found: dict[str, Path] = {}
    for package in LAYERS:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _targets(
    name: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]
) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: from the module's package, up level - 1
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, *([node.module] if node.module else [])])
    for alias in node.names:  # ``from cluster import plane`` names a module, ``from x import f`` a name
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base


def imports(root: Path) -> dict[str, set[str]]:
    """Each module's imports of the layered packages' modules (to the nearest module named)."""
    known = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for named in _targets(name, path, node, known):
                target = named
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in known and target != name:
                    graph[name].add(target)
    return graph


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a package to the right of the importer's."""
    rank = {package: i for i, package in enumerate(LAYERS)}
    return sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        for target in targets
        if rank[target.split(".")[0]] > rank[name.split(".")[0]]
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected sets of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_package_imports_one_to_its_right() -> None:
    assert upward(imports(ROOT)) == []


def test_no_modules_import_each_other_round() -> None:
    assert cycles(imports(ROOT)) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in LAYERS:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


PLANTED = {
    "an upward import, even a lazy one, and the cycle it closes": (
        {
            "cluster/send/pool.py": "def f():\n    from actors.factories import make\n",
            "actors/factories.py": "from cluster.send import pool\n",
            "api/cli.py": "from actors import factories\nfrom ulak import keys\n",
            "ulak/keys.py": "",
        },
        ["cluster.send.pool imports actors.factories"],
        [["actors.factories", "cluster.send.pool"]],
    ),
    "a cycle inside one package, through a type-only and a relative import": (
        {
            "ulak/settings.py": "import typing\nif typing.TYPE_CHECKING:\n    from ulak.files import F\n",
            "ulak/files.py": "from . import server\n",
            "ulak/server.py": "from ulak import settings\n",
        },
        [],
        [["ulak.files", "ulak.server", "ulak.settings"]],
    ),
}


@pytest.mark.parametrize("planted", PLANTED)
def test_the_check_finds_what_is_planted(tmp_path: Path, planted: str) -> None:
    files, up, round_ = PLANTED[planted]
    root = _tree(tmp_path, files)
    assert upward(imports(root)) == up
    assert cycles(imports(root)) == round_


@pytest.mark.parametrize("module", ["api.schemas", "cluster.jobs.options", "ulak.settings"])
def test_the_api_s_models_import_no_ray(module: str) -> None:
    """The request and response models (and the job's options behind them) load without Ray: a
    client, the CLI's parser and the docs build read them."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in the harness modules (``tests/helpers.py``, ``tests/integration/
    stack.py`` and ``binds.py``), never in a test module another one reaches into."""
    found = []
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.split(".")[-1].startswith("test_")
            ):
                found.append(f"{path.relative_to(ROOT)} imports {node.module}")
    assert found == []
