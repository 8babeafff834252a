"""Benchmarks cannot rot: each runs its `--quick` size here, so an import or argument break fails
`make test`. Their figures stay out of the assertions (the machines are shared and noisy); what
is asserted is that every side of the comparison ran and the script reached its `ratio=` line.
The benchmarks with a test file of their own (real tables, table, tune, start-up) are run there.
"""

from __future__ import annotations

import math

import pytest
from helpers import run_quick_benchmark

# Lines each script prints only once the corresponding side has run.
EXPECTED = {
    "data_path.py": ["batch 32:", "batch 256:", "pipeline/bare per pair"],
    # Every tracked run is read back from the store inside the script (it asserts the points).
    "tracking.py": ["pair 1: untracked", "naive log_metric", "tracked/untracked per pair"],
    "tracking_memory.py": ["1,000 batches:", "2,000 batches:", "store: 2,000 points"],
}


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_the_quick_size_runs_every_side_and_prints_a_ratio(script, tmp_path):
    done = run_quick_benchmark(script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    for expected in EXPECTED[script]:
        assert expected in done.stdout, (expected, done.stdout)
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("ratio="), last
    ratio = float(last.removeprefix("ratio="))
    assert math.isfinite(ratio) and ratio > 0, last
