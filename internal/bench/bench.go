// Package bench measures execq against a bare Docker exec in one run, on
// one machine, with one image: the baseline execs run in containers made
// with execq's own hardening (same image, same limits) and the workers are
// real `execq worker` processes on a redis-server of the benchmark's own,
// once per runtime, so that the runtimes compare within one run.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/agentrt"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/sandbox/dockerexec"
	"github.com/execq/execq/producer"
)

// Config sizes a run. Zero values mean the defaults.
type Config struct {
	// Exe is the execq binary; workers run as its child processes, and the
	// agent binary is the execq-agent beside it.
	Exe string
	// Image is the sandbox image. Defaults to execq-sandbox:latest.
	Image string
	// PythonImage is the image of the figures of `python3 -c pass`, which
	// are left out when it is missing. Defaults to execq-python:latest.
	PythonImage string
	// Runtimes are the runtimes measured, the default one first. Defaults
	// to agent and docker-exec.
	Runtimes []string
	// Samples is the sample size of each sequential latency. Defaults to 100.
	Samples int
	// Throughput is the executions per throughput run of the agent
	// runtime; the docker-exec runtime, an order of magnitude slower, runs
	// a quarter of them. Defaults to 2000.
	Throughput int
	// Concurrency lists the worker concurrencies of the throughput runs.
	// Defaults to 1, 4 and 16.
	Concurrency []int
	// Burst is the executions submitted at once. Defaults to 100.
	Burst int
	// BigOutputBytes is what the big-output execution writes. Defaults to
	// 100 MB.
	BigOutputBytes int64
	// InputSizes are the stdin sizes of the large-input phase. Defaults to
	// 10 MiB and 5 MiB.
	InputSizes []int64
	// InputSamples is the sample size of each large input. Defaults to 10.
	InputSamples int
	// PytestThroughput is the executions of each throughput run of the
	// pytest figures, on either runtime: pytest, not execq, dominates.
	// Defaults to 100.
	PytestThroughput int
	// PytestSamples is the sample size of the pytest latency. Defaults to
	// 20.
	PytestSamples int
	// Phases selects what runs: PhaseCore (the baseline and everything on
	// `true`, large inputs and the rest), PhasePython, PhasePytest,
	// PhaseSession, PhaseHTTP, PhaseScale. Defaults to AllPhases.
	Phases []string
	// WorkerArgs are added to every `execq worker` command line, to
	// measure other settings (e.g. --task-check-interval 2ms).
	WorkerArgs []string
	// Progress receives a line per phase; nil discards them.
	Progress io.Writer
}

// The phases of a run (Config.Phases).
const (
	PhaseCore   = "core"
	PhasePython = "python"
	PhasePytest = "pytest"
)

// AllPhases are every phase, in the order they run.
var AllPhases = []string{PhaseCore, PhasePython, PhasePytest, PhaseSession, PhaseHTTP, PhaseScale}

func (c Config) runs(phase string) bool { return slices.Contains(c.Phases, phase) }

func (c Config) withDefaults() Config {
	if c.Image == "" {
		c.Image = "execq-sandbox:latest"
	}
	if c.PythonImage == "" {
		c.PythonImage = "execq-python:latest"
	}
	if len(c.Runtimes) == 0 {
		c.Runtimes = []string{agentrt.Name, dockerexec.Name}
	}
	if c.Samples <= 0 {
		c.Samples = 100
	}
	if c.Throughput <= 0 {
		c.Throughput = 2000
	}
	if len(c.Concurrency) == 0 {
		c.Concurrency = []int{1, 4, 16}
	}
	if c.Burst <= 0 {
		c.Burst = 100
	}
	if c.BigOutputBytes <= 0 {
		c.BigOutputBytes = 100_000_000
	}
	if len(c.InputSizes) == 0 {
		c.InputSizes = []int64{10 << 20, 5 << 20}
	}
	if c.InputSamples <= 0 {
		c.InputSamples = 10
	}
	if c.PytestThroughput <= 0 {
		c.PytestThroughput = 100
	}
	if c.PytestSamples <= 0 {
		c.PytestSamples = 20
	}
	if len(c.Phases) == 0 {
		c.Phases = AllPhases
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

func (c Config) validate() error {
	for _, ph := range c.Phases {
		if !slices.Contains(AllPhases, ph) {
			return fmt.Errorf("no phase %q; the phases are %s", ph, strings.Join(AllPhases, ", "))
		}
	}
	return nil
}

func (c Config) workerArgs(rt string) []string {
	return append([]string{"--image", c.Image, "--runtime", rt}, c.WorkerArgs...)
}

func (c Config) throughputOf(rt string) int {
	if rt == dockerexec.Name {
		return max(c.Throughput/4, 1)
	}
	return c.Throughput
}

func (c Config) agentBinary() string { return filepath.Join(filepath.Dir(c.Exe), "execq-agent") }

// Run runs every phase and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	r := &Report{Config: map[string]any{
		"samples": cfg.Samples, "throughput": cfg.Throughput, "concurrency": cfg.Concurrency,
		"burst": cfg.Burst, "bigOutputBytes": cfg.BigOutputBytes, "image": cfg.Image, "pythonImage": cfg.PythonImage,
		"runtimes": cfg.Runtimes, "workerArgs": cfg.WorkerArgs,
		"inputSizes": cfg.InputSizes, "inputSamples": cfg.InputSamples,
		"phases": cfg.Phases, "pytestThroughput": cfg.PytestThroughput, "pytestSamples": cfg.PytestSamples,
	}}
	if _, err := os.Stat(cfg.agentBinary()); err != nil {
		return nil, fmt.Errorf("the agent binary: %w (make build puts it beside execq)", err)
	}
	dir, err := os.MkdirTemp("", "execq-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cli, err := docker.NewClient()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	if err := r.describeMachine(ctx, cli); err != nil {
		return nil, err
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "bench: "+format+"\n", args...)
	}
	redisSrv, err := startRedis(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer redisSrv.Kill()
	client := producer.New(redisSrv.Client, producer.Options{})
	if cfg.runs(PhaseCore) {
		if err := r.runCore(ctx, cli, client, redisSrv, dir, cfg, progress); err != nil {
			return nil, err
		}
	}
	if cfg.runs(PhasePython) {
		if err := r.runPython(ctx, cli, client, redisSrv, dir, cfg, progress); err != nil {
			return nil, fmt.Errorf("python: %w", err)
		}
	}
	if cfg.runs(PhasePytest) {
		if err := r.runPytest(ctx, cli, client, redisSrv, dir, cfg, progress); err != nil {
			return nil, fmt.Errorf("pytest: %w", err)
		}
	}
	if cfg.runs(PhaseSession) {
		if err := r.runSession(ctx, client, redisSrv, dir, cfg, progress); err != nil {
			return nil, fmt.Errorf("session: %w", err)
		}
	}
	if cfg.runs(PhaseHTTP) {
		if err := r.runHTTP(ctx, client, redisSrv, dir, cfg, progress); err != nil {
			return nil, fmt.Errorf("http: %w", err)
		}
	}
	if cfg.runs(PhaseScale) {
		if err := r.runScale(ctx, client, redisSrv, dir, cfg, progress); err != nil {
			return nil, fmt.Errorf("scale: %w", err)
		}
	}
	r.Duration = time.Since(start).Round(time.Second).Seconds()
	return r, nil
}

// runCore measures the baseline and, per runtime, everything on `true`.
func (r *Report) runCore(ctx context.Context, cli *client.Client, client *producer.Client, redisSrv *harness.RedisServer, dir string, cfg Config, progress func(string, ...any)) error {
	progress("baseline: bare docker exec of true, %d one at a time, %d with 4 in parallel", cfg.Samples, 2*cfg.Samples)
	bare, err := newBareExec(ctx, cli, cfg)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	defer bare.close()
	if err := r.runBaseline(ctx, bare, cfg); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}

	for i, name := range cfg.Runtimes {
		fig := RuntimeFigures{Runtime: name}
		progress("%s: the runtime's own cost, %d runs of true and resets", name, 2*cfg.Samples)
		if fig.Sandbox, err = sandboxCost(ctx, cli, cfg, name, 2*cfg.Samples); err != nil {
			return fmt.Errorf("%s: sandbox cost: %w", name, err)
		}
		progress("%s: Submit→Wait and Submit→first byte, %d each, worker pool 4", name, cfg.Samples)
		w, err := startWorker(ctx, cfg.Exe, redisSrv.URL, dir, 4, cfg.workerArgs(name)...)
		if err != nil {
			return err
		}
		if fig.EndToEnd, err = r.runEndToEnd(ctx, client, redisSrv, w, cfg, i == 0); err != nil {
			stopWorker(w)
			return fmt.Errorf("%s: end to end: %w", name, err)
		}
		progress("%s: execq run -- true and docker exec of true, %d each, interleaved", name, max(cfg.Samples/2, 1))
		if fig.CLI, err = runCLI(ctx, bare, redisSrv.URL, cfg); err != nil {
			stopWorker(w)
			return fmt.Errorf("%s: cli: %w", name, err)
		}
		if i == 0 {
			r.Baseline.DockerExecCLI = fig.CLI.DockerExec
		}
		if i == 0 {
			progress("%s: burst of %d at once, worker pool 4", name, cfg.Burst)
			if err := r.runBurst(ctx, client, cfg, 4); err != nil {
				stopWorker(w)
				return fmt.Errorf("burst: %w", err)
			}
			progress("%s: one execution writing %d bytes", name, cfg.BigOutputBytes)
			if err := r.runBigOutput(ctx, client, redisSrv, w, cfg); err != nil {
				stopWorker(w)
				return fmt.Errorf("big output: %w", err)
			}
			progress("%s: cat >/dev/null with a stdin of %v bytes, %d each", name, cfg.InputSizes, cfg.InputSamples)
			if err := r.runLargeInputs(ctx, client, redisSrv, cfg); err != nil {
				stopWorker(w)
				return fmt.Errorf("large inputs: %w", err)
			}
		}
		stopWorker(w)
		for _, c := range cfg.Concurrency {
			n := cfg.throughputOf(name)
			progress("%s: throughput of %d executions of true at concurrency %d", name, n, c)
			w, err := startWorker(ctx, cfg.Exe, redisSrv.URL, dir, c, cfg.workerArgs(name)...)
			if err != nil {
				return err
			}
			run, err := r.runThroughput(ctx, client, redisSrv, w, n, c, i == 0)
			stopWorker(w)
			if err != nil {
				return fmt.Errorf("%s: throughput at %d: %w", name, c, err)
			}
			fig.Throughput = append(fig.Throughput, run)
		}
		r.Runtimes = append(r.Runtimes, fig)
	}
	return nil
}

func (r *Report) describeMachine(ctx context.Context, cli *client.Client) error {
	info, err := cli.Info(ctx)
	if err != nil {
		return fmt.Errorf("docker info: %w", err)
	}
	r.Machine = Machine{
		Date:          time.Now().UTC().Format("2006-01-02"),
		CPUs:          runtime.NumCPU(),
		Kernel:        info.KernelVersion,
		DockerVersion: info.ServerVersion,
		CgroupVersion: info.CgroupVersion,
		GoVersion:     runtime.Version(),
	}
	return nil
}

// newRuntime makes a runtime of execq's own, as the worker does.
func newRuntime(cli *client.Client, cfg Config, name, owner string) (sandbox.Runtime, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine, err := docker.NewEngine(cli, docker.Config{Owner: owner, AgentBinary: cfg.agentBinary(), Logger: log})
	if err != nil {
		return nil, err
	}
	switch name {
	case agentrt.Name:
		return agentrt.New(engine, cli, agentrt.Config{Logger: log})
	case dockerexec.Name:
		return dockerexec.New(engine, cli, dockerexec.Config{Logger: log})
	}
	return nil, errors.New("no runtime " + name)
}

func mib(b int64) float64 { return roundMs(float64(b)/(1<<20)*1000) / 1000 }

// roundMs rounds to two decimals.
func roundMs(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }
