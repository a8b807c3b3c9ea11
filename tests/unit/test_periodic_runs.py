"""The scheduler's next step per entry (worker.scheduler.runs): claims, catch-up, lost state."""

from __future__ import annotations

from worker.scheduler.periodic import Periodic, Slots
from worker.scheduler.runs import Step, after_loss, next_step
from worker.scheduler.state import RunState

SECOND = Slots.of(Periodic("every-second", "cluster.ping", 1.0))
LEASE = 3.0


def test_a_new_entry_starts_from_its_latest_slot_without_a_send() -> None:
    assert next_step(SECOND, None, 100.5, LEASE, "once") == Step(100.0, send=False)


def test_a_claim_never_confirmed_is_sent_again_not_claimed_again() -> None:
    last = RunState(100.0, None, claimed=True, since=90.0)
    assert next_step(SECOND, last, 100.2, LEASE, "skip") == Step(100.0, send=True, since=90.0, resend=True)


def test_slots_a_little_late_are_each_sent_and_stale_ones_follow_catch_up() -> None:
    last = RunState(100.0, 100.1)
    assert next_step(SECOND, last, 100.9, LEASE, "once") is None
    assert next_step(SECOND, last, 102.5, LEASE, "once") == Step(101.0, send=True)
    assert next_step(SECOND, last, 110.5, LEASE, "once") == Step(107.0, send=True, since=100.0)
    assert next_step(SECOND, last, 110.5, LEASE, "skip") == Step(107.0, send=False, since=100.0)


def test_state_the_store_lost_is_one_catch_up_from_what_was_remembered() -> None:
    remembered = RunState(100.0, 100.1)
    assert after_loss(SECOND, remembered, 106.5, "once") == Step(106.0, send=True, since=100.0)
    assert after_loss(SECOND, remembered, 106.5, "skip") == Step(106.0, send=False, since=100.0)
    assert after_loss(SECOND, remembered, 100.5, "once") == Step(100.0, send=False)
    claimed = RunState(100.0, None, claimed=True)
    assert after_loss(SECOND, claimed, 106.5, "once") == Step(100.0, send=True, resend=True)


def test_a_run_state_reads_what_older_schedulers_wrote() -> None:
    assert RunState.loads('{"slot": 10, "sent_at": 11}') == RunState(10.0, 11.0)
    state = RunState(10.0, None, claimed=True, since=5.0)
    assert RunState.loads(state.dumps()) == state
