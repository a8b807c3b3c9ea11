"""`make bench`: benchmarks printed as tables; `--only worker` runs one section.

A section is a function of (console, options) registered in SECTIONS; it prints its own table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from infra.bench import worker_throughput


@dataclass(frozen=True)
class Options:
    brokers: list[worker_throughput.BrokerKind]
    tasks: int
    processes: int
    rounds: int
    log_dir: Path


def worker_section(console: Console, options: Options) -> None:
    results = worker_throughput.run(
        options.brokers, options.tasks, options.processes, options.rounds, console, options.log_dir
    )
    console.print(worker_throughput.table(results))


SECTIONS: dict[str, Callable[[Console, Options], None]] = {"worker": worker_section}
BROKERS: dict[str, worker_throughput.BrokerKind] = {"redis": "redis", "rabbitmq": "rabbitmq"}


def main(
    only: list[str] = typer.Option([], "--only", help=f"run only these sections ({', '.join(SECTIONS)})"),
    broker: list[str] = typer.Option(list(BROKERS), help="worker section: brokers to measure"),
    tasks: int = typer.Option(600, min=100, help="worker section: no-op tasks per measurement"),
    processes: int = typer.Option(2, min=1, help="worker section: processes (concurrency) per worker"),
    rounds: int = typer.Option(3, min=1, help="worker section: rounds per variant (the median is shown)"),
    log_dir: Path = typer.Option(Path("build/bench"), help="where worker logs go"),
) -> None:
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise typer.BadParameter(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    bad = sorted(set(broker) - set(BROKERS))
    if bad:
        raise typer.BadParameter(f"unknown broker(s) {', '.join(bad)}; choose from {', '.join(BROKERS)}")
    # A pipe or CI log gets the full table width instead of rich's 80-column default.
    console = Console() if Console().is_terminal else Console(width=150)
    options = Options([BROKERS[b] for b in broker], tasks, processes, rounds, log_dir)
    for name, section in SECTIONS.items():
        if not only or name in only:
            console.rule(f"bench: {name}")
            section(console, options)


if __name__ == "__main__":
    typer.run(main)
