package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
)

func TestDecodeSubmission(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		body    string
		status  int    // 0: decodes
		problem string // part of the error
		check   func(t *testing.T, r *tasks.ExecRequest)
	}{
		{name: "plain", body: `{"cmd":["echo","hi"],"timeoutMs":1500,"env":{"A":"1"}}`, check: func(t *testing.T, r *tasks.ExecRequest) {
			if r.Cmd[1] != "hi" || r.Timeout != 1500*time.Millisecond || r.Env["A"] != "1" {
				t.Errorf("decoded %+v", r)
			}
		}},
		{name: "stdinText", body: `{"cmd":["cat"],"stdinText":"héllo\n"}`, check: func(t *testing.T, r *tasks.ExecRequest) {
			if string(r.Stdin) != "héllo\n" {
				t.Errorf("stdin %q", r.Stdin)
			}
		}},
		{name: "stdin base64", body: `{"cmd":["cat"],"stdin":"/wA="}`, check: func(t *testing.T, r *tasks.ExecRequest) {
			if string(r.Stdin) != "\xff\x00" {
				t.Errorf("stdin %q", r.Stdin)
			}
		}},
		{name: "file text and content", body: `{"cmd":["ls"],"files":[{"path":"a","text":"x","mode":"0755"},{"path":"b","content":"eQ=="}]}`, check: func(t *testing.T, r *tasks.ExecRequest) {
			if string(r.Files[0].Content) != "x" || r.Files[0].Mode != 0o755 || string(r.Files[1].Content) != "y" {
				t.Errorf("files %+v", r.Files)
			}
		}},
		{name: "null text", body: `{"cmd":["cat"],"stdinText":null,"stdin":"eA=="}`, check: func(t *testing.T, r *tasks.ExecRequest) {
			if string(r.Stdin) != "x" {
				t.Errorf("stdin %q", r.Stdin)
			}
		}},
		{name: "both stdins", body: `{"cmd":["cat"],"stdinText":"a","stdin":"eA=="}`, status: 422, problem: "both given"},
		{name: "both contents", body: `{"cmd":["cat"],"files":[{"path":"a","text":"a","content":"eA=="}]}`, status: 422, problem: "files[0].text and files[0].content"},
		{name: "text not a string", body: `{"cmd":["cat"],"stdinText":3}`, status: 422, problem: "stdinText is not a string"},
		{name: "unknown", body: `{"cmd":["cat"],"extra":1}`, status: 422, problem: `unknown field "extra"`},
		{name: "unknown in a file", body: `{"cmd":["cat"],"files":[{"path":"a","size":1}]}`, status: 422, problem: `unknown field "size"`},
		{name: "wrong type", body: `{"cmd":"cat"}`, status: 422, problem: "cmd"},
		{name: "trailing data", body: `{"cmd":["cat"]} {}`, status: 400, problem: "not JSON"},
		{name: "array", body: `[1]`, status: 422, problem: "not a JSON object"},
		{name: "null", body: `null`, status: 422, problem: "not a JSON object"},
		{name: "syntax", body: `{"cmd":`, status: 400, problem: "not JSON"},
	}
	for _, c := range cases {
		r, status, err := decodeSubmission([]byte(c.body))
		if c.status == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			c.check(t, r)
			continue
		}
		if err == nil || status != c.status || !strings.Contains(err.Error(), c.problem) {
			t.Errorf("%s: %d %v, want %d mentioning %q", c.name, status, err, c.status, c.problem)
		}
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	toks := ParseTokens("# comment\n\n  alpha  \nbeta\n#gamma\n")
	if toks.Len() != 2 {
		t.Fatalf("%d tokens, want 2", toks.Len())
	}
	for _, c := range []struct {
		header string
		owner  string
		ok     bool
	}{
		{"Bearer alpha", Owner("alpha"), true},
		{"bearer beta", Owner("beta"), true},
		{"Bearer gamma", "", false},
		{"Bearer alph", "", false},
		{"Basic YWxwaGE=", "", false},
		{"", "", false},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		owner, ok := toks.authenticate(r)
		if owner != c.owner || ok != c.ok {
			t.Errorf("%q: %q %v, want %q %v", c.header, owner, ok, c.owner, c.ok)
		}
	}
	if o := Owner("alpha"); len(o) != 16 || strings.Contains(o, "alpha") {
		t.Errorf("Owner(alpha) = %q", o)
	}
	var none *Tokens
	r, _ := http.NewRequest("GET", "/", nil)
	if owner, ok := none.authenticate(r); !ok || owner != "" {
		t.Errorf("no tokens: %q %v, want everyone as the owner \"\"", owner, ok)
	}
	env, err := LoadTokens("", " one, ,two ")
	if err != nil || env.Len() != 2 {
		t.Errorf("LoadTokens from env: %v, %v", env.Len(), err)
	}
	if _, err := LoadTokens("/nonexistent/tokens", ""); err == nil {
		t.Error("a missing token file was accepted")
	}
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(2, 1, 2, func() time.Time { return now })
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("first request refused")
	}
	ok, wait := l.allow("a")
	if ok || wait != 500*time.Millisecond || retryAfter(wait) != 1 {
		t.Errorf("second request at once: %v, wait %s", ok, wait)
	}
	if ok, _ := l.allow("b"); !ok {
		t.Error("another owner's first request refused")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.allow("a"); !ok {
		t.Error("refused after the wait")
	}
	r1, ok1 := l.openStream("a")
	_, ok2 := l.openStream("a")
	if _, ok3 := l.openStream("a"); !ok1 || !ok2 || ok3 {
		t.Errorf("streams: %v %v %v, want two of two", ok1, ok2, ok3)
	}
	r1()
	r1()
	if _, ok := l.openStream("a"); !ok {
		t.Error("a released stream was not given back")
	}
	if _, ok := l.openStream("a"); ok {
		t.Error("a double release gave back two")
	}
}

func TestEntryIDs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b string
		want bool
	}{
		{"0", "1-0", true},
		{"1-0", "1-1", true},
		{"1-1", "1-0", false},
		{"2", "10-0", true},
		{"10-0", "9-99", false},
		{"5-5", "5-5", false},
		{"x", "0", true},
		{"0", "x", false},
	}
	for _, c := range cases {
		if got := entryBefore(c.a, c.b); got != c.want {
			t.Errorf("entryBefore(%q, %q) = %v", c.a, c.b, got)
		}
	}
	for _, bad := range []string{"", "a-1", "1-b", "-", "1-2-3"} {
		if _, err := parseEntryID(bad); err == nil {
			t.Errorf("parseEntryID(%q) succeeded", bad)
		}
	}
}

func TestEventData(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ev   tasks.Event
		want string
	}{
		{tasks.Event{Type: tasks.EventStdout, Data: []byte("hi\n")}, `{"text":"hi\n"}`},
		{tasks.Event{Type: tasks.EventStderr, Data: []byte{0xff}}, `{"base64":"/w=="}`},
		{tasks.Event{Type: tasks.EventStdout, Data: []byte{}}, `{"text":""}`},
		{tasks.Event{Type: tasks.EventExit, Data: []byte("{\n \"status\": \"failed\"}")}, `{"status":"failed"}`},
		{tasks.Event{Type: tasks.EventStarted, Data: []byte("not json")}, `{"raw":"not json"}`},
	}
	for _, c := range cases {
		got, err := EventData(c.ev)
		if err != nil || string(got) != c.want {
			t.Errorf("EventData(%s %q) = %s, %v; want %s", c.ev.Type, c.ev.Data, got, err, c.want)
		}
	}
	for accept, want := range map[string]bool{
		"application/x-ndjson":                    true,
		"text/event-stream, application/x-ndjson": true,
		"text/event-stream":                       false,
		"":                                        false,
		"*/*":                                     false,
	} {
		if got := wantsNDJSON(accept); got != want {
			t.Errorf("wantsNDJSON(%q) = %v", accept, got)
		}
	}
}

func TestDecodeSessionRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		body    string
		status  int    // 0: decodes
		problem string // part of the error
		check   func(t *testing.T, r *tasks.SessionRequest)
	}{
		{name: "plain", body: `{"id":"s1","language":"python","env":{"A":"1"},"memoryBytes":67108864,"cpus":0.5,"pids":64,"idleTimeoutMs":1500,"lifetimeMs":60000}`,
			check: func(t *testing.T, r *tasks.SessionRequest) {
				if r.ID != "s1" || r.Language != "python" || r.Env["A"] != "1" || r.MemoryBytes != 64<<20 || r.CPUs != 0.5 || r.Pids != 64 ||
					r.IdleTimeout != 1500*time.Millisecond || r.Lifetime != time.Minute {
					t.Errorf("decoded %+v", r)
				}
			}},
		{name: "file text and content", body: `{"files":[{"path":"a","text":"x","mode":"0755"},{"path":"b","content":"eQ=="}]}`, check: func(t *testing.T, r *tasks.SessionRequest) {
			if len(r.Files) != 2 || string(r.Files[0].Content) != "x" || r.Files[0].Mode != 0o755 || string(r.Files[1].Content) != "y" {
				t.Errorf("files %+v", r.Files)
			}
		}},
		{name: "empty", body: `{}`, check: func(t *testing.T, r *tasks.SessionRequest) {
			if r.ID != "" || r.IdleTimeout != 0 || r.Lifetime != 0 {
				t.Errorf("decoded %+v", r)
			}
		}},
		{name: "both contents", body: `{"files":[{"path":"a","text":"a","content":"eA=="}]}`, status: 422, problem: "files[0].text and files[0].content"},
		{name: "unknown", body: `{"image":"x","cmd":["true"]}`, status: 422, problem: `unknown field "cmd"`},
		{name: "unknown in a file", body: `{"files":[{"path":"a","size":1}]}`, status: 422, problem: `unknown field "size"`},
		{name: "Go's name of a duration", body: `{"IdleTimeout":5}`, status: 422, problem: `unknown field "IdleTimeout"`},
		{name: "a stored-input reference", body: `{"files":[{"path":"a","content":{"storedBytes":1}}]}`, status: 422, problem: "files"},
		{name: "out of range", body: `{"lifetimeMs":9223372036854775807}`, status: 422, problem: "lifetimeMs"},
		{name: "wrong type", body: `{"env":["A"]}`, status: 422, problem: "env"},
		{name: "trailing data", body: `{} {}`, status: 400, problem: "not JSON"},
		{name: "array", body: `[1]`, status: 422, problem: "not a JSON object"},
		{name: "syntax", body: `{"id":`, status: 400, problem: "not JSON"},
	}
	for _, c := range cases {
		r, status, err := decodeSessionRequest([]byte(c.body))
		if c.status == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			c.check(t, r)
			continue
		}
		if err == nil || status != c.status || !strings.Contains(err.Error(), c.problem) {
			t.Errorf("%s: %d %v, want %d mentioning %q", c.name, status, err, c.status, c.problem)
		}
	}
}

func TestSessionJSON(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	info := tasks.SessionInfo{ID: "s1", Status: tasks.SessionOpen, Executions: 2, Done: 2, IdleTimeout: time.Minute,
		CreatedAt: now.Add(-time.Hour), LastActiveAt: now.Add(-1500 * time.Millisecond)}
	b, err := sessionJSON(info, now)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got["sessionId"] != "s1" || got["status"] != "open" || got["idleMs"] != 1500.0 || got["idleTimeoutMs"] != 60000.0 {
		t.Errorf("session JSON %s", b)
	}
	info.Running = "x"
	if b, _ := sessionJSON(info, now); !strings.HasSuffix(string(b), `,"idleMs":0}`) {
		t.Errorf("a session running an execution: %s, want idleMs 0", b)
	}
}
