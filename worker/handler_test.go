package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/fake"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
	"github.com/execq/execq/worker/internal/hook"
)

// Unit tests of the worker: a real worker.Worker and asynq server on
// miniredis, running commands in the fake runtime (see its package comment
// for the commands it knows).

const unitImage = "img:1"

type unitOptions struct {
	poolSize        int
	limits          tasks.Limits
	maxAttempts     int
	workerMaxRetry  int
	images          []string            // images the runtime has; nil for any
	others          []sandbox.Info      // containers of other workers
	alive           []string            // workers with a heartbeat before the start
	dead            []string            // workers of this deployment whose heartbeat is stale
	before          func(b *unitBundle) // runs before the worker starts
	shutdownTimeout time.Duration
	clock           clock.Clock // nil for the system's
	intervals       worker.Intervals
	languages       *worker.Catalogue
	warm            []worker.WarmImage
	observer        worker.Observer
	maxSessions     int
}

type unitBundle struct {
	mr       *miniredis.Miniredis
	redis    *redis.Client
	rt       *fake.Runtime
	name     string
	worker   *worker.Worker
	producer *producer.Client
	store    *rdb.Store
	ctx      context.Context
}

var unitWorkers atomic.Int64

func setupUnit(t *testing.T, opts unitOptions) *unitBundle {
	t.Helper()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	b := &unitBundle{
		mr:       mr,
		redis:    client,
		producer: producer.New(client, producer.Options{}),
		store:    rdb.New(client, tasks.Keys{}, 0),
		ctx:      ctx,
	}
	for _, name := range opts.alive {
		if err := b.store.Heartbeat(ctx, name, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	stale := float64(time.Now().Add(-time.Minute).Unix())
	for _, name := range opts.dead {
		if err := client.ZAdd(ctx, tasks.Keys{}.Workers(), redis.Z{Score: stale, Member: name}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if opts.before != nil {
		opts.before(b)
	}
	b.worker, b.rt, b.name = startUnitWorker(t, client, opts)
	return b
}

// startUnitWorker starts a worker on client with a fake runtime of its own
// and shuts it down at the end of the test, checking it left nothing.
func startUnitWorker(t *testing.T, client *redis.Client, opts unitOptions) (*worker.Worker, *fake.Runtime, string) {
	t.Helper()
	if opts.poolSize == 0 {
		opts.poolSize = 2
	}
	name := fmt.Sprintf("unit-%d", unitWorkers.Add(1))
	rt := fake.NewRuntime(name)
	rt.Images = opts.images
	rt.Others = opts.others
	cfg := worker.Config{
		Redis:           client,
		Name:            name,
		Image:           unitImage,
		PoolSize:        opts.poolSize,
		Limits:          opts.limits,
		MaxRetry:        opts.workerMaxRetry,
		MaxAttempts:     opts.maxAttempts,
		ShutdownTimeout: opts.shutdownTimeout,
		Intervals:       opts.intervals,
		Languages:       opts.languages,
		Warm:            opts.warm,
		Observer:        opts.observer,
		MaxSessions:     opts.maxSessions,
		Logger:          testutil.Logger(t),
	}
	hook.SetRuntime(&cfg, rt)
	if opts.clock != nil {
		hook.SetClock(&cfg, opts.clock)
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Start(ctx); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(func() { shutdownUnitWorker(t, w, rt) })
	if err := w.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	return w, rt, name
}

func shutdownUnitWorker(t *testing.T, w *worker.Worker, rt *fake.Runtime) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if live := rt.Live(); len(live) != 0 {
		t.Errorf("containers left after shutdown: %v", live)
	}
}

func (b *unitBundle) submit(t *testing.T, req tasks.ExecRequest) string {
	t.Helper()
	id, err := b.producer.Submit(b.ctx, req)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return id
}

func (b *unitBundle) wait(t *testing.T, id string) *tasks.Result {
	t.Helper()
	res, err := b.producer.Wait(b.ctx, id)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	return res
}

func (b *unitBundle) exec(t *testing.T, req tasks.ExecRequest) *tasks.Result {
	t.Helper()
	return b.wait(t, b.submit(t, req))
}

func (b *unitBundle) streamOf(t *testing.T, id string) []tasks.Event {
	t.Helper()
	events, err := b.store.Events(b.ctx, id, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// awaitEvent follows id until an event of typ and returns it.
func (b *unitBundle) awaitEvent(t *testing.T, id string, typ tasks.EventType) tasks.Event {
	t.Helper()
	for ev, err := range b.producer.Follow(b.ctx, id, "") {
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

func joinedData(events []tasks.Event, typ tasks.EventType) []byte {
	var b []byte
	for _, e := range events {
		if e.Type == typ {
			b = append(b, e.Data...)
		}
	}
	return b
}

// checkStream checks the shape every finished execution's stream has:
// events of the last attempt between a started event and one exit event
// that matches the result.
func checkStream(t *testing.T, events []tasks.Event, res *tasks.Result) {
	t.Helper()
	if len(events) == 0 {
		t.Fatalf("%s has no stream", res.ExecutionID)
	}
	if n := testutil.CountEvents(events, tasks.EventExit); n != 1 {
		t.Errorf("%s: %d exit events, want 1", res.ExecutionID, n)
	}
	exit, err := events[len(events)-1].Exit()
	if err != nil {
		t.Fatalf("%s: the last event: %v", res.ExecutionID, err)
	}
	if want := tasks.ExitDataOf(res); exit != want {
		t.Errorf("%s: exit event %+v, want %+v", res.ExecutionID, exit, want)
	}
}

func TestUnitEchoSucceeds(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	res := b.exec(t, tasks.ExecRequest{Cmd: []string{"echo", "hello", "world"}})
	if res.Status != tasks.StatusSucceeded || !res.Success || res.ExitCode != 0 || res.Stdout != "hello world\n" || res.Stderr != "" {
		t.Errorf("result %+v", res)
	}
	if res.Attempt != 1 || res.Worker != b.name || res.Image != unitImage || res.Resources == nil || res.StdoutBytes != 12 {
		t.Errorf("attempt %d worker %q image %q resources %v stdout bytes %d", res.Attempt, res.Worker, res.Image, res.Resources, res.StdoutBytes)
	}
	if res.StartedAt.IsZero() || res.FinishedAt.Before(res.StartedAt) {
		t.Errorf("started %s, finished %s", res.StartedAt, res.FinishedAt)
	}
	events := b.streamOf(t, res.ExecutionID)
	checkStream(t, events, res)
	started, err := events[0].Started()
	if err != nil {
		t.Fatalf("the first event: %v", err)
	}
	if started.Attempt != 1 || started.Worker != b.name || started.Image != unitImage || !strings.HasPrefix(started.Container, "fake-") {
		t.Errorf("started event %+v", started)
	}
	if got := joinedData(events, tasks.EventStdout); string(got) != "hello world\n" {
		t.Errorf("streamed stdout %q", got)
	}
}

func TestUnitExitCodes(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	cases := []struct {
		cmd    []string
		status tasks.Status
		code   int
		stderr string
	}{
		{[]string{"exit", "0"}, tasks.StatusSucceeded, 0, ""},
		{[]string{"exit", "3"}, tasks.StatusFailed, 3, ""},
		{[]string{"exit", "255"}, tasks.StatusFailed, 255, ""},
		{[]string{"err", "oops"}, tasks.StatusSucceeded, 0, "oops\n"},
		{[]string{"no-such-program"}, tasks.StatusFailed, 127, "execq: no-such-program: executable file not found in $PATH\n"},
	}
	for _, c := range cases {
		res := b.exec(t, tasks.ExecRequest{Cmd: c.cmd})
		if res.Status != c.status || res.ExitCode != c.code || res.Stderr != c.stderr || res.Success != (c.status == tasks.StatusSucceeded) {
			t.Errorf("%q: status %s exit %d stderr %q; want %s %d %q", c.cmd, res.Status, res.ExitCode, res.Stderr, c.status, c.code, c.stderr)
		}
		checkStream(t, b.streamOf(t, res.ExecutionID), res)
	}
}

func TestUnitStdinFilesAndCollect(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	res := b.exec(t, tasks.ExecRequest{Cmd: []string{"cat"}, Stdin: []byte("from\x00stdin\xff")})
	if res.Stdout != "from\x00stdin\xff" {
		t.Errorf("cat stdout %q", res.Stdout)
	}
	res = b.exec(t, tasks.ExecRequest{
		Cmd: []string{"ls"},
		Files: []tasks.File{
			{Path: "out/a.txt", Content: []byte("a")},
			{Path: "out/deep/b.txt", Content: []byte("b"), Mode: 0o600},
			{Path: "main.sh", Content: []byte("#!/bin/sh"), Mode: 0o755},
		},
		Collect: []string{"out/**/*.txt"},
	})
	if res.Status != tasks.StatusSucceeded || res.Stdout != "main.sh\nout/a.txt\nout/deep/b.txt\n" {
		t.Fatalf("status %s stdout %q", res.Status, res.Stdout)
	}
	var got []string
	for _, f := range res.Files {
		got = append(got, fmt.Sprintf("%s=%s/%o", f.Path, f.Content, uint32(f.Mode)))
	}
	if want := []string{"out/a.txt=a/0", "out/deep/b.txt=b/600"}; !slices.Equal(got, want) {
		t.Errorf("collected %v, want %v", got, want)
	}
	// The container is reset between executions: the files are gone.
	if res := b.exec(t, tasks.ExecRequest{Cmd: []string{"ls"}}); res.Stdout != "" {
		t.Errorf("the next execution sees %q", res.Stdout)
	}
}

func TestUnitTimeout(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{poolSize: 1})
	res := b.exec(t, tasks.ExecRequest{Cmd: []string{"sleep", "1m"}, Timeout: 50 * time.Millisecond})
	if res.Status != tasks.StatusTimedOut || res.ExitCode != -1 || res.Success || !strings.Contains(res.Error, "50ms timeout") {
		t.Errorf("status %s exit %d error %q; want timed_out, -1", res.Status, res.ExitCode, res.Error)
	}
	checkStream(t, b.streamOf(t, res.ExecutionID), res)
	started, err := b.streamOf(t, res.ExecutionID)[0].Started()
	if err != nil {
		t.Fatal(err)
	}
	// The command was killed in place: the container is reset and serves
	// the next execution.
	next := b.exec(t, tasks.ExecRequest{Cmd: []string{"echo", "next"}})
	if next.Status != tasks.StatusSucceeded {
		t.Fatalf("next execution: %s %s", next.Status, next.Error)
	}
	nextStarted, _ := b.streamOf(t, next.ExecutionID)[0].Started()
	if nextStarted.Container != started.Container {
		t.Errorf("the next execution ran in %s, not in the reset container %s", nextStarted.Container, started.Container)
	}
}

func TestUnitCancelRunning(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	id := b.submit(t, tasks.ExecRequest{Cmd: []string{"sleep", "1m"}})
	b.awaitEvent(t, id, tasks.EventStarted)
	if err := b.producer.Cancel(b.ctx, id); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	res := b.wait(t, id)
	if res.Status != tasks.StatusCanceled || res.ExitCode != -1 {
		t.Errorf("status %s exit %d error %q; want canceled", res.Status, res.ExitCode, res.Error)
	}
	checkStream(t, b.streamOf(t, id), res)
	if err := b.producer.Cancel(b.ctx, id); !errors.Is(err, producer.ErrFinished) {
		t.Errorf("second cancel = %v, want ErrFinished", err)
	}
}

func TestUnitCancelPending(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{poolSize: 1})
	busy := b.submit(t, tasks.ExecRequest{Cmd: []string{"sleep", "1m"}})
	b.awaitEvent(t, busy, tasks.EventStarted)
	queued := b.submit(t, tasks.ExecRequest{Cmd: []string{"echo", "ran"}})
	if err := b.producer.Cancel(b.ctx, queued); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	// A pending execution has its result at once, without a worker.
	res, err := b.producer.Result(b.ctx, queued)
	if err != nil {
		t.Fatalf("result right after the cancel: %v", err)
	}
	if res.Status != tasks.StatusCanceled || res.Stdout != "" {
		t.Errorf("status %s stdout %q; want canceled, nothing run", res.Status, res.Stdout)
	}
	if err := b.producer.Cancel(b.ctx, busy); err != nil {
		t.Fatal(err)
	}
	if res := b.wait(t, busy); res.Status != tasks.StatusCanceled {
		t.Errorf("busy: %s", res.Status)
	}
	// Give the worker, now free, a later execution: the canceled one never
	// started before it, nor after.
	if res := b.exec(t, tasks.ExecRequest{Cmd: []string{"echo", "after"}}); res.Status != tasks.StatusSucceeded {
		t.Errorf("after: %s", res.Status)
	}
	if n := testutil.CountEvents(b.streamOf(t, queued), tasks.EventStarted); n != 0 {
		t.Errorf("the canceled execution started %d times", n)
	}
	if err := b.producer.Cancel(b.ctx, "never-submitted"); !errors.Is(err, producer.ErrNotFound) {
		t.Errorf("cancel of an unknown id = %v, want ErrNotFound", err)
	}
}

func TestUnitCancelMarkedBeforeTheAttempt(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	id := "marked-" + fmt.Sprint(time.Now().UnixNano())
	// As when asynq delivers a canceled execution again: only the marker
	// is there.
	if err := b.store.MarkCanceled(b.ctx, id); err != nil {
		t.Fatal(err)
	}
	res := b.exec(t, tasks.ExecRequest{ID: id, Cmd: []string{"echo", "ran"}})
	if res.Status != tasks.StatusCanceled || res.Stdout != "" {
		t.Errorf("status %s stdout %q; want canceled before it started", res.Status, res.Stdout)
	}
	if n := testutil.CountEvents(b.streamOf(t, id), tasks.EventStarted); n != 0 {
		t.Errorf("started %d times", n)
	}
}

func TestUnitOOMKilled(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{poolSize: 1})
	res := b.exec(t, tasks.ExecRequest{Cmd: []string{"oom"}, MemoryBytes: 32 << 20})
	if res.Status != tasks.StatusOOMKilled || res.Success || res.ExitCode != 137 {
		t.Errorf("status %s exit %d; want oom_killed 137", res.Status, res.ExitCode)
	}
	if !strings.Contains(res.Error, "33554432-byte memory limit") {
		t.Errorf("error %q does not name the limit", res.Error)
	}
	checkStream(t, b.streamOf(t, res.ExecutionID), res)
	if next := b.exec(t, tasks.ExecRequest{Cmd: []string{"exit", "0"}}); next.Status != tasks.StatusSucceeded {
		t.Errorf("next execution: %s %s", next.Status, next.Error)
	}
}

func TestUnitCrashIsRetriedThenError(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{workerMaxRetry: 1})
	res := b.exec(t, tasks.ExecRequest{Cmd: []string{"crash"}})
	if res.Status != tasks.StatusError || res.ExitCode != -1 || res.Attempt != 2 {
		t.Errorf("status %s exit %d attempt %d; want error, -1, 2", res.Status, res.ExitCode, res.Attempt)
	}
	if !strings.Contains(res.Error, fake.ErrCrashed.Error()) {
		t.Errorf("error %q does not say why", res.Error)
	}
	events := b.streamOf(t, res.ExecutionID)
	checkStream(t, events, res)
	if n := testutil.CountEvents(events, tasks.EventStarted); n != 2 {
		t.Errorf("%d started events, want one per attempt (2)", n)
	}
	// Each crashed container was replaced; the worker still runs commands.
	if next := b.exec(t, tasks.ExecRequest{Cmd: []string{"exit", "0"}}); next.Status != tasks.StatusSucceeded {
		t.Errorf("next execution: %s %s", next.Status, next.Error)
	}
}

// worker.Config.MaxRetry bounds the retries after infrastructure
// failures; asynq's own limit on the task does not decide it.
func TestUnitWorkerMaxRetryBoundsRetries(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{workerMaxRetry: 1})
	res := b.exec(t, tasks.ExecRequest{Cmd: []string{"crash"}})
	if res.Status != tasks.StatusError || res.Attempt != 2 {
		t.Errorf("status %s after %d attempts; want error after 2 (MaxRetry 1)", res.Status, res.Attempt)
	}
}

func TestUnitMaxAttempts(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{maxAttempts: 2})
	id := "looping-" + fmt.Sprint(time.Now().UnixNano())
	// Two earlier attempts ended with their workers (crashed or stopped).
	for range 2 {
		if _, err := b.store.NextAttempt(b.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	res := b.exec(t, tasks.ExecRequest{ID: id, Cmd: []string{"echo", "ran"}})
	if res.Status != tasks.StatusError || res.Stdout != "" || res.Attempt != 3 || !strings.Contains(res.Error, "gave up after 2 attempts") {
		t.Errorf("status %s stdout %q attempt %d error %q; want error after 2 attempts", res.Status, res.Stdout, res.Attempt, res.Error)
	}
}

func TestUnitOutputCap(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	res := b.exec(t, tasks.ExecRequest{Cmd: []string{"write", "100000"}, MaxOutputBytes: 1000})
	if res.Status != tasks.StatusSucceeded {
		t.Fatalf("status %s %s", res.Status, res.Error)
	}
	if res.Stdout != strings.Repeat("x", 1000) || !res.StdoutTruncated || res.StdoutBytes != 100000 {
		t.Errorf("kept %d bytes, truncated %v, counted %d; want 1000, true, 100000", len(res.Stdout), res.StdoutTruncated, res.StdoutBytes)
	}
	if res.StderrTruncated || res.StderrBytes != 0 {
		t.Errorf("stderr truncated %v counted %d", res.StderrTruncated, res.StderrBytes)
	}
	events := b.streamOf(t, res.ExecutionID)
	checkStream(t, events, res)
	if got := joinedData(events, tasks.EventStdout); len(got) != 1000 {
		t.Errorf("streamed %d bytes of stdout, want the 1000 kept", len(got))
	}
	// The default cap applies when the request gives none.
	res = b.exec(t, tasks.ExecRequest{Cmd: []string{"write", fmt.Sprint(1<<20 + 1)}})
	if len(res.Stdout) != 1<<20 || !res.StdoutTruncated {
		t.Errorf("with the default cap: kept %d, truncated %v", len(res.Stdout), res.StdoutTruncated)
	}
}

func TestUnitDuplicateSubmitRunsOnce(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{poolSize: 1})
	inspector := asynq.NewInspectorFromRedisClient(b.redis)
	busy := b.submit(t, tasks.ExecRequest{Cmd: []string{"sleep", "1m"}})
	b.awaitEvent(t, busy, tasks.EventStarted)

	req := tasks.ExecRequest{ID: "dup-" + fmt.Sprint(time.Now().UnixNano()), Cmd: []string{"echo", "once"}}
	for i := range 3 {
		if id, err := b.producer.Submit(b.ctx, req); err != nil || id != req.ID {
			t.Fatalf("submit %d = %q, %v; want %q", i, id, err, req.ID)
		}
	}
	pending, err := inspector.ListPendingTasks("default")
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].ID != req.ID {
		t.Fatalf("pending tasks %d, want the one %s", len(pending), req.ID)
	}
	if err := b.producer.Cancel(b.ctx, busy); err != nil {
		t.Fatal(err)
	}
	res := b.wait(t, req.ID)
	if res.Stdout != "once\n" || res.Attempt != 1 {
		t.Errorf("stdout %q attempt %d", res.Stdout, res.Attempt)
	}
	// After the result, the same ID enqueues nothing either.
	if id, err := b.producer.Submit(b.ctx, req); err != nil || id != req.ID {
		t.Fatalf("submit after the result = %q, %v", id, err)
	}
	if pending, err := inspector.ListPendingTasks("default"); err != nil || len(pending) != 0 {
		t.Errorf("pending after a submit of a finished ID: %d, %v; want none", len(pending), err)
	}
	if n := testutil.CountEvents(b.streamOf(t, req.ID), tasks.EventStarted); n != 1 {
		t.Errorf("started %d times", n)
	}
	if _, err := b.producer.Submit(b.ctx, tasks.ExecRequest{ID: req.ID, Queue: "other", Cmd: req.Cmd}); !errors.Is(err, producer.ErrIDConflict) {
		t.Errorf("the same ID on another queue: %v, want ErrIDConflict", err)
	}
}

func TestUnitRejectedRequests(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{
		images: []string{unitImage},
		limits: tasks.Limits{MaxPayloadBytes: 64 << 10, MaxTimeout: time.Minute, DefaultTimeout: time.Second},
	})
	encode := func(r tasks.ExecRequest) []byte {
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
		{"another id", func(string) []byte { return encode(tasks.ExecRequest{ID: "someone-else", Cmd: []string{"echo"}}) }, "differs from the task id"},
		{"empty cmd", func(id string) []byte { return encode(tasks.ExecRequest{ID: id}) }, "cmd is empty"},
		{"absolute path", func(id string) []byte {
			return encode(tasks.ExecRequest{ID: id, Cmd: []string{"ls"}, Files: []tasks.File{{Path: "/etc/x"}}})
		}, "is absolute"},
		{"timeout above the maximum", func(id string) []byte {
			return encode(tasks.ExecRequest{ID: id, Cmd: []string{"echo"}, Timeout: time.Hour})
		}, "above the worker's maximum"},
		{"oversized", func(id string) []byte {
			return encode(tasks.ExecRequest{ID: id, Cmd: []string{"cat"}, Stdin: bytes.Repeat([]byte("x"), 100<<10)})
		}, "the worker accepts at most"},
		{"unknown image", func(id string) []byte {
			return encode(tasks.ExecRequest{ID: id, Image: "execq-sandbox:no-such-tag", Cmd: []string{"echo"}})
		}, "image not found"},
		{"image not allowed", func(id string) []byte {
			return encode(tasks.ExecRequest{ID: id, Image: "someones-private-image:v0", Cmd: []string{"echo"}})
		}, "not on this worker's allow-list"},
	}
	for i, c := range cases {
		id := fmt.Sprintf("rejected-%d", i)
		testutil.EnqueueRaw(t, b.redis, id, c.payload(id))
		res := b.wait(t, id)
		if res.Status != tasks.StatusRejected || !strings.Contains(res.Error, c.want) || res.Attempt > 1 || res.ExitCode != -1 {
			t.Errorf("%s: status %s attempt %d exit %d error %q; want rejected with %q", c.name, res.Status, res.Attempt, res.ExitCode, res.Error, c.want)
		}
		events := b.streamOf(t, id)
		checkStream(t, events, res)
		if n := testutil.CountEvents(events, tasks.EventStarted); n != 0 {
			t.Errorf("%s: started %d times", c.name, n)
		}
	}
	// The producer refuses what Check refuses, before anything is enqueued.
	var ve *tasks.ValidationError
	if _, err := b.producer.Submit(b.ctx, tasks.ExecRequest{Cmd: []string{"echo"}, Files: []tasks.File{{Path: "../x"}}}); !errors.As(err, &ve) {
		t.Errorf("Submit of an escaping path = %v, want a *tasks.ValidationError", err)
	}
}

func TestUnitHeartbeatAndOrphans(t *testing.T) {
	t.Parallel()
	old := time.Now().Add(-time.Hour)
	b := setupUnit(t, unitOptions{
		others: []sandbox.Info{
			{ID: "of-a-dead-worker", Owner: "dead-worker", Created: old, Running: true},
			{ID: "of-a-live-worker", Owner: "live-worker", Created: old, Running: true},
			{ID: "of-another-deployment", Owner: "stranger", Created: old, Running: true},
		},
		alive: []string{"live-worker"},
		dead:  []string{"dead-worker"},
	})
	if alive, err := b.store.WorkerAlive(b.ctx, b.name, time.Now().Add(-time.Minute)); err != nil || !alive {
		t.Errorf("the running worker's heartbeat: %v, %v", alive, err)
	}
	// The pool reconciled at Start, asking Redis which workers are alive.
	infos, err := b.rt.List(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var others []string
	for _, info := range infos {
		if info.Owner != b.name {
			others = append(others, info.ID)
		}
	}
	if !slices.Equal(others, []string{"of-a-live-worker", "of-another-deployment"}) {
		t.Errorf("other workers' containers left: %v; want the live one's and the unknown one's", others)
	}
	if err := b.worker.Shutdown(b.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.redis.ZScore(b.ctx, tasks.Keys{}.Workers(), b.name).Result(); !errors.Is(err, redis.Nil) {
		t.Errorf("the worker is still known after its shutdown: %v", err)
	}
}

func TestUnitShutdownLeavesTheExecutionToAnotherWorker(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{shutdownTimeout: 50 * time.Millisecond})
	id := b.submit(t, tasks.ExecRequest{Cmd: []string{"sleep", "2s"}, Timeout: time.Minute})
	b.awaitEvent(t, id, tasks.EventStarted)
	shutdownUnitWorker(t, b.worker, b.rt)
	if ok, err := b.store.HasResult(b.ctx, id); err != nil || ok {
		t.Fatalf("an execution interrupted by shutdown has a result (%v, %v); it must be left to another attempt", ok, err)
	}
	startUnitWorker(t, b.redis, unitOptions{})
	res := b.wait(t, id)
	if res.Status != tasks.StatusSucceeded || res.Attempt != 2 {
		t.Errorf("status %s attempt %d error %q; want succeeded at attempt 2", res.Status, res.Attempt, res.Error)
	}
}

func TestUnitDefaultTimeoutApplies(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{limits: tasks.Limits{DefaultTimeout: 50 * time.Millisecond}})
	res := b.exec(t, tasks.ExecRequest{Cmd: []string{"sleep", "1m"}})
	if res.Status != tasks.StatusTimedOut || !strings.Contains(res.Error, "50ms") {
		t.Errorf("status %s error %q; want timed_out after the 50ms default", res.Status, res.Error)
	}
}

// A cancel whose announcement was missed is still found by polling the
// marker.
func TestUnitCancelFoundWithoutTheAnnouncement(t *testing.T) {
	t.Parallel()
	fake := clock.NewFake(time.Now())
	b := setupUnit(t, unitOptions{clock: fake})
	id := b.submit(t, tasks.ExecRequest{Cmd: []string{"sleep", "1m"}})
	b.awaitEvent(t, id, tasks.EventStarted)
	// The marker alone, as MarkCanceled leaves it when the Pub/Sub
	// message is lost.
	if err := b.mr.Set(b.store.Keys().Cancel(id), "now"); err != nil {
		t.Fatal(err)
	}
	fake.Advance(worker.DefaultCancelPoll)
	if res := b.wait(t, id); res.Status != tasks.StatusCanceled {
		t.Errorf("status %s, want canceled", res.Status)
	}
}

func TestUnitManyExecutionsKeepTheirOwnOutput(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{poolSize: 3})
	ids := make([]string, 30)
	for i := range ids {
		ids[i] = b.submit(t, tasks.ExecRequest{Cmd: []string{"echo", fmt.Sprint("execution ", i)}})
	}
	for i, id := range ids {
		res := b.wait(t, id)
		if want := fmt.Sprintf("execution %d\n", i); res.Status != tasks.StatusSucceeded || res.Stdout != want {
			t.Errorf("%s: status %s stdout %q; want %q", id, res.Status, res.Stdout, want)
		}
		events := b.streamOf(t, id)
		checkStream(t, events, res)
		if got := joinedData(events, tasks.EventStdout); string(got) != res.Stdout {
			t.Errorf("%s: streamed %q, result %q", id, got, res.Stdout)
		}
	}
	if created, _ := b.rt.Counts(); created != 3 {
		t.Errorf("%d containers created for 30 executions on a pool of 3; want them reused", created)
	}
}

func TestUnitNewValidatesConfig(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialed
	t.Cleanup(func() { client.Close() })
	withFake := func(cfg worker.Config) worker.Config {
		hook.SetRuntime(&cfg, fake.NewRuntime("w"))
		return cfg
	}
	cases := []struct {
		name    string
		cfg     worker.Config
		problem string
	}{
		{"no redis", withFake(worker.Config{}), "Redis client is required"},
		{"concurrency above the pool", withFake(worker.Config{Redis: client, PoolSize: 2, Concurrency: 3}), "concurrency 3 is above the pool size 2"},
		{"empty queue name", withFake(worker.Config{Redis: client, Queues: map[string]int{"": 1}}), "queue name is empty"},
		{"limits", withFake(worker.Config{Redis: client, Limits: tasks.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: time.Second}}), "default timeout 30s is above the maximum 1s"},
		{"unknown runtime", worker.Config{Redis: client, Sandbox: worker.SandboxConfig{Runtime: "vm", AgentBinary: "/bin/true"}}, `sandbox runtime "vm"`},
		{"a language's image not allowed", withFake(worker.Config{Redis: client, Languages: mustCatalogue(t, worker.Language{
			Name: "ruby", Image: "ruby:3", File: "main.rb", Run: []string{"ruby", "main.rb"}})}), `language ruby: image "ruby:3" is not on this worker's allow-list`},
		{"warm above the pool", withFake(worker.Config{Redis: client, PoolSize: 4, Warm: []worker.WarmImage{{Image: "execq-python:latest", Count: 3}, {Image: "execq-node:latest", Count: 2}}}), "5 containers to keep warm, above the pool size 4"},
		{"warm image not allowed", withFake(worker.Config{Redis: client, Warm: []worker.WarmImage{{Image: "ruby:3", Count: 1}}}), `warm: image "ruby:3" is not on this worker's allow-list`},
		{"warm image twice", withFake(worker.Config{Redis: client, Warm: []worker.WarmImage{{Image: "execq-c:latest", Count: 1}, {Image: "execq-c:latest", Count: 1}}}), "execq-c:latest is given twice"},
	}
	for _, c := range cases {
		_, err := worker.New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.problem) {
			t.Errorf("%s: New = %v, want an error about %q", c.name, err, c.problem)
		}
	}
	w, err := worker.New(withFake(worker.Config{Redis: client}))
	if err != nil {
		t.Fatal(err)
	}
	if w.Name() == "" {
		t.Error("a worker without a name was not given one")
	}
	if err := w.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of a worker never started: %v", err)
	}
}

// asynq may deliver an execution again after its result is stored (a lost
// ack, an expired lease): the command must not run a second time.
func TestUnitSecondDeliveryDoesNotRunAgain(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	id := "delivered-twice"
	first := &tasks.Result{ExecutionID: id, Status: tasks.StatusSucceeded, Success: true, Stdout: "first\n", Attempt: 1}
	if ok, err := b.store.Finalize(b.ctx, first); err != nil || !ok {
		t.Fatalf("store the first result: %v, %v", ok, err)
	}
	payload, err := tasks.EncodeRequest(&tasks.ExecRequest{ID: id, Cmd: []string{"echo", "second"}})
	if err != nil {
		t.Fatal(err)
	}
	// Kept once done, so that the test sees it completed.
	testutil.EnqueueRaw(t, b.redis, id, payload, asynq.Retention(time.Hour))
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, "the second delivery is completed", func() bool {
		return b.taskInfo(t, id).State == asynq.TaskStateCompleted
	})
	if n := testutil.CountEvents(b.streamOf(t, id), tasks.EventStarted); n != 0 {
		t.Errorf("the second delivery started the command %d times", n)
	}
	if res, err := b.producer.Result(b.ctx, id); err != nil || res.Stdout != "first\n" {
		t.Errorf("result %+v, %v; want the first one", res, err)
	}
}

// runClock moves c by step every few milliseconds until stop is called:
// background passes then run one after the other, as fast as they can,
// whatever each one takes.
func runClock(c *clock.Fake, step time.Duration) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
				c.Advance(step)
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// waitUntil waits for a condition that has no signal to wait on.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, 10*time.Millisecond, what, cond)
}

func (b *unitBundle) taskInfo(t *testing.T, id string) *asynq.TaskInfo {
	t.Helper()
	info, err := asynq.NewInspectorFromRedisClient(b.redis).GetTaskInfo("default", id)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	return info
}

// An execution left active by a worker that crashed (its lease expired)
// is run by another worker without waiting for asynq's own recovery, and
// not before its lease has expired plus the recoverer's margin.
func TestUnitRecoversTheExecutionOfACrashedWorker(t *testing.T) {
	t.Parallel()
	id := "orphaned-" + fmt.Sprint(time.Now().UnixNano())
	fake := clock.NewFake(time.Now())
	var lease time.Time
	b := setupUnit(t, unitOptions{clock: fake, before: func(b *unitBundle) {
		b.submit(t, tasks.ExecRequest{ID: id, Cmd: []string{"echo", "recovered"}})
		var claimed string
		claimed, lease = claimedByACrashedWorker(t, b.redis, b.mr.Addr(), "default")
		if claimed != id {
			t.Fatalf("the crashed worker claimed %s, want %s", claimed, id)
		}
	}})
	// The worker's clock runs ahead, past the lease; asynq's runs at the
	// pace of the system's, by which it would take the task back 30s after
	// the lease expired, at a pass of its recoverer that runs every minute.
	stop := runClock(fake, 500*time.Millisecond)
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	res, err := b.producer.Wait(ctx, id)
	stop()
	if err != nil {
		t.Fatalf("the orphaned execution, its lease expired at %s: %v", lease.Format(time.TimeOnly), err)
	}
	if res.Status != tasks.StatusSucceeded || res.Stdout != "recovered\n" || res.Worker != b.name {
		t.Errorf("status %s stdout %q worker %q", res.Status, res.Stdout, res.Worker)
	}
	// Never while the lease may still be renewed: not before it expired
	// plus the margin for clock skew (in the worker's time).
	if earliest := lease.Add(worker.DefaultRecoverMargin); res.StartedAt.Before(earliest) {
		t.Errorf("the execution started again at %s, before its lease (%s) expired plus the %s margin",
			res.StartedAt.Format(time.StampMilli), lease.Format(time.StampMilli), worker.DefaultRecoverMargin)
	}
}

var errEngineGone = errors.New("cannot connect to the engine")

// While the container engine does not answer, executions wait in their
// queue without using up their retries, and run once it answers again.
func TestUnitExecutionsWaitForTheEngine(t *testing.T) {
	t.Parallel()
	// The engine check's interval is also the delay before an execution
	// that met the engine down is tried again, in asynq's time.
	b := setupUnit(t, unitOptions{workerMaxRetry: 1, intervals: worker.Intervals{EngineCheck: 50 * time.Millisecond}})
	b.rt.SetPingErr(errEngineGone)
	waitUntil(t, "the worker sees the engine down", func() bool { return b.worker.Healthy(b.ctx) != nil })

	id := b.submit(t, tasks.ExecRequest{Cmd: []string{"echo", "waited"}})
	waitUntil(t, "the execution is back in its queue", func() bool { return b.taskInfo(t, id).State == asynq.TaskStateRetry })
	if ok, err := b.store.HasResult(b.ctx, id); err != nil || ok {
		t.Fatalf("the execution has a result while the engine is down (%v, %v)", ok, err)
	}
	b.rt.SetPingErr(nil)
	res := b.wait(t, id)
	if res.Status != tasks.StatusSucceeded || res.Stdout != "waited\n" || res.Attempt != 1 {
		t.Errorf("status %s stdout %q attempt %d; want succeeded at attempt 1", res.Status, res.Stdout, res.Attempt)
	}
	if info := b.taskInfo(t, id); info.Retried != 0 {
		t.Errorf("waiting for the engine used %d retries", info.Retried)
	}
}

// An execution whose task allows asynq only one retry (another producer's)
// must still get a result when its last attempt meets an engine that does
// not answer: asynq (v0.26) archives a task whose retries are used up
// whatever the error, so the worker's error handler stores one.
func TestUnitEngineDownOnTheLastRetryStillGivesAResult(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	id := fmt.Sprintf("foreign-%d", time.Now().UnixNano())
	payload, err := tasks.EncodeRequest(&tasks.ExecRequest{ID: id, Cmd: []string{"crash"}})
	if err != nil {
		t.Fatal(err)
	}
	testutil.EnqueueRaw(t, b.redis, id, payload, asynq.MaxRetry(1))
	waitUntil(t, "the first crash used the one retry", func() bool {
		info := b.taskInfo(t, id)
		return info.State == asynq.TaskStateRetry && info.Retried == 1
	})
	b.rt.SetPingErr(errEngineGone) // the engine dies before the last attempt
	waitUntil(t, "the last attempt ended", func() bool {
		st := b.taskInfo(t, id).State
		return st == asynq.TaskStateArchived || st == asynq.TaskStateCompleted
	})
	b.rt.SetPingErr(nil)
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	res, err := b.producer.Wait(ctx, id)
	if err != nil {
		t.Fatalf("no result after the last attempt met a dead engine (task %s): %v", b.taskInfo(t, id).State, err)
	}
	if res.Status != tasks.StatusError || !strings.Contains(res.Error, "does not answer") {
		t.Errorf("status %s error %q; want error saying the engine does not answer", res.Status, res.Error)
	}
}

func TestUnitAnIDIsBoundToItsRequest(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	req := tasks.ExecRequest{ID: "bound-1", Cmd: []string{"echo", "first"}}
	b.submit(t, req)
	if _, err := b.producer.Submit(b.ctx, req); err != nil {
		t.Errorf("the same request again: %v, want the idempotent replay", err)
	}
	for _, other := range []tasks.ExecRequest{
		{ID: req.ID, Cmd: []string{"echo", "squatted"}},
		{ID: req.ID, Cmd: req.Cmd, Env: map[string]string{"A": "b"}},
		{ID: req.ID, Cmd: req.Cmd, Image: "other:1"},
		{ID: req.ID, Cmd: req.Cmd, Timeout: time.Second},
	} {
		if _, err := b.producer.Submit(b.ctx, other); !errors.Is(err, producer.ErrIDConflict) {
			t.Errorf("another request %+v under the same ID: %v, want ErrIDConflict", other, err)
		}
	}
	if res := b.wait(t, req.ID); res.Stdout != "first\n" {
		t.Errorf("stdout %q", res.Stdout)
	}
}

// An execution whose task is deleted from its queue, as an operator does
// from the dashboard, gets its result and exit event from the workers:
// a client that only reads the stream sees it end.
func TestUnitDeletedTaskGetsItsResult(t *testing.T) {
	t.Parallel()
	fake := clock.NewFake(time.Now())
	b := setupUnit(t, unitOptions{clock: fake})
	id := b.submit(t, tasks.ExecRequest{Queue: "nobody-serves-it", Cmd: []string{"echo", "never"}})
	insp := asynq.NewInspectorFromRedisClient(b.redis)
	if err := insp.DeleteTask("nobody-serves-it", id); err != nil {
		t.Fatal(err)
	}
	// The task must be found missing by two sweeps past the grace period.
	stop := runClock(fake, worker.DefaultSweep)
	ev := b.awaitEvent(t, id, tasks.EventExit)
	stop()
	exit, err := ev.Exit()
	if err != nil || exit.Status != tasks.StatusCanceled || !strings.Contains(exit.Error, "removed from queue") {
		t.Errorf("exit %+v, %v; want canceled, removed from its queue", exit, err)
	}
	waitUntil(t, "the execution is no longer recorded as pending", func() bool {
		pending, err := b.redis.ZCard(b.ctx, tasks.Keys{}.Pending()).Result()
		return err == nil && pending == 0
	})
}

// An attempt whose execution a later attempt took over (its worker lost
// its lease, and came back) writes nothing: neither its output nor its
// result lands over the later attempt's.
func TestStaleAttemptWritesNothing(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	id := b.submit(t, tasks.ExecRequest{Image: unitImage, Cmd: []string{"sleep", "1s"}})
	b.awaitEvent(t, id, tasks.EventStarted)
	// Another worker starts attempt 2 while attempt 1 still runs.
	later, err := b.store.NextAttempt(b.ctx, id)
	if err != nil || later != 2 {
		t.Fatalf("attempt 2: %d, %v", later, err)
	}
	if err := b.store.Attempt(later).AppendEvents(b.ctx, id, rdb.Entry{Type: tasks.EventStarted, Data: []byte(`{"attempt":2}`)}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, 10*time.Millisecond, "attempt 1's task is done", func() bool {
		return b.taskInfo(t, id).State == asynq.TaskStateCompleted
	})
	if ok, err := b.store.HasResult(b.ctx, id); err != nil || ok {
		t.Fatalf("attempt 1 stored a result (%v, %v) though attempt 2 runs", ok, err)
	}
	if _, err := b.store.Attempt(later).Finalize(b.ctx, &tasks.Result{ExecutionID: id, Status: tasks.StatusSucceeded, Attempt: later}, nil); err != nil {
		t.Fatal(err)
	}
	res := b.wait(t, id)
	events := b.streamOf(t, id)
	if res.Attempt != 2 || testutil.CountEvents(events, tasks.EventExit) != 1 || events[len(events)-1].Type != tasks.EventExit {
		t.Errorf("result %+v, stream %v; want attempt 2's, one exit", res, events)
	}
}
