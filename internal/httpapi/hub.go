package httpapi

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/metrics"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// ErrHubClosed is returned by a subscription whose hub has stopped.
var ErrHubClosed = errors.New("stream hub stopped")

// Conn is a Redis connection of a hub reader's own: a blocked XREAD holds
// it. *redis.Client (of one connection) and *redis.Conn are ones.
type Conn interface {
	rdb.StreamReader
	ClientID(ctx context.Context) *redis.IntCmd
	Close() error
}

// HubConfig configures a Hub.
type HubConfig struct {
	// Store reads the streams and unblocks the readers. Required.
	Store *rdb.Store
	// Connect opens a reader's dedicated connection. Required unless Slot
	// is set.
	Connect func(ctx context.Context) (Conn, error)
	// Slot, on a Redis Cluster, gives the hash slot of an execution's
	// stream: one XREAD may only name keys of one slot, so the hub reads
	// each slot in use with a reader of its own, made when a subscription
	// needs it and ended once it has had none for readerIdle, on a
	// connection ConnectKey opens to the node that serves the key. Readers
	// is then unused.
	Slot func(id string) int
	// ConnectKey opens a dedicated connection to the node serving key (a
	// stream key). Required with Slot.
	ConnectKey func(ctx context.Context, key string) (Conn, error)
	// Readers is the number of reader goroutines, each with its own
	// connection. Defaults to 4.
	Readers int
	// Buffer is the events a subscriber's buffer holds. Defaults to 64.
	Buffer int
	// Block bounds each XREAD; a change to a reader's subscriptions ends
	// its XREAD at once (CLIENT UNBLOCK), so it only matters when that
	// fails. Defaults to 5s; on a server without CLIENT ID (an embedded
	// Redis), which cannot unblock a reader, each XREAD waits at most
	// 100ms, the longest a new subscription then waits.
	Block time.Duration
	// Metrics records the readers' connections; nil records nothing.
	Metrics *metrics.API
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c HubConfig) withDefaults() HubConfig {
	if c.Readers <= 0 {
		c.Readers = 4
	}
	if c.Buffer <= 0 {
		c.Buffer = 64
	}
	if c.Block <= 0 {
		c.Block = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Hub delivers the events of many executions' streams to subscribers over a
// few Redis connections: each of its readers holds one connection and reads
// the streams of all the executions its subscribers follow with one XREAD
// BLOCK, so an open event stream costs no connection of its own.
//
// Back-pressure: each subscriber has a bounded buffer. A reader never waits
// for a subscriber: when a subscriber's buffer is full, the reader drops it
// from its set, and the subscriber, once it has taken what its buffer held,
// subscribes again from the last event it took (Next does this), so that
// nothing is lost and a slow client slows only itself.
//
// Start starts the readers; Stop stops them and ends every subscription
// with ErrHubClosed.
type Hub struct {
	cfg     HubConfig
	readers []*reader
	done    chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped sync.Once

	// On a Cluster (HubConfig.Slot), the readers by slot, made as needed
	// and started on runCtx.
	mu     sync.Mutex
	bySlot map[int]*reader
	runCtx context.Context
}

// NewHub returns a hub; Start starts it.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.Store == nil || cfg.Connect == nil && cfg.Slot == nil || cfg.Slot != nil && cfg.ConnectKey == nil {
		return nil, errors.New("stream hub: Store and Connect (or Slot and ConnectKey) are required")
	}
	cfg = cfg.withDefaults()
	h := &Hub{cfg: cfg, done: make(chan struct{}), bySlot: map[int]*reader{}}
	if cfg.Slot != nil {
		return h, nil
	}
	for range cfg.Readers {
		h.readers = append(h.readers, newReader(h))
	}
	return h, nil
}

func newReader(h *Hub) *reader {
	return &reader{
		hub:     h,
		subs:    map[string]map[*Sub]struct{}{},
		changed: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
	}
}

// Start starts the readers. They run until Stop or the end of ctx.
func (h *Hub) Start(ctx context.Context) {
	ctx, h.cancel = context.WithCancel(ctx)
	h.mu.Lock()
	h.runCtx = ctx
	for _, r := range h.bySlot {
		h.startReader(ctx, r)
	}
	h.mu.Unlock()
	for _, r := range h.readers {
		h.startReader(ctx, r)
	}
}

func (h *Hub) startReader(ctx context.Context, r *reader) {
	// Its own context: a retired slot reader ends its waker with it.
	ctx, r.stop = context.WithCancel(ctx)
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		r.run(ctx)
	}()
	go func() {
		defer h.wg.Done()
		r.waker(ctx)
	}()
}

// Stop stops the readers, closes their connections and ends every
// subscription. It waits for the readers to return.
func (h *Hub) Stop() {
	h.stopped.Do(func() {
		close(h.done)
		if h.cancel != nil {
			h.cancel()
		}
		// A blocked XREAD does not end with its context: closing its
		// connection ends it.
		for _, r := range h.readers {
			r.closeConn()
		}
		h.mu.Lock()
		for _, r := range h.bySlot {
			r.closeConn()
		}
		h.mu.Unlock()
	})
	h.wg.Wait()
}

// Subscribe follows the stream of the execution id from after its entry
// ID after ("" or "0" for the start). The stream need not exist yet.
func (h *Hub) Subscribe(id, after string) (*Sub, error) {
	if after == "" {
		after = "0"
	}
	if _, err := parseEntryID(after); err != nil {
		return nil, err
	}
	select {
	case <-h.done:
		return nil, ErrHubClosed
	default:
	}
	s := &Sub{id: id, hub: h, last: after}
	h.attach(s, after)
	return s, nil
}

// attach gives s to the reader of its stream, from after.
func (h *Hub) attach(s *Sub, after string) {
	if h.cfg.Slot == nil {
		s.r = h.readerFor(s.id)
		s.r.add(s, after)
		return
	}
	// Under h.mu, so that the reader is not ended meanwhile.
	h.mu.Lock()
	defer h.mu.Unlock()
	slot := h.cfg.Slot(s.id)
	r := h.bySlot[slot]
	if r == nil {
		r = newReader(h)
		r.slot, r.key = slot, h.cfg.Store.Keys().Stream(s.id)
		h.bySlot[slot] = r
		if h.runCtx != nil {
			h.startReader(h.runCtx, r)
		}
	}
	s.r = r
	r.add(s, after)
}

// readerIdle is how long a Cluster slot's reader lives without
// subscriptions.
const readerIdle = 30 * time.Second

// retire ends r, a slot's reader, if it still has no subscription.
func (h *Hub) retire(r *reader) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.subs) > 0 || h.bySlot[r.slot] != r {
		return false
	}
	delete(h.bySlot, r.slot)
	return true
}

// Subscriptions is the number of subscriptions the readers serve now.
func (h *Hub) Subscriptions() int {
	n := 0
	h.mu.Lock()
	readers := slices.Clone(h.readers)
	for _, r := range h.bySlot {
		readers = append(readers, r)
	}
	h.mu.Unlock()
	for _, r := range readers {
		r.mu.Lock()
		for _, set := range r.subs {
			n += len(set)
		}
		r.mu.Unlock()
	}
	return n
}

// readerFor is where the hub batches streams: it picks the reader, and so
// the XREAD, that serves an execution's stream. On one Redis server any
// reader can read any key, and hashing the ID spreads the executions over
// them. On a Redis Cluster, whose XREAD must name keys of one hash slot,
// attach gives each slot in use a reader of its own instead.
func (h *Hub) readerFor(id string) *reader {
	f := fnv.New32a()
	f.Write([]byte(id))
	return h.readers[int(f.Sum32()%uint32(len(h.readers)))]
}

// Sub is one subscription to an execution's stream. Its methods are for one
// goroutine.
type Sub struct {
	id  string
	hub *Hub
	r   *reader
	// last is the ID of the last event Next returned.
	last string

	// Guarded by r.mu.
	ch     chan tasks.Event
	lagged chan struct{}
	pos    string // the ID of the last event put in ch
	active bool
}

// Next returns the stream's next event, waiting for it as long as ctx
// lasts: a deliberate wait, as long as the execution is silent. It
// returns ErrHubClosed once the hub has stopped.
func (s *Sub) Next(ctx context.Context) (tasks.Event, error) {
	for {
		s.r.mu.Lock()
		ch, lagged := s.ch, s.lagged
		s.r.mu.Unlock()
		select {
		case ev := <-ch:
			s.last = ev.ID
			return ev, nil
		default:
		}
		select {
		case ev := <-ch:
			s.last = ev.ID
			return ev, nil
		case <-lagged:
			if len(ch) > 0 {
				continue
			}
			// Everything the reader delivered is taken: read on from
			// the last event, which the reader goes back to.
			s.hub.attach(s, s.last)
		case <-s.hub.done:
			return tasks.Event{}, ErrHubClosed
		case <-ctx.Done():
			return tasks.Event{}, ctx.Err()
		}
	}
}

// Close ends the subscription.
func (s *Sub) Close() { s.r.remove(s) }

// reader serves its subscribers' streams with one XREAD at a time on a
// connection of its own.
type reader struct {
	hub *Hub
	// slot and key: on a Cluster, the hash slot the reader reads, and a
	// stream key of it, which routes its connection.
	slot int
	key  string
	stop context.CancelFunc // ends the reader's goroutines
	// changed wakes the reader when it has nothing to read; wake asks the
	// waker to end an XREAD that reads an old set of streams.
	changed, wake chan struct{}

	mu       sync.Mutex
	subs     map[string]map[*Sub]struct{} // by execution ID
	gen      uint64                       // counts changes to subs
	readGen  uint64                       // the gen of the XREAD in flight
	blocking bool                         // an XREAD is in flight
	clientID int64                        // of the connection, 0 while none
	conn     Conn                         // nil while none
}

// setConn records the reader's connection, unless the hub has stopped,
// which closes it.
func (r *reader) setConn(c Conn, id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.hub.done:
		c.Close()
		return false
	default:
	}
	r.conn, r.clientID = c, id
	r.hub.cfg.Metrics.HubConnected()
	return true
}

// closeConn closes the reader's connection, if it has one.
func (r *reader) closeConn() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		r.conn.Close()
		r.conn, r.clientID = nil, 0
		r.hub.cfg.Metrics.HubDisconnected()
	}
}

// noUnblockBlock bounds an XREAD that no CLIENT UNBLOCK can end.
const noUnblockBlock = 100 * time.Millisecond

func (r *reader) canUnblock() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clientID != 0
}

func (r *reader) current() Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn
}

func (r *reader) add(s *Sub, from string) {
	r.mu.Lock()
	s.ch = make(chan tasks.Event, r.hub.cfg.Buffer)
	s.lagged = make(chan struct{})
	s.pos = from
	s.active = true
	set := r.subs[s.id]
	if set == nil {
		set = map[*Sub]struct{}{}
		r.subs[s.id] = set
	}
	set[s] = struct{}{}
	r.gen++
	r.mu.Unlock()
	r.hub.cfg.Metrics.HubSubscriptions(1)
	signal(r.changed)
	signal(r.wake)
}

func (r *reader) remove(s *Sub) {
	r.mu.Lock()
	was := r.dropLocked(s)
	r.mu.Unlock()
	if was {
		r.hub.cfg.Metrics.HubSubscriptions(-1)
	}
}

// dropLocked takes s out of the set; the XREAD in flight may still name
// its stream, which does no harm.
func (r *reader) dropLocked(s *Sub) bool {
	if !s.active {
		return false
	}
	s.active = false
	set := r.subs[s.id]
	delete(set, s)
	if len(set) == 0 {
		delete(r.subs, s.id)
	}
	return true
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// snapshot is what the next XREAD reads: for each stream, the earliest
// position of its subscribers.
func (r *reader) snapshot() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	after := make(map[string]string, len(r.subs))
	for id, set := range r.subs {
		for s := range set {
			if cur, ok := after[id]; !ok || entryBefore(s.pos, cur) {
				after[id] = s.pos
			}
		}
	}
	r.readGen = r.gen
	r.blocking = len(after) > 0
	return after
}

// readCount is the most events one XREAD takes of one stream.
const readCount = 64

func (r *reader) run(ctx context.Context) {
	cfg := r.hub.cfg
	defer r.closeConn()
	retry := time.Duration(0)
	for ctx.Err() == nil {
		conn := r.current()
		if conn == nil {
			c, id, err := r.connect(ctx)
			if err != nil {
				retry = backoff(retry)
				cfg.Logger.Warn("stream hub: connect", "err", err, "retry_in", retry)
				sleep(ctx, retry)
				continue
			}
			if !r.setConn(c, id) {
				return
			}
			conn = c
		}
		after := r.snapshot()
		if len(after) == 0 {
			var idle <-chan time.Time
			if r.key != "" {
				idle = time.After(readerIdle)
			}
			select {
			case <-r.changed:
			case <-idle:
				if r.hub.retire(r) {
					r.stop()
					return
				}
			case <-ctx.Done():
			}
			continue
		}
		block := cfg.Block
		if !r.canUnblock() {
			block = min(block, noUnblockBlock)
		}
		got, err := cfg.Store.ReadStreams(ctx, conn, after, readCount, block)
		r.mu.Lock()
		r.blocking = false
		r.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			retry = backoff(retry)
			cfg.Logger.Warn("stream hub: read", "err", err, "streams", len(after), "retry_in", retry)
			r.closeConn()
			sleep(ctx, retry)
			continue
		}
		retry = 0
		r.deliver(got)
	}
}

func (r *reader) connect(ctx context.Context) (Conn, int64, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var c Conn
	var err error
	if r.key != "" {
		c, err = r.hub.cfg.ConnectKey(cctx, r.key)
	} else {
		c, err = r.hub.cfg.Connect(cctx)
	}
	if err != nil {
		return nil, 0, err
	}
	id, err := c.ClientID(cctx).Result()
	if err != nil {
		// A server without CLIENT ID (an embedded one) cannot unblock the
		// reader either: its XREADs are kept short instead.
		r.hub.cfg.Logger.Info("stream hub: no CLIENT ID; new subscriptions wait for the reader's current XREAD", "err", err, "block", min(r.hub.cfg.Block, noUnblockBlock))
		return c, 0, nil
	}
	return c, id, nil
}

// deliver hands each subscriber the events after its position, never
// waiting: a full buffer sends the subscriber back to reading from its
// last event (see Hub).
func (r *reader) deliver(got map[string][]tasks.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var dropped int
	for id, events := range got {
		for s := range r.subs[id] {
		events:
			for _, ev := range events {
				if !entryBefore(s.pos, ev.ID) {
					continue
				}
				select {
				case s.ch <- ev:
					s.pos = ev.ID
				default:
					r.dropLocked(s)
					close(s.lagged)
					dropped++
					r.hub.cfg.Metrics.HubLagged()
					break events
				}
				if ev.Type == tasks.EventExit {
					// Nothing follows an exit.
					r.dropLocked(s)
					dropped++
					break
				}
			}
		}
	}
	if dropped > 0 {
		r.hub.cfg.Metrics.HubSubscriptions(-dropped)
	}
}

// waker ends an XREAD that reads an older set of streams than the reader
// now has, so that a new subscriber waits for no XREAD of others. CLIENT
// UNBLOCK does nothing to a command not yet received, so it tries again
// until the XREAD has ended or reads the new set.
func (r *reader) waker(ctx context.Context) {
	for {
		select {
		case <-r.wake:
		case <-ctx.Done():
			return
		}
		pause := 500 * time.Microsecond
		for ctx.Err() == nil {
			r.mu.Lock()
			stale, id := r.blocking && r.readGen < r.gen, r.clientID
			r.mu.Unlock()
			if !stale || id == 0 {
				break
			}
			ok, err := r.hub.cfg.Store.Unblock(ctx, id)
			if ok || err != nil {
				break
			}
			sleep(ctx, pause)
			pause = min(2*pause, 50*time.Millisecond)
		}
	}
}

func backoff(d time.Duration) time.Duration {
	if d == 0 {
		return 100 * time.Millisecond
	}
	return min(2*d, 5*time.Second)
}

// sleep waits d or until ctx ends: a retry's pause, not a wait for a
// condition.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// entryID is a stream entry ID, milliseconds and sequence.
type entryID struct{ ms, seq uint64 }

func parseEntryID(s string) (entryID, error) {
	msText, seqText, hasSeq := strings.Cut(s, "-")
	ms, err := strconv.ParseUint(msText, 10, 64)
	if err != nil {
		return entryID{}, fmt.Errorf("%q is not a stream entry ID (MS-SEQ)", s)
	}
	var seq uint64
	if hasSeq {
		if seq, err = strconv.ParseUint(seqText, 10, 64); err != nil {
			return entryID{}, fmt.Errorf("%q is not a stream entry ID (MS-SEQ)", s)
		}
	}
	return entryID{ms, seq}, nil
}

// entryBefore reports whether the entry ID a comes before b; an ID that
// does not parse comes before every other.
func entryBefore(a, b string) bool {
	x, errA := parseEntryID(a)
	y, errB := parseEntryID(b)
	switch {
	case errA != nil:
		return errB == nil
	case errB != nil:
		return false
	}
	return x.ms < y.ms || x.ms == y.ms && x.seq < y.seq
}
