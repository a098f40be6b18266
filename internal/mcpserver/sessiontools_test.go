package mcpserver_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/execq/execq/internal/mcpserver"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// serve serves another Server, made from cfg, to an SDK client over
// in-memory transports, for the test's length.
func serve(t *testing.T, ctx context.Context, cfg mcpserver.Config) *session {
	t.Helper()
	cfg.Logger = testutil.Logger(t)
	srv, err := mcpserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, ct := mcp.NewInMemoryTransports()
	served := make(chan error, 1)
	go func() { served <- srv.Run(ctx, st) }()
	s := connect(t, ctx, ct, false)
	t.Cleanup(func() {
		s.cs.Close()
		if err := <-served; err != nil && !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("server: %v", err)
		}
	})
	return s
}

// waitClosed waits until the worker has closed the session.
func (b *bundle) waitClosed(t *testing.T, id, owner string) tasks.SessionInfo {
	t.Helper()
	var info tasks.SessionInfo
	testutil.Eventually(t, 30*time.Second, 10*time.Millisecond, "the worker closes session "+id, func() bool {
		var err error
		info, err = b.client.SessionOf(id, owner).Info(b.ctx)
		return err == nil && info.Status == tasks.SessionClosed
	})
	return info
}

// create_session opens a session whose files and whose commands' files
// the next commands of the session find; execute and submit run in it;
// close_session ends it, and what comes after is a tool error.
func TestSessionTools(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	res := b.s.call(t, b.ctx, "create_session", map[string]any{
		"files": map[string]string{"seed.txt": "s"}, "idleTimeoutSeconds": 60, "lifetimeSeconds": 600,
	}, false)
	if res.IsError {
		t.Fatalf("create_session: %s", text(res))
	}
	opened := structured[mcpserver.SessionOpened](t, res)
	sid := opened.SessionID
	if sid == "" || opened.Status != "open" || opened.IdleTimeoutSeconds != 60 || opened.LifetimeSeconds != 600 || opened.Image != "fake" {
		t.Errorf("create_session: %+v", opened)
	}
	if txt := text(res); !strings.Contains(txt, "opened session "+sid) || !strings.Contains(txt, `session "`+sid+`"`) {
		t.Errorf("create_session's text %q", txt)
	}

	r := result(t, b.s.call(t, b.ctx, "execute", map[string]any{"argv": []string{"ls"}, "session": sid, "files": map[string]string{"step1.txt": "1"}}, false))
	if r.Status != tasks.StatusSucceeded || r.Session != sid || !strings.Contains(r.Stdout, "seed.txt") || !strings.Contains(r.Stdout, "step1.txt") {
		t.Errorf("step 1: %+v", r)
	}
	id := structured[mcpserver.Submitted](t, b.s.call(t, b.ctx, "submit", map[string]any{"argv": []string{"ls"}, "session": sid}, false)).ExecutionID
	r = result(t, b.s.call(t, b.ctx, "get_result", map[string]any{"id": id, "waitSeconds": 30}, false))
	if r.Session != sid || !strings.Contains(r.Stdout, "step1.txt") {
		t.Errorf("step 2 finds step 1's file: %+v", r)
	}
	// A fresh sandbox has none of it.
	if r := result(t, b.s.call(t, b.ctx, "execute", map[string]any{"argv": []string{"ls"}}, false)); strings.Contains(r.Stdout, "step1.txt") || r.Session != "" {
		t.Errorf("an execution outside the session: %+v", r)
	}

	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"argv": []string{"ls"}, "session": sid, "image": "other"}, "image and memory are the session's"},
		{map[string]any{"argv": []string{"ls"}, "session": sid, "memory": "64m"}, "image and memory are the session's"},
		{map[string]any{"argv": []string{"ls"}, "session": "never-created"}, "no session never-created"},
		{map[string]any{"argv": []string{"ls"}, "session": "not an id"}, "session"},
	} {
		for _, tool := range []string{"execute", "submit"} {
			res := b.s.call(t, b.ctx, tool, c.args, false)
			if !res.IsError || !strings.Contains(text(res), c.want) {
				t.Errorf("%s %v: isError %v, %q; want a tool error with %q", tool, c.args, res.IsError, text(res), c.want)
			}
		}
	}

	res = b.s.call(t, b.ctx, "close_session", map[string]any{"sessionId": sid}, false)
	closed := structured[mcpserver.SessionClosed](t, res)
	if res.IsError || !closed.Closed || (closed.Status != "closing" && closed.Status != "closed") || closed.SessionID != sid {
		t.Errorf("close_session: %+v, %q", closed, text(res))
	}
	for _, tool := range []string{"execute", "submit"} {
		res := b.s.call(t, b.ctx, tool, map[string]any{"argv": []string{"ls"}, "session": sid}, false)
		if !res.IsError || !strings.Contains(text(res), "session "+sid+" has ended") {
			t.Errorf("%s after close_session: %q; want a tool error saying it ended", tool, text(res))
		}
	}
	if info := b.waitClosed(t, sid, ""); info.Cause != tasks.CauseClosed {
		t.Errorf("the closed session: %+v", info)
	}
	res = b.s.call(t, b.ctx, "close_session", map[string]any{"sessionId": sid}, false)
	if c := structured[mcpserver.SessionClosed](t, res); res.IsError || c.Closed || c.Status != "closed" || c.Cause != "closed" {
		t.Errorf("close_session again: %+v, %q", c, text(res))
	}
	for args, want := range map[string]string{"never-created": "no session never-created", "not an id": "invalid arguments"} {
		res := b.s.call(t, b.ctx, "close_session", map[string]any{"sessionId": args}, false)
		if !res.IsError || !strings.Contains(text(res), want) {
			t.Errorf("close_session %q: %q; want a tool error with %q", args, text(res), want)
		}
	}
	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"lifetimeSeconds": 90000}, "lifetimeSeconds"},
		{map[string]any{"memory": "lots"}, `memory "lots"`},
		{map[string]any{"files": map[string]string{"../x": "x"}}, "invalid request: "},
		{map[string]any{"image": "x", "language": "sh"}, "invalid request: "},
		{map[string]any{"cmd": "true"}, "cmd"},
	} {
		res := b.s.call(t, b.ctx, "create_session", c.args, false)
		if !res.IsError || !strings.Contains(text(res), c.want) {
			t.Errorf("create_session %v: isError %v, %q; want a tool error with %q", c.args, res.IsError, text(res), c.want)
		}
	}
}

// A session opened through a server scoped to an owner is the owner's:
// a server scoped to another owner, or to none, cannot run in it or close
// it.
func TestSessionToolsScoped(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ownerOf := func(ctx context.Context, id string) (string, bool, error) {
		e, err := b.store.Lookup(ctx, id)
		return e.Owner, e.Known, err
	}
	alice := serve(t, b.ctx, mcpserver.Config{Client: mcpserver.Scoped(b.client, "alice", ownerOf)})
	bob := serve(t, b.ctx, mcpserver.Config{Client: mcpserver.Scoped(b.client, "bob", ownerOf)})

	res := alice.call(t, b.ctx, "create_session", map[string]any{}, false)
	sid := structured[mcpserver.SessionOpened](t, res).SessionID
	if res.IsError || sid == "" {
		t.Fatalf("alice's create_session: %q", text(res))
	}
	if info, err := b.client.SessionOf(sid, "alice").Info(b.ctx); err != nil || info.Owner != "alice" {
		t.Fatalf("alice's session: %+v, %v", info, err)
	}
	if r := result(t, alice.call(t, b.ctx, "execute", map[string]any{"argv": []string{"echo", "mine"}, "session": sid}, false)); r.Session != sid || r.Stdout != "mine\n" {
		t.Errorf("alice runs in her session: %+v", r)
	}
	for _, s := range []struct {
		name string
		s    *session
	}{{"bob", bob}, {"the unscoped server", b.s}} {
		res := s.s.call(t, b.ctx, "execute", map[string]any{"argv": []string{"echo", "theirs"}, "session": sid}, false)
		if !res.IsError || !strings.Contains(text(res), "no session "+sid) {
			t.Errorf("%s runs in alice's session: %q; want a not-found tool error", s.name, text(res))
		}
		res = s.s.call(t, b.ctx, "close_session", map[string]any{"sessionId": sid}, false)
		if !res.IsError || !strings.Contains(text(res), "no session "+sid) {
			t.Errorf("%s closes alice's session: %q; want a not-found tool error", s.name, text(res))
		}
	}
	if info, _ := b.client.SessionOf(sid, "alice").Info(b.ctx); info.Status != tasks.SessionOpen {
		t.Errorf("alice's session after the others tried: %+v", info)
	}
	res = alice.call(t, b.ctx, "close_session", map[string]any{"sessionId": sid}, false)
	if c := structured[mcpserver.SessionClosed](t, res); res.IsError || !c.Closed {
		t.Errorf("alice's close_session: %+v, %q", c, text(res))
	}
	b.waitClosed(t, sid, "alice")
}

// Without Sessions, the server has no session tools.
func TestNoSessionTools(t *testing.T) {
	t.Parallel()
	ctx := testutil.Context(t, time.Minute)
	s := serve(t, ctx, mcpserver.Config{Client: noSessions{}})
	list, err := s.cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{"cancel", "execute", "get_result", "submit"}; !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}
	if inst := s.cs.InitializeResult().Instructions; strings.Contains(inst, "create_session") {
		t.Errorf("instructions name a tool the server lacks: %q", inst)
	}
}

// noSessions is Executions without Sessions; it is never called.
type noSessions struct{ mcpserver.Executions }
