package rdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/tasks"
)

// Summary is what the executions log keeps of one ended execution.
type Summary struct {
	ID         string       `json:"executionId"`
	Status     tasks.Status `json:"status"`
	ExitCode   int          `json:"exitCode"`
	Queue      string       `json:"queue,omitempty"`
	Image      string       `json:"image,omitempty"`
	Worker     string       `json:"worker,omitempty"`
	DurationMs int64        `json:"duration"`
	QueuedMs   int64        `json:"queuedMs"`
	Attempt    int          `json:"attempt"`
	FinishedAt time.Time    `json:"finishedAt"`
	// Entry is the log entry's ID: listing from before it continues after
	// this summary.
	Entry string `json:"entry"`
}

// countsKept is how long a minute's status counts are kept.
const countsKept = 25 * time.Hour

// Fields of an entry of the executions log.
const (
	sumID       = "id"
	sumStatus   = "status"
	sumExit     = "exit"
	sumQueue    = "queue"
	sumImage    = "image"
	sumWorker   = "worker"
	sumDuration = "duration"
	sumQueued   = "queued"
	sumAttempt  = "attempt"
	sumFinished = "finished"
)

// RecordFinished adds res, an execution submitted to queue, to the
// executions log, counts its status in the minute it finished and forgets
// that it is pending (see AddPending), in one round trip. The log keeps
// about tasks.FinishedLength entries.
func (s *Store) RecordFinished(ctx context.Context, res *tasks.Result, queue string) error {
	return s.recordFinished(ctx, res, queue, nil)
}

// TaskCopy is the copy of a result that goes with its asynq task, which
// the dashboard shows: Body in the result field of the task's hash in
// Queue, written only while the task exists.
type TaskCopy struct {
	Queue string
	Body  []byte
}

// setTaskResult writes a task's result field while the task exists: a
// task deleted meanwhile gets no hash of a lone field, which nothing would
// ever remove.
const setTaskResult = `if redis.call("EXISTS", KEYS[1]) == 1 then redis.call("HSET", KEYS[1], "result", ARGV[1]) end return 0`

// recordFinished is RecordFinished, writing task in the same round trip
// where it is not nil.
func (s *Store) recordFinished(ctx context.Context, res *tasks.Result, queue string, task *TaskCopy) error {
	at := res.FinishedAt
	if at.IsZero() {
		at = time.Now()
	}
	counts := s.keys.StatusCounts(at.Unix() / 60)
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{
			Stream: s.keys.Finished(),
			MaxLen: tasks.FinishedLength,
			Approx: true,
			Values: []any{
				sumID, res.ExecutionID, sumStatus, string(res.Status), sumExit, res.ExitCode,
				sumQueue, queue, sumImage, res.Image, sumWorker, res.Worker,
				sumDuration, res.DurationMs, sumQueued, res.QueuedMs, sumAttempt, res.Attempt,
				sumFinished, at.UnixMilli(),
			},
		})
		p.HIncrBy(ctx, counts, string(res.Status), 1)
		p.PExpire(ctx, counts, countsKept)
		p.ZRem(ctx, s.keys.Pending(), res.ExecutionID)
		if task != nil {
			p.Eval(ctx, setTaskResult, []string{asynqQueueKey(task.Queue, "t:"+res.ExecutionID)}, task.Body)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record %s in the executions log: %w", res.ExecutionID, err)
	}
	return nil
}

// Finished returns up to n summaries of ended executions, newest first,
// from before the log entry before ("" for the newest).
func (s *Store) Finished(ctx context.Context, before string, n int64) ([]Summary, error) {
	stop := "+"
	if before != "" {
		stop = "(" + before
	}
	msgs, err := s.client.XRevRangeN(ctx, s.keys.Finished(), stop, "-", n).Result()
	if err != nil {
		return nil, fmt.Errorf("read the executions log: %w", err)
	}
	out := make([]Summary, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, summaryOf(m))
	}
	return out, nil
}

func summaryOf(m redis.XMessage) Summary {
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	num := func(k string) int64 { v, _ := strconv.ParseInt(str(k), 10, 64); return v }
	sum := Summary{
		ID: str(sumID), Status: tasks.Status(str(sumStatus)), ExitCode: int(num(sumExit)),
		Queue: str(sumQueue), Image: str(sumImage), Worker: str(sumWorker),
		DurationMs: num(sumDuration), QueuedMs: num(sumQueued), Attempt: int(num(sumAttempt)),
		Entry: m.ID,
	}
	if ms := num(sumFinished); ms > 0 {
		sum.FinishedAt = time.UnixMilli(ms).UTC()
	} else if ms, _, ok := strings.Cut(m.ID, "-"); ok {
		n, _ := strconv.ParseInt(ms, 10, 64)
		sum.FinishedAt = time.UnixMilli(n).UTC()
	}
	return sum
}

// MinuteCounts is how many executions ended with each status in one minute.
type MinuteCounts struct {
	Minute time.Time              `json:"minute"`
	Counts map[tasks.Status]int64 `json:"counts"`
}

// StatusCounts returns the counts of the minutes minutes up to and
// including the one of now, oldest first, in one round trip.
func (s *Store) StatusCounts(ctx context.Context, now time.Time, minutes int) ([]MinuteCounts, error) {
	last := now.Unix() / 60
	cmds := make([]*redis.MapStringStringCmd, minutes)
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.HGetAll(ctx, s.keys.StatusCounts(last-int64(minutes-1-i)))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read status counts: %w", err)
	}
	out := make([]MinuteCounts, minutes)
	for i, c := range cmds {
		m := MinuteCounts{Minute: time.Unix((last-int64(minutes-1-i))*60, 0).UTC(), Counts: map[tasks.Status]int64{}}
		for status, v := range c.Val() {
			n, _ := strconv.ParseInt(v, 10, 64)
			m.Counts[tasks.Status(status)] = n
		}
		out[i] = m
	}
	return out, nil
}

// Pending is an execution recorded as pending: enqueued, and not known to
// be finished.
type Pending struct {
	ID         string    `json:"executionId"`
	EnqueuedAt time.Time `json:"enqueuedAt"`
}

// PendingNewest returns up to n pending executions, newest first.
func (s *Store) PendingNewest(ctx context.Context, n int64) ([]Pending, error) {
	zs, err := s.client.ZRevRangeWithScores(ctx, s.keys.Pending(), 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read pending executions: %w", err)
	}
	out := make([]Pending, 0, len(zs))
	for _, z := range zs {
		id, _ := z.Member.(string)
		out = append(out, Pending{ID: id, EnqueuedAt: time.UnixMilli(int64(z.Score)).UTC()})
	}
	return out, nil
}
