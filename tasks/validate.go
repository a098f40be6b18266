package tasks

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"time"
)

// Limits are a worker's defaults and maxima for execution requests. A
// request may ask for less or, up to the maximum, more than the default.
// Each zero field takes its value from DefaultLimits.
type Limits struct {
	// MaxPayloadBytes bounds the encoded request, inputs stored beside the
	// task counted as if inline.
	MaxPayloadBytes int64
	// DefaultTimeout applies when a request gives none.
	DefaultTimeout time.Duration
	// MaxTimeout is the longest timeout a request may ask for.
	MaxTimeout         time.Duration
	DefaultMemoryBytes int64
	MaxMemoryBytes     int64
	DefaultCPUs        float64
	MaxCPUs            float64
	DefaultPids        int64
	MaxPids            int64
	// DefaultOutputBytes caps each of stdout and stderr when a request gives
	// no cap.
	DefaultOutputBytes int64
	MaxOutputBytes     int64
	// MaxFiles bounds the number of input files.
	MaxFiles int
	// MaxCollectBytes bounds the bytes of collected files returned in a
	// result.
	MaxCollectBytes int64
}

// DefaultLimits are the limits of a worker whose operator set none: 30 s
// (at most 1 h), 256 MiB of memory (at most 4 GiB), 1 CPU (at most 2), 256
// processes (at most 4096), 1 MiB of output per stream (at most 16 MiB),
// 1000 input files, 16 MiB of collected files and of encoded request.
func DefaultLimits() Limits {
	return Limits{
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
}

// Bounds on a command's argv and environment, below the kernel's: one
// string of at most MAX_ARG_STRLEN (128 KiB with its NUL), all of them and
// their pointers well below its ARG_MAX (a quarter of the stack limit), so
// that a request the kernel would refuse is rejected before anything runs.
const (
	MaxArgBytes     = 128<<10 - 1
	MaxArgvEnvBytes = 1 << 20
)

// MaxCollectFiles bounds the entries a result returns of its collected
// files; the result says when more matched.
const MaxCollectFiles = 1000

// WithDefaults returns l with every zero field set to its default; an unset
// default is never above its maximum.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	orDefault(&l.MaxPayloadBytes, d.MaxPayloadBytes)
	orDefault(&l.MaxTimeout, d.MaxTimeout)
	orDefault(&l.DefaultTimeout, min(d.DefaultTimeout, l.MaxTimeout))
	orDefault(&l.MaxMemoryBytes, d.MaxMemoryBytes)
	orDefault(&l.DefaultMemoryBytes, min(d.DefaultMemoryBytes, l.MaxMemoryBytes))
	orDefault(&l.MaxCPUs, d.MaxCPUs)
	orDefault(&l.DefaultCPUs, min(d.DefaultCPUs, l.MaxCPUs))
	orDefault(&l.MaxPids, d.MaxPids)
	orDefault(&l.DefaultPids, min(d.DefaultPids, l.MaxPids))
	orDefault(&l.MaxOutputBytes, d.MaxOutputBytes)
	orDefault(&l.DefaultOutputBytes, min(d.DefaultOutputBytes, l.MaxOutputBytes))
	orDefault(&l.MaxFiles, d.MaxFiles)
	orDefault(&l.MaxCollectBytes, d.MaxCollectBytes)
	return l
}

func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate checks l itself: every default within its maximum.
func (l Limits) Validate() error {
	var p problems
	if l.DefaultTimeout > l.MaxTimeout {
		p.addf("default timeout %s is above the maximum %s", l.DefaultTimeout, l.MaxTimeout)
	}
	if l.DefaultMemoryBytes > l.MaxMemoryBytes {
		p.addf("default memory %d is above the maximum %d", l.DefaultMemoryBytes, l.MaxMemoryBytes)
	}
	if l.DefaultCPUs > l.MaxCPUs {
		p.addf("default cpus %g is above the maximum %g", l.DefaultCPUs, l.MaxCPUs)
	}
	if l.DefaultPids > l.MaxPids {
		p.addf("default pids %d is above the maximum %d", l.DefaultPids, l.MaxPids)
	}
	if l.DefaultOutputBytes > l.MaxOutputBytes {
		p.addf("default output cap %d is above the maximum %d", l.DefaultOutputBytes, l.MaxOutputBytes)
	}
	if len(p) > 0 {
		return fmt.Errorf("invalid limits: %s", strings.Join(p, "; "))
	}
	return nil
}

// ValidationError lists what is wrong with a request. The worker turns it
// into a "rejected" result; the producer returns it from Submit.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid request: " + strings.Join(e.Problems, "; ")
}

type problems []string

func (p *problems) addf(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

// maxIDLength keeps IDs usable as Redis key parts and asynq task IDs.
const maxIDLength = 128

// ValidateID checks an execution ID: 1 to 128 characters of letters,
// digits, '-', '_', '.' and ':'.
func ValidateID(id string) error {
	var p problems
	checkID(&p, id)
	return p.err()
}

func checkID(p *problems, id string) {
	if id == "" {
		p.addf("id is empty")
		return
	}
	if len(id) > maxIDLength {
		p.addf("id is %d characters long; at most %d are allowed", len(id), maxIDLength)
		return
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			p.addf("id %q has the character %q; only letters, digits and -_.: are allowed", id, c)
			return
		}
	}
}

// Check validates what can be checked without a worker's limits: the ID,
// the command, the environment, file paths and modes, the working directory
// and the collect globs. Submit applies it before anything is enqueued.
func (r *ExecRequest) Check() error {
	var p problems
	r.check(&p)
	return p.err()
}

func (r *ExecRequest) check(p *problems) {
	checkID(p, r.ID)
	if len(r.Image) > 255 || strings.ContainsAny(r.Image, " \t\n\r\x00") {
		p.addf("image %q is not an image name", r.Image)
	}
	r.checkLanguage(p)
	switch {
	case len(r.Cmd) == 0 && r.Language == "":
		p.addf("cmd is empty: give the program to run and its arguments, or a language and its code")
	case len(r.Cmd) > 0 && r.Cmd[0] == "":
		p.addf("cmd[0] is empty: give the program to run")
	}
	total := 0
	for i, arg := range r.Cmd {
		if strings.IndexByte(arg, 0) >= 0 {
			p.addf("cmd[%d] contains a NUL byte", i)
		}
		if len(arg) > MaxArgBytes {
			p.addf("cmd[%d] is %d bytes; the kernel takes arguments of at most %d", i, len(arg), MaxArgBytes)
		}
		total += len(arg) + 1 + 8
	}
	for _, k := range sortedKeys(r.Env) {
		v := r.Env[k]
		if !validEnvName(k) {
			p.addf("env name %q is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			p.addf("env %s contains a NUL byte", k)
		}
		if n := len(k) + 1 + len(v); n > MaxArgBytes {
			p.addf("env %s is %d bytes; the kernel takes variables of at most %d", k, n, MaxArgBytes)
		}
		total += len(k) + len(v) + 2 + 8
	}
	if total > MaxArgvEnvBytes {
		p.addf("the command's arguments and environment take %d bytes; at most %d are allowed (the kernel refuses more)", total, MaxArgvEnvBytes)
	}
	if r.StdinStored != nil {
		checkStored(p, "stdin", r.Stdin, r.StdinStored)
	}
	seen := make(map[string]bool, len(r.Files))
	for i, f := range r.Files {
		clean, err := WorkspacePath(f.Path)
		if err != nil {
			p.addf("files[%d].path: %v", i, err)
			continue
		}
		if seen[clean] {
			p.addf("files[%d].path %q is given twice", i, f.Path)
		}
		seen[clean] = true
		if f.Mode&^0o777 != 0 {
			p.addf("files[%d].mode %04o has bits beyond 0777", i, uint32(f.Mode))
		}
		if f.Stored != nil {
			checkStored(p, fmt.Sprintf("files[%d].content", i), f.Content, f.Stored)
		}
	}
	if r.WorkDir != "" && path.Clean(r.WorkDir) != "." {
		if _, err := WorkspacePath(r.WorkDir); err != nil {
			p.addf("workdir: %v", err)
		}
	}
	for i, g := range r.Collect {
		if _, err := WorkspacePath(g); err != nil {
			p.addf("collect[%d]: %v", i, err)
			continue
		}
		if _, err := path.Match(strings.ReplaceAll(g, "**", "*"), ""); err != nil {
			p.addf("collect[%d] %q is not a valid glob: %v", i, g, err)
		}
	}
	if r.Timeout < 0 {
		p.addf("timeout %s is negative", r.Timeout)
	}
	if r.MemoryBytes < 0 {
		p.addf("memory %d is negative", r.MemoryBytes)
	}
	if r.CPUs < 0 {
		p.addf("cpus %g is negative", r.CPUs)
	}
	if r.Pids < 0 {
		p.addf("pids %d is negative", r.Pids)
	}
	if r.MaxOutputBytes < 0 {
		p.addf("output cap %d is negative", r.MaxOutputBytes)
	}
	if r.Session != "" {
		r.checkSession(p)
	}
}

// checkSession checks what a session decides is not also given.
func (r *ExecRequest) checkSession(p *problems) {
	if err := ValidateID(r.Session); err != nil {
		p.addf("session: %v", err)
	}
	for name, given := range map[string]bool{
		"image": r.Image != "", "memoryBytes": r.MemoryBytes != 0, "cpus": r.CPUs != 0, "pids": r.Pids != 0,
	} {
		if given {
			p.addf("%s given with session %s: the session decides its sandbox's image and limits", name, r.Session)
		}
	}
	if r.SessionSeq < 0 {
		p.addf("sessionSeq %d is negative", r.SessionSeq)
	}
}

// MaxLanguageName bounds the length of a language's name.
const MaxLanguageName = 64

// ValidLanguageName reports whether name can name a language: 1 to 64
// lower-case letters, digits, '.', '_', '+' and '-', beginning with a
// letter or digit.
func ValidLanguageName(name string) bool {
	if name == "" || len(name) > MaxLanguageName {
		return false
	}
	for i, c := range name {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._+-", c)) {
			return false
		}
	}
	return true
}

// checkLanguage checks Language and Code against the other fields: what
// the language decides (the image) cannot also be given, and code runs the
// language's steps, so a command cannot come with it.
func (r *ExecRequest) checkLanguage(p *problems) {
	if r.Language == "" {
		if r.Code != "" {
			p.addf("code needs a language: give language (python, node, c, sh, …) or run it with cmd")
		}
		return
	}
	if !ValidLanguageName(r.Language) {
		p.addf("language %q is not a language name (lower-case letters, digits and ._+-, at most %d)", r.Language, MaxLanguageName)
	}
	if r.Image != "" {
		p.addf("language %s and image %s both given: the language chooses the image", r.Language, r.Image)
	}
	if r.Code != "" && len(r.Cmd) > 0 {
		p.addf("code and cmd both given: code runs the language's steps; to run a command of your own, put the code in a file")
	}
}

// Validate checks r against a worker's limits, including everything Check
// checks, and the encoded size of the payload it came from. Inputs stored
// beside the task count as the base64 they would be inline, by the sizes
// their references give, so a request is within the limits or not
// whatever its inputs' sizes, and is checked before they are read.
func (r *ExecRequest) Validate(l Limits, payloadBytes int) error {
	l = l.WithDefaults()
	var p problems
	stored := r.storedEncodedBytes()
	if size := int64(payloadBytes) + stored; size > l.MaxPayloadBytes {
		if stored > 0 {
			p.addf("request is %d bytes with its inputs stored beside the task (%d in the payload); the worker accepts at most %d", size, payloadBytes, l.MaxPayloadBytes)
		} else {
			p.addf("payload is %d bytes; the worker accepts at most %d", payloadBytes, l.MaxPayloadBytes)
		}
	}
	r.check(&p)
	if r.Timeout > l.MaxTimeout {
		p.addf("timeout %s is above the worker's maximum %s", r.Timeout, l.MaxTimeout)
	}
	if r.MemoryBytes > l.MaxMemoryBytes {
		p.addf("memory %d bytes is above the worker's maximum %d", r.MemoryBytes, l.MaxMemoryBytes)
	}
	if r.MemoryBytes != 0 && r.MemoryBytes < minMemoryBytes {
		p.addf("memory %d bytes is below the minimum %d (6 MiB)", r.MemoryBytes, minMemoryBytes)
	}
	if r.CPUs > l.MaxCPUs {
		p.addf("cpus %g is above the worker's maximum %g", r.CPUs, l.MaxCPUs)
	}
	if r.CPUs != 0 && r.CPUs < 0.01 {
		p.addf("cpus %g is below the minimum 0.01", r.CPUs)
	}
	if r.Pids > l.MaxPids {
		p.addf("pids %d is above the worker's maximum %d", r.Pids, l.MaxPids)
	}
	if r.MaxOutputBytes > l.MaxOutputBytes {
		p.addf("output cap %d bytes is above the worker's maximum %d", r.MaxOutputBytes, l.MaxOutputBytes)
	}
	if len(r.Files) > l.MaxFiles {
		p.addf("%d files given; the worker accepts at most %d", len(r.Files), l.MaxFiles)
	}
	return p.err()
}

// minMemoryBytes is the smallest memory limit Docker accepts.
const minMemoryBytes = 6 << 20

// Resolved returns r with every unset limit filled from l's defaults.
func (r ExecRequest) Resolved(l Limits) ExecRequest {
	l = l.WithDefaults()
	if r.Timeout == 0 {
		r.Timeout = l.DefaultTimeout
	}
	if r.MemoryBytes == 0 {
		r.MemoryBytes = l.DefaultMemoryBytes
	}
	if r.CPUs == 0 {
		r.CPUs = l.DefaultCPUs
	}
	if r.Pids == 0 {
		r.Pids = l.DefaultPids
	}
	if r.MaxOutputBytes == 0 {
		r.MaxOutputBytes = l.DefaultOutputBytes
	}
	return r
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// WorkspacePath checks a path given relative to /workspace and returns it
// cleaned. Absolute paths, paths with "..", empty paths and paths with NUL
// bytes are refused, so nothing a request names can escape /workspace.
func WorkspacePath(p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("path is empty")
	case strings.IndexByte(p, 0) >= 0:
		return "", fmt.Errorf("path %q contains a NUL byte", p)
	case strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("path %q is absolute; give it relative to %s", p, Workspace)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("path %q contains \"..\" and could escape %s", p, Workspace)
		}
	}
	clean := path.Clean(p)
	if clean == "." {
		return "", fmt.Errorf("path %q names %s itself", p, Workspace)
	}
	return clean, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
