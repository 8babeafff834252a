"""Start-up: `dvc repro` from scratch on the default params, per stage, import time apart.

Copies the project into a temporary git repository, times one `dvc repro` from scratch, then
runs each stage's command from dvc.yaml again under `python -X importtime` (median of
--repeats runs) to show how much of each stage is importing and which heavy packages it loads.

    python benchmarks/startup.py [--repeats 3]

The last line is `ratio=<import time / stage time, all stages together>`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "mlflow", "sklearn", "matplotlib", "pandas", "scipy")
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$")


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.pop("PIPELINE_TRACKING", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "benchmark"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "benchmark@example.invalid"
    return env


def copy_project(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    outputs = ("metrics/", "plots/loss.csv", "plots/confusion.csv", "dvc.lock")
    for name in listed:
        if (ROOT / name).is_file() and not name.startswith(outputs):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=target, env=environment(), check=True, capture_output=True)


def timed(command: str, cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        command, shell=True, cwd=cwd, env=environment(), capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stderr


def imports(stderr: str) -> tuple[float, set[str]]:
    """Seconds spent importing (top-level imports' cumulative times) and the heavy packages."""
    total, heavy = 0, set()
    for line in stderr.splitlines():
        if match := IMPORT_LINE.match(line):
            cumulative, indent, name = int(match[1]), match[2], match[3]
            total += cumulative if not indent else 0
            if name.split(".")[0] in HEAVY:
                heavy.add(name.split(".")[0])
    return total / 1e6, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repo = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    copy_project(repo)
    total, _ = timed("dvc repro", repo)
    print(f"dvc repro from scratch (default params.yaml): {total:.1f} s   ({repo})")
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    rows, all_wall, all_import = [], 0.0, 0.0
    for name, stage in stages.items():
        command = re.sub(r"^python ", "python -X importtime ", " ".join(stage["cmd"].split()))
        runs = [timed(command, repo) for _ in range(args.repeats)]
        wall = statistics.median(seconds for seconds, _ in runs)
        parsed = [imports(stderr) for _, stderr in runs]
        imported = statistics.median(seconds for seconds, _ in parsed)
        rows.append((name, wall, imported, ", ".join(sorted(parsed[0][1])) or "-"))
        all_wall, all_import = all_wall + wall, all_import + imported
    print(f"each stage run again directly, median of {args.repeats} (python -X importtime):")
    print(f"  {'stage':9} {'wall s':>7} {'imports s':>9} {'rest s':>7}  heavy packages imported")
    for name, wall, imported, heavy in rows:
        print(f"  {name:9} {wall:7.2f} {imported:9.2f} {wall - imported:7.2f}  {heavy}")
    print(f"  {'all':9} {all_wall:7.2f} {all_import:9.2f} {all_wall - all_import:7.2f}")
    print(f"DVC's own share of the from-scratch repro: about {total - all_wall:.1f} s")
    print(f"ratio={all_import / all_wall:.3f}")


if __name__ == "__main__":
    main()
