package main

import "github.com/execq/execq/tasks"

// Exit codes of execq's commands, as docker run has them where it has one.
// The README's table lists them all.
const (
	exitNotYet      = 1   // result: no result yet (within --wait); cancel: already finished
	exitNotFound    = 2   // result, tail, cancel: no such execution within the retention period; session show, close: no such session
	exitTimedOut    = 124 // the command ran out of its timeout
	exitExecqFailed = 125 // execq could not run it: a rejected request, an infrastructure failure, a refused write
	exitSessionGone = 128 // run, submit --session: the session admits nothing (closed, lost, or no such session), or was lost meanwhile
	exitCanceled    = 130 // canceled (Ctrl-C, execq cancel)
	exitOOMKilled   = 137 // the memory limit killed it
)

// exitCodeOf is the code run and tail exit with for an execution that
// ended with status: the command's own when it exited by itself (126 and
// 127 included: a program that cannot run, one that does not exist).
func exitCodeOf(status tasks.Status, exitCode int) int {
	switch status {
	case tasks.StatusSucceeded, tasks.StatusFailed:
		return exitCode
	case tasks.StatusTimedOut:
		return exitTimedOut
	case tasks.StatusCanceled:
		return exitCanceled
	case tasks.StatusOOMKilled:
		return exitOOMKilled
	default:
		return exitExecqFailed
	}
}
