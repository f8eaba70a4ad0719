-- SET (or SET NX) within the namespace's entry quota (index.lua is prepended): a new key
-- is refused when the namespace already holds max_entries live keys.
-- KEYS[1]: the key; KEYS[2]: the namespace's index.
-- ARGV: value, ttl_ms (0 for none), only_if_absent (0/1), max_entries.
-- Returns 1 if stored, 0 if only_if_absent found the key.
local now = now_ms()
local ttl = tonumber(ARGV[2])
local exists = redis.call('EXISTS', KEYS[1]) == 1
if exists and ARGV[3] == '1' then
  return 0
end
if not exists then
  local refused = admit(KEYS[2], tonumber(ARGV[4]), now)
  if refused then
    return refused
  end
end
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
record(KEYS[2], KEYS[1], ttl, now)
return 1
