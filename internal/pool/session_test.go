package pool_test

import (
	"errors"
	"testing"

	"github.com/execq/execq/internal/pool"
	"github.com/execq/execq/internal/sandbox"
)

// A session takes a warm container, which the pool replaces at once; the
// sessions' containers are beside Size, bounded by Sessions; a session's
// container comes back to the pool (reset) when there is room for it, and
// is removed when there is not.
func TestSessionContainersAreBesideTheSize(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1, Sessions: 2})
	b.start(t)
	first, err := b.pool.AcquireSession(b.ctx, imageOf(image), sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.pool.WaitWarm(b.ctx); err != nil {
		t.Fatalf("the pool did not warm a container in place of the session's: %v", err)
	}
	second, err := b.pool.AcquireSession(b.ctx, imageOf(image), sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.AcquireSession(b.ctx, imageOf(image), sandbox.Limits{}); !errors.Is(err, pool.ErrNoSessionRoom) {
		t.Fatalf("a third session: %v, want ErrNoSessionRoom", err)
	}
	if err := b.pool.WaitWarm(b.ctx); err != nil {
		t.Fatal(err)
	}
	if s := b.pool.Stats(); s.Sessions != 2 || s.Idle != 1 || s.Busy != 2 {
		t.Fatalf("stats %+v: want 2 sessions (busy) and 1 idle", s)
	}
	// An execution still gets the pool's container.
	l := b.acquire(t, image)
	l.Reuse()

	// The pool is full: the first session's container is removed.
	id := first.Sandbox().ID()
	first.Reuse()
	eventually(t, "the first session's container removed", func() bool { return !b.live(id) })

	for _, c := range b.rec.replacements() {
		t.Fatalf("replacement %q: a session's end is no replacement", c)
	}
	second.Reuse()
}

// With room for it, a session's container is reset and serves the next
// execution.
func TestSessionContainerServesAfterItsSession(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 1, Sessions: 1, Warm: []pool.Warm{{Image: image, Count: 0}}})
	b.start(t)
	s, err := b.pool.AcquireSession(b.ctx, imageOf(image), sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	id := s.Sandbox().ID()
	s.Reuse()
	l := b.acquire(t, image)
	defer l.Reuse()
	if l.Sandbox().ID() != id {
		t.Fatalf("the execution got %s, not the session's reset container %s", l.Sandbox().ID(), id)
	}
}
