package rdb

import (
	"bytes"
	"context"
	"encoding/json"
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

// Attempt returns the writer of attempt n (counted by NextAttempt or
// BeginAttempt).
func (s *Store) Attempt(n int) Attempt { return Attempt{store: s, n: n} }

// startedPrefix is how the JSON of a tasks.StartedData of attempt 0
// begins; BeginAttempt's script writes the attempt's number in its place.
const startedPrefix = `{"attempt":0,`

// BeginAttempt counts one more attempt at id and appends its started event
// (started, whose Attempt it sets), in one round trip. It returns the
// attempt's number; past max the attempt is counted and no event is
// appended. An execution that has its result gets ErrStaleAttempt, and
// nothing is counted.
func (s *Store) BeginAttempt(ctx context.Context, id string, max int, started tasks.StartedData) (int, error) {
	started.Attempt = 0
	data, err := json.Marshal(started)
	if err != nil {
		return 0, fmt.Errorf("encode the started event of %s: %w", id, err)
	}
	rest, ok := bytes.CutPrefix(data, []byte(startedPrefix))
	if !ok {
		return 0, fmt.Errorf("encode the started event of %s: %s does not begin with %s", id, data, startedPrefix)
	}
	keys := []string{s.keys.Attempts(id), s.keys.Stream(id), s.keys.Result(id)}
	n, err := beginAttemptScript.Run(ctx, s.client, keys, s.retention.Milliseconds(), max, string(tasks.EventStarted), rest).Int()
	if err != nil {
		return 0, fmt.Errorf("begin an attempt at %s: %w", id, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("begin an attempt at %s: %w", id, ErrStaleAttempt)
	}
	return n, nil
}

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
// ErrStaleAttempt when a later attempt has started. Attempt 0 is no
// attempt: an execution that ends before one began. Where task is not nil,
// it is written with the executions log, in the same round trip.
func (a Attempt) Finalize(ctx context.Context, res *tasks.Result, task *TaskCopy) (bool, error) {
	return a.store.finalize(ctx, res, a.n, task)
}
