"""A broker restart in the middle of kombu's sweep of unacked Redis messages must not hold
redelivery back for minutes (`unacked_mutex_expire` in worker/runtime/celeryconfig.py).

kombu's own code, with the worker's transport options: the sweep's lock taken as a sweep takes it,
the broker stopped while it is held (as `Broker.restart` stops it: SIGTERM, AOF fsynced), then a
worker's sweeps on the restarted broker.
"""

from __future__ import annotations

import time

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.transport.redis import Mutex

from infra.servers.redis import RedisServer
from tests.support.whereabouts import redis_whereabouts
from worker.runtime.celeryconfig import build_config
from worker.runtime.settings import load_settings

VISIBILITY_TIMEOUT = 6

pytestmark = pytest.mark.redis


def test_a_sweep_cut_off_by_a_broker_stop_delays_redelivery_by_one_visibility_timeout_at_most() -> None:
    with RedisServer() as server:
        settings = load_settings(
            broker_url=server.url,
            visibility_timeout=VISIBILITY_TIMEOUT,
            task_time_limit=VISIBILITY_TIMEOUT - 1,
            task_soft_time_limit=VISIBILITY_TIMEOUT - 2,
        )
        options = build_config(settings)["broker_transport_options"]
        name = "sweep-lock"
        queue = Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True)
        with Connection(server.url, transport_options=options) as holder:
            holder.Producer().publish(
                {"n": 1}, exchange=queue.exchange, routing_key=name, declare=[queue], headers={"id": "held"}
            )
            # Taken and not acked: the message is in kombu's `unacked` hash, as a task a worker holds.
            assert queue(holder.channel()).get(no_ack=False) is not None

            sweeper = holder.channel()
            # Its release fails: the broker is gone, and the lock stays in the AOF.
            with (
                pytest.raises(redis.ConnectionError),
                sweeper.conn_or_acquire() as client,
                Mutex(client, sweeper.unacked_mutex_key, sweeper.unacked_mutex_expire),
            ):
                server.stop()
            server.start()

            broker = redis.Redis.from_url(server.url)
            try:
                # The lock outlived its holder, for at most one visibility timeout (kombu's own: 300 s).
                left_ms = broker.pttl(sweeper.unacked_mutex_key)
                assert 0 < left_ms <= VISIBILITY_TIMEOUT * 1000, left_ms
                assert (broker.llen(name), broker.hlen("unacked")) == (0, 1)
                places, _ = redis_whereabouts(server.url, name, ["held", "other"])
                assert places == {"held": "held unacked", "other": "nowhere"}

                # A worker's sweeps, at its interval, until the message is back on its queue.
                with Connection(server.url, transport_options=options) as worker:
                    channel = worker.channel()
                    deadline = time.monotonic() + 60
                    while broker.llen(name) == 0 and time.monotonic() < deadline:
                        channel.qos.restore_visible(
                            num=channel.unacked_restore_limit, interval=channel.unacked_restore_throttle
                        )
                        time.sleep(options["unacked_restore_interval"])
                    assert (broker.llen(name), broker.hlen("unacked")) == (1, 0)
                    assert redis_whereabouts(server.url, name, ["held"])[0] == {"held": "on the queue"}
            finally:
                broker.close()
