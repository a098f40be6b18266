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

// beginAttemptScript counts one more attempt at an execution and appends
// its started event, unless the execution has its result or the attempt is
// past the allowed number (then it is counted, and nothing is appended).
//
// KEYS[1] the attempts counter
// KEYS[2] the stream key
// KEYS[3] the result key (read only)
// ARGV[1] retention in milliseconds, applied to the counter and the stream
// ARGV[2] the most attempts allowed
// ARGV[3] the started event's type
// ARGV[4] the started event's data (a JSON object) after its leading
// attempt field: the script writes {"attempt":N, and then this
//
// Returns the attempt's number, 0 when the execution has its result.
var beginAttemptScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[3]) == 1 then
	return 0
end
local n = redis.call("INCR", KEYS[1])
redis.call("PEXPIRE", KEYS[1], ARGV[1])
if n <= tonumber(ARGV[2]) then
	redis.call("XADD", KEYS[2], "*", "type", ARGV[3], "data", '{"attempt":' .. n .. ',' .. ARGV[4])
	redis.call("PEXPIRE", KEYS[2], ARGV[1])
end
return n
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

// createSessionScript records a new session, once.
//
// KEYS[1] the session hash
// ARGV[1] its expiry in milliseconds (its lifetime plus the retention)
// ARGV[2…] its fields: name, value, name, value, …
//
// Returns {1, ""} when it was created, {0, owner} when a session with the
// ID exists (nothing is changed then).
var createSessionScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
	return {0, redis.call("HGET", KEYS[1], "owner") or ""}
end
for i = 2, #ARGV, 2 do
	redis.call("HSET", KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call("PEXPIRE", KEYS[1], ARGV[1])
return {1, ""}
`)

// openSessionScript marks a session being created as open on a worker,
// and wakes its creator.
//
// KEYS[1] the session hash
// KEYS[2] the session's ready list
// ARGV[1] the worker, ARGV[2] its session queue, ARGV[3] the container
// ARGV[4] now (Unix ms), ARGV[5] the image
//
// Returns the status the session had: "creating" when it is now open.
var openSessionScript = redis.NewScript(`
local status = redis.call("HGET", KEYS[1], "status")
if status ~= "creating" then
	return status or ""
end
redis.call("HSET", KEYS[1], "status", "open", "worker", ARGV[1], "queue", ARGV[2], "container", ARGV[3],
	"opened_ms", ARGV[4], "active_ms", ARGV[4], "image", ARGV[5])
redis.call("RPUSH", KEYS[2], "open")
redis.call("PEXPIRE", KEYS[2], redis.call("PTTL", KEYS[1]))
return status
`)

// admitSessionScript admits an execution to an open session, once: it
// gets the next place in the session's order.
//
// KEYS[1] the session hash
// KEYS[2] the session's executions hash
// ARGV[1] the execution ID, ARGV[2] its owner
//
// Returns {1, seq, queue} when admitted now, {2, seq, queue} when it was
// admitted before, {0, status, error} when the session admits nothing,
// {-1} when there is no such session, {-2} when its owner is another.
var admitSessionScript = redis.NewScript(`
local s = redis.call("HMGET", KEYS[1], "status", "owner", "queue", "error")
if not s[1] then
	return {-1}
end
if (s[2] or "") ~= ARGV[2] then
	return {-2}
end
local seq = redis.call("HGET", KEYS[2], ARGV[1])
if seq then
	return {2, tonumber(seq), s[3] or ""}
end
if s[1] ~= "open" then
	return {0, s[1], s[4] or ""}
end
seq = redis.call("HINCRBY", KEYS[1], "seq", 1)
redis.call("HSET", KEYS[2], ARGV[1], seq)
redis.call("PEXPIRE", KEYS[2], redis.call("PTTL", KEYS[1]))
return {1, seq, s[3] or ""}
`)

// closeSessionScript asks for a session to be closed: a session being
// created or open becomes closing, with its cause; its worker does the
// rest.
//
// KEYS[1] the session hash
// ARGV[1] the owner asking, ARGV[2] the cause
//
// Returns {1, running} when it is now closing, {2, running} when it was
// already, {0, status} when it had ended, {-1} when there is no such
// session, {-2} when its owner is another.
var closeSessionScript = redis.NewScript(`
local s = redis.call("HMGET", KEYS[1], "status", "owner", "running")
if not s[1] then
	return {-1}
end
if (s[2] or "") ~= ARGV[1] then
	return {-2}
end
if s[1] == "closing" then
	return {2, s[3] or ""}
end
if s[1] ~= "open" and s[1] ~= "creating" then
	return {0, s[1]}
end
redis.call("HSET", KEYS[1], "status", "closing", "cause", ARGV[2])
return {1, s[3] or ""}
`)

// endSessionScript ends a session, once: closed or lost.
//
// KEYS[1] the session hash
// KEYS[2] the session's executions hash
// KEYS[3] the session's ready list
// ARGV[1] the status (closed or lost), ARGV[2] the cause, ARGV[3] the error
// ARGV[4] now (Unix ms), ARGV[5] the retention in milliseconds
// ARGV[6] the worker that must hold it, or "" for any
//
// Returns 1 when it ended now, 0 when it had ended or another worker holds
// it.
var endSessionScript = redis.NewScript(`
local s = redis.call("HMGET", KEYS[1], "status", "worker", "cause")
if not s[1] or s[1] == "closed" or s[1] == "lost" then
	return 0
end
if ARGV[6] ~= "" and (s[2] or "") ~= ARGV[6] then
	return 0
end
local cause = ARGV[2]
if s[1] == "closing" and s[3] and ARGV[1] == "closed" then
	cause = s[3]
end
redis.call("HSET", KEYS[1], "status", ARGV[1], "cause", cause, "error", ARGV[3], "ended_ms", ARGV[4])
redis.call("HDEL", KEYS[1], "running")
redis.call("RPUSH", KEYS[3], ARGV[1])
for i = 1, 3 do
	redis.call("PEXPIRE", KEYS[i], ARGV[5])
end
return 1
`)

// sessionRunningScript records the execution running in an open session.
//
// KEYS[1] the session hash
// ARGV[1] the execution ID
//
// Returns the session's status: the execution is recorded only when it is
// "open".
var sessionRunningScript = redis.NewScript(`
local status = redis.call("HGET", KEYS[1], "status")
if status == "open" then
	redis.call("HSET", KEYS[1], "running", ARGV[1])
end
return status or ""
`)
