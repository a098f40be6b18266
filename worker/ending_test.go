package worker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/execq/execq/internal/pool"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/tasks"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	reusable := func(code int) sandbox.Outcome { return sandbox.Outcome{ExitCode: code, Reusable: true} }
	crashed := fmt.Errorf("run: %w", sandbox.ErrStopped)
	startErr := func(r sandbox.StartReason) error { return &sandbox.StartError{Reason: r, Message: "why"} }
	cases := []struct {
		name string
		in   ranCommand
		want ending
	}{
		{"exit 0", ranCommand{outcome: reusable(0)},
			ending{status: tasks.StatusSucceeded, exitCode: 0, exited: true}},
		{"exit 3", ranCommand{outcome: reusable(3)},
			ending{status: tasks.StatusFailed, exitCode: 3, exited: true}},
		{"killed by a signal it sent itself", ranCommand{outcome: sandbox.Outcome{ExitCode: 137, Signal: 9, Reusable: true}},
			ending{status: tasks.StatusFailed, exitCode: 137, exited: true}},
		{"the memory limit killed it", ranCommand{outcome: sandbox.Outcome{ExitCode: 137, OOMKilled: true, Reusable: true}, memory: 64 << 20},
			ending{status: tasks.StatusOOMKilled, exitCode: 137, exited: true, message: "killed by the 67108864-byte memory limit", replace: pool.CauseOOM}},
		{"a child was OOM-killed, the command exited 0", ranCommand{outcome: sandbox.Outcome{ExitCode: 0, OOMKilled: true, Reusable: true}},
			ending{status: tasks.StatusSucceeded, exitCode: 0, exited: true, replace: pool.CauseOOM}},
		{"exited, sandbox not reusable", ranCommand{outcome: sandbox.Outcome{ExitCode: 0}},
			ending{status: tasks.StatusSucceeded, exitCode: 0, exited: true, replace: pool.CauseError}},
		{"program not found", ranCommand{outcome: reusable(-1), err: startErr(sandbox.StartNotFound)},
			ending{status: tasks.StatusFailed, exitCode: 127}},
		{"program not executable", ranCommand{outcome: reusable(-1), err: startErr(sandbox.StartDenied)},
			ending{status: tasks.StatusFailed, exitCode: 126}},
		{"no process left to start it", ranCommand{outcome: reusable(-1), err: startErr(sandbox.StartLimit)},
			ending{status: tasks.StatusFailed, exitCode: 126}},
		{"working directory missing", ranCommand{outcome: reusable(-1), err: startErr(sandbox.StartWorkDir)},
			ending{status: tasks.StatusRejected, exitCode: -1, message: "cannot run the command: why"}},
		{"argv too large", ranCommand{outcome: reusable(-1), err: startErr(sandbox.StartTooLarge)},
			ending{status: tasks.StatusRejected, exitCode: -1, message: "cannot run the command: why"}},
		{"engine refused for another reason", ranCommand{outcome: reusable(-1), err: startErr(sandbox.StartOther)},
			ending{retry: startErr(sandbox.StartOther), replace: pool.CauseError}},
		{"timed out, killed in place", ranCommand{outcome: reusable(-1), err: errTimedOut, cause: errTimedOut, timeout: 2 * time.Second},
			ending{status: tasks.StatusTimedOut, exitCode: -1, message: "killed after the 2s timeout"}},
		{"timed out, killed with its container", ranCommand{outcome: sandbox.Outcome{ExitCode: -1}, err: errTimedOut, cause: errTimedOut, timeout: time.Second},
			ending{status: tasks.StatusTimedOut, exitCode: -1, message: "killed after the 1s timeout", replace: pool.CauseTimeout}},
		{"canceled", ranCommand{outcome: reusable(-1), err: errCanceled, cause: errCanceled},
			ending{status: tasks.StatusCanceled, exitCode: -1, message: "canceled while running; killed"}},
		{"canceled, killed with its container", ranCommand{outcome: sandbox.Outcome{}, err: errCanceled, cause: errCanceled},
			ending{status: tasks.StatusCanceled, exitCode: -1, message: "canceled while running; killed", replace: pool.CauseCanceled}},
		{"the worker stops", ranCommand{outcome: reusable(-1), err: errors.New("context canceled"), taskEnded: true},
			ending{requeue: true}},
		{"the container died", ranCommand{outcome: sandbox.Outcome{ExitCode: -1}, err: crashed},
			ending{retry: crashed, replace: pool.CauseError}},
	}
	for _, c := range cases {
		got := classify(c.in)
		if got.retry != nil && c.want.retry != nil && got.retry.Error() == c.want.retry.Error() {
			got.retry = c.want.retry
		}
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}
