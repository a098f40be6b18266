// Package rdb is the only code that reads or writes execq's own Redis keys
// (asynq keeps its own). Key names come from tasks.Keys; each Lua script is
// a documented variable in scripts.go.
package rdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/tasks"
)

// ErrNotFound is returned when a key the caller asked for does not exist.
var ErrNotFound = errors.New("not found")

// ErrStaleAttempt is returned for a write of an attempt that a later
// attempt has replaced, or whose execution has its result: a worker that
// lost its lease (cut off from Redis, paused) and came back.
var ErrStaleAttempt = errors.New("a later attempt runs this execution")

// Store reads and writes one deployment's execution keys.
type Store struct {
	client    redis.UniversalClient
	keys      tasks.Keys
	retention time.Duration
}

// New returns a Store on client. A zero retention means tasks.DefaultRetention;
// the shortest is a second.
func New(client redis.UniversalClient, keys tasks.Keys, retention time.Duration) *Store {
	switch {
	case retention <= 0:
		retention = tasks.DefaultRetention
	case retention < time.Second:
		retention = time.Second
	}
	return &Store{client: client, keys: keys, retention: retention}
}

// Keys are the key builders the store uses.
func (s *Store) Keys() tasks.Keys { return s.keys }

// Retention is how long the store keeps what it writes.
func (s *Store) Retention() time.Duration { return s.retention }

// Entry is an event to append; the stream assigns its ID.
type Entry struct {
	Type tasks.EventType
	Data []byte
}

// AppendEvents adds entries to the execution's stream in one round trip and
// (re)sets the stream's expiry.
func (s *Store) AppendEvents(ctx context.Context, id string, entries ...Entry) error {
	if len(entries) == 0 {
		return nil
	}
	key := s.keys.Stream(id)
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			p.XAdd(ctx, &redis.XAddArgs{
				Stream: key,
				Values: []any{tasks.FieldType, string(e.Type), tasks.FieldData, e.Data},
			})
		}
		p.PExpire(ctx, key, s.retention)
		return nil
	})
	if err != nil {
		return fmt.Errorf("append %d events to %s: %w", len(entries), key, err)
	}
	return nil
}

// Finalize stores res and appends the matching exit event, unless the
// execution already has a result, and deletes the inputs stored beside its
// task. It reports whether res was written: a result, once written, is
// never replaced. A written result is also recorded in the executions log
// (RecordFinished); when only that fails, Finalize reports the result
// written and a *NotRecordedError.
func (s *Store) Finalize(ctx context.Context, res *tasks.Result) (bool, error) {
	return s.finalize(ctx, res, 0, nil)
}

// finalize is Finalize, refused with ErrStaleAttempt when fence > 0 and a
// later attempt than fence has started, recording task with the executions
// log where it is not nil.
func (s *Store) finalize(ctx context.Context, res *tasks.Result, fence int, task *TaskCopy) (bool, error) {
	body, err := tasks.EncodeResult(res)
	if err != nil {
		return false, err
	}
	exit, err := json.Marshal(tasks.ExitDataOf(res))
	if err != nil {
		return false, fmt.Errorf("encode exit event of %s: %w", res.ExecutionID, err)
	}
	id := res.ExecutionID
	keys := []string{s.keys.Result(id), s.keys.Stream(id), s.keys.Input(id), s.keys.Queue(id), s.keys.Attempts(id), s.keys.Owner(id)}
	reply, err := finalizeScript.Run(ctx, s.client, keys, body, exit, s.retention.Milliseconds(), fence).Slice()
	if err != nil {
		return false, fmt.Errorf("store result of %s: %w", id, err)
	}
	if len(reply) != 2 {
		return false, fmt.Errorf("store result of %s: unexpected reply %v", id, reply)
	}
	switch n, _ := reply[0].(int64); n {
	case 1:
	case -1:
		return false, fmt.Errorf("store the result of attempt %d of %s: %w", fence, id, ErrStaleAttempt)
	default:
		return false, nil
	}
	queue, _ := reply[1].(string)
	if err := s.recordFinished(ctx, res, queue, task); err != nil {
		return true, &NotRecordedError{ID: id, Err: err}
	}
	return true, nil
}

// NotRecordedError says that a result was stored but not recorded in the
// executions log: the execution is finished; only the operators' view
// misses it.
type NotRecordedError struct {
	ID  string
	Err error
}

func (e *NotRecordedError) Error() string {
	return fmt.Sprintf("result of %s stored, but not recorded in the executions log: %v", e.ID, e.Err)
}

func (e *NotRecordedError) Unwrap() error { return e.Err }

// Settled reports, in one round trip, whether id has a result and whether
// it was canceled: what a worker checks before it runs an execution.
func (s *Store) Settled(ctx context.Context, id string) (done, canceled bool, err error) {
	var result, cancel *redis.IntCmd
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		result = p.Exists(ctx, s.keys.Result(id))
		cancel = p.Exists(ctx, s.keys.Cancel(id))
		return nil
	})
	if err != nil {
		return false, false, fmt.Errorf("check result and cancel of %s: %w", id, err)
	}
	return result.Val() == 1, cancel.Val() == 1, nil
}

// Result returns the stored result of id, or ErrNotFound.
func (s *Store) Result(ctx context.Context, id string) (*tasks.Result, error) {
	body, err := s.client.Get(ctx, s.keys.Result(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read result of %s: %w", id, err)
	}
	var res tasks.Result
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("decode result of %s: %w", id, err)
	}
	return &res, nil
}

// HasResult reports whether id has a result.
func (s *Store) HasResult(ctx context.Context, id string) (bool, error) {
	n, err := s.client.Exists(ctx, s.keys.Result(id)).Result()
	if err != nil {
		return false, fmt.Errorf("check result of %s: %w", id, err)
	}
	return n == 1, nil
}

// ReadEvents returns up to count events after the entry ID after ("0" for
// the start), waiting up to block for the first one. A deliberate wait: it
// lasts as long as the execution is silent, bounded by block. It returns no
// events and no error when block passes quietly.
func (s *Store) ReadEvents(ctx context.Context, id, after string, count int64, block time.Duration) ([]tasks.Event, error) {
	if after == "" {
		after = "0"
	}
	if block < time.Millisecond {
		// go-redis sends BLOCK 0, which waits forever, for 0; -1 sends none.
		block = -1
	}
	streams, err := s.client.XRead(ctx, &redis.XReadArgs{
		Streams: []string{s.keys.Stream(id), after},
		Count:   count,
		Block:   block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read events of %s after %s: %w", id, after, err)
	}
	var events []tasks.Event
	for _, st := range streams {
		for _, m := range st.Messages {
			events = append(events, eventOf(m))
		}
	}
	return events, nil
}

// Events returns the events of id between the entry IDs start and end
// ("-" and "+" for all), without waiting.
func (s *Store) Events(ctx context.Context, id, start, end string) ([]tasks.Event, error) {
	msgs, err := s.client.XRange(ctx, s.keys.Stream(id), start, end).Result()
	if err != nil {
		return nil, fmt.Errorf("read events of %s: %w", id, err)
	}
	events := make([]tasks.Event, 0, len(msgs))
	for _, m := range msgs {
		events = append(events, eventOf(m))
	}
	return events, nil
}

func eventOf(m redis.XMessage) tasks.Event {
	e := tasks.Event{ID: m.ID}
	if t, ok := m.Values[tasks.FieldType].(string); ok {
		e.Type = tasks.EventType(t)
	}
	if d, ok := m.Values[tasks.FieldData].(string); ok {
		e.Data = []byte(d)
	}
	return e
}

// StreamExists reports whether id has a stream.
func (s *Store) StreamExists(ctx context.Context, id string) (bool, error) {
	n, err := s.client.Exists(ctx, s.keys.Stream(id)).Result()
	if err != nil {
		return false, fmt.Errorf("check stream of %s: %w", id, err)
	}
	return n == 1, nil
}

// MarkCanceled records that id is canceled and announces it to the workers.
func (s *Store) MarkCanceled(ctx context.Context, id string) error {
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.keys.Cancel(id), time.Now().UTC().Format(time.RFC3339Nano), s.retention)
		p.Publish(ctx, s.keys.CancelChannel(), id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %s canceled: %w", id, err)
	}
	return nil
}

// Canceled reports whether id was canceled.
func (s *Store) Canceled(ctx context.Context, id string) (bool, error) {
	n, err := s.client.Exists(ctx, s.keys.Cancel(id)).Result()
	if err != nil {
		return false, fmt.Errorf("check cancel of %s: %w", id, err)
	}
	return n == 1, nil
}

// SubscribeCancels subscribes to cancel announcements; each message's
// payload is an execution ID.
func (s *Store) SubscribeCancels(ctx context.Context) *redis.PubSub {
	return s.client.Subscribe(ctx, s.keys.CancelChannel())
}

// NextAttempt counts one more attempt at id and returns its number.
func (s *Store) NextAttempt(ctx context.Context, id string) (int, error) {
	return s.incr(ctx, s.keys.Attempts(id))
}

// incr increments a counter kept for the retention period.
func (s *Store) incr(ctx context.Context, key string) (int, error) {
	var incr *redis.IntCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, key)
		p.PExpire(ctx, key, s.retention)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", key, err)
	}
	return int(incr.Val()), nil
}

// NextFailure counts one more infrastructure failure of id and returns the
// count.
func (s *Store) NextFailure(ctx context.Context, id string) (int, error) {
	return s.incr(ctx, s.keys.Failures(id))
}

// BindQueue records that id is submitted to queue, unless it already is
// bound. It returns the queue id is bound to, which differs from queue when
// the ID was used before on another queue.
func (s *Store) BindQueue(ctx context.Context, id, queue string) (string, error) {
	key := s.keys.Queue(id)
	set, err := s.client.SetNX(ctx, key, queue, s.retention).Result()
	if err != nil {
		return "", fmt.Errorf("bind %s to queue %s: %w", id, queue, err)
	}
	if set {
		return queue, nil
	}
	return s.Queue(ctx, id)
}

// Queue returns the queue id was submitted to, or ErrNotFound.
func (s *Store) Queue(ctx context.Context, id string) (string, error) {
	q, err := s.client.Get(ctx, s.keys.Queue(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read queue of %s: %w", id, err)
	}
	return q, nil
}

// workerMemory is how long a worker that stopped heartbeating is
// remembered, so that every host has the time to remove its containers.
const workerMemory = 24 * time.Hour

// Heartbeat records that worker is alive at now.
func (s *Store) Heartbeat(ctx context.Context, worker string, now time.Time) error {
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, s.keys.Workers(), redis.Z{Score: float64(now.Unix()), Member: worker})
		p.ZRemRangeByScore(ctx, s.keys.Workers(), "-inf", strconv.FormatInt(now.Add(-workerMemory).Unix(), 10))
		return nil
	})
	if err != nil {
		return fmt.Errorf("heartbeat of %s: %w", worker, err)
	}
	return nil
}

// WorkerAlive reports whether worker heartbeated at since or later. A
// worker this deployment does not know (another deployment's, on the same
// engine) counts as alive: it is not this deployment's to judge.
func (s *Store) WorkerAlive(ctx context.Context, worker string, since time.Time) (bool, error) {
	score, err := s.client.ZScore(ctx, s.keys.Workers(), worker).Result()
	if errors.Is(err, redis.Nil) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("check heartbeat of %s: %w", worker, err)
	}
	return !time.Unix(int64(score), 0).Before(since), nil
}

// ForgetWorker removes worker, at its clean shutdown.
func (s *Store) ForgetWorker(ctx context.Context, worker string) error {
	if err := s.client.ZRem(ctx, s.keys.Workers(), worker).Err(); err != nil {
		return fmt.Errorf("remove heartbeat of %s: %w", worker, err)
	}
	return nil
}
