"""The run's MLflow model (served_model): logged once per run, registered once per name."""

from __future__ import annotations


def log_model(client, run_id: str, state_path, example_rows, registered_name: str | None) -> None:
    import mlflow

    # One model per run: export rerunning against a training DVC restored from its run cache
    from pipeline.tracking.registry import served_model
    from pipeline.tracking.registry import versions as registry

    # (same run, same checkpoint) reuses the model it logged instead of adding a duplicate.
    if not logged_model(client, run_id):
        with mlflow.start_run(run_id=run_id, nested=False, log_system_metrics=False):
            served_model.log_model(state_path, example_rows)
    if registered_name:
        registry.register(client, run_id, registered_name)


def logged_model(client, run_id: str):
    """The run's complete model named "model", if export logged one before."""
    from mlflow.entities import LoggedModelStatus

    experiment_id = client.get_run(run_id).info.experiment_id
    query = f"source_run_id = '{run_id}' AND name = 'model'"
    found = client.search_logged_models([experiment_id], filter_string=query)
    return next((m for m in found if m.status == LoggedModelStatus.READY), None)
