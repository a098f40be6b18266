package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/execq/execq/tasks"
)

// Submit enqueues req and returns its execution ID at once. The ID is
// req.ID, or a new UUID when it is empty; it is also the asynq task ID, so
// a second Submit of the same request under the same ID, within the
// retention period, enqueues nothing and returns the same ID. The ID is
// bound to the request first submitted under it: another request under it
// (another command, image, queue, …) is refused with ErrIDConflict.
//
// Inputs over tasks.InlineInputBytes in all travel beside the task: the
// largest of stdin and the file contents are stored under the execution's
// tasks.Keys.Input, for the retention period, before the task is enqueued,
// and the payload carries references to them (tasks.StoredInput). A failed
// store enqueues nothing. The ID stays bound to the request's contents,
// whatever travels where.
//
// A request that fails tasks.ExecRequest.Check is refused with a
// *tasks.ValidationError and nothing is enqueued. Limits are checked by the
// worker, which stores a "rejected" result for a request over them.
func (c *Client) Submit(ctx context.Context, req tasks.ExecRequest) (string, error) {
	id, _, err := c.SubmitCreated(ctx, req)
	return id, err
}

// SubmitCreated is Submit, and reports whether this call bound the ID to
// the request: false when the same request was submitted under it before
// (a replay, which enqueues nothing new).
func (c *Client) SubmitCreated(ctx context.Context, req tasks.ExecRequest) (id string, created bool, err error) {
	if req.ID == "" {
		req.ID = uuid.NewString()
	}
	if req.Queue == "" {
		req.Queue = c.opts.Queue
	}
	if req.SubmittedAt.IsZero() {
		req.SubmittedAt = time.Now().UTC()
	}
	if refs := req.StoredInputs(); len(refs) > 0 {
		return "", false, &tasks.ValidationError{Problems: []string{
			refs[0].Name + " is a reference to an input stored beside a task; give Submit the bytes, it stores what is large itself"}}
	}
	wire, inputs := req.StoreBeside()
	if err := wire.Check(); err != nil {
		return "", false, err
	}
	if req.Session != "" {
		// An execution of a session goes to the queue of the session's
		// worker.
		queue, err := c.sessionQueue(ctx, req)
		if err != nil {
			return "", false, err
		}
		req.Queue, wire.Queue = queue, queue
	}
	digest, err := req.Digest()
	if err != nil {
		return "", false, err
	}
	bound, err := c.store.BindRequest(ctx, req.ID, req.Queue, digest, req.Owner)
	if err != nil {
		return "", false, fmt.Errorf("submit %s: %w", req.ID, err)
	}
	switch {
	case bound.Queue != req.Queue:
		return "", false, fmt.Errorf("submit %s to queue %q: %w: it was submitted to queue %q", req.ID, req.Queue, ErrIDConflict, bound.Queue)
	case bound.Digest != "" && bound.Digest != digest:
		return "", false, fmt.Errorf("submit %s: %w: it was submitted with another request; use a new ID for a new request", req.ID, ErrIDConflict)
	}
	if req.Session != "" {
		// Its place in the session, once its ID is bound to it: an ID
		// refused above takes no place, which would leave a gap in the
		// session's order.
		if err := c.admit(ctx, &req); err != nil {
			return "", false, err
		}
		wire.SessionSeq = req.SessionSeq
	}
	payload, err := tasks.EncodeRequest(&wire)
	if err != nil {
		return "", false, err
	}
	if len(inputs) > 0 {
		// Before the task: no worker may see a reference to an input not
		// yet written. After a failed enqueue they stay (it may have
		// happened after all) until a resubmission or their expiry.
		if _, err := c.store.PutInputs(ctx, req.ID, inputs); err != nil {
			return "", false, fmt.Errorf("submit %s: %w", req.ID, err)
		}
	}
	task := asynq.NewTask(tasks.TypeExec, payload,
		asynq.TaskID(req.ID),
		asynq.Queue(req.Queue),
		asynq.MaxRetry(taskMaxRetry),
		asynq.Timeout(taskTimeout(req.Timeout)),
		asynq.Retention(c.opts.Retention),
	)
	if _, err := c.queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return "", false, fmt.Errorf("submit %s: %w", req.ID, err)
	}
	// The workers sweep what is pending, so that an execution whose task
	// leaves its queue without a result (deleted by an operator) gets one.
	if err := c.store.AddPending(ctx, req.ID, time.Now()); err != nil {
		return "", false, fmt.Errorf("submit %s: %w", req.ID, err)
	}
	return req.ID, bound.Created, nil
}

// taskMaxRetry is asynq's retry limit of an execution's task. The worker
// keeps its own, smaller budget of retries after infrastructure failures
// and stores an "error" result when it is used up; asynq's limit only backs
// it up, since asynq archives a task past its limit without a result.
const taskMaxRetry = 100

// taskTimeout is asynq's deadline for a task: a backstop well past the
// command's own timeout, which the worker enforces, leaving room for the
// wait for a container, the files and the result. asynq keeps whole
// seconds (a sub-second value would become its 30-minute default), so it is
// rounded up.
func taskTimeout(cmd time.Duration) time.Duration {
	if cmd <= 0 {
		cmd = time.Hour
	}
	return (cmd + 10*time.Minute + time.Second - 1).Truncate(time.Second)
}
