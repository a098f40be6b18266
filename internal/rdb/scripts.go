package rdb

import "github.com/redis/go-redis/v9"

// finalizeScript stores an execution's result and appends its exit event,
// atomically and only once, and deletes the inputs stored beside its task:
// nothing runs an execution that has its result. A result of an attempt
// (ARGV[4] > 0) is refused once a later attempt has started.
//
// KEYS[1] the result key
// KEYS[2] the stream key
// KEYS[3] the input key
// KEYS[4] the queue key (read only)
// KEYS[5] the attempts counter (read only)
// KEYS[6] the owner key, kept as long as the result
// ARGV[1] the result JSON
// ARGV[2] the exit event data (JSON)
// ARGV[3] retention in milliseconds, applied to the result, the stream and
// the owner key (where there is one)
// ARGV[4] the attempt the result is of; 0 for none (a cancel, a sweep)
//
// Returns {1, queue} when the result was written, with the queue the
// execution was submitted to ("" when unknown); {0, ""} when the execution
// already had one; {-1, ""} when a later attempt has started (nothing is
// changed then).
var finalizeScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
	return {0, ""}
end
local attempt = tonumber(ARGV[4])
if attempt > 0 and tonumber(redis.call("GET", KEYS[5]) or "0") > attempt then
	return {-1, ""}
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
redis.call("XADD", KEYS[2], "*", "type", "exit", "data", ARGV[2])
redis.call("PEXPIRE", KEYS[2], ARGV[3])
redis.call("PEXPIRE", KEYS[6], ARGV[3])
redis.call("DEL", KEYS[3])
return {1, redis.call("GET", KEYS[4]) or ""}
`)

// appendAttemptScript appends events of one attempt to an execution's
// stream, unless a later attempt has started or the execution has its
// result: a worker cut off from Redis past its lease never writes over the
// attempt that replaced it.
//
// KEYS[1] the stream key
// KEYS[2] the attempts counter (read only)
// KEYS[3] the result key (read only)
// ARGV[1] the attempt
// ARGV[2] retention in milliseconds
// ARGV[3…] the events: type, data, type, data, …
//
// Returns 1 when the events were appended, 0 when they were refused.
var appendAttemptScript = redis.NewScript(`
if tonumber(redis.call("GET", KEYS[2]) or "0") ~= tonumber(ARGV[1]) or redis.call("EXISTS", KEYS[3]) == 1 then
	return 0
end
for i = 3, #ARGV, 2 do
	redis.call("XADD", KEYS[1], "*", "type", ARGV[i], "data", ARGV[i + 1])
end
redis.call("PEXPIRE", KEYS[1], ARGV[2])
return 1
`)

// requeueExpiredScript moves the tasks whose lease expired before a cutoff
// from asynq's active list back to its pending list. It does what asynq's
// own requeue script (internal/rdb requeueCmd, v0.26) does for each task:
// remove it from active and lease, push it to pending, mark it pending.
// A task no longer in active (asynq's recoverer or its worker got to it
// first) is left alone.
//
// KEYS[1] asynq:{queue}:active
// KEYS[2] asynq:{queue}:lease
// KEYS[3] asynq:{queue}:pending
// ARGV[1] cutoff, Unix seconds: leases that expired before it
// ARGV[2] asynq:{queue}:t: (the prefix of task keys)
//
// Returns the IDs of the tasks requeued.
var requeueExpiredScript = redis.NewScript(`
local requeued = {}
local ids = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", "(" .. ARGV[1])
for _, id in ipairs(ids) do
	if redis.call("LREM", KEYS[1], 0, id) > 0 then
		redis.call("ZREM", KEYS[2], id)
		redis.call("RPUSH", KEYS[3], id)
		redis.call("HSET", ARGV[2] .. id, "state", "pending")
		table.insert(requeued, id)
	end
end
return requeued
`)

// bindScript binds an execution ID to the queue, the request digest and the
// owner it is first submitted with, and returns what it is bound to.
//
// KEYS[1] the queue key
// KEYS[2] the request key
// KEYS[3] the owner key
// ARGV[1] the queue
// ARGV[2] the request digest
// ARGV[3] retention in milliseconds
// ARGV[4] the owner ("" writes no owner key)
//
// Returns {queue, digest, created} of the binding; the digest is "" for a
// binding made without one, created is 1 when this call made the binding
// and 0 when the ID was bound before.
var bindScript = redis.NewScript(`
local q = redis.call("GET", KEYS[1])
if not q then
	redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
	redis.call("SET", KEYS[2], ARGV[2], "PX", ARGV[3])
	if ARGV[4] ~= "" then
		redis.call("SET", KEYS[3], ARGV[4], "PX", ARGV[3])
	end
	return {ARGV[1], ARGV[2], 1}
end
return {q, redis.call("GET", KEYS[2]) or "", 0}
`)

// unlockScript releases a lock its holder took.
//
// KEYS[1] the lock
// ARGV[1] the holder
//
// Returns 1 when it released the lock, 0 when another holds it.
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)
