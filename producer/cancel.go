package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	// Removing fails for a running task: its worker handles the cancel.
	if err := c.inspector.DeleteTask(queue, id); err != nil {
		return nil
	}
	_, err = c.store.Finalize(ctx, &tasks.Result{
		ExecutionID: id,
		Status:      tasks.StatusCanceled,
		ExitCode:    -1,
		Error:       "canceled before it started",
		FinishedAt:  time.Now().UTC(),
	})
	return err
}
