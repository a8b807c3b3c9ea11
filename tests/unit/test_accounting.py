"""The count every fault test rests on (`infra.local.accounting.tally`): lost = sent ids never completed,
duplicates = final executions of an id beyond its first. The fault tests assert `duplicates == 0` after a
graceful drain, so the count must be able to say more than 0."""

from __future__ import annotations

from infra.local.accounting import tally


def _run(task_id: str, state: str = "SUCCESS", published: float = 0.0, started: float = 1.0) -> dict[str, str]:
    return {"task_id": task_id, "state": state, "published_at": str(published), "started_at": str(started)}


def test_a_task_that_ran_twice_is_one_completion_and_one_duplicate() -> None:
    counted = tally(["a", "b"], [_run("a", started=2.0), _run("a", started=9.0), _run("b")])
    assert (counted.sent, counted.completed, counted.lost, counted.duplicates) == (2, 2, 0, 1)
    # The wait is the first execution's: a redelivery does not make the task's queue wait look longer.
    assert sorted(counted.waits) == [1.0, 2.0]


def test_each_extra_final_run_counts_a_failure_included() -> None:
    counted = tally(["a"], [_run("a", "FAILURE"), _run("a"), _run("a", "FAILURE")])
    assert (counted.completed, counted.lost, counted.duplicates) == (1, 0, 2)


def test_only_final_states_of_sent_ids_count() -> None:
    journal = [_run("a", "STARTED"), _run("a", "RETRY"), _run("other"), _run("other")]
    counted = tally(["a"], journal)
    assert (counted.completed, counted.lost, counted.duplicates) == (0, 1, 0)
