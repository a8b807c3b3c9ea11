"""Tables the commands print fit the width they are printed at: whole columns left out, and said so; never
a value cut to "…" or a column squeezed to nothing (infra/cli/fit.py). scripts/simulate's table is run in
a pipe and in a terminal by tests/integration/test_simulate_cli.py; these are the other tables."""

from __future__ import annotations

import re

import pytest
from rich.console import Console
from rich.table import Table

from infra.cli import smoke, status
from infra.cli.fit import PIPE_WIDTH, fit, output_console, print_fitted, print_pairs
from infra.cli.pool_status import PoolStatus


def _console(width: int) -> Console:
    """What a terminal of `width` columns shows (rich's terminal path, colours off)."""
    return Console(width=width, record=True, force_terminal=True, color_system=None)


def _words(text: str) -> list[str]:
    return re.sub("[\u2500-\u257f]", " ", text).split()


def _wide() -> Table:
    table = Table(title="wide")
    for header in ("name", "alpha", "beta", "gamma", "delta"):
        table.add_column(header, no_wrap=header != "name")
    table.add_row("a row with a long name", "1" * 22, "2" * 22, "3" * 22, "4" * 22)
    return table


def test_columns_go_in_the_order_asked_then_from_the_right_never_the_first() -> None:
    table = _wide()
    assert fit(_console(80), table, ("beta",)) == ["beta", "delta"]
    assert [str(c.header) for c in table.columns] == ["name", "alpha", "gamma"]
    narrowest = _wide()
    assert fit(_console(10), narrowest) == ["delta", "gamma", "beta", "alpha"]  # the first column always stays


def test_a_fitted_table_shows_every_kept_value_whole_and_names_what_it_left_out() -> None:
    console = _console(80)
    dropped = print_fitted(console, _wide())
    text = console.export_text()
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    for value in ("1" * 22, "2" * 22):
        assert value in _words(text)
    assert dropped == ["delta", "gamma"]
    assert "(2 of the table's columns left out to fit 80 columns: delta, gamma;" in text


def test_a_table_that_fits_is_printed_as_it_is_with_no_note() -> None:
    console = _console(200)
    assert print_fitted(console, _wide()) == []
    assert "left out" not in console.export_text()


def test_a_pipe_is_wide_unless_columns_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_console().width == PIPE_WIDTH  # pytest's output is not a terminal
    monkeypatch.setenv("COLUMNS", "80")
    assert output_console().width == 80


def _pool_status(name: str) -> PoolStatus:
    return PoolStatus(
        pool=name,
        asg_name=f"celery-cluster-prod-{name}-asg-0a1b2c3",
        in_service=17,
        desired=20,
        min_size=2,
        max_size=20,
        waiting=3694.0,
        in_flight=80.0,
        oldest_age_seconds=125.0,
        slo_seconds=30.0,
        task_seconds=2.4,
        configured_task_seconds=2.0,
        busy_processes=80.0,
    )


def test_scripts_status_table_at_80_columns() -> None:
    console = _console(80)
    dropped = print_fitted(
        console, status._table([_pool_status("default"), _pool_status("reports")]), status.STATUS_DROP_ORDER
    )
    text = console.export_text()
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert dropped == list(status.STATUS_DROP_ORDER[: len(dropped)])
    for kept in ("default", "reports", "17", "125 s / 30 s"):
        assert kept in text


def test_scripts_smoke_table_at_80_columns() -> None:
    row = {
        "pool": "reports",
        "ok": False,
        "sent": 20,
        "returned": 19,
        "wrong": 0,
        "pings_sent": 2,
        "answered_by": ["w1@ip-10-40-1-7", "w2@ip-10-40-2-9"],
        "p50_seconds": 0.412,
        "p95_seconds": 12.5,
        "in_service_before": 0,
        "in_service_after": 3,
    }
    console = _console(80)
    dropped = print_fitted(console, smoke._table([row, {**row, "pool": "default", "ok": True}]), smoke.SMOKE_DROP_ORDER)
    text = console.export_text()
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert dropped == list(smoke.SMOKE_DROP_ORDER[: len(dropped)])
    for kept in ("reports", "19", "12500 ms", "FAILED", "ok"):
        assert kept in text


def test_names_and_values_too_wide_for_a_table_are_lines_with_each_value_whole() -> None:
    arn = "arn:aws:iam::123456789012:role/celery-cluster-deploy-staging-0123456789"
    pairs = [("AWS_DEPLOY_ROLE_ARN (variable of environment staging)", arn), ("AWS_REGION (variable)", "eu-west-1")]
    console = _console(80)
    print_pairs(console, "Store these", pairs)
    text = console.export_text()
    assert "…" not in text
    assert f"\n    {arn}\n" in text
    wide = _console(200)
    print_pairs(wide, "Store these", pairs)
    assert re.search(r"│ AWS_REGION \(variable\) +│ eu-west-1 +│", wide.export_text())
