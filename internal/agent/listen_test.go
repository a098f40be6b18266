//go:build linux

package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"log"
	"net"
	"strings"
	"testing"
	"time"
)

// A process of the agent's own PID namespace is refused, whatever its uid
// (here the test's own, root in CI), and the agent keeps waiting for the
// worker until its timeout.
func TestAcceptWorkerRefusesTheSandboxsProcesses(t *testing.T) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "execq-agent-test-" + hex.EncodeToString(b)
	var logged bytes.Buffer
	type accepted struct {
		c   *net.UnixConn
		err error
	}
	done := make(chan accepted, 1)
	go func() {
		c, err := AcceptWorker(name, time.Second, log.New(&logged, "", 0))
		done <- accepted{c, err}
	}()
	var c net.Conn
	var err error
	for range 100 {
		if c, err = net.Dial("unix", "@"+name); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read on a refused connection: %d bytes, %v; want it closed", n, err)
	}
	c.Close()
	got := <-done
	if got.c != nil || got.err == nil {
		t.Fatalf("AcceptWorker = %v, %v; want no connection and an error after its timeout", got.c, got.err)
	}
	if !strings.Contains(logged.String(), "refused a connection from pid") {
		t.Errorf("log %q; want the refusal", logged.String())
	}
	if _, err := net.Dial("unix", "@"+name); err == nil {
		t.Error("the socket still listens after AcceptWorker returned")
	}
}
