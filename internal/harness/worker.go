package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// WorkerConfig describes an `execq worker` process.
type WorkerConfig struct {
	// Exe is the execq binary. Required.
	Exe string
	// RedisURL is the worker's --redis. Required.
	RedisURL string
	// PoolSize is the worker's --pool-size. Defaults to 1.
	PoolSize int
	// Name is the worker's --name. Defaults to the worker's own default.
	Name string
	// MetricsAddr is the worker's --metrics-addr (FreeAddr gives one),
	// which Metric, WaitWarm and Healthz read. Defaults to none.
	MetricsAddr string
	// LogPath is the file the process's stdout and stderr go to; it is
	// created. Required.
	LogPath string
	// Env is added to the process's environment (DOCKER_HOST=…).
	Env []string
	// Args are more flags, after the ones above (a repeated flag
	// overrides).
	Args []string
	// Wrap is a command the worker runs under, which execs it (Netns.Wrap:
	// ip netns exec NAME).
	Wrap []string
}

// WorkerProcess is an `execq worker` child process.
type WorkerProcess struct {
	cfg     WorkerConfig
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	http    *http.Client
}

// StartWorker starts the worker process. It does not wait for anything:
// WaitLog and WaitWarm do.
func StartWorker(cfg WorkerConfig) (*WorkerProcess, error) {
	if cfg.Exe == "" || cfg.RedisURL == "" || cfg.LogPath == "" {
		return nil, errors.New("harness: WorkerConfig needs Exe, RedisURL and LogPath")
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 1
	}
	w := &WorkerProcess{cfg: cfg, exited: make(chan struct{}), http: &http.Client{Timeout: 10 * time.Second}}
	args := []string{"worker", "--redis", cfg.RedisURL, "--pool-size", strconv.Itoa(cfg.PoolSize)}
	if cfg.Name != "" {
		args = append(args, "--name", cfg.Name)
	}
	if cfg.MetricsAddr != "" {
		args = append(args, "--metrics-addr", cfg.MetricsAddr)
	}
	args = append(args, cfg.Args...)
	logf, err := os.Create(cfg.LogPath)
	if err != nil {
		return nil, fmt.Errorf("the worker's log: %w", err)
	}
	argv := append(append(cfg.Wrap[:len(cfg.Wrap):len(cfg.Wrap)], cfg.Exe), args...)
	w.cmd = exec.Command(argv[0], argv[1:]...)
	w.cmd.Env = append(os.Environ(), cfg.Env...)
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	if err := w.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start execq worker: %w", err)
	}
	go func() {
		w.waitErr = w.cmd.Wait()
		logf.Close()
		close(w.exited)
	}()
	return w, nil
}

// PoolSize is the worker's --pool-size.
func (w *WorkerProcess) PoolSize() int { return w.cfg.PoolSize }

// Pid is the worker's process ID.
func (w *WorkerProcess) Pid() int { return w.cmd.Process.Pid }

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It reports whether the process exited by itself.
func (w *WorkerProcess) Stop(grace time.Duration) bool {
	if !w.Running() {
		return true
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
		return true
	case <-time.After(grace):
	}
	w.Kill()
	return false
}

// Kill sends SIGKILL and waits for the process to be gone.
func (w *WorkerProcess) Kill() {
	_ = w.cmd.Process.Kill()
	<-w.exited
}

// Running reports whether the process has not exited.
func (w *WorkerProcess) Running() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

// Exited is closed when the process has exited.
func (w *WorkerProcess) Exited() <-chan struct{} { return w.exited }

// Err is how the process ended (nil for exit status 0), once it has.
func (w *WorkerProcess) Err() error {
	select {
	case <-w.exited:
		return w.waitErr
	default:
		return nil
	}
}

// Log is what the process has written so far.
func (w *WorkerProcess) Log() string {
	b, _ := os.ReadFile(w.cfg.LogPath)
	return string(b)
}

// Await is the package's Await, failing at once when the process exits
// before cond holds.
func (w *WorkerProcess) Await(ctx context.Context, d, tick time.Duration, cond func() bool) error {
	exited := false
	err := Await(ctx, d, tick, func() bool {
		if cond() {
			return true
		}
		exited = !w.Running()
		return exited
	})
	if exited {
		return fmt.Errorf("the worker exited (%v)", w.waitErr)
	}
	return err
}

// WaitLog waits up to d for substr to appear in the process's log.
func (w *WorkerProcess) WaitLog(ctx context.Context, substr string, d time.Duration) error {
	err := w.Await(ctx, d, 20*time.Millisecond, func() bool { return strings.Contains(w.Log(), substr) })
	if err != nil {
		return fmt.Errorf("log %q: %w", substr, err)
	}
	return nil
}

// WaitWarm waits up to d until the worker's pool holds PoolSize idle
// containers, as its metrics say (the worker needs Metrics).
func (w *WorkerProcess) WaitWarm(ctx context.Context, d time.Duration) error {
	err := w.Await(ctx, d, 20*time.Millisecond, func() bool {
		idle, err := w.Metric(ctx, "execq_pool_containers", "state", "idle")
		return err == nil && int(idle) >= w.cfg.PoolSize
	})
	if err != nil {
		return fmt.Errorf("warm %d containers: %w", w.cfg.PoolSize, err)
	}
	return nil
}

// Metric reads the value of one sample from the worker's /metrics: the one
// of the metric name whose labels include the label name and value pairs
// given.
func (w *WorkerProcess) Metric(ctx context.Context, name string, labels ...string) (float64, error) {
	body, err := w.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	defer body.Close()
	families, err := ParseMetrics(body)
	if err != nil {
		return 0, err
	}
	return Value(families, name, labels...)
}

// Healthz returns the worker's /healthz status code and body.
func (w *WorkerProcess) Healthz(ctx context.Context) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.cfg.MetricsAddr+"/healthz", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

func (w *WorkerProcess) get(ctx context.Context, path string) (io.ReadCloser, error) {
	if w.cfg.MetricsAddr == "" {
		return nil, errors.New("the worker serves no metrics (WorkerConfig.MetricsAddr)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.cfg.MetricsAddr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp.Body, nil
}

// CPU is the user and system CPU time the worker process has used.
func (w *WorkerProcess) CPU() (time.Duration, error) { return ProcCPU(w.Pid()) }

// Memory is the worker process's resident set size and its peak, in bytes.
func (w *WorkerProcess) Memory() (rss, peak int64, err error) { return ProcMemory(w.Pid()) }

// ResetPeak restarts the kernel's count of the worker's peak RSS.
func (w *WorkerProcess) ResetPeak() error { return ResetPeak(w.Pid()) }
