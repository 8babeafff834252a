"""A DVC remote shares data and models: push from one clone, pull into a fresh one, nothing to run.

The remote is a local directory here; S3 or SSH remotes (docs/team.md) differ only in
the URL and the DVC plugin. Every output is in DVC's cache (none has `cache: false`), metrics and
plots included, so the remote carries them all and git carries dvc.lock.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import PIPELINE_OUTPUTS, SMALL_PARAMS, clean_env, commit_all, run, write_params

pytestmark = pytest.mark.e2e


def test_fresh_clone_pulls_data_and_models_and_runs_no_stage(project, tmp_path: Path):
    env = clean_env(PIPELINE_TRACKING="0")  # the remote, not MLflow, is under test here
    write_params(project / "params.yaml", SMALL_PARAMS)
    remote, origin, clone = tmp_path / "dvc-remote", tmp_path / "origin.git", tmp_path / "clone"
    run(["dvc", "repro"], project, env=env)
    run(["dvc", "remote", "add", "--default", "team", str(remote)], project, env=env)
    commit_all(project, "results: dvc.lock, metrics and plots data, the remote")
    pushed = run(["dvc", "push"], project, env=env).stdout
    assert "pushed" in pushed

    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    run(["git", "push", "-q", str(origin), "main"], project)
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    assert not (clone / "models/model.pth").exists()
    missing = run(["dvc", "status"], clone, env=env).stdout
    assert "deleted:" in missing and "models/model.pth" in missing

    run(["dvc", "pull"], clone, env=env)
    for name in PIPELINE_OUTPUTS:
        assert (clone / name).read_bytes() == (project / name).read_bytes(), name
    assert "Data and pipelines are up to date." in run(["dvc", "status"], clone, env=env).stdout
    again = run(["dvc", "repro"], clone, env=env).stdout
    assert "Running stage" not in again
    assert "didn't change, skipping" in again
