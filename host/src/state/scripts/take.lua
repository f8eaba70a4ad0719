-- One atomic rate-limit decision: the same arithmetic as host/src/state/limiter.rs, run
-- inside Redis so that every gateway instance sharing the server draws from one budget.
-- KEYS[1]: the limiter key.
-- ARGV: algorithm (1 token bucket, 2 sliding window, 3 fixed window), limit, window_ms, cost.
-- Returns {allowed (0/1), remaining, reset_ms, retry_after_ms}. Time is the server's, so
-- instances with skewed clocks still agree.
local alg = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = math.max(tonumber(ARGV[3]), 1)
local cost = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if alg == 1 then
  local rate = limit / window
  local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
  local tokens = limit
  if s[1] and s[2] then
    tokens = math.min(limit, tonumber(s[1]) + math.max(0, now - tonumber(s[2])) * rate)
  end
  local allowed = tokens >= cost
  if allowed then
    tokens = tokens - cost
  end
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], string.format('%d', window * 2))
  local retry = 0
  if not allowed then
    if cost > limit or rate == 0 then
      retry = window
    else
      retry = math.ceil((cost - tokens) / rate)
    end
  end
  local reset = window
  if rate > 0 then
    reset = math.ceil((limit - tokens) / rate)
  end
  return {allowed and 1 or 0, math.floor(tokens), reset, retry}
end

local start = now - (now % window)
local s = redis.call('HMGET', KEYS[1], 'start', 'count', 'previous')
local count, previous = 0, 0
if s[1] and s[2] and s[3] then
  local stored = tonumber(s[1])
  if stored == start then
    count = tonumber(s[2])
    previous = tonumber(s[3])
  elseif stored + window == start then
    previous = tonumber(s[2])
  end
end
local elapsed = now - start
local reset = window - elapsed
-- Sliding windows also count the part of the previous window that still overlaps.
local carried = 0
if alg == 2 then
  carried = math.floor(previous * reset / window)
end
local allowed = count + carried + cost <= limit
if allowed then
  count = count + cost
end
redis.call('HSET', KEYS[1], 'start', string.format('%d', start), 'count', string.format('%d', count),
  'previous', string.format('%d', previous))
redis.call('PEXPIRE', KEYS[1], string.format('%d', window * 2))
local retry = 0
if not allowed then
  if alg == 3 or count + cost > limit or previous == 0 then
    retry = math.max(reset, 1)
  else
    local room = limit - count - cost
    retry = math.max(reset - math.floor(room * window / previous), 1)
  end
end
return {allowed and 1 or 0, math.max(limit - count - carried, 0), reset, retry}
