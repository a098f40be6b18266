package mcpserver

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
)

func TestExecuteArgsRequest(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args ExecuteArgs
		want tasks.ExecRequest
		err  string
	}{
		{name: "command", args: ExecuteArgs{Command: "echo hi; exit 3"},
			want: tasks.ExecRequest{Queue: "q", Image: "img", Cmd: []string{"sh", "-c", "echo hi; exit 3"}}},
		{name: "argv and the rest", args: ExecuteArgs{
			Argv: []string{"python3", "main.py"}, Image: "execq-python", Stdin: "in", TimeoutSeconds: 1.5, Memory: "64m",
			Env: map[string]string{"A": "1"}, Files: map[string]string{"main.py": "print(1)", "data/b.txt": "b"},
		}, want: tasks.ExecRequest{
			Queue: "q", Image: "execq-python", Cmd: []string{"python3", "main.py"}, Stdin: []byte("in"),
			Timeout: 1500 * time.Millisecond, MemoryBytes: 64 << 20, Env: map[string]string{"A": "1"},
			Files: []tasks.File{{Path: "data/b.txt", Content: []byte("b"), Mode: 0o644}, {Path: "main.py", Content: []byte("print(1)"), Mode: 0o644}},
		}},
		{name: "a timeout under a millisecond stays positive", args: ExecuteArgs{Command: "true", TimeoutSeconds: 1e-10},
			want: tasks.ExecRequest{Queue: "q", Image: "img", Cmd: []string{"sh", "-c", "true"}, Timeout: 1}},
		{name: "memory like docker", args: ExecuteArgs{Command: "true", Memory: "1g"},
			want: tasks.ExecRequest{Queue: "q", Image: "img", Cmd: []string{"sh", "-c", "true"}, MemoryBytes: 1 << 30}},
		{name: "language and code", args: ExecuteArgs{Language: "python", Code: "print(6*7)"},
			want: tasks.ExecRequest{Queue: "q", Language: "python", Code: "print(6*7)"}},
		{name: "language and a command", args: ExecuteArgs{Language: "python", Argv: []string{"python3", "-V"}},
			want: tasks.ExecRequest{Queue: "q", Language: "python", Cmd: []string{"python3", "-V"}}},
		{name: "code without language", args: ExecuteArgs{Code: "print(1)"}, err: "code needs language"},
		{name: "language, code and a command", args: ExecuteArgs{Language: "sh", Code: "echo", Command: "true"}, err: "not all three"},
		{name: "neither", args: ExecuteArgs{}, err: "give command"},
		{name: "both", args: ExecuteArgs{Command: "true", Argv: []string{"true"}}, err: "not both"},
		{name: "negative timeout", args: ExecuteArgs{Command: "true", TimeoutSeconds: -1}, err: "timeoutSeconds -1"},
		{name: "huge timeout", args: ExecuteArgs{Command: "true", TimeoutSeconds: 1e300}, err: "timeoutSeconds"},
		{name: "bad memory", args: ExecuteArgs{Command: "true", Memory: "-5m"}, err: `memory "-5m"`},
		{name: "in a session, no default image", args: ExecuteArgs{Command: "ls", Session: "s1"},
			want: tasks.ExecRequest{Queue: "q", Session: "s1", Cmd: []string{"sh", "-c", "ls"}}},
		{name: "in a session, an image", args: ExecuteArgs{Command: "ls", Session: "s1", Image: "x"}, err: "image and memory are the session's"},
		{name: "in a session, memory", args: ExecuteArgs{Command: "ls", Session: "s1", Memory: "1g"}, err: "image and memory are the session's"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.args.request("q", "img")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("request\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

func TestCreateSessionArgsRequest(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args CreateSessionArgs
		want tasks.SessionRequest
		err  string
	}{
		{name: "defaults", args: CreateSessionArgs{}, want: tasks.SessionRequest{Queue: "q", Image: "img"}},
		{name: "all of it", args: CreateSessionArgs{
			Image: "execq-python", Env: map[string]string{"A": "1"}, Files: map[string]string{"b.txt": "b", "a.txt": "a"},
			IdleTimeoutSeconds: 90, LifetimeSeconds: 0.0001, Memory: "64m", CPUs: 0.5, Pids: 32,
		}, want: tasks.SessionRequest{
			Queue: "q", Image: "execq-python", Env: map[string]string{"A": "1"},
			Files:       []tasks.File{{Path: "a.txt", Content: []byte("a"), Mode: 0o644}, {Path: "b.txt", Content: []byte("b"), Mode: 0o644}},
			IdleTimeout: 90 * time.Second, Lifetime: 100 * time.Microsecond, MemoryBytes: 64 << 20, CPUs: 0.5, Pids: 32,
		}},
		{name: "a language, no default image", args: CreateSessionArgs{Language: "python"}, want: tasks.SessionRequest{Queue: "q", Language: "python"}},
		{name: "negative idle", args: CreateSessionArgs{IdleTimeoutSeconds: -1}, err: "idleTimeoutSeconds -1"},
		{name: "huge lifetime", args: CreateSessionArgs{LifetimeSeconds: 1e300}, err: "lifetimeSeconds"},
		{name: "bad memory", args: CreateSessionArgs{Memory: "lots"}, err: `memory "lots"`},
		{name: "negative cpus", args: CreateSessionArgs{CPUs: -1}, err: "cpus -1"},
		{name: "negative pids", args: CreateSessionArgs{Pids: -1}, err: "pids -1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.args.request("q", "img")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("request\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}
