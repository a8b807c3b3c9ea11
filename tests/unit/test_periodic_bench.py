"""The periodic fan-out in the simulator: prod/default misses its SLO without the scheduled capacity
its entry derives, and meets it with (the `make bench --only periodic-fan-out` table)."""

from __future__ import annotations

from infra.bench import periodic


def test_the_fan_out_meets_the_slo_with_the_entry_schedule_and_misses_it_without() -> None:
    table = periodic.run()
    labels = [str(cell) for cell in table.columns[0].cells]
    verdicts = [str(cell) for cell in table.columns[3].cells]
    assert labels[0] == "no schedule"
    assert verdicts[0] == "[red]missed[/]"
    assert labels[1].startswith("from the entry:")
    assert verdicts[1] == "[green]met[/]"
