package docker

import (
	"io"
	"strings"
)

// startFailurePrefix begins the message the engine writes to an exec's
// standard output, with exit code 126, when it cannot start the process
// (no /bin/sh in the image, a missing working directory).
const startFailurePrefix = "OCI runtime exec failed: "

// headFilter passes a command's standard output through, except that it
// holds back the first bytes while they could begin one of prefixes:
// messages the engine or runScript write there in the command's place, to
// be reported as errors instead of as output. Output that does not begin
// like one of them is passed on at its first write.
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

// startFailure turns the engine's start-failure message into the reason a
// shell would give and its exit code: 127 for a program not found, 126
// otherwise.
func startFailure(msg string) (string, int) {
	msg = strings.TrimSuffix(msg, ": unknown")
	if i := strings.LastIndex(msg, "exec: "); i >= 0 {
		msg = msg[i+len("exec: "):]
	} else {
		msg = strings.TrimPrefix(msg, startFailurePrefix)
	}
	if strings.Contains(msg, "not found") || strings.Contains(msg, "no such file") {
		return msg, 127
	}
	return msg, 126
}
