//go:build integration

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/httpapi/apitest"
	"github.com/execq/execq/internal/testutil"
)

// waitServing returns once the execq serve at base answers.
func waitServing(t *testing.T, base string) {
	t.Helper()
	plain := &http.Client{Timeout: 10 * time.Second}
	testutil.Eventually(t, 30*time.Second, 10*time.Millisecond, "serve answers", func() bool {
		resp, err := plain.Get(base + "/v1/openapi.json")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// execq serve on one address: the API behind its bearer token, the
// dashboard behind basic auth, metrics and health; a SIGTERM-like end of
// its context closes an open event stream and the command returns.
func TestServe(t *testing.T) {
	t.Setenv("EXECQ_REDIS_URL", "")
	t.Setenv("EXECQ_API_TOKENS", "serve-token")
	r := testutil.StartRedis(t)
	startWorker(t, r)
	addr := testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"serve", "--redis", r.URL, "--addr", addr, "--basic-auth", "ops:secret"}, strings.NewReader(""), io.Discard, &stderr)
	}()
	base := "http://" + addr
	waitServing(t, base)
	plain := &http.Client{Timeout: 10 * time.Second}
	api := apitest.Client(t)
	call := func(method, path, token, body string, header ...string) (*http.Response, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(testutil.Context(t, time.Minute), method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := api.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	if resp, body := call("POST", "/v1/executions", "", `{"cmd":["true"]}`); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d %s", resp.StatusCode, body)
	}
	resp, body := call("POST", "/v1/executions", "serve-token", `{"cmd":["sh","-c","echo served"]}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	var sub struct{ ExecutionID string }
	if err := json.Unmarshal([]byte(body), &sub); err != nil {
		t.Fatal(err)
	}
	if resp, body := call("GET", "/v1/executions/"+sub.ExecutionID+"?wait=30s", "serve-token", ""); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"status":"succeeded"`) {
		t.Errorf("result: %d %s", resp.StatusCode, body)
	}
	if resp, _ := call("GET", "/v1/openapi.json", "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("openapi.json: %d", resp.StatusCode)
	}
	for path, want := range map[string]int{"/monitoring/": http.StatusUnauthorized, "/metrics": http.StatusUnauthorized, "/healthz": http.StatusUnauthorized} {
		resp, err := plain.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s without basic auth: %d, want %d", path, resp.StatusCode, want)
		}
	}
	mreq, _ := http.NewRequest("GET", base+"/metrics", nil)
	mreq.SetBasicAuth("ops", "secret")
	mresp, err := plain.Do(mreq)
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`execq_api_requests_total{code="202",route="/v1/executions"} 1`, "execq_api_hub_reader_connections 4", "execq_api_event_streams 0"} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// An open stream of a queued execution ends at shutdown.
	_, body = call("POST", "/v1/executions", "serve-token", `{"queue":"nobody","cmd":["true"]}`)
	if err := json.Unmarshal([]byte(body), &sub); err != nil {
		t.Fatal(err)
	}
	sreq, _ := http.NewRequestWithContext(testutil.Context(t, time.Minute), "GET", base+"/v1/executions/"+sub.ExecutionID+"/events", nil)
	sreq.Header.Set("Authorization", "Bearer serve-token")
	sresp, err := api.Do(sreq)
	if err != nil || sresp.StatusCode != http.StatusOK {
		t.Fatalf("events: %v %v", sresp, err)
	}
	defer sresp.Body.Close()
	cancel()
	var lines []string
	sc := bufio.NewScanner(sresp.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if !strings.Contains(strings.Join(lines, "\n"), ": server shutting down") {
		t.Errorf("the stream ended with %q", lines)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d: %s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return within 20s of its end")
	}
}
