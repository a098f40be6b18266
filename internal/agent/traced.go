//go:build linux

package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/execq/execq/internal/agent/proto"
)

// Where the kernel lets the agent trace its own children (runc does,
// gVisor of 2022 does not), it starts a command with no launcher: the child
// stops at its exec (PTRACE_TRACEME), before the command's first
// instruction, the agent sets its resource limits and raises its OOM score,
// and lets it go. It saves the launcher's start, about 3 ms of a Go
// runtime's, on every execution.

// probeTracing reports whether the agent can trace a child of its own
// started as commands are: as the sandbox's user, in a session of its own.
// (gVisor of 2022 lets a root child be traced, but refuses the exec of one
// that changed its credentials.)
func probeTracing(self string, sb Sandbox) bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer null.Close()
	pid, err := syscall.ForkExec(self, []string{"execq-agent", "version"}, &syscall.ProcAttr{
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd()},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Credential: &syscall.Credential{Uid: uint32(sb.UID), Gid: uint32(sb.GID), Groups: []uint32{}},
			Ptrace:     true,
		},
	})
	if err != nil {
		return false
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
		return false
	}
	ok := unix.PtraceDetach(pid) == nil
	_, _ = unix.Wait4(pid, &ws, unix.WALL, nil)
	return ok
}

// spawnTraced starts x as the sandbox's user, readies it at its exec and
// lets it go. The caller holds the reaper's lock, so that nothing reaps the
// child's stop; it gets the channel of its exit.
func (s *Server) spawnTraced(x proto.Exec, env []string, files []uintptr) (int, <-chan exitStatus, *proto.Failed) {
	sb := s.cfg.Sandbox
	if fi, err := os.Stat(x.Dir); err != nil || !fi.IsDir() {
		why := "not a directory"
		if err != nil {
			why = reason(err)
		}
		return 0, nil, &proto.Failed{Kind: proto.FailWorkDir, Message: "working directory " + x.Dir + ": " + why}
	}
	program, failed := lookPath(x.Argv[0], x.Dir, env)
	if failed != nil {
		return 0, nil, failed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, err := withCommandSlack(func() (int, error) {
		return syscall.ForkExec(program, x.Argv, &syscall.ProcAttr{
			Dir:   x.Dir,
			Env:   env,
			Files: files,
			Sys: &syscall.SysProcAttr{
				Setsid:     true,
				Credential: &syscall.Credential{Uid: uint32(sb.UID), Gid: uint32(sb.GID), Groups: []uint32{}},
				Ptrace:     true,
			},
		})
	})
	if err != nil {
		return 0, nil, execFailure(x.Argv[0], err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		return 0, nil, &proto.Failed{Kind: proto.FailOther, Message: "wait for the command's start: " + err.Error()}
	}
	if !ws.Stopped() {
		// It died before its first instruction (killed with everything
		// else); this wait reaped it.
		ch := make(chan exitStatus, 1)
		ch <- exitStatus{status: ws}
		return pid, ch, nil
	}
	err = s.ready(pid, x.Rlimits)
	if derr := unix.PtraceDetach(pid); derr != nil && err == nil {
		err = derr
	}
	exited := s.reaper.watchLocked(pid)
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		return 0, nil, &proto.Failed{Kind: proto.FailOther, Message: "ready the command: " + err.Error()}
	}
	return pid, exited, nil
}

// ready sets a stopped child's OOM score and resource limits. A process of
// another uid's limits may be set by a caller whose real uid is the
// target's: the tracing thread takes it for the call, keeping its
// effective uid 0 and so its capabilities, and gives it back.
func (s *Server) ready(pid int, limits []proto.Rlimit) error {
	if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte(strconv.Itoa(oomScoreAdj)), 0); err != nil {
		return fmt.Errorf("oom score: %w", err)
	}
	if len(limits) == 0 {
		return nil
	}
	sb := s.cfg.Sandbox
	const keep = ^uintptr(0)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(sb.GID), keep, keep); e != 0 {
		return fmt.Errorf("take gid %d: %w", sb.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(sb.UID), keep, keep); e != 0 {
		_, _, _ = unix.RawSyscall(unix.SYS_SETRESGID, 0, keep, keep)
		return fmt.Errorf("take uid %d: %w", sb.UID, e)
	}
	var err error
	for _, l := range limits {
		lim := unix.Rlimit{Cur: l.Soft, Max: l.Hard}
		if _, _, e := unix.RawSyscall6(unix.SYS_PRLIMIT64, uintptr(pid), uintptr(l.Resource), uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
			err = fmt.Errorf("resource limit %d: %w", l.Resource, e)
			break
		}
	}
	_, _, e1 := unix.RawSyscall(unix.SYS_SETRESUID, 0, keep, keep)
	_, _, e2 := unix.RawSyscall(unix.SYS_SETRESGID, 0, keep, keep)
	if e1 != 0 || e2 != 0 {
		// The thread stays locked and the Go runtime ends it.
		runtime.LockOSThread()
		return errors.Join(err, fmt.Errorf("give the real uid and gid back: %v %v", e1, e2))
	}
	return err
}

// lookPath finds argv0 as a shell would, in env's PATH, relative names
// against dir.
func lookPath(argv0, dir string, env []string) (string, *proto.Failed) {
	notFound := &proto.Failed{Kind: proto.FailNotFound, Message: argv0 + ": executable file not found in $PATH"}
	check := func(p string) (bool, *proto.Failed) {
		full := p
		if !filepath.IsAbs(full) {
			full = filepath.Join(dir, full)
		}
		fi, err := os.Stat(full)
		if err != nil {
			return false, nil
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false, &proto.Failed{Kind: proto.FailDenied, Message: argv0 + ": permission denied"}
		}
		return true, nil
	}
	if strings.Contains(argv0, "/") {
		if ok, denied := check(argv0); ok {
			return argv0, nil
		} else if denied != nil {
			return "", denied
		}
		return "", &proto.Failed{Kind: proto.FailNotFound, Message: argv0 + ": no such file or directory"}
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	var denied *proto.Failed
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, argv0)
		if !filepath.IsAbs(d) {
			p = "./" + p
		}
		ok, den := check(p)
		if ok {
			return p, nil
		}
		if den != nil && denied == nil {
			denied = den
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", notFound
}

// execFailure says why a traced start failed.
func execFailure(argv0 string, err error) *proto.Failed {
	switch {
	case errors.Is(err, unix.E2BIG):
		return &proto.Failed{Kind: proto.FailTooLarge, Message: "the command's arguments and environment are over the kernel's limit (E2BIG)"}
	case errors.Is(err, unix.EAGAIN):
		return &proto.Failed{Kind: proto.FailLimit, Message: "no new process: the sandbox's process limit is reached (" + err.Error() + ")"}
	case errors.Is(err, unix.ENOENT):
		return &proto.Failed{Kind: proto.FailNotFound, Message: argv0 + ": " + reason(err) + " (a missing interpreter?)"}
	case errors.Is(err, unix.ENOTDIR):
		return &proto.Failed{Kind: proto.FailWorkDir, Message: "working directory: " + reason(err)}
	}
	return &proto.Failed{Kind: proto.FailDenied, Message: argv0 + ": " + reason(err)}
}
