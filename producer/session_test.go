package producer_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// openSession records session sid as open on a worker serving queue, as
// the worker does once it holds the session's sandbox.
func (b *submitBundle) openSession(t *testing.T, sid, queue string) *rdb.Store {
	t.Helper()
	store := rdb.New(b.redis, tasks.Keys{}, testRetention)
	now := time.Now()
	if err := store.CreateSession(b.ctx, tasks.SessionRequest{ID: sid}.WithDefaults(), now); err != nil {
		t.Fatal(err)
	}
	if ok, err := store.OpenSession(b.ctx, sid, "w1", queue, "c1", "execq-sandbox:latest", now); err != nil || !ok {
		t.Fatalf("open session %s: %v, %v", sid, ok, err)
	}
	return store
}

// An ID bound to another request is refused before it takes a place in
// the session: the session's order has no gap, and the next execution
// takes the next place.
func TestSessionSubmitOfABoundID(t *testing.T) {
	b := setupSubmit(t)
	store := b.openSession(t, "s1", "session:w1:x")
	s := b.producer.Session("s1")
	req := tasks.ExecRequest{ID: "e1", Cmd: []string{"true"}}
	if _, err := b.producer.Submit(b.ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Submit(b.ctx, req); !errors.Is(err, producer.ErrIDConflict) {
		t.Fatalf("the ID of a plain execution submitted to a session: %v, want ErrIDConflict", err)
	}
	if ids, err := s.Executions(b.ctx); err != nil || len(ids) != 0 {
		t.Fatalf("the session admitted %v (%v) after a refused submit, want nothing", ids, err)
	}

	for _, id := range []string{"e2", "e3"} {
		if _, err := s.Submit(b.ctx, tasks.ExecRequest{ID: id, Cmd: []string{"true"}}); err != nil {
			t.Fatal(err)
		}
	}
	// A replay takes no second place; a plain execution under a
	// session's ID is refused too.
	if _, err := s.Submit(b.ctx, tasks.ExecRequest{ID: "e2", Cmd: []string{"true"}}); err != nil {
		t.Fatalf("a replay in the session: %v", err)
	}
	if _, err := b.producer.Submit(b.ctx, tasks.ExecRequest{ID: "e3", Cmd: []string{"true"}}); !errors.Is(err, producer.ErrIDConflict) {
		t.Fatalf("the ID of a session's execution submitted outside it: %v, want ErrIDConflict", err)
	}
	ids, err := s.Executions(b.ctx)
	if err != nil || !slices.Equal(ids, []string{"e2", "e3"}) {
		t.Fatalf("the session admitted %v (%v), want [e2 e3]", ids, err)
	}
	info, err := store.Session(b.ctx, "s1")
	if err != nil || info.Executions != 2 {
		t.Fatalf("the session counts %d executions (%v), want 2", info.Executions, err)
	}
	info3, err := b.inspector.GetTaskInfo("session:w1:x", "e3")
	if err != nil {
		t.Fatalf("task e3 in the session's queue: %v", err)
	}
	got, err := tasks.DecodeRequest(info3.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if got.SessionSeq != 2 || got.Session != "s1" {
		t.Errorf("e3's task carries session %q, place %d; want s1, 2", got.Session, got.SessionSeq)
	}
}

// A session without a queue is opened by a worker of the client's queue.
func TestCreateSessionOnTheClientsQueue(t *testing.T) {
	b := setupSubmit(t)
	p := producer.New(b.redis, producer.Options{Queue: "gpu", Retention: testRetention})
	ctx, cancel := context.WithTimeout(b.ctx, 1500*time.Millisecond)
	defer cancel()
	_, err := p.CreateSession(ctx, tasks.SessionRequest{ID: "s1"})
	if err == nil || !strings.Contains(err.Error(), `serving queue "gpu"`) {
		t.Fatalf("a session no worker opens: %v, want it to name queue gpu", err)
	}
	if _, err := b.inspector.GetTaskInfo("gpu", "session:s1"); err != nil {
		t.Errorf("the session's request is not in the client's queue: %v", err)
	}
}

// A session no worker opened yet admits nothing and takes no place.
func TestSessionSubmitBeforeItOpens(t *testing.T) {
	b := setupSubmit(t)
	store := rdb.New(b.redis, tasks.Keys{}, testRetention)
	if err := store.CreateSession(b.ctx, tasks.SessionRequest{ID: "s1"}.WithDefaults(), time.Now()); err != nil {
		t.Fatal(err)
	}
	s := b.producer.Session("s1")
	if _, err := s.Submit(b.ctx, tasks.ExecRequest{ID: "e1", Cmd: []string{"true"}}); !errors.Is(err, producer.ErrSessionClosed) || !strings.Contains(err.Error(), "creating") {
		t.Fatalf("a submit to a session being created: %v, want ErrSessionClosed saying it is creating", err)
	}
	if ids, err := s.Executions(b.ctx); err != nil || len(ids) != 0 {
		t.Fatalf("the session admitted %v (%v), want nothing", ids, err)
	}
}
