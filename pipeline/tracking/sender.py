"""The process that streams a training's spool into its run, and the trainer's handle on it.

Per-batch metrics never wait for the store. MLflow writes each point through SQLAlchemy's ORM
(about 75 us of Python per point plus about 7 ms per log_batch call; about 10 ms per log_metric
transaction); done inside the training process, that competes with training for the GIL and the
core. So a training's tracker appends each point to a spool file under
`<repo root>/.mlflow-spool/` (written every 16 points and at every other metric, such as an
epoch's loss; from then on it outlives the trainer) and a sender process of its own
(`python -m pipeline.tracking send`: its own interpreter, GIL and core) streams the file into
the run with log_batch while training runs. On the way out (success, exception or signal) the
sender drains the spool while the tracker ends the run FINISHED/FAILED/KILLED, and end()
returns once both are done. If the store cannot be reached, the points stay in the spool until
`python -m pipeline.tracking replay` sends them; if the trainer dies outright, its sender still
sends what was written (a SIGKILL mid-epoch loses at most the last 15 batch losses).
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.tracking.spool import Spool
from pipeline.tracking.store import retry_locked, store_client, warn

# MLflow accepts at most 1000 metrics in one log_batch call.
BATCH_LIMIT = 1000
# The sender sends what has arrived this often (and at once when training ends): short, so that
# little is left to send when training ends, at the cost of more, smaller log_batch calls.
SEND_INTERVAL_S = 0.03
# After training, how long the sender keeps retrying a store that does not answer before it
# leaves the rest of the points in the spool for `replay`.
DRAIN_PATIENCE_S = 10.0
# The sender's exit status when it kept points in the spool.
KEPT_EXIT = 3


class Outbox:
    """The trainer's side: a point costs a list append (the spool writes them in bunches); the
    sender process ships them.

    The sender starts before the run is opened, so that its own start-up (importing MLflow and
    opening the store: seconds) overlaps the trainer's, and training starts with it ready.
    """

    def __init__(self, tracking_uri: str):
        self.spool: Spool | None = None
        self.sender = subprocess.Popen(
            [sys.executable, "-m", "pipeline.tracking", "send", tracking_uri],
            # stdin: the spool's name, then its end of file says that training is over.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,  # "ready", then "sent" or "kept"
            env=_sender_environment(),
            # Out of the trainer's process group: Ctrl-C stops training, not the sender, which
            # then delivers the last points before the run is marked KILLED.
            start_new_session=True,
        )

    def attach(self, spool: Spool, ready_timeout: float = 30.0) -> None:
        """Hand the run's spool to the sender, and give it a while to be ready to send (only
        for speed: points logged before it is ready wait in the spool)."""
        self.spool = spool
        spool.open()
        self.sender.stdin.write(f"{spool.meta}\n".encode())
        self.sender.stdin.flush()
        ready, _, _ = select.select([self.sender.stdout], [], [], ready_timeout)
        if ready and not self.sender.stdout.readline():
            raise RuntimeError(
                f"the metric sender of run {spool.run_id} exited with {self.sender.wait()} "
                "before training started; see its error above"
            )

    def put(self, key: str, step: int, value: float, at_once: bool = False) -> None:
        self.spool.append(key, step, value)
        if at_once:
            self.spool.flush()

    def wait_sent(self, timeout: float) -> bool:
        self.spool.flush()
        deadline = time.monotonic() + timeout
        while self.spool.sent_offset() < self.spool.written:
            if self.sender.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> bool:
        """No more points: the sender drains the spool. True if all were sent."""
        self.finish()
        return self.delivered()

    def finish(self) -> None:
        """No more points: the sender starts sending the last ones."""
        if self.spool is not None:
            self.spool.close()
        with contextlib.suppress(OSError):
            self.sender.stdin.close()

    def delivered(self) -> bool:
        """Wait for the sender's last word: True if every point is in the store."""
        # Its last word (none if it died); its exit, tearing down MLflow, is not waited for.
        words = (line.strip() for line in self.sender.stdout)
        delivered = next((word for word in words if word in (b"sent", b"kept")), b"") == b"sent"
        threading.Thread(target=self.sender.wait, daemon=True).start()
        return delivered


def _sender_environment() -> dict[str, str]:
    env = dict(os.environ)
    project = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [project, env.get("PYTHONPATH")]))
    # The sender retries on its own terms; MLflow's retries would hold it for minutes per request
    # against a server that went away.
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    env.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    return env


class Sender:
    """Sends a spool's points from where the last sender stopped, in log_batch chunks."""

    def __init__(self, spool: Spool, no_more_points: Callable[[float], bool]):
        # no_more_points(wait): wait up to `wait` seconds; True once the trainer has finished.
        self.spool, self.no_more_points = spool, no_more_points
        self.client = None
        self.sent_points = 0

    def run(self, patience: float = DRAIN_PATIENCE_S) -> bool:
        """True when every point is in the store; False when the store failed for `patience`
        seconds after training ended (the points stay in the spool)."""
        offset, finished, failing_since, pause = self.spool.sent_offset(), False, None, 0.0
        while True:
            points, end = self.spool.read(offset, BATCH_LIMIT)
            if not points and finished:
                return True
            if points:
                try:
                    self._send(points)
                except Exception as exc:
                    failing_since = failing_since or time.monotonic()
                    if pause == 0.0:
                        first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
                        warn(f"cannot send metrics of run {self.spool.run_id} yet: {first_line}")
                    if finished and time.monotonic() - failing_since > patience:
                        return False
                    pause = min(2 * pause or SEND_INTERVAL_S, 5.0)
                    finished = self._wait(pause, finished)
                    continue
                offset, failing_since, pause = end, None, 0.0
                self.spool.mark_sent(offset)
                self.sent_points += len(points)
                if len(points) == BATCH_LIMIT:
                    continue  # more are waiting
            finished = self._wait(SEND_INTERVAL_S, finished)

    def _wait(self, seconds: float, finished: bool) -> bool:
        if finished:
            time.sleep(seconds)
            return True
        return self.no_more_points(seconds)

    def _send(self, points: list[tuple[str, int, int, float]]) -> None:
        from mlflow.entities import Metric

        self.client = self.client or store_client(self.spool.tracking_uri)
        metrics = [Metric(key, value, timestamp, step) for key, step, timestamp, value in points]
        retry_locked(self.client.log_batch, self.spool.run_id, metrics=metrics, synchronous=True)


def _trainer_finished(wait: float) -> bool:
    """The trainer closes our stdin when it is done, or the system does when it dies."""
    ready, _, _ = select.select([sys.stdin.fileno()], [], [], wait)
    return bool(ready) and not os.read(sys.stdin.fileno(), 4096)


def send(tracking_uri: str) -> int:
    """The sender process: open the store, read the run's spool name from stdin, stream the
    spool while training runs and drain it when training ends."""
    client = None
    with contextlib.suppress(Exception):  # the send loop retries a store that does not answer
        client = store_client(tracking_uri)
    name = b""
    while not name.endswith(b"\n"):
        byte = os.read(sys.stdin.fileno(), 1)  # unbuffered: select() watches the same pipe
        if not byte:
            return 0  # the trainer gave up before opening its run
        name += byte
    spool = Spool(Path(name.decode().strip()))
    with spool.sending() as ours:
        print("ready", flush=True)
        sender = Sender(spool, _trainer_finished)
        sender.client = client
        if not ours or not sender.run():
            print("kept", flush=True)
            return KEPT_EXIT
        spool.remove()  # before "sent": the trainer may write the spool's status next
    print("sent", flush=True)
    return 0
