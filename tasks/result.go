package tasks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// Status is the outcome of an execution.
type Status string

// The statuses of a finished execution.
const (
	// StatusSucceeded: the command exited 0.
	StatusSucceeded Status = "succeeded"
	// StatusFailed: the command exited non-zero.
	StatusFailed Status = "failed"
	// StatusTimedOut: the command ran past its timeout and was killed.
	StatusTimedOut Status = "timed_out"
	// StatusOOMKilled: the memory limit killed the command.
	StatusOOMKilled Status = "oom_killed"
	// StatusCanceled: the execution was canceled before or while it ran.
	StatusCanceled Status = "canceled"
	// StatusRejected: the request was invalid; nothing ran.
	StatusRejected Status = "rejected"
	// StatusError: execq itself failed, after its retries.
	StatusError Status = "error"
)

// Result is what an execution produced. It is stored under the execution ID
// and is final: once written it never changes.
type Result struct {
	ExecutionID string `json:"executionId"`
	Status      Status `json:"status"`
	// Success is true when Status is StatusSucceeded.
	Success bool `json:"success"`
	// ExitCode is the command's exit code, or -1 when it did not exit by
	// itself (timed out, canceled) or never ran.
	ExitCode int `json:"exitCode"`
	// Stdout and Stderr hold the first MaxOutputBytes of each stream, byte
	// for byte. In JSON they are text, unless the output is not valid UTF-8
	// or its escaped text would be longer than its base64 (mostly control
	// bytes): then they are base64, with stdoutEncoding/stderrEncoding set
	// to "base64".
	Stdout          string `json:"-"`
	Stderr          string `json:"-"`
	StdoutTruncated bool   `json:"stdoutTruncated"`
	StderrTruncated bool   `json:"stderrTruncated"`
	// StdoutBytes and StderrBytes count everything the command wrote,
	// including what was dropped past the cap.
	StdoutBytes int64 `json:"stdoutBytes"`
	StderrBytes int64 `json:"stderrBytes"`
	// DurationMs is how long the command ran, in milliseconds.
	DurationMs int64 `json:"duration"`
	// QueuedMs is the time from submission to the start of the attempt that
	// produced this result.
	QueuedMs int64 `json:"queuedMs"`
	// Attempt counts from 1; it is above 1 after a worker crash or an
	// infrastructure failure.
	Attempt int `json:"attempt"`
	// Step says which step of a language's program the status and exit
	// code are those of: StepCompile when its compile step failed (the
	// program never ran; the compiler's output is in Stdout and Stderr),
	// StepRun otherwise. Empty for a request without a language, and
	// when nothing ran.
	Step Step `json:"step,omitempty"`
	// Session names the session the execution ran in, or is "".
	Session string `json:"session,omitempty"`
	// Worker names the worker process that ran the command.
	Worker    string     `json:"worker,omitempty"`
	Image     string     `json:"image,omitempty"`
	Resources *Resources `json:"resources,omitempty"`
	// Files are the collected files matching the request's Collect globs.
	Files []CollectedFile `json:"files,omitempty"`
	// Error explains a rejected, error, timed_out, oom_killed or canceled
	// status in words.
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Step is one step of a language's program.
type Step string

// The steps of a language's program: its compile step, when it has one,
// then its run step, in the same sandbox.
const (
	StepCompile Step = "compile"
	StepRun     Step = "run"
)

// Resources is what the command used, measured on its container's cgroup.
type Resources struct {
	CPUTimeMs       int64 `json:"cpuTimeMs"`
	PeakMemoryBytes int64 `json:"peakMemoryBytes"`
}

// CollectedFile is a file returned from /workspace after the command exited.
// A match that could not be returned (a symlink, a file over the size cap)
// has Error set and no content.
type CollectedFile struct {
	Path    string   `json:"path"`
	Size    int64    `json:"size"`
	Mode    FileMode `json:"mode"`
	Content []byte   `json:"content,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Encodings of Stdout and Stderr in JSON.
const (
	EncodingUTF8   = ""
	EncodingBase64 = "base64"
)

type resultAlias Result

type resultJSON struct {
	resultAlias
	Stdout         string `json:"stdout"`
	StdoutEncoding string `json:"stdoutEncoding,omitempty"`
	Stderr         string `json:"stderr"`
	StderrEncoding string `json:"stderrEncoding,omitempty"`
}

// EncodeResult encodes r as execq stores and prints it: Stdout and Stderr
// at most a third larger than the output, and <, > and & left as they are
// (json.Marshal would make each six bytes).
func EncodeResult(r *Result) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode result of %s: %w", r.ExecutionID, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// MarshalJSON writes Stdout and Stderr as text or base64 (see Stdout), so
// that the stored result is byte-exact.
func (r Result) MarshalJSON() ([]byte, error) {
	v := resultJSON{resultAlias: resultAlias(r)}
	v.Stdout, v.StdoutEncoding = encodeOutput(r.Stdout)
	v.Stderr, v.StderrEncoding = encodeOutput(r.Stderr)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reverses MarshalJSON.
func (r *Result) UnmarshalJSON(b []byte) error {
	var v resultJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Result(v.resultAlias)
	var err error
	if r.Stdout, err = decodeOutput(v.Stdout, v.StdoutEncoding); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	if r.Stderr, err = decodeOutput(v.Stderr, v.StderrEncoding); err != nil {
		return fmt.Errorf("stderr: %w", err)
	}
	return nil
}

func encodeOutput(s string) (string, string) {
	if utf8.ValidString(s) && escapedLen(s) <= base64.StdEncoding.EncodedLen(len(s)) {
		return s, EncodingUTF8
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), EncodingBase64
}

// escapedLen is the length of s as JSON string contents, as EncodeResult
// writes them (<, > and & not escaped).
func escapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			n += 2
		case c < 0x20:
			n += 6
		case c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9):
			// U+2028 and U+2029 are always escaped.
			n += 6
			i += 2
		default:
			n++
		}
	}
	return n
}

func decodeOutput(s, encoding string) (string, error) {
	switch encoding {
	case EncodingUTF8:
		return s, nil
	case EncodingBase64:
		b, err := base64.StdEncoding.DecodeString(s)
		return string(b), err
	default:
		return "", fmt.Errorf("unknown encoding %q", encoding)
	}
}

// Final reports whether s is one of the statuses a result can have.
func (s Status) Final() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusTimedOut, StatusOOMKilled,
		StatusCanceled, StatusRejected, StatusError:
		return true
	}
	return false
}
