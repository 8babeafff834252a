"""One queued DVC sweep for the whole suite: 3 learning rates x 2 training seeds, tracked.

Several tests read it (tests/test_experiments.py: runs linked both ways;
tests/test_compare_stats.py: configurations over seeds, the verdict, --promote), each asserting
on the real outputs of the real run; a sweep is the suite's most expensive set-up, so it runs
once (issue 19's decision).
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from helpers import SMALL_PARAMS, commit_all, copy_project, run, write_params

# train.lr 0.1 and 0.1001 differ in nothing that matters, 1e-4 clearly trains worse.
RATES = {"0.1": "same", "0.1001": "same", "0.0001": "worse"}
TRAIN_SEEDS = (1, 2)
EPOCHS = 2
QUEUE_DEADLINE_S = 900


@dataclass(frozen=True)
class Sweep:
    repo: Path
    names: list[str]  # the queued experiments
    statuses: dict[str, str]  # `dvc queue status` of each once the queue is done
    failure_logs: list[str]  # `dvc queue logs` of those that did not succeed


def sweep_params() -> dict:
    params = copy.deepcopy(SMALL_PARAMS)
    params["train"]["epochs"] = EPOCHS
    return params


def queued_names(output: str) -> list[str]:
    """The experiments `dvc exp run --queue` printed as queued."""
    return re.findall(r"Queued experiment '([^']+)'", output)


def wait_for_queue(repo: Path, names: list[str], env: dict | None = None) -> dict[str, str]:
    """Poll `dvc queue status` until none of `names` is queued or running; their statuses."""
    deadline = time.monotonic() + QUEUE_DEADLINE_S
    while True:
        lines = run(["dvc", "queue", "status"], repo, env=env).stdout.splitlines()
        statuses = {line.split()[1]: line.split()[-1] for line in lines if line.split()[1:2]}
        statuses = {name: statuses.get(name, "missing") for name in names}
        if not {"Queued", "Running", "missing"} & set(statuses.values()):
            return statuses
        assert time.monotonic() < deadline, f"queue still busy after {QUEUE_DEADLINE_S} s"
        time.sleep(3)


def run_sweep(repo: Path) -> Sweep:
    """Queue RATES x TRAIN_SEEDS in a fresh project copy and run the queue with 2 workers."""
    copy_project(repo)
    write_params(repo / "params.yaml", sweep_params())
    commit_all(repo, "sweep params")  # queued experiments run the committed tree
    seeds = "train.seed=" + ",".join(map(str, TRAIN_SEEDS))
    rates = "train.lr=" + ",".join(RATES)
    queued = run(["dvc", "exp", "run", "--queue", "-S", seeds, "-S", rates], repo)
    names = queued_names(queued.stdout + queued.stderr)
    try:
        run(["dvc", "queue", "start", "-j", "2"], repo)
        statuses = wait_for_queue(repo, names)
    finally:
        run(["dvc", "queue", "stop", "--kill"], repo, check=False)
    failed = [name for name, status in statuses.items() if status != "Success"]
    logs = [run(["dvc", "queue", "logs", name], repo, check=False).stdout for name in failed]
    return Sweep(repo, names, statuses, logs)


def shared_sweep(shared_dir: Path) -> Sweep:
    """The sweep under `shared_dir`, run by whichever pytest process asks first; the others
    (xdist workers of the same session) wait for it and read the same repository."""
    done = shared_dir / "queued-sweep.json"
    with FileLock(str(shared_dir / "queued-sweep.lock")):
        if not done.exists():
            sweep = run_sweep(shared_dir / "queued-sweep")
            fields = {**sweep.__dict__, "repo": str(sweep.repo)}
            done.write_text(json.dumps(fields))
    fields = json.loads(done.read_text())
    return Sweep(**{**fields, "repo": Path(fields["repo"])})
