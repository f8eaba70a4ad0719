-- DEL of a key and its entry in the namespace's index, atomically (one slot: the two keys
-- share the namespace's hash tag).
-- KEYS[1]: the key; KEYS[2]: the namespace's index. Returns 1 if the key existed.
local removed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
return removed
