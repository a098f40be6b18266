package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// Errors of sessions.
var (
	// ErrSessionNotFound: no session with this ID exists within the
	// retention period (or it belongs to another owner).
	ErrSessionNotFound = errors.New("session not found")
	// ErrSessionClosed: the session is closing or closed; it admits no
	// execution.
	ErrSessionClosed = errors.New("session closed")
	// ErrSessionLost: the session's worker died, stopped or lost Redis, or
	// its sandbox stopped; it admits no execution.
	ErrSessionLost = errors.New("session lost")
	// ErrSessionExists: CreateSession was given the ID of an existing
	// session.
	ErrSessionExists = errors.New("session id already used")
)

// DefaultCreateTimeout bounds CreateSession's wait for a worker to open the
// session, where ctx has no earlier deadline.
const DefaultCreateTimeout = time.Minute

// Session is a handle on one session. It holds no connection of its own;
// Client.Session makes one from an ID.
type Session struct {
	c     *Client
	id    string
	owner string
}

// ID is the session's ID.
func (s *Session) ID() string { return s.id }

// Session returns a handle on the session id, created without an owner.
// It does not check that the session exists: Info does.
func (c *Client) Session(id string) *Session { return c.SessionOf(id, "") }

// SessionOf returns a handle on the session id held by owner (see
// tasks.SessionRequest.Owner), as a front end that scopes sessions to
// their owners needs.
func (c *Client) SessionOf(id, owner string) *Session {
	return &Session{c: c, id: id, owner: owner}
}

// CreateSession opens a session and returns once a worker of req.Queue
// (default the client's queue) holds its sandbox: a sandbox kept for
// req.Owner's executions, one at a time, with the files and processes
// they leave (see tasks.SessionRequest). It waits
// at most until ctx's deadline, or DefaultCreateTimeout; a session that no
// worker opened by then is closed, and the error says so.
func (c *Client) CreateSession(ctx context.Context, req tasks.SessionRequest) (*Session, error) {
	if req.ID == "" {
		req.ID = uuid.NewString()
	}
	if req.Queue == "" {
		req.Queue = c.opts.Queue
	}
	req = req.WithDefaults()
	if req.CreatedAt.IsZero() {
		req.CreatedAt = time.Now().UTC()
	}
	if err := req.Check(); err != nil {
		return nil, err
	}
	payload, err := encodeSessionRequest(req)
	if err != nil {
		return nil, err
	}
	if err := c.store.CreateSession(ctx, req, req.CreatedAt); err != nil {
		if errors.Is(err, rdb.ErrSessionExists) {
			return nil, fmt.Errorf("create session %s: %w", req.ID, ErrSessionExists)
		}
		return nil, err
	}
	s := c.SessionOf(req.ID, req.Owner)
	task := asynq.NewTask(tasks.TypeSessionCreate, payload,
		asynq.TaskID("session:"+req.ID),
		asynq.Queue(req.Queue),
		asynq.MaxRetry(taskMaxRetry),
		asynq.Timeout(5*time.Minute),
		asynq.Retention(c.opts.Retention),
	)
	if _, err := c.queue.EnqueueContext(ctx, task); err != nil {
		s.abandon(req.ID, "its request could not be enqueued: "+err.Error())
		return nil, fmt.Errorf("create session %s: %w", req.ID, err)
	}
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		wctx, cancel = context.WithTimeout(ctx, DefaultCreateTimeout)
	}
	defer cancel()
	for {
		info, err := c.store.Session(wctx, req.ID)
		if err == nil && info.Status != tasks.SessionCreating {
			if info.Status == tasks.SessionOpen {
				return s, nil
			}
			return nil, fmt.Errorf("create session %s: it is %s: %s", req.ID, info.Status, info.Error)
		}
		if wctx.Err() != nil {
			s.abandon(req.ID, "no worker opened it in time")
			return nil, fmt.Errorf("create session %s: no worker opened it in time (%w); is a worker with --max-sessions above 0 serving queue %q?",
				req.ID, context.Cause(wctx), req.Queue)
		}
		block := time.Until(deadlineOf(wctx))
		if err := c.store.WaitSessionReady(wctx, req.ID, min(block, 5*time.Second)); err != nil && wctx.Err() == nil {
			return nil, err
		}
	}
}

func deadlineOf(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}

// abandon ends a session that no worker opened, so that a worker that
// claims its request later lets it go.
func (s *Session) abandon(id, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = s.c.store.EndSession(ctx, id, tasks.SessionClosed, tasks.CauseFailed, why, "", time.Now())
}

func encodeSessionRequest(req tasks.SessionRequest) ([]byte, error) {
	b, err := req.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode session request: %w", err)
	}
	return b, nil
}

// Info reads the session's state.
func (s *Session) Info(ctx context.Context) (tasks.SessionInfo, error) {
	info, err := s.c.store.Session(ctx, s.id)
	if errors.Is(err, rdb.ErrNotFound) || err == nil && info.Owner != s.owner {
		return tasks.SessionInfo{}, fmt.Errorf("session %s: %w", s.id, ErrSessionNotFound)
	}
	return info, err
}

// Submit enqueues req in the session and returns its execution ID at once,
// as Client.Submit does. The execution runs after the session's earlier
// ones, in its sandbox; req gives neither image nor limits (the session
// has them). It returns ErrSessionLost or ErrSessionClosed when the session
// admits nothing, ErrSessionNotFound when there is no such session.
func (s *Session) Submit(ctx context.Context, req tasks.ExecRequest) (string, error) {
	req.Session, req.Owner = s.id, s.owner
	return s.c.Submit(ctx, req)
}

// Run submits req in the session and waits for its result.
func (s *Session) Run(ctx context.Context, req tasks.ExecRequest) (*tasks.Result, error) {
	id, err := s.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.c.Wait(ctx, id)
}

// Close closes the session: the execution running in it is canceled, those
// queued get a "canceled" result, every process of the sandbox is killed,
// and the sandbox is reset and verified or replaced, by its worker, shortly
// after Close returns (Info then says closed). Closing a session that has
// ended does nothing.
func (s *Session) Close(ctx context.Context) error {
	running, err := s.c.store.RequestSessionClose(ctx, s.id, s.owner, tasks.CauseClosed)
	var refused *rdb.SessionRefusedError
	switch {
	case errors.Is(err, rdb.ErrNotFound), errors.Is(err, rdb.ErrNotOwner):
		return fmt.Errorf("close session %s: %w", s.id, ErrSessionNotFound)
	case errors.As(err, &refused):
		return nil
	case err != nil:
		return err
	}
	if running != "" {
		if err := s.c.Cancel(ctx, running); err != nil && !errors.Is(err, ErrFinished) && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("close session %s: cancel %s: %w", s.id, running, err)
		}
	}
	return nil
}

// Executions lists the IDs of the executions admitted to the session, in
// their order.
func (s *Session) Executions(ctx context.Context) ([]string, error) {
	if _, err := s.Info(ctx); err != nil {
		return nil, err
	}
	return s.c.store.SessionExecutions(ctx, s.id)
}

// Sessions returns the state of the n sessions created last, newest first;
// with live, only those not yet ended. owner, unless "*", keeps only that
// owner's.
func (c *Client) Sessions(ctx context.Context, n int64, live bool, owner string) ([]tasks.SessionInfo, error) {
	ids, err := c.store.RecentSessions(ctx, n, live)
	if err != nil {
		return nil, err
	}
	all, err := c.store.Sessions(ctx, ids)
	if err != nil {
		return nil, err
	}
	if owner == "*" {
		return all, nil
	}
	out := all[:0]
	for _, s := range all {
		if s.Owner == owner {
			out = append(out, s)
		}
	}
	return out, nil
}

// sessionQueue returns the queue of the worker that holds req's session,
// or says why the session admits nothing.
func (c *Client) sessionQueue(ctx context.Context, req tasks.ExecRequest) (string, error) {
	info, err := c.store.Session(ctx, req.Session)
	switch {
	case errors.Is(err, rdb.ErrNotFound), err == nil && info.Owner != req.Owner:
		return "", fmt.Errorf("submit %s to session %s: %w", req.ID, req.Session, ErrSessionNotFound)
	case err != nil:
		return "", fmt.Errorf("submit %s: %w", req.ID, err)
	case info.Queue == "":
		// Never opened: it admits nothing.
		return "", refusal(req, info.Status, info.Error)
	}
	return info.Queue, nil
}

// refusal says why the session of req, status, admits nothing.
func refusal(req tasks.ExecRequest, status tasks.SessionStatus, message string) error {
	if status == tasks.SessionLost {
		return fmt.Errorf("submit %s to session %s: %w: %s", req.ID, req.Session, ErrSessionLost, message)
	}
	return fmt.Errorf("submit %s to session %s: %w (it is %s)", req.ID, req.Session, ErrSessionClosed, status)
}

// admit gives a session's execution its place, or says why the session
// admits nothing.
func (c *Client) admit(ctx context.Context, req *tasks.ExecRequest) error {
	adm, err := c.store.AdmitToSession(ctx, req.Session, req.ID, req.Owner)
	var refused *rdb.SessionRefusedError
	switch {
	case errors.Is(err, rdb.ErrNotFound), errors.Is(err, rdb.ErrNotOwner):
		return fmt.Errorf("submit %s to session %s: %w", req.ID, req.Session, ErrSessionNotFound)
	case errors.As(err, &refused):
		return refusal(*req, refused.Status, refused.Message)
	case err != nil:
		return fmt.Errorf("submit %s: %w", req.ID, err)
	}
	if adm.Queue != req.Queue {
		return fmt.Errorf("submit %s to session %s: its queue is %q, not %q", req.ID, req.Session, adm.Queue, req.Queue)
	}
	req.SessionSeq = adm.Seq
	return nil
}
