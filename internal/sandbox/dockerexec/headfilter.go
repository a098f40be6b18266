package dockerexec

import (
	"io"
	"strings"

	"github.com/execq/execq/internal/sandbox"
)

// startFailurePrefix begins the message the engine writes to an exec's
// standard output, with exit code 126, when it cannot start the process
// (no /bin/sh in the image, a missing working directory).
const startFailurePrefix = "OCI runtime exec failed: "

// headFilter passes a command's standard output through, except that it
// holds back the first bytes while they could begin one of prefixes: the
// message the engine writes there when it cannot start the process. Output
// that does not begin like one is passed on at its first write. Whether the
// held bytes were the engine's is decided by the process never having had
// a PID, not by what they say.
type headFilter struct {
	w        io.Writer
	prefixes []string
	held     []byte
	decided  bool
}

func (f *headFilter) Write(p []byte) (int, error) {
	if f.decided {
		return f.w.Write(p)
	}
	f.held = append(f.held, p...)
	if !f.couldMatch() || len(f.held) > 4096 {
		if err := f.release(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (f *headFilter) couldMatch() bool {
	for _, prefix := range f.prefixes {
		n := min(len(f.held), len(prefix))
		if string(f.held[:n]) == prefix[:n] {
			return true
		}
	}
	return false
}

func (f *headFilter) release() error {
	f.decided = true
	held := f.held
	f.held = nil
	if len(held) == 0 {
		return nil
	}
	_, err := f.w.Write(held)
	return err
}

// finish is called once the process has exited. When what it held begins
// with prefix, it returns that message and keeps it back; otherwise it
// passes on what it held and returns "".
func (f *headFilter) finish(prefix string) string {
	if f.decided || !strings.HasPrefix(string(f.held), prefix) {
		return ""
	}
	msg := strings.TrimSpace(string(f.held))
	f.held = nil
	f.decided = true
	return msg
}

// flush passes on whatever is still held.
func (f *headFilter) flush() { _ = f.release() }

// startFailure turns the engine's start-failure message into a reason
// and the message a shell would give.
func startFailure(msg string) (sandbox.StartReason, string) {
	msg = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(msg), ": unknown"))
	if i := strings.Index(msg, "chdir to cwd"); i >= 0 {
		return sandbox.StartWorkDir, "the working directory " + strings.TrimPrefix(msg[i:], "chdir to cwd ")
	}
	if i := strings.Index(msg, "initial working directory"); i >= 0 {
		// gVisor's wording.
		return sandbox.StartWorkDir, "the working directory " + strings.TrimPrefix(msg[i:], "initial working directory ")
	}
	if i := strings.LastIndex(msg, "exec: "); i >= 0 {
		msg = msg[i+len("exec: "):]
	} else {
		msg = strings.TrimPrefix(msg, startFailurePrefix)
	}
	switch {
	case strings.Contains(msg, "not found"), strings.Contains(msg, "no such file"):
		return sandbox.StartNotFound, msg
	case strings.Contains(msg, "permission denied"):
		return sandbox.StartDenied, msg
	case strings.Contains(msg, "argument list too long"):
		return sandbox.StartTooLarge, msg
	}
	return sandbox.StartOther, msg
}
