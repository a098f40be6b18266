package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	execqOnce sync.Once
	execqPath string
	execqErr  error
)

// ExecqBinary builds cmd/execq once per test binary and returns its path,
// for tests that run its commands as processes.
func ExecqBinary(t testing.TB) string {
	t.Helper()
	execqOnce.Do(func() {
		dir, err := os.MkdirTemp("", "execq-bin-")
		if err != nil {
			execqErr = err
			return
		}
		execqPath = filepath.Join(dir, "execq")
		cmd := exec.Command(GoTool(), "build", "-o", execqPath, "./cmd/execq")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			execqErr = fmt.Errorf("go build ./cmd/execq: %v: %s", err, strings.TrimSpace(string(out)))
		}
	})
	if execqErr != nil {
		t.Fatal(execqErr)
	}
	return execqPath
}
