"""The twin's producer: the trace's arrivals replayed on the wall clock as tasks, with canaries."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

from celery.exceptions import TimeoutError as ResultTimeoutError
from celery.result import AsyncResult

from infra.local.timescale import ModelClock
from infra.scaling.traces import Trace
from worker.sender import sender_app

CANARY_EVERY_MODEL_SECONDS = 60.0


class Producer(threading.Thread):
    """Replays the trace's arrivals on the wall clock: one `cluster.sleep(task / speed)` per arrival,
    and one `cluster.canary(token)` a model minute, whose token must come back (the smoke test's check)."""

    def __init__(self, broker_url: str, queue: str, trace: Trace, clock: ModelClock, stop: threading.Event) -> None:
        super().__init__(name="producer", daemon=True)
        self.broker_url, self.queue, self.trace, self.clock, self.stop = broker_url, queue, trace, clock, stop
        self.sent: list[str] = []
        self.max_lag = 0.0
        """Worst wall seconds a task was sent after its arrival time."""
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.canaries_sent = 0
        self.canaries_returned = 0
        self.canary_timeout = 120.0

    def run(self) -> None:
        app = sender_app(self.broker_url)
        canaries: list[tuple[str, AsyncResult]] = []
        next_canary = 0.0
        try:
            for arrival, seconds in zip(self.trace.arrivals.tolist(), self.trace.task_seconds.tolist(), strict=True):
                delay = self.clock.wall_at(arrival) - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    break
                if self.stop.is_set():
                    break
                self.max_lag = max(self.max_lag, -delay)
                if arrival >= next_canary:
                    token = uuid.uuid4().hex
                    canaries.append((token, app.send_task("cluster.canary", args=[token], queue=self.queue)))
                    next_canary = arrival + CANARY_EVERY_MODEL_SECONDS
                task_wall = round(self.clock.wall(seconds), 4)
                self.sent.append(app.send_task("cluster.sleep", args=[task_wall], queue=self.queue).id)
            self.canaries_sent = len(canaries)
            self._collect(canaries)
        except BaseException as exc:  # reported by the main loop; the run ends with what was sent
            self.error = exc
        finally:
            # Each result subscribes to its task's channel and unsubscribes when garbage-collected; one
            # collected after the run stopped the broker printed "Exception ignored in AsyncResult.__del__
            # ... Retry limit exceeded" (a traceback keeps this frame, and so the results, alive). Drop them
            # now, while the broker is up.
            for _, result in canaries:
                with contextlib.suppress(Exception):  # a broker already gone: nothing left to unsubscribe from
                    app.backend.remove_pending_result(result)
                result.backend = None  # and its __del__ does nothing
            canaries.clear()
            app.close()
            self.done.set()

    def _collect(self, canaries: list[tuple[str, AsyncResult]]) -> None:
        """Wait for each canary's token, a second at a time so that a stopped run does not wait."""
        deadline = time.monotonic() + self.canary_timeout
        for token, result in canaries:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    returned = result.get(timeout=min(1.0, max(deadline - time.monotonic(), 0.01)), propagate=False)
                except ResultTimeoutError:
                    continue
                if returned == token:
                    self.canaries_returned += 1
                break
            else:
                return
