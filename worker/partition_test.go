//go:build integration

package worker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// A worker on another "host" (its own network namespace, reaching Redis
// over a veth link) is cut off from Redis mid-execution. The execution is
// run again by another worker once the lease has passed; the cut-off
// worker stops its command when it can no longer renew; when the link
// heals, none of its stale output or result lands over the new attempt's
// (writes are fenced by attempt), and it rejoins and serves again.
func TestPartitionedWorkerIsFencedAndRejoins(t *testing.T) {
	cli := testutil.Docker(t)
	ctx := testutil.Context(t, 4*time.Minute)
	name := fmt.Sprintf("execq-part-%d", rand.IntN(1e6))
	ns, err := harness.NewNetns(ctx, name, 1000+rand.IntN(10000))
	if err != nil {
		testutil.Missing(t, "a network namespace (root and ip netns): %v", err)
	}
	t.Cleanup(ns.Close)
	srv, err := harness.StartRedis(ctx, harness.RedisConfig{Dir: t.TempDir(), Bind: []string{ns.HostIP}})
	if err != nil {
		testutil.Missing(t, "redis-server: %v", err)
	}
	t.Cleanup(srv.Close)

	exe := testutil.ExecqBinary(t)
	remoteName := "remote-" + name
	remote, err := harness.StartWorker(harness.WorkerConfig{
		Exe: exe, RedisURL: fmt.Sprintf("redis://%s:%s/0", ns.HostIP, strings.Split(srv.Addr, ":")[1]),
		Name: remoteName, LogPath: filepath.Join(t.TempDir(), "remote.log"), Wrap: ns.Wrap(),
		Args: []string{"--image", testutil.SandboxImage, "--agent", testutil.AgentBinary(t), "--queues", "default:1,remote:1"},
		Env:  []string{"EXECQ_REDIS_URL="},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		remote.Stop(20 * time.Second)
		if t.Failed() {
			t.Logf("the remote worker's log:\n%s", harness.Tail(remote.Log(), 60))
		}
	})
	if err := remote.WaitLog(ctx, "worker started", time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, remote.Log())
	}
	p := producer.New(srv.Client, producer.Options{})
	store := rdb.New(srv.Client, tasks.Keys{}, 0)

	id, err := p.Submit(ctx, tasks.ExecRequest{Cmd: sh("echo started; sleep 120; echo stale")})
	if err != nil {
		t.Fatal(err)
	}
	first := waitStarted(t, ctx, p, id, 1)
	if first.Worker != remoteName {
		t.Fatalf("attempt 1 ran on %s, want the remote worker", first.Worker)
	}
	cut := time.Now()
	if err := ns.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	// The local worker takes over once the lease has passed.
	startWorker(t, srv.Client, setupOptions{runtime: testutil.RuntimeNames()[0], poolSize: 1})
	second := waitStarted(t, ctx, p, id, 2)
	t.Logf("partition: attempt 2 started on %s %s after the cut", second.Worker, time.Since(cut).Round(100*time.Millisecond))

	// Cut off, the remote worker stopped its command: no process of a
	// command is left in its containers.
	if err := remote.WaitLog(ctx, "lease", time.Minute); err != nil {
		t.Logf("the remote worker's log says nothing of its lease: %v", err)
	}
	testutil.Eventually(t, time.Minute, 200*time.Millisecond, "the cut-off worker's command is stopped", func() bool {
		return !commandRuns(ctx, t, cli, remoteName)
	})
	stopped := time.Since(cut)

	healed := time.Now()
	if err := ns.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	// Healed, the remote worker serves again: on a queue only it serves.
	again, err := p.Submit(ctx, tasks.ExecRequest{Queue: "remote", Cmd: sh("echo back")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Wait(ctx, again)
	if err != nil || res.Stdout != "back\n" || res.Worker != remoteName {
		t.Fatalf("after the partition healed, the remote worker: %+v, %v", res, err)
	}
	rejoined := time.Since(healed)
	t.Logf("partition: command stopped %s after the cut; remote worker served again %s after the heal",
		stopped.Round(100*time.Millisecond), rejoined.Round(100*time.Millisecond))

	// The execution ends with attempt 2, whose stream nothing of attempt 1
	// came into.
	if err := p.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	final, err := p.Wait(ctx, id)
	if err != nil || final.Attempt != 2 || final.Worker == remoteName || strings.Contains(final.Stdout, "stale") {
		t.Fatalf("result %+v, %v; want attempt 2's, from the local worker", final, err)
	}
	events, err := store.Events(ctx, id, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	var after []string
	seen := 0
	for _, ev := range events {
		if ev.Type == tasks.EventStarted {
			seen++
			continue
		}
		if seen == 2 {
			after = append(after, string(ev.Type)+":"+string(ev.Data))
		}
	}
	if len(after) != 2 || after[0] != "stdout:started\n" || !strings.HasPrefix(after[1], "exit:") || testutil.CountEvents(events, tasks.EventExit) != 1 {
		t.Errorf("after attempt 2 started, the stream holds %q; want attempt 2's output and one exit", after)
	}
	for _, line := range strings.Split(remote.Log(), "\n") {
		if strings.Contains(line, "later attempt") || strings.Contains(line, "lease") {
			t.Logf("remote worker: %s", line)
		}
	}
	if n := countContainers(ctx, t, cli, remoteName); n != 1 {
		t.Errorf("the remote worker holds %d containers after it rejoined, want its pool of 1", n)
	}
}

// waitStarted follows id until its started event of attempt n and returns it.
func waitStarted(t *testing.T, ctx context.Context, p *producer.Client, id string, n int) tasks.StartedData {
	t.Helper()
	for ev, err := range p.Follow(ctx, id, "") {
		if err != nil {
			t.Fatalf("follow %s: %v", id, err)
		}
		if ev.Type != tasks.EventStarted {
			continue
		}
		st, err := ev.Started()
		if err != nil {
			t.Fatal(err)
		}
		if st.Attempt == n {
			return st
		}
	}
	t.Fatalf("%s ended before attempt %d started", id, n)
	return tasks.StartedData{}
}

// commandRuns reports whether a process of a command (uid 1000 and up)
// runs in a container of worker.
func commandRuns(ctx context.Context, t *testing.T, cli interface {
	ContainerList(context.Context, container.ListOptions) ([]container.Summary, error)
	ContainerTop(context.Context, string, []string) (container.TopResponse, error)
}, worker string) bool {
	list, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "execq.owner="+worker))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		top, err := cli.ContainerTop(ctx, c.ID, nil)
		if err != nil {
			continue
		}
		for _, p := range top.Processes {
			if strings.Contains(strings.Join(p, " "), "sleep 120") {
				return true
			}
		}
	}
	return false
}

func countContainers(ctx context.Context, t *testing.T, cli interface {
	ContainerList(context.Context, container.ListOptions) ([]container.Summary, error)
}, worker string) int {
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "execq.owner="+worker))})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}
