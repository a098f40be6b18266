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

	"github.com/execq/execq/internal/httpapi"
	"github.com/execq/execq/internal/httpapi/apitest"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// Real executions through the API on a real worker: live SSE with binary
// output, a long poll that returns at the result, cancel of a running and
// of a queued execution.
func TestWithWorker(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	b.startWorker(t)

	t.Run("events and result", func(t *testing.T) {
		id := b.submit(t, tokenA, map[string]any{
			"cmd":       []string{"sh", "-c", `cat in.txt; printf '\377\376' >&2; read line; echo "$line"; exit 4`},
			"files":     []map[string]any{{"path": "in.txt", "text": "from a file\n"}},
			"stdinText": "from stdin\n",
		})
		evs := b.openEvents(t, id, tokenA, nil, "").all(t)
		var out, errOut strings.Builder
		for _, ev := range evs {
			var d struct {
				Text   *string
				Base64 string
			}
			switch ev.event {
			case "stdout", "stderr":
				if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
					t.Fatal(err)
				}
				w := &out
				if ev.event == "stderr" {
					w = &errOut
				}
				if d.Text != nil {
					w.WriteString(*d.Text)
				} else {
					w.WriteString("base64:" + d.Base64)
				}
			}
		}
		if evs[0].event != "started" || evs[len(evs)-1].event != "exit" || !strings.Contains(evs[len(evs)-1].data, `"exitCode":4`) {
			t.Errorf("events %+v", evs)
		}
		if out.String() != "from a file\nfrom stdin\n" || errOut.String() != "base64://4=" {
			t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
		}
		r := b.do(t, req{method: "GET", path: "/v1/executions/" + id + "?wait=30s", token: tokenA})
		var res tasks.Result
		if r.StatusCode != http.StatusOK || json.Unmarshal(r.body, &res) != nil || res.Status != tasks.StatusFailed || res.ExitCode != 4 {
			t.Errorf("result: %d %s", r.StatusCode, r.body)
		}
	})

	t.Run("long poll", func(t *testing.T) {
		id := b.submit(t, tokenA, map[string]any{"cmd": []string{"sh", "-c", "sleep 0.5; echo done"}})
		start := time.Now()
		r := b.do(t, req{method: "GET", path: "/v1/executions/" + id + "?wait=30s", token: tokenA})
		if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), `"status":"succeeded"`) {
			t.Fatalf("long poll: %d %s", r.StatusCode, r.body)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the long poll took %s for a 0.5s command", d)
		}
	})

	t.Run("cancel running", func(t *testing.T) {
		id := b.submit(t, tokenA, map[string]any{"cmd": []string{"sleep", "60"}})
		s := b.openEvents(t, id, tokenA, nil, "")
		if ev, ok := s.next(t); !ok || ev.event != "started" {
			t.Fatalf("first event %+v", ev)
		}
		if r := b.do(t, req{method: "POST", path: "/v1/executions/" + id + "/cancel", token: tokenA}); r.StatusCode != http.StatusAccepted {
			t.Fatalf("cancel: %d %s", r.StatusCode, r.body)
		}
		rest := s.all(t)
		if len(rest) == 0 || rest[len(rest)-1].event != "exit" || !strings.Contains(rest[len(rest)-1].data, `"status":"canceled"`) {
			t.Errorf("after the cancel: %+v", rest)
		}
		if r := b.do(t, req{method: "POST", path: "/v1/executions/" + id + "/cancel", token: tokenA}); r.StatusCode != http.StatusConflict {
			t.Errorf("cancel again: %d %s", r.StatusCode, r.body)
		}
	})

	t.Run("cancel queued", func(t *testing.T) {
		id := b.queued(t, tokenA)
		if r := b.do(t, req{method: "POST", path: "/v1/executions/" + id + "/cancel", token: tokenA}); r.StatusCode != http.StatusAccepted {
			t.Fatalf("cancel: %d %s", r.StatusCode, r.body)
		}
		r := b.do(t, req{method: "GET", path: "/v1/executions/" + id + "?wait=10s", token: tokenA})
		if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), `"status":"canceled"`) {
			t.Errorf("result: %d %s", r.StatusCode, r.body)
		}
	})
}

// Clients that are not Go: curl -N follows the events as they come, and
// a standard-library Python script submits, follows NDJSON, long-polls
// and cancels; all of it through a proxy that checks the traffic against
// the OpenAPI document.
func TestOutsideClients(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		testutil.Missing(t, "curl is not installed (apt-get install -y curl)")
	}
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		testutil.Missing(t, "%s is not installed (apt-get install -y python3)", python)
	}
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	b.startWorker(t)
	base := apitest.Proxy(t, b.srv.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := b.submit(t, tokenA, map[string]any{"cmd": []string{"sh", "-c", "echo one; sleep 0.3; echo two"}})
	out, err := exec.CommandContext(ctx, curl, "-sS", "-N", "--fail-with-body", "-H", "Authorization: Bearer "+tokenA,
		base+"/v1/executions/"+id+"/events").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"event: started\n", "event: stdout\ndata: {\"text\":\"one\\n\"}\n\n", "event: stdout\ndata: {\"text\":\"two\\n\"}\n\n", "event: exit\ndata: {\"status\":\"succeeded\",\"exitCode\":0}\n\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("curl's events lack %q:\n%s", want, text)
		}
	}

	script := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(script, []byte(pythonClient), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, python, script, base, tokenA)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if got := string(out); got != "submitted 202\nreplayed 200\nevents started stdout exit\nstdout hello\nresult succeeded 0\nconflict 409 application/problem+json\nqueued 202 queued\ncancel 202\ncanceled canceled\nunknown 404\n" {
		t.Errorf("python printed:\n%s", got)
	}
}

// pythonClient uses the API with the standard library only.
const pythonClient = `
import json, sys, urllib.request, urllib.error, uuid

base, token = sys.argv[1], sys.argv[2]

def call(method, path, body=None, headers=None):
    h = {"Authorization": "Bearer " + token}
    h.update(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()

key = "py-" + str(uuid.uuid4())
body = {"cmd": ["sh", "-c", "cat"], "stdinText": "hello"}
status, _, raw = call("POST", "/v1/executions", body, {"Idempotency-Key": key})
print("submitted", status)
eid = json.loads(raw)["executionId"]
status, _, raw = call("POST", "/v1/executions", body, {"Idempotency-Key": key})
print("replayed", status)

req = urllib.request.Request(base + "/v1/executions/" + eid + "/events",
                             headers={"Authorization": "Bearer " + token, "Accept": "application/x-ndjson"})
kinds, stdout = [], ""
with urllib.request.urlopen(req, timeout=60) as r:
    for line in r:
        ev = json.loads(line)
        kinds.append(ev["event"])
        if ev["event"] == "stdout":
            stdout += ev["data"]["text"]
print("events", " ".join(kinds))
print("stdout", stdout)

status, _, raw = call("GET", "/v1/executions/" + eid + "?wait=30s")
res = json.loads(raw)
print("result", res["status"], res["exitCode"])

status, ctype, _ = call("POST", "/v1/executions", {"cmd": ["true"]}, {"Idempotency-Key": key})
print("conflict", status, ctype)

status, _, raw = call("POST", "/v1/executions", {"queue": "nobody", "cmd": ["true"]})
qid = json.loads(raw)["executionId"]
status, _, raw = call("GET", "/v1/executions/" + qid)
print("queued", status, json.loads(raw)["status"])
status, _, _ = call("POST", "/v1/executions/" + qid + "/cancel")
print("cancel", status)
status, _, raw = call("GET", "/v1/executions/" + qid + "?wait=10s")
print("canceled", json.loads(raw)["status"])
status, _, _ = call("GET", "/v1/executions/no-such-id")
print("unknown", status)
`
