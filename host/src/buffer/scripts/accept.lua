-- Stores a request and queues its ticket, unless the route holds its most already.
-- KEYS: the stream, the delayed set, the ticket's hash.
-- ARGV: the stored request, the most pending, the ticket.
-- Returns 1 when stored, 0 when full.
if redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[3], 'e', ARGV[1], 'a', 0)
redis.call('XADD', KEYS[1], '*', 't', ARGV[3])
return 1
