package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/loop"
)

// errEngineDown: the container engine does not answer. An execution that
// meets it goes back to its queue without using up a retry, to be run when
// an engine answers again.
var errEngineDown = errors.New("the container engine does not answer")

// engineHealth tracks whether the container engine answers, says so in the
// log when that changes, and reports it to the observer.
type engineHealth struct {
	ping     func(context.Context) error
	log      *slog.Logger
	observer Observer

	loop *loop.Loop

	mu   sync.Mutex
	err  error // nil while the engine answers
	seen bool
}

func newEngineHealth(ping func(context.Context) error, every time.Duration, clk clock.Clock, log *slog.Logger, observer Observer) *engineHealth {
	h := &engineHealth{ping: ping, log: log, observer: observer}
	// check logs what changes; the loop has nothing to add.
	h.loop = loop.New(loop.Config{What: "check the container engine", Every: every, Clock: clk, Logger: log,
		Pass: func(ctx context.Context) error { _ = h.check(ctx); return nil }})
	return h
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

func (h *engineHealth) start(ctx context.Context) { h.loop.Start(ctx) }
func (h *engineHealth) stop()                     { h.loop.Stop() }
