-- A route's requests waiting (in the stream or backing off) and dead letters kept.
-- KEYS: the stream, the delayed set, the dead letters.
return { redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]), redis.call('LLEN', KEYS[3]) }
