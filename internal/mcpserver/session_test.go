package mcpserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/execq/execq/tasks"
)

// wireLog records, in the order a client read them, the progress
// notifications (their message) and the responses it got.
type wireLog struct {
	mu      sync.Mutex
	entries []wireEntry
}

type wireEntry struct {
	progress string // the message of a notifications/progress
	response bool
}

func (l *wireLog) add(m jsonrpc.Message) {
	var e wireEntry
	switch m := m.(type) {
	case *jsonrpc.Request:
		if m.Method != "notifications/progress" {
			return
		}
		var p mcp.ProgressNotificationParams
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return
		}
		e.progress = p.Message
	case *jsonrpc.Response:
		e.response = true
	default:
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
}

// progressBeforeResponse reports whether a progress notification whose
// message holds want was read before the last response read so far.
func (l *wireLog) progressBeforeResponse(want string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	progress, response := -1, -1
	for i, e := range l.entries {
		if progress < 0 && strings.Contains(e.progress, want) {
			progress = i
		}
		if e.response {
			response = i
		}
	}
	return progress >= 0 && progress < response
}

// recordingTransport is a client transport that logs what its connection
// reads into a wireLog.
type recordingTransport struct {
	mcp.Transport
	log *wireLog
}

func (t recordingTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return recordingConn{Connection: c, log: t.log}, nil
}

type recordingConn struct {
	mcp.Connection
	log *wireLog
}

func (c recordingConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	m, err := c.Connection.Read(ctx)
	if err == nil {
		c.log.add(m)
	}
	return m, err
}

// session is an SDK client's session with the server under test.
type session struct {
	cs   *mcp.ClientSession
	wire *wireLog
}

// connect connects an SDK client over t and closes the session when the
// test ends. With record, the wire log records what the client reads
// (transports of the SDK with hidden extensions, such as the streamable
// client, cannot be wrapped).
func connect(t *testing.T, ctx context.Context, tr mcp.Transport, record bool) *session {
	t.Helper()
	s := &session{wire: &wireLog{}}
	if record {
		tr = recordingTransport{Transport: tr, log: s.wire}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "execq-test", Version: "0"}, nil)
	cs, err := client.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	s.cs = cs
	return s
}

// call calls the tool name with args, with a progress token when
// progress is set, and fails the test on a protocol error.
func (s *session) call(t *testing.T, ctx context.Context, name string, args any, progress bool) *mcp.CallToolResult {
	t.Helper()
	params := &mcp.CallToolParams{Name: name, Arguments: args}
	if progress {
		params.Meta = mcp.Meta{"progressToken": "p-" + name}
	}
	res, err := s.cs.CallTool(ctx, params)
	if err != nil {
		t.Fatalf("call %s %v: %v", name, args, err)
	}
	return res
}

// text is the text content of res.
func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// structured decodes res's structured content into a T.
func structured[T any](t *testing.T, res *mcp.CallToolResult) T {
	t.Helper()
	var v T
	b, err := json.Marshal(res.StructuredContent)
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
	return v
}

// result is res's structured content as an execq result, which must be
// the one of a tool call that succeeded.
func result(t *testing.T, res *mcp.CallToolResult) tasks.Result {
	t.Helper()
	if res.IsError {
		t.Fatalf("tool error: %s", text(res))
	}
	return structured[tasks.Result](t, res)
}
