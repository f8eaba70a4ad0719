-- What a claimed vendor job sends.
-- KEYS: the device, its cursor, its stream.
-- ARGV: the job's offset.
-- Returns { the device (JSON), the message (JSON) }, or {} when the device or the message
-- is gone or acked.
local device = redis.call('GET', KEYS[1])
local acked = tonumber(redis.call('HGET', KEYS[2], 'acked') or '0')
if not device or tonumber(ARGV[1]) <= acked then
  return {}
end
local id = ARGV[1] .. '-0'
local entry = redis.call('XRANGE', KEYS[3], id, id)[1]
if not entry then
  return {}
end
return { device, entry[2][2] }
