package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name a SentinelGroup's sentinels monitor.
const SentinelMaster = "execq"

// SentinelGroup is a master, one replica and sentinels watching them, each
// a child process on loopback.
type SentinelGroup struct {
	Master, Replica *RedisServer
	Sentinels       []*SentinelProcess
	// URL is the redis-sentinel:// address of the group's master.
	URL string
	// Client is a failover client of it; Close closes it.
	Client *redis.Client
}

// SentinelProcess is one redis-server running as a sentinel.
type SentinelProcess struct {
	Addr   string
	Client *redis.SentinelClient
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartSentinelGroup starts a master, a replica of it and n sentinels under
// dir (a quorum of n/2+1, a master down after downAfter), and returns once
// the replica is in sync and every sentinel knows the replica and the other
// sentinels.
func StartSentinelGroup(ctx context.Context, dir string, n int, downAfter time.Duration) (*SentinelGroup, error) {
	g := &SentinelGroup{}
	mk := func(name string) (string, error) {
		d := filepath.Join(dir, name)
		return d, os.MkdirAll(d, 0o755)
	}
	d, err := mk("master")
	if err != nil {
		return nil, err
	}
	if g.Master, err = StartRedis(ctx, RedisConfig{Dir: d}); err != nil {
		return nil, err
	}
	if d, err = mk("replica"); err != nil {
		g.Close()
		return nil, err
	}
	host, port, _ := strings.Cut(g.Master.Addr, ":")
	if g.Replica, err = StartRedis(ctx, RedisConfig{Dir: d, Args: []string{"--replicaof", host, port}}); err != nil {
		g.Close()
		return nil, err
	}
	if err := Await(ctx, 20*time.Second, 20*time.Millisecond, func() bool {
		info, err := g.Replica.Client.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}); err != nil {
		g.Close()
		return nil, fmt.Errorf("the replica did not sync with its master: %w", err)
	}
	var addrs []string
	for i := range n {
		if d, err = mk("sentinel-" + strconv.Itoa(i)); err != nil {
			g.Close()
			return nil, err
		}
		s, err := startSentinel(ctx, d, g.Master.Addr, n/2+1, downAfter)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.Sentinels = append(g.Sentinels, s)
		addrs = append(addrs, s.Addr)
	}
	err = Await(ctx, 30*time.Second, 50*time.Millisecond, func() bool {
		for _, s := range g.Sentinels {
			m, err := s.Client.Master(ctx, SentinelMaster).Result()
			if err != nil || m["num-other-sentinels"] != strconv.Itoa(n-1) || m["num-slaves"] != "1" {
				return false
			}
		}
		return true
	})
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("the sentinels did not find each other and the replica: %w", err)
	}
	g.URL = "redis-sentinel://" + strings.Join(addrs, ",") + "/" + SentinelMaster
	g.Client = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: addrs})
	return g, nil
}

func startSentinel(ctx context.Context, dir, master string, quorum int, downAfter time.Duration) (*SentinelProcess, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	host, mport, _ := strings.Cut(master, ":")
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
		"sentinel monitor %s %s %s %d\nsentinel down-after-milliseconds %s %d\n"+
		"sentinel failover-timeout %s 10000\nsentinel parallel-syncs %s 1\n",
		port, dir, filepath.Join(dir, "sentinel.log"), SentinelMaster, host, mport, quorum,
		SentinelMaster, downAfter.Milliseconds(), SentinelMaster, SentinelMaster)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	s := &SentinelProcess{Addr: "127.0.0.1:" + strconv.Itoa(port), exited: make(chan struct{})}
	s.cmd = exec.Command(bin, conf, "--sentinel")
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start a sentinel: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	s.Client = redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	if err := Await(ctx, 10*time.Second, 10*time.Millisecond, func() bool {
		return s.Client.Ping(ctx).Err() == nil
	}); err != nil {
		s.Close()
		log, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
		return nil, fmt.Errorf("the sentinel on %s did not answer: %w: %s", s.Addr, err, Tail(string(log), 10))
	}
	return s, nil
}

// Close ends the sentinel.
func (s *SentinelProcess) Close() {
	s.Client.Close()
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Failover has a sentinel promote the replica, and returns once every
// sentinel names it the master and it answers as one.
func (g *SentinelGroup) Failover(ctx context.Context) error {
	if err := g.Sentinels[0].Client.Failover(ctx, SentinelMaster).Err(); err != nil {
		return fmt.Errorf("sentinel failover: %w", err)
	}
	return Await(ctx, 30*time.Second, 20*time.Millisecond, func() bool {
		for _, s := range g.Sentinels {
			addr, err := s.Client.GetMasterAddrByName(ctx, SentinelMaster).Result()
			if err != nil || len(addr) != 2 || addr[0]+":"+addr[1] != g.Replica.Addr {
				return false
			}
		}
		info, err := g.Replica.Client.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	})
}

// Close ends every process of the group and closes the client.
func (g *SentinelGroup) Close() {
	if g.Client != nil {
		g.Client.Close()
	}
	for _, s := range g.Sentinels {
		s.Close()
	}
	for _, r := range []*RedisServer{g.Replica, g.Master} {
		if r != nil {
			r.Close()
		}
	}
}
