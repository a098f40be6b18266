// Package worker runs executions: an asynq server whose handler claims an
// execution, takes a warm sandbox from the pool, puts the files in, runs the
// command while its output streams into Redis, stores the result and gives
// the sandbox back to be reset.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/pool"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/tasks"
)

// Worker serves executions from the configured queues.
type Worker struct {
	cfg     Config
	log     *slog.Logger
	store   *rdb.Store
	pool    *pool.Pool
	server  *asynq.Server
	cancels *cancelWatcher
	beat    *heartbeat
	recover *recoverer
	sweep   *sweeper
	engine  *engineHealth
	images  imagePolicy
	// sessions holds the worker's sessions; nil when it holds none
	// (MaxSessions 0).
	sessions *sessions

	inflight     sync.WaitGroup // handlers running
	runtime      sandbox.Runtime
	closeRuntime func() error // nil when the runtime is not the worker's

	mu      sync.Mutex
	started bool
	stopped bool
}

// New returns a Worker; Start starts it.
func New(cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("worker", cfg.Name)
	store := rdb.New(cfg.Redis, tasks.Keys{Prefix: cfg.KeyPrefix}, cfg.Retention)
	w := &Worker{cfg: cfg, log: log, store: store, images: newImagePolicy(cfg.Image, cfg.AllowedImages), runtime: cfg.runtime}
	if w.runtime == nil {
		rt, closeRuntime, err := newRuntime(cfg, log)
		if err != nil {
			return nil, err
		}
		w.runtime, w.closeRuntime = rt, closeRuntime
	}
	defaults := (&tasks.ExecRequest{}).Resolved(cfg.Limits)
	warm := make([]pool.Warm, len(cfg.Warm))
	for i, wi := range cfg.Warm {
		warm[i] = pool.Warm{Image: wi.Image, Count: wi.Count}
	}
	p, err := pool.New(w.runtime, pool.Config{
		Image:    cfg.Image,
		Warm:     warm,
		Limits:   limitsOf(&defaults),
		Owner:    cfg.Name,
		Size:     cfg.PoolSize,
		Sessions: cfg.MaxSessions,
		MaxUses:  cfg.MaxUses,
		OwnerAlive: func(ctx context.Context, owner string) (bool, error) {
			return ownerAlive(ctx, store, owner, cfg.clock.Now().Add(-cfg.Intervals.DeadAfter))
		},
		ReconcileInterval: cfg.Intervals.Reconcile,
		Clock:             cfg.clock,
		Logger:            log,
		OnReplace:         cfg.Observer.ContainerReplaced,
		OnCreate:          cfg.Observer.ContainerCreated,
		OnColdStart:       cfg.Observer.ColdStart,
		OnReset: func(d time.Duration, _ sandbox.ResetReport, err error) {
			cfg.Observer.SandboxReset(d, err)
		},
	})
	if err != nil {
		return nil, err
	}
	w.pool = p
	iv := cfg.Intervals
	queues := cfg.Queues
	if cfg.MaxSessions > 0 {
		w.sessions = newSessions(w)
		// The session queue is this process's alone; its executions are
		// the ones an agent waits on between steps.
		queues = make(map[string]int, len(cfg.Queues)+1)
		top := 1
		for q, prio := range cfg.Queues {
			queues[q] = prio
			top = max(top, prio)
		}
		queues[w.sessions.queue] = 2 * top
	}
	w.cancels = newCancelWatcher(store, iv.CancelPoll, cfg.clock, log)
	w.beat = newHeartbeat(store, cfg.Name, iv.Heartbeat, cfg.clock, log)
	w.recover = newRecoverer(store, queues, iv, cfg.clock, log)
	w.sweep = newSweeper(store, cfg.Name, iv.Sweep, cfg.clock, log)
	w.engine = newEngineHealth(w.runtime.Ping, iv.EngineCheck, cfg.clock, log, cfg.Observer)
	w.server = asynq.NewServerFromRedisClient(cfg.Redis, asynq.Config{
		Concurrency:       cfg.Concurrency,
		Queues:            queues,
		TaskCheckInterval: cfg.TaskCheckInterval,
		// Retries are due after a second or two; the default 5s would
		// triple that.
		DelayedTaskCheckInterval: time.Second,
		RetryDelayFunc:           retryDelay(cfg.Intervals.EngineCheck),
		ErrorHandler:             asynq.ErrorHandlerFunc(w.handleError),
		IsFailure:                isFailure,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		Logger:                   asynqLogger{log.With("component", "asynq")},
		LogLevel:                 asynq.WarnLevel,
		HealthCheckFunc: func(err error) {
			if err != nil {
				log.Error("redis health check failed", "err", err)
			}
		},
	})
	return w, nil
}

// Name is the worker's name.
func (w *Worker) Name() string { return w.cfg.Name }

// PoolStats counts the worker's containers by state.
type PoolStats struct {
	Idle, Busy, Resetting, Creating int
	// ByImage counts them by image reference; it holds every image of
	// Config.Warm.
	ByImage map[string]ImagePoolStats
}

// ImagePoolStats counts the worker's containers of one image.
type ImagePoolStats struct {
	Idle, Busy, Resetting, Creating int
	// Warm is how many idle containers of it Config.Warm keeps.
	Warm int
}

// PoolStats returns the current counts of the worker's containers.
func (w *Worker) PoolStats() PoolStats {
	s, by := w.pool.Stats(), w.pool.ImageStats()
	out := PoolStats{Idle: s.Idle, Busy: s.Busy, Resetting: s.Resetting, Creating: s.Creating, ByImage: make(map[string]ImagePoolStats, len(by))}
	for name, is := range by {
		out.ByImage[name] = ImagePoolStats(is)
	}
	return out
}

// retryDelay spaces retries after infrastructure failures: 1s, 2s, 4s, …,
// at most 30s. An agent is waiting. While the engine is down, executions
// come back every 5s.
func retryDelay(engineCheck time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, t *asynq.Task) time.Duration {
		if errors.Is(err, errEngineDown) {
			return engineCheck
		}
		if errors.Is(err, errNotItsTurn) {
			// Back as soon as asynq moves due retries (every second).
			return 0
		}
		// n is the number of retries so far: 0 at the first failure.
		return min(time.Second<<min(max(n, 0), 5), 30*time.Second)
	}
}

// isFailure decides what counts against an execution's retries. A worker
// that crashed (its lease expired) or stopped, an engine that does not
// answer, or a session execution that came before its turn, is not the
// execution's fault; the attempt counter bounds
// executions that crash every worker.
func isFailure(err error) bool {
	return !errors.Is(err, asynq.ErrLeaseExpired) && !errors.Is(err, context.Canceled) && !errors.Is(err, errEngineDown) &&
		!errors.Is(err, errNotItsTurn)
}

// Start removes containers orphaned by dead workers, starts warming the
// pool, and starts serving. It returns once the worker serves; containers
// keep warming in the background.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("worker already started")
	}
	w.started = true
	if err := w.beat.start(ctx); err != nil {
		return err
	}
	w.checkEvictionPolicy(ctx)
	if err := w.engine.check(ctx); err != nil {
		// The pool keeps trying to warm; executions wait in their queues.
		w.log.Warn("starting without a container engine", "err", err)
	}
	w.engine.start(ctx)
	if err := w.pool.Start(ctx); err != nil {
		w.engine.stop()
		w.beat.stop(ctx)
		return err
	}
	w.cancels.start(ctx)
	w.recover.start(ctx)
	w.sweep.start(ctx)
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeExec, w.processTask)
	if w.sessions != nil {
		mux.HandleFunc(tasks.TypeSessionCreate, w.sessions.handleCreate)
		w.sessions.start(ctx)
	}
	if err := w.server.Start(mux); err != nil {
		if w.sessions != nil {
			w.sessions.stop(ctx)
		}
		w.cancels.stop()
		w.recover.stop()
		w.sweep.stop()
		w.engine.stop()
		_ = w.pool.Stop(context.WithoutCancel(ctx))
		w.beat.stop(context.WithoutCancel(ctx))
		return fmt.Errorf("start asynq server: %w", err)
	}
	w.log.Info("worker started", "image", w.cfg.Image, "pool", w.cfg.PoolSize,
		"concurrency", w.cfg.Concurrency, "queues", w.cfg.Queues, "max_sessions", w.cfg.MaxSessions)
	return nil
}

// checkEvictionPolicy warns when Redis may evict keys: an evicted lease
// makes a running execution look abandoned, and an evicted result loses it.
func (w *Worker) checkEvictionPolicy(ctx context.Context) {
	policy, err := w.cfg.Redis.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return // not every Redis lets a client read its configuration
	}
	if p := policy["maxmemory-policy"]; p != "" && p != "noeviction" {
		w.log.Warn("Redis may evict keys (maxmemory-policy "+p+"); set it to noeviction, or leases and results can be lost",
			"maxmemory_policy", p)
	}
}

// WaitWarm waits until every container of the pool is warm.
func (w *Worker) WaitWarm(ctx context.Context) error { return w.pool.WaitWarm(ctx) }

// Shutdown stops the worker gracefully, in this order:
//
//  1. asynq stops claiming executions and gives the running ones
//     ShutdownTimeout to finish; past it, it puts them back in their queue
//     and cancels their handlers, which kill their commands and store no
//     result, so that another attempt runs them.
//  2. The handlers are waited for, so that no container is in use.
//  3. Cancel watching, recovery, sweeping, engine checks and the heartbeat
//     stop, so the worker reads as gone.
//  4. The pool removes every container.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	if !w.started || w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	w.mu.Unlock()

	w.log.Info("worker stopping", "grace", w.cfg.ShutdownTimeout)
	w.server.Shutdown()
	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		w.log.Warn("executions still running at shutdown; removing their containers")
	}
	if w.sessions != nil {
		w.sessions.stop(ctx)
	}
	w.cancels.stop()
	w.recover.stop()
	w.sweep.stop()
	w.engine.stop()
	w.beat.stop(ctx)
	err := w.pool.Stop(ctx)
	if w.closeRuntime != nil {
		err = errors.Join(err, w.closeRuntime())
	}
	w.log.Info("worker stopped")
	return err
}

// Healthy returns nil when the worker can run executions: Redis and the
// container engine answer.
func (w *Worker) Healthy(ctx context.Context) error {
	if err := w.cfg.Redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return w.engine.state()
}

// Run starts the worker, serves until ctx ends, then shuts it down.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.ShutdownTimeout+30*time.Second)
	defer cancel()
	return w.Shutdown(stopCtx)
}

// asynqLogger routes asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
