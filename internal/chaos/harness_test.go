//go:build chaos

package chaos_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/sandbox/docker"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
	"github.com/execq/execq/worker"
)

// env is one Redis deployment and the clients the tests use on it.
type env struct {
	url    string
	rc     *redis.Client
	prod   *producer.Client
	store  *rdb.Store
	insp   *asynq.Inspector
	docker *client.Client
}

// newEnv starts a redis-server of the test's own (no persistence) and
// connects to it and to the Docker engine.
func newEnv(t *testing.T) *env {
	t.Helper()
	r := testutil.StartRedis(t)
	return envOn(t, r.Addr)
}

// envOn connects to the Redis at addr and to the Docker engine.
func envOn(t *testing.T, addr string) *env {
	t.Helper()
	dc := testutil.Docker(t)
	rc := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rc.Close() })
	return &env{
		url:    "redis://" + addr + "/0",
		rc:     rc,
		prod:   producer.New(rc, producer.Options{}),
		store:  rdb.New(rc, tasks.Keys{}, 0),
		insp:   asynq.NewInspectorFromRedisClient(rc),
		docker: dc,
	}
}

func sh(script string) []string { return []string{"sh", "-c", script} }

// submit submits req and returns its ID.
func (e *env) submit(t *testing.T, req tasks.ExecRequest) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := e.prod.Submit(ctx, req)
	if err != nil {
		t.Fatalf("submit %s: %s", clip(fmt.Sprint(req.Cmd)), clip(err.Error()))
	}
	return id
}

// wait waits up to d for the result of id.
func (e *env) wait(t *testing.T, id string, d time.Duration) *tasks.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	res, err := e.prod.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait for %s (up to %s): %v", id, d, err)
	}
	return res
}

// run submits req and waits for its result, up to its timeout plus a
// minute, and returns how long that took from Submit to Wait's return.
func (e *env) run(t *testing.T, req tasks.ExecRequest) (*tasks.Result, time.Duration) {
	t.Helper()
	start := time.Now()
	id := e.submit(t, req)
	res := e.wait(t, id, req.Timeout+time.Minute)
	return res, time.Since(start)
}

// events returns the stream of id.
func (e *env) events(t *testing.T, id string) []tasks.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := e.store.Events(ctx, id, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// starts decodes the started events of a stream.
func starts(t *testing.T, events []tasks.Event) []tasks.StartedData {
	t.Helper()
	var out []tasks.StartedData
	for _, ev := range events {
		if ev.Type == tasks.EventStarted {
			d, err := ev.Started()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
	}
	return out
}

// streamed concatenates the data of a stream's events of one type.
func streamed(events []tasks.Event, typ tasks.EventType) string {
	var b strings.Builder
	for _, ev := range events {
		if ev.Type == typ {
			b.Write(ev.Data)
		}
	}
	return b.String()
}

// waitEvent follows id until an event satisfies ok, for up to d.
func (e *env) waitEvent(t *testing.T, id string, d time.Duration, ok func(tasks.Event) bool) tasks.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for ev, err := range e.prod.Follow(ctx, id, "") {
		if err != nil {
			t.Fatalf("follow %s: %v", id, err)
		}
		if ok(ev) {
			return ev
		}
	}
	t.Fatalf("the stream of %s ended without the event waited for", id)
	return tasks.Event{}
}

func isType(typ tasks.EventType) func(tasks.Event) bool {
	return func(ev tasks.Event) bool { return ev.Type == typ }
}

// taskInfo returns asynq's record of the execution's task.
func (e *env) taskInfo(t *testing.T, queue, id string) *asynq.TaskInfo {
	t.Helper()
	info, err := e.insp.GetTaskInfo(queue, id)
	if err != nil {
		t.Fatalf("asynq task %s in %s: %v", id, queue, err)
	}
	return info
}

// enqueueRaw enqueues a payload past the producer's checks, as a broken or
// hostile producer would, and binds its queue so that Wait finds it. The
// task is kept an hour after it completes, so that asynq's record of how it
// was processed can be read.
func (e *env) enqueueRaw(t *testing.T, id string, payload []byte) {
	t.Helper()
	testutil.EnqueueRaw(t, e.rc, id, payload, asynq.Retention(time.Hour), asynq.Timeout(5*time.Minute))
}

// cleanScript runs as the first execution after a hostile one and reports
// whatever differs from a fresh sandbox: the limits, the user, the working
// directory, anything in the writable directories, any leak marker anywhere
// on the file system, and any process of the user but its own. The process
// scan is last and uses shell builtins only, so that the script's own
// helpers have exited.
const cleanScript = `
# gVisor mounts no cgroupfs; its /proc/meminfo tells the memory limit.
read -r mem 2>/dev/null </sys/fs/cgroup/memory/memory.limit_in_bytes || read -r mem 2>/dev/null </sys/fs/cgroup/memory.max ||
	{ mem=unknown; while read -r k v _; do [ "$k" = MemTotal: ] && { mem=$((v * 1024)); break; }; done </proc/meminfo; }
read -r pids 2>/dev/null </sys/fs/cgroup/pids/pids.max || read -r pids 2>/dev/null </sys/fs/cgroup/pids.max || pids=unlimited
# The user's own process limit, where the runtime sets one below the
# container's (the agent keeps room for itself beyond it).
nproc=$(ulimit -u)
[ "$nproc" != unlimited ] && { [ "$pids" = unlimited ] || [ "$nproc" -lt "$pids" ]; } && pids=$nproc
echo "mem $mem"
echo "pids $pids"
uid=$(id -u)
[ "$uid" -ge 1000000000 ] && [ "$uid" -lt 1000001000 ] && [ "$uid" = "$(id -g)" ] || echo "uid $uid"
[ "$PWD" = /workspace ] || echo "pwd $PWD"
[ "$HOME" = /workspace ] || echo "home $HOME"
for d in /workspace /tmp /dev/shm /dev/mqueue; do
	[ -d "$d" ] || continue
	for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do
		[ -e "$f" ] || [ -L "$f" ] || continue
		echo "left: $f"
	done
done
for f in /proc/sysvipc/shm /proc/sysvipc/msg /proc/sysvipc/sem; do
	[ -r "$f" ] || continue
	{ read -r _; while read -r line; do echo "ipc: ${f##*/} $line"; done; } <"$f"
done
find / \( -path /proc -o -path /sys \) -prune -o -name '*execq-chaos-leak*' -print 2>/dev/null | while read -r f; do echo "marker: $f"; done
` + testutil.LeftoverScript + `
echo clean
`

// cleanWant is what cleanScript prints in a fresh sandbox with the
// worker's default limits (256 MiB, 256 processes).
const cleanWant = "mem 268435456\npids 256\nclean\n"

// followUp runs cleanScript on queue (the same pool as the case before it)
// and checks that it behaves as the first execution of a fresh sandbox
// would: it succeeds, first time, and sees nothing of what ran before.
func (e *env) followUp(t *testing.T, c *caseRecord, queue, wantWorker string) *tasks.Result {
	t.Helper()
	res, elapsed := e.run(t, tasks.ExecRequest{Queue: queue, Cmd: sh(cleanScript), Timeout: 20 * time.Second})
	if res.Status != tasks.StatusSucceeded || res.ExitCode != 0 || res.Attempt != 1 {
		t.Errorf("follow-up: status %s exit %d attempt %d error %q stderr %q; want succeeded 0 at the first attempt",
			res.Status, res.ExitCode, res.Attempt, res.Error, res.Stderr)
	}
	if res.Stdout != cleanWant || res.Stderr != "" {
		t.Errorf("follow-up does not see a fresh sandbox:\n%s\nstderr: %q\nwant:\n%s", res.Stdout, res.Stderr, cleanWant)
	}
	if wantWorker != "" && res.Worker != wantWorker {
		t.Errorf("follow-up ran on worker %q, want %q", res.Worker, wantWorker)
	}
	if c != nil {
		verdict := "clean"
		if res.Status != tasks.StatusSucceeded || res.Attempt != 1 || res.Stdout != cleanWant {
			verdict = fmt.Sprintf("NOT clean (%s, attempt %d)", res.Status, res.Attempt)
		}
		c.figure(t, "follow-up %s in %s", verdict, elapsed.Round(time.Millisecond))
	}
	return res
}

// boundCheck checks that a hostile case ended within its timeout plus one
// second (more on docker-exec and under gVisor), the time it waited in the
// queue aside (QueuedMs, from the
// submission to the start of its attempt).
func boundCheck(t *testing.T, c *caseRecord, res *tasks.Result, elapsed, timeout time.Duration) {
	t.Helper()
	queued := time.Duration(res.QueuedMs) * time.Millisecond
	// gVisor's kernel runs within the sandbox's CPU and memory limits,
	// which what it must kill (a fork bomb) exhausts: its kills take longer
	// (a fork bomb with a 3s timeout ended after 3.0 to 8.1s).
	margin := time.Second
	switch {
	case gvisor():
		margin = 8 * time.Second
	case sandboxRuntime == "docker-exec":
		// Its kill is a docker exec of the helper, which waits until the
		// container's init has reaped every process of a fork bomb: on a
		// loaded machine that took up to 3.5s past a 3s timeout.
		margin = 4 * time.Second
	}
	bound := timeout + margin + queued
	c.figure(t, "%s in %s (queued %s, bound %s)", res.Status, elapsed.Round(time.Millisecond), queued, bound.Round(time.Millisecond))
	if elapsed > bound {
		t.Errorf("the result came %s after Submit; the bound is the %s timeout + %s + %s queued = %s",
			elapsed.Round(time.Millisecond), timeout, margin, queued, bound.Round(time.Millisecond))
	}
}

// workerOpts configure an `execq worker` child process.
type workerOpts struct {
	label    string // the worker is named chaos-<run>-<label>
	poolSize int
	queues   string
	env      []string // added to the environment (DOCKER_HOST=…)
	args     []string // more flags
	metrics  bool     // serve --metrics-addr on a free loopback port
	noWarm   bool     // do not wait for the pool to be warm
}

// workerProc is an `execq worker` child process.
type workerProc struct {
	*harness.WorkerProcess
	name string
}

// startWorker starts `execq worker` on e's Redis and, unless told not to,
// waits until its pool is warm. The process is stopped (SIGTERM, then
// SIGKILL) and every container labelled with its name removed when the
// test ends; its log is shown when the test failed.
func startWorker(t *testing.T, e *env, o workerOpts) *workerProc {
	t.Helper()
	needBinary(t)
	name := ownerPrefix() + o.label
	args := []string{"--shutdown-timeout", "5s", "--log-level", "info", "--runtime", sandboxRuntime}
	if ociRuntime != "" {
		args = append(args, "--oci-runtime", ociRuntime)
	}
	if o.queues != "" {
		args = append(args, "--queues", o.queues)
	}
	metricsAddr := ""
	if o.metrics {
		metricsAddr = testutil.FreeAddr(t)
	}
	hw, err := harness.StartWorker(harness.WorkerConfig{
		Exe:         execqBin,
		RedisURL:    e.url,
		PoolSize:    o.poolSize,
		Name:        name,
		MetricsAddr: metricsAddr,
		LogPath:     filepath.Join(t.TempDir(), name+".log"),
		Env:         o.env,
		Args:        append(args, o.args...),
	})
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	w := &workerProc{WorkerProcess: hw, name: name}
	t.Cleanup(func() {
		w.Stop(30 * time.Second)
		if n := removeOwned(e.docker, w.name); n > 0 {
			t.Logf("removed %d containers of %s at cleanup", n, w.name)
		}
		if t.Failed() {
			t.Logf("log of %s (last 60 lines):\n%s", w.name, tail(w.Log(), 60))
		}
	})
	w.waitLog(t, "worker started", time.Minute)
	if !o.noWarm {
		w.waitContainers(t, e.docker, w.PoolSize(), time.Minute)
	}
	return w
}

// waitLog waits up to d for substr to appear in the worker's log.
func (w *workerProc) waitLog(t *testing.T, substr string, d time.Duration) {
	t.Helper()
	if err := w.WaitLog(context.Background(), substr, d); err != nil {
		t.Fatalf("%s: %v:\n%s", w.name, err, tail(w.Log(), 40))
	}
}

// runningContainers counts the worker's containers and those of them
// that run.
func (w *workerProc) runningContainers(t *testing.T, dc *client.Client) (all []container.Summary, running int) {
	t.Helper()
	all = ownedContainers(t, dc, w.name)
	for _, c := range all {
		if c.State == "running" {
			running++
		}
	}
	return all, running
}

// waitContainers waits up to d until the worker has n running containers.
func (w *workerProc) waitContainers(t *testing.T, dc *client.Client, n int, d time.Duration) {
	t.Helper()
	running := 0
	err := w.Await(context.Background(), d, 50*time.Millisecond, func() bool {
		_, running = w.runningContainers(t, dc)
		return running >= n
	})
	if err != nil {
		t.Fatalf("%s has %d running containers, want %d: %v:\n%s", w.name, running, n, err, tail(w.Log(), 40))
	}
}

// settle waits up to d until the worker holds exactly n containers, all
// running: the ones it replaced are gone.
func (w *workerProc) settle(t *testing.T, dc *client.Client, n int, d time.Duration) {
	t.Helper()
	var list []container.Summary
	settled := testutil.Within(d, 50*time.Millisecond, func() bool {
		var running int
		list, running = w.runningContainers(t, dc)
		return len(list) == n && running == n
	})
	if !settled {
		var desc []string
		for _, c := range list {
			desc = append(desc, fmt.Sprintf("%.12s %s", c.ID, c.State))
		}
		t.Errorf("%s holds containers %v %s after the case, want %d running and nothing else", w.name, desc, d, n)
	}
}

// memory reads the worker's resident set size and its peak (VmRSS,
// VmHWM), in bytes.
func (w *workerProc) memory(t *testing.T) (rss, peak int64) {
	t.Helper()
	rss, peak, err := w.Memory()
	if err != nil {
		t.Fatal(err)
	}
	return rss, peak
}

// metric reads a metric without labels from the worker's /metrics.
func (w *workerProc) metric(t *testing.T, name string) (float64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := w.Metric(ctx, name)
	return v, err == nil
}

// healthz returns the worker's /healthz status code and body.
func (w *workerProc) healthz() (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, err := w.Healthz(ctx)
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

// ownedContainers lists the containers, running or not, labelled with
// owner.
func ownedContainers(t *testing.T, dc *client.Client, owner string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := dc.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", docker.LabelOwner+"="+owner)),
	})
	if err != nil {
		t.Fatalf("list containers of %s: %v", owner, err)
	}
	return list
}

// removeOwned force-removes the containers labelled with owner and returns
// how many there were.
func removeOwned(dc *client.Client, owner string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := dc.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", docker.LabelOwner+"="+owner)),
	})
	if err != nil {
		return 0
	}
	for _, c := range list {
		_ = dc.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
	return len(list)
}

func tail(s string, n int) string { return harness.Tail(s, n) }

// inProcessWorker is a worker.Worker in the test process, for what the
// CLI cannot configure (a small MaxPayloadBytes).
type inProcessWorker struct {
	name string
	w    *worker.Worker
	log  *testutil.Buffer
}

// startInProcessWorker starts a worker with pool size 1 on e's Redis and
// the Docker engine and waits until it is warm. It is shut down at the end
// of the test, which fails if a container is left behind.
func startInProcessWorker(t *testing.T, e *env, label string, limits tasks.Limits) *inProcessWorker {
	t.Helper()
	ip := &inProcessWorker{name: ownerPrefix() + label, log: &testutil.Buffer{}}
	log := slog.New(slog.NewTextHandler(ip.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	ip.w, err = worker.New(worker.Config{
		Redis: e.rc,
		Sandbox: worker.SandboxConfig{
			Runtime:     sandboxRuntime,
			AgentBinary: filepath.Join(filepath.Dir(execqBin), "execq-agent"),
			OCIRuntime:  ociRuntime,
		},
		Name:            ip.name,
		Image:           testutil.SandboxImage,
		PoolSize:        1,
		Limits:          limits,
		ShutdownTimeout: 5 * time.Second,
		Logger:          log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := ip.w.Start(ctx); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := ip.w.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if n := removeOwned(e.docker, ip.name); n > 0 {
			t.Errorf("%d containers of %s left behind after its shutdown", n, ip.name)
		}
		if t.Failed() {
			t.Logf("log of %s (last 60 lines):\n%s", ip.name, tail(ip.log.String(), 60))
		}
	})
	if err := ip.w.WaitWarm(ctx); err != nil {
		t.Fatal(err)
	}
	return ip
}

// sockProxy forwards a unix socket to another, and can be brought down
// (its socket gone, every connection cut) and up again: a container engine
// that goes away and returns, while the real one keeps serving the other
// tests.
type sockProxy struct {
	path, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newSockProxy(t *testing.T, path, target string) *sockProxy {
	p := &sockProxy{path: path, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(p.down)
	return p
}

func (p *sockProxy) up(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatalf("proxy listen on %s: %v", p.path, err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.serve(ln)
}

func (p *sockProxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.pipe(c)
	}
}

func (p *sockProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *sockProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

// pipe copies both ways, passing half-closes on (the engine's hijacked
// attach connections rely on them).
func (p *sockProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	u, err := net.DialTimeout("unix", p.target, 5*time.Second)
	if err != nil {
		p.untrack(c)
		return
	}
	if !p.track(u) {
		p.untrack(c, u)
		return
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(u, c)
		_ = u.(*net.UnixConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(c, u)
	_ = c.(*net.UnixConn).CloseWrite()
	<-done
	p.untrack(c, u)
}

// down closes the socket (removing its file) and cuts every connection.
func (p *sockProxy) down() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
