// Package bench measures execq against a bare Docker exec in one run, on
// one machine, with one image: the baseline execs run in containers made
// by execq's own runtime (same image, same hardening) and the workers are
// real `execq worker` processes on a redis-server of the benchmark's own.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/sandbox/dockerexec"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// Config sizes a run. Zero values mean the defaults.
type Config struct {
	// Exe is the execq binary; workers run as its child processes.
	Exe string
	// Image is the sandbox image. Defaults to execq-sandbox:latest.
	Image string
	// Samples is the sample size of each sequential latency. Defaults to 100.
	Samples int
	// Throughput is the executions per throughput run. Defaults to 500.
	Throughput int
	// Concurrency lists the worker concurrencies of the throughput runs.
	// Defaults to 1, 4 and 16.
	Concurrency []int
	// Burst is the executions submitted at once. Defaults to 100.
	Burst int
	// BigOutputBytes is what the big-output execution writes. Defaults to
	// 100 MB.
	BigOutputBytes int64
	// WorkerArgs are added to every `execq worker` command line, to
	// measure other settings (e.g. --task-check-interval 2ms).
	WorkerArgs []string
	// Progress receives a line per phase; nil discards them.
	Progress io.Writer
}

func (c Config) withDefaults() Config {
	if c.Image == "" {
		c.Image = "execq-sandbox:latest"
	}
	if c.Samples <= 0 {
		c.Samples = 100
	}
	if c.Throughput <= 0 {
		c.Throughput = 500
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
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

func (c Config) workerArgs() []string {
	return append([]string{"--image", c.Image}, c.WorkerArgs...)
}

// Report holds every figure of a run.
type Report struct {
	Machine    Machine         `json:"machine"`
	Baseline   Baseline        `json:"baseline"`
	EndToEnd   EndToEnd        `json:"endToEnd"`
	CLI        CLI             `json:"cli"`
	Throughput []ThroughputRun `json:"throughput"`
	Burst      Burst           `json:"burst"`
	BigOutput  BigOutput       `json:"bigOutput"`
	Costs      Costs           `json:"costs"`
	Duration   float64         `json:"durationSeconds"`
	Config     map[string]any  `json:"config"`
	Notes      []string        `json:"notes,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	Date          string `json:"date"`
	CPUs          int    `json:"cpus"`
	Kernel        string `json:"kernel"`
	DockerVersion string `json:"dockerVersion"`
	CgroupVersion string `json:"cgroupVersion"`
	GoVersion     string `json:"goVersion"`
}

// Baseline is a bare Docker exec of `true` through the Go client in a warm
// container: create, attach, inspect.
type Baseline struct {
	Sequential Latency `json:"sequential"`
	// Rate1 and Rate4 are executions per second one at a time and with 4
	// in parallel (one container each).
	Rate1 float64 `json:"ratePerSecond1"`
	Rate4 float64 `json:"ratePerSecond4"`
	N4    int     `json:"n4"`
}

// EndToEnd is execq from an agent's side on an idle worker.
type EndToEnd struct {
	SubmitWait     Latency `json:"submitWait"`
	FirstByte      Latency `json:"submitToFirstByte"`
	SubmitWaitX    float64 `json:"submitWaitP50RatioToBaseline"`
	FirstByteX     float64 `json:"firstByteP50RatioToBaseline"`
	AddedP50Ms     float64 `json:"addedP50Ms"`
	WorkerPoolSize int     `json:"workerPoolSize"`
}

// CLI compares `execq run -- true` with `docker exec C true`, each a
// process started from scratch, as a person or an agent's shell runs them.
type CLI struct {
	DockerExec Latency `json:"dockerExec"`
	ExecqRun   Latency `json:"execqRun"`
	Ratio      float64 `json:"execqRunP50RatioToDockerExec"`
}

// ThroughputRun drains N executions of `true` at one worker concurrency.
type ThroughputRun struct {
	Concurrency int     `json:"concurrency"`
	N           int     `json:"n"`
	DrainS      float64 `json:"drainSeconds"`
	PerSecond   float64 `json:"perSecond"`
	RatioTo4    float64 `json:"ratioToBaselineRate4"`
	WorkerRSSMB float64 `json:"workerPeakRSSMiB"`
}

// Burst submits N executions at once.
type Burst struct {
	N           int     `json:"n"`
	Concurrency int     `json:"concurrency"`
	P50         float64 `json:"p50Ms"`
	P95         float64 `json:"p95Ms"`
	Max         float64 `json:"maxMs"`
}

// BigOutput is one execution writing BigOutputBytes to stdout.
type BigOutput struct {
	Bytes           int64   `json:"bytes"`
	WallS           float64 `json:"wallSeconds"`
	WorkerPeakRSSMB float64 `json:"workerPeakRSSMiB"`
	WorkerIdleRSSMB float64 `json:"workerIdleRSSMiB"`
	StreamBytes     int64   `json:"streamMemoryBytes"`
	KeptBytes       int64   `json:"keptStdoutBytes"`
	Truncated       bool    `json:"truncated"`
}

// Costs are the resources execq itself uses.
type Costs struct {
	WorkerIdleRSSMB    float64 `json:"workerIdleRSSMiB"`
	WorkerLoadRSSMB    float64 `json:"workerLoadRSSMiB"`
	RedisBytesPerExec  int64   `json:"redisBytesPerExecution"`
	ExecqKeysBytes     int64   `json:"execqKeysBytesPerExecution"`
	AsynqTaskBytes     int64   `json:"asynqTaskBytesPerExecution"`
	RedisSampleN       int     `json:"redisSampleN"`
	WorkerLoadSampleAt int     `json:"workerLoadConcurrency"`
}

// Run runs every phase and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	start := time.Now()
	r := &Report{Config: map[string]any{
		"samples": cfg.Samples, "throughput": cfg.Throughput, "concurrency": cfg.Concurrency,
		"burst": cfg.Burst, "bigOutputBytes": cfg.BigOutputBytes, "image": cfg.Image,
		"workerArgs": cfg.WorkerArgs,
	}}
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

	progress("baseline: bare docker exec of true, %d one at a time, %d with 4 in parallel", cfg.Samples, 2*cfg.Samples)
	if err := r.runBaseline(ctx, cli, cfg); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	redisSrv, err := startRedis(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer redisSrv.stop()
	client := producer.New(redisSrv.client, producer.Options{})

	progress("end to end: Submit→Wait and Submit→first byte, %d each, worker pool 4", cfg.Samples)
	w, err := startWorker(ctx, cfg.Exe, redisSrv.url, dir, 4, cfg.workerArgs()...)
	if err != nil {
		return nil, err
	}
	if err := r.runEndToEnd(ctx, client, redisSrv, w, cfg); err != nil {
		w.stop()
		return nil, fmt.Errorf("end to end: %w", err)
	}
	progress("cli: execq run -- true and docker exec of true, %d each, interleaved", max(cfg.Samples/2, 1))
	if err := r.runCLI(ctx, cli, redisSrv.url, cfg); err != nil {
		w.stop()
		return nil, fmt.Errorf("cli: %w", err)
	}
	progress("burst: %d at once, worker pool 4", cfg.Burst)
	if err := r.runBurst(ctx, client, cfg, 4); err != nil {
		w.stop()
		return nil, fmt.Errorf("burst: %w", err)
	}
	progress("big output: one execution writing %d bytes", cfg.BigOutputBytes)
	if err := r.runBigOutput(ctx, client, redisSrv, w, cfg); err != nil {
		w.stop()
		return nil, fmt.Errorf("big output: %w", err)
	}
	w.stop()

	for _, c := range cfg.Concurrency {
		progress("throughput: %d executions of true at concurrency %d", cfg.Throughput, c)
		w, err := startWorker(ctx, cfg.Exe, redisSrv.url, dir, c, cfg.workerArgs()...)
		if err != nil {
			return nil, err
		}
		err = r.runThroughput(ctx, client, w, cfg, c)
		w.stop()
		if err != nil {
			return nil, fmt.Errorf("throughput at %d: %w", c, err)
		}
	}
	r.Duration = time.Since(start).Round(time.Second).Seconds()
	return r, nil
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

// runBaseline execs `true` in containers made by execq's runtime.
func (r *Report) runBaseline(ctx context.Context, cli *client.Client, cfg Config) error {
	rt, err := baselineRuntime(cli, cfg, fmt.Sprintf("bench-%d", os.Getpid()))
	if err != nil {
		return err
	}
	var boxes []sandbox.Sandbox
	defer func() {
		for _, sb := range boxes {
			_ = rt.Remove(context.WithoutCancel(ctx), sb.ID())
		}
	}()
	for range 4 {
		sb, err := rt.Create(ctx, cfg.Image)
		if err != nil {
			return err
		}
		boxes = append(boxes, sb)
	}
	user := fmt.Sprintf("%d:%d", boxes[0].User(), boxes[0].User())
	bare := func(id string) (time.Duration, error) {
		t := time.Now()
		e, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{User: user, Cmd: []string{"true"}, AttachStdout: true, AttachStderr: true})
		if err != nil {
			return 0, err
		}
		att, err := cli.ContainerExecAttach(ctx, e.ID, container.ExecAttachOptions{})
		if err != nil {
			return 0, err
		}
		_, _ = stdcopy.StdCopy(io.Discard, io.Discard, att.Reader)
		att.Close()
		if _, err := cli.ContainerExecInspect(ctx, e.ID); err != nil {
			return 0, err
		}
		return time.Since(t), nil
	}
	for range 5 { // warm up the engine's paths
		if _, err := bare(boxes[0].ID()); err != nil {
			return err
		}
	}
	var seq []time.Duration
	t0 := time.Now()
	for range cfg.Samples {
		d, err := bare(boxes[0].ID())
		if err != nil {
			return err
		}
		seq = append(seq, d)
	}
	r.Baseline.Sequential = summarize(seq)
	r.Baseline.Rate1 = perSecond(cfg.Samples, time.Since(t0))

	n := 2 * cfg.Samples
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	t0 = time.Now()
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 4 {
				if _, err := bare(boxes[i].ID()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	r.Baseline.Rate4 = perSecond(n/4*4, time.Since(t0))
	r.Baseline.N4 = n / 4 * 4
	return nil
}

func (r *Report) runEndToEnd(ctx context.Context, client *producer.Client, redisSrv *redisServer, w *workerProc, cfg Config) error {
	rss, _, err := w.memory()
	if err != nil {
		return err
	}
	r.Costs.WorkerIdleRSSMB = mib(rss)
	r.EndToEnd.WorkerPoolSize = w.pool
	for range 5 {
		if _, err := submitWait(ctx, client, []string{"true"}); err != nil {
			return err
		}
	}
	mem0, err := redisSrv.usedMemory(ctx)
	if err != nil {
		return err
	}
	var waits []time.Duration
	var lastID string
	for range cfg.Samples {
		t := time.Now()
		res, err := submitWait(ctx, client, []string{"true"})
		if err != nil {
			return err
		}
		if res.Status != tasks.StatusSucceeded {
			return fmt.Errorf("true ended %s: %s", res.Status, res.Error)
		}
		waits = append(waits, time.Since(t))
		lastID = res.ExecutionID
	}
	// Let the worker's completed-task bookkeeping settle before measuring.
	time.Sleep(200 * time.Millisecond)
	mem1, err := redisSrv.usedMemory(ctx)
	if err != nil {
		return err
	}
	r.Costs.RedisBytesPerExec = (mem1 - mem0) / int64(cfg.Samples)
	r.Costs.RedisSampleN = cfg.Samples
	keys := tasks.Keys{}
	for _, k := range []string{keys.Result(lastID), keys.Stream(lastID), keys.Attempts(lastID), keys.Queue(lastID)} {
		n, _ := redisSrv.client.MemoryUsage(ctx, k).Result()
		r.Costs.ExecqKeysBytes += n
	}
	r.Costs.AsynqTaskBytes, _ = redisSrv.client.MemoryUsage(ctx, "asynq:{default}:t:"+lastID).Result()

	var firsts []time.Duration
	for range cfg.Samples {
		t := time.Now()
		id, err := client.Submit(ctx, tasks.ExecRequest{Cmd: []string{"echo", "hi"}})
		if err != nil {
			return err
		}
		got := false
		for ev, err := range client.Follow(ctx, id, "") {
			if err != nil {
				return err
			}
			if ev.Type == tasks.EventStdout {
				firsts = append(firsts, time.Since(t))
				got = true
			}
		}
		if !got {
			return fmt.Errorf("echo hi streamed no output")
		}
	}
	r.EndToEnd.SubmitWait = summarize(waits)
	r.EndToEnd.FirstByte = summarize(firsts)
	base := r.Baseline.Sequential.P50
	r.EndToEnd.SubmitWaitX = ratio(r.EndToEnd.SubmitWait.P50, base)
	r.EndToEnd.FirstByteX = ratio(r.EndToEnd.FirstByte.P50, base)
	r.EndToEnd.AddedP50Ms = roundMs(r.EndToEnd.SubmitWait.P50 - base)
	return nil
}

// runCLI times the two commands alternately, in a container made by
// execq's runtime for docker exec.
func (r *Report) runCLI(ctx context.Context, cli *client.Client, redisURL string, cfg Config) error {
	dockerBin, err := exec.LookPath("docker")
	if err != nil {
		return errors.New("the docker command is not installed")
	}
	rt, err := baselineRuntime(cli, cfg, fmt.Sprintf("bench-cli-%d", os.Getpid()))
	if err != nil {
		return err
	}
	sb, err := rt.Create(ctx, cfg.Image)
	if err != nil {
		return err
	}
	defer rt.Remove(context.WithoutCancel(ctx), sb.ID())
	timed := func(name string, args ...string) (time.Duration, error) {
		t := time.Now()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%s %v: %v: %s", name, args, err, out)
		}
		return time.Since(t), nil
	}
	var dockerRuns, execqRuns []time.Duration
	for range max(cfg.Samples/2, 1) {
		d, err := timed(dockerBin, "exec", "-u", fmt.Sprintf("%d:%d", sb.User(), sb.User()), sb.ID(), "true")
		if err != nil {
			return err
		}
		dockerRuns = append(dockerRuns, d)
		d, err = timed(cfg.Exe, "run", "--redis", redisURL, "--", "true")
		if err != nil {
			return err
		}
		execqRuns = append(execqRuns, d)
	}
	r.CLI = CLI{DockerExec: summarize(dockerRuns), ExecqRun: summarize(execqRuns)}
	r.CLI.Ratio = ratio(r.CLI.ExecqRun.P50, r.CLI.DockerExec.P50)
	return nil
}

func submitWait(ctx context.Context, client *producer.Client, cmd []string) (*tasks.Result, error) {
	id, err := client.Submit(ctx, tasks.ExecRequest{Cmd: cmd})
	if err != nil {
		return nil, err
	}
	return client.Wait(ctx, id)
}

// submitAll submits n executions of cmd from 8 goroutines and waits for
// every result, returning each one's latency from its own submission.
func submitAll(ctx context.Context, client *producer.Client, n int, cmd []string) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range min(n, 32) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				res, err := submitWait(ctx, client, cmd)
				if err == nil && res.Status != tasks.StatusSucceeded {
					err = fmt.Errorf("%v ended %s: %s", cmd, res.Status, res.Error)
				}
				if err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return lat, time.Since(start), <-errs
}

func (r *Report) runBurst(ctx context.Context, client *producer.Client, cfg Config, concurrency int) error {
	lat := make([]time.Duration, cfg.Burst)
	ids := make([]string, cfg.Burst)
	starts := make([]time.Time, cfg.Burst)
	for i := range cfg.Burst {
		starts[i] = time.Now()
		id, err := client.Submit(ctx, tasks.ExecRequest{Cmd: []string{"true"}})
		if err != nil {
			return err
		}
		ids[i] = id
	}
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Burst)
	for i := range cfg.Burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := client.Wait(ctx, ids[i])
			if err != nil {
				errs <- err
				return
			}
			lat[i] = time.Since(starts[i])
			if res.Status != tasks.StatusSucceeded {
				errs <- fmt.Errorf("burst execution ended %s: %s", res.Status, res.Error)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	s := summarize(lat)
	r.Burst = Burst{N: cfg.Burst, Concurrency: concurrency, P50: s.P50, P95: s.P95, Max: s.Max}
	return nil
}

func (r *Report) runBigOutput(ctx context.Context, client *producer.Client, redisSrv *redisServer, w *workerProc, cfg Config) error {
	rss, _, err := w.memory()
	if err != nil {
		return err
	}
	if err := w.resetPeak(); err != nil {
		return fmt.Errorf("reset the worker's peak rss: %w", err)
	}
	t := time.Now()
	id, err := client.Submit(ctx, tasks.ExecRequest{
		Cmd:     []string{"head", "-c", fmt.Sprint(cfg.BigOutputBytes), "/dev/zero"},
		Timeout: 5 * time.Minute,
	})
	if err != nil {
		return err
	}
	res, err := client.Wait(ctx, id)
	if err != nil {
		return err
	}
	wall := time.Since(t)
	if res.Status != tasks.StatusSucceeded || res.StdoutBytes != cfg.BigOutputBytes {
		return fmt.Errorf("big output ended %s with %d bytes counted: %s", res.Status, res.StdoutBytes, res.Error)
	}
	_, peak, err := w.memory()
	if err != nil {
		return err
	}
	stream, err := redisSrv.client.MemoryUsage(ctx, tasks.Keys{}.Stream(id)).Result()
	if err != nil {
		return err
	}
	r.BigOutput = BigOutput{
		Bytes:           cfg.BigOutputBytes,
		WallS:           roundMs(wall.Seconds()*1000) / 1000,
		WorkerIdleRSSMB: mib(rss),
		WorkerPeakRSSMB: mib(peak),
		StreamBytes:     stream,
		KeptBytes:       int64(len(res.Stdout)),
		Truncated:       res.StdoutTruncated,
	}
	return nil
}

func (r *Report) runThroughput(ctx context.Context, client *producer.Client, w *workerProc, cfg Config, c int) error {
	if err := w.resetPeak(); err != nil {
		return err
	}
	_, drain, err := submitAll(ctx, client, cfg.Throughput, []string{"true"})
	if err != nil {
		return err
	}
	_, peak, err := w.memory()
	if err != nil {
		return err
	}
	run := ThroughputRun{
		Concurrency: c,
		N:           cfg.Throughput,
		DrainS:      roundMs(drain.Seconds()*1000) / 1000,
		PerSecond:   perSecond(cfg.Throughput, drain),
		WorkerRSSMB: mib(peak),
	}
	run.RatioTo4 = ratio(run.PerSecond, r.Baseline.Rate4)
	r.Throughput = append(r.Throughput, run)
	if mib(peak) > r.Costs.WorkerLoadRSSMB {
		r.Costs.WorkerLoadRSSMB = mib(peak)
		r.Costs.WorkerLoadSampleAt = c
	}
	return nil
}

func mib(b int64) float64 { return roundMs(float64(b)/(1<<20)*1000) / 1000 }

// roundMs rounds to two decimals.
func roundMs(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

// Markdown writes the report as the README shows it.
func (r *Report) Markdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	m := r.Machine
	p("Run on %s: %d CPUs, kernel %s, Docker %s (cgroup %s), %s; %.0f s in all.\n\n",
		m.Date, m.CPUs, m.Kernel, m.DockerVersion, m.CgroupVersion, m.GoVersion, r.Duration)
	b, e := r.Baseline, r.EndToEnd
	p("| figure | n | p50 | p90 | p99 | ratio to baseline p50 |\n|---|---|---|---|---|---|\n")
	p("| baseline: bare Docker exec of `true` (Go client: create, attach, inspect) | %d | %.1f ms | %.1f ms | %.1f ms | 1.00 |\n",
		b.Sequential.N, b.Sequential.P50, b.Sequential.P90, b.Sequential.P99)
	p("| execq Submit→Wait of `true` | %d | %.1f ms | %.1f ms | %.1f ms | %.2f (+%.1f ms) |\n",
		e.SubmitWait.N, e.SubmitWait.P50, e.SubmitWait.P90, e.SubmitWait.P99, e.SubmitWaitX, e.AddedP50Ms)
	p("| execq Submit→first stdout byte of `echo hi` (Follow) | %d | %.1f ms | %.1f ms | %.1f ms | %.2f |\n\n",
		e.FirstByte.N, e.FirstByte.P50, e.FirstByte.P90, e.FirstByte.P99, e.FirstByteX)
	cl := r.CLI
	p("| command, started from a shell | n | p50 | p90 | p99 | ratio to `docker exec` p50 |\n|---|---|---|---|---|---|\n")
	p("| `docker exec C true` (the Docker CLI) | %d | %.1f ms | %.1f ms | %.1f ms | 1.00 |\n", cl.DockerExec.N, cl.DockerExec.P50, cl.DockerExec.P90, cl.DockerExec.P99)
	p("| `execq run -- true` | %d | %.1f ms | %.1f ms | %.1f ms | %.2f |\n\n", cl.ExecqRun.N, cl.ExecqRun.P50, cl.ExecqRun.P90, cl.ExecqRun.P99, cl.Ratio)
	p("| throughput of `true` | n | drain | executions/s | ratio to baseline at 4 in parallel (%.1f/s) | worker peak RSS |\n|---|---|---|---|---|---|\n", b.Rate4)
	p("| baseline, 1 at a time | %d | | %.1f/s | %.2f | |\n", b.Sequential.N, b.Rate1, ratio(b.Rate1, b.Rate4))
	p("| baseline, 4 in parallel | %d | | %.1f/s | 1.00 | |\n", b.N4, b.Rate4)
	for _, t := range r.Throughput {
		p("| execq, worker concurrency %d | %d | %.2f s | %.1f/s | %.2f | %.1f MiB |\n", t.Concurrency, t.N, t.DrainS, t.PerSecond, t.RatioTo4, t.WorkerRSSMB)
	}
	bu := r.Burst
	p("\n| other figures | value |\n|---|---|\n")
	p("| burst: %d submitted at once (worker concurrency %d), completion latency | p50 %.0f ms, p95 %.0f ms, max %.0f ms |\n", bu.N, bu.Concurrency, bu.P50, bu.P95, bu.Max)
	bo := r.BigOutput
	p("| big output: one execution writing %s to stdout | %.2f s wall; worker peak RSS %.1f MiB (idle %.1f MiB); stream in Redis %s; kept %s, truncated %v |\n",
		humanBytes(bo.Bytes), bo.WallS, bo.WorkerPeakRSSMB, bo.WorkerIdleRSSMB, humanBytes(bo.StreamBytes), humanBytes(bo.KeptBytes), bo.Truncated)
	c := r.Costs
	p("| worker RSS, idle / under load (concurrency %d) | %.1f MiB / %.1f MiB |\n", c.WorkerLoadSampleAt, c.WorkerIdleRSSMB, c.WorkerLoadRSSMB)
	p("| Redis memory per finished `true` (used_memory delta over %d, asynq's completed task included) | %s |\n", c.RedisSampleN, humanBytes(c.RedisBytesPerExec))
	p("| of which execq's keys (result, stream, attempts, queue) / asynq's task hash (MEMORY USAGE) | %s / %s |\n", humanBytes(c.ExecqKeysBytes), humanBytes(c.AsynqTaskBytes))
	for _, n := range r.Notes {
		p("\n%s\n", n)
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// baselineRuntime makes containers with execq's own hardening, for the
// bare execs the figures are compared with.
func baselineRuntime(cli *client.Client, cfg Config, owner string) (*dockerexec.Runtime, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine, err := docker.NewEngine(cli, docker.Config{Owner: owner, AgentBinary: filepath.Join(filepath.Dir(cfg.Exe), "execq-agent"), Logger: log})
	if err != nil {
		return nil, err
	}
	return dockerexec.New(engine, cli, dockerexec.Config{Logger: log}), nil
}
