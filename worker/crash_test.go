package worker_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/testutil"
)

// The child process of claimedByACrashedWorker is this test binary, run
// with these variables set, which run TestCrashingWorkerProcess only.
const (
	crashRedisEnv = "EXECQ_TEST_CRASHING_WORKER_REDIS"
	crashQueueEnv = "EXECQ_TEST_CRASHING_WORKER_QUEUE"
	claimedPrefix = "claimed "
)

// claimedByACrashedWorker has a real asynq server claim the next task of
// queue on the Redis at addr, in a child process that it then SIGKILLs:
// the task is left active, with the lease that server took and nobody
// renews, as after a worker's crash. It returns the task's ID and when
// its lease expires.
func claimedByACrashedWorker(t *testing.T, client *redis.Client, addr, queue string) (string, time.Time) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashingWorkerProcess$")
	cmd.Env = append(os.Environ(), crashRedisEnv+"="+addr, crashQueueEnv+"="+queue)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(kill)
	claimed := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), claimedPrefix); ok {
				claimed <- id
				return
			}
		}
		close(claimed)
	}()
	var id string
	select {
	case got, ok := <-claimed:
		if !ok {
			t.Fatal("the crashing worker exited without claiming a task")
		}
		id = got
	case <-time.After(30 * time.Second):
		t.Fatal("the crashing worker claimed no task within 30s")
	}
	kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := client.ZScore(ctx, "asynq:{"+queue+"}:lease", id).Result()
	if err != nil {
		t.Fatalf("the lease of %s, claimed by the crashed worker: %v", id, err)
	}
	info, err := asynq.NewInspectorFromRedisClient(client).GetTaskInfo(queue, id)
	if err != nil || info.State != asynq.TaskStateActive {
		t.Fatalf("the task %s the crashed worker claimed: %+v, %v; want it active", id, info, err)
	}
	return id, time.Unix(int64(lease), 0)
}

// TestCrashingWorkerProcess is the child process of claimedByACrashedWorker,
// and does nothing in a test run: a real asynq server claims a task, the
// process says so on stdout, and holds it until it is killed.
func TestCrashingWorkerProcess(t *testing.T) {
	addr, queue := os.Getenv(crashRedisEnv), os.Getenv(crashQueueEnv)
	if addr == "" {
		return
	}
	fmt.Println(claimedPrefix + testutil.ClaimTask(t, addr, queue))
	select {}
}
