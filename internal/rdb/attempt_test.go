package rdb_test

import (
	"errors"
	"testing"

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
	if written, err := old.Finalize(b.ctx, &tasks.Result{ExecutionID: "e1", Status: tasks.StatusSucceeded, Attempt: first}); written || !errors.Is(err, rdb.ErrStaleAttempt) {
		t.Errorf("attempt 1's result: %v, %v; want refused as stale", written, err)
	}
	if err := cur.AppendEvents(b.ctx, "e1", out); err != nil {
		t.Errorf("attempt 2 appends: %v", err)
	}
	if written, err := cur.Finalize(b.ctx, &tasks.Result{ExecutionID: "e1", Status: tasks.StatusFailed, Attempt: second}); !written || err != nil {
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
