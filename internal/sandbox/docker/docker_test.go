package docker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

type testBundle struct {
	rt *docker.Runtime
	sb sandbox.Sandbox
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	cli := testutil.Docker(t)
	rt, err := docker.New(cli, docker.Config{Owner: "test-" + strings.ReplaceAll(t.Name(), "/", "-")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Context(t, time.Minute)
	sb, err := rt.Create(ctx, testutil.SandboxImage)
	if err != nil {
		t.Fatalf("create sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.Remove(context.Background(), sb.ID()); err != nil {
			t.Errorf("remove sandbox: %v", err)
		}
	})
	return &testBundle{rt: rt, sb: sb}
}

type output struct{ stdout, stderr bytes.Buffer }

func (b *testBundle) run(t *testing.T, ctx context.Context, stdin []byte, argv ...string) (sandbox.Outcome, *output, error) {
	t.Helper()
	var o output
	cmd := sandbox.Command{Cmd: argv, Dir: tasks.Workspace, Stdout: &o.stdout, Stderr: &o.stderr}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := b.sb.Run(ctx, cmd)
	return out, &o, err
}

func (b *testBundle) mustRun(t *testing.T, argv ...string) (sandbox.Outcome, *output) {
	t.Helper()
	out, o, err := b.run(t, testutil.Context(t, time.Minute), nil, argv...)
	if err != nil {
		t.Fatalf("run %q: %v", argv, err)
	}
	return out, o
}

func TestRunSeparatesStreamsAndReportsExitCode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	out, o := b.mustRun(t, "sh", "-c", "echo out; echo err >&2; id -u; exit 3")
	if out.ExitCode != 3 {
		t.Errorf("exit code = %d, want 3", out.ExitCode)
	}
	if got, want := o.stdout.String(), "out\n1000\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := o.stderr.String(), "err\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if out.Resources == nil {
		t.Errorf("resources not measured")
	}
}

func TestRunIsByteExact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var want bytes.Buffer
	var script strings.Builder
	for i := range 256 {
		want.WriteByte(byte(i))
		fmt.Fprintf(&script, "\\%03o", i)
	}
	_, o := b.mustRun(t, "printf", script.String())
	if !bytes.Equal(o.stdout.Bytes(), want.Bytes()) {
		t.Errorf("stdout = %x, want %x", o.stdout.Bytes(), want.Bytes())
	}
}

func TestRunGivesStdinAndClosesIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	out, o, err := b.run(t, testutil.Context(t, time.Minute), []byte("line one\nline two\n"), "wc", "-l")
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("run: %v, exit %d", err, out.ExitCode)
	}
	if got := strings.TrimSpace(o.stdout.String()); got != "2" {
		t.Errorf("wc -l of stdin = %q, want 2", got)
	}
}

func TestRunReturnsWhenMainProcessExitsAndChildHoldsStdout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	start := time.Now()
	out, o := b.mustRun(t, "sh", "-c", "sleep 60 & echo done")
	if out.ExitCode != 0 || o.stdout.String() != "done\n" {
		t.Errorf("exit %d, stdout %q; want 0, %q", out.ExitCode, o.stdout.String(), "done\n")
	}
	// The child sleeps a minute; returning well before it ends is the point.
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Errorf("run waited %s for a background child", elapsed)
	}
	if err := b.sb.Reset(testutil.Context(t, time.Minute)); err != nil {
		t.Fatalf("reset: %v", err)
	}
	_, o = b.mustRun(t, "ps", "-o", "user,args")
	if strings.Contains(o.stdout.String(), "sleep 60") {
		t.Errorf("the background child survived the reset:\n%s", o.stdout.String())
	}
}

func TestRunKillsTheProcessTreeWhenContextEnds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	errTimedOut := errors.New("timed out")
	ctx, cancel := context.WithTimeoutCause(context.Background(), time.Second, errTimedOut)
	defer cancel()
	start := time.Now()
	out, _, err := b.run(t, ctx, nil, "sh", "-c", "while :; do :; done & sh -c 'while :; do :; done' & while :; do :; done")
	elapsed := time.Since(start)
	if !errors.Is(err, errTimedOut) {
		t.Fatalf("run error = %v, want it to wrap the context's cause", err)
	}
	if out.ExitCode != -1 {
		t.Errorf("exit code = %d, want -1", out.ExitCode)
	}
	if elapsed > 2*time.Second {
		t.Errorf("run returned %s after a 1s timeout", elapsed)
	}
	// Killing the container's init ends every process in it.
	if _, _, err := b.run(t, testutil.Context(t, time.Minute), nil, "true"); err == nil {
		t.Errorf("the killed container still runs commands")
	}
}

func TestResetLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mustRun(t, "sh", "-c", `
		echo w > /workspace/file; mkdir -p /workspace/d/e; echo x > /workspace/d/e/f; chmod 000 /workspace/d
		echo h > /workspace/.hidden; echo t > /tmp/t; echo s > /dev/shm/s
		nohup sleep 1000 >/dev/null 2>&1 &
		setsid sh -c 'sleep 1000' >/dev/null 2>&1 &
		(trap '' TERM HUP INT; sleep 1000) >/dev/null 2>&1 &
		chmod 000 /workspace
	`)
	if err := b.sb.Reset(testutil.Context(t, time.Minute)); err != nil {
		t.Fatalf("reset: %v", err)
	}
	_, o := b.mustRun(t, "sh", "-c", "ls -A /workspace /tmp /dev/shm\n"+testutil.LeftoverScript)
	if got := o.stdout.String(); got != "/dev/shm:\n\n/tmp:\n\n/workspace:\n" {
		t.Errorf("after reset:\n%s", got)
	}
}

func TestPutFilesAreOwnedByTheUserWithTheirModes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testutil.Context(t, time.Minute)
	err := b.sb.PutFiles(ctx, []tasks.File{
		{Path: "run.sh", Content: []byte("#!/bin/sh\necho ran \"$@\"\n"), Mode: 0o755},
		{Path: "data/in.txt", Content: []byte("hello\n")},
		{Path: "data/deep/secret", Content: []byte("s"), Mode: 0o600},
	})
	if err != nil {
		t.Fatalf("put files: %v", err)
	}
	_, o := b.mustRun(t, "sh", "-c", "stat -c '%u:%g %a %n' run.sh data data/in.txt data/deep data/deep/secret; ./run.sh ok; cat data/in.txt")
	want := "1000:1000 755 run.sh\n1000:1000 755 data\n1000:1000 644 data/in.txt\n1000:1000 755 data/deep\n1000:1000 600 data/deep/secret\nran ok\nhello\n"
	if got := o.stdout.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s\nstderr: %s", got, want, o.stderr.String())
	}
}

func TestCollectReturnsMatchesAndRefusesSymlinks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mustRun(t, "sh", "-c", `mkdir -p out/a && printf one > out/one.txt && printf two > out/a/two.txt && printf no > skip.log && ln -s /etc/passwd out/passwd.txt && chmod 700 out/one.txt`)
	files, err := b.sb.Collect(testutil.Context(t, time.Minute), []string{"out/**/*.txt"}, 1<<20)
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	got := map[string]tasks.CollectedFile{}
	for _, f := range files {
		got[f.Path] = f
	}
	if len(got) != 3 {
		t.Fatalf("collected %d files, want 3: %+v", len(got), files)
	}
	if f := got["out/one.txt"]; string(f.Content) != "one" || f.Mode != 0o700 || f.Size != 3 {
		t.Errorf("out/one.txt = %+v", f)
	}
	if f := got["out/a/two.txt"]; string(f.Content) != "two" {
		t.Errorf("out/a/two.txt = %+v", f)
	}
	if f := got["out/passwd.txt"]; f.Error == "" || len(f.Content) != 0 {
		t.Errorf("a symlink out of /workspace was collected: %+v", f)
	}
}

func TestCollectStopsAtTheByteCap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mustRun(t, "sh", "-c", `head -c 1000 /dev/zero > a.bin && head -c 1000 /dev/zero > b.bin`)
	files, err := b.sb.Collect(testutil.Context(t, time.Minute), []string{"*.bin"}, 1500)
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	if len(files) != 2 || len(files[0].Content) != 1000 || files[1].Error == "" {
		t.Errorf("collected %+v; want the first file and an error for the second", files)
	}
}

func TestRunReportsOOMKill(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testutil.Context(t, time.Minute)
	if err := b.sb.SetLimits(ctx, sandbox.Limits{MemoryBytes: 32 << 20, NanoCPUs: 1e9, Pids: 64}); err != nil {
		t.Fatalf("set limits: %v", err)
	}
	out, o := b.mustRun(t, "sh", "-c", "tail -c 100m /dev/zero; echo survived")
	if !out.OOMKilled {
		t.Errorf("OOMKilled = false; exit %d, stdout %q", out.ExitCode, o.stdout.String())
	}
	if out.Resources == nil || out.Resources.PeakMemoryBytes < 16<<20 {
		t.Errorf("peak memory = %+v, want near the 32 MiB limit", out.Resources)
	}
}

func TestRunMeasuresCPUTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	out, _ := b.mustRun(t, "sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i + 1)); done")
	if out.Resources == nil || out.Resources.CPUTimeMs < 100 {
		t.Errorf("resources = %+v, want some cpu time", out.Resources)
	}
}

func TestRunOfAMissingProgramFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	out, o := b.mustRun(t, "no-such-program")
	if out.ExitCode != 127 {
		t.Errorf("exit code = %d, want 127 as a shell gives", out.ExitCode)
	}
	if o.stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", o.stdout.String())
	}
	if want := `execq: cannot run "no-such-program": executable file not found in $PATH` + "\n"; o.stderr.String() != want {
		t.Errorf("stderr = %q, want %q", o.stderr.String(), want)
	}
}

func TestCheckImage(t *testing.T) {
	t.Parallel()
	cli := testutil.Docker(t)
	rt, err := docker.New(cli, docker.Config{Owner: "test-check-image"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Context(t, time.Minute)
	if err := rt.CheckImage(ctx, testutil.SandboxImage); err != nil {
		t.Errorf("CheckImage(%s) = %v", testutil.SandboxImage, err)
	}
	if err := rt.CheckImage(ctx, "execq-no-such-image:v0"); !errors.Is(err, sandbox.ErrImageNotFound) {
		t.Errorf("CheckImage(missing) = %v, want ErrImageNotFound", err)
	}
}

func TestFilesAreWipedBeforeTheNextCommand(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mustRun(t, "sh", "-c", "echo w > /workspace/w; mkdir -p /workspace/d; chmod 0 /workspace/d; echo t > /tmp/t; echo s > /dev/shm/s; chmod 0 /workspace")
	// No process is left, so the reset needs no exec; the wipe happens
	// at the start of the next command.
	if err := b.sb.Reset(testutil.Context(t, time.Minute)); err != nil {
		t.Fatalf("reset: %v", err)
	}
	_, o := b.mustRun(t, "ls", "-A", "/workspace", "/tmp", "/dev/shm")
	if want := "/dev/shm:\n\n/tmp:\n\n/workspace:\n"; o.stdout.String() != want {
		t.Errorf("the next command sees:\n%s", o.stdout.String())
	}
}

func TestPutFilesWipesTheLastExecutionsFilesButKeepsItsOwn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mustRun(t, "sh", "-c", "echo old > /workspace/old; echo old > /tmp/old")
	if err := b.sb.Reset(testutil.Context(t, time.Minute)); err != nil {
		t.Fatalf("reset: %v", err)
	}
	ctx := testutil.Context(t, time.Minute)
	if err := b.sb.PutFiles(ctx, []tasks.File{{Path: "new", Content: []byte("new\n")}}); err != nil {
		t.Fatalf("put files: %v", err)
	}
	_, o := b.mustRun(t, "sh", "-c", "ls -A /workspace /tmp; cat /workspace/new")
	if want := "/tmp:\n\n/workspace:\nnew\nnew\n"; o.stdout.String() != want {
		t.Errorf("got:\n%s", o.stdout.String())
	}
}
