"""`make bench`: benchmarks, printed as tables side by side with ratios.

Sections: worker (our worker vs bare Celery on Redis and RabbitMQ), policies (ours vs the reference
policies on every trace), sensitivity (launch-to-ready x CloudWatch delay), protection (the two
scale-in protection rules), periodic-fan-out (a periodic fan-out without and with its entry's
scheduled capacity), simulator-speed, queue-inspection, task-stats (what recording task run
time adds per task), drain (how long a draining worker stays after its last task), sigkill (100 SIGKILLs
of a worker running 10 ms tasks on Redis: tasks lost and duplicated), twin-agreement (the local twin's
counts against the simulator's).

Examples:

\b
  scripts/bench
  scripts/bench --only policies
  scripts/bench --only worker --only queue-inspection

Exit codes:

\b
  0  every section ran
  2  an unknown section was named
"""

from __future__ import annotations

import time
from collections.abc import Callable

import typer
from rich.table import Table

from infra.bench import agreement, drain, inspection, periodic, policies, sigkill, task_stats, worker_throughput
from infra.cli.entry import run_script
from infra.cli.fit import output_console, print_fitted

SECTIONS: dict[str, Callable[[], Table]] = {
    "worker": worker_throughput.section,
    "policies": policies.run,
    "sensitivity": policies.sensitivity,
    "protection": policies.protection,
    "periodic-fan-out": periodic.run,
    "simulator-speed": policies.speed,
    "queue-inspection": inspection.run,
    "task-stats": task_stats.run,
    "drain": drain.run,
    "sigkill": sigkill.run,
    "twin-agreement": agreement.run,
}


def main(
    only: list[str] = typer.Option([], "--only", help=f"run only these sections: {', '.join(SECTIONS)}"),
) -> None:
    console = output_console(150)
    unknown = [name for name in only if name not in SECTIONS]
    if unknown:
        console.print(f"[red]bench:[/] unknown section {', '.join(unknown)}; sections: {', '.join(SECTIONS)}")
        raise typer.Exit(2)
    for name in only or list(SECTIONS):
        started = time.perf_counter()
        with console.status(f"bench: {name}"):
            table = SECTIONS[name]()
        print_fitted(console, table)
        console.print(f"[dim]{name}: {time.perf_counter() - started:.1f} s[/]\n")


if __name__ == "__main__":
    run_script(main, "bench", __doc__)
