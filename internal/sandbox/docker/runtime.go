// Package docker runs sandboxes as locked-down Docker containers: a root
// keepalive process under an init that reaps zombies, commands run through
// exec as an unprivileged user, no network, a read-only root filesystem and
// size-limited tmpfs mounts for /workspace and /tmp.
//
// Since root in the container holds no capabilities, it cannot signal the
// unprivileged user's processes and they cannot signal it: a reset kills
// every process of the user without touching the keepalive.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/execq/execq/internal/sandbox"
)

// Labels on every container the runtime creates.
const (
	LabelManaged = "execq.managed"
	LabelOwner   = "execq.owner"
	LabelImage   = "execq.image"
)

// Client is the part of the Docker API the runtime uses; *client.Client is
// one.
type Client interface {
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, options container.StartOptions) error
	ContainerRemove(ctx context.Context, id string, options container.RemoveOptions) error
	ContainerKill(ctx context.Context, id, signal string) error
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerUpdate(ctx context.Context, id string, config container.UpdateConfig) (container.UpdateResponse, error)
	ContainerExecCreate(ctx context.Context, id string, options container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, config container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
	ImageInspect(ctx context.Context, image string, options ...client.ImageInspectOption) (image.InspectResponse, error)
	Ping(ctx context.Context) (types.Ping, error)
}

// NewClient connects to the Docker engine named by the environment
// (DOCKER_HOST, …), negotiating the API version. DOCKER_API_VERSION is
// ignored: it would turn negotiation off.
func NewClient() (*client.Client, error) {
	c, err := client.NewClientWithOpts(
		client.WithHostFromEnv(),
		client.WithTLSClientConfigFromEnv(),
		client.WithAPIVersionNegotiation(),
	)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return c, nil
}

// Config describes the containers a Runtime creates. Every field has a
// default.
type Config struct {
	// Owner names the worker; containers carry it in LabelOwner. Required.
	Owner string
	// User runs commands. Defaults to "1000:1000".
	User string
	// Limits are the containers' limits until an execution sets its own.
	// Default to 256 MiB, 1 CPU and 256 processes.
	Limits sandbox.Limits
	// WorkspaceBytes sizes the /workspace tmpfs. Defaults to 256 MiB.
	WorkspaceBytes int64
	// TmpBytes sizes the /tmp tmpfs. Defaults to 64 MiB.
	TmpBytes int64
	// ShmBytes sizes /dev/shm. Defaults to 64 MiB.
	ShmBytes int64
	// OCIRuntime selects the engine's runtime (e.g. "runsc"); empty means
	// the engine's default.
	OCIRuntime string
	// CgroupRoot is where the host's cgroup hierarchy is mounted. Defaults
	// to /sys/fs/cgroup.
	CgroupRoot string
	// APITimeout bounds each Docker call that is not a deliberate wait.
	// Defaults to 30s.
	APITimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.User == "" {
		c.User = "1000:1000"
	}
	if c.Limits.MemoryBytes == 0 {
		c.Limits.MemoryBytes = 256 << 20
	}
	if c.Limits.NanoCPUs == 0 {
		c.Limits.NanoCPUs = 1e9
	}
	if c.Limits.Pids == 0 {
		c.Limits.Pids = 256
	}
	if c.WorkspaceBytes == 0 {
		c.WorkspaceBytes = 256 << 20
	}
	if c.TmpBytes == 0 {
		c.TmpBytes = 64 << 20
	}
	if c.ShmBytes == 0 {
		c.ShmBytes = 64 << 20
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/sys/fs/cgroup"
	}
	if c.APITimeout == 0 {
		c.APITimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Runtime creates and removes sandbox containers on one Docker engine.
type Runtime struct {
	client Client
	cfg    Config

	mu     sync.Mutex
	images map[string]time.Time // image → when it was last seen present
	warned bool                 // resource accounting unavailable, said once
}

// New returns a Runtime that creates containers through c.
func New(c Client, cfg Config) (*Runtime, error) {
	if cfg.Owner == "" {
		return nil, errors.New("docker runtime: an owner name is required")
	}
	return &Runtime{client: c, cfg: cfg.withDefaults(), images: make(map[string]time.Time)}, nil
}

// Ping checks that the engine answers.
func (r *Runtime) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.APITimeout)
	defer cancel()
	if _, err := r.client.Ping(ctx); err != nil {
		return fmt.Errorf("docker ping: %w", err)
	}
	return nil
}

// imageCacheFor is how long an image found present is trusted to stay.
const imageCacheFor = 30 * time.Second

// CheckImage returns nil when img is present on the engine, an error
// wrapping sandbox.ErrImageNotFound when it is not, and another error when
// the engine cannot tell.
func (r *Runtime) CheckImage(ctx context.Context, img string) error {
	if _, err := reference.ParseNormalizedNamed(img); err != nil {
		return fmt.Errorf("image %q: %w: %v", img, sandbox.ErrInvalidImage, err)
	}
	r.mu.Lock()
	seen, ok := r.images[img]
	r.mu.Unlock()
	if ok && time.Since(seen) < imageCacheFor {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.APITimeout)
	defer cancel()
	if _, err := r.client.ImageInspect(ctx, img); err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("image %q: %w on the worker's Docker engine (no registry is asked)", img, sandbox.ErrImageNotFound)
		}
		if errdefs.IsInvalidArgument(err) {
			return fmt.Errorf("image %q: %w: %v", img, sandbox.ErrInvalidImage, err)
		}
		return fmt.Errorf("inspect image %q: %w", img, err)
	}
	r.mu.Lock()
	r.images[img] = time.Now()
	r.mu.Unlock()
	return nil
}

// keepalive is the containers' main process: it runs as root, under the
// engine's init, and does nothing.
var keepalive = []string{"/bin/sh", "-c", "sleep infinity 2>/dev/null; while :; do sleep 3600; done"}

// Create starts a new sandbox container of img. Once begun, a creation is
// not abandoned when ctx ends: the engine would create the container all
// the same, and nobody would know its ID to remove it.
func (r *Runtime) Create(ctx context.Context, img string) (sandbox.Sandbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create container of %q: %w", img, err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.APITimeout)
	defer cancel()
	cfg, host := r.containerConfig(img)
	created, err := r.client.ContainerCreate(ctx, cfg, host, nil, nil, "")
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("create container of %q: %w", img, sandbox.ErrImageNotFound)
		}
		return nil, fmt.Errorf("create container of %q: %w", img, err)
	}
	c, err := r.start(ctx, created.ID, img)
	if err != nil {
		if rmErr := r.Remove(ctx, created.ID); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return nil, err
	}
	return c, nil
}

func (r *Runtime) start(ctx context.Context, id, img string) (*Container, error) {
	if err := r.client.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return nil, fmt.Errorf("start container %s: %w", short(id), err)
	}
	info, err := r.client.ContainerInspect(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", short(id), err)
	}
	if info.State == nil || !info.State.Running {
		return nil, fmt.Errorf("container %s of %q stopped at once; does the image have /bin/sh and sleep?", short(id), img)
	}
	cg, err := findCgroup(r.cfg.CgroupRoot, info.State.Pid, id)
	if err != nil {
		r.mu.Lock()
		warn := !r.warned
		r.warned = true
		r.mu.Unlock()
		if warn {
			r.cfg.Logger.Warn("per-execution cpu time and peak memory are unavailable; OOM kills are detected from the container state",
				"container", short(id), "err", err)
		}
	}
	return &Container{
		rt:      r,
		id:      id,
		image:   img,
		limits:  r.cfg.Limits,
		cgroup:  cg,
		initPid: info.State.Pid,
	}, nil
}

func (r *Runtime) containerConfig(img string) (*container.Config, *container.HostConfig) {
	init := true
	pids := r.cfg.Limits.Pids
	tmpfs := func(size int64, extra string) string {
		return "rw,exec,nosuid,nodev,size=" + strconv.FormatInt(size, 10) + extra
	}
	uid, gid := splitUser(r.cfg.User)
	cfg := &container.Config{
		Image:           img,
		User:            "0:0",
		Entrypoint:      keepalive,
		Cmd:             nil,
		Hostname:        "sandbox",
		WorkingDir:      "/workspace",
		Env:             []string{"HOME=/workspace"},
		NetworkDisabled: true,
		Labels: map[string]string{
			LabelManaged: "true",
			LabelOwner:   r.cfg.Owner,
			LabelImage:   img,
		},
	}
	host := &container.HostConfig{
		NetworkMode:    "none",
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: true,
		Init:           &init,
		IpcMode:        "private",
		LogConfig:      container.LogConfig{Type: "none"},
		Runtime:        r.cfg.OCIRuntime,
		ShmSize:        r.cfg.ShmBytes,
		Tmpfs: map[string]string{
			"/workspace": tmpfs(r.cfg.WorkspaceBytes, ",uid="+uid+",gid="+gid+",mode=0755"),
			"/tmp":       tmpfs(r.cfg.TmpBytes, ",mode=1777"),
		},
		Resources: container.Resources{
			Memory:     r.cfg.Limits.MemoryBytes,
			MemorySwap: r.cfg.Limits.MemoryBytes,
			NanoCPUs:   r.cfg.Limits.NanoCPUs,
			PidsLimit:  &pids,
		},
	}
	return cfg, host
}

func splitUser(user string) (uid, gid string) {
	for i := range len(user) {
		if user[i] == ':' {
			return user[:i], user[i+1:]
		}
	}
	return user, user
}

// Remove force-removes a container; one that is already gone counts as
// removed.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.APITimeout)
	defer cancel()
	err := r.client.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
		return fmt.Errorf("remove container %s: %w", short(id), err)
	}
	return nil
}

// List returns the containers that execq created on this engine, whoever
// their owner.
func (r *Runtime) List(ctx context.Context) ([]sandbox.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.APITimeout)
	defer cancel()
	list, err := r.client.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelManaged+"=true")),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	infos := make([]sandbox.Info, 0, len(list))
	for _, c := range list {
		infos = append(infos, sandbox.Info{
			ID:      c.ID,
			Image:   c.Labels[LabelImage],
			Owner:   c.Labels[LabelOwner],
			Created: time.Unix(c.Created, 0),
			Running: c.State == "running",
		})
	}
	return infos, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
