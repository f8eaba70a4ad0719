-- Appends a message to one device's stream, once per message id.
-- KEYS: the device's cursor (hash: next, acked, lost), its stream, the message id's
--       record for this device.
-- ARGV: the message (JSON), when it expires (ms since the epoch), the most messages kept,
--       how long the id's record is kept (ms).
-- Returns the message's offset (the first one given, for an id appended before).
local seen = redis.call('GET', KEYS[3])
if seen then
  return tonumber(seen)
end
local cursor = redis.call('HMGET', KEYS[1], 'next', 'acked', 'lost')
local next = tonumber(cursor[1] or '1')
local acked = tonumber(cursor[2] or '0')
local lost = tonumber(cursor[3] or '0')
local expires = tonumber(ARGV[2])
redis.call('XADD', KEYS[2], next .. '-0', 'm', ARGV[1], 'x', ARGV[2])
-- Past the history cap the oldest unacked messages go, and are lost.
local history = tonumber(ARGV[3])
if next > history and next - history > math.max(acked, lost) then
  lost = next - history
  redis.call('XTRIM', KEYS[2], 'MINID', (lost + 1) .. '-0')
end
redis.call('HSET', KEYS[1], 'next', next + 1, 'lost', lost)
-- The stream lives as long as its longest-lived message.
if redis.call('PEXPIRETIME', KEYS[2]) < expires then
  redis.call('PEXPIREAT', KEYS[2], expires)
end
redis.call('SET', KEYS[3], next, 'PX', ARGV[4])
return next
