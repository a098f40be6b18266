package worker

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"time"

	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/pool"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/retry"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/stream"
	"github.com/execq/execq/tasks"
)

// The causes with which an execution's run context ends.
var (
	errTimedOut = errors.New("timed out")
	errCanceled = errors.New("canceled")
)

// writeTimeout bounds the Redis writes that finish an execution, retried
// while Redis is unreachable.
const writeTimeout = 30 * time.Second

// processTask is the asynq handler of TypeExec. It returns nil when the
// execution has its final result (rejections included), an error to have
// asynq retry it after an infrastructure failure, and the context's error
// when the worker is stopping (asynq then puts it back in its queue).
func (w *Worker) processTask(ctx context.Context, t *asynq.Task) error {
	w.inflight.Add(1)
	defer w.inflight.Done()
	id, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	e := &execution{
		w:       w,
		id:      id,
		queue:   queue,
		retried: retried,
		task:    t,
		log:     w.log.With("execution", id),
		res:     &tasks.Result{ExecutionID: id, Worker: w.cfg.Name, ExitCode: -1},
	}
	return e.process(ctx)
}

// execution is one attempt at one execution.
type execution struct {
	w       *Worker
	id      string
	queue   string
	retried int
	task    *asynq.Task
	log     *slog.Logger
	req     *tasks.ExecRequest
	res     *tasks.Result
	imageID string // what req.Image resolved to, once
	// steps are the commands to run, in order: the request's own, or its
	// language's compile and run steps.
	steps []step
	// attempt writes this attempt's events and result, fenced by its
	// number; set once the attempt is counted.
	attempt *rdb.Attempt
	// inSession: the execution runs in a session's sandbox, whose other
	// processes a kill spares and whose limits are the session's.
	inSession bool
	// beforeResult, when set, runs before the result is stored: what a
	// client that reads the result must see done by then.
	beforeResult func(ctx context.Context)
}

func (e *execution) process(ctx context.Context) error {
	start := e.w.cfg.clock.Now()
	// Registered before the cancel marker is read, so that no cancel falls
	// in between.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	e.w.cancels.register(e.id, cancel)
	defer e.w.cancels.unregister(e.id)

	payload := e.task.Payload()
	req, err := tasks.DecodeRequest(payload)
	if err != nil {
		return e.reject(ctx, err)
	}
	e.req = req
	if req.ID != e.id {
		return e.reject(ctx, &tasks.ValidationError{Problems: []string{
			fmt.Sprintf("payload id %q differs from the task id %q", req.ID, e.id)}})
	}
	e.res.Image = cmp.Or(req.Image, e.w.cfg.Image)

	done, canceled, err := e.w.store.Settled(ctx, e.id)
	if err != nil {
		return e.retry(ctx, err)
	}
	if done {
		// A second delivery of an execution that has its result.
		e.log.Info("execution already has a result; not running it again")
		return nil
	}
	if canceled {
		return e.finish(ctx, tasks.StatusCanceled, "canceled before it started")
	}
	if err := req.Validate(e.w.cfg.Limits, len(payload)); err != nil {
		return e.reject(ctx, err)
	}
	if req.Session != "" {
		e.res.Session = req.Session
		return e.runInSession(ctx, runCtx, cancel)
	}
	// The worker's catalogue, not the producer's, decides what a language
	// runs, and its image passes the same allow-list as any other.
	if e.steps, err = e.w.cfg.Languages.resolve(req); err != nil {
		return e.reject(ctx, err)
	}
	if req.Image == "" {
		req.Image = e.w.cfg.Image
	}
	e.res.Image = req.Image
	if err := e.w.images.check(req.Image); err != nil {
		return e.reject(ctx, err)
	}
	img, err := e.w.runtime.ResolveImage(ctx, req.Image)
	if err != nil {
		if errors.Is(err, sandbox.ErrImageNotFound) || errors.Is(err, sandbox.ErrInvalidImage) {
			return e.reject(ctx, err)
		}
		return e.retry(ctx, err)
	}
	e.imageID = img.ID
	if err := e.loadInputs(ctx, req); err != nil {
		var missing *tasks.InputError
		if errors.As(err, &missing) {
			e.log.Warn("inputs stored beside the task are missing or do not match; nothing runs", "err", err)
			return e.finish(ctx, tasks.StatusError, err.Error())
		}
		return e.retry(ctx, err)
	}
	resolved := req.Resolved(e.w.cfg.Limits)
	e.req = &resolved
	if !req.SubmittedAt.IsZero() {
		e.res.QueuedMs = max(start.Sub(req.SubmittedAt).Milliseconds(), 0)
	}
	return e.run(ctx, runCtx)
}

// inputReadTimeout bounds the read of the inputs stored beside a task,
// retried while Redis is unreachable.
const inputReadTimeout = 30 * time.Second

// loadInputs reads the inputs stored beside the task, in one read, checks
// them against their references and puts them in req. An input that is
// missing or does not match is a *tasks.InputError; anything else is
// Redis's failure.
func (e *execution) loadInputs(ctx context.Context, req *tasks.ExecRequest) error {
	refs := req.StoredInputs()
	if len(refs) == 0 {
		return nil
	}
	fields := make([]string, len(refs))
	for i, ref := range refs {
		fields[i] = ref.Field
	}
	rctx, cancel := context.WithTimeout(ctx, inputReadTimeout)
	defer cancel()
	contents, err := retryRedis(rctx, func(ctx context.Context) (map[string][]byte, error) {
		return e.w.store.Inputs(ctx, e.id, fields)
	})
	if err != nil {
		return fmt.Errorf("read the inputs stored beside the task: %w", err)
	}
	return req.RestoreInputs(contents)
}

// run takes a container and runs the command in it. ctx is the task's
// context; runCtx is ctx ended early by a cancel.
func (e *execution) run(ctx, runCtx context.Context) error {
	if err := e.w.engine.state(); err != nil {
		e.log.Info("the container engine does not answer; the execution goes back to its queue", "err", err)
		return err
	}
	lease, err := e.acquire(ctx, runCtx)
	if lease == nil {
		return err
	}
	sb := lease.Sandbox()
	e.log = e.log.With("container", shortID(sb.ID()))
	replace := pool.CauseError // until the execution says otherwise
	defer func() {
		if replace == "" {
			lease.Reuse()
		} else {
			lease.Replace(replace)
		}
	}()
	if err := e.begin(ctx, sb); err != nil {
		replace = ""
		if errors.Is(err, rdb.ErrStaleAttempt) {
			// Ended meanwhile, or run by a later attempt: nothing to do.
			e.log.Warn("the execution ended or a later attempt runs it; this attempt does not run", "err", err)
			return nil
		}
		return err
	}
	if err := e.prepare(runCtx, sb); err != nil {
		return e.failed(ctx, runCtx, err)
	}
	ran := e.execute(ctx, runCtx, sb)
	replace, err = e.settle(ctx, runCtx, sb, ran)
	return err
}

// settle stores the result of the command that ran, or has it retried;
// it returns why the sandbox must be replaced ("" when it may serve on).
func (e *execution) settle(ctx, runCtx context.Context, sb sandbox.Sandbox, ran ranCommand) (string, error) {
	end := classify(ran)
	replace := end.replace
	if end.requeue {
		e.log.Warn("execution interrupted; it will be retried", "err", ran.err)
		return replace, ctx.Err()
	}
	if end.retry != nil {
		return replace, e.retry(ctx, end.retry)
	}
	e.res.ExitCode = end.exitCode
	message := end.message
	if ran.started && end.exited && len(e.req.Collect) > 0 {
		if cause, msg := e.collect(runCtx, sb, ran.deadline); msg != "" {
			message = joinMessage(message, msg)
			if cause != "" && replace == "" {
				replace = cause
			}
		}
	}
	if ran.streamErr != nil {
		message = joinMessage(message, "part of the output could not be streamed: "+ran.streamErr.Error())
	}
	return replace, e.finish(ctx, end.status, message)
}

// acquire takes a container of the execution's image. A nil lease comes
// with what the handler returns.
func (e *execution) acquire(ctx, runCtx context.Context) (*pool.Lease, error) {
	acquireCtx, cancel := context.WithTimeout(runCtx, e.w.cfg.AcquireTimeout)
	lease, err := e.w.pool.Acquire(acquireCtx, sandbox.Image{Ref: e.req.Image, ID: e.imageID}, e.limits())
	cancel()
	if err == nil {
		return lease, nil
	}
	switch {
	case context.Cause(runCtx) == errCanceled:
		return nil, e.finish(ctx, tasks.StatusCanceled, "canceled before it started")
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, sandbox.ErrImageNotFound), errors.Is(err, sandbox.ErrInvalidImage):
		return nil, e.reject(ctx, err)
	}
	return nil, e.retry(ctx, err)
}

// begin counts the attempt and announces it in the stream, in one round
// trip. Attempts are counted once a container is had: an attempt that ends
// before (the engine down, a stop) does not count.
func (e *execution) begin(ctx context.Context, sb sandbox.Sandbox) error {
	e.res.StartedAt = e.w.cfg.clock.Now().UTC()
	attempt, err := e.w.store.BeginAttempt(ctx, e.id, e.w.cfg.MaxAttempts, tasks.StartedData{
		Worker: e.w.cfg.Name, Image: e.req.Image, Container: shortID(sb.ID()), StartedAt: e.res.StartedAt,
	})
	if errors.Is(err, rdb.ErrStaleAttempt) {
		return err
	}
	if err != nil {
		return e.retry(ctx, err)
	}
	e.res.Attempt = attempt
	fenced := e.w.store.Attempt(attempt)
	e.attempt = &fenced
	e.log = e.log.With("attempt", attempt)
	if attempt > e.w.cfg.MaxAttempts {
		return e.finish(ctx, tasks.StatusError, fmt.Sprintf(
			"gave up after %d attempts: the workers running it stopped or crashed each time", attempt-1))
	}
	return nil
}

// limits are the sandbox limits of the (resolved) request.
func (e *execution) limits() sandbox.Limits {
	return limitsOf(e.req)
}

func limitsOf(req *tasks.ExecRequest) sandbox.Limits {
	return sandbox.Limits{MemoryBytes: req.MemoryBytes, NanoCPUs: int64(req.CPUs * 1e9), Pids: req.Pids}
}

// prepare applies the limits and puts the files in.
func (e *execution) prepare(runCtx context.Context, sb sandbox.Sandbox) error {
	if err := sb.SetLimits(runCtx, e.limits()); err != nil {
		return err
	}
	return sb.PutFiles(runCtx, e.req.Files)
}

// execute runs the execution's steps in order, streaming their output,
// within one timeout: a language's compile step and its run step share
// the request's timeout, and a compile step that does not succeed ends
// the execution. Stdin goes to the last step.
func (e *execution) execute(ctx, runCtx context.Context, sb sandbox.Sandbox) ranCommand {
	req := e.req
	out := stream.NewWriter(context.WithoutCancel(ctx), e.attempt, e.id, stream.Config{
		Linger:         e.w.cfg.StreamLinger,
		ChunkBytes:     e.w.cfg.StreamChunkBytes,
		MaxOutputBytes: req.MaxOutputBytes,
		OnAppend:       e.w.cfg.Observer.StreamAppended,
	})
	deadline := time.Now().Add(req.Timeout)
	cmdCtx, cancelCmd := context.WithDeadlineCause(runCtx, deadline, errTimedOut)
	var (
		outcome sandbox.Outcome
		err     error
		took    time.Duration
		used    *tasks.Resources
	)
	for i, st := range e.steps {
		var stdin io.Reader
		if i == len(e.steps)-1 {
			stdin = stdinOf(req.Stdin)
		}
		e.res.Step = st.name
		outcome, err = sb.Run(cmdCtx, sandbox.Command{
			Cmd:        st.cmd,
			Env:        envList(req.Env),
			Dir:        workDir(req.WorkDir),
			Stdin:      stdin,
			Stdout:     out.Stdout(),
			Stderr:     out.Stderr(),
			KeepOthers: e.inSession,
		})
		took += outcome.Duration
		used = addResources(used, outcome.Resources)
		if err != nil || outcome.ExitCode != 0 || outcome.OOMKilled || !outcome.Reusable {
			break
		}
	}
	cancelCmd()
	outcome.Duration, outcome.Resources = took, used
	var start *sandbox.StartError
	if errors.As(err, &start) && (start.Reason == sandbox.StartNotFound || start.Reason == sandbox.StartDenied || start.Reason == sandbox.StartLimit) {
		// A shell tells its user on stderr; so does the result.
		fmt.Fprintf(out.Stderr(), "execq: %s\n", start.Message)
	}
	streamErr := out.Close()
	e.keepOutput(out)
	e.res.DurationMs = outcome.Duration.Milliseconds()
	e.res.Resources = outcome.Resources
	return ranCommand{
		outcome:   outcome,
		err:       err,
		started:   start == nil,
		cause:     context.Cause(cmdCtx),
		taskEnded: ctx.Err() != nil,
		timeout:   req.Timeout,
		memory:    req.MemoryBytes,
		deadline:  deadline,
		streamErr: streamErr,
	}
}

// addResources sums the CPU time of two steps and keeps the larger peak
// of memory; nil when neither was measured.
func addResources(a, b *tasks.Resources) *tasks.Resources {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return &tasks.Resources{CPUTimeMs: a.CPUTimeMs + b.CPUTimeMs, PeakMemoryBytes: max(a.PeakMemoryBytes, b.PeakMemoryBytes)}
}

// collectBudget is what collecting files may add past the command's
// deadline.
const collectBudget = 5 * time.Second

// collect kills what the command left (but in a session), so that nothing
// rewrites the files while they are read, and collects them within the command's deadline
// plus collectBudget. It returns a message for the result when something
// went wrong, and the replacement cause when the container cannot be
// trusted after it.
func (e *execution) collect(runCtx context.Context, sb sandbox.Sandbox, deadline time.Time) (replace, message string) {
	if now := time.Now(); deadline.Before(now) {
		deadline = now
	}
	ctx, cancel := context.WithDeadline(runCtx, deadline.Add(collectBudget))
	defer cancel()
	// A session keeps what its executions left running, and what they
	// write meanwhile may be collected half-written.
	if !e.inSession {
		if err := sb.KillAll(ctx); err != nil {
			return pool.CauseError, "files not collected: the command's processes could not be killed first: " + err.Error()
		}
	}
	res, err := sb.Collect(ctx, sandbox.CollectSpec{
		Globs:      e.req.Collect,
		MaxBytes:   e.w.cfg.Limits.MaxCollectBytes,
		MaxEntries: tasks.MaxCollectFiles,
	})
	e.res.Files = res.Files
	switch {
	case err != nil:
		return pool.CauseError, "collecting files failed: " + err.Error()
	case res.Truncated != "":
		return "", fmt.Sprintf("collection cut short: %s; %d files returned", res.Truncated, len(res.Files))
	}
	return "", ""
}

func (e *execution) keepOutput(out *stream.Writer) {
	so, se := out.StdoutOutput(), out.StderrOutput()
	e.res.Stdout, e.res.StdoutBytes, e.res.StdoutTruncated = string(so.Data), so.Total, so.Truncated
	e.res.Stderr, e.res.StderrBytes, e.res.StderrTruncated = string(se.Data), se.Total, se.Truncated
	e.w.cfg.Observer.OutputWritten(so.Total, se.Total, so.Truncated || se.Truncated)
}

// failed handles an error of the sandbox before the command started.
func (e *execution) failed(ctx, runCtx context.Context, err error) error {
	switch {
	case context.Cause(runCtx) == errCanceled:
		return e.finish(ctx, tasks.StatusCanceled, "canceled before it started")
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return e.retry(ctx, err)
}

// reject stores a "rejected" result: the request cannot run, now or ever.
func (e *execution) reject(ctx context.Context, err error) error {
	e.log.Info("execution rejected", "err", err)
	return e.finish(ctx, tasks.StatusRejected, err.Error())
}

// retry has asynq run the execution again after an infrastructure failure,
// unless the worker's retry budget (MaxRetry) or asynq's is used up: then
// its result is "error".
func (e *execution) retry(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, errEngineDown) {
		return err
	}
	if down := e.w.engine.check(ctx); down != nil {
		// Not the execution's fault: it waits for the engine.
		e.log.Warn("execution failed while the container engine is down; it goes back to its queue", "err", err)
		return fmt.Errorf("%w (%v)", down, err)
	}
	failures, ferr := e.w.store.NextFailure(ctx, e.id)
	if ferr != nil {
		e.log.Warn("execution failed, and counting the failure too; it will be retried", "err", err, "count_err", ferr)
		return err
	}
	asynqMax, _ := asynq.GetMaxRetry(ctx)
	if failures > e.w.cfg.MaxRetry || e.retried >= asynqMax {
		e.log.Error("execution failed; no retries left", "err", err, "failures", failures)
		if ferr := e.finish(ctx, tasks.StatusError, err.Error()); ferr != nil {
			return ferr
		}
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	e.log.Warn("execution failed; it will be retried", "err", err, "failures", failures, "max_retry", e.w.cfg.MaxRetry)
	return err
}

// handleError is asynq's error handler. asynq archives a task whose
// retries are used up, whatever the error, and gives the handler no say:
// when that is about to happen to an execution without a result (its last
// retry met a stopping worker or an engine down), it stores an "error"
// result, so that nobody waits for it forever.
func (w *Worker) handleError(ctx context.Context, t *asynq.Task, err error) {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	id, _ := asynq.GetTaskID(ctx)
	if retried < maxRetry || errors.Is(err, asynq.SkipRetry) || id == "" {
		return
	}
	// The task context is already canceled here.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	res := &tasks.Result{
		ExecutionID: id,
		Status:      tasks.StatusError,
		ExitCode:    -1,
		Worker:      w.cfg.Name,
		Error:       fmt.Sprintf("its %d retries are used up; the last attempt ended with: %v", maxRetry, err),
		FinishedAt:  w.cfg.clock.Now().UTC(),
	}
	if _, ferr := w.store.Finalize(wctx, res); ferr != nil {
		w.log.Error("storing the result of an execution asynq archives failed", "execution", id, "err", ferr)
	}
}

// finish stores the result. Its writes outlive a canceled task context and
// are retried while Redis is unreachable, within writeTimeout.
func (e *execution) finish(ctx context.Context, status tasks.Status, message string) error {
	res := e.res
	res.Status = status
	res.Success = status == tasks.StatusSucceeded
	res.Error = message
	res.FinishedAt = e.w.cfg.clock.Now().UTC()
	if status != tasks.StatusSucceeded && status != tasks.StatusFailed && status != tasks.StatusOOMKilled {
		res.ExitCode = -1
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if e.beforeResult != nil {
		e.beforeResult(wctx)
	}
	attempt := e.w.store.Attempt(0)
	if e.attempt != nil {
		attempt = *e.attempt
	}
	// The dashboard shows the copy; the result key is what clients read.
	var task *rdb.TaskCopy
	if body, err := tasks.EncodeResult(summary(res)); err == nil {
		task = &rdb.TaskCopy{Queue: e.queue, Body: body}
	}
	written, err := retryRedis(wctx, func(ctx context.Context) (bool, error) {
		return attempt.Finalize(ctx, res, task)
	})
	if errors.Is(err, rdb.ErrStaleAttempt) {
		e.log.Warn("a later attempt runs this execution; this attempt's result is dropped", "status", status)
		return nil
	}
	if notRecorded := (*rdb.NotRecordedError)(nil); errors.As(err, &notRecorded) {
		e.log.Warn("the result is stored; the executions log misses it", "err", err)
		err = nil
	}
	if err != nil {
		e.log.Error("storing the result failed", "status", status, "err", err)
		return fmt.Errorf("store result: %w", err)
	}
	if !written {
		e.log.Info("execution already had a result; this one is dropped", "status", status)
		return nil
	}
	e.w.cfg.Observer.ExecutionFinished(status, time.Duration(res.QueuedMs)*time.Millisecond, time.Duration(res.DurationMs)*time.Millisecond)
	e.log.Info("execution finished", "status", status, "exit_code", res.ExitCode, "duration_ms", res.DurationMs)
	return nil
}

// summaryOutputBytes is how much output the dashboard's copy of a result
// keeps.
const summaryOutputBytes = 4 << 10

// summary is the copy of a result kept with the asynq task for the
// dashboard: the head of the output, the collected files without content.
func summary(res *tasks.Result) *tasks.Result {
	s := *res
	if len(s.Stdout) > summaryOutputBytes {
		s.Stdout = s.Stdout[:summaryOutputBytes]
	}
	if len(s.Stderr) > summaryOutputBytes {
		s.Stderr = s.Stderr[:summaryOutputBytes]
	}
	s.Files = make([]tasks.CollectedFile, len(res.Files))
	for i, f := range res.Files {
		f.Content = nil
		s.Files[i] = f
	}
	return &s
}

// retryRedis calls fn until it succeeds or ctx ends, backing off.
func retryRedis[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	b := retry.Backoff{First: 50 * time.Millisecond, Max: time.Second}
	for {
		v, err := fn(ctx)
		if err == nil || errors.Is(err, rdb.ErrStaleAttempt) {
			return v, err
		}
		if b.Wait(ctx) != nil {
			return v, err
		}
	}
}

func joinMessage(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

func workDir(dir string) string {
	if dir == "" || dir == "." {
		return tasks.Workspace
	}
	clean, _ := tasks.WorkspacePath(dir)
	return tasks.Workspace + "/" + clean
}

// stdinOf is nil, not a nil *bytes.Reader, when there is no input.
func stdinOf(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
