"""A user's table at scale: `generate` against the same work done by hand.

Writes a CSV once into a temporary workspace: 1,000,000 rows, 40 numeric columns with 5 % blank
cells, 10 text columns (a dozen categories each, two of them rare) and a label of 3 classes.
Then alternates, each in a fresh process:
  generate  python -m pipeline.stages.generate on it (read, check, classes, the two stratified
            splits, the encoding fitted on the training split and applied, three .npz files)
  by hand   pandas.read_csv, scikit-learn's ColumnTransformer (median imputer with missing
            indicators + StandardScaler for the numbers, OneHotEncoder with min_frequency for
            the text) fitted on the training split and applied to the three, train_test_split
            twice (stratified), numpy.savez of the three splits
and reports per side the median wall time (with the range), and generate's peak memory above
the interpreter's (resident set, after imports) as a multiple of the encoded float32 array
(goals: time ratio <= 1.25, peak <= 3).

    python benchmarks/table.py [--rows 1000000] [--repeats 3] [--quick]

The last line is `ratio=<median generate time / median time by hand>`.
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
NUMBERS, TEXTS = 40, 10
CATEGORIES = [f"k{i}" for i in range(12)]

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
print(json.dumps({{"seconds": seconds, "peak_mib": (peak - before) / 1024, "width": width}}))
"""
GENERATE = (
    "import numpy as np, pandas, pyarrow.csv, sklearn.model_selection\n"
    "from pipeline.stages import generate",
    "assert generate.main(['--params', 'params.yaml', '--out', 'data']) == 0\n"
    "with np.load('data/val.npz') as split: width = split['features'].shape[1]",
)
BY_HAND = (
    "import numpy as np, pandas as pd\n"
    "from sklearn.compose import ColumnTransformer\n"
    "from sklearn.impute import SimpleImputer\n"
    "from sklearn.model_selection import train_test_split\n"
    "from sklearn.pipeline import make_pipeline\n"
    "from sklearn.preprocessing import OneHotEncoder, StandardScaler",
    """
frame = pd.read_csv('data/raw/big.csv')
labels = pd.factorize(frame.pop('label'), sort=True)[0]
numbers = [c for c in frame if c.startswith('n')]
texts = [c for c in frame if c.startswith('t')]
rows = np.arange(len(frame))
rest, test = train_test_split(rows, test_size=0.2, stratify=labels, random_state=123)
train, val = train_test_split(rest, test_size=0.1, stratify=labels[rest], random_state=123)
encoder = ColumnTransformer([
    ('numbers', make_pipeline(SimpleImputer(strategy='median', add_indicator=True),
                              StandardScaler()), numbers),
    ('texts', OneHotEncoder(min_frequency=5, handle_unknown='infrequent_if_exist',
                            sparse_output=False), texts),
], sparse_threshold=0).fit(frame.iloc[train])
for name, index in (('train', train), ('val', val), ('test', test)):
    x = encoder.transform(frame.iloc[index]).astype(np.float32)
    np.savez(f'data/{name}.npz', features=x, labels=labels[index])
width = x.shape[1]
""",
)
SIDES = {"generate": GENERATE, "by hand": BY_HAND}


def write_table(workspace: Path, rows: int) -> Path:
    import pandas as pd

    rng = np.random.default_rng(0)
    path = workspace / "data/raw/big.csv"
    path.parent.mkdir(parents=True)
    weights = np.array([10.0] * 10 + [0.01, 0.01])  # two rare categories in every text column
    columns = {}
    for i in range(NUMBERS):
        values = rng.normal(size=rows).astype(np.float32)
        values[rng.random(rows) < 0.05] = np.nan  # written as blank cells
        columns[f"n{i}"] = values
    for i in range(TEXTS):
        columns[f"t{i}"] = np.array(CATEGORIES)[
            rng.choice(len(CATEGORIES), rows, p=weights / weights.sum())
        ]
    columns["label"] = np.array(["red", "green", "blue"])[rng.integers(0, 3, rows)]
    pd.DataFrame(columns).to_csv(path, index=False, float_format="%.6g")
    (workspace / "params.yaml").write_text(
        "data: {kind: table, path: data/raw/big.csv, target: label}\ntrain: {device: cpu}\n"
    )
    return path


def measure(side: str, workspace: Path) -> dict:
    imports, work = SIDES[side]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE.format(imports=imports, work=work)],
        cwd=workspace,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PIPELINE_TRACKING": "0"},
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict[str, list[dict]], rows: int) -> None:
    width = results["generate"][0]["width"]
    array_mib = rows * width * 4 / 2**20
    for side, runs in results.items():
        seconds = [r["seconds"] for r in runs]
        peaks = [r["peak_mib"] for r in runs]
        median = statistics.median(seconds)
        print(
            f"{side:9s} {median:6.2f} s (range {min(seconds):.2f}-{max(seconds):.2f}), "
            f"{rows / median:,.0f} rows/s, {runs[0]['width']} columns encoded, peak "
            f"{statistics.median(peaks):.0f} MiB = {statistics.median(peaks) / array_mib:.2f} x "
            f"the encoded float32 array ({array_mib:.0f} MiB)"
        )
    ratio = statistics.median(r["seconds"] for r in results["generate"]) / statistics.median(
        r["seconds"] for r in results["by hand"]
    )
    print(f"ratio={ratio:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 rows, once: a smoke run")
    args = parser.parse_args(argv)
    rows, repeats = (2000, 1) if args.quick else (args.rows, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        start = time.perf_counter()
        path = write_table(workspace, rows)
        size = path.stat().st_size / 2**20
        print(
            f"wrote {path.name}: {rows} rows x {NUMBERS} numeric + {TEXTS} text columns, "
            f"{size:.0f} MiB in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        results: dict[str, list[dict]] = {side: [] for side in SIDES}
        for _ in range(repeats):
            for side in SIDES:  # alternated: the machine is shared
                results[side].append(measure(side, workspace))
    report(results, rows)


if __name__ == "__main__":
    main()
