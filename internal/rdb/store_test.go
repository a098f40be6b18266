package rdb_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

const retention = time.Hour

type testBundle struct {
	mr     *miniredis.Miniredis
	client *redis.Client
	store  *rdb.Store
	keys   tasks.Keys
	ctx    context.Context
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	keys := tasks.Keys{Prefix: "test"}
	return &testBundle{mr: mr, client: client, store: rdb.New(client, keys, retention), keys: keys, ctx: ctx}
}

func (b *testBundle) events(t *testing.T, id string) []tasks.Event {
	t.Helper()
	events, err := b.store.Events(b.ctx, id, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func TestNewDefaultsRetention(t *testing.T) {
	t.Parallel()
	for _, r := range []time.Duration{0, -time.Second} {
		if got := rdb.New(nil, tasks.Keys{}, r).Retention(); got != tasks.DefaultRetention {
			t.Errorf("New with retention %s: Retention() = %s, want %s", r, got, tasks.DefaultRetention)
		}
	}
}

func TestFinalizeWritesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := &tasks.Result{ExecutionID: "e1", Status: tasks.StatusSucceeded, Success: true, Stdout: "first\xff", StdoutTruncated: true, Attempt: 1}
	if err := b.store.AppendEvents(b.ctx, "e1", rdb.Entry{Type: tasks.EventStarted, Data: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	written, err := b.store.Finalize(b.ctx, first)
	if err != nil || !written {
		t.Fatalf("first Finalize = %v, %v; want true, nil", written, err)
	}
	second := &tasks.Result{ExecutionID: "e1", Status: tasks.StatusCanceled, ExitCode: -1, Error: "late"}
	written, err = b.store.Finalize(b.ctx, second)
	if err != nil || written {
		t.Fatalf("second Finalize = %v, %v; want false, nil", written, err)
	}

	got, err := b.store.Result(b.ctx, "e1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, first) {
		t.Errorf("stored result %+v, want the first %+v", got, first)
	}
	events := b.events(t, "e1")
	if len(events) != 2 || events[0].Type != tasks.EventStarted || events[1].Type != tasks.EventExit {
		t.Fatalf("stream %v, want started then one exit", events)
	}
	exit, err := events[1].Exit()
	if err != nil {
		t.Fatal(err)
	}
	if want := tasks.ExitDataOf(first); exit != want {
		t.Errorf("exit event %+v, want %+v", exit, want)
	}
}

func TestFinalizeWithoutAStreamCreatesOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if ok, err := b.store.StreamExists(b.ctx, "e1"); err != nil || ok {
		t.Fatalf("StreamExists before = %v, %v", ok, err)
	}
	if _, err := b.store.Finalize(b.ctx, &tasks.Result{ExecutionID: "e1", Status: tasks.StatusRejected, Error: "bad"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.store.StreamExists(b.ctx, "e1"); err != nil || !ok {
		t.Errorf("StreamExists after = %v, %v; want true", ok, err)
	}
	if events := b.events(t, "e1"); len(events) != 1 || events[0].Type != tasks.EventExit {
		t.Errorf("stream %v, want a single exit event", events)
	}
}

func TestFinalizeSetsRetention(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.store.Finalize(b.ctx, &tasks.Result{ExecutionID: "e1", Status: tasks.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{b.keys.Result("e1"), b.keys.Stream("e1")} {
		if ttl := b.mr.TTL(key); ttl != retention {
			t.Errorf("TTL of %s = %s, want %s", key, ttl, retention)
		}
	}
	b.mr.FastForward(retention - time.Second)
	if ok, err := b.store.HasResult(b.ctx, "e1"); err != nil || !ok {
		t.Fatalf("HasResult before the retention passed = %v, %v", ok, err)
	}
	b.mr.FastForward(time.Second)
	if ok, err := b.store.HasResult(b.ctx, "e1"); err != nil || ok {
		t.Errorf("HasResult after the retention passed = %v, %v; want false", ok, err)
	}
	if ok, err := b.store.StreamExists(b.ctx, "e1"); err != nil || ok {
		t.Errorf("StreamExists after the retention passed = %v, %v; want false", ok, err)
	}
	if _, err := b.store.Result(b.ctx, "e1"); !errors.Is(err, rdb.ErrNotFound) {
		t.Errorf("Result after the retention passed: %v, want ErrNotFound", err)
	}
}

func TestAppendEventsRenewsTheStreamsExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key := b.keys.Stream("e1")
	if err := b.store.AppendEvents(b.ctx, "e1", rdb.Entry{Type: tasks.EventStdout, Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if ttl := b.mr.TTL(key); ttl != retention {
		t.Fatalf("TTL after the first append = %s, want %s", ttl, retention)
	}
	b.mr.FastForward(retention / 2)
	if err := b.store.AppendEvents(b.ctx, "e1", rdb.Entry{Type: tasks.EventStdout, Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if ttl := b.mr.TTL(key); ttl != retention {
		t.Errorf("TTL after the second append = %s, want it renewed to %s", ttl, retention)
	}
	if err := b.store.AppendEvents(b.ctx, "e1"); err != nil {
		t.Errorf("appending nothing: %v", err)
	}
}

func TestEventsAreByteExactAndInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	want := []rdb.Entry{
		{Type: tasks.EventStarted, Data: []byte(`{"attempt":1}`)},
		{Type: tasks.EventStdout, Data: all},
		{Type: tasks.EventStderr, Data: []byte("\xff\xfe\x00err\r\n")},
		{Type: tasks.EventStdout, Data: bytes.Repeat([]byte("0123456789abcdef"), 64<<10)}, // 1 MiB
		{Type: tasks.EventStdout, Data: []byte("héllo\n")},
	}
	if err := b.store.AppendEvents(b.ctx, "e1", want[:2]...); err != nil {
		t.Fatal(err)
	}
	for _, e := range want[2:] {
		if err := b.store.AppendEvents(b.ctx, "e1", e); err != nil {
			t.Fatal(err)
		}
	}
	check := func(how string, got []tasks.Event, want []rdb.Entry) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d", how, len(got), len(want))
		}
		for i := range want {
			if got[i].Type != want[i].Type || !bytes.Equal(got[i].Data, want[i].Data) {
				t.Errorf("%s: event %d is %s %q, want %s %q", how, i, got[i].Type, trim(got[i].Data), want[i].Type, trim(want[i].Data))
			}
			if got[i].ID == "" {
				t.Errorf("%s: event %d has no ID", how, i)
			}
		}
	}
	ranged := b.events(t, "e1")
	check("Events", ranged, want)

	read, err := b.store.ReadEvents(b.ctx, "e1", "", 100, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	check("ReadEvents from the start", read, want)

	read, err = b.store.ReadEvents(b.ctx, "e1", ranged[1].ID, 2, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	check("ReadEvents after the second, two at most", read, want[2:4])

	between, err := b.store.Events(b.ctx, "e1", ranged[1].ID, ranged[2].ID)
	if err != nil {
		t.Fatal(err)
	}
	check("Events between two IDs", between, want[1:3])
}

func trim(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func TestReadEventsReturnsNothingWhenQuiet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	events, err := b.store.ReadEvents(b.ctx, "none", "0", 10, 20*time.Millisecond)
	if err != nil || len(events) != 0 {
		t.Errorf("reading a stream that does not exist: %v, %v; want nothing and no error", events, err)
	}
	if err := b.store.AppendEvents(b.ctx, "e1", rdb.Entry{Type: tasks.EventStdout, Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	last := b.events(t, "e1")[0].ID
	events, err = b.store.ReadEvents(b.ctx, "e1", last, 10, 20*time.Millisecond)
	if err != nil || len(events) != 0 {
		t.Errorf("reading after the last event: %v, %v; want nothing and no error", events, err)
	}
}

func TestReadEventsWakesOnAnAppend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	type read struct {
		events []tasks.Event
		err    error
	}
	got := make(chan read, 1)
	go func() {
		// Longer than the test's context: only the append can end it in time.
		events, err := b.store.ReadEvents(b.ctx, "e1", "0", 10, time.Minute)
		got <- read{events, err}
	}()
	if err := b.store.AppendEvents(b.ctx, "e1", rdb.Entry{Type: tasks.EventStdout, Data: []byte("woke")}); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || len(r.events) != 1 || string(r.events[0].Data) != "woke" {
		t.Errorf("ReadEvents = %v, %v; want the appended event", r.events, r.err)
	}
}

// ReadEvents documents block as the longest wait; a zero block must not
// mean "wait forever". (go-redis does not bound a blocking read by ctx, so
// the test bounds it itself.)
func TestReadEventsWithZeroBlockDoesNotWaitForever(t *testing.T) {
	t.Parallel()
	b := setup(t)
	done := make(chan error, 1)
	go func() {
		events, err := b.store.ReadEvents(b.ctx, "none", "0", 10, 0)
		if err == nil && len(events) > 0 {
			err = fmt.Errorf("read %d events from a stream that does not exist", len(events))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(2 * time.Second):
		// Closing the client (at cleanup) ends the read.
		t.Error("ReadEvents with a zero block was still waiting on a quiet stream after 2s")
	}
}

func TestBindQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.store.Queue(b.ctx, "e1"); !errors.Is(err, rdb.ErrNotFound) {
		t.Errorf("Queue before binding: %v, want ErrNotFound", err)
	}
	if q, err := b.store.BindQueue(b.ctx, "e1", "fast"); err != nil || q != "fast" {
		t.Fatalf("first BindQueue = %q, %v; want fast", q, err)
	}
	if q, err := b.store.BindQueue(b.ctx, "e1", "fast"); err != nil || q != "fast" {
		t.Errorf("same BindQueue again = %q, %v; want fast", q, err)
	}
	if q, err := b.store.BindQueue(b.ctx, "e1", "slow"); err != nil || q != "fast" {
		t.Errorf("BindQueue to another queue = %q, %v; want the first, fast", q, err)
	}
	if q, err := b.store.Queue(b.ctx, "e1"); err != nil || q != "fast" {
		t.Errorf("Queue = %q, %v; want fast", q, err)
	}
	if q, err := b.store.BindQueue(b.ctx, "e2", "slow"); err != nil || q != "slow" {
		t.Errorf("BindQueue of another ID = %q, %v; want slow", q, err)
	}
	if ttl := b.mr.TTL(b.keys.Queue("e1")); ttl != retention {
		t.Errorf("TTL of the queue binding = %s, want %s", ttl, retention)
	}
}

func TestNextAttemptCounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for want := 1; want <= 3; want++ {
		if n, err := b.store.NextAttempt(b.ctx, "e1"); err != nil || n != want {
			t.Fatalf("NextAttempt = %d, %v; want %d", n, err, want)
		}
	}
	if n, err := b.store.NextAttempt(b.ctx, "e2"); err != nil || n != 1 {
		t.Errorf("NextAttempt of another ID = %d, %v; want 1", n, err)
	}
	if ttl := b.mr.TTL(b.keys.Attempts("e1")); ttl != retention {
		t.Errorf("TTL of the attempt counter = %s, want %s", ttl, retention)
	}
}

func TestMarkCanceled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.store.SubscribeCancels(b.ctx)
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.Receive(b.ctx); err != nil { // the subscription confirmation
		t.Fatal(err)
	}
	if ok, err := b.store.Canceled(b.ctx, "e1"); err != nil || ok {
		t.Fatalf("Canceled before = %v, %v", ok, err)
	}
	if err := b.store.MarkCanceled(b.ctx, "e1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.store.Canceled(b.ctx, "e1"); err != nil || !ok {
		t.Errorf("Canceled after = %v, %v; want true", ok, err)
	}
	if ok, err := b.store.Canceled(b.ctx, "e2"); err != nil || ok {
		t.Errorf("Canceled of another ID = %v, %v; want false", ok, err)
	}
	msg, err := sub.ReceiveMessage(b.ctx)
	if err != nil || msg.Payload != "e1" || msg.Channel != b.keys.CancelChannel() {
		t.Errorf("announcement %+v, %v; want e1 on %s", msg, err, b.keys.CancelChannel())
	}
	if ttl := b.mr.TTL(b.keys.Cancel("e1")); ttl != retention {
		t.Errorf("TTL of the cancel marker = %s, want %s", ttl, retention)
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const ttl = 15 * time.Second
	now := time.Now()
	alive := func(name string) bool {
		t.Helper()
		ok, err := b.store.WorkerAlive(b.ctx, name, now.Add(-ttl))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	known := func(name string) bool {
		t.Helper()
		_, err := b.client.ZScore(b.ctx, b.keys.Workers(), name).Result()
		return err == nil
	}
	if !alive("w1") {
		t.Fatal("a worker this deployment does not know counts as dead; it is another deployment's")
	}
	if err := b.store.Heartbeat(b.ctx, "w1", now); err != nil {
		t.Fatal(err)
	}
	if !alive("w1") || !known("w1") {
		t.Fatal("w1 not alive after its heartbeat")
	}
	stale := float64(now.Add(-time.Minute).Unix())
	if err := b.client.ZAdd(b.ctx, b.keys.Workers(), redis.Z{Score: stale, Member: "w1"}).Err(); err != nil {
		t.Fatal(err)
	}
	if alive("w1") {
		t.Error("w1 alive a minute after its last heartbeat")
	}
	ancient := float64(now.Add(-48 * time.Hour).Unix())
	if err := b.client.ZAdd(b.ctx, b.keys.Workers(), redis.Z{Score: ancient, Member: "w-old"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Heartbeat(b.ctx, "w1", now); err != nil {
		t.Fatal(err)
	}
	if !alive("w1") || known("w-old") {
		t.Errorf("after a new heartbeat: w1 alive %v, a worker gone for two days still known %v", alive("w1"), known("w-old"))
	}
	if err := b.store.ForgetWorker(b.ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	if known("w1") {
		t.Error("w1 known after ForgetWorker")
	}
	if err := b.store.ForgetWorker(b.ctx, "never-seen"); err != nil {
		t.Errorf("forgetting an unknown worker: %v", err)
	}
}

func TestResultNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.store.Result(b.ctx, "none"); !errors.Is(err, rdb.ErrNotFound) {
		t.Errorf("Result of an unknown ID: %v, want ErrNotFound", err)
	}
	if ok, err := b.store.HasResult(b.ctx, "none"); err != nil || ok {
		t.Errorf("HasResult of an unknown ID = %v, %v", ok, err)
	}
}

func TestResultThatDoesNotDecodeIsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := b.mr.Set(b.keys.Result("e1"), "{broken"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Result(b.ctx, "e1"); err == nil || errors.Is(err, rdb.ErrNotFound) {
		t.Errorf("Result of a broken value: %v, want a decode error", err)
	}
}

func TestKeysFollowThePrefix(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if _, err := b.store.Finalize(b.ctx, &tasks.Result{ExecutionID: "e1", FinishedAt: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.BindQueue(b.ctx, "e1", "q"); err != nil {
		t.Fatal(err)
	}
	deployment := map[string]bool{b.keys.Finished(): true, b.keys.StatusCounts(at.Unix() / 60): true}
	for _, key := range b.mr.Keys() {
		if want := "test:{e1}:"; !deployment[key] && !strings.HasPrefix(key, want) {
			t.Errorf("key %q does not start with %q", key, want)
		}
		if !strings.HasPrefix(key, "test:") {
			t.Errorf("key %q does not start with the prefix", key)
		}
	}
}

// An unreachable Redis must show as an error, never as "no result", "not
// canceled" or "not alive".
func TestErrorsAreNotMistakenForAbsence(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addr := b.mr.Addr()
	b.mr.Close()
	// A client that gives up at once, so that the test is quick.
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { client.Close() })
	b.store = rdb.New(client, b.keys, retention)
	ctx := b.ctx
	res := &tasks.Result{ExecutionID: "e1"}
	calls := map[string]func() error{
		"Result":       func() error { _, err := b.store.Result(ctx, "e1"); return err },
		"HasResult":    func() error { _, err := b.store.HasResult(ctx, "e1"); return err },
		"Finalize":     func() error { _, err := b.store.Finalize(ctx, res); return err },
		"AppendEvents": func() error { return b.store.AppendEvents(ctx, "e1", rdb.Entry{Type: tasks.EventStdout}) },
		"ReadEvents":   func() error { _, err := b.store.ReadEvents(ctx, "e1", "0", 1, time.Millisecond); return err },
		"Events":       func() error { _, err := b.store.Events(ctx, "e1", "-", "+"); return err },
		"StreamExists": func() error { _, err := b.store.StreamExists(ctx, "e1"); return err },
		"MarkCanceled": func() error { return b.store.MarkCanceled(ctx, "e1") },
		"Canceled":     func() error { _, err := b.store.Canceled(ctx, "e1"); return err },
		"NextAttempt":  func() error { _, err := b.store.NextAttempt(ctx, "e1"); return err },
		"BindQueue":    func() error { _, err := b.store.BindQueue(ctx, "e1", "q"); return err },
		"Queue":        func() error { _, err := b.store.Queue(ctx, "e1"); return err },
		"Heartbeat":    func() error { return b.store.Heartbeat(ctx, "w", time.Now()) },
		"WorkerAlive":  func() error { _, err := b.store.WorkerAlive(ctx, "w", time.Now()); return err },
		"NextFailure":  func() error { _, err := b.store.NextFailure(ctx, "e1"); return err },
		"ForgetWorker": func() error { return b.store.ForgetWorker(ctx, "w") },
	}
	for name, call := range calls {
		err := call()
		if err == nil || errors.Is(err, rdb.ErrNotFound) {
			t.Errorf("%s with Redis down = %v; want an error other than ErrNotFound", name, err)
		}
	}
}

func TestSettled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	check := func(id string, wantDone, wantCanceled bool) {
		t.Helper()
		done, canceled, err := b.store.Settled(b.ctx, id)
		if err != nil || done != wantDone || canceled != wantCanceled {
			t.Errorf("Settled(%s) = %v, %v, %v; want %v, %v", id, done, canceled, err, wantDone, wantCanceled)
		}
	}
	check("e1", false, false)
	if err := b.store.MarkCanceled(b.ctx, "e1"); err != nil {
		t.Fatal(err)
	}
	check("e1", false, true)
	if _, err := b.store.Finalize(b.ctx, &tasks.Result{ExecutionID: "e2", Status: tasks.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	check("e2", true, false)
}
