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
    """`rows` (a DataFrame with the model's raw columns: a table's text and blank cells
    included) -> prob_<class>..., class."""
    import numpy as np
    from mlflow.exceptions import MlflowException

    from pipeline.data.table_columns import raw_from_frame
    from pipeline.model import inference
    from pipeline.model.encoding import stderr_line
    from pipeline.process.errors import InputError

    columns = arch.encoding.raw_columns if arch.encoding else arch.features
    missing = [name for name in columns if name not in rows.columns]
    if missing:
        raise MlflowException.invalid_parameter_value(
            f"missing feature columns {missing}; expected the columns {list(columns)}"
        )
    if arch.encoding is None:  # generated data, and models saved before encodings
        features = rows[list(columns)].to_numpy(dtype=np.float32)
    else:
        try:
            raw = raw_from_frame(rows, arch.encoding, "the request")
        except InputError as exc:
            raise MlflowException.invalid_parameter_value(str(exc)) from None
        features = arch.encoding.transform(raw, warn=stderr_line)
    return inference.probabilities_table(inference.probabilities(model, features), arch.classes)


def example_frame(arch, example_rows) -> pd.DataFrame:
    """The input example: a table's raw columns (decoded from encoded rows), else the rows."""
    if arch.encoding:
        return arch.encoding.decode(example_rows)
    return pd.DataFrame(example_rows.astype("float64"), columns=list(arch.features))


def log_model(state_path: Path, example_rows):
    """Log the served model into the active run; `example_rows` are the model's input rows
    (numpy), shown as raw columns for a table."""
    from mlflow.models import infer_signature

    from pipeline.model import checkpoint

    model, arch = checkpoint.load(state_path)
    example = example_frame(arch, example_rows)
    signature = infer_signature(example, answer(model, arch, example))
    if arch.encoding:  # the raw columns with their types, any cell of them may be blank
        signature.inputs = _raw_schema(arch.encoding)
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


def _raw_schema(encoding):
    from mlflow.types import ColSpec, Schema

    return Schema(
        [ColSpec(column["type"], column["name"], required=False) for column in encoding.schema()]
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    names = ("mlflow", "torch", "numpy", "pandas")
    return [f"{name}=={version(name).split('+')[0]}" for name in names]
