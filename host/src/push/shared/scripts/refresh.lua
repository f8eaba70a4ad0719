-- Keeps a connection's presence: renewed while it is this connection's, made again if it
-- lapsed, left alone if another connection holds the device now.
-- KEYS: the presence.
-- ARGV: the holder, the lease (ms).
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
