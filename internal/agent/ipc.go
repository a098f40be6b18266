//go:build linux

package agent

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ipcKinds are the System V IPC object kinds, with their /proc listing and
// the syscall that removes one.
var ipcKinds = []struct {
	name string
	list string
	rm   func(id int) error
}{
	{"shared memory segment", "/proc/sysvipc/shm", func(id int) error {
		_, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		return err
	}},
	{"message queue", "/proc/sysvipc/msg", func(id int) error {
		_, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), unix.IPC_RMID, 0)
		return errnoErr(e)
	}},
	{"semaphore set", "/proc/sysvipc/sem", func(id int) error {
		_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, unix.IPC_RMID, 0, 0, 0)
		return errnoErr(e)
	}},
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// ipcObject is one System V IPC object of a listing.
type ipcObject struct {
	id  int
	uid int // owner
}

// listIPC reads a /proc/sysvipc listing: a header line, then one line per
// object whose second field is its id and whose uid follows the mode and
// (for shm) the size and pids, at a column the header names.
func listIPC(path string) ([]ipcObject, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return nil, sc.Err()
	}
	header := strings.Fields(sc.Text())
	idCol, uidCol := -1, -1
	for i, h := range header {
		switch h {
		case "shmid", "msqid", "semid":
			idCol = i
		case "uid":
			uidCol = i
		}
	}
	if idCol < 0 || uidCol < 0 {
		return nil, fmt.Errorf("%s: unexpected header %q", path, sc.Text())
	}
	var out []ipcObject
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) <= max(idCol, uidCol) {
			continue
		}
		id, err1 := strconv.Atoi(f[idCol])
		uid, err2 := strconv.Atoi(f[uidCol])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: unexpected line %q", path, sc.Text())
		}
		out = append(out, ipcObject{id: id, uid: uid})
	}
	return out, sc.Err()
}

// removeIPC removes every System V IPC object. Only an object's owner (or
// CAP_SYS_ADMIN, which no sandbox holds) may remove it: asOwner runs rm
// with the owner's effective uid.
func removeIPC(asOwner func(uid int, rm func() error) error) (int, error) {
	removed := 0
	for _, k := range ipcKinds {
		objs, err := listIPC(k.list)
		if err != nil {
			return removed, err
		}
		for _, o := range objs {
			if err := asOwner(o.uid, func() error { return k.rm(o.id) }); err != nil && err != unix.EINVAL && err != unix.EIDRM {
				return removed, fmt.Errorf("remove %s %d of uid %d: %w", k.name, o.id, o.uid, err)
			}
			removed++
		}
	}
	return removed, nil
}

// ipcLeft describes the System V IPC objects that exist, or is "".
func ipcLeft() (string, error) {
	var left []string
	for _, k := range ipcKinds {
		objs, err := listIPC(k.list)
		if err != nil {
			return "", err
		}
		if len(objs) > 0 {
			left = append(left, fmt.Sprintf("%d %s(s)", len(objs), k.name))
		}
	}
	return strings.Join(left, ", "), nil
}
