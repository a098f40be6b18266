// Package sandbox is the contract between execq's worker and the runtimes
// that run commands in isolation: a Sandbox is one warm, locked-down
// container that serves one execution at a time. The Docker runtime lives in
// sandbox/docker, a fake one for unit tests in sandbox/fake.
package sandbox

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/execq/execq/tasks"
)

// Errors a runtime reports.
var (
	// ErrImageNotFound: the image is not present where the runtime runs, and
	// no registry is asked for it. A request naming it is rejected.
	ErrImageNotFound = errors.New("image not found")
	// ErrInvalidImage: the image name is not a valid reference. A request
	// naming it is rejected.
	ErrInvalidImage = errors.New("invalid image name")
	// ErrDirty: Reset could not restore a clean sandbox; replace it.
	ErrDirty = errors.New("sandbox could not be cleaned")
	// ErrStopped: the sandbox stopped while a command ran in it (its
	// container was killed or removed from outside); replace it.
	ErrStopped = errors.New("sandbox stopped during the execution")
)

// Limits are the resource limits of one execution.
type Limits struct {
	MemoryBytes int64
	// NanoCPUs is CPUs × 1e9, as in Docker.
	NanoCPUs int64
	Pids     int64
}

// Command is one command to run in a sandbox as the unprivileged user.
type Command struct {
	// Cmd is the argv; Cmd[0] is looked up in the image's PATH.
	Cmd []string
	// Env holds "KEY=value" entries added to the image's environment.
	Env []string
	// Dir is the absolute working directory.
	Dir string
	// Stdin, when not nil, is copied to the command's standard input, which
	// is then closed.
	Stdin io.Reader
	// Stdout and Stderr receive the command's output as it is produced,
	// from one goroutine at a time.
	Stdout, Stderr io.Writer
}

// Outcome is how a command ended.
type Outcome struct {
	// ExitCode is the main process's exit code; -1 when it was killed
	// because the context ended.
	ExitCode int
	// OOMKilled is true when the memory limit killed one of its processes.
	OOMKilled bool
	// Duration is from the start of the command to the exit of its main
	// process (or to its kill).
	Duration time.Duration
	// Resources is nil when the runtime cannot measure them.
	Resources *tasks.Resources
}

// Sandbox is one warm container. Its methods are called by one execution
// at a time.
type Sandbox interface {
	// ID names the sandbox (the container ID).
	ID() string
	// Image is the image the sandbox runs.
	Image() string
	// SetLimits applies an execution's limits; it costs nothing when they
	// are the sandbox's current ones.
	SetLimits(ctx context.Context, l Limits) error
	// PutFiles writes files into /workspace, owned by the unprivileged user.
	PutFiles(ctx context.Context, files []tasks.File) error
	// Run runs cmd and returns as soon as its main process exits, whatever
	// its children do: output they write afterwards is not waited for. When
	// ctx ends first, Run kills every process of the command, returns the
	// outcome so far and an error wrapping context.Cause(ctx); the sandbox
	// must then be replaced.
	Run(ctx context.Context, cmd Command) (Outcome, error)
	// Collect returns the regular files under /workspace matching globs,
	// content included while the total stays within maxBytes; matches that
	// cannot be returned carry an Error.
	Collect(ctx context.Context, globs []string, maxBytes int64) ([]tasks.CollectedFile, error)
	// Reset kills every process the last execution left and empties
	// /workspace, /tmp and /dev/shm. It returns an error wrapping ErrDirty,
	// or a runtime error, when that did not succeed; the sandbox must then
	// be replaced.
	Reset(ctx context.Context) error
}

// Info describes a sandbox container found on the engine, whoever created
// it.
type Info struct {
	ID      string
	Image   string
	Owner   string
	Created time.Time
	Running bool
}
