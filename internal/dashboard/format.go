package dashboard

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// outputHead is how much of each output stream a result shows.
const outputHead = 300

// FormatPayload shows an execution request as a person reads it: image,
// command, limits and inputs, not its raw bytes.
func FormatPayload(taskType string, payload []byte) string {
	if taskType != tasks.TypeExec {
		return fallback(payload)
	}
	req, err := tasks.DecodeRequest(payload)
	if err != nil {
		return "undecodable request: " + fallback(payload)
	}
	var b strings.Builder
	image := req.Image
	switch {
	case req.Language != "":
		image = "(the language's, in the worker's catalogue)"
	case image == "":
		image = "(worker default)"
	}
	fmt.Fprintf(&b, "image:   %s\n", image)
	if req.Language != "" {
		fmt.Fprintf(&b, "language: %s\n", req.Language)
	}
	if req.Code != "" {
		fmt.Fprintf(&b, "code:    %s\n%s\n", humanBytes(int64(len(req.Code))), indent(trimLines(req.Code, outputHead)))
	}
	if len(req.Cmd) > 0 || req.Language == "" {
		fmt.Fprintf(&b, "command: %s\n", quoteArgv(req.Cmd))
	} else {
		b.WriteString("command: the language's steps\n")
	}
	var limits []string
	if req.Timeout > 0 {
		limits = append(limits, "timeout "+req.Timeout.String())
	} else {
		limits = append(limits, fmt.Sprintf("timeout the worker's (%s by default)", tasks.Limits{}.WithDefaults().DefaultTimeout))
	}
	if req.MemoryBytes > 0 {
		limits = append(limits, "memory "+humanBytes(req.MemoryBytes))
	}
	if req.CPUs > 0 {
		limits = append(limits, "cpus "+strconv.FormatFloat(req.CPUs, 'g', -1, 64))
	}
	if req.Pids > 0 {
		limits = append(limits, "pids "+strconv.FormatInt(req.Pids, 10))
	}
	if len(limits) > 0 {
		fmt.Fprintf(&b, "limits:  %s\n", strings.Join(limits, ", "))
	}
	if len(req.Files) > 0 {
		var size, besideSize int64
		beside := 0
		names := make([]string, 0, min(len(req.Files), 5))
		for i, f := range req.Files {
			if f.Stored != nil {
				beside++
				besideSize += f.Stored.Bytes
			} else {
				size += int64(len(f.Content))
			}
			if i < 5 {
				names = append(names, f.Path)
			}
		}
		more := ""
		if len(req.Files) > 5 {
			more = fmt.Sprintf(" and %d more", len(req.Files)-5)
		}
		total := humanBytes(size + besideSize)
		if beside > 0 {
			total += fmt.Sprintf(", %d of them (%s) stored beside the task", beside, humanBytes(besideSize))
		}
		fmt.Fprintf(&b, "files:   %d (%s): %s%s\n", len(req.Files), total, strings.Join(names, ", "), more)
	}
	switch {
	case req.StdinStored != nil:
		fmt.Fprintf(&b, "stdin:   %s, stored beside the task\n", humanBytes(req.StdinStored.Bytes))
	case len(req.Stdin) > 0:
		fmt.Fprintf(&b, "stdin:   %s\n", humanBytes(int64(len(req.Stdin))))
	}
	if len(req.Collect) > 0 {
		fmt.Fprintf(&b, "collect: %s\n", strings.Join(req.Collect, " "))
	}
	// asynq's Retry and Timeout, on the same page, are not execq's.
	fmt.Fprintf(&b, "retries: execq's, %d by default (%d attempts)\n         asynq's Retry and Timeout: backstops\n",
		worker.DefaultMaxRetry, worker.DefaultMaxAttempts)
	return strings.TrimRight(b.String(), "\n")
}

// FormatResult shows an execution's result: status, exit code, duration,
// resources and the head of its output.
//
// asynqmon gives no task type on a task's own page, so a result of another
// type is told by not decoding as an execution's.
func FormatResult(taskType string, result []byte) string {
	if taskType != tasks.TypeExec && taskType != "" {
		return fallback(result)
	}
	var res tasks.Result
	if err := json.Unmarshal(result, &res); err != nil || res.ExecutionID == "" || !res.Status.Final() {
		if taskType == "" {
			return fallback(result)
		}
		return "undecodable result: " + fallback(result)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "status:  %s", res.Status)
	if res.Status == tasks.StatusSucceeded || res.Status == tasks.StatusFailed || res.Status == tasks.StatusOOMKilled {
		fmt.Fprintf(&b, " (exit code %d)", res.ExitCode)
	}
	if res.Step == tasks.StepCompile {
		b.WriteString(" at the compile step")
	}
	fmt.Fprintf(&b, " in %d ms, attempt %d", res.DurationMs, res.Attempt)
	if res.Worker != "" {
		fmt.Fprintf(&b, " on %s", res.Worker)
	}
	b.WriteString("\n")
	if res.Error != "" {
		fmt.Fprintf(&b, "error:   %s\n", res.Error)
	}
	if res.Resources != nil {
		fmt.Fprintf(&b, "used:    %d ms cpu, %s peak memory\n", res.Resources.CPUTimeMs, humanBytes(res.Resources.PeakMemoryBytes))
	}
	writeOutput(&b, "stdout", res.Stdout, res.StdoutBytes, res.StdoutTruncated)
	writeOutput(&b, "stderr", res.Stderr, res.StderrBytes, res.StderrTruncated)
	if len(res.Files) > 0 {
		names := make([]string, 0, len(res.Files))
		for _, f := range res.Files {
			names = append(names, f.Path)
		}
		fmt.Fprintf(&b, "files:   %s\n", strings.Join(names, ", "))
	}
	return strings.TrimRight(b.String(), "\n")
}

func writeOutput(b *strings.Builder, name, data string, total int64, truncated bool) {
	if total == 0 {
		return
	}
	note := humanBytes(total)
	if truncated {
		note += ", truncated"
	}
	if !utf8.ValidString(data) {
		fmt.Fprintf(b, "%s:  (%s of binary output)\n", name, note)
		return
	}
	fmt.Fprintf(b, "%s:  (%s)\n%s\n", name, note, indent(trimLines(data, outputHead)))
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

func quoteArgv(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`|&;<>(){}*?[]#~") {
			parts[i] = a
		} else {
			parts[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(parts, " ")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func fallback(b []byte) string {
	if utf8.Valid(b) {
		return trimLines(string(b), 2000)
	}
	return fmt.Sprintf("(%d bytes, not text)", len(b))
}
