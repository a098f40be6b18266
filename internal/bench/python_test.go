package bench

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestPythonMarkdown(t *testing.T) {
	var none *PythonFigures
	var b strings.Builder
	none.markdown(&b)
	if b.Len() != 0 {
		t.Errorf("figures never measured wrote %q", b.String())
	}

	f := &PythonFigures{
		Image:   "execq-python:latest",
		Command: pythonCmd,
		Rounds:  5,
		Runs: []PythonRun{
			{Runtime: "agent", Concurrency: 1, N: 100, DrainS: 2.5, PerSecond: 40, FloorN: 100, FloorDrainS: 2, FloorPerSecond: 50, RatioToFloor: 0.8, WorkerCPUMs: 1.5, WorkerRSSMB: 35},
			{Runtime: "docker-exec", Concurrency: 4, N: 25, DrainS: 2.5, PerSecond: 10, FloorN: 25, FloorDrainS: 0.25, FloorPerSecond: 100, RatioToFloor: 0.1, WorkerCPUMs: 6, WorkerRSSMB: 36},
		},
	}
	b.Reset()
	f.markdown(&b)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"| throughput of `python3 -c pass` (execq-python:latest), alternating with its floor in 5 rounds |",
		"|---|",
		"| agent, worker concurrency 1 | 100 | 2.50 s | 40.0/s | 50.0/s (100 in 2.00 s) | 0.80 | 1.50 ms | 35.0 MiB |",
		"| docker-exec, worker concurrency 4 | 25 | 2.50 s | 10.0/s | 100.0/s (25 in 0.25 s) | 0.10 | 6.00 ms | 36.0 MiB |",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to begin with %q", i, lines[i], w)
		}
	}
}

// TestFloorHandsOutExactlyN runs the floor's accounting against loops
// that run nothing: a run ends after exactly n executions, with no token
// left over for the next run, whatever the number of loops.
func TestFloorHandsOutExactlyN(t *testing.T) {
	for _, loops := range []int{1, 3, 4} {
		for _, n := range []int{1, 2, 7, 100} {
			f := &floor{ended: make(chan struct{})}
			tokens := make([]chan struct{}, loops)
			var ran atomic.Int64
			var wg sync.WaitGroup
			for i := range loops {
				tokens[i] = make(chan struct{}, n+2)
				f.loops = append(f.loops, &floorLoop{send: func() error { tokens[i] <- struct{}{}; return nil }})
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range tokens[i] {
						ran.Add(1)
						f.completedOne(i)
					}
				}()
			}
			for round := range 3 {
				if _, err := f.run(context.Background(), n); err != nil {
					t.Fatalf("%d loops, n %d, round %d: %v", loops, n, round, err)
				}
				if f.done() != n {
					t.Errorf("%d loops, n %d, round %d: run returned after %d", loops, n, round, f.done())
				}
			}
			for i := range loops {
				close(tokens[i])
			}
			wg.Wait()
			if got := ran.Load(); got != int64(3*n) {
				t.Errorf("%d loops, n %d: %d executions in 3 runs, want %d", loops, n, got, 3*n)
			}
		}
	}
}
