"""The spool and its sender: nothing lost on signals, crashes, locks and concurrent writers.

Real processes against a real SQLite store, read back with MlflowClient.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tracemalloc

import mlflow
import pytest
from tracking_helpers import expected_losses, points, start_trainer, status, trainer_env, wait_for

from pipeline import tracking


@pytest.fixture
def store(sqlite_store, tmp_path, monkeypatch) -> str:
    """A real SQLite store; the repository root (where .mlflow-spool/ lives) is tmp_path."""
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    return sqlite_store


def spooled_files(tmp_path) -> list[str]:
    spool_dir = tmp_path / tracking.SPOOL_DIR
    return sorted(p.name for p in spool_dir.iterdir()) if spool_dir.exists() else []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_the_run_killed_with_every_point_delivered(store, tmp_path, signum):
    trainer = start_trainer(tmp_path, store, count=5003, then="wait")
    run_id = trainer.stdout.readline().strip()  # all 5003 logged, now "training" on
    trainer.send_signal(signum)
    _, errors = trainer.communicate(timeout=120)
    assert trainer.returncode != 0, errors  # the interrupt went on up: not a success
    assert "Interrupt" in errors
    assert status(store, run_id) == "KILLED"
    assert points(store, run_id) == expected_losses(5003)
    assert points(store, run_id, "epoch_loss") == [(0, 0.5)]
    assert spooled_files(tmp_path) == []


def test_a_killed_trainers_sender_still_delivers_what_was_logged(store, tmp_path):
    trainer = start_trainer(tmp_path, store, count=4003, then="wait")
    run_id = trainer.stdout.readline().strip()  # paused after an epoch's end, as in validation
    trainer.kill()  # SIGKILL: no handler runs, nothing is flushed by the trainer
    trainer.wait()
    wait_for(lambda: len(points(store, run_id)) == 4003, 120, "the sender to drain the spool")
    assert points(store, run_id) == expected_losses(4003)
    wait_for(lambda: spooled_files(tmp_path) == [], 30, "the sender to remove the spool")
    # Marking a run whose process died KILLED is the stale-run cleanup's job.
    assert status(store, run_id) == "RUNNING"


def test_concurrent_trainers_on_a_fresh_store_lose_nothing(store, tmp_path):
    # Several processes find no store yet: they race MLflow's schema creation, then write one
    # SQLite file at once (DVC queue workers), each with its own sender.
    trainers = [start_trainer(tmp_path, store, count=3000, then="finish") for _ in range(3)]
    run_ids = []
    for trainer in trainers:
        output, errors = trainer.communicate(timeout=300)
        assert trainer.returncode == 0, errors
        run_ids.append(output.strip())
    assert len(set(run_ids)) == 3
    for run_id in run_ids:
        assert status(store, run_id) == "FINISHED"
        assert points(store, run_id) == expected_losses(3000)


HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("ROLLBACK")
"""
# Longer than the busy timeout (20 s) that MLflow gives each SQLite session: MLflow itself
# gives up with "database is locked", and only the tracker's retries get the writes through.
LOCK_SECONDS = 25


def test_writes_wait_for_a_locked_store_and_lose_nothing(store, tmp_path):
    first = tracking.start_run({}, {})  # creates the store
    with tracking.run_status(first):
        first.log_batch_loss(0, 1.0)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "mlflow.db"), str(LOCK_SECONDS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    # Run creation, params and tags meet the lock, and so does the sender's first connection.
    tracker = tracking.start_run({"train.lr": 0.1}, {"device": "cpu"})
    with tracking.run_status(tracker):
        for step in range(3000):
            tracker.log_batch_loss(step, 1.0 / (step + 1))
    assert holder.wait() == 0
    run = mlflow.MlflowClient(store).get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.1"}
    assert run.data.tags["device"] == "cpu"
    assert points(store, tracker.run_id) == expected_losses(3000)


def test_the_trainers_memory_stays_flat_however_many_points_it_logs(tmp_path):
    spool = tracking.Spool.create(tmp_path, "run", "sqlite:///unused.db")
    spool.open()
    tracemalloc.start()
    for step in range(200_000):
        spool.append("train_loss", step, 1.0 / (step + 1))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    spool.close()
    assert peak < 64 * 1024  # nothing is kept per point: each goes to the file at once
    assert spool.points.stat().st_size == spool.written > 200_000 * 20


def test_the_sender_reads_the_spool_in_bounded_chunks(tmp_path):
    spool = tracking.Spool.create(tmp_path, "run", "sqlite:///unused.db")
    lines = "".join(f"train_loss\t{s}\t{1000 + s}\t{s / 3!r}\n" for s in range(200_000))
    spool.points.write_text(lines + "train_loss\t200000\t12")  # a last line still being written
    offset, seen = 0, 0
    tracemalloc.start()
    while chunk := spool.read(offset, tracking.BATCH_LIMIT):
        got, offset = chunk
        if not got:
            break
        assert got[0] == ("train_loss", seen, 1000 + seen, seen / 3)
        seen += len(got)
        _, peak = tracemalloc.get_traced_memory()
        assert peak < 2 * 2**20  # one chunk at a time, whatever the file's size
    tracemalloc.stop()
    assert seen == 200_000
    assert offset == len(lines.encode())  # the partial line waits for its end


def test_replay_sends_what_was_kept_once_and_sets_the_status(store, tmp_path):
    client = mlflow.MlflowClient(store)
    experiment = client.create_experiment("tests")
    run_id = client.create_run(experiment).info.run_id
    spool = tracking.Spool.create(tmp_path / tracking.SPOOL_DIR, run_id, store)
    lines = [f"train_loss\t{s}\t{1000 + s}\t{1.0 / (s + 1)!r}\n" for s in range(2500)]
    spool.points.write_text("".join(lines))
    # 1000 points were sent, then 500 more arrived but their acknowledgement did not.
    sent = [mlflow.entities.Metric("train_loss", 1.0 / (s + 1), 1000 + s, s) for s in range(1500)]
    client.log_batch(run_id, metrics=sent)
    spool.mark_sent(len("".join(lines[:1000]).encode()))
    spool.keep_status("FINISHED")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.tracking", "replay"],
        cwd=tmp_path,
        env=trainer_env(tmp_path, store),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"run {run_id}: 1500 metric points sent, marked FINISHED"
    assert points(store, run_id) == expected_losses(2500)  # no duplicates
    assert status(store, run_id) == "FINISHED"
    assert spooled_files(tmp_path) == []  # its metadata went with it


def test_replay_with_nothing_kept_says_so(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.tracking", "replay"],
        cwd=tmp_path,
        env=trainer_env(tmp_path, "sqlite:///unused.db"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"nothing to replay in {tmp_path / tracking.SPOOL_DIR}"
