//go:build integration

package agentrt_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/agent/proto"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/agentrt"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/sandbox/sandboxtest"
	"github.com/execq/execq/internal/testutil"
)

func TestContract(t *testing.T) {
	sandboxtest.Exercise(t, func(t *testing.T) sandbox.Runtime {
		return testutil.NewRuntime(t, testutil.Docker(t), agentrt.Name, "test-agent-"+strings.ReplaceAll(t.Name(), "/", "-"), testutil.RuntimeOptions{})
	}, sandboxtest.Options{Image: testutil.SandboxImage, KillsInPlace: os.Getenv("EXECQ_TEST_OCI_RUNTIME") != "runsc", GVisor: os.Getenv("EXECQ_TEST_OCI_RUNTIME") == "runsc"})
}

// Under runc the agent starts commands traced at their exec, with no
// launcher; under gVisor, which refuses that, through its launcher. A
// probe that took the wrong one would cost every execution a Go
// runtime's start, or fail every one.
func TestSpawnModeFitsTheKernel(t *testing.T) {
	t.Parallel()
	rt := testutil.NewRuntime(t, testutil.Docker(t), agentrt.Name, "test-agent-spawn", testutil.RuntimeOptions{})
	ctx := testutil.Context(t, time.Minute)
	sb, err := rt.Create(ctx, testutil.SandboxImage, sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rt.Remove(context.Background(), sb.ID()) }()
	want := proto.SpawnTraced
	if os.Getenv("EXECQ_TEST_OCI_RUNTIME") == "runsc" {
		want = proto.SpawnLauncher
	}
	if got := sb.(*agentrt.Sandbox).Spawn(); got != want {
		t.Errorf("the agent spawns %q, want %q", got, want)
	}
}

// fakeAgent builds testdata/fakeagent with one behavior.
func fakeAgent(t *testing.T, behavior string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "execq-agent")
	cmd := exec.Command("go", "build", "-ldflags", "-X main.behavior="+behavior, "-o", out, "./internal/sandbox/agentrt/testdata/fakeagent")
	cmd.Dir = testutil.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the fake agent: %v: %s", err, b)
	}
	return out
}

// A misbehaving agent never hangs the worker: it is refused or taken for
// dead within the runtime's bound.
func TestMisbehavingAgents(t *testing.T) {
	t.Parallel()
	cases := []struct {
		behavior string
		atCreate bool   // Create itself fails
		want     error  // what the error wraps
		says     string // and says
	}{
		{"version", true, nil, "protocol version"},
		{"silent", true, sandbox.ErrUnresponsive, "no answer"},
		{"liar", false, sandbox.ErrUnresponsive, "exit where started was due"},
		{"dies", false, sandbox.ErrStopped, ""},
		{"hangs", false, sandbox.ErrUnresponsive, "ping"},
	}
	for _, c := range cases {
		t.Run(c.behavior, func(t *testing.T) {
			t.Parallel()
			cli := testutil.Docker(t)
			owner := "test-fake-agent-" + c.behavior
			engine, err := docker.NewEngine(cli, docker.Config{Owner: owner, AgentBinary: fakeAgent(t, c.behavior)})
			if err != nil {
				t.Fatal(err)
			}
			const bound = time.Second
			rt := agentrt.New(engine, cli, agentrt.Config{Timeout: bound})
			t.Cleanup(func() {
				infos, _ := rt.List(context.Background())
				for _, info := range infos {
					if info.Owner == owner {
						_ = rt.Remove(context.Background(), info.ID)
					}
				}
			})
			ctx := testutil.Context(t, time.Minute)
			start := time.Now()
			sb, err := rt.Create(ctx, testutil.SandboxImage, sandbox.Limits{})
			if c.atCreate {
				if err == nil || c.want != nil && !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
					t.Fatalf("create: %v; want an error wrapping %v saying %q", err, c.want, c.says)
				}
			} else {
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				start = time.Now()
				out, err := sb.Run(ctx, sandbox.Command{Cmd: []string{"true"}, Dir: "/workspace"})
				if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) || out.Reusable {
					t.Fatalf("run: %v, reusable %v; want an error wrapping %v saying %q", err, out.Reusable, c.want, c.says)
				}
			}
			if elapsed := time.Since(start); elapsed > 5*bound+5*time.Second {
				t.Errorf("the worker waited %s for a misbehaving agent; its bound is %s", elapsed, bound)
			}
		})
	}
}
