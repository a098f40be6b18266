//go:build chaos

package chaos_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/tasks"
)

// A thousand executions submitted at once to two workers sharing one
// Redis: each runs once and gets one result, and nothing is left behind.
func TestLoad(t *testing.T) {
	c := track(t, "load", false)
	e := newEnv(t)
	workers := []*workerProc{
		startWorker(t, e, workerOpts{label: "load-1", poolSize: 4}),
		startWorker(t, e, workerOpts{label: "load-2", poolSize: 4}),
	}
	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("load-%s-%04d", runID, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var (
		errMu      sync.Mutex
		submitErrs int
		firstErr   error
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				if _, err := e.prod.Submit(ctx, tasks.ExecRequest{ID: ids[i], Cmd: []string{"true"}, Timeout: time.Minute}); err != nil {
					errMu.Lock()
					submitErrs++
					firstErr = cmp.Or(firstErr, err)
					errMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	submitted := time.Since(start)
	if submitErrs > 0 {
		t.Fatalf("%d submits failed, the first: %v", submitErrs, firstErr)
	}

	results := waitResults(t, e, ids, start.Add(10*time.Minute))
	drain := time.Since(start)
	c.figure(t, "%d executions: submitted in %s, drained in %s (%.0f/s)", n, submitted.Round(time.Millisecond), drain.Round(time.Millisecond), n/drain.Seconds())

	statuses := map[tasks.Status]int{}
	perWorker := map[string]int{}
	var queued []int64
	for _, id := range ids {
		res, ok := results[id]
		if !ok {
			continue
		}
		statuses[res.Status]++
		perWorker[res.Worker]++
		queued = append(queued, res.QueuedMs)
		if res.Status != tasks.StatusSucceeded || res.Attempt != 1 || res.ExecutionID != id {
			t.Errorf("%s: status %s attempt %d id %s error %q", id, res.Status, res.Attempt, res.ExecutionID, res.Error)
		}
	}
	if len(results) != n {
		t.Errorf("%d of %d executions got a result within 10 minutes", len(results), n)
	}
	sort.Slice(queued, func(i, j int) bool { return queued[i] < queued[j] })
	if len(queued) > 0 {
		c.figure(t, "statuses %v; per worker %v; queued p50 %dms p99 %dms max %dms", statuses, perWorker,
			queued[len(queued)/2], queued[len(queued)*99/100], queued[len(queued)-1])
	}

	// Every stream: one started event, one exit event.
	starts, exits := streamCounts(t, e, ids)
	twice := 0
	for i, id := range ids {
		if starts[i] != 1 || exits[i] != 1 {
			twice++
			if twice <= 10 {
				t.Errorf("%s: %d started and %d exit events, want one each", id, starts[i], exits[i])
			}
		}
	}
	if twice > 0 {
		t.Errorf("%d streams without exactly one started and one exit event", twice)
	}

	// The workers still serve as if nothing had happened.
	e.followUp(t, c, "", "")

	// Both workers stop and leave no container behind.
	for _, w := range workers {
		if !w.Stop(time.Minute) {
			t.Errorf("%s did not stop within a minute of SIGTERM", w.name)
		}
		if left := ownedContainers(t, e.docker, w.name); len(left) > 0 {
			t.Errorf("%s left containers behind: %v", w.name, names(left))
		}
	}
}

// waitResults reads the results of ids until each has one or deadline
// passes.
func waitResults(t *testing.T, e *env, ids []string, deadline time.Time) map[string]*tasks.Result {
	t.Helper()
	results := make(map[string]*tasks.Result, len(ids))
	keys := tasks.Keys{}
	for len(results) < len(ids) && time.Now().Before(deadline) {
		var pending []string
		for _, id := range ids {
			if _, ok := results[id]; !ok {
				pending = append(pending, id)
			}
		}
		for lo := 0; lo < len(pending); lo += 200 {
			chunk := pending[lo:min(lo+200, len(pending))]
			rkeys := make([]string, len(chunk))
			for i, id := range chunk {
				rkeys[i] = keys.Result(id)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			vals, err := e.rc.MGet(ctx, rkeys...).Result()
			cancel()
			if err != nil {
				t.Fatalf("read results: %v", err)
			}
			for i, v := range vals {
				s, ok := v.(string)
				if !ok {
					continue
				}
				var res tasks.Result
				if err := json.Unmarshal([]byte(s), &res); err != nil {
					t.Fatalf("result of %s: %v", chunk[i], err)
				}
				results[chunk[i]] = &res
			}
		}
		if len(results) < len(ids) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	return results
}

// streamCounts counts the started and exit events of each stream.
func streamCounts(t *testing.T, e *env, ids []string) (starts, exits []int) {
	t.Helper()
	starts, exits = make([]int, len(ids)), make([]int, len(ids))
	keys := tasks.Keys{}
	for lo := 0; lo < len(ids); lo += 100 {
		hi := min(lo+100, len(ids))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmds := make([]*redis.XMessageSliceCmd, hi-lo)
		_, err := e.rc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := lo; i < hi; i++ {
				cmds[i-lo] = p.XRange(ctx, keys.Stream(ids[i]), "-", "+")
			}
			return nil
		})
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("read streams: %v", err)
		}
		for i, cmd := range cmds {
			for _, m := range cmd.Val() {
				switch m.Values[tasks.FieldType] {
				case string(tasks.EventStarted):
					starts[lo+i]++
				case string(tasks.EventExit):
					exits[lo+i]++
				}
			}
		}
	}
	return starts, exits
}
