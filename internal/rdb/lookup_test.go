package rdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

func TestBindRequestCreatedAndOwner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first, err := b.store.BindRequest(ctx, "x", "default", "d1", "owner-1")
	if err != nil || !first.Created || first.Queue != "default" || first.Digest != "d1" {
		t.Fatalf("first bind %+v, %v", first, err)
	}
	again, err := b.store.BindRequest(ctx, "x", "default", "d2", "owner-2")
	if err != nil || again.Created || again.Digest != "d1" {
		t.Fatalf("second bind %+v, %v", again, err)
	}
	if got, _ := b.mr.Get(b.keys.Owner("x")); got != "owner-1" {
		t.Errorf("owner %q, want the first binding's", got)
	}
	if ttl := b.mr.TTL(b.keys.Owner("x")); ttl != retention {
		t.Errorf("owner TTL %s, want the retention %s", ttl, retention)
	}
	if _, err := b.store.BindRequest(ctx, "y", "default", "d", ""); err != nil {
		t.Fatal(err)
	}
	if b.mr.Exists(b.keys.Owner("y")) {
		t.Error("an owner key for a request without owner")
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	e, err := b.store.Lookup(ctx, "none")
	if err != nil || e.Known || e.Result != nil || e.LastEventID != "0" {
		t.Fatalf("unknown: %+v, %v", e, err)
	}
	if _, err := b.store.BindRequest(ctx, "x", "default", "d", "o"); err != nil {
		t.Fatal(err)
	}
	e, _ = b.store.Lookup(ctx, "x")
	if !e.Known || e.Owner != "o" || e.Stream || e.Attempts != 0 {
		t.Errorf("bound: %+v", e)
	}
	if _, err := b.store.NextAttempt(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := b.store.AppendEvents(ctx, "x", rdb.Entry{Type: tasks.EventStarted, Data: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	e, _ = b.store.Lookup(ctx, "x")
	if e.Attempts != 1 || !e.Stream || e.LastEventID == "0" || e.Result != nil {
		t.Errorf("started: %+v", e)
	}
	// Finalize keeps the owner as long as the result.
	b.mr.FastForward(30 * time.Minute)
	if _, err := b.store.Finalize(ctx, &tasks.Result{ExecutionID: "x", Status: tasks.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if ttl := b.mr.TTL(b.keys.Owner("x")); ttl != retention {
		t.Errorf("owner TTL after the result %s, want %s", ttl, retention)
	}
	e, _ = b.store.Lookup(ctx, "x")
	if e.Result == nil {
		t.Errorf("finished: %+v", e)
	}
	events, err := b.store.EventsAfter(ctx, "x", e.LastEventID, 10)
	if err != nil || len(events) != 0 {
		t.Errorf("after the last: %v, %v", events, err)
	}
	events, err = b.store.EventsAfter(ctx, "x", "0", 10)
	if err != nil || len(events) != 2 || events[1].Type != tasks.EventExit {
		t.Errorf("from the start: %v, %v", events, err)
	}
}

func TestReadStreams(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := b.store.AppendEvents(ctx, id, rdb.Entry{Type: tasks.EventStdout, Data: []byte(id + "1")}, rdb.Entry{Type: tasks.EventStdout, Data: []byte(id + "2")}); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := b.store.EventsAfter(ctx, "a", "0", 1)
	conn := redis.NewClient(&redis.Options{Addr: b.mr.Addr()})
	defer conn.Close()
	got, err := b.store.ReadStreams(ctx, conn, map[string]string{"a": first[0].ID, "b": "0", "c": "0"}, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got["a"]) != 1 || string(got["a"][0].Data) != "a2" || len(got["b"]) != 2 || len(got["c"]) != 0 {
		t.Errorf("ReadStreams = %v", got)
	}
	if got, err := b.store.ReadStreams(ctx, conn, nil, 10, 0); err != nil || got != nil {
		t.Errorf("no streams: %v, %v", got, err)
	}
}
