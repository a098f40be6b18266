package mcpserver

import (
	"fmt"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/execq/execq/tasks"
)

// Statuses of an execution that has no result yet, which get_result
// reports in place of a result.
const (
	statusQueued  = "queued"
	statusRunning = "running"
)

// finalStatuses are the statuses of a result, in the order the README
// lists them.
var finalStatuses = []any{
	string(tasks.StatusSucceeded), string(tasks.StatusFailed), string(tasks.StatusTimedOut),
	string(tasks.StatusOOMKilled), string(tasks.StatusCanceled), string(tasks.StatusRejected),
	string(tasks.StatusError),
}

// resultSchema is the JSON Schema of tasks.Result's JSON, the execute
// tool's structuredContent. With pending, it is get_result's: a result,
// or only executionId and a status of queued or running.
func resultSchema(pending bool) *jsonschema.Schema {
	str := func(desc string) *jsonschema.Schema { return &jsonschema.Schema{Type: "string", Description: desc} }
	integer := func(desc string) *jsonschema.Schema { return &jsonschema.Schema{Type: "integer", Description: desc} }
	boolean := func(desc string) *jsonschema.Schema { return &jsonschema.Schema{Type: "boolean", Description: desc} }
	encoding := func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Enum: []any{tasks.EncodingBase64},
			Description: "base64 when the output is not valid UTF-8 text; the field then holds its base64"}
	}
	statuses := finalStatuses
	statusDesc := "succeeded (exit 0), failed (non-zero exit), timed_out, oom_killed, canceled, rejected (invalid request, nothing ran) or error (execq failed)"
	if pending {
		statuses = append([]any{statusQueued, statusRunning}, finalStatuses...)
		statusDesc = "queued or running while there is no result yet; then " + statusDesc
	}
	s := &jsonschema.Schema{
		Type:        "object",
		Description: "an execq execution result (the result JSON of execq result ID)",
		Properties: map[string]*jsonschema.Schema{
			"executionId":     str("the execution ID"),
			"status":          {Type: "string", Enum: statuses, Description: statusDesc},
			"success":         boolean("true when status is succeeded"),
			"exitCode":        integer("the command's exit code; 128+N when signal N ended it; -1 when a timeout or a cancel ended it or it never ran"),
			"stdout":          str("the command's standard output, up to the output cap"),
			"stdoutEncoding":  encoding(),
			"stderr":          str("the command's standard error, up to the output cap"),
			"stderrEncoding":  encoding(),
			"stdoutTruncated": boolean("whether the output cap cut stdout"),
			"stderrTruncated": boolean("whether the output cap cut stderr"),
			"stdoutBytes":     integer("bytes the command wrote to stdout in all"),
			"stderrBytes":     integer("bytes the command wrote to stderr in all"),
			"duration":        integer("milliseconds the command ran"),
			"queuedMs":        integer("milliseconds from submission to the start of this attempt"),
			"attempt":         integer("which attempt produced the result, from 1; 0 when none started"),
			"worker":          str("the worker that ran it"),
			"image":           str("the sandbox image"),
			"resources": {Type: "object", Description: "what the execution used", Properties: map[string]*jsonschema.Schema{
				"cpuTimeMs":       integer("CPU time in milliseconds"),
				"peakMemoryBytes": integer("peak memory in bytes"),
			}},
			"files": {Type: "array", Description: "collected files", Items: &jsonschema.Schema{Type: "object", Properties: map[string]*jsonschema.Schema{
				"path":    str("relative to /workspace"),
				"size":    integer("bytes"),
				"mode":    str("permission bits, octal"),
				"content": str("base64"),
				"error":   str("why it was not returned"),
			}}},
			"error":      str("what went wrong, for statuses other than succeeded and failed"),
			"startedAt":  {Type: "string", Format: "date-time"},
			"finishedAt": {Type: "string", Format: "date-time"},
		},
		Required: []string{"executionId", "status", "success", "exitCode", "stdout", "stderr",
			"stdoutTruncated", "stderrTruncated", "stdoutBytes", "stderrBytes", "duration", "queuedMs",
			"attempt", "finishedAt"},
	}
	if pending {
		s.Required = []string{"executionId", "status"}
	}
	return s
}

// executeInputSchema is the input schema of execute and submit: the one
// inferred from ExecuteArgs, with bounds that inference cannot know.
func executeInputSchema() (*jsonschema.Schema, error) {
	s, err := jsonschema.For[ExecuteArgs](nil)
	if err != nil {
		return nil, fmt.Errorf("infer the schema of execute's arguments: %w", err)
	}
	s.Properties["timeoutSeconds"].Minimum = jsonschema.Ptr(0.0)
	argv := s.Properties["argv"]
	argv.Types, argv.Type, argv.MinItems = nil, "array", jsonschema.Ptr(1)
	s.Properties["command"].MinLength = jsonschema.Ptr(1)
	return s, nil
}

// createSessionInputSchema is the input schema of create_session: the one
// inferred from CreateSessionArgs, with bounds that inference cannot know.
func createSessionInputSchema() (*jsonschema.Schema, error) {
	s, err := jsonschema.For[CreateSessionArgs](nil)
	if err != nil {
		return nil, fmt.Errorf("infer the schema of create_session's arguments: %w", err)
	}
	for _, name := range []string{"idleTimeoutSeconds", "lifetimeSeconds", "cpus", "pids"} {
		s.Properties[name].Minimum = jsonschema.Ptr(0.0)
	}
	s.Properties["lifetimeSeconds"].Maximum = jsonschema.Ptr(tasks.MaxSessionLifetime.Seconds())
	return s, nil
}
