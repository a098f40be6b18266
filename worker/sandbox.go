package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/execq/execq/internal/clock"
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
	// AgentChannel is how the agent runtime's worker reaches its agents:
	// "socket" (an abstract unix socket in each sandbox's network
	// namespace, which needs the host's PIDs and CAP_SYS_ADMIN), "attach"
	// (the container's standard input and output, through the engine), or
	// "" (the default): the socket where it can be reached, else attach.
	AgentChannel string
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
	// as, one per container of the engine. Default to 1,000,000,000 and
	// 1000. New refuses a range that holds a uid of an account in this
	// host's /etc/passwd.
	UIDBase, UIDCount int
}

func init() {
	hook.SetRuntime = func(cfg any, rt sandbox.Runtime) { cfg.(*Config).runtime = rt }
	hook.SetClock = func(cfg any, c clock.Clock) { cfg.(*Config).clock = c }
}

// newRuntime builds the Docker runtime cfg.Sandbox describes.
func newRuntime(cfg Config, log *slog.Logger) (sandbox.Runtime, func() error, error) {
	sc := cfg.Sandbox
	switch sc.Runtime {
	case "", RuntimeAgent, RuntimeDockerExec:
	default:
		return nil, nil, fmt.Errorf("sandbox runtime %q is neither %q nor %q", sc.Runtime, RuntimeAgent, RuntimeDockerExec)
	}
	if err := checkUIDRange("/etc/passwd", sc.UIDBase, sc.UIDCount); err != nil {
		return nil, nil, err
	}
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
	if sc.Runtime == RuntimeDockerExec {
		rt, err := dockerexec.New(engine, cli, dockerexec.Config{Logger: log})
		if err != nil {
			cli.Close()
			return nil, nil, err
		}
		return rt, cli.Close, nil
	}
	rt, err := agentrt.New(engine, cli, agentrt.Config{Logger: log, Channel: sc.AgentChannel})
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	return rt, cli.Close, nil
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

// checkUIDRange refuses a sandbox uid range that holds the uid of an
// account of passwd (this host's, where the worker runs on it): that
// account's processes would share the sandboxes' per-user limits, and
// could read and trace their processes. A missing passwd is no account.
func checkUIDRange(passwd string, base, count int) error {
	if base <= 0 {
		base = docker.DefaultUIDBase
	}
	if count <= 0 {
		count = docker.DefaultUIDCount
	}
	b, err := os.ReadFile(passwd)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check the sandbox uid range against %s: %w", passwd, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Split(line, ":")
		if len(fields) < 3 {
			continue
		}
		uid, err := strconv.Atoi(fields[2])
		if err == nil && uid >= base && uid < base+count {
			return fmt.Errorf("the sandbox uid range %d-%d holds uid %d, the account %q of %s: its processes would share the sandboxes' per-user limits and could read them; choose another range (--uid-base, --uid-count)",
				base, base+count-1, uid, fields[0], passwd)
		}
	}
	return nil
}
