"""`make local`: the local twin of a stack's pool, scaled by the same model as the simulator.

A Redis broker, the metrics loop (every 10 model seconds), the scaling model deciding in real time,
worker processes launched and drained as instances, the trace replayed as `cluster.sleep` tasks.
Prints the simulator's table (this run next to the simulator's prediction for the same trace), the
execution journal's count, and writes the simulator's plot. Paths are relative to the directory you
run it from.

A worker that exits on its own (a task module that fails to import, a bad setting) is shown with the
lines of its log that say why, as soon as it happens; when no worker can start, the run stops.

Examples:

\b
  scripts/local                              # dev/default, burst trace, x10
  scripts/local --stack prod --trace spike-to-zero --speed 20 --headless
  scripts/local --stack prod --trace steady --upgrade-to ../v2  # canary
  make local ARGS="--trace steady --window 0:10"

Exit codes:

\b
  0    every task ran and every canary came back
  1    a task did not run (lost, never delivered or unfinished) or a canary
       did not come back
  2    bad input (stack, pool, trace, window) or no redis-server installed
  3    no worker could start: the error from its log is printed
  4    --upgrade-to: the refresh was rolled back (or failed); the alarm
       that fired is named
  130  interrupted (Ctrl-C): the workers were drained, the counts so far
       are printed
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from infra.cli.entry import run_script
from infra.cli.errors import report
from infra.cli.fit import output_console, print_fitted
from infra.config import ROOT, ConfigError
from infra.local.agreement import Comparison
from infra.local.fleet import Fleet
from infra.local.plan import (
    LOCAL_CONCURRENCY,
    LOCAL_MAX_PROCESSES,
    LocalPool,
    TwinPlan,
    assumptions_for,
    local_pool,
    local_trace,
)
from infra.local.result import INTERRUPTED, NO_WORKER_STARTS, TwinResult
from infra.local.run_loop import Snapshot, run_twin
from infra.local.timescale import DEFAULT_WINDOWS, parse_window
from infra.local.versions import CHECKOUT, VersionError, WorkerVersion, checkout_version, version_at
from infra.local.view import Status, clock, event_line, line, render
from infra.scaling.aws_model import GroupModel
from infra.scaling.default_policy import target_backlog_per_instance
from infra.scaling.plot import write_plot
from infra.scaling.pool_spec import PoolSpec
from infra.scaling.traces import BUILT_IN, Trace, TraceError
from infra.servers.redis import ServerNotInstalledError
from infra.simulation.report import NARROW_DROP_ORDER, bound_for, results_table
from infra.simulation.stack import PoolNotFoundError

HEADLESS_EVERY = 60.0  # model seconds between plain status lines
ROLLED_BACK_EXIT = 4
Versions = tuple[WorkerVersion, WorkerVersion | None]


def main(
    stack: str = typer.Option("dev", help="stack whose Pulumi.<stack>.yaml holds the pool"),
    pool: str = typer.Option("default", help="pool name in the stack config"),
    trace: str = typer.Option("burst", help=f"built-in trace ({', '.join(BUILT_IN)}) or a CSV path"),
    speed: float = typer.Option(10.0, min=1.0, max=60.0, help="model seconds per wall second"),
    window: str | None = typer.Option(
        None, help="START:END minutes of the trace to replay (default: burst 18:40, see docs/local.md)"
    ),
    seed: int = typer.Option(7, help="seed of the built-in traces"),
    boot_seconds: float | None = typer.Option(None, min=0, help="model seconds from launch to consuming"),
    concurrency: int = typer.Option(LOCAL_CONCURRENCY, min=1, help="most task processes per local instance"),
    max_processes: int = typer.Option(LOCAL_MAX_PROCESSES, min=1, help="most task processes in all"),
    headless: bool = typer.Option(False, help="plain lines instead of the live view (automatic off a terminal)"),
    drain_timeout: float = typer.Option(120, min=1, help="wall seconds to wait for the last tasks"),
    log_dir: Path = typer.Option(ROOT / "build" / "local", help="where worker logs go"),
    scheduler: bool = typer.Option(
        False, help="also run two periodic task schedulers (one lease) beside the pool; the summary counts their runs"
    ),
    out: Path | None = typer.Option(None, help="PNG path (default build/local/<stack>-<pool>-<trace>.png)"),
    upgrade_to: Path | None = typer.Option(
        None,
        help="roll the workers to the worker package in this directory (or wheel) as the stack's canary "
        "refresh would, judged by its canary alarms; a breach rolls back",
    ),
) -> None:
    # Off a terminal every line is printed whole, never wrapped: one event per line for logs and grep.
    console = output_console(150, soft_wrap=not Console().is_terminal)
    live_view = console.is_terminal and not headless
    try:
        plan = TwinPlan(
            stack, pool, trace, speed, parse_window(window) if window else None, seed, boot_seconds,
            concurrency, max_processes, drain_timeout, log_dir, scheduler, upgrade_to,
        )  # fmt: skip
        fitted = local_pool(plan)
        traffic = local_trace(plan, fitted.spec)
        versions = worker_versions(plan)
    except (ConfigError, PoolNotFoundError, TraceError, VersionError) as exc:
        report("local", exc)
        raise typer.Exit(2) from None
    header = announce(console, plan, fitted, traffic, window is None and trace in DEFAULT_WINDOWS)
    if versions[1] is not None:
        announce_upgrade(console, plan, fitted, versions[0], versions[1])
    try:
        on_tick = _live_view if live_view else plain_lines
        result = on_tick(console, plan, fitted, traffic, header, versions)
    except ServerNotInstalledError as exc:
        report("local", exc)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        # Ctrl-C while the run starts or while it drains (the run itself counts what ran): nothing to count.
        console.print("[yellow]interrupted: workers drained, broker stopped; no counts[/]")
        raise typer.Exit(130) from None
    raise typer.Exit(report_run(console, result, plan, fitted, traffic, out))


def worker_versions(plan: TwinPlan) -> tuple[WorkerVersion, WorkerVersion | None]:
    """The code the workers run, and with --upgrade-to the version they roll to (a bad PATH: VersionError)."""
    if plan.upgrade_to is None:
        return CHECKOUT, None
    old = checkout_version()
    return old, version_at(plan.upgrade_to, old, plan.log_dir)


def announce(console: Console, plan: TwinPlan, fitted: LocalPool, traffic: Trace, windowed: bool) -> str:
    """Print what is about to run and how time is scaled; returns the header the live view repeats."""
    spec = fitted.spec
    boot = assumptions_for(plan, spec).boot_seconds
    header = (
        f"{fitted.mapping}; SLO {spec.slo_seconds:.0f} s; boot {boot:.0f} s (model)\n"
        f"trace {traffic.name}: {traffic.description}; {traffic.count} tasks over {traffic.duration / 60:.0f} "
        f"model minutes"
    )
    speed = plan.speed
    console.print(f"[bold]make local[/]: {header}")
    console.print(
        f"[bold]time-scaled x{speed:g}[/]: 1 model minute = {60 / speed:.1f} s wall; arrivals, task times, "
        f"the 10 s metrics and the boot delay are all divided by {speed:g}; about "
        f"{traffic.duration / speed / 60:.1f} min of wall time"
        + (" (a window of the trace, for local use)" if windowed else "")
    )
    return header


def announce_upgrade(
    console: Console, plan: TwinPlan, fitted: LocalPool, old: WorkerVersion, new: WorkerVersion
) -> None:
    """What the upgrade will do: the versions, the stack's checkpoints and their delay in model and wall time."""
    refresh = fitted.refresh
    checkpoints = refresh.get("CheckpointPercentages")
    delay = float(refresh.get("CheckpointDelay", 0))
    pace = (
        f"checkpoints at {checkpoints}%, {delay:.0f} s (model, {delay / plan.speed:.1f} s wall) each"
        if checkpoints
        else "straight through (no checkpoint)"
    )
    console.print(
        f"[bold]upgrade[/]: {old.label} -> {new.label} ({new.root}); {pace}; warm-up "
        f"{refresh.get('InstanceWarmup', 0)} s; AutoRollback {'on' if refresh.get('AutoRollback') else 'off'}; "
        f"judged by {', '.join(j.suffix for j in fitted.judges)}",
        soft_wrap=not console.is_terminal,
        markup=True,
        highlight=False,
    )


def _status(
    snapshot: Snapshot, model: GroupModel, fleet: Fleet, spec: PoolSpec, traffic: Trace, speed: float, header: str
) -> Status:
    waits = sorted(snapshot.waits)
    return Status(
        now=snapshot.now,
        duration=traffic.duration,
        speed=speed,
        waiting=snapshot.waiting,
        in_flight=snapshot.in_flight,
        oldest_age=snapshot.oldest_age,
        slo_seconds=spec.slo_seconds,
        # Backlog per instance that the SLO allows at the configured task time (a reference figure:
        # the policy itself follows the measured task time).
        target_backlog=target_backlog_per_instance(
            spec.acceptable_latency_seconds, spec.average_task_seconds, spec.concurrency
        ),
        desired=model.desired,
        sent=snapshot.sent,
        total=traffic.count,
        completed=snapshot.completed,
        p50_wait=waits[len(waits) // 2] if waits else None,
        p95_wait=waits[min(len(waits) - 1, int(len(waits) * 0.95))] if waits else None,
        instances=tuple(fleet.instances.values()),
        alarms=tuple(model.alarm_states()),
        events=tuple(model.events),
        header=header,
        failures=tuple(fleet.failures),
        upgrade="\n".join(filter(None, [snapshot.upgrade_status, *snapshot.upgrade_progress[-1:]])),
    )


def _live_view(
    console: Console, plan: TwinPlan, fitted: LocalPool, traffic: Trace, header: str, versions: Versions
) -> TwinResult:
    with Live(console=console, refresh_per_second=4, transient=False) as live:

        def on_tick(snapshot: Snapshot, model: GroupModel, fleet: Fleet) -> None:
            status = _status(snapshot, model, fleet, fitted.spec, traffic, plan.speed, header)
            live.update(render(status, console.size.height))

        return run_twin(plan, fitted, traffic, console, on_tick, versions)


def plain_lines(
    console: Console,
    plan: TwinPlan,
    fitted: LocalPool,
    traffic: Trace,
    header: str,
    versions: Versions = (CHECKOUT, None),
) -> TwinResult:
    """Off a terminal (or --headless): each scaling event and upgrade step as it happens, and a status line a
    model minute."""
    shown: dict[str, float] = {"line": -HEADLESS_EVERY, "events": 0, "trace_over": 0, "failures": 0, "upgrade": 0}

    def on_tick(snapshot: Snapshot, model: GroupModel, fleet: Fleet) -> None:
        for event in model.events[int(shown["events"]) :]:
            console.print(event_line(event), soft_wrap=True, markup=False)
        shown["events"] = len(model.events)
        for step in snapshot.upgrade_progress[int(shown["upgrade"]) :]:
            console.print(step, soft_wrap=True, markup=False)
        shown["upgrade"] = len(snapshot.upgrade_progress)
        for failure in fleet.failures[int(shown["failures"]) :]:  # as it happens, not only at the end
            console.print("\n".join(failure.lines()), soft_wrap=True, markup=False, style="red")
        shown["failures"] = len(fleet.failures)
        if snapshot.now > traffic.duration and not shown["trace_over"]:
            left = traffic.count - snapshot.completed
            text = f"[{clock(snapshot.now)}] trace over: finishing the last {left} tasks"
            console.print(text, soft_wrap=True, markup=False)
            shown["trace_over"] = 1
        if snapshot.now - shown["line"] >= HEADLESS_EVERY:
            status = _status(snapshot, model, fleet, fitted.spec, traffic, plan.speed, header)
            console.print(line(status), soft_wrap=True, markup=False)
            shown["line"] = snapshot.now

    return run_twin(plan, fitted, traffic, console, on_tick, versions)


def report_run(
    console: Console, result: TwinResult, plan: TwinPlan, fitted: LocalPool, traffic: Trace, out: Path | None
) -> int:
    """The twin next to the simulator, the journal's summary, the agreement, and the plot; the exit status.
    A run that stopped early gets only its counts and why (`_stopped_early`)."""
    if result.stopped in (NO_WORKER_STARTS, INTERRUPTED):
        return _stopped_early(console, result)
    spec, stack, pool = fitted.spec, plan.stack, plan.pool
    bound = bound_for(spec, traffic)
    title = f"{stack}/{pool} on {traffic.name}, local twin x{result.speed:g} vs simulator"
    # A p95 over the tasks that ran says nothing about those that did not: no verdict then.
    not_run = result.tally.sent - result.tally.completed
    unjudged = {"local twin": f"{not_run} task(s) did not run"} if not_run else {}
    table = results_table([result.local, result.simulated], bound, title, spec.slo_seconds, unjudged=unjudged)
    print_fitted(console, table, NARROW_DROP_ORDER)  # an 80-column terminal: fewer columns, none cut to "…"
    console.print(summary_table(result))
    console.print(Comparison(result.local, result.simulated).summary(), soft_wrap=not console.is_terminal)
    for problem in result.problems:
        console.print(f"[yellow]note:[/] {problem}", soft_wrap=not console.is_terminal)
    target = out or ROOT / "build" / "local" / f"{stack}-{pool}-{traffic.name}.png"
    write_plot(
        [result.local, result.simulated],
        target,
        f"{title}: arrivals, backlog, latency, instances",
        spec.slo_seconds,
        highlighted=2,
    )
    console.print(f"plot: {target}", soft_wrap=True)
    if not result.ok:
        return 1
    return _upgrade_exit(console, result)


def _upgrade_exit(console: Console, result: TwinResult) -> int:
    """The upgrade's verdict as the last line: 0 when it completed (or none ran), 4 otherwise."""
    if result.upgrade is None:
        return 0
    colour = "green" if result.upgrade.ok else "red"
    console.print(f"[{colour}]{escape(result.upgrade.line())}[/]", soft_wrap=True)
    return 0 if result.upgrade.ok else ROLLED_BACK_EXIT


def _stopped_early(console: Console, result: TwinResult) -> int:
    """The counts so far and why the run stopped: 3 when no worker could start, 130 after Ctrl-C."""
    console.print(summary_table(result))
    if result.stopped == INTERRUPTED:
        console.print("[yellow]interrupted: the counts so far (above); workers drained, broker stopped[/]")
        return 130
    # The failure itself is on screen already: in the view's last frame, or a headless line as it happened.
    console.print(
        f"[red]stopped: no worker could start[/] ({len(result.failures)} exited before serving). Fix the error "
        "shown above (the worker's log is named there) and run again. No scaling table: a run in which no "
        "worker served says nothing about scaling.",
        soft_wrap=not console.is_terminal,
    )
    return 3


def summary_table(result: TwinResult) -> Table:
    """The execution journal's count of every task, as `make local` has always ended: each task sent is
    completed, never delivered, unfinished or lost (`infra.local.accounting.Tally`)."""

    def seconds(value: float | None, scale: float) -> str:
        return "-" if value is None else f"{value * scale:.1f} s model ({value:.2f} s wall)"

    t = result.tally
    table = Table(title="make local: summary", show_header=False)
    for label, value in [
        ("sent", str(t.sent)),
        ("completed", str(t.completed)),
        ("never delivered (still queued)", str(t.never_delivered)),
        ("unfinished (with a worker)", str(t.unfinished)),
        ("lost", str(t.missing)),
        ("duplicates", str(t.duplicates)),
        ("canaries returned", f"{result.canaries_returned}/{result.canaries_sent}"),
        *(
            [("periodic runs (2 schedulers)", f"{result.periodic[0]}, {result.periodic[1]} ran twice")]
            if result.periodic is not None
            else []
        ),
        ("p50 queue wait", seconds(t.p50_wait, result.speed)),
        ("p95 queue wait", seconds(t.p95_wait, result.speed)),
        ("scale-outs / scale-ins", f"{result.local.scale_outs} / {result.local.scale_ins}"),
        ("peak workers", str(result.local.peak_instances)),
        ("workers that started late (>= 5 s)", str(result.late_boots)),
        ("workers that failed", str(len(result.failures))),
        *(
            [("dead letters", str(result.dead_letters))]
            + [(f"runs of {v} (failed)", f"{runs} ({failed})") for v, runs, failed in result.versions]
            if result.upgrade is not None
            else []
        ),
        ("producer's worst lag", f"{result.producer_lag:.2f} s wall"),
        ("wall time", f"{result.wall_seconds:.1f} s at x{result.speed:g}"),
    ]:
        table.add_row(label, value)
    return table


if __name__ == "__main__":
    run_script(main, "local", __doc__)
