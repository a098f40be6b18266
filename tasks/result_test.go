package tasks_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
)

func TestResultOutputJSON(t *testing.T) {
	t.Parallel()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	cases := []struct {
		name     string
		output   string
		encoding string // "" for text
	}{
		{"empty", "", ""},
		{"ascii", "hello\n", ""},
		{"utf-8", "héllo wörld ✓ 🙂\n", ""},
		{"lines and tabs", "a\tb\r\nc\n", ""},
		{"json specials", `say "hi" to C:\dir, <b>&amp;</b>`, ""},
		{"replacement character itself", "\uFFFD", ""},
		{"a colored line of text", "\x1b[1mwarning:\x1b[0m unused variable x in function main at line 12\n", ""},
		// Text whose escapes would cost more than base64 is base64.
		{"mostly control bytes", "\x00\x01\x02\x03\x1b[m", "base64"},
		{"invalid utf-8", "ok\xff\xfe", "base64"},
		{"truncated rune", "é"[:1], "base64"},
		{"every byte", string(all), "base64"},
	}
	for _, c := range cases {
		in := tasks.Result{ExecutionID: "id", Status: tasks.StatusSucceeded, Stdout: c.output, Stderr: c.output}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var fields map[string]any
		if err := json.Unmarshal(b, &fields); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"stdout", "stderr"} {
			enc, _ := fields[s+"Encoding"].(string)
			if enc != c.encoding {
				t.Errorf("%s: %sEncoding %q, want %q (in %s)", c.name, s, enc, c.encoding, b)
			}
			if c.encoding == "" && fields[s] != c.output {
				t.Errorf("%s: %s written as %q, want the text itself", c.name, s, fields[s])
			}
		}
		var out tasks.Result
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if out.Stdout != c.output || out.Stderr != c.output {
			t.Errorf("%s: round trip gave stdout %q stderr %q, want %q", c.name, out.Stdout, out.Stderr, c.output)
		}
	}
}

// Whatever the bytes, the stored result gives them back exactly.
func TestResultOutputRoundTripsAnyBytes(t *testing.T) {
	t.Parallel()
	alphabet := []string{"a", "Z", " ", "\n", "\r", "\t", "\x00", "\x1b", "\x7f", `"`, `\`, "/", "<", "&",
		"é", "✓", "🙂", "\u2028", "\xff", "\xc3", "\xe2\x80"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		output := b.String()
		body, err := json.Marshal(tasks.Result{Stdout: output})
		if err != nil {
			t.Fatal(err)
		}
		var back tasks.Result
		if err := json.Unmarshal(body, &back); err != nil {
			t.Fatalf("%q: %v", output, err)
		}
		if back.Stdout != output {
			t.Fatalf("%q came back as %q (via %s)", output, back.Stdout, body)
		}
	}
}

// The stored result promises to be at most a third larger than the output
// (tasks/result.go, EncodeResult, which the store uses).
func TestResultOutputIsAtMostAThirdLarger(t *testing.T) {
	t.Parallel()
	for _, output := range []string{
		strings.Repeat("<", 3000),
		strings.Repeat("<p>a &amp; b</p>\n", 200),
		strings.Repeat("\u2028", 1000),
		strings.Repeat("\x00", 3000),
		strings.Repeat("\x1b[31mred\x1b[0m\n", 300),
	} {
		body, err := tasks.EncodeResult(&tasks.Result{Stdout: output})
		if err != nil {
			t.Fatal(err)
		}
		empty, err := tasks.EncodeResult(&tasks.Result{})
		if err != nil {
			t.Fatal(err)
		}
		extra := len(body) - len(empty) - len(`,"stdoutEncoding":"base64"`)
		if limit := len(output) * 4 / 3; extra > limit {
			t.Errorf("%d bytes of %q... take %d bytes in the stored result; the limit is %d", len(output), output[:10], extra, limit)
		}
	}
}

func TestResultEncodesEachStreamOnItsOwn(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(tasks.Result{Stdout: "text", Stderr: "\xff"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, `"stdout":"text"`) || strings.Contains(s, "stdoutEncoding") || !strings.Contains(s, `"stderrEncoding":"base64"`) {
		t.Errorf("encoded %s", s)
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	t.Parallel()
	in := tasks.Result{
		ExecutionID:     "id-1",
		Status:          tasks.StatusFailed,
		ExitCode:        3,
		Stdout:          "out\xff",
		Stderr:          "err",
		StdoutTruncated: true,
		StdoutBytes:     5000,
		StderrBytes:     3,
		DurationMs:      12,
		QueuedMs:        4,
		Attempt:         2,
		Worker:          "w",
		Image:           "img",
		Resources:       &tasks.Resources{CPUTimeMs: 7, PeakMemoryBytes: 1 << 20},
		Files:           []tasks.CollectedFile{{Path: "a", Size: 2, Mode: 0o600, Content: []byte{0, 0xff}}, {Path: "l", Error: "a symlink"}},
		Error:           "why",
		StartedAt:       time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		FinishedAt:      time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"executionId":"id-1"`, `"duration":12`, `"mode":"0600"`, `"stdoutBytes":5000`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("encoded result lacks %s: %s", field, b)
		}
	}
	var out tasks.Result
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip changed the result:\n got %+v\nwant %+v", out, in)
	}
}

func TestResultDecodeErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{"stdout":"!!","stdoutEncoding":"base64"}`,
		`{"stderr":"x","stderrEncoding":"rot13"}`,
		`{"status":1}`,
	} {
		var r tasks.Result
		if err := json.Unmarshal([]byte(in), &r); err == nil {
			t.Errorf("decoding %s succeeded: %+v", in, r)
		}
	}
}

func TestStatusFinal(t *testing.T) {
	t.Parallel()
	for _, s := range []tasks.Status{tasks.StatusSucceeded, tasks.StatusFailed, tasks.StatusTimedOut,
		tasks.StatusOOMKilled, tasks.StatusCanceled, tasks.StatusRejected, tasks.StatusError} {
		if !s.Final() {
			t.Errorf("%s is not final", s)
		}
	}
	for _, s := range []tasks.Status{"", "running", "SUCCEEDED"} {
		if s.Final() {
			t.Errorf("%q is final", s)
		}
	}
}
