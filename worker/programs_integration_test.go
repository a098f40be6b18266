//go:build integration

package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// Real programs of the catalogue's languages, through a real worker on
// each runtime, most of them as a language and its code.

// requireLanguageImages skips (fails in CI) when the language images are
// missing.
func requireLanguageImages(t *testing.T) {
	t.Helper()
	cli := testutil.Docker(t)
	for _, image := range []string{"execq-python:latest", "execq-node:latest", "execq-c:latest"} {
		requireImage(t, cli, image)
	}
}

type programCase struct {
	name   string
	req    tasks.ExecRequest
	status tasks.Status
	code   int
	step   tasks.Step
	stdout string   // exact
	stderr []string // parts of stderr
}

func checkProgram(t *testing.T, c programCase, res *tasks.Result) {
	t.Helper()
	ok := res.Status == c.status && res.ExitCode == c.code && res.Step == c.step && res.Stdout == c.stdout
	for _, part := range c.stderr {
		ok = ok && strings.Contains(res.Stderr, part)
	}
	if len(c.stderr) == 0 {
		ok = ok && res.Stderr == ""
	}
	if !ok {
		t.Errorf("%s: status %s exit %d step %q stdout %q stderr %q error %q; want %s %d step %q stdout %q stderr with %q",
			c.name, res.Status, res.ExitCode, res.Step, res.Stdout, res.Stderr, res.Error, c.status, c.code, c.step, c.stdout, c.stderr)
	}
}

const (
	pyStdinUpper = "import sys\nfor line in sys.stdin:\n    print(line.rstrip('\\n').upper())\n"
	nodeStdin    = "const rl = require('readline').createInterface({input: process.stdin});\nrl.on('line', (l) => console.log(l.toUpperCase()));\n"
	cStdin       = "#include <stdio.h>\n#include <ctype.h>\nint main(void) {\n\tint c;\n\twhile ((c = getchar()) != EOF)\n\t\tputchar(toupper(c));\n\treturn 0;\n}\n"
	cSegfault    = "int main(void) {\n\tvolatile int *p = 0;\n\t*p = 1;\n\treturn 0;\n}\n"
	cBroken      = "int main(void) {\n\treturn undeclared;\n}\n"
)

func TestLanguagePrograms(t *testing.T) {
	requireLanguageImages(t)
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		cases := []programCase{
			{name: "python print", req: tasks.ExecRequest{Language: "python", Code: "print(6*7)"},
				status: tasks.StatusSucceeded, step: tasks.StepRun, stdout: "42\n"},
			{name: "python exception", req: tasks.ExecRequest{Language: "python", Code: "print('before')\nraise ValueError('boom')\n"},
				status: tasks.StatusFailed, code: 1, step: tasks.StepRun, stdout: "before\n",
				stderr: []string{"Traceback (most recent call last):", `File "/workspace/main.py", line 2`, "ValueError: boom"}},
			{name: "python sys.exit(3)", req: tasks.ExecRequest{Language: "python", Code: "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n"},
				status: tasks.StatusFailed, code: 3, step: tasks.StepRun, stdout: "out\n", stderr: []string{"err\n"}},
			{name: "python stdin line by line", req: tasks.ExecRequest{Language: "python", Code: pyStdinUpper, Stdin: []byte("one\ntwo\nthree")},
				status: tasks.StatusSucceeded, step: tasks.StepRun, stdout: "ONE\nTWO\nTHREE\n"},
			{name: "node exception", req: tasks.ExecRequest{Language: "node", Code: "console.log('before');\nthrow new Error('boom');\n"},
				status: tasks.StatusFailed, code: 1, step: tasks.StepRun, stdout: "before\n", stderr: []string{"Error: boom", "/workspace/main.js:2"}},
			{name: "node process.exit(3)", req: tasks.ExecRequest{Language: "node", Code: "console.log('out');\nconsole.error('err');\nprocess.exit(3);\n"},
				status: tasks.StatusFailed, code: 3, step: tasks.StepRun, stdout: "out\n", stderr: []string{"err\n"}},
			{name: "node stdin line by line", req: tasks.ExecRequest{Language: "node", Code: nodeStdin, Stdin: []byte("one\ntwo\n")},
				status: tasks.StatusSucceeded, step: tasks.StepRun, stdout: "ONE\nTWO\n"},
			{name: "c from a file, with stdin", req: tasks.ExecRequest{Language: "c", Files: []tasks.File{{Path: "main.c", Content: []byte(cStdin)}}, Stdin: []byte("one\ntwo\n")},
				status: tasks.StatusSucceeded, step: tasks.StepRun, stdout: "ONE\nTWO\n"},
			{name: "c segfault", req: tasks.ExecRequest{Language: "c", Code: cSegfault},
				status: tasks.StatusFailed, code: 139, step: tasks.StepRun},
			{name: "c compile error", req: tasks.ExecRequest{Language: "c", Code: cBroken, Stdin: []byte("never read\n")},
				status: tasks.StatusFailed, code: 1, step: tasks.StepCompile, stderr: []string{"main.c:2:16: error: 'undeclared' undeclared"}},
			{name: "sh", req: tasks.ExecRequest{Language: "sh", Code: "echo \"$0\"; exit 4"},
				status: tasks.StatusFailed, code: 4, step: tasks.StepRun, stdout: "main.sh\n"},
		}
		for _, c := range cases {
			c.req.Timeout = 30 * time.Second
			res := b.run(t, c.req)
			checkProgram(t, c, res)
			events := b.events(t, res.ExecutionID)
			exit, err := events[len(events)-1].Exit()
			if err != nil || exit.Step != c.step {
				t.Errorf("%s: exit event %+v, %v; want step %q", c.name, exit, err, c.step)
			}
			if got := streamed(events, tasks.EventStderr); got != res.Stderr {
				t.Errorf("%s: streamed stderr %q, result's %q", c.name, got, res.Stderr)
			}
		}
	})
}

func streamed(events []tasks.Event, typ tasks.EventType) string {
	var b strings.Builder
	for _, ev := range events {
		if ev.Type == typ {
			b.Write(ev.Data)
		}
	}
	return b.String()
}

// TestLiveOutputOfPrograms proves each language's output is live: a
// program writes a line and then waits for ever; the line arrives on the
// stream while it runs (the test then cancels it, which a program that
// had ended could not be).
func TestLiveOutputOfPrograms(t *testing.T) {
	requireLanguageImages(t)
	programs := []struct{ lang, code string }{
		{"python", "import time\nprint('first')\nwhile True:\n    time.sleep(1)\n"},
		{"node", "console.log('first');\nsetInterval(() => {}, 1000);\n"},
		{"c", "#include <stdio.h>\n#include <unistd.h>\nint main(void) {\n\tprintf(\"first\\n\");\n\tfor (;;)\n\t\tpause();\n}\n"},
	}
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		for _, p := range programs {
			ctx := testutil.Context(t, 2*time.Minute)
			id, err := b.producer.Submit(ctx, tasks.ExecRequest{Language: p.lang, Code: p.code, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			// Python's unbuffered print writes the line and its newline
			// apart: wait for both.
			var out strings.Builder
			for ev, err := range b.producer.Follow(ctx, id, "") {
				if err != nil {
					t.Fatalf("%s: follow: %v", p.lang, err)
				}
				if ev.Type == tasks.EventExit {
					t.Fatalf("%s: the program ended before its output came: %s", p.lang, ev.Data)
				}
				if ev.Type == tasks.EventStdout {
					out.Write(ev.Data)
				}
				if out.String() == "first\n" {
					break
				}
			}
			if err := b.producer.Cancel(ctx, id); err != nil {
				t.Fatalf("%s: cancel after the first output: %v (the program had ended: its output was not live)", p.lang, err)
			}
			res, err := b.producer.Wait(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tasks.StatusCanceled || res.Stdout != "first\n" {
				t.Errorf("%s: status %s stdout %q error %q; want canceled after its first line", p.lang, res.Status, res.Stdout, res.Error)
			}
		}
	})
}

func TestRunawayPythonPrograms(t *testing.T) {
	requireLanguageImages(t)
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		res := b.run(t, tasks.ExecRequest{Language: "python", Code: "while True: pass\n", Timeout: 2 * time.Second})
		if res.Status != tasks.StatusTimedOut || res.Step != tasks.StepRun {
			t.Errorf("busy loop: status %s step %q exit %d error %q; want timed_out", res.Status, res.Step, res.ExitCode, res.Error)
		}
		res = b.run(t, tasks.ExecRequest{Language: "python", Code: "hog = 'x' * (512 << 20)\nprint(len(hog))\n", MemoryBytes: 64 << 20, Timeout: 30 * time.Second})
		if res.Status != tasks.StatusOOMKilled || res.Stdout != "" {
			t.Errorf("memory hog: status %s exit %d stdout %q error %q; want oom_killed", res.Status, res.ExitCode, res.Stdout, res.Error)
		}
		// The compile step and the run step share one timeout.
		res = b.run(t, tasks.ExecRequest{Language: "c", Code: "int main(void) { for (;;) ; }\n", Timeout: 3 * time.Second})
		if res.Status != tasks.StatusTimedOut || res.Step != tasks.StepRun || res.DurationMs > 3500 {
			t.Errorf("c busy loop: status %s step %q duration %d ms error %q; want timed_out at the run step within the 3s of both steps",
				res.Status, res.Step, res.DurationMs, res.Error)
		}
		if res := b.run(t, tasks.ExecRequest{Language: "python", Code: "print('ok')"}); res.Status != tasks.StatusSucceeded {
			t.Errorf("after them: %s %s", res.Status, res.Error)
		}
	})
}

const pytestFile = `import math

def test_sqrt():
    assert math.isqrt(49) == 7

def test_floor():
    assert math.floor(2.5) == 2
`

// TestPytestReportIsCollected runs pytest on a test file given with
// Files, in the python language's image, and collects its JUnit report.
func TestPytestReportIsCollected(t *testing.T) {
	requireLanguageImages(t)
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		res := b.run(t, tasks.ExecRequest{
			Language: "python",
			Files:    []tasks.File{{Path: "test_math.py", Content: []byte(pytestFile)}},
			Cmd:      []string{"pytest", "-q", "-p", "no:cacheprovider", "--junitxml=report.xml", "test_math.py"},
			Collect:  []string{"report.xml"},
			Timeout:  time.Minute,
		})
		if res.Status != tasks.StatusSucceeded || !strings.Contains(res.Stdout, "2 passed") {
			t.Fatalf("pytest: status %s exit %d stdout %q stderr %q error %q", res.Status, res.ExitCode, res.Stdout, res.Stderr, res.Error)
		}
		if len(res.Files) != 1 || res.Files[0].Path != "report.xml" ||
			!strings.Contains(string(res.Files[0].Content), `tests="2"`) || !strings.Contains(string(res.Files[0].Content), `failures="0"`) {
			t.Errorf("collected %+v; want report.xml with 2 tests and no failure", res.Files)
		}
		failing := strings.Replace(pytestFile, "== 2", "== 3", 1)
		res = b.run(t, tasks.ExecRequest{
			Language: "python",
			Files:    []tasks.File{{Path: "test_math.py", Content: []byte(failing)}},
			Cmd:      []string{"pytest", "-q", "-p", "no:cacheprovider", "--junitxml=report.xml", "test_math.py"},
			Collect:  []string{"report.xml"},
			Timeout:  time.Minute,
		})
		if res.Status != tasks.StatusFailed || res.ExitCode != 1 || !strings.Contains(res.Stdout, "1 failed, 1 passed") ||
			len(res.Files) != 1 || !strings.Contains(string(res.Files[0].Content), `failures="1"`) {
			t.Errorf("failing pytest: status %s exit %d stdout %q files %d", res.Status, res.ExitCode, res.Stdout, len(res.Files))
		}
	})
}

// TestCompileStepLeavesNothingToTheNextTenant: what the compile step
// wrote (the binary in /tmp, the source in /workspace) is gone when the
// container serves its next execution.
func TestCompileStepLeavesNothingToTheNextTenant(t *testing.T) {
	requireLanguageImages(t)
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime, poolSize: 1})
		// The binary the compile step wrote is the sandbox user's, who runs it.
		first := b.run(t, tasks.ExecRequest{Language: "c", Code: cOwnBinary})
		if first.Status != tasks.StatusSucceeded || first.Stdout != "secret: binary of uid 1, uid 0 0\n" {
			t.Fatalf("first tenant: %s %q %q", first.Status, first.Stdout, first.Stderr)
		}
		// The shell's globs, not ls: gVisor refuses the statx of Debian's ls.
		next := b.run(t, tasks.ExecRequest{Language: "c", Cmd: []string{"sh", "-c", "echo /tmp/* /tmp/.[!.]* /workspace/* /workspace/.[!.]*; test ! -e /tmp/main"}})
		if next.Status != tasks.StatusSucceeded || next.Stdout != "/tmp/* /tmp/.[!.]* /workspace/* /workspace/.[!.]*\n" {
			t.Errorf("next tenant on the same container sees: status %s stdout %q stderr %q", next.Status, next.Stdout, next.Stderr)
		}
		if c1, c2 := containerOf(t, b, first.ExecutionID), containerOf(t, b, next.ExecutionID); c1 != c2 {
			t.Errorf("the two executions ran in containers %s and %s; want the same one", c1, c2)
		}
	})
}

// cOwnBinary says whether the binary it runs from is owned by the user
// running it, and whether that user is root.
const cOwnBinary = `#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
	struct stat st;
	if (stat("/tmp/main", &st) != 0)
		return 2;
	printf("secret: binary of uid %d, uid 0 %d\n", st.st_uid == getuid(), getuid() == 0);
	return 0;
}
`

func containerOf(t *testing.T, b *bundle, id string) string {
	t.Helper()
	for _, ev := range b.events(t, id) {
		if ev.Type == tasks.EventStarted {
			d, err := ev.Started()
			if err != nil {
				t.Fatal(err)
			}
			return d.Container
		}
	}
	t.Fatalf("%s has no started event", id)
	return ""
}

// TestWarmPoolsPerImage: a worker keeps containers of several images
// warm; an execution of a warm image takes one, an execution of another
// image has one created, and the cold start is counted by image.
func TestWarmPoolsPerImage(t *testing.T) {
	requireLanguageImages(t)
	t.Parallel()
	obs := &coldRecorder{}
	b := setupIntegration(t, setupOptions{runtime: "agent", poolSize: 3, observer: obs,
		warm: []worker.WarmImage{{Image: "execq-python:latest", Count: 2}, {Image: testutil.SandboxImage, Count: 1}}})
	stats := b.worker.PoolStats()
	if py, sb := stats.ByImage["execq-python:latest"], stats.ByImage[testutil.SandboxImage]; py.Idle != 2 || py.Warm != 2 || sb.Idle != 1 {
		t.Fatalf("pool by image %+v; want 2 idle python and 1 idle sandbox", stats.ByImage)
	}
	if res := b.run(t, tasks.ExecRequest{Language: "python", Code: "print('warm')"}); res.Status != tasks.StatusSucceeded || res.Stdout != "warm\n" {
		t.Fatalf("python: %s %q %q", res.Status, res.Stdout, res.Error)
	}
	if cold := obs.starts(); len(cold) != 0 {
		t.Errorf("cold starts %v for a warm image", cold)
	}
	if res := b.run(t, tasks.ExecRequest{Language: "node", Code: "console.log('cold')"}); res.Status != tasks.StatusSucceeded || res.Stdout != "cold\n" {
		t.Fatalf("node: %s %q %q", res.Status, res.Stdout, res.Error)
	}
	if cold := obs.starts(); len(cold) != 1 || cold[0] != "execq-node:latest" {
		t.Errorf("cold starts %v; want one of execq-node:latest", cold)
	}
}

// Every execution of a short program reports the CPU time and memory it
// used: the interpreter starts at once and may be over before a counter
// read begun after the command was sent. Under gVisor the container's
// cgroup holds the sandbox's kernel, which may give the interpreter memory
// an earlier execution freed without taking more from the host: the peak
// is then what the sandbox took (measured here from 136 KiB to 5 MiB for
// python3 -c pass), some but not 1 MiB at least.
func TestShortProgramsAreMeasured(t *testing.T) {
	requireLanguageImages(t)
	minPeak := int64(1 << 20)
	if testutil.GVisor() {
		minPeak = 1
	}
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime, poolSize: 1})
		n := 40
		if runtime == worker.RuntimeDockerExec {
			n = 10
		}
		for i := range n {
			res := b.run(t, tasks.ExecRequest{Image: "execq-python:latest", Cmd: []string{"python3", "-c", "pass"}})
			if res.Status != tasks.StatusSucceeded || res.Resources == nil || res.Resources.CPUTimeMs == 0 || res.Resources.PeakMemoryBytes < minPeak {
				t.Fatalf("run %d of python3 -c pass: status %s, resources %+v; want some CPU time and a peak of %d bytes at least", i, res.Status, res.Resources, minPeak)
			}
		}
	})
}
