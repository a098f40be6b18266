package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// LargeInput is `cat >/dev/null` given a large stdin: what the input costs
// between Submit and the command, and what its task keeps in Redis.
type LargeInput struct {
	StdinBytes int64 `json:"stdinBytes"`
	// Submit is the Submit call alone.
	Submit Latency `json:"submit"`
	// PickUp is Submit to the attempt's start (the result's StartedAt);
	// Queued is the result's QueuedMs (submission to the handler).
	PickUp Latency `json:"pickUp"`
	Queued Latency `json:"queued"`
	// SubmitWait is Submit to Wait's return.
	SubmitWait Latency `json:"submitWait"`
	// AsynqTaskBytes is MEMORY USAGE of the finished execution's asynq
	// task hash, which asynq keeps for the retention period.
	AsynqTaskBytes int64 `json:"asynqTaskBytes"`
}

func (r *Report) runLargeInputs(ctx context.Context, client *producer.Client, redisSrv *harness.RedisServer, cfg Config) error {
	for _, size := range cfg.InputSizes {
		stdin := make([]byte, size)
		_, _ = rand.Read(stdin)
		fig := LargeInput{StdinBytes: size}
		var submits, pickUps, queued, waits []time.Duration
		var lastID string
		for i := range cfg.InputSamples + 1 {
			t := time.Now()
			id, err := client.Submit(ctx, tasks.ExecRequest{Cmd: []string{"sh", "-c", "cat >/dev/null"}, Stdin: stdin, Timeout: time.Minute})
			if err != nil {
				return err
			}
			submitted := time.Since(t)
			res, err := client.Wait(ctx, id)
			if err != nil {
				return err
			}
			waited := time.Since(t)
			if res.Status != tasks.StatusSucceeded {
				return fmt.Errorf("cat of %d bytes ended %s: %s", size, res.Status, res.Error)
			}
			if i == 0 {
				continue // warm-up
			}
			submits = append(submits, submitted)
			pickUps = append(pickUps, res.StartedAt.Sub(t))
			queued = append(queued, time.Duration(res.QueuedMs)*time.Millisecond)
			waits = append(waits, waited)
			lastID = id
		}
		fig.Submit, fig.PickUp, fig.Queued, fig.SubmitWait = summarize(submits), summarize(pickUps), summarize(queued), summarize(waits)
		key := "asynq:{default}:t:" + lastID
		// Wait returns before asynq records the task completed, with its
		// result: the hash as asynq keeps it is measured.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if state, _ := redisSrv.Client.HGet(ctx, key, "state").Result(); state == "completed" {
				break
			}
		}
		n, err := redisSrv.Client.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			return fmt.Errorf("memory usage of the task: %w", err)
		}
		fig.AsynqTaskBytes = n
		r.LargeInputs = append(r.LargeInputs, fig)
	}
	return nil
}

func (r *Report) markdownLargeInputs(p func(format string, args ...any)) {
	if len(r.LargeInputs) == 0 {
		return
	}
	p("\n| `cat >/dev/null` with a large stdin (%s runtime) | n | Submit p50 | Submit → attempt start p50 / p90 | queuedMs p50 | Submit→Wait p50 / p90 | asynq task hash (MEMORY USAGE) |\n|---|---|---|---|---|---|---|\n", r.defaultRuntime())
	for _, in := range r.LargeInputs {
		p("| %s of stdin | %d | %.1f ms | %.1f ms / %.1f ms | %.0f ms | %.1f ms / %.1f ms | %s |\n",
			humanBytes(in.StdinBytes), in.SubmitWait.N, in.Submit.P50, in.PickUp.P50, in.PickUp.P90, in.Queued.P50,
			in.SubmitWait.P50, in.SubmitWait.P90, humanBytes(in.AsynqTaskBytes))
	}
}
