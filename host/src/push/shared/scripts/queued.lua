-- Marks a message id's vendor send queued for one device, so that a publish made again
-- does not queue it again.
-- KEYS: the device's record of message ids.
-- ARGV: the message id, its offset.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':q')
end
return 0
