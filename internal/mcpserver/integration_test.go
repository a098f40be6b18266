//go:build integration

package mcpserver_test

import (
	"context"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/execq/execq/internal/mcpserver"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/internal/testutil/liveworker"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// live is a worker on a real redis-server and the Docker engine, and an
// execq binary whose `execq mcp` talks to it.
type live struct {
	ctx    context.Context
	redis  *testutil.Redis
	client *producer.Client
	exe    string
}

func setupLive(t *testing.T) *live {
	t.Helper()
	t.Setenv("EXECQ_REDIS_URL", "")
	testutil.Docker(t)
	r := testutil.StartRedis(t)
	l := &live{ctx: testutil.Context(t, 5*time.Minute), redis: r, client: producer.New(r.Client, producer.Options{})}
	l.exe = testutil.ExecqBinary(t)
	liveworker.StartWith(t, r.Client, "mcp-"+uuid.NewString()[:8], 2, func(c *worker.Config) { c.MaxSessions = 2 })
	return l
}

// mcpCommand is `execq mcp -v --redis URL`, its stderr into log.
func (l *live) mcpCommand(log io.Writer) *exec.Cmd {
	cmd := exec.Command(l.exe, "mcp", "-v", "--redis", l.redis.URL)
	cmd.Stderr = log
	return cmd
}

// mcpProcess is a running `execq mcp` whose stdin and stdout the test holds.
type mcpProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	// exited receives the process's end once; put it back after reading.
	exited chan error
}

// startMCP starts `execq mcp` with its stderr in log. At the test's end its
// stdin is closed and it is killed if it has not exited within 10 s; the
// log is shown when the test failed.
func (l *live) startMCP(t *testing.T, log *testutil.Buffer) *mcpProcess {
	t.Helper()
	p := &mcpProcess{cmd: l.mcpCommand(log), exited: make(chan error, 1)}
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if p.stdout, err = p.cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("execq mcp's stderr:\n%s", log.String())
		}
	})
	return p
}

// The SDK's client runs `execq mcp` and talks to it over its stdin and
// stdout, against a worker on real Redis and Docker.
func TestStdio(t *testing.T) {
	l := setupLive(t)
	log := &testutil.Buffer{}
	s := connect(t, l.ctx, &mcp.CommandTransport{Command: l.mcpCommand(log)}, true)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("execq mcp's stderr:\n%s", log.String())
		}
	})

	t.Run("tools", func(t *testing.T) {
		list, err := s.cs.ListTools(l.ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range list.Tools {
			names = append(names, tool.Name)
			if tool.Name == "execute" {
				in, out := schemaOf(t, tool.InputSchema), schemaOf(t, tool.OutputSchema)
				if got := keys(in["properties"]); !slices.Equal(got, []string{"argv", "code", "command", "env", "files", "image", "language", "memory", "session", "stdin", "timeoutSeconds"}) {
					t.Errorf("execute's arguments: %v", got)
				}
				if !slices.Contains(strs(out["required"]), "exitCode") {
					t.Errorf("execute's output schema: %v", out)
				}
			}
		}
		slices.Sort(names)
		if want := []string{"cancel", "close_session", "create_session", "execute", "get_result", "submit"}; !slices.Equal(names, want) {
			t.Errorf("tools %v, want %v", names, want)
		}
	})

	t.Run("exit code and progress", func(t *testing.T) {
		res := s.call(t, l.ctx, "execute", map[string]any{"command": "echo hi; exit 3"}, true)
		r := result(t, res)
		if r.Status != tasks.StatusFailed || r.ExitCode != 3 || r.Stdout != "hi\n" || r.Worker == "" {
			t.Errorf("sh -c 'echo hi; exit 3': %+v", r)
		}
		if txt := text(res); !strings.Contains(txt, "exit code: 3\n") || !strings.Contains(txt, "--- stdout ---\nhi\n") {
			t.Errorf("summary %q", txt)
		}
		if !s.wire.progressBeforeResponse("hi") {
			t.Errorf("no progress notification carried hi before the result: %+v", s.wire.entries)
		}
	})

	t.Run("files, stdin and env", func(t *testing.T) {
		res := s.call(t, l.ctx, "execute", map[string]any{
			"command": "sh run.sh; id -u; cat; echo \"$GREETING\"",
			"files":   map[string]string{"run.sh": "sort data/in.txt\n", "data/in.txt": "b\na\n"},
			"stdin":   "from stdin\n",
			"env":     map[string]string{"GREETING": "hello"},
		}, false)
		r := result(t, res)
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		if r.Status != tasks.StatusSucceeded || len(lines) != 5 || lines[0] != "a" || lines[1] != "b" || lines[2] == "0" ||
			lines[3] != "from stdin" || lines[4] != "hello" {
			t.Errorf("files, stdin and env: %+v", r)
		}
	})

	t.Run("argv", func(t *testing.T) {
		r := result(t, s.call(t, l.ctx, "execute", map[string]any{"argv": []string{"echo", "a  b", "$HOME"}}, false))
		if r.Status != tasks.StatusSucceeded || r.Stdout != "a  b $HOME\n" {
			t.Errorf("argv, no shell: %+v", r)
		}
	})

	t.Run("language and code", func(t *testing.T) {
		r := result(t, s.call(t, l.ctx, "execute", map[string]any{"language": "sh", "code": "echo $((6*7))"}, false))
		if r.Status != tasks.StatusSucceeded || r.Stdout != "42\n" || r.Step != tasks.StepRun {
			t.Errorf("sh code: %+v", r)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		res := s.call(t, l.ctx, "execute", map[string]any{"command": "sleep 30", "timeoutSeconds": 1}, false)
		r := result(t, res)
		if r.Status != tasks.StatusTimedOut || r.ExitCode != -1 {
			t.Errorf("a timeout: %+v", r)
		}
		if txt := text(res); !strings.Contains(txt, "status: timed_out\n") {
			t.Errorf("summary %q", txt)
		}
	})

	t.Run("invalid arguments", func(t *testing.T) {
		for _, c := range []struct {
			args map[string]any
			want string
		}{
			{map[string]any{}, "give command"},
			{map[string]any{"command": "true", "memory": "huge"}, `memory "huge"`},
			{map[string]any{"command": "true", "nope": 1}, "nope"},
		} {
			res := s.call(t, l.ctx, "execute", c.args, false)
			if !res.IsError || !strings.Contains(text(res), c.want) {
				t.Errorf("execute %v: isError %v, %q; want a tool error with %q", c.args, res.IsError, text(res), c.want)
			}
		}
		// Refused by the worker: a rejected result, as a tool error with
		// the result.
		res := s.call(t, l.ctx, "execute", map[string]any{"command": "true", "image": "not-allowed:1"}, false)
		if r := structured[tasks.Result](t, res); !res.IsError || r.Status != tasks.StatusRejected || r.Error == "" {
			t.Errorf("an image off the allow-list: isError %v, %+v", res.IsError, r)
		}
	})

	t.Run("submit, get_result and cancel", func(t *testing.T) {
		done := structured[mcpserver.Submitted](t, s.call(t, l.ctx, "submit", map[string]any{"command": "echo done"}, false)).ExecutionID
		res := s.call(t, l.ctx, "get_result", map[string]any{"id": done, "waitSeconds": 30}, false)
		if r := result(t, res); r.Status != tasks.StatusSucceeded || r.Stdout != "done\n" || r.ExecutionID != done {
			t.Errorf("get_result of a submitted echo: %+v", r)
		}

		id := structured[mcpserver.Submitted](t, s.call(t, l.ctx, "submit", map[string]any{"command": "sleep 30"}, false)).ExecutionID
		testutil.Eventually(t, time.Minute, 20*time.Millisecond, "get_result says running", func() bool {
			return structured[mcpserver.Pending](t, s.call(t, l.ctx, "get_result", map[string]any{"id": id}, false)).Status == "running"
		})
		if c := structured[mcpserver.Canceled](t, s.call(t, l.ctx, "cancel", map[string]any{"id": id}, false)); !c.Canceled {
			t.Errorf("cancel of a running execution: %+v", c)
		}
		res = s.call(t, l.ctx, "get_result", map[string]any{"id": id, "waitSeconds": 30}, false)
		if r := result(t, res); r.Status != tasks.StatusCanceled {
			t.Errorf("get_result after cancel: %+v", r)
		}
	})

	t.Run("a session", func(t *testing.T) {
		res := s.call(t, l.ctx, "create_session", map[string]any{"env": map[string]string{"WHO": "session"}, "idleTimeoutSeconds": 120}, false)
		opened := structured[mcpserver.SessionOpened](t, res)
		if res.IsError || opened.Status != "open" || opened.Image != testutil.SandboxImage {
			t.Fatalf("create_session: %+v, %q", opened, text(res))
		}
		sid := opened.SessionID
		// execq session show sees what the MCP server opened, without an
		// owner, as the CLI's own.
		if info, err := l.client.Session(sid).Info(l.ctx); err != nil || info.Status != tasks.SessionOpen || info.Owner != "" {
			t.Errorf("the session from outside: %+v, %v", info, err)
		}
		r := result(t, s.call(t, l.ctx, "execute", map[string]any{"command": `echo "$WHO step 1" > note.txt; sleep 300 & echo $! > bg.pid`, "session": sid}, false))
		if r.Status != tasks.StatusSucceeded || r.Session != sid {
			t.Fatalf("step 1: %+v", r)
		}
		r = result(t, s.call(t, l.ctx, "execute", map[string]any{"command": "cat note.txt; kill -0 $(cat bg.pid) && echo still-running", "session": sid}, false))
		if r.Status != tasks.StatusSucceeded || r.Stdout != "session step 1\nstill-running\n" {
			t.Errorf("step 2: %+v", r)
		}
		res = s.call(t, l.ctx, "execute", map[string]any{"command": "true", "session": sid, "image": testutil.SandboxImage}, false)
		if !res.IsError || !strings.Contains(text(res), "image and memory are the session's") {
			t.Errorf("an image with session: %q", text(res))
		}
		res = s.call(t, l.ctx, "close_session", map[string]any{"sessionId": sid}, false)
		if c := structured[mcpserver.SessionClosed](t, res); res.IsError || !c.Closed {
			t.Errorf("close_session: %+v, %q", c, text(res))
		}
		res = s.call(t, l.ctx, "execute", map[string]any{"command": "cat note.txt", "session": sid}, false)
		if !res.IsError || !strings.Contains(text(res), "has ended") {
			t.Errorf("execute after close_session: %q; want a tool error", text(res))
		}
		testutil.Eventually(t, time.Minute, 50*time.Millisecond, "the worker closes the session", func() bool {
			info, err := l.client.Session(sid).Info(l.ctx)
			return err == nil && info.Status == tasks.SessionClosed
		})
	})

	t.Run("a canceled call cancels its execution", func(t *testing.T) {
		before := len(submittedID.FindAllStringSubmatch(log.String(), -1))
		ctx, cancel := context.WithCancel(l.ctx)
		defer cancel()
		called := make(chan error, 1)
		go func() {
			_, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute", Arguments: map[string]any{"command": "echo canceled-call; sleep 30"}})
			called <- err
		}()
		// execq mcp -v logs each submission on its stderr.
		var id string
		testutil.Eventually(t, time.Minute, 10*time.Millisecond, "execq mcp logs the submission", func() bool {
			all := submittedID.FindAllStringSubmatch(log.String(), -1)
			if len(all) > before {
				id = all[before][1]
			}
			return id != ""
		})
		waitStarted(t, l.ctx, l.client, id)
		cancel()
		if err := <-called; err == nil {
			t.Error("the canceled call returned no error")
		}
		r, err := l.client.Wait(l.ctx, id)
		if err != nil || r.Status != tasks.StatusCanceled {
			t.Errorf("the execution of a canceled call: %+v, %v; want canceled", r, err)
		}
	})
}

// When the client of `execq mcp` goes away while an execute runs (its
// stdin closes), or the process gets a SIGTERM, the execution is canceled
// before the process exits.
func TestStdioEndCancels(t *testing.T) {
	l := setupLive(t)
	for _, c := range []struct {
		name string
		end  func(cmd *exec.Cmd, stdin io.Closer)
	}{
		{"stdin closed", func(_ *exec.Cmd, stdin io.Closer) { stdin.Close() }},
		{"SIGTERM", func(cmd *exec.Cmd, _ io.Closer) { _ = cmd.Process.Signal(syscall.SIGTERM) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := &testutil.Buffer{}
			proc := l.startMCP(t, log)
			cmd, stdin, stdout, exited := proc.cmd, proc.stdin, proc.stdout, proc.exited
			s := connect(t, l.ctx, &mcp.IOTransport{Reader: io.NopCloser(stdout), Writer: nopCloser{stdin}}, false)
			go func() {
				_, _ = s.cs.CallTool(l.ctx, &mcp.CallToolParams{Name: "execute", Arguments: map[string]any{"command": "sleep 30"}})
			}()
			var id string
			testutil.Eventually(t, time.Minute, 10*time.Millisecond, "execq mcp logs the submission", func() bool {
				if m := submittedID.FindStringSubmatch(log.String()); m != nil {
					id = m[1]
				}
				return id != ""
			})
			waitStarted(t, l.ctx, l.client, id)
			c.end(cmd, stdin)
			select {
			case err := <-exited:
				exited <- err
			case <-time.After(30 * time.Second):
				t.Fatalf("execq mcp did not exit within 30 s; its stderr:\n%s", log.String())
			}
			if canceled, err := rdb.New(l.redis.Client, tasks.Keys{}, 0).Canceled(l.ctx, id); err != nil || !canceled {
				t.Errorf("when execq mcp exited, the execution was not marked canceled (%v); its stderr:\n%s", err, log.String())
			}
			r, err := l.client.Wait(l.ctx, id)
			if err != nil || r.Status != tasks.StatusCanceled {
				t.Errorf("the execution: %+v, %v; want canceled", r, err)
			}
		})
	}
}

// nopCloser leaves the closing of a pipe to the test.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

var submittedID = regexp.MustCompile(`mcp: submitted" id=(\S+)`)
