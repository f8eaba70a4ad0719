-- Deletes a key only if it still holds a value (a connection's presence, say).
-- KEYS: the key.
-- ARGV: the value.
-- Returns 1 if deleted.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
