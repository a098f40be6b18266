package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/testutil"
)

// execq runs the command line args in this process, with stdin as its
// standard input, and returns its exit code, stdout and stderr.
func execq(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = execute(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestCommandLines runs command lines that end before any Redis is
// reached: help, and every way to get the command line wrong.
func TestCommandLines(t *testing.T) {
	t.Setenv("EXECQ_REDIS_URL", "")
	// Nothing listens there: a command that dialed would fail otherwise.
	unreachable := fmt.Sprintf("redis://127.0.0.1:%d/0", testutil.FreePort(t))
	cases := []struct {
		args   []string
		code   int
		stdout string // a part of stdout
		stderr string // a part of stderr; "" for none at all
	}{
		{[]string{"--help"}, 0, "Every command that talks to Redis reads --redis", ""},
		{[]string{}, 0, "Available Commands:", ""},
		{[]string{"run", "--help"}, 0, "--timeout duration", ""},
		{[]string{"run", "--help"}, 0, "--redis string", ""},
		{[]string{"help", "result"}, 0, "result ID [flags]", ""},
		{[]string{"worker", "--help"}, 0, "--pool-size int", ""},

		{[]string{"bogus"}, 125, "", `execq: unknown command "bogus" for "execq"`},
		{[]string{"run", "--no-such-flag", "--", "true"}, 125, "", "execq: unknown flag: --no-such-flag"},
		{[]string{"--no-such-flag", "run", "--", "true"}, 125, "", "execq: unknown flag: --no-such-flag"},
		{[]string{"tail", "-x", "id"}, 125, "", "execq: unknown shorthand flag: 'x' in -x"},
		{[]string{"run", "--timeout", "soon", "--", "true"}, 125, "", `execq: invalid argument "soon" for "--timeout" flag`},
		{[]string{"run", "--cpus", "half", "--", "true"}, 125, "", `invalid argument "half" for "--cpus" flag`},
		{[]string{"run", "--memory", "12q", "--", "true"}, 125, "", `execq: --memory "12q" is not a size like 64m or 1g`},
		{[]string{"submit", "--max-output", "-1", "--", "true"}, 125, "", `execq: --max-output "-1" is not a size like 64m or 1g`},
		{[]string{"run", "--env", "=x", "--", "true"}, 125, "", `execq: --env "=x" has no name`},
		{[]string{"run", "--file", "/no/such/file", "--", "true"}, 125, "", "execq: --file: stat /no/such/file: no such file or directory"},
		{[]string{"run", "--file", ":dst", "--", "true"}, 125, "", `execq: --file ":dst" has no source`},
		{[]string{"result", "--wait", "forever", "id"}, 125, "", `invalid argument "forever" for "--wait" flag`},
		{[]string{"worker", "--pool-size", "many"}, 125, "", `invalid argument "many" for "--pool-size" flag`},
		{[]string{"worker", "--log-level", "loud"}, 125, "", `execq: --log-level "loud"`},
		{[]string{"worker", "--log-format", "xml", "--redis", unreachable}, 125, "", `execq: --log-format "xml" is neither text nor json`},

		{[]string{"run"}, 125, "", "execq: give the command to run after --, or --lang with --code or --file"},
		{[]string{"submit", "--image", "x"}, 125, "", "execq: give the command to run after --, or --lang with --code or --file"},
		{[]string{"run", "--redis", unreachable, "--code", "print(1)", "--", "python3"}, 125, "", "execq: invalid request: code needs a language"},
		{[]string{"run", "--redis", unreachable, "--lang", "python", "--image", "x", "--code", "print(1)"}, 125, "", "the language chooses the image"},
		{[]string{"run", "--redis", unreachable, "--lang", "Py thon", "--code", "x"}, 125, "", "is not a language name"},
		{[]string{"submit", "--redis", unreachable, "--lang", "python", "--code", "x", "--", "python3"}, 125, "", "code and cmd both given"},
		{[]string{"languages", "--languages", "/no/such/file"}, 125, "", "execq: language catalogue: open /no/such/file: no such file or directory"},
		{[]string{"languages", "extra"}, 125, "", `execq: unknown command "extra" for "execq languages"`},
		{[]string{"languages"}, 0, "python  execq-python:latest   main.py  -                                  python3 main.py       PYTHONUNBUFFERED=1\n", ""},
		{[]string{"worker", "--warm", "python=many"}, 125, "", `execq: --warm: "python=many": give NAME=COUNT`},
		{[]string{"worker", "--warm", "python=3,node=2", "--pool-size", "4"}, 125, "", "execq: --warm asks for 5 warm containers, above --pool-size 4"},
		{[]string{"worker", "--warm", "python=1,python=1"}, 125, "", "execq: --warm names python twice"},
		{[]string{"worker", "--languages", "/no/such/file"}, 125, "", "execq: language catalogue: open /no/such/file"},
		{[]string{"tail"}, 125, "", "execq: accepts 1 arg(s), received 0"},
		{[]string{"tail", "a", "b"}, 125, "", "execq: accepts 1 arg(s), received 2"},
		{[]string{"result"}, 125, "", "execq: accepts 1 arg(s), received 0"},
		{[]string{"cancel"}, 125, "", "execq: accepts 1 arg(s), received 0"},
		{[]string{"worker", "extra"}, 125, "", `execq: unknown command "extra" for "execq worker"`},
		{[]string{"bench", "--redis", unreachable}, 125, "", "execq: bench starts a redis-server of its own; it takes no --redis"},

		// Sessions: what a session decides is not given with --session.
		{[]string{"session", "--help"}, 0, "execq run --session \"$id\" -- cat f", ""},
		{[]string{"session", "create", "--help"}, 0, "--idle duration", ""},
		{[]string{"run", "--help"}, 0, "--session string", ""},
		{[]string{"run", "--session", "s", "--image", "x", "--", "true"}, 125, "",
			"execq: --image given with --session: the session decides its queue, image and limits"},
		{[]string{"run", "--session", "s", "--memory", "64m", "--cpus", "1", "--pids", "9", "--", "true"}, 125, "",
			"execq: --memory, --cpus, --pids given with --session"},
		{[]string{"submit", "--session", "s", "--queue", "q", "--", "true"}, 125, "", "execq: --queue given with --session"},
		{[]string{"submit", "--session", "s", "--lang", "python", "--image", "x", "--code", "1"}, 125, "", "execq: --image given with --session"},
		{[]string{"run", "--redis", unreachable, "--session", "bad/id", "--", "true"}, 125, "", `id "bad/id" has the character '/'`},
		{[]string{"run", "--redis", unreachable, "--session", "s", "--", "true"}, 125, "", "connection refused"},
		{[]string{"session", "bogus"}, 125, "", `execq: unknown command "bogus" for "execq session"`},
		{[]string{"session", "create", "extra"}, 125, "", `execq: unknown command "extra" for "execq session create"`},
		{[]string{"session", "create", "--idle", "soon"}, 125, "", `invalid argument "soon" for "--idle" flag`},
		{[]string{"session", "create", "--memory", "12q"}, 125, "", `execq: --memory "12q" is not a size like 64m or 1g`},
		{[]string{"session", "create", "--env", "=x"}, 125, "", `execq: --env "=x" has no name`},
		{[]string{"session", "create", "--file", "/no/such/file"}, 125, "", "execq: --file: stat /no/such/file: no such file or directory"},
		{[]string{"session", "create", "--wait", "0s"}, 125, "", "execq: --wait 0s is not a positive duration"},
		{[]string{"session", "create", "--redis", unreachable, "--idle", "-1s"}, 125, "", "execq: invalid request: idle timeout -1s is negative"},
		{[]string{"session", "create", "--redis", unreachable, "--lifetime", "25h"}, 125, "", "lifetime 25h0m0s is above the maximum 24h0m0s"},
		{[]string{"session", "create", "--redis", unreachable, "--lang", "python", "--image", "x"}, 125, "", "the language chooses the image"},
		{[]string{"session", "create", "--redis", unreachable, "--id", "a b"}, 125, "", `id "a b" has the character ' '`},
		{[]string{"session", "create", "--redis", unreachable}, 125, "", "connection refused"},
		{[]string{"session", "ls", "extra"}, 125, "", `execq: unknown command "extra" for "execq session ls"`},
		{[]string{"session", "ls", "-n", "0"}, 125, "", "execq: --limit 0 is not a positive number"},
		{[]string{"session", "ls", "--redis", unreachable}, 125, "", "connection refused"},
		{[]string{"session", "show"}, 125, "", "execq: accepts 1 arg(s), received 0"},
		{[]string{"session", "close", "a", "b"}, 125, "", "execq: accepts 1 arg(s), received 2"},

		// --redis is the root's, before or after the command's name.
		{[]string{"--redis", "::", "result", "id"}, 125, "", "execq: --redis (not a URL): not a Redis URL"},
		{[]string{"result", "--redis", "::", "id"}, 125, "", "execq: --redis (not a URL): not a Redis URL"},
		{[]string{"run", "--redis", "http://h:1", "--", "true"}, 125, "", "execq: --redis http://h:1: unknown scheme \"http\""},
		{[]string{"dashboard", "--redis", "::"}, 125, "", "execq: --redis (not a URL): not a Redis URL"},
		{[]string{"worker", "--redis", "::"}, 125, "", "execq: --redis (not a URL): not a Redis URL"},
		{[]string{"up", "--redis", "::"}, 125, "", "execq: --redis (not a URL): not a Redis URL"},
		// Redis unreachable.
		{[]string{"result", "--redis", unreachable, "id"}, 125, "", "connection refused"},
		{[]string{"cancel", "--redis", unreachable, "id"}, 125, "", "execq: cancel id: "},
		{[]string{"submit", "--redis", unreachable, "--", "true"}, 125, "", "connection refused"},
	}
	for _, c := range cases {
		code, stdout, stderr := execq(t, "", c.args...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || c.stderr == "" && stderr != "" || !strings.Contains(stderr, c.stderr) {
			t.Errorf("execq %q: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout with %q, stderr with %q",
				c.args, code, clip(stdout), stderr, c.code, c.stdout, c.stderr)
		}
	}
}

// A password in a Redis URL is never shown, whatever is wrong with the
// URL or with the server.
func TestRedisPasswordNotShown(t *testing.T) {
	t.Setenv("EXECQ_REDIS_URL", "")
	unreachable := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	for _, url := range []string{
		"redis://user:s3cret@h:1/x",              // a bad database
		"redis://user:s3 cret@h:1/0",             // not a URL
		"rediss://:s3cret@" + unreachable + "/0", // unreachable
		"redis://user:s3cret@" + unreachable + "/0",
	} {
		for _, args := range [][]string{{"result", "id"}, {"worker", "--log-format", "json"}, {"dashboard"}} {
			if args[0] != "result" && strings.Contains(url, unreachable) {
				continue // a worker or a dashboard waits for its Redis
			}
			args = append([]string{"--redis", url}, args...)
			code, stdout, stderr := execq(t, "", args...)
			if code != 125 || strings.Contains(stdout+stderr, "s3") {
				t.Errorf("execq %q: exit %d, stdout %q, stderr %q; want 125 without the password", args, code, stdout, stderr)
			}
		}
	}
	if got := redacted("redis://user:s3cret@h:1/0"); got != "redis://user:xxxxx@h:1/0" {
		t.Errorf("redacted = %q", got)
	}
	if got := redacted("redis://h:1/0"); got != "redis://h:1/0" {
		t.Errorf("redacted without a password = %q", got)
	}
}

// EXECQ_REDIS_URL is --redis's default.
func TestRedisURLFromTheEnvironment(t *testing.T) {
	t.Setenv("EXECQ_REDIS_URL", "::")
	code, _, stderr := execq(t, "", "result", "id")
	if code != 125 || !strings.Contains(stderr, "--redis (not a URL)") {
		t.Errorf("with EXECQ_REDIS_URL=::, result: exit %d, stderr %q; want 125 saying --redis is not a URL", code, stderr)
	}
	code, stdout, _ := execq(t, "", "result", "--help")
	if code != 0 || !strings.Contains(stdout, `--redis string   Redis address: redis://, redis-cluster://H:P,H:P or redis-sentinel://H:P,H:P/MASTER (env EXECQ_REDIS_URL) (default "::")`) {
		t.Errorf("result --help with EXECQ_REDIS_URL=::: exit %d\n%s", code, stdout)
	}
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
