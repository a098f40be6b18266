package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
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

// pythonRounds is how many times a Python run alternates between the
// floor and execq: on a shared machine the load drifts within a run, and
// alternating exposes both to the same drift.
const pythonRounds = 5

// PythonFigures are the throughput of `python3 -c pass` in the Python
// image, per runtime and worker concurrency, against its floor.
type PythonFigures struct {
	Image   string      `json:"image"`
	Command []string    `json:"command"`
	Rounds  int         `json:"rounds"`
	Runs    []PythonRun `json:"runs"`
}

// PythonRun is N executions of the command through a worker of one
// runtime whose pool image is the Python image, against its floor: FloorN
// executions of the command by as many loops at once as the worker's
// concurrency, each in a warm container of the image made with execq's
// hardening and limits (as the baseline's are), through one docker exec
// per loop, the loops sharing the work as the worker's queue does. The two
// alternate in Rounds rounds; the worker is stopped (SIGSTOP) while the
// floor runs, so that its polling costs the floor nothing, and the floor's
// loops wait on a read while the worker runs.
type PythonRun struct {
	Runtime        string  `json:"runtime"`
	Concurrency    int     `json:"concurrency"`
	N              int     `json:"n"`
	DrainS         float64 `json:"drainSeconds"`
	PerSecond      float64 `json:"perSecond"`
	FloorN         int     `json:"floorN"`
	FloorDrainS    float64 `json:"floorDrainSeconds"`
	FloorPerSecond float64 `json:"floorPerSecond"`
	RatioToFloor   float64 `json:"ratioToFloor"`
	WorkerCPUMs    float64 `json:"workerCpuMsPerExecution"`
	WorkerRSSMB    float64 `json:"workerPeakRSSMiB"`
}

// runPython measures each runtime at each concurrency against its floor.
// It leaves a note instead when the image is missing.
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
	f := &PythonFigures{Image: cfg.PythonImage, Command: pythonCmd, Rounds: pythonRounds}
	for _, c := range cfg.Concurrency {
		fl, err := newFloor(ctx, cli, cfg, cfg.PythonImage, pythonCmd, nil, c)
		if err != nil {
			return fmt.Errorf("floor of %d loops: %w", c, err)
		}
		for _, name := range cfg.Runtimes {
			progress("python: %s at concurrency %d: %d executions of python3 -c pass, alternating with as many in %d loops, in %d rounds",
				name, c, cfg.throughputOf(name), c, pythonRounds)
			run, err := programRun(ctx, prod, redisSrv, dir, cfg, fl, name, c, cfg.throughputOf(name), tasks.ExecRequest{Cmd: pythonCmd})
			if err != nil {
				fl.close()
				return fmt.Errorf("%s at %d: %w", name, c, err)
			}
			f.Runs = append(f.Runs, run)
		}
		fl.close()
	}
	r.Python = f
	return nil
}

// programRun alternates slices of the floor fl and of a worker of runtime
// name and concurrency c whose image is the Python image, about n
// executions of req each.
func programRun(ctx context.Context, prod *producer.Client, redisSrv *harness.RedisServer, dir string, cfg Config, fl *floor, name string, c, n int, req tasks.ExecRequest) (PythonRun, error) {
	run := PythonRun{Runtime: name, Concurrency: c}
	args := append([]string{"--image", cfg.PythonImage, "--runtime", name}, cfg.WorkerArgs...)
	w, err := startWorker(ctx, cfg.Exe, redisSrv.URL, dir, c, args...)
	if err != nil {
		return run, err
	}
	defer stopWorker(w)
	// One execution per container first, as the floor's containers get.
	if _, _, err := submitAll(ctx, prod, c, req); err != nil {
		return run, err
	}
	slice := max(n/pythonRounds, c)
	var drain, floorDrain time.Duration
	var cpu float64
	for range pythonRounds {
		if err := syscall.Kill(w.Pid(), syscall.SIGSTOP); err != nil {
			return run, fmt.Errorf("stop the worker: %w", err)
		}
		d, err := fl.run(ctx, slice)
		if cerr := syscall.Kill(w.Pid(), syscall.SIGCONT); cerr != nil && err == nil {
			err = fmt.Errorf("continue the worker: %w", cerr)
		}
		if err != nil {
			return run, err
		}
		floorDrain += d
		run.FloorN += slice

		t, err := throughput(ctx, prod, redisSrv, w, slice, c, req)
		if err != nil {
			return run, err
		}
		drain += time.Duration(t.DrainS * float64(time.Second))
		run.N += slice
		cpu += t.WorkerCPUMs * float64(slice)
		run.WorkerRSSMB = max(run.WorkerRSSMB, t.WorkerRSSMB)
	}
	run.DrainS = roundMs(drain.Seconds()*1000) / 1000
	run.PerSecond = perSecond(run.N, drain)
	run.FloorDrainS = roundMs(floorDrain.Seconds()*1000) / 1000
	run.FloorPerSecond = perSecond(run.FloorN, floorDrain)
	run.RatioToFloor = ratio(run.PerSecond, run.FloorPerSecond)
	run.WorkerCPUMs = roundMs(cpu / float64(run.N))
	return run, nil
}

// floor is the loops of the floor: each runs the command in a warm
// container of its own, once per token it reads on its standard input, and
// writes a line when a run ends. A run hands out tokens as runs end, two
// ahead per loop, so that no loop waits for one while the run has work
// left and every loop is idle on a read between runs: starting and
// stopping a run costs it nothing.
type floor struct {
	b     *bareExec
	loops []*floorLoop
	ended chan struct{}
	errs  chan error

	mu        sync.Mutex
	issued    int
	completed int
	target    int
	reached   chan struct{}
}

// floorLoop is one loop's standard input.
type floorLoop struct {
	mu    sync.Mutex
	send  func() error // writes one token
	close func() error // ends the loop
}

func (l *floorLoop) token() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.send()
}

// loopScript runs its arguments once per line it reads, a line on stdout
// after each run, until its input ends or a run fails.
const loopScript = `while read -r _; do "$@" >/dev/null || exit; echo; done`

// newFloor makes loops containers of image with execq's docker-exec
// runtime, as the baseline's are, puts files into their workspace, starts
// their loops of cmd and runs it once in each.
func newFloor(ctx context.Context, cli *client.Client, cfg Config, image string, cmd []string, files []tasks.File, loops int) (*floor, error) {
	rt, err := newRuntime(cli, cfg, dockerexec.Name, fmt.Sprintf("bench-floor-%d", os.Getpid()))
	if err != nil {
		return nil, err
	}
	f := &floor{b: &bareExec{cli: cli, rt: rt}, ended: make(chan struct{}), errs: make(chan error, loops)}
	for range loops {
		sb, err := rt.Create(ctx, image, sandbox.Limits{})
		if err != nil {
			f.b.close()
			return nil, err
		}
		f.b.boxes = append(f.b.boxes, sb)
		if len(files) == 0 {
			continue
		}
		if err := sb.PutFiles(ctx, files); err != nil {
			f.b.close()
			return nil, err
		}
	}
	var wg sync.WaitGroup
	for i := range loops {
		att, wait, err := f.b.start(ctx, i, append([]string{"sh", "-c", loopScript, "sh"}, cmd...))
		if err != nil {
			f.stop()
			f.b.close()
			return nil, err
		}
		f.loops = append(f.loops, &floorLoop{
			send:  func() error { _, err := att.Conn.Write([]byte{'\n'}); return err },
			close: att.CloseWrite,
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.errs <- wait(loopOutput{f: f, i: i})
		}()
	}
	go func() { wg.Wait(); close(f.errs); close(f.ended) }()
	if _, err := f.run(ctx, loops); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// loopOutput counts the runs loop i reports.
type loopOutput struct {
	f *floor
	i int
}

func (o loopOutput) Write(p []byte) (int, error) {
	for range bytes.Count(p, []byte{'\n'}) {
		o.f.completedOne(o.i)
	}
	return len(p), nil
}

// completedOne counts a run of loop i and hands it the next token while
// the run has one left.
func (f *floor) completedOne(i int) {
	f.mu.Lock()
	f.completed++
	send := f.issued < f.target
	if send {
		f.issued++
	}
	if f.completed >= f.target && f.reached != nil {
		close(f.reached)
		f.reached = nil
	}
	f.mu.Unlock()
	if send {
		_ = f.loops[i].token()
	}
}

// run times n executions by the loops, which share the work as the
// worker's queue does: one the machine slows down does fewer and holds
// nobody up.
func (f *floor) run(ctx context.Context, n int) (time.Duration, error) {
	f.mu.Lock()
	f.issued, f.completed, f.target = 0, 0, n
	reached := make(chan struct{})
	f.reached = reached
	first := make([]int, len(f.loops))
	for round := 0; round < 2; round++ {
		for i := range f.loops {
			if f.issued < n {
				f.issued++
				first[i]++
			}
		}
	}
	f.mu.Unlock()
	start := time.Now()
	for i, k := range first {
		for range k {
			if err := f.loops[i].token(); err != nil {
				return 0, fmt.Errorf("a token to the floor's loop: %w", err)
			}
		}
	}
	select {
	case <-reached:
		return time.Since(start), nil
	case <-f.ended:
		return 0, errors.Join(errors.New("the floor's loops ended"), f.loopErr())
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(time.Minute + time.Duration(n)*time.Second):
		return 0, fmt.Errorf("the floor's loops stalled at %d executions of %d", f.done(), n)
	}
}

func (f *floor) done() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.completed
}

func (f *floor) loopErr() error {
	var errs []error
	for err := range f.errs {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stop ends the loops' input, which ends them.
func (f *floor) stop() {
	for _, l := range f.loops {
		_ = l.close()
	}
}

// close ends the loops and removes their containers.
func (f *floor) close() {
	f.stop()
	select {
	case <-f.ended:
	case <-time.After(10 * time.Second):
	}
	f.b.close()
}

// start starts argv in box i as its user, in one docker exec with its
// standard input attached; wait copies its stdout to stdout until it
// ends, and fails unless it exited 0.
func (b *bareExec) start(ctx context.Context, i int, argv []string) (types.HijackedResponse, func(stdout io.Writer) error, error) {
	sb := b.boxes[i]
	e, err := b.cli.ContainerExecCreate(ctx, sb.ID(), container.ExecOptions{
		User: b.user(sb), Cmd: argv, WorkingDir: tasks.Workspace, AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return types.HijackedResponse{}, nil, err
	}
	att, err := b.cli.ContainerExecAttach(ctx, e.ID, container.ExecAttachOptions{})
	if err != nil {
		return types.HijackedResponse{}, nil, err
	}
	wait := func(stdout io.Writer) error {
		defer att.Close()
		var stderr bytes.Buffer
		_, _ = stdcopy.StdCopy(stdout, &stderr, att.Reader)
		info, err := b.cli.ContainerExecInspect(context.WithoutCancel(ctx), e.ID)
		if err != nil {
			return err
		}
		if info.ExitCode != 0 {
			return fmt.Errorf("%s exited %d: %s", strings.Join(argv, " "), info.ExitCode, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	return att, wait, nil
}

// markdown writes the Python figures' table; nothing when they were not
// measured.
func (f *PythonFigures) markdown(w io.Writer) {
	if f == nil {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n| throughput of `%s` (%s), alternating with its floor in %d rounds | n | drain | executions/s | floor: the command looped in as many hardened containers at once | ratio to the floor | worker CPU / execution | worker peak RSS |\n|---|---|---|---|---|---|---|---|\n",
		strings.Join(f.Command, " "), f.Image, f.Rounds)
	for _, run := range f.Runs {
		p("| %s, worker concurrency %d | %d | %.2f s | %.1f/s | %.1f/s (%d in %.2f s) | %.2f | %.2f ms | %.1f MiB |\n",
			run.Runtime, run.Concurrency, run.N, run.DrainS, run.PerSecond, run.FloorPerSecond, run.FloorN, run.FloorDrainS,
			run.RatioToFloor, run.WorkerCPUMs, run.WorkerRSSMB)
	}
}
