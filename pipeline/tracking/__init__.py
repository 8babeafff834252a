"""Everything MLflow, one concern per module; nothing outside this package imports mlflow.

- destination: where to track (store URI, experiment, repository root) and the git/DVC tags
- store:       opening the store, reachability, lock retries, refused credentials
- runs:        a run's lifecycle: trackers, start/resume, FINISHED/FAILED/KILLED
- agent:       the training's side of the tracking agent: messages, the run's spool
- agent_process: the agent, the process that talks to MLflow for a training
- system_metrics: CPU, memory and GPU sampled by the agent
- models:      the logged MLflow PyTorch model and its registration
- stale:       runs left RUNNING by a process that died
- spool:       a run's metric points on disk
- sender:      streaming a spool into its run (the agent, replay)
- replay, cli: `python -m pipeline.tracking replay` for what could not be sent
"""

from pipeline.errors import Interrupted
from pipeline.tracking.agent import StreamingTracker
from pipeline.tracking.destination import (
    DEFAULT_EXPERIMENT,
    Destination,
    destination,
    repo_root,
    tracking_enabled,
)
from pipeline.tracking.replay import replay
from pipeline.tracking.runs import (
    NullTracker,
    RunTracker,
    prepare_tracking,
    recorded_run_id,
    resume_run,
    run_page,
    run_status,
    start_run,
)
from pipeline.tracking.sender import BATCH_LIMIT, Sender
from pipeline.tracking.spool import SPOOL_DIR, Spool
from pipeline.tracking.stale import end_stale_runs, process_start, process_tags

__all__ = [
    "BATCH_LIMIT",
    "DEFAULT_EXPERIMENT",
    "SPOOL_DIR",
    "Destination",
    "Interrupted",
    "NullTracker",
    "RunTracker",
    "Sender",
    "Spool",
    "StreamingTracker",
    "destination",
    "end_stale_runs",
    "prepare_tracking",
    "process_start",
    "process_tags",
    "recorded_run_id",
    "replay",
    "repo_root",
    "resume_run",
    "run_page",
    "run_status",
    "start_run",
    "tracking_enabled",
]
