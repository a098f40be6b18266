package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of masters without replicas, each a
// redis-server child process on loopback.
type RedisCluster struct {
	Nodes []*RedisServer
	// URL is the redis-cluster:// address of every node.
	URL string
	// Client is a cluster client of it; Close closes it.
	Client *redis.ClusterClient
}

// StartCluster starts masters redis-servers in cluster mode under dir,
// joins them with redis-cli --cluster create, and returns once every node
// reports the cluster ok.
func StartCluster(ctx context.Context, dir string, masters int) (*RedisCluster, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redis-cli is not installed")
	}
	c := &RedisCluster{}
	var addrs []string
	for i := range masters {
		port, err := clusterPort()
		if err != nil {
			c.Close()
			return nil, err
		}
		nodeDir := filepath.Join(dir, "node-"+strconv.Itoa(i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			c.Close()
			return nil, err
		}
		n, err := StartRedis(ctx, RedisConfig{Dir: nodeDir, Port: port, Args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"),
			"--cluster-node-timeout", "5000",
		}})
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, Tail(string(out), 10))
	}
	err = Await(ctx, 30*time.Second, 20*time.Millisecond, func() bool {
		for _, n := range c.Nodes {
			info, err := n.Client.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
		}
		return true
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("the cluster of %s is not ok: %w", strings.Join(addrs, ","), err)
	}
	c.URL = "redis-cluster://" + strings.Join(addrs, ",")
	c.Client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	return c, nil
}

// Close stops every node and closes the client.
func (c *RedisCluster) Close() {
	if c.Client != nil {
		c.Client.Close()
	}
	for _, n := range c.Nodes {
		n.Close()
	}
}

// clusterPort returns a free port whose cluster bus port (port + 10000) is
// free too, both below 65536.
func clusterPort() (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(30000)
		if free(port) && free(port+10000) {
			return port, nil
		}
	}
	return 0, errors.New("find a free cluster port: none of 100 tried was free")
}

func free(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
