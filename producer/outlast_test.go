//go:build integration

package producer_test

import (
	"context"
	"testing"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// Wait reads through a Redis that goes away and comes back (a restart, a
// failover) and returns the result written meanwhile; with Outlast
// negative, it returns the first error.
func TestWaitOutlastsARedisRestart(t *testing.T) {
	t.Parallel()
	r := testutil.StartRedisWith(t, testutil.RedisOptions{AOF: true})
	rc := r.Client
	ctx := testutil.Context(t, time.Minute)
	store := rdb.New(rc, tasks.Keys{}, 0)
	p := producer.New(rc, producer.Options{})
	impatient := producer.New(rc, producer.Options{Outlast: -1})
	id, err := p.Submit(ctx, tasks.ExecRequest{Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		res, err := p.Wait(ctx, id)
		if err == nil && res.Status != tasks.StatusSucceeded {
			err = context.Canceled
		}
		waited <- err
	}()
	<-started
	r.Stop()
	if _, err := impatient.Wait(ctx, id); err == nil {
		t.Error("with Outlast negative, Wait through a Redis that is down returned no error")
	}
	r.Start(t)
	if _, err := store.Finalize(ctx, &tasks.Result{ExecutionID: id, Status: tasks.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Errorf("Wait across the restart: %v", err)
	}
}
