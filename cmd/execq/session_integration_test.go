//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/internal/testutil/liveworker"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// The session commands, each an execq process of its own, on a real
// redis-server and a worker on the real Docker engine: a session keeps
// what its executions leave in /workspace, is listed and shown, and admits
// nothing once closed.
func TestSessionCommandLines(t *testing.T) {
	r := testutil.StartRedis(t)
	liveworker.StartWith(t, r.Client, "cli-"+uuid.NewString()[:8], 2, func(c *worker.Config) { c.MaxSessions = 2 })
	exe := testutil.ExecqBinary(t)
	run := func(args ...string) (int, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Env = append(os.Environ(), "EXECQ_REDIS_URL="+r.URL)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("execq %q: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
	}
	check := func(c exitCase) string {
		t.Helper()
		code, stdout, stderr := run(c.args...)
		if code != c.code || c.stdout != "*" && stdout != c.stdout || !strings.Contains(stderr, c.stderr) {
			t.Errorf("execq %q: exit %d\nstdout: %q\nstderr: %q\nwant exit %d, stdout %q, stderr with %q",
				c.args, code, clip(stdout), stderr, c.code, c.stdout, c.stderr)
		}
		return stdout
	}
	create := func(args ...string) string {
		t.Helper()
		out := check(exitCase{append([]string{"session", "create"}, args...), 0, "*", ""})
		id := strings.TrimSpace(out)
		if uuid.Validate(id) != nil || out != id+"\n" {
			t.Fatalf("session create printed %q, want one line with a session ID", out)
		}
		return id
	}
	session := func(id string, args ...string) tasks.SessionInfo {
		t.Helper()
		out := check(exitCase{append([]string{"session", "show", "--json", id}, args...), 0, "*", ""})
		var info tasks.SessionInfo
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("session show --json %s: %v: %s", id, err, out)
		}
		return info
	}

	id := create("--idle", "5m", "--env", "GREETING=hi")
	check(exitCase{[]string{"run", "--session", id, "--", "sh", "-c", "echo $GREETING > f"}, 0, "", ""})
	check(exitCase{[]string{"run", "--session", id, "--", "cat", "f"}, 0, "hi\n", ""})
	// The command's own exit code, in a session as outside one.
	check(exitCase{[]string{"run", "--session", id, "--", "sh", "-c", "cat f; exit 3"}, 3, "hi\n", ""})
	submitted := strings.TrimSpace(check(exitCase{[]string{"submit", "--session", id, "--", "ls"}, 0, "*", ""}))
	out := check(exitCase{[]string{"result", "--wait", "30s", submitted}, 0, "*", ""})
	var res tasks.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Session != id || res.Stdout != "f\n" {
		t.Errorf("result of the execution submitted in the session: %s (%v); want session %s and stdout f", clip(out), err, id)
	}
	check(exitCase{[]string{"run", "--session", id, "--memory", "64m", "--", "true"}, 125, "", "--memory given with --session"})

	// Another session has a /workspace of its own.
	other := create("--json=false")
	check(exitCase{[]string{"run", "--session", other, "--", "cat", "f"}, 1, "", "No such file"})

	info := session(id)
	if info.Status != tasks.SessionOpen || info.Executions != 4 || info.Done != 4 || info.IdleTimeout != 5*time.Minute || info.Worker == "" {
		t.Errorf("session show --json: %+v; want it open with 4 of 4 executions ended, idle timeout 5m, on a worker", info)
	}
	out = check(exitCase{[]string{"session", "show", id}, 0, "*", ""})
	if !strings.Contains(out, "status:        open\n") || !strings.Contains(out, "\nexecutions admitted, in order:\n") || !strings.Contains(out, "  "+submitted+"\n") {
		t.Errorf("session show %s:\n%s", id, out)
	}
	out = check(exitCase{[]string{"session", "ls"}, 0, "*", ""})
	if !strings.HasPrefix(out, "SESSION ") || !lineWith(out, id, " open ", " 4/4 ") || !lineWith(out, other, " open ", " 1/1 ") {
		t.Errorf("session ls does not list both sessions open with their executions:\n%s", out)
	}
	var list []tasks.SessionInfo
	out = check(exitCase{[]string{"session", "ls", "--json"}, 0, "*", ""})
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || list[0].ID != other || list[1].ID != id {
		t.Errorf("session ls --json: %v: %s; want the two sessions, newest first", err, clip(out))
	}

	check(exitCase{[]string{"session", "close", id}, 0, "", "execq: session " + id + " closed"})
	check(exitCase{[]string{"run", "--session", id, "--", "cat", "f"}, 128, "", "execq: session " + id + " is closed: it admits no execution\n"})
	check(exitCase{[]string{"submit", "--session", id, "--", "true"}, 128, "", "execq: session " + id + " is closed: it admits no execution\n"})
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, "the session ends closed", func() bool {
		return session(id).Status == tasks.SessionClosed
	})
	if info := session(id); info.Cause != tasks.CauseClosed || info.EndedAt.IsZero() {
		t.Errorf("closed session: %+v; want cause closed and its end", info)
	}
	// Closing a closed session does nothing.
	check(exitCase{[]string{"session", "close", id}, 0, "", ""})
	out = check(exitCase{[]string{"session", "ls"}, 0, "*", ""})
	if strings.Contains(out, id) || !strings.Contains(out, other) {
		t.Errorf("session ls lists the closed session, or not the open one:\n%s", out)
	}
	out = check(exitCase{[]string{"session", "ls", "--all"}, 0, "*", ""})
	if !lineWith(out, id, " closed ", " closed\n") {
		t.Errorf("session ls --all does not list the closed session with its cause:\n%s", out)
	}
	check(exitCase{[]string{"session", "close", other}, 0, "", ""})

	never := "never-" + uuid.NewString()[:8]
	check(exitCase{[]string{"run", "--session", never, "--", "true"}, 128, "", "execq: session " + never + " not found"})
	check(exitCase{[]string{"session", "show", never}, 2, "", "session not found"})
	check(exitCase{[]string{"session", "close", never}, 2, "", "session not found"})
	// A session that no worker serves is not opened.
	check(exitCase{[]string{"session", "create", "--queue", "nobody", "--wait", "1s"}, 125, "", "no worker opened it in time"})
}

// lineWith reports whether a line of out holds every part.
func lineWith(out string, parts ...string) bool {
	for line := range strings.Lines(out) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
