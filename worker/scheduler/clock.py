"""Two small pieces of the scheduler's loop: the lease store's clock, and a dependency that is down.

Slots are due on the lease store's clock, one clock for every scheduler (Redis TIME, read with each
renewal), not on the host's: a holder whose clock is off neither sends early nor holds runs back.
Between renewals it is carried forward on this process's monotonic clock, from the moment the reply
arrived, so it never runs ahead of the store's (it lags by at most the reply's trip).

A dependency that is down (the broker, the lease store) is retried with a delay that doubles up to a
cap, and logged once when it goes down and once when it comes back, not at every attempt.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

log = structlog.get_logger("worker.scheduler.beat")


class StoreClock:
    def __init__(self) -> None:
        self._store_time: float | None = None
        self._received = 0.0

    def set(self, store_time: float, received: float) -> None:
        """The store said `store_time`; its reply arrived at monotonic `received`."""
        self._store_time, self._received = store_time, received

    def now(self) -> float:
        assert self._store_time is not None, "the store's clock is read with the first lease"
        return self._store_time + (time.monotonic() - self._received)


class Outage:
    """A dependency's state: up, or down since some failures ago."""

    def __init__(self, down_event: str, up_event: str, first_delay: float, max_delay: float) -> None:
        self._down_event, self._up_event = down_event, up_event
        self._first, self._max = first_delay, max_delay
        self.failures = 0
        self._since = 0.0
        self.retry_at = 0.0  # monotonic: no attempt before this

    @property
    def down(self) -> bool:
        return self.failures > 0

    def failed(self, **fields: Any) -> None:
        """An attempt failed: logged if it was up, and the next attempt waits longer."""
        now = time.monotonic()
        if not self.failures:
            self._since = now
            log.warning(self._down_event, **fields)
        self.failures += 1
        self.retry_at = now + min(self._max, self._first * 2 ** (self.failures - 1))

    def ok(self, **fields: Any) -> None:
        """An attempt succeeded: logged if it was down."""
        if self.failures:
            log.info(
                self._up_event, failures=self.failures, down_seconds=round(time.monotonic() - self._since, 3), **fields
            )
        self.failures = 0
        self.retry_at = 0.0
