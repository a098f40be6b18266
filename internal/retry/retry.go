// Package retry spaces the attempts of an operation that fails for a
// while (Redis restarting, the engine away): a delay that doubles from
// First up to Max.
package retry

import (
	"context"
	"time"
)

// Backoff is the delay between attempts. The zero value waits 100 ms,
// doubling up to 10 s.
type Backoff struct {
	First, Max time.Duration
	next       time.Duration
}

// Next returns the delay before the next attempt and doubles the one after.
func (b *Backoff) Next() time.Duration {
	if b.next == 0 {
		b.next = b.First
		if b.next <= 0 {
			b.next = 100 * time.Millisecond
		}
	}
	d := b.next
	limit := b.Max
	if limit <= 0 {
		limit = 10 * time.Second
	}
	b.next = min(2*b.next, limit)
	return min(d, limit)
}

// Wait waits for the next delay, or until ctx ends, and returns ctx's
// error then.
func (b *Backoff) Wait(ctx context.Context) error { return Sleep(ctx, b.Next()) }

// Sleep waits for d, or until ctx ends, and returns ctx's error then.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
