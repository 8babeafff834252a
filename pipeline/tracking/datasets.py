"""The data a run learned from, as MLflow dataset inputs (the UI's Dataset column and filter).

Callers pass plain data, one mapping per split: name, digest, source (the table's path or the
generator), rows, features (column names, or a table's
raw columns as {"name", "type"}) and context ("training", "validation", "testing").
Nothing of MLflow crosses this interface, so the call can be forwarded to another process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# MLflow's tag for a dataset's role in a run (mlflow.data's "context").
CONTEXT_TAG = "mlflow.data.context"


def dataset_inputs(datasets: Sequence[Mapping[str, Any]]) -> list:
    """MLflow DatasetInput entities for the given splits."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    return [
        DatasetInput(
            Dataset(
                name=str(info["name"]),
                digest=str(info["digest"]),
                source_type="local" if Path(str(info["source"])).is_file() else "code",
                source=json.dumps({"uri": str(info["source"])}),
                # The form mlflow.data writes, so the UI shows the columns and the size.
                schema=json.dumps({"mlflow_colspec": _colspec(info["features"])}),
                profile=json.dumps({"num_rows": int(info["rows"])}),
            ),
            tags=[InputTag(CONTEXT_TAG, str(info["context"]))],
        )
        for info in datasets
    ]


def _colspec(features: Sequence) -> list[dict[str, Any]]:
    """Feature names (all float), or a table's raw columns as {"name", "type"} (double, string:
    text and blank cells are the rows' own)."""
    return [
        {"type": str(f["type"]), "name": str(f["name"]), "required": False}
        if isinstance(f, Mapping)
        else {"type": "float", "name": str(f), "required": True}
        for f in features
    ]
