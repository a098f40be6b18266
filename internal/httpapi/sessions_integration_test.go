//go:build integration

package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/execq/execq/internal/httpapi"
	"github.com/execq/execq/internal/httpapi/apitest"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/internal/testutil/liveworker"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// sessionState is what GET /v1/sessions/{id} answers.
type sessionState struct {
	tasks.SessionInfo
	IdleMs int64
}

func (s *sessionState) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &s.SessionInfo); err != nil {
		return err
	}
	var idle struct{ IdleMs int64 }
	if err := json.Unmarshal(b, &idle); err != nil {
		return err
	}
	s.IdleMs = idle.IdleMs
	return nil
}

func decodeSession(t *testing.T, r response) sessionState {
	t.Helper()
	var s sessionState
	if err := json.Unmarshal(r.body, &s); err != nil || s.ID == "" {
		t.Fatalf("a session's state: %d %s (%v)", r.StatusCode, r.body, err)
	}
	return s
}

// openSession records a session open on a worker that does not exist, as
// a worker would: the API's routes work on it; nothing runs in it.
func (b *bundle) openSession(t *testing.T, id, owner string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	req := tasks.SessionRequest{ID: id, Owner: owner}.WithDefaults()
	if err := b.store.CreateSession(ctx, req, now); err != nil {
		t.Fatal(err)
	}
	if opened, err := b.store.OpenSession(ctx, id, "no-such-worker", "no-such-worker-queue", "c0ffee", testutil.SandboxImage, now); err != nil || !opened {
		t.Fatalf("open session %s: %v, %v", id, opened, err)
	}
}

// The session routes without a worker: every status code, each error a
// problem; a session nobody opened is closed; another token's is not
// found.
func TestSessionRoutes(t *testing.T) {
	b := setup(t, httpapi.Config{SessionCreateTimeout: time.Second, MaxBodyBytes: 4 << 10}, httpapi.HubConfig{})
	post := func(path, token string, body any, header map[string]string) response {
		return b.do(t, req{method: "POST", path: path, token: token, body: body, header: header})
	}

	t.Run("no worker opens it", func(t *testing.T) {
		r := post("/v1/sessions", tokenA, map[string]any{"queue": "nobody"}, map[string]string{"Idempotency-Key": "unopened"})
		if r.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%d %s, want 503", r.StatusCode, r.body)
		}
		if p := r.problem(t); p.Type != "urn:execq:problem:no-session-worker" || !strings.Contains(p.Detail, "no worker opened it in time") {
			t.Errorf("problem %+v", p)
		}
		s := decodeSession(t, b.do(t, req{method: "GET", path: "/v1/sessions/unopened", token: tokenA}))
		if s.Status != tasks.SessionClosed || s.Cause != tasks.CauseFailed || s.Owner != httpapi.Owner(tokenA) {
			t.Errorf("the session nobody opened: %+v", s)
		}
		r = post("/v1/sessions", tokenA, map[string]any{"id": "unopened"}, nil)
		if r.StatusCode != http.StatusConflict || r.problem(t).Type != "urn:execq:problem:session-exists" {
			t.Errorf("its ID again: %d %s", r.StatusCode, r.body)
		}
		r = post("/v1/sessions/unopened/executions", tokenA, map[string]any{"cmd": []string{"true"}}, nil)
		if r.StatusCode != http.StatusGone {
			t.Fatalf("an execution in it: %d %s, want 410", r.StatusCode, r.body)
		}
		if p := r.problem(t); p.Type != "urn:execq:problem:session-ended" || !strings.Contains(p.Detail, "closed (failed)") {
			t.Errorf("problem %+v", p)
		}
		if r := b.do(t, req{method: "DELETE", path: "/v1/sessions/unopened", token: tokenA}); r.StatusCode != http.StatusNoContent {
			t.Errorf("closing an ended session: %d %s, want 204", r.StatusCode, r.body)
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
			{"unknown field", map[string]any{"cmd": []string{"true"}}, nil, 422, `unknown field "cmd"`},
			{"unknown file field", map[string]any{"files": []map[string]any{{"path": "a", "txt": "x"}}}, nil, 422, `unknown field "txt"`},
			{"owner given", map[string]any{"owner": "someone"}, nil, 422, "owner is set by the server"},
			{"createdAt given", map[string]any{"createdAt": "2099-01-01T00:00:00Z"}, nil, 422, "createdAt is set by the server"},
			{"key and id differ", map[string]any{"id": "one"}, map[string]string{"Idempotency-Key": "two"}, 422, "differ"},
			{"bad id", map[string]any{"id": "a b"}, nil, 422, "id"},
			{"image and language", map[string]any{"image": "x", "language": "python"}, nil, 422, "language"},
			{"too long a life", map[string]any{"lifetimeMs": 25 * 3600 * 1000}, nil, 422, "above the maximum"},
			{"negative idle", map[string]any{"idleTimeoutMs": -1}, nil, 422, "negative"},
			{"over the limits", map[string]any{"memoryBytes": int64(64) << 30}, nil, 422, "above the worker's maximum"},
			{"bad path", map[string]any{"files": []map[string]any{{"path": "../x", "text": ""}}}, nil, 422, "files[0].path"},
			{"not JSON", "{", nil, 400, "not JSON"},
			{"too large", map[string]any{"files": []map[string]any{{"path": "a", "text": strings.Repeat("x", 8<<10)}}}, nil, 413, "over"},
		}
		for _, c := range cases {
			r := post("/v1/sessions", tokenA, c.body, c.header)
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

	b.openSession(t, "open-a", httpapi.Owner(tokenA))
	t.Run("executions in an open session", func(t *testing.T) {
		body := map[string]any{"cmd": []string{"echo", "hi"}}
		key := map[string]string{"Idempotency-Key": "in-open-a"}
		r := post("/v1/sessions/open-a/executions", tokenA, body, key)
		if r.StatusCode != http.StatusAccepted || r.Header.Get("Location") != "/v1/executions/in-open-a" {
			t.Fatalf("submit: %d %s (Location %q)", r.StatusCode, r.body, r.Header.Get("Location"))
		}
		if r := post("/v1/sessions/open-a/executions", tokenA, body, key); r.StatusCode != http.StatusOK {
			t.Errorf("the same again: %d %s, want 200", r.StatusCode, r.body)
		}
		// The same request through /v1/executions, the session in the body.
		if r := post("/v1/executions", tokenA, map[string]any{"id": "in-open-a", "session": "open-a", "cmd": []string{"echo", "hi"}}, nil); r.StatusCode != http.StatusOK {
			t.Errorf("the same through /v1/executions: %d %s, want 200", r.StatusCode, r.body)
		}
		if r := post("/v1/sessions/open-a/executions", tokenA, map[string]any{"cmd": []string{"echo", "other"}}, key); r.StatusCode != http.StatusConflict {
			t.Errorf("another request under the key: %d %s, want 409", r.StatusCode, r.body)
		}
		s := decodeSession(t, b.do(t, req{method: "GET", path: "/v1/sessions/open-a", token: tokenA}))
		if s.Status != tasks.SessionOpen || s.Executions != 1 || s.Worker != "no-such-worker" || s.IdleMs != 0 {
			t.Errorf("the session: %+v", s)
		}
		for _, c := range []struct {
			name   string
			body   map[string]any
			detail string
		}{
			{"image", map[string]any{"cmd": []string{"true"}, "image": "x"}, "image given with session open-a"},
			{"memory", map[string]any{"cmd": []string{"true"}, "memoryBytes": 64 << 20}, "memoryBytes given with session"},
			{"cpus and pids", map[string]any{"cmd": []string{"true"}, "cpus": 1, "pids": 10}, "the session decides"},
			{"another session", map[string]any{"cmd": []string{"true"}, "session": "other"}, `the body's session "other" is not the path's`},
			{"sessionSeq", map[string]any{"cmd": []string{"true"}, "sessionSeq": 3}, "sessionSeq is set by the server"},
		} {
			r := post("/v1/sessions/open-a/executions", tokenA, c.body, nil)
			if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.problem(t).Detail, c.detail) {
				t.Errorf("%s: %d %s, want 422 saying %q", c.name, r.StatusCode, r.body, c.detail)
			}
		}
	})

	t.Run("another token's", func(t *testing.T) {
		for _, q := range []req{
			{method: "GET", path: "/v1/sessions/open-a"},
			{method: "DELETE", path: "/v1/sessions/open-a"},
			{method: "POST", path: "/v1/sessions/open-a/executions", body: map[string]any{"cmd": []string{"true"}}},
			{method: "POST", path: "/v1/executions", body: map[string]any{"cmd": []string{"true"}, "session": "open-a"}},
			{method: "GET", path: "/v1/sessions/nobody-has-this"},
			{method: "DELETE", path: "/v1/sessions/nobody-has-this"},
			{method: "POST", path: "/v1/sessions/nobody-has-this/executions", body: map[string]any{"cmd": []string{"true"}}},
		} {
			q.token = tokenB
			r := b.do(t, q)
			if r.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s as B: %d %s", q.method, q.path, r.StatusCode, r.body)
				continue
			}
			r.problem(t)
		}
		r := b.do(t, req{method: "GET", path: "/v1/sessions?all=1", token: tokenB})
		var list struct{ Sessions []sessionState }
		if r.StatusCode != http.StatusOK || json.Unmarshal(r.body, &list) != nil || len(list.Sessions) != 0 {
			t.Errorf("B's sessions: %d %s, want none", r.StatusCode, r.body)
		}
	})

	t.Run("list", func(t *testing.T) {
		b.openSession(t, "open-a2", httpapi.Owner(tokenA))
		b.openSession(t, "open-b", httpapi.Owner(tokenB))
		ids := func(query string) []string {
			t.Helper()
			r := b.do(t, req{method: "GET", path: "/v1/sessions" + query, token: tokenA})
			var list struct{ Sessions []sessionState }
			if r.StatusCode != http.StatusOK || json.Unmarshal(r.body, &list) != nil {
				t.Fatalf("list%s: %d %s", query, r.StatusCode, r.body)
			}
			var out []string
			for _, s := range list.Sessions {
				out = append(out, s.ID)
			}
			return out
		}
		if got := strings.Join(ids(""), " "); got != "open-a2 open-a" {
			t.Errorf("A's live sessions: %q, want the two open ones, newest first", got)
		}
		if got := strings.Join(ids("?all=1"), " "); got != "open-a2 open-a unopened" {
			t.Errorf("A's sessions: %q, want the ended one too", got)
		}
		if got := strings.Join(ids("?all=true&limit=1"), " "); got != "open-a2" {
			t.Errorf("A's newest session: %q", got)
		}
		for _, q := range []string{"?all=yes", "?limit=0", "?limit=1001", "?limit=x"} {
			if r := b.do(t, req{method: "GET", path: "/v1/sessions" + q, token: tokenA}); r.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("list%s: %d %s, want 422", q, r.StatusCode, r.body)
			}
		}
	})

	t.Run("close", func(t *testing.T) {
		if r := b.do(t, req{method: "DELETE", path: "/v1/sessions/open-a", token: tokenA}); r.StatusCode != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("close: %d %s", r.StatusCode, r.body)
		}
		// No worker holds it to finish the close.
		s := decodeSession(t, b.do(t, req{method: "GET", path: "/v1/sessions/open-a", token: tokenA}))
		if s.Status != tasks.SessionClosing || s.Cause != tasks.CauseClosed {
			t.Errorf("after the close: %+v", s)
		}
		if r := b.do(t, req{method: "DELETE", path: "/v1/sessions/open-a", token: tokenA}); r.StatusCode != http.StatusNoContent {
			t.Errorf("close again: %d %s", r.StatusCode, r.body)
		}
		r := post("/v1/sessions/open-a/executions", tokenA, map[string]any{"cmd": []string{"true"}}, nil)
		if r.StatusCode != http.StatusGone || !strings.Contains(r.problem(t).Detail, "closing (closed)") {
			t.Errorf("an execution after the close: %d %s, want 410", r.StatusCode, r.body)
		}
		// What it admitted before stays readable, and the same request
		// under its ID is still the same.
		if r := post("/v1/sessions/open-a/executions", tokenA, map[string]any{"cmd": []string{"echo", "hi"}}, map[string]string{"Idempotency-Key": "in-open-a"}); r.StatusCode != http.StatusOK {
			t.Errorf("the first request again: %d %s, want 200", r.StatusCode, r.body)
		}
	})

	t.Run("methods", func(t *testing.T) {
		for path, allow := range map[string]string{
			"/v1/sessions":                 "GET, POST",
			"/v1/sessions/x":               "DELETE, GET",
			"/v1/sessions/x/executions":    "POST",
			"/v1/sessions/x/executions/y/": "",
		} {
			r := b.do(t, req{method: "PUT", path: path, token: tokenA})
			want := http.StatusMethodNotAllowed
			if allow == "" {
				want = http.StatusNotFound
			}
			if r.StatusCode != want || r.Header.Get("Allow") != allow {
				t.Errorf("PUT %s: %d (Allow %q) %s, want %d (Allow %q)", path, r.StatusCode, r.Header.Get("Allow"), r.body, want, allow)
			}
			r.problem(t)
		}
	})
}

// Sessions on a real worker: two steps share their files, another token
// finds nothing, a close ends the session (closing, then closed) and
// refuses what comes after with 410; the same over HTTP from a
// standard-library Python script, through a proxy that checks the traffic
// against the OpenAPI document.
func TestSessionsWithWorker(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	liveworker.StartWith(t, b.redis.Client, "api-"+uuid.NewString()[:8], 1, func(c *worker.Config) { c.MaxSessions = 2 })

	t.Run("two steps", func(t *testing.T) {
		r := b.do(t, req{method: "POST", path: "/v1/sessions", token: tokenA, body: map[string]any{
			"files":         []map[string]any{{"path": "seed.txt", "text": "seed\n"}},
			"env":           map[string]string{"STEP": "session"},
			"idleTimeoutMs": 60000,
		}})
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d %s", r.StatusCode, r.body)
		}
		s := decodeSession(t, r)
		if loc := r.Header.Get("Location"); loc != "/v1/sessions/"+s.ID {
			t.Errorf("Location %q", loc)
		}
		if s.Status != tasks.SessionOpen || s.Worker == "" || s.IdleTimeout != time.Minute || s.Owner != httpapi.Owner(tokenA) {
			t.Errorf("created: %+v", s)
		}
		path := "/v1/sessions/" + s.ID
		step := func(cmd string) tasks.Result {
			t.Helper()
			r := b.do(t, req{method: "POST", path: path + "/executions", token: tokenA, body: map[string]any{"cmd": []string{"sh", "-c", cmd}}})
			if r.StatusCode != http.StatusAccepted {
				t.Fatalf("submit %q: %d %s", cmd, r.StatusCode, r.body)
			}
			r = b.do(t, req{method: "GET", path: r.Header.Get("Location") + "?wait=60s", token: tokenA})
			var res tasks.Result
			if r.StatusCode != http.StatusOK || json.Unmarshal(r.body, &res) != nil {
				t.Fatalf("result of %q: %d %s", cmd, r.StatusCode, r.body)
			}
			return res
		}
		if res := step(`cp seed.txt note.txt && echo "$STEP one" >> note.txt`); res.Status != tasks.StatusSucceeded || res.Session != s.ID {
			t.Fatalf("step 1: %+v", res)
		}
		if res := step("cat note.txt"); res.Status != tasks.StatusSucceeded || res.Stdout != "seed\nsession one\n" {
			t.Fatalf("step 2: %+v", res)
		}
		// The worker counts an execution done just after its result.
		testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, "the session counts two executions done", func() bool {
			s = decodeSession(t, b.do(t, req{method: "GET", path: path, token: tokenA}))
			return s.Done == 2
		})
		if s.Executions != 2 || s.Status != tasks.SessionOpen || s.Running != "" || s.LastActiveAt.IsZero() {
			t.Errorf("after two steps: %+v", s)
		}

		for _, q := range []req{
			{method: "GET", path: path},
			{method: "POST", path: path + "/executions", body: map[string]any{"cmd": []string{"cat", "note.txt"}}},
			{method: "DELETE", path: path},
		} {
			q.token = tokenB
			if r := b.do(t, q); r.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s as B: %d %s, want 404", q.method, q.path, r.StatusCode, r.body)
			}
		}

		if r := b.do(t, req{method: "DELETE", path: path, token: tokenA}); r.StatusCode != http.StatusNoContent {
			t.Fatalf("close: %d %s", r.StatusCode, r.body)
		}
		s = decodeSession(t, b.do(t, req{method: "GET", path: path, token: tokenA}))
		if s.Status != tasks.SessionClosing && s.Status != tasks.SessionClosed {
			t.Errorf("right after the close: %+v, want closing or closed", s)
		}
		testutil.Eventually(t, time.Minute, 50*time.Millisecond, "the worker closes the session", func() bool {
			s = decodeSession(t, b.do(t, req{method: "GET", path: path, token: tokenA}))
			return s.Status == tasks.SessionClosed
		})
		if s.Cause != tasks.CauseClosed || s.EndedAt.IsZero() {
			t.Errorf("closed: %+v", s)
		}
		r = b.do(t, req{method: "POST", path: path + "/executions", token: tokenA, body: map[string]any{"cmd": []string{"cat", "note.txt"}}})
		if r.StatusCode != http.StatusGone || !strings.Contains(r.problem(t).Detail, "closed (closed)") {
			t.Errorf("after the close: %d %s, want 410", r.StatusCode, r.body)
		}
	})

	t.Run("the worker refuses it", func(t *testing.T) {
		r := b.do(t, req{method: "POST", path: "/v1/sessions", token: tokenA, body: map[string]any{"language": "cobol"}})
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.problem(t).Detail, "cobol") {
			t.Errorf("a language the worker does not know: %d %s, want 422", r.StatusCode, r.body)
		}
	})

	t.Run("python", func(t *testing.T) {
		const python = "/usr/bin/python3"
		if _, err := os.Stat(python); err != nil {
			testutil.Missing(t, "%s is not installed (apt-get install -y python3)", python)
		}
		base := apitest.Proxy(t, b.srv.URL)
		script := filepath.Join(t.TempDir(), "sessions.py")
		if err := os.WriteFile(script, []byte(pythonSessionClient), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, python, script, base, tokenA, tokenB)
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		want := "created 201 open\nstep1 202 succeeded\nstep2 succeeded 'from step 1\\n'\nlisted True\n" +
			"other token 404 404 404\nclosed 204\nafter close closing-or-closed\nsubmit after close 410 application/problem+json\nclosed again 204\n"
		if got := string(out); got != want {
			t.Errorf("python printed:\n%s\nwant:\n%s", got, want)
		}
	})
}

// pythonSessionClient uses sessions with the standard library only.
const pythonSessionClient = `
import json, sys, urllib.request, urllib.error

base, token, other = sys.argv[1], sys.argv[2], sys.argv[3]

def call(method, path, body=None, tok=None):
    h = {"Authorization": "Bearer " + (tok or token)}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=90) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()

status, _, raw = call("POST", "/v1/sessions", {"lifetimeMs": 600000})
s = json.loads(raw)
sid = s["sessionId"]
print("created", status, s["status"])

status, headers, raw = call("POST", "/v1/sessions/" + sid + "/executions", {"cmd": ["sh", "-c", "echo 'from step 1' > kept.txt"]})
status2, _, raw = call("GET", headers["Location"] + "?wait=60s")
print("step1", status, json.loads(raw)["status"])
status, headers, raw = call("POST", "/v1/sessions/" + sid + "/executions", {"cmd": ["cat", "kept.txt"]})
_, _, raw = call("GET", headers["Location"] + "?wait=60s")
res = json.loads(raw)
print("step2", res["status"], repr(res["stdout"]))

_, _, raw = call("GET", "/v1/sessions")
print("listed", any(x["sessionId"] == sid for x in json.loads(raw)["sessions"]))

codes = [call("GET", "/v1/sessions/" + sid, tok=other)[0],
         call("POST", "/v1/sessions/" + sid + "/executions", {"cmd": ["true"]}, tok=other)[0],
         call("DELETE", "/v1/sessions/" + sid, tok=other)[0]]
print("other token", *codes)

status, _, _ = call("DELETE", "/v1/sessions/" + sid)
print("closed", status)
_, _, raw = call("GET", "/v1/sessions/" + sid)
st = json.loads(raw)["status"]
print("after close", "closing-or-closed" if st in ("closing", "closed") else st)
status, headers, _ = call("POST", "/v1/sessions/" + sid + "/executions", {"cmd": ["cat", "kept.txt"]})
print("submit after close", status, headers["Content-Type"])
status, _, _ = call("DELETE", "/v1/sessions/" + sid)
print("closed again", status)
`
