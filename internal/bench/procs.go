package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server the benchmark starts for itself.
type redisServer struct {
	cmd    *exec.Cmd
	url    string
	client *redis.Client
}

func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not installed (make setup installs it)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--maxmemory-policy", "noeviction")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &redisServer{cmd: cmd, url: fmt.Sprintf("redis://127.0.0.1:%d/0", port)}
	s.client = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), PoolSize: 64})
	if err := waitFor(ctx, 10*time.Second, func() bool { return s.client.Ping(ctx).Err() == nil }); err != nil {
		s.stop()
		return nil, fmt.Errorf("redis-server did not answer: %w", err)
	}
	return s, nil
}

func (s *redisServer) stop() {
	s.client.Close()
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// usedMemory is Redis's used_memory, in bytes.
func (s *redisServer) usedMemory(ctx context.Context) (int64, error) {
	info, err := s.client.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no used_memory in INFO")
}

// workerProc is an `execq worker` child process.
type workerProc struct {
	cmd         *exec.Cmd
	metricsAddr string
	pool        int
	log         string
}

func startWorker(ctx context.Context, exe, redisURL, dir string, pool int, extra ...string) (*workerProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	w := &workerProc{
		metricsAddr: fmt.Sprintf("127.0.0.1:%d", port),
		pool:        pool,
		log:         filepath.Join(dir, fmt.Sprintf("worker-%d.log", port)),
	}
	logFile, err := os.Create(w.log)
	if err != nil {
		return nil, err
	}
	args := append([]string{"worker", "--redis", redisURL, "--pool-size", strconv.Itoa(pool),
		"--metrics-addr", w.metricsAddr, "--log-level", "warn", "--shutdown-timeout", "10s"}, extra...)
	w.cmd = exec.Command(exe, args...)
	w.cmd.Stdout, w.cmd.Stderr = logFile, logFile
	if err := w.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start worker: %w", err)
	}
	logFile.Close()
	err = waitFor(ctx, 2*time.Minute, func() bool {
		idle, err := w.metric("execq_pool_containers", `state="idle"`)
		return err == nil && int(idle) >= pool
	})
	if err != nil {
		w.stop()
		tail, _ := os.ReadFile(w.log)
		return nil, fmt.Errorf("worker did not warm %d containers: %w\n%s", pool, err, tail)
	}
	return w, nil
}

// stop shuts the worker down gracefully; it removes its containers.
func (w *workerProc) stop() {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = w.cmd.Process.Kill()
		<-done
	}
}

// metric reads one sample from the worker's /metrics.
func (w *workerProc) metric(name, labels string) (float64, error) {
	resp, err := http.Get("http://" + w.metricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return findMetric(resp.Body, name, labels)
}

func findMetric(r io.Reader, name, labels string) (float64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || labels != "" && !strings.Contains(line, labels) {
			continue
		}
		fields := strings.Fields(line)
		return strconv.ParseFloat(fields[len(fields)-1], 64)
	}
	return 0, fmt.Errorf("metric %s{%s} not found", name, labels)
}

// memory reads the worker's resident set size and its peak, in bytes.
func (w *workerProc) memory() (rss, peak int64, err error) {
	return procMemory(w.cmd.Process.Pid)
}

// resetPeak restarts the kernel's count of the worker's peak RSS.
func (w *workerProc) resetPeak() error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", w.cmd.Process.Pid), []byte("5"), 0)
}

func procMemory(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitFor(ctx context.Context, limit time.Duration, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// cpu reads the worker process's user and system CPU time.
func (w *workerProc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0, errors.New("unexpected /proc stat")
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// redisStats are Redis's cumulative command count and CPU time.
type redisStats struct {
	commands int64
	cpu      time.Duration
}

func (s *redisServer) stats(ctx context.Context) (redisStats, error) {
	info, err := s.client.Info(ctx, "stats", "cpu").Result()
	if err != nil {
		return redisStats{}, err
	}
	var st redisStats
	var cpu float64
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "total_commands_processed":
			st.commands, _ = strconv.ParseInt(v, 10, 64)
		case "used_cpu_sys", "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		}
	}
	st.cpu = time.Duration(cpu * float64(time.Second))
	return st, nil
}
