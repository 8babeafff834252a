"""benchmarks/tuned_tables.py --quick runs end to end on penguins: dvc repro, a 2-trial
`pipeline.tune` study, `--apply`. No accuracy goal here (3 epochs); the baseline it prints is
checked against LogisticRegression computed in the test on the same split."""

from __future__ import annotations

import re
import sys

from helpers import ROOT, run_quick_benchmark

from pipeline.config.params import with_values
from pipeline.config.schema import Params


def reference_baseline() -> float:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import real_tables

    features, labels, _ = real_tables.load_table("penguins")
    # The benchmark's seed (0) and params.yaml's shares.
    params = with_values(Params(), {"seed": 0}, source="test")
    return real_tables.baseline_accuracy(real_tables.encoded_splits(features, labels, params))


def test_the_quick_tuned_benchmark_tunes_applies_and_compares_with_the_baseline():
    done = run_quick_benchmark("tuned_tables.py")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    lines = done.stdout.splitlines()
    rows = [line for line in lines if line.startswith("penguins: baseline ")]
    assert len(rows) == 1, lines
    figures = dict(re.findall(r"(baseline|untuned|tuned) (\d\.\d{4})", rows[0]))
    assert float(figures["baseline"]) == round(reference_baseline(), 4)
    assert all(0 < float(value) <= 1 for value in figures.values())
    # The study ran its 2 trials and --apply trained its best one through dvc exp run.
    assert "study 'mlp-pipeline': 2 trials" in rows[0]
    assert re.search(r"best trial [01]: val_accuracy", rows[0])
    assert any(line.startswith("  penguins best: train.lr = ") for line in lines)
    assert lines[-1].startswith("ratio=")
    ratio = float(figures["tuned"]) / float(figures["baseline"])
    assert abs(float(lines[-1].removeprefix("ratio=")) - ratio) < 2e-4  # one table: its ratio
