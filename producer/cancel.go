package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// Cancel cancels an execution. One still queued is removed from its queue
// and gets a "canceled" result at once. One running is killed by its
// worker, which stores the "canceled" result; Cancel does not wait for that
// (Wait does). The cancel is recorded, so that an attempt that starts later,
// a retry included, does not run the command.
//
// It returns ErrFinished when the execution already has its result, and
// ErrNotFound when no such execution was submitted. Any other error is a
// failure of Redis, saying what Cancel was doing; the execution may then
// not be canceled, and Cancel may be called again.
func (c *Client) Cancel(ctx context.Context, id string) error {
	done, err := c.store.HasResult(ctx, id)
	if err != nil {
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	if done {
		return fmt.Errorf("cancel %s: %w", id, ErrFinished)
	}
	queue, err := c.store.Queue(ctx, id)
	if errors.Is(err, rdb.ErrNotFound) {
		return fmt.Errorf("cancel %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	if err := c.store.MarkCanceled(ctx, id); err != nil {
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	if err := c.inspector.DeleteTask(queue, id); err != nil {
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			// Gone already: finished, or its worker finishes it.
			return nil
		}
		if c.runningOrEnded(ctx, queue, id) {
			return nil
		}
		return fmt.Errorf("cancel %s: remove it from queue %q: %w", id, queue, err)
	}
	if _, err := c.store.Finalize(ctx, &tasks.Result{
		ExecutionID: id,
		Status:      tasks.StatusCanceled,
		ExitCode:    -1,
		Error:       "canceled before it started",
		FinishedAt:  time.Now().UTC(),
	}); err != nil && !errors.As(err, new(*rdb.NotRecordedError)) {
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	if err := c.store.RemovePending(ctx, id); err != nil {
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	return nil
}

// runningOrEnded reports whether the execution id, whose task asynq did
// not delete, is running (its worker sees the cancel mark and kills it) or
// ended meanwhile. asynq refuses to delete a running task with an error
// that errors.Is cannot tell from a failure of Redis; the task's state and
// the execution's result can.
func (c *Client) runningOrEnded(ctx context.Context, queue, id string) bool {
	info, err := c.inspector.GetTaskInfo(queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound):
		return true
	case err == nil && info.State == asynq.TaskStateActive:
		return true
	}
	done, err := c.store.HasResult(ctx, id)
	return err == nil && done
}
