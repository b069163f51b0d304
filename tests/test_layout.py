"""The package's shape (layout.md): small modules, one idea each, imports that only point down."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "batchsync"
MAX_LINES = 750
MAX_LAYERS = 9


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The package modules ``name`` imports, anywhere in it (lazy imports count)."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


@functools.cache
def _layer(name: str, seen: frozenset[str] = frozenset()) -> int:
    assert name not in seen, f"import cycle through {name}"
    return 1 + max((_layer(dep, seen | {name}) for dep in GRAPH[name]), default=0)


def test_imports_form_layers_at_most_nine_deep() -> None:
    """No import cycle, and no chain of imports longer than nine modules (was eleven)."""
    deepest = max(MODULES, key=_layer)
    assert _layer(deepest) <= MAX_LAYERS, deepest


def test_the_pure_core_imports_no_io_library() -> None:
    """Policy and value modules import no asyncio, aiohttp or msal (style.md)."""
    pure = ("_pacing", "_rows", "_filters", "_clouds", "_errors", "_tally", "_settle")
    for name in pure:
        source = MODULES[f"batchsync.{name}"].read_text(encoding="utf-8")
        tree = ast.parse(source)
        imported = {
            (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert not {m.split(".")[0] for m in imported} & {"asyncio", "aiohttp", "msal"}, name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_is_small_and_says_its_idea(name: str) -> None:
    """Every module is at most ~750 lines and opens with a docstring stating its one idea."""
    source = MODULES[name].read_text(encoding="utf-8")
    assert len(source.splitlines()) <= MAX_LINES, name
    doc = ast.get_docstring(ast.parse(source))
    assert doc, f"{name}: no docstring"
    assert len(doc.splitlines()[0]) >= 20, f"{name}: no one-line statement of its idea"
