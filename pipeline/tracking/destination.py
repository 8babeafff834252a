"""Where to track: the store, the experiment and the repository a run belongs to."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config.schema import configuration_digest

DEFAULT_EXPERIMENT = "mlp-pipeline"
# Runs that differ only in train.seed share this tag: MLflow's "Group by" gathers them.
CONFIG_TAG = "config.digest"


def tracking_enabled() -> bool:
    return os.environ.get("PIPELINE_TRACKING", "1") != "0"


def repo_root() -> Path:
    """The original repository: DVC_ROOT under DVC (queued runs work in a temporary copy)."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    top = _git("rev-parse", "--show-toplevel", cwd=Path.cwd())
    return Path(top).resolve() if top else Path.cwd().resolve()


@dataclass(frozen=True)
class Destination:
    tracking_uri: str
    experiment_name: str
    # Only set for the embedded store: an absolute path, or artifacts would land in the copy
    # that DVC runs queued experiments in.
    artifact_location: str | None


def destination(root: Path | None = None) -> Destination:
    """Decide "embedded default or not" before mlflow.set_tracking_uri() sets the variable."""
    root = root or repo_root()
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri is not None:  # set but empty is a mistake that store_check names, not "unset"
        return Destination(uri, name, None)
    return Destination(f"sqlite:///{root / 'mlflow.db'}", name, (root / "mlartifacts").as_uri())


def git_tags(root: Path) -> dict[str, str]:
    commit = _git("rev-parse", "HEAD", cwd=root)
    if not commit:
        return {}
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", cwd=root))
    return {"mlflow.source.git.commit": commit, "git.dirty": str(dirty).lower()}


def source_tags() -> dict[str, str]:
    """The run's Source in the UI: the command of this process, as the user would type it."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    module = spec.name.removesuffix(".__main__") if spec else None
    command = ["python", "-m", module] if module else ["python", *sys.argv[:1]]
    return {"mlflow.source.name": shlex.join(command + sys.argv[1:]), "mlflow.source.type": "LOCAL"}


def run_name(tags: dict[str, str]) -> str | None:
    """What the run is: the DVC experiment's name, else `<data name>@<short commit>`."""
    if os.environ.get("DVC_EXP_NAME"):
        return os.environ["DVC_EXP_NAME"]
    data, commit = tags.get("data.name"), tags.get("mlflow.source.git.commit")
    if not (data and commit):
        return None  # MLflow's own random name: nothing better to say
    return f"{data}@{commit[:7]}" + ("-dirty" if tags.get("git.dirty") == "true" else "")


def configuration_tags(params: dict[str, Any]) -> dict[str, str]:
    """The configuration a run repeats (params: Params.flat()); none for a run without params."""
    return {CONFIG_TAG: configuration_digest(params)} if params else {}


def dvc_tags() -> dict[str, str]:
    names = {"DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.baseline_rev"}
    return {tag: os.environ[var] for var, tag in names.items() if os.environ.get(var)}


def _git(*args: str, cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()
