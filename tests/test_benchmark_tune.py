"""benchmarks/tune.py --quick runs end to end: studies of the same configurations with one and
with three training seeds per trial, alternated, and the ratio of their cost per trial. No
timing asserted here (the benchmark's full run measures it)."""

from __future__ import annotations

import re

from helpers import run_quick_benchmark


def test_the_quick_benchmark_measures_three_seeds_against_one():
    done = run_quick_benchmark("tune.py")
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.splitlines()
    three = [line for line in lines if line.endswith("(mean of 3 seeds)")]
    one = [
        line for line in lines if re.fullmatch(r"trial \d+: val_accuracy \S+ val_loss \S+", line)
    ]
    assert len(three) == 2 and len(one) == 4  # two configurations, and a warm-up study of them
    for repeats in (1, 3):
        [median] = [line for line in lines if line.startswith(f"--repeats {repeats}: median ")]
        assert re.search(r"median \d+\.\d+ s per trial \(range \d+\.\d+-\d+\.\d+\)", median)
    assert re.fullmatch(r"ratio=\d+\.\d\d", lines[-1]) and float(lines[-1][6:]) > 0
