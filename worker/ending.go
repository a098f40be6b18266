package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/execq/execq/internal/pool"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/tasks"
)

// ranCommand is what running a command gave: what classify decides from.
type ranCommand struct {
	outcome sandbox.Outcome
	err     error
	// started is false when the command could not start.
	started bool
	// cause is why the command's context ended: errTimedOut, errCanceled,
	// or nil.
	cause error
	// taskEnded: the task's own context ended (the worker is stopping, or
	// lost the task's lease).
	taskEnded bool
	timeout   time.Duration
	memory    int64
	deadline  time.Time
	streamErr error
}

// ending is how an execution ended, and what becomes of its container.
type ending struct {
	status   tasks.Status
	exitCode int
	message  string
	// exited: the command exited by itself, so its files may be collected.
	exited bool
	// retry is an infrastructure failure: the execution runs again.
	retry error
	// requeue: the execution is left to its next attempt, as the worker
	// stops or lost the task.
	requeue bool
	// replace is "" to reuse the container (after its reset), else the
	// cause of its replacement.
	replace string
}

// classify decides how an execution ended from what running its command
// gave. It is pure: every branch is a row of its table test.
func classify(r ranCommand) ending {
	out := r.outcome
	keepOr := func(cause string) string {
		if out.Reusable {
			return ""
		}
		return cause
	}
	var start *sandbox.StartError
	switch {
	case r.err == nil:
		e := ending{exited: true, exitCode: out.ExitCode, status: tasks.StatusFailed, replace: keepOr(pool.CauseError)}
		if out.ExitCode == 0 {
			e.status = tasks.StatusSucceeded
		}
		if out.OOMKilled {
			// Whatever the command made of it, the container ran out.
			e.replace = pool.CauseOOM
			if out.ExitCode != 0 {
				e.status = tasks.StatusOOMKilled
				e.message = fmt.Sprintf("killed by the %d-byte memory limit", r.memory)
			}
		}
		return e
	case errors.As(r.err, &start):
		e := ending{exitCode: -1, replace: keepOr(pool.CauseError)}
		switch start.Reason {
		case sandbox.StartNotFound:
			e.status, e.exitCode = tasks.StatusFailed, 127
		case sandbox.StartDenied, sandbox.StartLimit:
			e.status, e.exitCode = tasks.StatusFailed, 126
		case sandbox.StartWorkDir, sandbox.StartTooLarge:
			e.status, e.message = tasks.StatusRejected, start.Error()
		default:
			return ending{retry: r.err, replace: pool.CauseError}
		}
		return e
	case r.cause == errTimedOut:
		return ending{status: tasks.StatusTimedOut, exitCode: -1, message: fmt.Sprintf("killed after the %s timeout", r.timeout), replace: keepOr(pool.CauseTimeout)}
	case r.cause == errCanceled:
		return ending{status: tasks.StatusCanceled, exitCode: -1, message: "canceled while running; killed", replace: keepOr(pool.CauseCanceled)}
	case r.taskEnded:
		return ending{requeue: true, replace: keepOr(pool.CauseCanceled)}
	}
	return ending{retry: r.err, replace: pool.CauseError}
}
