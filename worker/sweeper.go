package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/loop"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// Sweeping of executions whose task left its queue without a result: an
// operator deleted it (from the dashboard, with the asynq CLI), or asynq
// archived it. Without a result, nobody who waits for it would ever see it
// end; the sweeper writes one, with the exit event a client tailing the
// stream waits for, within seconds.
const (
	// sweepGrace is how old a pending record must be to be looked at.
	sweepGrace = 2 * time.Second
	// sweepBatch is how many pending executions one pass reads.
	sweepBatch = 500
)

// sweeper is the worker's component that ends removed executions. One
// worker of the deployment sweeps at a time.
type sweeper struct {
	store *rdb.Store
	name  string
	every time.Duration
	clock clock.Clock
	log   *slog.Logger
	loop  *loop.Loop
	// missing counts the passes that found an execution's task gone: it
	// must be gone at two passes in a row. Only the loop's pass uses it.
	missing map[string]int
}

func newSweeper(store *rdb.Store, name string, every time.Duration, clk clock.Clock, log *slog.Logger) *sweeper {
	s := &sweeper{store: store, name: name, every: every, clock: clk, log: log, missing: map[string]int{}}
	s.loop = loop.New(loop.Config{
		What:    "sweep executions removed from their queue",
		Every:   every,
		Timeout: 10 * time.Second,
		Pass:    func(ctx context.Context) error { return s.pass(ctx, clk.Now()) },
		Clock:   clk,
		Logger:  log,
	})
	return s
}

func (s *sweeper) start(ctx context.Context) { s.loop.Start(ctx) }
func (s *sweeper) stop()                     { s.loop.Stop() }

// pass looks at the executions pending since before now-sweepGrace, a
// batch at a time.
func (s *sweeper) pass(ctx context.Context, now time.Time) error {
	lock := s.store.Keys().SweepLock()
	ok, err := s.store.TryLock(ctx, lock, s.name, s.every*3/4)
	if err != nil || !ok {
		return err
	}
	defer func() { _ = s.store.Unlock(context.WithoutCancel(ctx), lock, s.name) }()
	var kept int64 // still pending, skipped by the next batch
	for range sweepBatches {
		n, k, err := s.batch(ctx, now, kept)
		if err != nil || n < sweepBatch {
			return err
		}
		kept += k
	}
	return nil
}

// sweepBatches bounds the batches of one pass.
const sweepBatches = 10

// batch looks at the sweepBatch oldest pending executions after offset,
// and returns how many it read and how many remain pending.
func (s *sweeper) batch(ctx context.Context, now time.Time, offset int64) (int, int64, error) {
	ids, err := s.store.PendingBefore(ctx, now.Add(-sweepGrace), offset, sweepBatch)
	if err != nil || len(ids) == 0 {
		return 0, 0, err
	}
	states, err := s.store.TaskStates(ctx, ids)
	if err != nil {
		return 0, 0, err
	}
	var done []string
	for _, id := range ids {
		st := states[id]
		switch {
		case st.HasResult:
			done = append(done, id)
		case st.Queue == "":
			// Bound and not yet enqueued, or expired: nothing to look at.
			done = append(done, id)
		case st.State == "":
			s.missing[id]++
			if s.missing[id] < 2 {
				continue
			}
			if err := s.end(ctx, id, tasks.StatusCanceled, fmt.Sprintf("removed from queue %q without a result (deleted by an operator or another client)", st.Queue)); err != nil {
				return 0, 0, err
			}
			done = append(done, id)
		case st.State == asynq.TaskStateArchived.String():
			if err := s.end(ctx, id, tasks.StatusError, fmt.Sprintf("asynq archived it in queue %q without a result", st.Queue)); err != nil {
				return 0, 0, err
			}
			done = append(done, id)
		default:
			delete(s.missing, id)
		}
	}
	for _, id := range done {
		delete(s.missing, id)
	}
	return len(ids), int64(len(ids) - len(done)), s.store.RemovePending(ctx, done...)
}

func (s *sweeper) end(ctx context.Context, id string, status tasks.Status, why string) error {
	written, err := s.store.Finalize(ctx, &tasks.Result{
		ExecutionID: id,
		Status:      status,
		ExitCode:    -1,
		Worker:      s.name,
		Error:       why,
		FinishedAt:  s.clock.Now().UTC(),
	})
	if err != nil && !errors.As(err, new(*rdb.NotRecordedError)) {
		return err
	}
	if written {
		s.log.Info("ended an execution whose task left its queue", "execution", id, "status", status, "why", why)
	}
	return nil
}
