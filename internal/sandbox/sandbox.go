// Package sandbox is the contract between execq's worker and the runtimes
// that run commands in isolation. A Sandbox is one warm, locked-down
// container that serves one execution at a time; a Runtime makes and
// removes them.
//
// Two runtimes implement it on the Docker engine: sandbox/agentrt, whose
// containers run execq's agent as PID 1 and are driven over its protocol,
// and sandbox/dockerexec, which drives each step through `docker exec`.
// Both share the container lifecycle of sandbox/docker. A fake runtime for
// unit tests lives in sandbox/fake; sandbox/sandboxtest is the contract
// suite every runtime passes.
package sandbox

import (
	"context"
	"errors"
	"fmt"
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
	// ErrDirty: a reset could not restore a clean sandbox, or could not
	// verify that it did; replace it.
	ErrDirty = errors.New("sandbox could not be cleaned")
	// ErrStopped: the sandbox stopped while in use (its container was killed
	// or removed from outside, its agent died); replace it.
	ErrStopped = errors.New("sandbox stopped")
	// ErrUnresponsive: the sandbox's agent did not answer within its bound,
	// or answered out of protocol; replace it.
	ErrUnresponsive = errors.New("sandbox does not answer")
	// ErrFixedLimits: the sandbox's limits cannot change once it is created
	// (gVisor's runsc cannot update them); another sandbox, created with
	// the limits, must serve.
	ErrFixedLimits = errors.New("the sandbox's limits cannot change")
)

// Limits are the resource limits of one execution.
type Limits struct {
	MemoryBytes int64
	// NanoCPUs is CPUs × 1e9, as in Docker.
	NanoCPUs int64
	// Pids bounds the processes and threads of the execution.
	Pids int64
}

// Command is one command to run in a sandbox as its unprivileged user.
type Command struct {
	// Cmd is the argv; Cmd[0] is looked up in the environment's PATH.
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
	// KeepOthers makes a kill at the end of ctx spare the processes that
	// ran before the command started and their children: only what the
	// command started (its children, and its orphans) is killed. A
	// session's sandbox runs its commands so.
	KeepOthers bool
}

// StartReason says why a command could not start.
type StartReason string

// Reasons a command could not start.
const (
	// StartNotFound: the program does not exist (a shell says 127).
	StartNotFound StartReason = "not_found"
	// StartDenied: the program exists but cannot be executed (126).
	StartDenied StartReason = "denied"
	// StartWorkDir: the working directory does not exist or is not one.
	StartWorkDir StartReason = "workdir"
	// StartTooLarge: argv and environment are over the kernel's limit.
	StartTooLarge StartReason = "too_large"
	// StartLimit: the sandbox's process limit refused the new process.
	StartLimit StartReason = "limit"
	// StartOther: anything else the engine or the agent refused.
	StartOther StartReason = "other"
)

// StartError is returned by Run when the command could not start. The
// sandbox is intact.
type StartError struct {
	Reason  StartReason
	Message string
}

func (e *StartError) Error() string { return fmt.Sprintf("cannot run the command: %s", e.Message) }

// Outcome is how a command ended.
type Outcome struct {
	// ExitCode is the main process's exit code: 128+N when signal N killed
	// it, as a shell reports it; -1 when it did not end by itself.
	ExitCode int
	// Signal is the signal that killed the main process, or 0.
	Signal int
	// OOMKilled is true when the memory limit killed one of its processes.
	OOMKilled bool
	// Duration is from the start of the command to the exit of its main
	// process (or to its kill).
	Duration time.Duration
	// Resources is nil when the runtime cannot measure them.
	Resources *tasks.Resources
	// Reusable is false when ending the command took the sandbox down with
	// it, as killing its container does; the sandbox must then be replaced.
	// A reusable sandbox is still reset before another execution.
	Reusable bool
}

// CollectSpec says which files Collect returns.
type CollectSpec struct {
	// Globs select the files, relative to /workspace (see tasks.MatchAny).
	Globs []string
	// MaxBytes bounds the content returned; files beyond it are listed
	// with an Error.
	MaxBytes int64
	// MaxEntries bounds the entries returned.
	MaxEntries int
}

// MaxCollectWalk bounds the walk of the workspace a collection makes.
const MaxCollectWalk = 5 * time.Second

// CollectWalk is the time a collection under ctx may walk the workspace:
// MaxCollectWalk, or what is left of ctx's deadline when that is less.
func CollectWalk(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return min(MaxCollectWalk, time.Until(dl))
	}
	return MaxCollectWalk
}

// CollectResult is what Collect returns.
type CollectResult struct {
	Files []tasks.CollectedFile
	// Truncated says why the collection stopped early, or is "".
	Truncated string
}

// ResetReport says what a reset found and did.
type ResetReport struct {
	// Killed counts the processes the last execution left.
	Killed int
	// Removed counts the files, directories and IPC objects removed.
	Removed int
	// Took is how long the reset took, as the sandbox measured it.
	Took time.Duration
}

// Sandbox is one warm container. Its methods are called by one execution
// at a time.
type Sandbox interface {
	// ID names the sandbox (the container ID).
	ID() string
	// Image is the ID of the image the sandbox runs.
	Image() string
	// User is the uid that runs the sandbox's commands; no other sandbox
	// of the engine has it.
	User() int
	// Limits are the sandbox's current limits.
	Limits() Limits
	// SetLimits applies an execution's limits; it costs nothing when they
	// are the sandbox's current ones. A runtime whose limits are fixed at
	// creation returns ErrFixedLimits for others.
	SetLimits(ctx context.Context, l Limits) error
	// PutFiles writes files into /workspace, owned by the sandbox's user.
	PutFiles(ctx context.Context, files []tasks.File) error
	// Run runs cmd and returns as soon as its main process exits, whatever
	// its children do: output they write afterwards is not waited for. A
	// command that cannot start gives a *StartError. When ctx ends first,
	// Run kills every process of the sandbox's user (with cmd.KeepOthers,
	// those the command started) and returns the outcome so far and an
	// error wrapping context.Cause(ctx).
	Run(ctx context.Context, cmd Command) (Outcome, error)
	// KillAll kills every process of the sandbox's user and returns once
	// none is left.
	KillAll(ctx context.Context) error
	// Collect returns the entries under /workspace that match spec:
	// regular files with their content while it fits, everything else
	// (links, FIFOs, files over the cap) with an Error and no content.
	// The caller kills the user's processes first.
	Collect(ctx context.Context, spec CollectSpec) (CollectResult, error)
	// Reset kills every process of the user, empties /workspace, /tmp,
	// /dev/shm and /dev/mqueue, removes System V IPC objects, and verifies
	// all of it. It returns an error wrapping ErrDirty, or another error,
	// when it did not succeed; the sandbox must then be replaced.
	Reset(ctx context.Context) (ResetReport, error)
}

// Image is an image resolved on the engine.
type Image struct {
	// Ref is the reference it was asked for.
	Ref string
	// ID is the image ID; containers are created from it, so that a tag
	// moved since cannot change what runs.
	ID string
	// Volumes are the paths the image declares as volumes.
	Volumes []string
}

// Runtime makes and removes sandboxes on one engine.
type Runtime interface {
	// Create starts a new sandbox of the image named by ref or ID, with
	// limits (zero fields: the runtime's defaults).
	Create(ctx context.Context, image string, limits Limits) (Sandbox, error)
	// Remove removes a sandbox's container; one already gone counts as
	// removed.
	Remove(ctx context.Context, id string) error
	// List returns the containers execq made on the engine, whoever their
	// owner.
	List(ctx context.Context) ([]Info, error)
	// ResolveImage resolves ref to the image present on the engine: an
	// error wrapping ErrImageNotFound or ErrInvalidImage when it cannot.
	ResolveImage(ctx context.Context, ref string) (Image, error)
	// Ping checks that the engine answers.
	Ping(ctx context.Context) error
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
