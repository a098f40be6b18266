package tasks_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
)

// goldenRequest and its payload and digest as execq wrote them before
// inputs could be stored beside a task: a small request's wire form, and
// the digest an ID is bound to, must not change.
func goldenRequest() tasks.ExecRequest {
	return tasks.ExecRequest{
		ID: "golden-1", Queue: "q", Image: "img:1", Cmd: []string{"sh", "-c", "cat <in && echo \u2028>out"},
		Env:   map[string]string{"A": "b"},
		Files: []tasks.File{{Path: "a.sh", Content: []byte("echo hi\n"), Mode: 0o755}, {Path: "empty"}},
		Stdin: []byte("in\x00put"), WorkDir: "a", Timeout: 1500 * time.Millisecond, MemoryBytes: 64 << 20,
		Collect: []string{"**"}, SubmittedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	}
}

const (
	goldenPayload = `{"id":"golden-1","queue":"q","image":"img:1","cmd":["sh","-c","cat \u003cin \u0026\u0026 echo \u2028\u003eout"],"env":{"A":"b"},"files":[{"path":"a.sh","content":"ZWNobyBoaQo=","mode":"0755"},{"path":"empty","content":null}],"stdin":"aW4AcHV0","workdir":"a","memoryBytes":67108864,"collect":["**"],"submittedAt":"2026-01-02T03:04:05.000000006Z","timeoutMs":1500}`
	goldenDigest  = "0515291ec0b915f387bb1137eb9e14500ba38fb7ff6b294bf33bd7bc513d41d8"
)

func TestSmallRequestsAreUnchangedOnTheWire(t *testing.T) {
	t.Parallel()
	r := goldenRequest()
	wire, stored := r.StoreBeside()
	if stored != nil || !reflect.DeepEqual(wire, r) {
		t.Fatalf("StoreBeside of a small request = %+v, %v; want it unchanged and nothing stored", wire, stored)
	}
	b, err := tasks.EncodeRequest(&wire)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != goldenPayload {
		t.Errorf("payload\n %s\nwant\n %s", b, goldenPayload)
	}
	if viaMarshal, _ := json.Marshal(wire); string(viaMarshal) != goldenPayload {
		t.Errorf("json.Marshal writes\n %s\nwant\n %s", viaMarshal, goldenPayload)
	}
	if d, err := r.Digest(); err != nil || d != goldenDigest {
		t.Errorf("digest %s, %v; want %s", d, err, goldenDigest)
	}
}

func TestStoreBesideMovesTheLargestInputsUntilTheRestFits(t *testing.T) {
	t.Parallel()
	stdin := bytes.Repeat([]byte("s"), 100<<10)
	r := tasks.ExecRequest{ID: "x", Cmd: []string{"cat"}, Stdin: stdin, Files: []tasks.File{
		{Path: "small", Content: bytes.Repeat([]byte("a"), 10<<10)},
		{Path: "mid", Content: bytes.Repeat([]byte("b"), 60<<10)},
		{Path: "empty"},
		{Path: "tiny", Content: []byte("c")},
	}}
	wire, stored := r.StoreBeside()
	if len(stored) != 2 || !bytes.Equal(stored[tasks.StdinField], stdin) || !bytes.Equal(stored[tasks.FileField(1)], r.Files[1].Content) {
		t.Fatalf("stored %d inputs (%v); want stdin and files[1]", len(stored), keysOf(stored))
	}
	if wire.Stdin != nil || wire.StdinStored == nil || wire.StdinStored.Bytes != 100<<10 {
		t.Errorf("stdin on the wire: %d bytes inline, reference %+v", len(wire.Stdin), wire.StdinStored)
	}
	if wire.Files[1].Content != nil || wire.Files[1].Stored == nil {
		t.Errorf("files[1] on the wire: %d bytes inline, reference %+v", len(wire.Files[1].Content), wire.Files[1].Stored)
	}
	for _, i := range []int{0, 3} {
		if wire.Files[i].Stored != nil || !bytes.Equal(wire.Files[i].Content, r.Files[i].Content) {
			t.Errorf("files[%d] was stored beside though what stays inline fits", i)
		}
	}
	if r.StdinStored != nil || r.Files[1].Stored != nil || len(r.Files[1].Content) != 60<<10 {
		t.Error("StoreBeside changed the request it was given")
	}
	refs := wire.StoredInputs()
	if len(refs) != 2 || refs[0].Field != tasks.StdinField || refs[1].Field != "files/1" || refs[1].Name != "files[1] (mid)" {
		t.Errorf("StoredInputs = %+v", refs)
	}

	b, err := tasks.EncodeRequest(&wire)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 2*tasks.InlineInputBytes {
		t.Errorf("payload is %d bytes with 170 KiB of inputs stored beside", len(b))
	}
	back, err := tasks.DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*back, wire) {
		t.Errorf("round trip changed the request:\n got %+v\nwant %+v", *back, wire)
	}
	if err := back.Check(); err != nil {
		t.Errorf("a request with references fails Check: %v", err)
	}
	if err := back.RestoreInputs(stored); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*back, r) {
		t.Error("the restored request differs from the one submitted")
	}
}

func keysOf(m map[string][]byte) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func TestAReferenceTakesThePlaceOfTheBytes(t *testing.T) {
	t.Parallel()
	r := tasks.ExecRequest{ID: "x", Cmd: []string{"cat"}, Stdin: bytes.Repeat([]byte{0}, 70<<10),
		Files: []tasks.File{{Path: "f", Content: bytes.Repeat([]byte{1}, 70<<10), Mode: 0o600}}}
	wire, _ := r.StoreBeside()
	b, err := tasks.EncodeRequest(&wire)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Stdin map[string]any `json:"stdin"`
		Files []struct {
			Content map[string]any `json:"content"`
			Mode    string         `json:"mode"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("payload %s: %v", b, err)
	}
	sum := sha256.Sum256(r.Stdin)
	if raw.Stdin["storedBytes"] != float64(70<<10) || raw.Stdin["sha256"] != hex.EncodeToString(sum[:]) || len(raw.Stdin) != 2 {
		t.Errorf("stdin on the wire: %v", raw.Stdin)
	}
	if len(raw.Files) != 1 || raw.Files[0].Content["storedBytes"] != float64(70<<10) || raw.Files[0].Mode != "0600" {
		t.Errorf("files on the wire: %+v", raw.Files)
	}

	// A worker that predates references fails to decode the payload, and
	// so rejects it, rather than running the command without its input.
	var old struct {
		Stdin []byte `json:"stdin"`
		Files []struct {
			Content []byte `json:"content"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &old); err == nil {
		t.Error("a decoder without references reads the payload")
	}
}

func TestRestoreInputsChecksEveryInput(t *testing.T) {
	t.Parallel()
	r := tasks.ExecRequest{ID: "x", Cmd: []string{"cat"}, Stdin: bytes.Repeat([]byte("i"), 100<<10),
		Files: []tasks.File{{Path: "data/big.bin", Content: bytes.Repeat([]byte("f"), 100<<10)}}}
	wire, stored := r.StoreBeside()
	if len(stored) != 2 {
		t.Fatalf("stored %d inputs", len(stored))
	}
	cases := []struct {
		name     string
		contents map[string][]byte
		missing  []string
		mismatch []string
		message  []string
	}{
		{"none", nil, []string{"stdin", "files/0"}, nil,
			[]string{"inputs stdin (102400 bytes) and files[0] (data/big.bin) (102400 bytes)", "are missing", "expired", "deleted", "nothing ran"}},
		{"no stdin", map[string][]byte{"files/0": stored["files/0"]}, []string{"stdin"}, nil,
			[]string{"input stdin (102400 bytes) stored beside the task is missing"}},
		{"short", map[string][]byte{"stdin": stored["stdin"][1:], "files/0": stored["files/0"]}, nil, []string{"stdin"},
			[]string{"not what the request's reference says"}},
		{"same size, other bytes", map[string][]byte{"stdin": stored["stdin"], "files/0": bytes.Repeat([]byte("g"), 100<<10)}, nil, []string{"files/0"},
			[]string{"files[0] (data/big.bin)"}},
	}
	for _, c := range cases {
		req := wire
		err := req.RestoreInputs(c.contents)
		var ie *tasks.InputError
		if !errors.As(err, &ie) {
			t.Fatalf("%s: %v, want an *InputError", c.name, err)
		}
		if got := fields(ie.Missing); !reflect.DeepEqual(got, c.missing) {
			t.Errorf("%s: missing %v, want %v", c.name, got, c.missing)
		}
		if got := fields(ie.Mismatched); !reflect.DeepEqual(got, c.mismatch) {
			t.Errorf("%s: mismatched %v, want %v", c.name, got, c.mismatch)
		}
		for _, want := range c.message {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q does not say %q", c.name, err, want)
			}
		}
		if !reflect.DeepEqual(req, wire) {
			t.Errorf("%s: a failed restore changed the request", c.name)
		}
	}
}

func fields(refs []tasks.StoredRef) []string {
	var out []string
	for _, ref := range refs {
		out = append(out, ref.Field)
	}
	return out
}

func TestMalformedReferencesAreRefused(t *testing.T) {
	t.Parallel()
	const sum = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	checks := []struct {
		req  tasks.ExecRequest
		want string
	}{
		{tasks.ExecRequest{ID: "x", Cmd: []string{"cat"}, StdinStored: &tasks.StoredInput{Bytes: -1, SHA256: sum}}, "stdin is stored beside the task with -1 bytes"},
		{tasks.ExecRequest{ID: "x", Cmd: []string{"cat"}, StdinStored: &tasks.StoredInput{Bytes: 1 << 40, SHA256: sum}}, "a stored input holds 0 to"},
		{tasks.ExecRequest{ID: "x", Cmd: []string{"cat"}, StdinStored: &tasks.StoredInput{Bytes: 1, SHA256: "ABC"}}, "not 64 lowercase hex digits"},
		{tasks.ExecRequest{ID: "x", Cmd: []string{"cat"}, Stdin: []byte("a"), StdinStored: &tasks.StoredInput{Bytes: 1, SHA256: sum}}, "stdin is given both inline and stored"},
		{tasks.ExecRequest{ID: "x", Cmd: []string{"cat"}, Files: []tasks.File{{Path: "f", Stored: &tasks.StoredInput{Bytes: 1, SHA256: strings.ToUpper(sum)}}}}, "files[0].content is stored beside the task with the SHA-256"},
	}
	for _, c := range checks {
		err := c.req.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%+v) = %v, want %q", c.req, err, c.want)
		}
	}
	for _, payload := range []string{
		`{"id":"x","cmd":["cat"],"stdin":{"storedBytes":1,"sha256":"` + sum + `","compression":"zstd"}}`,
		`{"id":"x","cmd":["cat"],"stdin":{"storedBytes":"1"}}`,
		`{"id":"x","cmd":["cat"],"files":[{"path":"f","content":{"bytes":1}}]}`,
		`{"id":"x","cmd":["cat"],"stdin":17}`,
	} {
		if _, err := tasks.DecodeRequest([]byte(payload)); err == nil {
			t.Errorf("DecodeRequest(%s) succeeded", payload)
		}
	}
}

func TestLimitsApplyToTheStoredSizes(t *testing.T) {
	t.Parallel()
	limits := tasks.Limits{MaxPayloadBytes: 200 << 10}
	for _, c := range []struct {
		stdin int
		ok    bool
	}{{100 << 10, true}, {140 << 10, true}, {160 << 10, false}} {
		r := tasks.ExecRequest{ID: "x", Cmd: []string{"cat"}, Stdin: bytes.Repeat([]byte("x"), c.stdin)}
		inline, err := tasks.EncodeRequest(&r)
		if err != nil {
			t.Fatal(err)
		}
		wire, _ := r.StoreBeside()
		payload, err := tasks.EncodeRequest(&wire)
		if err != nil {
			t.Fatal(err)
		}
		inlineErr, storedErr := r.Validate(limits, len(inline)), wire.Validate(limits, len(payload))
		if (storedErr == nil) != c.ok || (inlineErr == nil) != c.ok {
			t.Errorf("%d bytes of stdin: inline %v, stored beside %v; want accepted %v either way", c.stdin, inlineErr, storedErr, c.ok)
		}
		if storedErr != nil && !strings.Contains(storedErr.Error(), "with its inputs stored beside the task") {
			t.Errorf("%d bytes of stdin: %v does not say the stored inputs count", c.stdin, storedErr)
		}
	}
}
