// Package docker is the container lifecycle both of execq's runtimes share
// on the Docker engine: it resolves images, creates locked-down sandbox
// containers, gives each a user of its own, mounts execq's agent into them,
// updates their limits, reads their cgroups, lists and removes them. How
// commands run in a container is each runtime's business: sandbox/agentrt
// talks to the agent inside it, sandbox/dockerexec uses `docker exec`.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/execq/execq/internal/sandbox"
)

// Labels on every container the engine layer creates.
const (
	LabelManaged = "execq.managed"
	LabelOwner   = "execq.owner"
	// LabelImage is the image reference the container was asked for.
	LabelImage = "execq.image"
	// LabelRuntime names the runtime that drives the container.
	LabelRuntime = "execq.runtime"
	// LabelUID is the uid that runs the container's commands.
	LabelUID = "execq.uid"
)

// Client is the part of the Docker API the lifecycle uses; *client.Client
// is one.
type Client interface {
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, options container.StartOptions) error
	ContainerRemove(ctx context.Context, id string, options container.RemoveOptions) error
	ContainerKill(ctx context.Context, id, signal string) error
	ContainerWait(ctx context.Context, id string, condition container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerUpdate(ctx context.Context, id string, config container.UpdateConfig) (container.UpdateResponse, error)
	ContainerStatPath(ctx context.Context, id, path string) (container.PathStat, error)
	CopyToContainer(ctx context.Context, id, path string, content io.Reader, options container.CopyToContainerOptions) error
	ImageInspect(ctx context.Context, image string, options ...client.ImageInspectOption) (image.InspectResponse, error)
	VolumeCreate(ctx context.Context, options volume.CreateOptions) (volume.Volume, error)
	VolumeList(ctx context.Context, options volume.ListOptions) (volume.ListResponse, error)
	VolumeRemove(ctx context.Context, volumeID string, force bool) error
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

// Defaults of Config.
const (
	// DefaultUIDBase is far from the uids of host accounts (1000 up),
	// system accounts (below 1000, 65534) and the subordinate ranges
	// useradd hands out (100000 up, 65536 each): a host process of a
	// sandbox's uid could read it and share its per-user limits.
	DefaultUIDBase         = 1_000_000_000
	DefaultUIDCount        = 1000
	DefaultWorkspaceBytes  = 256 << 20
	DefaultTmpBytes        = 64 << 20
	DefaultShmBytes        = 64 << 20
	DefaultWorkspaceInodes = 64 << 10
	DefaultTmpInodes       = 16 << 10
	DefaultVolumeBytes     = 64 << 20
	DefaultAPITimeout      = 30 * time.Second
)

// Config describes the containers an Engine creates. Every field but Owner
// and AgentBinary has a default.
type Config struct {
	// Owner names the worker; containers carry it in LabelOwner. Required.
	Owner string
	// UIDBase and UIDCount give the range of uids sandboxes run their
	// commands as: each container of the engine gets one no other execq
	// container has, so that the kernel's per-user limits (processes,
	// inotify instances, message queue bytes, pending signals) are never
	// shared between sandboxes, and none of a host account (see
	// DefaultUIDBase). Default to 1,000,000,000 and 1000.
	UIDBase, UIDCount int
	// Limits are the containers' limits until an execution sets its own.
	// Default to 256 MiB, 1 CPU and 256 processes.
	Limits sandbox.Limits
	// WorkspaceBytes, TmpBytes and ShmBytes size the /workspace, /tmp and
	// /dev/shm tmpfs mounts. Default to 256 MiB, 64 MiB and 64 MiB.
	WorkspaceBytes, TmpBytes, ShmBytes int64
	// WorkspaceInodes and TmpInodes bound the entries of /workspace and of
	// /tmp and /dev/shm, so that emptying them has a bound. Default to 65536
	// and 16384.
	WorkspaceInodes, TmpInodes int64
	// OCIRuntime selects the engine's runtime (e.g. "runsc"); empty means
	// the engine's default.
	OCIRuntime string
	// CgroupRoot is where the host's cgroup hierarchy is mounted. Defaults
	// to /sys/fs/cgroup.
	CgroupRoot string
	// AgentBinary is the path, on the worker's file system, of the static
	// execq-agent binary mounted into every container. Required.
	AgentBinary string
	// APITimeout bounds each Docker call that is not a deliberate wait.
	// Defaults to 30s.
	APITimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.UIDBase <= 0 {
		c.UIDBase = DefaultUIDBase
	}
	if c.UIDCount <= 0 {
		c.UIDCount = DefaultUIDCount
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
	setDefault(&c.WorkspaceBytes, DefaultWorkspaceBytes)
	setDefault(&c.TmpBytes, DefaultTmpBytes)
	setDefault(&c.ShmBytes, DefaultShmBytes)
	setDefault(&c.WorkspaceInodes, DefaultWorkspaceInodes)
	setDefault(&c.TmpInodes, DefaultTmpInodes)
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/sys/fs/cgroup"
	}
	if c.APITimeout == 0 {
		c.APITimeout = DefaultAPITimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func setDefault(v *int64, def int64) {
	if *v <= 0 {
		*v = def
	}
}

// Engine creates and removes sandbox containers on one Docker engine.
type Engine struct {
	client Client
	cfg    Config
	agent  *agentVolume

	mu       sync.Mutex
	images   map[string]cachedImage
	reserved map[int]bool       // uids of containers being created by this process
	warned   bool               // resource accounting unavailable, said once
	cgroups  map[string]*cgroup // by container ID: their open files, closed by Remove
}

type cachedImage struct {
	img  sandbox.Image
	seen time.Time
}

// NewEngine returns an Engine that creates containers through c.
func NewEngine(c Client, cfg Config) (*Engine, error) {
	if cfg.Owner == "" {
		return nil, errors.New("docker engine: an owner name is required")
	}
	if cfg.AgentBinary == "" {
		return nil, errors.New("docker engine: the path of the execq-agent binary is required")
	}
	cfg = cfg.withDefaults()
	agent, err := newAgentVolume(c, cfg.AgentBinary, cfg.OCIRuntime == gvisorRuntime)
	if err != nil {
		return nil, err
	}
	return &Engine{
		client:   c,
		cfg:      cfg,
		agent:    agent,
		images:   map[string]cachedImage{},
		reserved: map[int]bool{},
	}, nil
}

// Config is the engine's configuration, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Client is the engine's Docker client.
func (e *Engine) Client() Client { return e.client }

// Ping checks that the engine answers.
func (e *Engine) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.APITimeout)
	defer cancel()
	if _, err := e.client.Ping(ctx); err != nil {
		return fmt.Errorf("docker ping: %w", err)
	}
	return nil
}

// imageCacheFor is how long an image resolution is trusted.
const imageCacheFor = 30 * time.Second

// ResolveImage resolves ref (a reference or an image ID) to the image
// present on the engine. See sandbox.Runtime.
func (e *Engine) ResolveImage(ctx context.Context, ref string) (sandbox.Image, error) {
	if _, err := reference.ParseAnyReference(ref); err != nil {
		return sandbox.Image{}, fmt.Errorf("image %q: %w: %v", ref, sandbox.ErrInvalidImage, err)
	}
	e.mu.Lock()
	c, ok := e.images[ref]
	e.mu.Unlock()
	if ok && time.Since(c.seen) < imageCacheFor {
		return c.img, nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.APITimeout)
	defer cancel()
	info, err := e.client.ImageInspect(ctx, ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return sandbox.Image{}, fmt.Errorf("image %q: %w on the worker's Docker engine (no registry is asked)", ref, sandbox.ErrImageNotFound)
		}
		if errdefs.IsInvalidArgument(err) {
			return sandbox.Image{}, fmt.Errorf("image %q: %w: %v", ref, sandbox.ErrInvalidImage, err)
		}
		return sandbox.Image{}, fmt.Errorf("inspect image %q: %w", ref, err)
	}
	img := sandbox.Image{Ref: ref, ID: info.ID}
	if info.Config != nil {
		for v := range info.Config.Volumes {
			img.Volumes = append(img.Volumes, v)
		}
		sort.Strings(img.Volumes)
	}
	e.mu.Lock()
	e.images[ref] = cachedImage{img: img, seen: time.Now()}
	e.mu.Unlock()
	return img, nil
}

// Remove force-removes a container; one that is already gone counts as
// removed.
func (e *Engine) Remove(ctx context.Context, id string) error {
	e.mu.Lock()
	cg := e.cgroups[id]
	delete(e.cgroups, id)
	e.mu.Unlock()
	cg.close()
	ctx, cancel := context.WithTimeout(ctx, e.cfg.APITimeout)
	defer cancel()
	err := e.client.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
		return fmt.Errorf("remove container %s: %w", Short(id), err)
	}
	return nil
}

// List returns the containers that execq created on this engine, whoever
// their owner.
func (e *Engine) List(ctx context.Context) ([]sandbox.Info, error) {
	list, err := e.list(ctx, LabelManaged+"=true")
	if err != nil {
		return nil, err
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

func (e *Engine) list(ctx context.Context, label string) ([]container.Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.APITimeout)
	defer cancel()
	list, err := e.client.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", label)),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return list, nil
}

// Short is the first 12 characters of a container ID.
func Short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
