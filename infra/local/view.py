"""What the local cluster shows while it runs: a rich live view on a terminal, plain lines otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from infra.local.fleet import Failure, LocalInstance
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
    failures: tuple[Failure, ...] = ()
    upgrade: str = ""
    """`--upgrade-to`: where the refresh is, and the last thing it did."""


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    return f"{minutes:02d}:{secs:02d}"


def _wait(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def event_line(event: ScalingEvent) -> str:
    arrow = "scale-out" if event.direction == "out" else "scale-in "
    return (
        f"{clock(event.at)} {arrow} {event.old_desired}->{event.new_desired} instances "
        f"by {event.policy}: {event.reason}"
    )


# Rows the live view needs besides the instance list and a failure: header 4, the "now" table and its
# legend 3, the alarm line 1, the events panel 5, the workers panel's borders 2, and a spare row for a
# header line that wraps. The instance list gets what is left, so 80x24 shows every panel.
_FIXED_ROWS = 16
_EVENTS_SHOWN = 3
LEGEND = "backlog/inst = (waiting + in flight) / in service; target = what the SLO allows"


def alarms_line(alarms: tuple[AlarmState, ...]) -> str:
    """Which alarms are in ALARM (with the last value), and which are OK; one that acts on nothing says so."""

    def firing(alarm: AlarmState) -> str:
        value = "-" if alarm.last_value is None else f"{alarm.last_value:.3g}"
        return f"{alarm.name} ({value}{'' if alarm.acts else ', no action'})"

    in_alarm = [firing(a) for a in alarms if a.in_alarm]
    ok = [a.name for a in alarms if not a.in_alarm]
    if not in_alarm:
        return f"alarms: none in ALARM; OK: {', '.join(ok) or 'none'}"
    return f"alarms in ALARM: {', '.join(in_alarm)}; {len(ok)} OK"


def failure_panel(failure: Failure) -> Panel:
    """The first worker that failed, and the lines of its log that say why."""
    head, *excerpt = failure.lines()
    return Panel("\n".join(excerpt), title=f"[red]{head}[/]", title_align="left", border_style="red")


def render(status: Status, height: int = 24) -> RenderableType:
    """The live view, fitted to `height` rows: fewer instance rows on a small terminal, never a cut panel."""
    over_trace = status.now > status.duration
    head = (
        f"{status.header}\nmodel time [bold]{clock(status.now)}[/] of {clock(status.duration)}"
        f"{' [yellow](trace over: finishing the last tasks)[/]' if over_trace else ''}  "
        f"x{status.speed:g} (1 model min = {60 / status.speed:.1f} s wall)  "
        f"sent {status.sent}/{status.total}, done {status.completed}"
        + (f"\n[bold]{escape(status.upgrade)}[/]" if status.upgrade else "")
    )
    in_service = sum(1 for i in status.instances if i.state == "in service")
    over = status.oldest_age > status.slo_seconds
    p95_ok = status.p95_wait is None or status.p95_wait <= status.slo_seconds
    now = Table(expand=True, box=None, padding=(0, 1), caption=LEGEND, caption_justify="left")
    for column in ("waiting", "in flight", "oldest", "p50 wait", "p95 wait", "SLO", "backlog/inst", "target"):
        now.add_column(column, justify="right", no_wrap=True)
    now.add_row(
        str(status.waiting),
        str(status.in_flight),
        f"[{'red' if over else 'green'}]{status.oldest_age:.0f} s[/]",
        _wait(status.p50_wait),
        f"[{'green' if p95_ok else 'red'}]{_wait(status.p95_wait)}[/]",
        f"{status.slo_seconds:.0f} s",
        f"{(status.waiting + status.in_flight) / max(in_service, 1):.1f}",
        f"{status.target_backlog:.3g}",
    )
    counts: dict[str, int] = {}
    for instance in status.instances:
        counts[instance.state] = counts.get(instance.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if state != "gone") or "none"
    workers = Table(expand=True, box=None, padding=(0, 1), show_header=False)
    for _ in range(4):
        workers.add_column(no_wrap=True)
    shown = [i for i in status.instances if i.state != "gone"]
    failure = failure_panel(status.failures[0]) if status.failures else None
    extra = (len(status.failures[0].lines()) + 1 if failure else 0) + status.upgrade.count("\n") + bool(status.upgrade)
    room = max(height - _FIXED_ROWS - extra, 0)
    for instance in shown[-room:] if room else []:
        colour = {"booting": "yellow", "in service": "green", "draining": "magenta", "failed": "red"}.get(
            instance.state, "dim"
        )
        note = f"started {instance.late_seconds:.0f} s late" if instance.late_seconds >= 5 else ""
        pid = str(instance.worker.process.pid) if instance.worker.process else "-"
        workers.add_row(f"#{instance.id}", f"[{colour}]{instance.state}[/]", f"pid {pid}", note)
    events = "\n".join(event_line(e) for e in status.events[-_EVENTS_SHOWN:]) or "none yet"
    return Group(
        Panel(head, title="make local: the local twin", title_align="left"),
        now,
        *([failure] if failure else []),
        Panel(workers, title=f"workers: desired {status.desired}; {summary}", title_align="left"),
        alarms_line(status.alarms),
        Panel(events, title="recent scale events", title_align="left"),
    )


def line(status: Status) -> str:
    """One headless line: the same facts as the live view, for CI logs and pipes."""
    booting = sum(1 for i in status.instances if i.state == "booting")
    serving = sum(1 for i in status.instances if i.state == "in service")
    draining = sum(1 for i in status.instances if i.state == "draining")
    failed = sum(1 for i in status.instances if i.state == "failed")
    alarms = ",".join(a.name + ("" if a.acts else " (no action)") for a in status.alarms if a.in_alarm) or "none"
    return (
        f"[{clock(status.now)}/{clock(status.duration)}] waiting {status.waiting} in flight {status.in_flight} "
        f"oldest {status.oldest_age:.0f}s (SLO {status.slo_seconds:.0f}s) | p95 {_wait(status.p95_wait)} | "
        f"workers {serving} in service, {booting} booting, {draining} draining"
        f"{f', {failed} failed' if failed else ''} (desired {status.desired}) | "
        f"alarms in ALARM: {alarms} | done {status.completed}/{status.total}"
    )
