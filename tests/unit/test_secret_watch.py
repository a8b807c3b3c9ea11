"""The secret watch (worker.instance.secret_watch): the broker URL read again from Secrets Manager (moto) or
a file, a change reported once, a refused login read at once; and the units restart its exit status."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.support.units import restart_prevented, unit_settings
from worker.instance import secret_watch
from worker.instance.secret_watch import (
    SECRET_CHANGED_EXIT_CODE,
    SecretReadError,
    SecretWatch,
    WatchSettings,
    read_broker_url,
)

REGION = "eu-west-1"
OLD, NEW = "rediss://:old@broker.internal:6379/0", "rediss://:new@broker.internal:6379/0"


def _document(url: str) -> str:
    return json.dumps({"CELERY_BROKER_URL": url, "CELERY_QUEUE_TYPE": "classic"})


@pytest.fixture
def secretsmanager(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)
        client.create_secret(Name="celery-cluster/dev/broker", SecretString=_document(OLD))
        yield client


def test_the_secrets_manager_secret_is_read_again_after_put_secret_value(secretsmanager: object) -> None:
    settings = WatchSettings(secret_id="celery-cluster/dev/broker")
    assert read_broker_url(settings) == OLD
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId="celery-cluster/dev/broker", SecretString=_document(NEW)
    )
    assert read_broker_url(settings) == NEW


def test_a_missing_secret_is_an_error_naming_it(secretsmanager: object) -> None:
    with pytest.raises(SecretReadError, match="ResourceNotFoundException"):
        read_broker_url(WatchSettings(secret_id="celery-cluster/dev/nope"))


def test_the_file_stand_in_and_no_source(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    path.write_text(_document(OLD))
    assert read_broker_url(WatchSettings(secret_file=path)) == OLD
    path.write_text("[]")
    with pytest.raises(SecretReadError, match="not a JSON object"):
        read_broker_url(WatchSettings(secret_file=path))
    assert read_broker_url(WatchSettings()) is None


def test_a_change_is_reported_once_and_an_unreadable_secret_is_not_a_change() -> None:
    answers: list[object] = [OLD, RuntimeError("throttled"), None, NEW, NEW]
    calls: list[str] = []

    def read() -> str | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, str) or answer is None else None

    watch = SecretWatch(OLD, read, interval=3600, on_change=lambda: calls.append("changed"))
    assert [watch.check() for _ in range(4)] == [False, False, False, True]
    assert calls == ["changed"]
    assert watch.changed.is_set()


def test_a_nudge_reads_the_secret_at_once_not_at_the_next_interval() -> None:
    changed = threading.Event()
    url = [OLD]
    watch = SecretWatch(OLD, lambda: url[0], interval=3600, on_change=changed.set).start()
    try:
        url[0] = NEW
        watch.nudge()
        assert changed.wait(30)  # an hour's interval: only the nudge can have read it
    finally:
        watch.stop()


def test_no_source_watches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_SECRET_ID", raising=False)
    monkeypatch.delenv("WORKER_SECRET_FILE", raising=False)
    assert secret_watch.start(OLD, lambda: None) is None


@pytest.mark.parametrize("unit", ["celery-worker.service", "celery-scheduler.service"])
def test_the_units_restart_a_process_that_left_for_a_new_secret(unit: str) -> None:
    """Restart=on-failure/always restarts every status not listed in RestartPreventExitStatus=, and
    ExecStartPre fetch-env runs again at each start (systemd.service(5))."""
    settings = unit_settings(unit)
    assert settings["Restart"][0] in ("on-failure", "always")
    assert str(SECRET_CHANGED_EXIT_CODE) not in restart_prevented(unit)
    assert any("fetch-env" in line for line in settings["ExecStartPre"])
