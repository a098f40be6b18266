//go:build linux

package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/execq/execq/internal/agent/proto"
)

// execution is the command in progress.
type execution struct {
	s        *Server
	pid      int
	keep     Snapshot // with Exec.KeepOthers: what a kill spares
	killed   atomic.Bool
	finished atomic.Bool // set before the Exit is sent

	stdinMu   sync.Mutex
	stdinCh   chan []byte // nil without input; closed once finished
	stdinW    *os.File
	stdinDone chan struct{} // closed when writeStdin returns
}

// startExec starts x as the sandbox's user, traced or through the
// launcher, and answers Started or Failed.
func (s *Server) startExec(x proto.Exec) error {
	var p pipes
	defer p.closeChild()
	stdin, stdinW, err := p.input(x.Stdin)
	if err != nil {
		return s.failed(proto.FailOther, err.Error())
	}
	stdoutR, stdoutW, err := p.output()
	if err != nil {
		p.closeParent()
		return s.failed(proto.FailOther, err.Error())
	}
	stderrR, stderrW, err := p.output()
	if err != nil {
		p.closeParent()
		return s.failed(proto.FailOther, err.Error())
	}
	var keep Snapshot
	if x.KeepOthers {
		if keep, err = s.cfg.Sandbox.Snapshot(); err != nil {
			p.closeParent()
			return s.failed(proto.FailOther, err.Error())
		}
	}
	oom0 := -1
	if x.CountOOMKills {
		oom0 = oomKills()
	}
	env := mergeEnv(os.Environ(), x.Env)
	files := []uintptr{stdin.Fd(), stdoutW.Fd(), stderrW.Fd()}
	var pid int
	var exited <-chan exitStatus
	var failed *proto.Failed
	if s.traced {
		s.reaper.mu.Lock()
		pid, exited, failed = s.spawnTraced(x, env, files)
		s.reaper.mu.Unlock()
	} else {
		pid, exited, failed = s.spawnLaunched(x, env, files)
	}
	if failed != nil {
		p.closeParent()
		return s.sendJSON(proto.TFailed, failed)
	}
	return s.running(pid, keep, exited, oom0, stdinW, stdoutR, stderrR)
}

// pipes holds a command's descriptors: the child's ends, closed here once
// it has them, and the agent's.
type pipes struct {
	child, parent []*os.File
}

// input is the command's standard input: a pipe the agent writes, or
// /dev/null.
func (p *pipes) input(piped bool) (child, parent *os.File, err error) {
	if !piped {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return nil, nil, err
		}
		p.child = append(p.child, f)
		return f, nil, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("pipe: %w", err)
	}
	p.child, p.parent = append(p.child, r), append(p.parent, w)
	return r, w, nil
}

// output is a pipe the command writes and the agent reads.
func (p *pipes) output() (parent, child *os.File, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("pipe: %w", err)
	}
	p.child, p.parent = append(p.child, w), append(p.parent, r)
	return r, w, nil
}

func (p *pipes) closeChild() {
	for _, f := range p.child {
		f.Close()
	}
	p.child = nil
}

func (p *pipes) closeParent() {
	for _, f := range p.parent {
		f.Close()
	}
	p.parent = nil
}

// spawnLaunched starts x through the launcher (execq-agent launch), which
// readies it as the user before it execs.
func (s *Server) spawnLaunched(x proto.Exec, env []string, files []uintptr) (int, <-chan exitStatus, *proto.Failed) {
	sb := s.cfg.Sandbox
	specR, specW, err := os.Pipe()
	if err != nil {
		return 0, nil, &proto.Failed{Kind: proto.FailOther, Message: "pipe: " + err.Error()}
	}
	defer specW.Close()
	reportR, reportW, err := os.Pipe()
	if err != nil {
		specR.Close()
		return 0, nil, &proto.Failed{Kind: proto.FailOther, Message: "pipe: " + err.Error()}
	}
	defer reportR.Close()
	s.reaper.mu.Lock()
	pid, err := withCommandSlack(func() (int, error) {
		return syscall.ForkExec(s.cfg.Launcher, []string{"execq-agent", "launch"}, &syscall.ProcAttr{
			Dir:   "/",
			Env:   env,
			Files: append(files, specR.Fd(), reportW.Fd()),
			Sys: &syscall.SysProcAttr{
				Setsid:     true,
				Credential: &syscall.Credential{Uid: uint32(sb.UID), Gid: uint32(sb.GID), Groups: []uint32{}},
			},
		})
	})
	var exited <-chan exitStatus
	if err == nil {
		exited = s.reaper.watchLocked(pid)
	}
	s.reaper.mu.Unlock()
	specR.Close()
	reportW.Close()
	if err != nil {
		kind, msg := forkFailure(err)
		return 0, nil, &proto.Failed{Kind: kind, Message: msg}
	}
	spec, _ := json.Marshal(launchSpec{Argv: x.Argv, Dir: x.Dir, Rlimits: x.Rlimits, OOMScoreAdj: oomScoreAdj})
	_, _ = specW.Write(spec)
	specW.Close()
	_ = reportR.SetReadDeadline(time.Now().Add(launchTimeout))
	report, rerr := io.ReadAll(io.LimitReader(reportR, 64<<10))
	if len(report) == 0 && rerr == nil {
		return pid, exited, nil
	}
	var f proto.Failed
	if err := json.Unmarshal(report, &f); err != nil || f.Kind == "" {
		f = proto.Failed{Kind: proto.FailOther, Message: fmt.Sprintf("the launcher failed: %v %q", rerr, report)}
	}
	if rerr != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	<-exited
	return 0, nil, &f
}

// running tracks a started command, answers Started, and streams its
// output until its exit.
func (s *Server) running(pid int, keep Snapshot, exited <-chan exitStatus, oom0 int, stdinW, stdoutR, stderrR *os.File) error {
	e := &execution{s: s, pid: pid, keep: keep}
	if stdinW != nil {
		e.stdinCh = make(chan []byte, proto.StdinWindow/proto.DataChunk+2)
		e.stdinW = stdinW
		e.stdinDone = make(chan struct{})
		go e.writeStdin(stdinW)
	}
	s.exec = e
	if err := s.sendJSON(proto.TStarted, proto.Started{Pid: pid}); err != nil {
		return err
	}
	stdout := newOutput(s, proto.TStdout, stdoutR)
	stderr := newOutput(s, proto.TStderr, stderrR)
	go e.wait(exited, oom0, stdout, stderr)
	return nil
}

// launchTimeout bounds the launcher's work before the command runs.
const launchTimeout = 10 * time.Second

func (s *Server) failed(kind, msg string) error {
	return s.sendJSON(proto.TFailed, proto.Failed{Kind: kind, Message: msg})
}

func forkFailure(err error) (string, string) {
	switch {
	case errors.Is(err, unix.EAGAIN):
		return proto.FailLimit, "no new process: the sandbox's process limit is reached (" + err.Error() + ")"
	case errors.Is(err, unix.E2BIG):
		return proto.FailTooLarge, "the command's environment is over the kernel's limit (E2BIG)"
	}
	return proto.FailOther, "start the launcher: " + err.Error()
}

// wait waits for the main process to exit, sends what output it wrote and
// then the Exit.
func (e *execution) wait(exited <-chan exitStatus, oom0 int, outs ...*output) {
	es := e.s.reaper.await(e.pid, exited)
	for _, o := range outs {
		o.drain()
	}
	exit := proto.Exit{
		Code:        -1,
		Killed:      e.killed.Load(),
		CPUMicros:   es.usage.Utime.Nano()/1000 + es.usage.Stime.Nano()/1000,
		MaxRSSBytes: es.usage.Maxrss << 10,
		OOMKills:    -1,
	}
	switch {
	case es.status.Exited():
		exit.Code = es.status.ExitStatus()
	case es.status.Signaled():
		exit.Signal = int(es.status.Signal())
	}
	if oom0 >= 0 {
		if n := oomKills(); n >= oom0 {
			exit.OOMKills = n - oom0
		}
	}
	e.finish()
	if err := e.s.sendJSON(proto.TExit, exit); err != nil {
		e.s.cfg.Log.Printf("send exit: %v", err)
	}
}

// finish marks the execution over and ends its input, waiting for the
// input's writer so that no acknowledgement follows the Exit.
func (e *execution) finish() {
	e.stdinMu.Lock()
	e.finished.Store(true)
	if e.stdinCh != nil {
		close(e.stdinCh)
		e.stdinCh = nil
		// Unblocks a write to a command that stopped reading.
		e.stdinW.Close()
	}
	e.stdinMu.Unlock()
	if e.stdinDone != nil {
		<-e.stdinDone
	}
}

// stdin queues input; the worker's window bounds what is queued.
func (e *execution) stdin(p []byte) {
	e.stdinMu.Lock()
	defer e.stdinMu.Unlock()
	if e.stdinCh == nil {
		return
	}
	select {
	case e.stdinCh <- p:
	default:
		// Over the window: the worker broke the protocol; the input is
		// dropped rather than the agent blocked.
		e.s.cfg.Log.Printf("stdin over the window; %d bytes dropped", len(p))
	}
}

// writeStdin copies the queued input to the command and acknowledges it.
// An empty chunk closes the command's input.
func (e *execution) writeStdin(w *os.File) {
	defer close(e.stdinDone)
	defer w.Close()
	broken := false
	for p := range e.stdinCh {
		if len(p) == 0 {
			w.Close()
			broken = true
			continue
		}
		if !broken {
			if _, err := w.Write(p); err != nil {
				// The command closed its input or exited: the rest is
				// dropped, and acknowledged all the same.
				broken = true
			}
		}
		if e.finished.Load() {
			continue // the Exit has the last word
		}
		_ = e.s.sendJSON(proto.TStdinAck, proto.StdinAck{N: len(p)})
	}
}

// kill kills every process of the sandbox, or with Exec.KeepOthers those
// the command started; the Exit follows.
func (e *execution) kill() {
	e.killed.Store(true)
	deadline := time.Now().Add(killBudget)
	if e.keep != nil {
		_, err := e.s.cfg.Sandbox.KillNew(e.keep, deadline)
		if err == nil {
			return
		}
		e.s.cfg.Log.Printf("kill the command's processes: %v; killing every process", err)
	}
	if _, err := e.s.cfg.Sandbox.KillAll(deadline); err != nil {
		e.s.cfg.Log.Printf("kill: %v", err)
	}
}

// output streams one of the command's output pipes as frames. Once the
// main process has exited, drain sends what the pipe holds at that moment
// and stops: output that children keep writing cannot hold the Exit back.
// What they write afterwards is read and dropped, so that they do not die
// of a broken pipe.
type output struct {
	s        *Server
	typ      proto.Type
	f        *os.File
	draining atomic.Bool
	drained  chan struct{}
	once     sync.Once
}

func newOutput(s *Server, typ proto.Type, f *os.File) *output {
	o := &output{s: s, typ: typ, f: f, drained: make(chan struct{})}
	go o.run()
	return o
}

func (o *output) run() {
	defer o.f.Close()
	defer o.markDrained()
	rc, err := o.f.SyscallConn()
	if err != nil {
		return
	}
	chunk := getChunk()
	defer putChunk(chunk)
	buf := *chunk
	// Once draining, left is what the pipe held when the reader, between
	// two reads, saw it: all the main process wrote, and no more.
	draining, discard := false, false
	left := 0
	for {
		if !draining && o.draining.Load() {
			draining = true
			_ = rc.Control(func(fd uintptr) { left, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }) // FIONREAD
			if left <= 0 {
				discard = true
				o.markDrained()
			}
		}
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			if rerr == unix.EAGAIN {
				// Wait for data, unless a drain waits for this one.
				return draining && !discard || !draining && o.draining.Load()
			}
			return true
		})
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			_ = o.f.SetReadDeadline(time.Time{})
			continue
		case err != nil:
			return
		case rerr == unix.EINTR:
			continue
		case rerr == unix.EAGAIN:
			if draining {
				discard = true
				o.markDrained()
			}
			continue
		case rerr != nil || n == 0:
			return
		}
		if discard {
			continue
		}
		if err := o.s.send(o.typ, buf[:n]); err != nil {
			discard = true
		}
		if draining {
			if left -= n; left <= 0 {
				discard = true
				o.markDrained()
			}
		}
	}
}

func (o *output) markDrained() { o.once.Do(func() { close(o.drained) }) }

// drain waits until what the pipe holds now has been sent.
func (o *output) drain() {
	o.draining.Store(true)
	// Wakes the reader if it waits for data.
	_ = o.f.SetReadDeadline(time.Now())
	<-o.drained
}

// oomKills reads the sandbox's memory cgroup's OOM kill counter, or
// returns -1.
func oomKills() int {
	for _, p := range []string{"/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"} {
		if n, ok := readCounter(p, "oom_kill"); ok {
			return n
		}
	}
	return -1
}

// mergeEnv returns base with extra's entries added, replacing those of the
// same name.
func mergeEnv(base, extra []string) []string {
	if len(extra) == 0 {
		return base
	}
	names := make(map[string]bool, len(extra))
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		names[k] = true
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !names[k] {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}
