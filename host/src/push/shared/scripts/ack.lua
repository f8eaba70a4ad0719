-- Acks one device's messages up to an offset (no further than published).
-- KEYS: the device's cursor, its stream.
-- ARGV: the offset.
-- Returns the acked offset.
local cursor = redis.call('HMGET', KEYS[1], 'next', 'acked')
local next = tonumber(cursor[1] or '1')
local acked = tonumber(cursor[2] or '0')
local offset = math.min(tonumber(ARGV[1]), next - 1)
if offset <= acked then
  return acked
end
redis.call('XTRIM', KEYS[2], 'MINID', (offset + 1) .. '-0')
redis.call('HSET', KEYS[1], 'acked', offset)
return offset
