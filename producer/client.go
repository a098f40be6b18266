// Package producer is the agent side of execq: Submit an execution and get
// its ID at once, Follow its output as it happens, Wait for or read its
// Result, Cancel it. Nothing here blocks on the command itself except the
// waits that are named as such (Wait, Follow), and those end with ctx.
package producer

import (
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/redisaddr"
	"github.com/execq/execq/tasks"
)

// Errors returned by the Client.
var (
	// ErrNotFound: no execution with this ID was submitted within the
	// retention period.
	ErrNotFound = errors.New("execution not found")
	// ErrNoResult: the execution has no result yet.
	ErrNoResult = errors.New("execution has no result yet")
	// ErrFinished: the execution already has its result; it cannot be
	// canceled.
	ErrFinished = errors.New("execution already finished")
	// ErrIDConflict: the ID was submitted before with another request, or
	// to another queue. An ID names one request; a new request needs a new
	// ID.
	ErrIDConflict = errors.New("execution id conflict")
)

// Options configure a Client. Zero values mean the defaults.
type Options struct {
	// Queue is where executions go when a request names none. Defaults to
	// tasks.DefaultQueue.
	Queue string
	// KeyPrefix prefixes execq's Redis keys; it must match the workers'.
	// Defaults to "execq".
	KeyPrefix string
	// Retention is how long a finished execution's task is kept, during
	// which a Submit with the same ID does nothing; it should match the
	// workers'. Defaults to tasks.DefaultRetention.
	Retention time.Duration
	// Outlast is how long Wait and Follow keep reading through Redis
	// failures in a row (a restart, a failover) before they return the
	// error. Defaults to DefaultOutlast; a negative value returns the
	// first error.
	Outlast time.Duration
}

// DefaultOutlast is Options.Outlast's default: longer than a Sentinel
// failover or a Redis restart takes.
const DefaultOutlast = 30 * time.Second

func (o Options) withDefaults() Options {
	if o.Outlast == 0 {
		o.Outlast = DefaultOutlast
	}
	if o.Queue == "" {
		o.Queue = tasks.DefaultQueue
	}
	if o.Retention <= 0 {
		o.Retention = tasks.DefaultRetention
	}
	return o
}

// Client submits executions and reads what they produce. It is safe for
// concurrent use.
type Client struct {
	opts      Options
	redis     redis.UniversalClient
	ownsRedis bool
	store     *rdb.Store
	queue     *asynq.Client
	inspector *asynq.Inspector
}

// New returns a Client on an existing Redis client, which Close leaves open.
func New(client redis.UniversalClient, opts Options) *Client {
	opts = opts.withDefaults()
	return &Client{
		opts:      opts,
		redis:     client,
		store:     rdb.New(client, tasks.Keys{Prefix: opts.KeyPrefix}, opts.Retention),
		queue:     asynq.NewClientFromRedisClient(client),
		inspector: asynq.NewInspectorFromRedisClient(client),
	}
}

// Dial connects to the Redis at url and returns a Client that closes the
// connection on Close. url is one server ("redis://host:port/db",
// "rediss://…"), a Redis Cluster ("redis-cluster://host:port,host:port"),
// or the master of a Sentinel group
// ("redis-sentinel://host:port,host:port/MASTER"), with the password, or
// user and password, in its userinfo.
func Dial(url string, opts Options) (*Client, error) {
	rc, err := redisaddr.Open(url)
	if err != nil {
		return nil, fmt.Errorf("redis address %s: %w", redisaddr.Redacted(url), err)
	}
	c := New(rc, opts)
	c.ownsRedis = true
	return c, nil
}

// Close releases the client's connections.
func (c *Client) Close() error {
	if c.ownsRedis {
		return c.redis.Close()
	}
	return nil
}
