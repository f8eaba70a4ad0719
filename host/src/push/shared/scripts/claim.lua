-- Claims vendor jobs that are due, for a lease.
-- KEYS: the jobs (sorted set: "<offset>:<device>" by when due), their attempts (hash).
-- ARGV: now (ms since the epoch), the most jobs claimed, the lease (ms).
-- Returns { job, attempts, job, attempts, ... }.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[3])
local out = {}
for _, job in ipairs(due) do
  redis.call('ZADD', KEYS[1], until_ms, job)
  table.insert(out, job)
  table.insert(out, redis.call('HGET', KEYS[2], job) or '0')
end
return out
