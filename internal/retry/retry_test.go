package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{First: 50 * time.Millisecond, Max: 300 * time.Millisecond}
	want := []time.Duration{50, 100, 200, 300, 300}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Errorf("delay %d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	var zero Backoff
	if got := zero.Next(); got != 100*time.Millisecond {
		t.Errorf("the zero Backoff's first delay is %v, want 100ms", got)
	}
}

func TestWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{First: time.Hour}
	if err := b.Wait(ctx); err != context.Canceled {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
}
