#!lua
-- Propagates a write that changes nothing, just before a WAIT (cluster.go):
-- from Redis 7.2 a connection's WAIT covers only up to its own last command
-- that propagated, so a redo that finds its writes done (another host's
-- script, set members there already, a marker set first) would otherwise
-- WAIT for nothing and mark pairs whose effects no replica holds yet.
-- KEYS[1] is a record key in a slot of the master the WAIT runs on.
redis.call('HSET', KEYS[1], 'eventhost:wait', '1')
redis.call('HDEL', KEYS[1], 'eventhost:wait')
return 1
