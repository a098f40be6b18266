//go:build integration

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/internal/testutil/liveworker"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// startWorker starts a worker on r and the Docker engine, waits until its
// pool is warm, and shuts it down when the test ends.
func startWorker(t *testing.T, r *testutil.Redis) {
	t.Helper()
	liveworker.Start(t, r.Client, "cli-"+uuid.NewString()[:8], 2)
}

// exitCase is a command line and the exit code, stdout and a part of
// stderr the README's table says it ends with.
type exitCase struct {
	args   []string
	code   int
	stdout string // all of stdout; "*" for anything
	stderr string // a part of stderr
}

func (c exitCase) check(t *testing.T) (stdout string) {
	t.Helper()
	code, stdout, stderr := execq(t, "", c.args...)
	if code != c.code || c.stdout != "*" && stdout != c.stdout || !strings.Contains(stderr, c.stderr) {
		t.Errorf("execq %q: exit %d\nstdout: %q\nstderr: %q\nwant exit %d, stdout %q, stderr with %q",
			c.args, code, clip(stdout), stderr, c.code, c.stdout, c.stderr)
	}
	return stdout
}

// Every exit code of the README's table, from the commands it names, on a
// real redis-server and a worker on the real Docker engine.
func TestExitCodes(t *testing.T) {
	t.Setenv("EXECQ_REDIS_URL", "")
	r := testutil.StartRedis(t)
	startWorker(t, r)
	url := r.URL
	id := func(name string) string { return name + "-" + uuid.NewString()[:8] }
	ids := map[string]string{}
	for _, name := range []string{"ok", "three", "kill9", "timeout", "oom", "canceled", "rejected", "bound", "collect"} {
		ids[name] = id(name)
	}

	t.Run("run", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "out.txt"), []byte("mine\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range []exitCase{
			{[]string{"run", "--redis", url, "--id", ids["ok"], "--", "true"}, 0, "", ""},
			// --redis before the command's name, as the root's flag.
			{[]string{"--redis", url, "run", "--id", ids["three"], "--", "sh", "-c", "echo hi; echo err >&2; exit 3"}, 3, "hi\n", "err\n"},
			{[]string{"run", "--redis", url, "--", "/etc/passwd"}, 126, "", ""},
			{[]string{"run", "--redis", url, "--", "no-such-program"}, 127, "", "no-such-program"},
			{[]string{"run", "--redis", url, "--id", ids["kill9"], "--", "sh", "-c", "kill -9 $$"}, 137, "", ""},
			{[]string{"run", "--redis", url, "--id", ids["timeout"], "--timeout", "1s", "--", "sleep", "30"}, 124, "", "execq: timed_out: "},
			{[]string{"run", "--redis", url, "--id", ids["oom"], "--memory", "32m", "--", "sh", "-c", "tail -c 200m /dev/zero"}, 137, "", "execq: oom_killed: "},
			// Rejected by the worker: an image off its allow-list.
			{[]string{"run", "--redis", url, "--id", ids["rejected"], "--image", "not-allowed:1", "--", "true"}, 125, "", "execq: rejected: "},
			// Rejected by Submit: an absolute working directory.
			{[]string{"run", "--redis", url, "--workdir", "/etc", "--", "true"}, 125, "", "execq: "},
			{[]string{"run", "--redis", url, "--id", ids["bound"], "--", "echo", "first"}, 0, "first\n", ""},
			{[]string{"run", "--redis", url, "--id", ids["bound"], "--", "echo", "second"}, 125, "", "execution id conflict"},
			// A collected file is never written over one that is there.
			{[]string{"run", "--redis", url, "--id", ids["collect"], "--collect", "out.txt", "--output-dir", dir, "--",
				"sh", "-c", "echo theirs > out.txt"}, 125, "", "1 collected files not written into " + dir},
		} {
			c.check(t)
		}
		if code, stdout, _ := execq(t, "piped\n", "run", "--redis", url, "--stdin", "--", "sh", "-c", "cat; exit 4"); code != 4 || stdout != "piped\n" {
			t.Errorf("run --stdin of cat: exit %d, stdout %q; want 4 and the input", code, stdout)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "out.txt")); err != nil || string(b) != "mine\n" {
			t.Errorf("the file in --output-dir is now %q (%v)", b, err)
		}
	})

	t.Run("run canceled", func(t *testing.T) {
		code := make(chan int, 1)
		go func() {
			c, _, _ := execq(t, "", "run", "--redis", url, "--id", ids["canceled"], "--", "sleep", "30")
			code <- c
		}()
		waitStarted(t, url, ids["canceled"])
		exitCase{[]string{"cancel", "--redis", url, ids["canceled"]}, 0, "", "execq: " + ids["canceled"] + " canceled"}.check(t)
		select {
		case c := <-code:
			if c != 130 {
				t.Errorf("run of a canceled execution exited %d, want 130", c)
			}
		case <-time.After(time.Minute):
			t.Fatal("run of a canceled execution did not end within a minute")
		}
	})

	t.Run("tail", func(t *testing.T) {
		for _, c := range []exitCase{
			{[]string{"tail", "--redis", url, ids["ok"]}, 0, "", ""},
			{[]string{"tail", "--redis", url, ids["three"]}, 3, "hi\n", "err\n"},
			{[]string{"tail", "--redis", url, ids["kill9"]}, 137, "", ""},
			{[]string{"tail", "--redis", url, ids["timeout"]}, 124, "", "execq: timed_out: "},
			{[]string{"tail", "--redis", url, ids["oom"]}, 137, "", "execq: oom_killed: "},
			{[]string{"tail", "--redis", url, ids["canceled"]}, 130, "", "execq: canceled"},
			{[]string{"tail", "--redis", url, ids["rejected"]}, 125, "", "execq: rejected: "},
			{[]string{"tail", "--redis", url, "never-submitted"}, 2, "", "execution not found"},
		} {
			c.check(t)
		}
	})

	t.Run("submit, result and cancel", func(t *testing.T) {
		// Submitted to a queue no worker serves: it stays queued.
		queued := strings.TrimSpace(exitCase{[]string{"submit", "--redis", url, "--queue", "nobody", "--", "true"}, 0, "*", ""}.check(t))
		if uuid.Validate(queued) != nil {
			t.Fatalf("submit printed %q, want an execution ID", queued)
		}
		exitCase{[]string{"submit", "--redis", url, "--", ""}, 125, "", "execq: "}.check(t)
		for _, c := range []exitCase{
			{[]string{"result", "--redis", url, queued}, 1, "", "execution has no result yet"},
			{[]string{"result", "--redis", url, "--wait", "200ms", queued}, 1, "", "has no result after 200ms"},
			{[]string{"result", "--redis", url, "never-submitted"}, 2, "", "execution not found"},
			{[]string{"cancel", "--redis", url, "never-submitted"}, 2, "", "execution not found"},
			{[]string{"cancel", "--redis", url, queued}, 0, "", "execq: " + queued + " canceled"},
			{[]string{"cancel", "--redis", url, queued}, 1, "", "execution already finished"},
			{[]string{"cancel", "--redis", url, ids["ok"]}, 1, "", "execution already finished"},
		} {
			c.check(t)
		}
		// A result is printed whatever its status.
		for id, want := range map[string]tasks.Status{queued: tasks.StatusCanceled, ids["three"]: tasks.StatusFailed, ids["rejected"]: tasks.StatusRejected} {
			out := exitCase{[]string{"result", "--redis", url, id}, 0, "*", ""}.check(t)
			var res tasks.Result
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.ExecutionID != id || res.Status != want {
				t.Errorf("result %s printed %q (%v); want its result JSON, status %s", id, clip(out), err, want)
			}
		}
		exitCase{[]string{"result", "--redis", url, "--wait", "10s", ids["ok"]}, 0, "*", ""}.check(t)
	})
}

// waitStarted follows the execution id until its started event.
func waitStarted(t *testing.T, url, id string) {
	t.Helper()
	client, err := producer.Dial(url, producer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := testutil.Context(t, time.Minute)
	for ev, err := range client.Follow(ctx, id, "") {
		if err != nil {
			t.Fatalf("follow %s: %v", id, err)
		}
		if ev.Type == tasks.EventStarted {
			return
		}
	}
	t.Fatalf("%s ended without starting", id)
}
