package httpapi

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter holds each owner's request rate and open event streams.
type limiter struct {
	rate       rate.Limit
	burst      int
	maxStreams int

	mu      sync.Mutex
	owners  map[string]*ownerLimits
	nowFunc func() time.Time
}

type ownerLimits struct {
	requests *rate.Limiter
	streams  int
}

func newLimiter(perSecond float64, burst, maxStreams int, now func() time.Time) *limiter {
	return &limiter{rate: rate.Limit(perSecond), burst: burst, maxStreams: maxStreams, owners: map[string]*ownerLimits{}, nowFunc: now}
}

func (l *limiter) owner(o string) *ownerLimits {
	ol := l.owners[o]
	if ol == nil {
		ol = &ownerLimits{requests: rate.NewLimiter(l.rate, l.burst)}
		l.owners[o] = ol
	}
	return ol
}

// allow takes one request of owner's rate; when there is none left it
// returns false and how long until there is.
func (l *limiter) allow(owner string) (bool, time.Duration) {
	l.mu.Lock()
	ol := l.owner(owner)
	l.mu.Unlock()
	now := l.nowFunc()
	r := ol.requests.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// openStream counts one more open event stream of owner, unless it has
// the most it may; release undoes it.
func (l *limiter) openStream(owner string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ol := l.owner(owner)
	if ol.streams >= l.maxStreams {
		return nil, false
	}
	ol.streams++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			ol.streams--
			l.mu.Unlock()
		})
	}, true
}

// retryAfter is d in whole seconds, at least 1, as Retry-After gives it.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
