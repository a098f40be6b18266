package testutil

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// Eventually fails the test unless cond holds within d, checking it every
// tick: for what the code under test does in the background with no
// signal to wait on. what says what was waited for.
func Eventually(t testing.TB, d, tick time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(d, tick, cond) {
		t.Fatalf("timed out after %s waiting until %s", d, what)
	}
}

// Within reports whether cond holds within d, checking it every tick.
func Within(d, tick time.Duration, cond func() bool) bool {
	return harness.Await(context.Background(), d, tick, cond) == nil
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// FreeAddr returns a loopback host:port that nothing listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Logger returns a logger for the code a test runs: silent, unless the
// test runs with -v, when it writes at debug level to the test's log.
// Nothing reaches the test's log once its cleanups have run.
func Logger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	w := &testLogWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// CountEvents counts the events of typ in a stream.
func CountEvents(events []tasks.Event, typ tasks.EventType) int {
	n := 0
	for _, ev := range events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// EnqueueRaw enqueues payload as an execution's task past the producer's
// checks, as a broken or hostile producer would: with task ID id, at most
// 3 retries, then opts. It binds the ID to the task's queue (opts'
// asynq.Queue, else "default"), so that a Wait finds the execution.
func EnqueueRaw(t testing.TB, client redis.UniversalClient, id string, payload []byte, opts ...asynq.Option) {
	t.Helper()
	queue := "default"
	for _, o := range opts {
		if o.Type() == asynq.QueueOpt {
			queue = o.Value().(string)
		}
	}
	opts = append([]asynq.Option{asynq.TaskID(id), asynq.MaxRetry(3)}, opts...)
	if _, err := asynq.NewClientFromRedisClient(client).Enqueue(asynq.NewTask(tasks.TypeExec, payload, opts...)); err != nil {
		t.Fatalf("enqueue %s: %v", id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rdb.New(client, tasks.Keys{}, 0).BindQueue(ctx, id, queue); err != nil {
		t.Fatalf("bind %s to queue %s: %v", id, queue, err)
	}
}
