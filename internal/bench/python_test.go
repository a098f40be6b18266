package bench

import (
	"strings"
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
		Floor: []FloorRun{
			{Loops: 1, N: 100, DrainS: 2, PerSecond: 50, Runs: []float64{48, 50}},
			{Loops: 4, N: 100, DrainS: 1, PerSecond: 100, Runs: []float64{100, 90}},
		},
		Runs: []PythonRun{
			{Runtime: "agent", Concurrency: 1, N: 100, DrainS: 2.5, PerSecond: 40, FloorPerSecond: 50, RatioToFloor: 0.8},
			{Runtime: "agent", Concurrency: 4, N: 100, DrainS: 1.1, PerSecond: 90.9, FloorPerSecond: 100, RatioToFloor: 0.91},
		},
	}
	b.Reset()
	f.markdown(&b)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"| throughput of `python3 -c pass` (execq-python:latest) |",
		"|---|",
		"| floor: the command looped in 1 hardened container (the better of 48.0/s and 50.0/s) | 100 | 2.00 s | 50.0/s | 1.00 |",
		"| agent, worker concurrency 1 | 100 | 2.50 s | 40.0/s | 0.80 |",
		"| floor: the command looped in 4 hardened containers at once (the better of 100.0/s and 90.0/s) | 100 | 1.00 s | 100.0/s | 1.00 |",
		"| agent, worker concurrency 4 | 100 | 1.10 s | 90.9/s | 0.91 |",
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
