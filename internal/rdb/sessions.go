package rdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/tasks"
)

// Errors of the session operations.
var (
	// ErrSessionExists: a session with the ID exists already.
	ErrSessionExists = errors.New("a session with this id exists")
	// ErrNotOwner: the session belongs to another owner. Front ends
	// answer it as they answer a session that does not exist.
	ErrNotOwner = errors.New("the session belongs to another owner")
)

// SessionRefusedError says why a session admits no execution.
type SessionRefusedError struct {
	Status tasks.SessionStatus
	// Message is the session's error, where it has one.
	Message string
}

func (e *SessionRefusedError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("the session is %s: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("the session is %s", e.Status)
}

// CreateSession records a session being created from req (its defaults
// applied) at now. The session expires with its lifetime plus the
// retention.
func (s *Store) CreateSession(ctx context.Context, req tasks.SessionRequest, now time.Time) error {
	ttl := req.Lifetime + s.retention
	fields := []any{
		"id", req.ID, "status", string(tasks.SessionCreating), "owner", req.Owner,
		"image", req.Image, "language", req.Language, "seq", 0, "done", 0,
		"idle_ms", req.IdleTimeout.Milliseconds(), "lifetime_ms", req.Lifetime.Milliseconds(),
		"created_ms", now.UnixMilli(),
	}
	args := append([]any{ttl.Milliseconds()}, fields...)
	got, err := createSessionScript.Run(ctx, s.client, []string{s.keys.Session(req.ID)}, args...).Slice()
	if err != nil {
		return fmt.Errorf("create session %s: %w", req.ID, err)
	}
	if n, _ := got[0].(int64); n == 0 {
		return fmt.Errorf("create session %s: %w", req.ID, ErrSessionExists)
	}
	score := float64(now.UnixMilli())
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, s.keys.Sessions(), redis.Z{Score: score, Member: req.ID})
		p.ZAdd(ctx, s.keys.LiveSessions(), redis.Z{Score: score, Member: req.ID})
		oldest := now.Add(-tasks.MaxSessionLifetime - s.retention).UnixMilli()
		p.ZRemRangeByScore(ctx, s.keys.Sessions(), "-inf", strconv.FormatInt(oldest, 10))
		return nil
	})
	if err != nil {
		return fmt.Errorf("index session %s: %w", req.ID, err)
	}
	return nil
}

// WaitSessionReady blocks until the session's worker opened it or it
// ended, at most block (at least a second, as BLPOP counts).
func (s *Store) WaitSessionReady(ctx context.Context, id string, block time.Duration) error {
	err := s.client.BLPop(ctx, max(block, time.Second), s.keys.SessionReady(id)).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("wait for session %s: %w", id, err)
	}
	return nil
}

// OpenSession marks the session being created as open on worker, which
// serves its executions from queue in container. It reports false when the
// session is no longer being created (closed meanwhile, or opened by
// another worker).
func (s *Store) OpenSession(ctx context.Context, id, worker, queue, container, image string, now time.Time) (bool, error) {
	keys := []string{s.keys.Session(id), s.keys.SessionReady(id)}
	prev, err := openSessionScript.Run(ctx, s.client, keys, worker, queue, container, now.UnixMilli(), image).Text()
	if err != nil {
		return false, fmt.Errorf("open session %s: %w", id, err)
	}
	return prev == string(tasks.SessionCreating), nil
}

// Admission is an execution's place in its session.
type Admission struct {
	Seq   int64
	Queue string
	// Created is false when the execution was admitted before.
	Created bool
}

// AdmitToSession admits execution id of owner to session sid, once. It
// returns ErrNotFound when there is no such session, ErrNotOwner when it
// is another owner's, and a *SessionRefusedError when it admits nothing.
func (s *Store) AdmitToSession(ctx context.Context, sid, id, owner string) (Admission, error) {
	keys := []string{s.keys.Session(sid), s.keys.SessionExecutions(sid)}
	got, err := admitSessionScript.Run(ctx, s.client, keys, id, owner).Slice()
	if err != nil {
		return Admission{}, fmt.Errorf("admit %s to session %s: %w", id, sid, err)
	}
	switch code, _ := got[0].(int64); code {
	case -1:
		return Admission{}, fmt.Errorf("session %s: %w", sid, ErrNotFound)
	case -2:
		return Admission{}, fmt.Errorf("session %s: %w", sid, ErrNotOwner)
	case 0:
		status, _ := got[1].(string)
		msg, _ := got[2].(string)
		return Admission{}, &SessionRefusedError{Status: tasks.SessionStatus(status), Message: msg}
	default:
		seq, _ := got[1].(int64)
		queue, _ := got[2].(string)
		return Admission{Seq: seq, Queue: queue, Created: code == 1}, nil
	}
}

// RequestSessionClose marks the session closing for cause, on behalf of
// owner, and returns the execution running in it ("" for none). It
// returns ErrNotFound and ErrNotOwner as AdmitToSession does, and a
// *SessionRefusedError when the session had ended.
func (s *Store) RequestSessionClose(ctx context.Context, sid, owner, cause string) (running string, err error) {
	got, err := closeSessionScript.Run(ctx, s.client, []string{s.keys.Session(sid)}, owner, cause).Slice()
	if err != nil {
		return "", fmt.Errorf("close session %s: %w", sid, err)
	}
	switch code, _ := got[0].(int64); code {
	case -1:
		return "", fmt.Errorf("session %s: %w", sid, ErrNotFound)
	case -2:
		return "", fmt.Errorf("session %s: %w", sid, ErrNotOwner)
	case 0:
		status, _ := got[1].(string)
		return "", &SessionRefusedError{Status: tasks.SessionStatus(status)}
	default:
		running, _ := got[1].(string)
		return running, nil
	}
}

// EndSession ends the session: status closed or lost, with cause and
// message, unless it had ended. With worker given, only while that worker
// holds it. It reports whether this call ended it.
func (s *Store) EndSession(ctx context.Context, sid string, status tasks.SessionStatus, cause, message, worker string, now time.Time) (bool, error) {
	keys := []string{s.keys.Session(sid), s.keys.SessionExecutions(sid), s.keys.SessionReady(sid)}
	n, err := endSessionScript.Run(ctx, s.client, keys, string(status), cause, message, now.UnixMilli(), s.retention.Milliseconds(), worker).Int()
	if err != nil {
		return false, fmt.Errorf("end session %s: %w", sid, err)
	}
	if err := s.client.ZRem(ctx, s.keys.LiveSessions(), sid).Err(); err != nil {
		return n == 1, fmt.Errorf("unlist session %s: %w", sid, err)
	}
	return n == 1, nil
}

// SessionRunning records that execution id runs in the session now, and
// returns the session's status: only an open session records it.
func (s *Store) SessionRunning(ctx context.Context, sid, id string) (tasks.SessionStatus, error) {
	status, err := sessionRunningScript.Run(ctx, s.client, []string{s.keys.Session(sid)}, id).Text()
	if err != nil {
		return "", fmt.Errorf("session %s: record the execution running: %w", sid, err)
	}
	return tasks.SessionStatus(status), nil
}

// SessionDone records that an execution of the session ended at now.
func (s *Store) SessionDone(ctx context.Context, sid string, now time.Time) error {
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, s.keys.Session(sid), "running")
		p.HIncrBy(ctx, s.keys.Session(sid), "done", 1)
		p.HSet(ctx, s.keys.Session(sid), "active_ms", now.UnixMilli())
		return nil
	})
	if err != nil {
		return fmt.Errorf("session %s: record the end of an execution: %w", sid, err)
	}
	return nil
}

// Session reads a session's state; ErrNotFound when there is none.
func (s *Store) Session(ctx context.Context, sid string) (tasks.SessionInfo, error) {
	m, err := s.client.HGetAll(ctx, s.keys.Session(sid)).Result()
	if err != nil {
		return tasks.SessionInfo{}, fmt.Errorf("read session %s: %w", sid, err)
	}
	if len(m) == 0 {
		return tasks.SessionInfo{}, fmt.Errorf("session %s: %w", sid, ErrNotFound)
	}
	return sessionInfo(m), nil
}

// Sessions reads the state of the sessions given, in their order; those
// that expired are left out.
func (s *Store) Sessions(ctx context.Context, ids []string) ([]tasks.SessionInfo, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.keys.Session(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read sessions: %w", err)
	}
	out := make([]tasks.SessionInfo, 0, len(ids))
	for _, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			out = append(out, sessionInfo(m))
		}
	}
	return out, nil
}

// RecentSessions returns the IDs of the n sessions created last, newest
// first; with live, only those not yet ended.
func (s *Store) RecentSessions(ctx context.Context, n int64, live bool) ([]string, error) {
	key := s.keys.Sessions()
	if live {
		key = s.keys.LiveSessions()
	}
	ids, err := s.client.ZRevRange(ctx, key, 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return ids, nil
}

// SessionExecutions returns the IDs of the executions admitted to the
// session, in their order.
func (s *Store) SessionExecutions(ctx context.Context, sid string) ([]string, error) {
	m, err := s.client.HGetAll(ctx, s.keys.SessionExecutions(sid)).Result()
	if err != nil {
		return nil, fmt.Errorf("list the executions of session %s: %w", sid, err)
	}
	type admitted struct {
		id  string
		seq int64
	}
	list := make([]admitted, 0, len(m))
	for id, v := range m {
		seq, _ := strconv.ParseInt(v, 10, 64)
		list = append(list, admitted{id, seq})
	}
	slices.SortFunc(list, func(a, b admitted) int { return int(a.seq - b.seq) })
	ids := make([]string, len(list))
	for i, a := range list {
		ids[i] = a.id
	}
	return ids, nil
}

// WorkerLastSeen returns when worker last heartbeated; false when this
// deployment does not know it (it never ran, stopped cleanly, or was
// forgotten).
func (s *Store) WorkerLastSeen(ctx context.Context, worker string) (time.Time, bool, error) {
	score, err := s.client.ZScore(ctx, s.keys.Workers(), worker).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("check heartbeat of %s: %w", worker, err)
	}
	return time.Unix(int64(score), 0), true, nil
}

func sessionInfo(m map[string]string) tasks.SessionInfo {
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	at := func(k string) time.Time {
		if n := num(k); n > 0 {
			return time.UnixMilli(n).UTC()
		}
		return time.Time{}
	}
	return tasks.SessionInfo{
		ID:           m["id"],
		Status:       tasks.SessionStatus(m["status"]),
		Cause:        m["cause"],
		Error:        m["error"],
		Owner:        m["owner"],
		Image:        m["image"],
		Language:     m["language"],
		Worker:       m["worker"],
		Queue:        m["queue"],
		Container:    m["container"],
		Executions:   num("seq"),
		Done:         num("done"),
		Running:      m["running"],
		IdleTimeout:  time.Duration(num("idle_ms")) * time.Millisecond,
		Lifetime:     time.Duration(num("lifetime_ms")) * time.Millisecond,
		CreatedAt:    at("created_ms"),
		OpenedAt:     at("opened_ms"),
		LastActiveAt: at("active_ms"),
		EndedAt:      at("ended_ms"),
	}
}
