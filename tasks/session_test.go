package tasks

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSessionRequestJSONAndDefaults(t *testing.T) {
	t.Parallel()
	in := SessionRequest{ID: "s", Image: "img", IdleTimeout: 1500 * time.Microsecond, Lifetime: time.Hour}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"idleTimeoutMs":2`) || !strings.Contains(string(b), `"lifetimeMs":3600000`) {
		t.Fatalf("JSON %s", b)
	}
	var out SessionRequest
	if err := json.Unmarshal(b, &out); err != nil || out.IdleTimeout != 2*time.Millisecond || out.Lifetime != time.Hour {
		t.Fatalf("round trip: %+v %v", out, err)
	}
	d := SessionRequest{}.WithDefaults()
	if d.IdleTimeout != DefaultSessionIdle || d.Lifetime != DefaultSessionLifetime || d.Queue != DefaultQueue {
		t.Fatalf("defaults %+v", d)
	}
}

func TestSessionRequestCheck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		req  SessionRequest
		want string
	}{
		{SessionRequest{ID: "s", Lifetime: 25 * time.Hour}, "above the maximum"},
		{SessionRequest{ID: "s", IdleTimeout: -time.Second}, "negative"},
		{SessionRequest{ID: "s", Image: "a", Language: "python"}, "both given"},
		{SessionRequest{ID: "s", Env: map[string]string{"1X": "v"}}, "not a valid variable name"},
		{SessionRequest{ID: "s", Files: []File{{Path: "../x"}}}, "files[0].path"},
	} {
		err := c.req.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.req, err, c.want)
		}
	}
	if err := (&SessionRequest{ID: "s", Language: "python"}).Check(); err != nil {
		t.Errorf("a valid request: %v", err)
	}
}

// An execution of a session gives neither image nor limits: the session
// has them.
func TestExecutionOfASessionGivesNoImageNorLimits(t *testing.T) {
	t.Parallel()
	r := ExecRequest{ID: "x", Session: "s", Cmd: []string{"true"}, Image: "img", MemoryBytes: 1 << 30, CPUs: 1, Pids: 10}
	err := r.Check()
	for _, field := range []string{"image", "memoryBytes", "cpus", "pids"} {
		if err == nil || !strings.Contains(err.Error(), field+" given with session s") {
			t.Errorf("%s with a session: %v", field, err)
		}
	}
	ok := ExecRequest{ID: "x", Session: "s", Language: "python", Code: "print(1)"}
	if err := ok.Check(); err != nil {
		t.Errorf("a language in a session: %v", err)
	}
	a, _ := ExecRequest{ID: "x", Session: "s", Cmd: []string{"true"}, SessionSeq: 1}.Digest()
	b, _ := ExecRequest{ID: "x", Session: "s", Cmd: []string{"true"}, SessionSeq: 2}.Digest()
	if a != b {
		t.Error("the digest depends on the place in the session, which a replay gets again")
	}
}

func TestSessionIdleFor(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	s := SessionInfo{Status: SessionOpen, Executions: 2, Done: 2, LastActiveAt: now.Add(-time.Minute)}
	if got := s.IdleFor(now); got != time.Minute {
		t.Errorf("idle for %s", got)
	}
	s.Done = 1
	if got := s.IdleFor(now); got != 0 {
		t.Errorf("with an execution waiting: idle for %s", got)
	}
}
