// Package sandboxtest is the contract suite of sandbox runtimes: Exercise
// runs the same cases against any sandbox.Runtime, as river's driver tests
// run against every database driver. Every runtime execq ships passes it on
// the real Docker engine; it is the acceptance test of a new one.
package sandboxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// Options describe the runtime under test.
type Options struct {
	// Image is the image sandboxes are created of; it has busybox's applets.
	Image string
	// KillsInPlace is true when Run's kill leaves the sandbox reusable.
	KillsInPlace bool
	// GVisor is true when the sandboxes run under gVisor (runsc), whose
	// kernel differs where the suite says so.
	GVisor bool
}

type bundle struct {
	rt   sandbox.Runtime
	sb   sandbox.Sandbox
	opts Options
}

// Exercise runs the contract suite against the runtime newRuntime makes
// (one per case, whose containers the case removes).
func Exercise(t *testing.T, newRuntime func(t *testing.T) sandbox.Runtime, opts Options) {
	setup := func(t *testing.T) *bundle {
		t.Helper()
		t.Parallel()
		rt := newRuntime(t)
		ctx := testutil.Context(t, 2*time.Minute)
		sb, err := rt.Create(ctx, opts.Image, sandbox.Limits{})
		if err != nil {
			t.Fatalf("create sandbox: %v", err)
		}
		t.Cleanup(func() {
			if err := rt.Remove(context.Background(), sb.ID()); err != nil {
				t.Errorf("remove sandbox: %v", err)
			}
		})
		return &bundle{rt: rt, sb: sb}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needsKillInPlace && !opts.KillsInPlace {
				return
			}
			b := setup(t)
			b.opts = opts
			c.run(t, b)
		})
	}
}

type contractCase struct {
	name             string
	needsKillInPlace bool
	run              func(t *testing.T, b *bundle)
}

type output struct{ stdout, stderr bytes.Buffer }

// slowWriter is a consumer that takes pause over every write.
type slowWriter struct {
	w     io.Writer
	pause time.Duration
}

func (s slowWriter) Write(p []byte) (int, error) {
	time.Sleep(s.pause)
	return s.w.Write(p)
}

func (b *bundle) run(t *testing.T, ctx context.Context, stdin []byte, dir string, argv ...string) (sandbox.Outcome, *output, error) {
	t.Helper()
	var o output
	if dir == "" {
		dir = tasks.Workspace
	}
	cmd := sandbox.Command{Cmd: argv, Dir: dir, Stdout: &o.stdout, Stderr: &o.stderr}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := b.sb.Run(ctx, cmd)
	return out, &o, err
}

func (b *bundle) mustRun(t *testing.T, argv ...string) (sandbox.Outcome, *output) {
	t.Helper()
	out, o, err := b.run(t, testutil.Context(t, time.Minute), nil, "", argv...)
	if err != nil {
		t.Fatalf("run %q: %v", argv, err)
	}
	return out, o
}

// limit gives the bundle's sandbox limits l: in place, or, where limits are
// fixed at creation, with a new sandbox created with them.
func (b *bundle) limit(t *testing.T, l sandbox.Limits) {
	t.Helper()
	ctx := testutil.Context(t, time.Minute)
	err := b.sb.SetLimits(ctx, l)
	if errors.Is(err, sandbox.ErrFixedLimits) {
		sb, cerr := b.rt.Create(ctx, b.opts.Image, l)
		if cerr != nil {
			t.Fatalf("create a sandbox with limits %+v: %v", l, cerr)
		}
		t.Cleanup(func() { _ = b.rt.Remove(context.Background(), sb.ID()) })
		b.sb, err = sb, nil
	}
	if err != nil {
		t.Fatalf("set limits: %v", err)
	}
}

func (b *bundle) reset(t *testing.T) sandbox.ResetReport {
	t.Helper()
	rep, err := b.sb.Reset(testutil.Context(t, time.Minute))
	if err != nil {
		t.Fatalf("reset: %v", err)
	}
	return rep
}

func (b *bundle) collect(t *testing.T, globs []string, maxBytes int64) sandbox.CollectResult {
	t.Helper()
	res, err := b.sb.Collect(testutil.Context(t, time.Minute), sandbox.CollectSpec{Globs: globs, MaxBytes: maxBytes, MaxEntries: tasks.MaxCollectFiles})
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	return res
}

// cleanListing is what `ls -A` of the writable places prints in a clean
// sandbox.
const cleanListing = "/dev/shm:\n\n/tmp:\n\n/workspace:\n"

var cases = []contractCase{
	{name: "separates_streams_and_reports_the_exit_code", run: func(t *testing.T, b *bundle) {
		out, o := b.mustRun(t, "sh", "-c", "echo out; echo err >&2; id -u; exit 3")
		if out.ExitCode != 3 {
			t.Errorf("exit code = %d, want 3", out.ExitCode)
		}
		if got, want := o.stdout.String(), "out\n"+strconv.Itoa(b.sb.User())+"\n"; got != want {
			t.Errorf("stdout = %q, want %q", got, want)
		}
		if got, want := o.stderr.String(), "err\n"; got != want {
			t.Errorf("stderr = %q, want %q", got, want)
		}
		if out.Resources == nil {
			t.Errorf("resources not measured")
		}
		if !out.Reusable {
			t.Errorf("not reusable after a plain exit")
		}
	}},
	{name: "output_is_byte_exact", run: func(t *testing.T, b *bundle) {
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
	}},
	{name: "large_output_is_complete", run: func(t *testing.T, b *bundle) {
		_, o := b.mustRun(t, "sh", "-c", "head -c 3000000 /dev/zero; head -c 1000000 /dev/zero >&2")
		if o.stdout.Len() != 3000000 || o.stderr.Len() != 1000000 {
			t.Errorf("got %d bytes of stdout and %d of stderr, want 3000000 and 1000000", o.stdout.Len(), o.stderr.Len())
		}
	}},
	{name: "gives_stdin_and_closes_it", run: func(t *testing.T, b *bundle) {
		out, o, err := b.run(t, testutil.Context(t, time.Minute), []byte("line one\nline two\n"), "", "wc", "-l")
		if err != nil || out.ExitCode != 0 {
			t.Fatalf("run: %v, exit %d", err, out.ExitCode)
		}
		if got := strings.TrimSpace(o.stdout.String()); got != "2" {
			t.Errorf("wc -l of stdin = %q, want 2", got)
		}
	}},
	{name: "large_stdin_arrives_whole", run: func(t *testing.T, b *bundle) {
		in := bytes.Repeat([]byte("0123456789abcdef"), 5<<16) // 5 MiB
		out, o, err := b.run(t, testutil.Context(t, time.Minute), in, "", "wc", "-c")
		if err != nil || out.ExitCode != 0 {
			t.Fatalf("run: %v, exit %d", err, out.ExitCode)
		}
		if got := strings.TrimSpace(o.stdout.String()); got != strconv.Itoa(len(in)) {
			t.Errorf("wc -c of stdin = %q, want %d", got, len(in))
		}
	}},
	{name: "unread_stdin_does_not_block", run: func(t *testing.T, b *bundle) {
		in := bytes.Repeat([]byte("x"), 4<<20)
		out, o, err := b.run(t, testutil.Context(t, time.Minute), in, "", "echo", "ignored")
		if err != nil || out.ExitCode != 0 || o.stdout.String() != "ignored\n" {
			t.Fatalf("run: %v, exit %d, stdout %q", err, out.ExitCode, o.stdout.String())
		}
		_, o = b.mustRun(t, "cat")
		if o.stdout.Len() != 0 {
			t.Errorf("the next command read %d bytes of the last one's input", o.stdout.Len())
		}
	}},
	{name: "returns_when_the_main_process_exits_and_a_child_holds_stdout", run: func(t *testing.T, b *bundle) {
		start := time.Now()
		out, o := b.mustRun(t, "sh", "-c", "sleep 60 & echo done")
		if out.ExitCode != 0 || o.stdout.String() != "done\n" {
			t.Errorf("exit %d, stdout %q; want 0, %q", out.ExitCode, o.stdout.String(), "done\n")
		}
		// The child sleeps a minute; returning well before it ends is the point.
		if elapsed := time.Since(start); elapsed > 30*time.Second {
			t.Errorf("run waited %s for a background child", elapsed)
		}
		rep := b.reset(t)
		if rep.Killed < 1 {
			t.Errorf("reset report %+v: the sleeper was not counted", rep)
		}
		_, o = b.mustRun(t, "sh", "-c", testutil.LeftoverScript)
		if o.stdout.Len() != 0 {
			t.Errorf("the background child survived the reset:\n%s", o.stdout.String())
		}
	}},
	{name: "a_flooding_child_does_not_hold_the_exit", run: func(t *testing.T, b *bundle) {
		start := time.Now()
		out, _ := b.mustRun(t, "sh", "-c", "yes & sleep 0.2; exit 4")
		if out.ExitCode != 4 {
			t.Errorf("exit %d, want 4", out.ExitCode)
		}
		if elapsed := time.Since(start); elapsed > 10*time.Second {
			t.Errorf("run waited %s for a child that floods stdout", elapsed)
		}
		b.reset(t)
	}},
	{name: "kills_the_process_tree_when_the_context_ends", run: func(t *testing.T, b *bundle) {
		errTimedOut := errors.New("timed out")
		ctx, cancel := context.WithTimeoutCause(context.Background(), time.Second, errTimedOut)
		defer cancel()
		start := time.Now()
		out, _, err := b.run(t, ctx, nil, "", "sh", "-c", "while :; do :; done & setsid sh -c 'trap \"\" TERM; while :; do :; done' & while :; do :; done")
		elapsed := time.Since(start)
		if !errors.Is(err, errTimedOut) {
			t.Fatalf("run error = %v, want it to wrap the context's cause", err)
		}
		if elapsed > 3*time.Second {
			t.Errorf("run returned %s after a 1s timeout", elapsed)
		}
		if !out.Reusable {
			return
		}
		_, o := b.mustRun(t, "sh", "-c", testutil.LeftoverScript)
		if o.stdout.Len() != 0 {
			t.Errorf("processes survived the kill:\n%s", o.stdout.String())
		}
	}},
	{name: "keep_others_kills_only_what_the_command_started", run: func(t *testing.T, b *bundle) {
		// What an earlier command left running, with a child of its own.
		b.mustRun(t, "sh", "-c", "sh -c 'sleep 1000 & echo $! > /tmp/kept-child; wait' & echo $! > /tmp/kept; setsid sleep 1001 & echo $! > /tmp/kept-setsid")
		errTimedOut := errors.New("timed out")
		ctx, cancel := context.WithTimeoutCause(context.Background(), time.Second, errTimedOut)
		defer cancel()
		var o output
		res, err := b.sb.Run(ctx, sandbox.Command{
			Cmd: []string{"sh", "-c", "sleep 1002 & echo $! > /tmp/new; setsid sh -c 'while :; do :; done' & echo $! > /tmp/new-setsid; while :; do :; done"},
			Dir: tasks.Workspace, Stdout: &o.stdout, Stderr: &o.stderr, KeepOthers: true,
		})
		if !errors.Is(err, errTimedOut) || !res.Reusable {
			t.Fatalf("run error = %v, reusable %v; want it to wrap the context's cause, the sandbox kept", err, res.Reusable)
		}
		_, out := b.mustRun(t, "sh", "-c", "for f in kept kept-child kept-setsid new new-setsid; do kill -0 $(cat /tmp/$f) 2>/dev/null && echo $f alive || echo $f dead; done")
		if want := "kept alive\nkept-child alive\nkept-setsid alive\nnew dead\nnew-setsid dead\n"; out.stdout.String() != want {
			t.Errorf("after a kill that keeps the others:\n%s\nwant:\n%s", out.stdout.String(), want)
		}
	}},
	{name: "kill_in_place", needsKillInPlace: true, run: func(t *testing.T, b *bundle) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		out, _, err := b.run(t, ctx, nil, "", "sh", "-c", "f() { f | f & }; f; sleep 100")
		if err == nil || !out.Reusable {
			t.Fatalf("run of a fork bomb: err %v, reusable %v; want killed in place", err, out.Reusable)
		}
		b.reset(t)
		out, o := b.mustRun(t, "echo", "alive")
		if o.stdout.String() != "alive\n" {
			t.Errorf("after the fork bomb: %q", o.stdout.String())
		}
	}},
	{name: "kill_all_leaves_nothing", run: func(t *testing.T, b *bundle) {
		b.mustRun(t, "sh", "-c", "nohup sleep 1000 >/dev/null 2>&1 & setsid sleep 1000 >/dev/null 2>&1 & (trap '' TERM HUP INT; sleep 1000) >/dev/null 2>&1 &")
		if err := b.sb.KillAll(testutil.Context(t, time.Minute)); err != nil {
			t.Fatalf("kill all: %v", err)
		}
		_, o := b.mustRun(t, "sh", "-c", testutil.LeftoverScript)
		if o.stdout.Len() != 0 {
			t.Errorf("left after KillAll:\n%s", o.stdout.String())
		}
	}},
	{name: "reset_leaves_nothing_behind", run: func(t *testing.T, b *bundle) {
		b.mustRun(t, "sh", "-c", `
			echo w > /workspace/file; mkdir -p /workspace/d/e; echo x > /workspace/d/e/f; chmod 000 /workspace/d/e /workspace/d
			echo h > /workspace/.hidden; echo t > /tmp/t; mkdir /tmp/ro; echo r >/tmp/ro/f; chmod 500 /tmp/ro
			echo s > /dev/shm/s; : > /dev/mqueue/q; ln -s / /workspace/root; mkfifo /tmp/fifo
			nohup sleep 1000 >/dev/null 2>&1 &
			setsid sh -c 'sleep 1000' >/dev/null 2>&1 &
			(trap '' TERM HUP INT; sleep 1000) >/dev/null 2>&1 &
			chmod 000 /workspace
		`)
		rep := b.reset(t)
		// Under gVisor, a command's leftovers die with it: none is left to kill.
		if !b.opts.GVisor && rep.Killed < 2 || rep.Removed < 8 {
			t.Errorf("reset report %+v; want 2 processes killed and 8 entries removed at least", rep)
		}
		_, o := b.mustRun(t, "sh", "-c", "ls -A /workspace /tmp /dev/shm; ls -A /dev/mqueue; stat -c %a /workspace\n"+testutil.LeftoverScript)
		if got, want := o.stdout.String(), cleanListing+"755\n"; got != want {
			t.Errorf("after reset:\n%s\nwant:\n%s", got, want)
		}
	}},
	{name: "reset_fails_on_a_process_only_the_host_sees", run: func(t *testing.T, b *bundle) {
		if b.opts.GVisor {
			// The sandbox's processes are gVisor's, not the host's: its
			// kernel, which the agent asks, sees them all.
			t.Log("not under gVisor")
			return
		}
		// A process in the container's cgroups but outside its PID
		// namespace, as a stuck exec of the engine would be: the agent
		// cannot see it, and it holds a slot of the process limit.
		b.mustRun(t, "true")
		pid := testutil.Intrude(t, testutil.Docker(t), b.sb.ID())
		_, err := b.sb.Reset(testutil.Context(t, time.Minute))
		if !errors.Is(err, sandbox.ErrDirty) {
			t.Fatalf("reset with host PID %d in the container: %v; want ErrDirty", pid, err)
		}
		if !strings.Contains(err.Error(), strconv.Itoa(pid)) {
			t.Errorf("the reset's error does not name the process: %v", err)
		}
	}},
	{name: "reset_removes_a_tree_deeper_than_path_max", run: func(t *testing.T, b *bundle) {
		// Each turn wraps the tree in one more directory of a 200-byte
		// name, so that no path the shell handles is long.
		_, o := b.mustRun(t, "sh", "-c", `n=$(printf '%0200d' 0); mkdir $n; i=0
			while [ $i -lt 25 ]; do mkdir w && mv $n w/ && mv w $n || exit 1; i=$((i+1)); done
			echo deep`)
		if !strings.Contains(o.stdout.String(), "deep") {
			t.Fatalf("no deep tree made: %q %q", o.stdout.String(), o.stderr.String())
		}
		b.reset(t)
		_, o = b.mustRun(t, "ls", "-A", "/workspace")
		if o.stdout.Len() != 0 {
			t.Errorf("left: %q", o.stdout.String())
		}
	}},
	{name: "puts_files_owned_by_the_user_with_their_modes", run: func(t *testing.T, b *bundle) {
		err := b.sb.PutFiles(testutil.Context(t, time.Minute), []tasks.File{
			{Path: "run.sh", Content: []byte("#!/bin/sh\necho ran \"$@\"\n"), Mode: 0o755},
			{Path: "data/in.txt", Content: []byte("hello\n")},
			{Path: "data/deep/secret", Content: []byte("s"), Mode: 0o600},
		})
		if err != nil {
			t.Fatalf("put files: %v", err)
		}
		_, o := b.mustRun(t, "sh", "-c", "stat -c '%u:%g %a %n' run.sh data data/in.txt data/deep data/deep/secret; ./run.sh ok; cat data/in.txt")
		u := strconv.Itoa(b.sb.User())
		owner := u + ":" + u
		want := owner + " 755 run.sh\n" + owner + " 755 data\n" + owner + " 644 data/in.txt\n" + owner + " 755 data/deep\n" + owner + " 600 data/deep/secret\nran ok\nhello\n"
		if got := o.stdout.String(); got != want {
			t.Errorf("got:\n%s\nwant:\n%s\nstderr: %s", got, want, o.stderr.String())
		}
	}},
	{name: "collects_matches_and_refuses_links", run: func(t *testing.T, b *bundle) {
		b.mustRun(t, "sh", "-c", `mkdir -p out/a && printf one > out/one.txt && printf two > out/a/two.txt && printf no > skip.log && ln -s /etc/passwd out/passwd.txt && chmod 700 out/one.txt && mkfifo out/fifo.txt`)
		res := b.collect(t, []string{"out/**/*.txt"}, 1<<20)
		got := map[string]tasks.CollectedFile{}
		for _, f := range res.Files {
			got[f.Path] = f
		}
		if len(got) != 4 {
			t.Fatalf("collected %d files, want 4: %+v", len(got), res.Files)
		}
		if f := got["out/one.txt"]; string(f.Content) != "one" || f.Mode != 0o700 || f.Size != 3 {
			t.Errorf("out/one.txt = %+v", f)
		}
		if f := got["out/a/two.txt"]; string(f.Content) != "two" {
			t.Errorf("out/a/two.txt = %+v", f)
		}
		for _, name := range []string{"out/passwd.txt", "out/fifo.txt"} {
			if f := got[name]; f.Error == "" || len(f.Content) != 0 {
				t.Errorf("%s was collected: %+v", name, f)
			}
		}
	}},
	{name: "output_in_flight_at_the_exit_arrives_whole", run: func(t *testing.T, b *bundle) {
		// A consumer slower than the command: when the command exits, much
		// of what it wrote is still on its way, and all of it must arrive.
		const size = 1 << 20
		var got bytes.Buffer
		cmd := sandbox.Command{
			Cmd: []string{"head", "-c", strconv.Itoa(size), "/dev/zero"}, Dir: tasks.Workspace,
			Stdout: slowWriter{w: &got, pause: 20 * time.Millisecond},
		}
		out, err := b.sb.Run(testutil.Context(t, time.Minute), cmd)
		if err != nil || out.ExitCode != 0 {
			t.Fatalf("run: exit %d, %v", out.ExitCode, err)
		}
		if got.Len() != size {
			t.Errorf("got %d bytes of stdout, want %d", got.Len(), size)
		}
	}},
	{name: "collect_stops_at_the_byte_cap", run: func(t *testing.T, b *bundle) {
		b.mustRun(t, "sh", "-c", `head -c 1000 /dev/zero > a.bin && head -c 1000 /dev/zero > b.bin && truncate -s 100G c.bin`)
		res := b.collect(t, []string{"*.bin"}, 1500)
		if len(res.Files) != 3 || len(res.Files[0].Content) != 1000 || res.Files[1].Error == "" || res.Files[2].Error == "" {
			t.Errorf("collected %+v; want the first file and errors for the others", res.Files)
		}
	}},
	{name: "collect_stops_at_the_entry_cap", run: func(t *testing.T, b *bundle) {
		b.mustRun(t, "sh", "-c", `i=0; while [ $i -lt 1100 ]; do : > f$i; i=$((i+1)); done`)
		res := b.collect(t, []string{"*"}, 1<<20)
		if len(res.Files) != tasks.MaxCollectFiles || res.Truncated == "" {
			t.Errorf("collected %d entries, truncated %q; want %d and a reason", len(res.Files), res.Truncated, tasks.MaxCollectFiles)
		}
	}},
	{name: "reports_oom_kills", run: func(t *testing.T, b *bundle) {
		b.limit(t, sandbox.Limits{MemoryBytes: 32 << 20, NanoCPUs: 1e9, Pids: 64})
		out, o := b.mustRun(t, "sh", "-c", "tail -c 100m /dev/zero; echo survived")
		if !out.OOMKilled {
			t.Errorf("OOMKilled = false; exit %d, stdout %q", out.ExitCode, o.stdout.String())
		}
		if b.opts.GVisor {
			// The memory limit takes the whole sandbox under gVisor, and its
			// cgroup with it: there is nothing left to read.
			return
		}
		if out.Resources == nil || out.Resources.PeakMemoryBytes < 16<<20 {
			t.Errorf("peak memory = %+v, want near the 32 MiB limit", out.Resources)
		}
		// The sandbox's own process survived: it serves on.
		b.reset(t)
		if _, o := b.mustRun(t, "echo", "alive"); o.stdout.String() != "alive\n" {
			t.Errorf("after the OOM kill: %q", o.stdout.String())
		}
	}},
	{name: "many_small_processes_at_the_memory_limit", run: func(t *testing.T, b *bundle) {
		b.limit(t, sandbox.Limits{MemoryBytes: 48 << 20, NanoCPUs: 1e9, Pids: 256})
		// Forty processes of 1.5 MB each, none larger than the sandbox's own.
		out, _ := b.mustRun(t, "sh", "-c", `i=0; while [ $i -lt 40 ]; do (x=$(head -c 1500000 /dev/zero | tr '\0' a); sleep 2) & i=$((i+1)); done; wait`)
		if !out.OOMKilled {
			t.Logf("no OOM kill: exit %d", out.ExitCode)
		}
		if b.opts.GVisor {
			return
		}
		b.reset(t)
		if _, o := b.mustRun(t, "echo", "alive"); o.stdout.String() != "alive\n" {
			t.Errorf("after the OOM kills: %q", o.stdout.String())
		}
	}},
	{name: "kill_9_of_itself_is_not_an_oom", run: func(t *testing.T, b *bundle) {
		out, _ := b.mustRun(t, "sh", "-c", "kill -9 $$")
		if out.ExitCode != 137 || out.OOMKilled {
			t.Errorf("exit %d, OOMKilled %v; want 137 and no OOM", out.ExitCode, out.OOMKilled)
		}
	}},
	{name: "commands_start_with_the_kernels_timer_slack", run: func(t *testing.T, b *bundle) {
		// Whatever slack the runtime's own threads sleep with, a command's
		// timers are as precise as in any process of the image, and the
		// command cannot read (or set) the slack of PID 1, the agent or
		// the keepalive.
		_, o := b.mustRun(t, "sh", "-c", "cat /proc/self/timerslack_ns 2>/dev/null || echo none; cat /proc/1/timerslack_ns 2>/dev/null || echo refused")
		got := strings.TrimSpace(o.stdout.String())
		if got != "50000\nrefused" && !(b.opts.GVisor && got == "none\nrefused") {
			t.Errorf("a command's timer slack, then PID 1's: %q; want the kernel's default 50000, then refused", got)
		}
	}},
	{name: "measures_cpu_time", run: func(t *testing.T, b *bundle) {
		out, _ := b.mustRun(t, "sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i + 1)); done")
		if out.Resources == nil || out.Resources.CPUTimeMs < 100 {
			t.Errorf("resources = %+v, want some cpu time", out.Resources)
		}
	}},
	{name: "measures_every_short_command", run: func(t *testing.T, b *bundle) {
		// A command over in a millisecond is measured whole, every time:
		// the counters are read before it can start.
		for i := range 30 {
			b.reset(t)
			out, _ := b.mustRun(t, "dd", "if=/dev/zero", "of=/dev/null", "bs=8388608", "count=1")
			if b.opts.GVisor {
				// gVisor's memory is its kernel's, not the command's.
				continue
			}
			if out.Resources == nil || out.Resources.PeakMemoryBytes < 4<<20 {
				t.Fatalf("run %d of an 8 MiB dd: resources %+v, want a peak of 4 MiB at least", i, out.Resources)
			}
		}
	}},
	{name: "a_missing_program_does_not_start", run: func(t *testing.T, b *bundle) {
		_, o, err := b.run(t, testutil.Context(t, time.Minute), nil, "", "no-such-program")
		var se *sandbox.StartError
		if !errors.As(err, &se) || se.Reason != sandbox.StartNotFound || !strings.Contains(se.Message, "no-such-program") {
			t.Errorf("run of a missing program: %v; want a StartError, not found", err)
		}
		if o.stdout.Len() != 0 || o.stderr.Len() != 0 {
			t.Errorf("stdout %q stderr %q, want nothing", o.stdout.String(), o.stderr.String())
		}
	}},
	{name: "a_missing_workdir_does_not_start", run: func(t *testing.T, b *bundle) {
		_, _, err := b.run(t, testutil.Context(t, time.Minute), nil, "/workspace/nope", "true")
		var se *sandbox.StartError
		if !errors.As(err, &se) || se.Reason != sandbox.StartWorkDir {
			t.Errorf("run in a missing directory: %v; want a StartError, workdir", err)
		}
	}},
	{name: "a_forged_start_failure_is_output", run: func(t *testing.T, b *bundle) {
		msg := "OCI runtime exec failed: exec failed: unable to start container process: exec: \"x\": executable file not found in $PATH: unknown\r\n"
		out, o := b.mustRun(t, "sh", "-c", "printf '"+strings.ReplaceAll(msg, "\r\n", "\\r\\n")+"'; exit 126")
		if out.ExitCode != 126 || o.stdout.String() != msg {
			t.Errorf("exit %d stdout %q; want the command's own 126 and output", out.ExitCode, o.stdout.String())
		}
	}},
	{name: "the_user_cannot_change_the_agent_every_sandbox_runs", run: func(t *testing.T, b *bundle) {
		// One volume holds the agent binary for every container of the
		// engine, later tenants' included: nothing a user does reaches it.
		_, o := b.mustRun(t, "sh", "-c", `
			a=/.execq/execq-agent
			echo x >>"$a" 2>/dev/null && echo "appended to the agent"
			(: >"$a") 2>/dev/null && echo "truncated the agent"
			rm -f "$a" 2>/dev/null; [ -e "$a" ] || echo "removed the agent"
			mv "$a" /.execq/x 2>/dev/null && echo "moved the agent"
			chmod 777 "$a" 2>/dev/null && echo "changed the agent's mode"
			touch /.execq/new 2>/dev/null && echo "created a file beside the agent"
			ln -s /tmp /.execq/link 2>/dev/null && echo "linked beside the agent"
			echo done`)
		if got := o.stdout.String(); got != "done\n" {
			t.Errorf("the user changed the shared agent volume:\n%s", got)
		}
		// A new sandbox of the same engine runs the same, whole agent.
		b.reset(t)
		if _, o := b.mustRun(t, "echo", "alive"); o.stdout.String() != "alive\n" {
			t.Errorf("after the attempts: %q", o.stdout.String())
		}
	}},
	{name: "the_user_cannot_touch_the_sandbox's_keeper", run: func(t *testing.T, b *bundle) {
		_, o := b.mustRun(t, "sh", "-c", `
			for p in /proc/[0-9]*; do p=${p#/proc/}; [ "$p" = $$ ] && continue; kill -9 "$p" 2>/dev/null && echo "killed $p"; done
			cat /proc/1/environ >/dev/null 2>&1 && echo "read 1/environ"
			ls /proc/1/fd >/dev/null 2>&1 && echo "listed 1/fd"
			echo x >/proc/1/fd/1 2>/dev/null && echo "wrote 1/fd/1"
			grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status | grep -v '0000000000000000$'
			grep '^NoNewPrivs:' /proc/self/status
			echo done`)
		got := o.stdout.String()
		if b.opts.GVisor {
			// gVisor's /proc lets a user read PID 1's environment (the
			// image's) and list its descriptors; opening them is refused.
			// Its status has no NoNewPrivs line (it applies the flag).
			got = strings.ReplaceAll(strings.ReplaceAll(got, "read 1/environ\n", ""), "listed 1/fd\n", "")
			got = strings.Replace(got, "done\n", "NoNewPrivs:\t1\ndone\n", 1)
		}
		if got != "NoNewPrivs:\t1\ndone\n" {
			t.Errorf("the user reached the sandbox's keeper or holds privileges:\n%s", got)
		}
	}},
}
