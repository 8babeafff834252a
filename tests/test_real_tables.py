"""benchmarks/real_tables.py --quick runs end to end: every table read from the package that
ships it, encoded, the baseline fitted and the train stage run. No accuracy or timing here (the
benchmark's full run measures those)."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT, clean_env

TABLES = ("penguins", "cars", "chile", "slid", "wine", "breast_cancer", "digits")


def test_the_quick_benchmark_prints_both_accuracies_for_every_table():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "real_tables.py"), "--quick"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.splitlines()
    for table in TABLES:
        rows = [line for line in lines if line.startswith(f"{table}: baseline ")]
        assert len(rows) == 1, (table, lines)
        assert " mlp " in rows[0] and "mlp-baseline" in rows[0]
    assert lines[-1].startswith("ratio=")
    # Chile's rows without a vote are left out and said so, not a crash.
    assert "chile: 168 rows without a 'vote' left out" in done.stderr
