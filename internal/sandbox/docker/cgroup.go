package docker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/execq/execq/tasks"
)

// cgroup reads a container's resource counters on the host. One execution
// at a time runs in a container, so the container's counters, taken around
// the execution, are the execution's.
type cgroup struct {
	v2 bool
	// cpu is cpuacct.usage (ns) on v1, cpu.stat (usage_usec) on v2.
	cpu string
	// peak is memory.max_usage_in_bytes on v1 (reset by writing 0),
	// memory.peak on v2 (reset per open file by writing to it).
	peak string
	// oom is memory.oom_control on v1, memory.events on v2; both count
	// oom_kill.
	oom string
	// usage is memory.usage_in_bytes on v1, memory.current on v2.
	usage string
	// procs is cgroup.procs: the host PIDs of the cgroup's processes.
	procs string
	// hostProc is true when the worker sees the host's /proc: then the
	// container's PIDs can be looked up there.
	hostProc bool

	// files are the counters' files, opened once and read from offset 0
	// for every execution: opening a cgroup file walks its whole path,
	// which cost more than all the reads. Engine.Remove closes them.
	mu    sync.Mutex
	files map[string]*os.File
	// oomEvents is an eventfd the kernel signals at each OOM of the
	// cgroup, and once more when the cgroup is removed (cgroup v1's
	// cgroup.event_control on memory.oom_control); nil where none is.
	oomEvents *os.File
}

// findCgroup locates the cgroup of the container whose init has host PID
// pid, from /proc when the worker shares the host's PID namespace, and
// from the usual paths of Docker's cgroupfs and systemd drivers otherwise.
func findCgroup(root string, pid int, id string) (*cgroup, error) {
	var candidates []*cgroup
	// In a container of its own, the worker's /proc/<pid> is another
	// process: only a cgroup path naming the container is taken.
	if cg, err := cgroupFromProc(root, pid); err == nil && strings.Contains(cg.peak, id) {
		cg.hostProc = true
		candidates = append(candidates, cg)
	}
	for _, rel := range []string{"docker/" + id, "system.slice/docker-" + id + ".scope"} {
		candidates = append(candidates,
			v1Cgroup(filepath.Join(root, "cpuacct", rel), filepath.Join(root, "memory", rel)),
			v1Cgroup(filepath.Join(root, "cpu,cpuacct", rel), filepath.Join(root, "memory", rel)),
			v2Cgroup(filepath.Join(root, rel)),
		)
	}
	for _, cg := range candidates {
		if cg.usable() {
			return cg, nil
		}
	}
	return nil, fmt.Errorf("no readable cgroup for container %s under %s", Short(id), root)
}

func v1Cgroup(cpuDir, memDir string) *cgroup {
	return &cgroup{
		cpu:   filepath.Join(cpuDir, "cpuacct.usage"),
		peak:  filepath.Join(memDir, "memory.max_usage_in_bytes"),
		oom:   filepath.Join(memDir, "memory.oom_control"),
		usage: filepath.Join(memDir, "memory.usage_in_bytes"),
		procs: filepath.Join(memDir, "cgroup.procs"),
	}
}

func v2Cgroup(dir string) *cgroup {
	return &cgroup{
		v2:    true,
		cpu:   filepath.Join(dir, "cpu.stat"),
		peak:  filepath.Join(dir, "memory.peak"),
		oom:   filepath.Join(dir, "memory.events"),
		usage: filepath.Join(dir, "memory.current"),
		procs: filepath.Join(dir, "cgroup.procs"),
	}
}

func cgroupFromProc(root string, pid int) (*cgroup, error) {
	if pid <= 0 {
		return nil, errors.New("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	v1 := map[string]string{}
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v1[""] = parts[2]
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			v1[ctrl] = parts[2]
		}
	}
	mem, okMem := v1["memory"]
	cpu, okCPU := v1["cpuacct"]
	if okMem && okCPU {
		cpuDir := "cpuacct"
		if _, err := os.Stat(filepath.Join(root, cpuDir)); err != nil {
			cpuDir = "cpu,cpuacct"
		}
		return v1Cgroup(filepath.Join(root, cpuDir, cpu), filepath.Join(root, "memory", mem)), nil
	}
	if unified, ok := v1[""]; ok {
		return v2Cgroup(filepath.Join(root, unified)), nil
	}
	return nil, errors.New("no memory or cpu cgroup listed")
}

func (cg *cgroup) usable() bool {
	for _, f := range []string{cg.cpu, cg.peak, cg.oom, cg.usage} {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

// accounting is one execution's measurement.
type accounting struct {
	cg   *cgroup
	cpu0 uint64
	oom0 uint64
	base uint64 // memory held when the execution began
	err  error
}

// begin starts measuring: it resets the peak memory and reads the
// counters. A nil cgroup gives an accounting that measures nothing.
func (cg *cgroup) begin() *accounting {
	a := &accounting{cg: cg}
	if cg == nil {
		return a
	}
	// What was signaled before belongs to earlier executions.
	cg.takeOOMEvents()
	// v1: writing 0 resets the peak to the current usage; v2: writing
	// to memory.peak resets the peak seen through that open file.
	reset := "0"
	if cg.v2 {
		reset = "reset\n"
	}
	_ = cg.write(cg.peak, reset)
	a.cpu0, a.err = cg.readCPU()
	if a.err == nil {
		a.oom0, a.err = cg.readKeyed(cg.oom, "oom_kill")
	}
	if a.err == nil {
		a.base, a.err = cg.readUint(cg.usage)
	}
	return a
}

// end reads the counters again. It returns nil resources when they could
// not be measured, and the number of OOM kills since begin (ok false when
// that is unknown). The peak memory reported is what the execution added
// to what the container held when it began: the agent, the files put in.
func (a *accounting) end() (*tasks.Resources, uint64, bool) {
	if a == nil || a.cg == nil || a.err != nil {
		return nil, 0, false
	}
	// The OOM kills first: the cgroup of a sandbox the memory limit took
	// whole (gVisor's) is removed soon after, and the count is what tells
	// that death from a kill from outside.
	oom, err := a.cg.readKeyed(a.cg.oom, "oom_kill")
	known := err == nil
	if err != nil {
		oom = a.oom0
	}
	ooms := oom - min(a.oom0, oom)
	cpu, err := a.cg.readCPU()
	if err != nil {
		return nil, ooms, known
	}
	peak, err := a.cg.readUint(a.cg.peak)
	if err != nil {
		return nil, ooms, known
	}
	return &tasks.Resources{
		CPUTimeMs:       int64((cpu - min(a.cpu0, cpu)) / 1e6),
		PeakMemoryBytes: int64(peak - min(a.base, peak)),
	}, ooms, known
}

// readCPU returns the CPU time used, in nanoseconds.
func (cg *cgroup) readCPU() (uint64, error) {
	if cg.v2 {
		us, err := cg.readKeyed(cg.cpu, "usage_usec")
		return us * 1000, err
	}
	return cg.readUint(cg.cpu)
}

// file returns the open file at path, opening it the first time.
func (cg *cgroup) file(path string) (*os.File, error) {
	cg.mu.Lock()
	defer cg.mu.Unlock()
	if f := cg.files[path]; f != nil {
		return f, nil
	}
	flag := os.O_RDONLY
	if path == cg.peak {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	if cg.files == nil {
		cg.files = make(map[string]*os.File, 4)
	}
	cg.files[path] = f
	return f, nil
}

// read returns the contents of the file at path, read from its start.
func (cg *cgroup) read(path string) ([]byte, error) {
	f, err := cg.file(path)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func (cg *cgroup) write(path, s string) error {
	f, err := cg.file(path)
	if err != nil {
		return err
	}
	_, err = f.WriteAt([]byte(s), 0)
	return err
}

func (cg *cgroup) readUint(path string) (uint64, error) {
	b, err := cg.read(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}

// readKeyed reads the first value after key from a "key value..." per line
// file.
func (cg *cgroup) readKeyed(path, key string) (uint64, error) {
	b, err := cg.read(path)
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		fields := bytes.Fields(line)
		if len(fields) >= 2 && string(fields[0]) == key {
			return strconv.ParseUint(string(fields[1]), 10, 64)
		}
	}
	// Kernels before 4.13 do not count oom_kill; count none.
	return 0, nil
}

// processes returns the host PIDs of the cgroup's live processes. The
// file is opened for each call: cgroup v1 builds the list at the first
// read of an open file and may serve it again to later reads.
func (cg *cgroup) processes() ([]int, error) {
	b, err := os.ReadFile(cg.procs)
	if err != nil {
		return nil, err
	}
	var pids []int
	for f := range bytes.FieldsSeq(b) {
		pid, err := strconv.Atoi(string(f))
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a PID", cg.procs, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// close closes the counters' files; a later read opens them again.
func (cg *cgroup) close() {
	if cg == nil {
		return
	}
	cg.mu.Lock()
	defer cg.mu.Unlock()
	for path, f := range cg.files {
		_ = f.Close()
		delete(cg.files, path)
	}
	if cg.oomEvents != nil {
		_ = cg.oomEvents.Close()
		cg.oomEvents = nil
	}
}

// watchOOM registers cg.oomEvents, on cgroup v1. Without it, an OOM kill
// that takes the whole container is known only from its counter, which
// goes with the cgroup, and from the engine, which misses some (seen
// under gVisor, whose kernel is one process of the container).
func (cg *cgroup) watchOOM() error {
	if cg.v2 {
		return nil
	}
	oom, err := cg.file(cg.oom)
	if err != nil {
		return err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	events := os.NewFile(uintptr(efd), "oom events")
	control := filepath.Join(filepath.Dir(cg.oom), "cgroup.event_control")
	if err := os.WriteFile(control, fmt.Appendf(nil, "%d %d", efd, oom.Fd()), 0); err != nil {
		events.Close()
		return fmt.Errorf("watch the OOM events of %s: %w", filepath.Dir(cg.oom), err)
	}
	cg.mu.Lock()
	cg.oomEvents = events
	cg.mu.Unlock()
	return nil
}

// takeOOMEvents returns how many times the kernel signaled cg.oomEvents
// since the last call, and resets the count; ok is false without one.
func (cg *cgroup) takeOOMEvents() (n uint64, ok bool) {
	cg.mu.Lock()
	defer cg.mu.Unlock()
	if cg.oomEvents == nil {
		return 0, false
	}
	var b [8]byte
	if _, err := unix.Read(int(cg.oomEvents.Fd()), b[:]); err != nil {
		// EAGAIN: none.
		return 0, true
	}
	return binary.NativeEndian.Uint64(b[:]), true
}

// diedOfOOM reports, for a container seen gone, whether the memory limit
// killed it: ok is false when that cannot be told. The kill signals the
// eventfd before the container dies, and the cgroup's removal once more
// after: two signals, or one while the cgroup is still there, are a kill.
func (a *accounting) diedOfOOM() (oom, ok bool) {
	if a == nil || a.cg == nil {
		return false, false
	}
	n, watched := a.cg.takeOOMEvents()
	if !watched {
		return false, false
	}
	switch {
	case n >= 2:
		return true, true
	case n == 0:
		return false, true
	}
	if _, err := a.cg.read(a.cg.oom); err == nil {
		return true, true
	}
	// Removed: the one signal may be the removal's.
	return false, false
}
