// Package pool keeps warm sandbox containers so that an execution never
// waits for one to be created. A container serves one execution at a time;
// after it, the container is reset in the background (every leftover
// process killed, writable directories emptied) or, after a timeout, an
// OOM kill, a failed reset or MaxUses executions, replaced.
package pool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/loop"
	"github.com/execq/execq/internal/retry"
	"github.com/execq/execq/internal/sandbox"
)

// ErrClosed is returned by Acquire once Stop has begun.
var ErrClosed = errors.New("pool is stopped")

// ErrNoSessionRoom is returned by AcquireSession when the pool holds
// Config.Sessions containers for sessions already.
var ErrNoSessionRoom = errors.New("the worker holds as many sessions as it may")

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
	// CauseSessionLost: a session's container whose session was lost.
	CauseSessionLost = "session_lost"
)

// Warm is a number of warm containers of one image.
type Warm struct {
	// Image is a reference the runtime creates containers from.
	Image string
	// Count is how many containers of it the pool keeps.
	Count int
}

// Config configures a Pool.
type Config struct {
	// Image is the image kept warm when Warm is empty. Required.
	Image string
	// Warm lists the images kept warm and how many containers of each, at
	// most Size in all. The pool creates them at Start and whenever a
	// slot frees while one of them is short; the slots beyond them hold
	// containers created for executions that found no idle one of their
	// image (cold starts), kept idle for the next one of that image until
	// the slot is needed. Defaults to Size containers of Image.
	Warm []Warm
	// Owner names this worker; it is what the runtime labels containers
	// with. Required.
	Owner string
	// Size is how many containers the pool holds at most for executions.
	// Defaults to 4.
	Size int
	// Sessions is how many containers sessions may hold besides, taken
	// with AcquireSession; 0 allows none.
	Sessions int
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
	// OnColdStart, when set, is told the image of each container created
	// for an execution that found no idle container of its image.
	OnColdStart func(image string)
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
	if len(c.Warm) == 0 {
		c.Warm = []Warm{{Image: c.Image, Count: c.Size}}
	}
	return c
}

func (c Config) validate() error {
	if c.Image == "" {
		return errors.New("pool: an image is required")
	}
	if c.Owner == "" {
		return errors.New("pool: an owner is required")
	}
	total := 0
	for _, w := range c.Warm {
		if w.Image == "" || w.Count < 0 {
			return fmt.Errorf("pool: warm %d containers of %q: give an image and a count of at least 0", w.Count, w.Image)
		}
		total += w.Count
	}
	if total > c.Size {
		return fmt.Errorf("pool: %d containers to keep warm, above the pool size %d", total, c.Size)
	}
	return nil
}

type state int

const (
	stateIdle state = iota
	stateBusy
	stateResetting
)

type entry struct {
	sb    sandbox.Sandbox
	name  string // the image as it was asked for, for Stats
	uses  int
	state state
	// session: held by a session, beside the pool's Size.
	session bool
}

// target is an image the pool keeps warm.
type target struct {
	Warm
	id       string // the image ID its containers were last created from
	creating int    // warm creations in flight
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
	sessions int               // containers held or being created for sessions
	targets  []*target         // the images kept warm
	cold     map[string]int    // creations for a lease in flight, by image name
	changed  chan struct{}     // closed and renewed on every change
	closed   bool
}

// New returns a pool of containers created through rt.
func New(rt Runtime, cfg Config) (*Pool, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f, ok := rt.(fixedLimits)
	p := &Pool{
		rt:      rt,
		fixed:   ok && f.FixedLimits(),
		cfg:     cfg,
		ctx:     ctx,
		cancel:  cancel,
		all:     make(map[string]*entry),
		cold:    make(map[string]int),
		changed: make(chan struct{}),
	}
	for _, w := range cfg.Warm {
		p.targets = append(p.targets, &target{Warm: w})
	}
	return p, nil
}

// Start removes orphaned containers, begins warming the containers of
// Warm, and reconciles every ReconcileInterval. Warming goes on in the
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

// WaitWarm waits until the pool holds the idle containers of Warm or ctx
// ends.
func (p *Pool) WaitWarm(ctx context.Context) error {
	for {
		p.mu.Lock()
		short, ch := p.shortLocked(), p.changed
		p.mu.Unlock()
		if short == "" {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for warm containers (%s): %w", short, ctx.Err())
		}
	}
}

// shortLocked says which images have fewer idle containers than Warm
// asks for; "" when none.
func (p *Pool) shortLocked() string {
	var short []string
	for _, t := range p.targets {
		idle := 0
		if t.id != "" {
			for _, e := range p.idle {
				if e.sb.Image() == t.id {
					idle++
				}
			}
		}
		if idle < t.Count {
			short = append(short, fmt.Sprintf("%s: %d of %d idle", t.Image, idle, t.Count))
		}
	}
	return strings.Join(short, ", ")
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

// Acquire returns a container of img (matched by its ID, as containers
// report theirs; its Ref names it in Stats and OnColdStart), taking an
// idle one when there is one, waiting for one being reset, creating one
// while the pool holds fewer than Size, evicting an idle container of another image when that makes
// room (one beyond what Warm keeps first), and otherwise waiting until
// ctx ends. limits are the execution's: where the runtime cannot change a
// container's limits, only a container created with them serves.
func (p *Pool) Acquire(ctx context.Context, img sandbox.Image, limits sandbox.Limits) (*Lease, error) {
	image, name := img.ID, cmp.Or(img.Ref, img.ID)
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
		// A reset takes far less than a creation: wait for it.
		resetting := p.resettingServesLocked(image, limits)
		room := !resetting && p.countLocked() < p.cfg.Size
		if !room && !resetting {
			if victim := p.takeIdleOtherLocked(image, limits); victim != nil {
				delete(p.all, victim.sb.ID())
				p.removeLocked(victim, CauseEvicted)
				room = true
			}
		}
		if room {
			p.creating++
			p.cold[name]++
			p.mu.Unlock()
			if p.cfg.OnColdStart != nil {
				p.cfg.OnColdStart(name)
			}
			return p.createForLease(ctx, image, name, limits)
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

func (p *Pool) createForLease(ctx context.Context, image, name string, limits sandbox.Limits) (*Lease, error) {
	sb, err := p.create(ctx, image, limits)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creating--
	if p.cold[name]--; p.cold[name] <= 0 {
		delete(p.cold, name)
	}
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
	e := &entry{sb: sb, name: name, uses: 1, state: stateBusy}
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

// resettingServesLocked reports whether a container being reset could
// serve image with limits once it is idle.
func (p *Pool) resettingServesLocked(image string, limits sandbox.Limits) bool {
	for _, e := range p.all {
		if e.state == stateResetting && p.serves(e, image, limits) {
			return true
		}
	}
	return false
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
// those that cannot serve image with limits, preferring ones beyond what
// Warm keeps of their image.
func (p *Pool) takeIdleOtherLocked(image string, limits sandbox.Limits) *entry {
	pick, pickSurplus := -1, false
	for i, e := range p.idle {
		if p.serves(e, image, limits) {
			continue
		}
		if surplus := p.surplusLocked(e.sb.Image()); pick < 0 || surplus && !pickSurplus {
			pick, pickSurplus = i, surplus
		}
	}
	if pick < 0 {
		return nil
	}
	e := p.idle[pick]
	p.idle = append(p.idle[:pick], p.idle[pick+1:]...)
	return e
}

// surplusLocked reports whether the pool holds more containers of the
// image ID than Warm keeps of it.
func (p *Pool) surplusLocked(id string) bool {
	for _, t := range p.targets {
		if t.id == id {
			return p.heldLocked(id) > t.Count
		}
	}
	return true
}

// heldLocked counts the pool's containers of the image ID, in any state,
// but those held by sessions.
func (p *Pool) heldLocked(id string) int {
	n := 0
	for _, e := range p.all {
		if e.sb.Image() == id && !e.session {
			n++
		}
	}
	return n
}

// countLocked counts the containers within Size: those held or being
// created, but those of sessions.
func (p *Pool) countLocked() int {
	n := p.creating
	for _, e := range p.all {
		if !e.session {
			n++
		}
	}
	return n
}

// AcquireSession returns a container of img for a session to hold beside
// the pool's Size: an idle one when there is one (the pool warms another
// in its place), a new one otherwise. It returns ErrNoSessionRoom when
// Config.Sessions containers are held for sessions. Its lease's Reuse
// gives the container to the pool, to be reset and serve executions, when
// the pool has room for it, and removes it otherwise.
func (p *Pool) AcquireSession(ctx context.Context, img sandbox.Image, limits sandbox.Limits) (*Lease, error) {
	image, name := img.ID, cmp.Or(img.Ref, img.ID)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if p.sessions >= p.cfg.Sessions {
		p.mu.Unlock()
		return nil, ErrNoSessionRoom
	}
	p.sessions++
	if e := p.takeIdleLocked(image, limits); e != nil {
		e.state, e.session = stateBusy, true
		e.uses++
		p.fillLocked()
		p.notifyLocked()
		p.mu.Unlock()
		return &Lease{p: p, e: e}, nil
	}
	p.mu.Unlock()
	if p.cfg.OnColdStart != nil {
		p.cfg.OnColdStart(name)
	}
	sb, err := p.create(ctx, image, limits)
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.notifyLocked()
	if err != nil {
		p.sessions--
		return nil, err
	}
	if p.closed {
		p.sessions--
		p.removeLocked(&entry{sb: sb}, "")
		return nil, ErrClosed
	}
	e := &entry{sb: sb, name: name, uses: 1, state: stateBusy, session: true}
	p.all[sb.ID()] = e
	return &Lease{p: p, e: e}, nil
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
	if e.session {
		e.session = false
		p.sessions--
		if cause == "" && p.countLocked() > p.cfg.Size {
			// The pool is full without it: removed, not replaced.
			delete(p.all, e.sb.ID())
			p.removeLocked(e, "")
			return
		}
	}
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
		took := time.Since(start)
		if p.cfg.OnReset != nil {
			p.cfg.OnReset(took, rep, err)
		}
		short := e.sb.ID()[:min(12, len(e.sb.ID()))]
		if err == nil {
			// A reset of a second or more kept the container from the
			// queue (a fork bomb's, say): that is said at info.
			level := slog.LevelDebug
			if took >= time.Second {
				level = slog.LevelInfo
			}
			p.cfg.Logger.Log(context.Background(), level, "container reset", "container", short,
				"killed", rep.Killed, "removed", rep.Removed, "took", took.Round(time.Microsecond))
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			delete(p.all, e.sb.ID())
			p.removeLocked(e, "")
			return
		}
		if err != nil {
			p.cfg.Logger.Warn("container reset failed; replacing it", "container", short, "took", took.Round(time.Microsecond), "err", err)
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

// fillLocked starts creating warm containers, while the pool has room, of
// the images of Warm that are short of their count.
func (p *Pool) fillLocked() {
	if p.closed {
		return
	}
	for p.countLocked() < p.cfg.Size {
		t := p.neediestLocked()
		if t == nil {
			return
		}
		p.creating++
		t.creating++
		p.wg.Add(1)
		go p.warm(t)
	}
}

// neediestLocked returns the image of Warm furthest below its count, the
// first listed among equals; nil when none is.
func (p *Pool) neediestLocked() *target {
	var pick *target
	most := 0
	for _, t := range p.targets {
		held := 0
		if t.id != "" {
			held = p.heldLocked(t.id)
		}
		if short := t.Count - held - t.creating; short > most {
			pick, most = t, short
		}
	}
	return pick
}

// warm creates one idle container of t's image, retrying while the
// runtime fails, until the pool stops.
func (p *Pool) warm(t *target) {
	defer p.wg.Done()
	b := retry.Backoff{First: 100 * time.Millisecond, Max: 10 * time.Second}
	for {
		sb, err := p.create(p.ctx, t.Image, p.cfg.Limits)
		p.mu.Lock()
		if err == nil {
			p.creating--
			t.creating--
			t.id = sb.Image()
			if p.closed {
				p.removeLocked(&entry{sb: sb}, "")
			} else {
				e := &entry{sb: sb, name: t.Image, state: stateIdle}
				p.all[sb.ID()] = e
				p.idle = append(p.idle, e)
			}
			p.notifyLocked()
			p.mu.Unlock()
			return
		}
		if p.closed {
			p.creating--
			t.creating--
			p.notifyLocked()
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		wait := b.Next()
		p.cfg.Logger.Warn("warm a container; retrying", "image", t.Image, "in", wait, "err", err)
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
	// Sessions counts the containers held by sessions (also counted as
	// Busy) or being created for them.
	Sessions int
}

// Stats returns the current counts.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Creating: p.creating, Sessions: p.sessions}
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

// ImageStats counts the pool's containers of one image.
type ImageStats struct {
	Idle, Busy, Resetting, Creating int
	// Warm is how many Warm keeps of it.
	Warm int
}

// ImageStats returns the current counts by image, named as Warm names it
// or as the execution that had it created did; every image of Warm is
// there.
func (p *Pool) ImageStats() map[string]ImageStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	by := make(map[string]ImageStats)
	for _, t := range p.targets {
		is := by[t.Image]
		is.Warm += t.Count
		is.Creating += t.creating
		by[t.Image] = is
	}
	for name, n := range p.cold {
		is := by[name]
		is.Creating += n
		by[name] = is
	}
	for _, e := range p.all {
		is := by[e.name]
		switch e.state {
		case stateIdle:
			is.Idle++
		case stateBusy:
			is.Busy++
		case stateResetting:
			is.Resetting++
		}
		by[e.name] = is
	}
	return by
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
