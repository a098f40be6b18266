// Package loop runs a pass of background work at a fixed interval: the one
// shape of the worker's and the pool's background jobs (heartbeat,
// recovery of crashed workers' executions, sweeping, engine checks, cancel
// polling, container reconciliation).
package loop

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/execq/execq/internal/clock"
)

// Config configures a Loop.
type Config struct {
	// What the pass does, for the log: "heartbeat", "reconcile containers".
	What string
	// Every is the interval between the starts of two passes. Required.
	Every time.Duration
	// Timeout bounds one pass; 0 leaves it unbounded but for Stop.
	Timeout time.Duration
	// Pass is the work. An error is logged unless the loop is stopping;
	// the next pass runs at the next tick all the same.
	Pass func(ctx context.Context) error
	// Clock makes the ticker. Defaults to the system's clock.
	Clock clock.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Loop runs Config.Pass every Config.Every between Start and Stop, one pass
// at a time; ticks that fall while a pass runs are dropped.
type Loop struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// New returns a loop; Start starts it.
func New(cfg Config) *Loop {
	if cfg.Clock == nil {
		cfg.Clock = clock.System()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Loop{cfg: cfg}
}

// Start starts the loop in the background. The passes see ctx's values,
// not its end: only Stop ends them. A loop starts once.
func (l *Loop) Start(ctx context.Context) {
	l.once.Do(func() {
		ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
		l.done = make(chan struct{})
		// The ticker is made here, not in the goroutine, so that a fake
		// clock moved right after Start ticks it.
		t := l.cfg.Clock.NewTicker(l.cfg.Every)
		go l.run(ctx, t)
	})
}

func (l *Loop) run(ctx context.Context, t clock.Ticker) {
	defer close(l.done)
	defer t.Stop()
	for {
		select {
		case <-t.C():
			l.pass(ctx)
		case <-ctx.Done():
			return
		}
	}
}

func (l *Loop) pass(ctx context.Context) {
	if l.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Timeout)
		defer cancel()
	}
	if err := l.cfg.Pass(ctx); err != nil && context.Cause(ctx) != context.Canceled {
		l.cfg.Logger.Warn(l.cfg.What+" failed", "err", err)
	}
}

// Stop ends the running pass's context, waits for it to return and stops
// the loop. Stopping a loop that never started does nothing.
func (l *Loop) Stop() {
	if l.cancel == nil {
		return
	}
	l.cancel()
	<-l.done
}
