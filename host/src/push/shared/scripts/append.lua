-- Appends a message to one device's stream, once per message id.
-- KEYS: the device's cursor (hash: next, acked, lost), its stream, its record of message
--       ids (hash: id -> offset, with ":q" once its vendor send is queued), the same ids
--       by when their record expires (sorted set).
-- ARGV: the message id, the message (JSON), when it expires (ms since the epoch), the
--       most messages kept, until when the id's record is kept (ms since the epoch).
-- Returns { offset, 1 if its vendor send was queued already } (the first offset given,
-- for an id appended before).
local seen = redis.call('HGET', KEYS[3], ARGV[1])
if seen then
  local offset, queued = string.match(seen, '^(%d+)(:?q?)$')
  return { tonumber(offset), queued == ':q' and 1 or 0 }
end
local cursor = redis.call('HMGET', KEYS[1], 'next', 'acked', 'lost')
local next = tonumber(cursor[1] or '1')
local acked = tonumber(cursor[2] or '0')
local lost = tonumber(cursor[3] or '0')
local expires = tonumber(ARGV[3])
-- A stream that expired whole took its unread messages with it.
if redis.call('EXISTS', KEYS[2]) == 0 then
  lost = math.max(lost, next - 1)
end
redis.call('XADD', KEYS[2], next .. '-0', 'm', ARGV[2], 'x', ARGV[3])
-- Past the history cap the oldest unacked messages go, and are lost.
local history = tonumber(ARGV[4])
if next > history and next - history > math.max(acked, lost) then
  lost = next - history
  redis.call('XTRIM', KEYS[2], 'MINID', (lost + 1) .. '-0')
end
redis.call('HSET', KEYS[1], 'next', next + 1, 'lost', lost)
-- The stream and the id records live as long as their longest-lived entry.
local function last_until(key, at)
  if redis.call('PEXPIRETIME', key) < at then
    redis.call('PEXPIREAT', key, at)
  end
end
last_until(KEYS[2], expires)
-- The id records past their time go.
local keep = tonumber(ARGV[5])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_ms)
for _, id in ipairs(old) do
  redis.call('HDEL', KEYS[3], id)
end
if #old > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now_ms)
end
redis.call('HSET', KEYS[3], ARGV[1], next)
redis.call('ZADD', KEYS[4], keep, ARGV[1])
last_until(KEYS[3], keep)
last_until(KEYS[4], keep)
return { next, 0 }
