package mcpserver

import (
	"context"
	"sync"
)

// inflight holds the tool calls under way, so that they can be canceled
// and waited for. Unlike a sync.WaitGroup, it may be waited for while
// calls start, as sessions come and go.
type inflight struct {
	mu    sync.Mutex
	next  int
	calls map[int]context.CancelFunc
	idle  chan struct{} // closed when calls empties
}

// add registers a call that cancel ends, and returns its key for done.
func (f *inflight) add(cancel context.CancelFunc) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		f.calls = map[int]context.CancelFunc{}
		f.idle = make(chan struct{})
	}
	f.next++
	f.calls[f.next] = cancel
	return f.next
}

func (f *inflight) done(key int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.calls, key)
	if len(f.calls) == 0 {
		close(f.idle)
	}
}

// cancelAll cancels every call under way.
func (f *inflight) cancelAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cancel := range f.calls {
		cancel()
	}
}

// wait returns once no call is under way, or when ctx ends.
func (f *inflight) wait(ctx context.Context) error {
	f.mu.Lock()
	if len(f.calls) == 0 {
		f.mu.Unlock()
		return nil
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
