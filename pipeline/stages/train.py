"""Stage `train`: fit the MLP, record the run in MLflow, write the checkpoint and loss curve.

The entry point starts the tracking agent before importing torch (pipeline/training/work.py): the
agent's own start-up, importing MLflow and opening the store, then runs on the other core while
this process imports torch, instead of after it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.config.params import load_params
from pipeline.config.schema import Params
from pipeline.process.errors import BAD_INPUT_EXIT, exits_cleanly
from pipeline.process.signals import interrupted_exit
from pipeline.tracking.runs import prepare_tracking


def run(
    *, params: Params, data_dir: Path, checkpoint_path: Path, metrics_path: Path, plots_dir: Path
) -> dict:
    """Train in this process: alone, or as one DDP worker (rank 0 alone tracks and writes)."""
    from pipeline.training import work as training

    return training.run(
        params=params,
        data_dir=data_dir,
        checkpoint_path=checkpoint_path,
        metrics_path=metrics_path,
        plots_dir=plots_dir,
    )


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--checkpoint", type=Path, default=Path("models/checkpoint.pth"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/train.json"))
    parser.add_argument("--plots", type=Path, default=Path("plots"))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    if os.environ.get("RANK", "0") == "0":  # the process that tracks: alone, launcher or rank 0
        prepare_tracking()
    from pipeline.runtime import distributed
    from pipeline.training import work as training  # torch, while the agent imports MLflow

    try:
        if distributed.launches_workers(params.train.strategy):
            worker_args = sys.argv[1:] if argv is None else argv
            training.launch(params=params, data_dir=args.data, worker_args=worker_args)
            return 0
        summary = run(
            params=params,
            data_dir=args.data,
            checkpoint_path=args.checkpoint,
            metrics_path=args.metrics,
            plots_dir=args.plots,
        )
    except KeyboardInterrupt as exc:
        return interrupted_exit(exc, "training")
    except distributed.WorkerFailed as failure:
        print(f"error: training failed: {failure}", file=sys.stderr)
        return failure.exitcode if failure.exitcode == BAD_INPUT_EXIT else 1
    if distributed.is_main_process():
        print(f"trained {summary['steps']} steps, final loss {summary['final_loss']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
