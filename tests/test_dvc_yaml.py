"""dvc.yaml lists exactly the code and params each stage reads."""

from __future__ import annotations

import ast

import yaml
from helpers import ROOT

STAGES = ("validate", "generate", "train", "evaluate", "export")


def module_files(module: str) -> list:
    """A module's file, or every file of a package (listed in dvc.yaml as its directory)."""
    package = ROOT / "pipeline" / module
    return sorted(package.glob("*.py")) if package.is_dir() else [package.with_suffix(".py")]


def pipeline_imports(module: str) -> set[str]:
    found = set()
    for node in (n for f in module_files(module) for n in ast.walk(ast.parse(f.read_text()))):
        if isinstance(node, ast.ImportFrom) and node.module == "pipeline":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline."):
            found.add(node.module.split(".")[1])
    return found


def import_closure(module: str) -> set[str]:
    seen, todo = {module}, [module]
    while todo:
        for name in pipeline_imports(todo.pop()) - seen:
            seen.add(name)
            todo.append(name)
    return seen - {"__init__"}


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_each_stage_depends_on_exactly_the_code_it_imports():
    for name in STAGES:
        stage = stages()[name]
        listed = {
            d.removeprefix("pipeline/").removesuffix(".py")
            for d in stage["deps"]
            if d.startswith("pipeline/")
        }
        assert listed == import_closure(name), name
        assert stage["cmd"].startswith(f"python -m pipeline.{name} ")


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
