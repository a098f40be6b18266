package harness_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/harness"
)

func TestProcOfThisProcess(t *testing.T) {
	t.Parallel()
	rss, peak, err := harness.ProcMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || peak < rss {
		t.Errorf("rss %d, peak %d; want 0 < rss <= peak", rss, peak)
	}
	before, err := harness.ProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The kernel counts in ticks of 10ms: busy until one is counted.
	var after time.Duration
	for start := time.Now(); after <= before && time.Since(start) < 5*time.Second; {
		if after, err = harness.ProcCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if after <= before {
		t.Errorf("CPU time %s after 5s busy, %s before", after, before)
	}
	if _, _, err := harness.ProcMemory(-1); err == nil {
		t.Error("memory of no process: no error")
	}
}

func TestAwait(t *testing.T) {
	t.Parallel()
	n := 0
	if err := harness.Await(context.Background(), time.Second, time.Millisecond, func() bool { n++; return n == 3 }); err != nil || n != 3 {
		t.Errorf("Await = %v after %d checks; want nil after 3", err, n)
	}
	err := harness.Await(context.Background(), 20*time.Millisecond, time.Millisecond, func() bool { return false })
	if err == nil || !strings.Contains(err.Error(), "not within 20ms") {
		t.Errorf("Await of what never holds = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := harness.Await(ctx, time.Minute, time.Millisecond, func() bool { return false }); err != context.Canceled {
		t.Errorf("Await with a canceled context = %v", err)
	}
}
