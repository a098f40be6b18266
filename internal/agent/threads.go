//go:build linux

package agent

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// DropBoundingSet empties the capability bounding set of every thread of
// the process, so that no child, whatever it executes, can ever hold a
// capability; the agent keeps its own. It needs CAP_SETPCAP.
func DropBoundingSet() error {
	for c := 0; c <= 63; c++ {
		_, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0)
		if e == unix.EINVAL {
			return nil // past the last capability the kernel knows
		}
		if e != 0 {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, e)
		}
	}
	return nil
}

// ReserveThreads makes the Go runtime create n OS threads now and keep
// them idle, so that it never needs a new one later: in a sandbox whose
// process limit a fork bomb exhausts, creating a thread fails, and the Go
// runtime dies of it. Each goroutine holds its thread until all have one.
func ReserveThreads(n int) {
	var ready, release sync.WaitGroup
	ready.Add(n)
	release.Add(1)
	for range n {
		go func() {
			runtime.LockOSThread()
			ready.Done()
			release.Wait()
			runtime.UnlockOSThread()
		}()
	}
	ready.Wait()
	release.Done()
}
