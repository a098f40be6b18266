package tasks

import (
	"encoding/json"
	"fmt"
	"time"
)

// TypeSessionCreate is the asynq task type that asks a worker to open a
// session: to take a sandbox and hold it for the session's executions.
const TypeSessionCreate = "session:create"

// Session defaults and bounds.
const (
	DefaultSessionIdle     = 10 * time.Minute
	DefaultSessionLifetime = 2 * time.Hour
	MaxSessionLifetime     = 24 * time.Hour
)

// SessionRequest opens a session: one sandbox held for one owner, in which
// executions run one at a time, in submission order, and keep the files of
// /workspace and the processes they leave running for the next one. Zero
// values mean the worker's defaults.
type SessionRequest struct {
	// ID is the session ID. A producer fills in a UUID when it is empty.
	ID string `json:"id"`
	// Queue is the queue the request to open the session goes to; the
	// session's executions then go to the queue of the worker that opened
	// it. Defaults to "default".
	Queue string `json:"queue,omitempty"`
	// Image is the sandbox image, or Language's when Language is set.
	Image string `json:"image,omitempty"`
	// Language names an entry of the worker's language catalogue whose
	// image the session runs; its executions may then give code.
	Language string `json:"language,omitempty"`
	// Env is added to the environment of every execution of the session
	// (an execution's own Env wins).
	Env map[string]string `json:"env,omitempty"`
	// Files are written into /workspace when the session opens.
	Files []File `json:"files,omitempty"`
	// MemoryBytes, CPUs and Pids are the sandbox's limits, for the whole
	// session.
	MemoryBytes int64   `json:"memoryBytes,omitempty"`
	CPUs        float64 `json:"cpus,omitempty"`
	Pids        int64   `json:"pids,omitempty"`
	// IdleTimeout closes the session when no execution has run or waited
	// for it this long, counted from the end of the last one. Defaults to
	// DefaultSessionIdle.
	IdleTimeout time.Duration `json:"-"`
	// Lifetime bounds the session's life from its creation. Defaults to
	// DefaultSessionLifetime; at most MaxSessionLifetime.
	Lifetime time.Duration `json:"-"`
	// Owner names who holds the session (see ExecRequest.Owner): only
	// executions of the same owner are admitted.
	Owner string `json:"owner,omitempty"`
	// CreatedAt is set by the producer.
	CreatedAt time.Time `json:"createdAt,omitzero"`
}

type sessionRequestAlias SessionRequest

type sessionRequestJSON struct {
	sessionRequestAlias
	IdleTimeoutMs int64 `json:"idleTimeoutMs,omitempty"`
	LifetimeMs    int64 `json:"lifetimeMs,omitempty"`
}

// MarshalJSON writes IdleTimeout and Lifetime as whole milliseconds.
func (r SessionRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(sessionRequestJSON{
		sessionRequestAlias: sessionRequestAlias(r),
		IdleTimeoutMs:       durationMillisCeil(r.IdleTimeout),
		LifetimeMs:          durationMillisCeil(r.Lifetime),
	})
}

// UnmarshalJSON reads idleTimeoutMs and lifetimeMs.
func (r *SessionRequest) UnmarshalJSON(b []byte) error {
	var v sessionRequestJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	for name, ms := range map[string]int64{"idleTimeoutMs": v.IdleTimeoutMs, "lifetimeMs": v.LifetimeMs} {
		if ms > maxTimeoutMs || ms < -maxTimeoutMs {
			return fmt.Errorf("%s %d is out of range", name, ms)
		}
	}
	*r = SessionRequest(v.sessionRequestAlias)
	r.IdleTimeout = time.Duration(v.IdleTimeoutMs) * time.Millisecond
	r.Lifetime = time.Duration(v.LifetimeMs) * time.Millisecond
	return nil
}

// WithDefaults fills in the idle timeout and the lifetime.
func (r SessionRequest) WithDefaults() SessionRequest {
	if r.IdleTimeout == 0 {
		r.IdleTimeout = DefaultSessionIdle
	}
	if r.Lifetime == 0 {
		r.Lifetime = DefaultSessionLifetime
	}
	if r.Queue == "" {
		r.Queue = DefaultQueue
	}
	return r
}

// Check validates what can be checked without a worker: the ID, the image
// or language, the environment, the files, the timeouts. A worker checks
// the limits against its own when it opens the session.
func (r *SessionRequest) Check() error {
	var p problems
	// The session's sandbox (and its ID) is checked as an execution's
	// would be.
	x := r.Exec()
	x.check(&p)
	if r.IdleTimeout < 0 {
		p.addf("idle timeout %s is negative", r.IdleTimeout)
	}
	if r.Lifetime < 0 {
		p.addf("lifetime %s is negative", r.Lifetime)
	}
	if r.Lifetime > MaxSessionLifetime {
		p.addf("lifetime %s is above the maximum %s", r.Lifetime, MaxSessionLifetime)
	}
	for _, f := range r.Files {
		if f.Stored != nil {
			p.addf("files of a session travel in its request; %s is a reference", f.Path)
		}
	}
	return p.err()
}

// Exec is the execution a worker checks the session's sandbox against its
// limits with: the session's image, language, environment, files and
// limits.
func (r *SessionRequest) Exec() ExecRequest {
	return ExecRequest{ID: r.ID, Image: r.Image, Language: r.Language, Cmd: []string{"true"}, Env: r.Env,
		Files: r.Files, MemoryBytes: r.MemoryBytes, CPUs: r.CPUs, Pids: r.Pids}
}

// SessionStatus is where a session is in its life.
type SessionStatus string

// The statuses of a session.
const (
	// SessionCreating: asked for; no worker holds a sandbox for it yet.
	SessionCreating SessionStatus = "creating"
	// SessionOpen: a worker holds its sandbox; executions are admitted.
	SessionOpen SessionStatus = "open"
	// SessionClosing: it is being closed; no execution is admitted.
	SessionClosing SessionStatus = "closing"
	// SessionClosed: it ended (Cause says why) and its sandbox was reset
	// or replaced.
	SessionClosed SessionStatus = "closed"
	// SessionLost: its worker died, stopped, or lost Redis past its lease,
	// or its sandbox stopped; its queued executions have an error result.
	SessionLost SessionStatus = "lost"
)

// Ended reports whether the session admits nothing ever again.
func (s SessionStatus) Ended() bool { return s == SessionClosed || s == SessionLost }

// Why a session ended.
const (
	CauseClosed   = "closed"   // its owner closed it
	CauseIdle     = "idle"     // nothing ran in it for its idle timeout
	CauseLifetime = "lifetime" // it reached its lifetime
	CauseLost     = "lost"     // its worker or its sandbox went away
	CauseFailed   = "failed"   // it could not be opened
)

// SessionInfo is a session's state as stored in Redis.
type SessionInfo struct {
	ID     string        `json:"sessionId"`
	Status SessionStatus `json:"status"`
	// Cause says why an ended or closing session ends (CauseClosed, …).
	Cause string `json:"cause,omitempty"`
	// Error explains a lost or failed session in words.
	Error    string `json:"error,omitempty"`
	Owner    string `json:"owner,omitempty"`
	Image    string `json:"image,omitempty"`
	Language string `json:"language,omitempty"`
	// Worker is the worker that holds its sandbox; Queue the queue its
	// executions go to.
	Worker    string `json:"worker,omitempty"`
	Queue     string `json:"queue,omitempty"`
	Container string `json:"container,omitempty"`
	// Executions counts the executions admitted; Done those that ended.
	Executions int64 `json:"executions"`
	Done       int64 `json:"done"`
	// Running is the execution running now, or "".
	Running     string        `json:"running,omitempty"`
	IdleTimeout time.Duration `json:"-"`
	Lifetime    time.Duration `json:"-"`
	CreatedAt   time.Time     `json:"createdAt"`
	OpenedAt    time.Time     `json:"openedAt,omitzero"`
	// LastActiveAt is when the last execution ended (or the session
	// opened): idle time counts from it.
	LastActiveAt time.Time `json:"lastActiveAt,omitzero"`
	EndedAt      time.Time `json:"endedAt,omitzero"`
}

type sessionInfoAlias SessionInfo

type sessionInfoJSON struct {
	sessionInfoAlias
	IdleTimeoutMs int64 `json:"idleTimeoutMs"`
	LifetimeMs    int64 `json:"lifetimeMs"`
}

// MarshalJSON writes IdleTimeout and Lifetime as milliseconds.
func (s SessionInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(sessionInfoJSON{sessionInfoAlias(s), s.IdleTimeout.Milliseconds(), s.Lifetime.Milliseconds()})
}

// UnmarshalJSON reads idleTimeoutMs and lifetimeMs.
func (s *SessionInfo) UnmarshalJSON(b []byte) error {
	var v sessionInfoJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = SessionInfo(v.sessionInfoAlias)
	s.IdleTimeout = time.Duration(v.IdleTimeoutMs) * time.Millisecond
	s.Lifetime = time.Duration(v.LifetimeMs) * time.Millisecond
	return nil
}

// IdleFor is how long the session has been idle at now: zero while an
// execution runs or waits.
func (s SessionInfo) IdleFor(now time.Time) time.Duration {
	if s.Status != SessionOpen || s.Running != "" || s.Done < s.Executions || s.LastActiveAt.IsZero() {
		return 0
	}
	return max(now.Sub(s.LastActiveAt), 0)
}
