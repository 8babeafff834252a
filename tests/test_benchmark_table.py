"""benchmarks/table.py --quick runs end to end: both sides encode the same table to the same
width and the ratio line is printed (no timing asserted: the full run measures that)."""

from __future__ import annotations

import re

from helpers import run_quick_benchmark


def test_the_quick_table_benchmark_compares_generate_with_the_work_by_hand():
    done = run_quick_benchmark("table.py")
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.splitlines()
    widths = {
        side: re.search(r"(\d+) columns encoded", line).group(1)
        for line in lines
        for side in ("generate", "by hand")
        if line.startswith(side)
    }
    # 40 numbers, their 40 missing indicators, and the text columns' categories: the same
    # encoding on both sides.
    assert set(widths) == {"generate", "by hand"}
    assert widths["generate"] == widths["by hand"] and int(widths["generate"]) > 80 + 10
    assert lines[-1].startswith("ratio=")
