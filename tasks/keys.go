package tasks

import (
	"strconv"
	"time"
)

// DefaultKeyPrefix is the prefix of every Redis key execq writes besides
// asynq's own.
const DefaultKeyPrefix = "execq"

// DefaultQueue is the queue of a request that names none.
const DefaultQueue = "default"

// DefaultRetention is how long results, streams and finished tasks are
// kept where the operator sets no retention.
const DefaultRetention = 24 * time.Hour

// Keys builds the Redis key names of execq. Every key of one execution
// carries its ID in a hash tag, so they share a Redis Cluster slot. No other
// code concatenates a key.
type Keys struct {
	// Prefix defaults to DefaultKeyPrefix.
	Prefix string
}

func (k Keys) prefix() string {
	if k.Prefix == "" {
		return DefaultKeyPrefix
	}
	return k.Prefix
}

func (k Keys) execution(id, suffix string) string {
	return k.prefix() + ":{" + id + "}:" + suffix
}

// Stream is the Redis stream of an execution's events.
func (k Keys) Stream(id string) string { return k.execution(id, "stream") }

// Result is the string key holding the execution's Result as JSON.
func (k Keys) Result(id string) string { return k.execution(id, "result") }

// Cancel is set when an execution is canceled; a worker that picks the
// execution up, or a retry of it, finds it and stops.
func (k Keys) Cancel(id string) string { return k.execution(id, "cancel") }

// Attempts counts the attempts that started the execution.
func (k Keys) Attempts(id string) string { return k.execution(id, "attempts") }

// Failures counts the infrastructure failures of an execution, against
// the worker's retry budget.
func (k Keys) Failures(id string) string { return k.execution(id, "failures") }

// Queue records the queue the execution was submitted to; it makes the ID
// unique across queues and tells Cancel where to look.
func (k Keys) Queue(id string) string { return k.execution(id, "queue") }

// Request records the digest of the request first submitted under the ID
// (ExecRequest.Digest), to which the ID is bound.
func (k Keys) Request(id string) string { return k.execution(id, "request") }

// Owner records the owner of the request first submitted under the ID
// (ExecRequest.Owner), where it has one, so that a front end checks who
// may see an execution in one read.
func (k Keys) Owner(id string) string { return k.execution(id, "owner") }

// Input is the hash holding the inputs of the execution stored beside its
// task (see StoredInput): one field per input, named by StdinField and
// FileField.
func (k Keys) Input(id string) string { return k.execution(id, "input") }

// Pending is the sorted set of the executions enqueued and not yet known
// to be finished, scored by when they were enqueued (Unix ms). Workers
// sweep it for executions whose task left its queue without a result.
func (k Keys) Pending() string { return k.prefix() + ":pending" }

// SweepLock is held by the worker sweeping Pending, so that one sweeps at
// a time.
func (k Keys) SweepLock() string { return k.prefix() + ":sweep-lock" }

// Workers is the sorted set of the worker processes of this deployment,
// scored by their last heartbeat (Unix seconds). A worker whose heartbeat
// is stale is dead, and its containers are orphans.
func (k Keys) Workers() string { return k.prefix() + ":workers" }

// CancelChannel is the Pub/Sub channel on which cancels are announced to
// the workers running them.
func (k Keys) CancelChannel() string { return k.prefix() + ":cancel" }

// Finished is the stream of the executions that ended, oldest first: one
// entry per result, holding its summary (the operators' execution view lists
// it), capped at about FinishedLength entries.
func (k Keys) Finished() string { return k.prefix() + ":finished" }

// FinishedLength is about how many entries Finished keeps.
const FinishedLength = 10000

// StatusCounts is the hash counting the executions that ended in one
// minute (Unix time / 60), one field per status.
func (k Keys) StatusCounts(minute int64) string {
	return k.prefix() + ":counts:" + strconv.FormatInt(minute, 10)
}

// Session is the hash holding a session's state (see SessionInfo). Every
// key of one session carries its ID in a hash tag.
func (k Keys) Session(id string) string { return k.execution(id, "session") }

// SessionExecutions is the hash of a session's admitted executions: field
// execution ID, value its place in the session (ExecRequest.SessionSeq).
func (k Keys) SessionExecutions(id string) string { return k.execution(id, "session-execs") }

// SessionReady is the list a worker pushes to once the session is open or
// could not be opened, on which its creator blocks.
func (k Keys) SessionReady(id string) string { return k.execution(id, "session-ready") }

// Sessions is the sorted set of the sessions created within the
// retention period, scored by their creation (Unix ms).
func (k Keys) Sessions() string { return k.prefix() + ":sessions" }

// LiveSessions is the sorted set of the sessions not yet ended, scored by
// their creation (Unix ms): what workers look through for sessions whose
// worker died.
func (k Keys) LiveSessions() string { return k.prefix() + ":sessions:live" }
