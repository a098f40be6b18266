package agentrt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/execq/execq/internal/agent/proto"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/sandbox/transfer"
	"github.com/execq/execq/tasks"
)

// Sandbox is one agent container.
type Sandbox struct {
	*docker.Container
	conn  *conn
	cfg   Config
	spawn string
}

// Spawn says how the sandbox's agent starts commands (proto.SpawnTraced or
// proto.SpawnLauncher), as its Hello said.
func (s *Sandbox) Spawn() string { return s.spawn }

var _ sandbox.Sandbox = (*Sandbox)(nil)

// Alive reports whether the agent's channel is open: a sandbox whose
// channel closed is gone for the worker, whatever its container does.
func (s *Sandbox) Alive() bool {
	select {
	case <-s.conn.dead:
		return false
	default:
		return true
	}
}

// filesTimeout bounds putting files in.
const filesTimeout = 2 * time.Minute

// PutFiles sends the files to the agent as a tar archive.
func (s *Sandbox) PutFiles(ctx context.Context, files []tasks.File) error {
	if len(files) == 0 {
		return nil
	}
	archive, err := transfer.Tar(files)
	if err != nil {
		return fmt.Errorf("put files: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, filesTimeout)
	defer cancel()
	if err := s.conn.sendJSON(proto.TPut, proto.Put{MaxBytes: int64(len(archive))}); err != nil {
		return fmt.Errorf("put files: %w", err)
	}
	for n := 0; n < len(archive); n += proto.DataChunk {
		if err := s.conn.send(proto.TData, archive[n:min(len(archive), n+proto.DataChunk)]); err != nil {
			return fmt.Errorf("put files: %w", err)
		}
	}
	if err := s.conn.send(proto.TData, nil); err != nil {
		return fmt.Errorf("put files: %w", err)
	}
	if _, err := s.conn.done(ctx, filesTimeout); err != nil {
		return fmt.Errorf("put files into %s: %w", docker.Short(s.ID()), err)
	}
	return nil
}

// Run runs cmd through the agent. See sandbox.Sandbox.
func (s *Sandbox) Run(ctx context.Context, cmd sandbox.Command) (sandbox.Outcome, error) {
	out := sandbox.Outcome{ExitCode: -1, Reusable: true}
	x := proto.Exec{
		Argv:    cmd.Cmd,
		Env:     cmd.Env,
		Dir:     cmd.Dir,
		Stdin:   cmd.Stdin != nil,
		Rlimits: []proto.Rlimit{{Resource: unix.RLIMIT_NPROC, Soft: uint64(s.Limits().Pids), Hard: uint64(s.Limits().Pids)}},
		// Where the host's cgroups cannot be read, the agent counts.
		CountOOMKills: !s.Accounted(),
		KeepOthers:    cmd.KeepOthers,
	}
	// Begun before the command is sent: a short command may be over before
	// a read begun after the send.
	acct := s.BeginAccounting()
	start := time.Now()
	if err := s.conn.sendJSON(proto.TExec, x); err != nil {
		out.Reusable = false
		return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], err)
	}
	f, err := s.conn.next(context.WithoutCancel(ctx), 0)
	if err != nil {
		out.Reusable = false
		return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], err)
	}
	switch f.Type {
	case proto.TFailed:
		var failed proto.Failed
		if err := f.Decode(&failed); err != nil {
			out.Reusable = false
			return out, s.conn.outOfTurn(f, "started")
		}
		acct.End()
		return out, &sandbox.StartError{Reason: sandbox.StartReason(failed.Kind), Message: failed.Message}
	case proto.TStarted:
	default:
		out.Reusable = false
		return out, s.conn.outOfTurn(f, "started")
	}

	var stdin *stdinSender
	if cmd.Stdin != nil {
		stdin = newStdinSender(s.conn, cmd.Stdin)
		// No input of this command may reach the agent once Run returns.
		defer stdin.stop()
	}
	stdout, stderr := orDiscard(cmd.Stdout), orDiscard(cmd.Stderr)
	var cause error // why the command was killed
	ended := ctx.Done()
	var killDeadline <-chan time.Time
	// A command may be silent for hours; its agent is pinged when it is, and
	// taken for dead when it does not answer.
	heard := true
	var pingDeadline <-chan time.Time
	ticker := time.NewTicker(s.cfg.Timeout)
	defer ticker.Stop()
	for {
		var f proto.Frame
		var err error
		select {
		case f = <-s.conn.in:
			heard = true
		case <-ticker.C:
			if !heard && pingDeadline == nil {
				if err := s.conn.sendJSON(proto.TPing, proto.Ping{}); err != nil {
					out.Reusable = false
					return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], err)
				}
				pingDeadline = time.After(s.cfg.Timeout)
			}
			heard = false
			continue
		case <-pingDeadline:
			err = fmt.Errorf("%w: no answer to a ping within %s", sandbox.ErrUnresponsive, s.cfg.Timeout)
			s.conn.close(err)
		case <-s.conn.dead:
			err = s.conn.err
		case <-ended:
			cause, ended = context.Cause(ctx), nil
			if err := s.conn.sendJSON(proto.TKill, proto.Kill{Exec: true}); err != nil {
				out.Reusable = false
				return out, fmt.Errorf("run %q: %w (and the kill failed: %v)", cmd.Cmd[0], cause, err)
			}
			killDeadline = time.After(s.cfg.Timeout)
			continue
		case <-killDeadline:
			err = fmt.Errorf("%w: no exit within %s of the kill", sandbox.ErrUnresponsive, s.cfg.Timeout)
			s.conn.close(err)
		}
		if err != nil {
			out.Duration = time.Since(start)
			out.Reusable = false
			// Read before anything else: the cgroup of a sandbox gone whole
			// is removed soon after.
			res, ooms, known := acct.End()
			if s.Stopped(context.WithoutCancel(ctx)) {
				if known && ooms > 0 || s.StoppedByOOM(context.WithoutCancel(ctx), acct) {
					// The memory limit took the whole sandbox, as it does
					// under gVisor, whose kernel is one process of it.
					out.Resources, out.OOMKilled, out.ExitCode, out.Signal = res, true, 137, 9
					return out, nil
				}
				err = fmt.Errorf("%w: %v", sandbox.ErrStopped, err)
			}
			return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], err)
		}
		switch f.Type {
		case proto.TDone:
			// The answer to a ping.
			pingDeadline = nil
		case proto.TStdout:
			_, _ = stdout.Write(f.Payload)
		case proto.TStderr:
			_, _ = stderr.Write(f.Payload)
		case proto.TStdinAck:
			var ack proto.StdinAck
			if f.Decode(&ack) != nil || stdin == nil {
				out.Reusable = false
				return out, s.conn.outOfTurn(f, "output")
			}
			stdin.ack(ack.N)
		case proto.TExit:
			var exit proto.Exit
			if err := f.Decode(&exit); err != nil {
				out.Reusable = false
				return out, s.conn.outOfTurn(f, "exit")
			}
			out.Duration = time.Since(start)
			s.outcome(&out, exit, acct)
			if pingDeadline != nil {
				// The answer to the last ping follows the Exit.
				if _, err := s.conn.done(context.WithoutCancel(ctx), s.cfg.Timeout); err != nil {
					out.Reusable = false
					return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], err)
				}
			}
			if cause != nil {
				return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], cause)
			}
			return out, nil
		default:
			out.Reusable = false
			return out, s.conn.outOfTurn(f, "output")
		}
	}
}

// outcome fills out from the agent's Exit and the host's accounting; the
// agent's own figures serve where the host's cgroups cannot be read.
func (s *Sandbox) outcome(out *sandbox.Outcome, exit proto.Exit, acct docker.Accounting) {
	out.ExitCode = exit.Code
	if exit.Signal != 0 {
		out.Signal = exit.Signal
		out.ExitCode = 128 + exit.Signal
	}
	res, ooms, known := acct.End()
	if res == nil {
		res = &tasks.Resources{CPUTimeMs: exit.CPUMicros / 1000, PeakMemoryBytes: exit.MaxRSSBytes}
	}
	out.Resources = res
	switch {
	case known:
		out.OOMKilled = ooms > 0
	case exit.OOMKills >= 0:
		out.OOMKilled = exit.OOMKills > 0
	}
}

// KillAll asks the agent to kill every process of the user.
func (s *Sandbox) KillAll(ctx context.Context) error {
	if err := s.conn.sendJSON(proto.TKill, proto.Kill{}); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	if _, err := s.conn.done(ctx, s.cfg.Timeout); err != nil {
		return fmt.Errorf("kill in %s: %w", docker.Short(s.ID()), err)
	}
	return nil
}

// Collect asks the agent for the matching files.
func (s *Sandbox) Collect(ctx context.Context, spec sandbox.CollectSpec) (sandbox.CollectResult, error) {
	var res sandbox.CollectResult
	budget := sandbox.CollectWalk(ctx)
	if err := s.conn.sendJSON(proto.TCollect, proto.Collect{
		Globs: spec.Globs, MaxBytes: spec.MaxBytes, MaxEntries: spec.MaxEntries, BudgetMillis: max(budget.Milliseconds(), 1),
	}); err != nil {
		return res, fmt.Errorf("collect: %w", err)
	}
	pr, pw := io.Pipe()
	read := make(chan error, 1)
	go func() {
		files, err := transfer.ReadCollected(pr, spec.Globs, spec.MaxBytes, spec.MaxEntries)
		res.Files = files
		pr.CloseWithError(errors.New("the archive was not read to its end"))
		read <- err
	}()
	archiveErr := s.readArchive(ctx, pw, budget)
	pw.Close()
	readErr := <-read
	if archiveErr != nil {
		return res, fmt.Errorf("collect from %s: %w", docker.Short(s.ID()), archiveErr)
	}
	d, err := s.conn.done(ctx, s.cfg.Timeout)
	if err != nil {
		return res, fmt.Errorf("collect from %s: %w", docker.Short(s.ID()), err)
	}
	if d.Collect != nil {
		res.Truncated = d.Collect.Truncated
	}
	if readErr != nil {
		return res, fmt.Errorf("collect from %s: %w", docker.Short(s.ID()), readErr)
	}
	return res, nil
}

// readArchive copies the Data frames of an archive to w until the empty
// one. Once w stops reading, what remains is read and dropped.
func (s *Sandbox) readArchive(ctx context.Context, w io.Writer, budget time.Duration) error {
	broken := false
	for {
		f, err := s.conn.next(ctx, budget+s.cfg.Timeout)
		if err != nil {
			return err
		}
		if f.Type != proto.TData {
			return s.conn.outOfTurn(f, "data")
		}
		if len(f.Payload) == 0 {
			return nil
		}
		if !broken {
			if _, err := w.Write(f.Payload); err != nil {
				broken = true
			}
		}
	}
}

// Reset asks the agent to kill, empty and verify, then checks from the
// host that no process is left.
func (s *Sandbox) Reset(ctx context.Context) (sandbox.ResetReport, error) {
	var rep sandbox.ResetReport
	if err := s.conn.sendJSON(proto.TReset, proto.Reset{BudgetMillis: s.cfg.ResetTimeout.Milliseconds()}); err != nil {
		return rep, fmt.Errorf("reset: %w", err)
	}
	d, err := s.conn.done(ctx, s.cfg.ResetTimeout+s.cfg.Timeout)
	if d.Reset != nil {
		rep = sandbox.ResetReport{Killed: d.Reset.Killed, Removed: d.Reset.Removed, Took: time.Duration(d.Reset.Micros) * time.Microsecond}
	}
	if err != nil {
		if s.conn.err == nil {
			err = fmt.Errorf("%w: %v", sandbox.ErrDirty, err)
		}
		return rep, fmt.Errorf("reset %s: %w", docker.Short(s.ID()), err)
	}
	// The agent sees the processes of its PID namespace; the kernel's list
	// of the container's is checked as well.
	if err := s.VerifyAlone(); err != nil {
		return rep, fmt.Errorf("reset: %w", err)
	}
	return rep, nil
}

// stdinSender copies a command's input to the agent within the window of
// unacknowledged bytes, then closes it with an empty frame.
type stdinSender struct {
	c      *conn
	mu     sync.Mutex
	cond   *sync.Cond
	sent   int // unacknowledged
	closed bool
	done   chan struct{}
}

func newStdinSender(c *conn, r io.Reader) *stdinSender {
	s := &stdinSender{c: c, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.run(r)
	return s
}

func (s *stdinSender) run(r io.Reader) {
	defer close(s.done)
	buf := make([]byte, proto.DataChunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			s.mu.Lock()
			for s.sent+n > proto.StdinWindow && !s.closed {
				s.cond.Wait()
			}
			if s.closed {
				s.mu.Unlock()
				return
			}
			s.sent += n
			err := s.c.send(proto.TStdin, buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
		if err != nil {
			s.mu.Lock()
			if !s.closed {
				_ = s.c.send(proto.TStdin, nil)
			}
			s.mu.Unlock()
			return
		}
	}
}

func (s *stdinSender) ack(n int) {
	s.mu.Lock()
	s.sent -= n
	s.mu.Unlock()
	s.cond.Broadcast()
}

// stop ends the sender once the command has exited, and waits for it: the
// input it reads is in memory, so a read does not block.
func (s *stdinSender) stop() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cond.Broadcast()
	<-s.done
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
