// Package proto is the protocol between a worker and the execq agent, the
// program that runs as PID 1 in each sandbox of the agent runtime.
//
// # Transport
//
// Frames travel on one of two channels, chosen by the worker when it
// creates the container:
//
//   - A socket. The agent (serve --listen NAME) listens on the abstract
//     unix socket NAME in the container's network namespace; the worker,
//     on the host, enters that namespace to connect. The agent takes the
//     first connection of a process outside its PID namespace (whose PID
//     SO_PEERCRED gives as 0), refuses any of its own, and closes the
//     socket once the worker is in: no command runs before the worker's
//     handshake, so no process of the sandboxed user can ever connect.
//   - Attach. The container's standard input carries frames from the
//     worker to the agent, its standard output frames from the agent to
//     the worker; the worker attaches to both through the container
//     engine, before the container starts. The sandboxed user can neither
//     open nor write into either: they belong to PID 1, which runs as root,
//     and the user's commands get pipes of their own.
//
// Either way the agent writes its own log to standard error, which the
// worker reads through the engine.
//
// # Framing
//
// A frame is a 4-byte big-endian length L, then L bytes: a type byte and
// L-1 bytes of payload. 1 ≤ L ≤ MaxFrame. Control payloads are JSON
// objects (the structs below); data payloads (Stdout, Stderr, Stdin, Data)
// are raw bytes.
//
// # Conversation
//
// The agent's first frame is Hello; the worker answers with its own Hello.
// Each side closes the channel when the other speaks another Version. Then
// the worker sends one request at a time and reads its replies to the end:
//
//	Exec     → Started or Failed; after Started: Stdout and Stderr frames, then Exit.
//	           While it runs, the worker may send Stdin (an empty one closes the
//	           command's input) and Kill; the agent acknowledges the Stdin bytes it
//	           wrote with StdinAck. The worker never has more than StdinWindow bytes
//	           unacknowledged. Exit comes once the main process has exited and the
//	           output it wrote is sent, whatever its children hold open.
//	Kill     → Done: every process of the sandbox's user is gone.
//	Put      → the worker sends a tar archive in Data frames and an empty Data
//	           frame; the agent answers Done once the files are in /workspace.
//	Collect  → the agent sends a tar archive in Data frames, an empty Data frame,
//	           then Done.
//	Reset    → Done with a ResetReport: processes killed, writable places emptied
//	           and verified.
//	Ping     → Done, at any time, an Exec running or not.
//
// Any other frame, or a frame out of turn, is a protocol error: the worker
// takes the sandbox for dead and replaces it.
package proto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version. A worker and an agent of different
// versions refuse each other.
const Version = 2

// MaxFrame bounds a frame's length (type byte and payload).
const MaxFrame = 1<<20 + 1

// StdinWindow is the most stdin bytes the worker sends before the agent
// acknowledges them.
const StdinWindow = 1 << 20

// DataChunk is the largest payload the agent and the worker put in one
// Stdout, Stderr, Stdin or Data frame.
const DataChunk = 64 << 10

// Type is a frame's type.
type Type byte

// Frame types.
const (
	// Both ways.
	THello Type = 'H'
	TData  Type = 'd'

	// Worker to agent.
	TExec    Type = 'x'
	TStdin   Type = 'i'
	TKill    Type = 'k'
	TPut     Type = 'p'
	TCollect Type = 'c'
	TReset   Type = 'r'
	TPing    Type = 'P'

	// Agent to worker.
	TStarted  Type = 'S'
	TFailed   Type = 'F'
	TStdout   Type = 'o'
	TStderr   Type = 'e'
	TStdinAck Type = 'a'
	TExit     Type = 'X'
	TDone     Type = 'D'
)

func (t Type) String() string {
	names := map[Type]string{
		THello: "hello", TData: "data", TExec: "exec", TStdin: "stdin", TKill: "kill", TPut: "put",
		TCollect: "collect", TReset: "reset", TPing: "ping", TStarted: "started", TFailed: "failed",
		TStdout: "stdout", TStderr: "stderr", TStdinAck: "stdin-ack", TExit: "exit", TDone: "done",
	}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("unknown(%#x)", byte(t))
}

// Hello is the first frame each side sends.
type Hello struct {
	Version int `json:"version"`
	// Agent names the agent's build; empty from the worker.
	Agent string `json:"agent,omitempty"`
	// UID and GID run the commands; the agent says what it was started
	// with, so that the worker can check.
	UID int `json:"uid,omitempty"`
	GID int `json:"gid,omitempty"`
	// Spawn says how the agent starts commands: SpawnTraced or
	// SpawnLauncher; empty from the worker.
	Spawn string `json:"spawn,omitempty"`
}

// How an agent starts commands.
const (
	// SpawnTraced: the child stops at its exec, traced, while the agent
	// readies it (where the kernel allows it: runc).
	SpawnTraced = "traced"
	// SpawnLauncher: a launcher stage of the agent's binary readies it and
	// execs the command (gVisor).
	SpawnLauncher = "launcher"
)

// Exec starts a command as the sandbox's user, in a session of its own.
type Exec struct {
	// Argv is the command; Argv[0] is looked up in Env's PATH.
	Argv []string `json:"argv"`
	// Env holds "KEY=value" entries added to the agent's own environment,
	// which is the image's; an entry replaces one of the same name.
	Env []string `json:"env"`
	// Dir is the absolute working directory.
	Dir string `json:"dir"`
	// Stdin says that Stdin frames follow; otherwise the command reads
	// /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// Rlimits are set on the command before it starts.
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// CountOOMKills asks the agent to count the memory limit's kills from
	// its cgroup (Exit.OOMKills), for a worker that cannot read the host's.
	CountOOMKills bool `json:"countOomKills,omitempty"`
	// KeepOthers asks that a kill of the command end only the processes it
	// started, and leave those that ran before it (and their children),
	// as a session's sandbox keeps what earlier commands left running.
	KeepOthers bool `json:"keepOthers,omitempty"`
}

// Rlimit is one resource limit (RLIMIT_* number, as in setrlimit(2)).
type Rlimit struct {
	Resource int    `json:"resource"`
	Soft     uint64 `json:"soft"`
	Hard     uint64 `json:"hard"`
}

// Started says that the command runs.
type Started struct {
	Pid int `json:"pid"`
}

// Failure kinds of a command that could not start.
const (
	FailNotFound = "not_found" // the program does not exist
	FailDenied   = "denied"    // it exists but cannot be executed
	FailWorkDir  = "workdir"   // the working directory does not exist or is not one
	FailTooLarge = "too_large" // argv and environment exceed the kernel's limit
	FailLimit    = "limit"     // the sandbox's process limit refused a new process
	FailOther    = "other"
)

// Failed says that the command could not start.
type Failed struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Exit reports how the command's main process ended.
type Exit struct {
	// Code is its exit code, or -1 when a signal killed it.
	Code int `json:"code"`
	// Signal is the signal that killed it, or 0.
	Signal int `json:"signal,omitempty"`
	// Killed is true when it died of a Kill the worker sent.
	Killed bool `json:"killed,omitempty"`
	// CPUMicros is its user and system CPU time, its waited-for children
	// included.
	CPUMicros int64 `json:"cpuMicros"`
	// MaxRSSBytes is the largest resident set of it or a waited-for child.
	MaxRSSBytes int64 `json:"maxRssBytes"`
	// OOMKills counts the memory limit's kills in the sandbox while it ran,
	// or -1 when the agent cannot tell.
	OOMKills int `json:"oomKills"`
}

// StdinAck acknowledges Stdin bytes the agent wrote to the command (or
// dropped, once the command stopped reading).
type StdinAck struct {
	N int `json:"n"`
}

// Kill asks for every process of the sandbox's user to be killed. Exec is
// set when the worker sends it during an Exec it has not seen the Exit of:
// then no Done follows, the Exit is the answer (and may be sent already).
type Kill struct {
	Exec bool `json:"exec,omitempty"`
}

// Put announces a tar archive of files to write into the workspace.
type Put struct {
	// MaxBytes bounds the archive.
	MaxBytes int64 `json:"maxBytes"`
}

// Collect asks for a tar archive of the workspace's files that match Globs.
type Collect struct {
	Globs []string `json:"globs"`
	// MaxBytes bounds the content returned; files beyond it are listed
	// without content.
	MaxBytes int64 `json:"maxBytes"`
	// MaxEntries bounds the entries returned.
	MaxEntries int `json:"maxEntries"`
	// BudgetMillis bounds the walk.
	BudgetMillis int64 `json:"budgetMillis"`
}

// Reset asks for every process to be killed and every writable place
// emptied and verified.
type Reset struct {
	BudgetMillis int64 `json:"budgetMillis"`
}

// Ping asks for a Done.
type Ping struct{}

// Done ends a request. Error is empty on success.
type Done struct {
	Error string `json:"error,omitempty"`
	// Reset is the report of a Reset.
	Reset *ResetReport `json:"reset,omitempty"`
	// Collect is the summary of a Collect.
	Collect *CollectReport `json:"collect,omitempty"`
}

// ResetReport says what a reset found and did.
type ResetReport struct {
	// Killed counts the processes it killed.
	Killed int `json:"killed"`
	// Removed counts the files, directories and IPC objects it removed.
	Removed int `json:"removed"`
	// Micros is how long it took.
	Micros int64 `json:"micros"`
}

// CollectReport summarizes a collection.
type CollectReport struct {
	// Truncated names what cut the collection short: "" when nothing did,
	// else a message ("more than 1000 entries", "the 10s budget").
	Truncated string `json:"truncated,omitempty"`
	// Visited counts the entries walked.
	Visited int `json:"visited"`
}

// ErrFrameTooLarge is returned for a frame longer than MaxFrame.
var ErrFrameTooLarge = errors.New("frame too large")

// Frame is one frame read.
type Frame struct {
	Type    Type
	Payload []byte
}

// Decode unmarshals a control frame's JSON payload into v.
func (f Frame) Decode(v any) error {
	if err := json.Unmarshal(f.Payload, v); err != nil {
		return fmt.Errorf("decode %s frame: %w", f.Type, err)
	}
	return nil
}

// Reader reads frames. It is not safe for concurrent use.
type Reader struct {
	r   io.Reader
	hdr [4]byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Read reads the next frame. Its payload is a new slice. It returns
// io.EOF when r ends between frames, io.ErrUnexpectedEOF within one.
func (r *Reader) Read() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(r.hdr[:])
	if n == 0 || n > MaxFrame {
		return Frame{}, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return Frame{Type: Type(buf[0]), Payload: buf[1:]}, nil
}

// Writer writes frames. It is not safe for concurrent use; the agent and
// the worker each serialize their writes.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes one frame of type t with payload p, in one write call.
func (w *Writer) Write(t Type, p []byte) error {
	if len(p)+1 > MaxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(p)+1)
	}
	w.buf = w.buf[:0]
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(p)+1))
	w.buf = append(w.buf, byte(t))
	w.buf = append(w.buf, p...)
	_, err := w.w.Write(w.buf)
	return err
}

// WriteJSON writes a control frame of type t with v as its JSON payload.
func (w *Writer) WriteJSON(t Type, v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s frame: %w", t, err)
	}
	return w.Write(t, p)
}
