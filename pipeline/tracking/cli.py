"""`python -m pipeline.tracking`: replay kept spools; `ui-link` prints where the runs are in the
MLflow UI (`make run`, `make ui`); `agent` is a training's tracking agent."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.tracking.agent.replay import replay
from pipeline.tracking.agent.spool import SPOOL_DIR
from pipeline.tracking.destination import repo_root
from pipeline.tracking.ui import DEFAULT_UI, experiment_page


def main(argv: list[str] | None = None) -> int:
    from pipeline.process.errors import exits_cleanly

    return exits_cleanly(_main)(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.tracking",
        description="Send metric points that trainings kept in .mlflow-spool/ into their runs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    replay_command = commands.add_parser("replay", help="send every spool, then delete it")
    replay_command.add_argument(
        "--spool-dir", type=Path, default=None, help="default: <repo root>/.mlflow-spool"
    )
    replay_command.add_argument(
        "--tracking-uri", default=None, help="send to this store instead of the recorded one"
    )
    link_command = commands.add_parser("ui-link", help="the experiment's runs in the MLflow UI")
    link_command.add_argument("--ui", default=DEFAULT_UI, help=f"the UI's address ({DEFAULT_UI})")
    link_command.add_argument(
        "--tracking-uri", default=None, help="the store the UI shows (default: where runs go)"
    )
    link_command.add_argument("--charts", action="store_true", help="the chart view")
    agent_command = commands.add_parser("agent", help="(internal) a training's tracking agent")
    agent_command.add_argument("root", type=Path, help="the repository root, for the spool")
    args = parser.parse_args(argv)
    if args.command == "agent":
        from pipeline.tracking.agent.process import serve

        code = serve(args.root)
        # The trainer waits for this exit: skip the interpreter's teardown of MLflow's modules.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if args.command == "ui-link":
        print(experiment_page(args.ui, args.tracking_uri, args.charts))
        return 0
    spool_dir = args.spool_dir or repo_root() / SPOOL_DIR
    lines = replay(spool_dir, args.tracking_uri) if spool_dir.is_dir() else []
    print("\n".join(lines) if lines else f"nothing to replay in {spool_dir}")
    return 0
