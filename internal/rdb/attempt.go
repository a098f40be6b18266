package rdb

import (
	"context"
	"fmt"

	"github.com/execq/execq/tasks"
)

// Attempt writes what one attempt of an execution produces, fenced by its
// number: once a later attempt has started (the worker lost its lease and
// the execution was run again), or once the execution has its result, its
// writes are refused with ErrStaleAttempt and change nothing.
type Attempt struct {
	store *Store
	n     int
}

// Attempt returns the writer of attempt n (counted by NextAttempt).
func (s *Store) Attempt(n int) Attempt { return Attempt{store: s, n: n} }

// AppendEvents appends entries to the execution's stream in one round trip
// and (re)sets its expiry, unless the attempt is stale.
func (a Attempt) AppendEvents(ctx context.Context, id string, entries ...Entry) error {
	if len(entries) == 0 {
		return nil
	}
	s := a.store
	args := make([]any, 0, 2+2*len(entries))
	args = append(args, a.n, s.retention.Milliseconds())
	for _, e := range entries {
		args = append(args, string(e.Type), e.Data)
	}
	keys := []string{s.keys.Stream(id), s.keys.Attempts(id), s.keys.Result(id)}
	n, err := appendAttemptScript.Run(ctx, s.client, keys, args...).Int()
	if err != nil {
		return fmt.Errorf("append %d events of attempt %d to %s: %w", len(entries), a.n, keys[0], err)
	}
	if n != 1 {
		return fmt.Errorf("append %d events of attempt %d to %s: %w", len(entries), a.n, keys[0], ErrStaleAttempt)
	}
	return nil
}

// Finalize is Store.Finalize for a result of this attempt: refused with
// ErrStaleAttempt when a later attempt has started.
func (a Attempt) Finalize(ctx context.Context, res *tasks.Result) (bool, error) {
	return a.store.finalize(ctx, res, a.n)
}
