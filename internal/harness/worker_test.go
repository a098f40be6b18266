//go:build integration

package harness_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// A worker process, as the benchmark and the chaos suite drive it: warm,
// serving, its metrics, health, CPU time and memory read, then stopped.
func TestWorkerProcess(t *testing.T) {
	testutil.Docker(t)
	r := testutil.StartRedis(t)
	ctx := testutil.Context(t, 3*time.Minute)
	name := "harness-test-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	w, err := harness.StartWorker(harness.WorkerConfig{
		Exe:         testutil.ExecqBinary(t),
		RedisURL:    r.URL,
		PoolSize:    2,
		Name:        name,
		MetricsAddr: testutil.FreeAddr(t),
		LogPath:     filepath.Join(t.TempDir(), "worker.log"),
		Env:         []string{"EXECQ_TEST_MARK=1"},
		Args:        []string{"--agent", testutil.AgentBinary(t), "--image", testutil.SandboxImage, "--shutdown-timeout", "5s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if w.Running() {
			w.Kill()
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", harness.Tail(w.Log(), 40))
		}
	})
	if err := w.WaitLog(ctx, "worker started", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := w.WaitWarm(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if idle, err := w.Metric(ctx, "execq_pool_containers", "state", "idle"); err != nil || idle != 2 {
		t.Errorf("idle containers %v, %v; want 2", idle, err)
	}
	if up, err := w.Metric(ctx, "execq_engine_up"); err != nil || up != 1 {
		t.Errorf("execq_engine_up %v, %v; want 1", up, err)
	}
	if code, body, err := w.Healthz(ctx); err != nil || code != 200 {
		t.Errorf("/healthz %d %q, %v; want 200", code, body, err)
	}

	client := producer.New(r.Client, producer.Options{})
	id, err := client.Submit(ctx, tasks.ExecRequest{Cmd: []string{"echo", "served"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Wait(ctx, id)
	if err != nil || res.Stdout != "served\n" || res.Worker != name {
		t.Fatalf("result %+v, %v; want served by %s", res, err, name)
	}
	// The worker counts the execution just after it stores the result.
	var n float64
	var metricErr error
	if err := w.Await(ctx, 10*time.Second, 10*time.Millisecond, func() bool {
		n, metricErr = w.Metric(ctx, "execq_executions_total", "status", "succeeded")
		return metricErr == nil && n == 1
	}); err != nil {
		t.Errorf("succeeded executions %v (%v): %v; want 1", n, metricErr, err)
	}
	if cpu, err := w.CPU(); err != nil || cpu <= 0 {
		t.Errorf("worker CPU time %s, %v", cpu, err)
	}
	rss, peak, err := w.Memory()
	if err != nil || rss <= 0 || peak < rss {
		t.Errorf("worker memory rss %d peak %d, %v", rss, peak, err)
	}
	if err := w.ResetPeak(); err != nil {
		t.Errorf("reset the peak: %v", err)
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(w.Pid()) + "/environ")
	if err != nil || !strings.Contains(string(env), "EXECQ_TEST_MARK=1") {
		t.Errorf("the worker's environment lacks WorkerConfig.Env (%v)", err)
	}

	if !w.Stop(time.Minute) {
		t.Error("the worker did not stop within a minute of SIGTERM")
	}
	if w.Running() || w.Err() != nil {
		t.Errorf("after Stop: running %v, err %v; want exited with status 0", w.Running(), w.Err())
	}
	if _, err := w.Metric(context.Background(), "execq_engine_up"); err == nil {
		t.Error("the stopped worker still serves metrics")
	}
	if err := w.WaitLog(ctx, "never logged", time.Minute); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("waiting on the log of an exited worker: %v; want it to say so at once", err)
	}
}
