package redisaddr

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseKinds(t *testing.T) {
	t.Parallel()
	a, err := Parse("redis://:secret@127.0.0.1:6380/2?dial_timeout=3s")
	if err != nil || a.Kind != Single || a.single.Addr != "127.0.0.1:6380" || a.single.Password != "secret" || a.single.DB != 2 || a.single.DialTimeout != 3*time.Second {
		t.Errorf("single: %+v %v", a.single, err)
	}
	a, err = Parse("rediss://u:p@example.com:6380")
	if err != nil || a.single.TLSConfig == nil || a.single.Username != "u" {
		t.Errorf("single over TLS: %+v %v", a.single, err)
	}

	a, err = Parse("redis-cluster://user:pw@127.0.0.1:7000,127.0.0.1:7001,[::1]:7002?read_timeout=5s")
	if err != nil || a.Kind != Cluster {
		t.Fatalf("cluster: %v", err)
	}
	if want := []string{"127.0.0.1:7000", "127.0.0.1:7001", "[::1]:7002"}; !slices.Equal(a.cluster.Addrs, want) ||
		a.cluster.Username != "user" || a.cluster.Password != "pw" || a.cluster.ReadTimeout != 5*time.Second {
		t.Errorf("cluster: %+v", a.cluster)
	}
	if a, err := Parse("rediss-cluster://h:1"); err != nil || a.cluster.TLSConfig == nil {
		t.Errorf("cluster over TLS: %v", err)
	}

	a, err = Parse("redis-sentinel://:masterpw@127.0.0.1:26379,127.0.0.1:26380/mymaster/3?sentinel_password=spw&dial_timeout=2s")
	if err != nil || a.Kind != Sentinel {
		t.Fatalf("sentinel: %v", err)
	}
	f := a.failover
	if f.MasterName != "mymaster" || !slices.Equal(f.SentinelAddrs, []string{"127.0.0.1:26379", "127.0.0.1:26380"}) ||
		f.Password != "masterpw" || f.SentinelPassword != "spw" || f.DB != 3 || f.DialTimeout != 2*time.Second {
		t.Errorf("sentinel: %+v", f)
	}
	if a, err := Parse("redis-sentinel://127.0.0.1:26379/m"); err != nil || a.failover.Password != "" || a.failover.DB != 0 {
		t.Errorf("sentinel without password: %+v %v", a.failover, err)
	}
}

// Every refusal says what is wrong, and none shows the password.
func TestParseRefusals(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"127.0.0.1:6379":                               "not a Redis URL",
		"http://127.0.0.1":                             "unknown scheme",
		"redis-cluster://:topsecret@127.0.0.1":         "not host:port",
		"redis-cluster://:topsecret@a:1,,b:2":          "not host:port",
		"redis-sentinel://:topsecret@127.0.0.1:26379":  "master's name",
		"redis-sentinel://:topsecret@h:1/m/0/x":        "master's name",
		"redis-cluster://:topsecret@h:1?nonsense=1":    "nonsense",
		"redis://:topsecret@127.0.0.1:6379/notanumber": "invalid database",
	} {
		_, err := Parse(raw)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "topsecret") {
			t.Errorf("Parse(%q): %v, want an error with %q and without the password", raw, err, want)
		}
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"redis://:pw@h:1/0":                                  "redis://:xxxxx@h:1/0",
		"redis-cluster://u:p@ss@a:1,b:2?x=1":                 "redis-cluster://u:xxxxx@a:1,b:2?x=1",
		"redis-sentinel://u@a:1/m":                           "redis-sentinel://u@a:1/m",
		"redis-sentinel://a:1,b:2/m?sentinel_password=s&x=1": "redis-sentinel://a:1,b:2/m?sentinel_password=xxxxx&x=1",
		"nonsense": "(not a URL)",
	} {
		if got := Redacted(raw); got != want {
			t.Errorf("Redacted(%q) = %q, want %q", raw, got, want)
		}
	}
}
