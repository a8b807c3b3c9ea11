"""Poison messages and failing tasks end in the dead-letter queue with their reason, exactly once,
and the tasks queued behind them still run. On Redis and on RabbitMQ."""

from __future__ import annotations

import base64
import json
import pickle
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.raw_messages import publish_task_body
from worker.runtime import dead_letters as deadletter


class Exploit:
    """Unpickling this creates `path`: proof that a pickle payload was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_poison_messages_are_dead_lettered_and_the_queue_keeps_flowing(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "pickle-was-executed"
    pickled = pickle.dumps(((Exploit(marker),), {}, {}))
    poison = {
        publish_task_body(cluster, "cluster.canary", pickled, "application/x-python-serialize", "binary"): "pickle",
        publish_task_body(cluster, "cluster.canary", b"\xff\xfe{not json", "application/json"): "undecodable",
        publish_task_body(cluster, "no.such.task", json.dumps([["x"], {}, {}]).encode(), "application/json"): "unknown",
    }
    behind = cluster.send("cluster.canary", ["behind"], count=5)
    cluster.start_worker()

    result = cluster.wait_all(behind, timeout=30)
    assert result.lost == 0, cluster.log_tail()
    letters = cluster.wait_dead_letters(len(poison), timeout=30)
    reasons = {poison[d["task_id"]]: d["reason"] for d in letters if d["task_id"] in poison}
    assert reasons == {"pickle": "content_disallowed", "undecodable": "decode_error", "unknown": "unknown_task"}
    assert len(letters) == len(poison), f"duplicate dead letters: {letters}"
    by_kind = {poison[d["task_id"]]: d for d in letters}
    assert base64.b64decode(by_kind["pickle"]["body_b64"]) == pickled  # kept intact for inspection
    assert by_kind["unknown"]["task"] == "no.such.task"
    assert all(d["source_queue"] == cluster.queue for d in letters)
    assert not marker.exists(), "a pickle payload was unpickled on the worker"
    # None of them ran: the journal has no entry for them.
    assert not [e for e in cluster.journal() if e["task_id"] in poison]


class _Unavailable(BaseHTTPRequestHandler):
    keys: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).keys.append(self.headers.get("Idempotency-Key", ""))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def unavailable_endpoint() -> Iterator[tuple[str, list[str]]]:
    """An HTTP endpoint that always answers 503, and the Idempotency-Keys it received."""
    keys: list[str] = []
    handler = type("Handler", (_Unavailable,), {"keys": keys})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", keys
    server.shutdown()
    server.server_close()


def test_task_that_exhausts_its_retries_is_dead_lettered_once(
    broker: Any, cluster_factory: Any, unavailable_endpoint: tuple[str, list[str]]
) -> None:
    url, keys = unavailable_endpoint
    # One retry instead of five keeps the test short; the annotation is how an operator would do it.
    cluster = cluster_factory(broker, CELERY_TASK_ANNOTATIONS='{"webhooks.deliver": {"max_retries": 1}}')
    cluster.start_worker()
    delivery_id = uuid.uuid4().hex
    (task_id,) = [
        cluster.client.send_task("webhooks.deliver", args=[delivery_id, url, {"n": 1}], queue=cluster.queue).id
    ]
    behind = cluster.send("cluster.canary", ["behind"], count=3)

    letters = cluster.wait_dead_letters(1, timeout=30)
    assert [(d["task_id"], d["reason"], d["retries"]) for d in letters] == [(task_id, "retries_exhausted", 1)]
    assert "HTTP 503" in letters[0]["error"]
    assert letters[0]["args"] == [delivery_id, url, {"n": 1}]
    assert keys == [delivery_id, delivery_id]  # first try and one retry, same idempotency key
    assert cluster.wait_all(behind, timeout=30).lost == 0


def test_dead_letter_cli_peeks_and_removes(cluster: Cluster) -> None:
    records = [{"reason": "task_failed", "task_id": f"t{i}"} for i in range(3)]
    for record in records:
        deadletter.publish(cluster.client, record, deadletter.dead_letter_queue(cluster.dead_letter_queue))
    env = {"CELERY_BROKER_URL": cluster.broker.url, "CELERY_DEAD_LETTER_QUEUE": cluster.dead_letter_queue}

    def cli(*args: str) -> list[dict[str, Any]]:
        done = subprocess.run(
            [sys.executable, "-m", "worker.deadletter", *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return [json.loads(line) for line in done.stdout.splitlines()]

    def ids(found: list[dict[str, Any]]) -> list[str]:
        return sorted(r["task_id"] for r in found)  # a peek may reorder them on Redis

    assert len(cli("--limit", "2")) == 2
    assert ids(cli()) == ["t0", "t1", "t2"]  # peeking left them in place
    assert ids(cli("--remove")) == ["t0", "t1", "t2"]
    assert cli() == []


class _Switchable(BaseHTTPRequestHandler):
    """Answers `status[0]`; the test flips it from 503 to 200 to stand for the fix being deployed."""

    status: list[int]
    keys: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).keys.append(self.headers.get("Idempotency-Key", ""))
        self.send_response(type(self).status[0])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def _poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _deadletter_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "CELERY_BROKER_URL": cluster.broker.url,
        "CELERY_DEAD_LETTER_QUEUE": cluster.dead_letter_queue,
        "CELERY_DEFAULT_QUEUE": cluster.queue,
    }
    return subprocess.run(
        [sys.executable, "-m", "worker.deadletter", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_dead_lettered_task_replayed_after_the_fix_runs_once_and_leaves_the_queue(
    broker: Any, cluster_factory: Any
) -> None:
    status: list[int] = [503]
    keys: list[str] = []
    handler = type("Handler", (_Switchable,), {"status": status, "keys": keys})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        cluster = cluster_factory(broker, CELERY_TASK_ANNOTATIONS='{"webhooks.deliver": {"max_retries": 0}}')
        cluster.start_worker()
        delivery_id = uuid.uuid4().hex
        task = cluster.client.send_task("webhooks.deliver", args=[delivery_id, url, {"n": 1}], queue=cluster.queue)
        _poll(lambda: len(cluster.dead_letters(remove=False)) == 1, 30, "the dead letter")
        (letter,) = cluster.dead_letters(remove=False)
        assert (letter["task_id"], letter["reason"]) == (task.id, "task_failed")
        letter_id = letter["dead_letter_id"]

        shown = _deadletter_cli(cluster, "show", letter_id)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["args"] == [delivery_id, url, {"n": 1}]
        dry = _deadletter_cli(cluster, "replay", letter_id, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"would replay {letter_id} (webhooks.deliver) to {cluster.queue}" in dry.stdout
        assert [r["dead_letter_id"] for r in cluster.dead_letters(remove=False)] == [letter_id]  # dry run: still there
        assert keys == [delivery_id]

        status[0] = 200  # the fix
        replayed = _deadletter_cli(cluster, "replay", letter_id)
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1 dead letter(s)" in replayed.stdout

        # The replay ran once (a second delivery, which now succeeds) and its dead letter is gone.
        def succeeded() -> bool:
            return any(e["task_id"] == task.id and e.get("state") == "SUCCESS" for e in cluster.journal())

        _poll(succeeded, 30, "the replayed task to succeed")
        assert cluster.dead_letters(remove=False) == []
        assert keys == [delivery_id, delivery_id]
        missing = _deadletter_cli(cluster, "show", letter_id)
        assert missing.returncode == 1
        assert f"no dead letter with dead-letter id or task id {letter_id}" in missing.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_dead_letter_purge_counts_on_a_dry_run_and_then_empties_the_queue(cluster: Cluster) -> None:
    for i in range(3):
        deadletter.publish(
            cluster.client,
            {"reason": "task_failed", "task_id": f"p{i}"},
            deadletter.dead_letter_queue(cluster.dead_letter_queue),
        )
    dry = _deadletter_cli(cluster, "purge", "--dry-run")
    assert (dry.returncode, dry.stdout.strip()) == (
        0,
        f"would remove 3 dead letter(s) from {cluster.dead_letter_queue}",
    )
    assert len(cluster.dead_letters(remove=False)) == 3
    done = _deadletter_cli(cluster, "purge")
    assert (done.returncode, done.stdout.strip()) == (0, f"removed 3 dead letter(s) from {cluster.dead_letter_queue}")
    assert cluster.dead_letters(remove=False) == []


def _logged_dead_letter(worker_log: Path, task_id: str, timeout: float) -> str:
    """The dead-letter id the worker's log line gives for `task_id` ("dead-lettered <task id> as <id> ...")."""
    found: list[str] = []

    def logged() -> bool:
        text = worker_log.read_text(errors="replace") if worker_log.exists() else ""
        found[:] = re.findall(rf"dead-lettered {re.escape(task_id)} as (\w+) \(", text)
        return bool(found)

    _poll(logged, timeout, f"the worker's dead-lettered line for {task_id}")
    return found[-1]


def test_a_dead_letter_is_found_by_the_task_id_in_the_workers_log_line(cluster: Cluster) -> None:
    worker = cluster.start_worker()
    (task_id,) = cluster.send("no.such.task", ["x"])  # a name no worker knows: dead-lettered, not dropped
    letter_id = _logged_dead_letter(worker.log_path, task_id, timeout=30)

    for wanted in (task_id, letter_id):  # either id from the log line finds it
        shown = _deadletter_cli(cluster, "show", wanted)
        assert shown.returncode == 0, shown.stderr
        record = json.loads(shown.stdout)
        assert (record["task_id"], record["dead_letter_id"], record["reason"]) == (task_id, letter_id, "unknown_task")
    dry = _deadletter_cli(cluster, "replay", task_id, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would replay {letter_id} (no.such.task) to {cluster.queue}" in dry.stdout

    # Replayed by the task id: the worker still does not know the task, so it is dead-lettered again, under a
    # new dead-letter id that the next log line gives; the task id still finds it, and only it.
    replayed = _deadletter_cli(cluster, "replay", task_id)
    assert (replayed.returncode, replayed.stdout.splitlines()[-1]) == (0, "replayed 1 dead letter(s)"), replayed
    _poll(lambda: len(re.findall(f"dead-lettered {task_id} as", worker.log_path.read_text())) == 2, 30, "again")
    again = _logged_dead_letter(worker.log_path, task_id, timeout=1)
    assert again != letter_id
    (record,) = [json.loads(_deadletter_cli(cluster, "show", task_id).stdout)]
    assert record["dead_letter_id"] == again
    # Celery's own line says the opposite of what happened to the message: not in the log.
    assert "ignored and discarded" not in worker.log_path.read_text()
