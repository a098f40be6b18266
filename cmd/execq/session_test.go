package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

func TestShortDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Second:                          "0s",
		0:                                     "0s",
		1500 * time.Millisecond:               "1s",
		59 * time.Second:                      "59s",
		3*time.Minute + 5*time.Second:         "3m05s",
		2*time.Hour + 10*time.Minute:          "2h10m",
		23*time.Hour + 59*time.Minute:         "23h59m",
		76*time.Hour + 30*time.Minute:         "3d4h",
		24*time.Hour + 59*time.Second:         "1d0h",
		59*time.Minute + 59*time.Second:       "59m59s",
		time.Hour + 30*time.Second:            "1h00m",
		10*time.Minute + 999*time.Millisecond: "10m00s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// The table of execq session ls: idle time only for an open session, the
// executions as ended/admitted, "-" for what a session has not.
func TestPrintSessions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	list := []tasks.SessionInfo{
		{ID: "s-open", Status: tasks.SessionOpen, Owner: "alice", Worker: "w1", Image: "execq-sandbox:latest",
			Executions: 3, Done: 3, CreatedAt: now.Add(-2 * time.Hour), LastActiveAt: now.Add(-90 * time.Second)},
		{ID: "s-busy", Status: tasks.SessionOpen, Worker: "w2", Image: "execq-python:latest", Language: "python",
			Executions: 2, Done: 1, Running: "e2", CreatedAt: now.Add(-time.Minute), LastActiveAt: now.Add(-time.Minute)},
		{ID: "s-closed", Status: tasks.SessionClosed, Cause: tasks.CauseIdle, Owner: "bob\x1b[2J", Worker: "w1",
			Executions: 1, Done: 1, CreatedAt: now.Add(-30 * time.Hour), LastActiveAt: now.Add(-29 * time.Hour)},
		{ID: "s-new", Status: tasks.SessionCreating, CreatedAt: now.Add(-2 * time.Second)},
	}
	var b bytes.Buffer
	if err := printSessions(&b, list, now); err != nil {
		t.Fatal(err)
	}
	want := `SESSION   STATUS    OWNER       WORKER  IMAGE                         AGE    IDLE   EXECS  CAUSE
s-open    open      alice       w1      execq-sandbox:latest          2h00m  1m30s  3/3    -
s-busy    open      -           w2      execq-python:latest (python)  1m00s  0s     1/2    -
s-closed  closed    bob\x1b[2J  w1      -                             1d6h   -      1/1    idle
s-new     creating  -           -       -                             2s     -      0/0    -
`
	if got := b.String(); got != want {
		t.Errorf("printSessions:\n%s\nwant:\n%s", got, want)
	}
}

// execq session show prints what the session has, and its executions in
// their order.
func TestPrintSession(t *testing.T) {
	t.Parallel()
	now := time.Now()
	info := tasks.SessionInfo{ID: "s1", Status: tasks.SessionOpen, Worker: "w1", Queue: "execq:w1", Executions: 2, Done: 2,
		IdleTimeout: 10 * time.Minute, Lifetime: 2 * time.Hour, CreatedAt: now.Add(-time.Hour), LastActiveAt: now.Add(-5 * time.Second)}
	var b bytes.Buffer
	if err := printSession(&b, info, []string{"e1", "e2"}, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"session:       s1\n", "status:        open\n", "executions:    2 admitted, 2 ended\n",
		"idle:          5s\n", "idle timeout:  10m0s\n", "(1h00m ago)\n", "\nexecutions admitted, in order:\n  e1\n  e2\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("printSession lacks %q:\n%s", want, out)
		}
	}
	for _, absent := range []string{"cause:", "error:", "owner:", "ended:", "running:"} {
		if strings.Contains(out, absent) {
			t.Errorf("printSession prints %q, which the session has not:\n%s", absent, out)
		}
	}
}

// run and submit --session exit 128, saying why, when the session admits
// nothing: lost, closed or closing, or unknown; and so does run when the
// session was lost while its execution waited or ran.
func TestSessionGone(t *testing.T) {
	t.Setenv("EXECQ_REDIS_URL", "")
	mr := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rc.Close() })
	store := rdb.New(rc, tasks.Keys{}, 0)
	ctx := context.Background()
	now := time.Now()
	for _, id := range []string{"s-lost", "s-closing", "s-open"} {
		req := tasks.SessionRequest{ID: id}.WithDefaults()
		if err := store.CreateSession(ctx, req, now); err != nil {
			t.Fatal(err)
		}
		if _, err := store.OpenSession(ctx, id, "w1", "session:w1:x", "c1", "execq-sandbox:latest", now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.EndSession(ctx, "s-lost", tasks.SessionLost, tasks.CauseLost, "its worker w1 stopped", "", now); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RequestSessionClose(ctx, "s-closing", "", tasks.CauseClosed); err != nil {
		t.Fatal(err)
	}
	url := "redis://" + mr.Addr() + "/0"
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"run", "--session", "s-lost", "--", "true"}, "session lost: its worker w1 stopped"},
		{[]string{"submit", "--session", "s-lost", "--", "true"}, "session lost: its worker w1 stopped"},
		{[]string{"run", "--session", "s-closing", "--", "true"}, "execq: session s-closing is closed: it admits no execution\n"},
		{[]string{"run", "--session", "nope", "--", "true"}, "execq: session nope not found"},
	} {
		code, stdout, stderr := execq(t, "", append([]string{"--redis", url}, c.args...)...)
		if code != exitSessionGone || stdout != "" || !strings.Contains(stderr, c.stderr) {
			t.Errorf("execq %q: exit %d, stdout %q, stderr %q; want %d and %q", c.args, code, stdout, stderr, exitSessionGone, c.stderr)
		}
	}

	client := producer.New(rc, producer.Options{})
	failed := exitWith(exitExecqFailed, "error: the session s-lost was lost before it ran: its worker w1 stopped")
	for _, c := range []struct {
		sid  string
		err  error
		code int
		msg  string
	}{
		{"s-lost", failed, exitSessionGone, failed.Error() + "; session s-lost is lost"},
		{"s-lost", exitWith(exitExecqFailed, "error: its sandbox stopped"), exitSessionGone, "error: its sandbox stopped; session s-lost is lost: its worker w1 stopped"},
		{"s-lost", exitCodeOnly(exitExecqFailed), exitSessionGone, "session s-lost is lost: its worker w1 stopped"},
		{"nope", failed, exitSessionGone, failed.Error() + "; session nope no longer exists"},
		// A session still open: the failure was the execution's own.
		{"s-open", failed, exitExecqFailed, failed.Error()},
		// Not execq's failure: the command's code, a cancel.
		{"s-lost", exitCodeOnly(3), 3, ""},
		{"s-lost", exitWith(exitCanceled, "canceled"), exitCanceled, "canceled"},
		{"", failed, exitExecqFailed, failed.Error()},
	} {
		err := sessionGone(ctx, client, c.sid, c.err)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != c.code || ee.msg != c.msg {
			t.Errorf("sessionGone(%q, %v) = %#v; want exit %d with %q", c.sid, c.err, err, c.code, c.msg)
		}
	}
}
