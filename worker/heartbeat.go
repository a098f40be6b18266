package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/loop"
	"github.com/execq/execq/internal/rdb"
)

// heartbeat keeps the worker's liveness record current: a worker whose
// last heartbeat is older than Intervals.DeadAfter is dead, and the other
// workers remove its containers.
type heartbeat struct {
	store *rdb.Store
	name  string
	clock clock.Clock
	log   *slog.Logger
	loop  *loop.Loop
	last  atomic.Int64 // Unix ns of the last heartbeat recorded
}

func newHeartbeat(store *rdb.Store, name string, every time.Duration, clk clock.Clock, log *slog.Logger) *heartbeat {
	h := &heartbeat{store: store, name: name, clock: clk, log: log}
	h.loop = loop.New(loop.Config{What: "heartbeat", Every: every, Timeout: 5 * time.Second, Pass: h.beat, Clock: clk, Logger: log})
	return h
}

func (h *heartbeat) beat(ctx context.Context) error {
	now := h.clock.Now()
	if err := h.store.Heartbeat(ctx, h.name, now); err != nil {
		return err
	}
	h.last.Store(now.UnixNano())
	return nil
}

// lastBeat is when the last heartbeat was recorded.
func (h *heartbeat) lastBeat() time.Time { return time.Unix(0, h.last.Load()) }

// start records the first heartbeat, and fails when it cannot, before it
// keeps beating in the background.
func (h *heartbeat) start(ctx context.Context) error {
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := h.beat(bctx)
	cancel()
	if err != nil {
		return fmt.Errorf("first heartbeat: %w", err)
	}
	h.loop.Start(ctx)
	return nil
}

// stop ends the heartbeat and removes the worker's record, so that it reads
// as gone at once.
func (h *heartbeat) stop(ctx context.Context) {
	h.loop.Stop()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.store.ForgetWorker(ctx, h.name); err != nil {
		h.log.Warn("remove heartbeat", "err", err)
	}
}
