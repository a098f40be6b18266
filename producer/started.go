package producer

import (
	"context"
	"fmt"
)

// Started reports whether an attempt of the execution has begun: its
// stream holds at least one event (the first is a started event, or the
// exit event of one canceled before it started). It never waits, so a
// caller can tell a queued execution from a running one while its result
// is not there yet. It returns ErrNotFound when no such execution was
// submitted.
func (c *Client) Started(ctx context.Context, id string) (bool, error) {
	events, err := c.store.ReadEvents(ctx, id, "0", 1, 0)
	if err != nil {
		return false, fmt.Errorf("started %s: %w", id, err)
	}
	if len(events) > 0 {
		return true, nil
	}
	if err := c.exists(ctx, id); err != nil {
		return false, err
	}
	return false, nil
}
