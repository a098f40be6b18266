//go:build integration

package worker_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// openSession creates a session on b's worker and closes it at the end of
// the test.
func openSession(t *testing.T, b *bundle, req tasks.SessionRequest) *producer.Session {
	t.Helper()
	ctx := testutil.Context(t, time.Minute)
	s, err := b.producer.CreateSession(ctx, req)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func runIn(t *testing.T, s *producer.Session, req tasks.ExecRequest) *tasks.Result {
	t.Helper()
	ctx := testutil.Context(t, time.Minute)
	res, err := s.Run(ctx, req)
	if err != nil {
		t.Fatalf("run in session: %v", err)
	}
	return res
}

func wantStatus(t *testing.T, res *tasks.Result, want tasks.Status, step string) {
	t.Helper()
	if res.Status != want {
		t.Fatalf("%s: status %s (exit %d, error %q, stdout %q, stderr %q), want %s", step, res.Status, res.ExitCode, res.Error, res.Stdout, res.Stderr, want)
	}
}

// waitSession waits until the session's state satisfies cond.
func waitSession(t *testing.T, s *producer.Session, d time.Duration, cond func(tasks.SessionInfo) bool) tasks.SessionInfo {
	t.Helper()
	ctx := testutil.Context(t, d)
	for {
		info, err := s.Info(ctx)
		if err == nil && cond(info) {
			return info
		}
		select {
		case <-ctx.Done():
			t.Fatalf("session %s: condition not met within %s; last state %+v (err %v)", s.ID(), d, info, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// An agent's steps: files, a background process and a server started in
// one step are there in the next; a timeout kills only its own step's
// processes.
func TestSessionKeepsFilesAndProcessesBetweenSteps(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime, poolSize: 1})
		s := openSession(t, b, tasks.SessionRequest{
			Env:   map[string]string{"GREETING": "hello"},
			Files: []tasks.File{{Path: "given.txt", Content: []byte("from the session's request\n")}},
		})

		res := runIn(t, s, tasks.ExecRequest{Cmd: sh(`echo "$GREETING" > note.txt; mkdir -p d && echo deep > d/f; cat given.txt`)})
		wantStatus(t, res, tasks.StatusSucceeded, "step 1")
		if res.Session != s.ID() || res.Stdout != "from the session's request\n" {
			t.Fatalf("step 1: session %q, stdout %q", res.Session, res.Stdout)
		}
		res = runIn(t, s, tasks.ExecRequest{Cmd: sh(`cat note.txt d/f`)})
		wantStatus(t, res, tasks.StatusSucceeded, "step 2")
		if res.Stdout != "hello\ndeep\n" {
			t.Fatalf("step 2 read %q, want the files of step 1", res.Stdout)
		}

		// A background process, one deaf to SIGHUP (as nohup makes it; the
		// image has no nohup) and a setsid'ed one.
		res = runIn(t, s, tasks.ExecRequest{Cmd: sh(`sleep 1000 & echo $! > bg.pid; (trap '' HUP; exec sleep 1001) >/dev/null 2>&1 & echo $! > nohup.pid; setsid sleep 1002 & echo $! > setsid.pid`)})
		wantStatus(t, res, tasks.StatusSucceeded, "step 3")
		res = runIn(t, s, tasks.ExecRequest{Cmd: sh(`for f in bg nohup setsid; do kill -0 $(cat $f.pid) && echo $f alive; done`)})
		wantStatus(t, res, tasks.StatusSucceeded, "step 4")
		if res.Stdout != "bg alive\nnohup alive\nsetsid alive\n" {
			t.Fatalf("step 4: %q; want the three processes of step 3 alive", res.Stdout)
		}

		// A server started in one step answers over lo in the next.
		res = runIn(t, s, tasks.ExecRequest{Cmd: sh(`mkdir -p www && echo served > www/index.html && httpd -p 127.0.0.1:8080 -h www`)})
		wantStatus(t, res, tasks.StatusSucceeded, "start a server")
		res = runIn(t, s, tasks.ExecRequest{Cmd: sh(`wget -q -O - http://127.0.0.1:8080/index.html`)})
		wantStatus(t, res, tasks.StatusSucceeded, "ask the server")
		if res.Stdout != "served\n" {
			t.Fatalf("the server of the last step answered %q", res.Stdout)
		}

		// A step that times out has its own processes killed, and only
		// them.
		res = runIn(t, s, tasks.ExecRequest{Cmd: sh(`sleep 1003 & echo $! > mine.pid; setsid sleep 1004 & echo $! > mine2.pid; sleep 1000`), Timeout: time.Second})
		wantStatus(t, res, tasks.StatusTimedOut, "the step that times out")
		res = runIn(t, s, tasks.ExecRequest{Cmd: sh(`for f in bg nohup setsid mine mine2; do kill -0 $(cat $f.pid) 2>/dev/null && echo $f alive || echo $f dead; done; wget -q -O - http://127.0.0.1:8080/index.html`)})
		wantStatus(t, res, tasks.StatusSucceeded, "after the timeout")
		if want := "bg alive\nnohup alive\nsetsid alive\nmine dead\nmine2 dead\nserved\n"; res.Stdout != want {
			t.Fatalf("after step 6 timed out: %q, want %q", res.Stdout, want)
		}
		info := waitSession(t, s, 10*time.Second, func(i tasks.SessionInfo) bool { return i.Done == 8 })
		if info.Status != tasks.SessionOpen || info.Executions != 8 || info.Running != "" || info.Worker != b.worker.Name() {
			t.Fatalf("session state %+v", info)
		}
	})
}

// Executions submitted at once run one at a time, in the order the
// session admitted them.
func TestSessionRunsExecutionsOneAtATimeInOrder(t *testing.T) {
	b := setupIntegration(t, setupOptions{poolSize: 3})
	s := openSession(t, b, tasks.SessionRequest{})
	ctx := testutil.Context(t, 2*time.Minute)
	const n = 12
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := s.Submit(ctx, tasks.ExecRequest{Cmd: sh(fmt.Sprintf(`echo start %d >> log; sleep 0.05; echo end %d >> log`, i, i))})
			if err != nil {
				t.Errorf("submit %d: %v", i, err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if res, err := b.producer.Wait(ctx, id); err != nil || res.Status != tasks.StatusSucceeded {
			t.Fatalf("%s: %+v %v", id, res, err)
		}
	}
	order, err := s.Executions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := runIn(t, s, tasks.ExecRequest{Cmd: []string{"cat", "log"}})
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if len(lines) != 2*n {
		t.Fatalf("log %q: want %d lines", res.Stdout, 2*n)
	}
	var ran []string
	for i := 0; i < len(lines); i += 2 {
		a, z := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if a[0] != "start" || z[0] != "end" || a[1] != z[1] {
			t.Fatalf("executions overlapped: %q", res.Stdout)
		}
		k, _ := strconv.Atoi(a[1])
		ran = append(ran, ids[k])
	}
	if !slices.Equal(ran, order[:n]) {
		t.Fatalf("ran in order %v, admitted in order %v", ran, order[:n])
	}
}

// Idle and lifetime end a session; a closed one admits nothing, and its
// container, reset, serves a plain execution that sees nothing of it.
func TestSessionEnds(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		b := setupIntegration(t, setupOptions{poolSize: 1})
		s := openSession(t, b, tasks.SessionRequest{IdleTimeout: time.Second})
		// A running execution is not expired under its feet.
		res := runIn(t, s, tasks.ExecRequest{Cmd: sh(`sleep 2; echo done`)})
		wantStatus(t, res, tasks.StatusSucceeded, "an execution longer than the idle timeout")
		info := waitSession(t, s, 20*time.Second, func(i tasks.SessionInfo) bool { return i.Status == tasks.SessionClosed })
		if info.Cause != tasks.CauseIdle {
			t.Fatalf("ended with cause %q, want idle", info.Cause)
		}
		if idle := info.EndedAt.Sub(info.LastActiveAt); idle < time.Second {
			t.Fatalf("closed %s after its last execution ended, before its idle timeout", idle)
		}
		_, err := s.Submit(testutil.Context(t, 10*time.Second), tasks.ExecRequest{Cmd: []string{"true"}})
		if !errors.Is(err, producer.ErrSessionClosed) {
			t.Fatalf("submit to a closed session: %v, want ErrSessionClosed", err)
		}
	})
	t.Run("lifetime", func(t *testing.T) {
		t.Parallel()
		b := setupIntegration(t, setupOptions{poolSize: 1})
		s := openSession(t, b, tasks.SessionRequest{Lifetime: 3 * time.Second})
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			ctx := testutil.Context(t, 30*time.Second)
			id, err := s.Submit(ctx, tasks.ExecRequest{Cmd: sh(`sleep 0.2`)})
			if err != nil {
				if !errors.Is(err, producer.ErrSessionClosed) {
					t.Fatalf("submit: %v", err)
				}
				break
			}
			if _, err := b.producer.Wait(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		info := waitSession(t, s, 10*time.Second, func(i tasks.SessionInfo) bool { return i.Status == tasks.SessionClosed })
		if info.Cause != tasks.CauseLifetime {
			t.Fatalf("ended with cause %q, want lifetime", info.Cause)
		}
		if life := info.EndedAt.Sub(info.CreatedAt); life < 3*time.Second {
			t.Fatalf("ended after %s, before its lifetime", life)
		}
	})
	t.Run("close_wipes", func(t *testing.T) {
		forEachRuntime(t, func(t *testing.T, runtime string) {
			// No warm container: the session's, once reset, is the only one
			// for the plain execution after it.
			b := setupIntegration(t, setupOptions{runtime: runtime, poolSize: 1,
				warm: []worker.WarmImage{{Image: testutil.SandboxImage, Count: 0}}})
			s := openSession(t, b, tasks.SessionRequest{})
			res := runIn(t, s, tasks.ExecRequest{Cmd: sh(`echo secret > /workspace/secret; echo secret > /tmp/secret; sleep 1000 & setsid sh -c 'while :; do echo secret >> /workspace/late; sleep 0.01; done' & echo started`)})
			wantStatus(t, res, tasks.StatusSucceeded, "leave things behind")
			ctx := testutil.Context(t, time.Minute)
			queued, err := s.Submit(ctx, tasks.ExecRequest{Cmd: sh(`sleep 1000`)})
			if err != nil {
				t.Fatal(err)
			}
			waitForEvent(t, b, queued, tasks.EventStarted)
			queuedAfter, err := s.Submit(ctx, tasks.ExecRequest{Cmd: []string{"true"}})
			if err != nil {
				t.Fatal(err)
			}
			info, _ := s.Info(ctx)
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{queued, queuedAfter} {
				res, err := b.producer.Wait(ctx, id)
				if err != nil || res.Status != tasks.StatusCanceled {
					t.Fatalf("%s after the close: %+v, %v; want canceled", id, res, err)
				}
			}
			closed := waitSession(t, s, 30*time.Second, func(i tasks.SessionInfo) bool { return i.Status == tasks.SessionClosed })
			if closed.Cause != tasks.CauseClosed {
				t.Fatalf("cause %q", closed.Cause)
			}
			if _, err := s.Submit(ctx, tasks.ExecRequest{Cmd: []string{"true"}}); !errors.Is(err, producer.ErrSessionClosed) {
				t.Fatalf("submit after close: %v", err)
			}
			id, err := b.producer.Submit(ctx, tasks.ExecRequest{Cmd: sh(`ls -A /workspace /tmp; ps -o pid,comm | grep sleep || true`)})
			if err != nil {
				t.Fatal(err)
			}
			started := waitForEvent(t, b, id, tasks.EventStarted)
			data, _ := started.Started()
			if data.Container != info.Container {
				t.Fatalf("the plain execution ran in %s, not in the session's container %s", data.Container, info.Container)
			}
			res, err = b.producer.Wait(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(res.Stdout, "secret") || strings.Contains(res.Stdout, "late") || strings.Contains(res.Stdout, "sleep") {
				t.Fatalf("the next tenant sees the session's leftovers: %q", res.Stdout)
			}
		})
	})
}

// Two sessions on one worker see nothing of each other.
func TestSessionsAreIsolatedFromEachOther(t *testing.T) {
	b := setupIntegration(t, setupOptions{poolSize: 1})
	a := openSession(t, b, tasks.SessionRequest{})
	o := openSession(t, b, tasks.SessionRequest{})
	res := runIn(t, a, tasks.ExecRequest{Cmd: sh(`echo a > /workspace/a-only; echo a > /tmp/a-only; sleep 1000 & true`)})
	wantStatus(t, res, tasks.StatusSucceeded, "session a")
	res = runIn(t, o, tasks.ExecRequest{Cmd: sh(`ls -A /workspace /tmp; ps -o comm | grep -c sleep || true`)})
	wantStatus(t, res, tasks.StatusSucceeded, "session b")
	if strings.Contains(res.Stdout, "a-only") || !strings.HasSuffix(res.Stdout, "0\n") {
		t.Fatalf("session b sees session a: %q", res.Stdout)
	}
	ia, _ := a.Info(testutil.Context(t, 5*time.Second))
	ib, _ := o.Info(testutil.Context(t, 5*time.Second))
	if ia.Container == ib.Container {
		t.Fatalf("two sessions share container %s", ia.Container)
	}
	// Another owner's handle on it is refused.
	if _, err := b.producer.SessionOf(a.ID(), "someone-else").Submit(testutil.Context(t, 5*time.Second), tasks.ExecRequest{Cmd: []string{"true"}}); !errors.Is(err, producer.ErrSessionNotFound) {
		t.Fatalf("another owner's submit: %v", err)
	}
}

// The worker holding a session is SIGKILLed mid-execution: the session is
// lost, its running and queued executions get an error result, new ones
// are refused, nothing waits for ever, and its container is removed.
func TestSessionLostWithItsWorker(t *testing.T) {
	testutil.Docker(t)
	r := testutil.StartRedis(t)
	ctx := testutil.Context(t, 3*time.Minute)
	name := "doomed-" + worker.DefaultName()
	doomed, err := harness.StartWorker(harness.WorkerConfig{
		Exe: testutil.ExecqBinary(t), RedisURL: "redis://" + r.Addr + "/0", Name: name,
		LogPath: filepath.Join(t.TempDir(), "doomed.log"),
		// Only the doomed worker serves the queue sessions are created on.
		Args: []string{"--image", testutil.SandboxImage, "--agent", testutil.AgentBinary(t), "--queues", "sessions:1",
			"--heartbeat-interval", "500ms", "--dead-after", "2s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { doomed.Kill() })
	// A survivor on the default queue finds the session lost.
	b := &bundle{redis: r, producer: producer.New(r.Client, producer.Options{})}
	b.worker, b.docker = startWorker(t, r.Client, setupOptions{poolSize: 1,
		intervals: worker.Intervals{Heartbeat: 500 * time.Millisecond, DeadAfter: 2 * time.Second, Recover: 500 * time.Millisecond}})
	s, err := b.producer.CreateSession(ctx, tasks.SessionRequest{Queue: "sessions"})
	if err != nil {
		t.Fatalf("create session: %v\n%s", err, harness.Tail(doomed.Log(), 40))
	}
	running, err := s.Submit(ctx, tasks.ExecRequest{Cmd: sh(`sleep 1000`)})
	if err != nil {
		t.Fatal(err)
	}
	waitForEvent(t, b, running, tasks.EventStarted)
	queued, err := s.Submit(ctx, tasks.ExecRequest{Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	killed := time.Now()
	doomed.Kill()
	for _, id := range []string{running, queued} {
		res, err := b.producer.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != tasks.StatusError || !strings.Contains(res.Error, "lost") {
			t.Fatalf("%s after its worker died: %s %q, want an error saying the session was lost", id, res.Status, res.Error)
		}
	}
	t.Logf("SIGKILL → the session's executions have their error results: %s", time.Since(killed).Round(10*time.Millisecond))
	lost := waitSession(t, s, 10*time.Second, func(i tasks.SessionInfo) bool { return i.Status == tasks.SessionLost })
	if lost.Cause != tasks.CauseLost || !strings.Contains(lost.Error, name) {
		t.Fatalf("lost session %+v", lost)
	}
	if _, err := s.Submit(ctx, tasks.ExecRequest{Cmd: []string{"true"}}); !errors.Is(err, producer.ErrSessionLost) {
		t.Fatalf("submit to a lost session: %v, want ErrSessionLost", err)
	}
	// The survivor's pool removes the dead worker's containers.
	for {
		list, err := b.docker.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(list, func(i sandbox.Info) bool { return strings.HasPrefix(i.ID, info.Container) }) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the lost session's container %s is still there", info.Container)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
