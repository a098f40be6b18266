//go:build linux

package agent

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Snapshot records the processes that run at one moment, by PID and start
// time (so that a PID reused since is not taken for them).
type Snapshot map[int]uint64

// Snapshot records the processes of the sandbox's user that run now.
func (s Sandbox) Snapshot() (Snapshot, error) {
	ps, err := s.leftovers()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	snap := make(Snapshot, len(ps))
	for _, p := range ps {
		if st, ok := readStat(p.pid); ok {
			snap[p.pid] = st.start
		}
	}
	return snap, nil
}

// KillNew kills the processes of the sandbox's user that were not in
// before and descend from none of its processes still running: what one
// command started, in a sandbox that keeps what earlier commands left
// running. Orphans of the command have been reparented to the agent (or
// the init) and so descend from nothing of before. It waits, until
// deadline, for them to be gone (reaped), and returns how many it found.
func (s Sandbox) KillNew(before Snapshot, deadline time.Time) (int, error) {
	found := 0
	for i := 0; ; i++ {
		victims, err := s.newProcesses(before)
		if err != nil {
			return found, fmt.Errorf("list processes: %w", err)
		}
		if i == 0 {
			found = len(victims)
		}
		if len(victims) == 0 {
			return found, nil
		}
		if time.Now().After(deadline) {
			return found, fmt.Errorf("%d processes survive SIGKILL (pids %v)", len(victims), victims[:min(len(victims), 10)])
		}
		for _, pid := range victims {
			// A process with SIGKILL pending cannot fork: each round
			// leaves fewer to kill.
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(time.Duration(min(i+1, 20)) * 50 * time.Microsecond)
	}
}

// newProcesses lists the processes KillNew kills.
func (s Sandbox) newProcesses(before Snapshot) ([]int, error) {
	ps, err := s.leftovers()
	if err != nil {
		return nil, err
	}
	stats := make(map[int]procStat, len(ps))
	for _, p := range ps {
		// A zombie counts until it is reaped: a test with kill -0, or a
		// process that waits on its PID, still sees it.
		if st, ok := readStat(p.pid); ok {
			stats[p.pid] = st
		}
	}
	kept := make(map[int]bool, len(stats))
	var keptBy func(pid int, depth int) bool
	keptBy = func(pid int, depth int) bool {
		if v, ok := kept[pid]; ok {
			return v
		}
		st, ok := stats[pid]
		if !ok || depth > len(stats) {
			return false
		}
		v := false
		if start, was := before[pid]; was && start == st.start {
			v = true
		} else {
			v = keptBy(st.ppid, depth+1)
		}
		kept[pid] = v
		return v
	}
	var victims []int
	for pid := range stats {
		if !keptBy(pid, 0) {
			victims = append(victims, pid)
		}
	}
	return victims, nil
}

// procStat is what /proc/PID/stat says of a process.
type procStat struct {
	state byte
	ppid  int
	start uint64 // clock ticks after boot
}

// readStat reads /proc/PID/stat. The command name, in parentheses, may hold
// anything; the fields after its last ')' are the kernel's.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	// After ") ": state (field 3), ppid (4), …, starttime (22).
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	start, err2 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil || len(f[0]) == 0 {
		return procStat{}, false
	}
	return procStat{state: f[0][0], ppid: ppid, start: start}, true
}
