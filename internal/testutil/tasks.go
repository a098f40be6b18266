package testutil

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// CountEvents counts the events of typ in a stream.
func CountEvents(events []tasks.Event, typ tasks.EventType) int {
	n := 0
	for _, ev := range events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// EnqueueRaw enqueues payload as an execution's task past the producer's
// checks, as a broken or hostile producer would: with task ID id, at most
// 3 retries, then opts. It binds the ID to the task's queue (opts'
// asynq.Queue, else "default"), so that a Wait finds the execution.
func EnqueueRaw(t testing.TB, client redis.UniversalClient, id string, payload []byte, opts ...asynq.Option) {
	t.Helper()
	queue := "default"
	for _, o := range opts {
		if o.Type() == asynq.QueueOpt {
			queue = o.Value().(string)
		}
	}
	opts = append([]asynq.Option{asynq.TaskID(id), asynq.MaxRetry(3)}, opts...)
	if _, err := asynq.NewClientFromRedisClient(client).Enqueue(asynq.NewTask(tasks.TypeExec, payload, opts...)); err != nil {
		t.Fatalf("enqueue %s: %v", id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rdb.New(client, tasks.Keys{}, 0).BindQueue(ctx, id, queue); err != nil {
		t.Fatalf("bind %s to queue %s: %v", id, queue, err)
	}
}

// ClaimTask has a real asynq server claim the next execution task of
// queue on the Redis at addr, and hold it: the task is active, under a
// lease the server renews, until the test ends. It returns the task's ID.
func ClaimTask(t testing.TB, addr, queue string) string {
	t.Helper()
	claimed := make(chan string, 1)
	release := make(chan struct{})
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{
		Concurrency:       1,
		Queues:            map[string]int{queue: 1},
		TaskCheckInterval: 10 * time.Millisecond,
		ShutdownTimeout:   time.Second,
		LogLevel:          asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeExec, func(ctx context.Context, task *asynq.Task) error {
		select {
		case claimed <- task.ResultWriter().TaskID():
		default:
		}
		<-release
		return errors.New("released at the end of the test")
	})
	if err := srv.Start(mux); err != nil {
		t.Fatalf("start an asynq server: %v", err)
	}
	t.Cleanup(func() {
		close(release)
		srv.Shutdown()
	})
	select {
	case id := <-claimed:
		return id
	case <-time.After(30 * time.Second):
		t.Fatalf("no task of queue %s claimed within 30s", queue)
		return ""
	}
}
