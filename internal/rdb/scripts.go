package rdb

import "github.com/redis/go-redis/v9"

// finalizeScript stores an execution's result and appends its exit event,
// atomically and only once.
//
// KEYS[1] the result key
// KEYS[2] the stream key
// ARGV[1] the result JSON
// ARGV[2] the exit event data (JSON)
// ARGV[3] retention in milliseconds, applied to both keys
//
// Returns 1 when the result was written, 0 when the execution already had
// one (nothing is changed then).
var finalizeScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
	return 0
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
redis.call("XADD", KEYS[2], "*", "type", "exit", "data", ARGV[2])
redis.call("PEXPIRE", KEYS[2], ARGV[3])
return 1
`)
