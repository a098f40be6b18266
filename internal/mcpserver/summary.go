package mcpserver

import (
	"fmt"
	"strings"
	"unicode/utf8"

	units "github.com/docker/go-units"

	"github.com/execq/execq/tasks"
)

// summary is the text content of a result: what a model reads first. It
// holds the status and exit code, the output, what the cap cut, the
// duration and the error, in that order.
func summary(r *tasks.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "status: %s\n", r.Status)
	fmt.Fprintf(&b, "exit code: %d%s\n", r.ExitCode, exitNote(r))
	if r.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", r.Error)
	}
	fmt.Fprintf(&b, "duration: %d ms\n", r.DurationMs)
	fmt.Fprintf(&b, "execution: %s\n", r.ExecutionID)
	writeOutput(&b, "stdout", r.Stdout, r.StdoutTruncated, r.StdoutBytes)
	writeOutput(&b, "stderr", r.Stderr, r.StderrTruncated, r.StderrBytes)
	return b.String()
}

// exitNote says what an exit code means when it is not the command's own
// plain code.
func exitNote(r *tasks.Result) string {
	switch {
	case r.ExitCode == -1:
		return " (the command did not exit by itself)"
	case r.Status == tasks.StatusOOMKilled:
		return " (killed by the memory limit)"
	case r.ExitCode == 126:
		return " (the command could not be executed)"
	case r.ExitCode == 127:
		return " (no such program)"
	case r.ExitCode > 128 && r.ExitCode < 128+65:
		return fmt.Sprintf(" (killed by signal %d)", r.ExitCode-128)
	}
	return ""
}

// writeOutput writes one stream's section: a header saying how much of
// it is shown, then the text as it is (invalid UTF-8 replaced; the
// structured result has the exact bytes).
func writeOutput(b *strings.Builder, name, out string, truncated bool, total int64) {
	fmt.Fprintf(b, "--- %s", name)
	switch {
	case out == "" && total == 0:
		b.WriteString(" (empty) ---\n")
		return
	case truncated:
		fmt.Fprintf(b, " (truncated: the first %s of %s) ---\n",
			units.BytesSize(float64(len(out))), units.BytesSize(float64(total)))
	case !utf8.ValidString(out):
		b.WriteString(" (not valid UTF-8; the structured result holds its exact bytes as base64) ---\n")
	default:
		b.WriteString(" ---\n")
	}
	b.WriteString(strings.ToValidUTF8(out, "\uFFFD"))
	if !strings.HasSuffix(out, "\n") {
		b.WriteString("\n")
	}
}
