package dashboard_test

import (
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/dashboard"
	"github.com/execq/execq/tasks"
)

func TestFormatPayload(t *testing.T) {
	t.Parallel()
	payload, err := tasks.EncodeRequest(&tasks.ExecRequest{
		ID: "e1", Image: "python:3.12-slim", Cmd: []string{"sh", "-c", "echo 'hi there'"},
		Timeout: 2 * time.Second, MemoryBytes: 64 << 20,
		Files:   []tasks.File{{Path: "main.py", Content: []byte("print(1)\n")}},
		Collect: []string{"out/*.png"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := dashboard.FormatPayload(tasks.TypeExec, payload)
	for _, want := range []string{
		"image:   python:3.12-slim",
		`command: sh -c 'echo '\''hi there'\'''`,
		"limits:  timeout 2s, memory 64.0 MiB",
		"files:   1 (9 B): main.py",
		"collect: out/*.png",
		"retries: execq's, 3 by default (5 attempts)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("payload shown as\n%s\nwithout %q", got, want)
		}
	}
	plain, err := tasks.EncodeRequest(&tasks.ExecRequest{ID: "e2", Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := dashboard.FormatPayload(tasks.TypeExec, plain); !strings.Contains(got, "limits:  timeout the worker's (30s by default)") {
		t.Errorf("a request without a timeout shown as\n%s", got)
	}
	large := tasks.ExecRequest{ID: "e3", Cmd: []string{"cat"}, Stdin: make([]byte, 5<<20),
		Files: []tasks.File{{Path: "small.txt", Content: []byte("hi")}, {Path: "big.bin", Content: make([]byte, 1<<20)}}}
	wire, _ := large.StoreBeside()
	beside, err := tasks.EncodeRequest(&wire)
	if err != nil {
		t.Fatal(err)
	}
	got = dashboard.FormatPayload(tasks.TypeExec, beside)
	for _, want := range []string{
		"stdin:   5.0 MiB, stored beside the task",
		"files:   2 (1.0 MiB, 1 of them (1.0 MiB) stored beside the task): small.txt, big.bin",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("a request with inputs stored beside shown as\n%s\nwithout %q", got, want)
		}
	}
	if got := dashboard.FormatPayload(tasks.TypeExec, []byte("{nope")); !strings.HasPrefix(got, "undecodable request: ") {
		t.Errorf("an undecodable payload shown as %q", got)
	}
	if got := dashboard.FormatPayload("other:type", []byte("raw text")); got != "raw text" {
		t.Errorf("another task type's payload shown as %q", got)
	}
}

func TestFormatResult(t *testing.T) {
	t.Parallel()
	body, err := tasks.EncodeResult(&tasks.Result{
		ExecutionID: "e1", Status: tasks.StatusFailed, ExitCode: 3, DurationMs: 45, Attempt: 1, Worker: "w1",
		Stdout: strings.Repeat("x", 1000), StdoutBytes: 5000, StdoutTruncated: true,
		Stderr: "\xff\xfe", StderrBytes: 2,
		Resources: &tasks.Resources{CPUTimeMs: 12, PeakMemoryBytes: 4 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	// asynqmon gives no task type on a task's own page: both must format.
	for _, typ := range []string{tasks.TypeExec, ""} {
		got := dashboard.FormatResult(typ, body)
		for _, want := range []string{
			"status:  failed (exit code 3) in 45 ms, attempt 1 on w1",
			"used:    12 ms cpu, 4.0 MiB peak memory",
			"stdout:  (4.9 KiB, truncated)",
			"stderr:  (2 B of binary output)",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("type %q: result shown as\n%s\nwithout %q", typ, got, want)
			}
		}
		if strings.Count(got, "x") > 400 {
			t.Errorf("type %q: the output head is not cut: %d bytes of it", typ, strings.Count(got, "x"))
		}
	}
	if got := dashboard.FormatResult("", []byte(`{"other":"json"}`)); got != `{"other":"json"}` {
		t.Errorf("another task's result without a type shown as %q", got)
	}
}

func TestFormatPayloadOfALanguage(t *testing.T) {
	t.Parallel()
	payload, err := tasks.EncodeRequest(&tasks.ExecRequest{ID: "e1", Language: "python", Code: "print(6*7)\n"})
	if err != nil {
		t.Fatal(err)
	}
	got := dashboard.FormatPayload(tasks.TypeExec, payload)
	for _, want := range []string{
		"image:   (the language's, in the worker's catalogue)",
		"language: python",
		"code:    11 B\n  print(6*7)",
		"command: the language's steps",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("payload shown as\n%s\nwithout %q", got, want)
		}
	}
	res, _ := tasks.EncodeResult(&tasks.Result{ExecutionID: "e1", Status: tasks.StatusFailed, ExitCode: 1, Step: tasks.StepCompile, Attempt: 1})
	if got := dashboard.FormatResult(tasks.TypeExec, res); !strings.Contains(got, "status:  failed (exit code 1) at the compile step") {
		t.Errorf("a compile step's failure shown as\n%s", got)
	}
}
