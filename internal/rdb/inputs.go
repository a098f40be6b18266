package rdb

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/redis/go-redis/v9"
)

// PutInputs stores inputs, by field of tasks.Keys.Input, beside the task of
// id, for the retention period, in one transaction: all of them or none.
// It reports false, and stores nothing, when id has its result (whose write
// deleted them): nothing would read them.
//
// A transaction rather than a script: Redis copies a script's arguments
// into Lua first, which triples the cost of a large input.
func (s *Store) PutInputs(ctx context.Context, id string, inputs map[string][]byte) (bool, error) {
	fields := make([]string, 0, len(inputs))
	for f := range inputs {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	values := make([]any, 0, 2*len(inputs))
	for _, f := range fields {
		values = append(values, f, inputs[f])
	}
	key, result := s.keys.Input(id), s.keys.Result(id)
	stored := false
	err := s.client.Watch(ctx, func(tx *redis.Tx) error {
		done, err := tx.Exists(ctx, result).Result()
		if err != nil || done == 1 {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, values...)
			p.PExpire(ctx, key, s.retention)
			return nil
		})
		stored = err == nil
		return err
	}, result)
	if errors.Is(err, redis.TxFailedErr) {
		// The result came meanwhile.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store the inputs of %s: %w", id, err)
	}
	return stored, nil
}

// Inputs reads fields of the inputs stored beside the task of id, in one
// round trip. A field that is not there (expired, deleted) is absent from
// the map.
func (s *Store) Inputs(ctx context.Context, id string, fields []string) (map[string][]byte, error) {
	vals, err := s.client.HMGet(ctx, s.keys.Input(id), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read the inputs of %s: %w", id, err)
	}
	out := make(map[string][]byte, len(vals))
	for i, v := range vals {
		if str, ok := v.(string); ok {
			out[fields[i]] = []byte(str)
		}
	}
	return out, nil
}
