"""`python -m <module> <args>` as a forked process: the same process, without the start-up.

The battery of bad inputs runs a stage as a user does about 180 times; each fresh interpreter
spends 1.5-3 s importing Python, numpy and torch before the stage refuses its input in a few
milliseconds. A zygote process imports those libraries once (nothing of the pipeline: each
command imports its own modules, as a fresh process would) and forks one child per command. The
child is a real process: its own working directory, environment and argv, stdout and stderr
into files, the module run as `__main__` by runpy as `python -m` does, and the exit status the
interpreter would give (SystemExit's code; 1 and a traceback for an uncaught exception).

The zygote runs under the project's lifeline, so it ends with the test process however that
ends; it also ends when its request pipe closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.process.lifeline import popen_tied

# Third-party libraries only: a pipeline module imported here would already be in sys.modules
# when runpy runs it as __main__ (runpy warns), and would hide an import the stage makes late.
PRELOADED = ("numpy", "yaml", "torch", "pandas", "pyarrow.csv", "sqlalchemy", "optuna")

ZYGOTE = r"""
import json, os, runpy, sys, traceback
for name in sys.argv[1:]:
    __import__(name)

def run(request):
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # not the zygote's request pipe
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.argv = [request["module"], *request["args"]]
    sys.path[0] = request["cwd"]  # as `python -m` puts the working directory first
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = stop.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)

for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        run(request)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


@dataclass
class Completed:
    """What subprocess.run would return for the command."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


class CommandForker:
    """Runs `python -m module args` commands, one at a time, each in a forked child."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self.zygote = popen_tied(
            [sys.executable, "-c", ZYGOTE, *PRELOADED],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, module: str, args: list[str], cwd: Path, env: dict[str, str]) -> Completed:
        stdout, stderr = self.scratch / "stdout", self.scratch / "stderr"
        request = dict(
            module=module, args=args, cwd=str(cwd), env=env, stdout=str(stdout), stderr=str(stderr)
        )
        self.zygote.stdin.write(json.dumps(request) + "\n")
        self.zygote.stdin.flush()
        answer = self.zygote.stdout.readline()
        if not answer:
            raise RuntimeError(f"the zygote ended (exit code {self.zygote.wait()})")
        command = [sys.executable, "-m", module, *args]
        return Completed(command, int(answer), stdout.read_text(), stderr.read_text())

    def close(self) -> None:
        self.zygote.stdin.close()
        self.zygote.wait(timeout=30)
