package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/tasks"
)

// DefaultImage is the sandbox image `make sandbox-image` builds.
const DefaultImage = "execq-sandbox:latest"

// Defaults of Config.
const (
	DefaultPoolSize          = 4
	DefaultTaskCheckInterval = 5 * time.Millisecond
	DefaultMaxRetry          = 3
	DefaultMaxAttempts       = 5
	DefaultMaxUses           = 1000
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultAcquireTimeout    = 2 * time.Minute
	DefaultMaxSessions       = 4
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
	// Languages is the catalogue that requests' languages are resolved
	// with, on this worker: what a language runs is the operator's choice,
	// and every image it names must be allowed (AllowedImages). Defaults
	// to DefaultCatalogue.
	Languages *Catalogue
	// PoolSize is how many containers the worker holds. Defaults to
	// DefaultPoolSize.
	PoolSize int
	// Warm lists how many idle containers of which images the pool keeps
	// warm, within PoolSize: the rest of the pool holds containers made
	// when an execution asks for an image with none idle (a cold start),
	// kept idle for the next one until their slot is needed. Every image
	// must be allowed. Defaults to PoolSize containers of Image.
	Warm []WarmImage
	// MaxSessions is how many sessions the worker holds at once, each with
	// a container of its own beside the pool's PoolSize; an idle session
	// holds its container, not an execution slot (Concurrency). Defaults
	// to DefaultMaxSessions; negative holds none.
	MaxSessions int
	// Concurrency is how many executions run at once. Defaults to PoolSize:
	// more would only wait for a container.
	Concurrency int
	// Queues maps the queues to serve to their priorities. Defaults to
	// tasks.DefaultQueue alone.
	Queues map[string]int
	// TaskCheckInterval is how long the worker waits before polling empty
	// queues again. asynq's own default (1s) adds about a second to every
	// execution on an idle queue. Defaults to DefaultTaskCheckInterval.
	TaskCheckInterval time.Duration
	// Limits are the defaults and maxima of requests.
	Limits tasks.Limits
	// Retention is how long results and streams are kept. Defaults to
	// tasks.DefaultRetention.
	Retention time.Duration
	// KeyPrefix prefixes execq's Redis keys. Defaults to "execq".
	KeyPrefix string
	// MaxRetry is how many times an execution is retried after
	// infrastructure failures before its result is "error". Defaults to
	// DefaultMaxRetry.
	// Executions submitted by other asynq clients are also bound by their
	// task's own retry limit.
	MaxRetry int
	// MaxAttempts bounds the attempts at one execution, worker crashes
	// included, so that an execution that kills its workers cannot loop.
	// Defaults to DefaultMaxAttempts.
	MaxAttempts int
	// MaxUses is how many executions a container serves before it is
	// replaced. Isolation does not rest on it (every reset is verified);
	// it bounds whatever drift a long-lived container might accumulate.
	// Defaults to DefaultMaxUses: replacing a container costs the engine
	// far more CPU than a thousand resets.
	MaxUses int
	// ShutdownTimeout is the grace period running executions get at
	// shutdown before they are killed and left to be retried. Defaults to
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// AcquireTimeout bounds the wait for a container. Defaults to
	// DefaultAcquireTimeout.
	AcquireTimeout time.Duration
	// StreamLinger and StreamChunkBytes coalesce output into stream
	// entries. Default to 5ms and 16 KiB.
	StreamLinger     time.Duration
	StreamChunkBytes int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer is told what the worker does; nil observes nothing.
	Observer Observer
	// Intervals time the worker's background work.
	Intervals Intervals

	// runtime, set by the worker's own tests (worker/internal/hook),
	// replaces the runtime Sandbox describes.
	runtime sandbox.Runtime
	// clock, set by the worker's own tests, is the time of results,
	// heartbeats and leases and ticks the background work. Durations the
	// worker measures, and commands' deadlines, are the system's.
	clock clock.Clock
}

// WarmImage is a number of warm containers of an image (Config.Warm).
type WarmImage struct {
	// Image is an image reference, as requests name them.
	Image string
	// Count is how many containers of it the pool keeps.
	Count int
}

// Defaults of Intervals.
const (
	DefaultHeartbeat     = 5 * time.Second
	DefaultDeadAfter     = 3 * DefaultHeartbeat
	DefaultRecover       = 2 * time.Second
	DefaultRecoverMargin = 5 * time.Second
	DefaultSweep         = 2 * time.Second
	DefaultEngineCheck   = 5 * time.Second
	DefaultCancelPoll    = time.Second
	DefaultSessionCheck  = 500 * time.Millisecond
)

// Intervals time the worker's background work. A zero field takes its
// default.
type Intervals struct {
	// Heartbeat is how often the worker records that it is alive.
	// Defaults to DefaultHeartbeat.
	Heartbeat time.Duration
	// DeadAfter is how long after its last heartbeat a worker is taken
	// for dead, and its containers are removed by the other workers.
	// Defaults to DefaultDeadAfter (three heartbeats).
	DeadAfter time.Duration
	// Recover is how often the executions of workers that stopped
	// renewing their leases are looked for. Defaults to DefaultRecover.
	Recover time.Duration
	// RecoverMargin is how long past the expiry of its lease an execution
	// is requeued, for clock skew between hosts. Defaults to
	// DefaultRecoverMargin.
	RecoverMargin time.Duration
	// Sweep is how often executions removed from their queue without a
	// result are looked for. Defaults to DefaultSweep.
	Sweep time.Duration
	// EngineCheck is how often the container engine is pinged, and how
	// long an execution that met it down waits before it is tried again.
	// Defaults to DefaultEngineCheck.
	EngineCheck time.Duration
	// CancelPoll is how often the cancel markers of running executions are
	// read, in case an announcement was lost while the connection was
	// down. Defaults to DefaultCancelPoll.
	CancelPoll time.Duration
	// SessionCheck is how often the worker looks for its sessions that were
	// closed, went idle or reached their lifetime. Defaults to
	// DefaultSessionCheck.
	SessionCheck time.Duration
	// Reconcile is how often the pool compares its containers with the
	// engine's, removing dead workers' containers and replacing its own
	// that died. Defaults to DeadAfter.
	Reconcile time.Duration
}

func (iv Intervals) withDefaults() Intervals {
	orDefault := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	orDefault(&iv.Heartbeat, DefaultHeartbeat)
	orDefault(&iv.DeadAfter, 3*iv.Heartbeat)
	orDefault(&iv.Recover, DefaultRecover)
	orDefault(&iv.RecoverMargin, DefaultRecoverMargin)
	orDefault(&iv.Sweep, DefaultSweep)
	orDefault(&iv.EngineCheck, DefaultEngineCheck)
	orDefault(&iv.CancelPoll, DefaultCancelPoll)
	orDefault(&iv.Reconcile, iv.DeadAfter)
	orDefault(&iv.SessionCheck, DefaultSessionCheck)
	return iv
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName()
	}
	if c.Image == "" {
		c.Image = DefaultImage
	}
	if c.PoolSize <= 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.Languages == nil {
		c.Languages = DefaultCatalogue()
	}
	if len(c.Warm) == 0 {
		c.Warm = []WarmImage{{Image: c.Image, Count: c.PoolSize}}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = c.PoolSize
	}
	switch {
	case c.MaxSessions == 0:
		c.MaxSessions = DefaultMaxSessions
	case c.MaxSessions < 0:
		c.MaxSessions = 0
	}
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{tasks.DefaultQueue: 1}
	}
	if c.TaskCheckInterval <= 0 {
		c.TaskCheckInterval = DefaultTaskCheckInterval
	}
	c.Limits = c.Limits.WithDefaults()
	if c.Retention <= 0 {
		c.Retention = tasks.DefaultRetention
	}
	if c.MaxRetry <= 0 {
		c.MaxRetry = DefaultMaxRetry
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxUses <= 0 {
		c.MaxUses = DefaultMaxUses
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.AcquireTimeout <= 0 {
		c.AcquireTimeout = DefaultAcquireTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	c.Intervals = c.Intervals.withDefaults()
	if c.clock == nil {
		c.clock = clock.System()
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
	if iv := c.Intervals; iv.DeadAfter <= iv.Heartbeat {
		errs = append(errs, fmt.Errorf("dead-after %s is not longer than the heartbeat interval %s: live workers would be taken for dead", iv.DeadAfter, iv.Heartbeat))
	}
	if c.Concurrency > c.PoolSize {
		errs = append(errs, fmt.Errorf("concurrency %d is above the pool size %d: executions would wait for containers", c.Concurrency, c.PoolSize))
	}
	policy := newImagePolicy(c.Image, c.AllowedImages)
	for _, l := range c.Languages.Languages() {
		if err := policy.check(l.Image); err != nil {
			errs = append(errs, fmt.Errorf("language %s: %w", l.Name, err))
		}
	}
	errs = append(errs, c.validateWarm(policy)...)
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

func (c Config) validateWarm(policy imagePolicy) []error {
	var errs []error
	total := 0
	seen := map[string]bool{}
	for _, w := range c.Warm {
		if w.Count < 0 {
			errs = append(errs, fmt.Errorf("warm: %d containers of %s is negative", w.Count, w.Image))
		}
		if seen[w.Image] {
			errs = append(errs, fmt.Errorf("warm: %s is given twice", w.Image))
		}
		seen[w.Image] = true
		if err := policy.check(w.Image); err != nil {
			errs = append(errs, fmt.Errorf("warm: %w", err))
		}
		total += w.Count
	}
	if total > c.PoolSize {
		errs = append(errs, fmt.Errorf("warm: %d containers to keep warm, above the pool size %d", total, c.PoolSize))
	}
	return errs
}
