"""The pull-request check on task names (infra.cli.task_name_changes): a rename that leaves the old name
routed is flagged, and the documented alias lets it through. The command itself, and the scan against
the real worker app, are tests/integration/test_task_names_command.py."""

from __future__ import annotations

import pytest

from infra.cli.task_name_changes import RETIRED_FILE, Senders, check, declared
from infra.config import merged_raw, parse_config, read_stack_file

MODULE = "worker/tasks/invoices.py"

BEFORE = """
from worker.app import app


@app.task(name="invoices.send", max_retries=5)
def send(invoice_id: str) -> None: ...


@app.task(name="invoices.refund")
def refund(invoice_id: str) -> None: ...
"""
RENAMED = BEFORE.replace('name="invoices.send"', 'name="invoices.send_v2"')
# The documented alias: the old name stays registered for a release and runs the new code.
ALIASED = RENAMED + '\nsend_alias = app.task(name="invoices.send")(send.run)\n'


def _routes(routes: dict[str, str]) -> dict[str, dict[str, str]]:
    """prod's routing table with `routes`, as the stack config validates and holds it."""
    config = parse_config("prod", merged_raw({**read_stack_file("prod"), "taskRoutes": routes}))
    return {"prod": dict(config.task_routes)}


def test_a_renamed_task_that_is_still_routed_is_flagged() -> None:
    senders = Senders(routes=_routes({"invoices.send": "default"}), schedule={})
    (finding,) = check({MODULE: BEFORE}, {MODULE: RENAMED}, senders)
    assert (finding.name, finding.renamed_to, finding.routed) == (
        "invoices.send",
        "invoices.send_v2",
        ("prod: invoices.send",),
    )
    assert finding.stranded
    assert finding.line() == "- `invoices.send` (renamed to `invoices.send_v2`): routed by prod: invoices.send"


def test_the_alias_keeps_the_old_name_and_passes() -> None:
    senders = Senders(routes=_routes({"invoices.send": "default"}), schedule={})
    assert check({MODULE: BEFORE}, {MODULE: ALIASED}, senders) == []
    assert {"invoices.send", "invoices.send_v2"} <= set(declared({MODULE: ALIASED}))


def test_a_retired_name_passes_with_its_reason() -> None:
    retired = 'RETIRED = {"invoices.send": "no sender since 2026-01-10 (Logs Insights)"}\n'
    senders = Senders(routes=_routes({"invoices.send": "default"}), schedule={})
    (finding,) = check({MODULE: BEFORE}, {MODULE: RENAMED, RETIRED_FILE: retired}, senders)
    assert not finding.stranded
    assert "retired (no sender since 2026-01-10" in finding.line()


@pytest.mark.parametrize(
    ("senders", "stranded"),
    [
        (Senders(routes={}, schedule={"nightly-invoices": "invoices.send"}), True),
        (Senders(routes={}, schedule={}, seen=frozenset({"invoices.send"})), True),
        # A glob still matches a task that remains: it is not a route for the removed name.
        (Senders(routes={"prod": {"invoices.*": "billing"}}, schedule={}), False),
        (Senders(routes={}, schedule={}), False),
    ],
    ids=["scheduled", "seen", "glob-of-remaining-tasks", "nothing-sends-it"],
)
def test_scheduled_or_seen_names_are_flagged_and_unsent_ones_only_listed(senders: Senders, stranded: bool) -> None:
    (finding,) = check({MODULE: BEFORE}, {MODULE: RENAMED}, senders)
    assert finding.stranded is stranded


def test_a_glob_that_only_matched_removed_names_is_still_a_route() -> None:
    gone = BEFORE.replace('@app.task(name="invoices.refund")\ndef refund(invoice_id: str) -> None: ...\n', "")
    senders = Senders(routes={"prod": {"invoices.*": "billing"}}, schedule={})
    findings = check({MODULE: BEFORE}, {MODULE: gone.replace("invoices.send", "billing.send")}, senders)
    assert {f.name: f.routed for f in findings} == {
        "invoices.refund": ("prod: invoices.*",),
        "invoices.send": ("prod: invoices.*",),
    }
