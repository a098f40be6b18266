//go:build integration

package worker_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestLargeInputsTravelBesideTheTask(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		ctx := testutil.Context(t, 2*time.Minute)
		inspector := asynq.NewInspectorFromRedisClient(b.redis.Client)
		stdin, file := randomBytes(t, 5<<20), randomBytes(t, 1<<20)
		req := tasks.ExecRequest{
			ID:      "large-" + runtime,
			Cmd:     sh("sha256sum; wc -c; cat in/big.bin >out.bin"),
			Stdin:   stdin,
			Files:   []tasks.File{{Path: "in/big.bin", Content: file}},
			Collect: []string{"out.bin"},
			Timeout: time.Minute,
		}
		id, err := b.producer.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.producer.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != tasks.StatusSucceeded {
			t.Fatalf("status %s: %s %s", res.Status, res.Error, res.Stderr)
		}
		if want := sha256Hex(stdin) + "  -\n"; !strings.HasPrefix(res.Stdout, want) {
			t.Errorf("the command read a stdin with SHA-256 %q, want %q", res.Stdout, want)
		}
		if len(res.Files) != 1 || !bytes.Equal(res.Files[0].Content, file) {
			t.Errorf("the 1 MiB file did not come back byte for byte (%d files)", len(res.Files))
		}
		info, err := inspector.GetTaskInfo("default", id)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Payload) > 2<<10 {
			t.Errorf("the task's payload is %d bytes with 6 MiB of inputs stored beside it", len(info.Payload))
		}

		// The same ID with the same contents is the same execution; with
		// other contents, a conflict.
		if again, err := b.producer.Submit(ctx, req); err != nil || again != id {
			t.Errorf("a resubmission = %q, %v; want %q", again, err, id)
		}
		other := req
		other.Stdin = bytes.Clone(stdin)
		other.Stdin[len(other.Stdin)/2] ^= 1
		if _, err := b.producer.Submit(ctx, other); !errors.Is(err, producer.ErrIDConflict) {
			t.Errorf("the same ID with another 5 MiB stdin: %v, want ErrIDConflict", err)
		}
		if n := testutil.CountEvents(b.events(t, id), tasks.EventStarted); n != 1 {
			t.Errorf("started %d times", n)
		}
	})
}

func TestMissingStoredInputEndsTheExecution(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, runtime string) {
		b := setupIntegration(t, setupOptions{runtime: runtime})
		ctx := testutil.Context(t, time.Minute)
		inspector := asynq.NewInspectorFromRedisClient(b.redis.Client)
		// Held in the queue while its input goes, as when it expires
		// before a worker is free.
		if err := inspector.PauseQueue("default"); err != nil {
			t.Fatal(err)
		}
		id, err := b.producer.Submit(ctx, tasks.ExecRequest{Cmd: sh("wc -c"), Stdin: randomBytes(t, 1<<20)})
		if err != nil {
			t.Fatal(err)
		}
		key := tasks.Keys{}.Input(id)
		if n, err := b.redis.Client.Del(ctx, key).Result(); err != nil || n != 1 {
			t.Fatalf("delete %s: %d, %v", key, n, err)
		}
		if err := inspector.UnpauseQueue("default"); err != nil {
			t.Fatal(err)
		}
		res, err := b.producer.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("input stdin (%d bytes) stored beside the task is missing", 1<<20)
		if res.Status != tasks.StatusError || !strings.Contains(res.Error, want) || res.Stdout != "" {
			t.Errorf("status %s, error %q, stdout %q; want error saying %q", res.Status, res.Error, res.Stdout, want)
		}
		if n := testutil.CountEvents(b.events(t, id), tasks.EventStarted); n != 0 {
			t.Errorf("started %d times without its input", n)
		}
	})
}
