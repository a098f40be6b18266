package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
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
	// drainFor is how long output still in flight is read after the exit,
	// when a child keeps the stream open.
	drainFor = 100 * time.Millisecond
)

// execSpec is one process to start in the container.
type execSpec struct {
	cmd    []string
	env    []string
	dir    string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// exec runs s as the unprivileged user and returns its exit code once its
// main process has exited. It is a deliberate wait, as long as the process
// runs, bounded by ctx; when ctx ends it returns context.Cause(ctx) and
// leaves the process to the caller to kill.
func (c *Container) exec(ctx context.Context, s execSpec) (code int, err error) {
	apiCtx, cancel := context.WithTimeout(ctx, c.rt.cfg.APITimeout)
	defer cancel()
	created, err := c.rt.client.ContainerExecCreate(apiCtx, c.id, container.ExecOptions{
		User:         c.rt.cfg.User,
		Cmd:          s.cmd,
		Env:          s.env,
		WorkingDir:   s.dir,
		AttachStdin:  s.stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return -1, fmt.Errorf("exec create in %s: %w", short(c.id), err)
	}
	att, err := c.rt.client.ContainerExecAttach(apiCtx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return -1, fmt.Errorf("exec attach in %s: %w", short(c.id), err)
	}
	stdout, stderr := orDiscard(s.stdout), orDiscard(s.stderr)
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
	if s.stdin != nil {
		go func() {
			// A command that exits without reading its input fails this
			// copy; that is its business.
			_, _ = io.Copy(att.Conn, s.stdin)
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
			code, running, err := c.inspectExec(ctx, created.ID)
			if err != nil {
				return -1, err
			}
			if !running {
				if eof != nil {
					select {
					case <-eof:
					case <-time.After(drainFor):
					}
				}
				return code, nil
			}
			poll.Reset(interval)
			interval = min(interval*3/2, maxPoll)
		case <-ctx.Done():
			return -1, context.Cause(ctx)
		}
	}
}

func (c *Container) inspectExec(ctx context.Context, execID string) (code int, running bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.rt.cfg.APITimeout)
	defer cancel()
	info, err := c.rt.client.ContainerExecInspect(ctx, execID)
	if err != nil {
		return -1, false, fmt.Errorf("exec inspect in %s: %w", short(c.id), err)
	}
	return info.ExitCode, info.Running, nil
}

// run executes a short helper command and returns its exit code and what
// it wrote.
func (c *Container) run(ctx context.Context, cmd []string, stdin io.Reader, stdout io.Writer) (int, string, error) {
	var stderr bytes.Buffer
	code, err := c.exec(ctx, execSpec{
		cmd:    cmd,
		dir:    "/",
		stdin:  stdin,
		stdout: stdout,
		stderr: &limitedBuffer{buf: &stderr, max: 4 << 10},
	})
	return code, stderr.String(), err
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
