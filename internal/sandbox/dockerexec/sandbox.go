package dockerexec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/execq/execq/internal/agent/proto"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/sandbox/transfer"
	"github.com/execq/execq/tasks"
)

// Sandbox is one docker-exec container.
type Sandbox struct {
	*docker.Container
	rt *Runtime
}

var _ sandbox.Sandbox = (*Sandbox)(nil)

func (s *Sandbox) timeout() time.Duration { return s.Engine().Config().APITimeout }

func (s *Sandbox) user() string { return strconv.Itoa(s.User()) + ":" + strconv.Itoa(s.Group()) }

// sandboxArgs are the helper's flags that describe the sandbox.
func (s *Sandbox) sandboxArgs() []string {
	args := []string{"--uid", strconv.Itoa(s.User()), "--gid", strconv.Itoa(s.Group())}
	for _, w := range s.Wipe() {
		args = append(args, "--wipe", w)
	}
	return args
}

// PutFiles extracts the files through the helper, run as the user who
// then owns them.
func (s *Sandbox) PutFiles(ctx context.Context, files []tasks.File) error {
	if len(files) == 0 {
		return nil
	}
	archive, err := transfer.Tar(files)
	if err != nil {
		return fmt.Errorf("put files: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := append([]string{"put", "--max-bytes", strconv.Itoa(len(archive))}, s.sandboxArgs()...)
	if _, err := s.helper(ctx, args, bytes.NewReader(archive), nil); err != nil {
		return fmt.Errorf("put files into %s: %w", docker.Short(s.ID()), err)
	}
	return nil
}

// Run runs cmd through docker exec as the user. See sandbox.Sandbox.
func (s *Sandbox) Run(ctx context.Context, cmd sandbox.Command) (sandbox.Outcome, error) {
	out := sandbox.Outcome{ExitCode: -1, Reusable: true}
	var before []byte
	if cmd.KeepOthers {
		// What runs now is spared by a kill: one more exec, a step of a
		// session pays it.
		snap, err := s.snapshot(ctx)
		if err != nil {
			return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], err)
		}
		before = snap
	}
	stdout := &headFilter{w: orDiscard(cmd.Stdout), prefixes: []string{startFailurePrefix}}
	acct := s.BeginAccounting()
	start := time.Now()
	res, err := s.exec(ctx, execSpec{
		cmd:    cmd.Cmd,
		env:    cmd.Env,
		dir:    cmd.Dir,
		user:   s.user(),
		stdin:  cmd.Stdin,
		stdout: stdout,
		stderr: orDiscard(cmd.Stderr),
	})
	out.Duration = time.Since(start)
	if err != nil {
		stdout.flush()
		var ooms uint64
		var known bool
		out.Resources, ooms, known = acct.End()
		if ctx.Err() == nil {
			out.Reusable = !s.Stopped(context.WithoutCancel(ctx))
			if !out.Reusable {
				if known && ooms > 0 || s.StoppedByOOM(context.WithoutCancel(ctx), acct) {
					// The memory limit took the whole sandbox, as it does
					// under gVisor, whose kernel is one process of it.
					out.OOMKilled, out.ExitCode, out.Signal = true, 137, 9
					return out, nil
				}
				err = fmt.Errorf("%w: %v", sandbox.ErrStopped, err)
			}
			return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], err)
		}
		kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), s.rt.cfg.KillTimeout)
		kerr := s.killSince(kctx, before)
		kcancel()
		if kerr != nil {
			// A fork bomb that holds every process slot leaves the helper
			// no room, or no time: the container goes down with its
			// processes.
			out.Reusable = false
			if kerr := s.Kill(ctx); kerr != nil {
				return out, fmt.Errorf("run %q: %w (and the kill failed: %v)", cmd.Cmd[0], err, kerr)
			}
		}
		return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], err)
	}
	if res.pid == 0 {
		// The engine never started it; what it wrote is its reason.
		msg := stdout.finish(startFailurePrefix)
		acct.End()
		reason, text := startFailure(msg)
		return out, &sandbox.StartError{Reason: reason, Message: text}
	}
	stdout.flush()
	out.ExitCode = res.code
	if res.code > 128 && res.code < 128+65 {
		out.Signal = res.code - 128
	}
	var ooms uint64
	var known bool
	out.Resources, ooms, known = acct.End()
	if (res.code == 137 || res.code < 0) && s.Stopped(context.WithoutCancel(ctx)) {
		out.Reusable = false
		if known && ooms > 0 || s.StoppedByOOM(context.WithoutCancel(ctx), acct) {
			out.OOMKilled = true
			return out, nil
		}
		// Killed with the whole container, from outside: no outcome of the
		// command.
		return out, fmt.Errorf("run %q: %w", cmd.Cmd[0], sandbox.ErrStopped)
	}
	switch {
	case known:
		out.OOMKilled = ooms > 0
	case res.code == 137:
		// Without the cgroup, the container's flag tells. It is sticky, so
		// it is trusted only for a process killed by SIGKILL.
		out.OOMKilled = s.OOMKilledFlag(ctx)
	}
	return out, nil
}

// snapshot records the user's processes that run now, through the helper.
func (s *Sandbox) snapshot(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.rt.cfg.HelperTimeout)
	defer cancel()
	var out bytes.Buffer
	if _, err := s.helper(ctx, append([]string{"snapshot"}, s.sandboxArgs()...), nil, &limitedBuffer{buf: &out, max: 4 << 20}); err != nil {
		return nil, fmt.Errorf("list the processes of %s: %w", docker.Short(s.ID()), err)
	}
	return out.Bytes(), nil
}

// killSince kills what was started since the snapshot before was taken,
// or every process of the user when there is none.
func (s *Sandbox) killSince(ctx context.Context, before []byte) error {
	if before == nil {
		return s.KillAll(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, s.rt.cfg.HelperTimeout)
	defer cancel()
	if _, err := s.helper(ctx, append([]string{"kill", "--keep"}, s.sandboxArgs()...), bytes.NewReader(before), nil); err != nil {
		return fmt.Errorf("kill in %s: %w", docker.Short(s.ID()), err)
	}
	return nil
}

// KillAll kills every process of the user through the helper.
func (s *Sandbox) KillAll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.rt.cfg.HelperTimeout)
	defer cancel()
	if _, err := s.helper(ctx, append([]string{"kill"}, s.sandboxArgs()...), nil, nil); err != nil {
		return fmt.Errorf("kill in %s: %w", docker.Short(s.ID()), err)
	}
	return nil
}

// Collect archives the matching files through the helper and reads the
// archive, trusting nothing in it.
func (s *Sandbox) Collect(ctx context.Context, spec sandbox.CollectSpec) (sandbox.CollectResult, error) {
	var res sandbox.CollectResult
	budget := sandbox.CollectWalk(ctx)
	ctx, cancel := context.WithTimeout(ctx, budget+s.rt.cfg.HelperTimeout)
	defer cancel()
	args := []string{"collect", "--max-bytes", strconv.FormatInt(spec.MaxBytes, 10),
		"--max-entries", strconv.Itoa(spec.MaxEntries), "--budget", max(budget, time.Millisecond).String()}
	for _, g := range spec.Globs {
		args = append(args, "--glob", g)
	}
	args = append(args, s.sandboxArgs()...)
	pr, pw := io.Pipe()
	read := make(chan error, 1)
	go func() {
		files, err := transfer.ReadCollected(pr, spec.Globs, spec.MaxBytes, spec.MaxEntries)
		res.Files = files
		if err != nil {
			// Stops the helper's output: the exec ends with the context.
			cancel()
		}
		pr.CloseWithError(errors.New("the archive was not read to its end"))
		read <- err
	}()
	stderr, err := s.helper(ctx, args, nil, pw)
	pw.Close()
	readErr := <-read
	if readErr != nil {
		return res, fmt.Errorf("collect from %s: %w", docker.Short(s.ID()), readErr)
	}
	if err != nil {
		return res, fmt.Errorf("collect from %s: %w", docker.Short(s.ID()), err)
	}
	// The helper's report comes last, after the archive: without it the
	// archive may have ended early at an entry's boundary.
	var rep proto.CollectReport
	if line := lastLine(stderr); json.Unmarshal([]byte(line), &rep) != nil {
		return res, fmt.Errorf("collect from %s: the helper's report is missing, so the archive may be incomplete: %q", docker.Short(s.ID()), bytes.TrimSpace([]byte(stderr)))
	}
	res.Truncated = rep.Truncated
	return res, nil
}

// Reset kills, empties and verifies through the helper, then checks
// from the host that no process is left.
func (s *Sandbox) Reset(ctx context.Context) (sandbox.ResetReport, error) {
	var rep sandbox.ResetReport
	ctx, cancel := context.WithTimeout(ctx, s.rt.cfg.ResetTimeout+s.rt.cfg.HelperTimeout)
	defer cancel()
	var stdout bytes.Buffer
	args := append([]string{"reset", "--budget", s.rt.cfg.ResetTimeout.String()}, s.sandboxArgs()...)
	if _, err := s.helper(ctx, args, nil, &limitedBuffer{buf: &stdout, max: 4 << 10}); err != nil {
		if s.Stopped(context.WithoutCancel(ctx)) {
			return rep, fmt.Errorf("reset %s: %w", docker.Short(s.ID()), sandbox.ErrStopped)
		}
		return rep, fmt.Errorf("reset %s: %w: %v", docker.Short(s.ID()), sandbox.ErrDirty, err)
	}
	var r proto.ResetReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return rep, fmt.Errorf("reset %s: %w: the report %q does not decode", docker.Short(s.ID()), sandbox.ErrDirty, stdout.String())
	}
	rep = sandbox.ResetReport{Killed: r.Killed, Removed: r.Removed, Took: time.Duration(r.Micros) * time.Microsecond}
	// The helper sees the processes of its PID namespace; the kernel's
	// list of the container's is checked as well.
	if err := s.VerifyAlone(); err != nil {
		return rep, fmt.Errorf("reset: %w", err)
	}
	return rep, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
