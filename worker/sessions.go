package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/loop"
	"github.com/execq/execq/internal/pool"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/tasks"
)

// sessionGapWait is how long the executions of a session wait for an
// earlier one that has not arrived (its submitter enqueued it later, or
// failed to) before the next that has runs.
const sessionGapWait = 10 * time.Second

// sessionEndTimeout bounds the end of a session: the wait for its running
// execution, and the writes that record the end.
const sessionEndTimeout = time.Minute

// sessions holds the sessions of this worker: their sandboxes, their order,
// their idle and lifetime clocks. It also ends the sessions of workers that
// died.
type sessions struct {
	w     *Worker
	queue string // this worker process's own queue
	log   *slog.Logger
	loop  *loop.Loop
	lost  *loop.Loop
	insp  *asynq.Inspector

	mu    sync.Mutex
	open  map[string]*session
	ended sync.WaitGroup
}

// session is one session this worker holds.
type session struct {
	id    string
	req   tasks.SessionRequest
	image string // the image reference it runs
	lease *pool.Lease
	sb    sandbox.Sandbox
	log   *slog.Logger

	mu      sync.Mutex
	changed chan struct{} // closed and renewed on every change
	next    int64         // the place of the next execution to run
	// gapSince is when an execution first waited, idle, for the one at
	// next, which has not arrived.
	gapSince   time.Time
	running    bool
	cancelRun  context.CancelCauseFunc
	lastActive time.Time
	// ending is set once the session ends: nothing starts after it.
	ending *sessionEnd
}

// sessionEnd is how a session ends.
type sessionEnd struct {
	status  tasks.SessionStatus
	cause   string
	message string
	// kill: the running execution is canceled rather than waited for.
	kill bool
	// replace: the sandbox is not reset but replaced.
	replace bool
}

func newSessions(w *Worker) *sessions {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	s := &sessions{
		w:     w,
		queue: "session:" + w.cfg.Name + ":" + hex.EncodeToString(suffix),
		log:   w.log.With("component", "sessions"),
		open:  make(map[string]*session),
		insp:  asynq.NewInspectorFromRedisClient(w.cfg.Redis),
	}
	iv := w.cfg.Intervals
	s.loop = loop.New(loop.Config{What: "check sessions", Every: iv.SessionCheck, Timeout: 5 * time.Second, Pass: s.check, Clock: w.cfg.clock, Logger: s.log})
	s.lost = loop.New(loop.Config{What: "end the sessions of dead workers", Every: iv.Recover, Timeout: 30 * time.Second, Pass: s.endLost, Clock: w.cfg.clock, Logger: s.log})
	return s
}

func (m *sessions) start(ctx context.Context) {
	m.loop.Start(ctx)
	m.lost.Start(ctx)
}

// stop ends every session the worker holds, as lost: its worker stops.
func (m *sessions) stop(ctx context.Context) {
	m.loop.Stop()
	m.lost.Stop()
	m.mu.Lock()
	all := make([]*session, 0, len(m.open))
	for _, s := range m.open {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		m.end(s, sessionEnd{status: tasks.SessionLost, cause: tasks.CauseLost,
			message: "its worker " + m.w.cfg.Name + " stopped", kill: true, replace: true})
	}
	done := make(chan struct{})
	go func() { m.ended.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	_ = m.insp.Close()
}

func (m *sessions) get(id string) *session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.open[id]
}

// handleCreate is the asynq handler of TypeSessionCreate: it takes a
// sandbox for the session, puts its files in and opens it. A worker at
// its --max-sessions gives the request back, for another worker.
func (m *sessions) handleCreate(ctx context.Context, t *asynq.Task) error {
	var req tasks.SessionRequest
	if err := json.Unmarshal(t.Payload(), &req); err != nil {
		m.log.Warn("a session request that does not decode is dropped", "err", err)
		return fmt.Errorf("%w: decode session request: %v", asynq.SkipRetry, err)
	}
	log := m.log.With("session", req.ID)
	info, err := m.w.store.Session(ctx, req.ID)
	switch {
	case errors.Is(err, rdb.ErrNotFound):
		log.Info("a session request whose session expired is dropped")
		return nil
	case err != nil:
		return err
	case info.Status != tasks.SessionCreating:
		log.Info("the session is no longer being created; its request is dropped", "status", info.Status)
		return nil
	}
	image, limits, err := m.resolve(ctx, &req, len(t.Payload()))
	if err != nil {
		var invalid *tasks.ValidationError
		if errors.As(err, &invalid) || errors.Is(err, sandbox.ErrImageNotFound) || errors.Is(err, sandbox.ErrInvalidImage) {
			log.Info("session rejected", "err", err)
			return m.fail(ctx, req.ID, err.Error())
		}
		return err
	}
	lease, err := m.w.pool.AcquireSession(ctx, image, limits)
	if errors.Is(err, pool.ErrNoSessionRoom) {
		log.Info("no room for another session here; the request goes back to its queue", "max_sessions", m.w.cfg.MaxSessions)
		return err
	}
	if err != nil {
		return err
	}
	sb := lease.Sandbox()
	if err := sb.SetLimits(ctx, limits); err != nil {
		lease.Replace(pool.CauseError)
		return fmt.Errorf("session %s: set limits: %w", req.ID, err)
	}
	if err := sb.PutFiles(ctx, req.Files); err != nil {
		lease.Replace(pool.CauseError)
		return fmt.Errorf("session %s: put files: %w", req.ID, err)
	}
	now := m.w.cfg.clock.Now()
	s := &session{
		id: req.ID, req: req, image: image.Ref, lease: lease, sb: sb, next: 1, lastActive: now,
		changed: make(chan struct{}),
		log:     log.With("container", shortID(sb.ID())),
	}
	// Held before it is open: its first execution may arrive at once.
	m.mu.Lock()
	m.open[req.ID] = s
	m.mu.Unlock()
	opened, err := m.w.store.OpenSession(ctx, req.ID, m.w.cfg.Name, m.queue, shortID(sb.ID()), image.Ref, now)
	if err != nil || !opened {
		m.mu.Lock()
		delete(m.open, req.ID)
		m.mu.Unlock()
		lease.Reuse()
		if err != nil {
			return err
		}
		log.Info("the session was closed while its sandbox was made; it is given back")
		return nil
	}
	m.w.cfg.Observer.SessionOpened()
	s.log.Info("session opened", "image", image.Ref, "idle_timeout", req.IdleTimeout, "lifetime", req.Lifetime)
	return nil
}

// resolve checks the session's request as an execution's would be, and
// returns its image and limits.
func (m *sessions) resolve(ctx context.Context, req *tasks.SessionRequest, payloadBytes int) (sandbox.Image, sandbox.Limits, error) {
	x := req.Exec()
	if err := x.Validate(m.w.cfg.Limits, payloadBytes); err != nil {
		return sandbox.Image{}, sandbox.Limits{}, err
	}
	if req.Language != "" {
		lang, ok := m.w.cfg.Languages.Lookup(req.Language)
		if !ok {
			return sandbox.Image{}, sandbox.Limits{}, &tasks.ValidationError{Problems: []string{fmt.Sprintf(
				"language %q is not in this worker's catalogue", req.Language)}}
		}
		req.Image = lang.Image
		req.Env = underEnv(lang.Env, req.Env)
	}
	req.Image = cmp.Or(req.Image, m.w.cfg.Image)
	if err := m.w.images.check(req.Image); err != nil {
		return sandbox.Image{}, sandbox.Limits{}, &tasks.ValidationError{Problems: []string{err.Error()}}
	}
	img, err := m.w.runtime.ResolveImage(ctx, req.Image)
	if err != nil {
		return sandbox.Image{}, sandbox.Limits{}, err
	}
	x.Image = req.Image
	resolved := x.Resolved(m.w.cfg.Limits)
	return sandbox.Image{Ref: req.Image, ID: img.ID}, limitsOf(&resolved), nil
}

// fail ends a session that cannot be opened, and wakes its creator.
func (m *sessions) fail(ctx context.Context, id, message string) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	_, err := retryRedis(wctx, func(ctx context.Context) (bool, error) {
		return m.w.store.EndSession(ctx, id, tasks.SessionClosed, tasks.CauseFailed, message, "", m.w.cfg.clock.Now())
	})
	return err
}

// check ends the sessions that were closed, idle or past their lifetime,
// and drops them all when the worker has lost Redis past its lease (the
// other workers take them for lost).
func (m *sessions) check(ctx context.Context) error {
	m.mu.Lock()
	ids := make([]string, 0, len(m.open))
	for id := range m.open {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	m.w.cfg.Observer.SessionsOpen(len(ids))
	if len(ids) == 0 {
		return nil
	}
	now := m.w.cfg.clock.Now()
	if last := m.w.beat.lastBeat(); now.Sub(last) > m.w.cfg.Intervals.DeadAfter {
		for _, id := range ids {
			if s := m.get(id); s != nil {
				m.end(s, sessionEnd{status: tasks.SessionLost, cause: tasks.CauseLost, kill: true, replace: true,
					message: fmt.Sprintf("its worker %s lost Redis for longer than its lease (%s)", m.w.cfg.Name, m.w.cfg.Intervals.DeadAfter)})
			}
		}
		return nil
	}
	infos, err := m.w.store.Sessions(ctx, ids)
	if err != nil {
		return err
	}
	byID := make(map[string]tasks.SessionInfo, len(infos))
	for _, info := range infos {
		byID[info.ID] = info
	}
	for _, id := range ids {
		s := m.get(id)
		if s == nil {
			continue
		}
		info, ok := byID[id]
		if !ok || info.Status.Ended() {
			// Ended by another worker that took this one for dead, or
			// expired: nothing of it is kept.
			m.end(s, sessionEnd{status: tasks.SessionLost, cause: tasks.CauseLost, kill: true, replace: true,
				message: "ended while its worker was cut off"})
			continue
		}
		if info.Status == tasks.SessionClosing {
			m.end(s, sessionEnd{status: tasks.SessionClosed, cause: cmp.Or(info.Cause, tasks.CauseClosed), kill: true})
			continue
		}
		if end := s.due(now, info.Executions); end != nil {
			m.end(s, *end)
		}
	}
	return nil
}

// due says how the session ends at now, when it does: idle for its idle
// timeout with nothing running or admitted and waiting, or past its
// lifetime (the running execution is let finish).
func (s *session) due(now time.Time, admitted int64) *sessionEnd {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ending != nil {
		return nil
	}
	if now.Sub(s.req.CreatedAt) >= s.req.Lifetime {
		return &sessionEnd{status: tasks.SessionClosed, cause: tasks.CauseLifetime}
	}
	waiting := admitted >= s.next
	if !s.running && !waiting && now.Sub(s.lastActive) >= s.req.IdleTimeout {
		return &sessionEnd{status: tasks.SessionClosed, cause: tasks.CauseIdle}
	}
	return nil
}

// end ends s in the background: nothing starts in it any more, its running
// execution is canceled (end.kill) or waited for, its sandbox goes back
// to the pool (reset and verified there) or is replaced, its admitted
// executions that did not run get their result, and Redis records the end.
func (m *sessions) end(s *session, end sessionEnd) {
	s.mu.Lock()
	if s.ending != nil {
		s.mu.Unlock()
		return
	}
	s.ending = &end
	if end.kill && s.cancelRun != nil {
		s.cancelRun(errCanceled)
	}
	s.notifyLocked()
	s.mu.Unlock()
	m.ended.Add(1)
	go func() {
		defer m.ended.Done()
		// A running execution that is let finish is bounded by its own
		// timeout.
		wait := sessionEndTimeout
		if !end.kill {
			wait += m.w.cfg.Limits.MaxTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		s.waitIdle(ctx)
		if end.replace {
			s.lease.Replace(pool.CauseSessionLost)
		} else {
			// The pool resets and verifies it before it serves anyone else,
			// or replaces it.
			s.lease.Reuse()
		}
		now := m.w.cfg.clock.Now()
		worker := m.w.cfg.Name
		if _, err := retryRedis(ctx, func(ctx context.Context) (bool, error) {
			return m.w.store.EndSession(ctx, s.id, end.status, end.cause, end.message, worker, now)
		}); err != nil {
			s.log.Error("recording the end of the session failed", "err", err)
		}
		// Until Redis says it ended, an execution that arrives finds it
		// here, ending.
		m.mu.Lock()
		delete(m.open, s.id)
		m.mu.Unlock()
		m.settleAdmitted(ctx, s.id, end)
		m.w.cfg.Observer.SessionClosed(end.cause)
		s.log.Info("session ended", "status", end.status, "cause", end.cause, "message", end.message)
	}()
}

// settleAdmitted gives every execution admitted to the ended session that
// has no result one: canceled when the session was closed, error when it
// was lost.
func (m *sessions) settleAdmitted(ctx context.Context, sid string, end sessionEnd) {
	ids, err := m.w.store.SessionExecutions(ctx, sid)
	if err != nil {
		m.log.Warn("list the executions of an ended session", "session", sid, "err", err)
		return
	}
	status, msg := tasks.StatusCanceled, fmt.Sprintf("the session %s was closed (%s) before it ran", sid, end.cause)
	if end.status == tasks.SessionLost {
		status, msg = tasks.StatusError, fmt.Sprintf("the session %s was lost before it ran: %s", sid, end.message)
	}
	for _, id := range ids {
		_, err := m.w.store.Finalize(ctx, &tasks.Result{
			ExecutionID: id, Status: status, ExitCode: -1, Session: sid, Worker: m.w.cfg.Name,
			Error: msg, FinishedAt: m.w.cfg.clock.Now().UTC(),
		})
		if err != nil && !errors.As(err, new(*rdb.NotRecordedError)) {
			m.log.Warn("store the result of an execution of an ended session", "execution", id, "err", err)
		}
	}
}

// endLost ends the sessions held by workers that stopped heartbeating: they
// are lost, their admitted executions get an error result, and the dead
// workers' session queues are removed.
func (m *sessions) endLost(ctx context.Context) error {
	ids, err := m.w.store.RecentSessions(ctx, 10000, true)
	if err != nil || len(ids) == 0 {
		return err
	}
	infos, err := m.w.store.Sessions(ctx, ids)
	if err != nil {
		return err
	}
	now := m.w.cfg.clock.Now()
	dead := map[string]bool{}
	queues := map[string]bool{}
	for _, info := range infos {
		if info.Worker == "" || info.Worker == m.w.cfg.Name || info.Status.Ended() {
			continue
		}
		isDead, checked := dead[info.Worker]
		if !checked {
			last, known, err := m.w.store.WorkerLastSeen(ctx, info.Worker)
			if err != nil {
				return err
			}
			isDead = !known || now.Sub(last) > m.w.cfg.Intervals.DeadAfter
			dead[info.Worker] = isDead
		}
		if !isDead {
			continue
		}
		end := sessionEnd{status: tasks.SessionLost, cause: tasks.CauseLost,
			message: fmt.Sprintf("its worker %s stopped renewing its heartbeat", info.Worker)}
		ended, err := m.w.store.EndSession(ctx, info.ID, end.status, end.cause, end.message, info.Worker, now)
		if err != nil {
			return err
		}
		if ended {
			m.log.Warn("session lost: its worker stopped renewing its heartbeat", "session", info.ID, "worker", info.Worker)
			m.settleAdmitted(ctx, info.ID, end)
			m.w.cfg.Observer.SessionClosed(tasks.CauseLost)
		}
		if info.Queue != "" {
			queues[info.Queue] = true
		}
	}
	for q := range queues {
		if err := m.insp.DeleteQueue(q, true); err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			m.log.Warn("remove the session queue of a dead worker", "queue", q, "err", err)
		}
	}
	return nil
}

func (s *session) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitIdle waits until no execution runs in s, or ctx ends.
func (s *session) waitIdle(ctx context.Context) {
	for {
		s.mu.Lock()
		running, ch := s.running, s.changed
		s.mu.Unlock()
		if !running {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// errNotItsTurn is what a session's execution whose turn has not come
// gives back to asynq, to come again: waiting would hold an execution
// slot that the earlier executions it waits for may need.
var errNotItsTurn = errors.New("an earlier execution of the session has not run yet")

// turnWait is how long an execution of a session that arrives before its
// turn waits for it before it goes back to its queue.
const turnWait = 250 * time.Millisecond

// await waits, at most turnWait, for the turn of the execution at place
// seq, and marks it running with cancel as its cancel. It returns the
// session's end when the session ended first, errNotItsTurn when its turn
// has not come, or ctx's error. An earlier execution that has not arrived
// within sessionGapWait of the first one waiting for it is passed over.
func (s *session) await(ctx context.Context, seq int64, cancel context.CancelCauseFunc, now func() time.Time) (*sessionEnd, error) {
	timer := time.NewTimer(turnWait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		switch {
		case s.ending != nil:
			end := s.ending
			s.mu.Unlock()
			return end, nil
		case !s.running && seq > s.next && !s.gapSince.IsZero() && now().Sub(s.gapSince) >= sessionGapWait:
			s.log.Warn("an earlier execution of the session did not arrive; running a later one", "waited_for", s.next, "seq", seq)
			s.next = seq
			fallthrough
		case !s.running && seq <= s.next:
			s.running, s.cancelRun = true, cancel
			s.next = max(s.next, seq) + 1
			s.gapSince = time.Time{}
			s.notifyLocked()
			s.mu.Unlock()
			return nil, nil
		}
		if !s.running && s.gapSince.IsZero() {
			s.gapSince = now()
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return nil, errNotItsTurn
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// done marks the running execution over at now.
func (s *session) done(now time.Time) {
	s.mu.Lock()
	s.running, s.cancelRun, s.lastActive = false, nil, now
	s.notifyLocked()
	s.mu.Unlock()
}
