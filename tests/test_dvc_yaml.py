"""dvc.yaml lists exactly the code and params each stage reads."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml
from helpers import ROOT

STAGES = ("validate", "generate", "train", "evaluate", "export")


def module_file(module: str) -> Path | None:
    """pipeline.a.b -> pipeline/a/b.py or pipeline/a/b/__init__.py; None if it is no module."""
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """The pipeline modules a file imports, at the top or inside functions (both run)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pipeline.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pipeline":
            found.add(node.module)
            # `from pipeline.model import checkpoint` imports the module pipeline.model.checkpoint
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if module_file(name)}


def with_packages(module: str) -> set[str]:
    """Importing pipeline.a.b runs pipeline/__init__.py and pipeline/a/__init__.py first."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def import_closure(module: str) -> set[str]:
    """Every file that `python -m <module>` can execute of the pipeline, as repo paths."""
    seen, todo = with_packages(module), [module]
    while todo:
        for name in imported_modules(module_file(todo.pop())) - seen:
            new = with_packages(name) - seen
            seen |= new
            todo.extend(new)
    return {str(module_file(name).relative_to(ROOT)) for name in seen}


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_each_stage_depends_on_exactly_the_code_it_imports():
    for name in STAGES:
        stage = stages()[name]
        listed = {d for d in stage["deps"] if d.startswith("pipeline/")}
        assert sorted(listed) == sorted(import_closure(f"pipeline.stages.{name}")), name
        assert stage["cmd"].startswith(f"python -m pipeline.stages.{name} ")


def test_params_per_stage():
    params = {name: stages()[name].get("params") for name in STAGES}
    assert params["validate"] == [{"params.yaml": None}]  # the whole file
    assert params["generate"] == ["seed", "data"]
    assert params["train"] == ["seed", "model", "train"]
    assert params["evaluate"] == ["evaluate"]
    assert params["export"] == ["export"]


def test_every_writing_stage_waits_for_validation():
    for name in STAGES[1:]:
        assert "data/params.ok" in stages()[name]["deps"], name
