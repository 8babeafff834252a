"""Everything MLflow, one concern per module; nothing outside this package imports mlflow.

- destination: where to track (store URI, experiment, repository root) and the git/DVC tags
- store/:      the store: urls (password hidden, SQLite file), check (refused in one line, no
               MLflow), access (opened with lock retries, reachability), stale (runs left RUNNING)
- runs:        a run's lifecycle: trackers, start/resume, FINISHED/FAILED/KILLED
- system_metrics: CPU, memory and GPU sampled by the agent
- datasets:    the run's dataset inputs (the splits' schema and digest)
- study:       a study's parent run and nested trial runs; tags linking an experiment to a trial
- ui:          links into the MLflow UI that land on the runs (Model training view)
- cli:         `python -m pipeline.tracking agent | replay | ui-link`
- agent/:      the out-of-process logger: client (the training's side), process (the agent),
               spool (metric points on disk), sender (streaming a spool), replay
- registry/:   the run's MLflow model (models, served_model), versions, aliases, downloads
- served_model: where models registered before registry/ existed find their code

The names below are importable from here (`from pipeline import tracking; tracking.start_run`)
but load their module only when first used: importing one tracking module must not import them
all, or every stage would depend on (and DVC rerun it for) the registry and UI code too. Code of
the pipeline imports the module it needs (tests/test_dvc_yaml.py follows those imports).
"""

import importlib

# name -> the module that defines it
EXPORTS = {
    "BATCH_LIMIT": "pipeline.tracking.agent.sender",
    "DEFAULT_EXPERIMENT": "pipeline.tracking.destination",
    "DEFAULT_UI": "pipeline.tracking.ui",
    "Destination": "pipeline.tracking.destination",
    "Interrupted": "pipeline.process.signals",
    "LINK_VARIABLES": "pipeline.tracking.study",
    "NullStudyRun": "pipeline.tracking.study",
    "NullTracker": "pipeline.tracking.runs",
    "SPOOL_DIR": "pipeline.tracking.agent.spool",
    "Sender": "pipeline.tracking.agent.sender",
    "Spool": "pipeline.tracking.agent.spool",
    "StreamingTracker": "pipeline.tracking.agent.client",
    "StudyRun": "pipeline.tracking.study",
    "TrialRun": "pipeline.tracking.study",
    "check_store": "pipeline.tracking.store.check",
    "destination": "pipeline.tracking.destination",
    "end_stale_runs": "pipeline.tracking.store.stale",
    "experiment_page": "pipeline.tracking.ui",
    "prepare_tracking": "pipeline.tracking.runs",
    "process_start": "pipeline.tracking.store.stale",
    "process_tags": "pipeline.tracking.store.stale",
    "promote": "pipeline.tracking.registry.versions",
    "recorded_run_id": "pipeline.tracking.runs",
    "replay": "pipeline.tracking.agent.replay",
    "repo_root": "pipeline.tracking.destination",
    "resume_run": "pipeline.tracking.runs",
    "run_links": "pipeline.tracking.ui",
    "run_status": "pipeline.tracking.runs",
    "runs_page": "pipeline.tracking.ui",
    "start_run": "pipeline.tracking.runs",
    "start_study_run": "pipeline.tracking.study",
    "study_link_tags": "pipeline.tracking.study",
    "tracking_enabled": "pipeline.tracking.destination",
    "ui_address": "pipeline.tracking.ui",
}
__all__ = sorted(EXPORTS)


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(EXPORTS[name]), name)
