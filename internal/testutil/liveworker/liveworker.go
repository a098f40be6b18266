// Package liveworker starts a worker in a test's process on real Redis and
// the real Docker engine, for the tests of what stands in front of workers
// (the CLI, the HTTP API, the MCP server, the clients).
package liveworker

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/worker"
)

// Start starts a worker in the test's process on client and the
// Docker engine (the sandbox image, the agent runtime, the OCI runtime of
// EXECQ_TEST_OCI_RUNTIME), named name with a pool of poolSize, waits until
// its pool is warm, and shuts it down when the test ends.
func Start(t testing.TB, client redis.UniversalClient, name string, poolSize int) *worker.Worker {
	t.Helper()
	return StartWith(t, client, name, poolSize, nil)
}

// StartWith is Start with configure, when not nil, changing the worker's
// configuration (MaxSessions, Queues, …) before the worker is made.
func StartWith(t testing.TB, client redis.UniversalClient, name string, poolSize int, configure func(*worker.Config)) *worker.Worker {
	t.Helper()
	testutil.Docker(t)
	cfg := worker.Config{
		Redis: client,
		Sandbox: worker.SandboxConfig{
			AgentBinary: testutil.AgentBinary(t),
			OCIRuntime:  os.Getenv("EXECQ_TEST_OCI_RUNTIME"),
		},
		Name:     name,
		Image:    testutil.SandboxImage,
		PoolSize: poolSize,
		Logger:   testutil.Logger(t),
	}
	if configure != nil {
		configure(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Context(t, 2*time.Minute)
	if err := w.Start(ctx); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("worker shutdown: %v", err)
		}
	})
	if err := w.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	return w
}
