package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// Intrude starts a process on the host and moves it into every cgroup of
// the container id: a process of the container that no process inside can
// see, as a stuck exec of the engine would be. It is killed when the test
// ends.
func Intrude(t testing.TB, c *client.Client, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := c.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("inspect container %s: %v", id, err)
	}
	if info.State == nil || info.State.Pid <= 0 {
		t.Fatalf("container %s has no main process", id)
	}
	dirs, err := cgroupDirs(info.State.Pid)
	if err != nil {
		t.Fatalf("cgroups of container %s: %v", id, err)
	}
	intruder := exec.Command("sleep", "300")
	if err := intruder.Start(); err != nil {
		t.Fatalf("start the intruder: %v", err)
	}
	t.Cleanup(func() {
		_ = intruder.Process.Kill()
		_ = intruder.Wait()
	})
	pid := strconv.Itoa(intruder.Process.Pid)
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(pid), 0); err != nil {
			t.Fatalf("move the intruder into %s: %v", dir, err)
		}
	}
	return intruder.Process.Pid
}

// cgroupDirs lists the cgroup directories of host PID pid, one per
// hierarchy, from /proc/PID/cgroup.
func cgroupDirs(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	var dirs []string
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrl := strings.TrimPrefix(parts[1], "name=")
		dir := filepath.Join("/sys/fs/cgroup", ctrl, parts[2])
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			// A hierarchy mounted under another name (cpu,cpuacct as
			// cpuacct) or not at all.
			continue
		}
		dirs = append(dirs, dir)
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("no cgroup directory of PID %d under /sys/fs/cgroup", pid)
	}
	return dirs, nil
}
