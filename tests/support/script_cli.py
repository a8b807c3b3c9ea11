"""The Typer app behind a `scripts/<name>` file, to parse a documented command line in this process.

Each script is `exec scripts/_run <module>`: `python -m infra.cli.<module>`, whose `__main__` runs its
Typer `app` or `run_script(main, ...)` (infra.cli.entry). Parsing here costs an import once per process
instead of a Python start (and its coverage) per command; tests/integration/test_commands_explain_themselves.py
still starts every script itself with --help.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import typer
from typer.testing import CliRunner

from infra.cli.entry import script_app


def script_command(script: Path) -> typer.Typer | None:
    """The Typer app `script` runs, or None when it is not a `scripts/_run` shim."""
    if script.parent.name != "scripts" or not script.is_file():
        return None
    found = re.search(r'/_run" (\w+) "\$@"', script.read_text())
    if found is None:
        return None
    module = importlib.import_module(f"infra.cli.{found.group(1)}")
    app = getattr(module, "app", None)
    if not isinstance(app, typer.Typer):
        app = script_app(script.name, module.__doc__)
        app.command(help=module.__doc__)(module.main)
    return app


def parse_help(script: Path, args: list[str]) -> tuple[int, str]:
    """Exit code and output of `script args --help`, parsed in this process."""
    command = script_command(script)
    assert command is not None, f"{script} is not a scripts/_run shim"
    done = CliRunner().invoke(command, [*args, "--help"], prog_name=f"scripts/{script.name}")
    return done.exit_code, done.output
