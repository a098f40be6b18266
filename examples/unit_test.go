// Package examples holds execq's clients in other languages (python/, js/)
// and the tests that run them: their own unit tests, and (build tag
// integration) against a live `execq serve` and worker.
package examples

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/execq/execq/internal/testutil"
)

// The clients' own unit tests: SSE parsing, glob matching and safe writes.
func TestClientUnitTests(t *testing.T) {
	dir := filepath.Join(testutil.RepoRoot(), "examples")
	for _, tc := range []struct {
		name string
		argv func() []string
		dir  string
	}{
		{"python", func() []string { return []string{python(t), "-m", "unittest", "-v", "test_execq"} }, "python"},
		{"js", func() []string { return []string{node(t), "--test", "execq.test.mjs"} }, "js"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv := tc.argv()
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Dir = filepath.Join(dir, tc.dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
			}
		})
	}
}

// python is Debian's interpreter: the client needs its standard library only.
func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	testutil.Missing(t, "python3 is not installed")
	return ""
}

// node is Node.js 18 or later (built-in fetch).
func node(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		testutil.Missing(t, "node is not installed")
	}
	out, err := exec.Command(path, "-e", "process.stdout.write(String(typeof fetch === 'function'))").Output()
	if err != nil || string(out) != "true" {
		testutil.Missing(t, "node has no built-in fetch (Node 18 or later is needed): %v %s", err, out)
	}
	return path
}
