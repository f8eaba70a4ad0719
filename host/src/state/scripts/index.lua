-- The entry quota of a `kv` namespace, shared by the scripts that may create a key: every
-- key of a namespace is indexed in a sorted set scored by its expiry (ms, server time;
-- `inf` for none), so that counting the live keys is one ZCARD after dropping the expired.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Refuses a new key when the namespace already holds `max` live keys.
local function admit(index, max, now)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  if redis.call('ZCARD', index) >= max then
    return redis.error_reply('ERR quota: the namespace holds state.kv.max_entries keys')
  end
  return nil
end

-- Indexes `key` until it expires; the index lives as long as its longest-lived key.
local function record(index, key, ttl, now)
  if ttl > 0 then
    redis.call('ZADD', index, now + ttl, key)
    local left = redis.call('PTTL', index)
    if left ~= -1 and left < ttl then
      redis.call('PEXPIRE', index, ttl)
    end
  else
    redis.call('ZADD', index, 'inf', key)
    redis.call('PERSIST', index)
  end
end

