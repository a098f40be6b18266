//go:build integration

package mcpserver_test

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/testutil"
)

// rawPeer speaks JSON-RPC to `execq mcp` by hand: a line of JSON each way.
type rawPeer struct {
	t     *testing.T
	stdin io.WriteCloser
	lines chan string
}

func (p *rawPeer) send(msg string) {
	p.t.Helper()
	if !json.Valid([]byte(msg)) {
		p.t.Fatalf("the test's own message is not JSON: %s", msg)
	}
	if _, err := io.WriteString(p.stdin, msg+"\n"); err != nil {
		p.t.Fatalf("write to execq mcp: %v", err)
	}
}

// next is the next message execq mcp wrote, decoded.
func (p *rawPeer) next() map[string]any {
	p.t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			p.t.Fatal("execq mcp closed its stdout")
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			p.t.Fatalf("execq mcp wrote a line that is not a JSON object: %q", line)
		}
		return m
	case <-time.After(time.Minute):
		p.t.Fatal("execq mcp wrote nothing within a minute")
	}
	return nil
}

// equal fails the test unless got is want (want written as JSON).
func equal(t *testing.T, what string, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("the test's own %s is not JSON: %v", what, err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Errorf("%s:\n got %s\nwant %s", what, g, want)
	}
}

// The protocol as a client that is not the SDK sees it: initialize,
// notifications/initialized, tools/list and tools/call written by hand
// on the stdin of `execq mcp`, and the exact JSON of what comes back.
func TestRawJSONRPC(t *testing.T) {
	l := setupLive(t)
	log := &testutil.Buffer{}
	proc := l.startMCP(t, log)
	stdin, stdout, exited := proc.stdin, proc.stdout, proc.exited
	p := &rawPeer{t: t, stdin: stdin, lines: make(chan string, 256)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()

	p.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	init := p.next()
	if res, ok := init["result"].(map[string]any); ok {
		if s, _ := res["instructions"].(string); !strings.Contains(s, "execute") {
			t.Errorf("instructions %q", s)
		}
		res["instructions"] = "…"
	}
	equal(t, "initialize", init, `{"jsonrpc":"2.0","id":1,"result":{
		"capabilities":{"tools":{"listChanged":true}},
		"instructions":"…",
		"protocolVersion":"2025-06-18",
		"serverInfo":{"name":"execq","title":"execq sandboxes","version":"dev"}}}`)
	p.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	// A notification has no answer: the next message answers tools/list.
	p.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	list := p.next()
	if list["id"] != 2.0 {
		t.Fatalf("answer to tools/list: %v", list)
	}
	tools, _ := list["result"].(map[string]any)["tools"].([]any)
	names := map[string]any{}
	for _, tool := range tools {
		tool := tool.(map[string]any)
		name, _ := tool["name"].(string)
		names[name] = true
		for k := range tool {
			if !strings.Contains(" name title description inputSchema outputSchema annotations ", " "+k+" ") {
				t.Errorf("tool %s has a field %q", name, k)
			}
		}
		if in, _ := tool["inputSchema"].(map[string]any); in["type"] != "object" {
			t.Errorf("tool %s: inputSchema %v", name, in)
		}
		if out, _ := tool["outputSchema"].(map[string]any); out["type"] != "object" {
			t.Errorf("tool %s: outputSchema %v", name, out)
		}
	}
	equal(t, "tool names", names, `{"execute":true,"submit":true,"get_result":true,"cancel":true,"create_session":true,"close_session":true}`)

	p.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"execute","arguments":{"command":"echo hi; exit 3"},"_meta":{"progressToken":"tok-3"}}}`)
	var progress []map[string]any
	var call map[string]any
	for call == nil {
		m := p.next()
		switch {
		case m["method"] == "notifications/progress":
			progress = append(progress, m)
		case m["id"] == 3.0:
			call = m
		default:
			t.Errorf("unexpected message during tools/call: %v", m)
		}
	}
	if len(progress) != 1 {
		t.Fatalf("progress notifications before the result: %v; want one with the output", progress)
	}
	equal(t, "progress", progress[0], `{"jsonrpc":"2.0","method":"notifications/progress","params":{
		"_meta":{"execq/stream":"stdout"},"progressToken":"tok-3","progress":3,"message":"hi\n"}}`)
	res, _ := call["result"].(map[string]any)
	sc, _ := res["structuredContent"].(map[string]any)
	id, _ := sc["executionId"].(string)
	var summary string
	if content, _ := res["content"].([]any); len(content) == 1 {
		summary, _ = content[0].(map[string]any)["text"].(string)
	}
	if !strings.HasPrefix(summary, "status: failed\nexit code: 3\n") || !strings.Contains(summary, "execution: "+id+"\n") ||
		!strings.HasSuffix(summary, "--- stdout ---\nhi\n--- stderr (empty) ---\n") {
		t.Errorf("summary %q", summary)
	}
	for k, want := range map[string]any{"status": "failed", "success": false, "exitCode": 3.0, "stdout": "hi\n", "stderr": "",
		"stdoutTruncated": false, "stdoutBytes": 3.0, "attempt": 1.0} {
		if !reflect.DeepEqual(sc[k], want) {
			t.Errorf("structuredContent.%s = %#v, want %#v", k, sc[k], want)
		}
	}
	content, _ := json.Marshal(res["content"])
	equal(t, "tools/call execute", call, `{"jsonrpc":"2.0","id":3,"result":{"content":`+string(content)+`,"structuredContent":`+mustJSON(t, sc)+`}}`)
	if id == "" {
		t.Error("structuredContent has no executionId")
	}

	p.send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"execute","arguments":{"argv":["true"],"command":"true"}}}`)
	equal(t, "tools/call with invalid arguments", p.next(), `{"jsonrpc":"2.0","id":4,"result":{
		"content":[{"type":"text","text":"invalid arguments: give either command (a shell script) or argv (a program and its arguments), not both"}],
		"isError":true}}`)

	p.send(`{"jsonrpc":"2.0","id":5,"method":"no/such/method"}`)
	if m := p.next(); m["id"] != 5.0 || m["error"].(map[string]any)["code"] != -32601.0 {
		t.Errorf("an unknown method: %v; want error -32601", m)
	}

	stdin.Close()
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("execq mcp after stdin closed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("execq mcp did not exit within 30 s of its stdin closing")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The same exchange from Python's standard library: a client in another
// language than the server's.
func TestPythonClient(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		testutil.Missing(t, "python3 is not installed")
	}
	l := setupLive(t)
	cmd := exec.CommandContext(l.ctx, python, filepath.Join("testdata", "raw_client.py"), l.exe, l.redis.URL)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("raw_client.py: %v: %s", err, out)
	}
	var got struct {
		ProtocolVersion string
		Progress        []string
		Result          struct {
			StructuredContent map[string]any
			IsError           bool
		}
		Exit int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("raw_client.py printed %q: %v", out, err)
	}
	sc := got.Result.StructuredContent
	if got.ProtocolVersion != "2025-06-18" || strings.Join(got.Progress, "") != "hi\n" || got.Result.IsError ||
		sc["exitCode"] != 3.0 || sc["stdout"] != "hi\n" || sc["status"] != "failed" || got.Exit != 0 {
		t.Errorf("raw_client.py saw %s", out)
	}
}
