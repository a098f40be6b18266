package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/tasks"
)

// runInSession runs an execution of a session in the session's sandbox,
// after the session's earlier executions. cancel cancels runCtx; the
// session's end uses it.
func (e *execution) runInSession(ctx, runCtx context.Context, cancel context.CancelCauseFunc) error {
	req := e.req
	var s *session
	if e.w.sessions != nil {
		s = e.w.sessions.get(req.Session)
	}
	if s == nil {
		return e.sessionGone(ctx)
	}
	e.inSession = true
	e.log = e.log.With("session", s.id)
	steps, err := e.w.cfg.Languages.resolve(req)
	if err != nil {
		return e.reject(ctx, err)
	}
	if req.Language != "" && req.Image != s.image {
		return e.reject(ctx, &tasks.ValidationError{Problems: []string{fmt.Sprintf(
			"language %s runs image %s; session %s runs %s", req.Language, req.Image, s.id, s.image)}})
	}
	e.steps = steps
	req.Image = s.image
	e.res.Image = s.image
	if err := e.loadInputs(ctx, req); err != nil {
		var missing *tasks.InputError
		if errors.As(err, &missing) {
			return e.finish(ctx, tasks.StatusError, err.Error())
		}
		return e.retry(ctx, err)
	}
	resolved := req.Resolved(e.w.cfg.Limits)
	// The session's environment, under the execution's own.
	resolved.Env = underEnv(s.req.Env, req.Env)
	l := s.sb.Limits()
	resolved.MemoryBytes, resolved.CPUs, resolved.Pids = l.MemoryBytes, float64(l.NanoCPUs)/1e9, l.Pids
	e.req = &resolved

	end, err := s.await(runCtx, req.SessionSeq, cancel, e.w.cfg.clock.Now)
	switch {
	case errors.Is(err, errNotItsTurn):
		return err
	case err != nil && context.Cause(runCtx) == errCanceled:
		return e.finish(ctx, tasks.StatusCanceled, "canceled before it started")
	case err != nil:
		return ctx.Err()
	case end != nil:
		return e.sessionEnded(ctx, s.id, end)
	}
	if !req.SubmittedAt.IsZero() {
		e.res.QueuedMs = max(e.w.cfg.clock.Now().Sub(req.SubmittedAt).Milliseconds(), 0)
	}
	// The session counts the execution done before its result is stored,
	// so that a client that reads the result finds the session idle; the
	// session's next execution runs once this one has let the sandbox go.
	var ended time.Time
	e.beforeResult = func(ctx context.Context) {
		if !ended.IsZero() {
			return
		}
		ended = e.w.cfg.clock.Now()
		if _, err := retryRedis(ctx, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, e.w.store.SessionDone(ctx, s.id, ended)
		}); err != nil {
			e.log.Warn("record the end of the session's execution", "err", err)
		}
	}
	defer func() {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		defer cancel()
		e.beforeResult(wctx)
		s.done(ended)
	}()
	// A close asked for while the earlier execution ran is seen here, not
	// only at the worker's next look at its sessions.
	status, err := retryRedis(ctx, func(ctx context.Context) (tasks.SessionStatus, error) {
		return e.w.store.SessionRunning(ctx, s.id, e.id)
	})
	switch {
	case err != nil:
		return e.retry(ctx, err)
	case status == tasks.SessionClosing:
		return e.finish(ctx, tasks.StatusCanceled, fmt.Sprintf("the session %s was closed (%s) before it ran", s.id, tasks.CauseClosed))
	case status != tasks.SessionOpen:
		return e.sessionGone(ctx)
	}
	sb := s.sb
	e.log = e.log.With("container", shortID(sb.ID()))
	if err := e.begin(ctx, sb); err != nil {
		if errors.Is(err, rdb.ErrStaleAttempt) {
			e.log.Warn("the execution ended or a later attempt runs it; this attempt does not run", "err", err)
			return nil
		}
		return err
	}
	if err := sb.PutFiles(runCtx, e.req.Files); err != nil {
		return e.failed(ctx, runCtx, err)
	}
	ran := e.execute(ctx, runCtx, sb)
	_, err = e.settle(ctx, runCtx, sb, ran)
	if !ran.outcome.Reusable || errors.Is(ran.err, sandbox.ErrStopped) || errors.Is(ran.err, sandbox.ErrUnresponsive) {
		// Its sandbox went down with the command: nothing of the session
		// is left to run in.
		why := "its sandbox stopped"
		if ran.err != nil {
			why += ": " + ran.err.Error()
		}
		e.w.sessions.end(s, sessionEnd{status: tasks.SessionLost, cause: tasks.CauseLost, message: why, kill: true, replace: true})
	}
	return err
}

// sessionGone stores the result of an execution whose session this worker
// does not hold: it ended, or another worker holds it.
func (e *execution) sessionGone(ctx context.Context) error {
	sid := e.req.Session
	info, err := e.w.store.Session(ctx, sid)
	switch {
	case errors.Is(err, rdb.ErrNotFound):
		return e.finish(ctx, tasks.StatusError, fmt.Sprintf("session %s does not exist: it expired, or was never created", sid))
	case err != nil:
		return e.retry(ctx, err)
	case info.Status == tasks.SessionLost:
		return e.finish(ctx, tasks.StatusError, fmt.Sprintf("the session %s was lost before it ran: %s", sid, info.Error))
	case info.Status == tasks.SessionClosed, info.Status == tasks.SessionClosing:
		return e.finish(ctx, tasks.StatusCanceled, fmt.Sprintf("the session %s was closed (%s) before it ran", sid, cmp.Or(info.Cause, tasks.CauseClosed)))
	}
	return e.finish(ctx, tasks.StatusError, fmt.Sprintf("the session %s is %s on worker %s, not on %s, which received it", sid, info.Status, info.Worker, e.w.cfg.Name))
}

// sessionEnded stores the result of an execution whose session ended
// before its turn.
func (e *execution) sessionEnded(ctx context.Context, sid string, end *sessionEnd) error {
	if end.status == tasks.SessionLost {
		return e.finish(ctx, tasks.StatusError, fmt.Sprintf("the session %s was lost before it ran: %s", sid, end.message))
	}
	return e.finish(ctx, tasks.StatusCanceled, fmt.Sprintf("the session %s was closed (%s) before it ran", sid, end.cause))
}
