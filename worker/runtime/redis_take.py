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

Requires Redis 6.2 or later (BLMOVE); ElastiCache for Redis 6.2+ and Valkey have it.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import NoScriptError

from worker.names import MALFORMED_HEADER

TRANSPORT = "worker.runtime.redis_take:Transport"
"""What `broker_transport` names for a Redis broker (worker.runtime.celeryconfig)."""

# With several queues the wait watches one of them at a time; a message sent to another waits this long
# at most on an idle worker. Short enough not to matter against queue-wait SLOs of seconds; each idle
# wait costs two commands.
MULTI_QUEUE_WAIT_SECONDS = 0.25

# Counter behind the delivery tags of wrapped envelopes (they have none of their own).
MALFORMED_COUNTER_KEY = "celery-cluster:malformed-seq"

TAKE_SCRIPT = """
-- Take the oldest message of the first non-empty queue key and record it as unacknowledged, in one
-- step: the Redis server runs a script as one command, so a message is always in its queue or in
-- the unacked hash, never only in a reply that a dying client will not read (worker/runtime/redis_take.py).
--
-- KEYS[1] the unacked hash (delivery tag -> [envelope, exchange, routing key], kombu's format)
-- KEYS[2] the unacked index (delivery tag -> time taken), what kombu's sweep restores from
-- KEYS[3] a counter that names the envelopes this script has to wrap (below)
-- KEYS[4..] the queue keys to try, in order
-- ARGV[1] the time now (seconds since the epoch, the client's clock, as kombu's own record uses)
-- ARGV[2], ARGV[3] the ack flag ("1": record it, "0": a consumer without acks) and the queue name of KEYS[4];
-- ARGV[4], ARGV[5] those of KEYS[5], and so on.
-- ARGV[#ARGV] the header that marks a wrapped envelope.
--
-- Returns {queue key, envelope recorded} or false when every key is empty.
--
-- An envelope kombu cannot read (not JSON, not an object, no properties, no delivery tag) is wrapped in
-- a well-formed one whose body is the original bytes (base64) and whose header says what was wrong, so
-- it is recorded, delivered, dead-lettered and acknowledged like any message instead of crashing the
-- consumer or vanishing.

local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

local function base64(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = string.byte(data, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local d1 = math.floor(n / 262144) % 64
    local d2 = math.floor(n / 4096) % 64
    local d3 = math.floor(n / 64) % 64
    local d4 = n % 64
    out[#out + 1] = B64:sub(d1 + 1, d1 + 1) .. B64:sub(d2 + 1, d2 + 1)
      .. (b and B64:sub(d3 + 1, d3 + 1) or '=') .. (c and B64:sub(d4 + 1, d4 + 1) or '=')
  end
  return table.concat(out)
end

-- The delivery tag, exchange and routing key of a readable envelope, or nil and what is wrong with it.
local function inspect(item)
  local ok, envelope = pcall(cjson.decode, item)
  if not ok then
    return nil, 'the envelope is not JSON'
  end
  if type(envelope) ~= 'table' or envelope[1] ~= nil then
    return nil, 'the envelope is not a JSON object'
  end
  local properties = envelope['properties']
  if type(properties) ~= 'table' then
    return nil, 'the envelope has no properties'
  end
  local tag, info = properties['delivery_tag'], properties['delivery_info']
  if type(tag) ~= 'string' or tag == '' then
    return nil, 'the envelope has no delivery tag'
  end
  if type(info) ~= 'table' then
    return nil, 'the envelope has no delivery info'
  end
  local exchange, routing_key = info['exchange'], info['routing_key']
  if type(exchange) ~= 'string' then exchange = '' end
  if type(routing_key) ~= 'string' then routing_key = '' end
  return {tag, exchange, routing_key}
end

local function wrap(item, queue, problem, header)
  local tag = 'malformed-' .. redis.call('INCR', KEYS[3])
  local envelope = cjson.encode({
    body = base64(item),
    ['content-type'] = 'application/octet-stream',
    ['content-encoding'] = 'binary',
    headers = {[header] = problem},
    properties = {
      body_encoding = 'base64',
      delivery_tag = tag,
      delivery_info = {exchange = '', routing_key = queue},
    },
  })
  return envelope, {tag, '', queue}
end

local header = ARGV[#ARGV]
for i = 4, #KEYS do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local flag, queue = ARGV[2 * (i - 3)], ARGV[2 * (i - 3) + 1]
    if flag ~= '1' then
      return {KEYS[i], item}
    end
    local found, problem = inspect(item)
    local envelope = item
    if found == nil then
      envelope, found = wrap(item, queue, problem, header)
    end
    local tag = found[1]
    local record = '[' .. envelope .. ',' .. cjson.encode(found[2]) .. ',' .. cjson.encode(found[3]) .. ']'
    -- redis.pcall: a failed write puts the message back where it was instead of ending the script
    -- with the message popped and recorded nowhere.
    local failed = nil
    for _, write in ipairs({{'ZADD', KEYS[2], ARGV[1], tag}, {'HSET', KEYS[1], tag, record}}) do
      local reply = redis.pcall(unpack(write))
      if type(reply) == 'table' and reply.err then
        failed = reply.err
        break
      end
    end
    if failed then
      redis.pcall('ZREM', KEYS[2], tag)
      redis.pcall('HDEL', KEYS[1], tag)
      redis.call('RPUSH', KEYS[i], item)
      return redis.error_reply('could not record the message as unacknowledged: ' .. failed)
    end
    return {KEYS[i], envelope}
  end
end
return false
"""

_TAKE = "take"
_WAIT = "wait"


class QoS(kombu_redis.QoS):
    """kombu's QoS, except that a message the take script recorded is not recorded a second time."""

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.taken_by_script(delivery_tag):
            virtual.QoS.append(self, message, delivery_tag)  # in-process bookkeeping only
            return
        super().append(message, delivery_tag)


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
        self._take = self.client.register_script(TAKE_SCRIPT)

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
                reply = self.client.parse_response(
                    connection, "BLMOVE" if self._pending == _WAIT else "EVALSHA", **options
                )
            except self.connection_errors:
                connection.disconnect()  # reconnect on the next poll, as kombu does
                raise
            except NoScriptError:  # a restarted Redis forgot the script
                self._next = _TAKE
                self.client.script_load(TAKE_SCRIPT)
                raise virtual.Empty() from None
            if self._pending == _WAIT:
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
