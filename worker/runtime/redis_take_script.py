"""The Lua script behind worker.runtime.redis_take's atomic take, in a module of its own.

Redis runs a script as one command, so the take pops a message and records it as unacknowledged with
nothing in between that a dying client or a lost reply could interrupt. On a full Redis (maxmemory
reached, `noeviction`) the script still runs: Redis refuses a write from a script only while the script
has written nothing yet and only for commands that can grow memory (`denyoom`; scriptVerifyOOM in
Redis's src/script.c, https://github.com/redis/redis/blob/7.2/src/script.c). The first write here is
RPOP, which only shrinks memory, so once a message is popped its record is written too (measured on
Redis 7.0: tests/integration/test_full_redis.py). An empty queue writes nothing at all.
"""

from __future__ import annotations

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
