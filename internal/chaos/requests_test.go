//go:build chaos

package chaos_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// requestCase is a payload no worker may run: it must be rejected at once,
// saying what is wrong, without running anything or being retried.
type requestCase struct {
	name    string
	id      string // the task ID; a fresh one when empty
	payload func(id string) []byte
	want    string // in the result's Error
}

func TestHostileRequests(t *testing.T) {
	e := newEnv(t)
	limits := tasks.Limits{
		MaxPayloadBytes: 64 << 10,
		MaxTimeout:      time.Minute,
		MaxMemoryBytes:  512 << 20,
		MaxCPUs:         1,
		MaxPids:         512,
		MaxOutputBytes:  4 << 20,
	}
	ip := startInProcessWorker(t, e, "requests", limits)

	valid := func(mod func(r *tasks.ExecRequest)) func(string) []byte {
		return func(id string) []byte {
			r := tasks.ExecRequest{ID: id, Cmd: sh("echo ran"), SubmittedAt: time.Now().UTC()}
			mod(&r)
			p, err := tasks.EncodeRequest(&r)
			if err != nil {
				panic(err)
			}
			return p
		}
	}
	raw := func(s string) func(string) []byte { return func(string) []byte { return []byte(s) } }
	manyFiles := make([]tasks.File, 1001)
	for i := range manyFiles {
		manyFiles[i] = tasks.File{Path: fmt.Sprintf("f%d", i)}
	}
	cases := []requestCase{
		{name: "undecodable_garbage", payload: raw("{not json"), want: "not a valid execution request"},
		{name: "undecodable_empty", payload: raw(""), want: "not a valid execution request"},
		{name: "undecodable_binary", payload: raw("\x00\xff\xfe\x01binary"), want: "not a valid execution request"},
		{name: "undecodable_wrong_types", payload: raw(`{"id": 5, "cmd": "true"}`), want: "not a valid execution request"},
		{name: "undecodable_array", payload: raw(`[1, 2, 3]`), want: "not a valid execution request"},
		{name: "null_payload", payload: raw(`null`), want: "differs from the task id"},
		{name: "payload_id_differs", payload: func(string) []byte {
			return valid(func(r *tasks.ExecRequest) {})("someone-else")
		}, want: "differs from the task id"},
		{name: "id_with_bad_characters", id: "chaos bad/id$" + newToken()[:4], payload: valid(func(r *tasks.ExecRequest) {}), want: "only letters, digits"},
		{name: "id_too_long", id: strings.Repeat("x", 200), payload: valid(func(r *tasks.ExecRequest) {}), want: "characters long"},
		{name: "oversized_payload", payload: valid(func(r *tasks.ExecRequest) { r.Stdin = bytes.Repeat([]byte("x"), 100<<10) }), want: "the worker accepts at most 65536"},
		{name: "too_many_files", payload: valid(func(r *tasks.ExecRequest) { r.Files = manyFiles }), want: "1001 files given"},
		{name: "empty_cmd", payload: valid(func(r *tasks.ExecRequest) { r.Cmd = nil }), want: "cmd is empty"},
		{name: "absolute_file_path", payload: valid(func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: "/etc/passwd", Content: []byte("x")}} }), want: "is absolute"},
		{name: "file_path_traversal", payload: valid(func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: "a/../../etc/passwd"}} }), want: `contains ".."`},
		{name: "file_path_parent", payload: valid(func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: "../x"}} }), want: `contains ".."`},
		{name: "file_path_with_nul", payload: valid(func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: "a\x00/etc/passwd"}} }), want: "NUL"},
		{name: "file_path_workspace_itself", payload: valid(func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: "./"}} }), want: "names /workspace itself"},
		{name: "file_given_twice", payload: valid(func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: "a"}, {Path: "./a"}} }), want: "given twice"},
		{name: "file_mode_setuid", payload: valid(func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: "a", Mode: 0o4755}} }), want: "bits beyond 0777"},
		{name: "workdir_traversal", payload: valid(func(r *tasks.ExecRequest) { r.WorkDir = "../etc" }), want: `contains ".."`},
		{name: "workdir_absolute", payload: valid(func(r *tasks.ExecRequest) { r.WorkDir = "/etc" }), want: "is absolute"},
		{name: "collect_absolute", payload: valid(func(r *tasks.ExecRequest) { r.Collect = []string{"/etc/*"} }), want: "is absolute"},
		{name: "collect_traversal", payload: valid(func(r *tasks.ExecRequest) { r.Collect = []string{"../../etc/*"} }), want: `contains ".."`},
		{name: "collect_bad_glob", payload: valid(func(r *tasks.ExecRequest) { r.Collect = []string{"[a-"} }), want: "not a valid glob"},
		{name: "nul_in_argv", payload: valid(func(r *tasks.ExecRequest) { r.Cmd = []string{"echo", "a\x00b"} }), want: "cmd[1] contains a NUL byte"},
		{name: "nul_in_program", payload: valid(func(r *tasks.ExecRequest) { r.Cmd = []string{"ec\x00ho"} }), want: "cmd[0] contains a NUL byte"},
		{name: "nul_in_env_value", payload: valid(func(r *tasks.ExecRequest) { r.Env = map[string]string{"A": "x\x00y"} }), want: "env A contains a NUL byte"},
		{name: "env_name_with_equals", payload: valid(func(r *tasks.ExecRequest) { r.Env = map[string]string{"PATH=/tmp:x": "y"} }), want: "not a valid variable name"},
		{name: "timeout_above_max", payload: valid(func(r *tasks.ExecRequest) { r.Timeout = 2 * time.Hour }), want: "timeout 2h0m0s is above the worker's maximum 1m0s"},
		{name: "timeout_negative", payload: raw(`{"id":"%ID%","cmd":["true"],"timeoutMs":-5}`), want: "is negative"},
		{name: "memory_above_max", payload: valid(func(r *tasks.ExecRequest) { r.MemoryBytes = 1 << 40 }), want: "above the worker's maximum 536870912"},
		{name: "memory_below_min", payload: valid(func(r *tasks.ExecRequest) { r.MemoryBytes = 1 << 20 }), want: "below the minimum"},
		{name: "memory_negative", payload: valid(func(r *tasks.ExecRequest) { r.MemoryBytes = -1 }), want: "is negative"},
		{name: "cpus_above_max", payload: valid(func(r *tasks.ExecRequest) { r.CPUs = 64 }), want: "cpus 64 is above the worker's maximum 1"},
		{name: "cpus_below_min", payload: valid(func(r *tasks.ExecRequest) { r.CPUs = 0.001 }), want: "below the minimum 0.01"},
		{name: "pids_above_max", payload: valid(func(r *tasks.ExecRequest) { r.Pids = 1 << 20 }), want: "pids 1048576 is above the worker's maximum 512"},
		{name: "pids_negative", payload: valid(func(r *tasks.ExecRequest) { r.Pids = -1 }), want: "is negative"},
		{name: "output_above_max", payload: valid(func(r *tasks.ExecRequest) { r.MaxOutputBytes = 1 << 30 }), want: "above the worker's maximum 4194304"},
		{name: "unknown_image", payload: valid(func(r *tasks.ExecRequest) { r.Image = "execq-sandbox:no-such-tag" }), want: `image "execq-sandbox:no-such-tag": image not found`},
		{name: "image_not_allowed", payload: valid(func(r *tasks.ExecRequest) { r.Image = "execq-no-such-image:v0" }), want: `image "execq-no-such-image:v0" is not on this worker's allow-list`},
		{name: "image_from_a_registry", payload: valid(func(r *tasks.ExecRequest) { r.Image = "registry.invalid:5000/evil/image:latest" }), want: "not on this worker's allow-list"},
		{name: "image_unknown_digest", payload: valid(func(r *tasks.ExecRequest) { r.Image = "execq-sandbox@sha256:" + strings.Repeat("0", 64) }), want: "image not found"},
		// A language picks an image from the worker's catalogue only.
		{name: "language_with_an_image", payload: valid(func(r *tasks.ExecRequest) {
			r.Language, r.Code, r.Cmd, r.Image = "python", "print(1)", nil, "registry.invalid/evil:latest"
		}), want: "the language chooses the image"},
		{name: "language_unknown", payload: valid(func(r *tasks.ExecRequest) { r.Language, r.Code, r.Cmd = "cobol", "x", nil }),
			want: `language "cobol" is not in this worker's catalogue; known: python, node, c, sh`},
		{name: "language_an_image_name", payload: valid(func(r *tasks.ExecRequest) { r.Language, r.Code, r.Cmd = "registry.invalid/evil:latest", "x", nil }),
			want: "is not a language name"},
		{name: "language_a_path", payload: valid(func(r *tasks.ExecRequest) { r.Language, r.Code, r.Cmd = "../../python", "x", nil }),
			want: "is not a language name"},
		{name: "code_without_language", payload: valid(func(r *tasks.ExecRequest) { r.Code = "rm -rf /" }), want: "code needs a language"},
		{name: "code_and_cmd", payload: valid(func(r *tasks.ExecRequest) { r.Language, r.Code = "sh", "echo x" }), want: "code and cmd both given"},
		{name: "code_over_its_file", payload: valid(func(r *tasks.ExecRequest) {
			r.Language, r.Code, r.Cmd, r.Files = "sh", "echo x", nil, []tasks.File{{Path: "main.sh", Content: []byte("echo y")}}
		}), want: "code and a file main.sh both given"},
		{name: "image_invalid_reference", payload: valid(func(r *tasks.ExecRequest) { r.Image = "UPPER/../Case::x" }), want: "UPPER/../Case::x"},
	}
	for _, rc := range cases {
		t.Run(rc.name, func(t *testing.T) {
			c := track(t, "request", false)
			id := rc.id
			if id == "" {
				id = "req-" + rc.name + "-" + newToken()[:6]
			}
			payload := bytes.ReplaceAll(rc.payload(id), []byte("%ID%"), []byte(id))
			start := time.Now()
			e.enqueueRaw(t, id, payload)
			res := e.wait(t, id, time.Minute)
			elapsed := time.Since(start)
			if res.Status != tasks.StatusRejected || !strings.Contains(res.Error, rc.want) {
				t.Errorf("status %s error %q; want rejected saying %q", res.Status, res.Error, rc.want)
			}
			if res.Attempt > 1 {
				t.Errorf("attempt %d, want 0 or 1", res.Attempt)
			}
			if n := testutil.CountEvents(e.events(t, id), tasks.EventStarted); n != 0 {
				t.Errorf("the stream has %d started events: something ran", n)
			}
			// The result is stored before the handler returns, and asynq
			// records the completion just after.
			info := waitSettled(t, e, id)
			if info.Retried != 0 || info.State != asynq.TaskStateCompleted {
				t.Errorf("asynq task: state %s, retried %d, last error %q; want completed at the first try", info.State, info.Retried, info.LastErr)
			}
			c.figure(t, "rejected in %s: %s", elapsed.Round(time.Millisecond), clip(res.Error))
			e.followUp(t, c, "", ip.name)
		})
	}
}
