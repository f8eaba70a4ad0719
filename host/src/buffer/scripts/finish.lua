-- Ends a claimed entry: delivered or dead, its status kept for a while; a dead one joins
-- the dead letters (the newest kept).
-- KEYS: the stream, the ticket's hash, the dead letters (list).
-- ARGV: the group, the consumer, the entry id, dead (1 or 0), the status, its TTL (ms),
-- the most dead letters kept.
-- Returns 1, or 0 when the entry is no longer the consumer's (nothing is written).
local held = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not held[1] or held[1][2] ~= ARGV[2] then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], 's', ARGV[5])
if ARGV[4] == '1' then
  redis.call('LPUSH', KEYS[3], ARGV[5])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
else
  redis.call('HDEL', KEYS[2], 'e')
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
