package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/execq/execq/internal/rdb"
)

// Heartbeat timing: a worker whose last heartbeat is older than
// heartbeatTTL is dead, and other workers remove its containers.
const (
	heartbeatEvery = 5 * time.Second
	heartbeatTTL   = 15 * time.Second
)

// heartbeat keeps the worker's liveness key current.
type heartbeat struct {
	store *rdb.Store
	name  string
	log   *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newHeartbeat(store *rdb.Store, name string, log *slog.Logger) *heartbeat {
	return &heartbeat{store: store, name: name, log: log}
}

func (h *heartbeat) start(ctx context.Context) error {
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := h.store.Heartbeat(bctx, h.name)
	cancel()
	if err != nil {
		return fmt.Errorf("first heartbeat: %w", err)
	}
	loopCtx, stop := context.WithCancel(context.Background())
	h.cancel = stop
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				ctx, cancel := context.WithTimeout(loopCtx, 5*time.Second)
				if err := h.store.Heartbeat(ctx, h.name); err != nil && loopCtx.Err() == nil {
					h.log.Warn("heartbeat failed", "err", err)
				}
				cancel()
			case <-loopCtx.Done():
				return
			}
		}
	}()
	return nil
}

func (h *heartbeat) stop(ctx context.Context) {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.wg.Wait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.store.ForgetWorker(ctx, h.name); err != nil {
		h.log.Warn("remove heartbeat", "err", err)
	}
}
