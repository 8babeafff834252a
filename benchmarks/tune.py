"""A study against a queued DVC sweep: the same 12 configurations, configurations per minute.

Copies the project into a temporary git repository and runs `dvc repro` once (data, baseline).
Then, alternating the two sides `--repeats` times:
- DVC: `dvc exp run --queue -S ...` (12 experiments) and `dvc queue start -j 2`, timed until
  the queue is empty: every configuration is a full pipeline run (processes, imports, stages);
- study: `--workers` processes of `python -m pipeline.tune` on one study with those 12
  configurations enqueued and pruning off, timed from start to the last process's exit.
Both track into the copy's embedded MLflow store. Then a 40-trial study on the committed
tune.yaml (sampler and median pruner as shipped) reports how many epochs pruning saved.

    python benchmarks/tune.py [--repeats 1] [--workers 2] [--pruning-trials 40]

The last line is `ratio=<study / DVC sweep configurations per minute, median over pairs>`.

`--seeds-cost` measures instead what `pipeline.tune --repeats 3` costs per trial against
`--repeats 1` (goal: at most 3.3 times): the same enqueued configurations, pruning off, trials
in this process without tracking, the two sides alternated `--rounds` times on the defaults.
`--quick` does the same on a small set in seconds. Its last line is `ratio=<seconds per trial
with 3 seeds / with 1, median over pairs>`.

    python benchmarks/tune.py --seeds-cost [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from startup import ROOT, copy_head, environment, make_repository

sys.path.insert(0, str(ROOT))  # the project's package, as `python -m` would find it
from pipeline.config.params import load_params
from pipeline.process.lifeline import popen_tied
from pipeline.search import study as search_study
from pipeline.search.space import load_space
from pipeline.search.storage import STORAGE_FILE

SWEEP = {
    "train.lr": [0.03, 0.1, 0.3],
    "train.batch_size": [32, 64],
    "train.optimizer": ["sgd", "adam"],
}
# The same keys as a search space; pruning off, so every configuration trains every epoch.
SPACE = {
    "study": {
        "name": "bench",
        "seed": 0,
        "pruner_startup_trials": 100000,
        "pruner_warmup_epochs": 0,
    },
    "space": {
        "train.lr": {"low": 0.001, "high": 1.0, "log": True},
        "train.batch_size": {"choices": [32, 64]},
        "train.optimizer": {"choices": ["sgd", "adam"]},
    },
}


def configurations() -> list[dict]:
    return [dict(zip(SWEEP, values, strict=True)) for values in itertools.product(*SWEEP.values())]


def run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(
            f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return done.stdout


def dvc_sweep(repo: Path) -> float:
    """Seconds from `dvc queue start -j 2` until the 12 queued experiments have all run."""
    sets = [
        arg
        for key, values in SWEEP.items()
        for arg in ("-S", f"{key}={','.join(map(str, values))}")
    ]
    run(["dvc", "exp", "run", "--queue", *sets], repo)
    start = time.perf_counter()
    run(["dvc", "queue", "start", "-j", "2"], repo)
    while True:
        status = run(["dvc", "queue", "status"], repo)
        if not any(word in status for word in ("Queued", "Running")):
            break
        time.sleep(1)
    elapsed = time.perf_counter() - start
    if status.count("Success") < 12:
        raise SystemExit(f"the DVC sweep did not succeed:\n{status}")
    run(["dvc", "queue", "remove", "--all"], repo)  # the next repeat queues afresh
    return elapsed


def study(repo: Path, workers: int, name: str) -> float:
    """Seconds for `workers` processes to run the 12 configurations as one study."""
    space, fixed = repo / "bench-space.yaml", repo / "bench-fixed.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    fixed.write_text(yaml.safe_dump(configurations()))
    # Enqueued before any worker starts, so no worker samples a configuration of its own.
    base = load_params(repo / "params.yaml")
    config = load_space(space, base)
    storage = f"sqlite:///{repo / STORAGE_FILE}"
    opened = search_study.open_study(storage=storage, name=name, config=config, create=True)
    search_study.enqueue(opened, config, base, fixed)
    total = len(configurations())
    shares = [total // workers + (index < total % workers) for index in range(workers)]
    command = [sys.executable, "-m", "pipeline.tune", "--space", str(space), "--study", name]
    start = time.perf_counter()
    processes = [
        popen_tied(  # the workers end with this script, however it ends
            [*command, "--storage", storage, "--trials", str(share)],
            cwd=repo,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    for process in processes:
        out, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"a study worker failed:\n{out[-2000:]}\n{err[-2000:]}")
    elapsed = time.perf_counter() - start
    finished = search_study.open_study(storage=storage, name=name, config=config, create=False)
    if search_study.summary(finished) != f"study {name!r}: {total} trials ({total} complete)":
        shown = search_study.summary(finished)
        raise SystemExit(f"the study did not run the 12 configurations: {shown}")
    return elapsed


def pruning(repo: Path, trials: int) -> tuple[int, int, float]:
    """(epochs trained, epochs without pruning, seconds) of a study on the committed tune.yaml."""
    start = time.perf_counter()
    run(
        [sys.executable, "-m", "pipeline.tune", "--trials", str(trials), "--study", "pruning"], repo
    )
    elapsed = time.perf_counter() - start
    config = load_space(repo / "tune.yaml", load_params(repo / "params.yaml"))
    storage = f"sqlite:///{repo / STORAGE_FILE}"
    opened = search_study.open_study(storage=storage, name="pruning", config=config, create=False)
    trained, planned = search_study.epochs_saved_by_pruning(opened)
    return trained, planned, elapsed


def seeds_workspace(directory: Path, quick: bool) -> tuple[Path, Path, Path]:
    """(params.yaml, data directory, fixed configurations) in `directory`: the defaults, or a
    small set (600 samples, 2 epochs) with --quick."""
    from pipeline.stages import generate

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["device"] = "cpu"
    if quick:
        params["data"].update(n_samples=600, n_features=8)
        params["train"]["epochs"] = 2
    (directory / "params.yaml").write_text(yaml.safe_dump(params))
    (directory / "space.yaml").write_text(yaml.safe_dump(SPACE))
    rows = configurations()[: 2 if quick else 12]
    (directory / "fixed.yaml").write_text(yaml.safe_dump(rows))
    generate.run(
        data=load_params(directory / "params.yaml").data, seed=params["seed"], out_dir=directory
    )
    return directory / "params.yaml", directory, directory / "fixed.yaml"


def seconds_per_trial(directory: Path, name: str, repeats: int) -> float:
    """One study of the fixed configurations, `repeats` seeds each: its trials' time / trials."""
    from pipeline.search.trials import load_splits
    from pipeline.tracking.study import NullStudyRun

    base = load_params(directory / "params.yaml")
    config = load_space(directory / "space.yaml", base)
    storage = f"sqlite:///{directory / 'optuna.db'}"
    opened = search_study.open_study(storage=storage, name=name, config=config, create=True)
    trials = search_study.enqueue(opened, config, base, directory / "fixed.yaml")
    splits = load_splits(directory)
    start = time.perf_counter()
    search_study.run_trials(
        study=opened,
        config=config,
        base=base,
        splits=splits,
        n_trials=trials,
        study_run=NullStudyRun(),
        repeats=repeats,
    )
    return (time.perf_counter() - start) / trials


def seeds_cost(rounds: int, quick: bool) -> None:
    seconds: dict[int, list[float]] = {1: [], 3: []}
    with tempfile.TemporaryDirectory(prefix="bench-seeds-") as tmp:
        directory = Path(tmp)
        seeds_workspace(directory, quick)
        # Torch's first optimizer step and Optuna's first storage calls cost seconds once.
        seconds_per_trial(directory, "warm-up", 1)
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        for index in range(rounds):
            # Alternate which side goes first, so a change in the machine's load hits both.
            for repeats in (1, 3) if index % 2 == 0 else (3, 1):
                per_trial = seconds_per_trial(directory, f"r{repeats}-{index}", repeats)
                seconds[repeats].append(per_trial)
                print(f"  --repeats {repeats}: {per_trial:.3f} s per trial")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    for repeats, values in seconds.items():
        print(
            f"--repeats {repeats}: median {statistics.median(values):.3f} s per trial "
            f"(range {min(values):.3f}-{max(values):.3f})"
        )
    ratios = [three / one for one, three in zip(seconds[1], seconds[3], strict=True)]
    print(f"ratios {min(ratios):.2f}-{max(ratios):.2f} (goal: at most 3.3)")
    print(f"ratio={statistics.median(ratios):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="study processes (DVC: -j 2)")
    parser.add_argument("--pruning-trials", type=int, default=40)
    parser.add_argument("--seeds-cost", action="store_true", help="--repeats 3 against 1")
    parser.add_argument("--rounds", type=int, default=3, help="--seeds-cost: alternations")
    parser.add_argument("--quick", action="store_true", help="--seeds-cost on a small set")
    args = parser.parse_args()
    if args.seeds_cost or args.quick:
        os.environ["PIPELINE_TRACKING"] = "0"
        seeds_cost(1 if args.quick else args.rounds, args.quick)
        return
    per_minute = {"dvc": [], "study": []}
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        repo = make_repository(Path(tmp) / "repo", copy_head)
        run(["dvc", "repro"], repo)
        print(f"load average before: {os.getloadavg()[0]:.1f}  ({repo})")
        for repeat in range(args.repeats):
            # Alternate which side goes first, so a change in the machine's load hits both.
            sides = ["dvc", "study"] if repeat % 2 == 0 else ["study", "dvc"]
            for side in sides:
                if side == "dvc":
                    seconds = dvc_sweep(repo)
                else:
                    seconds = study(repo, args.workers, f"bench-{repeat}")
                per_minute[side].append(12 * 60 / seconds)
                rate = 12 * 60 / seconds
                print(f"  {side:5} 12 configurations in {seconds:6.1f} s: {rate:5.1f} per minute")
        trained, planned, seconds = pruning(repo, args.pruning_trials)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    ratios = [s / d for s, d in zip(per_minute["study"], per_minute["dvc"], strict=True)]
    for side, values in per_minute.items():
        low, high = min(values), max(values)
        median = statistics.median(values)
        print(
            f"{side:5} configurations per minute: median {median:.1f} (range {low:.1f}-{high:.1f})"
        )
    print(
        f"pruning, {args.pruning_trials}-trial study on tune.yaml ({seconds:.0f} s): {trained} of "
        f"{planned} epochs trained, {planned - trained} saved ({(planned - trained) / planned:.0%})"
    )
    print(f"ratio={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
