//go:build chaos

package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// leakCase is one class of attack on the next tenant: a first execution
// (the previous tenant) leaves something behind, and a second one (the next
// tenant, on the same container) must see nothing of it, run on its own
// clock at its first attempt, and be followed by a sandbox as fresh as a
// new one.
type leakCase struct {
	name  string
	leave tasks.ExecRequest
	probe tasks.ExecRequest
	// raw enqueues the probe past the producer's checks, as a hostile
	// producer would, so that the worker's own checks are what stands.
	raw   bool
	check func(t *testing.T, c *caseRecord, leave, probe *tasks.Result)
}

// secretFile is what the previous tenants of leakCases leave in
// /workspace: an .env file in a directory, as an agent's checkout would.
var secretFile = tasks.File{Path: "app/.env", Content: []byte("API_KEY=execq-chaos-leak-secret\n")}

func TestNothingReachesTheNextTenant(t *testing.T) {
	e := newEnv(t)
	w := startWorker(t, e, workerOpts{label: "leak", poolSize: 1})
	attack := attackFile(t)
	hugeEnv := strings.Repeat("y", 300<<10)
	hugeArgs := make([]string, 24)
	for i := range hugeArgs {
		hugeArgs[i] = strings.Repeat("a", 100<<10)
	}
	cases := []leakCase{
		{
			name:  "collect_after_a_missing_workdir",
			leave: tasks.ExecRequest{Files: []tasks.File{secretFile}, Cmd: []string{"true"}},
			probe: tasks.ExecRequest{WorkDir: "nope", Collect: []string{"**"}, Cmd: []string{"true"}},
			check: func(t *testing.T, c *caseRecord, _, probe *tasks.Result) {
				noFiles(t, probe)
				wantRejected(t, probe, "working directory")
			},
		},
		{
			name:  "collect_after_an_oversized_environment",
			leave: tasks.ExecRequest{Files: []tasks.File{secretFile}, Cmd: []string{"true"}},
			probe: tasks.ExecRequest{Env: map[string]string{"HUGE": hugeEnv}, Collect: []string{"**"}, Cmd: []string{"true"}},
			raw:   true,
			check: func(t *testing.T, c *caseRecord, _, probe *tasks.Result) {
				noFiles(t, probe)
				wantRejected(t, probe, "HUGE")
			},
		},
		{
			name:  "collect_after_an_oversized_argv",
			leave: tasks.ExecRequest{Files: []tasks.File{secretFile}, Cmd: []string{"true"}},
			probe: tasks.ExecRequest{Collect: []string{"**"}, Cmd: append([]string{"true"}, hugeArgs...)},
			raw:   true,
			check: func(t *testing.T, c *caseRecord, _, probe *tasks.Result) {
				noFiles(t, probe)
				wantRejected(t, probe, "argument")
			},
		},
		{
			name:  "collect_what_the_last_tenant_left",
			leave: tasks.ExecRequest{Files: []tasks.File{secretFile}, Cmd: sh(`cp app/.env /tmp/copy; mkdir -p /dev/shm/x; cp app/.env /dev/shm/x/`)},
			probe: tasks.ExecRequest{Collect: []string{"**", ".*", "**/.*"}, Cmd: sh(`ls -A /workspace /tmp /dev/shm`)},
			check: func(t *testing.T, c *caseRecord, _, probe *tasks.Result) {
				noFiles(t, probe)
				if probe.Status != tasks.StatusSucceeded || strings.TrimSpace(strings.ReplaceAll(probe.Stdout, ":", "")) != "/dev/shm\n\n/tmp\n\n/workspace" {
					t.Errorf("the next tenant lists %q (status %s)", probe.Stdout, probe.Status)
				}
			},
		},
		{
			name:  "many_empty_files",
			leave: tasks.ExecRequest{Files: []tasks.File{attack}, Cmd: sh(`./attack files 180000 /workspace; ./attack files 180000 /tmp; ./attack files 180000 /dev/shm`), Timeout: time.Minute},
			probe: tasks.ExecRequest{Cmd: []string{"echo", "hi"}, Timeout: 5 * time.Second},
			check: func(t *testing.T, c *caseRecord, leave, probe *tasks.Result) {
				c.figure(t, "left: %s", strings.Join(strings.Fields(leave.Stdout), " "))
				if probe.Status != tasks.StatusSucceeded || probe.Stdout != "hi\n" {
					t.Errorf("the next tenant's echo: status %s stdout %q error %q", probe.Status, probe.Stdout, probe.Error)
				}
				if probe.Resources != nil && probe.Resources.CPUTimeMs > 500 {
					t.Errorf("the next tenant's echo was charged %d ms of CPU", probe.Resources.CPUTimeMs)
				}
				if probe.DurationMs > 1000 {
					t.Errorf("the next tenant's echo took %d ms", probe.DurationMs)
				}
			},
		},
		{
			name:  "tree_deeper_than_path_max",
			leave: tasks.ExecRequest{Files: []tasks.File{attack}, Cmd: sh(`./attack deep 3000 /workspace && ./attack deep 3000 /tmp && ./attack deep 3000 /dev/shm`), Timeout: time.Minute},
			probe: tasks.ExecRequest{Cmd: sh(`ls -A /workspace /tmp /dev/shm`)},
			check: func(t *testing.T, c *caseRecord, leave, probe *tasks.Result) {
				c.figure(t, "left: %s", strings.TrimSpace(leave.Stdout))
				if leave.Status != tasks.StatusSucceeded {
					t.Fatalf("the tree was not made: %s %q %q", leave.Status, leave.Stdout, leave.Stderr)
				}
				if probe.Stdout != "/dev/shm:\n\n/tmp:\n\n/workspace:\n" {
					t.Errorf("the next tenant lists %q", probe.Stdout)
				}
			},
		},
		{
			name:  "unreadable_tree",
			leave: tasks.ExecRequest{Cmd: sh(`mkdir -p a/b/c && echo secret >a/b/c/f && chmod 0 a/b/c a/b a && mkdir /tmp/x && echo s >/tmp/x/f && chmod 0 /tmp/x && chmod 0 /workspace`)},
			probe: tasks.ExecRequest{Cmd: sh(`ls -A /workspace /tmp; stat -c %a /workspace`)},
			check: func(t *testing.T, c *caseRecord, leave, probe *tasks.Result) {
				if !strings.HasSuffix(probe.Stdout, "755\n") || strings.Contains(probe.Stdout, "a\n") {
					t.Errorf("the next tenant sees %q (status %s, stderr %q)", probe.Stdout, probe.Status, probe.Stderr)
				}
			},
		},
		{
			name:  "system_v_ipc",
			leave: tasks.ExecRequest{Files: []tasks.File{attack}, Cmd: sh(`./attack ipc && ./attack ipc`)},
			probe: tasks.ExecRequest{Files: []tasks.File{attack}, Cmd: []string{"./attack", "lsipc"}},
			check: func(t *testing.T, c *caseRecord, leave, probe *tasks.Result) {
				if leave.Status != tasks.StatusSucceeded {
					t.Fatalf("the objects were not made: %s %q %q", leave.Status, leave.Stdout, leave.Stderr)
				}
				if probe.Stdout != "" {
					t.Errorf("the next tenant sees System V objects: %q", probe.Stdout)
				}
			},
		},
		{
			name:  "symlink_as_the_next_workdir",
			leave: tasks.ExecRequest{Cmd: sh(`ln -s / /workspace/w; ln -s /etc /workspace/etc`)},
			probe: tasks.ExecRequest{WorkDir: "w", Cmd: sh(`pwd; ls`)},
			check: func(t *testing.T, c *caseRecord, _, probe *tasks.Result) {
				if strings.Contains(probe.Stdout, "proc") {
					t.Errorf("the next tenant's working directory is outside /workspace: %q", probe.Stdout)
				}
				wantRejected(t, probe, "working directory")
			},
		},
		{
			// The next tenant's own environment must not break the
			// cleanup of the last one's files, nor the cleanup run on it.
			name:  "hostile_environment",
			leave: tasks.ExecRequest{Files: []tasks.File{secretFile}, Cmd: []string{"true"}, Env: hostileEnv()},
			probe: tasks.ExecRequest{Cmd: []string{"/bin/ls", "-A", "/workspace", "/tmp", "/dev/shm"}, Env: hostileEnv()},
			check: func(t *testing.T, c *caseRecord, _, probe *tasks.Result) {
				if probe.Status != tasks.StatusSucceeded || strings.Contains(probe.Stdout, "app") {
					t.Errorf("the next tenant: status %s stdout %q stderr %q error %q", probe.Status, probe.Stdout, probe.Stderr, probe.Error)
				}
			},
		},
		{
			// A leftover of the sandbox's uid stops every execq-agent helper
			// it sees (docker-exec runs the reset as that uid) and ptraces it
			// into reporting a clean reset, to live on into the next tenant.
			name:  "leftover_ptraces_the_reset",
			leave: tasks.ExecRequest{Files: []tasks.File{attack}, Cmd: sh(`./attack tracehelper /.execq/execq-agent && cp attack /tmp/.hijacker && /tmp/.hijacker detach hijack 20 && sleep 0.2`)},
			probe: tasks.ExecRequest{Cmd: sh(`sleep 0.3; for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline 2>/dev/null; echo; done`)},
			check: func(t *testing.T, c *caseRecord, leave, probe *tasks.Result) {
				c.figure(t, "%s", strings.TrimSpace(leave.Stdout))
				// Under gVisor the binary is readable (gVisor executes only
				// what its user can read): only the agent runtime, which
				// starts no helper as the user, runs there.
				if !gvisor() && !strings.Contains(leave.Stdout, "ptrace of the helper: operation not permitted") {
					t.Errorf("the user could trace the agent's binary: stdout %q stderr %q", leave.Stdout, leave.Stderr)
				}
				if strings.Contains(probe.Stdout, "hijack") {
					t.Errorf("the last tenant's hijacker runs beside the next tenant: %q", probe.Stdout)
				}
			},
		},
		{
			// Extended attributes and a default ACL on /workspace itself, which
			// the sandbox's user owns: a channel to the next tenant, and every
			// file it creates would be mode 0000.
			name:  "attributes_of_the_workspace",
			leave: tasks.ExecRequest{Files: []tasks.File{attack}, Cmd: sh(`./attack setxattr /workspace user.note execq-chaos-leak-secret; ./attack denyacl /workspace; ./attack lsxattr /workspace >&2; rm attack`)},
			probe: tasks.ExecRequest{Files: []tasks.File{attack}, Cmd: sh(`echo fresh > new && cat new && mkdir d && cd d && cd .. && ./attack lsxattr /workspace`)},
			check: func(t *testing.T, c *caseRecord, leave, probe *tasks.Result) {
				// gVisor keeps user.* attributes but has no ACLs.
				c.figure(t, "the last tenant set: %s", strings.TrimSpace(leave.Stderr))
				if probe.Status != tasks.StatusSucceeded || probe.Stdout != "fresh\n" {
					t.Errorf("the next tenant's workspace carries the last one's attributes: status %s stdout %q stderr %q", probe.Status, probe.Stdout, probe.Stderr)
				}
			},
		},
		{
			name:  "leftover_process_rewriting_files",
			leave: tasks.ExecRequest{Cmd: sh(`(trap '' TERM HUP; while :; do echo secret >/workspace/late; echo secret >/tmp/late; done) >/dev/null 2>&1 & echo left`)},
			probe: tasks.ExecRequest{Cmd: sh(`sleep 0.5; ls -A /workspace /tmp`)},
			check: func(t *testing.T, c *caseRecord, _, probe *tasks.Result) {
				if strings.Contains(probe.Stdout, "late") {
					t.Errorf("a process of the last tenant writes into the next one's sandbox: %q", probe.Stdout)
				}
			},
		},
	}
	for _, lc := range cases {
		t.Run(lc.name, func(t *testing.T) {
			c := track(t, "next tenant", false)
			leave, _ := e.run(t, lc.leave)
			var probe *tasks.Result
			var elapsed time.Duration
			if lc.raw {
				start := time.Now()
				id := "raw-" + lc.name + "-" + newToken()[:6]
				lc.probe.ID = id
				payload, err := tasks.EncodeRequest(&lc.probe)
				if err != nil {
					t.Fatal(err)
				}
				e.enqueueRaw(t, id, payload)
				probe = e.wait(t, id, time.Minute)
				elapsed = time.Since(start)
			} else {
				probe, elapsed = e.run(t, lc.probe)
			}
			c.figure(t, "next tenant: %s in %s (attempt %d)", probe.Status, elapsed.Round(time.Millisecond), probe.Attempt)
			if probe.Attempt > 1 {
				t.Errorf("the next tenant ran at attempt %d: what the last one left cost it a retry (error %q)", probe.Attempt, probe.Error)
			}
			lc.check(t, c, leave, probe)
			e.followUp(t, c, "", w.name)
		})
	}
}

// hostileEnv is what a tenant may set to break a cleanup that runs in its
// environment.
func hostileEnv() map[string]string {
	return map[string]string{
		"PATH": "/nonexistent", "IFS": "/", "ENV": "/workspace/x.sh", "BASH_ENV": "/workspace/x.sh",
		"SHELLOPTS": "xtrace:noglob", "CDPATH": "/", "LD_PRELOAD": "/workspace/x.so", "GLOBIGNORE": "*",
	}
}

func noFiles(t *testing.T, res *tasks.Result) {
	t.Helper()
	for _, f := range res.Files {
		t.Errorf("the next tenant collected %s (%d bytes) it never wrote: %q", f.Path, f.Size, clip(string(f.Content)))
	}
}

func wantRejected(t *testing.T, res *tasks.Result, says string) {
	t.Helper()
	if res.Status != tasks.StatusRejected || !strings.Contains(res.Error, says) {
		t.Errorf("status %s exit %d error %q stdout %q; want rejected saying %q", res.Status, res.ExitCode, res.Error, clip(res.Stdout), says)
	}
}

// TestCollectIsBounded checks that collecting files costs what the request
// asked for: only matching files are read, within the execution's deadline
// plus a small budget, and a leftover process cannot change what is read.
func TestCollectIsBounded(t *testing.T) {
	e := newEnv(t)
	w := startWorker(t, e, workerOpts{label: "collect", poolSize: 1})
	attack := attackFile(t)
	const budget = 5 * time.Second // what collecting may add past the deadline
	cases := []struct {
		name  string
		req   tasks.ExecRequest
		check func(t *testing.T, c *caseRecord, res *tasks.Result)
	}{
		{
			name: "sparse_file_not_matched",
			req:  tasks.ExecRequest{Timeout: time.Second, Collect: []string{"none.txt"}, Cmd: []string{"truncate", "-s", "200G", "big"}},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				if len(res.Files) != 0 {
					t.Errorf("collected %d files, want none", len(res.Files))
				}
			},
		},
		{
			name: "sparse_file_matched",
			req:  tasks.ExecRequest{Timeout: time.Second, Collect: []string{"big"}, Cmd: []string{"truncate", "-s", "200G", "big"}},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				if len(res.Files) != 1 || res.Files[0].Error == "" || len(res.Files[0].Content) != 0 {
					t.Errorf("files %v; want big reported as over the cap, without content", describeFiles(res.Files))
				}
			},
		},
		{
			name: "many_matching_files",
			req:  tasks.ExecRequest{Timeout: 20 * time.Second, Files: []tasks.File{attack}, Collect: []string{"**"}, Cmd: sh(`mkdir d && ./attack files 50000 d`)},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				c.figure(t, "%d entries returned, error %q", len(res.Files), res.Error)
				if len(res.Files) > collectFilesCap+1 {
					t.Errorf("returned %d entries; the cap is %d", len(res.Files), collectFilesCap)
				}
				if !strings.Contains(res.Error, "collect") {
					t.Errorf("the result does not say the collection was cut: %q", res.Error)
				}
			},
		},
		{
			name: "leftover_process_rewrites_what_is_collected",
			req: tasks.ExecRequest{Timeout: 10 * time.Second, Collect: []string{"*.txt"},
				Cmd: sh(`echo data >out.txt; (while :; do echo more >>grow.txt; done) >/dev/null 2>&1 & sleep 0.2; echo started`)},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				for _, f := range res.Files {
					if f.Error != "" || int64(len(f.Content)) != f.Size {
						t.Errorf("%s: size %d, content %d bytes, error %q: read while it changed", f.Path, f.Size, len(f.Content), f.Error)
					}
					if f.Path == "out.txt" && string(f.Content) != "data\n" {
						t.Errorf("out.txt = %q", f.Content)
					}
				}
				if res.Error != "" {
					t.Errorf("error %q", res.Error)
				}
			},
		},
		{
			name: "links_and_special_files",
			req:  tasks.ExecRequest{Collect: []string{"*"}, Cmd: sh(`ln -s /etc/passwd link; mkfifo fifo; ln -s /workspace/loop loop; echo ok >plain`)},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				got := describeFiles(res.Files)
				for _, f := range res.Files {
					if f.Path != "plain" && (f.Error == "" || len(f.Content) != 0) {
						t.Errorf("%s returned with content %q: %v", f.Path, f.Content, got)
					}
					if f.Path == "plain" && string(f.Content) != "ok\n" {
						t.Errorf("plain = %q", f.Content)
					}
				}
				if len(res.Files) != 4 {
					t.Errorf("files %v, want link, fifo, loop (reported) and plain", got)
				}
			},
		},
		{
			name: "dotfiles_only_when_named",
			req:  tasks.ExecRequest{Collect: []string{"*", "**/*.txt", "keep/.named"}, Cmd: sh(`mkdir -p .git keep && echo x >.env && echo x >.git/config && echo x >keep/.named && echo x >keep/.other && echo x >a.txt && echo x >.git/b.txt`)},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				var paths []string
				for _, f := range res.Files {
					paths = append(paths, f.Path)
				}
				if got := strings.Join(paths, " "); got != "a.txt keep keep/.named" && got != "a.txt keep/.named" {
					t.Errorf("collected %q; want a.txt and keep/.named, no dotfile a glob does not name", got)
				}
			},
		},
	}
	for _, cc := range cases {
		t.Run(cc.name, func(t *testing.T) {
			c := track(t, "collect", false)
			res, elapsed := e.run(t, cc.req)
			bound := cc.req.Timeout + budget + time.Duration(res.QueuedMs)*time.Millisecond
			if cc.req.Timeout == 0 {
				bound = 30*time.Second + budget
			}
			c.figure(t, "%s in %s (bound %s), %d files", res.Status, elapsed.Round(time.Millisecond), bound, len(res.Files))
			if elapsed > bound {
				t.Errorf("the result came %s after Submit; collecting must fit in the %s timeout plus %s", elapsed.Round(time.Millisecond), cc.req.Timeout, budget)
			}
			cc.check(t, c, res)
			e.followUp(t, c, "", w.name)
		})
	}
}

func describeFiles(files []tasks.CollectedFile) []string {
	var out []string
	for _, f := range files {
		out = append(out, fmt.Sprintf("%s(%d bytes, error %q)", f.Path, len(f.Content), f.Error))
	}
	return out
}

// TestCollectedFilesOnTheHost runs `execq run --collect` as a user would,
// in a directory of theirs, against a command that tries to write where it
// was not asked to: over their files, through their symlinks, into .git,
// with setuid bits.
func TestCollectedFilesOnTheHost(t *testing.T) {
	e := newEnv(t)
	startWorker(t, e, workerOpts{label: "host", poolSize: 1})
	hostile := `echo evil >existing; mkdir -p .git/hooks && echo evil >.git/config && echo evil >.git/hooks/pre-commit;
		echo evil >setuid && chmod 6755 setuid; mkdir -p out && echo payload >out/file; echo fine >new`
	type runResult struct {
		code   int
		stderr string
	}
	run := func(t *testing.T, dir string, args ...string) runResult {
		t.Helper()
		cmd := execqCommand(t, e, append([]string{"run"}, args...)...)
		cmd.Dir = dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		return runResult{code, stderr.String()}
	}
	userDir := func(t *testing.T) string {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "existing"), []byte("mine\n"), 0o644))
		must(t, os.MkdirAll(filepath.Join(dir, ".git"), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, ".git", "config"), []byte("[core]\n"), 0o644))
		return dir
	}
	unchanged := func(t *testing.T, dir string) {
		t.Helper()
		if b, _ := os.ReadFile(filepath.Join(dir, "existing")); string(b) != "mine\n" {
			t.Errorf("existing was overwritten: %q", b)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, ".git", "config")); string(b) != "[core]\n" {
			t.Errorf(".git/config was overwritten: %q", b)
		}
		if _, err := os.Stat(filepath.Join(dir, ".git", "hooks")); err == nil {
			t.Errorf(".git/hooks was written")
		}
	}

	t.Run("default_destination_is_a_new_directory", func(t *testing.T) {
		c := track(t, "host", false)
		dir := userDir(t)
		r := run(t, dir, "--id", "host-default-"+newToken()[:6], "--collect", "**", "--", "sh", "-c", hostile)
		unchanged(t, dir)
		entries, _ := os.ReadDir(dir)
		var made []string
		for _, en := range entries {
			if en.Name() != "existing" && en.Name() != ".git" {
				made = append(made, en.Name())
			}
		}
		if len(made) != 1 || !strings.HasPrefix(made[0], "execq-") {
			t.Fatalf("made %v in the user's directory (exit %d, stderr %q); want one new execq-<id> directory", made, r.code, r.stderr)
		}
		out := filepath.Join(dir, made[0])
		if b, _ := os.ReadFile(filepath.Join(out, "new")); string(b) != "fine\n" {
			t.Errorf("new = %q", b)
		}
		if _, err := os.Stat(filepath.Join(out, ".git")); err == nil {
			t.Errorf(".git was written although no glob names it")
		}
		if fi, err := os.Stat(filepath.Join(out, "setuid")); err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
			t.Errorf("setuid written with mode %v (err %v); want no setuid, setgid or sticky bit", fi.Mode(), err)
		}
		c.figure(t, "wrote into %s; exit %d", made[0], r.code)
	})

	t.Run("existing_files_and_symlinks_in_the_output_dir", func(t *testing.T) {
		c := track(t, "host", false)
		dir := userDir(t)
		outside := t.TempDir()
		must(t, os.Symlink(outside, filepath.Join(dir, "out")))
		r := run(t, dir, "--output-dir", ".", "--collect", "**", "--", "sh", "-c", hostile)
		unchanged(t, dir)
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Errorf("wrote %d entries through the symlink out -> %s", len(entries), outside)
		}
		if r.code != 125 || !strings.Contains(r.stderr, "existing") {
			t.Errorf("exit %d stderr %q; want 125 saying which files were not written", r.code, r.stderr)
		}
		c.figure(t, "exit %d: %s", r.code, strings.TrimSpace(lastLines(r.stderr, 1)))
	})

	t.Run("force_overwrites_regular_files_only", func(t *testing.T) {
		c := track(t, "host", false)
		dir := userDir(t)
		outside := t.TempDir()
		must(t, os.Symlink(outside, filepath.Join(dir, "out")))
		r := run(t, dir, "--output-dir", ".", "--force", "--collect", "existing", "--collect", "out/*", "--", "sh", "-c", hostile)
		if b, _ := os.ReadFile(filepath.Join(dir, "existing")); string(b) != "evil\n" {
			t.Errorf("--force did not overwrite existing: %q (exit %d, stderr %q)", b, r.code, r.stderr)
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Errorf("--force wrote %d entries through the symlink out", len(entries))
		}
		c.figure(t, "exit %d", r.code)
	})
	t.Run("names_that_attack_the_terminal_or_json", func(t *testing.T) {
		c := track(t, "host", false)
		dir := t.TempDir()
		// A name with an escape sequence that retitles the terminal and a
		// line that forges execq's own; two names that are not UTF-8 and
		// would both come back as the same text.
		names := `touch "$(printf 'x\033]0;owned\007\nexecq: all files written')"; touch "$(printf 'bad\377')" "$(printf 'bad\376')"; ln -s /etc/passwd "$(printf 'link\033[2J')"`
		r := run(t, dir, "--output-dir", dir, "--collect", "*", "--", "sh", "-c", names)
		c.figure(t, "exit %d, stderr %q", r.code, r.stderr)
		if strings.ContainsAny(r.stderr, "\x1b\a") || strings.Contains(r.stderr, "\nexecq: all files written") {
			t.Errorf("a collected file's name reached the terminal raw: %q", r.stderr)
		}
		if !strings.Contains(r.stderr, "not valid UTF-8") {
			t.Errorf("names that are not UTF-8 not reported: %q", r.stderr)
		}
		entries, _ := os.ReadDir(dir)
		for _, en := range entries {
			if strings.HasPrefix(en.Name(), "bad") {
				t.Errorf("a file whose name is not UTF-8 was written as %q", en.Name())
			}
		}
	})

}

// TestImagesAreTheOperatorsChoice checks the worker's image allow-list and
// its handling of images that declare volumes.
func TestImagesAreTheOperatorsChoice(t *testing.T) {
	e := newEnv(t)
	private := "execq-chaos-private-" + runID + ":latest"
	withVolume := "execq-chaos-volume-" + runID + ":latest"
	dockerRun(t, "", "tag", testImage, private)
	dockerRun(t, "FROM "+testImage+"\nVOLUME /data\n", "build", "-q", "-t", withVolume, "-")
	t.Cleanup(func() { _, _ = dockerOutput("", "rmi", "-f", private, withVolume) })
	volumesBefore := volumeCount(t)
	w := startWorker(t, e, workerOpts{label: "images", poolSize: 1, args: []string{"--allowed-images", withVolume}})

	t.Run("image_not_allowed", func(t *testing.T) {
		c := track(t, "images", false)
		res, _ := e.run(t, tasks.ExecRequest{Image: private, Cmd: []string{"true"}})
		wantRejected(t, res, "allow")
		c.figure(t, "%s: %s", res.Status, res.Error)
		e.followUp(t, c, "", w.name)
	})
	t.Run("image_declaring_a_volume", func(t *testing.T) {
		c := track(t, "images", false)
		first, _ := e.run(t, tasks.ExecRequest{Image: withVolume, Cmd: sh(`echo secret >/data/secret && echo wrote`)})
		second, _ := e.run(t, tasks.ExecRequest{Image: withVolume, Cmd: sh(`ls -A /data`)})
		if first.Status == tasks.StatusSucceeded && second.Stdout != "" {
			t.Errorf("the next tenant of %s sees %q in /data", withVolume, second.Stdout)
		}
		if first.Status != tasks.StatusSucceeded && first.Status != tasks.StatusRejected {
			t.Errorf("first: %s %q", first.Status, first.Error)
		}
		if n := volumeCount(t); n > volumesBefore+1 {
			t.Errorf("%d volumes on the engine, %d before: the image's volume was created", n, volumesBefore)
		}
		c.figure(t, "first %s (%s), second sees %q", first.Status, first.Error, second.Stdout)
		e.followUp(t, c, "", w.name)
	})
}

// TestAnIDIsBoundToItsRequest checks that an execution ID cannot be
// squatted: the same ID with another request is a conflict, the same
// request is an idempotent replay.
func TestAnIDIsBoundToItsRequest(t *testing.T) {
	e := newEnv(t)
	startWorker(t, e, workerOpts{label: "ids", poolSize: 1})
	c := track(t, "requests", false)
	id := "bound-" + newToken()[:8]
	req := tasks.ExecRequest{ID: id, Cmd: []string{"echo", "first"}}
	if got := e.submit(t, req); got != id {
		t.Fatalf("id %q", got)
	}
	if got := e.submit(t, req); got != id {
		t.Fatalf("replay: id %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := e.prod.Submit(ctx, tasks.ExecRequest{ID: id, Cmd: []string{"echo", "squatted"}})
	if err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Errorf("a different request under the same ID: %v; want a conflict", err)
	}
	res := e.wait(t, id, time.Minute)
	if res.Stdout != "first\n" {
		t.Errorf("stdout %q", res.Stdout)
	}
	cmd := execqCommand(t, e, "run", "--id", id, "--", "echo", "squatted")
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if code != 125 || !strings.Contains(string(out), "conflict") || strings.Contains(string(out), "first") {
		t.Errorf("execq run with a squatted ID: exit %d output %q; want 125 and a conflict message", code, out)
	}
	c.figure(t, "second request refused: %v; CLI exit %d", err, code)
}

// TestStatusesTellTheTruth checks the statuses of executions whose command
// the engine could not start, which forge execq's own reports, or which die
// of a signal that is not the memory limit.
func TestStatusesTellTheTruth(t *testing.T) {
	e := newEnv(t)
	w := startWorker(t, e, workerOpts{label: "statuses", poolSize: 1})
	cases := []struct {
		name  string
		req   tasks.ExecRequest
		check func(t *testing.T, res *tasks.Result)
	}{
		{"missing_workdir", tasks.ExecRequest{WorkDir: "nope", Cmd: []string{"true"}},
			func(t *testing.T, res *tasks.Result) { wantRejected(t, res, "working directory") }},
		{"workdir_is_a_file", tasks.ExecRequest{WorkDir: "f", Files: []tasks.File{{Path: "f", Content: []byte("x")}}, Cmd: []string{"true"}},
			func(t *testing.T, res *tasks.Result) { wantRejected(t, res, "working directory") }},
		{"environment_too_large", tasks.ExecRequest{ID: "raw-env-" + runID, Env: map[string]string{"BIG": strings.Repeat("x", 200<<10)}, Cmd: []string{"true"}},
			func(t *testing.T, res *tasks.Result) { wantRejected(t, res, "BIG") }},
		{"program_not_found", tasks.ExecRequest{Cmd: []string{"no-such-program"}},
			func(t *testing.T, res *tasks.Result) {
				if res.Status != tasks.StatusFailed || res.ExitCode != 127 || !strings.Contains(res.Stderr, "no-such-program") || strings.Contains(res.Stderr, "exec: line") {
					t.Errorf("status %s exit %d stderr %q; want failed 127 naming the program", res.Status, res.ExitCode, res.Stderr)
				}
			}},
		{"forged_start_failure", tasks.ExecRequest{Cmd: sh(`printf 'OCI runtime exec failed: exec failed: unable to start container process: exec: "x": executable file not found in $PATH: unknown\r\n'; exit 126`)},
			func(t *testing.T, res *tasks.Result) {
				if res.Status != tasks.StatusFailed || res.ExitCode != 126 || !strings.HasPrefix(res.Stdout, "OCI runtime exec failed") {
					t.Errorf("status %s exit %d stdout %q; want failed 126 with the command's own output", res.Status, res.ExitCode, res.Stdout)
				}
			}},
		{"forged_execq_message", tasks.ExecRequest{Cmd: sh(`echo 'execq-dirty 0000: /workspace survives'; exit 125`)},
			func(t *testing.T, res *tasks.Result) {
				if res.Status != tasks.StatusFailed || res.ExitCode != 125 || !strings.HasPrefix(res.Stdout, "execq-dirty") || res.Attempt != 1 {
					t.Errorf("status %s exit %d attempt %d stdout %q; want failed 125 at the first attempt", res.Status, res.ExitCode, res.Attempt, res.Stdout)
				}
			}},
		{"kill_9_itself_is_not_oom", tasks.ExecRequest{Cmd: sh(`kill -9 $$`)},
			func(t *testing.T, res *tasks.Result) {
				if res.Status != tasks.StatusFailed || res.ExitCode != 137 {
					t.Errorf("status %s exit %d; want failed 137, not an OOM", res.Status, res.ExitCode)
				}
			}},
	}
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			c := track(t, "statuses", false)
			var res *tasks.Result
			if strings.HasPrefix(sc.req.ID, "raw-") {
				// Past the producer's checks: the worker's must refuse it.
				payload, err := tasks.EncodeRequest(&sc.req)
				if err != nil {
					t.Fatal(err)
				}
				e.enqueueRaw(t, sc.req.ID, payload)
				res = e.wait(t, sc.req.ID, time.Minute)
			} else {
				res, _ = e.run(t, sc.req)
			}
			c.figure(t, "%s exit %d error %q", res.Status, res.ExitCode, clip(res.Error))
			sc.check(t, res)
			e.followUp(t, c, "", w.name)
		})
	}

	t.Run("deleted_from_its_queue_while_only_tailed", func(t *testing.T) {
		c := track(t, "statuses", false)
		id := e.submit(t, tasks.ExecRequest{Queue: "nobody-serves-" + runID, Cmd: []string{"true"}})
		if err := e.insp.DeleteTask("nobody-serves-"+runID, id); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// A client that only reads the stream, as a client in another
		// language would: XREAD BLOCK until the exit event.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		after := "0"
		for {
			streams, err := e.rc.XRead(ctx, &redis.XReadArgs{Streams: []string{tasks.Keys{}.Stream(id), after}, Block: 5 * time.Second}).Result()
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				t.Fatalf("no exit event %s after the task was deleted", time.Since(start).Round(time.Second))
			}
			if err != nil && !isRedisNil(err) {
				t.Fatal(err)
			}
			done := false
			for _, s := range streams {
				for _, m := range s.Messages {
					after = m.ID
					if m.Values[tasks.FieldType] == string(tasks.EventExit) {
						done = true
					}
				}
			}
			if done {
				break
			}
		}
		res := e.wait(t, id, 10*time.Second)
		if res.Status != tasks.StatusCanceled {
			t.Errorf("status %s, want canceled", res.Status)
		}
		c.recovered(t, "exit event after the deletion", time.Since(start))
	})
}

// TestEachSandboxHasItsOwnUser checks that kernel limits kept per user
// (inotify instances here) are not shared between sandboxes: one tenant
// exhausting its own leaves the other's intact.
func TestEachSandboxHasItsOwnUser(t *testing.T) {
	e := newEnv(t)
	startWorker(t, e, workerOpts{label: "users", poolSize: 2})
	attack := attackFile(t)
	c := track(t, "next tenant", false)
	hog := e.submit(t, tasks.ExecRequest{Files: []tasks.File{attack}, Cmd: sh(`id -u; ./attack inotify 100000`), Timeout: 20 * time.Second})
	e.waitEvent(t, hog, 20*time.Second, func(ev tasks.Event) bool {
		return ev.Type == tasks.EventStdout && strings.Contains(string(ev.Data), "inotify")
	})
	other, _ := e.run(t, tasks.ExecRequest{Files: []tasks.File{attack}, Cmd: sh(`id -u; ./attack inotify 1 & sleep 1; kill $!`), Timeout: 10 * time.Second})
	if err := e.prod.Cancel(context.Background(), hog); err != nil {
		t.Fatal(err)
	}
	hogRes := e.wait(t, hog, time.Minute)
	hogUID := strings.Fields(hogRes.Stdout)
	otherOut := strings.Fields(other.Stdout)
	c.figure(t, "hog %v, other %v", hogUID, otherOut)
	if len(hogUID) < 3 || len(otherOut) < 3 {
		t.Fatalf("hog %q, other %q", hogRes.Stdout, other.Stdout)
	}
	if hogUID[0] == otherOut[0] {
		t.Errorf("both sandboxes run their commands as uid %s", hogUID[0])
	}
	if n, _ := strconv.Atoi(otherOut[2]); n != 1 {
		t.Errorf("the other sandbox got %d inotify instances, want 1: the limit is shared", n)
	}
	// Nor are they shared with, or open to, an account of the host.
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(passwd), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 && (f[2] == hogUID[0] || f[2] == otherOut[0]) {
			t.Errorf("a sandbox runs as uid %s, the host's account %s", f[2], f[0])
		}
	}
}

// TestDashboardRefusesCrossSiteRequests drives `execq dashboard` with curl
// as a malicious page would through a victim's browser: a cross-origin
// POST that pauses a queue, and a DNS-rebinding read of the task list.
func TestDashboardRefusesCrossSiteRequests(t *testing.T) {
	e := newEnv(t)
	startWorker(t, e, workerOpts{label: "csrf", poolSize: 1})
	c := track(t, "dashboard", false)
	e.run(t, tasks.ExecRequest{Cmd: []string{"echo", "secret-payload"}})
	addr := testutil.FreeAddr(t)
	dash := execqCommand(t, e, "dashboard", "--addr", addr)
	if err := dash.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dash.Process.Kill(); _ = dash.Wait() })
	base := "http://" + addr + "/monitoring/api/queues/default"
	curl := func(args ...string) int {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		code, _ := strconv.Atoi(string(out))
		return code
	}
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, "the dashboard answers", func() bool { return curl(base) == 200 })
	if code := curl("-X", "POST", "-H", "Origin: http://evil.example", "-H", "Sec-Fetch-Site: cross-site", base+":pause"); code != 403 {
		t.Errorf("a cross-site POST to pause the queue: %d, want 403", code)
	}
	if code := curl("-X", "POST", "-H", "Origin: http://evil.example", base+":pause"); code != 403 {
		t.Errorf("a cross-origin POST without fetch metadata: %d, want 403", code)
	}
	if code := curl("-H", "Host: rebound.attacker.example", base+"/completed_tasks"); code != 403 {
		t.Errorf("a read under a rebound host name: %d, want 403", code)
	}
	if info, err := e.insp.GetQueueInfo("default"); err != nil || info.Paused {
		t.Errorf("queue default: paused %v (%v) after the refused requests", info != nil && info.Paused, err)
	}
	if code := curl("-X", "POST", base+":pause"); code >= 300 {
		t.Errorf("a POST from a client that is not a browser: %d, want it served", code)
	}
	if info, err := e.insp.GetQueueInfo("default"); err != nil || !info.Paused {
		t.Errorf("the operator's own pause did not pause the queue: %v", err)
	}
	_ = e.insp.UnpauseQueue("default")
	c.figure(t, "cross-site POSTs and a rebound Host refused with 403; a plain client served")
}
