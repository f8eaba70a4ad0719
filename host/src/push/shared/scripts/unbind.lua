-- Forgets a device of a user with its stream; its offsets go on where they were, all acked.
-- KEYS: the device, its cursor, its stream.
-- ARGV: the user.
-- Returns the device forgotten (JSON), or nil if the user had no such device.
local old = redis.call('GET', KEYS[1])
if not old or cjson.decode(old).user ~= ARGV[1] then
  return nil
end
redis.call('DEL', KEYS[1], KEYS[3])
local next = tonumber(redis.call('HGET', KEYS[2], 'next') or '1')
redis.call('HSET', KEYS[2], 'acked', next - 1)
return old
