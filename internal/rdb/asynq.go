package rdb

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// asynq's Redis layout (v0.26), for the one operation execq performs on
// asynq's keys itself: requeueing the executions of a crashed worker.
func asynqQueueKey(queue, suffix string) string { return "asynq:{" + queue + "}:" + suffix }

// RequeueExpired moves the tasks of queue whose lease expired before
// cutoff from active back to pending, as asynq does for the tasks of a
// worker that shuts down, and returns their IDs.
//
// asynq itself recovers such tasks only once their lease has been expired
// for 30 s more, at a pass of its recoverer that runs every minute: 60 to
// 120 s after a crash. A lease expires 30 s after a live worker last
// extended it, so a task whose lease expired is one its worker has given
// up (a live worker cancels the handler when its lease expires); the
// caller adds a margin for clock skew.
func (s *Store) RequeueExpired(ctx context.Context, queue string, cutoff time.Time) ([]string, error) {
	keys := []string{asynqQueueKey(queue, "active"), asynqQueueKey(queue, "lease"), asynqQueueKey(queue, "pending")}
	res, err := requeueExpiredScript.Run(ctx, s.client, keys,
		strconv.FormatInt(cutoff.Unix(), 10), asynqQueueKey(queue, "t:")).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("requeue expired tasks of %s: %w", queue, err)
	}
	return res, nil
}
