"""`make ui`: the MLflow UI over the store, its link printed once the server answers.

`mlflow ui` can take a minute to answer on a busy machine; a link printed at once would refuse
connections meanwhile. So the UI starts under a lifeline (it ends with this process, however
this process ends: Ctrl-C, SIGTERM or SIGKILL), says it is starting, polls `/health`, and only
then prints where the runs are.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlsplit

from pipeline.process.errors import InputError
from pipeline.process.lifeline import popen_tied
from pipeline.tracking.ui import experiment_page

POLL_S = 0.5


def serve_ui(ui: str, store_uri: str) -> int:
    """Run `mlflow ui` for `store_uri` at the address `ui` until it ends or we are stopped."""
    address = urlsplit(ui)
    if address.hostname is None or address.port is None:
        raise InputError(f"UI address {ui!r}: no host or port; expected http://host:port")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store_uri]
    command += ["--host", address.hostname, "--port", str(address.port)]
    # One user's UI: one worker starts in a fraction of the time four take on a small machine.
    command += ["--workers", "1"]
    print(f"MLflow UI starting on {ui} (the link follows once it answers) ...", flush=True)
    # The server's own lines go to stderr: stdout says only where to look.
    server = popen_tied(command, stop_signal=signal.SIGTERM, grace_s=5.0, stdout=sys.stderr)
    try:
        if not _wait_until_it_answers(server, ui):
            return server.wait() or 1
        print(f"Runs: {experiment_page(ui, store_uri)}", flush=True)
        return server.wait()
    except KeyboardInterrupt:  # Ctrl-C: the UI stops with us (below), as `mlflow ui` would
        return 130
    finally:
        if server.poll() is None:
            server.stop(signal.SIGTERM, timeout=10)


def _wait_until_it_answers(server: subprocess.Popen, ui: str) -> bool:
    """True once GET /health answers 200; False if the server exited first (its own error
    lines, e.g. a port in use, are on stderr already)."""
    while server.poll() is None:
        if answers(ui):
            return True
        time.sleep(POLL_S)
    return False


def answers(ui: str) -> bool:
    try:
        with urllib.request.urlopen(f"{ui.rstrip('/')}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False
