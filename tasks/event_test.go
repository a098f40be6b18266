package tasks_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
)

func TestEventStarted(t *testing.T) {
	t.Parallel()
	want := tasks.StartedData{Attempt: 2, Worker: "w", Image: "img", Container: "abc", StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tasks.Event{ID: "1-0", Type: tasks.EventStarted, Data: data}.Started()
	if err != nil || got != want {
		t.Errorf("Started() = %+v, %v; want %+v", got, err, want)
	}
	if _, err := (tasks.Event{ID: "1-0", Type: tasks.EventExit, Data: data}).Started(); err == nil {
		t.Error("Started() of an exit event succeeded")
	}
	if _, err := (tasks.Event{ID: "1-0", Type: tasks.EventStarted, Data: []byte("{")}).Started(); err == nil {
		t.Error("Started() of undecodable data succeeded")
	}
}

func TestEventExit(t *testing.T) {
	t.Parallel()
	res := &tasks.Result{Status: tasks.StatusTimedOut, ExitCode: -1, StdoutTruncated: true, Error: "killed", Stdout: "not in the event"}
	data, err := json.Marshal(tasks.ExitDataOf(res))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tasks.Event{ID: "2-0", Type: tasks.EventExit, Data: data}.Exit()
	want := tasks.ExitData{Status: tasks.StatusTimedOut, ExitCode: -1, StdoutTruncated: true, Error: "killed"}
	if err != nil || got != want {
		t.Errorf("Exit() = %+v, %v; want %+v", got, err, want)
	}
	for _, ev := range []tasks.Event{
		{Type: tasks.EventStdout, Data: data},
		{Type: tasks.EventStarted, Data: data},
		{Type: tasks.EventExit, Data: []byte("not json")},
		{Type: tasks.EventExit, Data: nil},
	} {
		if d, err := ev.Exit(); err == nil {
			t.Errorf("Exit() of %s %q = %+v, want an error", ev.Type, ev.Data, d)
		}
	}
}
