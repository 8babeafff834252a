"""Everything MLflow, one concern per module; nothing outside this package imports mlflow.

- destination: where to track (store URI, experiment, repository root) and the git/DVC tags
- store:       opening the store, reachability, lock retries, refused credentials
- store_check: a store URI (and SQLite file) MLflow cannot open, refused in one line, no MLflow
- runs:        a run's lifecycle: trackers, start/resume, FINISHED/FAILED/KILLED
- agent:       the training's side of the tracking agent: messages, the run's spool
- agent_process: the agent, the process that talks to MLflow for a training
- system_metrics: CPU, memory and GPU sampled by the agent
- models:      the run's logged MLflow model, once per run
- served_model: that model, a pyfunc answering probabilities with named columns
- registry:    versions and their tags, the aliases champion and previous, downloads
- ui:          links into the MLflow UI that land on the runs (Model training view)
- stale:       runs left RUNNING by a process that died
- spool:       a run's metric points on disk
- sender:      streaming a spool into its run (the agent, replay)
- study:       a study's parent run and nested trial runs; tags linking an experiment to a trial
- replay, cli: `python -m pipeline.tracking replay` for what could not be sent, `ui-link`
"""

from pipeline.process.errors import Interrupted
from pipeline.tracking.agent.client import StreamingTracker
from pipeline.tracking.agent.replay import replay
from pipeline.tracking.agent.sender import BATCH_LIMIT, Sender
from pipeline.tracking.agent.spool import SPOOL_DIR, Spool
from pipeline.tracking.destination import (
    DEFAULT_EXPERIMENT,
    Destination,
    destination,
    repo_root,
    tracking_enabled,
)
from pipeline.tracking.registry.versions import promote
from pipeline.tracking.runs import (
    NullTracker,
    prepare_tracking,
    recorded_run_id,
    resume_run,
    run_status,
    start_run,
)
from pipeline.tracking.stale import end_stale_runs, process_start, process_tags
from pipeline.tracking.store_check import check_store
from pipeline.tracking.study import (
    LINK_VARIABLES,
    NullStudyRun,
    StudyRun,
    TrialRun,
    start_study_run,
    study_link_tags,
)
from pipeline.tracking.ui import DEFAULT_UI, experiment_page, run_links, runs_page

__all__ = [
    "BATCH_LIMIT",
    "DEFAULT_EXPERIMENT",
    "DEFAULT_UI",
    "LINK_VARIABLES",
    "SPOOL_DIR",
    "Destination",
    "Interrupted",
    "NullStudyRun",
    "NullTracker",
    "Sender",
    "Spool",
    "StreamingTracker",
    "StudyRun",
    "TrialRun",
    "check_store",
    "destination",
    "end_stale_runs",
    "experiment_page",
    "prepare_tracking",
    "process_start",
    "process_tags",
    "promote",
    "recorded_run_id",
    "replay",
    "repo_root",
    "resume_run",
    "run_links",
    "run_status",
    "runs_page",
    "start_run",
    "start_study_run",
    "study_link_tags",
    "tracking_enabled",
]
