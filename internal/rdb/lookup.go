package rdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/tasks"
)

// Execution is what a front end reads of an execution to answer for it:
// whether it exists, whose it is, its result and how far it got.
type Execution struct {
	// Known: the execution was submitted within the retention period (its
	// queue binding, its stream or its result is kept).
	Known bool
	// Owner is the owner it was submitted with ("" for none).
	Owner string
	// Result is the stored result JSON, nil while it has none.
	Result []byte
	// Attempts is the number of attempts that started it.
	Attempts int
	// Stream: the execution has a stream.
	Stream bool
	// LastEventID is the ID of the stream's last entry ("0" for none),
	// read before the result: an exit event written after it is either in
	// Result or comes after LastEventID.
	LastEventID string
}

// Lookup reads, in one round trip, what Execution holds of id.
func (s *Store) Lookup(ctx context.Context, id string) (Execution, error) {
	var queue, owner, result, attempts *redis.StringCmd
	var stream *redis.IntCmd
	var last *redis.XMessageSliceCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		// In this order: the last entry before the result.
		last = p.XRevRangeN(ctx, s.keys.Stream(id), "+", "-", 1)
		queue = p.Get(ctx, s.keys.Queue(id))
		owner = p.Get(ctx, s.keys.Owner(id))
		result = p.Get(ctx, s.keys.Result(id))
		attempts = p.Get(ctx, s.keys.Attempts(id))
		stream = p.Exists(ctx, s.keys.Stream(id))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Execution{}, fmt.Errorf("look up %s: %w", id, err)
	}
	e := Execution{Owner: owner.Val(), Stream: stream.Val() == 1, LastEventID: "0"}
	if msgs := last.Val(); len(msgs) > 0 {
		e.LastEventID = msgs[0].ID
	}
	if b, err := result.Bytes(); err == nil {
		e.Result = b
	}
	e.Attempts, _ = strconv.Atoi(attempts.Val())
	e.Known = queue.Err() == nil || e.Result != nil || e.Stream
	return e, nil
}

// EventsAfter returns up to count events of id after the entry ID after
// ("" or "0" for the start), without waiting.
func (s *Store) EventsAfter(ctx context.Context, id, after string, count int64) ([]tasks.Event, error) {
	start := "-"
	if after != "" && after != "0" && after != "0-0" {
		start = "(" + after
	}
	msgs, err := s.client.XRangeN(ctx, s.keys.Stream(id), start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("read events of %s after %s: %w", id, after, err)
	}
	events := make([]tasks.Event, 0, len(msgs))
	for _, m := range msgs {
		events = append(events, eventOf(m))
	}
	return events, nil
}

// StreamReader is the one command ReadStreams sends: a dedicated
// connection's (*redis.Conn, or a *redis.Client of one connection).
type StreamReader interface {
	XRead(ctx context.Context, a *redis.XReadArgs) *redis.XStreamSliceCmd
}

// ReadStreams reads, on conn, the events of many executions at once: for
// each ID of after, up to count events after its entry ID, waiting up to
// block for the first of any. It is XREAD BLOCK over the executions'
// streams, for a reader that holds a connection of its own (a blocked
// XREAD holds its connection); every key must be served by conn's server.
// It returns nothing and no error when block passes quietly, or when the
// read is unblocked (CLIENT UNBLOCK) before it.
func (s *Store) ReadStreams(ctx context.Context, conn StreamReader, after map[string]string, count int64, block time.Duration) (map[string][]tasks.Event, error) {
	if len(after) == 0 {
		return nil, nil
	}
	streams := make([]string, 0, 2*len(after))
	ids := make(map[string]string, len(after))
	for id := range after {
		key := s.keys.Stream(id)
		ids[key] = id
		streams = append(streams, key)
	}
	for _, key := range streams[:len(after)] {
		from := after[ids[key]]
		if from == "" {
			from = "0"
		}
		streams = append(streams, from)
	}
	if block < time.Millisecond {
		block = -1
	}
	got, err := conn.XRead(ctx, &redis.XReadArgs{Streams: streams, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the streams of %d executions: %w", len(after), err)
	}
	out := make(map[string][]tasks.Event, len(got))
	for _, st := range got {
		id, ok := ids[st.Stream]
		if !ok {
			continue
		}
		events := make([]tasks.Event, 0, len(st.Messages))
		for _, m := range st.Messages {
			events = append(events, eventOf(m))
		}
		out[id] = events
	}
	return out, nil
}

// Unblock ends the blocking command of the connection clientID (CLIENT
// ID) as if it had timed out, and reports whether one was blocked.
func (s *Store) Unblock(ctx context.Context, clientID int64) (bool, error) {
	n, err := s.client.ClientUnblock(ctx, clientID).Result()
	if err != nil {
		return false, fmt.Errorf("unblock client %d: %w", clientID, err)
	}
	return n == 1, nil
}
