package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoRedisServer is returned by StartRedis when redis-server is not
// installed.
var ErrNoRedisServer = errors.New("redis-server is not installed")

// RedisConfig configures a RedisServer.
type RedisConfig struct {
	// Dir holds the server's data and its log, redis.log. Required.
	Dir string
	// AOF turns the append-only file on, with an fsync per write, so that
	// a Stop and a Start keep the data. Defaults to off (and no snapshots:
	// the server keeps nothing).
	AOF bool
	// PoolSize is the connection pool size of the server's Client.
	// Defaults to go-redis's (10 per CPU).
	PoolSize int
	// Port is the server's port. Defaults to a free one.
	Port int
	// Bind are addresses the server listens on besides 127.0.0.1 (the
	// host side of a network namespace's link).
	Bind []string
	// Args are more arguments of redis-server (--cluster-enabled yes, a
	// sentinel's configuration file and --sentinel, …), after the others.
	Args []string
}

// RedisServer is a redis-server child process on a free loopback port,
// with maxmemory-policy noeviction (asynq's leases must never be evicted).
type RedisServer struct {
	// Addr is the server's host:port, URL the redis:// URL of its
	// database 0.
	Addr, URL string
	// Client is connected to the server; Close closes it.
	Client *redis.Client

	cfg    RedisConfig
	bin    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedis starts a redis-server and returns once it answers. The
// caller ends it with Close.
func StartRedis(ctx context.Context, cfg RedisConfig) (*RedisServer, error) {
	if cfg.Dir == "" {
		return nil, errors.New("harness: RedisConfig.Dir is required")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	port := cfg.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	r := &RedisServer{cfg: cfg, bin: bin, port: port}
	r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r.URL = "redis://" + r.Addr + "/0"
	r.Client = redis.NewClient(&redis.Options{Addr: r.Addr, PoolSize: cfg.PoolSize})
	if err := r.Start(ctx); err != nil {
		r.Client.Close()
		return nil, err
	}
	return r, nil
}

// Start starts the server again after Stop or Kill, on the same port and
// directory, and returns once it answers (within 10s).
func (r *RedisServer) Start(ctx context.Context) error {
	aof := "no"
	if r.cfg.AOF {
		aof = "yes"
	}
	bind := strings.Join(append([]string{"127.0.0.1"}, r.cfg.Bind...), " ")
	args := append(r.cfg.Args[:len(r.cfg.Args):len(r.cfg.Args)],
		"--port", strconv.Itoa(r.port), "--bind", bind, "--protected-mode", "no",
		"--save", "", "--appendonly", aof, "--appendfsync", "always", "--dir", r.cfg.Dir,
		"--maxmemory-policy", "noeviction", "--daemonize", "no",
		"--logfile", r.logPath())
	r.cmd = exec.Command(r.bin, args...)
	// The log is appended to across restarts: only what this start writes
	// says whether it is ready.
	var logged int64
	if fi, err := os.Stat(r.logPath()); err == nil {
		logged = fi.Size()
	}
	if err := r.cmd.Start(); err != nil {
		r.cmd = nil
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.exited = make(chan struct{})
	cmd, exited := r.cmd, r.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	err := Await(ctx, 10*time.Second, 5*time.Millisecond, func() bool {
		select {
		case <-exited:
			return true
		default:
			return strings.Contains(r.logSince(logged), "Ready to accept connections")
		}
	})
	select {
	case <-exited:
		r.cmd = nil
		return fmt.Errorf("redis-server on %s exited at its start: %s", r.Addr, Tail(r.logSince(logged), 10))
	default:
	}
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = r.Client.Ping(pctx).Err()
		cancel()
	}
	if err != nil {
		r.Kill()
		return fmt.Errorf("redis-server on %s did not answer: %w", r.Addr, err)
	}
	return nil
}

// Stop shuts the server down as SIGTERM does (with the AOF on, it keeps
// the data), and kills it after 10s. It does nothing to a server that is
// not running.
func (r *RedisServer) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// Kill ends the server with SIGKILL.
func (r *RedisServer) Kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// Close stops the server and closes its Client.
func (r *RedisServer) Close() {
	r.Client.Close()
	r.Stop()
}

func (r *RedisServer) logPath() string { return filepath.Join(r.cfg.Dir, "redis.log") }

// logSince is what the server's log holds past its first offset bytes.
func (r *RedisServer) logSince(offset int64) string {
	b, err := os.ReadFile(r.logPath())
	if err != nil {
		return err.Error()
	}
	return string(b[min(offset, int64(len(b))):])
}

// UsedMemory is the used_memory of the Redis server c talks to, in bytes.
func UsedMemory(ctx context.Context, c redis.UniversalClient) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis info memory: %w", err)
	}
	if v, ok := infoField(info, "used_memory"); ok {
		return strconv.ParseInt(v, 10, 64)
	}
	return 0, errors.New("no used_memory in INFO memory")
}

// RedisStats are a Redis server's cumulative command count, CPU time
// (user and system) and network bytes in and out.
type RedisStats struct {
	Commands      int64
	CPU           time.Duration
	NetIn, NetOut int64
}

// Stats reads the RedisStats of the server c talks to.
func Stats(ctx context.Context, c redis.UniversalClient) (RedisStats, error) {
	info, err := c.Info(ctx, "stats", "cpu").Result()
	if err != nil {
		return RedisStats{}, fmt.Errorf("redis info stats cpu: %w", err)
	}
	var st RedisStats
	if v, ok := infoField(info, "total_commands_processed"); ok {
		st.Commands, _ = strconv.ParseInt(v, 10, 64)
	}
	if v, ok := infoField(info, "total_net_input_bytes"); ok {
		st.NetIn, _ = strconv.ParseInt(v, 10, 64)
	}
	if v, ok := infoField(info, "total_net_output_bytes"); ok {
		st.NetOut, _ = strconv.ParseInt(v, 10, 64)
	}
	var cpu float64
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		if v, ok := infoField(info, k); ok {
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		}
	}
	st.CPU = time.Duration(cpu * float64(time.Second))
	return st, nil
}

// infoField finds "key:value" among the lines of an INFO reply.
func infoField(info, key string) (string, bool) {
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && k == key {
			return v, true
		}
	}
	return "", false
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
