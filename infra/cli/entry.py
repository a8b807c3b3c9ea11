"""How every `scripts/*` command starts: one Typer app per script, help that names the script.

The help is click's plain formatter (`rich_markup_mode=None`), not rich's boxed panels: boxed help
cuts long defaults and option names with "…" when the output is a pipe or an 80-column terminal,
and brackets in help text are not taken for markup. Each CLI's module docstring is its help: a
description, then `Examples:` and `Exit codes:` blocks (click keeps a block as written after a
`\\b` line).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer


def script_app(script: str, doc: str | None) -> typer.Typer:
    """A Typer app for `scripts/<script>`, with `doc` as its help."""
    return typer.Typer(
        name=f"scripts/{script}",
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        help=doc,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )


def run_script(main: Callable[..., Any], script: str, doc: str | None) -> None:
    """Run `main` as the single command of `scripts/<script>`."""
    app = script_app(script, doc)
    app.command(help=doc)(main)
    app(prog_name=f"scripts/{script}")
