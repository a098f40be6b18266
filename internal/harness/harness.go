// Package harness starts and watches the processes that execq's benchmark
// and its fault suite run against: a redis-server of their own on a free
// loopback port, and `execq worker` processes, whose log, /metrics, CPU
// time and memory it reads.
//
// It is not test code: `execq bench` uses it as much as the tests do, so
// it reports failures as errors and leaves each caller to decide.
package harness

import (
	"context"
	"fmt"
	"net"
	"time"
)

// FreePort returns a TCP port of 127.0.0.1 that nothing listens on now.
// Another process may take it before the caller does.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr returns a loopback host:port that nothing listens on now.
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

// Await checks cond every tick until it holds. It is for conditions with
// no signal to wait on (a log line, a metric, a process's state). It
// returns an error saying so when d passes first, and ctx's error when ctx
// ends first.
func Await(ctx context.Context, d, tick time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	t := time.NewTicker(tick)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
