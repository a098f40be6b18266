package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/dockerexec"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// pythonCmd is the command of the Python figures: an interpreter that
// starts, imports its site packages and exits, about the least a Python
// execution can be.
var pythonCmd = []string{"python3", "-c", "pass"}

// PythonFigures are the throughput of `python3 -c pass` in the Python
// image, per runtime and worker concurrency, against its floor.
type PythonFigures struct {
	Image   string      `json:"image"`
	Command []string    `json:"command"`
	Floor   []FloorRun  `json:"floor"`
	Runs    []PythonRun `json:"runs"`
}

// FloorRun is N executions of the command by Loops loops at once, each in
// a warm container of the image made with execq's hardening and limits (as
// the baseline's are), through one docker exec per loop, sharing the work:
// what the machine does with no execq in the way. It is measured before
// and after the runtimes' runs of as many loops; the better run is kept.
type FloorRun struct {
	Loops     int     `json:"loops"`
	N         int     `json:"n"`
	DrainS    float64 `json:"drainSeconds"`
	PerSecond float64 `json:"perSecond"`
	// Runs are the executions per second before and after.
	Runs []float64 `json:"runsPerSecond,omitempty"`
}

// PythonRun drains N executions of the command through a worker of one
// runtime whose pool image is the Python image, and compares them with the
// floor of as many loops as the worker's concurrency.
type PythonRun struct {
	Runtime        string  `json:"runtime"`
	Concurrency    int     `json:"concurrency"`
	N              int     `json:"n"`
	DrainS         float64 `json:"drainSeconds"`
	PerSecond      float64 `json:"perSecond"`
	FloorPerSecond float64 `json:"floorPerSecond"`
	RatioToFloor   float64 `json:"ratioToFloor"`
	WorkerCPUMs    float64 `json:"workerCpuMsPerExecution"`
	WorkerRSSMB    float64 `json:"workerPeakRSSMiB"`
}

// runPython measures, at each concurrency, the floor and then each
// runtime, so that the runs compared are close in time. It leaves a note
// instead when the image is missing.
func (r *Report) runPython(ctx context.Context, cli *client.Client, prod *producer.Client, redisSrv *harness.RedisServer, dir string, cfg Config, progress func(string, ...any)) error {
	if _, err := cli.ImageInspect(ctx, cfg.PythonImage); err != nil {
		if !errdefs.IsNotFound(err) {
			return fmt.Errorf("inspect %s: %w", cfg.PythonImage, err)
		}
		note := fmt.Sprintf("The figures of `python3 -c pass` are left out: %s is missing (make language-images builds it).", cfg.PythonImage)
		progress("python: %s", note)
		r.Notes = append(r.Notes, note)
		return nil
	}
	f := &PythonFigures{Image: cfg.PythonImage, Command: pythonCmd}
	for _, c := range cfg.Concurrency {
		floor := func(when string) (FloorRun, error) {
			n := max(cfg.Throughput/2, 1)
			progress("python: floor %s, %d executions of python3 -c pass in %d loops at once", when, n, c)
			fl, err := pythonFloor(ctx, cli, cfg, c, n)
			if err != nil {
				return fl, fmt.Errorf("floor of %d loops: %w", c, err)
			}
			return fl, nil
		}
		before, err := floor("before")
		if err != nil {
			return err
		}
		first := len(f.Runs)
		for _, name := range cfg.Runtimes {
			n := cfg.throughputOf(name)
			progress("python: %s: throughput of %d executions of python3 -c pass at concurrency %d", name, n, c)
			args := append([]string{"--image", cfg.PythonImage, "--runtime", name}, cfg.WorkerArgs...)
			w, err := startWorker(ctx, cfg.Exe, redisSrv.URL, dir, c, args...)
			if err != nil {
				return err
			}
			// One execution per container first, as the floor's loops get.
			_, _, err = submitAll(ctx, prod, c, pythonCmd)
			var run ThroughputRun
			if err == nil {
				run, err = throughput(ctx, prod, redisSrv, w, n, c, pythonCmd)
			}
			stopWorker(w)
			if err != nil {
				return fmt.Errorf("%s at %d: %w", name, c, err)
			}
			f.Runs = append(f.Runs, PythonRun{
				Runtime: name, Concurrency: c, N: run.N, DrainS: run.DrainS, PerSecond: run.PerSecond,
				WorkerCPUMs: run.WorkerCPUMs, WorkerRSSMB: run.WorkerRSSMB,
			})
		}
		after, err := floor("after")
		if err != nil {
			return err
		}
		// On a shared machine the floor moves with the load: the better of
		// the two runs around the runtimes' is the one they are held to.
		best := before
		if after.PerSecond > best.PerSecond {
			best = after
		}
		best.Runs = []float64{before.PerSecond, after.PerSecond}
		f.Floor = append(f.Floor, best)
		for i := first; i < len(f.Runs); i++ {
			f.Runs[i].FloorPerSecond = best.PerSecond
			f.Runs[i].RatioToFloor = ratio(f.Runs[i].PerSecond, best.PerSecond)
		}
	}
	r.Python = f
	return nil
}

// pythonFloor times n executions of pythonCmd by loops containers that
// each run it over and over until n are done between them. Like the
// worker's queue, the loops share the work: one slowed down by the machine
// does fewer, and holds nobody up.
func pythonFloor(ctx context.Context, cli *client.Client, cfg Config, loops, n int) (FloorRun, error) {
	rt, err := newRuntime(cli, cfg, dockerexec.Name, fmt.Sprintf("bench-floor-%d", os.Getpid()))
	if err != nil {
		return FloorRun{}, err
	}
	b := &bareExec{cli: cli, rt: rt}
	defer b.close()
	for range loops {
		sb, err := rt.Create(ctx, cfg.PythonImage, sandbox.Limits{})
		if err != nil {
			return FloorRun{}, err
		}
		b.boxes = append(b.boxes, sb)
	}
	for i := range loops {
		if err := b.run(ctx, i, nil, pythonCmd...); err != nil {
			return FloorRun{}, err
		}
	}
	done := newCounter(int64(n))
	errs := make(chan error, loops)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.run(ctx, i, done, append([]string{"sh", "-c", loopScript, "sh"}, pythonCmd...)...)
		}()
	}
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-done.reached:
	case <-ended:
	case <-ctx.Done():
	}
	drain := time.Since(start)
	for i := range loops {
		if err := b.run(ctx, i, nil, "sh", "-c", ": >"+floorStop); err != nil {
			return FloorRun{}, err
		}
	}
	<-ended
	close(errs)
	for err := range errs {
		if err != nil {
			return FloorRun{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return FloorRun{}, err
	}
	return FloorRun{Loops: loops, N: n, DrainS: roundMs(drain.Seconds()*1000) / 1000, PerSecond: perSecond(n, drain)}, nil
}

// floorStop ends the floor's loops when it exists.
const floorStop = "/tmp/execq-bench-stop"

// loopScript runs its arguments over and over, a line on stdout after each
// run, until floorStop exists or a run fails.
const loopScript = `while [ ! -e ` + floorStop + ` ]; do "$@" >/dev/null || exit; echo; done`

// counter counts the lines written to it and closes reached at the
// target.
type counter struct {
	lines   atomic.Int64
	target  int64
	once    sync.Once
	reached chan struct{}
}

func newCounter(target int64) *counter {
	return &counter{target: target, reached: make(chan struct{})}
}

func (c *counter) Write(p []byte) (int, error) {
	if c.lines.Add(int64(bytes.Count(p, []byte{'\n'}))) >= c.target {
		c.once.Do(func() { close(c.reached) })
	}
	return len(p), nil
}

// run runs argv in box i as its user, in one docker exec, with its stdout
// to stdout (discarded when nil), and fails unless it exits 0.
func (b *bareExec) run(ctx context.Context, i int, stdout io.Writer, argv ...string) error {
	sb := b.boxes[i]
	if stdout == nil {
		stdout = io.Discard
	}
	e, err := b.cli.ContainerExecCreate(ctx, sb.ID(), container.ExecOptions{
		User: b.user(sb), Cmd: argv, WorkingDir: tasks.Workspace, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return err
	}
	att, err := b.cli.ContainerExecAttach(ctx, e.ID, container.ExecAttachOptions{})
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	_, _ = stdcopy.StdCopy(stdout, &stderr, att.Reader)
	att.Close()
	info, err := b.cli.ContainerExecInspect(ctx, e.ID)
	if err != nil {
		return err
	}
	if info.ExitCode != 0 {
		return fmt.Errorf("%s exited %d: %s", strings.Join(argv, " "), info.ExitCode, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// markdown writes the Python figures' table; nothing when they were not
// measured.
func (f *PythonFigures) markdown(w io.Writer) {
	if f == nil {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n| throughput of `%s` (%s) | n | drain | executions/s | ratio to the floor of as many loops | worker CPU / execution | worker peak RSS |\n|---|---|---|---|---|---|---|\n",
		strings.Join(f.Command, " "), f.Image)
	for _, fl := range f.Floor {
		containers := fmt.Sprintf("%d hardened containers at once", fl.Loops)
		if fl.Loops == 1 {
			containers = "1 hardened container"
		}
		p("| floor: the command looped in %s (the better of %s) | %d | %.2f s | %.1f/s | 1.00 | | |\n",
			containers, perSecondList(fl.Runs), fl.N, fl.DrainS, fl.PerSecond)
		for _, run := range f.Runs {
			if run.Concurrency != fl.Loops {
				continue
			}
			p("| %s, worker concurrency %d | %d | %.2f s | %.1f/s | %.2f | %.2f ms | %.1f MiB |\n",
				run.Runtime, run.Concurrency, run.N, run.DrainS, run.PerSecond, run.RatioToFloor, run.WorkerCPUMs, run.WorkerRSSMB)
		}
	}
}

func perSecondList(rates []float64) string {
	s := make([]string, len(rates))
	for i, r := range rates {
		s[i] = fmt.Sprintf("%.1f/s", r)
	}
	return strings.Join(s, " and ")
}
