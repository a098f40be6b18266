package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/execq/execq/internal/rdb"
)

// cancelPoll is how often the running executions' cancel markers are read,
// in case a Pub/Sub announcement was lost while the connection was down.
const cancelPoll = time.Second

// cancelWatcher ends the run context of executions that are canceled. A
// cancel is announced on a Pub/Sub channel and recorded in a marker key; the
// announcement ends a run at once, the marker is polled as a fallback.
type cancelWatcher struct {
	store *rdb.Store
	log   *slog.Logger

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newCancelWatcher(store *rdb.Store, log *slog.Logger) *cancelWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &cancelWatcher{
		store:   store,
		log:     log,
		running: map[string]context.CancelCauseFunc{},
		ctx:     ctx,
		cancel:  cancel,
	}
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

func (c *cancelWatcher) start() {
	c.wg.Add(2)
	go c.subscribe()
	go c.poll()
}

func (c *cancelWatcher) stop() {
	c.cancel()
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

func (c *cancelWatcher) poll() {
	defer c.wg.Done()
	t := time.NewTicker(cancelPoll)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.mu.Lock()
			ids := make([]string, 0, len(c.running))
			for id := range c.running {
				ids = append(ids, id)
			}
			c.mu.Unlock()
			for _, id := range ids {
				ctx, cancel := context.WithTimeout(c.ctx, time.Second)
				canceled, err := c.store.Canceled(ctx, id)
				cancel()
				if err == nil && canceled {
					c.cancelRun(id)
				}
			}
		case <-c.ctx.Done():
			return
		}
	}
}
