"""What MLflow runs to load the served model ("models from code"): nothing is unpickled.

MLflow copies this file into every logged model and executes it when the model is loaded
(`mlflow models serve`, `mlflow.pyfunc.load_model`); the pipeline never imports it.
"""

import mlflow.models

from pipeline.tracking.registry.served_model import MLPClassifier

mlflow.models.set_model(MLPClassifier())
