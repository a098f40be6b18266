package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/execq/execq/internal/mcpserver"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/webguard"
)

// MCPConfig configures an MCP.
type MCPConfig struct {
	// Tokens authenticate requests as the API's do; none lets every
	// request in, as one owner. Required (it may be empty).
	Tokens *Tokens
	// Store tells whose an execution is. Required.
	Store *rdb.Store
	// Executions submits and reads executions: a *producer.Client.
	// Required.
	Executions mcpserver.Executions
	// New makes the MCP server of one owner, on executions scoped to it.
	// Required.
	New func(exec mcpserver.Executions) (*mcpserver.Server, error)
	// AllowedHosts are the host names besides localhost and IP addresses
	// the handler answers to (webguard).
	AllowedHosts []string
}

// MCP serves the MCP server's streamable HTTP transport (execq serve mounts
// it at /mcp) behind the API's bearer tokens: each token gets an MCP server
// of its own, whose executions and sessions carry its owner and which sees
// no other token's, as the API's routes see them.
type MCP struct {
	cfg     MCPConfig
	mu      sync.Mutex
	servers map[string]*mcpserver.Server
	serve   map[string]http.Handler
	guarded http.Handler
}

// NewMCP returns the handler.
func NewMCP(cfg MCPConfig) (*MCP, error) {
	if cfg.Tokens == nil || cfg.Store == nil || cfg.Executions == nil || cfg.New == nil {
		return nil, errors.New("httpapi: MCPConfig needs Tokens, Store, Executions and New")
	}
	m := &MCP{cfg: cfg, servers: map[string]*mcpserver.Server{}, serve: map[string]http.Handler{}}
	m.guarded = webguard.Wrap(http.HandlerFunc(m.route), webguard.Config{Hosts: cfg.AllowedHosts})
	return m, nil
}

// ServeHTTP authenticates the request and hands it to its owner's server.
func (m *MCP) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.guarded.ServeHTTP(w, r) }

func (m *MCP) route(w http.ResponseWriter, r *http.Request) {
	owner, ok := m.cfg.Tokens.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="execq"`)
		writeProblem(w, http.StatusUnauthorized, "", "a valid bearer token is required (Authorization: Bearer TOKEN)")
		return
	}
	h, err := m.handlerOf(owner)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "", "the MCP server could not start: "+err.Error())
		return
	}
	h.ServeHTTP(w, r)
}

func (m *MCP) handlerOf(owner string) (http.Handler, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.serve[owner]; ok {
		return h, nil
	}
	store := m.cfg.Store
	srv, err := m.cfg.New(mcpserver.Scoped(m.cfg.Executions, owner, func(ctx context.Context, id string) (string, bool, error) {
		e, err := store.Lookup(ctx, id)
		return e.Owner, e.Known, err
	}))
	if err != nil {
		return nil, err
	}
	m.servers[owner] = srv
	m.serve[owner] = srv.Handler()
	return m.serve[owner], nil
}

// Shutdown cancels the execute calls under way on every owner's server and
// waits for them (mcpserver.Server.Shutdown). Call it once the HTTP server
// has stopped taking requests.
func (m *MCP) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	servers := make([]*mcpserver.Server, 0, len(m.servers))
	for _, s := range m.servers {
		servers = append(servers, s)
	}
	m.mu.Unlock()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
