// Package agentrt is the agent runtime: each sandbox container runs
// execq's agent (cmd/execq-agent) as PID 1, mounted from a read-only
// volume, and the worker drives it over the agent's protocol on the
// container's standard input and output, attached once when the container
// is created. A command then costs the agent a fork and exec, not a `docker
// exec`, and so does every isolation step: resets, kills, files in and out.
//
// The agent runs as root with CAP_KILL, CAP_SETUID, CAP_SETGID, CAP_CHOWN,
// CAP_FOWNER, CAP_DAC_OVERRIDE and CAP_SETPCAP, which it uses to empty the
// capability bounding set of everything it starts. Commands run as the
// sandbox's own uid, with no capability and no-new-privileges.
package agentrt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/docker"
)

// Name is the runtime's name, in container labels and flags.
const Name = "agent"

// Client is the part of the Docker API the runtime uses beyond the
// lifecycle's.
type Client interface {
	ContainerAttach(ctx context.Context, id string, options container.AttachOptions) (types.HijackedResponse, error)
}

// capabilities are the agent's; every other is dropped.
var capabilities = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID", "SETPCAP"}

// pidsReserve is the room the agent keeps beyond the commands' process
// limit: the commands are held to theirs by RLIMIT_NPROC of their own uid,
// the container's cgroup allows this many more, and the agent never needs
// a new thread once started. A fork bomb cannot take its last process.
const pidsReserve = 32

// Defaults of Config.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultResetTimeout = 15 * time.Second
)

// Config configures a Runtime.
type Config struct {
	// Timeout bounds each wait for an answer of an agent but a command's
	// own run: an agent that does not answer within it is taken for dead.
	// Defaults to 5s.
	Timeout time.Duration
	// ResetTimeout bounds a reset. Defaults to 15s.
	ResetTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Channel is how the worker reaches the agents: ChannelSocket,
	// ChannelAttach, or ChannelAuto (the default): the socket where this
	// process can reach it, else attach.
	Channel string
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ResetTimeout <= 0 {
		c.ResetTimeout = DefaultResetTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Runtime creates agent sandboxes on one engine.
type Runtime struct {
	engine *docker.Engine
	client Client
	cfg    Config
	// socket: new sandboxes' channels are their agents' sockets. Cleared
	// for good when this process cannot reach one (ChannelAuto).
	socket atomic.Bool
}

var _ sandbox.Runtime = (*Runtime)(nil)

// New returns a Runtime on engine; c attaches to its containers.
func New(engine *docker.Engine, c Client, cfg Config) (*Runtime, error) {
	r := &Runtime{engine: engine, client: c, cfg: cfg.withDefaults()}
	switch r.cfg.Channel {
	case ChannelAuto:
		r.socket.Store(!engine.OwnKernel())
	case ChannelSocket:
		if engine.OwnKernel() {
			return nil, fmt.Errorf("agent channel %q: the host cannot reach a socket under gVisor", ChannelSocket)
		}
		r.socket.Store(true)
	case ChannelAttach:
	default:
		return nil, fmt.Errorf("agent channel %q: want %q, %q or empty (the socket where it can be reached)", r.cfg.Channel, ChannelSocket, ChannelAttach)
	}
	return r, nil
}

// Channel says what the channels of new sandboxes are: ChannelSocket or
// ChannelAttach.
func (r *Runtime) Channel() string {
	if r.socket.Load() {
		return ChannelSocket
	}
	return ChannelAttach
}

// Create starts a sandbox of image and completes the agent's handshake.
func (r *Runtime) Create(ctx context.Context, image string, limits sandbox.Limits) (sandbox.Sandbox, error) {
	img, err := r.engine.ResolveImage(ctx, image)
	if err != nil {
		return nil, err
	}
	if r.socket.Load() {
		sb, err := r.create(ctx, img, limits, true)
		if !errors.Is(err, errNoSocket) || r.cfg.Channel == ChannelSocket {
			return sb, err
		}
		if r.socket.CompareAndSwap(true, false) {
			r.cfg.Logger.Warn("the agents' sockets cannot be reached from here: their channels go through the engine", "err", err)
		}
	}
	return r.create(ctx, img, limits, false)
}

// create starts a sandbox whose channel is the agent's socket or, without
// socket, the container's attached standard input and output.
func (r *Runtime) create(ctx context.Context, img sandbox.Image, limits sandbox.Limits, socket bool) (*Sandbox, error) {
	var name string
	if socket {
		name = socketName()
	}
	var att types.HijackedResponse
	attached := false
	c, err := r.engine.Create(ctx, docker.Spec{
		Image:   img,
		Limits:  limits,
		Runtime: Name,
		Command: func(uid, gid int, wipe []string) []string {
			cmd := []string{docker.AgentPath, "serve", "--uid", strconv.Itoa(uid), "--gid", strconv.Itoa(gid)}
			for _, w := range wipe {
				cmd = append(cmd, "--wipe", w)
			}
			if socket {
				cmd = append(cmd, "--listen", name)
			}
			return cmd
		},
		CapAdd:      capabilities,
		Stdin:       !socket,
		PidsReserve: pidsReserve,
		BeforeStart: func(ctx context.Context, id string) error {
			// Attached before the start, so that nothing the agent writes
			// is missed; the stream lives as long as the container.
			var err error
			att, err = r.client.ContainerAttach(context.WithoutCancel(ctx), id, container.AttachOptions{
				Stream: true, Stdin: !socket, Stdout: true, Stderr: true,
			})
			if err != nil {
				return fmt.Errorf("attach to container %s: %w", docker.Short(id), err)
			}
			attached = true
			return nil
		},
	})
	if err != nil {
		if attached {
			att.Close()
		}
		return nil, err
	}
	log := r.cfg.Logger.With("container", docker.Short(c.ID()))
	fail := func(err error) (*Sandbox, error) {
		if rmErr := r.engine.Remove(context.WithoutCancel(ctx), c.ID()); rmErr != nil {
			log.Warn("remove a container whose agent failed its handshake", "err", rmErr)
		}
		return nil, fmt.Errorf("container %s: %w", docker.Short(c.ID()), err)
	}
	var cn *conn
	if socket {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout)
		sock, err := dialAgent(dctx, c, name)
		cancel()
		if err != nil {
			att.Close()
			return fail(err)
		}
		cn = socketConn(sock, att, r.cfg.Timeout, log)
	} else {
		cn = attachedConn(att, r.cfg.Timeout, log)
	}
	// The read of the agent's Hello is bounded by the channel's own
	// timeout, which says what failed; a second bound of the same length
	// would race it.
	hello, err := cn.handshake(context.WithoutCancel(ctx), c.User(), c.Group())
	if err != nil {
		cn.close(err)
		return fail(err)
	}
	return &Sandbox{Container: c, conn: cn, cfg: r.cfg, spawn: hello.Spawn}, nil
}

// Remove removes a sandbox's container; its channel ends with it.
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
