"""Worker settings: every bad value is refused with one line that names the variable."""

from __future__ import annotations

import os

import pytest

from worker.runtime.celeryconfig import build_config
from worker.runtime.settings import SettingsError, check_imports, load_process_settings, load_settings

BROKER = "redis://127.0.0.1:6379/0"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CELERY_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("CELERY_BROKER_URL", "http://example.com", "must start with one of redis://"),
        ("CELERY_BROKER_URL", "redis://", "has no host"),
        ("CELERY_VISIBILITY_TIMEOUT", "ten", "valid integer"),
        ("CELERY_VISIBILITY_TIMEOUT", "-5", "greater than 0"),
        ("CELERY_VISIBILITY_TIMEOUT", "60", "must exceed CELERY_TASK_TIME_LIMIT"),
        ("CELERY_SOFT_SHUTDOWN_TIMEOUT", "-1", "greater than or equal to 0"),
        ("CELERY_SOFT_SHUTDOWN_TIMEOUT", "soon", "valid number"),
        ("CELERY_TASK_SOFT_TIME_LIMIT", "5000", "must be below CELERY_TASK_TIME_LIMIT"),
        ("CELERY_TASK_ROUTES", "{not json", "is not valid JSON"),
        ("CELERY_TASK_ANNOTATIONS", '{"x": {"rate_limit": "fast"}}', "should match pattern"),
        ("CELERY_QUEUE_TYPE", "stream", "'classic' or 'quorum'"),
        ("CELERY_LOG_LEVEL", "LOUD", "'DEBUG'"),
        ("CELERY_JOURNAL_URL", "amqp://x", "must be a redis://"),
        ("CELERY_JOURNAL_URL", "redis://h:70000/0", "port"),
        ("CELERY_BROKER_URL", "amqp://h:notaport//", "has a port that is not a number"),
        ("CELERY_RESULT_BACKEND", "foo://x", "'foo' is not a result backend"),
        ("CELERY_RESULT_BACKEND", "db+postgresql://x/y", "'db+postgresql' is not a result backend"),
        ("CELERY_SOFT_SHUTDOWN_TIMEOUT", "inf", "finite number"),
        ("CELERY_SOFT_SHUTDOWN_TIMEOUT", "nan", "finite number"),
        ("CELERY_DEFAULT_QUEUE", "dead_letter", "must not be the dead-letter queue"),
        ("CELERY_TASK_ROUTES", '{"reports.*": "dead_letter"}', "route 'reports.*' sends tasks to the dead-letter"),
        ("CELERY_TASK_ANNOTATIONS", '{"x": {"soft_time_limit": 9, "time_limit": 5}}', "[x]: soft_time_limit (9 s)"),
        ("CELERY_TASK_ANNOTATIONS", '{"x": {"soft_time_limit": 1800}}', "below CELERY_TASK_TIME_LIMIT (1800 s)"),
        ("CELERY_TASK_ANNOTATIONS", '{"x": {"time_limit": 3600}}', "below CELERY_VISIBILITY_TIMEOUT (3600 s)"),
        ("CELERY_TASK_ANNOTATIONS", '{"x": {"time_limit": "inf"}}', "finite number"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", BROKER)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(variable), message
    assert fragment in message
    assert "\n" not in message


def test_missing_broker_url_is_named() -> None:
    with pytest.raises(SettingsError, match=r"^CELERY_BROKER_URL: is required"):
        load_settings()


def test_broker_password_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "http://user:hunter2@example.com")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_production_defaults() -> None:
    config = build_config(load_settings(broker_url=BROKER))
    assert config["accept_content"] == ["json"]
    assert config["task_serializer"] == "json"
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_ignore_result"] is True
    assert config["broker_transport_options"]["visibility_timeout"] == 3600
    # The window is worker.runtime.shutdown's; Celery's own soft shutdown would sleep all of it.
    assert config["worker_soft_shutdown_timeout"] == 0
    assert config["result_backend"] == BROKER


def test_routes_and_annotations_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_TASK_ROUTES", '{"reports.*": "reports"}')
    monkeypatch.setenv("CELERY_TASK_ANNOTATIONS", '{"webhooks.deliver": {"rate_limit": "10/s", "time_limit": 30}}')
    config = build_config(load_settings(broker_url="amqp://guest:guest@127.0.0.1:5672//"))
    assert config["task_routes"] == {"reports.*": {"queue": "reports"}}
    assert config["task_annotations"] == {"webhooks.deliver": {"rate_limit": "10/s", "time_limit": 30.0}}
    assert sorted(q.name for q in config["task_queues"]) == ["default", "reports"]
    assert config["result_backend"] == "rpc://"


def test_annotation_limits_that_fit_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", BROKER)
    monkeypatch.setenv(
        "CELERY_TASK_ANNOTATIONS", '{"x": {"soft_time_limit": 20, "time_limit": 30}, "y": {"time_limit": 60}}'
    )
    assert load_settings().task_annotations["x"].time_limit == 30
    # On RabbitMQ there is no visibility timeout to outlast.
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://h//")
    monkeypatch.setenv("CELERY_TASK_ANNOTATIONS", '{"x": {"time_limit": 7200}}')
    assert load_settings().task_annotations["x"].time_limit == 7200


def test_imports_must_be_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", BROKER)
    monkeypatch.setenv("CELERY_IMPORTS", "worker.tasks.reports, nonexistent.module")
    with pytest.raises(SettingsError, match=r"^CELERY_IMPORTS: module 'nonexistent.module' cannot be imported"):
        check_imports(load_settings())
    monkeypatch.setenv("CELERY_IMPORTS", "worker.tasks.reports")
    check_imports(load_settings())


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("WORKER_POOL", "gevent", "(got 'gevent')"),
        ("WORKER_POOL", "thread", "(got 'thread')"),
        ("WORKER_CONCURRENCY", "0", "greater than or equal to 1"),
        ("WORKER_CONCURRENCY", "two", "valid integer"),
    ],
)
def test_bad_process_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_process_settings()
    assert str(caught.value).startswith(f"{variable}: ")
    assert fragment in str(caught.value)
