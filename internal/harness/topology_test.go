//go:build integration

package harness_test

import (
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/redisaddr"
	"github.com/execq/execq/internal/testutil"
)

// A 3-master cluster serves keys of every slot through its URL.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := testutil.Context(t, time.Minute)
	c, err := harness.StartCluster(ctx, t.TempDir(), 3)
	if err != nil {
		testutil.Missing(t, "a Redis Cluster: %v", err)
	}
	t.Cleanup(c.Close)
	client, err := redisaddr.Open(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	for _, k := range []string{"a", "b", "c", "d", "{x}1", "{x}2"} {
		if err := client.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	n := 0
	for _, node := range c.Nodes {
		keys, err := node.Client.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if keys > 0 {
			n++
		}
	}
	if n < 2 {
		t.Errorf("keys landed on %d of 3 masters", n)
	}
}

// A Sentinel group: writes through its URL reach the master and, after a
// failover, the promoted replica.
func TestRedisSentinelGroup(t *testing.T) {
	t.Parallel()
	ctx := testutil.Context(t, 2*time.Minute)
	g, err := harness.StartSentinelGroup(ctx, t.TempDir(), 3, time.Second)
	if err != nil {
		testutil.Missing(t, "a Sentinel group: %v", err)
	}
	t.Cleanup(g.Close)
	if !strings.HasPrefix(g.URL, "redis-sentinel://") || !strings.HasSuffix(g.URL, "/"+harness.SentinelMaster) {
		t.Errorf("URL %q", g.URL)
	}
	client, err := redisaddr.Open(g.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if err := client.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := g.Failover(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, 50*time.Millisecond, "a write through the URL after the failover", func() bool {
		return client.Set(ctx, "k", "after", 0).Err() == nil
	})
	if v, err := g.Replica.Client.Get(ctx, "k").Result(); err != nil || v != "after" {
		t.Errorf("the promoted replica holds %q, %v", v, err)
	}
}
