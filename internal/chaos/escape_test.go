//go:build chaos

package chaos_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
)

// escapeCase is an attempt to get out of the sandbox; check asserts, from
// what the command printed, that it failed.
type escapeCase struct {
	name  string
	req   tasks.ExecRequest
	check func(t *testing.T, c *caseRecord, res *tasks.Result)
}

func TestEscapes(t *testing.T) {
	e := newEnv(t)
	w := startWorker(t, e, workerOpts{label: "escape", poolSize: 1})
	cases := []escapeCase{
		{
			name: "network_only_loopback",
			req:  tasks.ExecRequest{Cmd: []string{"ls", "/sys/class/net"}},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				if res.Stdout != "lo\n" {
					t.Errorf("network interfaces %q, want only lo", res.Stdout)
				}
			},
		},
		{
			name: "not_root_no_capabilities",
			req:  tasks.ExecRequest{Cmd: sh(`id -u; id -g; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status`)},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				got := map[string]string{}
				lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
				for _, l := range lines[min(2, len(lines)):] {
					k, v, _ := strings.Cut(l, ":")
					got[k] = strings.TrimSpace(v)
				}
				if len(lines) < 2 || lines[0] != lines[1] || !sandboxUID(lines[0]) {
					t.Errorf("uid and gid %q, want the sandbox's own unprivileged uid as both", lines)
				}
				for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
					if gvisor() && got[k] == "" && (k == "CapAmb") {
						continue // gVisor's status has no such line
					}
					if got[k] != "0000000000000000" {
						t.Errorf("%s = %q, want no capability", k, got[k])
					}
				}
				if got["NoNewPrivs"] != "1" && !(gvisor() && got["NoNewPrivs"] == "") {
					t.Errorf("NoNewPrivs = %q, want 1", got["NoNewPrivs"])
				}
				c.figure(t, "Seccomp %s (2: the engine's filter)", got["Seccomp"])
			},
		},
		{
			name: "su_and_setuid",
			req: tasks.ExecRequest{Cmd: sh(`
				su -c 'id -u' root </dev/null >/dev/null 2>&1; echo "su exit $?"
				echo "setuid files: $(find / \( -path /proc -o -path /sys \) -prune -o -type f \( -perm -4000 -o -perm -2000 \) -print 2>/dev/null | wc -l)"
				cp /bin/busybox /tmp/id && chmod 6755 /tmp/id && chown 0:0 /tmp/id 2>/dev/null; echo "chown exit $?"
				echo "setuid copy runs as $(/tmp/id -u)"`)},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
				if len(lines) != 4 || lines[0] == "su exit 0" || lines[1] != "setuid files: 0" ||
					lines[2] == "chown exit 0" || !strings.HasPrefix(lines[3], "setuid copy runs as ") || !sandboxUID(strings.TrimPrefix(lines[3], "setuid copy runs as ")) {
					t.Errorf("privilege escalation attempts: %q; want su and chown failing, no setuid file, the copy running as the sandbox's uid", lines)
				}
			},
		},
		{
			name: "namespaces_mount_chroot",
			req: tasks.ExecRequest{Cmd: sh(`
				unshare -U -r id -u >/dev/null 2>&1; echo "unshare -U -r exit $?"
				unshare -m true >/dev/null 2>&1; echo "unshare -m exit $?"
				mkdir -p /tmp/m; mount -t tmpfs none /tmp/m >/dev/null 2>&1; echo "mount exit $?"
				chroot / true >/dev/null 2>&1; echo "chroot exit $?"`)},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				for line := range strings.Lines(res.Stdout) {
					if strings.HasSuffix(strings.TrimSpace(line), "exit 0") {
						t.Errorf("succeeded: %s", strings.TrimSpace(line))
					}
				}
				if strings.Count(res.Stdout, "\n") != 4 {
					t.Errorf("stdout %q", res.Stdout)
				}
			},
		},
		{
			name: "root_filesystem_read_only",
			req: tasks.ExecRequest{Cmd: sh(`
				touch /etc/x 2>&1
				for f in /etc/x /bin/x /x /usr/x /root/x /sbin/x /dev/x; do touch "$f" 2>/dev/null && echo "created $f"; done
				echo x 2>/dev/null >>/etc/passwd && echo "appended to /etc/passwd"
				rm -f /bin/busybox 2>/dev/null; [ -e /bin/busybox ] || echo "removed /bin/busybox"
				mv /bin/sh /bin/sh2 2>/dev/null && echo "moved /bin/sh"
				chmod 777 /bin 2>/dev/null && echo "changed /bin"
				mkdir /newdir 2>/dev/null && echo "made /newdir"
				ln -s /tmp /etc/link 2>/dev/null && echo "linked in /etc"
				echo done`)},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				first, rest, _ := strings.Cut(res.Stdout, "\n")
				refused := strings.Contains(first, "Read-only file system") || gvisor() && strings.Contains(first, "Permission denied")
				if !refused || rest != "done\n" {
					t.Errorf("writes to the root filesystem: %q; want each refused (read-only)", res.Stdout)
				}
			},
		},
		{
			name: "host_and_root_processes_out_of_reach",
			req: tasks.ExecRequest{Cmd: sh(`
				cat /proc/1/environ >/dev/null 2>&1 && echo "read init's environment"
				ls /proc/1/root/ >/dev/null 2>&1 && echo "listed init's root"
				ls /proc/1/fd >/dev/null 2>&1 && echo "listed init's files"
				kill -0 1 2>/dev/null && echo "may signal init"
				head -c 1 /dev/mem >/dev/null 2>&1 && echo "read /dev/mem"
				head -c 1 /proc/kcore >/dev/null 2>&1 && echo "read /proc/kcore"
				ls /var/run/docker.sock /run/docker.sock >/dev/null 2>&1 && echo "found the engine's socket"
				n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo "processes $n"`)},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				out := res.Stdout
				if gvisor() {
					// gVisor's /proc shows PID 1's environment (the image's)
					// and descriptor numbers; nothing else of it.
					out = strings.ReplaceAll(strings.ReplaceAll(out, "read init's environment\n", ""), "listed init's files\n", "")
				}
				n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(out), "processes "))
				if err != nil || n > 6 {
					t.Errorf("stdout %q; want nothing reached and only the sandbox's few processes visible", res.Stdout)
				}
				c.figure(t, "processes visible: %d", n)
			},
		},
		{
			name: "collect_through_symlinks",
			req: tasks.ExecRequest{Cmd: sh(`
				echo hi >ok.txt
				ln -s /etc/passwd out.txt
				ln -s / root.txt
				ln -s ../../etc/passwd rel.txt
				ln -s /etc etcdir
				mkdir sub && ln -s /etc/passwd sub/deep.txt
				ln /etc/passwd hard.txt 2>/dev/null; echo "hard link exit $?"`),
				Collect: []string{"*.txt", "etcdir/*", "**/*.txt"}},
			check: func(t *testing.T, c *caseRecord, res *tasks.Result) {
				if res.Stdout == "hard link exit 0\n" {
					t.Errorf("a hard link to /etc/passwd could be made in /workspace")
				}
				got := map[string]tasks.CollectedFile{}
				for _, f := range res.Files {
					got[f.Path] = f
					if strings.Contains(string(f.Content), "root:") {
						t.Errorf("collected %s with the content of /etc/passwd", f.Path)
					}
					if strings.HasPrefix(f.Path, "etcdir/") {
						t.Errorf("collected %s through a symlinked directory", f.Path)
					}
				}
				if f := got["ok.txt"]; string(f.Content) != "hi\n" || f.Error != "" {
					t.Errorf("ok.txt collected as %+v", f)
				}
				for _, p := range []string{"out.txt", "root.txt", "rel.txt", "sub/deep.txt"} {
					f, ok := got[p]
					if !ok || f.Error == "" || len(f.Content) > 0 {
						t.Errorf("symlink %s collected as %+v (present %v); want an entry with an error and no content", p, f, ok)
					}
				}
				c.figure(t, "out.txt: %q", got["out.txt"].Error)
			},
		},
	}
	for _, ec := range cases {
		t.Run(ec.name, func(t *testing.T) {
			c := track(t, "escape", false)
			ec.req.Timeout = 30 * time.Second
			res, _ := e.run(t, ec.req)
			if res.Status != tasks.StatusSucceeded || res.Attempt != 1 {
				t.Errorf("status %s exit %d attempt %d error %q stderr %q", res.Status, res.ExitCode, res.Attempt, res.Error, clip(res.Stderr))
			}
			ec.check(t, c, res)
			e.followUp(t, c, "", w.name)
			w.settle(t, e.docker, 1, 20*time.Second)
		})
	}

	t.Run("secret_of_the_previous_execution", func(t *testing.T) {
		c := track(t, "escape", false)
		tok := "SECRET-" + newToken()
		a, _ := e.run(t, tasks.ExecRequest{Cmd: sh(plantSecret), Env: map[string]string{"TOK": tok}, Timeout: 30 * time.Second})
		if a.Status != tasks.StatusSucceeded || a.Stdout != "planted\n" {
			t.Fatalf("A: status %s stdout %q stderr %q", a.Status, a.Stdout, a.Stderr)
		}
		b, _ := e.run(t, tasks.ExecRequest{Cmd: sh(searchSecret), Env: map[string]string{"TOK": tok}, Timeout: 30 * time.Second})
		if b.Status != tasks.StatusSucceeded || b.Stdout != "searched\n" {
			t.Errorf("B found A's secret: status %s stdout %q", b.Status, clip(b.Stdout))
		}
		sa, sb := starts(t, e.events(t, a.ExecutionID)), starts(t, e.events(t, b.ExecutionID))
		if len(sa) != 1 || len(sb) != 1 || sa[0].Container != sb[0].Container {
			t.Errorf("A ran in %v, B in %v: the case needs them in one container", sa, sb)
		}
		e.followUp(t, c, "", w.name)
	})

	t.Run("secret_of_another_pool", func(t *testing.T) {
		c := track(t, "escape", false)
		other := startWorker(t, e, workerOpts{label: "escape-other", poolSize: 1, queues: "other"})
		tok := "SECRET-" + newToken()
		aID := e.submit(t, tasks.ExecRequest{Cmd: sh(plantSecret + "sleep 5; echo done"), Env: map[string]string{"TOK": tok}, Timeout: 30 * time.Second})
		e.waitEvent(t, aID, 30*time.Second, func(ev tasks.Event) bool { return ev.Type == tasks.EventStdout })
		b, _ := e.run(t, tasks.ExecRequest{Queue: "other", Cmd: sh(searchSecret + `
			n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo "processes $n"`),
			Env: map[string]string{"TOK": tok}, Timeout: 30 * time.Second})
		if b.Status != tasks.StatusSucceeded || !strings.HasPrefix(b.Stdout, "searched\nprocesses ") {
			t.Errorf("B, in the other pool while A runs, found A's secret: status %s stdout %q", b.Status, clip(b.Stdout))
		}
		c.figure(t, "B sees %s", strings.TrimSpace(strings.TrimPrefix(b.Stdout, "searched\n")))
		a := e.wait(t, aID, time.Minute)
		if a.Status != tasks.StatusSucceeded || a.Stdout != "planted\ndone\n" {
			t.Errorf("A: status %s stdout %q", a.Status, a.Stdout)
		}
		if a.Worker == b.Worker {
			t.Errorf("A and B both ran on %s", a.Worker)
		}
		e.followUp(t, c, "", w.name)
		e.followUp(t, c, "other", other.name)
	})
}

// plantSecret leaves $TOK in every writable place.
const plantSecret = `
for f in /workspace/secret /workspace/.secret /tmp/secret /dev/shm/secret "$HOME/.profile"; do echo "$TOK" >"$f"; done
mkdir -p /workspace/d/e && echo "$TOK" >/workspace/d/e/secret && chmod 000 /workspace/d/e
# gVisor has no /dev/mqueue.
[ -d /dev/mqueue ] && : >"/dev/mqueue/$TOK"
echo planted
`

// searchSecret looks for $TOK in every file and file name outside /proc
// and /sys (its own environment is in /proc), and prints only "searched"
// when it finds nothing.
const searchSecret = `
find / \( -path /proc -o -path /sys \) -prune -o -print 2>/dev/null | while read -r f; do
	case "$f" in *"$TOK"*) echo "name: $f" ;; esac
	[ -f "$f" ] && grep -q -F "$TOK" "$f" 2>/dev/null && echo "content: $f"
done
echo searched
`
