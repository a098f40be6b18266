//go:build integration

package httpapi_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/execq/execq/internal/httpapi"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// A subscription made while a reader is blocked on other streams gets
// its events at once: the reader's XREAD is unblocked, not waited out
// (the setup's Block is a minute).
func TestHubNewSubscriptionUnblocksReader(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{Readers: 1})
	first, err := b.hub.Subscribe("first", "0")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	b.waitSubscriptions(t, 1)
	second, err := b.hub.Subscribe("second", "0")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	b.appendEvents(t, "second", rdb.Entry{Type: tasks.EventStdout, Data: []byte("x")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := second.Next(ctx)
	if err != nil || string(ev.Data) != "x" {
		t.Fatalf("Next = %+v, %v", ev, err)
	}
}

// Many subscribers on few readers each get every event of their stream,
// in order; a slow one (a buffer of 2, read only after everything was
// written) goes back to reading from its last event and misses nothing.
func TestHubFanOutAndSlowSubscriber(t *testing.T) {
	const streams, events = 50, 40
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{Readers: 2, Buffer: 2})
	subs := make([]*httpapi.Sub, streams)
	for i := range subs {
		s, err := b.hub.Subscribe("s"+strconv.Itoa(i), "0")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs[i] = s
	}
	slow, err := b.hub.Subscribe("s0", "0")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readAll(ctx, s, events)
		}()
		id := "s" + strconv.Itoa(i)
		for j := range events {
			b.appendEvents(t, id, rdb.Entry{Type: tasks.EventStdout, Data: []byte(strconv.Itoa(j))})
		}
		b.finish(t, id, tasks.StatusSucceeded, 0)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if err := readAll(ctx, slow, events); err != nil {
		t.Errorf("the slow subscriber: %v", err)
	}
	if n := b.hub.Subscriptions(); n != 0 {
		t.Errorf("%d subscriptions after every exit", n)
	}
}

// readAll reads n stdout events numbered 0… and the exit.
func readAll(ctx context.Context, s *httpapi.Sub, n int) error {
	for j := 0; ; j++ {
		ev, err := s.Next(ctx)
		if err != nil {
			return fmt.Errorf("after %d events: %w", j, err)
		}
		if j == n {
			if ev.Type != tasks.EventExit {
				return fmt.Errorf("event %d is %s, want the exit", j, ev.Type)
			}
			return nil
		}
		if ev.Type != tasks.EventStdout || string(ev.Data) != strconv.Itoa(j) {
			return fmt.Errorf("event %d is %s %q", j, ev.Type, ev.Data)
		}
	}
}

// Stop ends the subscriptions with ErrHubClosed, and new ones are refused.
func TestHubStop(t *testing.T) {
	b := setup(t, httpapi.Config{}, httpapi.HubConfig{})
	s, err := b.hub.Subscribe("x", "0")
	if err != nil {
		t.Fatal(err)
	}
	b.waitSubscriptions(t, 1)
	b.hub.Stop()
	if _, err := s.Next(context.Background()); err != httpapi.ErrHubClosed {
		t.Errorf("Next after Stop = %v", err)
	}
	if _, err := b.hub.Subscribe("y", "0"); err != httpapi.ErrHubClosed {
		t.Errorf("Subscribe after Stop = %v", err)
	}
	if _, err := b.hub.Subscribe("y", "not-an-id"); err == nil {
		t.Error("Subscribe from a bad entry ID succeeded")
	}
}
