// Package mcpserver is execq's Model Context Protocol server: the tools
// execute, submit, get_result and cancel, through which an AI agent runs
// commands in execq's sandboxes, and create_session and close_session,
// which hold one sandbox for a series of commands (an execq session, which
// execute and submit run in when given its ID; not an MCP session). It
// serves one MCP session on standard input and output (execq mcp) with
// ServeStdio, or MCP sessions over streamable HTTP with Handler (mounted
// at /mcp by execq serve). It is built on the official Go SDK,
// github.com/modelcontextprotocol/go-sdk, and on a producer.Client: it
// submits, follows and reads executions, and opens and closes sessions,
// like any other producer.
//
// When the call of an execute ends before its execution (the client sent
// notifications/cancelled, its connection closed, Run's ctx ended or
// Shutdown was called), the execution is canceled too: nobody is left to
// read its result, and a model that gave up on a command expects it to
// stop. An execution from submit is left to run.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// Executions is what the server needs of a *producer.Client.
type Executions interface {
	Submit(ctx context.Context, req tasks.ExecRequest) (string, error)
	Follow(ctx context.Context, id, from string) iter.Seq2[tasks.Event, error]
	Result(ctx context.Context, id string) (*tasks.Result, error)
	Wait(ctx context.Context, id string) (*tasks.Result, error)
	Started(ctx context.Context, id string) (bool, error)
	Cancel(ctx context.Context, id string) error
}

var _ Executions = (*producer.Client)(nil)

// Sessions is what the session tools need of a *producer.Client: to open
// execq sessions and to reach one by its ID. Scoped's result has it, for
// its owner, when its Executions has it.
type Sessions interface {
	CreateSession(ctx context.Context, req tasks.SessionRequest) (*producer.Session, error)
	SessionOf(id, owner string) *producer.Session
}

var _ Sessions = (*producer.Client)(nil)

// Config configures a Server.
type Config struct {
	// Client submits and reads executions: a *producer.Client. Required.
	Client Executions
	// Sessions opens and closes the sessions of create_session and
	// close_session. Defaults to Client when Client has it (a
	// *producer.Client does, and so does what Scoped makes of one); with
	// none, the server has no session tools (execute and submit still run
	// in a session given by ID).
	Sessions Sessions
	// Logger receives what the server does (submissions, cancels, failed
	// notifications). Defaults to discarding.
	Logger *slog.Logger
	// Queue is where executions go. Defaults to the client's queue.
	Queue string
	// Image is the sandbox image of executions that name none. Defaults to
	// the worker's.
	Image string
	// Version is the server's version in the MCP handshake. Defaults to
	// "dev".
	Version string
	// CancelTimeout bounds the cancel of an execution whose execute call
	// ended first. Defaults to 10 s.
	CancelTimeout time.Duration
	// SessionTimeout closes an HTTP session that sent no request for this
	// long (Handler). An execute still waiting in a closed session is
	// canceled, so it should outlast the longest execution. Defaults to 2 h.
	SessionTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Sessions == nil {
		c.Sessions, _ = c.Client.(Sessions)
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.CancelTimeout <= 0 {
		c.CancelTimeout = 10 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 2 * time.Hour
	}
	return c
}

// MaxWait bounds get_result's waitSeconds.
const MaxWait = 60 * time.Second

// Server is an MCP server whose tools run commands through execq. It is
// safe for concurrent use: one Server serves any number of sessions.
type Server struct {
	cfg Config
	mcp *mcp.Server
	// calls are the tool calls under way, which Run and Shutdown cancel
	// and wait for: an execute whose session ended may still be canceling
	// its execution.
	calls inflight
}

// New returns a Server with its tools.
func New(cfg Config) (*Server, error) {
	if cfg.Client == nil {
		return nil, errors.New("mcpserver: Config.Client is required")
	}
	s := &Server{cfg: cfg.withDefaults()}
	instructions := "execq runs commands in isolated, network-less Linux sandboxes. Use execute to run a command and get its output; submit, get_result and cancel for long ones."
	if s.cfg.Sessions != nil {
		instructions += " Each command gets a fresh sandbox; to run several in one that keeps its files and processes, open a session with create_session, pass its ID as session to execute or submit, and end it with close_session."
	}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "execq", Title: "execq sandboxes", Version: s.cfg.Version}, &mcp.ServerOptions{
		Instructions: instructions,
		Logger:       s.cfg.Logger,
		// Tools only: no logging capability to advertise.
		Capabilities: &mcp.ServerCapabilities{},
	})
	if err := s.addTools(); err != nil {
		return nil, err
	}
	return s, nil
}

// Run serves one session on t until the client ends it or ctx ends. When
// ctx ends first, it cancels the tool calls under way (Shutdown). Either
// way it returns once they have: an execute whose session ended has
// canceled its execution by then (within Config.CancelTimeout), so a
// process may exit once Run returns.
func (s *Server) Run(ctx context.Context, t mcp.Transport) error {
	stop := context.AfterFunc(ctx, s.calls.cancelAll)
	defer stop()
	err := s.mcp.Run(ctx, t)
	_ = s.calls.wait(context.WithoutCancel(ctx))
	return err
}

// Shutdown cancels the tool calls under way, in every session, and waits
// until they have returned or ctx ends: each execute cancels its
// execution first. The server goes on serving; an owner stops what feeds
// it sessions (the HTTP server of Handler) before it calls Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.calls.cancelAll()
	if err := s.calls.wait(ctx); err != nil {
		return fmt.Errorf("mcp shutdown: %w", err)
	}
	return nil
}

// ServeStdio serves one session over in and out (a process's standard
// input and output: newline-delimited JSON-RPC), until in ends or ctx
// ends. Nothing else may write to out.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	return s.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(in), Writer: nopWriteCloser{out}})
}

// Handler serves MCP over streamable HTTP: POST a JSON-RPC message, GET
// the session's stream, DELETE to end a session, as the transport
// specifies, on whatever path it is mounted at (execq serve mounts it at
// /mcp). Sessions live in this process; an idle one is closed after
// Config.SessionTimeout. Like the SDK's handler, it refuses requests that
// reach a loopback address with another Host header (DNS rebinding); it
// does no authentication of its own.
func (s *Server) Handler() http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp }, &mcp.StreamableHTTPOptions{
		Logger:         s.cfg.Logger,
		SessionTimeout: s.cfg.SessionTimeout,
	})
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
