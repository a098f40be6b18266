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
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/httpapi/apitest"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/internal/testutil/liveworker"
)

// execq serve on a Redis Cluster and on a Sentinel group: the event
// streams of executions whose keys lie in slots of every master reach their
// clients (through one reader per slot in use on a Cluster), and a session
// holds its files from one step to the next, is closed, and then admits
// nothing.
func TestServeOnClusterAndSentinel(t *testing.T) {
	t.Setenv("EXECQ_REDIS_URL", "")
	t.Setenv("EXECQ_API_TOKENS", "topology-token")
	for _, topo := range []struct {
		name  string
		start func(ctx context.Context, dir string) (url string, client redis.UniversalClient, stop func(), err error)
	}{
		{"cluster", func(ctx context.Context, dir string) (string, redis.UniversalClient, func(), error) {
			c, err := harness.StartCluster(ctx, dir, 3)
			if err != nil {
				return "", nil, nil, err
			}
			return c.URL, c.Client, c.Close, nil
		}},
		{"sentinel", func(ctx context.Context, dir string) (string, redis.UniversalClient, func(), error) {
			g, err := harness.StartSentinelGroup(ctx, dir, 3, time.Second)
			if err != nil {
				return "", nil, nil, err
			}
			return g.URL, g.Client, g.Close, nil
		}},
	} {
		t.Run(topo.name, func(t *testing.T) {
			ctx := testutil.Context(t, 3*time.Minute)
			url, client, stop, err := topo.start(ctx, t.TempDir())
			if err != nil {
				testutil.Missing(t, "a Redis %s (redis-server, redis-sentinel, redis-cli): %v", topo.name, err)
			}
			t.Cleanup(stop)
			liveworker.Start(t, client, topo.name+"-"+uuid.NewString()[:8], 2)
			do := startServe(t, ctx, url, "topology-token")
			streamsOfManyExecutions(t, do)
			sessionOverHTTP(t, do)
		})
	}
}

// startServe runs execq serve on the Redis at url until the test ends, and
// returns a function that makes a request to it with token.
func startServe(t *testing.T, ctx context.Context, url, token string) func(method, path, body string) *http.Response {
	t.Helper()
	addr := testutil.FreeAddr(t)
	sctx, cancel := context.WithCancel(context.Background())
	var stderr strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- execute(sctx, []string{"serve", "--redis", url, "--addr", addr}, strings.NewReader(""), io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d: %s", code, stderr.String())
		}
	})
	base := "http://" + addr
	waitServing(t, base)
	// Every request and response is checked against the OpenAPI document.
	api := apitest.Client(t)
	return func(method, path, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := api.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
}

// streamsOfManyExecutions submits a dozen executions, whose keys spread
// over a Cluster's masters, and reads each one's event stream to its exit.
func streamsOfManyExecutions(t *testing.T, do func(method, path, body string) *http.Response) {
	t.Helper()
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

// sessionOverHTTP creates a session, runs two steps in it (the second reads
// the file the first wrote), closes it, and sees it admit nothing more.
func sessionOverHTTP(t *testing.T, do func(method, path, body string) *http.Response) {
	t.Helper()
	decode := func(resp *http.Response, want int, v any) {
		t.Helper()
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want, body)
		}
		if v != nil {
			if err := json.Unmarshal(body, v); err != nil {
				t.Fatalf("%s %s: %v: %s", resp.Request.Method, resp.Request.URL.Path, err, body)
			}
		}
	}
	var session struct{ SessionID, Status, Worker string }
	decode(do("POST", "/v1/sessions", `{"idleTimeoutMs":60000}`), http.StatusCreated, &session)
	if session.Status != "open" || session.Worker == "" {
		t.Fatalf("created session: %+v", session)
	}
	step := func(script string) (status string, exitCode int, stdout string) {
		t.Helper()
		var sub struct{ ExecutionID string }
		decode(do("POST", "/v1/sessions/"+session.SessionID+"/executions", fmt.Sprintf(`{"cmd":["sh","-c",%q]}`, script)), http.StatusAccepted, &sub)
		var res struct {
			Status   string
			ExitCode int
			Stdout   string
		}
		decode(do("GET", "/v1/executions/"+sub.ExecutionID+"?wait=30s", ""), http.StatusOK, &res)
		return res.Status, res.ExitCode, res.Stdout
	}
	if status, code, _ := step("echo kept > /workspace/note"); status != "succeeded" || code != 0 {
		t.Fatalf("step 1: %s, exit %d", status, code)
	}
	if status, _, out := step("cat /workspace/note"); status != "succeeded" || out != "kept\n" {
		t.Fatalf("step 2: %s, stdout %q; want the file step 1 wrote", status, out)
	}
	var info struct {
		Status     string
		Executions int
		Done       int
	}
	decode(do("GET", "/v1/sessions/"+session.SessionID, ""), http.StatusOK, &info)
	if info.Status != "open" || info.Executions != 2 || info.Done != 2 {
		t.Errorf("the session after two steps: %+v", info)
	}
	var list struct{ Sessions []struct{ SessionID string } }
	decode(do("GET", "/v1/sessions", ""), http.StatusOK, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].SessionID != session.SessionID {
		t.Errorf("GET /v1/sessions lists %+v, want only %s", list.Sessions, session.SessionID)
	}
	decode(do("DELETE", "/v1/sessions/"+session.SessionID, ""), http.StatusNoContent, nil)
	decode(do("POST", "/v1/sessions/"+session.SessionID+"/executions", `{"cmd":["true"]}`), http.StatusGone, nil)
}
