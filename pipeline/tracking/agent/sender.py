"""Streaming a spool's points into its run: the tracking agent while training runs, `replay`
for what could not be sent.

MLflow writes each point through SQLAlchemy's ORM (about 75 us of Python per point plus about
7 ms per log_batch call; about 10 ms per log_metric transaction); done inside the training
process, that competes with training for the GIL and the core. So the trainer appends its points
to a spool file (pipeline/tracking/agent/spool.py) and the tracking agent, a process of its own
(pipeline/tracking/agent/process.py), streams them into the run with log_batch. If the store
cannot be reached, the points stay in the spool until `python -m pipeline.tracking replay` sends
them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pipeline.process.errors import first_line
from pipeline.tracking.agent.spool import Spool
from pipeline.tracking.store.access import retry_locked, store_client, warn

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
                        reason = first_line(exc)
                        warn(f"cannot send metrics of run {self.spool.run_id} yet: {reason}")
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
