package main

import (
	"fmt"
	"io"
	"os"

	"github.com/execq/execq/tasks"
)

// statusLine tells a person at a terminal where an execution is (queued,
// started on which worker, which attempt) on one line of stderr that is
// erased as soon as the command's output begins, so that it never mixes
// with the output. It shows nothing when stdout or stderr is not a
// terminal. A nil *statusLine shows nothing.
type statusLine struct {
	w      io.Writer
	shown  bool
	output bool // the command's output has begun
}

func newStatusLine(enabled bool, stdout, stderr io.Writer) *statusLine {
	if !enabled || !isTerminal(stdout) || !isTerminal(stderr) {
		return nil
	}
	return &statusLine{w: stderr}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// show replaces the status, unless the output has begun.
func (s *statusLine) show(format string, args ...any) {
	if s == nil || s.output {
		return
	}
	fmt.Fprintf(s.w, "\r\033[Kexecq: "+format, args...)
	s.shown = true
}

// started reports an attempt's start: on the status line for the first, on
// a line of its own for a retry, whose output follows the last attempt's.
func (s *statusLine) started(d tasks.StartedData) {
	if s == nil {
		return
	}
	if d.Attempt > 1 && s.output {
		fmt.Fprintf(s.w, "\nexecq: attempt %d started on %s; the last one was interrupted\n", d.Attempt, d.Worker)
		return
	}
	s.show("running on %s (container %s, attempt %d)", d.Worker, d.Container, d.Attempt)
}

// clear erases the status before output or at the end.
func (s *statusLine) clear() {
	if s == nil {
		return
	}
	if s.shown {
		fmt.Fprint(s.w, "\r\033[K")
		s.shown = false
	}
	s.output = true
}
