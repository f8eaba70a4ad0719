-- Renews a consumer's claim on an entry (resets its idle time), if it still holds it.
-- KEYS: the stream. ARGV: the group, the consumer, the entry id.
-- Returns 1 when renewed, 0 when the entry is no longer the consumer's.
local held = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not held[1] or held[1][2] ~= ARGV[2] then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
