"""The tracking agent: the one process of a training that talks to MLflow.

Importing MLflow and opening its store take seconds; the trainer spends them importing torch. So
the trainer never imports MLflow: it starts this process first (`python -m pipeline.tracking agent
<uri>`), whose imports then overlap torch's on the other core, and talks to it with one JSON line
per call on stdin (pipeline/tracking/agent/client.py). The agent answers on stdout the calls that
must be answered before the stage goes on (`start`, `resume`: the run and its spool, or the one-
line error for a store that refuses; `model`: export's served model, logged and registered here, so
that no stage imports MLflow), streams the spool's metric points into the run while training runs,
samples the system metrics, and on `end` drains the spool, then sets the run's status and answers
whether every point arrived. If the trainer dies, stdin's end of file tells the agent, which still
sends what was written; the run is left for the next training's stale-run check to mark KILLED.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import time
import traceback
from pathlib import Path

from pipeline.process.errors import first_line
from pipeline.tracking.agent.sender import Sender
from pipeline.tracking.agent.spool import SPOOL_DIR, Spool
from pipeline.tracking.datasets import dataset_inputs
from pipeline.tracking.destination import (
    Destination,
    destination,
    dvc_tags,
    git_tags,
    run_name,
)
from pipeline.tracking.store.access import (
    experiment_id,
    refusal,
    retry_locked,
    store_client,
    unreachable,
    warn,
)
from pipeline.tracking.store.stale import end_stale_runs
from pipeline.tracking.store.urls import sqlite_path
from pipeline.tracking.system_metrics import PEAK_MEMORY_METRIC, SystemSampler


class Agent:
    def __init__(self, dest: Destination, root: Path, replies):
        self.dest, self.root, self.replies = dest, root, replies
        self.client = None
        self.spool: Spool | None = None
        self.sampler: SystemSampler | None = None
        self.ending: dict | None = None  # the trainer's `end` message, once it came
        self.inbox = b""

    # ---- the trainer's messages -----------------------------------------------------------

    def next_message(self, wait: float | None) -> dict | None:
        """The trainer's next message, waiting up to `wait` s; {"op": "gone"} at end of file."""
        while b"\n" not in self.inbox:
            ready, _, _ = select.select([sys.stdin.fileno()], [], [], wait)
            if not ready:
                return None
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                return {"op": "gone"}
            self.inbox += chunk
        line, self.inbox = self.inbox.split(b"\n", 1)
        return json.loads(line)

    def reply(self, answer: dict) -> None:
        self.replies.write(json.dumps(answer) + "\n")
        self.replies.flush()

    def open_run(self, message: dict) -> bool:
        """`start` or `resume`: answer with the run and its spool, or with the error."""
        try:
            self.client = self.client or store_client(self.dest.tracking_uri)
            run_id = self._start(message) if message["op"] == "start" else self._resume(message)
        except Exception as exc:
            explained = refusal(exc)
            if not explained:
                traceback.print_exc()  # an unexpected failure: its whole story, on stderr
            self.reply({"error": explained or first_line(exc), "input": bool(explained)})
            return False
        self.spool = Spool.create(self.root / SPOOL_DIR, run_id, self.dest.tracking_uri)
        if message.get("system_metrics"):
            self.sampler = SystemSampler(message.get("node"))
        self.reply({"run_id": run_id, "spool": str(self.spool.meta)})
        return True

    def _start(self, message: dict) -> str:
        experiment = experiment_id(self.client, self.dest)
        end_stale_runs(self.client, experiment)
        # The code that runs: in a queued experiment, the copy's commit and changed params.
        tags = {**git_tags(Path.cwd()), **dvc_tags(), **message["tags"]}
        run = retry_locked(
            self.client.create_run,
            experiment,
            run_name=message.get("run_name") or run_name(tags),
            tags=tags,
        )
        self.log_params(run.info.run_id, message["params"])
        return run.info.run_id

    def _resume(self, message: dict) -> str:
        run_id = message["run_id"]
        self.set_tags(run_id, message["tags"])  # the trainer holds the run now
        retry_locked(self.client.update_run, run_id, status="RUNNING")
        return run_id

    def log_params(self, run_id: str, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), 100):
            retry_locked(self.client.log_batch, run_id, params=items[start : start + 100])

    def set_tags(self, run_id: str, tags: dict) -> None:
        from mlflow.entities import RunTag

        run_tags = [RunTag(key, str(value)) for key, value in tags.items()]
        retry_locked(self.client.log_batch, run_id, tags=run_tags)

    def handle(self, message: dict) -> None:
        """A call that needs no answer; its failure is a warning, not the end of training."""
        run_id = self.spool.run_id
        try:
            if message["op"] == "tags":
                self.set_tags(run_id, message["tags"])
            elif message["op"] == "params":
                self.log_params(run_id, message["params"])
            elif message["op"] == "artifact":
                self.log_artifact(run_id, message["path"], message.get("artifact_path"))
            elif message["op"] == "datasets":
                inputs = dataset_inputs(message["datasets"])
                retry_locked(self.client.log_inputs, run_id, datasets=inputs)
        except Exception as exc:
            warn(f"run {run_id}: {message['op']} not logged: {first_line(exc)}")

    def log_model(self, message: dict) -> dict:
        """`model` (export): the served model into the run, registered if asked; answered."""
        import mlflow
        import numpy as np

        from pipeline.process.errors import InputError
        from pipeline.tracking.registry import models

        try:
            mlflow.set_tracking_uri(self.dest.tracking_uri)  # MLflow's fluent calls: this store
            rows = np.asarray(message["example_rows"], dtype=np.float32)
            state_path, name = Path(message["state_path"]), message["registered_name"]
            models.log_model(self.client, self.spool.run_id, state_path, rows, name)
        except Exception as exc:
            explained = refusal(exc) or (str(exc) if isinstance(exc, InputError) else None)
            if not explained:
                traceback.print_exc()  # an unexpected failure: its whole story, on stderr
            return {"error": explained or first_line(exc), "input": bool(explained)}
        return {"logged": True}

    def log_artifact(self, run_id: str, path: str, artifact_path: str | None) -> None:
        if reason := unreachable(self.dest.tracking_uri):
            # Training's outputs are written already; losing the store must not fail the stage.
            warn(f"artifact {path} not logged: tracking server unreachable ({reason})")
            return
        self.client.log_artifact(run_id, path, artifact_path)

    # ---- while training runs, and after -------------------------------------------------------

    def between_sends(self, wait: float) -> bool:
        """The sender's pause: handle what the trainer sent and sample the system; True once the
        trainer has ended the run or is gone (no more points will come)."""
        message = self.next_message(wait)
        while message is not None:
            if message["op"] in ("end", "gone"):
                self.ending = message
                return True
            if message["op"] == "model":
                self.reply(self.log_model(message))
            else:
                self.handle(message)
            message = self.next_message(0)
        if self.sampler is not None:
            self._log_points(self.sampler.due())
        return False

    def finish(self, delivered: bool, streamed: bool) -> None:
        """Every point has been sent (or kept): the last samples, then the run's status.

        `streamed`: this agent sent the spool; else another one does and removes it.
        """
        if self.ending["op"] == "gone":
            # No status: the trainer died; the next training's stale-run check marks it KILLED.
            if delivered and streamed:
                self.spool.remove()
            return
        status, peak = self.ending["status"], self.ending.get("peak_memory_mb")
        if self.sampler is not None:
            self._log_points(self.sampler.sample())
        if peak is not None and self.sampler is not None:
            self._log_points([(PEAK_MEMORY_METRIC, 0, int(time.time() * 1000), float(peak))])
        reason = unreachable(self.dest.tracking_uri)
        if reason is None:
            try:
                retry_locked(self.client.set_terminated, self.spool.run_id, status=status)
            except Exception as exc:
                reason = first_line(exc)
        self._report(status, delivered, reason, streamed)

    def _report(self, status: str, delivered: bool, reason: str | None, streamed: bool) -> None:
        run_id = self.spool.run_id
        kept = f"its unsent metric points are kept in {self.spool.points}"
        if delivered and streamed:
            self.spool.remove()
        if reason is not None:
            self.spool.keep_status(status)  # for replay to set
            warn(
                f"tracking server unreachable ({reason}): run {run_id} is not marked {status}"
                f"{'' if delivered else ' and ' + kept}; once the server is back, "
                "`python -m pipeline.tracking replay` does it"
            )
        elif not delivered:
            warn(f"run {run_id}: {kept}; `python -m pipeline.tracking replay` sends them")
        self.reply({"delivered": delivered, "status_set": reason is None})

    def _log_points(self, points: list[tuple[str, int, int, float]]) -> None:
        # System metrics are best effort: a store that fails now loses a sample, nothing more.
        from mlflow.entities import Metric

        metrics = [Metric(key, value, ms, step) for key, step, ms, value in points]
        with contextlib.suppress(Exception):
            if metrics:
                retry_locked(self.client.log_batch, self.spool.run_id, metrics=metrics)


def serve(root: Path) -> int:
    """The agent's life: open the store, open the run when asked, stream, finish."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # whatever a library prints must not mix with the answers
    agent = Agent(destination(root), root, replies)  # the trainer's environment, so its store
    agent.client = _warm_up(agent.dest.tracking_uri)
    message = agent.next_message(None)
    if message["op"] == "gone" or not agent.open_run(message):
        return 0
    with agent.spool.sending() as ours:
        sender = Sender(agent.spool, agent.between_sends)
        sender.client = agent.client
        # Another agent streams this spool (DDP: the launcher's, for the same run): only serve.
        delivered = sender.run() if ours else _serve_only(agent)
        agent.finish(delivered, streamed=ours)
    return 0


def _warm_up(tracking_uri: str):
    """Import MLflow and open the store while the trainer imports torch; None if not opened.

    A SQLite store that does not exist yet is only imported for, not created: the trainer may
    still stop on bad input before it opens a run, and then nothing may have been written.
    """
    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (the imports, not the file)

        return None
    with contextlib.suppress(Exception):  # opening the run retries and reports
        return store_client(tracking_uri)
    return None


def _serve_only(agent: Agent) -> bool:
    while not agent.between_sends(1.0):
        pass
    return True
