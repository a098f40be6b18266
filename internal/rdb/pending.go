package rdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Binding is what an execution ID is bound to.
type Binding struct {
	Queue  string
	Digest string // "" for a binding made without one
	// Created: this call made the binding; the ID was not bound before.
	Created bool
}

// BindRequest binds id to queue, the digest of its request and its owner
// ("" for none), unless it is bound already, and returns what id is bound
// to: a binding that differs from the arguments means the ID was used
// before. The owner, where given, is kept under Keys.Owner for the
// retention period, and as long as the execution's result.
func (s *Store) BindRequest(ctx context.Context, id, queue, digest, owner string) (Binding, error) {
	keys := []string{s.keys.Queue(id), s.keys.Request(id), s.keys.Owner(id)}
	got, err := bindScript.Run(ctx, s.client, keys, queue, digest, s.retention.Milliseconds(), owner).Slice()
	if err != nil {
		return Binding{}, fmt.Errorf("bind %s: %w", id, err)
	}
	if len(got) != 3 {
		return Binding{}, fmt.Errorf("bind %s: unexpected reply %q", id, got)
	}
	q, _ := got[0].(string)
	d, _ := got[1].(string)
	created, _ := got[2].(int64)
	return Binding{Queue: q, Digest: d, Created: created == 1}, nil
}

// AddPending records that id was enqueued at at and has no result yet.
func (s *Store) AddPending(ctx context.Context, id string, at time.Time) error {
	if err := s.client.ZAdd(ctx, s.keys.Pending(), redis.Z{Score: float64(at.UnixMilli()), Member: id}).Err(); err != nil {
		return fmt.Errorf("record %s as pending: %w", id, err)
	}
	return nil
}

// PendingBefore returns up to n executions recorded as pending before
// cutoff, oldest first, skipping the first offset.
func (s *Store) PendingBefore(ctx context.Context, cutoff time.Time, offset, n int64) ([]string, error) {
	ids, err := s.client.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: s.keys.Pending(), Start: "-inf", Stop: strconv.FormatInt(cutoff.UnixMilli(), 10),
		ByScore: true, Offset: offset, Count: n,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("read pending executions: %w", err)
	}
	return ids, nil
}

// RemovePending forgets that ids are pending.
func (s *Store) RemovePending(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.client.ZRem(ctx, s.keys.Pending(), members...).Err(); err != nil {
		return fmt.Errorf("forget pending executions: %w", err)
	}
	return nil
}

// TaskState is where a pending execution stands.
type TaskState struct {
	// HasResult: the execution is finished.
	HasResult bool
	// Queue is the queue it was submitted to ("" when unknown).
	Queue string
	// State is its asynq task's state ("pending", "active", "archived", …),
	// or "" when the task is gone from its queue.
	State string
}

// TaskStates reads, in two round trips, where each of ids stands.
func (s *Store) TaskStates(ctx context.Context, ids []string) (map[string]TaskState, error) {
	results := make([]*redis.IntCmd, len(ids))
	queues := make([]*redis.StringCmd, len(ids))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			results[i] = p.Exists(ctx, s.keys.Result(id))
			queues[i] = p.Get(ctx, s.keys.Queue(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read pending executions' results: %w", err)
	}
	out := make(map[string]TaskState, len(ids))
	states := map[string]*redis.StringCmd{}
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			st := TaskState{HasResult: results[i].Val() == 1, Queue: queues[i].Val()}
			out[id] = st
			if !st.HasResult && st.Queue != "" {
				states[id] = p.HGet(ctx, asynqQueueKey(st.Queue, "t:"+id), "state")
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read pending executions' tasks: %w", err)
	}
	for id, cmd := range states {
		st := out[id]
		st.State = cmd.Val()
		out[id] = st
	}
	return out, nil
}

// TryLock takes the lock key for holder for ttl, unless another holds it.
func (s *Store) TryLock(ctx context.Context, key, holder string, ttl time.Duration) (bool, error) {
	ok, err := s.client.SetNX(ctx, key, holder, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("take %s: %w", key, err)
	}
	return ok, nil
}

// Unlock releases the lock key if holder holds it.
func (s *Store) Unlock(ctx context.Context, key, holder string) error {
	if err := unlockScript.Run(ctx, s.client, []string{key}, holder).Err(); err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return nil
}
