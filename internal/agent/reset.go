//go:build linux

package agent

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/execq/execq/internal/agent/proto"
)

// ErrDirty is returned when a reset could not make the sandbox clean, or
// could not verify that it is: the sandbox must be replaced.
var ErrDirty = errors.New("the sandbox could not be made clean")

// Sandbox describes the sandbox the agent or the helper cleans.
type Sandbox struct {
	// UID and GID run the sandbox's commands and own its workspace.
	UID, GID int
	// Wipe lists the writable places a reset empties. The first is the
	// workspace, which is given back to UID:GID with mode 0755.
	Wipe []string
	// AsAgent is true in the agent: PID 1, root with CAP_KILL, CAP_CHOWN,
	// CAP_FOWNER and CAP_DAC_OVERRIDE. It is false in the helper, which runs
	// as UID and cleans as the owner of what it cleans.
	AsAgent bool
}

// DefaultWipe is what a reset empties when Sandbox.Wipe is empty.
var DefaultWipe = []string{"/workspace", "/tmp", "/dev/shm", "/dev/mqueue"}

func (s Sandbox) wipeList() []string {
	if len(s.Wipe) == 0 {
		return DefaultWipe
	}
	return s.Wipe
}

// Reset kills every process of the sandbox's user, empties every writable
// place and removes the attributes a tenant may set on it (user.*, ACLs),
// removes every System V IPC object, then checks that all of it holds. It fails, wrapping ErrDirty, when something survives or cannot be
// checked, and when budget runs out.
func (s Sandbox) Reset(budget time.Duration) (proto.ResetReport, error) {
	start := time.Now()
	deadline := start.Add(budget)
	var rep proto.ResetReport
	killed, err := s.KillAll(deadline)
	rep.Killed = killed
	if err != nil {
		return rep, fmt.Errorf("%w: %v", ErrDirty, err)
	}
	for _, dir := range s.wipeList() {
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			continue
		}
		n, err := emptyDir(dir, deadline)
		rep.Removed += n
		if err != nil {
			return rep, fmt.Errorf("%w: %v", ErrDirty, err)
		}
	}
	n, err := removeIPC(s.asOwner)
	rep.Removed += n
	if err != nil {
		return rep, fmt.Errorf("%w: %v", ErrDirty, err)
	}
	if err := s.restoreWorkspace(); err != nil {
		return rep, fmt.Errorf("%w: %v", ErrDirty, err)
	}
	for _, dir := range s.wipeList() {
		n, err := clearAttributes(dir)
		rep.Removed += n
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return rep, fmt.Errorf("%w: %v", ErrDirty, err)
		}
	}
	if err := s.verify(); err != nil {
		return rep, fmt.Errorf("%w: %v", ErrDirty, err)
	}
	rep.Micros = time.Since(start).Microseconds()
	return rep, nil
}

// KillAll kills every process of the sandbox's user and waits, until
// deadline, for all of them to be gone. In the agent that is every process
// but itself; the helper spares itself, root's keepalive and the init.
// It returns how many processes it found to kill.
func (s Sandbox) KillAll(deadline time.Time) (int, error) {
	found := 0
	for i := 0; ; i++ {
		left, err := s.leftovers()
		if err != nil {
			return found, fmt.Errorf("list processes: %w", err)
		}
		if i == 0 {
			found = len(left)
		}
		if len(left) == 0 {
			return found, nil
		}
		if time.Now().After(deadline) {
			return found, fmt.Errorf("%d processes survive SIGKILL (pids %v)", len(left), pidsOf(left))
		}
		// kill(-1) signals every process the caller may signal but itself
		// and init; the kernel refuses a fork to a process with SIGKILL
		// pending, so a fork bomb cannot outrun it.
		if err := unix.Kill(-1, unix.SIGKILL); err != nil && err != unix.ESRCH {
			return found, fmt.Errorf("kill: %w", err)
		}
		// The dead are listed until their parent, or init, reaps them.
		time.Sleep(time.Duration(min(i+1, 20)) * 50 * time.Microsecond)
	}
}

// leftovers lists the processes a reset must kill.
func (s Sandbox) leftovers() ([]process, error) {
	all, err := processes()
	if err != nil {
		return nil, err
	}
	if s.AsAgent {
		return all, nil
	}
	var mine []process
	for _, p := range all {
		if p.uid == s.UID {
			mine = append(mine, p)
		}
	}
	return mine, nil
}

func pidsOf(ps []process) []int {
	out := make([]int, 0, min(len(ps), 10))
	for _, p := range ps[:min(len(ps), 10)] {
		out = append(out, p.pid)
	}
	return out
}

// asOwner runs rm with the effective uid of an IPC object's owner.
func (s Sandbox) asOwner(uid int, rm func() error) error {
	if !s.AsAgent {
		if uid != os.Geteuid() {
			return fmt.Errorf("owned by uid %d, not by the sandbox's user", uid)
		}
		return rm()
	}
	return withEffectiveUID(uid, rm)
}

// withEffectiveUID runs fn on a thread of its own whose effective uid is
// uid, and gives the thread back to root after. Only that thread changes:
// the raw setresuid affects the calling thread alone. With the real and
// saved uids still 0 the capabilities are only suspended, and come back
// with the effective uid 0. A thread that cannot be given back is left
// locked, and the Go runtime ends it with its goroutine.
func withEffectiveUID(uid int, fn func() error) error {
	runtime.LockOSThread()
	const keep = ^uintptr(0)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, keep, uintptr(uid), keep); e != 0 {
		runtime.UnlockOSThread()
		return fmt.Errorf("become uid %d: %w", uid, e)
	}
	err := fn()
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, keep, 0, keep); e != 0 {
		return errors.Join(err, fmt.Errorf("become root again: %w", e))
	}
	runtime.UnlockOSThread()
	return err
}

// restoreWorkspace gives the workspace back to the user with mode 0755:
// the last tenant may have made it unreadable.
func (s Sandbox) restoreWorkspace() error {
	ws := s.wipeList()[0]
	fd, err := unix.Open(ws, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.EACCES {
			if cerr := unix.Chmod(ws, 0o755); cerr != nil {
				return fmt.Errorf("make %s accessible: %w", ws, cerr)
			}
			return nil
		}
		return fmt.Errorf("open %s: %w", ws, err)
	}
	defer unix.Close(fd)
	if s.AsAgent {
		if err := unix.Fchown(fd, s.UID, s.GID); err != nil {
			return fmt.Errorf("give %s to %d:%d: %w", ws, s.UID, s.GID, err)
		}
	}
	if err := unix.Fchmod(fd, 0o755); err != nil {
		return fmt.Errorf("set the mode of %s: %w", ws, err)
	}
	return nil
}

// verify checks what Reset promises: no process, nothing in the writable
// places and no attribute a tenant may set on them, no System V IPC
// object, the workspace the user's with mode 0755.
func (s Sandbox) verify() error {
	var problems []string
	if left, err := s.leftovers(); err != nil || len(left) > 0 {
		problems = append(problems, fmt.Sprintf("processes left: %v (%v)", pidsOf(left), err))
	}
	for _, dir := range s.wipeList() {
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			continue
		}
		empty, err := isEmpty(dir)
		if err != nil || !empty {
			problems = append(problems, fmt.Sprintf("%s not empty (%v)", dir, err))
		}
		if names, err := tenantAttributes(dir); err != nil || len(names) > 0 {
			problems = append(problems, fmt.Sprintf("%s keeps attributes %v (%v)", dir, names, err))
		}
	}
	if left, err := ipcLeft(); err != nil || left != "" {
		problems = append(problems, fmt.Sprintf("System V IPC left: %s (%v)", left, err))
	}
	var st unix.Stat_t
	ws := s.wipeList()[0]
	if err := unix.Lstat(ws, &st); err != nil {
		problems = append(problems, fmt.Sprintf("stat %s: %v", ws, err))
	} else if st.Mode&0o7777 != 0o755 || st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != s.UID {
		problems = append(problems, fmt.Sprintf("%s has mode %o and owner %d", ws, st.Mode, st.Uid))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
