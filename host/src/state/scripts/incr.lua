-- INCRBY that sets the expiry only when it creates the key (the `kv.incr` contract), and
-- creates it only within the namespace's entry quota (index.lua is prepended).
-- KEYS[1]: the key; KEYS[2]: the namespace's index. ARGV: delta, ttl_ms (0 for none),
-- max_entries.
local now = now_ms()
local ttl = tonumber(ARGV[2])
local created = redis.call('EXISTS', KEYS[1]) == 0
if created then
  local refused = admit(KEYS[2], tonumber(ARGV[3]), now)
  if refused then
    return refused
  end
end
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created then
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  record(KEYS[2], KEYS[1], ttl, now)
end
return value
