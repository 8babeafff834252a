"""The MLflow model a run logs: a pyfunc that rebuilds the MLP from its state_dict and model.json.

Not the pickled module (mlflow.pytorch): what `mlflow models serve`, `mlflow.pyfunc.load_model`
and `pipeline.predict --model models:/...` read is the same plain state_dict the pipeline writes,
loaded with weights_only=True through pipeline.model.checkpoint. The answer is a table with named
columns: the softmax probability of each class (`prob_<class>`), then the predicted `class`.
Serving needs the project installed in its environment (`--env-manager local`). The model is
logged "from code" (served_model_code.py), so loading it unpickles nothing either.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import mlflow.pyfunc
import pandas as pd

from pipeline.model.architecture import Architecture

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
        # A copy: pandas may hand out a read-only view, which torch warns about.
        features = np.array(rows[list(columns)], dtype=np.float32)
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
    (numpy), shown as raw columns for a table.

    Neither torch nor the model is loaded here: the signature comes from model.json (the
    features in, a probability per class and the class out), and MLflow is asked not to reload
    the model to try the input example (that reload imported torch into the agent, seconds of
    export's time); the pipeline's tests load and query the logged model instead.
    """
    from mlflow.models import Model

    arch = Architecture.from_dict(json.loads(state_path.with_suffix(".json").read_text()))
    example = example_frame(arch, example_rows)
    with tempfile.TemporaryDirectory() as scratch:
        # MLflow copies artifacts by their file names: model.pth and model.json, side by side.
        state = Path(shutil.copy(state_path, scratch))
        shutil.copy(state_path.with_suffix(".json"), scratch)
        return Model.log(
            artifact_path=None,  # MLflow 3 names models (name=) instead
            name="model",
            flavor=PYFUNC_WITHOUT_RELOAD,
            flavor_name="pyfunc.ModelFromCode",  # what mlflow.pyfunc.log_model records
            python_model=str(Path(__file__).with_name("served_model_code.py")),
            artifacts={"state_dict": str(state), "architecture": str(state.with_suffix(".json"))},
            signature=signature(arch),
            input_example=example,
            validate_serving_input=False,
            # Listing them skips MLflow's slow requirement inference (a model reload in a
            # subprocess) and its warning about the "+cpu" local version label.
            pip_requirements=_requirements(),
        )


def signature(arch: Architecture):
    """Feature columns (double; a table's raw columns with their types, any cell of them may
    be blank) in; prob_<class> (double) per class, then `class` out: the types `answer`
    returns (integer classes of generated data are long, a table's strings)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    if arch.encoding:
        inputs = [
            ColSpec(column["type"], column["name"], required=False)
            for column in arch.encoding.schema()
        ]
    else:
        inputs = [ColSpec("double", name) for name in arch.features]
    outputs = [ColSpec("double", f"prob_{c}") for c in arch.classes]
    integers = all(isinstance(c, int) for c in arch.classes)
    outputs.append(ColSpec("long" if integers else "string", "class"))
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _save_without_reload(path, mlflow_model, validate_serving_input=True, **kwargs):
    # validate_serving_input is Model.log's own switch (as mlflow.transformers passes it);
    # pyfunc.save_model refuses keywords it does not know.
    return mlflow.pyfunc.save_model(path=path, mlflow_model=mlflow_model, **kwargs)


# mlflow.pyfunc as Model.log's flavor, its one use being save_model.
PYFUNC_WITHOUT_RELOAD = SimpleNamespace(save_model=_save_without_reload)


def _requirements() -> list[str]:
    from importlib.metadata import version

    names = ("mlflow", "torch", "numpy", "pandas")
    return [f"{name}=={version(name).split('+')[0]}" for name in names]
