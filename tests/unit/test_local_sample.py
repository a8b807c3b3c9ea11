"""The `make local` samples in README.md and docs/local.md are generated (`infra.cli.local_sample`), and
agree with the code that prints them and the config they describe: the table's columns, the summary's
rows, the pool's shape and SLO, and the verdict against the table's own numbers. A pasted sample once
claimed a 120 s SLO (the alarm threshold) and scale events no run made any more."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.cli.local import summary_table
from infra.cli.local_sample import markers
from infra.config import ROOT
from infra.local.accounting import Tally
from infra.local.plan import TwinPlan, local_pool, local_trace
from infra.local.result import TwinResult
from infra.scaling.simulator import ours, simulate
from infra.scaling.slo import meets_slo
from infra.simulation.report import COLUMNS

FILES = [ROOT / "README.md", ROOT / "docs" / "local.md"]


def _block(text: str, name: str) -> str:
    begin, end = markers(name)
    assert begin in text, f"no generated {name} block"
    return text.split(begin, 1)[1].split(end, 1)[0]


def _summary_labels() -> list[str]:
    plan = TwinPlan()
    spec = local_pool(plan).spec
    simulated = simulate(spec, local_trace(plan, spec), ours("simulator"))
    result = TwinResult(simulated, simulated, Tally(1, 1, 0, 0, ()), 10.0, 1.0, 0, (), 0.0)
    return [str(cell) for cell in summary_table(result).columns[0].cells]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_sample_is_the_code_s_output_and_states_the_pool_s_real_slo(path: Path) -> None:
    text = _block(path.read_text(), "local-sample")
    header = next(line for line in text.splitlines() if line.startswith("┃ policy"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == list(COLUMNS)
    rows = dict(re.findall(r"^│ (\w[\w /()>='-]*?) +│ (.+?) +│$", text, re.MULTILINE))
    assert [label for label in _summary_labels() if label not in rows] == []
    spec = local_pool(TwinPlan()).spec
    sentence = " ".join(text.split("```")[-1].split())
    assert f"{spec.concurrency} processes x {spec.min_size}..{spec.max_size} instances" in sentence
    assert f"Its SLO is p95 queue wait <= {spec.slo_seconds:g} s" in sentence
    assert f"threshold, {spec.alarm_threshold_seconds:g} s, is another number" in sentence
    for policy, word in (("local twin", "the twin"), ("simulator", "the simulator")):
        row = next(line for line in text.splitlines() if line.startswith(f"│ {policy} "))
        cells = [cell.strip() for cell in row.strip("│").split("│")]
        p95, slo = float(cells[COLUMNS.index("p95 s")]), cells[COLUMNS.index("SLO")]
        assert slo == ("met" if meets_slo(p95, spec.slo_seconds) else "missed")
        assert f"{word} {slo} it" in sentence
    outs = next(line for line in text.splitlines() if line.startswith("│ local twin ")).split("│")[7].strip()
    assert rows["scale-outs / scale-ins"] == outs.replace("/", " / ")


def test_the_headless_lines_are_generated_too() -> None:
    text = _block((ROOT / "docs" / "local.md").read_text(), "local-run")
    spec = local_pool(TwinPlan()).spec
    status = [line for line in text.splitlines() if line.startswith("[") and "waiting" in line]
    assert status
    assert all(f"(SLO {spec.slo_seconds:.0f}s)" in line for line in status)
    assert re.search(r"^\d\d:\d\d scale-out ", text, re.MULTILINE)


def test_scheduled_capacity_is_held_to_the_machines_max_size() -> None:
    # prod's fan-out entry schedules 17 instances; the twin fits 8 at most here, as AWS holds MaxSize.
    spec = local_pool(TwinPlan(stack="prod", pool="default")).spec
    assert spec.scaling.schedules, "prod/default lost its periodic capacity: the test no longer tests it"
    assert max(s.capacity for s in spec.scaling.schedules) == spec.max_size
