"""Redis redelivery follows CELERY_VISIBILITY_TIMEOUT closely (the fault tests prove it end to end)."""

from __future__ import annotations

import pytest

from worker.runtime.celeryconfig import build_config, restore_interval
from worker.runtime.settings import load_settings


@pytest.mark.parametrize(("visibility", "interval"), [(2, 1), (6, 1), (100, 10), (3600, 60), (86400, 60)])
def test_restore_sweep_is_a_tenth_of_the_timeout_within_1_to_60_s(visibility: int, interval: int) -> None:
    assert restore_interval(visibility) == interval


def test_redis_transport_sweeps_on_every_interval() -> None:
    options = build_config(load_settings(broker_url="redis://127.0.0.1:6379/0"))["broker_transport_options"]
    assert options["unacked_restore_interval"] == 60
    assert options["unacked_restore_throttle"] == 1  # kombu's default 10 would multiply the delay by ten


def test_task_events_are_off_unless_asked() -> None:
    assert build_config(load_settings(broker_url="amqp://h//"))["worker_send_task_events"] is False
    on = load_settings(broker_url="amqp://h//", task_events="true")
    assert build_config(on)["worker_send_task_events"] is True


@pytest.mark.parametrize(("visibility", "expire"), [(6, 6), (120, 120), (300, 300), (3600, 300)])
def test_the_sweep_lock_expires_with_the_visibility_timeout_at_most_kombus_300_s(visibility: int, expire: int) -> None:
    settings = load_settings(
        broker_url="redis://127.0.0.1:6379/0",
        visibility_timeout=visibility,
        task_time_limit=visibility - 1,
        task_soft_time_limit=visibility - 2,
    )
    assert build_config(settings)["broker_transport_options"]["unacked_mutex_expire"] == expire
