package agentrt

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types"

	"github.com/execq/execq/internal/agent/proto"
	"github.com/execq/execq/internal/sandbox"
)

// conn is the worker's end of one agent's channel: the container's
// standard input and output attached through the engine, or the agent's
// socket (see dialAgent).
type conn struct {
	frames  net.Conn // where frames are written
	att     types.HijackedResponse
	log     *slog.Logger
	timeout time.Duration

	wmu sync.Mutex
	w   *proto.Writer

	in   chan proto.Frame
	dead chan struct{} // closed when the channel ends; err says why
	err  error
	once sync.Once
}

// attachedConn is a channel over the attach stream att: the engine
// multiplexes the container's stdout (the agent's frames) and stderr (its
// log) on it.
func attachedConn(att types.HijackedResponse, timeout time.Duration, log *slog.Logger) *conn {
	c := newConn(att.Conn, att, timeout, log)
	go c.read(&demux{r: att.Reader, log: log})
	return c
}

// socketConn is a channel over the agent's socket sock; att carries only
// the agent's log.
func socketConn(sock net.Conn, att types.HijackedResponse, timeout time.Duration, log *slog.Logger) *conn {
	c := newConn(sock, att, timeout, log)
	go c.read(bufio.NewReaderSize(sock, 64<<10))
	go func() {
		// The agent writes nothing on its stdout here; what comes is logged.
		_, _ = io.Copy(io.Discard, &demux{r: att.Reader, log: log})
	}()
	return c
}

func newConn(frames net.Conn, att types.HijackedResponse, timeout time.Duration, log *slog.Logger) *conn {
	return &conn{
		frames:  frames,
		att:     att,
		log:     log,
		timeout: timeout,
		w:       proto.NewWriter(frames),
		in:      make(chan proto.Frame, 16),
		dead:    make(chan struct{}),
	}
}

// read reads frames from r until the channel ends.
func (c *conn) read(r io.Reader) {
	fr := proto.NewReader(r)
	for {
		f, err := fr.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: its channel closed (the agent or its container is gone)", sandbox.ErrStopped)
			}
			c.close(err)
			return
		}
		select {
		case c.in <- f:
		case <-c.dead:
			return
		}
	}
}

// close ends the channel with err.
func (c *conn) close(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.dead)
		c.frames.Close()
		c.att.Close()
	})
}

// send writes one frame.
func (c *conn) send(t proto.Type, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.frames.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.w.Write(t, p); err != nil {
		c.close(fmt.Errorf("%w: write to the agent: %v", sandbox.ErrUnresponsive, err))
		return c.err
	}
	return nil
}

func (c *conn) sendJSON(t proto.Type, v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.frames.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.w.WriteJSON(t, v); err != nil {
		c.close(fmt.Errorf("%w: write to the agent: %v", sandbox.ErrUnresponsive, err))
		return c.err
	}
	return nil
}

// next returns the next frame, waiting for it up to wait (0: the conn's
// timeout) or until ctx ends. An agent that does not answer in time is
// taken for dead: its channel is closed.
func (c *conn) next(ctx context.Context, wait time.Duration) (proto.Frame, error) {
	if wait == 0 {
		wait = c.timeout
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case f := <-c.in:
		return f, nil
	case <-c.dead:
		return proto.Frame{}, c.err
	case <-ctx.Done():
		return proto.Frame{}, context.Cause(ctx)
	case <-t.C:
		err := fmt.Errorf("%w: no answer within %s", sandbox.ErrUnresponsive, wait)
		c.close(err)
		return proto.Frame{}, err
	}
}

// expect reads the next frame, which must be of type t, into v (when not
// nil).
func (c *conn) expect(ctx context.Context, wait time.Duration, t proto.Type, v any) error {
	f, err := c.next(ctx, wait)
	if err != nil {
		return err
	}
	if f.Type != t {
		return c.outOfTurn(f, t.String())
	}
	if v != nil {
		if err := f.Decode(v); err != nil {
			return c.outOfTurn(f, t.String())
		}
	}
	return nil
}

// outOfTurn closes a channel whose agent sent what the protocol does not
// allow there.
func (c *conn) outOfTurn(f proto.Frame, want string) error {
	err := fmt.Errorf("%w: the agent sent %s where %s was due", sandbox.ErrUnresponsive, f.Type, want)
	c.close(err)
	return err
}

// done reads the Done that ends a request and returns its error.
func (c *conn) done(ctx context.Context, wait time.Duration) (proto.Done, error) {
	var d proto.Done
	if err := c.expect(ctx, wait, proto.TDone, &d); err != nil {
		return d, err
	}
	if d.Error != "" {
		return d, errors.New(d.Error)
	}
	return d, nil
}

// handshake reads the agent's Hello, checks it, and answers. It returns
// the agent's Hello.
func (c *conn) handshake(ctx context.Context, uid, gid int) (proto.Hello, error) {
	var h proto.Hello
	if err := c.expect(ctx, 0, proto.THello, &h); err != nil {
		return h, fmt.Errorf("agent hello: %w", err)
	}
	if h.Version != proto.Version {
		err := fmt.Errorf("the agent speaks protocol version %d, this worker %d (%s)", h.Version, proto.Version, h.Agent)
		c.close(err)
		return h, err
	}
	if h.UID != uid || h.GID != gid {
		err := fmt.Errorf("the agent runs commands as %d:%d, not %d:%d", h.UID, h.GID, uid, gid)
		c.close(err)
		return h, err
	}
	return h, c.sendJSON(proto.THello, proto.Hello{Version: proto.Version})
}

// demux reads the engine's multiplexed attach stream: 8-byte headers
// (stream, 0, 0, 0, big-endian length) each followed by a payload. It
// returns the payloads of stdout and logs those of stderr.
type demux struct {
	r    *bufio.Reader
	log  *slog.Logger
	left int // bytes left of the current stdout payload
	hdr  [8]byte
}

func (d *demux) Read(p []byte) (int, error) {
	for d.left == 0 {
		if _, err := io.ReadFull(d.r, d.hdr[:]); err != nil {
			return 0, err
		}
		n := int(binary.BigEndian.Uint32(d.hdr[4:]))
		switch d.hdr[0] {
		case 1:
			d.left = n
		default:
			line, err := io.ReadAll(io.LimitReader(d.r, int64(n)))
			if err != nil {
				return 0, err
			}
			d.log.Info("agent: " + strings.TrimSpace(string(line)))
		}
	}
	n, err := d.r.Read(p[:min(len(p), d.left)])
	d.left -= n
	return n, err
}
