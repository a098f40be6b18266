package docker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/execq/execq/internal/sandbox"
)

// AgentDir is where the agent's volume is mounted, read-only, in every
// container; AgentPath is the agent binary there.
const (
	AgentDir  = "/.execq"
	AgentPath = AgentDir + "/execq-agent"
)

// Spec is what a runtime asks of a container: the hardening is the
// engine's, the rest the runtime's.
type Spec struct {
	// Image is an image ID, as ResolveImage returns it.
	Image sandbox.Image
	// Limits are the container's limits; zero fields are the engine's
	// defaults.
	Limits sandbox.Limits
	// Runtime names the runtime, for LabelRuntime.
	Runtime string
	// Command is the container's main process, run as root; the uid, gid
	// and writable places chosen for the container are passed to it.
	Command func(uid, gid int, wipe []string) []string
	// Init puts the engine's init (which reaps zombies) above Command.
	Init bool
	// CapAdd are the capabilities the main process keeps; every other is
	// dropped.
	CapAdd []string
	// Stdin keeps the main process's standard input open, for a channel
	// attached before the start.
	Stdin bool
	// PidsReserve is added to every process limit: room the main process
	// keeps for itself, beyond what the user's commands may use.
	PidsReserve int64
	// OOMScoreAdj is every process's oom_score_adj as the container
	// starts; a main process may lower its own back to 0.
	OOMScoreAdj int
	// BeforeStart runs between the creation and the start, e.g. to attach.
	BeforeStart func(ctx context.Context, id string) error
}

// Create creates and starts a container for spec. Once begun, a creation
// is not abandoned when ctx ends: the engine would create the container all
// the same, and nobody would know its ID to remove it.
func (e *Engine) Create(ctx context.Context, spec Spec) (*Container, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create container of %q: %w", spec.Image.Ref, err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*e.cfg.APITimeout)
	defer cancel()
	volume, err := e.agent.ensure(ctx, e, spec.Image.ID)
	if err != nil {
		return nil, fmt.Errorf("create container of %q: %w", spec.Image.Ref, err)
	}
	for attempt := 0; ; attempt++ {
		c, retry, err := e.createOnce(ctx, spec, volume, attempt > 0)
		if err == nil || !retry || attempt >= 10 {
			return c, err
		}
	}
}

// createOnce creates a container with a uid it believes free. When another
// worker created one with the same uid at the same time, the younger gives
// way: it is removed, and retry is true.
func (e *Engine) createOnce(ctx context.Context, spec Spec, volume string, anyFree bool) (c *Container, retry bool, err error) {
	uid, err := e.reserveUID(ctx, anyFree)
	if err != nil {
		return nil, false, fmt.Errorf("create container of %q: %w", spec.Image.Ref, err)
	}
	defer e.releaseUID(uid)
	gid := uid
	wipe := append([]string{"/workspace", "/tmp", "/dev/shm", "/dev/mqueue"}, spec.Image.Volumes...)
	cfg, host := e.containerConfig(spec, uid, gid, wipe, volume)
	created, err := e.client.ContainerCreate(ctx, cfg, host, nil, nil, "")
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, false, fmt.Errorf("create container of %q: %w", spec.Image.Ref, sandbox.ErrImageNotFound)
		}
		return nil, false, fmt.Errorf("create container of %q: %w", spec.Image.Ref, err)
	}
	fail := func(err error) (*Container, bool, error) {
		if rmErr := e.Remove(ctx, created.ID); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return nil, false, err
	}
	if other, err := e.otherWithUID(ctx, uid, created.ID); err != nil {
		return fail(err)
	} else if other != "" {
		_, _, err := fail(fmt.Errorf("uid %d taken by container %s", uid, Short(other)))
		// Both may give way; they pick again at different moments.
		time.Sleep(time.Duration(10+rand.IntN(90)) * time.Millisecond)
		return nil, true, err
	}
	if spec.BeforeStart != nil {
		if err := spec.BeforeStart(ctx, created.ID); err != nil {
			return fail(err)
		}
	}
	c, err = e.start(ctx, created.ID, spec, uid, gid, wipe)
	if err != nil {
		return fail(err)
	}
	return c, false, nil
}

// reserveUID picks the lowest uid of the range that no execq container of
// the engine, and no creation of this process in flight, has; with
// anyFree, after a collision, any free one at random.
func (e *Engine) reserveUID(ctx context.Context, anyFree bool) (int, error) {
	list, err := e.list(ctx, LabelManaged+"=true")
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, c := range list {
		if n, err := strconv.Atoi(c.Labels[LabelUID]); err == nil {
			used[n] = true
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var free []int
	for uid := e.cfg.UIDBase; uid < e.cfg.UIDBase+e.cfg.UIDCount; uid++ {
		if !used[uid] && !e.reserved[uid] {
			free = append(free, uid)
			if !anyFree {
				break
			}
		}
	}
	if len(free) > 0 {
		uid := free[0]
		if anyFree {
			uid = free[rand.IntN(len(free))]
		}
		e.reserved[uid] = true
		return uid, nil
	}
	return 0, fmt.Errorf("every uid of %d-%d is taken by a container", e.cfg.UIDBase, e.cfg.UIDBase+e.cfg.UIDCount-1)
}

func (e *Engine) releaseUID(uid int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.reserved, uid)
}

// otherWithUID returns a container other than id that has uid, or "".
// Two workers that create containers at the same moment may pick the same
// uid; each checks after its creation, and gives way when it sees the
// other, so that two containers never keep one uid.
func (e *Engine) otherWithUID(ctx context.Context, uid int, id string) (string, error) {
	list, err := e.list(ctx, LabelUID+"="+strconv.Itoa(uid))
	if err != nil {
		return "", err
	}
	for _, c := range list {
		if c.ID != id {
			return c.ID, nil
		}
	}
	return "", nil
}

func (e *Engine) containerConfig(spec Spec, uid, gid int, wipe []string, volume string) (*container.Config, *container.HostConfig) {
	init := spec.Init
	limits := e.limitsOf(spec.Limits)
	pids := limits.Pids + spec.PidsReserve
	var ulimits []*container.Ulimit
	if e.cfg.OCIRuntime == gvisorRuntime {
		// gVisor's own threads count against the container's process limit
		// on the host; the sandbox's processes are held to theirs inside it,
		// where gVisor enforces RLIMIT_NPROC.
		pids += gvisorPidsReserve
		ulimits = []*container.Ulimit{{Name: "nproc", Soft: limits.Pids, Hard: limits.Pids}}
	}
	tmpfs := func(size, inodes int64, extra string) string {
		return "rw,exec,nosuid,nodev,size=" + strconv.FormatInt(size, 10) + ",nr_inodes=" + strconv.FormatInt(inodes, 10) + extra
	}
	cfg := &container.Config{
		Image:           spec.Image.ID,
		User:            "0:0",
		Entrypoint:      spec.Command(uid, gid, wipe),
		Cmd:             nil,
		Hostname:        "sandbox",
		WorkingDir:      "/workspace",
		Env:             []string{"HOME=/workspace"},
		NetworkDisabled: true,
		OpenStdin:       spec.Stdin,
		AttachStdin:     spec.Stdin,
		AttachStdout:    spec.Stdin,
		AttachStderr:    spec.Stdin,
		Labels: map[string]string{
			LabelManaged: "true",
			LabelOwner:   e.cfg.Owner,
			LabelImage:   spec.Image.Ref,
			LabelRuntime: spec.Runtime,
			LabelUID:     strconv.Itoa(uid),
		},
	}
	host := &container.HostConfig{
		NetworkMode:    "none",
		CapDrop:        []string{"ALL"},
		CapAdd:         spec.CapAdd,
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: true,
		Init:           &init,
		IpcMode:        "private",
		LogConfig:      container.LogConfig{Type: "none"},
		Runtime:        e.cfg.OCIRuntime,
		OomScoreAdj:    spec.OOMScoreAdj,
		Tmpfs: map[string]string{
			"/workspace": tmpfs(e.cfg.WorkspaceBytes, e.cfg.WorkspaceInodes, ",uid="+strconv.Itoa(uid)+",gid="+strconv.Itoa(gid)+",mode=0755"),
			"/tmp":       tmpfs(e.cfg.TmpBytes, e.cfg.TmpInodes, ",mode=1777"),
			"/dev/shm":   tmpfs(e.cfg.ShmBytes, e.cfg.TmpInodes, ",mode=1777"),
		},
		Mounts: []mount.Mount{{
			Type: mount.TypeVolume, Source: volume, Target: AgentDir, ReadOnly: true,
			VolumeOptions: &mount.VolumeOptions{NoCopy: true},
		}},
		Resources: container.Resources{
			Memory:     limits.MemoryBytes,
			MemorySwap: limits.MemoryBytes,
			NanoCPUs:   limits.NanoCPUs,
			PidsLimit:  &pids,
			Ulimits:    ulimits,
		},
	}
	// An image's volumes would outlive the container and be shared by its
	// tenants; each gets an empty tmpfs instead, emptied by every reset.
	for _, v := range spec.Image.Volumes {
		if _, ok := host.Tmpfs[v]; !ok {
			host.Tmpfs[v] = tmpfs(DefaultVolumeBytes, e.cfg.TmpInodes, ",mode=1777")
		}
	}
	return cfg, host
}

func (e *Engine) start(ctx context.Context, id string, spec Spec, uid, gid int, wipe []string) (*Container, error) {
	if err := e.client.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return nil, fmt.Errorf("start container %s: %w", Short(id), err)
	}
	info, err := e.client.ContainerInspect(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", Short(id), err)
	}
	if info.State == nil || !info.State.Running {
		return nil, fmt.Errorf("container %s of %q stopped at once", Short(id), spec.Image.Ref)
	}
	cg, err := findCgroup(e.cfg.CgroupRoot, info.State.Pid, id)
	if err == nil {
		if werr := cg.watchOOM(); werr != nil {
			e.cfg.Logger.Debug("the kernel's OOM events of the container are not watched", "container", Short(id), "err", werr)
		}
		e.mu.Lock()
		if e.cgroups == nil {
			e.cgroups = make(map[string]*cgroup)
		}
		e.cgroups[id] = cg
		e.mu.Unlock()
	} else {
		e.mu.Lock()
		warn := !e.warned
		e.warned = true
		e.mu.Unlock()
		if warn {
			e.cfg.Logger.Warn("the host's cgroups are not readable: per-execution cpu time and peak memory come from the sandbox itself",
				"container", Short(id), "err", err)
		}
	}
	own := 1
	if spec.Init {
		own = 2
	}
	return &Container{
		e:           e,
		id:          id,
		image:       spec.Image.ID,
		uid:         uid,
		gid:         gid,
		wipe:        wipe,
		limits:      e.limitsOf(spec.Limits),
		pidsReserve: spec.PidsReserve,
		cgroup:      cg,
		initPid:     info.State.Pid,
		own:         own,
	}, nil
}

// gvisorRuntime is gVisor's runtime name. Its release in Debian 12 cannot
// update a container's limits, and runs its own threads in the container's
// cgroup.
const (
	gvisorRuntime     = "runsc"
	gvisorPidsReserve = 8192
)

// limitsOf fills l's zero fields with the engine's defaults.
func (e *Engine) limitsOf(l sandbox.Limits) sandbox.Limits {
	if l.MemoryBytes == 0 {
		l.MemoryBytes = e.cfg.Limits.MemoryBytes
	}
	if l.NanoCPUs == 0 {
		l.NanoCPUs = e.cfg.Limits.NanoCPUs
	}
	if l.Pids == 0 {
		l.Pids = e.cfg.Limits.Pids
	}
	return l
}

// FixedLimits reports whether containers keep the limits they are created
// with: then SetLimits returns sandbox.ErrFixedLimits for others.
func (e *Engine) FixedLimits() bool { return e.cfg.OCIRuntime == gvisorRuntime }

// UserReadsAgent reports whether the sandboxes' user may read the agent's
// binary, which gVisor needs to execute it as that user (see
// agentModeReadable). Where it may not, a process of the agent's binary
// started as the user is out of reach of the user's ptrace.
func (e *Engine) UserReadsAgent() bool { return e.agent.mode == agentModeReadable }

// OwnKernel reports whether containers run on a kernel of their own
// (gVisor's): the host cannot reach what their processes create, such as
// a unix socket in their network namespace.
func (e *Engine) OwnKernel() bool { return e.cfg.OCIRuntime == gvisorRuntime }
