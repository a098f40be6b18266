//go:build linux

package agent

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// exitStatus is how a child ended.
type exitStatus struct {
	status unix.WaitStatus
	usage  unix.Rusage
}

// reaper reaps every child of the agent, as PID 1 must: its own commands,
// and every orphan of the sandbox, which the kernel gives to PID 1. It
// waits for children only under mu, so a child whose exit matters is
// watched (under mu, right after its fork) before it can be reaped.
type reaper struct {
	mu       sync.Mutex
	watching map[int]chan exitStatus
	sigs     chan os.Signal
	stop     chan struct{}
	done     chan struct{}
}

func newReaper() *reaper {
	r := &reaper{
		watching: map[int]chan exitStatus{},
		sigs:     make(chan os.Signal, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.run()
	return r
}

// watchLocked returns the channel that gets pid's exit status; the caller
// holds mu, from before the fork.
func (r *reaper) watchLocked(pid int) <-chan exitStatus {
	ch := make(chan exitStatus, 1)
	r.watching[pid] = ch
	return ch
}

func (r *reaper) run() {
	defer close(r.done)
	for {
		select {
		case <-r.sigs:
			r.reap()
		case <-r.stop:
			return
		}
	}
}

// reap waits for every child that has exited.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var es exitStatus
		pid, err := unix.Wait4(-1, &es.status, unix.WNOHANG|unix.WALL, &es.usage)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := r.watching[pid]; ok {
			delete(r.watching, pid)
			ch <- es
		}
	}
}

// await returns pid's exit status, which exited also delivers. It waits in
// wait4 for pid itself, which returns as soon as it exits, sooner than the
// SIGCHLD that wakes the reaper; whichever of the two reaps it, the other
// hands it over.
func (r *reaper) await(pid int, exited <-chan exitStatus) exitStatus {
	var es exitStatus
	for {
		got, err := unix.Wait4(pid, &es.status, unix.WALL, &es.usage)
		if err == unix.EINTR {
			continue
		}
		if err == nil && got == pid {
			r.mu.Lock()
			delete(r.watching, pid)
			r.mu.Unlock()
			return es
		}
		// The reaper got it first (ECHILD).
		return <-exited
	}
}

func (r *reaper) close() {
	signal.Stop(r.sigs)
	close(r.stop)
	<-r.done
}
