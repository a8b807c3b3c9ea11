"""`python -m worker.publisher --once --broker-url URL --queues a,b`: one sample, printed as JSON.

Operators use it to see what scaling sees: the same inspection and the same datums the publisher
sends to CloudWatch (`metric_data`, `service_data`, `unstamped_data`), printed instead of put. No
AWS call is made: in-service instances come from `--in-service` (default 0, so backlog per instance
is the backlog, as for a pool at zero). One sample has no history, so a message without a
`published_at` stamp is dated from this sample (age 0); the running publisher dates it from the
sample it first appeared in. On RabbitMQ the task time is what the stats queue holds ready: the
summaries a running publisher holds (`worker.publisher.rabbit_service`) are not among them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from worker.publisher.handler import PoolQueues, metric_data, service_data
from worker.publisher.queues import InspectionError, inspector_for
from worker.publisher.service_metrics import reader_for
from worker.publisher.unstamped import unstamped_data

CLI_ASG = "cli"  # a stand-in group name: the counts come from --in-service, not Auto Scaling


def _plain(datum: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in datum.items()}


def sample(
    broker_url: str, queues: Sequence[str], pool: str, in_service: int, management_url: str | None
) -> dict[str, Any]:
    inspector = inspector_for(broker_url, management_url)
    reader = reader_for(broker_url)
    pools = [PoolQueues(name=pool, queues=tuple(queues), asg=CLI_ASG)]
    try:
        snapshot = inspector.inspect(list(queues))
        counts = {CLI_ASG: in_service}
        service = reader.read(list(queues), snapshot.taken_at)
        data = metric_data(pools, snapshot, counts) + service_data(pools, snapshot, counts, service)
        data += unstamped_data(pools, snapshot)
    finally:
        inspector.close()
        reader.close()
    return {
        "taken_at": snapshot.taken_at,
        "queues": {
            q.queue: {
                "waiting": q.waiting,
                "in_flight": q.in_flight,
                "oldest_age_seconds": q.oldest_age(snapshot.taken_at),
                "unstamped": q.unstamped,
            }
            for q in snapshot.queues
        },
        "metrics": [_plain(d) for d in data],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.publisher", description="Take one metrics sample and print it as JSON."
    )
    parser.add_argument("--once", action="store_true", required=True, help="take one sample and print it")
    parser.add_argument("--broker-url", required=True, help="redis://, rediss://, amqp:// or amqps:// URL")
    parser.add_argument("--queues", required=True, help="comma-separated queues, e.g. default,reports")
    parser.add_argument("--pool", default="default", help="the Pool dimension of the printed datums")
    parser.add_argument("--in-service", type=int, default=0, help="in-service instances to divide by")
    parser.add_argument("--management-url", default=None, help="RabbitMQ management API (default: broker host)")
    args = parser.parse_args(argv)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    if not queues:
        parser.error("--queues: name at least one queue")
    try:
        result = sample(args.broker_url, queues, args.pool, args.in_service, args.management_url)
    except InspectionError as exc:
        print(f"worker.publisher.handler: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0
