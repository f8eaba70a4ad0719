-- Claims requests for one consumer: retries whose back-off ended join the stream again;
-- entries another consumer held past the lease are taken over (that consumer died);
-- then new entries are read.
-- KEYS: the stream, the delayed set, the tickets' hash prefix (same hash tag).
-- ARGV: the group, the consumer, the most claimed, the lease (ms), now (ms).
-- Returns { entry id, ticket, attempts, request, ... }.
local max = tonumber(ARGV[3])
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[5], 'LIMIT', 0, max)
for _, ticket in ipairs(due) do
  redis.call('ZREM', KEYS[2], ticket)
  redis.call('XADD', KEYS[1], '*', 't', ticket)
end
local out = {}
local function take(entries)
  for _, e in ipairs(entries) do
    if e and e[2] then
      local ticket = e[2][2]
      local fields = redis.call('HMGET', KEYS[3] .. ticket, 'e', 'a')
      if fields[1] then
        table.insert(out, e[1])
        table.insert(out, ticket)
        table.insert(out, fields[2] or '0')
        table.insert(out, fields[1])
      else
        -- Its record is gone: nothing to deliver.
        redis.call('XACK', KEYS[1], ARGV[1], e[1])
        redis.call('XDEL', KEYS[1], e[1])
      end
    end
  end
end
local lapsed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], '0-0', 'COUNT', max)
take(lapsed[2])
local left = max - #out / 4
if left > 0 then
  local fresh = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', left, 'STREAMS', KEYS[1], '>')
  if fresh then
    take(fresh[1][2])
  end
end
return out
