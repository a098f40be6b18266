package pool_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/execq/execq/internal/pool"
	"github.com/execq/execq/internal/sandbox"
	"github.com/execq/execq/internal/sandbox/fake"
	"github.com/execq/execq/internal/testutil"
	"github.com/execq/execq/tasks"
)

const (
	owner = "me"
	image = "warm:1"
)

var errInjected = errors.New("injected")

// recorder collects what the pool reports.
type recorder struct {
	mu        sync.Mutex
	causes    []string
	createErr []error
}

func (r *recorder) replaced(cause string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.causes = append(r.causes, cause)
}

func (r *recorder) created(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.createErr = append(r.createErr, err)
}

func (r *recorder) replacements() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.causes)
}

type testBundle struct {
	rt   *fake.Runtime
	pool *pool.Pool
	rec  *recorder
	ctx  context.Context
}

// setup makes a pool of cfg (Image, Owner, callbacks and a quiet logger
// filled in) on a fake runtime; it is not started.
func setup(t *testing.T, cfg pool.Config) *testBundle {
	t.Helper()
	return setupWith(t, nil, cfg)
}

// setupWith is setup with the fake runtime adjusted by adjust first.
func setupWith(t *testing.T, adjust func(*fake.Runtime), cfg pool.Config) *testBundle {
	t.Helper()
	rt := fake.NewRuntime(owner)
	if adjust != nil {
		adjust(rt)
	}
	rec := &recorder{}
	if cfg.Image == "" {
		cfg.Image = image
	}
	cfg.Owner = owner
	cfg.OnReplace = rec.replaced
	cfg.OnCreate = rec.created
	cfg.Logger = testutil.Logger(t)
	p, err := pool.New(rt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(func() {
		defer cancel()
		if err := p.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &testBundle{rt: rt, pool: p, rec: rec, ctx: ctx}
}

// start starts the pool and waits until it is warm.
func (b *testBundle) start(t *testing.T) {
	t.Helper()
	if err := b.pool.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.pool.WaitWarm(b.ctx); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) acquire(t *testing.T, img string) *pool.Lease {
	t.Helper()
	l, err := b.pool.Acquire(b.ctx, imageOf(img), sandbox.Limits{})
	if err != nil {
		t.Fatalf("acquire %s: %v", img, err)
	}
	if got := l.Sandbox().Image(); got != img {
		t.Fatalf("acquired a container of %s, want %s", got, img)
	}
	return l
}

// eventually waits until cond holds, for what the pool does in the
// background with no signal to wait on (removing containers).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, 2*time.Millisecond, what, cond)
}

func (b *testBundle) live(id string) bool { return slices.Contains(b.rt.Live(), id) }

func TestNewRequiresImageAndOwner(t *testing.T) {
	t.Parallel()
	rt := fake.NewRuntime(owner)
	if _, err := pool.New(rt, pool.Config{Owner: owner}); err == nil {
		t.Error("New without an image succeeded")
	}
	if _, err := pool.New(rt, pool.Config{Image: image}); err == nil {
		t.Error("New without an owner succeeded")
	}
}

func TestStartWarmsSize(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 3})
	b.start(t)
	if got := b.pool.Stats(); got != (pool.Stats{Idle: 3}) {
		t.Errorf("stats %+v, want 3 idle", got)
	}
	if live := b.rt.Live(); len(live) != 3 {
		t.Errorf("%d containers live, want 3", len(live))
	}
}

func TestDefaultSizeIsFour(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{})
	b.start(t)
	if got := b.pool.Stats(); got.Idle != 4 {
		t.Errorf("stats %+v, want 4 idle", got)
	}
}

func TestAcquireTakesAnIdleContainer(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 2})
	b.start(t)
	l := b.acquire(t, image)
	if !b.live(l.Sandbox().ID()) {
		t.Errorf("leased %s, which is not live", l.Sandbox().ID())
	}
	if got := b.pool.Stats(); got != (pool.Stats{Idle: 1, Busy: 1}) {
		t.Errorf("stats %+v, want 1 idle, 1 busy", got)
	}
	if created, _ := b.rt.Counts(); created != 2 {
		t.Errorf("%d containers created, want the 2 warm ones only", created)
	}
}

func TestReuseResetsAndGivesTheContainerBack(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1})
	b.start(t)
	l := b.acquire(t, image)
	id := l.Sandbox().ID()
	if err := l.Sandbox().PutFiles(b.ctx, []tasks.File{{Path: "secret"}}); err != nil {
		t.Fatal(err)
	}
	l.Reuse()
	l.Reuse() // a second end of the lease does nothing
	l.Replace(pool.CauseError)

	again := b.acquire(t, image)
	if again.Sandbox().ID() != id {
		t.Errorf("acquired %s after reusing %s; want the same container", again.Sandbox().ID(), id)
	}
	var out strings.Builder
	if _, err := again.Sandbox().Run(b.ctx, sandbox.Command{Cmd: []string{"ls"}, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("the reused container still holds %q", out.String())
	}
	if r := b.rec.replacements(); len(r) != 0 {
		t.Errorf("replacements %v, want none", r)
	}
	if created, removed := b.rt.Counts(); created != 1 || removed != 0 {
		t.Errorf("created %d, removed %d; want 1, 0", created, removed)
	}
}

func TestReplaceRemovesAndWarmsAnother(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1})
	b.start(t)
	l := b.acquire(t, image)
	old := l.Sandbox().ID()
	l.Replace(pool.CauseTimeout)
	l.Reuse() // ignored: the lease has ended
	if err := b.pool.WaitWarm(b.ctx); err != nil {
		t.Fatal(err)
	}
	next := b.acquire(t, image)
	if next.Sandbox().ID() == old {
		t.Errorf("acquired the replaced container %s again", old)
	}
	eventually(t, "the replaced container is removed", func() bool { return !b.live(old) })
	if r := b.rec.replacements(); !slices.Equal(r, []string{pool.CauseTimeout}) {
		t.Errorf("replacements %v, want [timeout]", r)
	}
}

func TestMaxUsesReplaces(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1, MaxUses: 2})
	b.start(t)
	first := b.acquire(t, image)
	id := first.Sandbox().ID()
	first.Reuse()
	second := b.acquire(t, image)
	if second.Sandbox().ID() != id {
		t.Fatalf("the second use got %s, want %s", second.Sandbox().ID(), id)
	}
	second.Reuse()
	third := b.acquire(t, image)
	if third.Sandbox().ID() == id {
		t.Errorf("a container served a third execution with MaxUses 2")
	}
	if r := b.rec.replacements(); !slices.Equal(r, []string{pool.CauseMaxUses}) {
		t.Errorf("replacements %v, want [max_uses]", r)
	}
}

func TestFailedResetReplaces(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1})
	b.start(t)
	l := b.acquire(t, image)
	old := l.Sandbox().ID()
	b.rt.ResetErr = errInjected // no reset runs while the only container is leased
	l.Reuse()
	next := b.acquire(t, image)
	if next.Sandbox().ID() == old {
		t.Errorf("the container whose reset failed was leased again")
	}
	if r := b.rec.replacements(); !slices.Equal(r, []string{pool.CauseResetFailed}) {
		t.Errorf("replacements %v, want [reset_failed]", r)
	}
	eventually(t, "the dirty container is removed", func() bool { return !b.live(old) })
}

func TestAcquireWaitsForARelease(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1})
	b.start(t)
	l := b.acquire(t, image)

	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := b.pool.Acquire(ctx, imageOf(image), sandbox.Limits{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with every container busy = %v, want the context's deadline", err)
	}

	var released atomic.Bool
	type result struct {
		lease    *pool.Lease
		err      error
		released bool
	}
	got := make(chan result, 1)
	go func() {
		lease, err := b.pool.Acquire(b.ctx, imageOf(image), sandbox.Limits{})
		got <- result{lease: lease, err: err, released: released.Load()}
	}()
	released.Store(true)
	l.Reuse()
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.released {
		t.Error("Acquire returned before the busy container was released")
	}
	if r.lease.Sandbox().ID() != l.Sandbox().ID() {
		t.Errorf("acquired %s, want the released %s", r.lease.Sandbox().ID(), l.Sandbox().ID())
	}
	if created, _ := b.rt.Counts(); created != 1 {
		t.Errorf("%d containers created for a pool of 1", created)
	}
}

func TestAcquireRespectsCancellation(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1})
	b.start(t)
	b.acquire(t, image)
	ctx, cancel := context.WithCancelCause(b.ctx)
	cause := errors.New("the execution was canceled")
	cancel(cause)
	if _, err := b.pool.Acquire(ctx, imageOf(image), sandbox.Limits{}); !errors.Is(err, cause) {
		t.Errorf("Acquire on a canceled context = %v, want its cause", err)
	}
}

func TestAnotherImageEvictsAWarmIdleContainer(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1})
	b.start(t)
	warm := b.rt.Live()[0]
	other := b.acquire(t, "other:1")
	if other.Sandbox().ID() == warm {
		t.Fatal("the warm container was leased for another image")
	}
	eventually(t, "the evicted container is removed", func() bool { return !b.live(warm) })
	if r := b.rec.replacements(); !slices.Equal(r, []string{pool.CauseEvicted}) {
		t.Errorf("replacements %v, want [evicted]", r)
	}
	if s := b.pool.Stats(); s.Busy+s.Idle+s.Resetting+s.Creating > 1 {
		t.Errorf("stats %+v: the pool holds more than its size", s)
	}
	// The other image's container serves that image again after its reset.
	id := other.Sandbox().ID()
	other.Reuse()
	if again := b.acquire(t, "other:1"); again.Sandbox().ID() != id {
		t.Errorf("acquired %s, want the reset %s", again.Sandbox().ID(), id)
	}
}

func TestEvictionPrefersContainersOfOtherImages(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 2})
	b.start(t)
	// One idle container of the warm image, which waited longer, and one
	// of another image.
	other := b.acquire(t, "other:1")
	otherID := other.Sandbox().ID()
	other.Reuse()
	eventually(t, "the pool holds two idle containers", func() bool { return b.pool.Stats().Idle == 2 })
	eventually(t, "the evicted container is removed", func() bool { return len(b.rt.Live()) == 2 })

	b.acquire(t, "third:1")
	eventually(t, "a container is removed", func() bool { return len(b.rt.Live()) == 2 })
	if b.live(otherID) {
		t.Errorf("the container of other:1 is kept and a warm one was evicted instead; live %v", b.rt.Live())
	}
}

func TestWarmingRetriesAFailedCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 2})
	b.rt.CreateErr = errInjected // before Start: nothing creates yet
	b.start(t)
	if s := b.pool.Stats(); s.Idle != 2 {
		t.Errorf("stats %+v, want 2 idle", s)
	}
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	failed := 0
	for _, err := range b.rec.createErr {
		if err != nil {
			failed++
		}
	}
	if failed != 1 || len(b.rec.createErr) != 3 {
		t.Errorf("OnCreate saw %v; want 3 creations, 1 failed", b.rec.createErr)
	}
}

// A creation for a lease that fails must not leave the pool short of a
// container for good: the warm pool is what keeps executions from waiting.
func TestFailedCreateForALeaseIsRefilled(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 2})
	b.start(t)
	busy := b.acquire(t, image)
	b.rt.CreateErr = errInjected // nothing creates while the pool is full
	if _, err := b.pool.Acquire(b.ctx, imageOf("other:1"), sandbox.Limits{}); !errors.Is(err, errInjected) {
		t.Fatalf("Acquire with a failing create = %v, want the injected error", err)
	}
	busy.Reuse()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if err := b.pool.WaitWarm(ctx); err != nil {
		t.Errorf("the pool did not refill: %v (stats %+v)", err, b.pool.Stats())
	}
}

func TestReconcileRemovesContainersOfDeadOwners(t *testing.T) {
	t.Parallel()
	now := time.Now()
	old := now.Add(-time.Hour)
	var mu sync.Mutex
	asked := map[string]int{}
	b := setup(t, pool.Config{
		Size:        1,
		OrphanGrace: time.Minute,
		OwnerAlive: func(ctx context.Context, name string) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			asked[name]++
			switch name {
			case "alive":
				return true, nil
			case "unknown":
				return false, errInjected
			}
			return false, nil
		},
	})
	b.rt.Others = []sandbox.Info{
		{ID: "dead-old", Owner: "dead", Created: old, Running: true},
		{ID: "dead-young", Owner: "dead", Created: now, Running: true},
		{ID: "alive-old", Owner: "alive", Created: old, Running: true},
		{ID: "unknown-old", Owner: "unknown", Created: old, Running: true},
		{ID: "mine-old", Owner: owner, Created: old, Running: true}, // lost by an earlier run of ours
		{ID: "mine-young", Owner: owner, Created: now, Running: true},
	}
	err := b.pool.Reconcile(b.ctx)
	if !errors.Is(err, errInjected) {
		t.Errorf("Reconcile = %v, want the OwnerAlive error reported", err)
	}
	var left []string
	for _, info := range b.rt.Others {
		left = append(left, info.ID)
	}
	// A dead owner's containers go whatever their age; the pool's own only
	// past the grace, since a creation of its own may be in flight.
	if want := []string{"alive-old", "unknown-old", "mine-young"}; !slices.Equal(left, want) {
		t.Errorf("containers left %v, want %v", left, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked[owner] != 0 {
		t.Error("OwnerAlive was asked about the pool's own owner")
	}
}

func TestReconcileWithoutOwnerAliveKeepsOthers(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1})
	b.rt.Others = []sandbox.Info{{ID: "theirs", Owner: "other", Created: time.Now().Add(-time.Hour), Running: true}}
	if err := b.pool.Reconcile(b.ctx); err != nil {
		t.Fatal(err)
	}
	if len(b.rt.Others) != 1 {
		t.Errorf("another owner's container was removed with no OwnerAlive to ask")
	}
}

func TestStartRemovesOrphans(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1, OwnerAlive: func(context.Context, string) (bool, error) { return false, nil }})
	b.rt.Others = []sandbox.Info{{ID: "orphan", Owner: "gone", Created: time.Now().Add(-time.Hour), Running: true}}
	b.start(t)
	if len(b.rt.Others) != 0 {
		t.Errorf("Start left the orphan %v", b.rt.Others)
	}
}

func TestReconcileReplacesADeadIdleContainer(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1})
	b.start(t)
	dead := b.rt.Live()[0]
	b.rt.Kill(dead)
	if err := b.pool.Reconcile(b.ctx); err != nil {
		t.Fatal(err)
	}
	if r := b.rec.replacements(); !slices.Equal(r, []string{pool.CauseDead}) {
		t.Errorf("replacements %v, want [dead]", r)
	}
	if l := b.acquire(t, image); l.Sandbox().ID() == dead {
		t.Error("the dead container was leased")
	}
}

func TestReconcileReplacesAnIdleContainerRemovedFromOutside(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1})
	b.start(t)
	gone := b.rt.Live()[0]
	if err := b.rt.Remove(b.ctx, gone); err != nil { // as docker rm -f would
		t.Fatal(err)
	}
	if err := b.pool.Reconcile(b.ctx); err != nil {
		t.Fatal(err)
	}
	if r := b.rec.replacements(); !slices.Equal(r, []string{pool.CauseDead}) {
		t.Errorf("replacements %v, want [dead]", r)
	}
	if l := b.acquire(t, image); l.Sandbox().ID() == gone {
		t.Error("the removed container was leased")
	}
}

func TestReconcileLeavesABusyContainerToItsLease(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1})
	b.start(t)
	l := b.acquire(t, image)
	b.rt.Kill(l.Sandbox().ID())
	if err := b.pool.Reconcile(b.ctx); err != nil {
		t.Fatal(err)
	}
	if r := b.rec.replacements(); len(r) != 0 {
		t.Errorf("replacements %v while the container is leased, want none", r)
	}
	l.Reuse() // the reset of a dead container fails
	if next := b.acquire(t, image); next.Sandbox().ID() == l.Sandbox().ID() {
		t.Error("the dead container was leased again")
	}
	if r := b.rec.replacements(); !slices.Equal(r, []string{pool.CauseResetFailed}) {
		t.Errorf("replacements %v, want [reset_failed]", r)
	}
}

func TestStopRemovesEverything(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 3})
	b.start(t)
	busy := b.acquire(t, image)
	resetting := b.acquire(t, image)
	resetting.Reuse()
	// Ours, but not held by the pool: Stop sweeps it too.
	b.rt.Others = []sandbox.Info{{ID: "lost", Owner: owner, Created: time.Now(), Running: true}}

	if err := b.pool.Stop(b.ctx); err != nil {
		t.Fatal(err)
	}
	if live := b.rt.Live(); len(live) != 0 {
		t.Errorf("containers left after Stop: %v", live)
	}
	if len(b.rt.Others) != 0 {
		t.Errorf("Stop left our lost container: %v", b.rt.Others)
	}
	if _, err := b.pool.Acquire(b.ctx, imageOf(image), sandbox.Limits{}); !errors.Is(err, pool.ErrClosed) {
		t.Errorf("Acquire after Stop = %v, want ErrClosed", err)
	}
	busy.Reuse() // the execution ends after Stop: nothing to give back to
	if live := b.rt.Live(); len(live) != 0 {
		t.Errorf("containers live after a late Reuse: %v", live)
	}
	if err := b.pool.Stop(b.ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStopWhileWarmingLeavesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 4})
	b.rt.CreateErr = errInjected // one warmer backs off and retries
	if err := b.pool.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.pool.Stop(b.ctx); err != nil {
		t.Fatal(err)
	}
	if live := b.rt.Live(); len(live) != 0 {
		t.Errorf("containers left after stopping a warming pool: %v", live)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 3})
	if s := b.pool.Stats(); s != (pool.Stats{}) {
		t.Errorf("stats before Start %+v, want zero", s)
	}
	b.start(t)
	l1 := b.acquire(t, image)
	b.acquire(t, image)
	if s := b.pool.Stats(); s != (pool.Stats{Idle: 1, Busy: 2}) {
		t.Errorf("stats %+v, want 1 idle, 2 busy", s)
	}
	l1.Replace(pool.CauseOOM)
	eventually(t, "the replaced container's successor is warm", func() bool {
		return b.pool.Stats() == pool.Stats{Idle: 2, Busy: 1}
	})
}

// Stopping is not a replacement: a reset that was in flight at Stop, and
// succeeded, must not be reported as a failed one.
func TestStopReportsNoReplacement(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 2})
	b.start(t)
	b.acquire(t, image).Reuse()
	if err := b.pool.Stop(b.ctx); err != nil {
		t.Fatal(err)
	}
	if r := b.rec.replacements(); len(r) != 0 {
		t.Errorf("Stop reported replacements %v, want none", r)
	}
}

// Where a runtime cannot change a container's limits, an execution with
// other limits gets a container created with them, and the warm one waits.
func TestFixedLimitsGetTheirOwnContainer(t *testing.T) {
	t.Parallel()
	b := setupWith(t, func(rt *fake.Runtime) { rt.Fixed = true }, pool.Config{Size: 2})
	b.start(t)
	small := sandbox.Limits{MemoryBytes: 64 << 20, NanoCPUs: 1e9, Pids: 64}
	l, err := b.pool.Acquire(b.ctx, imageOf(image), small)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Sandbox().Limits(); got != small {
		t.Errorf("leased a container with limits %+v, want %+v", got, small)
	}
	if err := l.Sandbox().SetLimits(b.ctx, small); err != nil {
		t.Errorf("set the container's own limits: %v", err)
	}
	l.Reuse()
	warm, err := b.pool.Acquire(b.ctx, imageOf(image), sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if warm.Sandbox().Limits() != (sandbox.Limits{}) {
		t.Errorf("the default limits got a container of %+v", warm.Sandbox().Limits())
	}
	warm.Reuse()
}

// imageOf is the fake runtime's image named ref: its ID is its name.
func imageOf(ref string) sandbox.Image { return sandbox.Image{Ref: ref, ID: ref} }
