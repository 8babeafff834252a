"""Start-up: what a user waits for, HEAD against a baseline revision, alternating in one run.

Copies the working tree (HEAD side) and the baseline revision (`git archive`) into two temporary
git repositories, then, alternating the two sides on every repeat, times:

- `dvc repro --force` (every stage, as from scratch), `dvc exp run -S train.lr=...` (train,
  evaluate and export rerun) and a `dvc repro` with nothing to do;
- each stage's command from dvc.yaml under `python -X importtime`: wall time and import time;
- `python -m pipeline.stages.train` tracked into the embedded SQLite store against
  `PIPELINE_TRACKING=0`, on the defaults and on 100,000 samples, batch 32, 5 epochs, no
  validation split (12,500 batches), on both sides.

    python benchmarks/startup.py [--baseline REV] [--repeats 3] [--stages] [--quick]

`--stages`: only the stage commands (each stage's wall time, imports, and wall - imports: what
is ours to remove). `--quick`: HEAD alone, the notebook's toy params, untracked, one pass of
the stage commands (a smoke run in seconds; tests/test_benchmark_startup.py runs it).

Figures are medians with [min-max] ranges. The last line is `ratio=<HEAD / baseline of the
median dvc exp run>` (with `--stages`: of the stages' summed wall - imports).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

# The commit before the start-up work landed (main just before the merge of the tracking agent,
# with the other work of its round in: tables, studies, registry); `--baseline` picks another.
BASELINE = "647f06e"
ROOT = Path(__file__).resolve().parents[1]
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$")
OUTPUTS = ("metrics/", "plots/loss.csv", "plots/confusion.csv", "dvc.lock")
TRAIN = (
    "python -m pipeline.stages.train --params params.yaml --data data"
    " --checkpoint models/checkpoint.pth --metrics metrics/train.json --plots plots"
)
LARGE = {"n_samples": 100_000, "val_size": 0.0}  # 80,000 training rows: 2,500 batches of 32
LARGE_EPOCHS = 5
# --quick: the notebook's 7 points, 3 epochs (the stages' floor, not their work).
TOY = {"data": {"kind": "toy", "val_size": 0.0}, "train": {"epochs": 3, "batch_size": 2, "lr": 0.5}}


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    for name in ("PIPELINE_TRACKING", "PIPELINE_SYSTEM_METRICS", "PYTHONPATH"):
        env.pop(name, None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "benchmark"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "benchmark@example.invalid"
    return {**env, **extra}


def git(*args: str, cwd: Path, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=environment(), check=True, capture_output=capture
    )


def copy_head(target: Path) -> None:
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT).stdout
    for name in listed.decode().split():
        if (ROOT / name).is_file() and not name.startswith(OUTPUTS):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)


def copy_revision(revision: str, target: Path) -> None:
    archive = git("archive", "--format=tar", revision, cwd=ROOT).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [m for m in tar.getmembers() if not m.name.startswith(OUTPUTS)]
        tar.extractall(target, members=members, filter="data")


def make_repository(target: Path, copy, params: dict | None = None) -> Path:
    target.mkdir()
    copy(target)
    if params:
        path = target / "params.yaml"
        values = yaml.safe_load(path.read_text())
        for section, changes in params.items():
            values[section].update(changes)
        path.write_text(yaml.safe_dump(values, sort_keys=False))
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        git(*command, cwd=target)
    return target


def timed(command: str, cwd: Path, **env: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        command, shell=True, cwd=cwd, env=environment(**env), capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{command} in {cwd} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds, done.stderr


def import_seconds(stderr: str) -> float:
    """Seconds spent importing: the top-level imports' cumulative times."""
    matches = (IMPORT_LINE.match(line) for line in stderr.splitlines())
    return sum(int(m[1]) for m in matches if m and not m[2]) / 1e6


def stage_commands(repo: Path) -> dict[str, str]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    return {name: " ".join(stage["cmd"].split()) for name, stage in stages.items()}


class Figures(defaultdict):
    """figures[(what, side)] = list of seconds; each one printed as it comes, so that a run cut
    short still says what it measured."""

    def __init__(self):
        super().__init__(list)

    def add(self, what: str, side: str, seconds: float) -> None:
        self[what, side].append(seconds)
        print(f"    {side:10} {what:40} {seconds:7.2f}", flush=True)


def measure(sides: dict[str, dict[str, Path]], repeats: int, stages_only: bool, **env) -> dict:
    """Every repeat runs HEAD and baseline in turn, in alternating order."""
    figures = Figures()
    for repeat in range(repeats):
        order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
        for side in order:
            if not stages_only:
                measure_dvc(figures, side, sides[side]["default"], repeat)
            measure_stages(figures, side, sides[side]["default"], **env)
            if not stages_only:
                measure_training(figures, side, sides[side], repeat)
        print(f"  repeat {repeat + 1}/{repeats} done; load average {os.getloadavg()[0]:.1f}")
    return figures


def measure_dvc(figures: Figures, side: str, repo: Path, repeat: int) -> None:
    figures.add("dvc repro --force", side, timed("dvc repro --force", repo)[0])
    lr = f"0.{11 + repeat}"  # a new value each time: nothing comes from the run cache
    command = f"dvc exp run -S train.lr={lr}"
    figures.add("dvc exp run -S train.lr=...", side, timed(command, repo)[0])
    figures.add("dvc repro (nothing to do)", side, timed("dvc repro", repo)[0])


def measure_stages(figures: Figures, side: str, repo: Path, **env: str) -> None:
    """Each stage's command as dvc.yaml runs it, in order, under -X importtime."""
    for name, command in stage_commands(repo).items():
        traced = re.sub(r"^python ", "python -X importtime ", command)
        seconds, stderr = timed(traced, repo, **env)
        imports = import_seconds(stderr)
        figures.add(f"stage {name}: wall", side, seconds)
        figures.add(f"stage {name}: imports", side, imports)
        figures.add(f"stage {name}: wall - imports", side, seconds - imports)


def measure_training(figures: Figures, side: str, repos: dict[str, Path], repeat: int) -> None:
    for label, where in (("defaults", repos["default"]), ("12,500 batches", repos["large"])):
        for tracking in ("1", "0") if repeat % 2 == 0 else ("0", "1"):
            seconds, _ = timed(TRAIN, where, PIPELINE_TRACKING=tracking)
            kind = "tracked" if tracking == "1" else "untracked"
            figures.add(f"train {label}, {kind}", side, seconds)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} [{min(values):.2f}-{max(values):.2f}]"


def report(figures: dict, names: list[str]) -> float:
    """The table of medians; the ratio of the median `dvc exp run` (or, without it, of the
    stages' summed wall - imports)."""
    head, *others = names
    whats = list(dict.fromkeys(what for what, _ in figures))
    print(f"\n{'seconds, median [range]':40} " + " ".join(f"{n:>20}" for n in names), end="")
    print(f"  {head}/{others[0]}" if others else "")
    for what in whats:
        row = " ".join(f"{spread(figures[what, name]):>20}" for name in names)
        if others:
            row += f"  {median(figures, what, head) / median(figures, what, others[0]):.3f}"
        print(f"{what:40} {row}")
    if ("train defaults, tracked", head) in figures:
        print_tracking_pairs(figures, names)
    if not others:
        return 1.0
    exp = "dvc exp run -S train.lr=..."
    if (exp, head) in figures:
        return median(figures, exp, head) / median(figures, exp, others[0])
    beyond = [what for what in whats if what.endswith("wall - imports")]
    return sum(median(figures, w, head) for w in beyond) / sum(
        median(figures, w, others[0]) for w in beyond
    )


def median(figures: dict, what: str, side: str) -> float:
    return statistics.median(figures[what, side])


def print_tracking_pairs(figures: dict, names: list[str]) -> None:
    print("\ntracked / untracked `python -m pipeline.stages.train`, per pair (median [range]):")
    for label in ("defaults", "12,500 batches"):
        for side in names:
            tracked = figures[f"train {label}, tracked", side]
            untracked = figures[f"train {label}, untracked", side]
            pairs = [t / u for t, u in zip(tracked, untracked, strict=True)]
            print(f"  {label:15} {side:10} {spread(pairs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help=f"revision (default {BASELINE})")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stages", action="store_true", help="only the stage commands")
    parser.add_argument("--quick", action="store_true", help="HEAD alone, toy data, one pass")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    names = ["HEAD"] if args.quick else ["HEAD", args.baseline]
    copies = {"HEAD": copy_head, args.baseline: lambda t: copy_revision(args.baseline, t)}
    large = {"data": LARGE, "train": {"epochs": LARGE_EPOCHS}}
    sides = {}
    for index, name in enumerate(names):
        params = TOY if args.quick else None
        sides[name] = {"default": make_repository(work / f"{index}-default", copies[name], params)}
        if not args.quick:
            timed("dvc repro", sides[name]["default"])  # data, and MLflow's store created
        if not (args.stages or args.quick):
            sides[name]["large"] = make_repository(work / f"{index}-large", copies[name], large)
            timed("dvc repro", sides[name]["large"])
    print(f"{' and '.join(names)} in {work}; load average {os.getloadavg()}")
    env = {"PIPELINE_TRACKING": "0"} if args.quick else {}
    repeats = 1 if args.quick else args.repeats
    figures = measure(sides, repeats, args.stages or args.quick, **env)
    ratio = report(figures, names)
    print(f"load average at the end {os.getloadavg()}; {os.cpu_count()} cores")
    if args.quick:
        shutil.rmtree(work)
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
