-- Reads one device's stream after an offset; expired messages leave it, and count as lost.
-- KEYS: the device's cursor, its stream.
-- ARGV: the offset to read after, the most messages returned, now (ms since the epoch).
-- Returns { next offset, last offset lost, messages expired now, offset, message, ... }.
local cursor = redis.call('HMGET', KEYS[1], 'next', 'lost')
local next = tonumber(cursor[1] or '1')
local lost = tonumber(cursor[2] or '0')
local max = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local out = { next, lost, 0 }
local expired = 0
local found = 0
local from = (tonumber(ARGV[1]) + 1) .. '-0'
-- In pages, until enough live messages are found: a read costs what it returns, not
-- the length of the stream.
local page = math.max(max, 16)
while found < max do
  local entries = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', page)
  for _, entry in ipairs(entries) do
    local offset = tonumber(string.match(entry[1], '^(%d+)'))
    local fields = entry[2]
    if tonumber(fields[4]) > now then
      if found < max then
        table.insert(out, offset)
        table.insert(out, fields[2])
        found = found + 1
      end
    else
      redis.call('XDEL', KEYS[2], entry[1])
      expired = expired + 1
      lost = math.max(lost, offset)
    end
  end
  if #entries < page then
    break
  end
  from = '(' .. entries[#entries][1]
end
-- A stream that expired whole took its unread messages with it.
if found == 0 and expired == 0 and next - 1 > lost and redis.call('EXISTS', KEYS[2]) == 0 then
  lost = next - 1
  redis.call('HSET', KEYS[1], 'lost', lost)
  out[2] = lost
end
if expired > 0 then
  redis.call('HSET', KEYS[1], 'lost', lost)
  out[2] = lost
  out[3] = expired
end
return out
