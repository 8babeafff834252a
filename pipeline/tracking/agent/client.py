"""The training's side of the tracking agent (pipeline/tracking/agent/process.py): start it,
send it one small JSON message per tracker call, append metric points to the run's spool.

This side imports no MLflow. A metric point costs a list append (the spool writes them in
bunches); the calls that must succeed before training goes on (opening the run) wait for the
agent's answer, every other call is a message the agent handles while training runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.process.errors import InputError
from pipeline.tracking.agent.spool import Spool

# The agent prepared by prepare(), for this process's next run.
_prepared: AgentProcess | None = None
# The environment variables an agent's work depends on: its store and experiment (MLFLOW_*),
# the pipeline's switches (PIPELINE_*), the DVC experiment it runs in (DVC_*). Others may change
# under it harmlessly: torch sets TORCHINDUCTOR_CACHE_DIR when the first optimizer is built,
# which once made every training discard its prepared agent and wait 3 s for a second one.
AGENT_SETTINGS = ("MLFLOW_", "PIPELINE_", "DVC_")


class AgentProcess:
    """The agent process and the pipes to it."""

    def __init__(self, root: Path):
        env = _agent_environment()
        # What the agent was started for: its store and experiment come from its environment.
        self.setting = _setting(root, env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.tracking", "agent", str(root)],
            stdin=subprocess.PIPE,  # messages; its end of file says that the trainer is gone
            stdout=subprocess.PIPE,  # answers
            env=env,
            # Out of the trainer's process group: Ctrl-C stops training, not the agent, which
            # then delivers the last points and marks the run KILLED.
            start_new_session=True,
        )

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # a dead agent: ask() and end() say so
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()

    def ask(
        self, message: dict[str, Any], meanwhile: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Send, run `meanwhile` (the caller's own work) while the agent works, then wait."""
        self.send(message)
        if meanwhile:
            meanwhile()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(
                f"the tracking agent exited with {self.process.wait()} before answering "
                f"{message['op']!r}; see its error above"
            )
        return json.loads(answer)

    def close(self) -> None:
        """No more messages; its exit (tearing down MLflow) is not waited for."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        threading.Thread(target=self.process.wait, daemon=True).start()


def prepare(root: Path) -> None:
    """Start the agent now, so that its start-up overlaps this process's own (torch's import)."""
    global _prepared
    if _prepared is None:
        _prepared = AgentProcess(root)


def take_agent(root: Path) -> AgentProcess:
    """The prepared agent, or a new one if none was prepared or it was prepared for another
    store (a caller that changed MLFLOW_TRACKING_URI since, as a test does)."""
    global _prepared
    agent, _prepared = _prepared, None
    if agent is not None and agent.setting == _setting(root, _agent_environment()):
        return agent
    if agent is not None:
        agent.close()
    return AgentProcess(root)


def open_streaming_run(
    agent: AgentProcess, message: dict[str, Any], meanwhile: Callable[[], None] | None = None
) -> StreamingTracker:
    """Have the agent start or resume the run; an error it reports stops here, before training."""
    try:
        answer = agent.ask(message, meanwhile)
    except BaseException:
        agent.close()
        raise
    if "error" in answer:
        agent.close()
        if answer["input"]:
            raise InputError(answer["error"])
        raise RuntimeError(f"tracking: could not open the run: {answer['error']}")
    spool = Spool(Path(answer["spool"]))
    spool.open()
    return StreamingTracker(answer["run_id"], agent, spool)


class StreamingTracker:
    """A run whose metrics go through the spool and every other call through the agent."""

    def __init__(self, run_id: str, agent: AgentProcess, spool: Spool):
        self.run_id, self.agent, self.spool = run_id, agent, spool

    def log_params(self, params: dict[str, Any]) -> None:
        self.agent.send({"op": "params", "params": {k: str(v) for k, v in params.items()}})

    def set_tags(self, tags: dict[str, str]) -> None:
        self.agent.send({"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        # Written at once, with the batch losses before it: an epoch's end is a pause in
        # training (validation, checkpoints) that should find nothing in the trainer.
        self.spool.append(key, step, value)
        self.spool.flush()

    def log_batch_loss(self, step: int, value: float) -> None:
        self.spool.append("train_loss", step, value)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        message = {"op": "artifact", "path": str(Path(path).resolve())}
        self.agent.send({**message, "artifact_path": artifact_path})

    def log_datasets(self, datasets: Sequence[Mapping[str, Any]]) -> None:
        self.agent.send({"op": "datasets", "datasets": [dict(info) for info in datasets]})

    def log_model(self, state_path: Path, example_rows, registered_name: str | None) -> None:
        """Export's served model, logged (and registered) by the agent; waits for it, since
        the stage fails without its model. The points logged before are in the store first:
        the version's tags read the run's accuracies."""
        self.flush()
        answer = self.agent.ask(
            {
                "op": "model",
                "state_path": str(Path(state_path).resolve()),
                "example_rows": example_rows.tolist(),  # float32 values, exact as doubles
                "registered_name": registered_name,
            }
        )
        if "error" in answer:
            if answer["input"]:
                raise InputError(answer["error"])
            raise RuntimeError(f"tracking: the model was not logged: {answer['error']}")

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every point logged so far is in the store; False if that did not happen."""
        self.spool.flush()
        deadline = time.monotonic() + timeout
        while self.spool.sent_offset() < self.spool.written:
            if self.agent.process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def end(self, status: str) -> None:
        """Deliver every point and set the run's status; returns once the agent has done both."""
        self.spool.close()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        try:
            self.agent.ask({"op": "end", "status": status, "peak_memory_mb": peak_mb})
        finally:
            self.agent.close()


def _setting(root: Path, env: Mapping[str, str]) -> tuple[Path, dict[str, str]]:
    return root, {name: value for name, value in env.items() if name.startswith(AGENT_SETTINGS)}


def _agent_environment() -> dict[str, str]:
    env = dict(os.environ)
    project = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [project, env.get("PYTHONPATH")]))
    # The agent retries on its own terms; MLflow's retries would hold it for minutes per request
    # against a server that went away.
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    env.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    return env
