-- Stores a device, unless another user holds it.
-- KEYS: the device.
-- ARGV: the device (JSON), its user.
-- Returns { 0, nil } when another user holds it, else { 1, the device it replaced or nil }.
local old = redis.call('GET', KEYS[1])
if old and cjson.decode(old).user ~= ARGV[2] then
  return { 0, false }
end
redis.call('SET', KEYS[1], ARGV[1])
return { 1, old or false }
