package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/loop"
	"github.com/execq/execq/internal/rdb"
)

// recoverer requeues the executions of crashed workers. asynq gives a task
// back only 30 s after its lease expired, at a recoverer pass that runs
// every minute; execq requeues it as soon as the lease has expired, plus a
// margin for clock skew between workers.
type recoverer struct {
	store  *rdb.Store
	queues []string
	margin time.Duration
	clock  clock.Clock
	log    *slog.Logger
	loop   *loop.Loop
}

func newRecoverer(store *rdb.Store, queues map[string]int, iv Intervals, clk clock.Clock, log *slog.Logger) *recoverer {
	r := &recoverer{store: store, margin: iv.RecoverMargin, clock: clk, log: log}
	for q := range queues {
		r.queues = append(r.queues, q)
	}
	r.loop = loop.New(loop.Config{What: "recover executions of crashed workers", Every: iv.Recover, Pass: r.pass, Clock: clk, Logger: log})
	return r
}

func (r *recoverer) start(ctx context.Context) { r.loop.Start(ctx) }
func (r *recoverer) stop()                     { r.loop.Stop() }

// pass requeues, in every queue, the executions whose lease expired more
// than the margin ago.
func (r *recoverer) pass(ctx context.Context) error {
	for _, q := range r.queues {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ids, err := r.store.RequeueExpired(pctx, q, r.clock.Now().Add(-r.margin))
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("recover executions of crashed workers", "queue", q, "err", err)
			}
			continue
		}
		for _, id := range ids {
			r.log.Warn("requeued an execution whose worker stopped renewing its lease", "queue", q, "execution", id)
		}
	}
	return nil
}
