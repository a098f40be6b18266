// Package dockerexec is the docker-exec runtime: each sandbox container
// runs execq's agent as an idle keepalive under the engine's init, every
// command runs through `docker exec` as the sandbox's user, and every
// isolation step (reset, kill, files in and out) is one more `docker exec`
// of the agent binary as a one-shot helper, run as that user. It needs
// nothing of the image but what the command itself needs.
//
// The container keeps no capability at all: the helper cleans as the owner
// of what it cleans, and the keepalive, root without capabilities, can
// neither be signalled by the user nor signal it.
package dockerexec

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/docker"
)

// Name is the runtime's name, in container labels and flags.
const Name = "docker-exec"

// Client is the part of the Docker API the runtime uses beyond the
// lifecycle's.
type Client interface {
	ContainerExecCreate(ctx context.Context, id string, options container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, config container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
}

// Defaults of Config.
const (
	DefaultHelperTimeout = 15 * time.Second
	DefaultResetTimeout  = 15 * time.Second
	DefaultKillTimeout   = 2500 * time.Millisecond
)

// Config configures a Runtime.
type Config struct {
	// HelperTimeout bounds a helper exec (kill, put, collect). Defaults to
	// 15s: the engine holds a container's next exec for up to 2s while a
	// previous one's output is still held open by a leftover process.
	HelperTimeout time.Duration
	// ResetTimeout bounds a reset. Defaults to 15s.
	ResetTimeout time.Duration
	// KillTimeout bounds the helper's kill of a command ended by its
	// deadline or a cancel; past it the container is killed whole and
	// replaced, so that the result waits for no slower kill (a fork bomb
	// that fills the process limit leaves the helper little room).
	// Defaults to 2.5s.
	KillTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.HelperTimeout <= 0 {
		c.HelperTimeout = DefaultHelperTimeout
	}
	if c.ResetTimeout <= 0 {
		c.ResetTimeout = DefaultResetTimeout
	}
	if c.KillTimeout <= 0 {
		c.KillTimeout = DefaultKillTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Runtime creates docker-exec sandboxes on one engine.
type Runtime struct {
	engine *docker.Engine
	client Client
	cfg    Config
}

var _ sandbox.Runtime = (*Runtime)(nil)

// ErrUnderGVisor is returned by New for an engine whose sandboxes run
// under gVisor.
var ErrUnderGVisor = errors.New("the docker-exec runtime cannot run under gVisor: gVisor executes only binaries their user can read, so the helpers that clean a sandbox, which run as its user, would be open to that user's ptrace; use the agent runtime")

// New returns a Runtime on engine; c runs the execs. It refuses an engine
// whose sandboxes' user may read the agent's binary (gVisor): its helpers
// run as that user, and only an unreadable binary keeps them from the
// user's ptrace.
func New(engine *docker.Engine, c Client, cfg Config) (*Runtime, error) {
	if engine.UserReadsAgent() {
		return nil, ErrUnderGVisor
	}
	return &Runtime{engine: engine, client: c, cfg: cfg.withDefaults()}, nil
}

// Create starts a sandbox of image.
func (r *Runtime) Create(ctx context.Context, image string, limits sandbox.Limits) (sandbox.Sandbox, error) {
	img, err := r.engine.ResolveImage(ctx, image)
	if err != nil {
		return nil, err
	}
	c, err := r.engine.Create(ctx, docker.Spec{
		Image:   img,
		Limits:  limits,
		Runtime: Name,
		Command: func(uid, gid int, wipe []string) []string { return []string{docker.AgentPath, "idle"} },
		Init:    true,
		// Every exec starts with the largest OOM score, so that the memory
		// limit's OOM killer takes a command before the keepalive, which
		// lowers its own score back to 0.
		OOMScoreAdj: 1000,
	})
	if err != nil {
		return nil, err
	}
	return &Sandbox{Container: c, rt: r}, nil
}

// Remove removes a sandbox's container.
func (r *Runtime) Remove(ctx context.Context, id string) error { return r.engine.Remove(ctx, id) }

// List returns the containers execq made on the engine.
func (r *Runtime) List(ctx context.Context) ([]sandbox.Info, error) { return r.engine.List(ctx) }

// ResolveImage resolves an image reference on the engine.
func (r *Runtime) ResolveImage(ctx context.Context, ref string) (sandbox.Image, error) {
	return r.engine.ResolveImage(ctx, ref)
}

// Ping checks that the engine answers.
func (r *Runtime) Ping(ctx context.Context) error { return r.engine.Ping(ctx) }

// FixedLimits reports whether sandboxes keep the limits they are created
// with.
func (r *Runtime) FixedLimits() bool { return r.engine.FixedLimits() }
