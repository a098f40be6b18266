package worker

import (
	"time"

	"github.com/execq/execq/tasks"
)

// Observer is told what the worker does; the metrics package implements it.
// Its methods must be quick and safe for concurrent use.
type Observer interface {
	// ExecutionFinished: an execution got its result.
	ExecutionFinished(status tasks.Status, queued, ran time.Duration)
	// OutputWritten: an execution's command wrote this much output.
	OutputWritten(stdoutBytes, stderrBytes int64, truncated bool)
	// StreamAppended: output events were appended to a stream.
	StreamAppended(d time.Duration, entries int, err error)
	// ContainerReplaced: a container was removed to be replaced.
	ContainerReplaced(cause string)
	// ContainerCreated: a container was created (or failed to be).
	ContainerCreated(d time.Duration, err error)
	// ColdStart: an execution found no idle container of its image, and
	// one is created for it.
	ColdStart(image string)
	// SandboxReset: a sandbox was reset between executions (err: it
	// failed, and the sandbox is replaced).
	SandboxReset(d time.Duration, err error)
	// EngineUp: whether the container engine answered the last check.
	EngineUp(up bool)
	// SessionOpened: a session was opened on this worker.
	SessionOpened()
	// SessionsOpen: the worker holds n sessions now.
	SessionsOpen(n int)
	// SessionClosed: a session ended, for cause (tasks.CauseClosed,
	// CauseIdle, CauseLifetime, CauseLost).
	SessionClosed(cause string)
}

type nopObserver struct{}

func (nopObserver) ExecutionFinished(tasks.Status, time.Duration, time.Duration) {}
func (nopObserver) OutputWritten(int64, int64, bool)                             {}
func (nopObserver) StreamAppended(time.Duration, int, error)                     {}
func (nopObserver) ContainerReplaced(string)                                     {}
func (nopObserver) ContainerCreated(time.Duration, error)                        {}
func (nopObserver) ColdStart(string)                                             {}
func (nopObserver) SandboxReset(time.Duration, error)                            {}
func (nopObserver) EngineUp(bool)                                                {}
func (nopObserver) SessionOpened()                                               {}
func (nopObserver) SessionsOpen(int)                                             {}
func (nopObserver) SessionClosed(string)                                         {}
