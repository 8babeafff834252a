"""Stage `export`: models/model.pth + model.json, and the MLflow model in the training's run.

As train and evaluate do, main() starts the tracking agent before torch is imported (in run()):
the agent imports MLflow meanwhile, then logs the model itself, so this process never does.
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
    from pipeline.model import checkpoint  # torch

    model, arch = checkpoint.load(checkpoint_path)
    example = load_split(example_data).features[:INPUT_EXAMPLE_ROWS]
    tracker = resume_run(recorded_run_id(train_metrics))
    with run_status(tracker):
        checkpoint.save(model, arch, model_path)
        tracker.log_artifact(model_path, "state_dict")
        tracker.log_artifact(checkpoint.architecture_path(model_path), "state_dict")
        tracker.log_model(model_path, example, export.model_name if export.register else None)
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
