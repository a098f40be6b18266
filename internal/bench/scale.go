package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// PhaseScale names the scale-out phase (Config.Phases): throughput of
// `true` with 1, 2 and 3 worker processes on one Redis, and what each
// execution costs Redis.
const PhaseScale = "scale"

// scaleWorkers are the worker process counts of the scale phase; each has a
// pool of scalePool.
var scaleWorkers = []int{1, 2, 3}

const scalePool = 4

// ScaleRun is one run of the scale phase.
type ScaleRun struct {
	Workers   int     `json:"workers"`
	Pool      int     `json:"poolPerWorker"`
	N         int     `json:"n"`
	DrainS    float64 `json:"drainSeconds"`
	PerSecond float64 `json:"perSecond"`
	// WorkerCPUMs is the CPU time of all the workers per execution.
	WorkerCPUMs   float64 `json:"workerCpuMsPerExecution"`
	RedisCommands float64 `json:"redisCommandsPerExecution"`
	RedisCPUMs    float64 `json:"redisCpuMsPerExecution"`
	// RedisBytesIn and RedisBytesOut are Redis's network bytes per
	// execution, producer's and workers' together.
	RedisBytesIn  float64 `json:"redisBytesInPerExecution"`
	RedisBytesOut float64 `json:"redisBytesOutPerExecution"`
}

// runScale drains cfg.Throughput executions of `true` through 1, 2 and 3
// worker processes of the default runtime in turn.
func (r *Report) runScale(ctx context.Context, client *producer.Client, redisSrv *harness.RedisServer, dir string, cfg Config, progress func(string, ...any)) error {
	rt := cfg.Runtimes[0]
	for _, k := range scaleWorkers {
		progress("scale: %d executions of true on %d worker processes of pool %d (%s)", cfg.Throughput, k, scalePool, rt)
		var ws []*harness.WorkerProcess
		stop := func() {
			for _, w := range ws {
				stopWorker(w)
			}
		}
		for range k {
			w, err := startWorker(ctx, cfg.Exe, redisSrv.URL, dir, scalePool, cfg.workerArgs(rt)...)
			if err != nil {
				stop()
				return err
			}
			ws = append(ws, w)
		}
		run, err := scaleRun(ctx, client, redisSrv, ws, cfg.Throughput)
		stop()
		if err != nil {
			return fmt.Errorf("%d workers: %w", k, err)
		}
		r.Scale = append(r.Scale, run)
	}
	return nil
}

func scaleRun(ctx context.Context, client *producer.Client, redisSrv *harness.RedisServer, ws []*harness.WorkerProcess, n int) (ScaleRun, error) {
	run := ScaleRun{Workers: len(ws), Pool: scalePool, N: n}
	cpu := func() (time.Duration, error) {
		var sum time.Duration
		for _, w := range ws {
			c, err := w.CPU()
			if err != nil {
				return 0, err
			}
			sum += c
		}
		return sum, nil
	}
	cpu0, err := cpu()
	if err != nil {
		return run, err
	}
	rs0, err := harness.Stats(ctx, redisSrv.Client)
	if err != nil {
		return run, err
	}
	_, drain, err := submitAll(ctx, client, n, tasks.ExecRequest{Cmd: []string{"true"}})
	if err != nil {
		return run, err
	}
	cpu1, err := cpu()
	if err != nil {
		return run, err
	}
	rs1, err := harness.Stats(ctx, redisSrv.Client)
	if err != nil {
		return run, err
	}
	per := func(v int64) float64 { return roundMs(float64(v) / float64(n)) }
	run.DrainS = roundMs(drain.Seconds()*1000) / 1000
	run.PerSecond = perSecond(n, drain)
	run.WorkerCPUMs = roundMs(float64((cpu1 - cpu0).Microseconds()) / 1000 / float64(n))
	run.RedisCommands = per(rs1.Commands - rs0.Commands)
	run.RedisCPUMs = roundMs(float64((rs1.CPU - rs0.CPU).Microseconds()) / 1000 / float64(n))
	run.RedisBytesIn = per(rs1.NetIn - rs0.NetIn)
	run.RedisBytesOut = per(rs1.NetOut - rs0.NetOut)
	return run, nil
}

// markdownScale writes the scale phase's table.
func (r *Report) markdownScale(w io.Writer) {
	if len(r.Scale) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n| throughput of `true` on one Redis, by worker processes (pool %d each) | n | drain | executions/s | workers' CPU / execution | Redis commands / execution | Redis CPU / execution | Redis bytes in / out per execution |\n|---|---|---|---|---|---|---|---|\n", scalePool)
	for _, s := range r.Scale {
		p("| %d worker process%s | %d | %.2f s | %.1f/s | %.2f ms | %.1f | %.2f ms | %.0f B / %.0f B |\n",
			s.Workers, map[bool]string{true: "", false: "es"}[s.Workers == 1], s.N, s.DrainS, s.PerSecond,
			s.WorkerCPUMs, s.RedisCommands, s.RedisCPUMs, s.RedisBytesIn, s.RedisBytesOut)
	}
}
