package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/tasks"
)

// DefaultImage is the sandbox image `make sandbox-image` builds.
const DefaultImage = "execq-sandbox:latest"

// Defaults of Config's retry budget.
const (
	DefaultMaxRetry    = 3
	DefaultMaxAttempts = 5
)

// BuiltImages are the images execq builds (make sandbox-image,
// make language-images); every worker allows them.
var BuiltImages = []string{"execq-sandbox", "execq-python", "execq-node", "execq-c"}

// Config configures a Worker. Every field but Redis and Runtime has a
// default, filled in by New.
type Config struct {
	// Redis holds the queues and execq's keys. Required.
	Redis redis.UniversalClient
	// Sandbox configures the sandboxes.
	Sandbox SandboxConfig
	// Name identifies this worker process in results, logs and container
	// labels. Defaults to hostname-pid-random.
	Name string
	// Image is the default sandbox image, kept warm. Defaults to
	// DefaultImage.
	Image string
	// AllowedImages are the images requests may name, as patterns: a
	// repository ("python"), which allows each of its tags, or a reference
	// with a tag, where * and ? match as in path.Match ("python:3.*",
	// "registry.example/team/*:latest"). Image is always allowed, and so
	// are BuiltImages. Anything else is rejected.
	AllowedImages []string
	// PoolSize is how many containers the worker holds. Defaults to 4.
	PoolSize int
	// Concurrency is how many executions run at once. Defaults to PoolSize:
	// more would only wait for a container.
	Concurrency int
	// Queues maps the queues to serve to their priorities. Defaults to
	// {"default": 1}.
	Queues map[string]int
	// TaskCheckInterval is how long the worker waits before polling empty
	// queues again. asynq's own default (1s) adds about a second to every
	// execution on an idle queue. Defaults to 5ms.
	TaskCheckInterval time.Duration
	// Limits are the defaults and maxima of requests.
	Limits tasks.Limits
	// Retention is how long results and streams are kept. Defaults to 24h.
	Retention time.Duration
	// KeyPrefix prefixes execq's Redis keys. Defaults to "execq".
	KeyPrefix string
	// MaxRetry is how many times an execution is retried after
	// infrastructure failures before its result is "error". Defaults to 3.
	// Executions submitted by other asynq clients are also bound by their
	// task's own retry limit.
	MaxRetry int
	// MaxAttempts bounds the attempts at one execution, worker crashes
	// included, so that an execution that kills its workers cannot loop.
	// Defaults to 5.
	MaxAttempts int
	// MaxUses is how many executions a container serves before it is
	// replaced. Isolation does not rest on it (every reset is verified);
	// it bounds whatever drift a long-lived container might accumulate.
	// Defaults to 1000: replacing a container costs the engine far more
	// CPU than a thousand resets.
	MaxUses int
	// ShutdownTimeout is the grace period running executions get at
	// shutdown before they are killed and left to be retried. Defaults to
	// 30s.
	ShutdownTimeout time.Duration
	// AcquireTimeout bounds the wait for a container. Defaults to 2m.
	AcquireTimeout time.Duration
	// StreamLinger and StreamChunkBytes coalesce output into stream
	// entries. Default to 5ms and 16 KiB.
	StreamLinger     time.Duration
	StreamChunkBytes int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer is told what the worker does; nil observes nothing.
	Observer Observer

	// runtime, set by the worker's own tests (worker/internal/hook),
	// replaces the runtime Sandbox describes.
	runtime sandbox.Runtime
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName()
	}
	if c.Image == "" {
		c.Image = DefaultImage
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 4
	}
	if c.Concurrency <= 0 {
		c.Concurrency = c.PoolSize
	}
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{"default": 1}
	}
	if c.TaskCheckInterval <= 0 {
		c.TaskCheckInterval = 5 * time.Millisecond
	}
	c.Limits = c.Limits.WithDefaults()
	if c.Retention <= 0 {
		c.Retention = 24 * time.Hour
	}
	if c.MaxRetry <= 0 {
		c.MaxRetry = DefaultMaxRetry
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxUses <= 0 {
		c.MaxUses = 1000
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.AcquireTimeout <= 0 {
		c.AcquireTimeout = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("a Redis client is required"))
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Concurrency > c.PoolSize {
		errs = append(errs, fmt.Errorf("concurrency %d is above the pool size %d: executions would wait for containers", c.Concurrency, c.PoolSize))
	}
	for q := range c.Queues {
		if q == "" {
			errs = append(errs, errors.New("a queue name is empty"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("worker config: %w", err)
	}
	return nil
}
