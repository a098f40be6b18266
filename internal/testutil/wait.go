package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/execq/execq/internal/harness"
)

// Eventually fails the test unless cond holds within d, checking it every
// tick: for what the code under test does in the background with no
// signal to wait on. what says what was waited for.
func Eventually(t testing.TB, d, tick time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(d, tick, cond) {
		t.Fatalf("timed out after %s waiting until %s", d, what)
	}
}

// Within reports whether cond holds within d, checking it every tick.
func Within(d, tick time.Duration, cond func() bool) bool {
	return harness.Await(context.Background(), d, tick, cond) == nil
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// FreeAddr returns a loopback host:port that nothing listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
