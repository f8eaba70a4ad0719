-- Puts a claimed vendor job back for a later attempt, unless it ended meanwhile (another
-- instance claimed it after this claim's lease lapsed, and finished it).
-- KEYS: the jobs (sorted set), their attempts (hash).
-- ARGV: the job, when it is due again (ms since the epoch).
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
return 0
