package tasks_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
)

func TestExecRequestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	in := tasks.ExecRequest{
		ID:             "id-1",
		Queue:          "q",
		Image:          "img:1",
		Cmd:            []string{"sh", "-c", "echo \"$A\""},
		Env:            map[string]string{"A": "b c"},
		Files:          []tasks.File{{Path: "a/b.sh", Content: []byte{0, 1, 2, 0xff}, Mode: 0o755}},
		Stdin:          []byte("in\x00put"),
		WorkDir:        "a",
		Timeout:        1500 * time.Millisecond,
		MemoryBytes:    64 << 20,
		CPUs:           0.5,
		Pids:           10,
		MaxOutputBytes: 100,
		Collect:        []string{"**/*.txt"},
		SubmittedAt:    time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	b, err := tasks.EncodeRequest(&in)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if got := string(fields["timeoutMs"]); got != "1500" {
		t.Errorf("timeoutMs = %s, want 1500 (in %s)", got, b)
	}
	for _, name := range []string{"Timeout", "timeout"} {
		if _, ok := fields[name]; ok {
			t.Errorf("the timeout is also written as %q: %s", name, b)
		}
	}
	if !strings.Contains(string(b), `"mode":"0755"`) {
		t.Errorf("file mode not written as an octal string: %s", b)
	}
	out, err := tasks.DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*out, in) {
		t.Errorf("round trip changed the request:\n got %+v\nwant %+v", *out, in)
	}
}

func TestExecRequestTimeoutOnTheWire(t *testing.T) {
	t.Parallel()
	cases := []struct {
		timeout time.Duration
		wantMs  string // "" when the field is left out
		back    time.Duration
	}{
		{0, "", 0},
		{time.Nanosecond, "1", time.Millisecond}, // never "use the default"
		{999 * time.Microsecond, "1", time.Millisecond},
		{time.Millisecond, "1", time.Millisecond},
		{time.Millisecond + time.Nanosecond, "2", 2 * time.Millisecond},
		{30 * time.Second, "30000", 30 * time.Second},
		{-time.Second, "", 0},
	}
	for _, c := range cases {
		r := tasks.ExecRequest{ID: "x", Cmd: []string{"true"}, Timeout: c.timeout}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil {
			t.Fatal(err)
		}
		if got := string(fields["timeoutMs"]); got != c.wantMs {
			t.Errorf("timeout %s: timeoutMs %q, want %q", c.timeout, got, c.wantMs)
		}
		var back tasks.ExecRequest
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Timeout != c.back {
			t.Errorf("timeout %s came back as %s, want %s", c.timeout, back.Timeout, c.back)
		}
	}
}

func TestDecodeRequestFromAnotherLanguage(t *testing.T) {
	t.Parallel()
	payload := `{"id":"py-1","cmd":["python3","main.py"],"timeoutMs":2500,
		"files":[{"path":"main.py","content":"cHJpbnQoMSkK","mode":"0755"},{"path":"data","content":"","mode":420}],
		"unknownField":true}`
	r, err := tasks.DecodeRequest([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if r.Timeout != 2500*time.Millisecond || r.ID != "py-1" || len(r.Files) != 2 {
		t.Fatalf("decoded %+v", r)
	}
	if string(r.Files[0].Content) != "print(1)\n" || r.Files[0].Mode != 0o755 || r.Files[1].Mode != 0o644 {
		t.Errorf("files %+v", r.Files)
	}
}

func TestDecodeRequestErrorsAreValidationErrors(t *testing.T) {
	t.Parallel()
	payloads := []string{
		``,
		`{not json`,
		`[]`,
		`{"id":"a","cmd":"echo"}`,
		`{"id":"a","cmd":["x"],"timeoutMs":"5"}`,
		`{"id":"a","cmd":["x"],"timeoutMs":1.5}`,
		`{"id":"a","cmd":["x"],"files":[{"path":"f","mode":"0999"}]}`,
		`{"id":"a","cmd":["x"],"files":[{"path":"f","mode":-1}]}`,
		`{"id":"a","cmd":["x"],"files":[{"path":"f","content":"!!not base64"}]}`,
	}
	for _, p := range payloads {
		r, err := tasks.DecodeRequest([]byte(p))
		var ve *tasks.ValidationError
		if !errors.As(err, &ve) || r != nil {
			t.Errorf("DecodeRequest(%q) = %v, %v (%T); want nil and a *tasks.ValidationError", p, r, err, err)
			continue
		}
		if !strings.Contains(err.Error(), "not a valid execution request") {
			t.Errorf("DecodeRequest(%q) error %q does not say what is wrong", p, err)
		}
	}
}

// A timeoutMs whose nanoseconds overflow int64 must not turn into some
// other, valid-looking timeout.
func TestDecodeRequestHugeTimeoutIsNotAcceptedAsAnother(t *testing.T) {
	t.Parallel()
	// (2^58 + 760) ms: times 1e6 it wraps around 2^64 to exactly 760ms.
	r, err := tasks.DecodeRequest([]byte(`{"id":"a","cmd":["x"],"timeoutMs":288230376151712504}`))
	if err != nil {
		return // refused while decoding: fine
	}
	if err := r.Validate(tasks.Limits{}, 100); err == nil {
		t.Errorf("timeoutMs 288230376151712504 was accepted as a timeout of %s", r.Timeout)
	}
}

func TestFileModeJSON(t *testing.T) {
	t.Parallel()
	decode := []struct {
		in   string
		want tasks.FileMode
		ok   bool
	}{
		{`"0755"`, 0o755, true},
		{`"755"`, 0o755, true},
		{`"0644"`, 0o644, true},
		{`"0"`, 0, true},
		{`493`, 0o755, true},
		{`420`, 0o644, true},
		{`0`, 0, true},
		{`"0o755"`, 0, false},
		{`"rwx"`, 0, false},
		{`"0999"`, 0, false},
		{`""`, 0, false},
		{`"77777777777"`, 0, false}, // above 32 bits
		{`-1`, 0, false},
		{`1.5`, 0, false},
		{`true`, 0, false},
	}
	for _, c := range decode {
		var m tasks.FileMode
		err := json.Unmarshal([]byte(c.in), &m)
		if (err == nil) != c.ok || (c.ok && m != c.want) {
			t.Errorf("decode %s = %04o, %v; want %04o ok=%v", c.in, uint32(m), err, uint32(c.want), c.ok)
		}
	}
	encode := map[tasks.FileMode]string{0o755: `"0755"`, 0o644: `"0644"`, 0: `"0000"`, 0o7: `"0007"`}
	for m, want := range encode {
		b, err := json.Marshal(m)
		if err != nil || string(b) != want {
			t.Errorf("encode %o = %s, %v; want %s", uint32(m), b, err, want)
		}
		var back tasks.FileMode
		if err := json.Unmarshal(b, &back); err != nil || back != m {
			t.Errorf("%s came back as %o, %v", b, uint32(back), err)
		}
	}
}

// JSON null is how many languages say "not set"; by encoding/json's
// convention an Unmarshaler treats it as a no-op.
func TestFileModeNullIsTheDefault(t *testing.T) {
	t.Parallel()
	r, err := tasks.DecodeRequest([]byte(`{"id":"a","cmd":["x"],"files":[{"path":"f","mode":null}]}`))
	if err != nil {
		t.Fatalf(`"mode": null: %v`, err)
	}
	if r.Files[0].Mode != 0 {
		t.Errorf(`"mode": null decoded as %o, want 0 (the default)`, uint32(r.Files[0].Mode))
	}
}

func TestDecodeRequestStrict(t *testing.T) {
	t.Parallel()
	r, err := tasks.DecodeRequestStrict([]byte(`{"id":"a","cmd":["cat"],"stdin":"eA==","timeoutMs":20,"owner":"o","files":[{"path":"f","content":"eQ==","mode":"0700"}]}`))
	if err != nil || string(r.Stdin) != "x" || r.Timeout != 20*time.Millisecond || r.Owner != "o" || string(r.Files[0].Content) != "y" || r.Files[0].Mode != 0o700 {
		t.Fatalf("DecodeRequestStrict = %+v, %v", r, err)
	}
	for _, bad := range []string{
		`{"cmd":["cat"],"extra":1}`,
		`{"cmd":["cat"],"files":[{"path":"f","extra":1}]}`,
		`{"cmd":["cat"]} {"cmd":["ls"]}`,
		`{"cmd":["cat"],"stdin":{"storedBytes":1,"sha256":"00"}}`,
		`{"cmd":["cat"],"files":[{"path":"f","content":{"storedBytes":1,"sha256":"00"}}]}`,
		`{"cmd":["cat"],"timeoutMs":9223372036854775807}`,
	} {
		if r, err := tasks.DecodeRequestStrict([]byte(bad)); err == nil {
			t.Errorf("DecodeRequestStrict(%s) = %+v, want an error", bad, r)
		}
	}
}
