"""Models registered before the package layout keep loading and answering.

MLflow keeps a copy of the loader (served_model_code.py) inside every logged model and runs it at
load time. Until the layout moved it to pipeline/tracking/registry/, that copy imported
pipeline.tracking.served_model; that path stays importable for them (a shim).
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import torch

from pipeline.model import checkpoint
from pipeline.model.network import Architecture, build_model

# served_model_code.py as the previous layout logged it into every model (git: b85bfd1).
PREVIOUS_LOADER = '''"""What MLflow runs to load the served model ("models from code")."""

import mlflow.models

from pipeline.tracking.served_model import MLPClassifier

mlflow.models.set_model(MLPClassifier())
'''


def test_a_model_logged_by_the_previous_layout_loads_and_answers(sqlite_store, tmp_path):
    torch.manual_seed(0)
    arch = Architecture(3, (4,), 2)
    model = build_model(arch)
    state = tmp_path / "model.pth"
    checkpoint.save(model, arch, state)
    loader = tmp_path / "served_model_code.py"
    loader.write_text(PREVIOUS_LOADER)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(loader),
            artifacts={"state_dict": str(state), "architecture": str(state.with_suffix(".json"))},
        )

    rows = pd.DataFrame(np.eye(3), columns=list(arch.features))
    answer = mlflow.pyfunc.load_model(info.model_uri).predict(rows)

    with torch.no_grad():
        expected = torch.softmax(model(torch.eye(3)), dim=1).numpy()
    np.testing.assert_allclose(answer[[f"prob_{c}" for c in arch.classes]], expected, atol=1e-6)
    assert list(answer["class"]) == [arch.classes[i] for i in expected.argmax(axis=1)]
