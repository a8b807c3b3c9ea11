"""The publisher's reader of measured task time on a RabbitMQ broker (written by `worker.runtime.rabbit_task_stats`).

It consumes the stats queue and holds each summary unacknowledged while it is in the window
(`WINDOW_SECONDS` before the sample), acking it once it falls out. The broker therefore keeps the
window, not the publisher's memory: when the publisher's connection ends (a Lambda environment
recycled, a closed connection, `close`), RabbitMQ requeues what it held
(https://www.rabbitmq.com/docs/confirms#automatic-requeueing) and the next reader gets the same
window back. A requeued message keeps its expiry time (https://www.rabbitmq.com/docs/ttl), so
nothing outlives `MESSAGE_TTL_MS`.

Held summaries stay under the broker's consumer timeout (30 minutes by default,
https://www.rabbitmq.com/docs/consumers#acknowledgement-timeout): the window is 10. The connection
asks for heartbeats (`HEARTBEAT_S`) so that a publisher that is gone (a frozen, then discarded
Lambda environment) hands its summaries back within about two heartbeat intervals
(https://www.rabbitmq.com/docs/heartbeats); the running publisher's samples, 10 s apart, keep it
alive.

A read that fails (the broker unreachable) is logged and yields no task time, never a guess;
busy processes on RabbitMQ come from the in-flight count either way (`worker.publisher.service_metrics`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Consumer

from worker.runtime.rabbit_task_stats import PREFETCH, WINDOW_SECONDS, connection, stats_queue
from worker.runtime.task_stats import QueueService

logger = logging.getLogger(__name__)

HEARTBEAT_S: Final = 60
# How long a read waits for one more delivery before it counts what it has: the broker pushes up to
# PREFETCH summaries at once, so an empty gap this long means the queue has been read to its end.
DRAIN_GAP_S: Final = 0.05
# When the held summaries fill the prefetch, the oldest go, so newer ones can still be delivered.
KEEP_WHEN_FULL: Final = PREFETCH * 9 // 10


@dataclass(frozen=True)
class Summary:
    at: float
    queues: dict[str, tuple[int, float]]
    message: Message


def parse(body: Any) -> tuple[float, dict[str, tuple[int, float]]] | None:
    """A summary's send time and per-queue (count, seconds), or None for a body that is not one."""
    if not isinstance(body, dict):
        return None
    at, queues = body.get("at"), body.get("queues")
    if not isinstance(at, int | float) or not isinstance(queues, dict):
        return None
    parsed: dict[str, tuple[int, float]] = {}
    for queue, pair in queues.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int | float) for v in pair)):
            return None
        count, seconds = int(pair[0]), float(pair[1])
        if count < 0 or seconds < 0:
            return None
        parsed[str(queue)] = (count, seconds)
    return float(at), parsed


class RabbitServiceReader:
    def __init__(self, url: str, window_seconds: float = WINDOW_SECONDS) -> None:
        self._url, self._window = url, window_seconds
        self._connection: Connection | None = None
        self._held: list[Summary] = []

    def read(self, queues: Sequence[str], now: float) -> list[QueueService]:
        """Every queue's tasks ended in the window; [] (no task time) when the broker cannot be read."""
        for attempt in (1, 2):  # a connection the broker closed while the publisher slept fails once
            try:
                self._receive()
                break
            except Exception as exc:  # a metric source failing must not stop the sample
                self.close()
                if attempt == 2:
                    logger.warning("task stats: could not read %s: %s", stats_queue().name, exc)
                    return []
        self._forget(lambda s: s.at <= now - self._window)
        totals = {queue: [0, 0.0] for queue in queues}
        for summary in self._held:
            for queue, (count, seconds) in summary.queues.items():
                if queue in totals:
                    totals[queue][0] += count
                    totals[queue][1] += seconds
        return [QueueService(q, int(c), s, running=None) for q, (c, s) in totals.items()]

    @property
    def held(self) -> int:
        return len(self._held)

    def _receive(self) -> None:
        if self._connection is None:
            self._held = []  # what the last connection held is requeued and delivered again
            self._connection = connection(self._url, heartbeat=HEARTBEAT_S)
            self._connection.ensure_connection(max_retries=0)
            consumer = Consumer(
                self._connection.default_channel,
                queues=[stats_queue()],
                callbacks=[self._on_message],
                accept=["json"],
                prefetch_count=PREFETCH,
            )
            consumer.consume()
        self._connection.heartbeat_check()
        while True:
            try:
                self._connection.drain_events(timeout=DRAIN_GAP_S)
            except TimeoutError:  # socket.timeout is TimeoutError
                break
            if len(self._held) >= PREFETCH:
                self._make_room()

    def _on_message(self, body: Any, message: Message) -> None:
        parsed = parse(body)
        if parsed is None:
            logger.warning("task stats: dropped a message that is not a summary: %.200r", body)
            message.ack()
            return
        self._held.append(Summary(parsed[0], parsed[1], message))

    def _make_room(self) -> None:
        oldest = sorted(self._held, key=lambda s: s.at)[: len(self._held) - KEEP_WHEN_FULL]
        logger.warning("task stats: %d summaries fill the prefetch; the oldest %d go early", self.held, len(oldest))
        gone = {id(s) for s in oldest}
        self._forget(lambda s: id(s) in gone)

    def _forget(self, old: Callable[[Summary], bool]) -> None:
        keep = []
        for summary in self._held:
            if old(summary):
                summary.message.ack()
            else:
                keep.append(summary)
        self._held = keep

    def close(self) -> None:
        """Close the connection: the broker requeues every held summary for the next reader."""
        if self._connection is not None:
            with contextlib.suppress(Exception):  # it is broken already
                self._connection.release()
            self._connection = None
        self._held = []
