"""Running several policies over one trace, and the rich table the simulator and the bench print."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
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
from infra.scaling.slo import meets_slo
from infra.scaling.traces import Trace
from infra.simulation.stack import pool_spec


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


COLUMNS = (
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
    "interrupted",
    "work lost s",
    "SLO",
)
"""The columns of the table, and the keys of each row of `results_rows` (scripts/simulate --json)."""


def results_rows(
    results: Sequence[SimulationResult],
    bound_hours: float,
    slo_seconds: float,
    unjudged: Mapping[str, str] | None = None,
) -> list[dict[str, str | float | int | None]]:
    """The table's rows as plain values: one per policy, then the perfect-foresight bound. A policy named in
    `unjudged` (the local twin when some tasks never ran) gets no SLO verdict: "unknown"."""
    unjudged = unjudged or {}
    rows: list[dict[str, str | float | int | None]] = []
    for result in results:
        values: tuple[str | float | int | None, ...] = (
            result.policy,
            round(result.p50_wait, 1),
            round(result.p95_wait, 1),
            round(result.p99_wait, 1),
            result.max_backlog,
            round(result.minutes_over_slo, 1),
            f"{result.scale_outs}/{result.scale_ins}",
            result.peak_instances,
            round(result.instance_hours, 2),
            round(result.instance_hours / bound_hours, 2) if bound_hours > 0 else None,
            round(result.cost_usd, 2),
            result.interrupted_tasks,
            round(result.work_lost_seconds),
            "unknown" if result.policy in unjudged else "met" if meets_slo(result.p95_wait, slo_seconds) else "missed",
        )
        rows.append(dict(zip(COLUMNS, values, strict=True)))
    bound: dict[str, str | float | int | None] = dict.fromkeys(COLUMNS)
    bound.update({"policy": "perfect foresight", "inst-h": round(bound_hours, 2), "x bound": 1.0})
    rows.append(bound)
    return rows


# The columns a narrow terminal loses first (`infra.cli.fit`); it keeps the verdict, the tail wait, the size
# and the cost against the bound longest: at 80 columns, policy, p95 s, peak, inst-h, x bound and SLO.
NARROW_DROP_ORDER = (
    "work lost s",
    "p50 s",
    "p99 s",
    "$",
    "backlog",
    "min>SLO",
    "out/in",
    "interrupted",
    "x bound",
    "inst-h",
    "peak",
)


def results_table(
    results: Sequence[SimulationResult],
    bound_hours: float,
    title: str,
    slo_seconds: float,
    columns: Sequence[str] = COLUMNS,
    unjudged: Mapping[str, str] | None = None,
) -> Table:
    reasons = "".join(f"; {policy}: SLO unknown, {why}" for policy, why in (unjudged or {}).items())
    table = Table(
        title=title,
        title_justify="left",
        caption=f"waits in seconds; SLO: p95 wait <= {slo_seconds:g} s; backlog = max waiting + in flight; "
        f"interrupted = tasks killed when a drain ended (requeued){reasons}",
    )
    for header in columns:
        table.add_column(header, justify="left" if header == "policy" else "right", no_wrap=header != "policy")
    colours = {"met": "green", "missed": "red", "unknown": "yellow"}
    for row in results_rows(results, bound_hours, slo_seconds, unjudged):
        cells = {c: "" if row[c] is None else str(row[c]) for c in columns}
        if "SLO" in cells and row["SLO"] is not None:
            cells["SLO"] = f"[{colours[str(row['SLO'])]}]{row['SLO']}[/]"
        for name in ("x bound", "inst-h"):
            if name in cells and isinstance(row[name], float):
                cells[name] = f"{row[name]:.2f}"
        table.add_row(*cells.values())
    return table


def bound_for(spec: PoolSpec, trace: Trace) -> float:
    """The perfect-foresight bound (with the trace's minSize where it sets one)."""
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
