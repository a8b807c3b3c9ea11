"""What the local cluster shows while it runs: a rich live view on a terminal, plain lines otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from infra.local.fleet import LocalInstance
from infra.scaling.aws_model import AlarmState, ScalingEvent


@dataclass(frozen=True)
class Status:
    """The cluster at one instant; times in model seconds unless named `wall`."""

    now: float
    duration: float
    speed: float
    waiting: int
    in_flight: int
    oldest_age: float
    slo_seconds: float
    target_backlog: float
    desired: int
    sent: int
    total: int
    completed: int
    p50_wait: float | None
    p95_wait: float | None
    instances: tuple[LocalInstance, ...]
    alarms: tuple[AlarmState, ...]
    events: tuple[ScalingEvent, ...]
    header: str


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    return f"{minutes:02d}:{secs:02d}"


def _wait(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def event_line(event: ScalingEvent) -> str:
    arrow = "scale-out" if event.direction == "out" else "scale-in "
    return f"{clock(event.at)} {arrow} {event.old_desired}->{event.new_desired} by {event.policy}: {event.reason}"


def render(status: Status) -> RenderableType:
    head = (
        f"{status.header}\nmodel time [bold]{clock(status.now)}[/] of {clock(status.duration)}"
        f"{' (trace over: finishing the last tasks)' if status.now > status.duration else ''}  "
        f"(x{status.speed:g}: 1 model minute = {60 / status.speed:.1f} s wall)   "
        f"tasks sent {status.sent}/{status.total}, completed {status.completed}"
    )
    queues = Table(title="queues", title_justify="left", expand=True)
    for column in ("waiting", "in flight", "oldest age", "backlog / instance", "target"):
        queues.add_column(column, justify="right")
    in_service = sum(1 for i in status.instances if i.state == "in service")
    over = status.oldest_age > status.slo_seconds
    queues.add_row(
        str(status.waiting),
        str(status.in_flight),
        f"[{'red' if over else 'green'}]{status.oldest_age:.0f} s[/]",
        f"{(status.waiting + status.in_flight) / max(in_service, 1):.1f}",
        f"{status.target_backlog:.3g}",
    )
    latency = Table(title="latency (queue wait, model s)", title_justify="left", expand=True)
    for column in ("p50", "p95", "SLO", "oldest now"):
        latency.add_column(column, justify="right")
    p95_ok = status.p95_wait is None or status.p95_wait <= status.slo_seconds
    latency.add_row(
        _wait(status.p50_wait),
        f"[{'green' if p95_ok else 'red'}]{_wait(status.p95_wait)}[/]",
        f"{status.slo_seconds:.0f} s",
        f"{status.oldest_age:.0f} s",
    )
    workers = Table(title=f"workers (desired {status.desired})", title_justify="left", expand=True)
    for column in ("instance", "state", "pid", "launched", "note"):
        workers.add_column(column)
    shown = [i for i in status.instances if i.state != "gone"]
    for instance in shown[-10:]:
        colour = {"booting": "yellow", "in service": "green", "draining": "magenta"}.get(instance.state, "dim")
        note = f"started {instance.late_seconds:.0f} s late" if instance.late_seconds >= 5 else ""
        pid = str(instance.worker.process.pid) if instance.worker.process else "-"
        workers.add_row(str(instance.id), f"[{colour}]{instance.state}[/]", pid, clock(instance.launched_at), note)
    gone = len(status.instances) - len(shown)
    if gone:
        workers.add_row("", f"[dim]{gone} gone[/]", "", "", "")
    alarms = Table(title="alarms", title_justify="left", expand=True)
    alarms.add_column("alarm")
    alarms.add_column("state")
    alarms.add_column("last datapoint", justify="right")
    for alarm in status.alarms:
        state = "[red]ALARM[/]" if alarm.in_alarm else "[green]OK[/]"
        value = "-" if alarm.last_value is None else f"{alarm.last_value:.3g}"
        alarms.add_row(alarm.name, state, value)
    events = "\n".join(event_line(e) for e in status.events[-6:]) or "none yet"
    return Group(
        Panel(head, title="make local: the local twin"),
        queues,
        latency,
        workers,
        alarms,
        Panel(events, title="recent scale events", title_align="left"),
    )


def line(status: Status) -> str:
    """One headless line: the same facts as the live view, for CI logs and pipes."""
    booting = sum(1 for i in status.instances if i.state == "booting")
    serving = sum(1 for i in status.instances if i.state == "in service")
    draining = sum(1 for i in status.instances if i.state == "draining")
    alarms = ",".join(a.name for a in status.alarms if a.in_alarm) or "none"
    return (
        f"[{clock(status.now)}/{clock(status.duration)}] waiting {status.waiting} in flight {status.in_flight} "
        f"oldest {status.oldest_age:.0f}s (SLO {status.slo_seconds:.0f}s) | p95 {_wait(status.p95_wait)} | "
        f"workers {serving} in service, {booting} booting, {draining} draining (desired {status.desired}) | "
        f"alarms: {alarms} | done {status.completed}/{status.total}"
    )
