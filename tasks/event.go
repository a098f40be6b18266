package tasks

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventType says what a stream entry holds.
type EventType string

// The stream event types, in the order an execution produces them. A retry
// after a worker crash or an infrastructure failure writes a new
// EventStarted carrying its attempt; EventExit is always last.
const (
	EventStarted EventType = "started"
	EventStdout  EventType = "stdout"
	EventStderr  EventType = "stderr"
	EventExit    EventType = "exit"
)

// Stream entry field names.
const (
	FieldType = "type"
	FieldData = "data"
)

// Event is one entry of an execution's stream.
type Event struct {
	// ID is the stream entry ID; following from it resumes after this event.
	ID   string    `json:"id"`
	Type EventType `json:"type"`
	// Data is the exact output bytes for stdout and stderr events, and JSON
	// (StartedData, ExitData) for started and exit events.
	Data []byte `json:"data"`
}

// StartedData is the data of an EventStarted.
type StartedData struct {
	Attempt   int       `json:"attempt"`
	Worker    string    `json:"worker"`
	Image     string    `json:"image,omitempty"`
	Container string    `json:"container,omitempty"`
	StartedAt time.Time `json:"startedAt"`
}

// ExitData is the data of an EventExit: enough to end a follower without
// reading the result.
type ExitData struct {
	Status          Status `json:"status"`
	ExitCode        int    `json:"exitCode"`
	StdoutTruncated bool   `json:"stdoutTruncated,omitempty"`
	StderrTruncated bool   `json:"stderrTruncated,omitempty"`
	// Step is the Result's Step: "compile" when a language's compile step
	// failed.
	Step  Step   `json:"step,omitempty"`
	Error string `json:"error,omitempty"`
}

// Started decodes the data of an EventStarted.
func (e Event) Started() (StartedData, error) {
	var d StartedData
	if e.Type != EventStarted {
		return d, fmt.Errorf("event %s is %q, not %q", e.ID, e.Type, EventStarted)
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return d, fmt.Errorf("decode started event %s: %w", e.ID, err)
	}
	return d, nil
}

// Exit decodes the data of an EventExit.
func (e Event) Exit() (ExitData, error) {
	var d ExitData
	if e.Type != EventExit {
		return d, fmt.Errorf("event %s is %q, not %q", e.ID, e.Type, EventExit)
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return d, fmt.Errorf("decode exit event %s: %w", e.ID, err)
	}
	return d, nil
}

// ExitDataOf is the exit event data that goes with a result.
func ExitDataOf(r *Result) ExitData {
	return ExitData{
		Status:          r.Status,
		ExitCode:        r.ExitCode,
		StdoutTruncated: r.StdoutTruncated,
		StderrTruncated: r.StderrTruncated,
		Step:            r.Step,
		Error:           r.Error,
	}
}
