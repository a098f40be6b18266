package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/execq/execq/internal/rdb"
)

// Recovery of executions whose worker crashed. asynq gives a task back only
// 30 s after its lease expired, at a recoverer pass that runs every minute;
// execq requeues it as soon as the lease has expired, plus a margin for
// clock skew between workers.
const (
	recoverEvery  = 2 * time.Second
	recoverMargin = 5 * time.Second
)

// recoverer requeues the executions of crashed workers.
type recoverer struct {
	store  *rdb.Store
	queues []string
	log    *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newRecoverer(store *rdb.Store, queues map[string]int, log *slog.Logger) *recoverer {
	r := &recoverer{store: store, log: log}
	for q := range queues {
		r.queues = append(r.queues, q)
	}
	return r
}

func (r *recoverer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(recoverEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.pass(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (r *recoverer) pass(ctx context.Context) {
	for _, q := range r.queues {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ids, err := r.store.RequeueExpired(pctx, q, time.Now().Add(-recoverMargin))
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
}

func (r *recoverer) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
}
