package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// IDArgs are the arguments of the cancel tool.
type IDArgs struct {
	ID string `json:"id" jsonschema:"the execution ID that submit returned"`
}

// ResultArgs are the arguments of the get_result tool.
type ResultArgs struct {
	ID          string  `json:"id" jsonschema:"the execution ID that submit returned"`
	WaitSeconds float64 `json:"waitSeconds,omitempty" jsonschema:"wait up to this many seconds (at most 60) for the execution to finish; 0 or absent answers at once"`
}

// Submitted is the submit tool's structured content.
type Submitted struct {
	ExecutionID string `json:"executionId" jsonschema:"the execution ID, for get_result and cancel"`
}

// Pending is get_result's structured content while an execution has no
// result: its ID and a status of queued or running.
type Pending struct {
	ExecutionID string `json:"executionId"`
	Status      string `json:"status"`
}

// Canceled is the cancel tool's structured content.
type Canceled struct {
	ExecutionID string `json:"executionId" jsonschema:"the execution ID"`
	Canceled    bool   `json:"canceled" jsonschema:"true when this call canceled it; false when it had already finished"`
	Status      string `json:"status,omitempty" jsonschema:"how it ended, when it had already finished"`
}

// SessionOpened is the create_session tool's structured content.
type SessionOpened struct {
	SessionID          string  `json:"sessionId" jsonschema:"the session's ID: pass it as session to execute and submit, and to close_session"`
	Status             string  `json:"status" jsonschema:"open: a worker holds the session's sandbox"`
	Image              string  `json:"image,omitempty" jsonschema:"the session's sandbox image"`
	Language           string  `json:"language,omitempty" jsonschema:"the session's language, when it has one"`
	IdleTimeoutSeconds float64 `json:"idleTimeoutSeconds" jsonschema:"the session closes when nothing ran in it for this many seconds"`
	LifetimeSeconds    float64 `json:"lifetimeSeconds" jsonschema:"the session closes this many seconds after it was created"`
}

// SessionClosed is the close_session tool's structured content.
type SessionClosed struct {
	SessionID string `json:"sessionId" jsonschema:"the session's ID"`
	Closed    bool   `json:"closed" jsonschema:"true when this call closed it; false when it had already ended"`
	Status    string `json:"status" jsonschema:"closing while its worker ends it, then closed; lost when its worker or its sandbox went away"`
	Cause     string `json:"cause,omitempty" jsonschema:"why it ended, when it had: closed, idle, lifetime, lost or failed"`
}

// progressStreamKey names, in a progress notification's _meta, the stream
// ("stdout" or "stderr") whose output the message carries.
const progressStreamKey = "execq/stream"

func (s *Server) addTools() error {
	execIn, err := executeInputSchema()
	if err != nil {
		return err
	}
	submitIn, err := executeInputSchema()
	if err != nil {
		return err
	}
	resultIn, err := jsonschema.For[ResultArgs](nil)
	if err != nil {
		return fmt.Errorf("infer the schema of get_result's arguments: %w", err)
	}
	resultIn.Properties["waitSeconds"].Minimum = jsonschema.Ptr(0.0)
	resultIn.Properties["waitSeconds"].Maximum = jsonschema.Ptr(MaxWait.Seconds())
	no := false
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name: "execute", Title: "Run a command in a sandbox", Description: executeDescription,
		InputSchema: execIn, OutputSchema: resultSchema(false),
		Annotations: &mcp.ToolAnnotations{Title: "Run a command in a sandbox", DestructiveHint: &no, OpenWorldHint: &no},
	}, track(&s.calls, s.execute))
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name: "submit", Title: "Start a command in a sandbox", Description: submitDescription,
		InputSchema: submitIn,
		Annotations: &mcp.ToolAnnotations{Title: "Start a command in a sandbox", DestructiveHint: &no, OpenWorldHint: &no},
	}, track(&s.calls, s.submitTool))
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name: "get_result", Title: "Read an execution's result", Description: getResultDescription,
		InputSchema: resultIn, OutputSchema: resultSchema(true),
		Annotations: &mcp.ToolAnnotations{Title: "Read an execution's result", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, track(&s.calls, s.getResult))
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name: "cancel", Title: "Cancel an execution", Description: cancelDescription,
		Annotations: &mcp.ToolAnnotations{Title: "Cancel an execution", DestructiveHint: &no, IdempotentHint: true, OpenWorldHint: &no},
	}, track(&s.calls, s.cancel))
	if s.cfg.Sessions == nil {
		return nil
	}
	createIn, err := createSessionInputSchema()
	if err != nil {
		return err
	}
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name: "create_session", Title: "Open a sandbox for a series of commands", Description: createSessionDescription,
		InputSchema: createIn,
		Annotations: &mcp.ToolAnnotations{Title: "Open a sandbox for a series of commands", DestructiveHint: &no, OpenWorldHint: &no},
	}, track(&s.calls, s.createSession))
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name: "close_session", Title: "Close a session", Description: closeSessionDescription,
		Annotations: &mcp.ToolAnnotations{Title: "Close a session", DestructiveHint: &no, IdempotentHint: true, OpenWorldHint: &no},
	}, track(&s.calls, s.closeSession))
	return nil
}

// track holds each call of h in calls while it runs, so that it can be
// canceled and waited for.
func track[In, Out any](calls *inflight, h mcp.ToolHandlerFor[In, Out]) mcp.ToolHandlerFor[In, Out] {
	return func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer calls.done(calls.add(cancel))
		return h(ctx, req, in)
	}
}

// execute submits, sends the output as progress while the execution
// runs, and returns its result. When ctx ends first, it cancels the
// execution (see the package comment).
func (s *Server) execute(ctx context.Context, req *mcp.CallToolRequest, args ExecuteArgs) (*mcp.CallToolResult, *tasks.Result, error) {
	id, err := s.submit(ctx, args)
	if err != nil {
		return nil, nil, err
	}
	token := req.Params.GetProgressToken()
	var progress float64
	for ev, err := range s.cfg.Client.Follow(ctx, id, "") {
		if ctx.Err() != nil {
			s.abandon(ctx, id)
			return nil, nil, fmt.Errorf("execute %s: %w", id, ctx.Err())
		}
		if err != nil {
			return nil, nil, fmt.Errorf("execq could not follow execution %s: %w", id, err)
		}
		if token == nil || (ev.Type != tasks.EventStdout && ev.Type != tasks.EventStderr) {
			continue
		}
		// Progress counts output bytes, so that it grows with every
		// notification as the protocol asks.
		progress += float64(len(ev.Data))
		err = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
			Meta:          mcp.Meta{progressStreamKey: string(ev.Type)},
			ProgressToken: token,
			Progress:      progress,
			Message:       strings.ToValidUTF8(string(ev.Data), "\uFFFD"),
		})
		if err != nil {
			s.cfg.Logger.Debug("mcp: progress notification", "id", id, "err", err)
		}
	}
	res, err := s.cfg.Client.Result(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("execq could not read the result of execution %s: %w", id, err)
	}
	return resultContent(res), res, nil
}

// abandon cancels the execution id, whose execute call ended before it,
// on a context of its own: the call's has ended.
func (s *Server) abandon(ctx context.Context, id string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.CancelTimeout)
	defer cancel()
	err := s.cfg.Client.Cancel(cctx, id)
	switch {
	case err == nil:
		s.cfg.Logger.Info("mcp: execute call ended first; execution canceled", "id", id)
	case errors.Is(err, producer.ErrFinished):
	default:
		s.cfg.Logger.Warn("mcp: execute call ended first; cancel failed", "id", id, "err", err)
	}
}

func (s *Server) submitTool(ctx context.Context, _ *mcp.CallToolRequest, args ExecuteArgs) (*mcp.CallToolResult, Submitted, error) {
	id, err := s.submit(ctx, args)
	if err != nil {
		return nil, Submitted{}, err
	}
	text := fmt.Sprintf("submitted execution %s\nget_result with id %q (and waitSeconds up to 60) reads its result; cancel stops it.", id, id)
	return textContent(text), Submitted{ExecutionID: id}, nil
}

// submit submits the execution the arguments describe. Its errors are
// tool errors a model can act on: what is wrong with the arguments, or
// that execq failed.
func (s *Server) submit(ctx context.Context, args ExecuteArgs) (string, error) {
	req, err := args.request(s.cfg.Queue, s.cfg.Image)
	if err != nil {
		return "", fmt.Errorf("invalid arguments: %w", err)
	}
	id, err := s.cfg.Client.Submit(ctx, req)
	var verr *tasks.ValidationError
	switch {
	case errors.As(err, &verr):
		return "", verr
	case errors.Is(err, producer.ErrSessionNotFound):
		return "", fmt.Errorf("no session %s: it was never created, it expired, or it is not this client's; create_session opens one", req.Session)
	case errors.Is(err, producer.ErrSessionLost), errors.Is(err, producer.ErrSessionClosed):
		return "", fmt.Errorf("session %s has ended and runs nothing more (%v); create_session opens another, whose /workspace starts empty", req.Session, err)
	case err != nil:
		return "", fmt.Errorf("execq could not submit the execution: %w", err)
	}
	what := req.Language
	if len(req.Cmd) > 0 {
		what = req.Cmd[0]
	}
	s.cfg.Logger.Info("mcp: submitted", "id", id, "program", what)
	return id, nil
}

// createSession opens a session and returns once a worker holds its
// sandbox (producer.Client.CreateSession bounds the wait).
func (s *Server) createSession(ctx context.Context, _ *mcp.CallToolRequest, args CreateSessionArgs) (*mcp.CallToolResult, SessionOpened, error) {
	req, err := args.request(s.cfg.Queue, s.cfg.Image)
	if err != nil {
		return nil, SessionOpened{}, fmt.Errorf("invalid arguments: %w", err)
	}
	sess, err := s.cfg.Sessions.CreateSession(ctx, req)
	var verr *tasks.ValidationError
	switch {
	case errors.As(err, &verr):
		return nil, SessionOpened{}, verr
	case err != nil:
		return nil, SessionOpened{}, fmt.Errorf("execq could not open the session: %w", err)
	}
	info, err := sess.Info(ctx)
	if err != nil {
		return nil, SessionOpened{}, fmt.Errorf("execq could not read the state of session %s: %w", sess.ID(), err)
	}
	out := SessionOpened{SessionID: info.ID, Status: string(info.Status), Image: info.Image, Language: info.Language,
		IdleTimeoutSeconds: info.IdleTimeout.Seconds(), LifetimeSeconds: info.Lifetime.Seconds()}
	s.cfg.Logger.Info("mcp: session opened", "session", info.ID, "image", info.Image, "worker", info.Worker)
	text := fmt.Sprintf("opened session %s (image %s)\n"+
		"Pass session %q to execute or submit: its commands run in this one sandbox, one at a time, in the order they were given, "+
		"and each finds the files the earlier ones left in /workspace and the processes they left running. "+
		"It closes after %s with nothing running, %s after it was created, or with close_session; close it when you are done.",
		info.ID, info.Image, info.ID, info.IdleTimeout, info.Lifetime)
	return textContent(text), out, nil
}

// closeSession closes a session, or says how it had ended.
func (s *Server) closeSession(ctx context.Context, _ *mcp.CallToolRequest, args SessionIDArgs) (*mcp.CallToolResult, SessionClosed, error) {
	out := SessionClosed{SessionID: args.SessionID}
	if err := tasks.ValidateID(args.SessionID); err != nil {
		return nil, out, fmt.Errorf("invalid arguments: sessionId: %w", err)
	}
	sess := s.cfg.Sessions.SessionOf(args.SessionID, "")
	info, err := sess.Info(ctx)
	switch {
	case errors.Is(err, producer.ErrSessionNotFound):
		return nil, out, fmt.Errorf("no session %s: it was never created, it expired, or it is not this client's", args.SessionID)
	case err != nil:
		return nil, out, fmt.Errorf("execq could not read the state of session %s: %w", args.SessionID, err)
	case info.Status.Ended():
		out.Status, out.Cause = string(info.Status), info.Cause
		return textContent(fmt.Sprintf("session %s had already ended (%s, %s); nothing was closed.", args.SessionID, info.Status, info.Cause)), out, nil
	}
	if err := sess.Close(ctx); err != nil {
		return nil, out, fmt.Errorf("execq could not close session %s: %w", args.SessionID, err)
	}
	out.Closed, out.Status, out.Cause = true, string(tasks.SessionClosing), tasks.CauseClosed
	if info, err := sess.Info(ctx); err == nil {
		out.Status, out.Cause = string(info.Status), info.Cause
	}
	s.cfg.Logger.Info("mcp: session closed", "session", args.SessionID)
	return textContent(fmt.Sprintf("closed session %s: what ran or waited in it is canceled, its processes are killed and its /workspace is wiped.", args.SessionID)), out, nil
}

// getResult returns the result, waiting up to waitSeconds for it, or the
// execution's pending status.
func (s *Server) getResult(ctx context.Context, _ *mcp.CallToolRequest, args ResultArgs) (*mcp.CallToolResult, any, error) {
	if err := tasks.ValidateID(args.ID); err != nil {
		return nil, nil, fmt.Errorf("invalid arguments: %w", err)
	}
	wait := min(time.Duration(args.WaitSeconds*float64(time.Second)), MaxWait)
	var res *tasks.Result
	var err error
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		res, err = s.cfg.Client.Wait(wctx, args.ID)
		if err != nil && wctx.Err() != nil && ctx.Err() == nil {
			err = producer.ErrNoResult
		}
		cancel()
	} else {
		res, err = s.cfg.Client.Result(ctx, args.ID)
	}
	switch {
	case err == nil:
		return resultContent(res), res, nil
	case errors.Is(err, producer.ErrNotFound):
		return nil, nil, fmt.Errorf("no execution %s was submitted within the retention period", args.ID)
	case !errors.Is(err, producer.ErrNoResult):
		return nil, nil, fmt.Errorf("execq could not read the result of execution %s: %w", args.ID, err)
	}
	started, err := s.cfg.Client.Started(ctx, args.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("execq could not read the state of execution %s: %w", args.ID, err)
	}
	p := Pending{ExecutionID: args.ID, Status: statusQueued}
	what := "waiting for a worker"
	if started {
		p.Status, what = statusRunning, "running"
	}
	text := fmt.Sprintf("status: %s\nexecution: %s\nno result yet (%s); call get_result again, with waitSeconds up to 60 to wait for it.", p.Status, p.ExecutionID, what)
	return textContent(text), p, nil
}

func (s *Server) cancel(ctx context.Context, _ *mcp.CallToolRequest, args IDArgs) (*mcp.CallToolResult, Canceled, error) {
	if err := tasks.ValidateID(args.ID); err != nil {
		return nil, Canceled{}, fmt.Errorf("invalid arguments: %w", err)
	}
	out := Canceled{ExecutionID: args.ID}
	err := s.cfg.Client.Cancel(ctx, args.ID)
	switch {
	case err == nil:
		out.Canceled = true
		s.cfg.Logger.Info("mcp: canceled", "id", args.ID)
		return textContent(fmt.Sprintf("canceled execution %s; its result will have status canceled.", args.ID)), out, nil
	case errors.Is(err, producer.ErrNotFound):
		return nil, out, fmt.Errorf("no execution %s was submitted within the retention period", args.ID)
	case !errors.Is(err, producer.ErrFinished):
		return nil, out, fmt.Errorf("execq could not cancel execution %s: %w", args.ID, err)
	}
	res, err := s.cfg.Client.Result(ctx, args.ID)
	if err != nil {
		return nil, out, fmt.Errorf("execq could not read the result of execution %s: %w", args.ID, err)
	}
	out.Status = string(res.Status)
	return textContent(fmt.Sprintf("execution %s had already finished, with status %s; nothing was canceled.", args.ID, res.Status)), out, nil
}

// resultContent is the text content of a result. A result that says the
// request was invalid or execq failed is a tool error, so that a model
// notices; every other status, a non-zero exit included, is a normal
// result.
func resultContent(res *tasks.Result) *mcp.CallToolResult {
	return &mcp.CallToolResult{
		Content: []mcp.Content{&mcp.TextContent{Text: summary(res)}},
		IsError: res.Status == tasks.StatusRejected || res.Status == tasks.StatusError,
	}
}

func textContent(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}
