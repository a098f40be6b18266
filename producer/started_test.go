package producer_test

import (
	"errors"
	"testing"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// Started tells a queued execution from one whose attempt began, without
// waiting, and an unknown ID from both.
func TestStarted(t *testing.T) {
	t.Parallel()
	b := setupCancel(t)
	id := b.submit(t)
	if started, err := b.client.Started(b.ctx, id); err != nil || started {
		t.Fatalf("started of a queued execution: %v, %v; want false", started, err)
	}
	if err := b.store.AppendEvents(b.ctx, id, rdb.Entry{Type: tasks.EventStarted, Data: []byte(`{"attempt":1}`)}); err != nil {
		t.Fatal(err)
	}
	if started, err := b.client.Started(b.ctx, id); err != nil || !started {
		t.Fatalf("started after a started event: %v, %v; want true", started, err)
	}
	if _, err := b.client.Started(b.ctx, "never-submitted"); !errors.Is(err, producer.ErrNotFound) {
		t.Errorf("started of an unknown ID: %v, want ErrNotFound", err)
	}
}
