package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/execq/execq/internal/sandbox"
)

// Container is one sandbox container. It serves one execution at a time.
type Container struct {
	rt        *Runtime
	id        string
	image     string
	limits    sandbox.Limits
	cgroup    *cgroup // nil when the host's cgroups cannot be read
	initPid   int     // host PID of the container's init
	workspace workspaceState
}

// workspaceState says what the writable directories may hold.
type workspaceState int

const (
	// workspaceClean: empty, as created or after a full reset.
	workspaceClean workspaceState = iota
	// workspaceDirty: the last execution may have left files; the next
	// one's first exec wipes them before anything else.
	workspaceDirty
	// workspacePrepared: holds this execution's files, just put in.
	workspacePrepared
)

var _ sandbox.Sandbox = (*Container)(nil)

// ID is the container ID.
func (c *Container) ID() string { return c.id }

// Image is the container's image.
func (c *Container) Image() string { return c.image }

// SetLimits updates the container's memory, CPU and process limits when
// they differ from the current ones.
func (c *Container) SetLimits(ctx context.Context, l sandbox.Limits) error {
	if l == c.limits {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.rt.cfg.APITimeout)
	defer cancel()
	pids := l.Pids
	_, err := c.rt.client.ContainerUpdate(ctx, c.id, container.UpdateConfig{Resources: container.Resources{
		Memory:     l.MemoryBytes,
		MemorySwap: l.MemoryBytes,
		NanoCPUs:   l.NanoCPUs,
		PidsLimit:  &pids,
	}})
	if err != nil {
		return fmt.Errorf("update limits of %s: %w", short(c.id), err)
	}
	c.limits = l
	return nil
}

// Run runs cmd as the unprivileged user. See sandbox.Sandbox.
//
// The command starts through runScript, which first wipes what the last
// execution left when that was not done yet, and then replaces itself with
// the command.
func (c *Container) Run(ctx context.Context, cmd sandbox.Command) (sandbox.Outcome, error) {
	token := newToken()
	dirty := dirtyMarker + token + ":"
	stdout := &headFilter{w: orDiscard(cmd.Stdout), prefixes: []string{startFailurePrefix, dirty}}
	stderr := orDiscard(cmd.Stderr)
	wipeFirst := "0"
	if c.workspace == workspaceDirty {
		wipeFirst = "1"
	}
	c.workspace = workspaceDirty
	argv := append([]string{"/bin/sh", "-c", runScript, "execq", token, wipeFirst}, cmd.Cmd...)
	acct := c.cgroup.begin()
	start := time.Now()
	code, err := c.exec(ctx, execSpec{
		cmd:    argv,
		env:    cmd.Env,
		dir:    cmd.Dir,
		stdin:  cmd.Stdin,
		stdout: stdout,
		stderr: stderr,
	})
	out := sandbox.Outcome{ExitCode: code, Duration: time.Since(start)}
	if err != nil {
		stdout.flush()
		if ctx.Err() != nil {
			out.Resources, _ = acct.end()
			if kerr := c.kill(ctx); kerr != nil {
				return out, fmt.Errorf("run %q: %w (and the kill failed: %v)", cmd.Cmd[0], err, kerr)
			}
		}
		return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], err)
	}
	if code == 125 {
		if msg := stdout.finish(dirty); msg != "" {
			return out, fmt.Errorf("run %q in %s: %w: %s", cmd.Cmd[0], short(c.id), sandbox.ErrDirty, strings.TrimPrefix(msg, dirty))
		}
	}
	if code == 126 {
		if msg := stdout.finish(startFailurePrefix); msg != "" {
			reason, shellCode := startFailure(msg)
			out.ExitCode = shellCode
			fmt.Fprintf(stderr, "execq: cannot run %s\n", reason)
		}
	}
	stdout.flush()
	var ooms uint64
	out.Resources, ooms = acct.end()
	if (code == 137 || code < 0) && !out.OOMKilled && c.stopped(ctx) {
		// Killed with the whole container, from outside: no outcome of
		// the command.
		return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], sandbox.ErrStopped)
	}
	switch {
	case ooms > 0:
		out.OOMKilled = true
	case out.Resources == nil && code == 137:
		// Without the cgroup, the container's OOMKilled flag tells. It is
		// sticky, but a container whose command was OOM-killed is replaced.
		out.OOMKilled = c.oomKilled(ctx)
	}
	return out, nil
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// kill ends every process in the container at once by killing its init.
// The container is then stopped and must be replaced.
func (c *Container) kill(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.rt.cfg.APITimeout)
	defer cancel()
	err := c.rt.client.ContainerKill(ctx, c.id, "KILL")
	if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
		return fmt.Errorf("kill container %s: %w", short(c.id), err)
	}
	return nil
}

// stopped reports whether the container is stopping or gone. Killing a
// container kills its init first, and the kernel then kills every other
// process in it: when a command was SIGKILLed with its container, the
// init is already dead. Without the host's /proc, the engine is asked for
// a while, since it marks a killed container stopped only a moment after
// its processes die.
func (c *Container) stopped(ctx context.Context) bool {
	if c.cgroup != nil && c.cgroup.hostProc && c.initPid > 0 {
		return !processAlive(c.initPid, c.id)
	}
	for range 20 {
		if running, err := c.running(ctx); err == nil && !running {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(25 * time.Millisecond):
		}
	}
	return false
}

// processAlive reports whether host PID pid is a live (not zombie) process
// of the container id.
func processAlive(pid int, id string) bool {
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil || !strings.Contains(string(cg), id) {
		return false
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(status)) {
		if state, ok := strings.CutPrefix(line, "State:"); ok {
			state = strings.TrimSpace(state)
			return !strings.HasPrefix(state, "Z") && !strings.HasPrefix(state, "X")
		}
	}
	return false
}

func (c *Container) running(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.rt.cfg.APITimeout)
	defer cancel()
	info, err := c.rt.client.ContainerInspect(ctx, c.id)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect container %s: %w", short(c.id), err)
	}
	return info.State != nil && info.State.Running, nil
}

func (c *Container) oomKilled(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, c.rt.cfg.APITimeout)
	defer cancel()
	info, err := c.rt.client.ContainerInspect(ctx, c.id)
	return err == nil && info.State != nil && info.State.OOMKilled
}

// deferWipeBytes is the most the tmpfs mounts may hold for their wipe to
// wait for the next execution.
const deferWipeBytes = 8 << 20

// resetTimeout bounds a reset. The engine holds a container's next exec
// for up to 2s while a previous one's output is still held open by a
// leftover process, so a reset may wait that long before it starts.
const resetTimeout = 15 * time.Second

// Reset kills what the last execution left running and empties the
// writable directories. See sandbox.Sandbox.
//
// When the host's cgroup and /proc show that no process of the user is
// left, and the tmpfs mounts hold little, no exec is needed now: the files
// are wiped by the next execution's first exec, before anything else runs.
// Otherwise a reset exec kills the leftovers and wipes at once, so that a
// full tmpfs, which is charged to the memory limit, never reaches the next
// execution.
func (c *Container) Reset(ctx context.Context) error {
	if c.cgroup != nil {
		n, err := c.cgroup.userProcesses()
		if err == nil && n == 0 {
			if held, err := c.cgroup.tmpfsBytes(); err == nil && held <= deferWipeBytes {
				return nil
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, resetTimeout)
	defer cancel()
	uid, _ := splitUser(c.rt.cfg.User)
	code, stderr, err := c.run(ctx, []string{"/bin/sh", "-c", resetScript, "reset", uid}, nil, nil)
	if err != nil {
		return fmt.Errorf("reset %s: %w", short(c.id), err)
	}
	if code != 0 {
		return fmt.Errorf("reset %s: %w: exit %d: %s", short(c.id), sandbox.ErrDirty, code, strings.TrimSpace(stderr))
	}
	c.workspace = workspaceClean
	return nil
}
