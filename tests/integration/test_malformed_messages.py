"""Malformed messages end in the dead-letter queue with their reason, the worker keeps running, and the
canaries queued behind them run. One log line per message says what happened. On Redis and RabbitMQ.

Before this, a JSON body of the wrong shape for a known task ended the worker ("too many values to
unpack") and, on Redis, came back to the head of its queue after each restart, so nothing behind it ran;
a bad base64 body, a non-JSON envelope or a JSON array envelope ended the worker and the message was
gone; an envelope without properties was logged as a lost connection and dropped.

The envelope shapes are Redis's (kombu keeps each message there as a JSON object with `properties`);
an AMQP message always has an envelope the broker built, so on RabbitMQ the same faults are bodies and
properties: a body that is not JSON, a JSON array, a message with no properties at all, and a content
encoding that does not exist.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

from tests.support.brokers import Broker
from tests.support.cluster import Cluster
from tests.support.fixtures import ClusterFactory
from tests.support.raw_messages import celery_headers, publish_amqp, publish_task_body, push_redis_envelope

CANARIES = 5


def _wrong_shapes(cluster: Cluster, token: str) -> dict[str, tuple[str, str]]:
    """Celery's headers for a known task, a JSON body that is not [args, kwargs, embed]: by task id."""
    four = json.dumps([token, {}, {}, "one too many"]).encode()
    one = json.dumps({"token": token}).encode()
    return {
        publish_task_body(cluster, "cluster.canary", four, "application/json"): ("wrong shape (list)", "invalid_task"),
        publish_task_body(cluster, "cluster.canary", one, "application/json"): ("wrong shape (object)", "invalid_task"),
    }


def _redis_envelopes(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """Bytes where kombu's envelope belongs, each holding its own token: by token."""
    shapes: dict[str, tuple[str, str]] = {}

    def push(name: str, make: Callable[[str], bytes]) -> None:
        token = uuid.uuid4().hex
        push_redis_envelope(cluster, make(token))
        shapes[token] = (name, "malformed_envelope")

    def bad_base64(token: str) -> bytes:
        # 33 base64 characters: one more than a multiple of 4, which no padding can fix.
        envelope = {
            "body": "x" + token,
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "headers": celery_headers(cluster, "cluster.canary"),
            "properties": {
                "body_encoding": "base64",
                "delivery_tag": uuid.uuid4().hex,
                "delivery_info": {"exchange": cluster.queue, "routing_key": cluster.queue},
                "delivery_mode": 2,
                "priority": 0,
            },
        }
        return json.dumps(envelope).encode()

    def without_properties(token: str) -> bytes:
        body = base64.b64encode(json.dumps([[token], {}, {}]).encode()).decode()
        headers = celery_headers(cluster, "cluster.canary")
        envelope = {"body": body, "content-type": "application/json", "headers": headers, "token": token}
        return json.dumps(envelope).encode()

    push("bad base64 body", bad_base64)
    push("not JSON", lambda token: f"not json {{ {token}".encode())
    push("JSON array", lambda token: json.dumps([token, {"properties": {}}]).encode())
    push("no properties", without_properties)
    return shapes


def _amqp_bodies(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """RabbitMQ's counterparts: the body and properties are the producer's to get wrong: by token."""
    shapes: dict[str, tuple[str, str]] = {}
    for name, reason, body, properties in [
        ("not JSON", "decode_error", "not json {{ {}", {"content_type": "application/json"}),
        ("JSON array", "unknown_message", '["{}", 1]', {"content_type": "application/json"}),
        ("no properties", "unknown_message", "{} no properties at all", {}),
        (
            "unknown encoding",
            "unknown_message",
            '[["{}"], {{}}, {{}}]',
            {"content_type": "application/json", "content_encoding": "no-such-codec"},
        ),
    ]:
        token = uuid.uuid4().hex
        publish_amqp(cluster, body.format(token).encode(), **properties)
        shapes[token] = (name, reason)
    return shapes


def _which(letter: dict[str, Any], by_id: dict[str, tuple[str, str]], by_token: dict[str, tuple[str, str]]) -> str:
    if letter.get("task_id") in by_id:
        return str(letter["task_id"])
    body = base64.b64decode(letter.get("body_b64") or "")
    found = [token for token in by_token if token.encode() in body]
    assert len(found) == 1, f"a dead letter of no message sent here, or of two: {letter}"
    return found[0]


def test_malformed_messages_are_dead_lettered_and_the_canaries_behind_them_run(
    broker: Broker, cluster_factory: ClusterFactory
) -> None:
    cluster = cluster_factory(broker)
    by_id = _wrong_shapes(cluster, uuid.uuid4().hex)
    by_token = _redis_envelopes(cluster) if broker.is_redis else _amqp_bodies(cluster)
    behind = cluster.send("cluster.canary", ["behind"], count=CANARIES)
    worker = cluster.start_worker()

    result = cluster.wait_all(behind, timeout=60)
    assert result.lost == 0, f"{result.lost} of {CANARIES} canaries did not run\n{cluster.log_tail()}"
    sent = len(by_id) + len(by_token)
    letters = cluster.wait_dead_letters(sent, timeout=30)
    assert worker.running(), cluster.log_tail(worker)

    shapes = {**by_id, **by_token}
    got = {_which(letter, by_id, by_token): letter for letter in letters}
    assert len(got) == len(letters) == sent, f"missing or duplicate dead letters: {letters}"
    assert {key: letter["reason"] for key, letter in got.items()} == {key: s[1] for key, s in shapes.items()}
    assert all(letter["source_queue"] == cluster.queue for letter in letters), letters
    # None of them ran.
    assert not [e for e in cluster.journal() if e["task_id"] in by_id]

    # One log line per message says what happened, and nothing else complains.
    lines = worker.log_path.read_text(errors="replace").splitlines()
    for key, letter in got.items():
        mentions = [line for line in lines if letter["dead_letter_id"] in line]
        assert len(mentions) == 1, (shapes[key], mentions)
        assert letter["reason"] in mentions[0], mentions[0]
    loud = [line for line in lines if '"level": "error"' in line or '"level": "critical"' in line]
    assert not loud, "\n".join(loud)
    print(
        f"malformed on {broker.kind}: {sent} sent, {len(letters)} dead-lettered, "
        f"{result.completed}/{CANARIES} canaries ran, worker alive"
    )
