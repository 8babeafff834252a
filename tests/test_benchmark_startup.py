"""benchmarks/startup.py --quick runs end to end: every stage of dvc.yaml run as DVC runs it,
timed under `python -X importtime`, and the table printed. No timing is asserted (the full run
measures; benchmarks/README.md holds the figures)."""

from __future__ import annotations

import re

import yaml
from helpers import ROOT, run_quick_benchmark

ROW = re.compile(r"^stage (\w+): (wall - imports|wall|imports) +([\d.]+) \[([\d.]+)-([\d.]+)\]$")


def test_the_quick_benchmark_times_every_stage_and_its_imports():
    done = run_quick_benchmark("startup.py")
    assert done.returncode == 0, done.stderr[-4000:]
    table = {}
    for line in done.stdout.splitlines():
        if match := ROW.match(line):
            table[match[1], match[2]] = float(match[3])
    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    assert {stage for stage, _ in table} == set(stages)
    for stage in stages:
        wall, imports = table[stage, "wall"], table[stage, "imports"]
        # Every stage imports something (the pipeline's own modules at least) and runs longer.
        assert 0 < imports < wall, stage
        # Each printed to two decimals: the difference within their rounding.
        assert abs(table[stage, "wall - imports"] - (wall - imports)) <= 0.011, stage
    assert done.stdout.splitlines()[-1] == "ratio=1.000"  # HEAD alone
