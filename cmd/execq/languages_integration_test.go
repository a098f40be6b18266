//go:build integration

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// The README's language command lines, on a real worker.
func TestLanguageCommandLines(t *testing.T) {
	t.Setenv("EXECQ_REDIS_URL", "")
	cli := testutil.Docker(t)
	ctx := testutil.Context(t, 10*time.Second)
	for _, image := range []string{"execq-python:latest", "execq-c:latest"} {
		if _, err := cli.ImageInspect(ctx, image); errdefs.IsNotFound(err) {
			testutil.Missing(t, "%s is missing: make language-images builds it", image)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	r := testutil.StartRedis(t)
	startWorker(t, r)
	url := r.URL
	dir := t.TempDir()
	main := filepath.Join(dir, "main.c")
	if err := os.WriteFile(main, []byte("#include <stdio.h>\nint main(void) { puts(\"hi from c\"); return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []exitCase{
		{[]string{"run", "--redis", url, "--lang", "python", "--code", "print(6*7)"}, 0, "42\n", ""},
		{[]string{"run", "--redis", url, "--lang", "c", "--file", main}, 0, "hi from c\n", ""},
		{[]string{"run", "--redis", url, "--lang", "c", "--file", main + ":prog.c"}, 125, "", "language c runs main.c: give its code, a file main.c, or a cmd"},
		{[]string{"run", "--redis", url, "--lang", "c", "--code", "int main(void) { return x; }"}, 1, "",
			"execq: the compile step ended failed (exit code 1); the program did not run"},
		{[]string{"run", "--redis", url, "--lang", "python", "--code", "import sys; sys.exit(3)"}, 3, "", ""},
		{[]string{"run", "--redis", url, "--lang", "cobol", "--code", "x"}, 125, "", `language "cobol" is not in this worker's catalogue; known: python, node, c, sh`},
	} {
		c.check(t)
	}
	id := strings.TrimSpace(exitCase{[]string{"submit", "--redis", url, "--lang", "c", "--code", "int main(void) { return x; }"}, 0, "*", ""}.check(t))
	out := exitCase{[]string{"result", "--redis", url, "--wait", "30s", id}, 0, "*", ""}.check(t)
	var res tasks.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("result: %v: %s", err, out)
	}
	if res.Status != tasks.StatusFailed || res.Step != tasks.StepCompile || !strings.Contains(res.Stderr, "'x' undeclared") {
		t.Errorf("submitted compile error: status %s step %q stderr %q", res.Status, res.Step, res.Stderr)
	}
}
