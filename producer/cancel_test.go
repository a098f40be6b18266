package producer_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// A Redis that refuses a write, as it does past maxmemory or on a replica.
const refusal = "OOM command not allowed when used memory > 'maxmemory'."

// refuser fails the next command that names its key, once armed.
type refuser struct {
	mu  sync.Mutex
	key string
}

func (r *refuser) arm(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.key = key
}

func (r *refuser) take(cmd redis.Cmder) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.key == "" || !slices.Contains(cmd.Args(), any(r.key)) {
		return false
	}
	r.key = ""
	return true
}

func (r *refuser) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *refuser) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if r.take(cmd) {
			err := errors.New(refusal)
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (r *refuser) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

type cancelBundle struct {
	mr      *miniredis.Miniredis
	client  *producer.Client
	store   *rdb.Store
	insp    *asynq.Inspector
	refuser *refuser
	ctx     context.Context
}

// setupCancel is a producer on miniredis with no worker: what it submits
// stays pending unless the test claims it.
func setupCancel(t *testing.T) *cancelBundle {
	t.Helper()
	mr := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rc.Close() })
	b := &cancelBundle{
		mr:      mr,
		client:  producer.New(rc, producer.Options{}),
		store:   rdb.New(rc, tasks.Keys{}, 0),
		insp:    asynq.NewInspectorFromRedisClient(rc),
		refuser: &refuser{},
		ctx:     testutil.Context(t, time.Minute),
	}
	rc.AddHook(b.refuser)
	return b
}

func (b *cancelBundle) submit(t *testing.T) string {
	t.Helper()
	id, err := b.client.Submit(b.ctx, tasks.ExecRequest{Cmd: []string{"echo", "never"}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (b *cancelBundle) canceled(t *testing.T, id string) bool {
	t.Helper()
	ok, err := b.store.Canceled(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestCancelQueued(t *testing.T) {
	t.Parallel()
	b := setupCancel(t)
	id := b.submit(t)
	if err := b.client.Cancel(b.ctx, id); err != nil {
		t.Fatalf("cancel a queued execution: %v", err)
	}
	res, err := b.client.Result(b.ctx, id)
	if err != nil || res.Status != tasks.StatusCanceled {
		t.Fatalf("result %+v, %v; want canceled", res, err)
	}
	if _, err := b.insp.GetTaskInfo("default", id); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("the task is still in its queue (%v)", err)
	}
	if err := b.client.Cancel(b.ctx, id); !errors.Is(err, producer.ErrFinished) {
		t.Errorf("a second cancel: %v, want ErrFinished", err)
	}
	if err := b.client.Cancel(b.ctx, "never-submitted"); !errors.Is(err, producer.ErrNotFound) {
		t.Errorf("cancel of an unknown ID: %v, want ErrNotFound", err)
	}
}

// A running execution cannot be removed from its queue: Cancel records
// the cancel, which its worker acts on, and stores no result itself.
func TestCancelRunning(t *testing.T) {
	t.Parallel()
	b := setupCancel(t)
	id := b.submit(t)
	if claimed := testutil.ClaimTask(t, b.mr.Addr(), "default"); claimed != id {
		t.Fatalf("claimed %s, want %s", claimed, id)
	}
	if err := b.client.Cancel(b.ctx, id); err != nil {
		t.Fatalf("cancel a running execution: %v", err)
	}
	if !b.canceled(t, id) {
		t.Error("the cancel is not recorded")
	}
	if _, err := b.client.Result(b.ctx, id); !errors.Is(err, producer.ErrNoResult) {
		t.Errorf("result of a running execution after its cancel: %v, want none yet (its worker writes it)", err)
	}
	if info, err := b.insp.GetTaskInfo("default", id); err != nil || info.State != asynq.TaskStateActive {
		t.Errorf("the task: %+v, %v; want it still active", info, err)
	}
}

// When Redis refuses the removal of the task, Cancel says so: the
// execution is not canceled, whatever state its task is in.
func TestCancelReturnsRedisErrors(t *testing.T) {
	t.Parallel()
	for _, state := range []asynq.TaskState{asynq.TaskStatePending, asynq.TaskStateArchived} {
		t.Run(state.String(), func(t *testing.T) {
			t.Parallel()
			b := setupCancel(t)
			id := b.submit(t)
			if state == asynq.TaskStateArchived {
				// As an operator does from the dashboard.
				if err := b.insp.ArchiveTask("default", id); err != nil {
					t.Fatal(err)
				}
			}
			b.refuser.arm("asynq:{default}:t:" + id)
			err := b.client.Cancel(b.ctx, id)
			if err == nil || !strings.Contains(err.Error(), refusal) ||
				!strings.Contains(err.Error(), "cancel "+id+": remove it from queue") {
				t.Fatalf("cancel while Redis refuses the task's removal: %v; want the refusal, saying what was being done", err)
			}
			if errors.Is(err, producer.ErrNotFound) || errors.Is(err, producer.ErrFinished) {
				t.Errorf("the refusal reads as %v", err)
			}
			if _, err := b.client.Result(b.ctx, id); !errors.Is(err, producer.ErrNoResult) {
				t.Errorf("result after the failed cancel: %v, want none", err)
			}
			if info, err := b.insp.GetTaskInfo("default", id); err != nil || info.State != state {
				t.Errorf("the task after the failed cancel: %+v, %v; want it still %s", info, err, state)
			}
		})
	}
}

// Every other failure of Redis is returned too, saying what was being
// done.
func TestCancelWhileRedisFails(t *testing.T) {
	t.Parallel()
	b := setupCancel(t)
	id := b.submit(t)
	b.mr.SetError("LOADING Redis is loading the dataset in memory")
	err := b.client.Cancel(b.ctx, id)
	b.mr.SetError("")
	if err == nil || !strings.Contains(err.Error(), "cancel "+id+": check result") || !strings.Contains(err.Error(), "LOADING") {
		t.Errorf("cancel while Redis fails: %v", err)
	}
	if b.canceled(t, id) {
		t.Error("the cancel is recorded although Cancel failed before recording it")
	}
}
