"""A Redis transport whose take is atomic: no message is lost between taking it and recording it.

kombu's Redis transport takes a message with BRPOP and records it as unacknowledged (the `unacked`
hash, which its sweep restores after the visibility timeout) with a second command. A worker killed
between the two, or a connection that drops after Redis ran the BRPOP but before its reply was read,
loses the message: it is in no queue and in no hash (celery/kombu#305, open). With 10 ms tasks a
worker takes hundreds of messages a second, so a SIGKILL at a random moment landed in that window
often (3 lost in 20 kills here before this transport).

Redis has no blocking command that pops from several lists into a hash (BLMOVE moves from one list,
and a multi-key BLMOVE is an open request, redis/redis#9891), and scripts cannot block. So:
- the take is a Lua script (`TAKE_SCRIPT`): pop from the first non-empty queue key and record the
  message in `unacked` and `unacked_index` in the same command; Redis runs a script atomically, so a
  message is always in its queue or recorded, whatever happens to the client or its reply;
- while the queues are empty the channel waits with `BLMOVE key key RIGHT RIGHT timeout` on one
  queue's key, which moves the last element of a list to where it already is: it blocks until that
  list has an element, or the timeout, and changes nothing. Then it takes again.

The cost: with one queue, a message sent to an idle worker is taken as soon as it arrives (the wait
watches that queue's key); a message with a priority (its own key) or, with several queues, one sent
to a queue the wait is not watching waits up to `MULTI_QUEUE_WAIT_SECONDS` (or `brpop_timeout`, 1 s,
for priority keys of a single queue). A busy worker takes back to back with no wait, one command per
message as with BRPOP.

The script also wraps an envelope kombu cannot read (not JSON, not an object, no properties or
delivery tag) in a readable one marked with `MALFORMED_HEADER`, and `Message` does the same for an
envelope whose body cannot be decoded, so the consumer dead-letters them (worker.runtime.dead_letters)
instead of crashing on them or dropping them.

A full Redis (maxmemory reached under `noeviction`, which the stack sets) refuses every command that
can grow memory, BLMOVE included even on an empty list, and every command queued in a MULTI, even one
that frees memory ("OOM command not allowed when used memory > 'maxmemory'"). kombu acks with MULTI
ZREM HDEL EXEC, so a worker's first ack on a full Redis ended it ("Unrecoverable error:
OutOfMemoryError"). Here:
- the take still runs (worker.runtime.redis_take_script says why), so queued work keeps being taken;
- an ack is HDEL then ZREM without MULTI (`QoS.ack`), which a full Redis accepts;
- an idle wait that Redis refuses becomes a sleep on the server (BRPOP on `FULL_WAIT_KEY`, a key nothing
  writes to; BRPOP only removes, so it is not refused) of `FULL_WAIT_FIRST_SECONDS`, doubling up to
  `FULL_WAIT_MAX_SECONDS`, then a take; BLMOVE again once Redis accepts it. One log line when the wait is
  refused, one when it works again;
- a requeue or a sweep that Redis refuses leaves the message recorded as unacknowledged: the sweep
  restores it once memory frees (after CELERY_VISIBILITY_TIMEOUT).
Producers' publishes are refused while Redis is full; they get the error (celery_cluster_client retries,
then raises), so nothing is lost silently.

Requires Redis 6.2 or later (BLMOVE): ElastiCache for Redis 6.2+ and every Valkey; the stack config
refuses older engine versions (infra.config.stack).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
import uuid
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import NoScriptError, OutOfMemoryError

from worker.names import MALFORMED_HEADER
from worker.runtime.redis_take_script import TAKE_SCRIPT

TRANSPORT = "worker.runtime.redis_take:Transport"
"""What `broker_transport` names for a Redis broker (worker.runtime.celeryconfig)."""

# With several queues the wait watches one of them at a time; a message sent to another waits this long
# at most on an idle worker. Short enough not to matter against queue-wait SLOs of seconds; each idle
# wait costs two commands.
MULTI_QUEUE_WAIT_SECONDS = 0.25

# Counter behind the delivery tags of wrapped envelopes (they have none of their own).
MALFORMED_COUNTER_KEY = "celery-cluster:malformed-seq"

# While Redis is full an idle channel sleeps on the server with BRPOP on this key (never written), then
# takes again: a message queued before memory ran out waits this long at most. The sleep doubles from the
# first to the max while Redis stays full, so an idle worker costs three commands per max at most.
FULL_WAIT_KEY = "celery-cluster:full-broker-wait"
FULL_WAIT_FIRST_SECONDS = 0.1
FULL_WAIT_MAX_SECONDS = 2.0

logger = logging.getLogger(__name__)

_TAKE = "take"
_WAIT = "wait"
_SLEEP = "sleep"
_REPLY = {_TAKE: "EVALSHA", _WAIT: "BLMOVE", _SLEEP: "BRPOP"}


class QoS(kombu_redis.QoS):
    """kombu's QoS, except that a message the take script recorded is not recorded a second time."""

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.taken_by_script(delivery_tag):
            virtual.QoS.append(self, message, delivery_tag)  # in-process bookkeeping only
            return
        super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        self._forget(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if not requeue:
            self.ack(delivery_tag)
            return
        try:
            self.restore_by_tag(delivery_tag, leftmost=True)  # kombu's: a WATCH/MULTI transaction
        except OutOfMemoryError:
            logger.warning(
                "could not requeue message %s: the broker is full; it stays recorded as unacknowledged "
                "and comes back when memory frees (after the visibility timeout)",
                delivery_tag,
            )
        virtual.QoS.ack(self, delivery_tag)

    def _forget(self, delivery_tag: str) -> None:
        """kombu's removal from the unacked hash and index, without MULTI (a full Redis refuses every command
        queued in one). The message goes first: a process that dies between the two leaves an index entry
        with no message, which the sweep drops (kombu's restore_by_tag), never a message that comes back."""
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            pipe.hdel(self.unacked_key, delivery_tag).zrem(self.unacked_index_key, delivery_tag).execute()

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        # A full Redis refuses the sweep's lock (SET NX); the next sweep tries again.
        with contextlib.suppress(OutOfMemoryError):
            super().restore_visible(*args, **kwargs)


class Message(virtual.Message):
    """A message whose body cannot be decoded (bad base64, say) becomes a marked message with the raw
    envelope as its body, keeping its delivery tag, so it is acked (and unrecorded) like any other."""

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        try:
            super().__init__(payload, channel=channel, **kwargs)
        except Exception as exc:  # anything kombu raises on a bad envelope; the consumer reports it
            super().__init__(_wrapped(payload, f"the envelope cannot be read: {exc!r}"), channel=channel, **kwargs)


def _wrapped(payload: Any, problem: str) -> dict[str, Any]:
    properties = payload.get("properties") if isinstance(payload, dict) else None
    properties = properties if isinstance(properties, dict) else {}
    tag = properties.get("delivery_tag")
    info = properties.get("delivery_info")
    raw = json.dumps(payload, default=repr).encode()
    return {
        "body": base64.b64encode(raw).decode(),
        "content-type": "application/octet-stream",
        "content-encoding": "binary",
        "headers": {MALFORMED_HEADER: problem},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": tag if isinstance(tag, str) and tag else f"malformed-{uuid.uuid4().hex}",
            "delivery_info": info if isinstance(info, dict) else {"exchange": "", "routing_key": ""},
        },
    }


def _decoded(item: bytes, queue: str) -> dict[str, Any]:
    """The envelope as a dict. What the script recorded always decodes; a message taken for a consumer
    without acks is passed on as it came, so one that is not a JSON object is wrapped here."""
    try:
        payload = loads(bytes_to_str(item))
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        return payload
    wrapped = _wrapped({}, "the envelope is not a JSON object")
    wrapped["body"] = base64.b64encode(item).decode()
    wrapped["properties"]["delivery_info"] = {"exchange": "", "routing_key": queue}
    return wrapped


class Channel(kombu_redis.Channel):
    QoS = QoS
    Message = Message

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.global_keyprefix:
            raise ValueError("worker.runtime.redis_take does not support the global_keyprefix transport option")
        self._next = _TAKE
        self._pending = _TAKE
        self._waited = 0
        self._taken_tag: str | None = None
        self._without_acks: set[str] = set()
        self._full_wait = 0.0  # the sleep while Redis refuses the wait; 0 while it accepts it
        self._take = self.client.register_script(TAKE_SCRIPT)

    def maybe_refresh_binding_expiry(self) -> None:
        # kombu keeps the binding tables of expiring queues (Celery's pidbox) alive with a transaction that a
        # full Redis refuses, and logged a traceback for it every second; the wait's one line says Redis is
        # full, and the refresh runs again on the next tick.
        with contextlib.suppress(OutOfMemoryError):
            super().maybe_refresh_binding_expiry()

    def taken_by_script(self, delivery_tag: str) -> bool:
        return delivery_tag is not None and delivery_tag == self._taken_tag

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        (self._without_acks.add if no_ack else self._without_acks.discard)(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _keys(self, queues: list[str]) -> list[tuple[str, str]]:
        """(key, queue) in the order kombu's BRPOP lists them: each priority step's key of every queue."""
        return [(self._q_for_pri(queue, pri), queue) for pri in self.priority_steps for queue in queues]

    def _take_args(self, keys: list[tuple[str, str]]) -> tuple[list[str], list[Any]]:
        args: list[Any] = [time.time()]
        for _, queue in keys:
            args += ["0" if queue in self._without_acks else "1", queue]
        args.append(MALFORMED_HEADER)
        return [self.unacked_key, self.unacked_index_key, MALFORMED_COUNTER_KEY, *(k for k, _ in keys)], args

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        connection = self.client.connection
        self._in_poll = connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]  # kombu declares it None
        if self._next == _SLEEP:
            self._pending = _SLEEP
            connection.send_command("BRPOP", FULL_WAIT_KEY, self._full_wait)
            return
        if self._next == _WAIT:
            # One queue's key at a time, in turn; the next take tries them all.
            key = self._q_for_pri(queues[self._waited % len(queues)], 0)
            self._waited += 1
            wait = timeout if timeout is not None else self.brpop_timeout
            if len(queues) > 1:
                wait = min(wait, MULTI_QUEUE_WAIT_SECONDS)
            self._pending = _WAIT
            connection.send_command("BLMOVE", key, key, "RIGHT", "RIGHT", wait or 0)
            return
        keys, args = self._take_args(self._keys(queues))
        self._pending = _TAKE
        connection.send_command("EVALSHA", self._take.sha, len(keys), *keys, *args)

    def _brpop_read(self, **options: Any) -> bool:
        connection = self.client.connection
        try:
            try:
                reply = self.client.parse_response(connection, _REPLY[self._pending], **options)
            except self.connection_errors:
                connection.disconnect()  # reconnect on the next poll, as kombu does
                raise
            except NoScriptError:  # a restarted Redis forgot the script
                self._next = _TAKE
                self.client.script_load(TAKE_SCRIPT)
                raise virtual.Empty() from None
            except OutOfMemoryError as exc:  # Redis is full: sleep on it instead, then take again
                self._on_full(exc)
                raise virtual.Empty() from None
            if self._pending == _WAIT and self._full_wait:
                self._full_wait = 0.0
                logger.info("the broker accepts the wait again (memory freed); waiting with BLMOVE")
            if self._pending != _TAKE:
                self._next = _TAKE  # something arrived, or the wait timed out: take from every key
                raise virtual.Empty()
            if not reply:
                self._next = _WAIT
                raise virtual.Empty()
            self._next = _TAKE
            self._deliver_taken(bytes_to_str(reply[0]), reply[1])
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]  # as kombu does; declared False
            self._flush_brpop_reauth()

    def _on_full(self, exc: OutOfMemoryError) -> None:
        if not self._full_wait:
            logger.warning(
                "the broker is full and refuses the wait (%s); taking every %.1f-%.1f s until it has memory again",
                exc,
                FULL_WAIT_FIRST_SECONDS,
                FULL_WAIT_MAX_SECONDS,
            )
        self._full_wait = min(FULL_WAIT_MAX_SECONDS, max(FULL_WAIT_FIRST_SECONDS, 2 * self._full_wait))
        self._next = _SLEEP

    def _deliver_taken(self, key: str, item: bytes) -> None:
        queue = key.rsplit(self.sep, 1)[0]
        payload = _decoded(item, queue)
        self._queue_cycle.rotate(queue)
        self._taken_tag = None if queue in self._without_acks else payload["properties"]["delivery_tag"]
        try:
            self.connection._deliver(payload, queue)
        finally:
            self._taken_tag = None

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        """A synchronous get with acks takes atomically too (kombu's is RPOP, then the record)."""
        if no_ack:
            return super().basic_get(queue, no_ack=True, **kwargs)
        keys, args = self._take_args(self._keys([queue]))
        with self.conn_or_acquire() as client:
            reply = self._take(keys=keys, args=args, client=client)
        if not reply:
            return None
        payload = loads(bytes_to_str(reply[1]))
        message = self.Message(payload, channel=self)
        virtual.QoS.append(self.qos, message, message.delivery_tag)
        return message


class Transport(kombu_redis.Transport):
    Channel = Channel
