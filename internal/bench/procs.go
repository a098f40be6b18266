package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/execq/execq/internal/harness"
)

// startRedis starts the benchmark's redis-server, with its data in dir
// and a client pool for the bursts.
func startRedis(ctx context.Context, dir string) (*harness.RedisServer, error) {
	s, err := harness.StartRedis(ctx, harness.RedisConfig{Dir: dir, PoolSize: 64})
	if errors.Is(err, harness.ErrNoRedisServer) {
		return nil, errors.New("redis-server is not installed (make setup installs it)")
	}
	return s, err
}

// startWorker starts an `execq worker` with pool containers, its log in
// dir, and waits until they are warm.
func startWorker(ctx context.Context, exe, redisURL, dir string, pool int, extra ...string) (*harness.WorkerProcess, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	w, err := harness.StartWorker(harness.WorkerConfig{
		Exe:         exe,
		RedisURL:    redisURL,
		PoolSize:    pool,
		MetricsAddr: fmt.Sprintf("127.0.0.1:%d", port),
		LogPath:     filepath.Join(dir, fmt.Sprintf("worker-%d.log", port)),
		Args:        append([]string{"--log-level", "warn", "--shutdown-timeout", "10s"}, extra...),
	})
	if err != nil {
		return nil, err
	}
	if err := w.WaitWarm(ctx, 2*time.Minute); err != nil {
		stopWorker(w)
		return nil, fmt.Errorf("worker: %w\n%s", err, w.Log())
	}
	return w, nil
}

// stopWorker shuts the worker down gracefully; it removes its containers.
func stopWorker(w *harness.WorkerProcess) { w.Stop(time.Minute) }
