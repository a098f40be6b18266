package worker_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

func TestUnitInputsStoredBesideRoundTrip(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	stdin := bytes.Repeat([]byte{'i', 0, 0xff}, 1<<20)
	file := bytes.Repeat([]byte{'f', 0xfe}, 512<<10)
	res := b.exec(t, tasks.ExecRequest{
		Cmd:            []string{"cat"},
		Stdin:          stdin,
		Files:          []tasks.File{{Path: "data/big.bin", Content: file, Mode: 0o600}, {Path: "small", Content: []byte("s")}},
		Collect:        []string{"data/*"},
		MaxOutputBytes: 4 << 20,
	})
	if res.Status != tasks.StatusSucceeded {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	if res.Stdout != string(stdin) {
		t.Errorf("stdout is %d bytes, not the %d of stdin byte for byte", len(res.Stdout), len(stdin))
	}
	if len(res.Files) != 1 || !bytes.Equal(res.Files[0].Content, file) || res.Files[0].Mode != 0o600 {
		t.Errorf("collected %d files, not the stored one byte for byte", len(res.Files))
	}
	if b.mr.Exists(tasks.Keys{}.Input(res.ExecutionID)) {
		t.Error("the stored inputs outlive the result")
	}
}

func TestUnitMissingOrWrongStoredInputs(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{})
	req := tasks.ExecRequest{Cmd: []string{"cat"}, Stdin: bytes.Repeat([]byte("x"), 100<<10),
		Files: []tasks.File{{Path: "big", Content: bytes.Repeat([]byte("y"), 100<<10)}}}
	cases := []struct {
		name   string
		stored func(inputs map[string][]byte) map[string][]byte
		want   []string
	}{
		{"missing", func(map[string][]byte) map[string][]byte { return nil },
			[]string{"inputs stdin (102400 bytes) and files[0] (big) (102400 bytes) stored beside the task are missing", "expired", "deleted"}},
		{"one missing", func(in map[string][]byte) map[string][]byte {
			return map[string][]byte{tasks.StdinField: in[tasks.StdinField]}
		}, []string{"input files[0] (big) (102400 bytes) stored beside the task is missing"}},
		{"other bytes", func(in map[string][]byte) map[string][]byte {
			return map[string][]byte{tasks.StdinField: bytes.ToUpper(in[tasks.StdinField]), tasks.FileField(0): in[tasks.FileField(0)]}
		}, []string{"input stdin (102400 bytes) stored beside the task is not what the request's reference says"}},
	}
	for _, c := range cases {
		id := "inputs-" + strings.ReplaceAll(c.name, " ", "-")
		r := req
		r.ID = id
		wire, inputs := r.StoreBeside()
		if stored := c.stored(inputs); stored != nil {
			if _, err := b.store.PutInputs(b.ctx, id, stored); err != nil {
				t.Fatal(err)
			}
		}
		payload, err := tasks.EncodeRequest(&wire)
		if err != nil {
			t.Fatal(err)
		}
		testutil.EnqueueRaw(t, b.redis, id, payload)
		res := b.wait(t, id)
		if res.Status != tasks.StatusError || res.Attempt != 0 || res.Stdout != "" {
			t.Errorf("%s: status %s, attempt %d, stdout %d bytes; want error before any attempt", c.name, res.Status, res.Attempt, len(res.Stdout))
		}
		for _, want := range c.want {
			if !strings.Contains(res.Error, want) {
				t.Errorf("%s: the result says %q, not %q", c.name, res.Error, want)
			}
		}
		if n := testutil.CountEvents(b.streamOf(t, id), tasks.EventStarted); n != 0 {
			t.Errorf("%s: started %d times", c.name, n)
		}
	}
}

func TestUnitLimitsApplyToTheStoredSizesBeforeTheRead(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{limits: tasks.Limits{MaxPayloadBytes: 1 << 20}})
	const id = "too-large"
	r := tasks.ExecRequest{ID: id, Cmd: []string{"cat"}, Stdin: make([]byte, 1<<20)}
	wire, _ := r.StoreBeside()
	payload, err := tasks.EncodeRequest(&wire)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is stored: a worker that read before checking would say
	// the input is missing.
	testutil.EnqueueRaw(t, b.redis, id, payload)
	res := b.wait(t, id)
	if res.Status != tasks.StatusRejected || !strings.Contains(res.Error, "with its inputs stored beside the task") {
		t.Errorf("status %s: %s; want rejected for the stored size", res.Status, res.Error)
	}
}
