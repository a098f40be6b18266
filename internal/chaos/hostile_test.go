//go:build chaos

package chaos_test

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/tasks"
)

// hostileCase is a command that attacks the sandbox or the worker from
// inside. Each ends with one of want (any status when want is empty, which
// is then reported) within its timeout plus one second, and is followed by
// a clean execution in the same pool.
type hostileCase struct {
	name   string
	req    tasks.ExecRequest
	want   []tasks.Status
	before func(t *testing.T)
	check  func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration)
}

const defaultCap = 1 << 20 // the worker's default output cap

func TestHostileCode(t *testing.T) {
	e := newEnv(t)
	w := startWorker(t, e, workerOpts{label: "hostile", poolSize: 1})
	stdin10m := make([]byte, 10<<20)
	_, _ = rand.Read(stdin10m)
	stdinSum := md5.Sum(stdin10m)

	var flood floodProbe
	cases := []hostileCase{
		{
			name: "fork_bomb",
			req:  tasks.ExecRequest{Cmd: sh(`f() { f | f & }; f; sleep 100`), Timeout: 3 * time.Second},
			// Under gVisor, as for the sleepers below, the bomb's processes
			// may take the sandbox past its memory limit before its timeout.
			want: withGVisor([]tasks.Status{tasks.StatusTimedOut, tasks.StatusFailed}, tasks.StatusOOMKilled),
		},
		{
			// The main process leaves at once; the bomb goes on without it.
			name: "fork_bomb_detached",
			req:  tasks.ExecRequest{Cmd: sh(`f() { f | f & }; f`), Timeout: 3 * time.Second},
		},
		{
			name: "sleeper_spawner",
			req:  tasks.ExecRequest{Cmd: sh(`while :; do sleep 1000 & done`), Timeout: 3 * time.Second},
			// Under gVisor each process costs the sandbox host memory: 256
			// sleepers take it past its memory limit, which kills it whole.
			want: withGVisor([]tasks.Status{tasks.StatusTimedOut, tasks.StatusFailed}, tasks.StatusOOMKilled),
		},
		{
			name: "memory_hog",
			req:  tasks.ExecRequest{Cmd: sh(`tail -c 200m /dev/zero`), MemoryBytes: 32 << 20, Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusOOMKilled},
		},
		{
			name: "memory_hog_in_a_child",
			req:  tasks.ExecRequest{Cmd: sh(`tail -c 200m /dev/zero & wait $!`), MemoryBytes: 32 << 20, Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusOOMKilled},
		},
		{
			name: "busy_loop",
			req:  tasks.ExecRequest{Cmd: sh(`while :; do :; done`), Timeout: 2 * time.Second},
			want: []tasks.Status{tasks.StatusTimedOut},
		},
		{
			name: "busy_loop_ignoring_signals",
			req:  tasks.ExecRequest{Cmd: sh(`trap '' TERM INT HUP QUIT; (trap '' TERM INT HUP; while :; do :; done) & while :; do :; done`), Timeout: 2 * time.Second},
			want: []tasks.Status{tasks.StatusTimedOut},
		},
		{
			// The control: printable output, which JSON keeps as it is.
			name:   "output_flood_printable",
			req:    tasks.ExecRequest{Cmd: []string{"yes"}, Timeout: 5 * time.Second},
			want:   []tasks.Status{tasks.StatusTimedOut},
			before: func(t *testing.T) { flood.before(t, e, w) },
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				flood.stream(t, c, e, res, "stdout", "y\n", defaultCap, -1)
				flood.costs(t, c, e, w, res, false)
			},
		},
		{
			name:   "output_flood_cat_dev_zero",
			req:    tasks.ExecRequest{Cmd: []string{"cat", "/dev/zero"}, Timeout: 10 * time.Second},
			want:   []tasks.Status{tasks.StatusTimedOut},
			before: func(t *testing.T) { flood.before(t, e, w) },
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				flood.stream(t, c, e, res, "stdout", "\x00", defaultCap, -1)
				flood.costs(t, c, e, w, res, false)
			},
		},
		{
			// Smaller under gVisor, whose pipes carried 3 to 20 MiB/s here.
			name:   "output_flood_2g",
			req:    tasks.ExecRequest{Cmd: []string{"head", "-c", strconv.FormatInt(floodBytes(2<<30), 10), "/dev/zero"}, Timeout: 2 * time.Minute},
			want:   []tasks.Status{tasks.StatusSucceeded},
			before: func(t *testing.T) { flood.before(t, e, w) },
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				flood.stream(t, c, e, res, "stdout", "\x00", defaultCap, floodBytes(2<<30))
				flood.costs(t, c, e, w, res, false)
			},
		},
		{
			name: "output_flood_both_streams",
			req: tasks.ExecRequest{Cmd: sh(fmt.Sprintf(`head -c %[1]d /dev/zero >&2 & head -c %[1]d /dev/zero; wait`, floodBytes(256<<20))),
				Timeout: 2 * time.Minute},
			want:   []tasks.Status{tasks.StatusSucceeded},
			before: func(t *testing.T) { flood.before(t, e, w) },
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				flood.stream(t, c, e, res, "stdout", "\x00", defaultCap, floodBytes(256<<20))
				flood.stream(t, c, e, res, "stderr", "\x00", defaultCap, floodBytes(256<<20))
				flood.costs(t, c, e, w, res, false)
			},
		},
		{
			// The largest cap a request may ask for, of bytes JSON escapes.
			name: "output_max_cap_of_control_bytes",
			req: tasks.ExecRequest{Cmd: []string{"head", "-c", "33554432", "/dev/zero"},
				MaxOutputBytes: 16 << 20, Timeout: time.Minute},
			want:   []tasks.Status{tasks.StatusSucceeded},
			before: func(t *testing.T) { flood.before(t, e, w) },
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				flood.stream(t, c, e, res, "stdout", "\x00", 16<<20, 32<<20)
				flood.costs(t, c, e, w, res, true)
			},
		},
		{
			name: "detached_with_setsid",
			req: tasks.ExecRequest{Cmd: sh(`
				setsid sh -c 'trap "" HUP TERM INT; while :; do sleep 1; done' >/dev/null 2>&1 </dev/null &
				setsid sleep 300 >/dev/null 2>&1 </dev/null &
				(trap "" HUP; sleep 300 >/dev/null 2>&1 &)
				echo detached`), Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusSucceeded},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				if res.Stdout != "detached\n" {
					t.Errorf("stdout %q", res.Stdout)
				}
			},
		},
		{
			name: "child_keeps_stdout_open",
			req:  tasks.ExecRequest{Cmd: sh(`sleep 60 & echo done`), Timeout: 30 * time.Second},
			want: []tasks.Status{tasks.StatusSucceeded},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				atOnce(t, res, elapsed, "done\n")
			},
		},
		{
			name: "child_keeps_stderr_open",
			req:  tasks.ExecRequest{Cmd: sh(`sleep 60 >&2 & echo done`), Timeout: 30 * time.Second},
			want: []tasks.Status{tasks.StatusSucceeded},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				atOnce(t, res, elapsed, "done\n")
			},
		},
		{
			name: "writes_everywhere",
			req:  tasks.ExecRequest{Cmd: sh(writeEverywhere), Timeout: 30 * time.Second},
			want: []tasks.Status{tasks.StatusSucceeded},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				var wrote []string
				for line := range strings.Lines(res.Stdout) {
					if dir, ok := strings.CutPrefix(strings.TrimSpace(line), "wrote "); ok {
						wrote = append(wrote, dir)
						if !underAny(dir, "/workspace", "/tmp", "/dev/shm", "/dev/mqueue") {
							t.Errorf("the command could write into %s, outside the writable mounts", dir)
						}
					}
				}
				c.figure(t, "writable directories: %s", strings.Join(wrote, " "))
				for _, must := range []string{"/workspace", "/tmp", "/dev/shm"} {
					if !slices.Contains(wrote, must) {
						t.Errorf("could not write into %s; the case proves nothing about it (stdout %q stderr %q)", must, res.Stdout, res.Stderr)
					}
				}
			},
		},
		{
			name: "fill_workspace",
			req:  tasks.ExecRequest{Cmd: sh(`dd if=/dev/zero of=/workspace/fill bs=1M 2>&1; echo "dd exit $?"; df -k /workspace | tail -n 1`), Timeout: 30 * time.Second},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				c.figure(t, "exit %d, stdout %q", res.ExitCode, lastLines(res.Stdout, 3))
			},
		},
		{
			// With memory to spare, the fill ends at ENOSPC; the next
			// execution asks for the default limit, below what the files
			// hold.
			name: "fill_workspace_with_a_larger_memory_limit",
			req: tasks.ExecRequest{Cmd: sh(`dd if=/dev/zero of=/workspace/fill bs=1M 2>&1; echo "dd exit $?"; df -k /workspace | tail -n 1`),
				MemoryBytes: 1 << 30, Timeout: 30 * time.Second},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				c.figure(t, "exit %d, stdout %q", res.ExitCode, lastLines(res.Stdout, 3))
			},
		},
		{
			name: "fill_tmp",
			req:  tasks.ExecRequest{Cmd: sh(`dd if=/dev/zero of=/tmp/fill bs=1M 2>&1; echo "dd exit $?"; df -k /tmp | tail -n 1`), Timeout: 30 * time.Second},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				c.figure(t, "exit %d, stdout %q", res.ExitCode, lastLines(res.Stdout, 3))
			},
		},
		{
			name: "fill_every_tmpfs",
			req: tasks.ExecRequest{Cmd: sh(`for d in /tmp /dev/shm /workspace; do dd if=/dev/zero of=$d/fill bs=1M 2>/dev/null; echo "$d: dd exit $?"; done`),
				Timeout: 30 * time.Second},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				c.figure(t, "exit %d, stdout %q", res.ExitCode, res.Stdout)
			},
		},
		{
			name: "stdin_closed_by_the_command",
			req:  tasks.ExecRequest{Cmd: sh(`exec 0<&-; echo closed; cat; echo "cat exit $?"`), Stdin: stdin10m, Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusSucceeded},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				if res.Stdout != "closed\ncat exit 1\n" {
					t.Errorf("stdout %q, want closed and cat failing on the closed stdin", res.Stdout)
				}
			},
		},
		{
			name: "stdin_10m_not_read",
			req:  tasks.ExecRequest{Cmd: []string{"echo", "ignored"}, Stdin: stdin10m, Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusSucceeded},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				atOnce(t, res, elapsed, "ignored\n")
			},
		},
		{
			name: "stdin_10m_read_partly",
			req:  tasks.ExecRequest{Cmd: sh(`head -c 100 >/dev/null; sleep 1; echo read`), Stdin: stdin10m, Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusSucceeded},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				if res.Stdout != "read\n" {
					t.Errorf("stdout %q", res.Stdout)
				}
			},
		},
		{
			name: "stdin_10m_read_all",
			req:  tasks.ExecRequest{Cmd: []string{"md5sum"}, Stdin: stdin10m, Timeout: 20 * time.Second},
			want: []tasks.Status{tasks.StatusSucceeded},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				if want := hex.EncodeToString(stdinSum[:]) + "  -\n"; res.Stdout != want {
					t.Errorf("md5sum of the 10 MB stdin: %q, want %q", res.Stdout, want)
				}
			},
		},
		{
			name: "writes_into_its_own_stdin",
			req:  tasks.ExecRequest{Cmd: sh(`head -c 10485760 /dev/zero >&0; echo "exit $?"`), Stdin: []byte("x"), Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusSucceeded},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				c.figure(t, "stdout %q", res.Stdout)
			},
		},
		{
			name: "kill_9_own_process_group",
			req:  tasks.ExecRequest{Cmd: sh(`echo before; kill -9 0; echo after`), Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusFailed},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				exitWith(t, res, 137, "before\n")
			},
		},
		{
			name: "kill_term_all",
			req:  tasks.ExecRequest{Cmd: sh(`sleep 30 & kill -TERM -1; wait $!; exit $?`), Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusFailed},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				exitWith(t, res, 143, "")
			},
		},
		{
			name: "kill_9_all",
			req:  tasks.ExecRequest{Cmd: sh(`sleep 30 & kill -9 -1; wait $!; exit $?`), Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusFailed},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				exitWith(t, res, 137, "")
			},
		},
		{
			// A child kills everything it may signal, its parent (the
			// command) included, and lives on.
			name: "kill_9_all_from_a_child",
			req:  tasks.ExecRequest{Cmd: sh(`sh -c 'kill -9 -1; sleep 30'; echo survived`), Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusFailed},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				exitWith(t, res, 137, "")
				if elapsed > 2*time.Second+time.Duration(res.QueuedMs)*time.Millisecond {
					t.Errorf("the result came %s after Submit although the command died at once", elapsed)
				}
			},
		},
		{
			name: "kill_init_and_keepalive",
			req:  tasks.ExecRequest{Cmd: sh(`for p in /proc/[0-9]*; do p=${p#/proc/}; [ "$p" = $$ ] && continue; kill -9 "$p" 2>/dev/null && echo "killed $p"; done; echo "done"`), Timeout: 10 * time.Second},
			want: []tasks.Status{tasks.StatusSucceeded},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result, elapsed time.Duration) {
				if res.Stdout != "done\n" {
					t.Errorf("the command could signal processes of the sandbox not its own: %q", res.Stdout)
				}
			},
		},
	}
	for _, hc := range cases {
		t.Run(hc.name, func(t *testing.T) {
			c := track(t, "hostile", false)
			if hc.before != nil {
				hc.before(t)
			}
			res, elapsed := e.run(t, hc.req)
			boundCheck(t, c, res, elapsed, hc.req.Timeout)
			if len(hc.want) > 0 && !slices.Contains(hc.want, res.Status) {
				t.Errorf("status %s (exit %d, error %q), want one of %v; stdout %q stderr %q",
					res.Status, res.ExitCode, res.Error, hc.want, clip(res.Stdout), clip(res.Stderr))
			}
			if len(hc.want) == 0 {
				c.figure(t, "status %s exit %d error %q", res.Status, res.ExitCode, res.Error)
			}
			if res.Attempt != 1 {
				t.Errorf("attempt %d, want 1: a hostile command must not cost a retry", res.Attempt)
			}
			if hc.check != nil {
				hc.check(t, c, res, elapsed)
			}
			e.followUp(t, c, "", w.name)
			w.settle(t, e.docker, 1, 20*time.Second)
		})
	}
}

// writeEverywhere tries to leave a marker file in every directory of the
// file system, then leaves harder-to-remove things where it can.
const writeEverywhere = `
tok=execq-chaos-leak-$$
for d in $(find / \( -path /proc -o -path /sys \) -prune -o -type d -print 2>/dev/null); do
	if echo secret 2>/dev/null >"$d/$tok"; then echo "wrote $d"; fi
done
[ -d /dev/mqueue ] && : >/dev/mqueue/$tok 2>/dev/null && echo "created /dev/mqueue/$tok"
cd /workspace || exit 1
mkdir -p deep/er && echo secret >deep/er/.hidden-$tok && chmod 000 deep/er deep
echo secret >./-rf-$tok
echo secret >"/tmp/ $tok with spaces"
echo secret >"/tmp/..$tok"
echo secret >"/dev/shm/.$tok"
mkfifo /tmp/fifo-$tok
ln -s /nonexistent /dev/shm/dangling-$tok
ln -s loop-$tok /tmp/loop-$tok
mkdir /tmp/ro-$tok && echo secret >/tmp/ro-$tok/f && chmod 500 /tmp/ro-$tok
echo secret >"$HOME/.profile-$tok"
exit 0
`

func underAny(dir string, roots ...string) bool {
	for _, r := range roots {
		if dir == r || strings.HasPrefix(dir, r+"/") {
			return true
		}
	}
	return false
}

// atOnce checks that a command whose leftover holds its output open gets
// its result as soon as it exits, well before the leftover ends.
func atOnce(t *testing.T, res *tasks.Result, elapsed time.Duration, stdout string) {
	t.Helper()
	if res.Stdout != stdout {
		t.Errorf("stdout %q, want %q", res.Stdout, stdout)
	}
	queued := time.Duration(res.QueuedMs) * time.Millisecond
	if elapsed > time.Second+queued {
		t.Errorf("the result came %s after Submit (queued %s): not at once", elapsed, queued)
	}
}

func exitWith(t *testing.T, res *tasks.Result, code int, stdout string) {
	t.Helper()
	if res.ExitCode != code || res.Stdout != stdout {
		t.Errorf("exit %d stdout %q, want exit %d stdout %q (stderr %q)", res.ExitCode, res.Stdout, code, stdout, clip(res.Stderr))
	}
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

func lastLines(s string, n int) string { return tail(s, n) }

// floodProbe measures what an output flood costs the worker and Redis.
type floodProbe struct {
	hwm0, redis0 int64 // before the case
}

// before takes the worker's peak memory and Redis's used memory before a
// flood case.
func (f *floodProbe) before(t *testing.T, e *env, w *workerProc) {
	t.Helper()
	_, f.hwm0 = w.memory(t)
	f.redis0 = redisUsedMemory(t, e)
}

// stream checks one output stream of res: kept == capBytes of fill bytes,
// truncated, every byte counted (exactly total when it is known, else more
// than the cap), and the stream holding what was kept.
func (f *floodProbe) stream(t *testing.T, c *caseRecord, e *env, res *tasks.Result, which string, fill string, capBytes, total int64) {
	t.Helper()
	kept, truncated, counted := res.Stdout, res.StdoutTruncated, res.StdoutBytes
	typ := tasks.EventStdout
	if which == "stderr" {
		kept, truncated, counted, typ = res.Stderr, res.StderrTruncated, res.StderrBytes, tasks.EventStderr
	}
	if int64(len(kept)) != capBytes || !truncated || strings.Trim(kept, fill) != "" {
		t.Errorf("%s: kept %d bytes, truncated %v; want the %d-byte cap of %q, truncated", which, len(kept), truncated, capBytes, fill)
	}
	if total >= 0 && counted != total || total < 0 && counted <= capBytes {
		t.Errorf("%s: counted %d bytes, want %d", which, counted, total)
	}
	rate := float64(counted) / (float64(max(res.DurationMs, 1)) / 1000) / (1 << 20)
	c.figure(t, "%s: %d bytes written in %dms (%.0f MiB/s), %d kept", which, counted, res.DurationMs, rate, len(kept))
	events := e.events(t, res.ExecutionID)
	if n := int64(len(streamed(events, typ))); n != capBytes {
		t.Errorf("%s: the stream holds %d bytes, want the %d bytes kept", which, n, capBytes)
	}
	exit, err := events[len(events)-1].Exit()
	if err != nil {
		t.Fatal(err)
	}
	if which == "stdout" && !exit.StdoutTruncated || which == "stderr" && !exit.StderrTruncated {
		t.Errorf("%s: the exit event does not say the output was truncated: %+v", which, exit)
	}
}

// costs checks that the flood of res left the worker's peak memory and
// Redis's memory flat in the volume of output (gigabytes), and near what
// was kept. The worker holds the kept output, its string in the result and
// the result's JSON (a third more, as base64), and the garbage collector
// lets the heap reach twice what is live: its peak may grow by 64 MiB plus
// eight times what was kept. The stream holds about what was kept. Redis's
// used memory must stay small (40 MiB) — or, when strict, within four times
// what was kept, the result key within twice.
func (f *floodProbe) costs(t *testing.T, c *caseRecord, e *env, w *workerProc, res *tasks.Result, strict bool) {
	t.Helper()
	kept := int64(len(res.Stdout) + len(res.Stderr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rss, hwm := w.memory(t)
	streamMem, _ := e.rc.MemoryUsage(ctx, tasks.Keys{}.Stream(res.ExecutionID), 0).Result()
	resultMem, _ := e.rc.MemoryUsage(ctx, tasks.Keys{}.Result(res.ExecutionID), 0).Result()
	taskMem, _ := e.rc.MemoryUsage(ctx, "asynq:{default}:t:"+res.ExecutionID, 0).Result()
	used := redisUsedMemory(t, e)
	c.figure(t, "kept %s; worker VmHWM %s → %s (VmRSS %s); redis used_memory %s → %s: stream %s, result key %s, asynq task %s",
		mib(kept), mib(f.hwm0), mib(hwm), mib(rss), mib(f.redis0), mib(used), mib(streamMem), mib(resultMem), mib(taskMem))
	if grew := hwm - f.hwm0; grew > 64<<20+8*kept {
		t.Errorf("the worker's peak memory grew by %s (VmHWM %s → %s) for %s of kept output: not flat; "+
			"the result JSON is %s (%.1f× what was kept)",
			mib(grew), mib(f.hwm0), mib(hwm), mib(kept), mib(resultMem), float64(resultMem)/float64(kept))
	}
	if streamMem > kept*3/2+(256<<10) {
		t.Errorf("the stream takes %s in Redis for %s of kept output", mib(streamMem), mib(kept))
	}
	grew := used - f.redis0
	switch {
	case !strict && grew > 40<<20:
		t.Errorf("redis used_memory grew by %s for %s of kept output", mib(grew), mib(kept))
	case strict && resultMem > 2*kept+(64<<10):
		t.Errorf("the result key takes %s in Redis for %s of kept output (%.1f×), and the asynq task holds another %s: "+
			"redis used_memory grew by %s for one execution", mib(resultMem), mib(kept), float64(resultMem)/float64(kept), mib(taskMem), mib(grew))
	case strict && grew > 4*kept+(4<<20):
		t.Errorf("redis used_memory grew by %s for %s of kept output", mib(grew), mib(kept))
	}
}

func mib(n int64) string {
	if n < 1<<20 {
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + "KiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "MiB"
}

func redisUsedMemory(t *testing.T, e *env) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := harness.UsedMemory(ctx, e.rc)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// floodBytes is what a flood case writes: n, or an eighth of it under
// gVisor, whose pipes carry 3 to 20 MiB/s on a busy 2-core machine, so that
// the flood still ends well within its timeout there.
func floodBytes(n int64) int64 {
	if gvisor() {
		return n / 8
	}
	return n
}

// withGVisor adds the statuses a case may also end with under gVisor.
func withGVisor(want []tasks.Status, also ...tasks.Status) []tasks.Status {
	if gvisor() {
		return append(want, also...)
	}
	return want
}
