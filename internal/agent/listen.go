//go:build linux

package agent

import (
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// AcceptWorker listens on the abstract unix socket name, in the sandbox's
// network namespace, and returns the first connection of a process outside
// the sandbox's PID namespace: the worker, which enters the namespace to
// connect. A process of the sandbox is refused (its PID is visible here,
// the worker's is not), and the socket is closed once the worker is in, so
// nothing of the sandbox's user can ever reach it: no command runs before
// the worker's handshake. It gives up after timeout.
func AcceptWorker(name string, timeout time.Duration, logger *log.Logger) (*net.UnixConn, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@" + name, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on @%s: %w", name, err)
	}
	defer ln.Close()
	if err := ln.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("listen on @%s: %w", name, err)
	}
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return nil, fmt.Errorf("wait for the worker on @%s: %w", name, err)
		}
		pid, err := peerPID(c)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("the credentials of a connection on @%s: %w", name, err)
		}
		if pid != 0 {
			logger.Printf("refused a connection from pid %d of the sandbox on @%s", pid, name)
			c.Close()
			continue
		}
		return c, nil
	}
}

// peerPID is the PID of c's peer in the agent's PID namespace: 0 for a
// process outside it.
func peerPID(c *net.UnixConn) (int32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	if cred == nil {
		return 0, errors.New("no peer credentials")
	}
	return cred.Pid, nil
}
