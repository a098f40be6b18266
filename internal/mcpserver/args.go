package mcpserver

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	units "github.com/docker/go-units"

	"github.com/execq/execq/tasks"
)

// ExecuteArgs are the arguments of the execute and submit tools.
type ExecuteArgs struct {
	Command        string            `json:"command,omitempty" jsonschema:"a shell script, run with sh -c (pipes, &&, redirections and variables work); give this or argv, not both"`
	Argv           []string          `json:"argv,omitempty" jsonschema:"a program and its arguments, run directly with no shell (argv[0] is looked up in PATH); give this or command, not both"`
	Image          string            `json:"image,omitempty" jsonschema:"the sandbox image, e.g. execq-python:latest; defaults to the worker's (busybox: sh and the usual command-line tools)"`
	Files          map[string]string `json:"files,omitempty" jsonschema:"files written into /workspace before the command runs: {relative path: text content}; parent directories are created, mode 0644"`
	Stdin          string            `json:"stdin,omitempty" jsonschema:"text given to the command on its standard input, which is then closed"`
	TimeoutSeconds float64           `json:"timeoutSeconds,omitempty" jsonschema:"kill the command after this many seconds (fractions allowed); defaults to the worker's, 30"`
	Memory         string            `json:"memory,omitempty" jsonschema:"memory limit, a size like 64m or 1g; defaults to the worker's, 256m"`
	Env            map[string]string `json:"env,omitempty" jsonschema:"environment variables added to the image's: {NAME: value}"`
	Language       string            `json:"language,omitempty" jsonschema:"a language of the worker's catalogue (python, node, c, sh): the program runs in the language's image with its compile and run steps; with code, or with its source in files, instead of command or argv and image"`
	Code           string            `json:"code,omitempty" jsonschema:"with language: the program's source, written to the language's file (main.py, main.js, main.c, main.sh) and run; a compile error ends with status failed at the compile step"`
	Session        string            `json:"session,omitempty" jsonschema:"the sessionId of a session from create_session: the command runs in the session's sandbox, after its earlier commands, and finds the files they left in /workspace and the processes they left running; the session has the image and the memory limit, so give neither with it"`
}

// CreateSessionArgs are the arguments of the create_session tool.
type CreateSessionArgs struct {
	Image              string            `json:"image,omitempty" jsonschema:"the session's sandbox image, e.g. execq-python:latest; defaults to the worker's (busybox: sh and the usual command-line tools)"`
	Language           string            `json:"language,omitempty" jsonschema:"a language of the worker's catalogue (python, node, c, sh): the session runs the language's image, and its commands may give language and code; instead of image"`
	Files              map[string]string `json:"files,omitempty" jsonschema:"files written into /workspace when the session opens: {relative path: text content}; parent directories are created, mode 0644"`
	Env                map[string]string `json:"env,omitempty" jsonschema:"environment variables of every command in the session: {NAME: value}; a command's own env wins"`
	IdleTimeoutSeconds float64           `json:"idleTimeoutSeconds,omitempty" jsonschema:"close the session when nothing ran in it for this many seconds; defaults to 600"`
	LifetimeSeconds    float64           `json:"lifetimeSeconds,omitempty" jsonschema:"close the session this many seconds after it was created, whatever runs; defaults to 7200, at most 86400"`
	Memory             string            `json:"memory,omitempty" jsonschema:"memory limit of the session's sandbox, a size like 64m or 1g; defaults to the worker's, 256m"`
	CPUs               float64           `json:"cpus,omitempty" jsonschema:"CPUs the session's sandbox may use, e.g. 0.5; defaults to the worker's, 1"`
	Pids               int64             `json:"pids,omitempty" jsonschema:"how many processes and threads the session's sandbox may hold; defaults to the worker's, 256"`
}

// SessionIDArgs are the arguments of the close_session tool.
type SessionIDArgs struct {
	SessionID string `json:"sessionId" jsonschema:"the sessionId that create_session returned"`
}

// maxTimeoutSeconds keeps a timeout within what a time.Duration holds.
const maxTimeoutSeconds = math.MaxInt64 / float64(time.Second)

// request turns the arguments into an execution request for queue and,
// when the arguments name none, image. The errors it returns say what is
// wrong in the arguments' own terms.
func (a ExecuteArgs) request(queue, image string) (tasks.ExecRequest, error) {
	req := tasks.ExecRequest{Queue: queue, Image: a.Image, Env: a.Env, Language: a.Language, Code: a.Code, Session: a.Session}
	if req.Image == "" && a.Language == "" && a.Session == "" {
		req.Image = image
	}
	switch {
	case a.Session != "" && (a.Image != "" || a.Memory != ""):
		return req, errors.New("image and memory are the session's: give them to create_session; with session, give neither")
	case a.Code != "" && a.Language == "":
		return req, errors.New("code needs language: the language (python, node, c, sh) says how to run it")
	case a.Language != "" && (a.Command != "" || len(a.Argv) > 0) && a.Code != "":
		return req, errors.New("give language with code, or language with command or argv, not all three")
	case a.Command != "" && len(a.Argv) > 0:
		return req, errors.New("give either command (a shell script) or argv (a program and its arguments), not both")
	case a.Command != "":
		req.Cmd = []string{"sh", "-c", a.Command}
	case len(a.Argv) > 0:
		req.Cmd = a.Argv
	case a.Language != "":
		// The language's steps run the code, or its source among the files.
	default:
		return req, errors.New("give command (a shell script run with sh -c) or argv (a program and its arguments)")
	}
	var err error
	if req.Timeout, err = seconds("timeoutSeconds", a.TimeoutSeconds); err != nil {
		return req, err
	}
	if req.MemoryBytes, err = memory(a.Memory); err != nil {
		return req, err
	}
	if a.Stdin != "" {
		req.Stdin = []byte(a.Stdin)
	}
	req.Files = files(a.Files)
	return req, nil
}

// request turns the arguments into a session request for queue and, when
// the arguments name no image nor language, image.
func (a CreateSessionArgs) request(queue, image string) (tasks.SessionRequest, error) {
	req := tasks.SessionRequest{Queue: queue, Image: a.Image, Language: a.Language, Env: a.Env, Files: files(a.Files), CPUs: a.CPUs, Pids: a.Pids}
	if req.Image == "" && a.Language == "" {
		req.Image = image
	}
	var err error
	if req.IdleTimeout, err = seconds("idleTimeoutSeconds", a.IdleTimeoutSeconds); err != nil {
		return req, err
	}
	if req.Lifetime, err = seconds("lifetimeSeconds", a.LifetimeSeconds); err != nil {
		return req, err
	}
	if req.MemoryBytes, err = memory(a.Memory); err != nil {
		return req, err
	}
	if a.CPUs < 0 || math.IsNaN(a.CPUs) || math.IsInf(a.CPUs, 0) {
		return req, fmt.Errorf("cpus %v is not a number of CPUs above 0", a.CPUs)
	}
	if a.Pids < 0 {
		return req, fmt.Errorf("pids %d is negative", a.Pids)
	}
	return req, nil
}

// seconds is the duration of the argument name, a number of seconds; 0
// stays 0 ("the default"), and a positive number is rounded up, so that it
// never becomes 0.
func seconds(name string, v float64) (time.Duration, error) {
	if v < 0 || v > maxTimeoutSeconds || math.IsNaN(v) {
		return 0, fmt.Errorf("%s %v is not a number of seconds above 0", name, v)
	}
	return time.Duration(math.Ceil(v * float64(time.Second))), nil
}

// memory reads a memory size as the CLI's --memory does (Docker's parser,
// powers of 1024); "" is 0, the default.
func memory(size string) (int64, error) {
	if size == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(size)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("memory %q is not a size like 64m or 1g", size)
	}
	return n, nil
}

// files turns {path: text} into files of mode 0644, in the order of their
// paths.
func files(m map[string]string) []tasks.File {
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var out []tasks.File
	for _, p := range paths {
		out = append(out, tasks.File{Path: p, Content: []byte(m[p]), Mode: 0o644})
	}
	return out
}
