"""Stage `export`: models/model.pth + model.json, and the MLflow model in the training's run.

As train and evaluate do, main() starts the tracking agent before torch is imported (in run()):
the agent imports MLflow and reopens the run while this process writes the model files, then
logs the model itself (from model.json, without torch), so this process never imports MLflow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config.params import load_params
from pipeline.config.schema import ExportParams
from pipeline.data.splits import load_split
from pipeline.process.errors import exits_cleanly
from pipeline.tracking.runs import prepare_tracking, recorded_run_id, resume_run, run_status

INPUT_EXAMPLE_ROWS = 5


def run(
    *,
    export: ExportParams,
    checkpoint_path: Path,
    example_data: Path,
    train_metrics: Path,
    model_path: Path,
) -> Path:
    """Write the model files while the agent reopens the training's run, then log them."""
    done: dict = {}

    def write_meanwhile() -> None:
        from pipeline.model import checkpoint  # torch

        model, arch = checkpoint.load(checkpoint_path)
        done["example"] = load_split(example_data).features[:INPUT_EXAMPLE_ROWS]
        checkpoint.save(model, arch, model_path)

    tracker = resume_run(recorded_run_id(train_metrics), meanwhile=write_meanwhile)
    with run_status(tracker):
        tracker.log_artifact(model_path, "state_dict")
        tracker.log_artifact(model_path.with_suffix(".json"), "state_dict")
        registered = export.model_name if export.register else None
        tracker.log_model(model_path, done["example"], registered)
    return model_path


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--checkpoint", type=Path, default=Path("models/checkpoint.pth"))
    parser.add_argument("--example-data", type=Path, default=Path("data/test.npz"))
    parser.add_argument("--train-metrics", type=Path, default=Path("metrics/train.json"))
    parser.add_argument("--out", type=Path, default=Path("models/model.pth"))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    prepare_tracking()
    path = run(
        export=params.export,
        checkpoint_path=args.checkpoint,
        example_data=args.example_data,
        train_metrics=args.train_metrics,
        model_path=args.out,
    )
    from pipeline.model import checkpoint

    print(f"exported {path} and {checkpoint.architecture_path(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
