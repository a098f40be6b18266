package testutil

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/client"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/agentrt"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/sandbox/dockerexec"
)

var (
	agentOnce sync.Once
	agentPath string
	agentErr  error
)

// AgentBinary builds cmd/execq-agent, static, once per test binary, and
// returns its path.
func AgentBinary(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "execq-agent-")
		if err != nil {
			agentErr = err
			return
		}
		agentPath = filepath.Join(dir, "execq-agent")
		cmd := exec.Command(GoTool(), "build", "-trimpath", "-ldflags=-s -w", "-o", agentPath, "./cmd/execq-agent")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = fmt.Errorf("go build ./cmd/execq-agent: %v: %s", err, strings.TrimSpace(string(out)))
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentPath
}

// GoTool is the go command: the one on PATH, else GOROOT's.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// GVisor reports whether the tests run their sandboxes under gVisor
// (EXECQ_TEST_OCI_RUNTIME=runsc).
func GVisor() bool { return os.Getenv("EXECQ_TEST_OCI_RUNTIME") == "runsc" }

// RuntimeNames are the runtimes every integration test runs against: both,
// but only the agent runtime under gVisor (EXECQ_TEST_OCI_RUNTIME=runsc),
// where the docker-exec runtime is refused (dockerexec.ErrUnderGVisor).
func RuntimeNames() []string {
	if GVisor() {
		return []string{agentrt.Name}
	}
	return []string{agentrt.Name, dockerexec.Name}
}

// RuntimeOptions configure NewRuntime.
type RuntimeOptions struct {
	// Engine overrides fields of the engine's configuration; Owner,
	// AgentBinary and Logger are filled in when empty.
	Engine docker.Config
	Logger *slog.Logger
	// AgentChannel is the agent runtime's agentrt.Config.Channel: the
	// default where empty.
	AgentChannel string
}

// NewRuntime returns the runtime named name on the Docker engine c, with
// owner on its containers.
func NewRuntime(t testing.TB, c *client.Client, name, owner string, opts RuntimeOptions) sandbox.Runtime {
	t.Helper()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Engine
	cfg.Owner = owner
	if cfg.AgentBinary == "" {
		cfg.AgentBinary = AgentBinary(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	if cfg.OCIRuntime == "" {
		cfg.OCIRuntime = os.Getenv("EXECQ_TEST_OCI_RUNTIME")
	}
	engine, err := docker.NewEngine(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	switch name {
	case agentrt.Name:
		rt, err := agentrt.New(engine, c, agentrt.Config{Logger: log, Channel: opts.AgentChannel})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	case dockerexec.Name:
		rt, err := dockerexec.New(engine, c, dockerexec.Config{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	t.Fatalf("no runtime %q", name)
	return nil
}
