package mcpserver

import (
	"strings"
	"testing"

	"github.com/execq/execq/tasks"
)

func TestSummary(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		res  tasks.Result
		want []string
	}{
		{"failed", tasks.Result{ExecutionID: "x", Status: tasks.StatusFailed, ExitCode: 3, Stdout: "hi\n", StdoutBytes: 3, DurationMs: 12},
			[]string{"status: failed\nexit code: 3\nduration: 12 ms\nexecution: x\n--- stdout ---\nhi\n--- stderr (empty) ---\n"}},
		{"timed out", tasks.Result{Status: tasks.StatusTimedOut, ExitCode: -1, Error: "killed after the 1s timeout"},
			[]string{"exit code: -1 (the command did not exit by itself)\nerror: killed after the 1s timeout\n"}},
		{"signal", tasks.Result{Status: tasks.StatusFailed, ExitCode: 137}, []string{"exit code: 137 (killed by signal 9)"}},
		{"not found", tasks.Result{Status: tasks.StatusFailed, ExitCode: 127, Stderr: "sh: nope: not found", StderrBytes: 19},
			[]string{"exit code: 127 (no such program)", "--- stderr ---\nsh: nope: not found\n"}},
		{"oom", tasks.Result{Status: tasks.StatusOOMKilled, ExitCode: 137}, []string{"exit code: 137 (killed by the memory limit)"}},
		{"truncated", tasks.Result{Status: tasks.StatusSucceeded, Stdout: strings.Repeat("x", 1024), StdoutTruncated: true, StdoutBytes: 1 << 20},
			[]string{"--- stdout (truncated: the first 1KiB of 1MiB) ---\nxxx"}},
		{"binary", tasks.Result{Status: tasks.StatusSucceeded, Stdout: "a\xffb", StdoutBytes: 3},
			[]string{"--- stdout (not valid UTF-8; the structured result holds its exact bytes as base64) ---\na\uFFFDb\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := summary(&c.res)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("summary\n%s\nlacks\n%s", got, w)
				}
			}
		})
	}
}
