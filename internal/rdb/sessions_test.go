package rdb_test

import (
	"errors"
	"testing"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// A session's life in Redis: created once, opened by one worker, admitting
// its owner's executions in order (once each), refusing once closing,
// ended once.
func TestSessionLife(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.UnixMilli(1_700_000_000_000)
	req := tasks.SessionRequest{ID: "s1", Owner: "alice"}.WithDefaults()
	if err := b.store.CreateSession(b.ctx, req, now); err != nil {
		t.Fatal(err)
	}
	if err := b.store.CreateSession(b.ctx, req, now); !errors.Is(err, rdb.ErrSessionExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := b.store.AdmitToSession(b.ctx, "s1", "x0", "alice"); !isRefused(err, tasks.SessionCreating) {
		t.Fatalf("admit while creating: %v", err)
	}
	opened, err := b.store.OpenSession(b.ctx, "s1", "w1", "session:w1", "abc", "img", now)
	if err != nil || !opened {
		t.Fatalf("open: %v %v", opened, err)
	}
	if again, _ := b.store.OpenSession(b.ctx, "s1", "w2", "session:w2", "def", "img", now); again {
		t.Fatal("a second worker opened the session")
	}
	for i, id := range []string{"x1", "x2", "x1", "x3"} {
		adm, err := b.store.AdmitToSession(b.ctx, "s1", id, "alice")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"x1": 1, "x2": 2, "x3": 3}[id]
		if adm.Seq != want || adm.Queue != "session:w1" || adm.Created != (i != 2) {
			t.Fatalf("admit %s: %+v, want seq %d", id, adm, want)
		}
	}
	if _, err := b.store.AdmitToSession(b.ctx, "s1", "x4", "bob"); !errors.Is(err, rdb.ErrNotOwner) {
		t.Fatalf("another owner: %v", err)
	}
	if _, err := b.store.AdmitToSession(b.ctx, "nope", "x4", "alice"); !errors.Is(err, rdb.ErrNotFound) {
		t.Fatalf("no session: %v", err)
	}
	ids, err := b.store.SessionExecutions(b.ctx, "s1")
	if err != nil || len(ids) != 3 || ids[0] != "x1" || ids[2] != "x3" {
		t.Fatalf("executions %v %v", ids, err)
	}
	if status, err := b.store.SessionRunning(b.ctx, "s1", "x1"); err != nil || status != tasks.SessionOpen {
		t.Fatal(status, err)
	}
	running, err := b.store.RequestSessionClose(b.ctx, "s1", "alice", tasks.CauseClosed)
	if err != nil || running != "x1" {
		t.Fatalf("close: %q %v", running, err)
	}
	if _, err := b.store.AdmitToSession(b.ctx, "s1", "x5", "alice"); !isRefused(err, tasks.SessionClosing) {
		t.Fatalf("admit while closing: %v", err)
	}
	if ended, err := b.store.EndSession(b.ctx, "s1", tasks.SessionClosed, tasks.CauseIdle, "", "w2", now); err != nil || ended {
		t.Fatalf("another worker ended it: %v %v", ended, err)
	}
	if ended, err := b.store.EndSession(b.ctx, "s1", tasks.SessionClosed, tasks.CauseIdle, "", "w1", now.Add(time.Second)); err != nil || !ended {
		t.Fatalf("end: %v %v", ended, err)
	}
	info, err := b.store.Session(b.ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	// The cause asked for at the close is kept.
	if info.Status != tasks.SessionClosed || info.Cause != tasks.CauseClosed || info.Executions != 3 || info.Running != "" ||
		info.Worker != "w1" || !info.EndedAt.Equal(now.Add(time.Second)) || info.IdleTimeout != tasks.DefaultSessionIdle {
		t.Fatalf("ended session %+v", info)
	}
	if live, _ := b.store.RecentSessions(b.ctx, 10, true); len(live) != 0 {
		t.Fatalf("live sessions after the end: %v", live)
	}
	if all, _ := b.store.RecentSessions(b.ctx, 10, false); len(all) != 1 {
		t.Fatalf("sessions: %v", all)
	}
	if ttl := b.mr.TTL(b.keys.Session("s1")); ttl != retention {
		t.Fatalf("an ended session expires after %s, want the retention", ttl)
	}
}

func isRefused(err error, status tasks.SessionStatus) bool {
	var r *rdb.SessionRefusedError
	return errors.As(err, &r) && r.Status == status
}
