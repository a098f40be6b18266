// Package pool keeps warm sandbox containers so that an execution never
// waits for one to be created. A container serves one execution at a time;
// after it, the container is reset in the background (every leftover
// process killed, writable directories emptied) or, after a timeout, an
// OOM kill, a failed reset or MaxUses executions, replaced.
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/loop"
	"github.com/execq/execq/internal/retry"
	"github.com/execq/execq/internal/sandbox"
)

// ErrClosed is returned by Acquire once Stop has begun.
var ErrClosed = errors.New("pool is stopped")

// Runtime is what the pool needs from a container runtime.
type Runtime interface {
	Create(ctx context.Context, image string, limits sandbox.Limits) (sandbox.Sandbox, error)
	Remove(ctx context.Context, id string) error
	List(ctx context.Context) ([]sandbox.Info, error)
}

// fixedLimits is what a runtime whose sandboxes keep the limits they are
// created with implements.
type fixedLimits interface {
	FixedLimits() bool
}

// Causes of a container's replacement, as reported to OnReplace.
const (
	CauseTimeout     = "timeout"
	CauseOOM         = "oom"
	CauseCanceled    = "canceled"
	CauseError       = "error"
	CauseResetFailed = "reset_failed"
	CauseMaxUses     = "max_uses"
	CauseEvicted     = "evicted"
	CauseDead        = "dead"
)

// Config configures a Pool.
type Config struct {
	// Image is the image kept warm. Required.
	Image string
	// Owner names this worker; it is what the runtime labels containers
	// with. Required.
	Owner string
	// Size is how many containers the pool holds at most, all kept warm of
	// Image when idle. Defaults to 4.
	Size int
	// Limits are the warm containers' limits; zero fields are the
	// runtime's defaults.
	Limits sandbox.Limits
	// MaxUses is how many executions a container serves before it is
	// replaced. Defaults to 1000.
	MaxUses int
	// OwnerAlive reports whether the worker named owner is alive; the
	// containers of a dead one are removed. Nil treats every other owner as
	// alive.
	OwnerAlive func(ctx context.Context, owner string) (bool, error)
	// OrphanGrace is the age under which a container of this owner that the
	// pool does not hold is not taken for an orphan. Defaults to 1m.
	OrphanGrace time.Duration
	// ReconcileInterval is how often orphans and dead containers are looked
	// for. Defaults to 1m.
	ReconcileInterval time.Duration
	// ResetTimeout bounds a reset. Defaults to 30s.
	ResetTimeout time.Duration
	// Clock is compared with containers' creation times and ticks the
	// reconciliation. Defaults to the system's clock.
	Clock clock.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnReplace, when set, is told each replacement's cause.
	OnReplace func(cause string)
	// OnCreate, when set, is told how long each creation took.
	OnCreate func(d time.Duration, err error)
	// OnReset, when set, is told how long each reset took, as the pool saw
	// it, and what it did.
	OnReset func(d time.Duration, rep sandbox.ResetReport, err error)
}

func (c Config) withDefaults() Config {
	if c.Size <= 0 {
		c.Size = 4
	}
	if c.MaxUses <= 0 {
		c.MaxUses = 1000
	}
	if c.OrphanGrace <= 0 {
		c.OrphanGrace = time.Minute
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = time.Minute
	}
	if c.ResetTimeout <= 0 {
		c.ResetTimeout = 30 * time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.System()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

type state int

const (
	stateIdle state = iota
	stateBusy
	stateResetting
)

type entry struct {
	sb    sandbox.Sandbox
	uses  int
	state state
}

// Pool holds sandbox containers. Its zero value is not usable; New makes
// one and Start fills it.
type Pool struct {
	rt  Runtime
	cfg Config
	// fixed: sandboxes keep their creation's limits, so an execution takes
	// one with its own limits or a new one.
	fixed bool

	ctx       context.Context // ends at Stop; bounds background work
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	reconcile *loop.Loop // nil until Start

	mu       sync.Mutex
	all      map[string]*entry // every container the pool holds
	idle     []*entry          // ready, most recently used last
	creating int               // creations in flight
	warmID   string            // the image ID the warm image resolved to last
	changed  chan struct{}     // closed and renewed on every change
	closed   bool
}

// New returns a pool of containers created through rt.
func New(rt Runtime, cfg Config) (*Pool, error) {
	if cfg.Image == "" {
		return nil, errors.New("pool: an image is required")
	}
	if cfg.Owner == "" {
		return nil, errors.New("pool: an owner is required")
	}
	ctx, cancel := context.WithCancel(context.Background())
	f, ok := rt.(fixedLimits)
	return &Pool{
		rt:      rt,
		fixed:   ok && f.FixedLimits(),
		cfg:     cfg.withDefaults(),
		ctx:     ctx,
		cancel:  cancel,
		all:     make(map[string]*entry),
		changed: make(chan struct{}),
	}, nil
}

// Start removes orphaned containers, begins warming Size containers of the
// image, and reconciles every ReconcileInterval. Warming goes on in the
// background, retried while the runtime fails; Start does not wait for it.
func (p *Pool) Start(ctx context.Context) error {
	if err := p.Reconcile(ctx); err != nil {
		p.cfg.Logger.Warn("reconcile containers at start", "err", err)
	}
	p.mu.Lock()
	p.fillLocked()
	p.mu.Unlock()
	p.reconcile = loop.New(loop.Config{
		What:    "reconcile containers",
		Every:   p.cfg.ReconcileInterval,
		Timeout: time.Minute,
		Pass:    p.Reconcile,
		Clock:   p.cfg.Clock,
		Logger:  p.cfg.Logger,
	})
	p.reconcile.Start(ctx)
	return nil
}

// WaitWarm waits until the pool holds Size idle containers or ctx ends.
func (p *Pool) WaitWarm(ctx context.Context) error {
	for {
		p.mu.Lock()
		n, ch := len(p.idle), p.changed
		p.mu.Unlock()
		if n >= p.cfg.Size {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d warm containers (have %d): %w", p.cfg.Size, n, ctx.Err())
		}
	}
}

// Lease is one container held by one execution. Exactly one of Reuse or
// Replace ends it.
type Lease struct {
	p    *Pool
	e    *entry
	once sync.Once
}

// Sandbox is the leased container.
func (l *Lease) Sandbox() sandbox.Sandbox { return l.e.sb }

// Reuse gives the container back; it is reset in the background and then
// serves another execution, or is replaced when the reset fails or it has
// served MaxUses executions.
func (l *Lease) Reuse() {
	l.once.Do(func() { l.p.release(l.e, "") })
}

// Replace gives the container back to be removed, and a new one warmed in
// its place, because of cause.
func (l *Lease) Replace(cause string) {
	l.once.Do(func() { l.p.release(l.e, cause) })
}

// Acquire returns a container of image (an image ID, as containers report
// theirs), taking an idle one when there is one, creating one while the
// pool holds fewer than Size, evicting an idle container of another image
// when that makes room, and otherwise waiting until ctx ends. limits are
// the execution's: where the runtime cannot change a container's limits,
// only a container created with them serves.
func (p *Pool) Acquire(ctx context.Context, image string, limits sandbox.Limits) (*Lease, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if e := p.takeIdleLocked(image, limits); e != nil {
			e.state = stateBusy
			e.uses++
			p.notifyLocked()
			p.mu.Unlock()
			return &Lease{p: p, e: e}, nil
		}
		room := len(p.all)+p.creating < p.cfg.Size
		if !room {
			if victim := p.takeIdleOtherLocked(image, limits); victim != nil {
				delete(p.all, victim.sb.ID())
				p.removeLocked(victim, CauseEvicted)
				room = true
			}
		}
		if room {
			p.creating++
			p.mu.Unlock()
			return p.createForLease(ctx, image, limits)
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("acquire a container of %q: %w", image, context.Cause(ctx))
		}
	}
}

func (p *Pool) createForLease(ctx context.Context, image string, limits sandbox.Limits) (*Lease, error) {
	sb, err := p.create(ctx, image, limits)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creating--
	defer p.notifyLocked()
	if err != nil {
		// The slot may have been made by evicting a warm container.
		p.fillLocked()
		return nil, err
	}
	if p.closed {
		p.removeLocked(&entry{sb: sb}, "")
		return nil, ErrClosed
	}
	e := &entry{sb: sb, uses: 1, state: stateBusy}
	p.all[sb.ID()] = e
	return &Lease{p: p, e: e}, nil
}

func (p *Pool) create(ctx context.Context, image string, limits sandbox.Limits) (sandbox.Sandbox, error) {
	start := time.Now()
	sb, err := p.rt.Create(ctx, image, limits)
	if p.cfg.OnCreate != nil {
		p.cfg.OnCreate(time.Since(start), err)
	}
	if err != nil {
		return nil, fmt.Errorf("create a container of %q: %w", image, err)
	}
	return sb, nil
}

// serves reports whether e's container may serve an execution of image
// with limits.
func (p *Pool) serves(e *entry, image string, limits sandbox.Limits) bool {
	return e.sb.Image() == image && (!p.fixed || e.sb.Limits() == limits)
}

func (p *Pool) takeIdleLocked(image string, limits sandbox.Limits) *entry {
	for i := len(p.idle) - 1; i >= 0; i-- {
		e := p.idle[i]
		if !p.serves(e, image, limits) {
			continue
		}
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
		if !alive(e.sb) {
			// Its runtime knows it is gone: never handed out.
			delete(p.all, e.sb.ID())
			p.removeLocked(e, CauseDead)
			p.fillLocked()
			continue
		}
		return e
	}
	return nil
}

// liveness is what a sandbox whose runtime can tell it is gone (its
// agent's channel closed) implements.
type liveness interface {
	Alive() bool
}

func alive(sb sandbox.Sandbox) bool {
	l, ok := sb.(liveness)
	return !ok || l.Alive()
}

// takeIdleOtherLocked takes the idle container that waited longest among
// those that cannot serve image with limits, preferring ones not of the
// warm image.
func (p *Pool) takeIdleOtherLocked(image string, limits sandbox.Limits) *entry {
	pick := -1
	for i, e := range p.idle {
		if p.serves(e, image, limits) {
			continue
		}
		if pick < 0 || p.idle[pick].sb.Image() == p.warmID && e.sb.Image() != p.warmID {
			pick = i
		}
	}
	if pick < 0 {
		return nil
	}
	e := p.idle[pick]
	p.idle = append(p.idle[:pick], p.idle[pick+1:]...)
	return e
}

func (p *Pool) release(e *entry, cause string) {
	p.mu.Lock()
	if p.closed {
		// Stop may have taken its list already: remove it here and now.
		delete(p.all, e.sb.ID())
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.rt.Remove(ctx, e.sb.ID()); err != nil {
			p.cfg.Logger.Warn("remove container", "container", e.sb.ID(), "err", err)
		}
		return
	}
	defer p.mu.Unlock()
	if cause == "" && e.uses >= p.cfg.MaxUses {
		cause = CauseMaxUses
	}
	if cause != "" {
		delete(p.all, e.sb.ID())
		p.removeLocked(e, cause)
		p.fillLocked()
		return
	}
	e.state = stateResetting
	p.notifyLocked()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ResetTimeout)
		start := time.Now()
		rep, err := e.sb.Reset(ctx)
		cancel()
		if p.cfg.OnReset != nil {
			p.cfg.OnReset(time.Since(start), rep, err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			delete(p.all, e.sb.ID())
			p.removeLocked(e, "")
			return
		}
		if err != nil {
			p.cfg.Logger.Warn("container reset failed; replacing it", "container", e.sb.ID()[:min(12, len(e.sb.ID()))], "err", err)
			delete(p.all, e.sb.ID())
			p.removeLocked(e, CauseResetFailed)
			p.fillLocked()
			return
		}
		e.state = stateIdle
		p.idle = append(p.idle, e)
		p.notifyLocked()
	}()
}

// removeLocked removes e's container in the background; e is no longer in
// p.all. A non-empty cause is reported as a replacement.
func (p *Pool) removeLocked(e *entry, cause string) {
	if cause != "" && p.cfg.OnReplace != nil {
		p.cfg.OnReplace(cause)
	}
	p.notifyLocked()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), time.Minute)
		defer cancel()
		if err := p.rt.Remove(ctx, e.sb.ID()); err != nil {
			p.cfg.Logger.Warn("remove container", "container", e.sb.ID(), "err", err)
		}
	}()
}

// fillLocked starts creating warm containers of the image until the pool
// holds Size.
func (p *Pool) fillLocked() {
	if p.closed {
		return
	}
	for len(p.all)+p.creating < p.cfg.Size {
		p.creating++
		p.wg.Add(1)
		go p.warm()
	}
}

// warm creates one idle container of the image, retrying while the runtime
// fails, until the pool stops.
func (p *Pool) warm() {
	defer p.wg.Done()
	b := retry.Backoff{First: 100 * time.Millisecond, Max: 10 * time.Second}
	for {
		sb, err := p.create(p.ctx, p.cfg.Image, p.cfg.Limits)
		p.mu.Lock()
		if err == nil {
			p.creating--
			p.warmID = sb.Image()
			if p.closed {
				p.removeLocked(&entry{sb: sb}, "")
			} else {
				e := &entry{sb: sb, state: stateIdle}
				p.all[sb.ID()] = e
				p.idle = append(p.idle, e)
			}
			p.notifyLocked()
			p.mu.Unlock()
			return
		}
		if p.closed {
			p.creating--
			p.notifyLocked()
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		wait := b.Next()
		p.cfg.Logger.Warn("warm a container; retrying", "image", p.cfg.Image, "in", wait, "err", err)
		_ = retry.Sleep(p.ctx, wait)
	}
}

func (p *Pool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Stats counts the pool's containers.
type Stats struct {
	Idle, Busy, Resetting, Creating int
}

// Stats returns the current counts.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Creating: p.creating}
	for _, e := range p.all {
		switch e.state {
		case stateIdle:
			s.Idle++
		case stateBusy:
			s.Busy++
		case stateResetting:
			s.Resetting++
		}
	}
	return s
}

// Stop ends warming and resets, then removes every container the pool
// holds, busy ones included, and any other container of its owner: call it
// after the executions have ended.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.cancel()
	p.notifyLocked()
	p.mu.Unlock()

	if p.reconcile != nil {
		p.reconcile.Stop()
	}
	p.wg.Wait()

	p.mu.Lock()
	entries := make([]*entry, 0, len(p.all))
	for _, e := range p.all {
		entries = append(entries, e)
	}
	p.all = map[string]*entry{}
	p.idle = nil
	p.mu.Unlock()

	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.sb.ID())
	}
	// Also whatever of ours the pool lost track of.
	infos, listErr := p.rt.List(ctx)
	for _, info := range infos {
		if info.Owner == p.cfg.Owner && !slices.Contains(ids, info.ID) {
			ids = append(ids, info.ID)
		}
	}
	errs := make(chan error, len(ids))
	for _, id := range ids {
		go func() { errs <- p.rt.Remove(ctx, id) }()
	}
	all := []error{listErr}
	for range ids {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}
