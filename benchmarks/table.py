"""A user's table at scale: `generate` on a 1,000,000-row x 50-column CSV against pandas alone.

Writes the CSV once (50 float features, a label column of 3 class names) into a temporary
workspace, then alternates, each in a fresh process:
  generate  python -m pipeline.stages.generate on it (read, check, stratified splits, .npz files)
  pandas    pandas.read_csv of the same file, nothing else
and reports per side the median wall time (with the range), rows/s, and generate's peak memory
above the interpreter's (resident set, after imports) as a multiple of the in-memory float32
array (goals: peak <= 3, ratio <= 1.5).

    python benchmarks/table.py [--rows 1000000] [--repeats 3]

The last line is `ratio=<median generate time / median pandas.read_csv time>`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FEATURES = 50

# Each side runs in a fresh interpreter that reports its own time and peak memory: the peak
# resident set (ru_maxrss, KiB) less the resident set once its imports are done.
MEASURE = """
import json, resource, sys, time
def rss_kib():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() // 1024
{imports}
before = rss_kib()
start = time.perf_counter()
{work}
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "peak_mib": (peak - before) / 1024}}))
"""
SIDES = {
    "generate": (
        "import pandas, sklearn.model_selection\nfrom pipeline import generate",
        "assert generate.main(['--params', 'params.yaml', '--out', 'data']) == 0",
    ),
    "pandas": ("import pandas as pd", "pd.read_csv('data/raw/big.csv')"),
}


def write_table(workspace: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    path = workspace / "data/raw/big.csv"
    path.parent.mkdir(parents=True)
    block = 100_000
    with open(path, "w") as handle:
        handle.write(",".join([f"f{i}" for i in range(FEATURES)] + ["label"]) + "\n")
        for first in range(0, rows, block):
            n = min(block, rows - first)
            values = rng.normal(size=(n, FEATURES)).astype(np.float32)
            labels = np.array(["red", "green", "blue"])[rng.integers(0, 3, n)]
            lines = [",".join(f"{v:.6g}" for v in row) for row in values.tolist()]
            handle.writelines(
                f"{line},{label}\n" for line, label in zip(lines, labels, strict=True)
            )
    (workspace / "params.yaml").write_text(
        "data: {kind: table, path: data/raw/big.csv, target: label}\ntrain: {device: cpu}\n"
    )
    return path


def measure(side: str, workspace: Path) -> dict:
    imports, work = SIDES[side]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE.format(imports=imports, work=work)],
        cwd=workspace,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        start = time.perf_counter()
        path = write_table(workspace, args.rows)
        size = path.stat().st_size / 2**20
        print(
            f"wrote {path.name}: {args.rows} rows x {FEATURES} features, {size:.0f} MiB "
            f"in {time.perf_counter() - start:.0f} s"
        )
        results: dict[str, list[dict]] = {side: [] for side in SIDES}
        for _ in range(args.repeats):
            for side in SIDES:  # alternated: the machine is shared
                results[side].append(measure(side, workspace))
    array_mib = args.rows * FEATURES * 4 / 2**20
    for side, runs in results.items():
        seconds = [r["seconds"] for r in runs]
        peaks = [r["peak_mib"] for r in runs]
        median = statistics.median(seconds)
        print(
            f"{side:9s} {median:6.2f} s (range {min(seconds):.2f}-{max(seconds):.2f}), "
            f"{args.rows / median:,.0f} rows/s, peak {statistics.median(peaks):.0f} MiB = "
            f"{statistics.median(peaks) / array_mib:.2f} x the float32 array ({array_mib:.0f} MiB)"
        )
    ratio = statistics.median(r["seconds"] for r in results["generate"]) / statistics.median(
        r["seconds"] for r in results["pandas"]
    )
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
