package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// pytestFile is the test file of the pytest figures: a few tests of the
// kind an agent writes for a small function, collected and run by pytest
// with its plugins, about the least a pytest run does.
const pytestFile = `import pytest


def slugify(s):
    return "-".join(s.lower().split())


def test_slugify():
    assert slugify("Hello World") == "hello-world"


@pytest.mark.parametrize("s, want", [("a b", "a-b"), ("A", "a"), ("", "")])
def test_slugify_cases(s, want):
    assert slugify(s) == want
`

// pytestCmd runs the file's 4 tests, without the cache plugin (which
// would write into the workspace between runs of the floor).
var pytestCmd = []string{"python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_small.py"}

// PytestFigures are the latency and throughput of a small pytest run in
// the Python image, per runtime, against its floor: the same command run
// in a loop in as many hardened containers of the image, the test file
// put there once (execq puts it into each execution's workspace).
type PytestFigures struct {
	Image   string          `json:"image"`
	Command []string        `json:"command"`
	Rounds  int             `json:"rounds"`
	Latency []PytestLatency `json:"latency"`
	Runs    []PythonRun     `json:"runs"`
}

// PytestLatency is Submit→Wait of the pytest run on an idle worker of one
// runtime (concurrency 1), sample by sample alternating with one run of
// the command by the floor's single loop (the worker stopped meanwhile).
type PytestLatency struct {
	Runtime    string  `json:"runtime"`
	SubmitWait Latency `json:"submitWait"`
	Floor      Latency `json:"floor"`
	// RatioToFloor is the floor's p50 over execq's: 1 would be no
	// overhead at all.
	RatioToFloor float64 `json:"floorP50RatioToSubmitWaitP50"`
}

func pytestRequest() tasks.ExecRequest {
	return tasks.ExecRequest{
		Cmd:     pytestCmd,
		Files:   []tasks.File{{Path: "test_small.py", Content: []byte(pytestFile)}},
		Timeout: time.Minute,
	}
}

// runPytest measures the pytest run's latency, then its throughput at
// each concurrency, per runtime, against its floor. It leaves a note
// instead when the image is missing.
func (r *Report) runPytest(ctx context.Context, cli *client.Client, prod *producer.Client, redisSrv *harness.RedisServer, dir string, cfg Config, progress func(string, ...any)) error {
	if _, err := cli.ImageInspect(ctx, cfg.PythonImage); err != nil {
		if !errdefs.IsNotFound(err) {
			return fmt.Errorf("inspect %s: %w", cfg.PythonImage, err)
		}
		note := fmt.Sprintf("The figures of a small pytest run are left out: %s is missing (make language-images builds it).", cfg.PythonImage)
		progress("pytest: %s", note)
		r.Notes = append(r.Notes, note)
		return nil
	}
	req := pytestRequest()
	f := &PytestFigures{Image: cfg.PythonImage, Command: pytestCmd, Rounds: pythonRounds}
	fl, err := newFloor(ctx, cli, cfg, cfg.PythonImage, pytestCmd, req.Files, 1)
	if err != nil {
		return fmt.Errorf("floor of 1 loop: %w", err)
	}
	for _, name := range cfg.Runtimes {
		progress("pytest: %s: Submit→Wait of %d runs, one at a time, alternating with the floor's", name, cfg.PytestSamples)
		lat, err := pytestLatency(ctx, prod, redisSrv, dir, cfg, fl, name, req)
		if err != nil {
			fl.close()
			return fmt.Errorf("pytest latency, %s: %w", name, err)
		}
		f.Latency = append(f.Latency, lat)
	}
	fl.close()
	for _, c := range cfg.Concurrency {
		fl, err := newFloor(ctx, cli, cfg, cfg.PythonImage, pytestCmd, req.Files, c)
		if err != nil {
			return fmt.Errorf("floor of %d loops: %w", c, err)
		}
		for _, name := range cfg.Runtimes {
			progress("pytest: %s at concurrency %d: %d runs, alternating with as many in %d loops, in %d rounds",
				name, c, cfg.PytestThroughput, c, pythonRounds)
			run, err := programRun(ctx, prod, redisSrv, dir, cfg, fl, name, c, cfg.PytestThroughput, req)
			if err != nil {
				fl.close()
				return fmt.Errorf("pytest, %s at %d: %w", name, c, err)
			}
			f.Runs = append(f.Runs, run)
		}
		fl.close()
	}
	r.Pytest = f
	return nil
}

// pytestLatency alternates one Submit→Wait through a worker of runtime
// name with one run by the floor fl (of one loop), cfg.PytestSamples of
// each; the worker is stopped while the floor runs.
func pytestLatency(ctx context.Context, prod *producer.Client, redisSrv *harness.RedisServer, dir string, cfg Config, fl *floor, name string, req tasks.ExecRequest) (PytestLatency, error) {
	lat := PytestLatency{Runtime: name}
	args := append([]string{"--image", cfg.PythonImage, "--runtime", name}, cfg.WorkerArgs...)
	w, err := startWorker(ctx, cfg.Exe, redisSrv.URL, dir, 1, args...)
	if err != nil {
		return lat, err
	}
	defer stopWorker(w)
	for range 2 {
		if _, err := submitWait(ctx, prod, req); err != nil {
			return lat, err
		}
	}
	var execq, floor []time.Duration
	for range cfg.PytestSamples {
		t := time.Now()
		res, err := submitWait(ctx, prod, req)
		if err != nil {
			return lat, err
		}
		if res.Status != tasks.StatusSucceeded {
			return lat, fmt.Errorf("pytest ended %s: %s %s", res.Status, res.Error, res.Stdout)
		}
		execq = append(execq, time.Since(t))
		if err := syscall.Kill(w.Pid(), syscall.SIGSTOP); err != nil {
			return lat, fmt.Errorf("stop the worker: %w", err)
		}
		d, err := fl.run(ctx, 1)
		if cerr := syscall.Kill(w.Pid(), syscall.SIGCONT); cerr != nil && err == nil {
			err = fmt.Errorf("continue the worker: %w", cerr)
		}
		if err != nil {
			return lat, err
		}
		floor = append(floor, d)
	}
	lat.SubmitWait, lat.Floor = summarize(execq), summarize(floor)
	lat.RatioToFloor = ratio(lat.Floor.P50, lat.SubmitWait.P50)
	return lat, nil
}

// markdown writes the pytest figures' tables; nothing when they were not
// measured.
func (f *PytestFigures) markdown(w io.Writer) {
	if f == nil {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	cmd := strings.Join(f.Command, " ")
	p("\n| latency of `%s` (4 tests, %s), one at a time | n | p50 | p90 | p99 | floor: one run in a hardened container, p50 / p90 | floor p50 / execq p50 |\n|---|---|---|---|---|---|---|\n", cmd, f.Image)
	for _, l := range f.Latency {
		p("| %s: Submit→Wait | %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms / %.1f ms | %.2f |\n",
			l.Runtime, l.SubmitWait.N, l.SubmitWait.P50, l.SubmitWait.P90, l.SubmitWait.P99, l.Floor.P50, l.Floor.P90, l.RatioToFloor)
	}
	p("\n| throughput of `%s`, alternating with its floor in %d rounds | n | drain | executions/s | floor: the command looped in as many hardened containers at once | ratio to the floor | worker CPU / execution | worker peak RSS |\n|---|---|---|---|---|---|---|---|\n",
		cmd, f.Rounds)
	for _, run := range f.Runs {
		p("| %s, worker concurrency %d | %d | %.2f s | %.1f/s | %.1f/s (%d in %.2f s) | %.2f | %.2f ms | %.1f MiB |\n",
			run.Runtime, run.Concurrency, run.N, run.DrainS, run.PerSecond, run.FloorPerSecond, run.FloorN, run.FloorDrainS,
			run.RatioToFloor, run.WorkerCPUMs, run.WorkerRSSMB)
	}
}
