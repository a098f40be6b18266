package tasks_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
)

func TestWorkspacePath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    string // cleaned path; empty when refused
		problem string // part of the error when refused
	}{
		{in: "a", want: "a"},
		{in: "a/b/c.txt", want: "a/b/c.txt"},
		{in: "./a", want: "a"},
		{in: "a/./b", want: "a/b"},
		{in: "a//b/", want: "a/b"},
		{in: "..a/b..", want: "..a/b.."},
		{in: "a/.../b", want: "a/.../b"},
		{in: "", problem: "empty"},
		{in: ".", problem: "itself"},
		{in: "./", problem: "itself"},
		{in: "a/..", problem: `".."`},
		{in: "..", problem: `".."`},
		{in: "../x", problem: `".."`},
		{in: "a/../../etc/passwd", problem: `".."`},
		{in: "a/b/../c", problem: `".."`},
		{in: "/etc/passwd", problem: "absolute"},
		{in: "/", problem: "absolute"},
		{in: "a\x00b", problem: "NUL"},
	}
	for _, c := range cases {
		got, err := tasks.WorkspacePath(c.in)
		if c.problem == "" {
			if err != nil || got != c.want {
				t.Errorf("WorkspacePath(%q) = %q, %v; want %q, nil", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.problem) || got != "" {
			t.Errorf("WorkspacePath(%q) = %q, %v; want an error about %s", c.in, got, err, c.problem)
		}
	}
}

func TestValidateID(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"job_1.retry:2", true},
		{strings.Repeat("x", 128), true},
		{"", false},
		{strings.Repeat("x", 129), false},
		{"a b", false},
		{"a/b", false},
		{"{a}", false}, // would break the Redis hash tag
		{"a*", false},
		{"é", false},
		{"a\x00", false},
		{"a\n", false},
	}
	for _, c := range cases {
		err := tasks.ValidateID(c.id)
		if (err == nil) != c.ok {
			t.Errorf("ValidateID(%q) = %v; want ok=%v", c.id, err, c.ok)
		}
		var ve *tasks.ValidationError
		if err != nil && !errors.As(err, &ve) {
			t.Errorf("ValidateID(%q) = %T, want *tasks.ValidationError", c.id, err)
		}
	}
}

// valid is a request that passes Check and Validate with default limits.
func valid() tasks.ExecRequest {
	return tasks.ExecRequest{ID: "id-1", Cmd: []string{"echo", "hi"}}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		modify  func(r *tasks.ExecRequest)
		problem string // empty when the request is valid
	}{
		{"valid", func(r *tasks.ExecRequest) {}, ""},
		{"everything valid", func(r *tasks.ExecRequest) {
			r.Env = map[string]string{"A": "1", "_b2": "x=y", "LONG_NAME_9": ""}
			r.Files = []tasks.File{{Path: "a/b.sh", Mode: 0o755}, {Path: "c.txt"}}
			r.WorkDir = "a"
			r.Collect = []string{"out/**/*.txt", "*.log", "**"}
			r.Timeout = time.Second
		}, ""},
		{"workdir dot", func(r *tasks.ExecRequest) { r.WorkDir = "." }, ""},
		{"empty id", func(r *tasks.ExecRequest) { r.ID = "" }, "id is empty"},
		{"bad id", func(r *tasks.ExecRequest) { r.ID = "a b" }, "only letters"},
		{"no cmd", func(r *tasks.ExecRequest) { r.Cmd = nil }, "cmd is empty"},
		{"empty program", func(r *tasks.ExecRequest) { r.Cmd = []string{"", "x"} }, "cmd[0] is empty"},
		{"NUL in argument", func(r *tasks.ExecRequest) { r.Cmd = []string{"echo", "a\x00"} }, "cmd[1] contains a NUL"},
		{"env name with dash", func(r *tasks.ExecRequest) { r.Env = map[string]string{"A-B": "x"} }, "not a valid variable name"},
		{"env name with leading digit", func(r *tasks.ExecRequest) { r.Env = map[string]string{"1A": "x"} }, "not a valid variable name"},
		{"env name with equals", func(r *tasks.ExecRequest) { r.Env = map[string]string{"A=B": "x"} }, "not a valid variable name"},
		{"empty env name", func(r *tasks.ExecRequest) { r.Env = map[string]string{"": "x"} }, "not a valid variable name"},
		{"NUL in env value", func(r *tasks.ExecRequest) { r.Env = map[string]string{"A": "\x00"} }, "env A contains a NUL"},
		{"absolute file", func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: "/etc/x"}} }, "files[0].path"},
		{"escaping file", func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: "a/../../x"}} }, "files[0].path"},
		{"empty file path", func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: ""}} }, "files[0].path"},
		{"file twice", func(r *tasks.ExecRequest) {
			r.Files = []tasks.File{{Path: "a/b"}, {Path: "./a//b"}}
		}, `files[1].path "./a//b" is given twice`},
		{"setuid file", func(r *tasks.ExecRequest) { r.Files = []tasks.File{{Path: "x", Mode: 0o4755}} }, "bits beyond 0777"},
		{"absolute workdir", func(r *tasks.ExecRequest) { r.WorkDir = "/tmp" }, "workdir"},
		{"escaping workdir", func(r *tasks.ExecRequest) { r.WorkDir = "../x" }, "workdir"},
		{"absolute collect", func(r *tasks.ExecRequest) { r.Collect = []string{"/etc/*"} }, "collect[0]"},
		{"escaping collect", func(r *tasks.ExecRequest) { r.Collect = []string{"**/../x"} }, "collect[0]"},
		{"bad glob", func(r *tasks.ExecRequest) { r.Collect = []string{"ok", "a/["} }, "collect[1]"},
		{"negative timeout", func(r *tasks.ExecRequest) { r.Timeout = -time.Second }, "timeout -1s is negative"},
		{"negative memory", func(r *tasks.ExecRequest) { r.MemoryBytes = -1 }, "memory -1 is negative"},
		{"negative cpus", func(r *tasks.ExecRequest) { r.CPUs = -0.5 }, "cpus -0.5 is negative"},
		{"negative pids", func(r *tasks.ExecRequest) { r.Pids = -1 }, "pids -1 is negative"},
		{"negative output cap", func(r *tasks.ExecRequest) { r.MaxOutputBytes = -1 }, "output cap -1 is negative"},
	}
	for _, c := range cases {
		r := valid()
		c.modify(&r)
		err := r.Check()
		if c.problem == "" {
			if err != nil {
				t.Errorf("%s: Check() = %v, want nil", c.name, err)
			}
			continue
		}
		var ve *tasks.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: Check() = %v (%T), want a *tasks.ValidationError", c.name, err, err)
			continue
		}
		if !strings.Contains(err.Error(), c.problem) {
			t.Errorf("%s: Check() = %v, want it to mention %q", c.name, err, c.problem)
		}
	}
}

func TestCheckListsEveryProblem(t *testing.T) {
	t.Parallel()
	r := tasks.ExecRequest{Files: []tasks.File{{Path: "/x"}}, Timeout: -1}
	var ve *tasks.ValidationError
	if err := r.Check(); !errors.As(err, &ve) {
		t.Fatalf("Check() = %v, want a *tasks.ValidationError", err)
	}
	if len(ve.Problems) != 4 {
		t.Errorf("problems %q, want 4 (id, cmd, file path, timeout)", ve.Problems)
	}
}

func TestValidateAgainstLimits(t *testing.T) {
	t.Parallel()
	limits := tasks.Limits{
		MaxPayloadBytes: 1000,
		MaxTimeout:      time.Minute,
		MaxMemoryBytes:  64 << 20,
		MaxCPUs:         1.5,
		MaxPids:         100,
		MaxOutputBytes:  1 << 20,
		MaxFiles:        2,
		// The defaults must stay within the maxima for Validate to mean
		// anything; none of them is checked here.
		DefaultTimeout:     time.Second,
		DefaultMemoryBytes: 32 << 20,
		DefaultCPUs:        1,
		DefaultPids:        50,
		DefaultOutputBytes: 1 << 10,
	}
	cases := []struct {
		name    string
		modify  func(r *tasks.ExecRequest)
		payload int
		problem string
	}{
		{"valid", func(r *tasks.ExecRequest) {}, 100, ""},
		{"at every maximum", func(r *tasks.ExecRequest) {
			r.Timeout, r.MemoryBytes, r.CPUs, r.Pids, r.MaxOutputBytes = time.Minute, 64<<20, 1.5, 100, 1<<20
			r.Files = []tasks.File{{Path: "a"}, {Path: "b"}}
		}, 1000, ""},
		{"at the minimum memory and cpus", func(r *tasks.ExecRequest) { r.MemoryBytes, r.CPUs = 6<<20, 0.01 }, 100, ""},
		{"payload too big", func(r *tasks.ExecRequest) {}, 1001, "payload is 1001 bytes"},
		{"timeout too long", func(r *tasks.ExecRequest) { r.Timeout = time.Minute + time.Millisecond }, 100, "timeout 1m0.001s is above"},
		{"memory too big", func(r *tasks.ExecRequest) { r.MemoryBytes = 64<<20 + 1 }, 100, "memory 67108865 bytes is above"},
		{"memory too small", func(r *tasks.ExecRequest) { r.MemoryBytes = 6<<20 - 1 }, 100, "below the minimum"},
		{"too many cpus", func(r *tasks.ExecRequest) { r.CPUs = 1.6 }, 100, "cpus 1.6 is above"},
		{"too few cpus", func(r *tasks.ExecRequest) { r.CPUs = 0.001 }, 100, "cpus 0.001 is below"},
		{"too many pids", func(r *tasks.ExecRequest) { r.Pids = 101 }, 100, "pids 101 is above"},
		{"output cap too big", func(r *tasks.ExecRequest) { r.MaxOutputBytes = 1<<20 + 1 }, 100, "output cap 1048577 bytes is above"},
		{"too many files", func(r *tasks.ExecRequest) {
			r.Files = []tasks.File{{Path: "a"}, {Path: "b"}, {Path: "c"}}
		}, 100, "3 files given"},
		{"what Check refuses", func(r *tasks.ExecRequest) { r.Cmd = nil }, 100, "cmd is empty"},
	}
	for _, c := range cases {
		r := valid()
		c.modify(&r)
		err := r.Validate(limits, c.payload)
		if c.problem == "" {
			if err != nil {
				t.Errorf("%s: Validate() = %v, want nil", c.name, err)
			}
			continue
		}
		var ve *tasks.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), c.problem) {
			t.Errorf("%s: Validate() = %v, want a *tasks.ValidationError mentioning %q", c.name, err, c.problem)
		}
	}
}

func TestValidateFillsZeroLimitsWithDefaults(t *testing.T) {
	t.Parallel()
	r := valid()
	r.Timeout = time.Hour
	if err := r.Validate(tasks.Limits{}, 100); err != nil {
		t.Errorf("a 1h timeout against the default maximum: %v", err)
	}
	r.Timeout = time.Hour + time.Millisecond
	if err := r.Validate(tasks.Limits{}, 100); err == nil {
		t.Error("a timeout above the default maximum of 1h was accepted")
	}
	r = valid()
	if err := r.Validate(tasks.Limits{}, 16<<20+1); err == nil {
		t.Error("a payload above the default 16 MiB was accepted")
	}
}

func TestLimitsWithDefaults(t *testing.T) {
	t.Parallel()
	got := tasks.Limits{}.WithDefaults()
	want := tasks.Limits{
		MaxPayloadBytes:    16 << 20,
		DefaultTimeout:     30 * time.Second,
		MaxTimeout:         time.Hour,
		DefaultMemoryBytes: 256 << 20,
		MaxMemoryBytes:     4 << 30,
		DefaultCPUs:        1,
		MaxCPUs:            2,
		DefaultPids:        256,
		MaxPids:            4096,
		DefaultOutputBytes: 1 << 20,
		MaxOutputBytes:     16 << 20,
		MaxFiles:           1000,
		MaxCollectBytes:    16 << 20,
	}
	if got != want {
		t.Errorf("Limits{}.WithDefaults() =\n%+v\nwant\n%+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	set := tasks.Limits{DefaultTimeout: time.Second, MaxFiles: 3, MaxCPUs: 8}.WithDefaults()
	if set.DefaultTimeout != time.Second || set.MaxFiles != 3 || set.MaxCPUs != 8 || set.MaxTimeout != time.Hour {
		t.Errorf("WithDefaults changed set fields or missed unset ones: %+v", set)
	}
}

func TestLimitsValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		limits  tasks.Limits
		problem string
	}{
		{"defaults", tasks.Limits{}, ""},
		{"default equals maximum", tasks.Limits{DefaultTimeout: time.Minute, MaxTimeout: time.Minute}, ""},
		{"timeout", tasks.Limits{DefaultTimeout: 2 * time.Hour}, "default timeout 2h0m0s is above the maximum 1h0m0s"},
		{"memory", tasks.Limits{DefaultMemoryBytes: 8 << 30}, "default memory"},
		{"cpus", tasks.Limits{DefaultCPUs: 3}, "default cpus 3"},
		{"pids", tasks.Limits{DefaultPids: 300, MaxPids: 10}, "default pids 300"},
		{"output", tasks.Limits{DefaultOutputBytes: 100, MaxOutputBytes: 10}, "default output cap"},
		{"unset defaults follow smaller maxima", tasks.Limits{MaxTimeout: time.Second, MaxMemoryBytes: 64 << 20, MaxCPUs: 0.5, MaxPids: 10, MaxOutputBytes: 10}, ""},
	}
	for _, c := range cases {
		err := c.limits.WithDefaults().Validate()
		if c.problem == "" {
			if err != nil {
				t.Errorf("%s: Validate() = %v, want nil", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.problem) {
			t.Errorf("%s: Validate() = %v, want it to mention %q", c.name, err, c.problem)
		}
	}
}

func TestResolved(t *testing.T) {
	t.Parallel()
	l := tasks.Limits{DefaultTimeout: 5 * time.Second, DefaultOutputBytes: 10}
	r := valid().Resolved(l)
	if r.Timeout != 5*time.Second || r.MaxOutputBytes != 10 || r.MemoryBytes != 256<<20 || r.CPUs != 1 || r.Pids != 256 {
		t.Errorf("resolved %+v", r)
	}
	asked := valid()
	asked.Timeout, asked.MemoryBytes, asked.CPUs, asked.Pids, asked.MaxOutputBytes = time.Second, 8<<20, 0.5, 7, 3
	if got := asked.Resolved(l); got.Timeout != time.Second || got.MemoryBytes != 8<<20 || got.CPUs != 0.5 || got.Pids != 7 || got.MaxOutputBytes != 3 {
		t.Errorf("Resolved replaced values the request gave: %+v", got)
	}
}

func TestCheckLanguageAndCode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		req  tasks.ExecRequest
		want string // "" for valid
	}{
		{"language and code", tasks.ExecRequest{ID: "a", Language: "python", Code: "print(1)"}, ""},
		{"language and cmd", tasks.ExecRequest{ID: "a", Language: "python", Cmd: []string{"pytest"}}, ""},
		{"language alone (its file among files)", tasks.ExecRequest{ID: "a", Language: "c", Files: []tasks.File{{Path: "main.c"}}}, ""},
		{"code without a language", tasks.ExecRequest{ID: "a", Code: "print(1)", Cmd: []string{"python3"}}, "code needs a language"},
		{"code and cmd", tasks.ExecRequest{ID: "a", Language: "python", Code: "print(1)", Cmd: []string{"python3"}}, "code and cmd both given"},
		{"language and image", tasks.ExecRequest{ID: "a", Language: "python", Image: "evil:latest", Code: "x"}, "the language chooses the image"},
		{"language path", tasks.ExecRequest{ID: "a", Language: "../python", Code: "x"}, "is not a language name"},
		{"language upper case", tasks.ExecRequest{ID: "a", Language: "Python", Code: "x"}, "is not a language name"},
		{"nothing to run", tasks.ExecRequest{ID: "a"}, "cmd is empty"},
	}
	for _, c := range cases {
		err := c.req.Check()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: Check = %v, want valid", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: Check = %v, want a problem saying %q", c.name, err, c.want)
		}
	}
}
