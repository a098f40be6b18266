//go:build linux

package agent

import (
	"bytes"
	"os"
	"strconv"
)

// process is one entry of /proc.
type process struct {
	pid int
	uid int // real uid
}

// processes lists /proc's processes but the caller. A process that exits
// mid-scan is left out.
func processes() ([]process, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []process
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid == self {
			continue
		}
		uid, ok := realUID(pid)
		if !ok {
			continue
		}
		out = append(out, process{pid: pid, uid: uid})
	}
	return out, nil
}

// realUID reads the real uid of pid from its status.
func realUID(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	_, rest, ok := bytes.Cut(b, []byte("\nUid:"))
	if !ok {
		return 0, false
	}
	fields := bytes.Fields(rest)
	if len(fields) == 0 {
		return 0, false
	}
	uid, err := strconv.Atoi(string(fields[0]))
	return uid, err == nil
}
