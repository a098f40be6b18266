package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/agentrt"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/sandbox/dockerexec"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker/internal/hook"
)

// The runtimes a worker can use (SandboxConfig.Runtime).
const (
	// RuntimeAgent runs execq's agent as PID 1 of every sandbox and drives
	// it over its protocol: the default.
	RuntimeAgent = agentrt.Name
	// RuntimeDockerExec runs every command and every isolation step
	// through `docker exec`.
	RuntimeDockerExec = dockerexec.Name
)

// SandboxConfig configures the sandboxes, on the Docker engine the
// environment names (DOCKER_HOST, …). Every field has a default.
type SandboxConfig struct {
	// Runtime is RuntimeAgent or RuntimeDockerExec. Defaults to
	// RuntimeAgent.
	Runtime string
	// AgentBinary is the path of the static execq-agent binary the worker
	// mounts into every sandbox. Defaults to the execq-agent beside this
	// process's executable, then to the one on PATH.
	AgentBinary string
	// OCIRuntime is the engine's runtime for the sandboxes, e.g. "runsc"
	// for gVisor. Defaults to the engine's default.
	OCIRuntime string
	// WorkspaceBytes and TmpBytes size /workspace and /tmp. Default to 256
	// MiB and 64 MiB.
	WorkspaceBytes, TmpBytes int64
	// CgroupRoot is where the host's cgroups are mounted, for accounting.
	// Defaults to /sys/fs/cgroup.
	CgroupRoot string
	// UIDBase and UIDCount are the range of uids sandboxes run commands
	// as, one per container of the engine. Default to 1000 and 1000.
	UIDBase, UIDCount int
}

func init() {
	hook.SetRuntime = func(cfg any, rt sandbox.Runtime) { cfg.(*Config).runtime = rt }
}

// newRuntime builds the Docker runtime cfg.Sandbox describes.
func newRuntime(cfg Config, log *slog.Logger) (sandbox.Runtime, func() error, error) {
	sc := cfg.Sandbox
	agent, err := findAgent(sc.AgentBinary)
	if err != nil {
		return nil, nil, err
	}
	cli, err := docker.NewClient()
	if err != nil {
		return nil, nil, err
	}
	resolved := (&tasks.ExecRequest{}).Resolved(cfg.Limits)
	defaults := limitsOf(&resolved)
	engine, err := docker.NewEngine(cli, docker.Config{
		Owner:          cfg.Name,
		UIDBase:        sc.UIDBase,
		UIDCount:       sc.UIDCount,
		Limits:         defaults,
		WorkspaceBytes: sc.WorkspaceBytes,
		TmpBytes:       sc.TmpBytes,
		OCIRuntime:     sc.OCIRuntime,
		CgroupRoot:     sc.CgroupRoot,
		AgentBinary:    agent,
		Logger:         log,
	})
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	switch sc.Runtime {
	case "", RuntimeAgent:
		return agentrt.New(engine, cli, agentrt.Config{Logger: log}), cli.Close, nil
	case RuntimeDockerExec:
		return dockerexec.New(engine, cli, dockerexec.Config{Logger: log}), cli.Close, nil
	}
	cli.Close()
	return nil, nil, fmt.Errorf("sandbox runtime %q is neither %q nor %q", sc.Runtime, RuntimeAgent, RuntimeDockerExec)
}

// findAgent returns the execq-agent binary to mount into sandboxes: the
// one named, else the one beside this executable, else the one on PATH.
func findAgent(named string) (string, error) {
	if named != "" {
		return named, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "execq-agent")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("execq-agent"); err == nil {
		return p, nil
	}
	return "", errors.New("no execq-agent binary beside this executable or on PATH; build it (make build) or name it (worker --agent)")
}
