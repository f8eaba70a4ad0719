-- INCRBY that sets the expiry only when it creates the key (the `kv.incr` contract).
-- KEYS[1]: the key. ARGV: delta, ttl_ms (0 for none).
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
