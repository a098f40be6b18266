package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/retry"
	"github.com/execq/execq/tasks"
)

// readBlock bounds each wait for new events, so that a canceled ctx is
// noticed within it.
const readBlock = 2 * time.Second

// outlast reads with f, retrying while Redis fails for less than
// c.opts.Outlast in a row (a restart, a Sentinel failover, a Cluster
// resharding), backing off; past that, or when ctx ends, it returns the
// error. A read that does not fail is not retried.
func outlast[T any](ctx context.Context, c *Client, f func() (T, error)) (T, error) {
	var first time.Time
	b := retry.Backoff{First: 50 * time.Millisecond, Max: time.Second}
	for {
		v, err := f()
		if err == nil || ctx.Err() != nil || errors.Is(err, rdb.ErrNotFound) || c.opts.Outlast <= 0 {
			return v, err
		}
		if first.IsZero() {
			first = time.Now()
		}
		wait := b.Next()
		if time.Since(first)+wait > c.opts.Outlast {
			return v, err
		}
		if retry.Sleep(ctx, wait) != nil {
			return v, err
		}
	}
}

// Result returns the execution's result: ErrNoResult while it has none,
// ErrNotFound when no such execution was submitted.
func (c *Client) Result(ctx context.Context, id string) (*tasks.Result, error) {
	res, err := c.store.Result(ctx, id)
	if err == nil {
		return res, nil
	}
	if !errors.Is(err, rdb.ErrNotFound) {
		return nil, err
	}
	if err := c.exists(ctx, id); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s: %w", id, ErrNoResult)
}

// exists returns nil when id was submitted within the retention period.
func (c *Client) exists(ctx context.Context, id string) error {
	if _, err := c.store.Queue(ctx, id); err == nil {
		return nil
	} else if !errors.Is(err, rdb.ErrNotFound) {
		return err
	}
	ok, err := c.store.StreamExists(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return nil
}

// Wait waits for the execution's result and returns it. It is a
// deliberate wait, as long as the execution takes, and ends with ctx.
func (c *Client) Wait(ctx context.Context, id string) (*tasks.Result, error) {
	for ev, err := range c.Follow(ctx, id, "") {
		if err != nil {
			return nil, err
		}
		if ev.Type == tasks.EventExit {
			break
		}
	}
	res, err := outlast(ctx, c, func() (*tasks.Result, error) { return c.store.Result(ctx, id) })
	if err != nil {
		return nil, fmt.Errorf("read result of %s: %w", id, err)
	}
	return res, nil
}

// Follow yields the execution's events from after the entry ID from ("" or
// "0" for the start), as they are written, up to and including its exit
// event. Every execution gets one: the workers also end, with a "canceled"
// or "error" result, executions whose task left its queue without one. To resume, pass the ID of the last event seen. It is a deliberate
// wait, as long as the execution takes, and ends with ctx (yielding its
// error). When the stream has expired but the result is kept, a single exit
// event made from the result is yielded.
func (c *Client) Follow(ctx context.Context, id, from string) iter.Seq2[tasks.Event, error] {
	return func(yield func(tasks.Event, error) bool) {
		after := from
		if after == "" {
			after = "0"
		}
		checked := false
		for {
			if err := ctx.Err(); err != nil {
				yield(tasks.Event{}, err)
				return
			}
			events, err := outlast(ctx, c, func() ([]tasks.Event, error) {
				return c.store.ReadEvents(ctx, id, after, 512, readBlock)
			})
			if err != nil {
				yield(tasks.Event{}, err)
				return
			}
			for _, ev := range events {
				if !yield(ev, nil) || ev.Type == tasks.EventExit {
					return
				}
				after = ev.ID
			}
			if len(events) > 0 {
				continue
			}
			if !checked {
				// Nothing yet: make sure there is something to wait for.
				checked = true
				if ev, ok, err := c.exitFromResult(ctx, id); err != nil || ok {
					yield(ev, err)
					return
				}
				if err := c.exists(ctx, id); err != nil {
					yield(tasks.Event{}, err)
					return
				}
			}
		}
	}
}

// exitFromResult makes an exit event from a result whose stream is gone.
func (c *Client) exitFromResult(ctx context.Context, id string) (tasks.Event, bool, error) {
	if ok, err := c.store.StreamExists(ctx, id); err != nil || ok {
		return tasks.Event{}, false, err
	}
	res, err := c.store.Result(ctx, id)
	if errors.Is(err, rdb.ErrNotFound) {
		return tasks.Event{}, false, nil
	}
	if err != nil {
		return tasks.Event{}, false, err
	}
	data, err := json.Marshal(tasks.ExitDataOf(res))
	if err != nil {
		return tasks.Event{}, false, err
	}
	return tasks.Event{Type: tasks.EventExit, Data: data}, true, nil
}
