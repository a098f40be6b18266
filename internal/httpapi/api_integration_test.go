//go:build integration

package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/httpapi"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// Every status code of POST /v1/executions, each error a problem.
func TestSubmit(t *testing.T) {
	b := setup(t, httpapi.Config{MaxBodyBytes: 4 << 10}, httpapi.HubConfig{})
	post := func(body any, header map[string]string) response {
		return b.do(t, req{method: "POST", path: "/v1/executions", token: tokenA, body: body, header: header})
	}
	body := map[string]any{"queue": "nobody", "cmd": []string{"echo", "hi"}, "stdinText": "input"}

	t.Run("idempotency", func(t *testing.T) {
		key := map[string]string{"Idempotency-Key": "idem-1"}
		first := post(body, key)
		if first.StatusCode != http.StatusAccepted || !strings.Contains(string(first.body), `"executionId":"idem-1"`) {
			t.Fatalf("first: %d %s", first.StatusCode, first.body)
		}
		again := post(body, key)
		if again.StatusCode != http.StatusOK || string(again.body) != string(first.body) || again.Header.Get("Location") != "/v1/executions/idem-1" {
			t.Errorf("the same again: %d %s (Location %q), want 200 with the same ID", again.StatusCode, again.body, again.Header.Get("Location"))
		}
		// The same request given with stdin in base64 is the same request.
		same := map[string]any{"id": "idem-1", "queue": "nobody", "cmd": []string{"echo", "hi"}, "stdin": "aW5wdXQ="}
		if r := post(same, nil); r.StatusCode != http.StatusOK {
			t.Errorf("the same request, stdin in base64, id in the body: %d %s", r.StatusCode, r.body)
		}
		other := map[string]any{"queue": "nobody", "cmd": []string{"echo", "other"}}
		r := post(other, key)
		if r.StatusCode != http.StatusConflict {
			t.Fatalf("another request under the key: %d %s", r.StatusCode, r.body)
		}
		if p := r.problem(t); p.Type != "urn:execq:problem:id-conflict" {
			t.Errorf("conflict problem %+v", p)
		}
	})

	t.Run("new ID", func(t *testing.T) {
		id := b.submit(t, tokenA, map[string]any{"queue": "nobody", "cmd": []string{"true"}})
		if _, err := b.client.Result(context.Background(), id); err == nil {
			t.Errorf("a result already")
		}
	})

	t.Run("invalid", func(t *testing.T) {
		cases := []struct {
			name   string
			body   any
			header map[string]string
			status int
			detail string
		}{
			{"unknown field", map[string]any{"cmd": []string{"true"}, "comand": "x"}, nil, 422, `unknown field "comand"`},
			{"unknown file field", map[string]any{"cmd": []string{"true"}, "files": []map[string]any{{"path": "a", "txt": "x"}}}, nil, 422, `unknown field "txt"`},
			{"stdin twice", map[string]any{"cmd": []string{"cat"}, "stdin": "eA==", "stdinText": "x"}, nil, 422, "stdinText and stdin are both given"},
			{"file content twice", map[string]any{"cmd": []string{"cat"}, "files": []map[string]any{{"path": "a", "content": "eA==", "text": "x"}}}, nil, 422, "files[0].text and files[0].content are both given"},
			{"key and id differ", map[string]any{"id": "one", "cmd": []string{"true"}}, map[string]string{"Idempotency-Key": "two"}, 422, "differ"},
			{"no command", map[string]any{"image": "x"}, nil, 422, "cmd is empty"},
			{"bad path", map[string]any{"cmd": []string{"true"}, "files": []map[string]any{{"path": "../x", "text": ""}}}, nil, 422, "files[0].path"},
			{"over the limits", map[string]any{"cmd": []string{"true"}, "timeoutMs": 2 * 3600 * 1000}, nil, 422, "timeout 2h0m0s is above the worker's maximum 1h0m0s"},
			{"owner given", map[string]any{"cmd": []string{"true"}, "owner": "someone"}, nil, 422, "owner is set by the server"},
			{"not base64", map[string]any{"cmd": []string{"true"}, "stdin": "%%%"}, nil, 422, "stdin"},
			{"a stored-input reference", map[string]any{"cmd": []string{"true"}, "stdin": map[string]any{"storedBytes": 1, "sha256": "00"}}, nil, 422, "stdin"},
			{"not an object", []string{"true"}, nil, 422, "not a JSON object"},
			{"not JSON", "{", nil, 400, "not JSON"},
		}
		for _, c := range cases {
			r := post(c.body, c.header)
			if r.StatusCode != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, r.StatusCode, r.body, c.status)
				continue
			}
			p := r.problem(t)
			if !strings.Contains(p.Detail, c.detail) {
				t.Errorf("%s: detail %q, want it to say %q", c.name, p.Detail, c.detail)
			}
			if c.status == 422 && (len(p.Errors) == 0 || p.Type != "urn:execq:problem:invalid-request") {
				t.Errorf("%s: a validation problem without its errors list: %s", c.name, r.body)
			}
		}
	})

	t.Run("too large", func(t *testing.T) {
		big := map[string]any{"cmd": []string{"cat"}, "stdinText": strings.Repeat("x", 8<<10)}
		r := post(big, nil)
		if r.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("%d %s, want 413", r.StatusCode, r.body)
		}
		r.problem(t)
	})

	t.Run("content type", func(t *testing.T) {
		q := b.newRequest(t, req{method: "POST", path: "/v1/executions", token: tokenA, body: `{"cmd":["true"]}`})
		q.Header.Set("Content-Type", "text/plain")
		resp, err := b.http.Do(q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("text/plain body: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})

	t.Run("auth", func(t *testing.T) {
		for _, token := range []string{"", "wrong", tokenA + "x"} {
			r := b.do(t, req{method: "POST", path: "/v1/executions", token: token, body: body})
			if r.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("token %q: %d %s", token, r.StatusCode, r.body)
			}
			r.problem(t)
		}
	})

	t.Run("method and path", func(t *testing.T) {
		r := b.do(t, req{method: "GET", path: "/v1/executions", token: tokenA})
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
			t.Errorf("GET /v1/executions: %d %s", r.StatusCode, r.body)
		}
		r.problem(t)
		r = b.do(t, req{method: "GET", path: "/v1/nothing", token: tokenA})
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("GET /v1/nothing: %d %s", r.StatusCode, r.body)
		}
		r.problem(t)
	})

	t.Run("openapi", func(t *testing.T) {
		r := b.do(t, req{method: "GET", path: "/v1/openapi.json"})
		var doc struct{ OpenAPI string }
		if r.StatusCode != http.StatusOK || json.Unmarshal(r.body, &doc) != nil || doc.OpenAPI != "3.1.0" {
			t.Errorf("openapi.json: %d %.100s", r.StatusCode, r.body)
		}
	})
}

// Another token's execution is not found, whatever the route; the same
// key from another token is a conflict.
func TestOwnership(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	body := map[string]any{"queue": "nobody", "cmd": []string{"true"}}
	r := b.do(t, req{method: "POST", path: "/v1/executions", token: tokenA, body: body, header: map[string]string{"Idempotency-Key": "mine"}})
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.StatusCode, r.body)
	}
	for _, q := range []req{
		{method: "GET", path: "/v1/executions/mine"},
		{method: "GET", path: "/v1/executions/mine?wait=1s"},
		{method: "GET", path: "/v1/executions/mine/events"},
		{method: "POST", path: "/v1/executions/mine/cancel"},
		{method: "GET", path: "/v1/executions/nobody-has-this"},
	} {
		q.token = tokenB
		r := b.do(t, q)
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s as B: %d %s", q.method, q.path, r.StatusCode, r.body)
			continue
		}
		r.problem(t)
	}
	r = b.do(t, req{method: "POST", path: "/v1/executions", token: tokenB, body: body, header: map[string]string{"Idempotency-Key": "mine"}})
	if r.StatusCode != http.StatusConflict || strings.Contains(string(r.body), httpapi.Owner(tokenA)) {
		t.Errorf("B's submission under A's key: %d %s", r.StatusCode, r.body)
	}
	if r := b.do(t, req{method: "GET", path: "/v1/executions/mine", token: tokenA}); r.StatusCode != http.StatusAccepted {
		t.Errorf("A's own: %d %s", r.StatusCode, r.body)
	}
	// Outside the API, the owner is kept with the execution.
	if got, _ := b.redis.Client.Get(context.Background(), tasks.Keys{}.Owner("mine")).Result(); got != httpapi.Owner(tokenA) {
		t.Errorf("owner key %q, want %q", got, httpapi.Owner(tokenA))
	}
}

// Over a token's rate, 429 with Retry-After; another token has its own.
func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := setup(t, httpapi.Config{RatePerSecond: 0.5, RateBurst: 2, Now: func() time.Time { return now }}, httpapi.HubConfig{})
	get := func(token string) response {
		return b.do(t, req{method: "GET", path: "/v1/executions/x", token: token})
	}
	for i := range 2 {
		if r := get(tokenA); r.StatusCode != http.StatusNotFound {
			t.Fatalf("request %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	r := get(tokenA)
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third request: %d %s, want 429", r.StatusCode, r.body)
	}
	r.problem(t)
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s != 2 {
		t.Errorf("Retry-After %q, want 2 (one request at 0.5/s)", r.Header.Get("Retry-After"))
	}
	if r := get(tokenB); r.StatusCode != http.StatusNotFound {
		t.Errorf("token B: %d, want its own allowance", r.StatusCode)
	}
}

// Over a token's open event streams, 429 with Retry-After.
func TestStreamLimit(t *testing.T) {
	b := setup(t, httpapi.Config{MaxStreams: 1}, httpapi.HubConfig{})
	id := b.queued(t, tokenA)
	b.openEvents(t, id, tokenA, nil, "")
	r := b.do(t, req{method: "GET", path: "/v1/executions/" + id + "/events", token: tokenA})
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("second stream: %d %s (Retry-After %q)", r.StatusCode, r.body, r.Header.Get("Retry-After"))
	}
	if p := r.problem(t); p.Type != "urn:execq:problem:too-many-streams" {
		t.Errorf("problem %+v", p)
	}
	b.openEvents(t, b.queued(t, tokenB), tokenB, nil, "")
}

// GET: 202 with the status before the result, 200 with it after; a long
// poll returns at the result, or 202 at its bound.
func TestGetAndWait(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	id := b.queued(t, tokenA)
	get := func(query string) response {
		return b.do(t, req{method: "GET", path: "/v1/executions/" + id + query, token: tokenA})
	}
	r := get("")
	var st httpapi.Status
	if r.StatusCode != http.StatusAccepted || json.Unmarshal(r.body, &st) != nil || st != (httpapi.Status{ExecutionID: id, Status: "queued"}) {
		t.Fatalf("queued: %d %s", r.StatusCode, r.body)
	}
	for _, bad := range []string{"?wait=61s", "?wait=soon", "?wait=-1s"} {
		r := get(bad)
		if r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s", bad, r.StatusCode, r.body)
		}
		r.problem(t)
	}
	start := time.Now()
	if r := get("?wait=1s"); r.StatusCode != http.StatusAccepted || time.Since(start) < time.Second {
		t.Errorf("wait=1s on a queued execution: %d after %s, want 202 after 1s", r.StatusCode, time.Since(start))
	}

	// A running attempt shows as running.
	if _, err := b.store.NextAttempt(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	b.appendEvents(t, id, rdb.Entry{Type: tasks.EventStarted, Data: []byte(`{"attempt":1,"worker":"w"}`)})
	if r := get(""); r.StatusCode != http.StatusAccepted || !strings.Contains(string(r.body), `"status":"running","attempt":1`) {
		t.Errorf("running: %d %s", r.StatusCode, r.body)
	}

	done := make(chan response, 1)
	go func() { done <- get("?wait=60s") }()
	// The long poll is subscribed once the hub serves a subscription.
	b.waitSubscriptions(t, 1)
	start = time.Now()
	b.finish(t, id, tasks.StatusFailed, 3)
	r = <-done
	var res tasks.Result
	if r.StatusCode != http.StatusOK || json.Unmarshal(r.body, &res) != nil || res.Status != tasks.StatusFailed || res.ExitCode != 3 {
		t.Fatalf("long poll: %d %s", r.StatusCode, r.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the long poll returned %s after the result", d)
	}
	if r := get(""); r.StatusCode != http.StatusOK {
		t.Errorf("after the result: %d", r.StatusCode)
	}
}

// Cancel: 202 for a queued execution, which has its canceled result at
// once; 409 once final; 404 unknown.
func TestCancelQueued(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	id := b.queued(t, tokenA)
	cancel := func(id string) response {
		return b.do(t, req{method: "POST", path: "/v1/executions/" + id + "/cancel", token: tokenA})
	}
	if r := cancel(id); r.StatusCode != http.StatusAccepted || !strings.Contains(string(r.body), id) {
		t.Fatalf("cancel: %d %s", r.StatusCode, r.body)
	}
	r := b.do(t, req{method: "GET", path: "/v1/executions/" + id, token: tokenA})
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), `"status":"canceled"`) {
		t.Errorf("after cancel: %d %s", r.StatusCode, r.body)
	}
	r = cancel(id)
	if r.StatusCode != http.StatusConflict {
		t.Errorf("cancel again: %d %s", r.StatusCode, r.body)
	}
	r.problem(t)
	r = cancel("unknown")
	if r.StatusCode != http.StatusNotFound {
		t.Errorf("cancel unknown: %d %s", r.StatusCode, r.body)
	}
	r.problem(t)
}

// Events: SSE as written, binary output as base64, resumed after
// Last-Event-ID or ?after=, replayed after completion, NDJSON, and a
// stream whose entries expired ends with an exit made from the result.
func TestEvents(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	id := b.queued(t, tokenA)
	live := b.openEvents(t, id, tokenA, nil, "")
	b.waitSubscriptions(t, 1)
	b.appendEvents(t, id,
		rdb.Entry{Type: tasks.EventStarted, Data: []byte(`{"attempt":1,"worker":"w"}`)},
		rdb.Entry{Type: tasks.EventStdout, Data: []byte("one\n")},
		rdb.Entry{Type: tasks.EventStderr, Data: []byte{0xff, 0x00, 'x'}},
	)
	var got []sseEvent
	for len(got) < 3 {
		ev, ok := live.next(t)
		if !ok {
			t.Fatalf("the stream ended after %v", got)
		}
		got = append(got, ev)
	}
	if got[0].event != "started" || got[1].event != "stdout" || got[1].data != `{"text":"one\n"}` ||
		got[2].event != "stderr" || got[2].data != `{"base64":"/wB4"}` {
		t.Errorf("live events %+v", got)
	}
	b.appendEvents(t, id, rdb.Entry{Type: tasks.EventStdout, Data: []byte("two\n")})
	b.finish(t, id, tasks.StatusSucceeded, 0)
	rest := live.all(t)
	if len(rest) != 2 || rest[0].data != `{"text":"two\n"}` || rest[1].event != "exit" || rest[1].data != `{"status":"succeeded","exitCode":0}` {
		t.Fatalf("the rest %+v", rest)
	}
	all := append(got, rest...)

	// After completion, from the start; resumed from an event's ID, by
	// header or by query.
	replay := b.openEvents(t, id, tokenA, nil, "").all(t)
	if len(replay) != len(all) {
		t.Fatalf("replay %+v, want %+v", replay, all)
	}
	for i := range replay {
		if replay[i] != all[i] {
			t.Errorf("replay[%d] = %+v, want %+v", i, replay[i], all[i])
		}
	}
	fromHeader := b.openEvents(t, id, tokenA, map[string]string{"Last-Event-ID": all[1].id}, "").all(t)
	fromQuery := b.openEvents(t, id, tokenA, nil, "?after="+all[1].id).all(t)
	for name, evs := range map[string][]sseEvent{"Last-Event-ID": fromHeader, "after": fromQuery} {
		if len(evs) != 3 || evs[0] != all[2] || evs[2].event != "exit" {
			t.Errorf("resumed by %s after %s: %+v", name, all[1].id, evs)
		}
	}
	if r := b.do(t, req{method: "GET", path: "/v1/executions/" + id + "/events?after=yesterday", token: tokenA}); r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("after=yesterday: %d %s", r.StatusCode, r.body)
	}

	// NDJSON: the same events.
	r := b.do(t, req{method: "GET", path: "/v1/executions/" + id + "/events", token: tokenA, header: map[string]string{"Accept": httpapi.NDJSON}})
	if r.Header.Get("Content-Type") != httpapi.NDJSON {
		t.Fatalf("NDJSON: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
	if len(lines) != len(all) {
		t.Fatalf("NDJSON lines %q", lines)
	}
	for i, line := range lines {
		var ev httpapi.EventLine
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.ID != all[i].id || string(ev.Event) != all[i].event || string(ev.Data) != all[i].data {
			t.Errorf("NDJSON line %d %s, want %+v", i, line, all[i])
		}
	}

	// Its stream expired, its result kept: one exit event.
	if err := b.redis.Client.Del(context.Background(), tasks.Keys{}.Stream(id)).Err(); err != nil {
		t.Fatal(err)
	}
	expired := b.openEvents(t, id, tokenA, nil, "").all(t)
	if len(expired) != 1 || expired[0].event != "exit" || expired[0].id != "" || expired[0].data != `{"status":"succeeded","exitCode":0}` {
		t.Errorf("after the stream expired: %+v", expired)
	}
}

// An idle stream gets a ping comment each interval.
func TestPing(t *testing.T) {
	b := setup(t, httpapi.Config{PingInterval: 20 * time.Millisecond}, httpapi.HubConfig{})
	id := b.queued(t, tokenA)
	s := b.openEvents(t, id, tokenA, nil, "")
	for range 2 {
		ev, ok := s.next(t)
		if !ok || ev.comment != "ping" || ev.event != "" {
			t.Fatalf("got %+v (%v), want a ping comment", ev, ok)
		}
	}
}

// Close ends the open streams cleanly, saying so.
func TestCloseEndsStreams(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	id := b.queued(t, tokenA)
	s := b.openEvents(t, id, tokenA, nil, "")
	b.waitSubscriptions(t, 1)
	b.api.Close()
	ev, ok := s.next(t)
	if !ok || !strings.Contains(ev.comment, "shutting down") {
		t.Errorf("got %+v, %v; want the shutdown comment", ev, ok)
	}
	if ev, ok := s.next(t); ok {
		t.Errorf("after the shutdown comment: %+v", ev)
	}
}

// An execution whose task is deleted from its queue ends, through the
// worker's sweeper, and the API sees it end.
func TestDeletedFromQueue(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	b.startWorker(t)
	id := b.queued(t, tokenA)
	s := b.openEvents(t, id, tokenA, nil, "")
	insp := asynq.NewInspectorFromRedisClient(b.redis.Client)
	if err := insp.DeleteTask("nobody", id); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	evs := s.all(t)
	if len(evs) != 1 || evs[0].event != "exit" || !strings.Contains(evs[0].data, `"status":"canceled"`) {
		t.Fatalf("events %+v", evs)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the exit came %s after the delete", d)
	}
	r := b.do(t, req{method: "GET", path: "/v1/executions/" + id + "?wait=5s", token: tokenA})
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), `"status":"canceled"`) {
		t.Errorf("result: %d %s", r.StatusCode, r.body)
	}
}

// The dashboard's Host and Origin checks guard the API too.
func TestWebGuard(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	q := b.newRequest(t, req{method: "GET", path: "/v1/executions/x", token: tokenA})
	q.Host = "rebound.example"
	resp, err := b.http.Do(q)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("Host rebound.example: %d, want 403", resp.StatusCode)
	}
	q = b.newRequest(t, req{method: "POST", path: "/v1/executions", token: tokenA, body: `{"cmd":["true"]}`})
	q.Header.Set("Origin", "https://elsewhere.example")
	q.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = b.http.Do(q)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site POST: %d, want 403", resp.StatusCode)
	}
}

// With Redis gone, 503 with a problem that says so.
func TestRedisDown(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	b.redis.Stop()
	r := b.do(t, req{method: "GET", path: "/v1/executions/x", token: tokenA})
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("%d %s, want 503", r.StatusCode, r.body)
	}
	if p := r.problem(t); !strings.Contains(p.Detail, "execq could not answer") {
		t.Errorf("problem %+v", p)
	}
}
