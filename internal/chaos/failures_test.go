//go:build chaos

package chaos_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

// attemptsOf returns the attempts of a stream's started events, in order.
func attemptsOf(t *testing.T, events []tasks.Event) []int {
	t.Helper()
	var out []int
	for _, s := range starts(t, events) {
		out = append(out, s.Attempt)
	}
	return out
}

func startedAttempt(n int) func(tasks.Event) bool {
	return func(ev tasks.Event) bool {
		if ev.Type != tasks.EventStarted {
			return false
		}
		d, err := ev.Started()
		return err == nil && d.Attempt == n
	}
}

// A worker SIGKILLed mid-execution: another worker runs the execution
// again once the dead one's lease has expired, and removes its containers.
func TestWorkerSIGKILLed(t *testing.T) {
	c := track(t, "failure", true)
	e := newEnv(t)
	a := startWorker(t, e, workerOpts{label: "A", poolSize: 1})
	aContainers := ownedContainers(t, e.docker, a.name)
	var aCreated time.Time
	if len(aContainers) > 0 {
		aCreated = containerCreated(t, e, aContainers[0].ID)
	}
	id := e.submit(t, tasks.ExecRequest{Cmd: sh("echo one; sleep 3; echo two"), Timeout: time.Minute})
	e.waitEvent(t, id, 30*time.Second, startedAttempt(1))

	killedAt := time.Now()
	a.Kill()
	b := startWorker(t, e, workerOpts{label: "B", poolSize: 1})

	// B removes A's containers: A ran on this host and its process is
	// gone, so at once (a worker elsewhere would wait for A's heartbeat to
	// be 15s stale, reconciling every 15s).
	if !testutil.Within(time.Until(killedAt.Add(3*time.Minute)), 100*time.Millisecond, func() bool {
		return len(ownedContainers(t, e.docker, a.name)) == 0
	}) {
		t.Fatalf("%s's containers %v are still there %s after it was killed", a.name, names(aContainers), time.Since(killedAt).Round(time.Second))
	}
	c.recovered(t, "SIGKILL → the dead worker's containers removed", time.Since(killedAt))
	if !aCreated.IsZero() {
		c.figure(t, "A's container was %s old when A died", killedAt.Sub(aCreated).Round(time.Second))
	}
	if !strings.Contains(b.Log(), "removing orphaned container") {
		t.Errorf("%s does not log the removal of %s's containers", b.name, a.name)
	}

	e.waitEvent(t, id, 3*time.Minute, startedAttempt(2))
	toRetry := time.Since(killedAt)
	c.recovered(t, "SIGKILL → second started event", toRetry)
	res := e.wait(t, id, time.Minute)
	c.recovered(t, "SIGKILL → result", time.Since(killedAt))
	// asynq's lease is 30s, extended every 5s; execq's recoverer requeues
	// 5s after it expired, polling every 2s.
	if toRetry > 40*time.Second {
		t.Errorf("the execution started again %s after its worker died; execq's recoverer promises about 30s lease + 5s margin + 2s poll", toRetry)
	}
	if res.Status != tasks.StatusSucceeded || res.Attempt != 2 || res.Worker != b.name || res.Stdout != "one\ntwo\n" {
		t.Errorf("result: status %s attempt %d worker %s stdout %q; want succeeded at attempt 2 on %s, one two",
			res.Status, res.Attempt, res.Worker, res.Stdout, b.name)
	}
	events := e.events(t, id)
	if got := attemptsOf(t, events); fmt.Sprint(got) != "[1 2]" {
		t.Errorf("started events of attempts %v, want [1 2]", got)
	}
	if s := starts(t, events); len(s) == 2 && (s[0].Worker != a.name || s[1].Worker != b.name) {
		t.Errorf("the attempts ran on %s and %s, want %s then %s", s[0].Worker, s[1].Worker, a.name, b.name)
	}
	if n := testutil.CountEvents(events, tasks.EventExit); n != 1 {
		t.Errorf("%d exit events", n)
	}

	e.followUp(t, c, "", b.name)
}

// Redis restarts (with its AOF) while an execution streams output: at
// once, and after an outage of 3s.
func TestRedisRestart(t *testing.T) {
	for _, outage := range []time.Duration{0, 3 * time.Second} {
		t.Run(fmt.Sprintf("down_%s", outage), func(t *testing.T) {
			c := track(t, "failure", true)
			r := testutil.StartRedisWith(t, testutil.RedisOptions{AOF: true})
			e := envOn(t, r.Addr)
			w := startWorker(t, e, workerOpts{label: "redis", poolSize: 1})
			id := e.submit(t, tasks.ExecRequest{Cmd: sh(`for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.3; done`), Timeout: time.Minute})
			var out strings.Builder
			e.waitEvent(t, id, 30*time.Second, func(ev tasks.Event) bool {
				if ev.Type == tasks.EventStdout {
					out.Write(ev.Data)
				}
				return strings.Contains(out.String(), "3\n")
			})

			stopAt := time.Now()
			r.Stop()
			time.Sleep(outage)
			r.Start(t)
			restarted := time.Now()
			c.figure(t, "redis down for %s (SIGTERM, AOF, start on the same port)", restarted.Sub(stopAt).Round(time.Millisecond))

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := e.prod.Wait(ctx, id)
			if err != nil {
				t.Errorf("producer.Wait, called once Redis is back, failed: %v", err)
				res = e.wait(t, id, time.Minute)
			}
			c.recovered(t, fmt.Sprintf("redis back (down %s) → result", restarted.Sub(stopAt).Round(100*time.Millisecond)), time.Since(restarted))
			want := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"
			if res.Status != tasks.StatusSucceeded || res.Stdout != want || res.Attempt != 1 {
				t.Errorf("result: status %s attempt %d stdout %q error %q; want succeeded at attempt 1 with 1..10 once", res.Status, res.Attempt, res.Stdout, res.Error)
			}
			events := e.events(t, id)
			if got := streamed(events, tasks.EventStdout); got != want {
				t.Errorf("streamed stdout %q, want %q", got, want)
			}
			if got := attemptsOf(t, events); fmt.Sprint(got) != "[1]" {
				t.Errorf("started events of attempts %v, want [1]: the command ran again", got)
			}
			if n := testutil.CountEvents(events, tasks.EventExit); n != 1 {
				t.Errorf("%d exit events", n)
			}
			if !w.Running() {
				t.Fatalf("the worker exited: %v", w.Err())
			}
			e.followUp(t, c, "", w.name)
			for _, line := range strings.Split(grepLines(w.Log(), "level=WARN")+"\n"+grepLines(w.Log(), "level=ERROR"), "\n") {
				if line != "" {
					c.figure(t, "worker logged: %s", clip(line))
				}
			}
		})
	}
}

// Redis restarts while a producer follows an execution: the follower
// should resume, not fail.
func TestRedisRestartWhileFollowing(t *testing.T) {
	for _, outage := range []time.Duration{0, 3 * time.Second} {
		t.Run(fmt.Sprintf("down_%s", outage), func(t *testing.T) {
			c := track(t, "failure", true)
			r := testutil.StartRedisWith(t, testutil.RedisOptions{AOF: true})
			e := envOn(t, r.Addr)
			w := startWorker(t, e, workerOpts{label: "redis-follow", poolSize: 1})
			id := e.submit(t, tasks.ExecRequest{Cmd: sh(`echo begun; sleep 5; echo end`), Timeout: time.Minute})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var got []string
			var followErr error
			restarted := false
			for ev, err := range e.prod.Follow(ctx, id, "") {
				if err != nil {
					followErr = err
					break
				}
				got = append(got, string(ev.Type))
				if ev.Type == tasks.EventStdout && !restarted {
					restarted = true
					r.Stop()
					time.Sleep(outage)
					r.Start(t)
				}
			}
			if followErr != nil {
				t.Errorf("producer.Follow ended with an error when Redis restarted (down %s): %v (events so far %q)", outage, followErr, got)
			}
			res := e.wait(t, id, time.Minute)
			if res.Status != tasks.StatusSucceeded || res.Stdout != "begun\nend\n" || res.Attempt != 1 {
				t.Errorf("result: status %s attempt %d stdout %q", res.Status, res.Attempt, res.Stdout)
			}
			c.figure(t, "follow across the restart: error %v", followErr)
			e.followUp(t, c, "", w.name)
		})
	}
}

// The sandbox container is killed from outside mid-execution.
func TestSandboxKilledFromOutside(t *testing.T) {
	c := track(t, "failure", true)
	e := newEnv(t)
	w := startWorker(t, e, workerOpts{label: "dockerkill", poolSize: 1})
	id := e.submit(t, tasks.ExecRequest{Cmd: sh("echo begun; sleep 5; echo end"), Timeout: time.Minute})
	e.waitEvent(t, id, 30*time.Second, isType(tasks.EventStdout))
	first := starts(t, e.events(t, id))[0]

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	killedAt := time.Now()
	if err := e.docker.ContainerKill(ctx, first.Container, "KILL"); err != nil {
		t.Fatalf("docker kill %s: %v", first.Container, err)
	}
	res := e.wait(t, id, 2*time.Minute)
	c.recovered(t, "docker kill → result", time.Since(killedAt))
	events := e.events(t, id)
	s := starts(t, events)
	if res.Status != tasks.StatusSucceeded || res.Attempt != 2 || res.Stdout != "begun\nend\n" {
		t.Errorf("result: status %s attempt %d exit %d stdout %q error %q; want succeeded at attempt 2 in a new container",
			res.Status, res.Attempt, res.ExitCode, res.Stdout, res.Error)
	}
	if len(s) == 2 && s[1].Container == s[0].Container {
		t.Errorf("the retry ran in the killed container %s", s[0].Container)
	}
	info := e.taskInfo(t, "default", id)
	c.figure(t, "attempts %v, asynq retried %d", attemptsOf(t, events), info.Retried)

	// The killed container is removed and the pool heals.
	var inspectErr error
	if !testutil.Within(30*time.Second, 100*time.Millisecond, func() bool {
		_, inspectErr = e.docker.ContainerInspect(ctx, first.Container)
		return errdefs.IsNotFound(inspectErr)
	}) {
		t.Errorf("the killed container %s is still there (%v)", first.Container, inspectErr)
	}
	e.followUp(t, c, "", w.name)
	w.settle(t, e.docker, 1, 20*time.Second)
}

// A warm container is killed, or removed, from outside while it waits in
// the pool. After a reconcile pass (every 15s) the pool holds a working
// container again: the next execution runs at its first attempt.
func TestSandboxGoneWhileIdle(t *testing.T) {
	for _, how := range []string{"killed", "removed"} {
		t.Run(how, func(t *testing.T) {
			c := track(t, "failure", true)
			e := newEnv(t)
			w := startWorker(t, e, workerOpts{label: "idle-" + how, poolSize: 1, metrics: true, args: []string{"--reconcile-interval", "1s"}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// Warm by the pool's own count: a container whose creation
			// failed counts among the labelled ones, not among the idle.
			if err := w.WaitWarm(ctx, time.Minute); err != nil {
				t.Fatal(err)
			}
			// Every container of the worker: its idle one, and one whose
			// creation failed that the pool no longer holds (under gVisor
			// a worker's first agent may miss its hello).
			for _, idle := range ownedContainers(t, e.docker, w.name) {
				var err error
				if how == "killed" {
					err = e.docker.ContainerKill(ctx, idle.ID, "KILL")
				} else {
					err = e.docker.ContainerRemove(ctx, idle.ID, container.RemoveOptions{Force: true})
				}
				if err != nil && !errdefs.IsNotFound(err) && !strings.Contains(err.Error(), "is not running") {
					t.Fatal(err)
				}
			}
			goneAt := time.Now()
			w.waitLog(t, "an idle container stopped or vanished", 30*time.Second)
			c.recovered(t, "idle container "+how+" → replaced by the pool", time.Since(goneAt))
			res := e.followUp(t, c, "", w.name)
			if res.Attempt != 1 {
				t.Errorf("the first execution %s after the idle container was %s from outside needed attempt %d: the pool still held the dead container",
					time.Since(goneAt).Round(time.Second), how, res.Attempt)
			}
			w.settle(t, e.docker, 1, 20*time.Second)
		})
	}
}

// The container engine does not answer when the worker starts, returns,
// goes away while the worker idles, returns, and goes away in the middle of
// an execution. A unix-socket proxy to the real engine stands for it.
func TestEngineUnreachable(t *testing.T) {
	c := track(t, "failure", true)
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "engine.sock")
	proxy := newSockProxy(t, sock, "/var/run/docker.sock")
	w := startWorker(t, e, workerOpts{label: "engine", poolSize: 1, metrics: true, noWarm: true,
		env: []string{"DOCKER_HOST=unix://" + sock}})

	t.Log("phase 1: no engine at start")
	w.waitLog(t, "the container engine does not answer", 30*time.Second)
	checkEngine(t, w, false)
	id := e.submit(t, tasks.ExecRequest{Cmd: sh("echo engine-back"), Timeout: 30 * time.Second})
	waitingChecks(t, e, id, 7*time.Second)
	proxy.up(t)
	upAt := time.Now()
	res := e.wait(t, id, 2*time.Minute)
	c.recovered(t, "engine back at start → queued execution's result", time.Since(upAt))
	checkRanOnce(t, e, res, "engine-back\n", 1)
	w.waitContainers(t, e.docker, 1, time.Minute)
	checkEngine(t, w, true)
	e.followUp(t, c, "", w.name)

	t.Log("phase 2: the engine goes away while the worker idles")
	proxy.down()
	downAt := time.Now()
	waitEngineGauge(t, w, 0, 20*time.Second)
	c.recovered(t, "engine gone → execq_engine_up 0", time.Since(downAt))
	checkEngine(t, w, false)
	id = e.submit(t, tasks.ExecRequest{Cmd: sh("echo engine-back-again"), Timeout: 30 * time.Second})
	waitingChecks(t, e, id, 6*time.Second)
	proxy.up(t)
	upAt = time.Now()
	res = e.wait(t, id, 2*time.Minute)
	c.recovered(t, "engine back → queued execution's result", time.Since(upAt))
	checkRanOnce(t, e, res, "engine-back-again\n", 1)
	checkEngine(t, w, true)
	e.followUp(t, c, "", w.name)

	t.Log("phase 3: the engine goes away mid-execution for 4s")
	id = e.submit(t, tasks.ExecRequest{Cmd: sh("echo begun; sleep 2; echo end"), Timeout: 30 * time.Second})
	e.waitEvent(t, id, 30*time.Second, isType(tasks.EventStdout))
	proxy.down()
	time.Sleep(4 * time.Second)
	proxy.up(t)
	upAt = time.Now()
	res = e.wait(t, id, 2*time.Minute)
	c.recovered(t, "engine back mid-execution → result", time.Since(upAt))
	info := waitSettled(t, e, id)
	c.figure(t, "mid-execution outage: status %s attempt %d, asynq retried %d, stdout %q", res.Status, res.Attempt, info.Retried, res.Stdout)
	if res.Status != tasks.StatusSucceeded || res.Stdout != "begun\nend\n" {
		t.Errorf("after the engine came back: status %s attempt %d stdout %q error %q; want succeeded", res.Status, res.Attempt, res.Stdout, res.Error)
	}
	if info.Retried != 0 {
		t.Errorf("the engine's outage used %d of the execution's retries (last error %q)", info.Retried, info.LastErr)
	}
	e.followUp(t, c, "", w.name)

	log := w.Log()
	c.figure(t, "worker log: %d lines saying the engine does not answer, %d warm retries, %d lines saying it answers again",
		strings.Count(log, "the container engine does not answer"), strings.Count(log, "warm a container; retrying"),
		strings.Count(log, "the container engine answers again"))

	// Stopped gracefully, the worker leaves nothing behind, the container
	// it could not remove during the outage included.
	if !w.Stop(time.Minute) {
		t.Errorf("the worker did not stop within a minute of SIGTERM")
	}
	if left := ownedContainers(t, e.docker, w.name); len(left) > 0 {
		t.Errorf("containers left after the worker stopped: %v", names(left))
	}
}

// checkEngine checks what the worker says of the engine: its gauge and its
// health endpoint.
func checkEngine(t *testing.T, w *workerProc, up bool) {
	t.Helper()
	want := 0.0
	if up {
		want = 1
	}
	if v, ok := w.metric(t, "execq_engine_up"); !ok || v != want {
		t.Errorf("execq_engine_up = %v (found %v), want %v", v, ok, want)
	}
	code, body := w.healthz()
	if up && code != 200 || !up && (code != 503 || !strings.Contains(body, "container engine does not answer")) {
		t.Errorf("/healthz = %d %q while the engine is up=%v", code, body, up)
	}
}

func waitEngineGauge(t *testing.T, w *workerProc, want float64, d time.Duration) {
	t.Helper()
	testutil.Eventually(t, d, 100*time.Millisecond, fmt.Sprintf("execq_engine_up is %v", want), func() bool {
		v, ok := w.metric(t, "execq_engine_up")
		return ok && v == want
	})
}

// waitingChecks watches, for d, an execution submitted while the engine
// is down: it must wait, with no result, nothing started and no retry used.
func waitingChecks(t *testing.T, e *env, id string, d time.Duration) {
	t.Helper()
	testutil.Eventually(t, d, 50*time.Millisecond, "the worker met the execution and sent it back to its queue", func() bool {
		info, err := e.insp.GetTaskInfo("default", id)
		return err == nil && info.State == asynq.TaskStateRetry && strings.Contains(info.LastErr, "container engine does not answer")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res, err := e.prod.Result(ctx, id); err == nil {
		t.Errorf("an execution got a result while the engine was down: %s %q", res.Status, res.Error)
	}
	if n := testutil.CountEvents(e.events(t, id), tasks.EventStarted); n != 0 {
		t.Errorf("an execution started %d times while the engine was down", n)
	}
	info := e.taskInfo(t, "default", id)
	if info.Retried != 0 {
		t.Errorf("waiting for the engine used %d retries (last error %q)", info.Retried, info.LastErr)
	}
	t.Logf("while the engine is down the execution is %s, retried %d, last error %q", info.State, info.Retried, info.LastErr)
}

func checkRanOnce(t *testing.T, e *env, res *tasks.Result, stdout string, attempt int) {
	t.Helper()
	if res.Status != tasks.StatusSucceeded || res.Stdout != stdout || res.Attempt != attempt {
		t.Errorf("result: status %s attempt %d stdout %q error %q; want succeeded at attempt %d", res.Status, res.Attempt, res.Stdout, res.Error, attempt)
	}
	info := waitSettled(t, e, res.ExecutionID)
	if info.Retried != 0 {
		t.Errorf("the execution used %d retries waiting for the engine (last error %q)", info.Retried, info.LastErr)
	}
}

// waitSettled returns the task's info once asynq has recorded its end.
func waitSettled(t *testing.T, e *env, id string) *asynq.TaskInfo {
	t.Helper()
	var info *asynq.TaskInfo
	testutil.Within(10*time.Second, 20*time.Millisecond, func() bool {
		info = e.taskInfo(t, "default", id)
		return info.State != asynq.TaskStateActive
	})
	return info
}

// Two deployments (two Redis servers) share one Docker engine, as staging
// and production on one host, or two test runs: neither may remove the
// other's containers. Each worker sees the other's containers, finds no
// heartbeat for their owner in its own Redis, and takes them for orphans.
func TestTwoDeploymentsOnOneEngine(t *testing.T) {
	c := track(t, "failure", false)
	x := newEnv(t)
	y := newEnv(t)
	wx := startWorker(t, x, workerOpts{label: "deploy-x", poolSize: 1})
	wy := startWorker(t, y, workerOpts{label: "deploy-y", poolSize: 1})
	created := containerCreated(t, x, ownedContainers(t, x.docker, wx.name)[0].ID)
	// Long enough for the container to pass the 1m orphan grace and a 15s
	// reconcile pass of the other worker.
	id := x.submit(t, tasks.ExecRequest{Cmd: sh("echo begun; sleep 85; echo end"), Timeout: 2 * time.Minute})
	res := x.wait(t, id, 3*time.Minute)
	c.figure(t, "execution in %s's container: status %s attempt %d exit %d, %s after the container's creation",
		wx.name, res.Status, res.Attempt, res.ExitCode, time.Since(created).Round(time.Second))
	if removed := grepLines(wy.Log(), "owner="+wx.name); removed != "" {
		t.Errorf("worker %s, on another Redis, removed the container of %s while it ran execution %s, which then ended %s "+
			"(attempt %d, exit %d, stdout %q, error %q) instead of succeeding; %s logged:\n%s",
			wy.name, wx.name, id, res.Status, res.Attempt, res.ExitCode, res.Stdout, res.Error, wy.name, removed)
	} else if res.Status != tasks.StatusSucceeded || res.Attempt != 1 || res.Stdout != "begun\nend\n" {
		t.Errorf("result: status %s attempt %d stdout %q error %q", res.Status, res.Attempt, res.Stdout, res.Error)
	}
	x.followUp(t, c, "", wx.name)
	y.followUp(t, c, "", wy.name)
}

func grepLines(s, substr string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "\n")
}

// names lists containers as short ID and state.
func names(list []container.Summary) []string {
	var out []string
	for _, c := range list {
		out = append(out, fmt.Sprintf("%.12s(%s)", c.ID, c.State))
	}
	return out
}

// containerCreated is when the engine created container id.
func containerCreated(t *testing.T, e *env, id string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := e.docker.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	created, err := time.Parse(time.RFC3339Nano, info.Created)
	if err != nil {
		t.Fatal(err)
	}
	return created
}
