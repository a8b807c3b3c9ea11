"""The stack's routing table (task name or glob -> queue) and the queues it sends to.

Workers and producers build their Celery routes and queue declarations here, so a message a
producer sends lands in a queue declared exactly as the consuming pool declares it: same durable
direct exchange, routing key = queue name, same RabbitMQ queue type. A producer that declared a
classic queue where the workers declared a quorum one would be refused by RabbitMQ
(PRECONDITION_FAILED), and a producer that declared nothing would lose every message sent while
the pool is at zero instances (an exchange with no bound queue drops what it receives).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from kombu.entity import Queue

QueueType = Literal["classic", "quorum"]
QUEUE_TYPES: Final[tuple[QueueType, ...]] = ("classic", "quorum")
QUEUE_NAME: Final = re.compile(r"^[A-Za-z0-9_.:-]+$")
# A Celery task name or an fnmatch glob over names ("reports.*", "invoices.send").
TASK_PATTERN: Final = re.compile(r"^[A-Za-z0-9_.:*?\[\]-]+$")


class RouteError(ValueError):
    """A route table entry is invalid; the message names the route."""


def parse_routes(value: str | Mapping[str, Any] | None) -> dict[str, str]:
    """A route table from JSON text or a mapping: {task name or glob: queue}, checked entry by entry."""
    if value is None:
        return {}
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RouteError(f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, Mapping):
        raise RouteError(f"routes must be an object of task name or glob -> queue (got {type(value).__name__})")
    routes: dict[str, str] = {}
    for pattern, queue in value.items():
        if not isinstance(pattern, str) or not TASK_PATTERN.match(pattern):
            raise RouteError(f"route {pattern!r}: a task name or glob of letters, digits and _ . : - * ? [ ]")
        if not isinstance(queue, str) or not QUEUE_NAME.match(queue):
            raise RouteError(f"route {pattern!r}: queue {queue!r} must be letters, digits and _ . : -")
        routes[pattern] = queue
    return routes


def celery_routes(routes: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Celery's `task_routes` for a table: globs match task names (Celery's router uses fnmatch)."""
    return {pattern: {"queue": queue} for pattern, queue in routes.items()}


def declare(name: str, queue_type: QueueType, *, is_redis: bool) -> Queue:
    """A queue as every process of the cluster declares it. Durable: it survives a RabbitMQ restart."""
    # kombu on use only: the worker's settings check route tables with this module at start.
    from kombu.entity import Exchange, Queue  # noqa: PLC0415

    arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" and not is_redis else None
    return Queue(
        name,
        Exchange(name, type="direct", durable=True),
        routing_key=name,
        durable=True,
        queue_arguments=arguments,
    )


def queues_for(default_queue: str, routes: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """Every queue a process may send to: the default, each route's, and any named explicitly."""
    return sorted({default_queue, *routes.values(), *extra})
