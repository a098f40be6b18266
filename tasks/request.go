// Package tasks is execq's wire contract: the asynq task type, the execution
// request a producer enqueues, the inputs too large for its payload that
// travel beside it (StoredInput), the result a worker stores, the events it
// streams, the Redis key names, and the validation both sides apply.
//
// It holds no Docker or asynq server code, so agents in any process can
// depend on it.
package tasks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	// Image is the sandbox image. Defaults to the worker's image, or to
	// Language's when Language is set (the two cannot both be given).
	Image string `json:"image,omitempty"`
	// Language names an entry of the worker's language catalogue (execq
	// languages lists the built-in one: python, node, c, sh). It chooses
	// the image and adds the language's environment; with Code, or with a
	// file at the language's source path among Files, the worker runs the
	// language's steps (compile, if it has one, then run) in one sandbox.
	// With Cmd, Cmd runs instead of the steps, in the language's image.
	// The worker resolves it, so that its catalogue and its allow-list
	// decide what runs; an unknown language is rejected, listing the known
	// ones.
	Language string `json:"language,omitempty"`
	// Code is the program's source, written at the language's source path
	// under /workspace (main.py for python) before the steps run. It needs
	// Language, and excludes Cmd.
	Code string `json:"code,omitempty"`
	// Cmd is the argv to run; Cmd[0] is looked up in the image's PATH.
	// Required unless Language is set.
	Cmd []string `json:"cmd,omitempty"`
	// Env holds environment variables added to the image's.
	Env map[string]string `json:"env,omitempty"`
	// Files are written into /workspace before the command starts.
	Files []File `json:"files,omitempty"`
	// Stdin is given to the command on its standard input, which is then
	// closed. Nil means no standard input.
	Stdin []byte `json:"stdin,omitempty"`
	// StdinStored, in a task's payload, stands for a Stdin stored beside
	// the task (Stdin is nil then); see StoredInput. Submit sets it for a
	// large Stdin; a worker puts the bytes back (RestoreInputs).
	StdinStored *StoredInput `json:"-"`
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
	// Owner names who submitted the execution, where a front end scopes
	// executions to their submitters (the HTTP API: a short ID derived
	// from the bearer token, never the token). It is part of the request,
	// so of its Digest: the same ID submitted by another owner is a
	// conflict. Empty: nobody in particular.
	Owner string `json:"owner,omitempty"`
	// Session names the session the execution runs in: in its sandbox,
	// after the session's earlier executions, with what they left in
	// /workspace and the processes they left running. The session decides
	// the image and the limits, so Image, MemoryBytes, CPUs and Pids stay
	// empty; Language may be given when its image is the session's.
	Session string `json:"session,omitempty"`
	// SessionSeq is the execution's place in its session, set by the
	// producer when the session admits it; executions run in its order.
	SessionSeq int64 `json:"sessionSeq,omitempty"`
}

// File is a file put into /workspace before the command runs.
type File struct {
	// Path is relative to /workspace; parent directories are created.
	Path string `json:"path"`
	// Content is the file's bytes (base64 in JSON).
	Content []byte `json:"content"`
	// Mode holds the permission bits. Defaults to 0644.
	Mode FileMode `json:"mode,omitempty"`
	// Stored, in a task's payload, stands for a Content stored beside the
	// task (Content is nil then); see StoredInput. Only an ExecRequest's
	// JSON carries it.
	Stored *StoredInput `json:"-"`
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

// storedRequestJSON is the JSON of a request with inputs stored beside its
// task: a StoredInput object where the base64 string of stdin or of a
// file's content would be.
type storedRequestJSON struct {
	execRequestJSON
	Files []storedFileJSON `json:"files,omitempty"`
	Stdin any              `json:"stdin,omitempty"`
}

type storedFileJSON struct {
	fileAlias
	Content any `json:"content"`
}

type fileAlias File

// decodedRequestJSON reads stdin and file contents either way.
type decodedRequestJSON struct {
	execRequestJSON
	Files []decodedFileJSON `json:"files,omitempty"`
	Stdin json.RawMessage   `json:"stdin,omitempty"`
}

type decodedFileJSON struct {
	fileAlias
	Content json.RawMessage `json:"content"`
}

// wire is what r's JSON is made from. It has no MarshalJSON of its own,
// which would have encoding/json validate the whole output again: a cost
// that grows with the inputs inline.
func (r *ExecRequest) wire() any {
	v := execRequestJSON{
		execRequestAlias: execRequestAlias(*r),
		TimeoutMs:        durationMillisCeil(r.Timeout),
	}
	if !r.hasStoredInputs() {
		return v
	}
	s := storedRequestJSON{execRequestJSON: v}
	switch {
	case r.StdinStored != nil:
		s.Stdin = r.StdinStored
	case len(r.Stdin) > 0:
		s.Stdin = r.Stdin
	}
	if len(r.Files) > 0 {
		s.Files = make([]storedFileJSON, len(r.Files))
		for i, f := range r.Files {
			s.Files[i] = storedFileJSON{fileAlias: fileAlias(f), Content: f.Content}
			if f.Stored != nil {
				s.Files[i].Content = f.Stored
			}
		}
	}
	return s
}

// MarshalJSON writes Timeout as whole milliseconds ("timeoutMs"), and
// inputs stored beside the task as their StoredInput.
func (r ExecRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(r.wire())
}

// UnmarshalJSON reads "timeoutMs" into Timeout, and a StoredInput object in
// place of stdin or of a file's content into StdinStored or File.Stored.
func (r *ExecRequest) UnmarshalJSON(b []byte) error {
	var v decodedRequestJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return r.fromJSON(v)
}

// DecodeRequestStrict reads a request's JSON as UnmarshalJSON does, but
// refuses a field the request does not have (at the top and in files),
// anything after the JSON value, and references to inputs stored beside a
// task: what a front end needs of a request that comes from outside.
func DecodeRequestStrict(b []byte) (*ExecRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v decodedRequestJSON
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the request's JSON object")
	}
	var r ExecRequest
	if err := r.fromJSON(v); err != nil {
		return nil, err
	}
	if refs := r.StoredInputs(); len(refs) > 0 {
		return nil, fmt.Errorf("%s: give the bytes as a base64 string, not an object", refs[0].Name)
	}
	return &r, nil
}

func (r *ExecRequest) fromJSON(v decodedRequestJSON) error {
	if v.TimeoutMs > maxTimeoutMs || v.TimeoutMs < -maxTimeoutMs {
		return fmt.Errorf("timeoutMs %d is out of range", v.TimeoutMs)
	}
	out := ExecRequest(v.execRequestAlias)
	out.Timeout = time.Duration(v.TimeoutMs) * time.Millisecond
	var err error
	if out.Stdin, out.StdinStored, err = decodeInput(v.Stdin); err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	if v.Files != nil {
		out.Files = make([]File, len(v.Files))
		for i, f := range v.Files {
			out.Files[i] = File(f.fileAlias)
			if out.Files[i].Content, out.Files[i].Stored, err = decodeInput(f.Content); err != nil {
				return fmt.Errorf("files[%d].content: %w", i, err)
			}
		}
	}
	*r = out
	return nil
}

// decodeInput reads an input's JSON: null, a base64 string, or a
// StoredInput object, whose every field must be known.
func decodeInput(raw json.RawMessage) ([]byte, *StoredInput, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, nil, nil
	case raw[0] == '{':
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var s StoredInput
		if err := dec.Decode(&s); err != nil {
			return nil, nil, fmt.Errorf("not a reference to an input stored beside the task: %w", err)
		}
		return nil, &s, nil
	}
	var b []byte
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, nil, err
	}
	return b, nil, nil
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
	b, err := json.Marshal(r.wire())
	if err != nil {
		return nil, fmt.Errorf("encode execution request: %w", err)
	}
	return b, nil
}

// Digest is a hash of what r asks for: everything but SubmittedAt and
// SessionSeq. An
// execution ID is bound to the digest of the request first submitted
// under it; another request under the same ID is a conflict.
//
// It covers the bytes of every input. Submit takes it of the request with
// its inputs inline, before it stores any beside the task, so a request's
// digest does not depend on where its inputs travel, and is the one it had
// before they could travel beside the task. Of a request that holds
// references, it covers the references, and so the inputs' SHA-256.
func (r ExecRequest) Digest() (string, error) {
	r.SubmittedAt, r.SessionSeq = time.Time{}, 0
	b, err := json.Marshal(r.wire())
	if err != nil {
		return "", fmt.Errorf("digest of the request: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
