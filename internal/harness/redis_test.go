//go:build integration

package harness_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/testutil"
)

// A server with its append-only file keeps its data across Stop and
// Start, on the same address; one without keeps nothing across Kill.
func TestRedisServerRestarts(t *testing.T) {
	t.Parallel()
	for _, aof := range []bool{true, false} {
		ctx := testutil.Context(t, time.Minute)
		r, err := harness.StartRedis(ctx, harness.RedisConfig{Dir: t.TempDir(), AOF: aof})
		if err != nil {
			if err != harness.ErrNoRedisServer {
				t.Fatal(err)
			}
			testutil.Missing(t, "%v", err)
		}
		t.Cleanup(r.Close)
		if err := r.Client.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		used, err := harness.UsedMemory(ctx, r.Client)
		if err != nil || used <= 0 {
			t.Errorf("used memory %d, %v", used, err)
		}
		st, err := harness.Stats(ctx, r.Client)
		if err != nil || st.Commands < 1 {
			t.Errorf("stats %+v, %v; want a command counted", st, err)
		}
		if aof {
			r.Stop()
		} else {
			r.Kill()
		}
		if c, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
			c.Close()
			t.Fatal("the server listens after it was stopped")
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := r.Client.Get(ctx, "k").Result()
		if aof && (err != nil || got != "v") {
			t.Errorf("with the AOF, after a restart: %q, %v; want the value kept", got, err)
		}
		if !aof && err == nil {
			t.Errorf("without persistence, after a restart: %q; want nothing kept", got)
		}
	}
}

// A server that cannot start (its port taken meanwhile) fails at once and
// says why, from its log.
func TestRedisServerThatCannotStart(t *testing.T) {
	t.Parallel()
	ctx := testutil.Context(t, time.Minute)
	r, err := harness.StartRedis(ctx, harness.RedisConfig{Dir: t.TempDir()})
	if err != nil {
		if err != harness.ErrNoRedisServer {
			t.Fatal(err)
		}
		testutil.Missing(t, "%v", err)
	}
	t.Cleanup(r.Close)
	r.Kill()
	l, err := net.Listen("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	err = r.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "exited at its start") || !strings.Contains(err.Error(), "in use") {
		t.Errorf("start on a taken port: %v; want an error quoting the server's log", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the failed start took %s; want it noticed at once", took)
	}
}
