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
}

// maxTimeoutSeconds keeps a timeout within what a time.Duration holds.
const maxTimeoutSeconds = math.MaxInt64 / float64(time.Second)

// request turns the arguments into an execution request for queue and,
// when the arguments name none, image. The errors it returns say what is
// wrong in the arguments' own terms.
func (a ExecuteArgs) request(queue, image string) (tasks.ExecRequest, error) {
	req := tasks.ExecRequest{Queue: queue, Image: a.Image, Env: a.Env}
	if req.Image == "" {
		req.Image = image
	}
	switch {
	case a.Command != "" && len(a.Argv) > 0:
		return req, errors.New("give either command (a shell script) or argv (a program and its arguments), not both")
	case a.Command != "":
		req.Cmd = []string{"sh", "-c", a.Command}
	case len(a.Argv) > 0:
		req.Cmd = a.Argv
	default:
		return req, errors.New("give command (a shell script run with sh -c) or argv (a program and its arguments)")
	}
	if a.TimeoutSeconds < 0 || a.TimeoutSeconds > maxTimeoutSeconds || math.IsNaN(a.TimeoutSeconds) {
		return req, fmt.Errorf("timeoutSeconds %v is not a number of seconds above 0", a.TimeoutSeconds)
	}
	// Rounded up: a positive timeout never becomes "the worker's default".
	req.Timeout = time.Duration(math.Ceil(a.TimeoutSeconds * float64(time.Second)))
	if a.Memory != "" {
		// The parser of the CLI's --memory: Docker's, powers of 1024.
		n, err := units.RAMInBytes(a.Memory)
		if err != nil || n <= 0 {
			return req, fmt.Errorf("memory %q is not a size like 64m or 1g", a.Memory)
		}
		req.MemoryBytes = n
	}
	if a.Stdin != "" {
		req.Stdin = []byte(a.Stdin)
	}
	paths := make([]string, 0, len(a.Files))
	for p := range a.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		req.Files = append(req.Files, tasks.File{Path: p, Content: []byte(a.Files[p]), Mode: 0o644})
	}
	return req, nil
}
