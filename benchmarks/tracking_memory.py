"""Memory on a 1,000,000-batch run: a synthetic feed of losses through the real tracker.

No training: one loss per "batch" is logged as fast as Python can, into the embedded SQLite
store, and the run is ended (the agent drains the spool). Reports the trainer's memory while
logging (tracemalloc peak, resident set growth), the agent process's peak resident set, the
spool file's size and the time to deliver; then the same for 10,000 batches.

    python benchmarks/tracking_memory.py [--batches 1000000] [--quick]

The last line is `ratio=<agent's peak RSS at --batches / at 10,000 batches>` (about 1 when
memory is bounded). The points are counted with a read-only query on the SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

FEED = """
import json, os, resource, sys, time, tracemalloc
from pipeline import tracking

def rss_mib():
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmRSS"))
    return int(line.split()[1]) / 1024

batches = int(sys.argv[1])
tracker = tracking.start_run({"batches": batches}, {"benchmark": "memory"})
before = rss_mib()
tracemalloc.start()
start = time.perf_counter()
for step in range(batches):
    tracker.log_batch_loss(step, 1.0 / (step + 1))
logged = time.perf_counter() - start
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
after = rss_mib()
size = tracker.spool.points.stat().st_size
start = time.perf_counter()
tracker.end("FINISHED")
drained = time.perf_counter() - start
tracker.agent.process.wait()  # reaped: its peak resident set is in RUSAGE_CHILDREN
agent = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps(dict(run_id=tracker.run_id, logged_s=logged, peak_traced_mib=peak / 2**20,
    rss_before_mib=before, rss_after_mib=after, spool_mib=size / 2**20, drain_s=drained,
    agent_peak_rss_mib=agent)))
"""


def measure(batches: int, workdir: Path) -> dict:
    uri = f"sqlite:///{workdir / f'mlflow-{batches}.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.pop("PIPELINE_TRACKING", None)
    root = str(Path(__file__).resolve().parents[1])
    env.update(
        PYTHONPATH=root, DVC_ROOT=str(workdir), MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_NAME="m"
    )
    done = subprocess.run(
        [sys.executable, "-c", FEED, str(batches)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    database = uri.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        count, first, last, distinct = connection.execute(
            "SELECT COUNT(*), MIN(step), MAX(step), COUNT(DISTINCT step) FROM metrics "
            "WHERE run_uuid = ? AND key = 'train_loss'",
            (figures["run_id"],),
        ).fetchone()
    figures["stored"] = (count, first, last, distinct)
    return figures


def report(batches: int, figures: dict) -> None:
    count, first, last, distinct = figures["stored"]
    print(f"{batches:,} batches:")
    print(
        f"  trainer: logged in {figures['logged_s']:.1f} s "
        f"({batches / figures['logged_s']:,.0f} points/s), tracemalloc peak "
        f"{figures['peak_traced_mib']:.3f} MiB, RSS {figures['rss_before_mib']:.0f} -> "
        f"{figures['rss_after_mib']:.0f} MiB"
    )
    print(
        f"  agent: peak RSS {figures['agent_peak_rss_mib']:.0f} MiB; spool "
        f"{figures['spool_mib']:.1f} MiB on disk; end() waited {figures['drain_s']:.1f} s"
    )
    print(f"  store: {count:,} points, steps {first}..{last}, {distinct:,} distinct")
    assert count == distinct == batches and first == 0 and last == batches - 1, "points lost"


SMALL = 10_000
# --quick: a smoke run in seconds (the test suite runs it so that a break fails `make test`).
QUICK = {"small": 1_000, "batches": 2_000}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="1,000 and 2,000 batches")
    args = parser.parse_args(argv)
    small_batches = QUICK["small"] if args.quick else SMALL
    if args.quick:
        args.batches = QUICK["batches"]
    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    small = measure(small_batches, workdir)
    report(small_batches, small)
    large = measure(args.batches, workdir)
    report(args.batches, large)
    print(f"ratio={large['agent_peak_rss_mib'] / small['agent_peak_rss_mib']:.3f}")


if __name__ == "__main__":
    main()
