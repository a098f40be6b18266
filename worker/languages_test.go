package worker_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

func mustCatalogue(t *testing.T, langs ...worker.Language) *worker.Catalogue {
	t.Helper()
	c, err := worker.NewCatalogue(langs...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// unitLanguages are languages the fake runtime can run: "sh" interprets
// its file's lines; "built" has a compile step that runs its file and a
// run step that says so.
func unitLanguages(t *testing.T) *worker.Catalogue {
	return mustCatalogue(t,
		worker.Language{Name: "sh", Image: unitImage, File: "main.sh", Run: []string{"sh", "main.sh"}},
		worker.Language{Name: "built", Image: "execq-c:latest", File: "main.c",
			Compile: []string{"sh", "main.c"}, Run: []string{"cat"}, Env: map[string]string{"LANG_ENV": "1"}},
	)
}

func TestUnitLanguageRunsItsCode(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{languages: unitLanguages(t)})
	res := b.exec(t, tasks.ExecRequest{Language: "sh", Code: "echo from code\nerr warned\nexit 3"})
	if res.Status != tasks.StatusFailed || res.ExitCode != 3 || res.Stdout != "from code\n" || res.Stderr != "warned\n" || res.Step != tasks.StepRun {
		t.Errorf("status %s exit %d step %q stdout %q stderr %q error %q; want failed 3 at the run step",
			res.Status, res.ExitCode, res.Step, res.Stdout, res.Stderr, res.Error)
	}
	if res.Image != unitImage {
		t.Errorf("image %q, want the language's %q", res.Image, unitImage)
	}
	checkStream(t, b.streamOf(t, res.ExecutionID), res)
}

func TestUnitCompileStepFailureIsReportedAsSuch(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{languages: unitLanguages(t)})
	res := b.exec(t, tasks.ExecRequest{Language: "built", Code: "err main.c:1: error: expected ';'\nexit 1", Stdin: []byte("never read\n")})
	if res.Status != tasks.StatusFailed || res.ExitCode != 1 || res.Step != tasks.StepCompile {
		t.Errorf("status %s exit %d step %q; want failed 1 at the compile step", res.Status, res.ExitCode, res.Step)
	}
	if res.Stderr != "main.c:1: error: expected ';'\n" || res.Stdout != "" {
		t.Errorf("stdout %q stderr %q; want the compiler's message only, and the run step not run", res.Stdout, res.Stderr)
	}
	events := b.streamOf(t, res.ExecutionID)
	checkStream(t, events, res)
	exit, err := events[len(events)-1].Exit()
	if err != nil || exit.Step != tasks.StepCompile {
		t.Errorf("exit event %+v, %v; want step compile", exit, err)
	}
	if got := string(joinedData(events, tasks.EventStderr)); got != res.Stderr {
		t.Errorf("streamed stderr %q, want the compiler's %q", got, res.Stderr)
	}
}

func TestUnitCompileThenRunInOneSandbox(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{languages: unitLanguages(t), poolSize: 1})
	res := b.exec(t, tasks.ExecRequest{Language: "built", Code: "echo compiled", Stdin: []byte("stdin of the run step\n")})
	if res.Status != tasks.StatusSucceeded || res.Step != tasks.StepRun || res.Stdout != "compiled\nstdin of the run step\n" {
		t.Errorf("status %s step %q stdout %q stderr %q error %q; want the compile step's output then the run step's",
			res.Status, res.Step, res.Stdout, res.Stderr, res.Error)
	}
	if res.Image != "execq-c:latest" || res.Resources == nil || res.Resources.CPUTimeMs != 2 {
		t.Errorf("image %q resources %+v; want the language's image and both steps' CPU time", res.Image, res.Resources)
	}
}

func TestUnitLanguageWithCmdRunsTheCmdInItsImage(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{languages: unitLanguages(t)})
	res := b.exec(t, tasks.ExecRequest{Language: "built", Cmd: []string{"echo", "own", "command"}})
	if res.Status != tasks.StatusSucceeded || res.Stdout != "own command\n" || res.Step != tasks.StepRun || res.Image != "execq-c:latest" {
		t.Errorf("status %s step %q image %q stdout %q error %q", res.Status, res.Step, res.Image, res.Stdout, res.Error)
	}
}

func TestUnitLanguageRejections(t *testing.T) {
	t.Parallel()
	b := setupUnit(t, unitOptions{languages: unitLanguages(t)})
	cases := []struct {
		name string
		req  tasks.ExecRequest
		want string
	}{
		{"unknown", tasks.ExecRequest{Language: "cobol", Code: "x"}, `language "cobol" is not in this worker's catalogue; known: sh, built`},
		{"no code nor file", tasks.ExecRequest{Language: "sh"}, "language sh runs main.sh: give its code, a file main.sh, or a cmd"},
		{"code and its file", tasks.ExecRequest{Language: "sh", Code: "echo a", Files: []tasks.File{{Path: "./main.sh"}}}, "code and a file main.sh both given"},
	}
	for _, c := range cases {
		res := b.exec(t, c.req)
		if res.Status != tasks.StatusRejected || !strings.Contains(res.Error, c.want) || res.Step != "" {
			t.Errorf("%s: status %s step %q error %q; want rejected saying %q", c.name, res.Status, res.Step, res.Error, c.want)
		}
	}
	// A file at the source path serves as the code.
	res := b.exec(t, tasks.ExecRequest{Language: "sh", Files: []tasks.File{{Path: "main.sh", Content: []byte("echo from the file")}}})
	if res.Status != tasks.StatusSucceeded || res.Stdout != "from the file\n" {
		t.Errorf("a file at the source path: status %s stdout %q error %q", res.Status, res.Stdout, res.Error)
	}
}

// coldRecorder is an Observer that keeps the cold starts.
type coldRecorder struct {
	mu   sync.Mutex
	cold []string
}

func (*coldRecorder) ExecutionFinished(tasks.Status, time.Duration, time.Duration) {}
func (*coldRecorder) OutputWritten(int64, int64, bool)                             {}
func (*coldRecorder) StreamAppended(time.Duration, int, error)                     {}
func (*coldRecorder) ContainerReplaced(string)                                     {}
func (*coldRecorder) ContainerCreated(time.Duration, error)                        {}
func (*coldRecorder) SandboxReset(time.Duration, error)                            {}
func (*coldRecorder) EngineUp(bool)                                                {}
func (*coldRecorder) SessionOpened()                                               {}
func (*coldRecorder) SessionsOpen(int)                                             {}
func (*coldRecorder) SessionClosed(string)                                         {}

func (r *coldRecorder) ColdStart(image string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cold = append(r.cold, image)
}

func (r *coldRecorder) starts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.cold...)
}

func TestUnitWarmImagesAndColdStarts(t *testing.T) {
	t.Parallel()
	obs := &coldRecorder{}
	b := setupUnit(t, unitOptions{
		languages: unitLanguages(t),
		poolSize:  3,
		warm:      []worker.WarmImage{{Image: "execq-c:latest", Count: 1}, {Image: unitImage, Count: 1}},
		observer:  obs,
	})
	stats := b.worker.PoolStats()
	if stats.Idle != 2 || stats.ByImage["execq-c:latest"].Idle != 1 || stats.ByImage[unitImage].Idle != 1 || stats.ByImage["execq-c:latest"].Warm != 1 {
		t.Errorf("pool stats %+v; want one idle container of each warm image", stats)
	}
	if res := b.exec(t, tasks.ExecRequest{Language: "built", Code: "echo warm"}); res.Status != tasks.StatusSucceeded {
		t.Fatalf("language on a warm image: %s %s", res.Status, res.Error)
	}
	if cold := obs.starts(); len(cold) != 0 {
		t.Errorf("cold starts %v on warm images; want none", cold)
	}
	if res := b.exec(t, tasks.ExecRequest{Image: "execq-node:latest", Cmd: []string{"echo", "cold"}}); res.Status != tasks.StatusSucceeded {
		t.Fatalf("an image with no warm container: %s %s", res.Status, res.Error)
	}
	if cold := obs.starts(); len(cold) != 1 || cold[0] != "execq-node:latest" {
		t.Errorf("cold starts %v; want one of execq-node:latest", cold)
	}
}
