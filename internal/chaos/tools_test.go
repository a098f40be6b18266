//go:build chaos

package chaos_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// testImage is the sandbox image the suite runs.
const testImage = testutil.SandboxImage

// collectFilesCap is the most entries a collection returns.
const collectFilesCap = 1000

var (
	attackOnce sync.Once
	attackBin  []byte
	attackErr  error
)

// attackFile is the suite's tenant-side tool (testdata/attack), built
// static once per run, as a file to put into /workspace.
func attackFile(t *testing.T) tasks.File {
	t.Helper()
	attackOnce.Do(func() {
		out := filepath.Join(os.TempDir(), "execq-chaos-attack-"+runID)
		cmd := exec.Command(testutil.GoTool(), "build", "-o", out, "./internal/chaos/testdata/attack")
		cmd.Dir = testutil.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			attackErr = errors.New("build the attack tool: " + err.Error() + ": " + string(b))
			return
		}
		attackBin, attackErr = os.ReadFile(out)
		_ = os.Remove(out)
	})
	if attackErr != nil {
		t.Fatal(attackErr)
	}
	return tasks.File{Path: "attack", Content: attackBin, Mode: 0o755}
}

// execqCommand is the execq binary of this run, pointed at e's Redis.
func execqCommand(t *testing.T, e *env, args ...string) *exec.Cmd {
	t.Helper()
	needBinary(t)
	cmd := exec.Command(execqBin, args...)
	cmd.Env = append(os.Environ(), "EXECQ_REDIS_URL="+e.url)
	return cmd
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dockerRun runs the docker CLI with args (and stdin when not empty) and
// fails the test when it fails.
func dockerRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := dockerOutput(stdin, args...)
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

func dockerOutput(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// volumeCount is the number of volumes on the engine.
func volumeCount(t *testing.T) int {
	t.Helper()
	out := dockerRun(t, "", "volume", "ls", "-q")
	return len(strings.Fields(out))
}

func isRedisNil(err error) bool { return errors.Is(err, redis.Nil) }

// sandboxUID reports whether s is a uid of the range sandboxes run as.
func sandboxUID(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= docker.DefaultUIDBase && n < docker.DefaultUIDBase+docker.DefaultUIDCount
}

// gvisor reports whether the run's sandboxes run under gVisor, whose
// kernel differs where the cases say so.
func gvisor() bool { return ociRuntime == "runsc" }
