package mcpserver_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/mcpserver"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
	"github.com/execq/execq/worker/workertest"
)

// submitted tells the test the ID of each execution its server submits.
type submitted struct {
	mcpserver.Executions
	ids chan string
}

func (s submitted) Submit(ctx context.Context, req tasks.ExecRequest) (string, error) {
	id, err := s.Executions.Submit(ctx, req)
	if err == nil {
		s.ids <- id
	}
	return id, err
}

type bundle struct {
	ctx    context.Context
	client *producer.Client
	ids    chan string
	store  *rdb.Store
	srv    *mcpserver.Server
	s      *session
}

// setup serves a Server to an SDK client over in-memory transports, on
// miniredis with an in-memory worker; the server's executions go to
// queue ("" for the default queue, which the worker serves).
func setup(t *testing.T, queue string) *bundle {
	t.Helper()
	ctx := testutil.Context(t, time.Minute)
	mr := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rc.Close() })
	w, err := workertest.Start(ctx, worker.Config{Redis: rc, Name: "mcp-test", Image: "fake", PoolSize: 2, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	b := &bundle{ctx: ctx, client: producer.New(rc, producer.Options{}), ids: make(chan string, 16), store: rdb.New(rc, tasks.Keys{}, 0)}
	b.srv, err = mcpserver.New(mcpserver.Config{
		Client:   submitted{Executions: b.client, ids: b.ids},
		Sessions: b.client,
		Logger:   testutil.Logger(t),
		Queue:    queue,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, ct := mcp.NewInMemoryTransports()
	served := make(chan error, 1)
	go func() { served <- b.srv.Run(ctx, st) }()
	b.s = connect(t, ctx, ct, true)
	// Cleanups run last first: the session closes, then the server ends.
	t.Cleanup(func() {
		b.s.cs.Close()
		// The answer to a call the client canceled may meet the session
		// closed.
		if err := <-served; err != nil && !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("server: %v", err)
		}
	})
	return b
}

func TestTools(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	list, err := b.s.cs.ListTools(b.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]*mcp.Tool{}
	for _, tool := range list.Tools {
		tools[tool.Name] = tool
		if len(tool.Description) < 100 {
			t.Errorf("%s: description %q says too little", tool.Name, tool.Description)
		}
	}
	for name, want := range map[string]struct {
		in, required, out []string
	}{
		"execute":        {[]string{"argv", "code", "command", "env", "files", "image", "language", "memory", "session", "stdin", "timeoutSeconds"}, nil, []string{"executionId", "exitCode", "stdout", "stderr", "status"}},
		"submit":         {[]string{"argv", "code", "command", "env", "files", "image", "language", "memory", "session", "stdin", "timeoutSeconds"}, nil, []string{"executionId"}},
		"get_result":     {[]string{"id", "waitSeconds"}, []string{"id"}, []string{"executionId", "status"}},
		"cancel":         {[]string{"id"}, []string{"id"}, []string{"executionId", "canceled"}},
		"create_session": {[]string{"cpus", "env", "files", "idleTimeoutSeconds", "image", "language", "lifetimeSeconds", "memory", "pids"}, nil, []string{"sessionId", "status", "idleTimeoutSeconds", "lifetimeSeconds"}},
		"close_session":  {[]string{"sessionId"}, []string{"sessionId"}, []string{"sessionId", "closed", "status"}},
	} {
		tool := tools[name]
		if tool == nil {
			t.Errorf("no tool %s", name)
			continue
		}
		in := schemaOf(t, tool.InputSchema)
		if got := keys(in["properties"]); !slices.Equal(got, want.in) {
			t.Errorf("%s: arguments %v, want %v", name, got, want.in)
		}
		if got := strs(in["required"]); !slices.Equal(got, want.required) {
			t.Errorf("%s: required arguments %v, want %v", name, got, want.required)
		}
		if in["additionalProperties"] != false {
			t.Errorf("%s: unknown arguments are not refused: %v", name, in["additionalProperties"])
		}
		out := schemaOf(t, tool.OutputSchema)
		for _, field := range want.out {
			if !slices.Contains(strs(out["required"]), field) {
				t.Errorf("%s: output schema does not require %s: %v", name, field, out["required"])
			}
		}
	}
	wait := schemaOf(t, tools["get_result"].InputSchema)["properties"].(map[string]any)["waitSeconds"].(map[string]any)
	if wait["maximum"] != 60.0 {
		t.Errorf("get_result's waitSeconds: maximum %v, want 60", wait["maximum"])
	}
	lifetime := schemaOf(t, tools["create_session"].InputSchema)["properties"].(map[string]any)["lifetimeSeconds"].(map[string]any)
	if lifetime["maximum"] != 86400.0 || lifetime["minimum"] != 0.0 {
		t.Errorf("create_session's lifetimeSeconds: %v, want from 0 to 86400", lifetime)
	}
	if len(tools) != 6 {
		t.Errorf("%d tools, want 6", len(tools))
	}
}

func schemaOf(t *testing.T, s any) map[string]any {
	t.Helper()
	m, ok := s.(map[string]any)
	if !ok {
		t.Fatalf("schema %T %v is not an object", s, s)
	}
	return m
}

func keys(v any) []string {
	m, _ := v.(map[string]any)
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, s := range l {
		out = append(out, s.(string))
	}
	slices.Sort(out)
	return out
}

func TestExecute(t *testing.T) {
	t.Parallel()
	b := setup(t, "")

	res := b.s.call(t, b.ctx, "execute", map[string]any{"argv": []string{"echo", "hi"}}, true)
	r := result(t, res)
	if r.Status != tasks.StatusSucceeded || r.ExitCode != 0 || r.Stdout != "hi\n" || r.ExecutionID == "" {
		t.Errorf("echo hi: %+v", r)
	}
	if txt := text(res); !strings.Contains(txt, "status: succeeded\n") || !strings.Contains(txt, "--- stdout ---\nhi\n") {
		t.Errorf("echo hi: summary %q", txt)
	}
	if !b.s.wire.progressBeforeResponse("hi") {
		t.Errorf("no progress notification carried hi before the result: %+v", b.s.wire.entries)
	}

	res = b.s.call(t, b.ctx, "execute", map[string]any{"argv": []string{"exit", "3"}}, false)
	if r := result(t, res); r.Status != tasks.StatusFailed || r.ExitCode != 3 {
		t.Errorf("exit 3: %+v", r)
	}
	if txt := text(res); !strings.Contains(txt, "status: failed\nexit code: 3\n") {
		t.Errorf("exit 3: summary %q", txt)
	}

	res = b.s.call(t, b.ctx, "execute", map[string]any{"argv": []string{"ls"}, "files": map[string]string{"src/a.txt": "a", "b.txt": "b"}}, false)
	if r := result(t, res); !strings.Contains(r.Stdout, "b.txt") || !strings.Contains(r.Stdout, "src/a.txt") {
		t.Errorf("files: ls printed %q", r.Stdout)
	}

	res = b.s.call(t, b.ctx, "execute", map[string]any{"argv": []string{"cat"}, "stdin": "piped"}, false)
	if r := result(t, res); r.Stdout != "piped" {
		t.Errorf("stdin: cat printed %q", r.Stdout)
	}

	res = b.s.call(t, b.ctx, "execute", map[string]any{"argv": []string{"sleep", "1m"}, "timeoutSeconds": 0.2}, false)
	if r := result(t, res); r.Status != tasks.StatusTimedOut || r.ExitCode != -1 {
		t.Errorf("timeout: %+v", r)
	}
}

// Arguments a model may get wrong are tool errors that say what is wrong,
// never protocol errors, and submit nothing.
func TestExecuteRefusesInvalidArguments(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{}, "give command (a shell script run with sh -c) or argv"},
		{map[string]any{"command": "true", "argv": []string{"true"}}, "not both"},
		{map[string]any{"command": "true", "memory": "lots"}, `memory "lots" is not a size`},
		{map[string]any{"command": "true", "timeoutSeconds": -1}, "timeoutSeconds"},
		{map[string]any{"command": "true", "cmd": "true"}, "cmd"},
		{map[string]any{"argv": []string{}}, "argv"},
		{map[string]any{"argv": "true"}, "argv"},
		{map[string]any{"command": "true", "files": map[string]string{"/etc/passwd": "x"}}, "invalid request: "},
		{map[string]any{"command": "true", "files": map[string]string{"../x": "x"}}, "invalid request: "},
	} {
		for _, tool := range []string{"execute", "submit"} {
			res := b.s.call(t, b.ctx, tool, c.args, false)
			if !res.IsError || !strings.Contains(text(res), c.want) {
				t.Errorf("%s %v: isError %v, %q; want a tool error with %q", tool, c.args, res.IsError, text(res), c.want)
			}
		}
	}
	select {
	case id := <-b.ids:
		t.Errorf("invalid arguments submitted %s", id)
	default:
	}
}

func TestSubmitGetResultCancel(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	id := structured[mcpserver.Submitted](t, b.s.call(t, b.ctx, "submit", map[string]any{"argv": []string{"sleep", "1m"}}, false)).ExecutionID
	if id == "" {
		t.Fatal("submit returned no execution ID")
	}
	testutil.Eventually(t, 30*time.Second, 10*time.Millisecond, "get_result says running", func() bool {
		res := b.s.call(t, b.ctx, "get_result", map[string]any{"id": id}, false)
		p := structured[mcpserver.Pending](t, res)
		return !res.IsError && p.ExecutionID == id && p.Status == "running"
	})
	res := b.s.call(t, b.ctx, "get_result", map[string]any{"id": id, "waitSeconds": 0.1}, false)
	if p := structured[mcpserver.Pending](t, res); res.IsError || p.Status != "running" || !strings.Contains(text(res), "no result yet") {
		t.Errorf("get_result waiting 0.1 s on a running execution: %+v, %q", p, text(res))
	}
	res = b.s.call(t, b.ctx, "cancel", map[string]any{"id": id}, false)
	if c := structured[mcpserver.Canceled](t, res); res.IsError || !c.Canceled || c.ExecutionID != id {
		t.Errorf("cancel: %+v, %q", c, text(res))
	}
	res = b.s.call(t, b.ctx, "get_result", map[string]any{"id": id, "waitSeconds": 30}, false)
	if r := result(t, res); r.Status != tasks.StatusCanceled || r.ExecutionID != id {
		t.Errorf("get_result after cancel: %+v", r)
	}
	res = b.s.call(t, b.ctx, "cancel", map[string]any{"id": id}, false)
	if c := structured[mcpserver.Canceled](t, res); res.IsError || c.Canceled || c.Status != "canceled" {
		t.Errorf("a second cancel: %+v, %q", c, text(res))
	}
	for _, tool := range []string{"get_result", "cancel"} {
		res = b.s.call(t, b.ctx, tool, map[string]any{"id": "never-submitted"}, false)
		if !res.IsError || !strings.Contains(text(res), "no execution never-submitted was submitted") {
			t.Errorf("%s of an unknown ID: %q", tool, text(res))
		}
		res = b.s.call(t, b.ctx, tool, map[string]any{"id": "not an id"}, false)
		if !res.IsError || !strings.Contains(text(res), "invalid arguments") {
			t.Errorf("%s of an invalid ID: %q", tool, text(res))
		}
	}
	res = b.s.call(t, b.ctx, "get_result", map[string]any{"id": id, "waitSeconds": 61}, false)
	if !res.IsError || !strings.Contains(text(res), "waitSeconds") {
		t.Errorf("get_result waiting 61 s: %q; want a tool error", text(res))
	}
}

// An execution in a queue no worker serves is queued, and a cancel ends
// it before it ever runs.
func TestGetResultQueued(t *testing.T) {
	t.Parallel()
	b := setup(t, "nobody")
	id := structured[mcpserver.Submitted](t, b.s.call(t, b.ctx, "submit", map[string]any{"command": "true"}, false)).ExecutionID
	res := b.s.call(t, b.ctx, "get_result", map[string]any{"id": id}, false)
	if p := structured[mcpserver.Pending](t, res); res.IsError || p.Status != "queued" {
		t.Errorf("get_result of a queued execution: %+v, %q", p, text(res))
	}
	if c := structured[mcpserver.Canceled](t, b.s.call(t, b.ctx, "cancel", map[string]any{"id": id}, false)); !c.Canceled {
		t.Errorf("cancel of a queued execution: %+v", c)
	}
	res = b.s.call(t, b.ctx, "get_result", map[string]any{"id": id}, false)
	if r := result(t, res); r.Status != tasks.StatusCanceled || r.Attempt != 0 {
		t.Errorf("get_result after the cancel: %+v", r)
	}
}

// When the call of an execute is canceled, so is its execution.
func TestExecuteCanceledWithItsCall(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	called := make(chan error, 1)
	go func() {
		_, err := b.s.cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute", Arguments: map[string]any{"argv": []string{"sleep", "1m"}}})
		called <- err
	}()
	id := <-b.ids
	waitStarted(t, b.ctx, b.client, id)
	cancel()
	if err := <-called; err == nil {
		t.Error("the canceled call returned no error")
	}
	r, err := b.client.Wait(b.ctx, id)
	if err != nil || r.Status != tasks.StatusCanceled {
		t.Errorf("the execution of a canceled call: %+v, %v; want canceled", r, err)
	}
}

// When the session of an execute closes, its execution is canceled, and
// Run returns only once the cancel is recorded.
func TestExecuteCanceledWithItsSession(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	st, ct := mcp.NewInMemoryTransports()
	served := make(chan error, 1)
	go func() { served <- b.srv.Run(b.ctx, st) }()
	// The client goes away as a process that dies: its connection
	// closes under its session.
	conns := make(chan mcp.Connection, 1)
	s := connect(t, b.ctx, connTransport{Transport: ct, conns: conns}, false)
	conn := <-conns
	called := make(chan error, 1)
	go func() {
		_, err := s.cs.CallTool(b.ctx, &mcp.CallToolParams{Name: "execute", Arguments: map[string]any{"argv": []string{"sleep", "1m"}}})
		called <- err
	}()
	id := <-b.ids
	waitStarted(t, b.ctx, b.client, id)
	conn.Close()
	<-served
	if canceled, err := b.store.Canceled(b.ctx, id); err != nil || !canceled {
		t.Errorf("when Run returned, the execution of the closed session was not marked canceled (%v)", err)
	}
	<-called
	r, err := b.client.Wait(b.ctx, id)
	if err != nil || r.Status != tasks.StatusCanceled {
		t.Errorf("the execution of a closed session: %+v, %v; want canceled", r, err)
	}
}

// connTransport hands the test the connection it makes.
type connTransport struct {
	mcp.Transport
	conns chan mcp.Connection
}

func (t connTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err == nil {
		t.conns <- c
	}
	return c, err
}

// Shutdown cancels the calls under way, and their executions, and
// returns once they have returned.
func TestShutdown(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	called := make(chan error, 1)
	go func() {
		_, err := b.s.cs.CallTool(b.ctx, &mcp.CallToolParams{Name: "execute", Arguments: map[string]any{"argv": []string{"sleep", "1m"}}})
		called <- err
	}()
	id := <-b.ids
	waitStarted(t, b.ctx, b.client, id)
	if err := b.srv.Shutdown(b.ctx); err != nil {
		t.Fatal(err)
	}
	if canceled, err := b.store.Canceled(b.ctx, id); err != nil || !canceled {
		t.Errorf("when Shutdown returned, the execution under way was not marked canceled (%v)", err)
	}
	<-called
	if r, err := b.client.Wait(b.ctx, id); err != nil || r.Status != tasks.StatusCanceled {
		t.Errorf("the execution of a call Shutdown canceled: %+v, %v; want canceled", r, err)
	}
}

// waitStarted follows the execution id until its started event.
func waitStarted(t *testing.T, ctx context.Context, client *producer.Client, id string) {
	t.Helper()
	for ev, err := range client.Follow(ctx, id, "") {
		if err != nil {
			t.Fatalf("follow %s: %v", id, err)
		}
		if ev.Type == tasks.EventStarted {
			return
		}
		if ev.Type == tasks.EventExit {
			t.Fatalf("%s exited before the test saw it start", id)
		}
	}
}

// The streamable HTTP handler, as execq serve mounts it at /mcp, serves
// the same tools to the SDK's streamable client, progress included.
func TestHandler(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	mux := http.NewServeMux()
	mux.Handle("/mcp", b.srv.Handler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)

	progress := make(chan string, 64)
	client := mcp.NewClient(&mcp.Implementation{Name: "execq-test", Version: "0"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			progress <- req.Params.Message
		},
	})
	cs, err := client.Connect(b.ctx, &mcp.StreamableClientTransport{Endpoint: hs.URL + "/mcp"}, nil)
	if err != nil {
		t.Fatalf("connect over streamable HTTP: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	s := &session{cs: cs, wire: &wireLog{}}

	list, err := cs.ListTools(b.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{"cancel", "close_session", "create_session", "execute", "get_result", "submit"}; !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}
	res := s.call(t, b.ctx, "execute", map[string]any{"argv": []string{"echo", "over", "http"}}, true)
	if r := result(t, res); r.Status != tasks.StatusSucceeded || r.Stdout != "over http\n" {
		t.Errorf("execute over HTTP: %+v", r)
	}
	// A page elsewhere that a DNS name points at loopback is refused.
	req, err := http.NewRequestWithContext(b.ctx, http.MethodPost, hs.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "rebound.example"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a request to loopback with Host rebound.example: %s; want 403", resp.Status)
	}
	select {
	case msg := <-progress:
		if msg != "over http\n" {
			t.Errorf("progress message %q, want the output", msg)
		}
	case <-b.ctx.Done():
		t.Error("no progress notification over HTTP")
	}
}
