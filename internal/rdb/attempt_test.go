package rdb_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// Writes of an attempt that a later one replaced change nothing: neither
// its events nor its result land, and the later attempt's do.
func TestAttemptWritesAreFenced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	out := rdb.Entry{Type: tasks.EventStdout, Data: []byte("x")}
	first, err := b.store.NextAttempt(b.ctx, "e1")
	if err != nil {
		t.Fatal(err)
	}
	old := b.store.Attempt(first)
	if err := old.AppendEvents(b.ctx, "e1", out); err != nil {
		t.Fatalf("attempt 1 appends: %v", err)
	}
	second, err := b.store.NextAttempt(b.ctx, "e1")
	if err != nil {
		t.Fatal(err)
	}
	cur := b.store.Attempt(second)
	if err := old.AppendEvents(b.ctx, "e1", out); !errors.Is(err, rdb.ErrStaleAttempt) {
		t.Errorf("attempt 1 appends after attempt 2 began: %v, want ErrStaleAttempt", err)
	}
	if written, err := old.Finalize(b.ctx, &tasks.Result{ExecutionID: "e1", Status: tasks.StatusSucceeded, Attempt: first}, nil); written || !errors.Is(err, rdb.ErrStaleAttempt) {
		t.Errorf("attempt 1's result: %v, %v; want refused as stale", written, err)
	}
	if err := cur.AppendEvents(b.ctx, "e1", out); err != nil {
		t.Errorf("attempt 2 appends: %v", err)
	}
	if written, err := cur.Finalize(b.ctx, &tasks.Result{ExecutionID: "e1", Status: tasks.StatusFailed, Attempt: second}, nil); !written || err != nil {
		t.Fatalf("attempt 2's result: %v, %v", written, err)
	}
	if err := cur.AppendEvents(b.ctx, "e1", out); !errors.Is(err, rdb.ErrStaleAttempt) {
		t.Errorf("an append after the result: %v, want ErrStaleAttempt", err)
	}
	res, err := b.store.Result(b.ctx, "e1")
	if err != nil || res.Attempt != second || res.Status != tasks.StatusFailed {
		t.Errorf("result %+v, %v; want attempt 2's", res, err)
	}
	events := b.events(t, "e1")
	if n := countEvents(events, tasks.EventStdout); n != 2 || events[len(events)-1].Type != tasks.EventExit {
		t.Errorf("%d stdout events (want 2: one per attempt before attempt 2's result), last %s", n, events[len(events)-1].Type)
	}
}

func countEvents(events []tasks.Event, typ tasks.EventType) int {
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// BeginAttempt counts attempts and announces each in the stream with its
// number; past the most allowed it counts and announces nothing; once the
// execution has its result it refuses, and counts nothing.
func TestBeginAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	started := tasks.StartedData{Worker: "w1", Image: "img", Container: "c1", StartedAt: at}
	for want := 1; want <= 3; want++ {
		n, err := b.store.BeginAttempt(b.ctx, "e1", 2, started)
		if err != nil || n != want {
			t.Fatalf("attempt %d: BeginAttempt = %d, %v", want, n, err)
		}
	}
	var got []tasks.StartedData
	for _, ev := range b.events(t, "e1") {
		var d tasks.StartedData
		if ev.Type != tasks.EventStarted || json.Unmarshal(ev.Data, &d) != nil {
			t.Fatalf("event %s %q; want started events only", ev.Type, ev.Data)
		}
		got = append(got, d)
	}
	if len(got) != 2 {
		t.Fatalf("%d started events, want 2 (the third attempt is past the most allowed)", len(got))
	}
	for i, d := range got {
		if want := (tasks.StartedData{Attempt: i + 1, Worker: "w1", Image: "img", Container: "c1", StartedAt: at}); d != want {
			t.Errorf("started event %d = %+v, want %+v", i, d, want)
		}
	}
	if ttl := b.mr.TTL(b.keys.Attempts("e1")); ttl != retention {
		t.Errorf("attempts counter TTL %s, want %s", ttl, retention)
	}
	if _, err := b.store.Finalize(b.ctx, &tasks.Result{ExecutionID: "e1", Status: tasks.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.store.BeginAttempt(b.ctx, "e1", 5, started); !errors.Is(err, rdb.ErrStaleAttempt) {
		t.Errorf("BeginAttempt after the result = %d, %v; want ErrStaleAttempt", n, err)
	}
	if v, _ := b.mr.Get(b.keys.Attempts("e1")); v != "3" {
		t.Errorf("attempts counter %q after a refused begin, want 3", v)
	}
}
