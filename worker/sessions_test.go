package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// A session on miniredis and the fake runtime: its files stay between
// executions, another owner cannot use it, a close ends it and cancels what
// was admitted, and a worker's shutdown loses the sessions it holds.
func TestSessionUnit(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{poolSize: 1, intervals: worker.Intervals{SessionCheck: 20 * time.Millisecond}})
	ctx := b.ctx
	s, err := b.producer.CreateSession(ctx, tasks.SessionRequest{Owner: "alice",
		Files: []tasks.File{{Path: "a.txt", Content: []byte("a")}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		res, err := s.Run(ctx, tasks.ExecRequest{Cmd: []string{"ls"}})
		if err != nil || res.Status != tasks.StatusSucceeded || !strings.Contains(res.Stdout, "a.txt") || res.Session != s.ID() {
			t.Fatalf("step %d: %+v, %v", i+1, res, err)
		}
	}
	if _, err := b.producer.SessionOf(s.ID(), "bob").Submit(ctx, tasks.ExecRequest{Cmd: []string{"ls"}}); !errors.Is(err, producer.ErrSessionNotFound) {
		t.Fatalf("bob's submit: %v", err)
	}
	if _, err := s.Submit(ctx, tasks.ExecRequest{Cmd: []string{"ls"}, Image: "other"}); err == nil {
		t.Fatal("an image given with a session was admitted")
	}
	running, err := s.Submit(ctx, tasks.ExecRequest{Cmd: []string{"sleep", "1m"}})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := s.Submit(ctx, tasks.ExecRequest{Cmd: []string{"echo", "never"}})
	if err != nil {
		t.Fatal(err)
	}
	b.awaitEvent(t, running, tasks.EventStarted)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{running, queued} {
		res, err := b.producer.Wait(ctx, id)
		if err != nil || res.Status != tasks.StatusCanceled {
			t.Fatalf("%s after the close: %+v, %v", id, res, err)
		}
	}
	for {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Status == tasks.SessionClosed && info.Cause == tasks.CauseClosed {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	other, err := b.producer.CreateSession(ctx, tasks.SessionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.worker.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	info, err := other.Info(ctx)
	if err != nil || info.Status != tasks.SessionLost || !strings.Contains(info.Error, "stopped") {
		t.Fatalf("a session of a worker that stopped: %+v, %v", info, err)
	}
	if _, err := other.Submit(ctx, tasks.ExecRequest{Cmd: []string{"ls"}}); !errors.Is(err, producer.ErrSessionLost) {
		t.Fatalf("submit to a lost session: %v", err)
	}
}

// A worker that holds no sessions leaves their creation to others.
func TestNoSessionsWithMaxSessionsNegative(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{maxSessions: -1})
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	if _, err := b.producer.CreateSession(ctx, tasks.SessionRequest{}); err == nil || !strings.Contains(err.Error(), "no worker opened it") {
		t.Fatalf("create with no worker for sessions: %v", err)
	}
}
