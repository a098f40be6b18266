package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// On a Redis without CLIENT ID or CLIENT UNBLOCK (the embedded one of
// execq up), a subscription made while the reader blocks on another
// stream still gets its events, within the short XREAD it falls back to
// (the hub's Block here is a minute).
func TestHubWithoutClientUnblock(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { client.Close() })
	store := rdb.New(client, tasks.Keys{}, 0)
	hub, err := NewHub(HubConfig{
		Store:   store,
		Readers: 1,
		Block:   time.Minute,
		Connect: func(ctx context.Context) (Conn, error) {
			return redis.NewClient(&redis.Options{Addr: mr.Addr(), PoolSize: 1}), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	hub.Start(context.Background())
	t.Cleanup(hub.Stop)
	first, err := hub.Subscribe("first", "0")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	r := hub.readers[0]
	testutil.Eventually(t, 10*time.Second, time.Millisecond, "the reader blocks on the first stream", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.blocking
	})
	second, err := hub.Subscribe("second", "0")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := store.AppendEvents(context.Background(), "second", rdb.Entry{Type: tasks.EventStdout, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ev, err := second.Next(ctx); err != nil || string(ev.Data) != "x" {
		t.Fatalf("Next = %+v, %v", ev, err)
	}
}
