package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
)

// execq mcp finds Redis through EXECQ_REDIS_URL, answers on stdout
// only, and ends when its stdin does. Its submit tool enqueues there
// (no worker runs: the execution stays queued).
func TestMCPCommand(t *testing.T) {
	mr := miniredis.RunT(t)
	url := "redis://" + mr.Addr() + "/0"
	t.Setenv("EXECQ_REDIS_URL", url)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	stderr := &testutil.Buffer{}
	code := make(chan int, 1)
	go func() {
		code <- execute(context.Background(), []string{"mcp"}, inR, outW, stderr)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	send := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(inW, msg+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	next := func() map[string]any {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("execq mcp ended its stdout (%v); stderr %q", lines.Err(), stderr.String())
		}
		var m map[string]any
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
			t.Fatalf("stdout holds %q, not JSON-RPC", lines.Text())
		}
		return m
	}

	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if m := next(); m["result"].(map[string]any)["serverInfo"].(map[string]any)["name"] != "execq" {
		t.Fatalf("initialize: %v", m)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"submit","arguments":{"command":"true"}}}`)
	m := next()
	id, _ := m["result"].(map[string]any)["structuredContent"].(map[string]any)["executionId"].(string)
	if id == "" {
		t.Fatalf("submit: %v", m)
	}
	client, err := producer.Dial(url, producer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Result(context.Background(), id); !errors.Is(err, producer.ErrNoResult) {
		t.Errorf("the submitted execution in EXECQ_REDIS_URL's Redis: %v, want it queued", err)
	}
	inW.Close()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("execq mcp exited %d after its stdin closed; stderr %q", c, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("execq mcp did not end within 30 s of its stdin closing")
	}
}
