//go:build linux

package agent

import (
	"fmt"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ThreadSlack is the timer slack the agent's threads sleep with. The Go
// runtime's system monitor, a thread of every Go program, sleeps 20 µs at
// a time while the program is busy; with the kernel's default slack
// (50 µs) it woke about 35 times per execution, a context switch each,
// more than the rest of the agent together. With a slack of a millisecond
// it wakes once or twice in each busy stretch. The agent's own timers lose
// nothing: the runtime's poller waits in whole milliseconds.
const ThreadSlack = time.Millisecond

// commandSlack is the timer slack commands start with: the one the agent
// was started with, which the image's processes would have had.
var commandSlack uintptr

// SlackenThreads gives every thread of the agent, and those it creates
// later, the timer slack ThreadSlack; commands still start with the slack
// the agent had (see withCommandSlack). A kernel without timer slack
// (gVisor's) has nothing to set. It needs a program without cgo.
func SlackenThreads() error {
	cur, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err == unix.EINVAL {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the timer slack: %w", err)
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_TIMERSLACK, uintptr(ThreadSlack.Nanoseconds()), 0); e != 0 {
		return fmt.Errorf("set the timer slack of the agent's threads: %w", e)
	}
	commandSlack = uintptr(cur)
	return nil
}

// withCommandSlack runs fork, which starts a command from the calling
// thread, on that thread with its timer slack set to the one commands
// start with: the child inherits it.
func withCommandSlack[T any](fork func() (T, error)) (T, error) {
	if commandSlack == 0 {
		return fork()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, commandSlack, 0, 0, 0); err != nil {
		var zero T
		return zero, fmt.Errorf("set the timer slack commands start with: %w", err)
	}
	defer func() { _ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(ThreadSlack.Nanoseconds()), 0, 0, 0) }()
	return fork()
}
