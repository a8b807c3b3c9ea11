"""Every shell command in the README's fenced blocks is run here or by a named test, or says why it
cannot run offline. A command added to the README without a line below fails this test."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

from infra.config import ROOT
from infra.scaling.traces import Trace, write_csv
from tests.support.script_cli import parse_help, script_command

README = (ROOT / "README.md").read_text()

HERE = "run by this module"
# Command prefix -> who runs it: HERE, a file that runs it (and a string proving it does), or why not.
RUNNERS: dict[str, tuple[str, str]] = {
    # make local = scripts/local, which run_local (tests/support/local_runs.py) runs
    "make local": ("tests/integration/test_make_local.py", "run_local("),
    "make test": (".github/workflows/pull-request.yml", "run: make test"),
    "pip install 'build/dist/celery_cluster_client": ("tests/integration/test_producer_client.py", '"pip", "install"'),
    "make client": ("tests/integration/test_producer_client.py", '"make", "--no-print-directory", "client"'),
    "scripts/simulate": (HERE, ""),
}
NOT_OFFLINE: dict[str, str] = {
    "scripts/bootstrap": "creates AWS resources (tests/unit/test_bootstrap.py runs its steps against moto)",
    "pulumi ": "needs the Pulumi CLI and a state backend",
    "for stack in": "a loop around `pulumi stack init`",
    "done": "the end of that loop",
    "scripts/deploy": "needs the Pulumi CLI (tests/integration/test_deploy.py runs it with a stand-in pulumi)",
}


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"^ *```(?:bash|sh|shell)\n(.*?)^ *```", README, re.S | re.M):
        for line in block.splitlines():
            command = line.split(" #", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


def _runner(command: str) -> tuple[str, str] | None:
    matches = [prefix for prefix in (*RUNNERS, *NOT_OFFLINE) if command.startswith(prefix)]
    assert len(matches) <= 1, f"{command!r} matches {matches}"
    if not matches:
        return None
    return RUNNERS.get(matches[0], ("not offline", NOT_OFFLINE.get(matches[0], "")))


def test_every_readme_command_is_run_or_says_why_not() -> None:
    commands = readme_commands()
    assert "make local" in commands
    unclassified = [command for command in commands if _runner(command) is None]
    assert unclassified == [], "add each to RUNNERS (and run it) or NOT_OFFLINE (with the reason)"
    for command in commands:
        runner, proof = _runner(command) or ("", "")
        if runner not in (HERE, "not offline"):
            assert proof in (ROOT / runner).read_text(), f"{runner} does not run {command!r}"


def _here() -> list[str]:
    return [command for command in readme_commands() if (_runner(command) or ("",))[0] == HERE]


def _is_commit(ref: str) -> bool:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], check=False
    )
    return found.returncode == 0


def test_the_readme_compares_with_the_branch_pull_requests_target() -> None:
    """The README's --compare-ref names the branch the pull-request workflow targets."""
    refs = [c.split("--compare-ref ", 1)[1].split()[0] for c in readme_commands() if "--compare-ref " in c]
    workflow = (ROOT / ".github" / "workflows" / "pull-request.yml").read_text()
    assert refs
    assert all(f"branches: [{ref}]" in workflow for ref in refs), refs


@pytest.mark.parametrize("command", _here())
def test_readme_command_runs_as_written(command: str, tmp_path: Path) -> None:
    # In a scratch directory (relative paths are the caller's), with the script's own absolute path.
    if "my-traffic.csv" in command:
        rng = np.random.default_rng(5)
        arrivals = np.sort(rng.uniform(0, 1800, 3000))
        write_csv(Trace("my-traffic", arrivals, rng.exponential(1.0, arrivals.size), 1800), tmp_path / "my-traffic.csv")
    argv = shlex.split(command)
    ref = argv[argv.index("--compare-ref") + 1] if "--compare-ref" in argv else None
    if ref is not None and not _is_commit(ref):
        # A pull request's checkout (a merge commit at depth 1) has no branch main: compare with HEAD, the
        # same path through the code (`git show REF:Pulumi.<stack>.yaml`), rather than skip it.
        ref = argv[argv.index("--compare-ref") + 1] = "HEAD"
    done = subprocess.run(
        [str(ROOT / argv[0]), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    # scripts/simulate: 0 the SLO is met, 1 it is missed; 2 would be a bad input (a README typo).
    assert done.returncode in (0, 1), done.stdout + done.stderr
    if "--json" in argv:
        assert json.loads(done.stdout)["stack"] == argv[argv.index("--stack") + 1]
        return
    assert "│ ours" in done.stdout
    if ref is not None:
        assert f"│ ours@{ref}" in done.stdout, done.stdout  # the row of the committed policy, beside ours
    plot = re.search(r"^plot: (.+\.png)$", done.stdout, re.M)
    assert plot, done.stdout
    assert Path(plot.group(1)).stat().st_size > 10_000


# Every command written inline (`make ...`, `scripts/...`, `.venv/bin/...`) in the README and the docs, and in
# their fenced blocks: it must parse as written (make's dry run, the script's or module's --help) and, for a
# make variable, reach the command (make ignored `--only`; `make local STACK=prod` ran dev).
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
INLINE = re.compile(r"`((?:make|scripts/[\w*-]+|\.venv/bin/\w+)(?:[ \n][^`]*)?)`")
# Inline text that names a command or an option, not a command to run, and why.
FRAGMENTS = {
    "scripts/*": "the scripts as a group",
    "scripts/smoke --stack": "names the option (the deployed stack's smoke function)",
    "scripts/simulate --boot-seconds": "names the option",
    ".venv/bin/python": "the interpreter, named",
}
COMMAND = r"(make|scripts/[\w-]+|\.venv/bin/\w+)( |$)"
TITLE = r"make [\w-]+: "  # a table's title in a sample ("make local: summary"), not a command
PLACEHOLDERS = {"<stack>": "dev", "URL": "redis://127.0.0.1:6379/0", "DIR": ".", "$(mktemp -d)": "/tmp"}


def _fenced_lines(text: str) -> list[str]:
    """The lines of every fenced block that is not code in a language (python, yaml...)."""
    lines, fence = [], None
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fence = None if fence is not None else line.strip()[3:]
        elif fence in ("", "bash", "sh", "shell"):
            lines.append(line.split(" #", 1)[0].strip())
    return lines


def doc_commands() -> list[str]:
    found: set[str] = set()
    for path in DOCS:
        text = re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)
        found.update(" ".join(m.split()) for m in INLINE.findall(text))
        found.update(line for line in _fenced_lines(text) if re.match(COMMAND, line) and not re.match(TITLE, line))
    return sorted(found - FRAGMENTS.keys())


def _as_written(command: str) -> list[str]:
    for placeholder, value in PLACEHOLDERS.items():  # a whole word only: DIR, not MYPY_CACHE_DIR
        command = re.sub(rf"(?<![\w]){re.escape(placeholder)}(?![\w])", value, command)
    return shlex.split(command.split(" | ", 1)[0])


@pytest.mark.parametrize("command", doc_commands())
def test_a_documented_command_parses_as_written(command: str) -> None:
    argv = _as_written(command)
    if argv[0] == "make":
        done = subprocess.run(
            ["make", "--no-print-directory", "-n", *argv[1:]],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}: {done.stderr}"
        for name, value in (a.split("=", 1) for a in argv[1:] if "=" in a):
            if "$" not in value and name not in ("PYTEST_WORKERS", "MYPY_CACHE_DIR"):
                assert value in done.stdout, f"{command}: {name}={value} does not reach the command:\n{done.stdout}"
        return
    if argv[0] == ".venv/bin/pytest":
        done = subprocess.run(
            [str(ROOT / argv[0]), "--collect-only", "-q", *argv[1:]],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}"
        return
    if script_command(ROOT / argv[0]) is not None:
        code, output = parse_help(ROOT / argv[0], argv[1:])
        assert code == 0, f"{command}: {output[-2000:]}"
        return
    done = subprocess.run(
        [str(ROOT / argv[0]), *argv[1:], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"


def test_the_docs_say_which_python() -> None:
    # The system python has no Celery ("No module named 'celery'"): a command says .venv/bin/python.
    bare = [
        (path.name, m)
        for path in [ROOT / "README.md"]
        for m in re.findall(r"(?<![/\w])python -m [\w.]+", re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S))
    ]
    assert bare == []
