"""Build, preview, confirm, `pulumi up`, roll every pool (canary), smoke test: what the pipeline runs.

Needs the Pulumi CLI logged in to the state backend and AWS credentials for the stack's account.
`pulumi up` makes the new launch template version; the roll step then starts an instance refresh per
pool with the stack's checkpoints, alarms and automatic rollback, shows its progress, and waits for
the verdict. The smoke test runs only when every pool succeeded.

Examples:

\b
  scripts/deploy dev
  scripts/deploy prod --yes
  scripts/deploy prod --rollback-help
  scripts/deploy prod --after-up      # the pipeline, after its `pulumi up`

Exit codes:

\b
  0  deployed, every pool's refresh succeeded and the smoke test passed
  1  a step failed (preview, up or the smoke test)
  2  the deploy could not start (no Pulumi CLI, no stack)
  3  a pool's refresh did not succeed: rolled back (an alarm fired),
     cancelled or failed

--rollback-help prints the advice and exits 0 (with the stack's ASG names when its outputs can be read).
"""

from __future__ import annotations

import typer

from infra.cli.deploy_steps import DeployError, rollback_help, run
from infra.cli.deployed_outputs import StackOutputsError, stack_outputs
from infra.cli.entry import script_app

app = script_app("deploy", __doc__)


@app.command(help=__doc__)
def main(
    stack: str = typer.Argument(..., metavar="STACK", help="the stack to deploy (dev, staging, prod)"),
    yes: bool = typer.Option(False, "--yes", help="do not ask before `pulumi up`"),
    smoke_count: int = typer.Option(20, min=1, help="canaries per pool in the smoke test"),
    rollback_help_only: bool = typer.Option(
        False, "--rollback-help", help="only print how to roll this stack back (exit 0)"
    ),
    after_up: bool = typer.Option(
        False, "--after-up", help="skip build, preview and up (already run): roll the pools, then smoke test"
    ),
) -> None:
    if rollback_help_only:
        try:
            outputs = stack_outputs(stack)
        except StackOutputsError:
            outputs = None
        typer.echo(rollback_help(stack, outputs))
        raise typer.Exit(0)
    try:
        code = run(
            stack,
            confirm=lambda q: yes or typer.confirm(q),
            echo=typer.echo,
            smoke_count=smoke_count,
            after_up=after_up,
        )
    except DeployError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


if __name__ == "__main__":
    app(prog_name="scripts/deploy")
