//go:build integration

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/internal/testutil/liveworker"
)

// execq serve on a Redis Cluster: the event streams of executions whose
// keys lie in slots of every master reach their clients, through one
// reader per slot in use.
func TestServeOnACluster(t *testing.T) {
	t.Setenv("EXECQ_REDIS_URL", "")
	t.Setenv("EXECQ_API_TOKENS", "cluster-token")
	ctx := testutil.Context(t, 3*time.Minute)
	cluster, err := harness.StartCluster(ctx, t.TempDir(), 3)
	if err != nil {
		testutil.Missing(t, "a Redis Cluster (redis-server, redis-cli): %v", err)
	}
	t.Cleanup(cluster.Close)
	liveworker.Start(t, cluster.Client, "cluster-"+uuid.NewString()[:8], 2)
	addr := testutil.FreeAddr(t)
	sctx, cancel := context.WithCancel(context.Background())
	var stderr strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- execute(sctx, []string{"serve", "--redis", cluster.URL, "--addr", addr}, strings.NewReader(""), io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d: %s", code, stderr.String())
		}
	})
	base := "http://" + addr
	testutil.Eventually(t, 30*time.Second, 10*time.Millisecond, "serve answers", func() bool {
		resp, err := http.Get(base + "/v1/openapi.json")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	do := func(method, path, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer cluster-token")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		resp := do("POST", "/v1/executions", fmt.Sprintf(`{"cmd":["sh","-c","sleep 0.2; echo out-%d"]}`, i))
		var sub struct{ ExecutionID string }
		err := json.NewDecoder(resp.Body).Decode(&sub)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit: %d %v", resp.StatusCode, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := do("GET", "/v1/executions/"+sub.ExecutionID+"/events", "")
			defer resp.Body.Close()
			var events []string
			stdout := ""
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				line := sc.Text()
				if ev, ok := strings.CutPrefix(line, "event: "); ok {
					events = append(events, ev)
				}
				if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, "out-") {
					stdout = data
				}
				if len(events) > 0 && events[len(events)-1] == "exit" && line == "" {
					break
				}
			}
			if !strings.Contains(stdout, fmt.Sprintf("out-%d", i)) || len(events) == 0 || events[len(events)-1] != "exit" {
				errs <- fmt.Errorf("execution %d: events %v, stdout %q", i, events, stdout)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
