"""Running several policies over one trace, and the rich table the simulator and the bench print."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.table import Table

from infra.config import ConfigError, load_stack_config
from infra.scaling.aws_model import ModelAssumptions
from infra.scaling.simulator import (
    Contender,
    PoolSpec,
    SimulationResult,
    perfect_foresight_instance_hours,
    simulate,
)
from infra.scaling.stack import pool_spec
from infra.scaling.traces import Trace


@dataclass(frozen=True)
class Entry:
    """One policy to run: a contender on a pool spec (a compared config has its own spec)."""

    spec: PoolSpec
    contender: Contender


def run_entries(
    entries: Sequence[Entry],
    trace: Trace,
    assumptions: ModelAssumptions,
    on_progress: Callable[[str, float], None] | None = None,
) -> list[SimulationResult]:
    results = []
    for entry in entries:
        progress = None
        if on_progress is not None:
            name = entry.contender.name

            def progress(fraction: float, name: str = name) -> None:
                on_progress(name, fraction)

        results.append(simulate(entry.spec, trace, entry.contender, assumptions, progress))
    return results


def _seconds(value: float) -> str:
    return f"{value:.1f}"


def results_table(results: Sequence[SimulationResult], bound_hours: float, title: str, slo_seconds: float) -> Table:
    table = Table(title=title, title_justify="left", caption="waits in seconds; backlog = max waiting + in flight")
    for header in (
        "policy",
        "p50 s",
        "p95 s",
        "p99 s",
        "backlog",
        "min>SLO",
        "out/in",
        "peak",
        "inst-h",
        "x bound",
        "$",
        "SLO",
    ):
        table.add_column(header, justify="left" if header == "policy" else "right")
    for result in results:
        table.add_row(
            result.policy,
            _seconds(result.p50_wait),
            _seconds(result.p95_wait),
            _seconds(result.p99_wait),
            str(result.max_backlog),
            f"{result.minutes_over_slo:.1f}",
            f"{result.scale_outs}/{result.scale_ins}",
            str(result.peak_instances),
            f"{result.instance_hours:.2f}",
            f"{result.instance_hours / bound_hours:.2f}" if bound_hours > 0 else "-",
            f"{result.cost_usd:.2f}",
            "[green]met[/]" if result.p95_wait <= slo_seconds else "[red]missed[/]",
        )
    table.add_row("perfect foresight", *[""] * 7, f"{bound_hours:.2f}", "1.00", "", "")
    return table


def bound_for(spec: PoolSpec, trace: Trace) -> float:
    return perfect_foresight_instance_hours(spec, trace)


class CompareError(ValueError):
    """A config to compare against cannot be read; the message names the file or git ref."""


def spec_from_file(path: Path, stack: str, pool: str) -> PoolSpec:
    """A pool spec from another copy of Pulumi.<stack>.yaml (same Pulumi.yaml declarations)."""
    if not path.is_file():
        raise CompareError(f"--compare-config {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="simulate-compare-") as tmp:
        copy = Path(tmp) / f"Pulumi.{stack}.yaml"
        copy.write_bytes(path.read_bytes())
        try:
            return pool_spec(load_stack_config(stack, Path(tmp)), pool)
        except ConfigError as exc:
            raise CompareError(f"{path}: {exc}") from None


def spec_from_git(ref: str, stack: str, pool: str, repo: Path) -> PoolSpec:
    """A pool spec from Pulumi.<stack>.yaml as committed at a git ref (e.g. main)."""
    name = f"Pulumi.{stack}.yaml"
    shown = subprocess.run(
        ["git", "-C", str(repo), "show", f"{ref}:{name}"], capture_output=True, text=True, check=False
    )
    if shown.returncode != 0:
        raise CompareError(f"git ref {ref!r} has no {name}: {shown.stderr.strip()}")
    with tempfile.TemporaryDirectory(prefix="simulate-compare-") as tmp:
        path = Path(tmp) / name
        path.write_text(shown.stdout)
        return replace(spec_from_file(path, stack, pool))
