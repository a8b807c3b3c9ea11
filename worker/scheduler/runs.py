"""Which run of an entry is next, from its last state and the store's clock: pure arithmetic, so the
scheduler's loop (`worker.scheduler.beat`) only carries it out and the unit tests can walk it.

Rules (docs/periodic.md):
- an entry never run on this stack starts from its latest slot, recorded without a send;
- a claim that was never confirmed is sent again, with the same task id (the workers run one copy);
- slots more than one lease period overdue fell due while nobody held the lease: one run for all
  of them (`catch_up="once"`) or none (`"skip"`); slots merely a little late are each sent;
- state the store lost (a restart without persistence) but this scheduler remembers: every slot
  since the remembered one is treated as fallen due while nobody held the lease.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.scheduler.periodic import CatchUp, Slots
from worker.scheduler.state import RunState


@dataclass(frozen=True)
class Step:
    """The next thing to do for an entry."""

    slot: float
    send: bool  # False: record the slot as covered without a run (first start, or catch_up "skip")
    since: float | None = None  # the last slot before the slots this step stands for (catch-up, skip)
    resend: bool = False  # a claim that was never confirmed: send it again, do not claim it again


def next_step(slots: Slots, last: RunState | None, now: float, lease: float, catch_up: CatchUp) -> Step | None:
    """The entry's next step at store time `now`; None when nothing is due."""
    if last is None:
        return Step(slots.latest_at_or_before(now), send=False)
    if last.claimed:
        return Step(last.slot, send=True, since=last.since, resend=True)
    following = slots.next_after(last.slot)
    if following > now:
        return None
    # Only look back for stale slots when the next one is already a lease period overdue (walking a
    # rare crontab back minute by minute is slow).
    if following <= now - lease:
        stale = slots.latest_at_or_before(now - lease)
        if stale > last.slot:
            return Step(stale, send=catch_up == "once", since=last.slot)
    return Step(following, send=True)


def after_loss(slots: Slots, remembered: RunState, now: float, catch_up: CatchUp) -> Step:
    """The first step for an entry whose state the store lost while this scheduler remembers it."""
    if remembered.claimed:
        return Step(remembered.slot, send=True, since=remembered.since, resend=True)
    latest = slots.latest_at_or_before(now)
    if latest > remembered.slot:
        return Step(latest, send=catch_up == "once", since=remembered.slot)
    return Step(remembered.slot, send=False)  # nothing fell due: write back what we knew
