package docker

import (
	"io"
	"strings"
)

// startFailurePrefix begins the message the engine writes to an exec's
// standard output, with exit code 126, when it cannot start the process: a
// program not found, not executable, a missing working directory.
const startFailurePrefix = "OCI runtime exec failed: "

// startFailureFilter passes standard output through, except that it holds
// back the first bytes while they could be the engine's start-failure
// message, so that such a message can be reported as an error instead of
// as the command's output. Output that does not begin like the message is
// passed on at its first write.
type startFailureFilter struct {
	w       io.Writer
	held    []byte
	decided bool
}

func (f *startFailureFilter) Write(p []byte) (int, error) {
	if f.decided {
		return f.w.Write(p)
	}
	f.held = append(f.held, p...)
	n := min(len(f.held), len(startFailurePrefix))
	if string(f.held[:n]) != startFailurePrefix[:n] || len(f.held) > 4096 {
		if err := f.release(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (f *startFailureFilter) release() error {
	f.decided = true
	held := f.held
	f.held = nil
	if len(held) == 0 {
		return nil
	}
	_, err := f.w.Write(held)
	return err
}

// finish is called once the process has exited with code. It returns the
// start failure's reason and the exit code a shell would give (127 for a
// program not found, 126 otherwise), or passes on what it held.
func (f *startFailureFilter) finish(code int) (reason string, shellCode int, failed bool) {
	if f.decided || code != 126 || !strings.HasPrefix(string(f.held), startFailurePrefix) {
		_ = f.release()
		return "", code, false
	}
	msg := strings.TrimSpace(string(f.held))
	f.held = nil
	f.decided = true
	msg = strings.TrimSuffix(msg, ": unknown")
	if i := strings.LastIndex(msg, "exec: "); i >= 0 {
		msg = msg[i+len("exec: "):]
	} else {
		msg = strings.TrimPrefix(msg, startFailurePrefix)
	}
	shellCode = 126
	if strings.Contains(msg, "not found") || strings.Contains(msg, "no such file") {
		shellCode = 127
	}
	return msg, shellCode, true
}
