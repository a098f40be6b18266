//go:build integration

package worker_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// bundle is a worker on real Redis and the real Docker engine, and a
// producer on the same Redis.
type bundle struct {
	redis    *testutil.Redis
	worker   *worker.Worker
	producer *producer.Client
	store    *rdb.Store
	docker   sandbox.Runtime
}

type setupOptions struct {
	runtime         string // a name of testutil.RuntimeNames()
	poolSize        int
	limits          tasks.Limits
	shutdownTimeout time.Duration
	warm            []worker.WarmImage
	observer        worker.Observer
	queues          map[string]int
	maxSessions     int
	intervals       worker.Intervals
	name            string
}

func setupIntegration(t *testing.T, opts setupOptions) *bundle {
	t.Helper()
	r := testutil.StartRedis(t)
	w, rt := startWorker(t, r.Client, opts)
	return &bundle{
		redis:    r,
		worker:   w,
		producer: producer.New(r.Client, producer.Options{}),
		store:    rdb.New(r.Client, tasks.Keys{}, 0),
		docker:   rt,
	}
}

// startWorker starts a worker on client and the Docker engine, waits until its
// pool is warm, and shuts it down at the end of the test, checking that it
// leaves no container behind.
func startWorker(t *testing.T, client redis.UniversalClient, opts setupOptions) (*worker.Worker, sandbox.Runtime) {
	t.Helper()
	cli := testutil.Docker(t)
	if opts.poolSize == 0 {
		opts.poolSize = 2
	}
	opts.runtime = cmp.Or(opts.runtime, worker.RuntimeAgent)
	name := cmp.Or(opts.name, worker.DefaultName())
	log := testutil.Logger(t)
	rt := testutil.NewRuntime(t, cli, opts.runtime, name, testutil.RuntimeOptions{Logger: log})
	w, err := worker.New(worker.Config{
		Redis: client,
		Sandbox: worker.SandboxConfig{
			Runtime:     opts.runtime,
			AgentBinary: testutil.AgentBinary(t),
			OCIRuntime:  os.Getenv("EXECQ_TEST_OCI_RUNTIME"),
		},
		Name:            name,
		Image:           testutil.SandboxImage,
		PoolSize:        opts.poolSize,
		Limits:          opts.limits,
		ShutdownTimeout: opts.shutdownTimeout,
		Warm:            opts.warm,
		Observer:        opts.observer,
		Queues:          opts.queues,
		MaxSessions:     opts.maxSessions,
		Intervals:       opts.intervals,
		Logger:          log,
	})
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
			t.Errorf("shutdown: %v", err)
		}
		if infos, err := rt.List(ctx); err == nil {
			for _, info := range infos {
				if info.Owner == name {
					t.Errorf("container %s left behind after shutdown", info.ID)
				}
			}
		}
	})
	if err := w.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	return w, rt
}

func (b *bundle) run(t *testing.T, req tasks.ExecRequest) *tasks.Result {
	t.Helper()
	ctx := testutil.Context(t, time.Minute)
	id, err := b.producer.Submit(ctx, req)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	res, err := b.producer.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	return res
}

// events returns the execution's stream.
func (b *bundle) events(t *testing.T, id string) []tasks.Event {
	t.Helper()
	events, err := b.store.Events(testutil.Context(t, time.Minute), id, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func TestExitCodesAndStreams(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		cases := []struct {
			script         string
			status         tasks.Status
			code           int
			stdout, stderr string
		}{
			{"echo out; echo err >&2", tasks.StatusSucceeded, 0, "out\n", "err\n"},
			{"echo hi; exit 3", tasks.StatusFailed, 3, "hi\n", ""},
			{"echo a; echo b >&2; echo c; exit 255", tasks.StatusFailed, 255, "a\nc\n", "b\n"},
			{"kill -TERM $$", tasks.StatusFailed, 143, "", ""},
		}
		for _, c := range cases {
			res := b.run(t, tasks.ExecRequest{Cmd: sh(c.script)})
			if res.Status != c.status || res.ExitCode != c.code || res.Stdout != c.stdout || res.Stderr != c.stderr {
				t.Errorf("%q: status %s exit %d stdout %q stderr %q; want %s %d %q %q",
					c.script, res.Status, res.ExitCode, res.Stdout, res.Stderr, c.status, c.code, c.stdout, c.stderr)
			}
			if res.Success != (c.status == tasks.StatusSucceeded) || res.Attempt != 1 || res.Resources == nil {
				t.Errorf("%q: success %v attempt %d resources %+v", c.script, res.Success, res.Attempt, res.Resources)
			}
			events := b.events(t, res.ExecutionID)
			var stdout, stderr bytes.Buffer
			for _, e := range events {
				switch e.Type {
				case tasks.EventStdout:
					stdout.Write(e.Data)
				case tasks.EventStderr:
					stderr.Write(e.Data)
				}
			}
			if stdout.String() != c.stdout || stderr.String() != c.stderr {
				t.Errorf("%q: streamed stdout %q stderr %q", c.script, stdout.String(), stderr.String())
			}
			if events[0].Type != tasks.EventStarted || events[len(events)-1].Type != tasks.EventExit {
				t.Errorf("%q: stream does not go from started to exit: %v", c.script, events)
			}
		}
	})
}

func TestBinaryOutputIsByteExact(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		var want bytes.Buffer
		var script strings.Builder
		for i := range 256 {
			want.WriteByte(byte(i))
			fmt.Fprintf(&script, "\\%03o", i)
		}
		res := b.run(t, tasks.ExecRequest{Cmd: []string{"sh", "-c", `printf "$1"; printf "$1" >&2`, "sh", script.String()}})
		if res.Stdout != want.String() || res.Stderr != want.String() {
			t.Errorf("result stdout %x\nstderr %x\nwant %x", res.Stdout, res.Stderr, want.Bytes())
		}
		var streamed bytes.Buffer
		for _, e := range b.events(t, res.ExecutionID) {
			if e.Type == tasks.EventStdout {
				streamed.Write(e.Data)
			}
		}
		if !bytes.Equal(streamed.Bytes(), want.Bytes()) {
			t.Errorf("streamed stdout %x, want %x", streamed.Bytes(), want.Bytes())
		}
	})
}

func TestTimeoutKillsTheProcessTree(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		ctx := testutil.Context(t, time.Minute)
		start := time.Now()
		id, err := b.producer.Submit(ctx, tasks.ExecRequest{
			Timeout: time.Second,
			Cmd:     sh("sh -c 'while :; do :; done' & (trap '' TERM; while :; do :; done) & while :; do :; done"),
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.producer.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		if res.Status != tasks.StatusTimedOut || res.ExitCode != -1 || res.Success {
			t.Errorf("status %s exit %d; want timed_out -1", res.Status, res.ExitCode)
		}
		if elapsed > 2*time.Second {
			t.Errorf("the result came %s after submitting a 1s timeout", elapsed)
		}
		// The deadline runs from before the command's start, which the
		// runtime times: a few milliseconds under the timeout is right.
		if res.DurationMs < 900 || res.DurationMs > 2000 {
			t.Errorf("duration %dms, want about 1000", res.DurationMs)
		}
		started, err := b.events(t, id)[0].Started()
		if err != nil {
			t.Fatal(err)
		}
		// Every process it left is gone before the next execution, which
		// runs in a sandbox as fresh as a new one.
		next := b.run(t, tasks.ExecRequest{Cmd: sh(testutil.LeftoverScript + "echo clean")})
		if next.Status != tasks.StatusSucceeded || next.Stdout != "clean\n" {
			t.Errorf("after the timeout: %s %q %q", next.Status, next.Stdout, next.Stderr)
		}
		_ = started
		// The pool heals: the next execution runs.
		if res := b.run(t, tasks.ExecRequest{Cmd: []string{"true"}}); res.Status != tasks.StatusSucceeded {
			t.Errorf("next execution: %s %s", res.Status, res.Error)
		}
	})
}

func TestCancelPending(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime, poolSize: 1})
		ctx := testutil.Context(t, time.Minute)
		busy, err := b.producer.Submit(ctx, tasks.ExecRequest{Cmd: []string{"sleep", "3"}})
		if err != nil {
			t.Fatal(err)
		}
		waitForEvent(t, b, busy, tasks.EventStarted)
		queued, err := b.producer.Submit(ctx, tasks.ExecRequest{Cmd: sh("echo ran")})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.producer.Cancel(ctx, queued); err != nil {
			t.Fatalf("cancel: %v", err)
		}
		res, err := b.producer.Result(ctx, queued)
		if err != nil {
			t.Fatalf("a canceled pending execution has its result at once: %v", err)
		}
		if res.Status != tasks.StatusCanceled || res.Stdout != "" {
			t.Errorf("status %s stdout %q, want canceled and nothing run", res.Status, res.Stdout)
		}
		if err := b.producer.Cancel(ctx, queued); !errors.Is(err, producer.ErrFinished) {
			t.Errorf("second cancel = %v, want ErrFinished", err)
		}
		if res, err := b.producer.Wait(ctx, busy); err != nil || res.Status != tasks.StatusSucceeded {
			t.Fatalf("the running execution: %v %+v", err, res)
		}
		if n := testutil.CountEvents(b.events(t, queued), tasks.EventStarted); n != 0 {
			t.Errorf("the canceled execution started %d times", n)
		}
	})
}

func TestCancelRunning(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		ctx := testutil.Context(t, time.Minute)
		id, err := b.producer.Submit(ctx, tasks.ExecRequest{Cmd: sh("echo begun; sleep 60; echo never")})
		if err != nil {
			t.Fatal(err)
		}
		waitForEvent(t, b, id, tasks.EventStdout)
		canceledAt := time.Now()
		if err := b.producer.Cancel(ctx, id); err != nil {
			t.Fatalf("cancel: %v", err)
		}
		res, err := b.producer.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != tasks.StatusCanceled || res.Stdout != "begun\n" {
			t.Errorf("status %s stdout %q; want canceled, begun", res.Status, res.Stdout)
		}
		if d := time.Since(canceledAt); d > 5*time.Second {
			t.Errorf("cancel took %s", d)
		}
	})
}

func TestCancelRecordedBeforeAnAttemptStopsIt(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime, poolSize: 1})
		ctx := testutil.Context(t, time.Minute)
		busy, err := b.producer.Submit(ctx, tasks.ExecRequest{Cmd: []string{"sleep", "2"}})
		if err != nil {
			t.Fatal(err)
		}
		waitForEvent(t, b, busy, tasks.EventStarted)
		id, err := b.producer.Submit(ctx, tasks.ExecRequest{Cmd: sh("echo ran")})
		if err != nil {
			t.Fatal(err)
		}
		// As when asynq delivers a canceled execution again (a retry, or a
		// cancel that raced with the claim): only the marker is there.
		if err := b.store.MarkCanceled(ctx, id); err != nil {
			t.Fatal(err)
		}
		res, err := b.producer.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != tasks.StatusCanceled || res.Stdout != "" {
			t.Errorf("status %s stdout %q; want canceled without running", res.Status, res.Stdout)
		}
	})
}

func waitForEvent(t *testing.T, b *bundle, id string, typ tasks.EventType) tasks.Event {
	t.Helper()
	ctx := testutil.Context(t, time.Minute)
	for ev, err := range b.producer.Follow(ctx, id, "") {
		if err != nil {
			t.Fatalf("follow %s: %v", id, err)
		}
		if ev.Type == typ {
			return ev
		}
	}
	t.Fatalf("%s ended without a %s event", id, typ)
	return tasks.Event{}
}

func TestFilesInAndOut(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		res := b.run(t, tasks.ExecRequest{
			Files: []tasks.File{
				{Path: "main.sh", Content: []byte("#!/bin/sh\nmkdir -p out/deep\ncat data/in.txt > out/copy.txt\necho deep > out/deep/x.txt\nln -s /etc/passwd out/link.txt\nstat -c '%u %a %n' main.sh data/in.txt | sed \"s/^$(id -u) /me /\"\n"), Mode: 0o755},
				{Path: "data/in.txt", Content: []byte("input\n")},
			},
			Cmd:     []string{"./main.sh"},
			Collect: []string{"out/**/*.txt"},
		})
		if res.Status != tasks.StatusSucceeded {
			t.Fatalf("status %s, stderr %q, error %q", res.Status, res.Stderr, res.Error)
		}
		if want := "me 755 main.sh\nme 644 data/in.txt\n"; res.Stdout != want {
			t.Errorf("stdout %q, want %q", res.Stdout, want)
		}
		got := map[string]tasks.CollectedFile{}
		for _, f := range res.Files {
			got[f.Path] = f
		}
		if string(got["out/copy.txt"].Content) != "input\n" || string(got["out/deep/x.txt"].Content) != "deep\n" {
			t.Errorf("collected %+v", res.Files)
		}
		if f := got["out/link.txt"]; f.Error == "" || len(f.Content) > 0 {
			t.Errorf("a symlink to /etc/passwd was collected: %+v", f)
		}
	})
}

func TestOutputCap(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		res := b.run(t, tasks.ExecRequest{
			Cmd:            sh("head -c 5000000 /dev/zero; echo small >&2"),
			MaxOutputBytes: 1000,
		})
		if res.Status != tasks.StatusSucceeded {
			t.Fatalf("status %s %s", res.Status, res.Error)
		}
		if len(res.Stdout) != 1000 || !res.StdoutTruncated || res.StdoutBytes != 5000000 {
			t.Errorf("stdout kept %d, truncated %v, counted %d; want 1000, true, 5000000", len(res.Stdout), res.StdoutTruncated, res.StdoutBytes)
		}
		if res.Stderr != "small\n" || res.StderrTruncated || res.StderrBytes != 6 {
			t.Errorf("stderr %q truncated %v counted %d", res.Stderr, res.StderrTruncated, res.StderrBytes)
		}
		streamed := 0
		for _, e := range b.events(t, res.ExecutionID) {
			if e.Type == tasks.EventStdout {
				streamed += len(e.Data)
			}
		}
		if streamed != 1000 {
			t.Errorf("streamed %d bytes of stdout, want the 1000 kept", streamed)
		}
		exit, err := b.events(t, res.ExecutionID)[len(b.events(t, res.ExecutionID))-1].Exit()
		if err != nil || !exit.StdoutTruncated {
			t.Errorf("exit event %+v %v, want stdoutTruncated", exit, err)
		}
	})
}

func TestDuplicateIDRunsOnce(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		ctx := testutil.Context(t, time.Minute)
		req := tasks.ExecRequest{ID: "dup-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""), Cmd: sh("sleep 0.3; echo once")}
		first, err := b.producer.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		second, err := b.producer.Submit(ctx, req)
		if err != nil || second != first {
			t.Fatalf("second submit = %q, %v; want %q, nil", second, err, first)
		}
		res, err := b.producer.Wait(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		third, err := b.producer.Submit(ctx, req)
		if err != nil || third != first {
			t.Fatalf("submit after the result = %q, %v", third, err)
		}
		// A wrongly enqueued copy would be in the queue, or running.
		insp := asynq.NewInspectorFromRedisClient(b.redis.Client)
		testutil.Eventually(t, 30*time.Second, 10*time.Millisecond, "the queue holds nothing to run", func() bool {
			q, err := insp.GetQueueInfo("default")
			return err == nil && q.Pending == 0 && q.Active == 0 && q.Scheduled == 0 && q.Retry == 0
		})
		if n := testutil.CountEvents(b.events(t, first), tasks.EventStarted); n != 1 || res.Stdout != "once\n" {
			t.Errorf("started %d times, stdout %q", n, res.Stdout)
		}
		if _, err := b.producer.Submit(ctx, tasks.ExecRequest{ID: req.ID, Queue: "other", Cmd: req.Cmd}); !errors.Is(err, producer.ErrIDConflict) {
			t.Errorf("same id on another queue: %v, want ErrIDConflict", err)
		}
	})
}

func TestRejectedRequests(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime, limits: tasks.Limits{MaxPayloadBytes: 64 << 10, MaxTimeout: time.Minute}})
		raw := func(r tasks.ExecRequest) []byte {
			p, err := tasks.EncodeRequest(&r)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		cases := []struct {
			name    string
			payload func(id string) []byte
			want    string
		}{
			{"undecodable", func(string) []byte { return []byte("{not json") }, "not a valid execution request"},
			{"empty cmd", func(id string) []byte { return raw(tasks.ExecRequest{ID: id}) }, "cmd is empty"},
			{"absolute path", func(id string) []byte {
				return raw(tasks.ExecRequest{ID: id, Cmd: []string{"true"}, Files: []tasks.File{{Path: "/etc/x"}}})
			}, "is absolute"},
			{"traversal", func(id string) []byte {
				return raw(tasks.ExecRequest{ID: id, Cmd: []string{"true"}, Files: []tasks.File{{Path: "a/../../x"}}})
			}, `contains ".."`},
			{"timeout above maximum", func(id string) []byte {
				return raw(tasks.ExecRequest{ID: id, Cmd: []string{"true"}, Timeout: time.Hour})
			}, "above the worker's maximum"},
			{"oversized", func(id string) []byte {
				return raw(tasks.ExecRequest{ID: id, Cmd: []string{"true"}, Stdin: bytes.Repeat([]byte("x"), 100<<10)})
			}, "the worker accepts at most"},
			{"NUL in argv", func(id string) []byte { return raw(tasks.ExecRequest{ID: id, Cmd: []string{"echo", "a\x00b"}}) }, "NUL"},
			{"unknown image", func(id string) []byte {
				return raw(tasks.ExecRequest{ID: id, Image: "execq-sandbox:no-such-tag", Cmd: []string{"true"}})
			}, "image not found"},
		}
		ctx := testutil.Context(t, time.Minute)
		for i, c := range cases {
			id := fmt.Sprintf("rejected-%d", i)
			testutil.EnqueueRaw(t, b.redis.Client, id, c.payload(id))
			res, err := b.producer.Wait(ctx, id)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if res.Status != tasks.StatusRejected || !strings.Contains(res.Error, c.want) || res.Attempt > 1 {
				t.Errorf("%s: status %s attempt %d error %q; want rejected with %q", c.name, res.Status, res.Attempt, res.Error, c.want)
			}
			if n := testutil.CountEvents(b.events(t, id), tasks.EventStarted); n != 0 {
				t.Errorf("%s: started %d times", c.name, n)
			}
		}
	})
}

func TestNothingLeftBetweenExecutions(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime, poolSize: 1})
		first := b.run(t, tasks.ExecRequest{Cmd: sh(`
		echo secret > /workspace/w; echo secret > /tmp/t; echo secret > /dev/shm/s; mkdir /workspace/d; chmod 0 /workspace/d
		nohup sleep 300 >/dev/null 2>&1 &
		setsid sleep 300 >/dev/null 2>&1 &
		echo done`)})
		if first.Status != tasks.StatusSucceeded {
			t.Fatalf("first: %s %s", first.Status, first.Stderr)
		}
		second := b.run(t, tasks.ExecRequest{Cmd: sh("ls -A /workspace /tmp /dev/shm\n" + testutil.LeftoverScript)})
		if want := "/dev/shm:\n\n/tmp:\n\n/workspace:\n"; second.Stdout != want {
			t.Errorf("the second execution sees:\n%s", second.Stdout)
		}
		c1, _ := b.events(t, first.ExecutionID)[0].Started()
		c2, _ := b.events(t, second.ExecutionID)[0].Started()
		if c1.Container != c2.Container {
			t.Errorf("the executions ran in containers %s and %s; the test needs one", c1.Container, c2.Container)
		}
	})
}

func TestFollowResumesAndEndsAtExit(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		ctx := testutil.Context(t, time.Minute)
		id, err := b.producer.Submit(ctx, tasks.ExecRequest{Cmd: sh("echo one; sleep 0.2; echo two; sleep 0.2; echo three")})
		if err != nil {
			t.Fatal(err)
		}
		first := waitForEvent(t, b, id, tasks.EventStdout)
		var rest []string
		for ev, err := range b.producer.Follow(ctx, id, first.ID) {
			if err != nil {
				t.Fatal(err)
			}
			rest = append(rest, string(ev.Type)+":"+string(ev.Data))
		}
		got := strings.Join(rest, "|")
		if !strings.HasPrefix(got, "stdout:two\n|stdout:three\n|exit:") {
			t.Errorf("resumed events: %s", got)
		}
		if _, err := b.producer.Result(ctx, "no-such-execution"); !errors.Is(err, producer.ErrNotFound) {
			t.Errorf("result of an unknown id: %v", err)
		}
	})
}

func TestStdinAndEnv(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		res := b.run(t, tasks.ExecRequest{
			Cmd:   sh(`cat; echo "$GREETING $HOME $(pwd)"`),
			Stdin: []byte("from stdin\n"),
			Env:   map[string]string{"GREETING": "hello"},
		})
		if want := "from stdin\nhello /workspace /workspace\n"; res.Stdout != want {
			t.Errorf("stdout %q, want %q", res.Stdout, want)
		}
	})
}

func TestOOMKilled(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		res := b.run(t, tasks.ExecRequest{Cmd: sh("tail -c 200m /dev/zero"), MemoryBytes: 32 << 20})
		if res.Status != tasks.StatusOOMKilled || res.Success {
			t.Errorf("status %s exit %d error %q, want oom_killed", res.Status, res.ExitCode, res.Error)
		}
		if res := b.run(t, tasks.ExecRequest{Cmd: []string{"true"}}); res.Status != tasks.StatusSucceeded {
			t.Errorf("next execution: %s %s", res.Status, res.Error)
		}
	})
}

func TestShutdownLetsShortExecutionsFinishAndRequeuesLongOnes(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime, poolSize: 2, shutdownTimeout: 2 * time.Second})
		ctx := testutil.Context(t, 2*time.Minute)
		short, err := b.producer.Submit(ctx, tasks.ExecRequest{Cmd: sh("sleep 1; echo short")})
		if err != nil {
			t.Fatal(err)
		}
		long, err := b.producer.Submit(ctx, tasks.ExecRequest{Cmd: sh("echo begun; sleep 4; echo long")})
		if err != nil {
			t.Fatal(err)
		}
		waitForEvent(t, b, short, tasks.EventStarted)
		waitForEvent(t, b, long, tasks.EventStdout)
		if err := b.worker.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		// The short one finished within the grace period.
		res, err := b.producer.Result(ctx, short)
		if err != nil || res.Status != tasks.StatusSucceeded || res.Stdout != "short\n" || res.Attempt != 1 {
			t.Fatalf("short execution after shutdown: %+v, %v", res, err)
		}
		// The long one was killed and put back in its queue, without a result.
		if _, err := b.producer.Result(ctx, long); !errors.Is(err, producer.ErrNoResult) {
			t.Fatalf("long execution after shutdown: %v, want no result yet", err)
		}
		// Another worker picks it up; its stream shows the second attempt.
		startWorker(t, b.redis.Client, setupOptions{runtime: runtime, poolSize: 1})
		res, err = b.producer.Wait(ctx, long)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != tasks.StatusSucceeded || res.Attempt != 2 || res.Stdout != "begun\nlong\n" {
			t.Errorf("long execution: status %s attempt %d stdout %q", res.Status, res.Attempt, res.Stdout)
		}
		var attempts []int
		for _, e := range b.events(t, long) {
			if e.Type == tasks.EventStarted {
				d, _ := e.Started()
				attempts = append(attempts, d.Attempt)
			}
		}
		if fmt.Sprint(attempts) != "[1 2]" {
			t.Errorf("started events of attempts %v, want [1 2]", attempts)
		}
	})
}

// forEachRuntime runs f for every runtime, in parallel subtests.
func forEachRuntime(t *testing.T, f func(t *testing.T, runtime string)) {
	t.Parallel()
	for _, name := range testutil.RuntimeNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, name)
		})
	}
}
