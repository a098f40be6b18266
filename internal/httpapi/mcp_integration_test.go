//go:build integration

package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/execq/execq/internal/httpapi"
	"github.com/execq/execq/internal/mcpserver"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
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

// The MCP server at /mcp, through the SDK's own streamable HTTP client: a
// token's execute runs and streams its output; what one token submits,
// another cannot read or cancel, over MCP or the API; no token is a 401.
func TestMCPOverHTTPIsScopedToItsToken(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	b.startWorker(t)
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
	ctx := testutil.Context(t, 2*time.Minute)
	connect := func(token string) *mcp.ClientSession {
		t.Helper()
		c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
		s, err := c.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint:   srv.URL,
			HTTPClient: &http.Client{Transport: bearer{token, http.DefaultTransport}},
		}, nil)
		if err != nil {
			t.Fatalf("connect with a token: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, other := connect(tokenA), connect(tokenB)

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

	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
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
