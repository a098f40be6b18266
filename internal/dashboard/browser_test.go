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
	p := startFakeWorker(t, ctx, r)
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

// startFakeWorker starts a worker named browser-test on the fake runtime
// (image "demo") and returns a producer on the same Redis.
func startFakeWorker(t *testing.T, ctx context.Context, r *testutil.Redis) *producer.Client {
	t.Helper()
	w, err := workertest.New(worker.Config{
		Redis:    r.Client,
		Name:     "browser-test",
		Image:    "demo",
		PoolSize: 2,
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
	return p
}

// TestBrowserShowsExecutionView opens the execution view in headless
// Chromium: executions of every kind counted and listed by their execq
// status (which asynqmon shows as "succeeded" whatever it is), filtered,
// one running, one execution's result and output over its event stream,
// and the links between the view and asynqmon's task pages. The executions
// run on the fake runtime.
func TestBrowserShowsExecutionView(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := testutil.Context(t, 2*time.Minute)
	p := startFakeWorker(t, ctx, r)
	run := func(cmd string, args []string, timeout time.Duration) string {
		id, err := p.Submit(ctx, tasks.ExecRequest{Image: "demo", Cmd: append([]string{cmd}, args...), Timeout: timeout})
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		return id
	}
	ids := map[tasks.Status]string{
		tasks.StatusSucceeded: run("echo", []string{"hello from the view"}, 0),
		tasks.StatusFailed:    run("exit", []string{"3"}, 0),
		tasks.StatusOOMKilled: run("oom", nil, 0),
		tasks.StatusTimedOut:  run("sleep", []string{"10s"}, time.Second),
	}
	for st, id := range ids {
		res, err := p.Wait(ctx, id)
		if err != nil || res.Status != st {
			t.Fatalf("execution %s: %+v, %v; want %s", id, res, err, st)
		}
	}
	running := run("sleep", []string{"60s"}, 0)
	t.Cleanup(func() { p.Cancel(context.Background(), running) })

	h, err := dashboard.New(dashboard.Config{Redis: r.Client, Store: rdb.New(r.Client, tasks.Keys{}, 0), Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := testutil.StartBrowser(t)

	b.Open(srv.URL + dashboard.ExecutionsPath + "/")
	text := b.WaitText(30*time.Second, ids[tasks.StatusSucceeded], ids[tasks.StatusFailed], ids[tasks.StatusOOMKilled],
		ids[tasks.StatusTimedOut], running, "running", "oom_killed", "timed_out", "on")
	t.Logf("execution view: %s", b.SaveScreenshot("executions.png"))
	for _, want := range []string{"succeeded\n1", "failed\n1", "timed_out\n1", "oom_killed\n1"} {
		if !strings.Contains(text, want) {
			t.Errorf("the counts do not show %q:\n%s", want, text)
		}
	}

	b.Open(srv.URL + dashboard.ExecutionsPath + "/?status=failed")
	text = b.WaitText(30*time.Second, ids[tasks.StatusFailed], "1 shown")
	if strings.Contains(text, ids[tasks.StatusSucceeded]) || strings.Contains(text, running) {
		t.Errorf("filtered by failed, the view lists others:\n%s", text)
	}

	b.Open(srv.URL + dashboard.ExecutionsPath + "/?id=" + ids[tasks.StatusSucceeded])
	b.WaitText(30*time.Second, "hello from the view", "[succeeded, exit 0]", "open in asynqmon", `"executionId": "`+ids[tasks.StatusSucceeded])
	t.Logf("execution detail: %s", b.SaveScreenshot("execution.png"))

	b.Open(srv.URL + dashboard.RootPath + "/queues/default/tasks/" + ids[tasks.StatusFailed])
	b.WaitText(30*time.Second, ids[tasks.StatusFailed], "execq execution view →")
	t.Logf("asynqmon task page: %s", b.SaveScreenshot("asynqmon-task.png"))
}

// TestBrowserShowsSessions opens the execution view's sessions in headless
// Chromium: the live sessions listed with their owner, worker, age, idle
// time and executions, the ended ones on asking, an execution's session
// linked from the execution, and the session's executions linked from the
// session. The sessions run on the fake runtime.
func TestBrowserShowsSessions(t *testing.T) {
	r := testutil.StartRedis(t)
	ctx := testutil.Context(t, 2*time.Minute)
	p := startFakeWorker(t, ctx, r)
	s, err := p.CreateSession(ctx, tasks.SessionRequest{Image: "demo", IdleTimeout: 7 * time.Minute, Owner: "agent-7"})
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	var ran []*tasks.Result
	for _, word := range []string{"first", "second"} {
		res, err := s.Run(ctx, tasks.ExecRequest{Cmd: []string{"echo", word + " in the session"}})
		if err != nil || res.Status != tasks.StatusSucceeded || res.Session != s.ID() {
			t.Fatalf("run in session %s: %+v, %v", s.ID(), res, err)
		}
		ran = append(ran, res)
	}
	closed, err := p.CreateSession(ctx, tasks.SessionRequest{Image: "demo"})
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	if err := closed.Close(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, 50*time.Millisecond, "the second session ends", func() bool {
		info, err := closed.Info(ctx)
		return err == nil && info.Status == tasks.SessionClosed
	})
	plain, err := p.Submit(ctx, tasks.ExecRequest{Image: "demo", Cmd: []string{"echo", "outside any session"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx, plain); err != nil {
		t.Fatal(err)
	}

	h, err := dashboard.New(dashboard.Config{Redis: r.Client, Store: rdb.New(r.Client, tasks.Keys{}, 0), Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := testutil.StartBrowser(t)
	waitFor := func(css string, want ...string) string {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			text := b.TextOf(css)
			if containsAll(text, want) {
				return text
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not show %q after 30s (screenshot %s); its text:\n%s", css, want, b.SaveScreenshot("timeout.png"), text)
			}
		}
	}

	// The execution names its session.
	b.Open(srv.URL + dashboard.ExecutionsPath + "/?id=" + ran[1].ExecutionID)
	b.WaitText(30*time.Second, "second in the session", "[succeeded, exit 0]")
	waitFor("#d-kv", "session", s.ID())
	// The live sessions: the open one, not the closed one.
	rows := waitFor("#s-rows", s.ID(), "open", "agent-7", "browser-test", "demo", "2/2")
	if strings.Contains(rows, closed.ID()) {
		t.Errorf("the live sessions list the closed one:\n%s", rows)
	}
	t.Logf("execution of a session: %s", b.SaveScreenshot("session-execution.png"))

	// From the execution to its session, and to the session's executions.
	b.Click(`#d-kv a[href^="?session="]`)
	detail := waitFor("#s-detail", s.ID(), "open", "agent-7", "2/2", "browser-test", "7m00s", ran[0].ExecutionID, ran[1].ExecutionID)
	if i, j := strings.Index(detail, ran[0].ExecutionID), strings.Index(detail, ran[1].ExecutionID); i > j {
		t.Errorf("the session's executions are not in their order:\n%s", detail)
	}
	t.Logf("session: %s", b.SaveScreenshot("session.png"))
	b.Click("#s-executions a")
	waitFor("#detail", ran[0].ExecutionID, "first in the session")

	// The ended sessions on asking, with their cause.
	b.Click("#s-all")
	waitFor("#s-rows", s.ID(), closed.ID(), "closed")
	b.Click(`header a[href="#sessions"]`)
	t.Logf("sessions, ended ones too: %s", b.SaveScreenshot("sessions-all.png"))

	// A session named in the URL is shown; an execution outside any
	// session names none.
	b.Open(srv.URL + dashboard.ExecutionsPath + "/?session=" + closed.ID() + "&id=" + plain)
	waitFor("#s-detail", closed.ID(), "closed", "0/0")
	if kv := waitFor("#d-kv", "succeeded"); strings.Contains(kv, "session") {
		t.Errorf("an execution outside any session names one:\n%s", kv)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
