//go:build chaos

package chaos_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// programCase is a real program of a catalogue language, sent as a
// language and its code, that must end as want says; each is followed by
// a check, in the same language's image, that its sandbox was left
// clean, and by the usual follow-up in the default image.
type programCase struct {
	name   string
	req    tasks.ExecRequest
	status tasks.Status
	code   int
	step   tasks.Step
	check  func(t *testing.T, res *tasks.Result)
	// slack is added to the timeout's bound (see c_fork_bomb).
	slack time.Duration
	// gvisorStatus is a status the case may also end with under gVisor,
	// whatever its exit code.
	gvisorStatus tasks.Status
}

// langCleanScript reports what a language's image sandbox holds that a
// fresh one would not: entries in its writable directories and processes
// of its user. It uses POSIX sh only (the images' sh is dash).
const langCleanScript = `
for d in /workspace /tmp /dev/shm; do
	for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do
		[ -e "$f" ] || [ -L "$f" ] || continue
		echo "left: $f"
	done
done
` + testutil.LeftoverScript + `
echo clean
`

// needLanguageImages fails in CI, and skips elsewhere, when the language
// images are missing.
func needLanguageImages(t *testing.T, e *env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, image := range []string{"execq-python:latest", "execq-node:latest", "execq-c:latest"} {
		if _, err := e.docker.ImageInspect(ctx, image); err != nil {
			if !errdefs.IsNotFound(err) {
				t.Fatalf("inspect %s: %v", image, err)
			}
			testutil.Missing(t, "%s is missing: make language-images builds it", image)
		}
	}
}

func TestLanguagePrograms(t *testing.T) {
	e := newEnv(t)
	needLanguageImages(t, e)
	w := startWorker(t, e, workerOpts{label: "languages", poolSize: 4, args: []string{"--warm", "python=1,node=1,c=1,default=1"}})
	stderrHas := func(parts ...string) func(t *testing.T, res *tasks.Result) {
		return func(t *testing.T, res *tasks.Result) {
			for _, p := range parts {
				if !strings.Contains(res.Stderr, p) {
					t.Errorf("stderr %q, want it to hold %q", clip(res.Stderr), p)
				}
			}
		}
	}
	cases := []programCase{
		{name: "python_exception", req: tasks.ExecRequest{Language: "python", Code: "raise RuntimeError('from python')\n"},
			status: tasks.StatusFailed, code: 1, step: tasks.StepRun, check: stderrHas("Traceback (most recent call last):", "RuntimeError: from python")},
		{name: "python_sys_exit_3", req: tasks.ExecRequest{Language: "python", Code: "import sys\nprint('leaving')\nsys.exit(3)\n"},
			status: tasks.StatusFailed, code: 3, step: tasks.StepRun},
		{name: "python_stdin_lines", req: tasks.ExecRequest{Language: "python", Stdin: []byte("a\nbb\nccc\n"),
			Code: "import sys\nfor n, line in enumerate(sys.stdin, 1):\n    print(n, len(line.strip()))\n"},
			status: tasks.StatusSucceeded, step: tasks.StepRun, check: func(t *testing.T, res *tasks.Result) {
				if res.Stdout != "1 1\n2 2\n3 3\n" {
					t.Errorf("stdout %q", res.Stdout)
				}
			}},
		{name: "python_busy_loop", req: tasks.ExecRequest{Language: "python", Code: "while True: pass\n", Timeout: 2 * time.Second},
			status: tasks.StatusTimedOut, code: -1, step: tasks.StepRun},
		{name: "python_memory_hog", req: tasks.ExecRequest{Language: "python", Code: "hog = []\nwhile True:\n    hog.append(b'x' * (16 << 20))\n", MemoryBytes: 64 << 20, Timeout: 30 * time.Second},
			status: tasks.StatusOOMKilled, code: 137, step: tasks.StepRun},
		{name: "node_exception", req: tasks.ExecRequest{Language: "node", Code: "throw new TypeError('from node');\n"},
			status: tasks.StatusFailed, code: 1, step: tasks.StepRun, check: stderrHas("TypeError: from node")},
		{name: "c_segfault", req: tasks.ExecRequest{Language: "c", Code: "#include <stdio.h>\nint main(void) {\n\tputs(\"about to fault\");\n\tvolatile char *p = 0;\n\treturn *p;\n}\n"},
			status: tasks.StatusFailed, code: 139, step: tasks.StepRun, check: func(t *testing.T, res *tasks.Result) {
				if res.Stdout != "about to fault\n" {
					t.Errorf("stdout %q: the line before the fault is lost", res.Stdout)
				}
			}},
		{name: "c_compile_error", req: tasks.ExecRequest{Language: "c", Code: "int main(void) { return missing(; }\n"},
			status: tasks.StatusFailed, code: 1, step: tasks.StepCompile, check: stderrHas("main.c:1:", "error:")},
		// Its processes spin on fork() at the process limit: they take the
		// container's one CPU from what kills them (the agent, or the
		// docker-exec runtime's helper), so the kill takes seconds
		// (measured: 1.8 to 5 s past the timeout on the agent runtime, 8 to
		// 15 s on docker-exec). The bound says so instead of hiding it; a
		// shell's fork bomb (hostile) ends within 1 s.
		{name: "c_fork_bomb", req: tasks.ExecRequest{Language: "c", Code: "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n", Timeout: 3 * time.Second},
			// Under gVisor, as for the shell's fork bomb (hostile), the
			// processes may take the sandbox past its memory limit first.
			status: tasks.StatusTimedOut, code: -1, step: tasks.StepRun, slack: forkBombSlack(), gvisorStatus: tasks.StatusOOMKilled},
		{name: "pytest_report", req: tasks.ExecRequest{Language: "python",
			Files:   []tasks.File{{Path: "tests/test_it.py", Content: []byte("def test_one():\n    assert 1 + 1 == 2\n\ndef test_two():\n    assert 'a' in 'abc'\n")}},
			Cmd:     []string{"pytest", "-q", "-p", "no:cacheprovider", "--junitxml=report.xml", "tests"},
			Collect: []string{"report.xml"}},
			status: tasks.StatusSucceeded, step: tasks.StepRun, check: func(t *testing.T, res *tasks.Result) {
				if len(res.Files) != 1 || !strings.Contains(string(res.Files[0].Content), `tests="2"`) {
					t.Errorf("collected %d files; want report.xml with 2 tests", len(res.Files))
				}
			}},
	}
	for _, pc := range cases {
		t.Run(pc.name, func(t *testing.T) {
			c := track(t, "language", false)
			if pc.req.Timeout == 0 {
				pc.req.Timeout = 30 * time.Second
			}
			res, elapsed := e.run(t, pc.req)
			boundCheck(t, c, res, elapsed, pc.req.Timeout+pc.slack)
			ended := res.Status == pc.status && res.ExitCode == pc.code ||
				gvisor() && pc.gvisorStatus != "" && res.Status == pc.gvisorStatus
			if !ended || res.Step != pc.step || res.Attempt != 1 {
				t.Errorf("status %s exit %d step %q attempt %d error %q stderr %q; want %s %d step %q at the first attempt",
					res.Status, res.ExitCode, res.Step, res.Attempt, res.Error, clip(res.Stderr), pc.status, pc.code, pc.step)
			}
			if pc.check != nil {
				pc.check(t, res)
			}
			// The same language's image next, on a container the reset
			// cleaned (or a new one after a kill).
			next, _ := e.run(t, tasks.ExecRequest{Language: pc.req.Language, Cmd: sh(langCleanScript), Timeout: 20 * time.Second})
			if next.Status != tasks.StatusSucceeded || next.Stdout != "clean\n" {
				t.Errorf("the next %s execution sees: status %s stdout %q stderr %q", pc.req.Language, next.Status, next.Stdout, next.Stderr)
			}
			e.followUp(t, c, "", w.name)
			w.settle(t, e.docker, 4, settleTime())
		})
	}
}

// TestLanguageLiveOutput: a program's first line reaches the stream while
// it still runs, in each language; the execution is then canceled.
func TestLanguageLiveOutput(t *testing.T) {
	e := newEnv(t)
	needLanguageImages(t, e)
	w := startWorker(t, e, workerOpts{label: "live", poolSize: 3, args: []string{"--warm", "python=1,node=1,c=1"}})
	programs := []struct{ lang, code string }{
		{"python", "import time\nprint('first')\ntime.sleep(3600)\n"},
		{"node", "console.log('first');\nsetTimeout(() => {}, 3600e3);\n"},
		{"c", "#include <stdio.h>\n#include <unistd.h>\nint main(void) {\n\tputs(\"first\");\n\tsleep(3600);\n\treturn 0;\n}\n"},
	}
	for _, p := range programs {
		t.Run(p.lang, func(t *testing.T) {
			c := track(t, "language", false)
			start := time.Now()
			id := e.submit(t, tasks.ExecRequest{Language: p.lang, Code: p.code, Timeout: time.Minute})
			var out strings.Builder
			e.waitEvent(t, id, time.Minute, func(ev tasks.Event) bool {
				if ev.Type == tasks.EventExit {
					t.Fatalf("%s ended before its first line came: %s", p.lang, ev.Data)
				}
				if ev.Type == tasks.EventStdout {
					out.Write(ev.Data)
				}
				return out.String() == "first\n"
			})
			c.figure(t, "first line on the stream %s after Submit, while the program runs", time.Since(start).Round(time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := e.prod.Cancel(ctx, id); err != nil {
				t.Fatalf("cancel: %v", err)
			}
			if res := e.wait(t, id, time.Minute); res.Status != tasks.StatusCanceled || res.Stdout != "first\n" {
				t.Errorf("status %s stdout %q; want canceled with its first line", res.Status, res.Stdout)
			}
			w.settle(t, e.docker, 3, 20*time.Second)
		})
	}
}

// forkBombSlack is what c_fork_bomb's kill may take past its timeout: see
// the case.
// settleTime is how long a worker's pool may take to be back to its size
// after a case: under gVisor, removing a container whose sandbox a fork
// bomb filled takes longer.
func settleTime() time.Duration {
	if gvisor() {
		return time.Minute
	}
	return 20 * time.Second
}

func forkBombSlack() time.Duration {
	if sandboxRuntime == "docker-exec" {
		return 20 * time.Second
	}
	return 6 * time.Second
}

// TestLanguageCatalogueIsTheOperators: a catalogue file decides what a
// worker's languages run, and cannot widen its allow-list: a worker whose
// catalogue names an image it does not allow refuses to start, and one
// with a catalogue of its own knows only that catalogue's languages.
func TestLanguageCatalogueIsTheOperators(t *testing.T) {
	needBinary(t)
	e := newEnv(t)
	dir := t.TempDir()
	write := func(name, json string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(json), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	private := "execq-chaos-private-" + runID + ":latest"
	dockerRun(t, "", "tag", testImage, private)
	t.Cleanup(func() { _, _ = dockerOutput("", "rmi", "-f", private) })

	t.Run("image_off_the_allow_list", func(t *testing.T) {
		c := track(t, "images", false)
		file := write("private.json", `{"languages": [{"name": "priv", "image": "`+private+`", "file": "main.sh", "run": ["sh", "main.sh"]}]}`)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, execqBin, "worker", "--redis", e.url, "--name", ownerPrefix()+"catalogue", "--languages", file)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "language priv: image \""+private+"\" is not on this worker's allow-list") {
			t.Errorf("worker with a catalogue naming an image it does not allow: %v\n%s", err, clip(string(out)))
		}
		if n := removeOwned(e.docker, ownerPrefix()+"catalogue"); n > 0 {
			t.Errorf("the refused worker left %d containers", n)
		}
		c.figure(t, "refused to start: %s", clip(strings.TrimSpace(string(out))))
	})
	t.Run("only_its_languages", func(t *testing.T) {
		c := track(t, "images", false)
		file := write("own.json", `{"languages": [{"name": "shell", "image": "`+testImage+`", "file": "run.sh", "run": ["sh", "run.sh"], "env": {"FROM_CATALOGUE": "yes"}}]}`)
		w := startWorker(t, e, workerOpts{label: "catalogue", poolSize: 1, args: []string{"--languages", file}})
		res, _ := e.run(t, tasks.ExecRequest{Language: "python", Code: "print(1)"})
		if res.Status != tasks.StatusRejected || !strings.Contains(res.Error, "known: shell") {
			t.Errorf("python on a worker whose catalogue has none: %s %q; want rejected, knowing shell only", res.Status, res.Error)
		}
		res, _ = e.run(t, tasks.ExecRequest{Language: "shell", Code: "echo \"$FROM_CATALOGUE $0\""})
		if res.Status != tasks.StatusSucceeded || res.Stdout != "yes run.sh\n" || res.Image != testImage {
			t.Errorf("the catalogue's language: %s %q %q image %s", res.Status, res.Stdout, res.Error, res.Image)
		}
		c.figure(t, "python %s; shell %s", "rejected", res.Status)
		e.followUp(t, c, "", w.name)
	})
}
