"""Every command in README.md and docs/*.md runs as written, as far as it can be checked cheaply.

Commands come from the fenced blocks marked ```bash (or sh, shell); every fenced block names its
language, so that no command hides in an unmarked one (output goes in ```text blocks). Each
command is checked against the real thing it names, without running anything heavy: the
pipeline's modules against their own `--help`, `make` targets with `make -n`, `dvc` commands with
DVC's own argument parser and `-S` values with the pipeline's own params validation, `pip`
requirements against pyproject.toml. Programs that cannot be checked cheaply (a server must run,
a network must answer) are listed by name in UNCHECKED, so a new kind of command is a decision.
"""

from __future__ import annotations

import ast
import contextlib
import io
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_LANGUAGES = {"bash", "sh", "shell"}
# Programs whose commands are not checked, and why: each needs something the suite cannot
# cheaply give it (a server, a network, a shell's state) or is the shell's own.
UNCHECKED = {
    "curl": "asks a running model server",
    "ssh": "opens a tunnel to another machine",
    "psql": "needs the team's PostgreSQL running",
    "git": "changes the repository",
    "sudo": "installs system packages",
    "export": "sets the shell's environment",
    "echo": "prints",
    "kill": "signals a running process",
    "sha256sum": "reads a user's file",
}
SEPARATORS = {"&&", "||", ";", "|", "&"}
REDIRECTIONS = {">", ">>", "<"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str


@dataclass(frozen=True)
class Command:
    page: Path
    line: int
    text: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: {self.text}"


def fenced_blocks(page: Path, text: str | None = None) -> list[Block]:
    text = page.read_text() if text is None else text
    blocks, opening, body = [], None, []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = re.match(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)\s*$", line)
        if opening is None and fence:
            opening, body = (number, fence.group(1), fence.group(2)), []
        elif opening is not None and line.strip() == opening[1]:
            blocks.append(Block(page, opening[0], opening[2], "\n".join(body)))
            opening = None
        elif opening is not None:
            body.append(line)
    assert opening is None, f"{page}:{opening[0]}: a fence that is never closed"
    return blocks


def without_comments(script: str) -> str:
    """The shell's comments removed: a `#` starting a word outside quotes, to the line's end.
    (shlex would also cut at a `#` inside a word, as in a URL's `/#/experiments`.)"""
    out, quote, i = [], None, 0
    while i < len(script):
        char = script[i]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or script[i - 1].isspace()):
            while i < len(script) and script[i] != "\n":
                i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


def tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def commands_in(block: Block) -> list[Command]:
    """One Command per simple command: lines joined where a backslash or an open quote
    continues them, comments dropped, split at && ; | and without redirections or leading
    VAR=value assignments."""
    found, pending, start = [], "", 0
    for offset, line in enumerate(block.text.splitlines(), start=1):
        if not pending:
            start = block.line + offset
        pending += line[:-1] + " " if line.endswith("\\") else line + "\n"
        if line.endswith("\\"):
            continue
        script = without_comments(pending)
        try:
            words = tokens(script)
        except ValueError:  # a quote that closes on a later line (python -c "...")
            continue
        pending = ""
        for is_separator, group in itertools.groupby(words, key=lambda w: w in SEPARATORS):
            if is_separator:
                continue
            argv = _without_redirections(list(group))
            while argv and re.fullmatch(r"[A-Za-z_]\w*=.*", argv[0]):
                argv.pop(0)  # VAR=value before the command: the command's environment
            if argv:
                text = " ".join(script.split())
                found.append(Command(block.page, start, text, tuple(argv)))
    assert not pending, f"{block.page}:{block.line}: a command never ends: {pending!r}"
    return found


def _without_redirections(words: list[str]) -> list[str]:
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in REDIRECTIONS:
            skip = True
        else:
            kept.append(word)
    return kept


BLOCKS = [block for page in PAGES for block in fenced_blocks(page)]
COMMANDS = [c for b in BLOCKS if b.language in COMMAND_LANGUAGES for c in commands_in(b)]


def program(argv: tuple[str, ...]) -> str:
    name = Path(argv[0]).name
    return re.sub(r"^(python|pip)3?(\.\d+)?$", r"\1", name)


def executable(name: str) -> str:
    """The project's own copy of a program (the environment the tests run in), else PATH's."""
    if name == "python":
        return sys.executable
    own = Path(sys.executable).parent / name
    return str(own) if own.exists() else (shutil.which(name) or name)


# --- what a program's --help says ----------------------------------------------------------------


@cache
def help_of(key: tuple[str, ...]) -> subprocess.CompletedProcess:
    """`<key> --help`, once per program or module and process (under xdist, the parametrised
    test below gives each program to one worker). Its cost is the program's imports: about 4 s
    of CPU for MLflow's CLI, 2 s each for torchrun, pipeline.predict and pipeline.tune."""
    env = {**os.environ, "COLUMNS": "200", "PIPELINE_TRACKING": "0"}
    argv = [executable(key[0]), *key[1:], "--help"]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def options(help_text: str) -> set[str]:
    """The flags a help text defines: those at the start of its option lines (argparse, click)."""
    found = set()
    for line in help_text.splitlines():
        if line.strip().startswith("-"):
            invocation = re.split(r"\s{2,}", line.strip())[0]
            found |= set(re.findall(r"(?<![\w<-])(--?[A-Za-z0-9][\w-]*)", invocation))
    return found


def required_options(help_text: str) -> set[str]:
    """argparse's usage line lists the options it requires outside brackets."""
    match = re.search(r"^usage:(.*?)(?:\n\s*\n|\Z)", help_text, re.S | re.M)
    if not match:
        return set()
    # argparse adds -h first: what precedes it is the program's name (`python -m ... replay`).
    usage = match.group(1).partition("[-h")[2] or match.group(1)
    while re.search(r"\[[^\[\]]*\]", usage):
        usage = re.sub(r"\[[^\[\]]*\]", "", usage)
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", usage))


def subcommands(help_text: str) -> set[str]:
    match = re.search(r"^usage:[^{\n]*\{([\w,-]+)\}", help_text, re.M)
    return set(match.group(1).split(",")) if match else set()


def flags(words) -> list[str]:
    return [w.split("=")[0] for w in words if re.match(r"--?[A-Za-z]", w)]


def positionals_before_flags(words) -> list[str]:
    return list(itertools.takewhile(lambda w: not w.startswith("-"), words))


@dataclass(frozen=True)
class FlagUse:
    """Arguments a command gives one program or module, to be checked against its --help."""

    key: tuple[str, ...]  # what runs with --help: ("python", "-m", "pipeline.predict")
    args: tuple[str, ...]
    command: Command


def flag_uses(command: Command) -> list[FlagUse]:
    argv, name = command.argv, program(command.argv)
    if name in ("python", "torchrun") and "-m" in argv:
        at = argv.index("-m")
        module, rest = argv[at + 1], argv[at + 2 :]
        uses = [FlagUse(("torchrun",), argv[1:at], command)] if name == "torchrun" else []
        if module.startswith("pipeline"):
            uses.append(FlagUse(("python", "-m", module), rest, command))
        return uses
    if name == "python" and len(argv) > 1 and argv[1].endswith(".py"):
        return [FlagUse(("python", argv[1]), argv[2:], command)]
    if name == "mlflow":
        path = positionals_before_flags(argv[1:])
        return [FlagUse(("mlflow", *path), argv[1 + len(path) :], command)]
    if name == "make":
        # SERVER_ARGS are scripts/team_server.py's own flags (the Makefile passes them on).
        given = [w.split("=", 1)[1] for w in argv[1:] if w.startswith("SERVER_ARGS=")]
        return [
            FlagUse(("python", "scripts/team_server.py"), tuple(shlex.split(g)), command)
            for g in given
        ]
    return []


FLAG_USES = [use for command in COMMANDS for use in flag_uses(command)]
HELP_KEYS = sorted({use.key for use in FLAG_USES})


def unknown_flags(help_text: str, args) -> list[str]:
    known = options(help_text)
    return [flag for flag in flags(args) if flag not in known]


# --- the extractor itself ------------------------------------------------------------------------


def test_the_extractor_splits_commands_as_the_shell_does(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Text with `make run` inline is not a command.\n"
        "```bash\n"
        "make ui UI_PORT=5001   # a comment\n"
        "FOO=1 dvc exp run -S train.lr=0.1 \\\n"
        "    -S train.epochs=2 && dvc queue start -j 2 > log.txt\n"
        'python -c "\n'
        "print('#not a comment')\"\n"
        "curl http://127.0.0.1:5000/#/experiments\n"
        "```\n"
        "```text\n"
        "make output-only\n"
        "```\n"
    )
    blocks = fenced_blocks(page)
    assert [(b.line, b.language) for b in blocks] == [(2, "bash"), (10, "text")]
    argvs = [c.argv for c in commands_in(blocks[0])]
    assert argvs == [
        ("make", "ui", "UI_PORT=5001"),
        ("dvc", "exp", "run", "-S", "train.lr=0.1", "-S", "train.epochs=2"),
        ("dvc", "queue", "start", "-j", "2"),
        ("python", "-c", "\nprint('#not a comment')"),
        ("curl", "http://127.0.0.1:5000/#/experiments"),
    ]
    assert [c.line for c in commands_in(blocks[0])] == [3, 4, 4, 6, 8]


def test_the_pages_hold_the_documented_commands():
    # If the extractor silently found nothing, every check below would pass vacuously.
    assert len(PAGES) >= 10
    assert len(COMMANDS) >= 40
    readme = {c.argv for c in COMMANDS if c.page.name == "README.md"}
    assert {("make", "run"), ("make", "test"), ("make", "ui", "UI_PORT=5001")} <= readme
    argvs = [c.argv for c in COMMANDS]
    assert any(a[:3] == ("python", "-m", "pipeline.predict") for a in argvs)
    assert any(a[:3] == ("dvc", "exp", "run") and "-S" in a for a in argvs)
    assert {("python", "-m", "pipeline.compare"), ("python", "-m", "pipeline.tune")} <= {
        k[:3] for k in HELP_KEYS
    }


def test_every_fenced_block_names_its_language():
    unnamed = [f"{b.page.relative_to(ROOT)}:{b.line}" for b in BLOCKS if not b.language]
    assert not unnamed, "mark each block ```bash (commands) or ```text (output): " + ", ".join(
        unnamed
    )


def test_commands_name_no_placeholder():
    # `<name>` is a redirection to the shell: a command holding one does not run as written.
    placeholders = [str(c) for c in COMMANDS if re.search(r"<[A-Za-z][\w .-]*>", c.text)]
    assert not placeholders


# --- each command --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_command_runs_as_written(command):
    name = program(command.argv)
    check = CHECKS.get(name)
    if check is None:
        assert name in UNCHECKED, f"{command}: no check for `{name}`; add one, or to UNCHECKED"
        return
    check(command)


def check_python(command: Command) -> None:
    import importlib.util

    args = command.argv[1:]
    if args[:1] == ("-c",):
        compile(args[1], f"<{command}>", "exec")  # a SyntaxError fails the test
    elif args[:1] == ("-m",):
        assert importlib.util.find_spec(args[1]) is not None, f"{command}: no module {args[1]}"
    else:
        assert (ROOT / args[0]).is_file(), f"{command}: no script {args[0]}"


def check_torchrun(command: Command) -> None:
    assert Path(executable("torchrun")).exists(), f"{command}: torchrun is not installed"
    module = command.argv[command.argv.index("-m") :]  # what follows torchrun's own flags
    check_python(Command(command.page, command.line, command.text, ("python", *module)))


def check_mlflow(command: Command) -> None:
    assert Path(executable("mlflow")).exists(), f"{command}: mlflow is not installed"


def check_make(command: Command) -> None:
    # make -n prints the recipes without running them (this Makefile has no $(MAKE) or `+`
    # lines); the parent make's variables (under `make test`) must not leak into it.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), *command.argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{command}: make -n says {done.stderr.strip()}"
    makefile = (ROOT / "Makefile").read_text()
    for word in command.argv[1:]:
        # make takes any VAR=value silently; a misspelled variable would change nothing.
        if "=" in word:
            variable = word.split("=")[0]
            assert re.search(rf"^{variable}\s*[?:+]?=", makefile, re.M), (
                f"{command}: the Makefile has no variable {variable}"
            )


def check_dvc(command: Command) -> None:
    from dvc.cli import DvcParserError, parse_args

    words = list(command.argv[1:])
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            args = parse_args(words)
    except (SystemExit, DvcParserError):
        pytest.fail(f"{command}: DVC's parser refuses it: {quiet.getvalue().strip()[-300:]}")
    dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    if words[:1] == ["repro"] or words[:2] == ["exp", "run"]:
        stages = set(dvc_yaml["stages"])
        assert set(args.targets or []) <= stages, f"{command}: not a stage of dvc.yaml"
    if getattr(args, "set_param", None):
        check_set_params(command, args.set_param)
    declared = set(declared_outputs(dvc_yaml))
    if words[:2] == ["plots", "diff"] and args.targets:
        assert set(args.targets) <= declared, f"{command}: --targets not in dvc.yaml"
    if getattr(args, "sort_by", None):
        assert args.sort_by.split(":")[0] in declared, f"{command}: --sort-by not in dvc.yaml"


def declared_outputs(dvc_yaml: dict):
    for stage in dvc_yaml["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                yield next(iter(entry)) if isinstance(entry, dict) else entry


def params_keys() -> set[str]:
    def walk(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    return set(walk(yaml.safe_load((ROOT / "params.yaml").read_text())))


def check_set_params(command: Command, overrides: list[str]) -> None:
    """Each -S key is in params.yaml, and every value (each of a sweep's) passes the pipeline's
    own validation together with the command's other -S values, as the stages would see them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from pipeline.config.params import load_params, with_values
    from pipeline.process.errors import InputError

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = {}
    for override in parsed:
        key = override.key_or_group
        assert key in params_keys(), f"{command}: -S {key}: no such key in params.yaml"
        values = override.sweep_iterator() if override.is_sweep_override() else [override.value()]
        choices[key] = list(values)
    base = load_params(ROOT / "params.yaml")
    for combination in itertools.product(*choices.values()):
        try:
            with_values(base, dict(zip(choices, combination, strict=True)), source=str(command))
        except InputError as exc:
            pytest.fail(str(exc))


def check_pip(command: Command) -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = pyproject["optional-dependencies"]
    ours = {canonicalize_name(r.name): r for r in map(Requirement, pyproject["dependencies"])}
    args = command.argv[1:]
    assert args[0] == "install", f"{command}: only `pip install` is documented"
    values_of = {"--index-url", "-i", "--extra-index-url", "-r", "-c"}
    for before, word in itertools.pairwise(args):
        if word.startswith("-") or before in values_of:
            continue
        if word.startswith(".["):  # the project with extras
            missing = set(word[2:-1].split(",")) - set(extras)
            assert not missing, f"{command}: pyproject.toml has no extra {missing}"
            continue
        wanted = Requirement(word)
        own = ours.get(canonicalize_name(wanted.name))
        if own is not None and wanted.specifier:
            # The docs' bounds for a dependency of ours are pyproject.toml's, or pip would
            # install a version the project then refuses (or replaces).
            assert wanted.specifier == own.specifier, f"{command}: pyproject.toml says {own}"


CHECKS = {
    "python": check_python,
    "torchrun": check_torchrun,
    "mlflow": check_mlflow,
    "make": check_make,
    "dvc": check_dvc,
    "pip": check_pip,
}


# --- flags against each program's --help, once per program ---------------------------------------


@pytest.mark.parametrize("key", HELP_KEYS, ids=" ".join)
def test_flags_are_the_programs_own(key):
    done = help_of(key)
    assert done.returncode == 0, f"`{' '.join(key)} --help` fails: {done.stderr.strip()[-500:]}"
    assert "--help" in options(done.stdout)  # the option lines were found at all
    problems = []
    for use in (u for u in FLAG_USES if u.key == key):
        help_text, args, shown = done.stdout, list(use.args), key
        positional = positionals_before_flags(args)
        if positional and positional[0] in subcommands(help_text):
            shown = (*key, positional[0])
            sub = help_of(shown)
            assert sub.returncode == 0, f"{use.command}: {sub.stderr.strip()[-500:]}"
            help_text, args = sub.stdout, args[1:]
        if unknown := unknown_flags(help_text, args):
            problems.append(f"{use.command}: {unknown} not in `{' '.join(shown)} --help`")
        if missing := required_options(help_text) - set(flags(args)):
            problems.append(f"{use.command}: misses the required {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_the_flag_checks_can_fail():
    # On a real help text: a flag it does not define, and a required option left out, are seen.
    done = help_of(("python", "-m", "pipeline.predict"))
    assert unknown_flags(done.stdout, ["--modle", "x", "--input", "y"]) == ["--modle"]
    assert required_options(done.stdout) == {"--input"}
    assert subcommands(help_of(("python", "-m", "pipeline.tracking")).stdout) >= {"replay"}


# --- other fenced blocks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.language == "yaml"], ids=lambda b: f"{b.page.name}:{b.line}"
)
def test_yaml_blocks_name_existing_keys(block):
    tree = yaml.safe_load(block.text)
    tune = yaml.safe_load((ROOT / "tune.yaml").read_text())
    if set(tree) <= {"study", "space"}:  # a search space: tune.yaml's settings, params' keys
        assert set(tree.get("study", {})) <= set(tune["study"])
        assert set(tree.get("space", {})) <= params_keys()
    else:
        leaves = {
            f"{section}.{key}" if isinstance(values, dict) else section
            for section, values in tree.items()
            for key in (values if isinstance(values, dict) else [None])
        }
        assert leaves <= params_keys(), f"not in params.yaml: {sorted(leaves - params_keys())}"


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.language == "python"], ids=lambda b: f"{b.page.name}:{b.line}"
)
def test_python_blocks_compile(block):
    try:
        compile(block.text, f"{block.page}:{block.line}", "exec")
    except SyntaxError as exc:
        pytest.fail(f"{block.page.name}:{block.line}: not valid Python ({exc.msg})")


# --- what the prose names ------------------------------------------------------------------------


def prose(page: Path) -> str:
    return page.read_text()


def test_paths_and_modules_named_in_the_docs_exist():
    missing = []
    for page in PAGES:
        text = prose(page)
        for path in re.findall(
            r"(?<![\w./-])((?:pipeline|tests|benchmarks|scripts)/[\w./-]*\w)", text
        ):
            if not (ROOT / path).exists():
                missing.append(f"{page.name}: {path}")
        for dotted in re.findall(r"(?<![\w./-])(pipeline(?:\.\w+)+)", text):
            if not module_attribute_exists(dotted):
                missing.append(f"{page.name}: {dotted}")
    assert not missing, "\n".join(missing)


def module_attribute_exists(dotted: str) -> bool:
    """`pipeline.a.b` is a module or package, or a name defined at the top of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        source = (
            base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        )
        if not source.is_file():
            continue
        rest = parts[cut:]
        return not rest or rest[0] in top_level_names(source)
    return False


def top_level_names(source: Path) -> set[str]:
    names = set()
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_the_path_checks_can_fail():
    assert module_attribute_exists("pipeline.process.lifeline.popen_tied")
    assert not module_attribute_exists("pipeline.process.lifeline.no_such_name")
    assert not module_attribute_exists("pipeline.no_such_module")


def headings(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings (outside fenced blocks)."""
    anchors, fenced = set(), False
    for line in page.read_text().splitlines():
        if re.match(r"^ {0,3}(`{3,}|~{3,})", line):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)):
            anchors.add(re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-"))
    return anchors


def test_links_between_pages_resolve():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and anchor not in headings(resolved):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
    assert "paramsyaml" in headings(ROOT / "README.md")  # the anchor rule is GitHub's


def test_the_architecture_page_lists_every_module():
    tree = next(b for b in fenced_blocks(ROOT / "docs/architecture.md") if "pipeline/" in b.text)
    listed, stack = set(), []
    for line in tree.text.splitlines():
        if not line.strip():
            continue
        depth, name = (len(line) - len(line.lstrip())) // 2, line.split()[0]
        stack = [*stack[:depth], name.rstrip("/")]
        if name.endswith(".py"):
            listed.add("/".join(stack))
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "pipeline").rglob("*.py")}
    assert listed <= modules, f"listed but absent: {sorted(listed - modules)}"
    unlisted = {m for m in modules - listed if not m.endswith("__init__.py")}
    assert not unlisted, f"modules missing from docs/architecture.md: {sorted(unlisted)}"


def test_the_development_page_lists_every_test_file():
    text = (ROOT / "docs/development.md").read_text()
    files = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("test_*.py"))
    assert [f for f in files if f"`{f}`" not in text] == []
