package dashboard_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
)

// sessionJSON is a session as the view's JSON has it.
type sessionJSON struct {
	ID         string `json:"sessionId"`
	Status     string `json:"status"`
	Cause      string `json:"cause"`
	Owner      string `json:"owner"`
	Worker     string `json:"worker"`
	Image      string `json:"image"`
	Executions int64  `json:"executions"`
	Done       int64  `json:"done"`
	AgeMs      int64  `json:"ageMs"`
	IdleMs     int64  `json:"idleMs"`
	IdleTimeMs int64  `json:"idleTimeoutMs"`
}

// seedSessions records, through the store as a worker would, an open
// session of alice's created 20 minutes before now with two executions
// ended 5 minutes before now, one of nobody's being created, and one of
// bob's that ended idle.
func seedSessions(t *testing.T, b *viewBundle) {
	t.Helper()
	create := func(id, owner string, ago time.Duration) {
		req := tasks.SessionRequest{ID: id, Owner: owner, Image: "execq-sandbox:latest", IdleTimeout: 10 * time.Minute}.WithDefaults()
		if err := b.store.CreateSession(b.ctx, req, b.now.Add(-ago)); err != nil {
			t.Fatal(err)
		}
	}
	open := func(id string, ago time.Duration) {
		if ok, err := b.store.OpenSession(b.ctx, id, "w1", "session:w1:x", "c0ffee", "execq-sandbox:latest", b.now.Add(-ago)); err != nil || !ok {
			t.Fatalf("open %s: %v, %v", id, ok, err)
		}
	}
	create("s-bob", "bob", 30*time.Minute)
	open("s-bob", 30*time.Minute)
	if _, err := b.store.EndSession(b.ctx, "s-bob", tasks.SessionClosed, tasks.CauseIdle, "", "", b.now.Add(-15*time.Minute)); err != nil {
		t.Fatal(err)
	}
	create("s-alice", "alice", 20*time.Minute)
	open("s-alice", 20*time.Minute)
	for _, e := range []string{"e-first", "e-second"} {
		if _, err := b.store.AdmitToSession(b.ctx, "s-alice", e, "alice"); err != nil {
			t.Fatal(err)
		}
		if err := b.store.SessionDone(b.ctx, "s-alice", b.now.Add(-5*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	create("s-new", "", time.Second)
}

// The view lists the live sessions of every owner, newest first, with
// their age and idle time at its clock; all=1 lists the ended ones too.
func TestSessionViewLists(t *testing.T) {
	t.Parallel()
	b := setupView(t)
	seedSessions(t, b)
	var live struct{ Sessions []sessionJSON }
	if code := b.get(t, "/executions/api/sessions", &live); code != http.StatusOK {
		t.Fatalf("sessions: %d", code)
	}
	if len(live.Sessions) != 2 || live.Sessions[0].ID != "s-new" || live.Sessions[1].ID != "s-alice" {
		t.Fatalf("live sessions: %+v; want s-new and s-alice", live.Sessions)
	}
	alice := live.Sessions[1]
	want := sessionJSON{ID: "s-alice", Status: "open", Owner: "alice", Worker: "w1", Image: "execq-sandbox:latest",
		Executions: 2, Done: 2, AgeMs: (20 * time.Minute).Milliseconds(), IdleMs: (5 * time.Minute).Milliseconds(),
		IdleTimeMs: (10 * time.Minute).Milliseconds()}
	if alice != want {
		t.Errorf("alice's session:\n%+v, want\n%+v", alice, want)
	}
	if s := live.Sessions[0]; s.Status != "creating" || s.IdleMs != 0 || s.AgeMs != 1000 {
		t.Errorf("the session being created: %+v", s)
	}

	var all struct{ Sessions []sessionJSON }
	b.get(t, "/executions/api/sessions?all=1", &all)
	if len(all.Sessions) != 3 || all.Sessions[2].ID != "s-bob" || all.Sessions[2].Status != "closed" || all.Sessions[2].Cause != "idle" {
		t.Errorf("all sessions: %+v; want bob's last, closed idle", all.Sessions)
	}
	var one struct{ Sessions []sessionJSON }
	b.get(t, "/executions/api/sessions?all=1&limit=1", &one)
	if len(one.Sessions) != 1 || one.Sessions[0].ID != "s-new" {
		t.Errorf("limit=1: %+v", one.Sessions)
	}
}

// One session, with the executions it admitted in their order.
func TestSessionViewOfOne(t *testing.T) {
	t.Parallel()
	b := setupView(t)
	seedSessions(t, b)
	var got struct {
		Session    sessionJSON
		Executions []string
	}
	if code := b.get(t, "/executions/api/sessions/s-alice", &got); code != http.StatusOK {
		t.Fatalf("session: %d", code)
	}
	if got.Session.ID != "s-alice" || got.Session.Done != 2 || strings.Join(got.Executions, ",") != "e-first,e-second" {
		t.Errorf("s-alice: %+v", got)
	}
	var none struct{ Executions []string }
	b.get(t, "/executions/api/sessions/s-new", &none)
	if none.Executions == nil || len(none.Executions) != 0 {
		t.Errorf("a session without executions: %#v; want an empty list", none.Executions)
	}
	if code := b.get(t, "/executions/api/sessions/nope", nil); code != http.StatusNotFound {
		t.Errorf("unknown session: %d, want 404", code)
	}
	if code := b.get(t, "/executions/api/sessions/bad%20id", nil); code != http.StatusBadRequest {
		t.Errorf("invalid ID: %d, want 400", code)
	}
}

// The sessions' JSON answers only to the hosts the dashboard answers to,
// as the rest of the view does.
func TestSessionViewHostGuard(t *testing.T) {
	t.Parallel()
	b := setupView(t)
	for _, path := range []string{"/executions/api/sessions", "/executions/api/sessions/s1"} {
		req, _ := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
		req.Host = "rebound.example"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s for host rebound.example: %d, want 403", path, resp.StatusCode)
		}
	}
}
