package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/dockerexec"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// bareExec is the baseline: `true` through a bare docker exec, in warm
// containers made with execq's hardening.
type bareExec struct {
	cli   *client.Client
	rt    sandbox.Runtime
	boxes []sandbox.Sandbox
}

func newBareExec(ctx context.Context, cli *client.Client, cfg Config) (*bareExec, error) {
	rt, err := newRuntime(cli, cfg, dockerexec.Name, fmt.Sprintf("bench-%d", os.Getpid()))
	if err != nil {
		return nil, err
	}
	b := &bareExec{cli: cli, rt: rt}
	for range 4 {
		sb, err := rt.Create(ctx, cfg.Image, sandbox.Limits{})
		if err != nil {
			b.close()
			return nil, err
		}
		b.boxes = append(b.boxes, sb)
	}
	return b, nil
}

func (b *bareExec) close() {
	for _, sb := range b.boxes {
		_ = b.rt.Remove(context.Background(), sb.ID())
	}
}

func (b *bareExec) user(sb sandbox.Sandbox) string { return fmt.Sprintf("%d:%d", sb.User(), sb.User()) }

// exec times create, attach and inspect of `true` in box i.
func (b *bareExec) exec(ctx context.Context, i int) (time.Duration, error) {
	sb := b.boxes[i]
	t := time.Now()
	e, err := b.cli.ContainerExecCreate(ctx, sb.ID(), container.ExecOptions{User: b.user(sb), Cmd: []string{"true"}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return 0, err
	}
	att, err := b.cli.ContainerExecAttach(ctx, e.ID, container.ExecAttachOptions{})
	if err != nil {
		return 0, err
	}
	_, _ = stdcopy.StdCopy(io.Discard, io.Discard, att.Reader)
	att.Close()
	if _, err := b.cli.ContainerExecInspect(ctx, e.ID); err != nil {
		return 0, err
	}
	return time.Since(t), nil
}

func (r *Report) runBaseline(ctx context.Context, b *bareExec, cfg Config) error {
	for range 5 { // warm up the engine's paths
		if _, err := b.exec(ctx, 0); err != nil {
			return err
		}
	}
	var seq []time.Duration
	t0 := time.Now()
	for range cfg.Samples {
		d, err := b.exec(ctx, 0)
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
				if _, err := b.exec(ctx, i); err != nil {
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

// sandboxCost runs `true` and resets, n times, through the runtime's API.
func sandboxCost(ctx context.Context, cli *client.Client, cfg Config, name string, n int) (SandboxCost, error) {
	rt, err := newRuntime(cli, cfg, name, fmt.Sprintf("bench-sandbox-%d", os.Getpid()))
	if err != nil {
		return SandboxCost{}, err
	}
	sb, err := rt.Create(ctx, cfg.Image, sandbox.Limits{})
	if err != nil {
		return SandboxCost{}, err
	}
	defer rt.Remove(context.WithoutCancel(ctx), sb.ID())
	if name == dockerexec.Name {
		n = max(n/4, 10) // a few seconds is enough of an order of magnitude
	}
	var runs, resets, inside, totals []time.Duration
	for i := range n + 5 {
		t := time.Now()
		out, err := sb.Run(ctx, sandbox.Command{Cmd: []string{"true"}, Dir: tasks.Workspace})
		if err != nil || out.ExitCode != 0 {
			return SandboxCost{}, fmt.Errorf("run true: exit %d: %v", out.ExitCode, err)
		}
		ran := time.Since(t)
		rep, err := sb.Reset(ctx)
		if err != nil {
			return SandboxCost{}, fmt.Errorf("reset: %w", err)
		}
		if i < 5 {
			continue // warm-up
		}
		runs = append(runs, ran)
		resets = append(resets, time.Since(t)-ran)
		inside = append(inside, rep.Took)
		totals = append(totals, time.Since(t))
	}
	return SandboxCost{Run: summarize(runs), Reset: summarize(resets), ResetInside: summarize(inside), Total: summarize(totals)}, nil
}

func (r *Report) runEndToEnd(ctx context.Context, client *producer.Client, redisSrv *harness.RedisServer, w *harness.WorkerProcess, cfg Config, costs bool) (EndToEnd, error) {
	e := EndToEnd{WorkerPoolSize: w.PoolSize()}
	if costs {
		rss, _, err := w.Memory()
		if err != nil {
			return e, err
		}
		r.Costs.WorkerIdleRSSMB = mib(rss)
	}
	for range 5 {
		if _, err := submitWait(ctx, client, tasks.ExecRequest{Cmd: []string{"true"}}); err != nil {
			return e, err
		}
	}
	mem0, err := harness.UsedMemory(ctx, redisSrv.Client)
	if err != nil {
		return e, err
	}
	var waits, pickUps, runs, commands, afters []time.Duration
	var lastID string
	for range cfg.Samples {
		t := time.Now()
		res, err := submitWait(ctx, client, tasks.ExecRequest{Cmd: []string{"true"}})
		if err != nil {
			return e, err
		}
		done := time.Now()
		if res.Status != tasks.StatusSucceeded {
			return e, fmt.Errorf("true ended %s: %s", res.Status, res.Error)
		}
		waits = append(waits, done.Sub(t))
		pickUps = append(pickUps, res.StartedAt.Sub(t))
		runs = append(runs, res.FinishedAt.Sub(res.StartedAt))
		commands = append(commands, time.Duration(res.DurationMs)*time.Millisecond)
		afters = append(afters, done.Sub(res.FinishedAt))
		lastID = res.ExecutionID
	}
	e.Phases = Phases{PickUp: summarize(pickUps), Running: summarize(runs), Command: summarize(commands), After: summarize(afters)}
	if costs {
		// Let the worker's completed-task bookkeeping settle first.
		time.Sleep(200 * time.Millisecond)
		mem1, err := harness.UsedMemory(ctx, redisSrv.Client)
		if err != nil {
			return e, err
		}
		r.Costs.RedisBytesPerExec = (mem1 - mem0) / int64(cfg.Samples)
		r.Costs.RedisSampleN = cfg.Samples
		keys := tasks.Keys{}
		for _, k := range []string{keys.Result(lastID), keys.Stream(lastID), keys.Attempts(lastID), keys.Queue(lastID), keys.Request(lastID)} {
			n, _ := redisSrv.Client.MemoryUsage(ctx, k).Result()
			r.Costs.ExecqKeysBytes += n
		}
		r.Costs.AsynqTaskBytes, _ = redisSrv.Client.MemoryUsage(ctx, "asynq:{default}:t:"+lastID).Result()
	}

	var firsts []time.Duration
	for range cfg.Samples {
		t := time.Now()
		id, err := client.Submit(ctx, tasks.ExecRequest{Cmd: []string{"echo", "hi"}})
		if err != nil {
			return e, err
		}
		got := false
		for ev, err := range client.Follow(ctx, id, "") {
			if err != nil {
				return e, err
			}
			if ev.Type == tasks.EventStdout && !got {
				firsts = append(firsts, time.Since(t))
				got = true
			}
		}
		if !got {
			return e, errors.New("echo hi streamed no output")
		}
	}
	e.SubmitWait, e.FirstByte = summarize(waits), summarize(firsts)
	base := r.Baseline.Sequential.P50
	e.SubmitWaitX = ratio(e.SubmitWait.P50, base)
	e.FirstByteX = ratio(e.FirstByte.P50, base)
	return e, nil
}

// runCLI times `execq run -- true` and `docker exec C true` alternately,
// each a process started from scratch.
func runCLI(ctx context.Context, b *bareExec, redisURL string, cfg Config) (CLI, error) {
	dockerBin, err := exec.LookPath("docker")
	if err != nil {
		return CLI{}, errors.New("the docker command is not installed")
	}
	timed := func(name string, args ...string) (time.Duration, error) {
		t := time.Now()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%s %v: %v: %s", name, args, err, out)
		}
		return time.Since(t), nil
	}
	sb := b.boxes[0]
	var dockerRuns, execqRuns []time.Duration
	for range max(cfg.Samples/2, 1) {
		d, err := timed(dockerBin, "exec", "-u", b.user(sb), sb.ID(), "true")
		if err != nil {
			return CLI{}, err
		}
		dockerRuns = append(dockerRuns, d)
		d, err = timed(cfg.Exe, "run", "--redis", redisURL, "--", "true")
		if err != nil {
			return CLI{}, err
		}
		execqRuns = append(execqRuns, d)
	}
	c := CLI{DockerExec: summarize(dockerRuns), ExecqRun: summarize(execqRuns)}
	c.Ratio = ratio(c.ExecqRun.P50, c.DockerExec.P50)
	return c, nil
}

// submitWait submits req (a template: a new ID each time) and waits for
// its result.
func submitWait(ctx context.Context, client *producer.Client, req tasks.ExecRequest) (*tasks.Result, error) {
	req.ID = ""
	id, err := client.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	return client.Wait(ctx, id)
}

// submitAll submits n executions of req from 32 goroutines and waits for
// every result, returning each one's latency from its own submission.
func submitAll(ctx context.Context, client *producer.Client, n int, req tasks.ExecRequest) ([]time.Duration, time.Duration, error) {
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
				res, err := submitWait(ctx, client, req)
				if err == nil && res.Status != tasks.StatusSucceeded {
					err = fmt.Errorf("%v ended %s: %s %s", req.Cmd, res.Status, res.Error, res.Stdout+res.Stderr)
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

func (r *Report) runBigOutput(ctx context.Context, client *producer.Client, redisSrv *harness.RedisServer, w *harness.WorkerProcess, cfg Config) error {
	rss, _, err := w.Memory()
	if err != nil {
		return err
	}
	if err := w.ResetPeak(); err != nil {
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
	_, peak, err := w.Memory()
	if err != nil {
		return err
	}
	stream, err := redisSrv.Client.MemoryUsage(ctx, tasks.Keys{}.Stream(id)).Result()
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

func (r *Report) runThroughput(ctx context.Context, client *producer.Client, redisSrv *harness.RedisServer, w *harness.WorkerProcess, n, c int, costs bool) (ThroughputRun, error) {
	run, err := throughput(ctx, client, redisSrv, w, n, c, tasks.ExecRequest{Cmd: []string{"true"}})
	if err != nil {
		return run, err
	}
	run.RatioTo4 = ratio(run.PerSecond, r.Baseline.Rate4)
	if costs && run.WorkerRSSMB > r.Costs.WorkerLoadRSSMB {
		r.Costs.WorkerLoadRSSMB = run.WorkerRSSMB
		r.Costs.WorkerLoadSampleAt = c
	}
	return run, nil
}

// throughput drains n executions of req through the worker w, of
// concurrency c, with the worker's and Redis's costs per execution.
func throughput(ctx context.Context, client *producer.Client, redisSrv *harness.RedisServer, w *harness.WorkerProcess, n, c int, req tasks.ExecRequest) (ThroughputRun, error) {
	run := ThroughputRun{Concurrency: c, N: n}
	if err := w.ResetPeak(); err != nil {
		return run, err
	}
	cpu0, err := w.CPU()
	if err != nil {
		return run, err
	}
	rs0, err := harness.Stats(ctx, redisSrv.Client)
	if err != nil {
		return run, err
	}
	_, drain, err := submitAll(ctx, client, n, req)
	if err != nil {
		return run, err
	}
	cpu1, err := w.CPU()
	if err != nil {
		return run, err
	}
	rs1, err := harness.Stats(ctx, redisSrv.Client)
	if err != nil {
		return run, err
	}
	_, peak, err := w.Memory()
	if err != nil {
		return run, err
	}
	run.DrainS = roundMs(drain.Seconds()*1000) / 1000
	run.PerSecond = perSecond(n, drain)
	run.WorkerRSSMB = mib(peak)
	run.WorkerCPUMs = roundMs(float64((cpu1 - cpu0).Microseconds()) / 1000 / float64(n))
	run.RedisCommands = roundMs(float64(rs1.Commands-rs0.Commands) / float64(n))
	run.RedisCPUMs = roundMs(float64((rs1.CPU - rs0.CPU).Microseconds()) / 1000 / float64(n))
	return run, nil
}
