package agentrt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/docker"
)

// The agent's channel is either the container's standard input and output,
// attached through the engine, or an abstract unix socket in the
// container's network namespace, which the worker enters to connect: the
// engine then relays nothing but the agent's log, and a frame costs one
// hop instead of three (the agent, containerd-shim, dockerd, the worker).
// The socket needs the worker to see the host's PIDs and to hold
// CAP_SYS_ADMIN (setns); gVisor keeps its sockets in its own kernel, where
// the host cannot reach them.

// Channels of Config.Channel.
const (
	// ChannelAuto is the socket where the worker can reach it, else attach.
	ChannelAuto = ""
	// ChannelSocket is the abstract unix socket, or no sandbox at all.
	ChannelSocket = "socket"
	// ChannelAttach is the container's standard input and output.
	ChannelAttach = "attach"
)

// errNoSocket is an environment that cannot reach an agent's socket: no
// host PIDs, no CAP_SYS_ADMIN.
var errNoSocket = errors.New("the agent's socket cannot be reached from here")

// socketName is a fresh abstract socket name for one agent.
func socketName() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "execq-agent-" + hex.EncodeToString(b)
}

// dialAgent connects to the abstract socket name of the agent of c,
// retrying while the agent has not bound it yet, until ctx ends. An
// environment that cannot enter the agent's network namespace gets
// errNoSocket.
func dialAgent(ctx context.Context, c *docker.Container, name string) (*net.UnixConn, error) {
	pid, ok := c.HostPID()
	if !ok {
		return nil, fmt.Errorf("%w: the host's PIDs are not visible", errNoSocket)
	}
	ns, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("%w: open the network namespace of pid %d: %v", errNoSocket, pid, err)
	}
	defer ns.Close()
	if _, ok := c.HostPID(); !ok {
		// Gone meanwhile, and the PID may be another's now.
		return nil, fmt.Errorf("%w: the agent is gone", sandbox.ErrStopped)
	}
	wait := 200 * time.Microsecond
	for {
		c, err := connectIn(int(ns.Fd()), name)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, unix.ECONNREFUSED) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to the agent on @%s: %w (the agent did not listen)", name, context.Cause(ctx))
		case <-time.After(wait):
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// connectIn connects to the abstract socket name in the network namespace
// ns, on an OS thread of its own that enters it and comes back. A thread
// that cannot come back is never reused: its goroutine ends locked to it,
// and the Go runtime ends the thread.
func connectIn(ns int, name string) (*net.UnixConn, error) {
	type result struct {
		c   *net.UnixConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("%w: open this thread's network namespace: %v", errNoSocket, err)}
			return
		}
		defer home.Close()
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("%w: enter the agent's network namespace: %v", errNoSocket, err)}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.Connect(fd, &unix.SockaddrUnix{Name: "@" + name}); err != nil {
				unix.Close(fd)
			}
		}
		if serr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); serr != nil {
			// Stays locked: the thread dies with the goroutine.
			if err == nil {
				unix.Close(fd)
			}
			ch <- result{err: fmt.Errorf("come back from the agent's network namespace: %w", serr)}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			ch <- result{err: fmt.Errorf("connect to the agent on @%s: %w", name, err)}
			return
		}
		f := os.NewFile(uintptr(fd), "@"+name)
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			ch <- result{err: fmt.Errorf("connect to the agent on @%s: %w", name, err)}
			return
		}
		ch <- result{c: c.(*net.UnixConn)}
	}()
	r := <-ch
	return r.c, r.err
}
