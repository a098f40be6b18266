//go:build integration

package examples

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/internal/testutil/liveworker"
)

// token is the bearer token the server is started with and the clients send.
const token = "examples-test-token"

// server is a live execq: a worker on a real redis-server and the Docker
// engine, and `execq serve` in front of them.
type server struct {
	url string
}

func setup(t *testing.T) *server {
	t.Helper()
	r := testutil.StartRedis(t)
	liveworker.Start(t, r.Client, "examples-"+uuid.NewString()[:8], 2)
	exe := testutil.ExecqBinary(t)
	addr := testutil.FreeAddr(t)
	var log bytes.Buffer
	serve := exec.Command(exe, "serve", "--addr", addr, "--redis", r.URL)
	serve.Env = append(os.Environ(), "EXECQ_API_TOKENS="+token)
	serve.Stdout, serve.Stderr = &log, &log
	if err := serve.Start(); err != nil {
		t.Fatalf("start execq serve: %v", err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(os.Interrupt)
		serve.Wait()
		if t.Failed() {
			t.Logf("execq serve's log:\n%s", log.String())
		}
	})
	s := &server{url: "http://" + addr}
	testutil.Eventually(t, 20*time.Second, 50*time.Millisecond, "execq serve answers /healthz", func() bool {
		resp, err := http.Get(s.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// status is the HTTP status of GET /v1/executions/{id}: 202 while it runs.
func (s *server) status(t *testing.T, id string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/executions/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET execution %s: %v", id, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// client is a way to start one of the example clients' run programs.
type client struct {
	name string
	argv func(t *testing.T) []string // the program, before its arguments
}

func clients() []client {
	return []client{
		{"python", func(t *testing.T) []string {
			return []string{python(t), filepath.Join(testutil.RepoRoot(), "examples", "python", "run.py")}
		}},
		{"js", func(t *testing.T) []string {
			return []string{node(t), filepath.Join(testutil.RepoRoot(), "examples", "js", "run.mjs")}
		}},
	}
}

// The acceptance test of the clients: each runs sh -c 'echo hi; …; exit 3'
// through a live server, shows "hi" while the command still runs, and exits
// with the command's exit code 3.
func TestClientsRunLive(t *testing.T) {
	s := setup(t)
	for _, c := range clients() {
		t.Run(c.name, func(t *testing.T) {
			id := "examples-" + c.name + "-" + uuid.NewString()[:8]
			argv := append(c.argv(t), "--id", id, s.url, "sh", "-c", "echo hi; sleep 3; echo bye >&2; exit 3")
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), "EXECQ_API_TOKEN="+token)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewReader(stdout)
			first, err := lines.ReadString('\n')
			if err != nil || first != "hi\n" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("first line of stdout %q (%v); stderr: %s", first, err, stderr.String())
			}
			// "hi" came while the command sleeps: the execution is not final.
			if code := s.status(t, id); code != http.StatusAccepted {
				t.Errorf("GET the execution after the client printed hi: %d, want 202 (still running)", code)
			}
			rest, _ := io.ReadAll(lines)
			err = cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			if code != 3 || len(rest) != 0 || !strings.Contains(stderr.String(), "bye") {
				t.Errorf("exit %d (%v), more stdout %q, stderr %q; want exit 3, nothing more, bye on stderr", code, err, rest, stderr.String())
			}
		})
	}
}

// Files in, binary stdin, collected files written back safely, and the
// exit codes of a timeout and a refused request.
func TestClientsFilesStdinAndExitCodes(t *testing.T) {
	s := setup(t)
	for _, c := range clients() {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "in.txt")
			if err := os.WriteFile(src, []byte("from the host\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, "kept.txt"), []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name   string
				args   []string
				stdin  []byte
				code   int
				stdout string
			}{
				{"stdin", []string{"--stdin", s.url, "sh", "-c", "wc -c"}, []byte{0, 1, 2, 0xff, '\n'}, 0, "5\n"},
				{"collect", []string{"--collect", "*.txt", "--dir", out, s.url, "sh", "-c",
					"echo made > made.txt; echo theirs > kept.txt; echo no > .hidden.txt; ln -s /etc/passwd link.txt"}, nil, 0, ""},
				{"timeout", []string{"--timeout", "1", s.url, "sleep", "30"}, nil, 124, ""},
				{"rejected", []string{s.url, ""}, nil, 125, ""},
			}
			for _, tc := range cases {
				argv := append(c.argv(t), tc.args...)
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Env = append(os.Environ(), "EXECQ_API_TOKEN="+token)
				cmd.Stdin = bytes.NewReader(tc.stdin)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				cmd.Run()
				if code := cmd.ProcessState.ExitCode(); code != tc.code || stdout.String() != tc.stdout {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, stdout %q", tc.name, code, stdout.String(), stderr.String(), tc.code, tc.stdout)
				}
			}
			if b, err := os.ReadFile(filepath.Join(out, "made.txt")); err != nil || string(b) != "made\n" {
				t.Errorf("made.txt: %q, %v", b, err)
			}
			if b, _ := os.ReadFile(filepath.Join(out, "kept.txt")); string(b) != "mine" {
				t.Errorf("kept.txt was overwritten without --force: %q", b)
			}
			for _, name := range []string{".hidden.txt", "link.txt"} {
				if _, err := os.Lstat(filepath.Join(out, name)); err == nil {
					t.Errorf("%s was written", name)
				}
			}
		})
	}
}
