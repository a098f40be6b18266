package rdb_test

import (
	"errors"
	"testing"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// A written result is logged once, with its queue; a second Finalize of
// the same execution logs nothing.
func TestFinalizeRecordsFinishedExecutions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)
	if _, err := b.store.BindQueue(b.ctx, "e1", "critical"); err != nil {
		t.Fatal(err)
	}
	for i, st := range []tasks.Status{tasks.StatusFailed, tasks.StatusSucceeded} {
		res := &tasks.Result{ExecutionID: "e1", Status: st, ExitCode: 3, Image: "img", Worker: "w1",
			DurationMs: 12, QueuedMs: 3, Attempt: 2, FinishedAt: at}
		written, err := b.store.Finalize(b.ctx, res)
		if err != nil || written != (i == 0) {
			t.Fatalf("Finalize %d: %v, %v", i, written, err)
		}
	}
	if _, err := b.store.Finalize(b.ctx, &tasks.Result{ExecutionID: "e2", Status: tasks.StatusTimedOut, ExitCode: -1, FinishedAt: at.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	got, err := b.store.Finished(b.ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "e2" || got[1].ID != "e1" {
		t.Fatalf("Finished: %+v, want e2 then e1", got)
	}
	want := rdb.Summary{ID: "e1", Status: tasks.StatusFailed, ExitCode: 3, Queue: "critical", Image: "img", Worker: "w1",
		DurationMs: 12, QueuedMs: 3, Attempt: 2, FinishedAt: at, Entry: got[1].Entry}
	if got[1] != want {
		t.Errorf("summary of e1:\n got %+v\nwant %+v", got[1], want)
	}
	if got[0].Queue != "" || got[0].ExitCode != -1 {
		t.Errorf("summary of e2 (no queue bound): %+v", got[0])
	}
	older, err := b.store.Finished(b.ctx, got[0].Entry, 10)
	if err != nil || len(older) != 1 || older[0].ID != "e1" {
		t.Errorf("Finished before e2's entry: %+v, %v; want e1 alone", older, err)
	}

	counts, err := b.store.StatusCounts(b.ctx, at.Add(time.Minute), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 3 || !counts[2].Minute.Equal(time.Date(2026, 12, 1, 10, 1, 0, 0, time.UTC)) {
		t.Fatalf("StatusCounts minutes: %+v", counts)
	}
	if len(counts[0].Counts) != 0 || counts[1].Counts[tasks.StatusFailed] != 1 || len(counts[1].Counts) != 1 ||
		counts[2].Counts[tasks.StatusTimedOut] != 1 {
		t.Errorf("StatusCounts: %+v", counts)
	}
}

// When only the log write fails, the result is stored, and Finalize says
// both.
func TestFinalizeThatCannotLogStillStoresTheResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := b.mr.Set(b.keys.Finished(), "not a stream"); err != nil {
		t.Fatal(err)
	}
	written, err := b.store.Finalize(b.ctx, &tasks.Result{ExecutionID: "e1", Status: tasks.StatusSucceeded})
	var notRecorded *rdb.NotRecordedError
	if !written || !errors.As(err, &notRecorded) || notRecorded.ID != "e1" {
		t.Fatalf("Finalize: %v, %v; want written and a NotRecordedError", written, err)
	}
	if _, err := b.store.Result(b.ctx, "e1"); err != nil {
		t.Errorf("the result is not stored: %v", err)
	}
}

func TestPendingNewest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "c"} {
		if err := b.store.AddPending(b.ctx, id, at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.store.PendingNewest(b.ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "c" || got[1].ID != "b" || !got[0].EnqueuedAt.Equal(at.Add(2*time.Second)) {
		t.Errorf("PendingNewest: %+v", got)
	}
}

// The dashboard's copy of a result goes into its asynq task's hash with
// the executions log, and only while the task exists: a task deleted
// meanwhile gets no hash of a lone field.
func TestFinalizeWritesTheTaskCopy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mr.HSet("asynq:{q1}:t:e1", "state", "active")
	for _, id := range []string{"e1", "e2"} {
		res := &tasks.Result{ExecutionID: id, Status: tasks.StatusSucceeded, Attempt: 1}
		if written, err := b.store.Attempt(0).Finalize(b.ctx, res, &rdb.TaskCopy{Queue: "q1", Body: []byte(`{"copy":"` + id + `"}`)}); !written || err != nil {
			t.Fatalf("Finalize %s: %v, %v", id, written, err)
		}
	}
	if got := b.mr.HGet("asynq:{q1}:t:e1", "result"); got != `{"copy":"e1"}` {
		t.Errorf("the task's result field = %q", got)
	}
	if b.mr.Exists("asynq:{q1}:t:e2") {
		t.Error("a result field was written for a task that does not exist")
	}
}
