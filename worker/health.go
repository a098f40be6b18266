package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// errEngineDown: the container engine does not answer. An execution that
// meets it goes back to its queue without using up a retry, to be run when
// an engine answers again.
var errEngineDown = errors.New("the container engine does not answer")

// engineCheckEvery is how often the engine is pinged.
const engineCheckEvery = 5 * time.Second

// engineHealth tracks whether the container engine answers, says so in the
// log when that changes, and reports it to the observer.
type engineHealth struct {
	ping     func(context.Context) error
	log      *slog.Logger
	observer Observer

	mu   sync.Mutex
	err  error // nil while the engine answers
	seen bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newEngineHealth(ping func(context.Context) error, log *slog.Logger, observer Observer) *engineHealth {
	return &engineHealth{ping: ping, log: log, observer: observer}
}

// check pings the engine now and returns an error wrapping errEngineDown
// when it does not answer.
func (h *engineHealth) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := h.ping(ctx)
	cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err != nil && (h.err == nil || !h.seen):
		h.log.Error("the container engine does not answer; executions wait in their queues until it does", "err", err)
	case err == nil && h.err != nil:
		h.log.Info("the container engine answers again")
	}
	h.err, h.seen = err, true
	h.observer.EngineUp(err == nil)
	if err != nil {
		return fmt.Errorf("%w: %v", errEngineDown, err)
	}
	return nil
}

// state returns the last check's error, without pinging.
func (h *engineHealth) state() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return fmt.Errorf("%w: %v", errEngineDown, h.err)
	}
	return nil
}

func (h *engineHealth) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(engineCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = h.check(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (h *engineHealth) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.wg.Wait()
}
