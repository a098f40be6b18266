//go:build integration

package agentrt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/agent"
	"github.com/execq/execq/internal/agent/proto"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/agentrt"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/sandbox/sandboxtest"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// The contract holds on the default channel (the agent's socket, attach
// under gVisor) and on attach.
func TestContract(t *testing.T) {
	exercise(t, agentrt.ChannelAuto)
}

func TestContractAttached(t *testing.T) {
	exercise(t, agentrt.ChannelAttach)
}

func exercise(t *testing.T, channel string) {
	sandboxtest.Exercise(t, func(t *testing.T) sandbox.Runtime {
		rt := testutil.NewRuntime(t, testutil.Docker(t), agentrt.Name, "test-agent-"+strings.ReplaceAll(t.Name(), "/", "-"), testutil.RuntimeOptions{AgentChannel: channel})
		if want := channelOf(channel); rt.(*agentrt.Runtime).Channel() != want {
			t.Fatalf("the runtime's channel is %s, want %s", rt.(*agentrt.Runtime).Channel(), want)
		}
		return rt
	}, sandboxtest.Options{Image: testutil.SandboxImage, KillsInPlace: !gvisor(), GVisor: gvisor()})
}

func gvisor() bool { return testutil.GVisor() }

// channelOf is the channel a runtime configured with channel uses here:
// the tests run as root on the host, where the socket can be reached but
// under gVisor.
func channelOf(channel string) string {
	if channel == agentrt.ChannelAttach || gvisor() {
		return agentrt.ChannelAttach
	}
	return agentrt.ChannelSocket
}

// Under runc the agent starts commands traced at their exec, with no
// launcher; under gVisor, which refuses that, through its launcher. A
// probe that took the wrong one would cost every execution a Go
// runtime's start, or fail every one.
func TestSpawnModeFitsTheKernel(t *testing.T) {
	t.Parallel()
	_, sb, _ := newSandbox(t, "test-agent-spawn")
	want := proto.SpawnTraced
	if gvisor() {
		want = proto.SpawnLauncher
	}
	if got := sb.(*agentrt.Sandbox).Spawn(); got != want {
		t.Errorf("the agent spawns %q, want %q", got, want)
	}
}

// The agent's threads sleep with its timer slack (so that the Go runtime's
// monitor wakes seldom), which the contract suite checks its commands do
// not inherit. They are read from the host; gVisor's kernel, in which the
// agent's threads live there, has no timer slack, which is checked
// instead.
func TestTheAgentsThreadsSleepWithSlack(t *testing.T) {
	t.Parallel()
	_, sb, ctx := newSandbox(t, "test-agent-slack")
	if gvisor() {
		var o strings.Builder
		out, err := sb.Run(ctx, sandbox.Command{Cmd: []string{"sh", "-c", "test -e /proc/self/timerslack_ns && echo has-slack; true"}, Dir: tasks.Workspace, Stdout: &o})
		if err != nil || out.ExitCode != 0 || o.String() != "" {
			t.Fatalf("under gVisor: %q, exit %d, %v; want a kernel without timer slack", o.String(), out.ExitCode, err)
		}
		return
	}
	info, err := testutil.Docker(t).ContainerInspect(ctx, sb.ID())
	if err != nil {
		t.Fatal(err)
	}
	threads, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", info.State.Pid))
	if err != nil || len(threads) < 2 {
		t.Fatalf("the agent's threads: %v %v", threads, err)
	}
	want := strconv.FormatInt(agent.ThreadSlack.Nanoseconds(), 10)
	for _, thread := range threads {
		tid := filepath.Base(thread)
		got, err := os.ReadFile("/proc/" + tid + "/timerslack_ns")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(got)) != want {
			t.Errorf("thread %s of the agent sleeps with a slack of %s ns, want %s", tid, strings.TrimSpace(string(got)), want)
		}
	}
}

// newSandbox creates a sandbox of the default runtime for owner, removed
// at the test's end, and returns a context for the test.
func newSandbox(t *testing.T, owner string) (*agentrt.Runtime, sandbox.Sandbox, context.Context) {
	t.Helper()
	rt := testutil.NewRuntime(t, testutil.Docker(t), agentrt.Name, owner, testutil.RuntimeOptions{})
	ctx := testutil.Context(t, time.Minute)
	sb, err := rt.Create(ctx, testutil.SandboxImage, sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Remove(context.Background(), sb.ID()) })
	return rt.(*agentrt.Runtime), sb, ctx
}

// fakeAgent builds testdata/fakeagent with one behavior.
func fakeAgent(t *testing.T, behavior string) string {
	t.Helper()
	return buildTestdata(t, "fakeagent", "execq-agent", "-ldflags", "-X main.behavior="+behavior)
}

// buildTestdata builds the static program testdata/program as name in a
// temporary directory, with flags, and returns its path.
func buildTestdata(t *testing.T, program, name string, flags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	args := append(append([]string{"build"}, flags...), "-o", out, "./internal/sandbox/agentrt/testdata/"+program)
	cmd := exec.Command("go", args...)
	cmd.Dir = testutil.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v: %s", program, err, b)
	}
	return out
}

// A misbehaving agent never hangs the worker: it is refused or taken for
// dead within the runtime's bound, on either channel.
func TestMisbehavingAgents(t *testing.T) {
	t.Parallel()
	cases := []misbehavior{
		{"version", true, nil, "protocol version"},
		{"silent", true, sandbox.ErrUnresponsive, "no answer"},
		{"deaf", true, nil, "did not listen"},
		{"liar", false, sandbox.ErrUnresponsive, "exit where started was due"},
		{"dies", false, sandbox.ErrStopped, ""},
		{"hangs", false, sandbox.ErrUnresponsive, "ping"},
	}
	// The fake agents run on the engine's default runtime (runc), where
	// both channels can be had.
	for _, channel := range []string{agentrt.ChannelSocket, agentrt.ChannelAttach} {
		for _, c := range cases {
			if c.behavior == "deaf" && channel == agentrt.ChannelAttach {
				// On attach, a deaf agent is a silent one.
				c.want, c.says = sandbox.ErrUnresponsive, "no answer"
			}
			t.Run(channel+"/"+c.behavior, func(t *testing.T) {
				t.Parallel()
				misbehave(t, channel, c)
			})
		}
	}
}

// misbehavior is a fake agent's behavior and what the runtime must make
// of it.
type misbehavior struct {
	behavior string
	atCreate bool   // Create itself fails
	want     error  // what the error wraps
	says     string // and says
}

func misbehave(t *testing.T, channel string, c misbehavior) {
	cli := testutil.Docker(t)
	owner := "test-fake-agent-" + channel + "-" + c.behavior
	engine, err := docker.NewEngine(cli, docker.Config{Owner: owner, AgentBinary: fakeAgent(t, c.behavior)})
	if err != nil {
		t.Fatal(err)
	}
	const bound = time.Second
	rt, err := agentrt.New(engine, cli, agentrt.Config{Timeout: bound, Channel: channel})
	if err != nil {
		t.Fatal(err)
	}
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
}

// The agent's socket is the worker's alone: a tenant that finds its name
// in PID 1's command line and connects is refused, before and after a
// reset, and the channel serves on. Under gVisor there is no socket: the
// channel is attached.
func TestTheAgentsSocketIsTheWorkers(t *testing.T) {
	t.Parallel()
	bin, err := os.ReadFile(buildTestdata(t, "sockprobe", "sockprobe"))
	if err != nil {
		t.Fatal(err)
	}
	rt, sb, ctx := newSandbox(t, "test-agent-socket")
	want := "refused\n"
	if got := rt.Channel(); got != channelOf(agentrt.ChannelAuto) {
		t.Fatalf("the channel is %s, want %s", got, channelOf(agentrt.ChannelAuto))
	} else if got == agentrt.ChannelAttach {
		want = "no socket\n"
	}
	for round := range 2 {
		if err := sb.PutFiles(ctx, []tasks.File{{Path: "sockprobe", Content: bin, Mode: 0o755}}); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		res, err := sb.Run(ctx, sandbox.Command{Cmd: []string{"./sockprobe"}, Dir: "/workspace", Stdout: &out, Stderr: &out})
		if err != nil || res.ExitCode != 0 || out.String() != want {
			t.Fatalf("round %d: the probe: exit %d, %v, %q; want %q", round, res.ExitCode, err, out.String(), want)
		}
		if _, err := sb.Reset(ctx); err != nil {
			t.Fatalf("round %d: reset after the probe: %v", round, err)
		}
	}
}
