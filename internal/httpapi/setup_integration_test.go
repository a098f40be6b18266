//go:build integration

package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/httpapi"
	"github.com/execq/execq/internal/httpapi/apitest"
	"github.com/execq/execq/internal/metrics"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/internal/testutil/liveworker"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// Tokens of the tests' API.
const (
	tokenA = "token-a-0123456789"
	tokenB = "token-b-9876543210"
)

// bundle is one test's API on a redis-server of its own.
type bundle struct {
	redis  *testutil.Redis
	store  *rdb.Store
	client *producer.Client
	hub    *httpapi.Hub
	api    *httpapi.API
	srv    *httptest.Server
	http   *http.Client
	reg    *metrics.Registry
}

// setup starts a redis-server, the hub and the API (tokens A and B unless
// cfg gives others), served by an httptest server; every request the
// bundle's client makes is checked against the OpenAPI document.
func setup(t *testing.T, cfg httpapi.Config, hubCfg httpapi.HubConfig) *bundle {
	t.Helper()
	r := testutil.StartRedis(t)
	b := &bundle{redis: r, reg: metrics.NewRegistry()}
	b.store = rdb.New(r.Client, tasks.Keys{}, 0)
	b.client = producer.New(r.Client, producer.Options{})
	m := metrics.NewAPI(b.reg)
	hubCfg.Store = b.store
	hubCfg.Metrics = m
	hubCfg.Logger = testutil.Logger(t)
	if hubCfg.Block == 0 {
		// Long enough that a test waits on it only when a reader misses
		// its CLIENT UNBLOCK.
		hubCfg.Block = time.Minute
	}
	hubCfg.Connect = func(ctx context.Context) (httpapi.Conn, error) {
		c := redis.NewClient(&redis.Options{Addr: r.Addr, PoolSize: 1})
		return c, c.Ping(ctx).Err()
	}
	hub, err := httpapi.NewHub(hubCfg)
	if err != nil {
		t.Fatal(err)
	}
	hub.Start(context.Background())
	t.Cleanup(hub.Stop)
	b.hub = hub
	cfg.Client, cfg.Store, cfg.Hub, cfg.Metrics = b.client, b.store, hub, m
	if cfg.Tokens == nil {
		cfg.Tokens = httpapi.ParseTokens("# the tests' tokens\n" + tokenA + "\n\n" + tokenB + "\n")
	}
	cfg.Logger = testutil.Logger(t)
	api, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.api = api
	b.srv = httptest.NewServer(api)
	t.Cleanup(b.srv.Close)
	t.Cleanup(api.Close)
	b.http = apitest.Client(t)
	return b
}

// req is one request of a test.
type req struct {
	method, path, token string
	body                any // []byte, string, or a value to encode as JSON
	header              map[string]string
}

// response is what came back, the body read whole.
type response struct {
	*http.Response
	body []byte
}

func (r response) problem(t *testing.T) httpapi.Problem {
	t.Helper()
	var p httpapi.Problem
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%d with Content-Type %q, want application/problem+json: %s", r.StatusCode, ct, r.body)
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem %s: %v", r.body, err)
	}
	if p.Status != r.StatusCode || p.Title == "" || p.Detail == "" || p.Type == "" {
		t.Errorf("problem %+v of a %d lacks a part", p, r.StatusCode)
	}
	return p
}

func (b *bundle) newRequest(t *testing.T, q req) *http.Request {
	t.Helper()
	var body io.Reader
	switch v := q.body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
	case string:
		body = strings.NewReader(v)
	default:
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(enc)
	}
	hr, err := http.NewRequestWithContext(testutil.Context(t, time.Minute), q.method, b.srv.URL+q.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if q.token != "" {
		hr.Header.Set("Authorization", "Bearer "+q.token)
	}
	for k, v := range q.header {
		hr.Header.Set(k, v)
	}
	return hr
}

func (b *bundle) do(t *testing.T, q req) response {
	t.Helper()
	resp, err := b.http.Do(b.newRequest(t, q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp, body}
}

// submit posts body as token and returns the execution ID, wanting 202.
func (b *bundle) submit(t *testing.T, token string, body any) string {
	t.Helper()
	r := b.do(t, req{method: "POST", path: "/v1/executions", token: token, body: body})
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.StatusCode, r.body)
	}
	var s struct{ ExecutionID string }
	if err := json.Unmarshal(r.body, &s); err != nil || s.ExecutionID == "" {
		t.Fatalf("submit answered %s (%v)", r.body, err)
	}
	if loc := r.Header.Get("Location"); loc != "/v1/executions/"+s.ExecutionID {
		t.Errorf("Location %q, want /v1/executions/%s", loc, s.ExecutionID)
	}
	return s.ExecutionID
}

// queued submits a command to a queue no worker serves.
func (b *bundle) queued(t *testing.T, token string) string {
	t.Helper()
	return b.submit(t, token, map[string]any{"queue": "nobody", "cmd": []string{"true"}})
}

// sseEvent is one Server-Sent Event as a client parses it.
type sseEvent struct {
	id, event, data string
	comment         string
}

// sseReader reads events from a response, one at a time.
type sseReader struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func (b *bundle) openEvents(t *testing.T, id, token string, header map[string]string, query string) *sseReader {
	t.Helper()
	resp, err := b.http.Do(b.newRequest(t, req{method: "GET", path: "/v1/executions/" + id + "/events" + query, token: token, header: header}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("events of %s: %d %s %s", id, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	return &sseReader{resp: resp, sc: sc}
}

// next returns the next event or comment; ok is false at the end of the
// stream.
func (s *sseReader) next(t *testing.T) (sseEvent, bool) {
	t.Helper()
	var ev sseEvent
	seen := false
	for s.sc.Scan() {
		line := s.sc.Text()
		if line == "" {
			if seen {
				return ev, true
			}
			continue
		}
		seen = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			ev.comment = value
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			ev.data = value
		}
	}
	if err := s.sc.Err(); err != nil {
		t.Fatalf("read events: %v", err)
	}
	return ev, false
}

// all reads the events to the end of the stream, comments left out.
func (s *sseReader) all(t *testing.T) []sseEvent {
	t.Helper()
	var out []sseEvent
	for {
		ev, ok := s.next(t)
		if !ok {
			return out
		}
		if ev.event != "" {
			out = append(out, ev)
		}
	}
}

// startWorker starts a worker on the bundle's Redis and the Docker engine,
// and waits until its pool is warm; it stops when the test ends.
func (b *bundle) startWorker(t *testing.T) {
	t.Helper()
	liveworker.Start(t, b.redis.Client, "api-"+uuid.NewString()[:8], 2)
}

// appendEvents writes events into an execution's stream as a worker does.
func (b *bundle) appendEvents(t *testing.T, id string, entries ...rdb.Entry) {
	t.Helper()
	if err := b.store.AppendEvents(context.Background(), id, entries...); err != nil {
		t.Fatal(err)
	}
}

// finish stores a result and its exit event as a worker does.
func (b *bundle) finish(t *testing.T, id string, status tasks.Status, code int) {
	t.Helper()
	if _, err := b.store.Finalize(context.Background(), &tasks.Result{
		ExecutionID: id, Status: status, ExitCode: code, Success: code == 0, FinishedAt: time.Now().UTC(),
	}); err != nil {
		t.Fatal(err)
	}
}

// waitSubscriptions waits until the hub serves n subscriptions.
func (b *bundle) waitSubscriptions(t *testing.T, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, time.Millisecond, "the hub serves "+strconv.Itoa(n)+" subscriptions", func() bool {
		return b.hub.Subscriptions() == n
	})
}
