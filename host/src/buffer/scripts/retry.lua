-- Puts a claimed entry back for later: out of the stream, its ticket in the delayed set.
-- KEYS: the stream, the delayed set, the ticket's hash.
-- ARGV: the group, the consumer, the entry id, the ticket, attempts, due (ms), the error.
-- Returns 1, or 0 when the entry is no longer the consumer's.
local held = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not held[1] or held[1][2] ~= ARGV[2] then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[3], 'a', ARGV[5], 'x', ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[4])
return 1
