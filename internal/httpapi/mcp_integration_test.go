//go:build integration

package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/execq/execq/internal/httpapi"
	"github.com/execq/execq/internal/mcpserver"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/internal/testutil/liveworker"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// serveMCP serves the MCP handler on the bundle's store and client, as
// execq serve does, and returns it and its URL.
func (b *bundle) serveMCP(t *testing.T) (*httpapi.MCP, string) {
	t.Helper()
	m, err := httpapi.NewMCP(httpapi.MCPConfig{
		Tokens:     httpapi.ParseTokens(tokenA + "\n" + tokenB + "\n"),
		Store:      b.store,
		Executions: b.client,
		New: func(exec mcpserver.Executions) (*mcpserver.Server, error) {
			return mcpserver.New(mcpserver.Config{Client: exec, Logger: testutil.Logger(t)})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv.URL
}

// connectMCP connects the SDK's streamable HTTP client to url with token.
func connectMCP(t *testing.T, ctx context.Context, url, token string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	s, err := c.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: &http.Client{Transport: bearer{token, http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatalf("connect with a token: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The MCP server at /mcp, through the SDK's own streamable HTTP client: a
// token's execute runs and streams its output; what one token submits,
// another cannot read or cancel, over MCP or the API; no token is a 401.
func TestMCPOverHTTPIsScopedToItsToken(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	b.startWorker(t)
	m, url := b.serveMCP(t)
	ctx := testutil.Context(t, 2*time.Minute)
	a, other := connectMCP(t, ctx, url, tokenA), connectMCP(t, ctx, url, tokenB)

	res, err := a.CallTool(ctx, &mcp.CallToolParams{Name: "execute", Arguments: map[string]any{"command": "echo hi; exit 3"}})
	if err != nil || res.IsError {
		t.Fatalf("execute: %+v, %v", res, err)
	}
	var r tasks.Result
	raw, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(raw, &r); err != nil || r.ExitCode != 3 || r.Stdout != "hi\n" {
		t.Fatalf("execute's result: %s (%v)", raw, err)
	}
	for _, tool := range []string{"get_result", "cancel"} {
		res, err := other.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"id": r.ExecutionID}})
		if err != nil || !res.IsError || !strings.Contains(toolText(res), "no execution") {
			t.Errorf("%s of another token's execution: %q, %v; want a not-found tool error", tool, toolText(res), err)
		}
	}
	if resp := b.do(t, req{method: http.MethodGet, path: "/v1/executions/" + r.ExecutionID, token: tokenB}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the API, another token: %d, want 404", resp.StatusCode)
	}
	if resp := b.do(t, req{method: http.MethodGet, path: "/v1/executions/" + r.ExecutionID, token: tokenA}); resp.StatusCode != http.StatusOK {
		t.Errorf("the API, the same token: %d, want 200", resp.StatusCode)
	}

	resp, err := http.Post(url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d, want 401 with WWW-Authenticate", resp.StatusCode)
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func toolText(res *mcp.CallToolResult) string {
	var sb strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	return sb.String()
}

// A session opened over MCP at /mcp is its token's: the token runs two
// steps in it that share a file, and sees it through the API; another
// token can neither run in it nor close it, over MCP or the API; its
// close_session ends it, which the API then answers with 410.
func TestMCPSessionsOverHTTP(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	liveworker.StartWith(t, b.redis.Client, "api-"+uuid.NewString()[:8], 1, func(c *worker.Config) { c.MaxSessions = 2 })
	_, url := b.serveMCP(t)
	ctx := testutil.Context(t, 2*time.Minute)
	a, other := connectMCP(t, ctx, url, tokenA), connectMCP(t, ctx, url, tokenB)
	call := func(s *mcp.ClientSession, tool string, args map[string]any) (*mcp.CallToolResult, map[string]any) {
		t.Helper()
		res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		sc, _ := res.StructuredContent.(map[string]any)
		return res, sc
	}

	res, sc := call(a, "create_session", map[string]any{"files": map[string]string{"seed.txt": "seed\n"}})
	sid, _ := sc["sessionId"].(string)
	if res.IsError || sid == "" || sc["status"] != "open" {
		t.Fatalf("create_session: %v, %q", sc, toolText(res))
	}
	res, sc = call(a, "execute", map[string]any{"command": "cat seed.txt > note.txt; echo mcp >> note.txt", "session": sid})
	if res.IsError || sc["status"] != "succeeded" || sc["session"] != sid {
		t.Fatalf("step 1: %v, %q", sc, toolText(res))
	}
	res, sc = call(a, "execute", map[string]any{"command": "cat note.txt", "session": sid})
	if res.IsError || sc["stdout"] != "seed\nmcp\n" {
		t.Errorf("step 2: %v, %q", sc, toolText(res))
	}
	s := decodeSession(t, b.do(t, req{method: "GET", path: "/v1/sessions/" + sid, token: tokenA}))
	if s.Owner != httpapi.Owner(tokenA) || s.Executions != 2 || s.Status != tasks.SessionOpen {
		t.Errorf("the API, the same token: %+v", s)
	}

	for tool, args := range map[string]map[string]any{
		"execute":       {"command": "cat note.txt", "session": sid},
		"submit":        {"command": "cat note.txt", "session": sid},
		"close_session": {"sessionId": sid},
	} {
		if res, _ := call(other, tool, args); !res.IsError || !strings.Contains(toolText(res), "no session "+sid) {
			t.Errorf("%s in another token's session: %q; want a not-found tool error", tool, toolText(res))
		}
	}
	if r := b.do(t, req{method: "GET", path: "/v1/sessions/" + sid, token: tokenB}); r.StatusCode != http.StatusNotFound {
		t.Errorf("the API, another token: %d, want 404", r.StatusCode)
	}

	if res, sc := call(a, "close_session", map[string]any{"sessionId": sid}); res.IsError || sc["closed"] != true {
		t.Errorf("close_session: %v, %q", sc, toolText(res))
	}
	r := b.do(t, req{method: "POST", path: "/v1/sessions/" + sid + "/executions", token: tokenA, body: map[string]any{"cmd": []string{"true"}}})
	if r.StatusCode != http.StatusGone {
		t.Errorf("the API after close_session: %d %s, want 410", r.StatusCode, r.body)
	}
}
