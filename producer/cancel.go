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
// ErrNotFound when no such execution was submitted.
func (c *Client) Cancel(ctx context.Context, id string) error {
	done, err := c.store.HasResult(ctx, id)
	if err != nil {
		return err
	}
	if done {
		return fmt.Errorf("cancel %s: %w", id, ErrFinished)
	}
	queue, err := c.store.Queue(ctx, id)
	if errors.Is(err, rdb.ErrNotFound) {
		return fmt.Errorf("cancel %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if err := c.store.MarkCanceled(ctx, id); err != nil {
		return err
	}
	if err := c.inspector.DeleteTask(queue, id); err != nil {
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			// Gone already: finished, or its worker finishes it.
			return nil
		}
		info, ierr := c.inspector.GetTaskInfo(queue, id)
		switch {
		case errors.Is(ierr, asynq.ErrTaskNotFound):
			return nil
		case ierr != nil:
			return fmt.Errorf("cancel %s: remove it from queue %q: %w", id, queue, err)
		case info.State == asynq.TaskStatePending, info.State == asynq.TaskStateScheduled, info.State == asynq.TaskStateRetry:
			// Still waiting: the removal should have worked.
			return fmt.Errorf("cancel %s: remove it from queue %q: %w", id, queue, err)
		}
		// Running (its worker sees the mark and kills it) or done.
		return nil
	}
	if _, err := c.store.Finalize(ctx, &tasks.Result{
		ExecutionID: id,
		Status:      tasks.StatusCanceled,
		ExitCode:    -1,
		Error:       "canceled before it started",
		FinishedAt:  time.Now().UTC(),
	}); err != nil {
		return err
	}
	return c.store.RemovePending(ctx, id)
}
