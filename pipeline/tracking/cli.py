"""`python -m pipeline.tracking`: replay kept spools; `ui` serves the MLflow UI and prints its
link once it answers (`make ui`); `ui-link` prints where the runs are (`make run`); `agent` is a
training's tracking agent."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.tracking.agent.replay import replay
from pipeline.tracking.agent.spool import SPOOL_DIR
from pipeline.tracking.destination import repo_root
from pipeline.tracking.ui import experiment_page, ui_address


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
    ui_help = "the UI's address (default: MLFLOW_UI_URL, else http://127.0.0.1:$UI_PORT, 5000)"
    store_help = "the store the UI shows (default: where runs go)"
    ui_command = commands.add_parser("ui", help="the MLflow UI; its link once it answers")
    ui_command.add_argument("--ui", default=None, help=ui_help)
    ui_command.add_argument("--tracking-uri", default=None, help=store_help)
    link_command = commands.add_parser("ui-link", help="the experiment's runs in the MLflow UI")
    link_command.add_argument("--ui", default=None, help=ui_help)
    link_command.add_argument("--tracking-uri", default=None, help=store_help)
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
    if args.command == "ui":
        from pipeline.tracking.destination import destination
        from pipeline.tracking.ui_server import serve_ui

        return serve_ui(args.ui or ui_address(), args.tracking_uri or destination().tracking_uri)
    if args.command == "ui-link":
        print(experiment_page(args.ui or ui_address(), args.tracking_uri, args.charts))
        return 0
    spool_dir = args.spool_dir or repo_root() / SPOOL_DIR
    lines = replay(spool_dir, args.tracking_uri) if spool_dir.is_dir() else []
    print("\n".join(lines) if lines else f"nothing to replay in {spool_dir}")
    return 0
