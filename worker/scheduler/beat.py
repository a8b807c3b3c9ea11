"""`celery beat` with a lease: of all the schedulers started, exactly one sends.

Run it the way the scheduler instance does (`image/bin/start-scheduler`):
`celery -A worker.app beat --scheduler worker.scheduler.beat:LeasedScheduler`. Never `worker -B`.

Every scheduler tries to take the lease (`worker.scheduler.lease`) every third of a lease period. The one
that holds it renews it as often, and sends a run only while its own view of the lease is valid:
that view starts when the renewal request left (not when the reply came), and ends a safety
margin before the lease would lapse in the store, so a holder that stops renewing (paused,
partitioned, killed) has stopped sending before anyone else can take over. A successor takes the
lease at most a lease period and a third after the last renewal, under two lease periods.

What each entry last ran (its slot) lives in the store, written only by the lease holder, so it
survives a scheduler being replaced. Slots that fell due while nobody held the lease, older than
one lease period, are sent once (`catch_up="once"`) or skipped (`"skip"`); slots that are merely
a little late (a slow tick, a takeover inside one lease period) are each sent. A run is recorded
after it was sent: a holder killed between the two leaves that run to be sent again, with the
same task id (at-least-once, like every task here).

The holder publishes `SchedulerHeartbeat` and each entry's `PeriodicEntryLateness` (seconds
past due without a send) every renewal when SCHEDULER_METRICS_NAMESPACE is set (CloudWatch).
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import time
from typing import Annotated, Any, Final, NoReturn

import boto3
import structlog
from celery import Celery, beat
from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.names import METRIC_ENTRY_LATENESS, METRIC_SCHEDULER_HEARTBEAT
from worker.runtime.broker_errors import refusal_reason
from worker.runtime.settings import SETTINGS_EXIT_CODE
from worker.scheduler.lease import LeaseError, LeaseStore, RunState, open_store
from worker.scheduler.periodic import Periodic, ScheduleError, Slots, check_entries, resolve_queue, run_id

log = structlog.get_logger("worker.scheduler.beat")

# Renew (or try to take) the lease this many times per lease period.
RENEWALS_PER_LEASE: Final = 3
# The holder stops sending this share of the lease before it would lapse in the store, so a send
# that has started finishes before a successor can hold the lease.
SAFETY_SHARE: Final = 0.2


class SchedulerSettings(BaseSettings):
    """The scheduler's settings, from `SCHEDULER_*` variables (README "Periodic tasks")."""

    model_config = SettingsConfigDict(env_prefix="SCHEDULER_", frozen=True, extra="ignore")

    # Where the lease and state live: redis://... (default: the broker, when it is Redis) or dynamodb://<table>.
    lease_url: str | None = None
    # Seconds a lease lasts without renewal: a dead holder is replaced within two of these.
    lease_seconds: float = Field(default=30.0, ge=1.0, le=600.0)
    # Redis keys of the lease and state (several stacks or tests may share one Redis).
    key_prefix: str = Field(default="celery-cluster:scheduler", pattern=r"^[A-Za-z0-9_.:-]+$")
    # The module attribute holding the entries.
    schedule: str = Field(default="worker.scheduler.schedule:ENTRIES", pattern=r"^[\w.]+:\w+$")
    # Queues the stack's pools consume (written by the Pulumi program): an entry routed elsewhere stops the start.
    queues: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # CloudWatch namespace for the heartbeat and lateness metrics; unset publishes nothing.
    metrics_namespace: str | None = None
    region: str | None = Field(default=None, validation_alias=AliasChoices("SCHEDULER_REGION", "AWS_REGION"))
    stack: str | None = Field(default=None, validation_alias=AliasChoices("SCHEDULER_STACK", "CELERY_CLUSTER_STACK"))

    @field_validator("queues", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


def load_entries(reference: str) -> tuple[Periodic, ...]:
    module, _, attribute = reference.partition(":")
    entries = getattr(importlib.import_module(module), attribute)
    return tuple(entries)


def registered_tasks(app: Celery) -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if not name.startswith("celery.")}


class CloudWatchMetrics:
    def __init__(self, namespace: str, region: str | None, client: Any = None) -> None:
        if client is None:
            client = boto3.client("cloudwatch", region_name=region)
        self._client = client
        self._namespace = namespace

    def publish(self, lateness: dict[str, float]) -> None:
        data: list[dict[str, Any]] = [
            {"MetricName": METRIC_SCHEDULER_HEARTBEAT, "Value": 1.0, "Unit": "Count", "StorageResolution": 1}
        ]
        data += [
            {
                "MetricName": METRIC_ENTRY_LATENESS,
                "Dimensions": [{"Name": "Entry", "Value": name}],
                "Value": seconds,
                "Unit": "Seconds",
                "StorageResolution": 1,
            }
            for name, seconds in sorted(lateness.items())
        ]
        # PutMetricData takes at most 1000 metrics per call.
        for start in range(0, len(data), 1000):
            self._client.put_metric_data(Namespace=self._namespace, MetricData=data[start : start + 1000])


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
        self.state: dict[str, RunState] = {}
        self._valid_until = 0.0  # monotonic: sends are allowed before this
        self._renew_at = 0.0  # monotonic: next renewal or attempt
        self._metrics: CloudWatchMetrics | None = None
        self.entries: tuple[Periodic, ...] = ()
        self._slots: dict[str, Slots] = {}
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

    def tick(self, *_: Any, **__: Any) -> float:
        renewed = False
        if time.monotonic() >= self._renew_at:
            renewed = self._renew()
        if not self.holding:
            return max(0.05, self._renew_at - time.monotonic())
        next_due = self._send_due()
        if renewed and self._metrics is not None:
            self._publish()
        return max(0.0, min(next_due - time.time(), self._renew_at - time.monotonic()))

    def _renew(self) -> bool:
        assert self.store is not None
        lease = self.lease_seconds
        started = time.monotonic()
        was_holding = self.holding
        self._renew_at = started + lease / RENEWALS_PER_LEASE
        try:
            held = self.store.acquire(self.holder_id, lease)
        except LeaseError as exc:
            log.warning("scheduler.lease_unreachable", error=str(exc))
            held = False
        if not held:
            if was_holding:
                log.warning("scheduler.lease_lost", holder=self.holder_id)
            self._valid_until = 0.0
            return False
        if not was_holding:
            try:
                self.state = self.store.load()
            except LeaseError as exc:
                # Without the entries' last runs it would send runs again: hold off until a renewal reads them.
                log.warning("scheduler.lease_unreachable", error=str(exc))
                return False
            log.info("scheduler.lease_acquired", holder=self.holder_id)
        self._valid_until = started + lease * (1 - SAFETY_SHARE)
        return True

    def _send_due(self) -> float:
        """Send every due run; return the epoch second of the next slot of any entry."""
        next_due = time.time() + self.lease_seconds
        for entry in self.entries:
            slots = self._slots[entry.name]
            if not self._bring_up_to_date(entry, slots):
                return time.time()
            last = self.state.get(entry.name)
            assert last is not None
            next_due = min(next_due, slots.next_after(last.slot))
        return next_due

    def _bring_up_to_date(self, entry: Periodic, slots: Slots) -> bool:
        """Send (or skip) this entry's due slots; False when the lease ran out on the way."""
        now = time.time()
        last = self.state.get(entry.name)
        if last is None:
            # Never run on this stack: start counting from now, no run for the past.
            return self._record(entry, RunState(slots.latest_at_or_before(now), None))
        # Only look back for stale slots when the next one is already a lease period overdue
        # (walking a rare crontab back minute by minute is slow).
        overdue = slots.next_after(last.slot) <= now - self.lease_seconds
        stale = slots.latest_at_or_before(now - self.lease_seconds) if overdue else last.slot
        if stale > last.slot:
            # Due while no scheduler held the lease: one run for all of them, or none.
            if entry.catch_up == "once":
                if not self._send(entry, stale, missed_since=last.slot):
                    return False
            elif not self._record(entry, RunState(stale, None)):
                return False
            else:
                log.info("scheduler.skipped", entry=entry.name, through=stale, since=last.slot)
            last = self.state[entry.name]
        slot = slots.next_after(last.slot)
        while slot <= now:
            if not self._send(entry, slot):
                return False
            slot = slots.next_after(slot)
        return True

    def _send(self, entry: Periodic, slot: float, missed_since: float | None = None) -> bool:
        if not self.holding:
            return False
        conf = self.app.conf
        routes = {pattern: route["queue"] for pattern, route in (conf.task_routes or {}).items()}
        task_id = run_id(entry.name, slot)
        try:
            self.app.send_task(
                entry.task,
                args=list(entry.args),
                kwargs=dict(entry.kwargs),
                task_id=task_id,
                queue=resolve_queue(entry, routes, conf.task_default_queue),
                producer=self.producer,
                # No publish retries: a failed send is not recorded, so the next tick sends it again
                # while the lease is still checked, instead of a retry loop outliving the lease.
                retry=False,
            )
        except Exception as exc:
            log.warning("scheduler.send_failed", entry=entry.name, task_id=task_id, error=str(exc))
            return False
        log.info("scheduler.sent", entry=entry.name, task_id=task_id, catch_up_since=missed_since)
        return self._record(entry, RunState(slot, time.time()))

    def _record(self, entry: Periodic, state: RunState) -> bool:
        assert self.store is not None
        try:
            recorded = self.store.record(self.holder_id, entry.name, state)
        except LeaseError as exc:
            log.warning("scheduler.record_failed", entry=entry.name, error=str(exc))
            recorded = False
        if not recorded:
            log.warning("scheduler.lease_lost", holder=self.holder_id, entry=entry.name)
            self._valid_until = 0.0
            return False
        self.state[entry.name] = state
        return True

    def lateness(self, now: float | None = None) -> dict[str, float]:
        """Seconds each entry's next run is overdue (0 when none is)."""
        now = time.time() if now is None else now
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
