package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/loop"
	"github.com/execq/execq/internal/rdb"
)

// cancelWatcher ends the run context of executions that are canceled. A
// cancel is announced on a Pub/Sub channel and recorded in a marker key; the
// announcement ends a run at once, the marker is polled as a fallback.
type cancelWatcher struct {
	store *rdb.Store
	log   *slog.Logger
	poll  *loop.Loop

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newCancelWatcher returns a watcher that reads the markers of the running
// executions every pollEvery, in case an announcement was lost while the
// connection was down.
func newCancelWatcher(store *rdb.Store, pollEvery time.Duration, clk clock.Clock, log *slog.Logger) *cancelWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	c := &cancelWatcher{
		store:   store,
		log:     log,
		running: map[string]context.CancelCauseFunc{},
		ctx:     ctx,
		cancel:  cancel,
	}
	c.poll = loop.New(loop.Config{What: "read cancel markers", Every: pollEvery, Pass: c.readMarkers, Clock: clk, Logger: log})
	return c
}

func (c *cancelWatcher) register(id string, cancel context.CancelCauseFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running[id] = cancel
}

func (c *cancelWatcher) unregister(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.running, id)
}

func (c *cancelWatcher) cancelRun(id string) {
	c.mu.Lock()
	cancel, ok := c.running[id]
	c.mu.Unlock()
	if ok {
		c.log.Info("cancel received", "execution", id)
		cancel(errCanceled)
	}
}

func (c *cancelWatcher) start(ctx context.Context) {
	c.wg.Add(1)
	go c.subscribe()
	c.poll.Start(ctx)
}

func (c *cancelWatcher) stop() {
	c.cancel()
	c.poll.Stop()
	c.wg.Wait()
}

func (c *cancelWatcher) subscribe() {
	defer c.wg.Done()
	sub := c.store.SubscribeCancels(c.ctx)
	defer sub.Close()
	// The channel is go-redis's: it resubscribes after a reconnect.
	ch := sub.Channel()
	for {
		select {
		case msg, ok := <-ch:
			if !ok {
				return
			}
			c.cancelRun(msg.Payload)
		case <-c.ctx.Done():
			return
		}
	}
}

// readMarkers cancels the running executions whose cancel marker is set.
func (c *cancelWatcher) readMarkers(ctx context.Context) error {
	c.mu.Lock()
	ids := make([]string, 0, len(c.running))
	for id := range c.running {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		canceled, err := c.store.Canceled(rctx, id)
		cancel()
		if err == nil && canceled {
			c.cancelRun(id)
		}
	}
	return nil
}
