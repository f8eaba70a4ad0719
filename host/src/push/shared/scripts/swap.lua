-- Replaces a value only if it is still the one read (a device's record, say).
-- KEYS: the key.
-- ARGV: the value read, the new value.
-- Returns 1 if replaced.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
