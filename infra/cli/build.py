"""`make build`: write the worker wheel, the wheelhouses, the publisher bundle and a manifest.

Reproducible: two builds of one commit are byte-identical. Your applications need only the producer
client's wheel: `make client` (`scripts/build --client-only`) builds it alone, in seconds, without
installing Pulumi.

Examples:

\b
  scripts/build
  scripts/build --out /tmp/dist
  scripts/build --client-only
  make client

Exit codes:

\b
  0  every artefact was written
  1  a step failed; the message names it and why
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from infra.artefacts.client import ClientBuildError, build_client_wheel
from infra.artefacts.closure import ClosureError
from infra.artefacts.pipeline import REPO_ROOT, BuildError, BuildPlan, build, source_date_epoch
from infra.cli.entry import run_script
from infra.cli.errors import report as report_error
from infra.cli.fit import output_console, print_fitted


def main(
    out: Path = typer.Option(REPO_ROOT / "build" / "dist", help="directory the artefacts are written to"),
    epoch: int | None = typer.Option(
        None, help="SOURCE_DATE_EPOCH for every timestamp (default: $SOURCE_DATE_EPOCH, else the last commit's time)"
    ),
    client_only: bool = typer.Option(
        False, "--client-only", help="only the producer client's wheel (what `make client` runs), into OUT"
    ),
) -> None:
    console = Console(stderr=True)
    started = time.monotonic()

    def report(step: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] [bold]build[/] {step}")

    if client_only:
        _client_only(out.resolve(), epoch)
        return
    try:
        result = build(BuildPlan(out=out.resolve(), epoch=epoch), report)
    except (BuildError, ClosureError) as exc:
        report_error("build failed", exc)
        raise typer.Exit(1) from None
    table = Table("artefact", "bytes", "sha256", title=f"{result.out} (manifest.json)")
    for name, info in result.manifest["artefacts"].items():
        table.add_row(name, f"{info['bytes']:,}", info["sha256"])
    print_fitted(output_console(), table, ("bytes", "sha256"))  # manifest.json has them all
    report("done")


def _client_only(out: Path, epoch: int | None) -> None:
    """The producer client's wheel alone, added to `out` (the other artefacts there are left as they are)."""
    try:
        wheel = build_client_wheel(REPO_ROOT, out, epoch if epoch is not None else source_date_epoch(REPO_ROOT))
    except (BuildError, ClientBuildError) as exc:
        report_error("build failed", exc)
        raise typer.Exit(1) from None
    console = output_console()
    console.print(f"{wheel}", markup=False, soft_wrap=True, highlight=False)
    console.print(f"install it in your application: pip install '{wheel}[aws]'", markup=False, soft_wrap=True)


if __name__ == "__main__":
    run_script(main, "build", __doc__)
