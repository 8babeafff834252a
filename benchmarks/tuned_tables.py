"""Real tables tuned as a user would: a `pipeline.tune` study, then `--apply`, against the baseline.

For each raw table (palmerpenguins' penguins, vega_datasets' cars, pydataset's Chile and COUNT's
titanic: the tables tests/test_real_tables.py uses, as their packages ship them), in a temporary
copy of the project (a fresh git repository, tracking off: PIPELINE_TRACKING=0):
- the table is written to data/raw/ and `dvc add`ed, params.yaml gets docs/own-data.md's table
  settings (seed 0, `data.drop` naming R's row numbers and cars' `Name`) and `dvc repro` runs:
  the **untuned** MLP's test accuracy (metrics/eval.json);
- `python -m pipeline.tune --trials N` on the committed tune.yaml (sampler and median pruner as
  shipped), then `python -m pipeline.tune --apply`: the best trial as `dvc exp run`, whose
  metrics/eval.json gives the **tuned** MLP's test accuracy;
- the **baseline**: scikit-learn's LogisticRegression on the same split (checked row for row
  against data/test.npz) with the usual preprocessing (benchmarks/real_tables.py).

    python benchmarks/tuned_tables.py [--quick] [--trials 30] [--tables penguins cars ...]
                                      [--seeds 0 1 2 3 4]

Prints one line per table and seed (baseline, untuned, tuned, tuned - baseline, the best trial);
with several seeds (`seed`: the split and the training), a line of each table's means follows.
The last line is `ratio=<the worst table's mean tuned / mean baseline test accuracy>` (goal:
>= 1 on every table).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from real_tables import QUICK, TABLE_SETTINGS, TABLES, baseline_accuracy, encoded_splits
from real_tables import load_table as load_for_baseline
from startup import ROOT, copy_head, environment

from pipeline.config.params import load_params
from pipeline.data.splits import load_split

RAW_TABLES = ("penguins", "cars", "chile", "titanic")
SEEDS = [0]  # as tests/test_real_tables.py


def run(command: list[str], repo: Path) -> str:
    """A command in the project copy, tracking off; its stdout (a failure stops the script)."""
    done = subprocess.run(
        command,
        cwd=repo,
        env=environment(PIPELINE_TRACKING="0"),
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(
            f"{' '.join(command)} exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def table_params(name: str, seed: int, settings: dict) -> dict:
    """The project's params.yaml with the table settings for this table, as nested YAML."""
    _, target, drop = TABLES[name]
    values = {
        **settings,
        "seed": seed,
        "data.kind": "table",
        "data.path": f"data/raw/{name}.csv",
        "data.target": target,
        "data.drop": drop,
    }
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in values.items():
        *sections, last = key.split(".")
        node = params
        for section in sections:
            node = node[section]
        node[last] = value
    return params


def make_project(repo: Path, name: str, seed: int, settings: dict) -> None:
    """A user's clone with the raw table added to DVC and the table settings committed."""
    copy_head(repo)
    run(["git", "init", "-q", "-b", "main"], repo)
    reader, _, _ = TABLES[name]
    reader().to_csv(repo / f"data/raw/{name}.csv", index=False)
    params = table_params(name, seed, settings)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "add", f"data/raw/{name}.csv"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", f"{name}: the raw table and the table settings"], repo)


def test_accuracy(repo: Path) -> float:
    return float(json.loads((repo / "metrics/eval.json").read_text())["test_accuracy"])


def baseline(repo: Path, name: str) -> float:
    """LogisticRegression on the split generate wrote (the same test rows, in the same order)."""
    features, labels, _ = load_for_baseline(name)
    splits = encoded_splits(features, labels, load_params(repo / "params.yaml"))
    if not np.array_equal(splits["test"][1], load_split(repo / "data/test.npz").labels):
        raise SystemExit(f"{name}: the baseline's test split is not generate's")
    return baseline_accuracy(splits)


def measure(name: str, seed: int, trials: int, settings: dict, space: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"tuned-{name}-") as scratch:
        repo = Path(scratch)
        make_project(repo, name, seed, settings)
        run(["dvc", "repro"], repo)
        figures = {"untuned": test_accuracy(repo), "baseline": baseline(repo, name)}
        start = time.perf_counter()
        tune = [sys.executable, "-m", "pipeline.tune", "--space", space]
        study = run([*tune, "--trials", str(trials)], repo)
        figures["study_s"] = time.perf_counter() - start
        figures["summary"] = study.strip().splitlines()[-1]
        applied = run([*tune, "--apply"], repo)
        figures["best"] = applied.splitlines()[0]  # best trial <n>: val_accuracy ...
        figures["params"] = re.findall(r"^  (\S+ = .+)$", applied, flags=re.MULTILINE)
        figures["tuned"] = test_accuracy(repo)
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 trials of 3 epochs on penguins: a smoke run"
    )
    parser.add_argument("--trials", type=int, default=30, help="trials per study (default 30)")
    parser.add_argument(
        "--space", default="tune.yaml", help="the project's search space file (tune-table.yaml)"
    )
    parser.add_argument("--tables", nargs="+", choices=RAW_TABLES, default=list(RAW_TABLES))
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=SEEDS, help="params.yaml's seed, one study each"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = {**TABLE_SETTINGS, **(QUICK if args.quick else {})}
    trials, tables = (2, ["penguins"]) if args.quick else (args.trials, args.tables)
    seeds = " ".join(map(str, args.seeds))
    print(f"table settings: {settings}; seed {seeds}; {trials} trials on {args.space}", flush=True)
    ratios = []
    for name in tables:
        each = [measure(name, seed, trials, settings, args.space) for seed in args.seeds]
        for seed, got in zip(args.seeds, each, strict=True):
            print_seed(name, seed if len(each) > 1 else None, got)
        mean = {key: statistics.mean(got[key] for got in each) for key in FIGURES}
        if len(each) > 1:
            print(f"{name} mean of {len(each)} seeds: {figure_line(mean)}", flush=True)
        ratios.append(mean["tuned"] / mean["baseline"])
    print(f"ratio={min(ratios):.4f}")
    return 0


FIGURES = ("baseline", "untuned", "tuned")


def figure_line(got: dict) -> str:
    return (
        f"baseline {got['baseline']:.4f}  untuned {got['untuned']:.4f}  "
        f"tuned {got['tuned']:.4f}  tuned-baseline {got['tuned'] - got['baseline']:+.4f}"
    )


def print_seed(name: str, seed: int | None, got: dict) -> None:
    label = name if seed is None else f"{name} seed {seed}"
    details = f"({got['summary']}, {got['study_s']:.0f} s; {got['best']})"
    print(f"{label}: {figure_line(got)}  {details}", flush=True)
    print(f"  {label} best: {'; '.join(got['params'])}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
