// Package tasks is execq's wire contract: the asynq task type, the execution
// request a producer enqueues, the result a worker stores, the events it
// streams, the Redis key names, and the validation both sides apply.
//
// It holds no Docker or asynq server code, so agents in any process can
// depend on it.
package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// TypeExec is the asynq task type of an execution.
const TypeExec = "exec:run"

// Workspace is the directory inside the sandbox where files are put, where
// the command runs unless WorkDir says otherwise, and from where files are
// collected.
const Workspace = "/workspace"

// ExecRequest is one execution: a command and everything it needs. Zero
// values mean "the worker's default".
type ExecRequest struct {
	// ID is the execution ID and the asynq task ID. A producer fills in a
	// UUID when it is empty; a caller's own ID works as an idempotency key.
	ID string `json:"id"`
	// Queue is the asynq queue the execution is submitted to. Defaults to
	// "default".
	Queue string `json:"queue,omitempty"`
	// Image is the sandbox image. Defaults to the worker's image.
	Image string `json:"image,omitempty"`
	// Cmd is the argv to run; Cmd[0] is looked up in the image's PATH.
	Cmd []string `json:"cmd"`
	// Env holds environment variables added to the image's.
	Env map[string]string `json:"env,omitempty"`
	// Files are written into /workspace before the command starts.
	Files []File `json:"files,omitempty"`
	// Stdin is given to the command on its standard input, which is then
	// closed. Nil means no standard input.
	Stdin []byte `json:"stdin,omitempty"`
	// WorkDir is the working directory, relative to /workspace. Defaults to
	// /workspace itself.
	WorkDir string `json:"workdir,omitempty"`
	// Timeout bounds the command's run time. Defaults to the worker's default.
	Timeout time.Duration `json:"-"`
	// MemoryBytes is the memory limit (swap is not allowed beyond it).
	MemoryBytes int64 `json:"memoryBytes,omitempty"`
	// CPUs is the number of CPUs the command may use (fractions allowed).
	CPUs float64 `json:"cpus,omitempty"`
	// Pids bounds the number of processes and threads.
	Pids int64 `json:"pids,omitempty"`
	// MaxOutputBytes caps what is kept of each of stdout and stderr; the
	// rest is counted and dropped, and the result says it was truncated.
	MaxOutputBytes int64 `json:"maxOutputBytes,omitempty"`
	// Collect holds glob patterns, relative to /workspace, of files to
	// return in the result after the command exits. "**" matches any number
	// of directories.
	Collect []string `json:"collect,omitempty"`
	// SubmittedAt is set by the producer; the worker derives queuedMs from it.
	SubmittedAt time.Time `json:"submittedAt,omitzero"`
}

// File is a file put into /workspace before the command runs.
type File struct {
	// Path is relative to /workspace; parent directories are created.
	Path string `json:"path"`
	// Content is the file's bytes (base64 in JSON).
	Content []byte `json:"content"`
	// Mode holds the permission bits. Defaults to 0644.
	Mode FileMode `json:"mode,omitempty"`
}

// FileMode holds Unix permission bits. It reads and writes JSON as an octal
// string ("0755") and also reads a plain number.
type FileMode uint32

// MarshalJSON writes the mode as an octal string.
func (m FileMode) MarshalJSON() ([]byte, error) {
	return json.Marshal(fmt.Sprintf("%04o", uint32(m)))
}

// UnmarshalJSON reads an octal string or a number; null leaves the default.
func (m *FileMode) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := strconv.ParseUint(s, 8, 32)
		if err != nil {
			return fmt.Errorf("file mode %q is not an octal number", s)
		}
		*m = FileMode(v)
		return nil
	}
	var n uint32
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("file mode %s is neither an octal string nor a number", b)
	}
	*m = FileMode(n)
	return nil
}

// execRequestJSON carries the fields whose JSON form differs from Go's.
type execRequestJSON struct {
	execRequestAlias
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
}

type execRequestAlias ExecRequest

// MarshalJSON writes Timeout as whole milliseconds ("timeoutMs").
func (r ExecRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(execRequestJSON{
		execRequestAlias: execRequestAlias(r),
		TimeoutMs:        durationMillisCeil(r.Timeout),
	})
}

// UnmarshalJSON reads "timeoutMs" into Timeout.
func (r *ExecRequest) UnmarshalJSON(b []byte) error {
	var v execRequestJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.TimeoutMs > maxTimeoutMs || v.TimeoutMs < -maxTimeoutMs {
		return fmt.Errorf("timeoutMs %d is out of range", v.TimeoutMs)
	}
	*r = ExecRequest(v.execRequestAlias)
	r.Timeout = time.Duration(v.TimeoutMs) * time.Millisecond
	return nil
}

// maxTimeoutMs is the largest timeout a time.Duration holds, in ms.
const maxTimeoutMs = math.MaxInt64 / int64(time.Millisecond)

// durationMillisCeil rounds d up to whole milliseconds, so that a positive
// timeout never becomes zero ("use the default") on the wire.
func durationMillisCeil(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// DecodeRequest reads a task payload. A payload that does not decode is an
// error the worker turns into a "rejected" result.
func DecodeRequest(payload []byte) (*ExecRequest, error) {
	var r ExecRequest
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, &ValidationError{Problems: []string{"payload is not a valid execution request: " + err.Error()}}
	}
	return &r, nil
}

// EncodeRequest writes the task payload of r.
func EncodeRequest(r *ExecRequest) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode execution request: %w", err)
	}
	return b, nil
}

// Digest is a hash of what r asks for: everything but SubmittedAt. An
// execution ID is bound to the digest of the request first submitted
// under it; another request under the same ID is a conflict.
func (r ExecRequest) Digest() (string, error) {
	r.SubmittedAt = time.Time{}
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("digest of the request: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
