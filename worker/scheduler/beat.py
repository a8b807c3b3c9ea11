"""`celery beat` with a lease: of all the schedulers started, one sends, and each run executes once.

Run it the way the scheduler instance does (`image/bin/start-scheduler`):
`celery -A worker.app beat --scheduler worker.scheduler.beat:LeasedScheduler`. Never `worker -B`.

Every scheduler tries to take the lease (`worker.scheduler.lease`) every third of a lease period. The one
that holds it renews it as often, and sends a run only while its own view of the lease is valid:
that view starts when the renewal request left (not when the reply came), and ends a safety
margin before the lease would lapse in the store. A successor takes the lease at most a lease
period and a third after the last renewal, under two lease periods.

A view of the lease cannot fence a process that is paused between its check and its publish (a
SIGSTOP, a long GC, a VM steal), so each run is claimed in the store first, in one atomic step with
the lease check (`LeaseStore.advance`), then published, then confirmed (`record`). A holder that
lost the lease while paused claims nothing. A claim never confirmed (paused or killed between claim
and confirmation) is published again by the next holder with the same task id, and the workers run
only the first copy to start (`worker.runtime.periodic_fence`): at most one execution, none lost.

Slots are due on the lease store's clock (Redis TIME, read with every renewal; `clock.StoreClock`),
one clock for every scheduler, so a holder whose own clock is off neither sends early nor late.

What each entry last ran (its slot) lives in the store, so it survives a scheduler being replaced;
rules in `worker.scheduler.runs`. A store that comes back empty (a restart without persistence)
while a scheduler remembers the state is noticed (`scheduler.state_lost`), and the missed slots
follow catch_up. A broker or store that is down is retried with back-off and logged once per change.

The holder publishes `SchedulerHeartbeat` and each entry's `PeriodicEntryLateness` (seconds
past due without a send, on the store's clock) every renewal when SCHEDULER_METRICS_NAMESPACE is set.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from contextlib import suppress
from typing import Any, Final, NoReturn

import structlog
from celery import Celery, beat
from pydantic import ValidationError

from worker.instance import secret_watch
from worker.names import PERIODIC_SEND_HEADER
from worker.runtime.broker_errors import refusal_reason
from worker.runtime.settings import SETTINGS_EXIT_CODE
from worker.scheduler.clock import Outage, StoreClock
from worker.scheduler.lease import open_store
from worker.scheduler.periodic import Periodic, ScheduleError, Slots, check_entries, resolve_queue, run_id
from worker.scheduler.runs import Step, after_loss, next_step
from worker.scheduler.settings import CloudWatchMetrics, SchedulerSettings, load_entries, registered_tasks
from worker.scheduler.state import LeaseError, LeaseStore, RunState

log = structlog.get_logger("worker.scheduler.beat")

# Renew (or try to take) the lease this many times per lease period.
RENEWALS_PER_LEASE: Final = 3
# The holder stops sending this share of the lease before it would lapse in the store, so a send
# that has started finishes before a successor can hold the lease.
SAFETY_SHARE: Final = 0.2


def _refuse(message: str) -> NoReturn:
    """A bad setting or schedule: one line, and the worker's settings status, which
    celery-scheduler.service does not restart (a restart reads the same files). Raised while beat
    builds the scheduler, before its loop that would swallow a SystemExit."""
    sys.stderr.write(f"celery-cluster scheduler: {message}\n")
    raise SystemExit(SETTINGS_EXIT_CODE)


class LeasedScheduler(beat.Scheduler):  # type: ignore[misc]
    """A Celery beat scheduler that sends only while it holds the lease."""

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        try:
            self.settings = SchedulerSettings()
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            field = str(error["loc"][0]).upper()
            _refuse(f"SCHEDULER_{field}: {error['msg']}")
        self.holder_id = f"{socket.gethostname()}:{os.getpid()}"
        self.store: LeaseStore | None = None
        # The entries' last runs: the store's, as this scheduler last read or wrote them.
        self.state: dict[str, RunState] = {}
        # Entries whose state the store lost but this scheduler remembered (written back first).
        self._lost: dict[str, RunState] = {}
        self._clock = StoreClock()
        self._valid_until = 0.0  # monotonic: sends are allowed before this
        self._renew_at = 0.0  # monotonic: next renewal or attempt
        self._metrics: CloudWatchMetrics | None = None
        self._secret: secret_watch.SecretWatch | None = None
        self.entries: tuple[Periodic, ...] = ()
        self._slots: dict[str, Slots] = {}
        lease = self.settings.lease_seconds
        # Logged once when the store or the broker goes down and once when it is back; a refused
        # send is retried after 0.25 s, doubling up to a renewal period (never a busy loop).
        self._lease_outage = Outage("scheduler.lease_unreachable", "scheduler.lease_reachable", 0.0, 0.0)
        self._broker = Outage("scheduler.send_failed", "scheduler.send_recovered", 0.25, lease / RENEWALS_PER_LEASE)
        super().__init__(app, *args, **kwargs)

    @property
    def lease_seconds(self) -> float:
        return self.settings.lease_seconds

    @property
    def holding(self) -> bool:
        return time.monotonic() < self._valid_until

    def setup_schedule(self) -> None:
        settings, conf = self.settings, self.app.conf
        try:
            entries = check_entries(
                load_entries(settings.schedule),
                tasks=registered_tasks(self.app),
                consumed_queues=settings.queues or None,
                routes={pattern: route["queue"] for pattern, route in (conf.task_routes or {}).items()},
                default_queue=conf.task_default_queue,
            )
        except ScheduleError as exc:
            _refuse(str(exc))
        self.entries = tuple(e for e in entries if e.runs_on(settings.stack))
        self._slots = {e.name: Slots.of(e) for e in self.entries}
        url = settings.lease_url or str(conf.broker_url)
        try:
            self.store = open_store(url, settings.key_prefix, settings.region)
        except LeaseError as exc:
            _refuse(f"SCHEDULER_LEASE_URL: {exc}")
        self._check_credentials("SCHEDULER_LEASE_URL" if settings.lease_url else "CELERY_BROKER_URL")
        try:
            # A rotated broker password: hand over (close releases the lease) and exit 75, which
            # celery-scheduler.service restarts with the new secret (worker.instance.secret_watch).
            self._secret = secret_watch.start(str(conf.broker_url), lambda: None)
        except secret_watch.SecretReadError as exc:
            _refuse(str(exc))
        if settings.metrics_namespace:
            self._metrics = CloudWatchMetrics(settings.metrics_namespace, settings.region)
        log.info(
            "scheduler.start",
            holder=self.holder_id,
            entries=[e.name for e in self.entries],
            lease_seconds=settings.lease_seconds,
        )

    # Celery's persistent-schedule hooks do not apply: the state is in the lease store.
    def sync(self) -> None:
        return None

    def close(self) -> None:
        changed = self._secret is not None and self._secret.changed.is_set()
        self._close()
        if changed:
            log.info("scheduler.restart_for_new_secret", holder=self.holder_id)
            # Out of beat's loop, which ends on this SystemExit too (celery/apps/beat.py does not catch it).
            raise SystemExit(secret_watch.SECRET_CHANGED_EXIT_CODE)

    def _close(self) -> None:
        if self.store is not None:
            if self.holding:
                # A clean stop hands over at once instead of after the lease lapses.
                try:
                    self.store.release(self.holder_id)
                    log.info("scheduler.released", holder=self.holder_id)
                except LeaseError as exc:
                    log.warning("scheduler.release_failed", error=str(exc))
            self._valid_until = 0.0
            self.store.close()
            self.store = None
        super().close()

    def _check_credentials(self, variable: str) -> None:
        """A lease store that refuses the password at start is a configuration error (exit 64, as the
        worker's broker refusal, worker.runtime.broker_errors), checked here because beat's loop swallows a
        SystemExit; any other error is left to the loop, which retries every renewal."""
        assert self.store is not None
        try:
            self.store.holder()
        except LeaseError as exc:
            reason = refusal_reason(exc)
            if reason is not None:
                _refuse(f"{variable}: the lease store refused the credentials: {reason}")

    def _on_refusal(self, exc: BaseException) -> None:
        """A refused login may be a rotated password: read the secret now, not at the next check."""
        if self._secret is not None and refusal_reason(exc) is not None:
            self._secret.nudge()

    def tick(self, *_: Any, **__: Any) -> float:
        if self._secret is not None and self._secret.changed.is_set():
            raise SystemExit(secret_watch.SECRET_CHANGED_EXIT_CODE)  # beat's loop stops; close() exits 75
        renewed = False
        if time.monotonic() >= self._renew_at:
            renewed = self._renew()
        if not self.holding:
            return max(0.05, self._renew_at - time.monotonic())
        wait = self._renew_at - time.monotonic()
        if self._broker.down and time.monotonic() < self._broker.retry_at:
            # The broker refused the last send: wait for the retry instead of spinning on it.
            wait = min(wait, self._broker.retry_at - time.monotonic())
        else:
            next_due = self._send_due()
            wait = min(wait, next_due - self._clock.now())
            if self._broker.down:
                wait = min(wait, self._broker.retry_at - time.monotonic())
        if renewed and self._metrics is not None:
            self._publish()
        return max(0.0, wait)

    def _renew(self) -> bool:
        assert self.store is not None
        lease = self.lease_seconds
        started = time.monotonic()
        was_holding = self.holding
        self._renew_at = started + lease / RENEWALS_PER_LEASE
        try:
            grant = self.store.acquire(self.holder_id, lease)
        except LeaseError as exc:
            self._lease_outage.failed(error=str(exc))
            self._on_refusal(exc)
            grant = None
        else:
            self._lease_outage.ok()
        if grant is None:
            if was_holding:
                log.warning("scheduler.lease_lost", holder=self.holder_id)
            self._valid_until = 0.0
            if not self._lease_outage.down:
                self._remember()
            return False
        self._clock.set(grant.store_time, time.monotonic())
        # A lease that was not ours a moment ago (taken, or our key vanished with a broker restart):
        # read the state again, and compare it with what we knew.
        if (grant.fresh or not was_holding) and not self._take_over():
            self._valid_until = 0.0
            return False
        self._valid_until = started + lease * (1 - SAFETY_SHARE)
        return True

    def _remember(self) -> None:
        """A standby keeps a copy of the entries' last runs: if the store loses them (a restart
        without persistence) while it takes over, it knows where the schedule stood."""
        assert self.store is not None
        with suppress(LeaseError):
            self.state = self.store.load()

    def _take_over(self) -> bool:
        assert self.store is not None
        try:
            stored = self.store.load()
        except LeaseError as exc:
            # Without the entries' last runs it would send runs again: hold off until a renewal reads them.
            log.warning("scheduler.state_unreadable", error=str(exc))
            return False
        lost = {e.name: self.state[e.name] for e in self.entries if e.name not in stored and e.name in self.state}
        if lost:
            # Not a new entry: the store forgot it (restarted empty). Its missed slots follow catch_up.
            log.warning("scheduler.state_lost", entries=sorted(lost), remembered={n: s.slot for n, s in lost.items()})
        self.state, self._lost = stored, lost
        log.info("scheduler.lease_acquired", holder=self.holder_id)
        return True

    def _send_due(self) -> float:
        """Send every due run; return the store-clock second of the next slot of any entry."""
        now = self._clock.now()
        next_due = now + self.lease_seconds
        for entry in self.entries:
            due = self._bring_up_to_date(entry)
            if due is None:
                return now
            next_due = min(next_due, due)
        return next_due

    def _bring_up_to_date(self, entry: Periodic) -> float | None:
        """Carry out this entry's due steps; its next slot, or None when a step could not be taken."""
        slots, lease = self._slots[entry.name], self.lease_seconds
        lost = self._lost.pop(entry.name, None)
        if lost is not None:
            step: Step | None = after_loss(slots, lost, self._clock.now(), entry.catch_up)
        else:
            step = next_step(slots, self.state.get(entry.name), self._clock.now(), lease, entry.catch_up)
        while step is not None:
            if not self._carry_out(entry, step):
                if lost is not None and entry.name not in self.state:
                    self._lost[entry.name] = lost  # still to be written back
                return None
            lost = None
            step = next_step(slots, self.state.get(entry.name), self._clock.now(), lease, entry.catch_up)
        return slots.next_after(self.state[entry.name].slot)

    def _carry_out(self, entry: Periodic, step: Step) -> bool:
        if not step.resend:
            # Claimed before the send, atomically with the lease check: a holder that lost its lease
            # while paused claims nothing, and a claim nobody confirmed is sent again by the next holder.
            if not self._advance(entry, RunState(step.slot, None, claimed=step.send, since=step.since)):
                return False
            if not step.send:
                if step.since is not None:
                    log.info("scheduler.skipped", entry=entry.name, through=step.slot, since=step.since)
                return True
        return self._send(entry, step)

    def _advance(self, entry: Periodic, state: RunState) -> bool:
        assert self.store is not None
        try:
            found = self.store.advance(self.holder_id, entry.name, state)
        except LeaseError as exc:
            self._lease_outage.failed(error=str(exc))
            self._valid_until = 0.0
            return False
        if found == "ok":
            self.state[entry.name] = state
            return True
        if found == "lost":
            log.warning("scheduler.lease_lost", holder=self.holder_id, entry=entry.name)
            self._valid_until = 0.0
        elif found == "behind":
            log.warning("scheduler.state_behind", entry=entry.name, slot=state.slot)
            self._remember()
        return False  # "early": due on our estimate of the store's clock, not on the store's; next tick

    def _send(self, entry: Periodic, step: Step) -> bool:
        if not self.holding:
            return False
        conf = self.app.conf
        routes = {pattern: route["queue"] for pattern, route in (conf.task_routes or {}).items()}
        task_id = run_id(entry.name, step.slot)
        try:
            self.app.send_task(
                entry.task,
                args=list(entry.args),
                kwargs=dict(entry.kwargs),
                task_id=task_id,
                queue=resolve_queue(entry, routes, conf.task_default_queue),
                producer=self.producer,
                # Each send is told apart from any other copy of the run (worker.runtime.periodic_fence).
                headers={PERIODIC_SEND_HEADER: uuid.uuid4().hex},
                # No publish retries: the claim stays unconfirmed, so the next tick sends it again
                # while the lease is still checked, instead of a retry loop outliving the lease.
                retry=False,
            )
        except Exception as exc:
            self._broker.failed(entry=entry.name, task_id=task_id, error=str(exc))
            self._on_refusal(exc)
            return False
        self._broker.ok()
        log.info("scheduler.sent", entry=entry.name, task_id=task_id, catch_up_since=step.since, resent=step.resend)
        return self._record(entry, RunState(step.slot, self._clock.now(), since=step.since))

    def _record(self, entry: Periodic, state: RunState) -> bool:
        assert self.store is not None
        try:
            recorded = self.store.record(self.holder_id, entry.name, state)
        except LeaseError as exc:
            self._lease_outage.failed(error=str(exc))
            recorded = False
        if not recorded:
            log.warning("scheduler.lease_lost", holder=self.holder_id, entry=entry.name)
            self._valid_until = 0.0
            return False
        self.state[entry.name] = state
        return True

    def lateness(self, now: float | None = None) -> dict[str, float]:
        """Seconds each entry's next run is overdue on the store's clock (0 when none is)."""
        now = self._clock.now() if now is None else now
        found: dict[str, float] = {}
        for entry in self.entries:
            last = self.state.get(entry.name)
            due = self._slots[entry.name].next_after(last.slot) if last else now
            found[entry.name] = max(0.0, now - due)
        return found

    def _publish(self) -> None:
        assert self._metrics is not None
        try:
            self._metrics.publish(self.lateness())
        except Exception as exc:  # metrics must never stop the schedule
            log.warning("scheduler.metrics_failed", error=str(exc))

    @property
    def info(self) -> str:
        return f"    . lease -> {self.settings.key_prefix} ({self.lease_seconds:g} s), holder {self.holder_id}"
