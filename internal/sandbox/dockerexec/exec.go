package dockerexec

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/execq/execq/internal/sandbox/docker"
)

// Exit detection. The attach stream usually ends when the process exits,
// but not while a child it left holds stdout or stderr open: then the exec
// is polled, and its exit is known within the current poll interval.
const (
	firstPoll = 25 * time.Millisecond
	maxPoll   = 200 * time.Millisecond
	// afterEOFPoll is the poll interval once the stream has ended, for the
	// moment the engine has not yet recorded the exit.
	afterEOFPoll = 2 * time.Millisecond
)

// After the exit, while the stream has not ended, what the process wrote
// may still be on its way through the engine, which holds up to about a
// megabyte of it for a slow reader; or a child keeps the stream open. The
// stream is read on until it ends, or has brought nothing for drainIdle
// (a child holding it quietly), or has brought drainMaxBytes more than the
// engine could have held, or drainMaxTime has passed (a child that keeps
// writing).
const (
	drainIdle     = 100 * time.Millisecond
	drainMaxBytes = 8 << 20
	drainMaxTime  = 10 * time.Second
)

// execSpec is one process to start in the container.
type execSpec struct {
	cmd    []string
	env    []string
	dir    string
	user   string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// whole: nothing but the process holds the stream (a helper), so all
	// of it is read, until it ends or ctx does.
	whole bool
}

// execResult is how a process ended. pid is 0 when the engine never
// started it (the program or the working directory does not exist): a
// fact no output of the process can forge.
type execResult struct {
	code int
	pid  int
}

// exec runs s and returns once its main process has exited. It is a
// deliberate wait, as long as the process runs, bounded by ctx; when ctx
// ends it returns context.Cause(ctx) and leaves the process to the caller
// to kill.
func (s *Sandbox) exec(ctx context.Context, spec execSpec) (execResult, error) {
	apiCtx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	created, err := s.rt.client.ContainerExecCreate(apiCtx, s.ID(), container.ExecOptions{
		User:         spec.user,
		Cmd:          spec.cmd,
		Env:          spec.env,
		WorkingDir:   spec.dir,
		AttachStdin:  spec.stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return execResult{code: -1}, fmt.Errorf("exec create in %s: %w", docker.Short(s.ID()), err)
	}
	att, err := s.rt.client.ContainerExecAttach(apiCtx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return execResult{code: -1}, fmt.Errorf("exec attach in %s: %w", docker.Short(s.ID()), err)
	}
	var fl flow
	stdout, stderr := fl.writer(orDiscard(spec.stdout)), fl.writer(orDiscard(spec.stderr))
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = stdcopy.StdCopy(stdout, stderr, att.Reader)
	}()
	// Nothing is written to stdout or stderr after exec returns.
	defer func() {
		att.Close()
		<-copied
	}()
	if spec.stdin != nil {
		go func() {
			// A command that exits without reading its input fails this
			// copy; that is its business.
			_, _ = io.Copy(att.Conn, spec.stdin)
			_ = att.CloseWrite()
		}()
	}

	eof := copied
	poll := time.NewTimer(firstPoll)
	defer poll.Stop()
	interval := firstPoll
	for {
		select {
		case <-eof:
			eof = nil
			interval = afterEOFPoll
			poll.Reset(0)
		case <-poll.C:
			res, running, err := s.inspectExec(ctx, created.ID)
			if err != nil {
				return execResult{code: -1}, err
			}
			if !running {
				if eof == nil {
					return res, nil
				}
				if spec.whole {
					select {
					case <-eof:
						return res, nil
					case <-ctx.Done():
						return execResult{code: -1}, context.Cause(ctx)
					}
				}
				// The exit is known: the context's end only cuts the drain
				// short.
				fl.drain(ctx, eof)
				return res, nil
			}
			poll.Reset(interval)
			interval = min(interval*3/2, maxPoll)
		case <-ctx.Done():
			return execResult{code: -1}, context.Cause(ctx)
		}
	}
}

// flow follows what the stream brings: the bytes passed on, and whether
// a write to the reader is under way (a slow reader is not an idle stream).
type flow struct {
	bytes   atomic.Int64
	writing atomic.Int32
}

func (f *flow) writer(w io.Writer) io.Writer { return flowWriter{f: f, w: w} }

type flowWriter struct {
	f *flow
	w io.Writer
}

func (fw flowWriter) Write(p []byte) (int, error) {
	fw.f.writing.Add(1)
	defer fw.f.writing.Add(-1)
	n, err := fw.w.Write(p)
	fw.f.bytes.Add(int64(n))
	return n, err
}

// drain waits, after the exit, until eof closes or the stream is idle or
// over its bounds (see drainIdle), or ctx ends.
func (f *flow) drain(ctx context.Context, eof <-chan struct{}) {
	start := f.bytes.Load()
	last := start
	deadline := time.Now().Add(drainMaxTime)
	tick := time.NewTicker(drainIdle)
	defer tick.Stop()
	for {
		select {
		case <-eof:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n := f.bytes.Load()
		if n == last && f.writing.Load() == 0 || n-start > drainMaxBytes || time.Now().After(deadline) {
			return
		}
		last = n
	}
}

func (s *Sandbox) inspectExec(ctx context.Context, execID string) (execResult, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	info, err := s.rt.client.ContainerExecInspect(ctx, execID)
	if err != nil {
		return execResult{code: -1}, false, fmt.Errorf("exec inspect in %s: %w", docker.Short(s.ID()), err)
	}
	return execResult{code: info.ExitCode, pid: info.Pid}, info.Running, nil
}

// helper runs the agent binary as a one-shot helper, as the sandbox's
// user, and returns what it wrote to stderr.
func (s *Sandbox) helper(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) (string, error) {
	var stderr bytes.Buffer
	res, err := s.exec(ctx, execSpec{
		cmd:    append([]string{docker.AgentPath}, args...),
		dir:    "/",
		user:   s.user(),
		stdin:  stdin,
		stdout: stdout,
		stderr: &limitedBuffer{buf: &stderr, max: 16 << 10},
		whole:  true,
	})
	if err != nil {
		return stderr.String(), err
	}
	if res.code != 0 {
		return stderr.String(), fmt.Errorf("execq-agent %s exited %d: %s", args[0], res.code, bytes.TrimSpace(stderr.Bytes()))
	}
	return stderr.String(), nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
