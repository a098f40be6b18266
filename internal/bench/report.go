package bench

import (
	"fmt"
	"io"
)

// Report holds every figure of a run.
type Report struct {
	Machine  Machine          `json:"machine"`
	Baseline Baseline         `json:"baseline"`
	Runtimes []RuntimeFigures `json:"runtimes"`
	// Burst, BigOutput and Costs are measured on the default runtime.
	Burst     Burst          `json:"burst"`
	BigOutput BigOutput      `json:"bigOutput"`
	Costs     Costs          `json:"costs"`
	Duration  float64        `json:"durationSeconds"`
	Config    map[string]any `json:"config"`
	Notes     []string       `json:"notes,omitempty"`

	// LargeInputs are measured on the default runtime.
	LargeInputs []LargeInput `json:"largeInputs,omitempty"`
	// Python is nil when the Python image is missing (a note says so).
	Python *PythonFigures `json:"python,omitempty"`
	// Pytest is nil when the Python image is missing (a note says so).
	Pytest *PytestFigures `json:"pytest,omitempty"`
	// HTTP holds the HTTP API's figures (nil when its phases did not run).
	HTTP *HTTPFigures `json:"http,omitempty"`
	// Sessions holds the session phase's figures, by runtime.
	Sessions []SessionFigures `json:"sessions,omitempty"`
	// Scale holds the scale phase's runs, by worker processes.
	Scale []ScaleRun `json:"scale,omitempty"`
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

// Baseline is a bare Docker exec of `true` in a warm container made with
// execq's hardening: through the Go client (create, attach, inspect) and
// through the Docker CLI.
type Baseline struct {
	Sequential Latency `json:"sequential"`
	// Rate1 and Rate4 are executions per second one at a time and with 4
	// in parallel (one container each).
	Rate1 float64 `json:"ratePerSecond1"`
	Rate4 float64 `json:"ratePerSecond4"`
	N4    int     `json:"n4"`
	// DockerExecCLI is `docker exec C true`, a process started from a
	// shell.
	DockerExecCLI Latency `json:"dockerExecCLI"`
}

// RuntimeFigures are one runtime's figures.
type RuntimeFigures struct {
	Runtime    string          `json:"runtime"`
	Sandbox    SandboxCost     `json:"sandbox"`
	EndToEnd   EndToEnd        `json:"endToEnd"`
	CLI        CLI             `json:"cli"`
	Throughput []ThroughputRun `json:"throughput"`
}

// SandboxCost is the runtime's own cost per execution, through its API as
// the worker calls it, with no Redis: starting `true` and seeing it exit,
// then the verified reset that readies the sandbox for the next tenant.
type SandboxCost struct {
	Run   Latency `json:"run"`
	Reset Latency `json:"reset"`
	Total Latency `json:"total"`
	// ResetInside is the reset as the sandbox measured it, without the
	// round trip.
	ResetInside Latency `json:"resetInside"`
}

// EndToEnd is execq from an agent's side on an idle worker.
type EndToEnd struct {
	SubmitWait Latency `json:"submitWait"`
	// Phases split Submit→Wait by the result's timestamps (one machine,
	// one clock).
	Phases Phases `json:"phases"`

	FirstByte      Latency `json:"submitToFirstByte"`
	SubmitWaitX    float64 `json:"submitWaitP50RatioToBaseline"`
	FirstByteX     float64 `json:"firstByteP50RatioToBaseline"`
	WorkerPoolSize int     `json:"workerPoolSize"`
}

// Phases are where Submit→Wait of `true` goes.
type Phases struct {
	// PickUp is Submit to the attempt's start: asynq's poll and claim, the
	// worker's checks, a container from the pool, the attempt counted.
	PickUp Latency `json:"pickUp"`
	// Running is the attempt's start to its result: the started event, the
	// limits, the command (Command of it), the accounting.
	Running Latency `json:"running"`
	Command Latency `json:"command"`
	// After is the result to Wait's return: the result's write, the exit
	// event reaching the follower, its read of the result.
	After Latency `json:"after"`
}

// CLI is `execq run -- true`, a process started from a shell, against
// `docker exec C true` timed alternately with it.
type CLI struct {
	ExecqRun   Latency `json:"execqRun"`
	DockerExec Latency `json:"dockerExec"`
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
	// WorkerCPUMs is the worker process's CPU time per execution.
	WorkerCPUMs float64 `json:"workerCpuMsPerExecution"`
	// RedisCommands and RedisCPUMs are Redis's commands and CPU time per
	// execution, producer's and worker's together.
	RedisCommands float64 `json:"redisCommandsPerExecution"`
	RedisCPUMs    float64 `json:"redisCpuMsPerExecution"`
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

// Markdown writes the report as the README shows it.
func (r *Report) Markdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	m := r.Machine
	p("Run on %s: %d CPUs, kernel %s, Docker %s (cgroup %s), %s; %.0f s in all.\n",
		m.Date, m.CPUs, m.Kernel, m.DockerVersion, m.CgroupVersion, m.GoVersion, r.Duration)
	if len(r.Runtimes) > 0 {
		r.markdownCore(w)
	}
	r.Python.markdown(w)
	r.Pytest.markdown(w)
	if r.HTTP != nil {
		r.HTTP.markdown(w)
	}
	r.markdownSessions(w)
	r.markdownScale(w)
	for _, n := range r.Notes {
		p("\n%s\n", n)
	}
}

// markdownCore writes the tables of the core phase.
func (r *Report) markdownCore(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n")
	b := r.Baseline
	p("| latency | n | p50 | p90 | p99 | ratio to baseline p50 |\n|---|---|---|---|---|---|\n")
	p("| baseline: bare Docker exec of `true` (Go client: create, attach, inspect) | %d | %.1f ms | %.1f ms | %.1f ms | 1.00 |\n",
		b.Sequential.N, b.Sequential.P50, b.Sequential.P90, b.Sequential.P99)
	for _, rt := range r.Runtimes {
		e := rt.EndToEnd
		p("| %s: Submit→Wait of `true` | %d | %.1f ms | %.1f ms | %.1f ms | %.2f |\n",
			rt.Runtime, e.SubmitWait.N, e.SubmitWait.P50, e.SubmitWait.P90, e.SubmitWait.P99, e.SubmitWaitX)
		p("| %s: Submit→first stdout byte of `echo hi` | %d | %.1f ms | %.1f ms | %.1f ms | %.2f |\n",
			rt.Runtime, e.FirstByte.N, e.FirstByte.P50, e.FirstByte.P90, e.FirstByte.P99, e.FirstByteX)
	}
	p("\n| where Submit→Wait of `true` goes (from the results' timestamps) | p50 | p90 |\n|---|---|---|\n")
	for _, rt := range r.Runtimes {
		ph := rt.EndToEnd.Phases
		p("| %s: Submit → attempt start (asynq's poll and claim, checks, a container, the attempt counted) | %.1f ms | %.1f ms |\n", rt.Runtime, ph.PickUp.P50, ph.PickUp.P90)
		p("| %s: attempt start → result (started event, limits, the command, accounting) | %.1f ms | %.1f ms |\n", rt.Runtime, ph.Running.P50, ph.Running.P90)
		p("| %s: of which the command, as the worker timed it | %.1f ms | %.1f ms |\n", rt.Runtime, ph.Command.P50, ph.Command.P90)
		p("| %s: result → Wait returns (result written, exit event to the follower, result read) | %.1f ms | %.1f ms |\n", rt.Runtime, ph.After.P50, ph.After.P90)
	}
	p("\n| command, started from a shell | n | p50 | p90 | p99 | ratio to `docker exec` p50 |\n|---|---|---|---|---|---|\n")
	p("| `docker exec C true` (the Docker CLI) | %d | %.1f ms | %.1f ms | %.1f ms | 1.00 |\n", b.DockerExecCLI.N, b.DockerExecCLI.P50, b.DockerExecCLI.P90, b.DockerExecCLI.P99)
	for _, rt := range r.Runtimes {
		c := rt.CLI
		p("| `execq run -- true`, %s | %d | %.1f ms | %.1f ms | %.1f ms | %.2f |\n", rt.Runtime, c.ExecqRun.N, c.ExecqRun.P50, c.ExecqRun.P90, c.ExecqRun.P99, c.Ratio)
	}
	p("\n| the runtime's own cost per execution (its API, no Redis) | n | p50 | p99 |\n|---|---|---|---|\n")
	for _, rt := range r.Runtimes {
		s := rt.Sandbox
		p("| %s: run `true` (start to exit) | %d | %.2f ms | %.2f ms |\n", rt.Runtime, s.Run.N, s.Run.P50, s.Run.P99)
		p("| %s: verified reset, as the worker sees it | %d | %.2f ms | %.2f ms |\n", rt.Runtime, s.Reset.N, s.Reset.P50, s.Reset.P99)
		p("| %s: verified reset, inside the sandbox | %d | %.2f ms | %.2f ms |\n", rt.Runtime, s.ResetInside.N, s.ResetInside.P50, s.ResetInside.P99)
		p("| %s: run + reset | %d | %.2f ms | %.2f ms |\n", rt.Runtime, s.Total.N, s.Total.P50, s.Total.P99)
	}
	p("\n| throughput of `true` | n | drain | executions/s | ratio to baseline at 4 in parallel (%.1f/s) | worker CPU / execution | Redis commands / execution | Redis CPU / execution | worker peak RSS |\n|---|---|---|---|---|---|---|---|---|\n", b.Rate4)
	p("| baseline, 1 at a time | %d | | %.1f/s | %.2f | | | | |\n", b.Sequential.N, b.Rate1, ratio(b.Rate1, b.Rate4))
	p("| baseline, 4 in parallel | %d | | %.1f/s | 1.00 | | | | |\n", b.N4, b.Rate4)
	for _, rt := range r.Runtimes {
		for _, t := range rt.Throughput {
			p("| %s, worker concurrency %d | %d | %.2f s | %.1f/s | %.2f | %.2f ms | %.1f | %.2f ms | %.1f MiB |\n",
				rt.Runtime, t.Concurrency, t.N, t.DrainS, t.PerSecond, t.RatioTo4, t.WorkerCPUMs, t.RedisCommands, t.RedisCPUMs, t.WorkerRSSMB)
		}
	}
	bu := r.Burst
	p("\n| other figures (%s runtime) | value |\n|---|---|\n", r.defaultRuntime())
	p("| burst: %d submitted at once (worker concurrency %d), completion latency | p50 %.0f ms, p95 %.0f ms, max %.0f ms |\n", bu.N, bu.Concurrency, bu.P50, bu.P95, bu.Max)
	bo := r.BigOutput
	p("| big output: one execution writing %s to stdout | %.2f s wall; worker peak RSS %.1f MiB (idle %.1f MiB); stream in Redis %s; kept %s, truncated %v |\n",
		humanBytes(bo.Bytes), bo.WallS, bo.WorkerPeakRSSMB, bo.WorkerIdleRSSMB, humanBytes(bo.StreamBytes), humanBytes(bo.KeptBytes), bo.Truncated)
	c := r.Costs
	p("| worker RSS, idle / under load (concurrency %d) | %.1f MiB / %.1f MiB |\n", c.WorkerLoadSampleAt, c.WorkerIdleRSSMB, c.WorkerLoadRSSMB)
	p("| Redis memory per finished `true` (used_memory delta over %d, asynq's completed task included) | %s |\n", c.RedisSampleN, humanBytes(c.RedisBytesPerExec))
	p("| of which execq's keys (result, stream, attempts, queue, request) / asynq's task hash (MEMORY USAGE) | %s / %s |\n", humanBytes(c.ExecqKeysBytes), humanBytes(c.AsynqTaskBytes))
	r.markdownLargeInputs(p)
}

func (r *Report) defaultRuntime() string {
	if len(r.Runtimes) == 0 {
		return ""
	}
	return r.Runtimes[0].Runtime
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
