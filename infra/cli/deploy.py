"""`scripts/deploy <stack>`: build, preview, confirm, up, smoke (what the pipeline runs)."""

from __future__ import annotations

import typer

from infra.deploy import DeployError, rollback_help, run
from infra.stack_outputs import StackOutputsError, stack_outputs

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    stack: str = typer.Argument(..., help="the stack to deploy (dev, staging, prod)"),
    yes: bool = typer.Option(False, "--yes", help="do not ask before `pulumi up`"),
    smoke_count: int = typer.Option(20, min=1, help="canaries per pool in the smoke test"),
    rollback_help_only: bool = typer.Option(
        False, "--rollback-help", help="only print how to roll this stack back, and fail"
    ),
) -> None:
    if rollback_help_only:
        try:
            outputs = stack_outputs(stack)
        except StackOutputsError:
            outputs = None
        typer.echo(rollback_help(stack, outputs))
        raise typer.Exit(1)
    try:
        code = run(stack, confirm=lambda q: yes or typer.confirm(q), echo=typer.echo, smoke_count=smoke_count)
    except DeployError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
