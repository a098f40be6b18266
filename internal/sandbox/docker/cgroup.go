package docker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
	// hostProc is true when the worker sees the host's /proc: then the
	// container's PIDs can be looked up there.
	hostProc bool
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
	}
}

func v2Cgroup(dir string) *cgroup {
	return &cgroup{
		v2:    true,
		cpu:   filepath.Join(dir, "cpu.stat"),
		peak:  filepath.Join(dir, "memory.peak"),
		oom:   filepath.Join(dir, "memory.events"),
		usage: filepath.Join(dir, "memory.current"),
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
	cg       *cgroup
	cpu0     uint64
	oom0     uint64
	base     uint64   // memory held when the execution began
	peakFile *os.File // v2: the open memory.peak whose peak was reset
	err      error
}

// begin starts measuring: it resets the peak memory and reads the
// counters. A nil cgroup gives an accounting that measures nothing.
func (cg *cgroup) begin() *accounting {
	a := &accounting{cg: cg}
	if cg == nil {
		return a
	}
	if cg.v2 {
		f, err := os.OpenFile(cg.peak, os.O_RDWR, 0)
		if err == nil {
			if _, err = f.Write([]byte("reset\n")); err != nil {
				f.Close()
			} else {
				a.peakFile = f
			}
		}
	} else {
		// Writing 0 resets the peak to the current usage.
		_ = os.WriteFile(cg.peak, []byte("0"), 0)
	}
	a.cpu0, a.err = cg.readCPU()
	if a.err == nil {
		a.oom0, a.err = readKeyed(cg.oom, "oom_kill")
	}
	if a.err == nil {
		a.base, a.err = readUint(cg.usage)
	}
	return a
}

// end reads the counters again. It returns nil resources when they could
// not be measured, and the number of OOM kills since begin (ok false when
// that is unknown). The peak memory reported is what the execution added
// to what the container held when it began: the agent, the files put in.
func (a *accounting) end() (*tasks.Resources, uint64, bool) {
	if a == nil {
		return nil, 0, false
	}
	if a.peakFile != nil {
		defer a.peakFile.Close()
	}
	if a.cg == nil || a.err != nil {
		return nil, 0, false
	}
	cpu, err := a.cg.readCPU()
	if err != nil {
		return nil, 0, false
	}
	var peak uint64
	if a.peakFile != nil {
		peak, err = readUintAt(a.peakFile)
	} else {
		peak, err = readUint(a.cg.peak)
	}
	if err != nil {
		return nil, 0, false
	}
	oom, err := readKeyed(a.cg.oom, "oom_kill")
	known := err == nil
	if err != nil {
		oom = a.oom0
	}
	return &tasks.Resources{
		CPUTimeMs:       int64((cpu - min(a.cpu0, cpu)) / 1e6),
		PeakMemoryBytes: int64(peak - min(a.base, peak)),
	}, oom - min(a.oom0, oom), known
}

// readCPU returns the CPU time used, in nanoseconds.
func (cg *cgroup) readCPU() (uint64, error) {
	if cg.v2 {
		us, err := readKeyed(cg.cpu, "usage_usec")
		return us * 1000, err
	}
	return readUint(cg.cpu)
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}

func readUintAt(f *os.File) (uint64, error) {
	buf := make([]byte, 64)
	n, err := f.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(buf[:n])), 10, 64)
}

// readKeyed reads the first value after key from a "key value..." per line
// file.
func readKeyed(path, key string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == key {
			return strconv.ParseUint(fields[1], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	// Kernels before 4.13 do not count oom_kill; count none.
	return 0, nil
}
