//go:build integration

package dashboard_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/dashboard"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
	"github.com/execq/execq/worker/workertest"
)

// TestBrowserShowsExecution opens the dashboard in a real headless Chromium
// and checks that a finished execution reads as execq formats it, in the
// queue's completed list and on the task's page. The execution runs on the
// fake runtime: the page is what is under test, not Docker.
func TestBrowserShowsExecution(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := testutil.Context(t, 2*time.Minute)
	id := finishedExecution(t, ctx, r)

	h, err := dashboard.New(dashboard.Config{
		Redis:  r.Client,
		Store:  rdb.New(r.Client, tasks.Keys{}, 0),
		Logger: testutil.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	b := testutil.StartBrowser(t)
	const status = "status:  succeeded (exit code 0)"

	// The list shows an ID up to its first dash, and the formatted result.
	prefix, _, _ := strings.Cut(id, "-")
	b.Open(srv.URL + dashboard.RootPath + "/queues/default?status=completed")
	b.WaitText(30*time.Second, prefix, status, "on browser-test", "command: echo hello")
	t.Logf("completed list: %s", b.SaveScreenshot("completed.png"))

	// The task's own page shows the full ID and the formatted result too
	// (asynqmon gives the formatter no task type there).
	b.Open(srv.URL + dashboard.RootPath + "/queues/default/tasks/" + id)
	b.WaitText(30*time.Second, id, status, "hello", "command: echo hello")
	t.Logf("task page: %s", b.SaveScreenshot("task.png"))
}

// finishedExecution runs `echo hello` to completion through a worker on the
// fake runtime and returns its execution ID.
func finishedExecution(t *testing.T, ctx context.Context, r *testutil.Redis) string {
	t.Helper()
	w, err := workertest.New(worker.Config{
		Redis:    r.Client,
		Name:     "browser-test",
		Image:    "demo",
		PoolSize: 1,
		Logger:   testutil.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := w.Shutdown(sctx); err != nil {
			t.Errorf("worker shutdown: %v", err)
		}
	})

	p := producer.New(r.Client, producer.Options{})
	t.Cleanup(func() { p.Close() })
	id, err := p.Submit(ctx, tasks.ExecRequest{Image: "demo", Cmd: []string{"echo", "hello"}})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	res, err := p.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	if res.Status != tasks.StatusSucceeded {
		t.Fatalf("execution %s: status %s, want %s (error %q)", id, res.Status, tasks.StatusSucceeded, res.Error)
	}
	return id
}
