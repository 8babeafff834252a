"""The MLflow model a run logs: a pyfunc that rebuilds the MLP from its state_dict and model.json.

Not the pickled module (mlflow.pytorch): what `mlflow models serve`, `mlflow.pyfunc.load_model`
and `pipeline.predict --model models:/...` read is the same plain state_dict the pipeline writes,
loaded with weights_only=True through pipeline.model.checkpoint. The answer is a table with named
columns: the softmax probability of each class (`prob_<class>`), then the predicted `class`.
Serving needs the project installed in its environment (`--env-manager local`). The model is
logged "from code" (served_model_code.py), so loading it unpickles nothing either.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

# Where the model keeps its files, relative to the model's directory (MLflow copies each
# artifact there under its own file name, so model.json stays beside model.pth).
STATE_DICT = "artifacts/model.pth"


class MLPClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from pipeline.model import checkpoint

        self.model, self.arch = checkpoint.load(context.artifacts["state_dict"])

    # The hint tells MLflow the input is a table (columns checked against the signature).
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return answer(self.model, self.arch, model_input)


def answer(model, arch, rows):
    """`rows` (a DataFrame with the model's feature columns) -> prob_<class>..., class."""
    import numpy as np
    from mlflow.exceptions import MlflowException

    from pipeline.model import inference

    missing = [name for name in arch.features if name not in rows.columns]
    if missing:
        raise MlflowException.invalid_parameter_value(
            f"missing feature columns {missing}; expected the columns {list(arch.features)}"
        )
    features = rows[list(arch.features)].to_numpy(dtype=np.float32)
    return inference.probabilities_table(inference.probabilities(model, features), arch.classes)


def log_model(state_path: Path, example_rows):
    """Log the served model into the active run; `example_rows` are feature rows (numpy)."""
    from mlflow.models import infer_signature

    from pipeline.model import checkpoint

    model, arch = checkpoint.load(state_path)
    example = pd.DataFrame(example_rows.astype("float64"), columns=list(arch.features))
    signature = infer_signature(example, answer(model, arch, example))
    with tempfile.TemporaryDirectory() as scratch:
        # MLflow copies artifacts by their file names: model.pth and model.json, side by side.
        state = Path(shutil.copy(state_path, scratch))
        shutil.copy(checkpoint.architecture_path(state_path), scratch)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("served_model_code.py")),
            artifacts={"state_dict": str(state), "architecture": str(state.with_suffix(".json"))},
            signature=signature,
            input_example=example,
            # Listing them skips MLflow's slow requirement inference (a model reload in a
            # subprocess) and its warning about the "+cpu" local version label.
            pip_requirements=_requirements(),
        )


def _requirements() -> list[str]:
    from importlib.metadata import version

    names = ("mlflow", "torch", "numpy", "pandas")
    return [f"{name}=={version(name).split('+')[0]}" for name in names]
