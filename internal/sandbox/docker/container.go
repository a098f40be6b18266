package docker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/tasks"
)

// Container is one sandbox container, as the lifecycle knows it. The
// runtimes embed it.
type Container struct {
	e           *Engine
	id          string
	image       string
	uid, gid    int
	wipe        []string
	limits      sandbox.Limits
	pidsReserve int64
	cgroup      *cgroup // nil when the host's cgroups cannot be read
	initPid     int     // host PID of the container's main process
	// own is how many processes the container holds of its own: its
	// main process, and the command under the engine's init.
	own int
}

// ID is the container ID.
func (c *Container) ID() string { return c.id }

// Image is the ID of the container's image.
func (c *Container) Image() string { return c.image }

// User is the uid that runs the container's commands.
func (c *Container) User() int { return c.uid }

// Group is the gid that runs the container's commands.
func (c *Container) Group() int { return c.gid }

// Wipe lists the writable places a reset empties, the workspace first.
func (c *Container) Wipe() []string { return c.wipe }

// Engine is the engine the container runs on.
func (c *Container) Engine() *Engine { return c.e }

// Limits are the container's current limits.
func (c *Container) Limits() sandbox.Limits { return c.limits }

// SetLimits updates the container's memory, CPU and process limits when
// they differ from the current ones.
func (c *Container) SetLimits(ctx context.Context, l sandbox.Limits) error {
	if l == c.limits {
		return nil
	}
	if c.e.FixedLimits() {
		return fmt.Errorf("container %s: %w", Short(c.id), sandbox.ErrFixedLimits)
	}
	ctx, cancel := context.WithTimeout(ctx, c.e.cfg.APITimeout)
	defer cancel()
	pids := l.Pids + c.pidsReserve
	_, err := c.e.client.ContainerUpdate(ctx, c.id, container.UpdateConfig{Resources: container.Resources{
		Memory:     l.MemoryBytes,
		MemorySwap: l.MemoryBytes,
		NanoCPUs:   l.NanoCPUs,
		PidsLimit:  &pids,
	}})
	if err != nil {
		return fmt.Errorf("update limits of %s: %w", Short(c.id), err)
	}
	c.limits = l
	return nil
}

// VerifyAlone checks, from the host, that the container's cgroup holds
// no process but its own: what a reset left behind is there, whatever its
// PID namespace or uid, where no process inside can hide it. It returns an
// error wrapping sandbox.ErrDirty when more are there or the list cannot
// be read, and nil without the host's cgroups, or under gVisor, whose
// processes are not the host's.
func (c *Container) VerifyAlone() error {
	if c.cgroup == nil || c.e.OwnKernel() {
		return nil
	}
	pids, err := c.cgroup.processes()
	if err != nil {
		return fmt.Errorf("%w: list the processes of container %s: %v", sandbox.ErrDirty, Short(c.id), err)
	}
	if len(pids) > c.own {
		return fmt.Errorf("%w: container %s holds %d processes, %d of its own (host PIDs %v)",
			sandbox.ErrDirty, Short(c.id), len(pids), c.own, pids[:min(len(pids), 10)])
	}
	return nil
}

// Kill ends every process in the container at once by killing its main
// process; the container is then stopped and must be replaced.
func (c *Container) Kill(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.e.cfg.APITimeout)
	defer cancel()
	err := c.e.client.ContainerKill(ctx, c.id, "KILL")
	if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
		return fmt.Errorf("kill container %s: %w", Short(c.id), err)
	}
	return nil
}

// Stopped reports whether the container is stopping or gone. Killing a
// container kills its main process first, and the kernel then kills every
// other process in it: when a command was SIGKILLed with its container, the
// main process is already dead. Without the host's /proc the engine is
// asked for a while, since it marks a killed container stopped only a
// moment after its processes die.
func (c *Container) Stopped(ctx context.Context) bool {
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

// HostPID returns the host PID of the container's main process and true
// when this process sees the host's PIDs and that PID is still the
// container's.
func (c *Container) HostPID() (int, bool) {
	return c.initPid, c.initPid > 0 && processOf(c.initPid, c.id)
}

// processOf reports whether host PID pid is a process of the container
// id, as its cgroup says.
func processOf(pid int, id string) bool {
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && strings.Contains(string(cg), id)
}

// processAlive reports whether host PID pid is a live process of the
// container id: neither a zombie nor exiting. A container's init killed
// from outside is exiting while the kernel kills the rest of its PID
// namespace, so its commands are seen dead before it is.
func processAlive(pid int, id string) bool {
	return processOf(pid, id) && live(pid)
}

// pfExiting is the kernel's PF_EXITING: the process is in exit.
const pfExiting = 0x4

// live reports whether pid exists, is not a zombie and has not begun to
// exit, from /proc/PID/stat: its third field is the state, its ninth the
// flags (the second, the command, is in parentheses and may hold spaces).
func live(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 7 || fields[0] == "Z" || fields[0] == "X" || fields[0] == "x" {
		return false
	}
	flags, err := strconv.ParseUint(fields[6], 10, 64)
	return err == nil && flags&pfExiting == 0
}

func (c *Container) running(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.e.cfg.APITimeout)
	defer cancel()
	info, err := c.e.client.ContainerInspect(ctx, c.id)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect container %s: %w", Short(c.id), err)
	}
	return info.State != nil && info.State.Running, nil
}

// StoppedByOOM reports, for a container seen gone during the execution
// acct measures, whether the memory limit killed it. The kernel's OOM
// events tell where they are watched (cgroup v1); otherwise, or when they
// cannot tell, the engine does, once it has seen the container stop (at
// most APITimeout from now): it learns of the death through events that
// can come later, and it misses some OOM kills of a container taken whole.
func (c *Container) StoppedByOOM(ctx context.Context, acct Accounting) bool {
	if oom, ok := acct.a.diedOfOOM(); ok {
		return oom
	}
	ctx, cancel := context.WithTimeout(ctx, c.e.cfg.APITimeout)
	defer cancel()
	stopped, failed := c.e.client.ContainerWait(ctx, c.id, container.WaitConditionNotRunning)
	select {
	case <-stopped:
	case <-failed:
	}
	info, err := c.e.client.ContainerInspect(ctx, c.id)
	return err == nil && info.State != nil && info.State.OOMKilled
}

// OOMKilledFlag reports the engine's OOMKilled flag of the container. It
// is sticky for the container's life: only a fallback where the cgroup's
// counter cannot be read.
func (c *Container) OOMKilledFlag(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, c.e.cfg.APITimeout)
	defer cancel()
	info, err := c.e.client.ContainerInspect(ctx, c.id)
	return err == nil && info.State != nil && info.State.OOMKilled
}

// Accounted reports whether the host's cgroups of the container can be
// read: then BeginAccounting measures, and counts OOM kills.
func (c *Container) Accounted() bool { return c.cgroup != nil }

// Accounting measures one execution from the host's cgroups.
type Accounting struct{ a *accounting }

// BeginAccounting starts measuring an execution: its CPU time, and its
// peak memory above what the container holds now.
func (c *Container) BeginAccounting() Accounting { return Accounting{c.cgroup.begin()} }

// End returns the execution's resources, nil when they could not be
// measured, and how many processes the memory limit killed since Begin
// (ok is false when that is unknown).
func (a Accounting) End() (res *tasks.Resources, oomKills uint64, ok bool) {
	return a.a.end()
}
