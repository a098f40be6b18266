package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// localRedis is the Redis execq up runs when it is given none: a
// redis-server child where one is installed, keeping its data (AOF) in a
// directory, so that a restart loses nothing; else an embedded miniredis,
// which keeps nothing.
type localRedis struct {
	url  string
	stop func()
}

// startLocalRedis starts a Redis on addr: the one already listening there,
// a redis-server child with its data in dataDir, or an embedded one.
func startLocalRedis(ctx context.Context, addr, dataDir string, log *slog.Logger) (*localRedis, error) {
	url := "redis://" + addr + "/0"
	if listening(addr) && redisAnswers(ctx, url) {
		log.Info("a Redis server already listens on the embedded address; using it", "redis", url)
		return &localRedis{url: url, stop: func() {}}, nil
	}
	if path, err := exec.LookPath("redis-server"); err == nil {
		r, err := startRedisServer(ctx, path, addr, dataDir)
		if err != nil {
			return nil, err
		}
		log.Info("started redis-server; its data survives a restart", "redis", url, "data", dataDir)
		return r, nil
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded Redis cannot listen on %s: %v; give another --embedded-addr, or --redis", addr, err)
	}
	tickCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go tickTTLs(tickCtx, mr)
	log.Warn("redis-server is not installed: using an embedded Redis, which keeps nothing on restart; install redis-server or give --redis", "redis", url)
	return &localRedis{url: "redis://" + mr.Addr() + "/0", stop: func() { cancel(); mr.Close() }}, nil
}

// startRedisServer runs redis-server on addr with an append-only file in
// dataDir and waits until it answers. The child dies with this process.
func startRedisServer(ctx context.Context, path, addr, dataDir string) (*localRedis, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--embedded-addr %q: %w", addr, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("the Redis data directory: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(dataDir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("the Redis log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(path, "--bind", host, "--port", port, "--dir", dataDir,
		"--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	url := "redis://" + addr + "/0"
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("redis-server exited (%v); its log is %s", err, filepath.Join(dataDir, "redis.log"))
		default:
		}
		if listening(addr) && redisAnswers(ctx, url) {
			return &localRedis{url: url, stop: stop}, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, errors.Join(ctx.Err(), fmt.Errorf("redis-server did not answer on %s within 10s; its log is %s", addr, filepath.Join(dataDir, "redis.log")))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listening reports whether something accepts connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// defaultDataDir is where execq up keeps its Redis's data:
// $XDG_STATE_HOME/execq/redis, or ~/.local/state/execq/redis.
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "execq", "redis")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "execq", "redis")
	}
	return filepath.Join(os.TempDir(), "execq-redis")
}
