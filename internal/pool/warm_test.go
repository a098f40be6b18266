package pool_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/execq/execq/internal/pool"
	"github.com/execq/execq/internal/sandbox/fake"
)

func TestWarmKeepsContainersOfSeveralImages(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 4, Warm: []pool.Warm{{Image: "python:1", Count: 2}, {Image: "node:1", Count: 1}}})
	b.start(t)
	by := b.pool.ImageStats()
	if by["python:1"] != (pool.ImageStats{Idle: 2, Warm: 2}) || by["node:1"] != (pool.ImageStats{Idle: 1, Warm: 1}) {
		t.Errorf("by image %+v; want 2 idle python, 1 idle node", by)
	}
	if s := b.pool.Stats(); s != (pool.Stats{Idle: 3}) {
		t.Errorf("stats %+v, want 3 idle: the fourth slot is for cold starts", s)
	}
	b.acquire(t, "python:1")
	b.acquire(t, "python:1")
	b.acquire(t, "node:1")
	if created, _ := b.rt.Counts(); created != 3 {
		t.Errorf("%d containers created, want the 3 warm ones", created)
	}
}

func TestWarmOfZeroKeepsNoneOfTheImage(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 2, Image: image, Warm: []pool.Warm{{Image: image, Count: 0}, {Image: "c:1", Count: 1}}})
	b.start(t)
	if by := b.pool.ImageStats(); by[image].Idle != 0 || by["c:1"].Idle != 1 {
		t.Errorf("by image %+v; want none of %s and one of c:1", by, image)
	}
}

func TestWarmAboveSizeIsRefused(t *testing.T) {
	t.Parallel()
	_, err := pool.New(fake.NewRuntime(owner), pool.Config{Image: image, Owner: owner, Size: 2,
		Warm: []pool.Warm{{Image: "a:1", Count: 2}, {Image: "b:1", Count: 1}}})
	if err == nil || !strings.Contains(err.Error(), "3 containers to keep warm, above the pool size 2") {
		t.Errorf("New = %v, want the warm counts refused", err)
	}
}

// coldStarts records OnColdStart.
type coldStarts struct {
	mu     sync.Mutex
	images []string
}

func (c *coldStarts) add(image string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.images = append(c.images, image)
}

func (c *coldStarts) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.images)
}

func TestAnImageWithNoWarmContainerIsAColdStart(t *testing.T) {
	t.Parallel()
	cold := &coldStarts{}
	b := setup(t, pool.Config{Size: 3, Warm: []pool.Warm{{Image: "python:1", Count: 2}}, OnColdStart: cold.add})
	b.start(t)
	b.acquire(t, "python:1")
	if c := cold.list(); len(c) != 0 {
		t.Errorf("cold starts %v for a warm image", c)
	}
	c1 := b.acquire(t, "c:1")
	if c := cold.list(); !slices.Equal(c, []string{"c:1"}) {
		t.Errorf("cold starts %v, want [c:1]", c)
	}
	if by := b.pool.ImageStats(); by["c:1"].Busy != 1 {
		t.Errorf("by image %+v; want c:1 busy", by)
	}
	// Reset, it serves the next execution of its image warm.
	id := c1.Sandbox().ID()
	c1.Reuse()
	if again := b.acquire(t, "c:1"); again.Sandbox().ID() != id {
		t.Errorf("acquired %s, want the reset %s", again.Sandbox().ID(), id)
	}
	if c := cold.list(); len(c) != 1 {
		t.Errorf("cold starts %v, want still one", c)
	}
}

func TestEvictionTakesASurplusContainerBeforeAWarmOne(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 3, Warm: []pool.Warm{{Image: "python:1", Count: 2}}})
	b.start(t)
	// The free slot takes a node container; it stays idle after its reset.
	n := b.acquire(t, "node:1")
	nodeID := n.Sandbox().ID()
	n.Reuse()
	b.acquire(t, "node:1").Reuse()
	eventually(t, "the node container is idle", func() bool { return b.pool.Stats().Idle == 3 })
	// A C execution needs a slot: the node container, beyond Warm, goes;
	// the warm python ones stay.
	b.acquire(t, "c:1")
	eventually(t, "the node container is removed", func() bool { return !b.live(nodeID) })
	if by := b.pool.ImageStats(); by["python:1"].Idle != 2 {
		t.Errorf("by image %+v; want both warm python containers kept", by)
	}
}

func TestAWarmContainerTakenForAColdStartIsWarmedAgainWhenASlotFrees(t *testing.T) {
	t.Parallel()
	b := setup(t, pool.Config{Size: 2, Warm: []pool.Warm{{Image: "python:1", Count: 2}}})
	b.start(t)
	c := b.acquire(t, "c:1") // evicts a warm python container
	if by := b.pool.ImageStats(); by["python:1"].Idle != 1 {
		t.Fatalf("by image %+v; want one python container left idle", by)
	}
	c.Replace(pool.CauseError)
	if err := b.pool.WaitWarm(b.ctx); err != nil {
		t.Fatal(err)
	}
	if by := b.pool.ImageStats(); by["python:1"].Idle != 2 {
		t.Errorf("by image %+v; want python warm again", by)
	}
}
