// Package fake is an in-memory sandbox runtime for unit tests. Its
// sandboxes interpret a few commands instead of running programs:
//
//	echo ARG...          writes the arguments to stdout
//	err ARG...           writes the arguments to stderr
//	cat                  copies stdin to stdout
//	exit N               exits with N
//	sleep DURATION       waits, or until the context ends
//	write N              writes N bytes of 'x' to stdout
//	oom                  ends as if the memory limit killed it
//	ls                   writes the workspace's file names to stdout
//	crash                fails as if the container died
//	sh FILE              runs FILE's lines as these commands, until one
//	                     exits non-zero or does not start
//
// Any other program is not found; a working directory that holds no file
// does not exist. Errors are injected one at a time through the Runtime's fields.
package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/tasks"
)

// ErrCrashed is what the "crash" command and injected failures return.
var ErrCrashed = errors.New("fake: container crashed")

// Runtime creates fake sandboxes.
type Runtime struct {
	mu      sync.Mutex
	next    int
	live    map[string]*Sandbox
	created int
	removed int
	// Images lists the images that exist; nil means every image does.
	Images []string
	// CreateErr, when set, fails the next Create.
	CreateErr error
	// ResetErr, when set, fails the next Reset.
	ResetErr error
	// PingErr, while set, fails Ping and Create, as an engine that does not
	// answer.
	PingErr error
	// Owner labels the sandboxes in List.
	Owner string
	// Fixed makes sandboxes keep the limits they are created with, as
	// gVisor's do.
	Fixed bool
	// Others are containers of other owners that List returns.
	Others []sandbox.Info
}

// NewRuntime returns a Runtime whose sandboxes are owned by owner.
func NewRuntime(owner string) *Runtime {
	return &Runtime{live: map[string]*Sandbox{}, Owner: owner}
}

// Create returns a new sandbox of image.
func (r *Runtime) Create(ctx context.Context, image string, limits sandbox.Limits) (sandbox.Sandbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.CreateErr; err != nil {
		r.CreateErr = nil
		return nil, err
	}
	if r.PingErr != nil {
		return nil, r.PingErr
	}
	if r.Images != nil && !slices.Contains(r.Images, image) {
		return nil, fmt.Errorf("fake: %q: %w", image, sandbox.ErrImageNotFound)
	}
	r.next++
	r.created++
	sb := &Sandbox{rt: r, id: "fake-" + strconv.Itoa(r.next), image: image, uid: 1000 + r.next, limits: limits, files: map[string]tasks.File{}, created: time.Now()}
	r.live[sb.id] = sb
	return sb, nil
}

// Ping fails while PingErr is set.
func (r *Runtime) Ping(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.PingErr
}

// SetPingErr sets PingErr safely while the runtime is in use.
func (r *Runtime) SetPingErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.PingErr = err
}

// ResolveImage resolves image to itself when it exists.
func (r *Runtime) ResolveImage(ctx context.Context, image string) (sandbox.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Images != nil && !slices.Contains(r.Images, image) {
		return sandbox.Image{}, fmt.Errorf("fake: %q: %w", image, sandbox.ErrImageNotFound)
	}
	return sandbox.Image{Ref: image, ID: image}, nil
}

// Remove removes a sandbox; an unknown one counts as removed.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.live[id]; ok {
		delete(r.live, id)
		r.removed++
	}
	r.Others = slices.DeleteFunc(r.Others, func(i sandbox.Info) bool { return i.ID == id })
	return nil
}

// List returns the live sandboxes and Others.
func (r *Runtime) List(ctx context.Context) ([]sandbox.Info, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var infos []sandbox.Info
	for _, id := range slices.Sorted(maps.Keys(r.live)) {
		sb := r.live[id]
		infos = append(infos, sandbox.Info{ID: id, Image: sb.image, Owner: r.Owner, Created: sb.created, Running: !sb.dead})
	}
	return append(infos, r.Others...), nil
}

// Live returns the IDs of the sandboxes not removed.
func (r *Runtime) Live() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.live))
}

// Counts returns how many sandboxes were created and removed.
func (r *Runtime) Counts() (created, removed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.created, r.removed
}

// Kill marks a sandbox dead, as if its container was killed from outside.
func (r *Runtime) Kill(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sb, ok := r.live[id]; ok {
		sb.dead = true
	}
}

// Sandbox is a fake container.
type Sandbox struct {
	rt      *Runtime
	id      string
	image   string
	uid     int
	created time.Time
	limits  sandbox.Limits
	files   map[string]tasks.File
	dead    bool
	runs    int
	resets  int
}

var _ sandbox.Sandbox = (*Sandbox)(nil)

// ID names the sandbox.
func (s *Sandbox) ID() string { return s.id }

// Image is the sandbox's image.
func (s *Sandbox) Image() string { return s.image }

// User is the sandbox's uid: 1000 plus its number.
func (s *Sandbox) User() int { return s.uid }

// Limits are the sandbox's limits.
func (s *Sandbox) Limits() sandbox.Limits { return s.limits }

// SetLimits records l, or refuses a change when the runtime is Fixed.
func (s *Sandbox) SetLimits(ctx context.Context, l sandbox.Limits) error {
	if s.rt.Fixed && l != s.limits {
		return sandbox.ErrFixedLimits
	}
	s.limits = l
	return nil
}

// FixedLimits reports Fixed.
func (r *Runtime) FixedLimits() bool { return r.Fixed }

// PutFiles stores files.
func (s *Sandbox) PutFiles(ctx context.Context, files []tasks.File) error {
	if s.isDead() {
		return ErrCrashed
	}
	for _, f := range files {
		s.files[f.Path] = f
	}
	return nil
}

func (s *Sandbox) isDead() bool {
	s.rt.mu.Lock()
	defer s.rt.mu.Unlock()
	return s.dead
}

// Run interprets cmd; see the package comment.
func (s *Sandbox) Run(ctx context.Context, cmd sandbox.Command) (sandbox.Outcome, error) {
	if s.isDead() {
		return sandbox.Outcome{ExitCode: -1}, ErrCrashed
	}
	if cmd.Dir != "" && cmd.Dir != tasks.Workspace && !s.hasDir(strings.TrimPrefix(cmd.Dir, tasks.Workspace+"/")) {
		return sandbox.Outcome{ExitCode: -1, Reusable: true}, &sandbox.StartError{Reason: sandbox.StartWorkDir, Message: "the working directory " + cmd.Dir + " does not exist"}
	}
	s.runs++
	start := time.Now()
	out := sandbox.Outcome{Resources: &tasks.Resources{CPUTimeMs: 1, PeakMemoryBytes: 1 << 20}, Reusable: true}
	stdout, stderr := orDiscard(cmd.Stdout), orDiscard(cmd.Stderr)
	args := cmd.Cmd[1:]
	switch cmd.Cmd[0] {
	case "echo":
		fmt.Fprintln(stdout, strings.Join(args, " "))
	case "err":
		fmt.Fprintln(stderr, strings.Join(args, " "))
	case "cat":
		if cmd.Stdin != nil {
			_, _ = io.Copy(stdout, cmd.Stdin)
		}
	case "exit":
		out.ExitCode, _ = strconv.Atoi(args[0])
	case "sleep":
		d, _ := time.ParseDuration(args[0])
		select {
		case <-time.After(d):
		case <-ctx.Done():
			out.ExitCode = -1
			out.Duration = time.Since(start)
			return out, fmt.Errorf("fake run: %w", context.Cause(ctx))
		}
	case "write":
		n, _ := strconv.Atoi(args[0])
		chunk := bytes.Repeat([]byte("x"), 4096)
		for n > 0 {
			k := min(n, len(chunk))
			_, _ = stdout.Write(chunk[:k])
			n -= k
		}
	case "oom":
		out.ExitCode = 137
		out.OOMKilled = true
	case "ls":
		for _, name := range slices.Sorted(maps.Keys(s.files)) {
			fmt.Fprintln(stdout, name)
		}
	case "crash":
		s.rt.Kill(s.id)
		return sandbox.Outcome{ExitCode: -1}, ErrCrashed
	case "sh":
		f, ok := s.files[strings.TrimPrefix(strings.Join(args, " "), "./")]
		if len(args) != 1 || !ok {
			out.ExitCode = 127
			fmt.Fprintf(stderr, "sh: cannot open %s\n", strings.Join(args, " "))
			break
		}
		for _, line := range strings.Split(string(f.Content), "\n") {
			if fields := strings.Fields(line); len(fields) > 0 {
				c := cmd
				c.Cmd = fields
				step, err := s.Run(ctx, c)
				if err != nil || step.ExitCode != 0 {
					step.Duration = time.Since(start)
					return step, err
				}
			}
		}
	default:
		return sandbox.Outcome{ExitCode: -1, Reusable: true}, &sandbox.StartError{Reason: sandbox.StartNotFound, Message: cmd.Cmd[0] + ": executable file not found in $PATH"}
	}
	out.Duration = time.Since(start)
	return out, nil
}

func (s *Sandbox) hasDir(dir string) bool {
	for name := range s.files {
		if strings.HasPrefix(name, dir+"/") {
			return true
		}
	}
	return false
}

// KillAll kills nothing: a fake command ends with Run.
func (s *Sandbox) KillAll(ctx context.Context) error {
	if s.isDead() {
		return ErrCrashed
	}
	return nil
}

// Collect returns stored files matching the spec's globs, within its caps.
func (s *Sandbox) Collect(ctx context.Context, spec sandbox.CollectSpec) (sandbox.CollectResult, error) {
	var res sandbox.CollectResult
	var total int64
	for _, name := range slices.Sorted(maps.Keys(s.files)) {
		if !tasks.MatchAny(spec.Globs, name) {
			continue
		}
		if len(res.Files) >= spec.MaxEntries {
			res.Truncated = fmt.Sprintf("more than %d files match", spec.MaxEntries)
			break
		}
		f := s.files[name]
		cf := tasks.CollectedFile{Path: name, Size: int64(len(f.Content)), Mode: f.Mode}
		if total+cf.Size > spec.MaxBytes {
			cf.Error = "not returned: over the cap"
		} else {
			cf.Content = f.Content
			total += cf.Size
		}
		res.Files = append(res.Files, cf)
	}
	return res, nil
}

// Reset forgets the files, or fails once with ResetErr.
func (s *Sandbox) Reset(ctx context.Context) (sandbox.ResetReport, error) {
	s.rt.mu.Lock()
	defer s.rt.mu.Unlock()
	if s.dead {
		return sandbox.ResetReport{}, ErrCrashed
	}
	if err := s.rt.ResetErr; err != nil {
		s.rt.ResetErr = nil
		return sandbox.ResetReport{}, err
	}
	s.resets++
	rep := sandbox.ResetReport{Removed: len(s.files)}
	s.files = map[string]tasks.File{}
	return rep, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
