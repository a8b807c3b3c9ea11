"""The diagnostic tasks and the publish timestamp, through a real worker on both brokers."""

from __future__ import annotations

import socket
import time
import uuid

from kombu.connection import Connection

from tests.support.cluster import Cluster
from worker import __version__
from worker.names import PUBLISHED_AT_HEADER
from worker.runtime.celeryconfig import queue as queue_entity
from worker.runtime.settings import load_settings


def _peek_headers(cluster: Cluster) -> list[dict[str, object]]:
    """Headers of the messages waiting in the cluster's queue, left in place."""
    settings = load_settings(broker_url=cluster.broker.url, default_queue=cluster.queue)
    headers = []
    with Connection(cluster.broker.url) as connection:
        channel = connection.channel()
        bound = queue_entity(cluster.queue, settings)(channel)
        bound.declare()
        while (message := bound.get(no_ack=False, accept=["json"])) is not None:
            headers.append(dict(message.headers))
        channel.close()  # hands the messages back
    return headers


def test_publish_timestamp_header_reaches_the_broker_and_the_worker(cluster: Cluster) -> None:
    before = time.time()
    sent = cluster.send("cluster.canary", ["stamp"], count=3)
    after = time.time()

    headers = _peek_headers(cluster)
    assert sorted(str(h["id"]) for h in headers) == sorted(sent)
    stamps = [h[PUBLISHED_AT_HEADER] for h in headers]
    assert all(isinstance(s, float) and before <= s <= after for s in stamps), stamps

    cluster.start_worker()
    result = cluster.wait_all(sent, timeout=30)
    assert result.lost == 0, cluster.log_tail()
    journalled = {e["task_id"]: float(e["published_at"]) for e in cluster.journal() if e["task_id"] in sent}
    # The worker read the same stamp the producer wrote, so queue wait is measured from publish.
    by_id = {str(h["id"]): h[PUBLISHED_AT_HEADER] for h in headers}
    assert journalled == by_id
    assert all(w >= 0 for w in result.waits)


def test_diagnostic_tasks_answer(cluster: Cluster) -> None:
    cluster.start_worker()
    client = cluster.client

    pong = client.send_task("cluster.ping", queue=cluster.queue).get(timeout=30)
    assert pong["hostname"] == socket.gethostname()
    assert pong["version"] == __version__
    assert isinstance(pong["pid"], int)
    assert pong["pid"] != cluster.workers[0].pid  # a pool child ran it, not the main process

    tokens = [uuid.uuid4().hex for _ in range(5)]
    results = [client.send_task("cluster.canary", args=[t], queue=cluster.queue) for t in tokens]
    assert [r.get(timeout=30) for r in results] == tokens

    sent = cluster.send("cluster.sleep", [0.3])
    tally = cluster.wait_all(sent, timeout=30)
    assert tally.completed == 1
    (entry,) = [e for e in cluster.journal() if e["task_id"] == sent[0]]
    assert entry["state"] == "SUCCESS"
    assert float(entry["finished_at"]) - float(entry["started_at"]) >= 0.3


def test_sleep_refuses_a_bad_argument_into_the_dead_letter_queue(cluster: Cluster) -> None:
    cluster.start_worker()
    (task_id,) = cluster.send("cluster.sleep", [-1])
    letters = cluster.wait_dead_letters(1, timeout=30)
    assert [(d["task_id"], d["reason"]) for d in letters] == [(task_id, "task_failed")]
    assert "seconds must be within" in letters[0]["error"]
