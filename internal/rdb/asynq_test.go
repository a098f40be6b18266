package rdb_test

import (
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/tasks"
)

// claim does to a pending task what asynq's dequeue script (v0.26) does:
// move it to active and give it a lease until leaseUntil.
func (b *testBundle) claim(t *testing.T, queue string, leaseUntil time.Time) string {
	t.Helper()
	id, err := b.client.LMove(b.ctx, "asynq:{"+queue+"}:pending", "asynq:{"+queue+"}:active", "RIGHT", "LEFT").Result()
	if err != nil {
		t.Fatalf("claim a task of %s: %v", queue, err)
	}
	if err := b.client.HSet(b.ctx, "asynq:{"+queue+"}:t:"+id, "state", "active").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.client.ZAdd(b.ctx, "asynq:{"+queue+"}:lease", redisZ(leaseUntil, id)).Err(); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRequeueExpired(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := asynq.NewClientFromRedisClient(b.client)
	for _, id := range []string{"expired", "live", "elsewhere"} {
		if _, err := client.Enqueue(asynq.NewTask(tasks.TypeExec, nil, asynq.TaskID(id), asynq.Queue("q"))); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	expired := b.claim(t, "q", now.Add(-time.Minute))
	live := b.claim(t, "q", now.Add(time.Minute))
	gone := b.claim(t, "q", now.Add(-time.Minute))
	// Its worker (or asynq's recoverer) got to it first: no longer active.
	if err := b.client.LRem(b.ctx, "asynq:{q}:active", 0, gone).Err(); err != nil {
		t.Fatal(err)
	}

	ids, err := b.store.RequeueExpired(b.ctx, "q", now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{expired}) {
		t.Fatalf("requeued %v, want [%s]", ids, expired)
	}
	// asynq itself sees the task as pending again, and the live one active.
	inspector := asynq.NewInspectorFromRedisClient(b.client)
	for id, want := range map[string]asynq.TaskState{expired: asynq.TaskStatePending, live: asynq.TaskStateActive} {
		info, err := inspector.GetTaskInfo("q", id)
		if err != nil {
			t.Fatal(err)
		}
		if info.State != want {
			t.Errorf("task %s is %s, want %s", id, info.State, want)
		}
	}
	pending, err := inspector.ListPendingTasks("q")
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].ID != expired {
		t.Errorf("%d pending tasks, want only %s", len(pending), expired)
	}
	if n, err := b.client.ZScore(b.ctx, "asynq:{q}:lease", expired).Result(); err == nil {
		t.Errorf("the requeued task still has a lease (%v)", n)
	}
	if active, err := b.client.LRange(b.ctx, "asynq:{q}:active", 0, -1).Result(); err != nil || !slices.Equal(active, []string{live}) {
		t.Errorf("active %v, %v; want [%s]", active, err, live)
	}

	// A second pass finds nothing more to do.
	if ids, err := b.store.RequeueExpired(b.ctx, "q", now); err != nil || len(ids) != 0 {
		t.Errorf("second pass requeued %v, %v; want nothing", ids, err)
	}
	// A queue nobody used is no error.
	if ids, err := b.store.RequeueExpired(b.ctx, "unused", now); err != nil || len(ids) != 0 {
		t.Errorf("unused queue: %v, %v", ids, err)
	}
}

func redisZ(score time.Time, member string) redis.Z {
	return redis.Z{Score: float64(score.Unix()), Member: member}
}
