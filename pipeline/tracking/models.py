"""The run's MLflow PyTorch model: logged once per run, registered once per name."""

from __future__ import annotations


def log_model(client, run_id: str, model, input_example, registered_name: str | None) -> None:
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    # One model per run: export rerunning against a training DVC restored from its run cache
    # (same run, same checkpoint) reuses the model it logged instead of adding a duplicate.
    if logged := logged_model(client, run_id):
        register_once(client, logged, registered_name)
        return
    # pyfunc serves the module's forward(): logits, one column per class.
    example = input_example.numpy()
    signature = infer_signature(example, _logits(model, input_example))
    with mlflow.start_run(run_id=run_id, nested=False, log_system_metrics=False):
        mlflow.pytorch.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=registered_name,
            # Listing them skips MLflow's slow requirement inference (a model reload in a
            # subprocess) and its warning about the "+cpu" local version label.
            pip_requirements=_requirements(),
        )


def logged_model(client, run_id: str):
    """The run's complete model named "model", if export logged one before."""
    from mlflow.entities import LoggedModelStatus

    experiment_id = client.get_run(run_id).info.experiment_id
    query = f"source_run_id = '{run_id}' AND name = 'model'"
    found = client.search_logged_models([experiment_id], filter_string=query)
    return next((m for m in found if m.status == LoggedModelStatus.READY), None)


def register_once(client, logged, registered_name: str | None) -> None:
    import mlflow

    if not registered_name:
        return
    query = f"name = '{registered_name}' AND run_id = '{logged.source_run_id}'"
    if not client.search_model_versions(query):
        mlflow.register_model(logged.model_uri, registered_name)


def _logits(model, features):
    import torch

    with torch.no_grad():
        return model(features).numpy()


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name).split('+')[0]}" for name in ("torch", "numpy")]
