"""The layout's promises (docs/architecture.md): small modules in small packages, no import
cycle, and MLflow imported by pipeline/tracking alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import ROOT

PIPELINE = ROOT / "pipeline"
MAX_MODULE_LINES = 300
MAX_PACKAGE_MODULES = 10  # besides __init__.py and __main__.py


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PIPELINE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def top_level_imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Pipeline modules imported when the module is imported (not those inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name in known}


def test_no_module_is_longer_than_a_read_in_one_pass():
    long = {n: len(p.read_text().splitlines()) for n, p in modules().items()}
    assert {n: size for n, size in long.items() if size > MAX_MODULE_LINES} == {}


def test_no_package_holds_more_than_about_ten_modules():
    counts = {}
    for path in PIPELINE.rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            counts[path.parent.relative_to(ROOT)] = counts.get(path.parent.relative_to(ROOT), 0) + 1
    assert {str(p): n for p, n in counts.items() if n > MAX_PACKAGE_MODULES} == {}


def test_no_import_cycle():
    known = modules()
    graph = {name: top_level_imports(path, known) - {name} for name, path in known.items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            pytest.fail("import cycle: " + " -> ".join((*path[path.index(name) :], name)))
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_only_the_tracking_package_imports_mlflow():
    importers = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] == "mlflow" for n in names):
                importers.add(name)
    assert importers and all(n.startswith("pipeline.tracking") for n in importers), importers
