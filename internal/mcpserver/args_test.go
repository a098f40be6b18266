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
		{name: "neither", args: ExecuteArgs{}, err: "give command"},
		{name: "both", args: ExecuteArgs{Command: "true", Argv: []string{"true"}}, err: "not both"},
		{name: "negative timeout", args: ExecuteArgs{Command: "true", TimeoutSeconds: -1}, err: "timeoutSeconds -1"},
		{name: "huge timeout", args: ExecuteArgs{Command: "true", TimeoutSeconds: 1e300}, err: "timeoutSeconds"},
		{name: "bad memory", args: ExecuteArgs{Command: "true", Memory: "-5m"}, err: `memory "-5m"`},
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
