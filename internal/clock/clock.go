// Package clock is time as a dependency: the system's clock for the
// programs, and a fake one that tests move by hand, so that no test waits
// out an interval.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time and makes tickers.
type Clock interface {
	Now() time.Time
	NewTicker(d time.Duration) Ticker
}

// Ticker delivers ticks on C until Stop, like time.Ticker: a tick that
// finds the last one not yet received is dropped.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// System is the system's clock.
func System() Clock { return system{} }

type system struct{}

func (system) Now() time.Time                   { return time.Now() }
func (system) NewTicker(d time.Duration) Ticker { return systemTicker{time.NewTicker(d)} }

type systemTicker struct{ t *time.Ticker }

func (t systemTicker) C() <-chan time.Time { return t.t.C }
func (t systemTicker) Stop()               { t.t.Stop() }

// Fake is a clock that moves only when Advance or Set moves it. Its tickers
// tick when it passes their next tick. It is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	tickers map[*fakeTicker]struct{}
	// made is signalled each time a ticker is made, so that a test can wait
	// for a loop to be ready before it moves the clock.
	made chan struct{}
}

// NewFake returns a fake clock set to now.
func NewFake(now time.Time) *Fake {
	return &Fake{now: now, tickers: map[*fakeTicker]struct{}{}, made: make(chan struct{}, 64)}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock forward by d and ticks every ticker it passes,
// once each (as a real ticker drops ticks nobody received).
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for t := range f.tickers {
		if f.now.Before(t.next) {
			continue
		}
		select {
		case t.c <- f.now:
		default:
		}
		for !f.now.Before(t.next) {
			t.next = t.next.Add(t.every)
		}
	}
}

// Tickers returns how many tickers are running.
func (f *Fake) Tickers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tickers)
}

// Made is signalled once for each ticker made.
func (f *Fake) Made() <-chan struct{} { return f.made }

// NewTicker returns a ticker that ticks every d of fake time.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	f.mu.Lock()
	t := &fakeTicker{clock: f, every: d, next: f.now.Add(d), c: make(chan time.Time, 1)}
	f.tickers[t] = struct{}{}
	f.mu.Unlock()
	select {
	case f.made <- struct{}{}:
	default:
	}
	return t
}

type fakeTicker struct {
	clock *Fake
	every time.Duration
	next  time.Time
	c     chan time.Time
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }

func (t *fakeTicker) Stop() {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	delete(t.clock.tickers, t)
}
